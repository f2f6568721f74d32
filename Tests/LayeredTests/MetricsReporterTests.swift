import Foundation
import MetricsTestKit
import Testing
@testable import Layered

/// The reporter publishes to a factory passed to it, never to the process-wide bootstrap, so
/// these tests run in parallel with each other and with anything else.
@Suite struct MetricsReporterTests {
    @Test func countersGrowByWhatTheStatisticsGrew() async throws {
        try await withDatabase { database, _ in
            let metrics = TestMetrics()
            let reporter = database.makeMetricsReporter(dimensions: [("db", "orders")], factory: metrics)
            let table = try database.createTable("t")
            try table.put("a", "1")
            try table.put("b", "2")
            try reporter.report()
            let puts = try metrics.expectCounter("layered_puts_total", [("db", "orders")])
            #expect(puts.totalValue == 2)
            #expect(try metrics.expectCounter("layered_tables_created_total", [("db", "orders")]).totalValue == 1)

            // A report with nothing new adds nothing.
            try reporter.report()
            #expect(puts.totalValue == 2)

            try table.put("c", "3")
            try table.remove("a")
            try reporter.report()
            #expect(puts.totalValue == 3)
            #expect(try metrics.expectCounter("layered_removals_total", [("db", "orders")]).totalValue == 1)
            #expect(try metrics.expectCounter("layered_step_ups_total", [("db", "orders")]).totalValue == 0)
        }
    }

    @Test func gaugesShowTheCurrentValues() async throws {
        try await withDatabase { database, _ in
            let metrics = TestMetrics()
            let reporter = MetricsReporter(database: database, prefix: "kv", factory: metrics)
            try database.createTable("a").put("k", "v")
            try database.createTable("b")
            try reporter.report()
            #expect(try metrics.expectGauge("kv_tables").lastValue == 2)
            #expect(try metrics.expectGauge("kv_leader").lastValue == 0)
            #expect(try metrics.expectGauge("kv_panicked").lastValue == 0)

            _ = try await database.stepUp()
            try database.dropTable("b")
            try database.checkpoint()
            try reporter.report()
            let statistics = try database.statistics()
            #expect(try metrics.expectGauge("kv_tables").lastValue == 1)
            #expect(try metrics.expectGauge("kv_leader").lastValue == 1)
            #expect(
                try metrics.expectGauge("kv_database_size_bytes").lastValue
                    == Double(statistics.databaseSize))
            #expect(try metrics.expectGauge("kv_lsn").lastValue == Double(statistics.lsn))
            #expect(try metrics.expectCounter("kv_step_ups_total").totalValue == 1)
            #expect(try metrics.expectCounter("kv_tables_dropped_total").totalValue == 1)
            #expect(try metrics.expectCounter("kv_rows_drained_total").totalValue == 1)
        }
    }

    /// Every statistic is published under a label of its own.
    @Test func everyStatisticHasAMetric() async throws {
        try await withDatabase { database, _ in
            let metrics = TestMetrics()
            try database.makeMetricsReporter(factory: metrics).report()
            #expect(metrics.counters.count == MetricsReporter.counterSources.count)
            #expect(metrics.recorders.count == MetricsReporter.gaugeSources.count)
            let labels = MetricsReporter.counterSources.map(\.0) + MetricsReporter.gaugeSources.map(\.0)
            #expect(Set(labels).count == labels.count)
            // Every Statistics property but the role and the panic flag (gauges of their own)
            // is a metric: 26 properties, 24 numbers plus those two.
            #expect(labels.count == Mirror(reflecting: try database.statistics()).children.count)
        }
    }

    @Test func runReportsUntilCancelledOrClosed() async throws {
        try await withTemporaryDirectory { directory in
            let database = try Database(url: directory.appendingPathComponent("home"))
            let metrics = TestMetrics()
            let reporter = database.makeMetricsReporter(factory: metrics)
            try database.createTable("t").put("k", "v")
            let running = Task { await reporter.run(every: .milliseconds(5)) }
            // The first report is made at once; wait for it without timing anything.
            while (try? metrics.expectCounter("layered_puts_total"))?.totalValue != 1 {
                await Task.yield()
            }
            try database.close()
            // A closed database ends the loop by itself.
            await running.value
            #expect(throws: LayeredError.EINVAL) { try reporter.report() }

            let reopened = try Database(url: directory.appendingPathComponent("home"))
            let cancelled = Task { await reopened.makeMetricsReporter(factory: metrics).run() }
            cancelled.cancel()
            await cancelled.value
            try reopened.close()
        }
    }
}
