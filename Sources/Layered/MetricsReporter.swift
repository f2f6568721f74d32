public import CoreMetrics
internal import Synchronization

/// Publishes a database's ``Statistics`` as swift-metrics counters and gauges.
///
/// Opt-in: nothing is published until ``report()`` is called, by the caller or by ``run(every:)``
/// in a task of the caller's.  The metrics go to the factory given at creation, by default
/// `MetricsSystem.factory`, the one a backend bootstrapped; a test can pass a factory of its own
/// and leave the process-wide bootstrap alone.
///
/// ```swift
/// let reporter = MetricsReporter(database: database, dimensions: [("db", "orders")])
/// let reporting = Task { await reporter.run(every: .seconds(10)) }
/// …
/// reporting.cancel()
/// ```
///
/// Cumulative statistics become counters, incremented by how much each grew since the previous
/// report (the first report adds everything counted since the database was opened); the others
/// become gauges.  Labels are the prefix, an underscore and the name:
///
/// | metric | kind | from |
/// | --- | --- | --- |
/// | `database_size_bytes` | gauge | ``Statistics/databaseSize`` |
/// | `stable_checkpoint_bytes` | gauge | ``Statistics/stableCheckpointBytes`` |
/// | `tables` | gauge | ``Statistics/tableCount`` |
/// | `lsn` | gauge | ``Statistics/lsn`` |
/// | `leader` | gauge | 1 while the role is ``Role/leader``, else 0 |
/// | `panicked` | gauge | 1 once ``Statistics/hasPanicked``, else 0 |
/// | `tables_created_total` … `offloads_refused_total` | counter | every other property of ``Statistics`` |
public final class MetricsReporter: Sendable {
    /// The database whose statistics are published.
    public let database: Database

    private let gauges: [(Gauge, @Sendable (Statistics) -> UInt64)]
    private let counters: [(Counter, @Sendable (Statistics) -> UInt64)]
    /// The statistics of the previous report.  Held across a whole report, so that two reports
    /// running at once do not both add the same growth; nothing that runs under it takes a lock
    /// of Layered's other than the connection gate's, held only inside ``Database/statistics()``.
    private let previous = Mutex<Statistics?>(nil)

    /// The label of each counter, without the prefix, and the statistic it follows.
    static let counterSources: [(String, @Sendable (Statistics) -> UInt64)] = [
        ("tables_created_total", \.tablesCreated),
        ("tables_dropped_total", \.tablesDropped),
        ("busy_drops_total", \.busyDrops),
        ("checkpoints_total", \.checkpoints),
        ("compactions_total", \.compactions),
        ("step_ups_total", \.stepUps),
        ("step_downs_total", \.stepDowns),
        ("tables_drained_total", \.tablesDrained),
        ("tables_skipped_total", \.tablesSkipped),
        ("rows_drained_total", \.rowsDrained),
        ("bytes_drained_total", \.bytesDrained),
        ("puts_total", \.puts),
        ("removals_total", \.removals),
        ("batches_total", \.batches),
        ("batch_ops_total", \.batchOps),
        ("archives_total", \.archives),
        ("unarchives_total", \.unarchives),
        ("restores_total", \.restores),
        ("offloads_total", \.offloads),
        ("offloads_refused_total", \.offloadsRefused),
    ]

    /// The label of each gauge, without the prefix, and the statistic it shows.
    static let gaugeSources: [(String, @Sendable (Statistics) -> UInt64)] = [
        ("database_size_bytes", \.databaseSize),
        ("stable_checkpoint_bytes", \.stableCheckpointBytes),
        ("tables", \.tableCount),
        ("lsn", \.lsn),
        ("leader", { $0.role == .leader ? 1 : 0 }),
        ("panicked", { $0.hasPanicked ? 1 : 0 }),
    ]

    /// Creates a reporter; it publishes nothing until ``report()`` or ``run(every:)``.
    ///
    /// - Parameters:
    ///   - database: the database to report on.
    ///   - prefix: the start of every label.  Default `layered`.
    ///   - dimensions: dimensions attached to every metric, such as the database's name.
    ///   - factory: where the metrics go.  Default: the factory of `MetricsSystem.bootstrap`.
    public init(
        database: Database, prefix: String = "layered", dimensions: [(String, String)] = [],
        factory: any MetricsFactory = MetricsSystem.factory
    ) {
        self.database = database
        gauges = Self.gaugeSources.map { name, source in
            (Gauge(label: "\(prefix)_\(name)", dimensions: dimensions, factory: factory), source)
        }
        counters = Self.counterSources.map { name, source in
            (Counter(label: "\(prefix)_\(name)", dimensions: dimensions, factory: factory), source)
        }
    }

    /// Reads the database's statistics once and publishes them.
    ///
    /// - Throws: ``LayeredError/EINVAL`` if the database is closed; nothing is published then.
    public func report() throws(LayeredError) {
        try previous.withLock { (previous: inout Statistics?) throws(LayeredError) in
            let now = try database.statistics()
            for (gauge, source) in gauges {
                gauge.record(Int64(clamping: source(now)))
            }
            for (counter, source) in counters {
                let before = previous.map(source) ?? 0
                let value = source(now)
                // The C counters never go down; a smaller value would be a new connection's.
                if value > before {
                    counter.increment(by: Int64(clamping: value - before))
                }
            }
            previous = now
        }
    }

    /// Reports at an interval until the calling task is cancelled or the database is closed.
    ///
    /// The first report is made at once.  Run it in a task of its own and cancel that task to
    /// stop.
    /// - Parameter interval: the time between reports.  Default 10 seconds.
    public func run(every interval: Duration = .seconds(10)) async {
        while !Task.isCancelled {
            do {
                try report()
            } catch {
                return
            }
            try? await Task.sleep(for: interval)
        }
    }
}

extension Database {
    /// Makes a reporter that publishes this database's statistics as swift-metrics counters and
    /// gauges; see ``MetricsReporter``.
    public func makeMetricsReporter(
        prefix: String = "layered", dimensions: [(String, String)] = [],
        factory: any MetricsFactory = MetricsSystem.factory
    ) -> MetricsReporter {
        MetricsReporter(database: self, prefix: prefix, dimensions: dimensions, factory: factory)
    }
}
