internal import CLayered
public import Logging

/// The role of a database: which constituent of each layered table receives writes.
public enum Role: Sendable, Hashable {
    /// Writes go to the ingest constituents in the home directory (`LAYERED_ROLE_FOLLOWER`).
    case follower
    /// Writes go to the stable constituents in the shared directory (`LAYERED_ROLE_LEADER`).
    case leader

    var cValue: Int32 {
        switch self {
        case .follower: LAYERED_ROLE_FOLLOWER
        case .leader: LAYERED_ROLE_LEADER
        }
    }

    init(cValue: Int32) {
        self = cValue == LAYERED_ROLE_LEADER ? .leader : .follower
    }
}

/// How a step-up's drain and a concurrent forced drop of the same table meet.
public enum DrainPolicy: Sendable, Hashable, CaseIterable {
    /// A table dropped while it is being drained is skipped and counted as "already gone"
    /// (`LAYERED_DRAIN_SKIP_MISSING`).  The default.
    case skipMissing
    /// The drain holds the table's read lock across copy and clear; a drop meanwhile throws
    /// ``LayeredError/EBUSY`` (`LAYERED_DRAIN_READ_LOCK`).
    case readLock
    /// A drop removes a still-queued drain item, or throws ``LayeredError/EBUSY`` while the
    /// table is being drained (`LAYERED_DRAIN_QUEUE_SCAN`).
    case queueScan
    /// No protection: a drop racing the drain fails the step-up, which panics the database
    /// (`LAYERED_DRAIN_UNPROTECTED`).  Kept so tests can prove they detect the race.
    case unprotected

    var cValue: Int32 {
        switch self {
        case .skipMissing: LAYERED_DRAIN_SKIP_MISSING
        case .readLock: LAYERED_DRAIN_READ_LOCK
        case .queueScan: LAYERED_DRAIN_QUEUE_SCAN
        case .unprotected: LAYERED_DRAIN_UNPROTECTED
        }
    }
}

/// The durability of a single write (a put or a remove).
public enum SyncLevel: Sendable, Hashable, CaseIterable {
    /// Writes are buffered in the process; durable at checkpoint or close (`LAYERED_SYNC_NONE`).
    case buffered
    /// Each write reaches the operating system before it returns, so it survives the process
    /// being killed, not a machine crash (`LAYERED_SYNC_WRITE`).  The default.
    case write
    /// Each write is synced to stable storage before it returns (`LAYERED_SYNC_FSYNC`).
    case fsync

    var cValue: Int32 {
        switch self {
        case .buffered: LAYERED_SYNC_NONE
        case .write: LAYERED_SYNC_WRITE
        case .fsync: LAYERED_SYNC_FSYNC
        }
    }
}

/// How to open a ``Database``.
///
/// Every property has the C library's default, so `Configuration()` opens a follower that creates
/// its home directory if needed.
public struct Configuration: Sendable {
    /// The role the database opens in.  Default ``Role/follower``.
    public var role: Role
    /// The directory of the stable constituents (the shared store).  `nil`: `<home>/shared`.
    public var sharedDirectory: String?
    /// Threads that drain at step-up, including the calling one; 1 to 64.  Default 2.
    public var drainThreads: Int
    /// How a step-up's drain and a concurrent forced drop meet.  Default ``DrainPolicy/skipMissing``.
    public var drainPolicy: DrainPolicy
    /// The durability of each write.  Default ``SyncLevel/write``.
    public var syncLevel: SyncLevel
    /// Failpoints to set at open, failpoint name to action (see ``Database/setFailpoint(_:to:)``).
    /// The `LAYERED_FAILPOINTS` environment variable is applied after these.
    public var failpoints: [String: String]
    /// Whether to create the home (and shared) directory if missing; its parent must exist.
    /// With `false`, a missing home throws ``LayeredError/ENOENT``.  Default `true`.
    public var createIfMissing: Bool
    /// Receives the library's messages (see <doc:LoggingAndMetrics> for their levels) and a panic's
    /// message at `critical`, with the metadata `layered.home`.
    ///
    /// With neither a logger nor a ``messageHandler``, the messages go to standard error.
    public var logger: Logger?
    /// Receives the library's informational and error messages, one line each, from any thread,
    /// as they are, without a level.  Called as well as ``logger`` when both are set.
    /// `nil` for both: the messages go to standard error.
    public var messageHandler: (@Sendable (String) -> Void)?
    /// Auto-offload: a maintenance thread offloads tables that have been archived for at least
    /// this long with no cursor open (see ``Database/offloadTable(_:)``).  `nil` (the default): no
    /// maintenance thread, tables are offloaded only explicitly.
    ///
    /// Kept in whole milliseconds, rounded up, at least 1 ms; a negative duration or one over
    /// `Int32.max` milliseconds makes opening the database throw ``LayeredError/EINVAL``.
    public var offloadIdle: Duration?
    /// How often the maintenance thread looks for tables to offload; used only with
    /// ``offloadIdle``.  Default 1 second.
    ///
    /// Kept in whole milliseconds, rounded up; zero, a negative duration or one over `Int32.max`
    /// milliseconds makes opening the database throw ``LayeredError/EINVAL``.
    public var maintenanceInterval: Duration

    /// Creates a configuration; every parameter defaults to the C library's default, and no
    /// logger.
    public init(
        role: Role = .follower,
        sharedDirectory: String? = nil,
        drainThreads: Int = 2,
        drainPolicy: DrainPolicy = .skipMissing,
        syncLevel: SyncLevel = .write,
        failpoints: [String: String] = [:],
        createIfMissing: Bool = true,
        logger: Logger? = nil,
        messageHandler: (@Sendable (String) -> Void)? = nil,
        offloadIdle: Duration? = nil,
        maintenanceInterval: Duration = .seconds(1)
    ) {
        self.role = role
        self.sharedDirectory = sharedDirectory
        self.drainThreads = drainThreads
        self.drainPolicy = drainPolicy
        self.syncLevel = syncLevel
        self.failpoints = failpoints
        self.createIfMissing = createIfMissing
        self.logger = logger
        self.messageHandler = messageHandler
        self.offloadIdle = offloadIdle
        self.maintenanceInterval = maintenanceInterval
    }

    /// The C configuration's `offload_idle_ms` (0: off), or `nil` when ``offloadIdle`` is out of
    /// range.
    var offloadIdleMilliseconds: Int32? {
        guard let offloadIdle else { return 0 }
        return Self.milliseconds(offloadIdle).map { max($0, 1) }
    }

    /// The C configuration's `maintenance_interval_ms`, or `nil` when ``maintenanceInterval`` is
    /// out of range (C would read 0 as "the default", so zero is refused here).
    var maintenanceIntervalMilliseconds: Int32? {
        Self.milliseconds(maintenanceInterval).flatMap { $0 > 0 ? $0 : nil }
    }

    /// A non-negative duration in whole milliseconds, rounded up, or `nil` if it is negative or
    /// does not fit an `Int32`.
    private static func milliseconds(_ duration: Duration) -> Int32? {
        let (seconds, attoseconds) = duration.components
        guard seconds >= 0, attoseconds >= 0 else { return nil }
        let attosecondsPerMillisecond: Int64 = 1_000_000_000_000_000
        let (wholeSeconds, overflow) = seconds.multipliedReportingOverflow(by: 1000)
        guard !overflow else { return nil }
        let fraction = (attoseconds + attosecondsPerMillisecond - 1) / attosecondsPerMillisecond
        return Int32(exactly: wholeSeconds + fraction)
    }

    /// The failpoints in the C configuration's "name=action;name=action" form, or `nil` when a
    /// name or action contains a separator (the C parser could not read it back).
    var failpointList: String? {
        var items: [String] = []
        for (name, action) in failpoints.sorted(by: { $0.key < $1.key }) {
            if name.contains(where: { $0 == "=" || $0 == ";" || $0 == "\0" })
                || action.contains(where: { $0 == ";" || $0 == "\0" })
            {
                return nil
            }
            items.append("\(name)=\(action)")
        }
        return items.joined(separator: ";")
    }
}
