internal import Synchronization
internal import CLayered

/// A handle to a layered table: `layered:NAME`, an ingest and a stable constituent read as one.
///
/// A `Table` holds no C resources.  Each operation opens a C cursor for its own duration and
/// closes it before returning, because an open cursor holds the table's read lock and a drop
/// meanwhile would fail with ``LayeredError/EBUSY``.  Handles are cheap values: keep them, pass
/// them between tasks, compare them.
///
/// ```swift
/// let users = try database.table(named: "users")
/// try users.put("alice", "admin")
/// let role = try users.get("alice", as: String.self)     // "admin"
/// for (key, value) in users.entries(from: "a", before: "b") { … }
/// ```
public struct Table: Sendable, Hashable {
    /// The database the table belongs to.
    public let database: Database
    /// The table's name: the NAME in `layered:NAME`.
    public let name: String
    /// `layered:NAME`.
    let uri: String

    init(database: Database, name: String, uri: String) {
        self.database = database
        self.name = name
        self.uri = uri
    }

    /// Tables are equal when they name the same table of the same database.
    public static func == (lhs: Table, rhs: Table) -> Bool {
        lhs.database === rhs.database && lhs.name == rhs.name
    }

    /// Hashes the database's identity and the table's name.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(ObjectIdentifier(database))
        hasher.combine(name)
    }

    /// Reads the value of a key.
    ///
    /// - Parameters:
    ///   - key: 1 to 65535 bytes.
    ///   - type: how to return the value: `[UInt8]` (the default), `String`, `Data`, …
    /// - Returns: the value, or `nil` if the table has no such key.
    /// - Throws: ``LayeredError/EINVAL`` (an empty or oversized key), ``LayeredError/ENOENT``
    ///   (the table no longer exists), ``LayeredError/corrupt``, ``LayeredError/EIO``,
    ///   ``LayeredError/panic``.
    public func get<Value: ByteString>(_ key: some ByteString, as type: Value.Type = [UInt8].self)
        throws(LayeredError) -> Value?
    {
        try withCursor { cursor throws(LayeredError) in
            guard try cursor.search(key) else { return nil }
            return try cursor.value(as: type)
        }
    }

    /// Whether the table has a key.
    ///
    /// - Throws: as ``get(_:as:)``.
    public func contains(_ key: some ByteString) throws(LayeredError) -> Bool {
        try withCursor { cursor throws(LayeredError) in try cursor.search(key) }
    }

    /// Inserts or overwrites a key.
    ///
    /// Writes go to the ingest constituent on a follower and to the stable one on a leader; they
    /// wait while a step-up drains.
    /// - Parameters:
    ///   - key: 1 to 65535 bytes.
    ///   - value: 0 to 256 MiB.
    /// - Throws: ``LayeredError/EINVAL`` (an empty or oversized key, an oversized value),
    ///   ``LayeredError/ENOENT`` (the table no longer exists), ``LayeredError/ENOSPC``,
    ///   ``LayeredError/EIO`` (nothing was written), ``LayeredError/panic``.
    public func put(_ key: some ByteString, _ value: some ByteString) throws(LayeredError) {
        try withCursor { cursor throws(LayeredError) in try cursor.put(key, value) }
    }

    /// Removes a key.
    ///
    /// - Returns: whether the key existed.
    /// - Throws: as ``put(_:_:)``.
    @discardableResult
    public func remove(_ key: some ByteString) throws(LayeredError) -> Bool {
        try withCursor { cursor throws(LayeredError) in try cursor.remove(key) }
    }

    /// The table's entries in key order, optionally within bounds.
    ///
    /// The sequence opens a cursor when iteration starts and closes it when the iteration ends
    /// or the iterator is discarded: while no loop is running, it does not hold the table.
    /// - Parameters:
    ///   - lowerBound: the first key to include, or `nil` to start at the first key.
    ///   - upperBound: the first key to exclude, or `nil` to run to the last key.
    public func entries(from lowerBound: (any ByteString)? = nil, before upperBound: (any ByteString)? = nil)
        -> Entries
    {
        Entries(table: self, lowerBound: lowerBound?.byteArray, upperBound: upperBound?.byteArray)
    }

    /// Opens a cursor for explicit positioning.  The cursor holds the table's read lock until it
    /// is closed or discarded.
    ///
    /// - Throws: as ``Cursor/init(table:constituent:)``.
    public func makeCursor() throws(LayeredError) -> Cursor {
        try Cursor(table: self)
    }

    /// The table's lifecycle state.
    ///
    /// - Throws: ``LayeredError/ENOENT`` (the table no longer exists),
    ///   ``LayeredError/panic``.
    public var state: TableState {
        get throws(LayeredError) { try database.state(ofTable: name) }
    }

    /// Drops the table; see ``Database/dropTable(_:force:waitForCheckpoint:)``.
    public func drop(force: Bool = false, waitForCheckpoint: Bool = false) throws(LayeredError) {
        try database.dropTable(name, force: force, waitForCheckpoint: waitForCheckpoint)
    }

    /// Archives the table; see ``Database/archiveTable(_:)``.
    public func archive() throws(LayeredError) {
        try database.archiveTable(name)
    }

    /// Unarchives the table, restoring it from the shared store if it was offloaded; see
    /// ``Database/unarchiveTable(_:)``.
    public func unarchive() throws(LayeredError) {
        try database.unarchiveTable(name)
    }

    /// Offloads the archived table; see ``Database/offloadTable(_:)``.
    public func offload() throws(LayeredError) {
        try database.offloadTable(name)
    }

    /// Runs `body` with a cursor opened for the call and closed before returning.
    private func withCursor<Result>(
        _ body: (Cursor) throws(LayeredError) -> Result
    ) throws(LayeredError) -> Result {
        let cursor = try Cursor(table: self)
        defer { try? cursor.close() }
        return try body(cursor)
    }
}

/// A table's entries in key order, within optional bounds: a `Sequence` of `(key, value)` pairs.
///
/// Made by ``Table/entries(from:before:)``.  Each iteration opens its own cursor when it starts
/// and closes it at the end, so a drop of the table only fails while a loop is running.
///
/// An iterator cannot throw: an error (the table was dropped, a damaged file, a panic) ends the
/// iteration early and is kept in ``error``.  Check it after the loop when a short result
/// matters, or use a ``Cursor``, whose every step throws.
public struct Entries: Sequence, Sendable {
    /// A key and its value.
    public typealias Element = (key: [UInt8], value: [UInt8])

    /// The table iterated.
    public let table: Table
    /// The first key included, or `nil` for the first key of the table.
    public let lowerBound: [UInt8]?
    /// The first key excluded, or `nil` for no upper bound.
    public let upperBound: [UInt8]?
    private let failure = Failure()

    init(table: Table, lowerBound: [UInt8]?, upperBound: [UInt8]?) {
        self.table = table
        self.lowerBound = lowerBound
        self.upperBound = upperBound
    }

    /// The error that ended the most recent iteration early, or `nil` if it ran to its end.
    public var error: LayeredError? {
        failure.error.withLock { $0 }
    }

    /// Starts an iteration.  The cursor opens on the first call to `next()`.
    public func makeIterator() -> Iterator {
        failure.error.withLock { $0 = nil }
        return Iterator(entries: self)
    }

    /// Iterates ``Entries`` with a cursor that it owns; the cursor closes at the end of the
    /// iteration or when the iterator is discarded.
    public struct Iterator: IteratorProtocol {
        private let entries: Entries
        private var cursor: Cursor?
        private var isFinished = false

        init(entries: Entries) {
            self.entries = entries
        }

        /// The next entry, or `nil` at the end of the range or after an error.
        public mutating func next() -> Element? {
            guard !isFinished else { return nil }
            do {
                let found: Bool
                if let cursor {
                    found = try cursor.next()
                } else {
                    let cursor = try Cursor(table: entries.table)
                    self.cursor = cursor
                    if let lowerBound = entries.lowerBound {
                        switch try cursor.search(near: lowerBound) {
                        case nil: found = false
                        case .exact, .larger: found = true
                        case .smaller: found = try cursor.next()
                        }
                    } else {
                        found = try cursor.next()
                    }
                }
                if found, let entry = try cursor?.entry(),
                    entries.upperBound.map({ entry.key.lexicographicallyPrecedes($0) }) ?? true
                {
                    return entry
                }
            } catch {
                entries.failure.error.withLock { $0 = error }
            }
            finish()
            return nil
        }

        private mutating func finish() {
            isFinished = true
            try? cursor?.close()
            cursor = nil
        }
    }

    private final class Failure: Sendable {
        let error = Mutex<LayeredError?>(nil)
    }
}
