internal import CLayered

/// A cursor on a table, for explicit positioning: search, search-near, next, previous.
///
/// A cursor owns a C cursor and the C session it lives in, and frees both in `deinit` or in
/// ``close()``.  While it is open it holds the table's read lock, so dropping the table throws
/// ``LayeredError/EBUSY`` until the cursor is closed.
///
/// A cursor is used by one thread or task at a time (the C session is single-threaded), so it
/// is not `Sendable`.  Keys sort by their bytes, the shorter first on a tie.
///
/// ```swift
/// let cursor = try table.makeCursor()
/// if try cursor.search(near: "m") != nil {
///     repeat { print(try cursor.key(as: String.self)!) } while try cursor.next()
/// }
/// ```
public final class Cursor {
    /// The table the cursor reads.
    public let table: Table
    /// The constituent the cursor reads, or `nil` for the layered table as a whole.
    public let constituent: Constituent?

    private var session: OpaquePointer?
    private var cursor: OpaquePointer?

    /// One of the two files a layered table is made of.  A cursor on a constituent is read-only;
    /// it exists for diagnostics.
    public enum Constituent: Sendable, Hashable {
        /// `file:NAME.ingest`: receives writes while the database is a follower.
        case ingest
        /// `file:NAME.stable`: receives writes while the database is leader.
        case stable
    }

    /// Where ``search(near:)`` positioned the cursor.
    public enum Match: Sendable, Hashable {
        /// On the key searched for.
        case exact
        /// On the smallest key larger than the one searched for.
        case larger
        /// On the largest key smaller than the one searched for (no larger key exists).
        case smaller
    }

    /// Opens a cursor on a table, unpositioned.
    ///
    /// - Parameters:
    ///   - table: the table to read.
    ///   - constituent: a constituent to read on its own (read-only), or `nil` (the default) for
    ///     the layered table: ingest over stable, writes to the constituent of the current role.
    /// - Throws: ``LayeredError/ENOENT`` (no such table), ``LayeredError/corrupt``,
    ///   ``LayeredError/EIO``, ``LayeredError/ENOMEM``, ``LayeredError/panic``,
    ///   ``LayeredError/EINVAL`` (the database is closed).
    public init(table: Table, constituent: Constituent? = nil) throws(LayeredError) {
        self.table = table
        self.constituent = constituent
        let uri: String =
            switch constituent {
            case nil: table.uri
            case .ingest: "file:\(table.name).ingest"
            case .stable: "file:\(table.name).stable"
            }
        let database = table.database
        (session, cursor) = try database.perform { connection throws(LayeredError) in
            let session = try database.takeSession(connection)
            var cursor: OpaquePointer?
            let code = layered_cursor_open(session, uri, &cursor)
            guard code == 0 else {
                database.returnSession(session)
                try database.check(code)
                return (nil, nil)
            }
            return (session, cursor)
        }
    }

    deinit {
        try? close()
    }

    /// Closes the cursor, releasing the table's read lock.  Closing a closed cursor, or a cursor
    /// whose database was closed (which closed it), does nothing.  Every other method throws
    /// ``LayeredError/EINVAL`` afterwards.
    public func close() throws(LayeredError) {
        guard let cursor, let session else { return }
        self.cursor = nil
        self.session = nil
        let database = table.database
        try database.performIfOpen { _ throws(LayeredError) in
            let code = layered_cursor_close(cursor)
            database.returnSession(session)
            try check(code)
        }
    }

    /// Positions the cursor on a key.
    ///
    /// - Returns: whether the key exists; if not, the cursor is unpositioned.
    /// - Throws: ``LayeredError/EINVAL`` (an empty or oversized key),
    ///   ``LayeredError/corrupt``, ``LayeredError/EIO``, ``LayeredError/panic``.
    @discardableResult
    public func search(_ key: some ByteString) throws(LayeredError) -> Bool {
        try found(withCursor { cursor in
            key.withByteStringBytes { layered_cursor_search(cursor, $0.baseAddress, $0.count) }
        })
    }

    /// Positions the cursor on a key, or the nearest one: the smallest larger key, else the
    /// largest smaller key.
    ///
    /// - Returns: where the cursor is, or `nil` if the table is empty.
    /// - Throws: as ``search(_:)``.
    @discardableResult
    public func search(near key: some ByteString) throws(LayeredError) -> Match? {
        var exact: Int32 = 0
        let isPositioned = try found(withCursor { cursor in
            key.withByteStringBytes {
                layered_cursor_search_near(cursor, $0.baseAddress, $0.count, &exact)
            }
        })
        guard isPositioned else { return nil }
        return exact == 0 ? .exact : exact > 0 ? .larger : .smaller
    }

    /// Moves to the next key; from an unpositioned cursor, to the first.
    ///
    /// - Returns: `false` when there is no next key: the cursor is then unpositioned.
    /// - Throws: ``LayeredError/EIO``, ``LayeredError/corrupt``, ``LayeredError/panic``.
    @discardableResult
    public func next() throws(LayeredError) -> Bool {
        try found(withCursor { layered_cursor_next($0) })
    }

    /// Moves to the previous key; from an unpositioned cursor, to the last.
    ///
    /// - Returns: `false` when there is no previous key: the cursor is then unpositioned.
    /// - Throws: as ``next()``.
    @discardableResult
    public func previous() throws(LayeredError) -> Bool {
        try found(withCursor { layered_cursor_prev($0) })
    }

    /// Unpositions the cursor: the next ``next()`` goes to the first key, ``previous()`` to the last.
    ///
    /// - Throws: ``LayeredError/EINVAL`` (the cursor is closed).
    public func reset() throws(LayeredError) {
        let code = try withCursor { layered_cursor_reset($0) }
        try table.database.check(code)
    }

    /// The key the cursor is on, or `nil` if it is unpositioned.
    ///
    /// - Parameter type: how to return the key: `[UInt8]` (the default), `String`, `Data`, …
    /// - Throws: ``LayeredError/EINVAL`` (the cursor is closed).
    public func key<Key: ByteString>(as type: Key.Type = [UInt8].self) throws(LayeredError)
        -> Key?
    {
        try withCurrent { key, _ in Key(byteStringBytes: key) }
    }

    /// The value the cursor is on, or `nil` if it is unpositioned.
    ///
    /// - Parameter type: how to return the value: `[UInt8]` (the default), `String`, `Data`, …
    /// - Throws: ``LayeredError/EINVAL`` (the cursor is closed).
    public func value<Value: ByteString>(as type: Value.Type = [UInt8].self) throws(LayeredError)
        -> Value?
    {
        try withCurrent { _, value in Value(byteStringBytes: value) }
    }

    /// The key and value the cursor is on, or `nil` if it is unpositioned.
    ///
    /// - Throws: ``LayeredError/EINVAL`` (the cursor is closed).
    public func entry() throws(LayeredError) -> (key: [UInt8], value: [UInt8])? {
        try withCurrent { key, value in ([UInt8](key), [UInt8](value)) }
    }

    /// Inserts or overwrites a key through this cursor, which is left unpositioned.
    ///
    /// - Throws: as ``Table/put(_:_:)``, and ``LayeredError/ENOTSUP`` on a constituent cursor.
    public func put(_ key: some ByteString, _ value: some ByteString) throws(LayeredError) {
        let code = try withCursor { cursor in
            key.withByteStringBytes { key in
                value.withByteStringBytes { value in
                    layered_cursor_insert(
                        cursor, key.baseAddress, key.count, value.baseAddress, value.count)
                }
            }
        }
        try table.database.check(code)
    }

    /// Removes a key through this cursor, which is left unpositioned.
    ///
    /// - Returns: whether the key existed.
    /// - Throws: as ``Table/put(_:_:)``, and ``LayeredError/ENOTSUP`` on a constituent cursor.
    @discardableResult
    public func remove(_ key: some ByteString) throws(LayeredError) -> Bool {
        try found(withCursor { cursor in
            key.withByteStringBytes { layered_cursor_remove(cursor, $0.baseAddress, $0.count) }
        })
    }

    // MARK: Internals

    /// Runs `body` with the open C cursor, as an operation of the database.
    private func withCursor<Result>(
        _ body: (OpaquePointer) throws(LayeredError) -> Result
    ) throws(LayeredError) -> Result {
        try table.database.perform { _ throws(LayeredError) in
            guard let cursor else { throw Self.closed }
            return try body(cursor)
        }
    }

    /// Runs `body` with the current key and value, valid only during the call; `nil` if the
    /// cursor is unpositioned.
    private func withCurrent<Result>(
        _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws(LayeredError) -> Result
    ) throws(LayeredError) -> Result? {
        try withCursor { cursor throws(LayeredError) in
            var key: UnsafeRawPointer?
            var keyLength = 0
            var value: UnsafeRawPointer?
            var valueLength = 0
            guard layered_cursor_get(cursor, &key, &keyLength, &value, &valueLength) == 0 else {
                return nil
            }
            return try body(
                UnsafeRawBufferPointer(start: key, count: keyLength),
                UnsafeRawBufferPointer(start: value, count: valueLength))
        }
    }

    /// `EINVAL` for an operation on a closed cursor.
    private static var closed: LayeredError {
        LayeredError(code: LayeredError.EINVAL.code, message: "the cursor is closed")
    }

    /// `true` for 0, `false` for `LAYERED_NOTFOUND`; throws for any other code.
    private func found(_ code: Int32) throws(LayeredError) -> Bool {
        if code == LAYERED_NOTFOUND { return false }
        try table.database.check(code)
        return true
    }
}

@available(*, unavailable, message: "a cursor's C session is used by one thread at a time")
extension Cursor: Sendable {}
