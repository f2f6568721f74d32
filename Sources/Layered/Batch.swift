internal import CLayered

/// Puts and removes on any number of tables, applied by ``Database/write(_:)`` as one atomic
/// unit.
///
/// ```swift
/// try database.write { batch in
///     batch.put("order-7", "paid", in: orders)
///     batch.remove("cart-7", from: carts)
/// }
/// ```
///
/// A batch only collects: its methods copy the keys and values and never fail.  Everything is
/// checked when ``Database/write(_:)`` commits: a problem with any op (an oversized key, a table
/// that no longer exists) throws and writes nothing.  Later ops on the same key win.  The batch
/// reaches the body as an `inout` parameter, so it cannot outlive the commit.
public struct WriteBatch {
    struct Op {
        let uri: String
        let table: Table
        let key: [UInt8]
        let value: [UInt8]?
    }

    private(set) var ops: [Op] = []

    init() {}

    /// The number of ops collected so far.
    public var count: Int { ops.count }

    /// Whether the batch holds no ops; committing an empty batch writes nothing.
    public var isEmpty: Bool { ops.isEmpty }

    /// Adds an insert-or-overwrite of a key.
    ///
    /// - Parameters:
    ///   - key: 1 to 65535 bytes (checked at commit).
    ///   - value: 0 to 256 MiB (checked at commit).
    ///   - table: the table to write.
    public mutating func put(_ key: some ByteString, _ value: some ByteString, in table: Table) {
        ops.append(Op(uri: table.uri, table: table, key: key.byteArray, value: value.byteArray))
    }

    /// Adds a removal of a key.  Removing a key that is not there is not an error.
    ///
    /// - Parameters:
    ///   - key: 1 to 65535 bytes (checked at commit).
    ///   - table: the table to write.
    public mutating func remove(_ key: some ByteString, from table: Table) {
        ops.append(Op(uri: table.uri, table: table, key: key.byteArray, value: nil))
    }
}

extension Database {
    /// Runs `body` to collect a batch of puts and removes, then applies all of them atomically.
    ///
    /// After a crash, `kill -9` or a power cut either every op of a batch that `write` returned
    /// from is there, or, for a batch that was interrupted, none of it.  A commit costs one
    /// `fdatasync` of the batch journal, whatever the ``SyncLevel``, so a committed batch is
    /// also durable.  Ops go where single writes go: the ingest on a follower, the stable
    /// constituent on a leader.
    ///
    /// What readers see: once a read has seen any row of a batch, every read that starts
    /// afterwards sees all of it, and every read that starts after `write` returned sees all of
    /// it.  A cursor moving through a table while a batch commits sees the rows ahead of its
    /// position, not those it has passed.
    /// - Parameter body: collects the ops; if it throws, nothing is written and its error is
    ///   rethrown.
    /// - Returns: what `body` returned.
    /// - Throws: ``LayeredError/EINVAL`` (an empty or oversized key, an oversized value, a table
    ///   of another database, the batch over its limits), ``LayeredError/ENOENT`` (a table does
    ///   not exist, is offloaded, or is being dropped or offloaded), ``LayeredError/ENOSPC``,
    ///   ``LayeredError/EIO`` (the journal could not be written; nothing was),
    ///   ``LayeredError/corrupt``, ``LayeredError/ENOMEM``, ``LayeredError/panic`` (also when
    ///   the batch was committed but its rows could not be written: the next open replays it).
    ///   Every error except that panic means nothing was written.  An error `body` throws is
    ///   rethrown as it is, so this function's errors are untyped.
    @discardableResult
    public func write<Result>(_ body: (inout WriteBatch) throws -> Result) throws -> Result {
        var batch = WriteBatch()
        let result = try body(&batch)
        guard !batch.isEmpty else { return result }
        guard batch.ops.allSatisfy({ $0.table.database === self }) else {
            throw LayeredError.EINVAL
        }
        try commit(batch)
        return result
    }

    /// Applies the ops of a batch atomically (the C batch: open, one put or remove per op,
    /// commit).
    private func commit(_ batch: WriteBatch) throws(LayeredError) {
        try withSession { session throws(LayeredError) in
            var handle: OpaquePointer?
            try check(layered_batch_open(session, &handle))
            defer { _ = layered_batch_close(handle) }
            for op in batch.ops {
                let code = op.key.withUnsafeBytes { key -> Int32 in
                    guard let value = op.value else {
                        return layered_batch_remove(handle, op.uri, key.baseAddress, key.count)
                    }
                    return value.withUnsafeBytes { value in
                        layered_batch_put(
                            handle, op.uri, key.baseAddress, key.count, value.baseAddress,
                            value.count)
                    }
                }
                try check(code)
            }
            try check(layered_batch_commit(handle))
        }
    }
}
