internal import CLayered

/// A snapshot of a database's statistics, from ``Database/statistics()``.
///
/// Counters are cumulative since the database was opened.
public struct Statistics: Sendable, Hashable {
    /// The sum of the stable constituents' checkpoint sizes plus a fixed 1 MiB buffer, as of the
    /// last successful checkpoint; never below the buffer.
    public var databaseSize: UInt64
    /// The sum of the stable constituent sizes that ``databaseSize`` counts.
    public var stableCheckpointBytes: UInt64
    /// The current role.
    public var role: Role
    /// Whether the database has panicked.
    public var hasPanicked: Bool
    /// The highest log sequence number handed out so far.
    public var lsn: UInt64
    /// Tables that exist now.
    public var tableCount: UInt64
    /// Successful table creations.
    public var tablesCreated: UInt64
    /// Drops that removed a table.
    public var tablesDropped: UInt64
    /// Drops that threw ``LayeredError/EBUSY``.
    public var busyDrops: UInt64
    /// Successful checkpoints.
    public var checkpoints: UInt64
    /// Files compacted by checkpoints.
    public var compactions: UInt64
    /// Successful step-ups.
    public var stepUps: UInt64
    /// Successful step-downs.
    public var stepDowns: UInt64
    /// Tables copied by step-up drains.
    public var tablesDrained: UInt64
    /// Tables a drain skipped because they were dropped meanwhile.
    public var tablesSkipped: UInt64
    /// Rows copied by drains.
    public var rowsDrained: UInt64
    /// Key and value bytes copied by drains.
    public var bytesDrained: UInt64
    /// Successful puts.
    public var puts: UInt64
    /// Successful removes.
    public var removals: UInt64
    /// Batches committed by ``Database/write(_:)`` (empty ones not counted).
    public var batches: UInt64
    /// Puts and removes in the batches committed.
    public var batchOps: UInt64
    /// Tables archived (archiving an archived or offloaded table again is not counted).
    public var archives: UInt64
    /// Tables unarchived, restores from the shared store included.
    public var unarchives: UInt64
    /// Offloaded tables brought back from the shared store by an unarchive.
    public var restores: UInt64
    /// Tables offloaded, explicitly or by the maintenance task.
    public var offloads: UInt64
    /// Offloads by the maintenance task that the arbiter refused because the table had been
    /// unarchived after the task chose it (``LayeredError/notArchived``).
    public var offloadsRefused: UInt64

    /// The fixed buffer included in ``databaseSize`` (`LAYERED_CHECKPOINT_SIZE_BUFFER`).
    public static let checkpointSizeBuffer = UInt64(LAYERED_CHECKPOINT_SIZE_BUFFER)

    init(_ stats: layered_conn_stats) {
        databaseSize = stats.database_size
        stableCheckpointBytes = stats.stable_checkpoint_bytes
        role = Role(cValue: stats.role)
        hasPanicked = stats.panicked != 0
        lsn = stats.lsn
        tableCount = stats.tables
        tablesCreated = stats.creates
        tablesDropped = stats.drops
        busyDrops = stats.drop_busy
        checkpoints = stats.checkpoints
        compactions = stats.compactions
        stepUps = stats.step_ups
        stepDowns = stats.step_downs
        tablesDrained = stats.tables_drained
        tablesSkipped = stats.tables_skipped
        rowsDrained = stats.rows_drained
        bytesDrained = stats.bytes_drained
        puts = stats.inserts
        removals = stats.removes
        batches = stats.batches
        batchOps = stats.batch_ops
        archives = stats.archives
        unarchives = stats.unarchives
        restores = stats.restores
        offloads = stats.offloads
        offloadsRefused = stats.offloads_refused
    }
}

/// What one step-up did, from ``Database/stepUp(progress:)``.
public struct StepUpReport: Sendable, Hashable {
    /// Tables whose ingest constituent held data.
    public var tablesQueued: UInt64
    /// Tables copied into their stable constituent and cleared.
    public var tablesDrained: UInt64
    /// Tables skipped because they were dropped meanwhile.
    public var tablesSkipped: UInt64
    /// Rows (including removals) copied.
    public var rows: UInt64
    /// Key and value bytes copied.
    public var bytes: UInt64
    /// Drops that threw ``LayeredError/EBUSY`` while the step-up ran.
    public var busyDrops: UInt64
    /// The wall time of the step-up.
    public var duration: Duration

    init(_ stats: layered_drain_stats) {
        tablesQueued = stats.tables_queued
        tablesDrained = stats.tables_drained
        tablesSkipped = stats.tables_skipped
        rows = stats.rows
        bytes = stats.bytes
        busyDrops = stats.busy_drops
        duration = .nanoseconds(Int64(clamping: stats.elapsed_ns))
    }
}

/// How far a running step-up has got, reported to the `progress` callback of
/// ``Database/stepUp(progress:)``.
///
/// The counts are what the database's statistics show as drained since the step-up started;
/// the C core publishes them as its drain completes, so until then they may stay at zero while
/// ``elapsed`` grows.
public struct StepUpProgress: Sendable, Hashable {
    /// Tables drained so far.
    public var tablesDrained: UInt64
    /// Tables skipped so far.
    public var tablesSkipped: UInt64
    /// Rows copied so far.
    public var rows: UInt64
    /// Bytes copied so far.
    public var bytes: UInt64
    /// Time since the step-up started.
    public var elapsed: Duration
    /// Whether this is the final report: the step-up has finished.
    public var isFinished: Bool

    init(since baseline: Statistics, now: Statistics, elapsed: Duration, isFinished: Bool) {
        tablesDrained = now.tablesDrained &- baseline.tablesDrained
        tablesSkipped = now.tablesSkipped &- baseline.tablesSkipped
        rows = now.rowsDrained &- baseline.rowsDrained
        bytes = now.bytesDrained &- baseline.bytesDrained
        self.elapsed = elapsed
        self.isFinished = isFinished
    }

    init(report: StepUpReport, elapsed: Duration) {
        tablesDrained = report.tablesDrained
        tablesSkipped = report.tablesSkipped
        rows = report.rows
        bytes = report.bytes
        self.elapsed = elapsed
        isFinished = true
    }
}

/// The lifecycle state of a layered table.
public enum TableState: Sendable, Hashable {
    /// In use: readable and writable (`LAYERED_TABLE_ACTIVE`).
    case active
    /// Archived: still readable and writable, and a candidate for offload
    /// (`LAYERED_TABLE_ARCHIVED`).
    case archived
    /// Offloaded: its local state is gone; its stable data is kept in the shared store and
    /// ``Database/unarchiveTable(_:)`` brings it back (`LAYERED_TABLE_OFFLOADED`).  It cannot be read
    /// or written until then.
    case offloaded
    /// Being offloaded or dropped; irreversible (`LAYERED_TABLE_STOPPING`).
    case stopping
    /// Dropped (`LAYERED_TABLE_DROPPED`).
    case dropped
    /// A state this version of the Swift layer has no name for: its C value.
    case unknown(Int32)

    init(cValue: Int32) {
        switch cValue {
        case LAYERED_TABLE_ACTIVE: self = .active
        case LAYERED_TABLE_ARCHIVED: self = .archived
        case LAYERED_TABLE_OFFLOADED: self = .offloaded
        case LAYERED_TABLE_STOPPING: self = .stopping
        case LAYERED_TABLE_DROPPED: self = .dropped
        default: self = .unknown(cValue)
        }
    }
}
