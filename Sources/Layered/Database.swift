import Foundation
internal import Logging
internal import Synchronization
internal import CLayered

/// An open Layered database: one home directory and the layered tables in it.
///
/// ```swift
/// let database = try Database(path: "/var/db/orders")
/// let orders = try database.createTable("orders")
/// try orders.put("id-1", "pending")
/// let report = try await database.stepUp()
/// ```
///
/// `Database` is `Sendable`: the C connection it wraps is documented as safe to share among any
/// number of threads, including threads the library did not create (Swift's cooperative pool).
/// C sessions are not: a session is used by one thread at a time.  So the database keeps a small
/// pool of C sessions behind a lock, and every operation borrows one for its duration.
///
/// If the C core panics, the operation that triggered the panic throws ``LayeredError/panic``
/// with the core's message, and so does every later operation: the process keeps running.
///
/// The database closes when ``close()`` is called or when the last reference to it (including
/// those held by ``Table``, ``Cursor`` and running operations) goes away.
public final class Database: @unchecked Sendable {
    /// The home directory the database was opened at.
    public let path: String

    private let gate: ConnectionGate
    private let callbacks: CallbackBox
    /// The retain passed to C as panic and message argument; released after `layered_close`.
    private let callbacksArgument: Unmanaged<CallbackBox>

    /// Opens (and by default creates) the database in a home directory.
    ///
    /// - Parameters:
    ///   - path: the home directory; its parent must exist.
    ///   - configuration: the role, shared directory, drain, durability and auto-offload
    ///     settings.
    /// - Throws: ``LayeredError/EINVAL`` (an empty path, a setting out of range, a malformed
    ///   failpoint), ``LayeredError/ENOENT`` (the home is missing and
    ///   ``Configuration/createIfMissing`` is `false`, or the parent is missing),
    ///   ``LayeredError/ENOTDIR``, ``LayeredError/EACCES``, ``LayeredError/EROFS``, ``LayeredError/EBUSY`` (the home is open in this or another
    ///   process), ``LayeredError/corrupt`` (damaged metadata), ``LayeredError/ENOMEM``,
    ///   ``LayeredError/EIO``.
    public init(path: String, configuration: Configuration = Configuration()) throws(LayeredError) {
        guard !path.contains("\0"), let failpoints = configuration.failpointList,
            !(configuration.sharedDirectory?.contains("\0") ?? false),
            let drainThreads = Int32(exactly: configuration.drainThreads),
            let offloadIdle = configuration.offloadIdleMilliseconds,
            let maintenanceInterval = configuration.maintenanceIntervalMilliseconds
        else {
            throw LayeredError.EINVAL
        }
        self.path = path
        callbacks = CallbackBox(
            home: path, logger: configuration.logger,
            messageHandler: configuration.messageHandler)
        callbacksArgument = Unmanaged.passRetained(callbacks)

        var cfg = layered_config()
        layered_config_init(&cfg)
        cfg.role = configuration.role.cValue
        cfg.drain_threads = drainThreads
        cfg.drain_policy = configuration.drainPolicy.cValue
        cfg.sync = configuration.syncLevel.cValue
        cfg.create = configuration.createIfMissing ? 1 : 0
        cfg.offload_idle_ms = offloadIdle
        cfg.maintenance_interval_ms = maintenanceInterval
        cfg.panic_handler = recordPanic
        cfg.panic_arg = callbacksArgument.toOpaque()
        if configuration.messageHandler != nil || configuration.logger != nil {
            cfg.message_handler = forwardMessage
            cfg.message_arg = callbacksArgument.toOpaque()
        }
        var connection: OpaquePointer?
        let code = path.withCString { home in
            failpoints.withCString { failpoints in
                withOptionalCString(configuration.sharedDirectory) { shared in
                    cfg.shared_dir = shared
                    cfg.failpoints = failpoints
                    return layered_open(home, &cfg, &connection)
                }
            }
        }
        do {
            try Layered.check(code, panicMessage: callbacks.panicMessage())
        } catch {
            callbacksArgument.release()
            throw error
        }
        gate = ConnectionGate(connection: connection!)
    }

    /// Opens (and by default creates) the database in a home directory given as a file URL.
    ///
    /// See ``init(path:configuration:)`` for the errors.
    public convenience init(url: URL, configuration: Configuration = Configuration())
        throws(LayeredError)
    {
        try self.init(path: url.path, configuration: configuration)
    }

    deinit {
        try? close()
    }

    /// Whether the database is still open (``close()`` has not been called).
    public var isOpen: Bool { gate.isOpen }

    /// Closes the database: flushes and syncs every file and writes the metadata.
    ///
    /// Operations that are running finish first; threads paused at failpoints this database set
    /// are released.  Afterwards every operation on the database, its tables and its cursors
    /// throws ``LayeredError/EINVAL``.  Closing a closed database does nothing.
    /// - Throws: ``LayeredError/EIO`` or ``LayeredError/ENOSPC`` (a final flush failed; writes
    ///   under ``SyncLevel/buffered`` since the last checkpoint may be lost), or
    ///   ``LayeredError/panic`` if the database had panicked.  Resources are freed either way.
    public func close() throws(LayeredError) {
        guard let connection = gate.close() else { return }
        let code = layered_close(connection)
        callbacksArgument.release()
        try check(code)
    }

    // MARK: Tables

    /// Creates a layered table and returns a handle to it.
    ///
    /// - Parameters:
    ///   - name: 1 to 200 bytes of `[A-Za-z0-9_.-]`, not starting with `.`.
    ///   - exclusive: whether an existing table of that name is an error.  Default `true`.
    /// - Throws: ``LayeredError/EINVAL`` (a malformed name), ``LayeredError/EEXIST`` (the table
    ///   exists and `exclusive` is `true`), ``LayeredError/EBUSY`` (a table of that name is being
    ///   dropped), ``LayeredError/ENOSPC``, ``LayeredError/EIO``, ``LayeredError/EACCES``,
    ///   ``LayeredError/panic``.
    @discardableResult
    public func createTable(_ name: String, exclusive: Bool = true) throws(LayeredError) -> Table {
        let uri = try Self.uri(for: name)
        try withSession { session throws(LayeredError) in
            try check(
                layered_create(session, uri, exclusive ? "exclusive=true" : "exclusive=false"))
        }
        return Table(database: self, name: name, uri: uri)
    }

    /// Returns a handle to an existing layered table.
    ///
    /// The handle holds no C resources: each operation on it opens a cursor for its own duration,
    /// so a handle never keeps the table from being dropped.
    /// - Throws: ``LayeredError/EINVAL`` (a malformed name), ``LayeredError/ENOENT`` (no such
    ///   table), ``LayeredError/panic``.
    public func table(named name: String) throws(LayeredError) -> Table {
        _ = try state(ofTable: name)
        return Table(database: self, name: name, uri: try Self.uri(for: name))
    }

    /// Drops a layered table: removes its files and its metadata entry.
    ///
    /// - Parameters:
    ///   - name: the table's name.
    ///   - force: whether a missing table is not an error.
    ///   - waitForCheckpoint: whether to take the checkpoint lock first, which waits for a running
    ///     step-up or checkpoint instead of racing its drain.
    /// - Throws: ``LayeredError/EINVAL`` (a malformed name), ``LayeredError/ENOENT`` (no such
    ///   table and not `force`), ``LayeredError/EBUSY`` (a cursor or a drain holds the table;
    ///   nothing changed; retry later), ``LayeredError/ENOSPC``, ``LayeredError/EIO``,
    ///   ``LayeredError/panic``.
    public func dropTable(_ name: String, force: Bool = false, waitForCheckpoint: Bool = false)
        throws(LayeredError)
    {
        let uri = try Self.uri(for: name)
        let flags =
            (force ? LAYERED_DROP_FORCE : 0) | (waitForCheckpoint ? LAYERED_DROP_CHECKPOINT_WAIT : 0)
        try withSession { session throws(LayeredError) in
            try check(layered_drop(session, uri, flags))
        }
    }

    /// The lifecycle state of a table.
    ///
    /// - Throws: ``LayeredError/EINVAL`` (a malformed name), ``LayeredError/ENOENT`` (no such
    ///   table), ``LayeredError/panic``.
    public func state(ofTable name: String) throws(LayeredError) -> TableState {
        let uri = try Self.uri(for: name)
        return try withSession { session throws(LayeredError) in
            var state: Int32 = 0
            try check(
                layered_table_state(session, uri, &state))
            return TableState(cValue: state)
        }
    }

    /// Every table, in name order, with its state.
    ///
    /// - Throws: ``LayeredError/panic``.
    public func tables() throws(LayeredError) -> [(name: String, state: TableState)] {
        final class Listing {
            var tables: [(name: String, state: TableState)] = []
        }
        let listing = Listing()
        try withSession { session throws(LayeredError) in
            let code = withExtendedLifetime(listing) {
                layered_list_tables(session, { argument, name, state in
                    let listing = Unmanaged<Listing>.fromOpaque(argument!).takeUnretainedValue()
                    listing.tables.append((String(cString: name!), TableState(cValue: state)))
                    return 0
                }, Unmanaged.passUnretained(listing).toOpaque())
            }
            try check(code)
        }
        return listing.tables
    }

    // MARK: Lifecycle: archive, offload, unarchive

    /// Archives a table: it stays readable and writable, and becomes a candidate for
    /// ``offloadTable(_:)``, by hand or by the maintenance task (``Configuration/offloadIdle``).
    ///
    /// The metadata is durable before this returns.  Archiving an archived or offloaded table
    /// does nothing.
    /// - Throws: ``LayeredError/EINVAL`` (a malformed name), ``LayeredError/ENOENT`` (no such
    ///   table), ``LayeredError/inProgress`` (an offload or restore of the table is under way;
    ///   retry), ``LayeredError/ENOSPC``, ``LayeredError/EIO`` (nothing changed),
    ///   ``LayeredError/panic``.
    public func archiveTable(_ name: String) throws(LayeredError) {
        try lifecycle(name) { layered_archive($0, $1) }
    }

    /// Unarchives a table: an archived table becomes active at once; an offloaded one is brought
    /// back from the shared store with all its rows.
    ///
    /// The unarchive and an offload of the same table meet at the table's arbiter, and whichever
    /// reaches it first wins: an offload that has not ruled yet then throws
    /// ``LayeredError/notArchived``; one that has already ruled makes this call throw
    /// ``LayeredError/EAGAIN``, and a retry once the offload has finished restores the table.
    /// The metadata is durable before this returns.  Unarchiving an active table does nothing.
    /// - Throws: ``LayeredError/EINVAL`` (a malformed name), ``LayeredError/ENOENT`` (no such
    ///   table), ``LayeredError/EAGAIN`` (an offload is taking the table; retry),
    ///   ``LayeredError/inProgress`` (another restore of the table is under way),
    ///   ``LayeredError/ENOSPC``, ``LayeredError/EIO``, ``LayeredError/panic``.
    public func unarchiveTable(_ name: String) throws(LayeredError) {
        try lifecycle(name) { layered_unarchive($0, $1) }
    }

    /// Offloads an archived table: closes its handles, removes its local state (its ingest
    /// constituent, which must be empty), keeps its stable data in the shared store and records
    /// it as ``TableState/offloaded``.  ``unarchiveTable(_:)`` brings it back.
    ///
    /// Rows written while the database is a follower sit in the ingest constituent until a
    /// step-up drains them; until then the offload throws ``LayeredError/EBUSY``.  Offloading an
    /// offloaded table does nothing.
    /// - Throws: ``LayeredError/EINVAL`` (a malformed name), ``LayeredError/ENOENT`` (no such
    ///   table), ``LayeredError/notArchived`` (the table is not archived, or an unarchive came
    ///   first), ``LayeredError/inProgress`` (an offload or restore of the table is under way),
    ///   ``LayeredError/EBUSY`` (a cursor or a drain holds the table, or its ingest holds rows not
    ///   yet drained; nothing changed), ``LayeredError/ENOSPC``, ``LayeredError/EIO``,
    ///   ``LayeredError/panic``.
    public func offloadTable(_ name: String) throws(LayeredError) {
        try lifecycle(name) { layered_offload($0, $1) }
    }

    /// Runs one of the C lifecycle calls on a table with a borrowed session.
    private func lifecycle(
        _ name: String, _ call: (OpaquePointer, UnsafePointer<CChar>) -> Int32
    ) throws(LayeredError) {
        let uri = try Self.uri(for: name)
        try withSession { session throws(LayeredError) in
            try check(uri.withCString { call(session, $0) })
        }
    }

    // MARK: Durability and roles

    /// Checkpoints: flushes and syncs every constituent, compacts files that are mostly dead,
    /// writes the metadata, then publishes ``Statistics/databaseSize``.
    ///
    /// Blocks while a step-up runs.
    /// - Throws: ``LayeredError/ENOSPC``, ``LayeredError/EIO`` (nothing is published),
    ///   ``LayeredError/panic``.
    public func checkpoint() throws(LayeredError) {
        try withSession { session throws(LayeredError) in
            try check(layered_checkpoint(session))
        }
    }

    /// Steps up from follower to leader: drains every ingest constituent that holds data into its
    /// stable constituent, using ``Configuration/drainThreads`` threads.
    ///
    /// The blocking C call runs on a thread of its own, never on Swift's cooperative pool.  While
    /// it runs, writes wait and reads continue.  Cancelling the calling task does not stop the
    /// step-up.  Stepping up a leader does nothing and reports an empty drain.
    ///
    /// - Parameter progress: called with the drain's progress, never per row.  While the step-up
    ///   runs, a thread of its own sleeps 20 ms, reads ``statistics()`` (`layered_stats`), calls
    ///   `progress` with how far the drain counters have grown since this method began, and
    ///   repeats: the first call comes 20 ms after the start, calls never overlap, and none comes
    ///   after this method returns.  The counters grow when a drain worker finishes a batch of
    ///   tables (after the batch's syncs), so a step-up of one large table reports 0 rows until
    ///   that table is done.  After a successful step-up `progress` is called once more, on the
    ///   calling task, with the final counts and ``StepUpProgress/isFinished`` set; after a
    ///   failed one it is not.
    /// - Returns: what the drain did.
    /// - Throws: ``LayeredError/panic`` (the drain failed, or the database had panicked),
    ///   ``LayeredError/EINVAL`` (the database is closed).  A worker thread that cannot be
    ///   started is not an error: the other threads do its share.
    public func stepUp(progress: (@Sendable (StepUpProgress) -> Void)? = nil) async throws(LayeredError)
        -> StepUpReport
    {
        let baseline = try statistics()
        let started = ContinuousClock.now
        let poller = progress.map { report in
            ProgressPoller(interval: .milliseconds(20)) { [self] in
                if let now = try? statistics() {
                    report(StepUpProgress(
                        since: baseline, now: now, elapsed: ContinuousClock.now - started,
                        isFinished: false))
                }
            }
        }
        let report: StepUpReport
        do {
            report = try await onDedicatedThread(named: "layered-step-up") {
                [self] () throws(LayeredError) in
                try perform { connection throws(LayeredError) in
                    var stats = layered_drain_stats()
                    try check(
                        layered_step_up(connection, &stats))
                    return StepUpReport(stats)
                }
            }
        } catch {
            poller?.stop()
            throw error
        }
        poller?.stop()
        progress?(StepUpProgress(report: report, elapsed: ContinuousClock.now - started))
        return report
    }

    /// Steps down from leader to follower: writes go to the ingest constituents again.
    ///
    /// Waits for writes in progress, and for a running step-up or checkpoint.  Stepping down a
    /// follower does nothing.
    /// - Throws: ``LayeredError/panic``.
    public func stepDown() throws(LayeredError) {
        try perform { connection throws(LayeredError) in
            try check(layered_step_down(connection))
        }
    }

    /// The database's current role.
    public var role: Role {
        get throws(LayeredError) { try statistics().role }
    }

    /// The database's statistics.  Works after a panic (``Statistics/hasPanicked`` is set).
    ///
    /// - Throws: ``LayeredError/EINVAL`` if the database has been closed.
    public func statistics() throws(LayeredError) -> Statistics {
        try perform { connection throws(LayeredError) in
            var stats = layered_conn_stats()
            try check(layered_stats(connection, &stats))
            return Statistics(stats)
        }
    }

    // MARK: Failpoints

    /// Sets a failpoint: a named point in the C core where tests pause, sleep or inject an error.
    ///
    /// Names used by the core include `drain.before_lock`, `drain.copy`, `drain.before_clear`,
    /// `drop.before_exclusive`, `drop.after_remove`, `fs.write`, `fs.sync` and `meta.write`, and
    /// for the table lifecycle `offload.decided` (the maintenance task, after choosing tables from
    /// its snapshot), `offload.before_arbiter`, `offload.after_arbiter` (an offload that has won
    /// the arbiter), `offload.after_stopping`, `offload.after_remove` and
    /// `unarchive.before_lock`.
    /// Actions: `off`; `pause` (threads reaching it wait until it is set to something else);
    /// `sleep(MS)`; `return(ERR)` with ERR a number or an errno name (`return(EIO)`).  Setting a
    /// failpoint resets its hit count.  Works after a panic.
    /// - Throws: ``LayeredError/EINVAL`` (a bad name or action), ``LayeredError/ENOMEM`` (too
    ///   many failpoints).
    public func setFailpoint(_ name: String, to action: String) throws(LayeredError) {
        guard !name.contains("\0"), !action.contains("\0") else {
            throw Self.nulByte("a failpoint name or action")
        }
        try perform { connection throws(LayeredError) in
            try check(layered_failpoint_set(connection, name, action))
        }
    }

    /// Waits until some thread is paused at, or has passed, a failpoint since it was last set.
    ///
    /// The wait runs on a thread of its own, never on Swift's cooperative pool.
    /// - Parameters:
    ///   - name: the failpoint.
    ///   - timeout: how long to wait at most.  Default 30 seconds.
    /// - Throws: ``LayeredError/ETIMEDOUT``, ``LayeredError/EINVAL`` (an unknown failpoint).
    public func waitForFailpoint(_ name: String, timeout: Duration = .seconds(30))
        async throws(LayeredError)
    {
        guard !name.contains("\0") else { throw Self.nulByte("a failpoint name") }
        let (seconds, attoseconds) = timeout.components
        let milliseconds = max(0, min(Int64(Int32.max), seconds * 1000 + attoseconds / 1_000_000_000_000_000))
        try await onDedicatedThread(named: "layered-failpoint-wait") {
            [self] () throws(LayeredError) in
            try perform { connection throws(LayeredError) in
                try check(layered_failpoint_wait(connection, name, Int32(milliseconds)))
            }
        }
    }

    // MARK: Internals shared with Table and Cursor

    /// "layered:NAME" for a table name.  The C core validates NAME; a NUL byte is rejected here
    /// because C would silently cut the name at it.
    static func uri(for name: String) throws(LayeredError) -> String {
        guard !name.contains("\0") else { throw nulByte("a table name") }
        return "layered:" + name
    }

    /// `EINVAL` for an operation on a closed database or on a handle of one.
    static var closed: LayeredError {
        LayeredError(code: LayeredError.EINVAL.code, message: "the database is closed")
    }

    /// `EINVAL` for a string that C would cut short at a NUL byte.
    static func nulByte(_ what: String) -> LayeredError {
        LayeredError(code: LayeredError.EINVAL.code, message: "\(what) contains a NUL byte")
    }

    /// The message of this database's panic, for ``LayeredError/panic``.
    func panicMessage() -> String { callbacks.panicMessage() }

    /// Throws the error for a C return code, carrying this database's panic message; returns if
    /// the code is 0.  Every `layered_*` call made for this database goes through here.
    func check(_ code: Int32) throws(LayeredError) {
        try Layered.check(code, panicMessage: callbacks.panicMessage())
    }

    /// Runs `body` with the C connection, counted as an operation in progress so that
    /// ``close()`` waits for it.
    /// - Throws: ``LayeredError/EINVAL`` if the database is closed, or what `body` throws.
    func perform<Result>(
        _ body: (OpaquePointer) throws(LayeredError) -> Result
    ) throws(LayeredError) -> Result {
        guard let connection = gate.enter() else { throw Self.closed }
        defer { gate.leave() }
        return try body(connection)
    }

    /// Runs `body`, if the database is open, like ``perform(_:)``; returns `nil` if it is closed.
    func performIfOpen<Result>(
        _ body: (OpaquePointer) throws(LayeredError) -> Result
    ) throws(LayeredError) -> Result? {
        guard let connection = gate.enter() else { return nil }
        defer { gate.leave() }
        return try body(connection)
    }

    /// Runs `body` with a C session borrowed from the pool for the call.
    func withSession<Result>(
        _ body: (OpaquePointer) throws(LayeredError) -> Result
    ) throws(LayeredError) -> Result {
        try perform { connection throws(LayeredError) in
            let session = try takeSession(connection)
            defer { gate.returnSession(session) }
            return try body(session)
        }
    }

    /// Takes a C session from the pool (or opens one) for exclusive use; give it back with
    /// ``returnSession(_:)``.  Call inside ``perform(_:)``.
    func takeSession(_ connection: OpaquePointer) throws(LayeredError) -> OpaquePointer {
        if let session = gate.takeIdleSession() { return session }
        var session: OpaquePointer?
        try check(
            layered_session_open(connection, &session))
        return session!
    }

    /// Gives a session back to the pool.  Call inside ``perform(_:)``.
    func returnSession(_ session: OpaquePointer) {
        gate.returnSession(session)
    }
}

/// The connection pointer, the session pool and the count of operations in progress, under one
/// lock: ``Database/close()`` must not free the connection while any thread still uses it.
private final class ConnectionGate: @unchecked Sendable {
    /// Sessions kept for reuse; more than this many idle ones are closed.
    private static let idleSessionLimit = 32

    private let condition = NSCondition()
    private var connection: OpaquePointer?
    private var idleSessions: [OpaquePointer] = []
    private var operationsInProgress = 0
    init(connection: OpaquePointer) {
        self.connection = connection
    }

    var isOpen: Bool {
        condition.lock()
        defer { condition.unlock() }
        return connection != nil
    }

    func enter() -> OpaquePointer? {
        condition.lock()
        defer { condition.unlock() }
        guard let connection else { return nil }
        operationsInProgress += 1
        return connection
    }

    func leave() {
        condition.lock()
        operationsInProgress -= 1
        if operationsInProgress == 0 { condition.broadcast() }
        condition.unlock()
    }

    func takeIdleSession() -> OpaquePointer? {
        condition.lock()
        defer { condition.unlock() }
        return idleSessions.popLast()
    }

    func returnSession(_ session: OpaquePointer) {
        condition.lock()
        if idleSessions.count < Self.idleSessionLimit {
            idleSessions.append(session)
            condition.unlock()
        } else {
            condition.unlock()
            _ = layered_session_close(session)
        }
    }

    /// Stops new operations, releases paused failpoints, waits for the operations in progress
    /// and returns the connection for `layered_close` (which also closes every session), or
    /// `nil` if it was already closed.
    func close() -> OpaquePointer? {
        condition.lock()
        guard let closing = connection else {
            condition.unlock()
            return nil
        }
        connection = nil
        idleSessions.removeAll()
        condition.unlock()
        // Threads paused at a failpoint -- set by setFailpoint, the configuration or
        // LAYERED_FAILPOINTS -- would never finish their operations: release them all first.
        // Safe while operations run: failpoints are thread-safe and the connection stays alive
        // until the wait below is over.
        _ = layered_failpoint_release_all(closing)
        condition.lock()
        while operationsInProgress > 0 { condition.wait() }
        condition.unlock()
        return closing
    }
}

/// What the C core reports through its callbacks: the panic message and the library's
/// messages.  Passed to C as a retained pointer that outlives the connection.
private final class CallbackBox: Sendable {
    private let logger: Logger?
    private let messageHandler: (@Sendable (String) -> Void)?
    private let panic = Mutex<String?>(nil)

    init(home: String, logger: Logger?, messageHandler: (@Sendable (String) -> Void)?) {
        self.logger = logger.map { logger in
            var logger = logger
            logger[metadataKey: "layered.home"] = .string(home)
            return logger
        }
        self.messageHandler = messageHandler
    }

    /// A message of the C core, to the logger and the handler.  The C core calls this with its
    /// locks held, from any thread: neither may call into the library (the documentation of
    /// ``Configuration/logger`` says so), and `Logger` takes no lock of ours.
    func forward(_ message: String) {
        logger?.log(level: LibraryMessage.level(of: message), "\(message)")
        messageHandler?(message)
    }

    /// Keeps the first panic's message and logs it at `critical`.  The C core calls this once,
    /// with its locks held.
    func recordPanic(_ message: String) {
        let isFirst = panic.withLock { recorded in
            guard recorded == nil else { return false }
            recorded = message
            return true
        }
        if isFirst {
            logger?.critical("panic: \(message)")
        }
    }

    /// The recorded panic message.  The C core marks the connection panicked a moment before it
    /// calls the handler, so a thread that sees `LAYERED_PANIC` first waits briefly for it.
    func panicMessage() -> String {
        for _ in 0..<200 {
            if let message = panic.withLock({ $0 }) { return message }
            usleep(500)
        }
        return "the database panicked"
    }
}

/// The panic handler installed in every connection: records the message and returns, so the
/// C core returns `LAYERED_PANIC` instead of aborting the process.
private func recordPanic(
    _ argument: UnsafeMutableRawPointer?, _ error: Int32, _ message: UnsafePointer<CChar>?
) {
    let box = Unmanaged<CallbackBox>.fromOpaque(argument!).takeUnretainedValue()
    let text = message.map { String(cString: $0) } ?? ""
    box.recordPanic(text.isEmpty ? String(cString: layered_strerror(error)) : text)
}

private func forwardMessage(_ argument: UnsafeMutableRawPointer?, _ message: UnsafePointer<CChar>?) {
    let box = Unmanaged<CallbackBox>.fromOpaque(argument!).takeUnretainedValue()
    box.forward(message.map { String(cString: $0) } ?? "")
}

private func withOptionalCString<Result>(
    _ string: String?, _ body: (UnsafePointer<CChar>?) -> Result
) -> Result {
    guard let string else { return body(nil) }
    return string.withCString { body($0) }
}

/// Calls a function at an interval on a thread of its own until stopped; ``stop()`` returns once
/// the last call has finished, so no call happens after it.
private final class ProgressPoller: Sendable {
    private let stopped = Mutex(false)
    private let finished = DispatchSemaphore(value: 0)

    init(interval: Duration, _ tick: @escaping @Sendable () -> Void) {
        let microseconds = useconds_t(interval.components.seconds * 1_000_000
            + interval.components.attoseconds / 1_000_000_000_000)
        let thread = Thread { [self] in
            while true {
                usleep(microseconds)
                if stopped.withLock({ $0 }) { break }
                tick()
            }
            finished.signal()
        }
        thread.name = "layered-step-up-progress"
        thread.start()
    }

    func stop() {
        stopped.withLock { $0 = true }
        finished.wait()
    }
}

/// Runs a blocking call on a new thread and resumes the caller when it returns, so that Swift's
/// cooperative pool (one thread per core) is never blocked by a long C call.
func onDedicatedThread<Result: Sendable>(
    named name: String, _ body: @escaping @Sendable () throws(LayeredError) -> Result
) async throws(LayeredError) -> Result {
    let result = await withCheckedContinuation {
        (continuation: CheckedContinuation<Swift.Result<Result, LayeredError>, Never>) in
        let thread = Thread {
            continuation.resume(returning: Swift.Result { () throws(LayeredError) in try body() })
        }
        thread.name = name
        thread.start()
    }
    return try result.get()
}
