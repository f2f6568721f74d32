import Foundation
import Testing
@testable import Layered

/// Archive, offload and unarchive, and the race between the auto-offload task and an unarchive,
/// forced in both orderings with paused failpoints (DESIGN section 7).
@Suite struct LifecycleTests {
    static let rowCount = 500

    // MARK: Round trips

    @Test func archiveOffloadUnarchiveRestoresEveryRow() async throws {
        try await withDatabase(Configuration(role: .leader)) { database, home in
            let table = try database.createTable("t")
            try fill(table)

            try table.archive()
            try table.archive()
            #expect(try table.state == .archived)
            try expectEveryRow(of: table)

            try table.offload()
            try table.offload()
            #expect(try table.state == .offloaded)
            #expect(try database.tables().map(\.name) == ["t"])
            #expect(try database.tables().map(\.state) == [.offloaded])
            #expect(!FileManager.default.fileExists(atPath: home.appendingPathComponent("t.ingest").path))
            #expect(FileManager.default.fileExists(
                atPath: home.appendingPathComponent("shared/t.stable").path))
            #expect(throws: LayeredError.ENOENT) { try table.get(key(0)) }
            #expect(throws: LayeredError.ENOENT) { try table.put("k", "v") }
            #expect(throws: LayeredError.ENOENT) { try table.makeCursor() }

            try table.unarchive()
            #expect(try table.state == .active)
            try expectEveryRow(of: table)
            try table.put("after", "restore")
            #expect(try table.get("after", as: String.self) == "restore")

            let statistics = try database.statistics()
            #expect(statistics.archives == 1)
            #expect(statistics.offloads == 1)
            #expect(statistics.unarchives == 1)
            #expect(statistics.restores == 1)
            #expect(statistics.offloadsRefused == 0)
        }
    }

    @Test func unarchivingAnArchivedTableMakesItActive() async throws {
        try await withDatabase(Configuration(role: .leader)) { database, _ in
            let table = try database.createTable("t")
            try fill(table)
            try database.archiveTable("t")
            try database.unarchiveTable("t")
            #expect(try table.state == .active)
            try expectEveryRow(of: table)
            // Unarchiving an active table does nothing.
            try database.unarchiveTable("t")
            let statistics = try database.statistics()
            #expect(statistics.archives == 1)
            #expect(statistics.unarchives == 1)
            #expect(statistics.restores == 0)
        }
    }

    @Test func offloadedStateSurvivesReopening() async throws {
        try await withTemporaryDirectory { directory in
            let home = directory.appendingPathComponent("home")
            var database = try Database(url: home, configuration: Configuration(role: .leader))
            try fill(try database.createTable("t"))
            try database.archiveTable("t")
            try database.offloadTable("t")
            try database.close()

            database = try Database(url: home, configuration: Configuration(role: .leader))
            defer { try? database.close() }
            #expect(try database.state(ofTable: "t") == .offloaded)
            try database.unarchiveTable("t")
            try expectEveryRow(of: try database.table(named: "t"))
            #expect(try database.statistics().restores == 1)
        }
    }

    @Test func followerRowsMustBeDrainedBeforeOffload() async throws {
        try await withDatabase { database, _ in
            let table = try database.createTable("t")
            try fill(table)
            try table.archive()
            #expect(throws: LayeredError.EBUSY) { try table.offload() }
            #expect(try table.state == .archived)

            _ = try await database.stepUp()
            try table.offload()
            #expect(try table.state == .offloaded)
            try table.unarchive()
            try expectEveryRow(of: table)
        }
    }

    @Test func offloadedTableCanBeDropped() async throws {
        try await withDatabase(Configuration(role: .leader)) { database, home in
            let table = try database.createTable("t")
            try fill(table)
            try table.archive()
            try table.offload()
            try table.drop()
            #expect(throws: LayeredError.ENOENT) { try table.state }
            #expect(!FileManager.default.fileExists(
                atPath: home.appendingPathComponent("shared/t.stable").path))
        }
    }

    // MARK: Error paths

    @Test func missingTablesAreENOENTAndMalformedNamesEINVAL() async throws {
        try await withDatabase { database, _ in
            #expect(throws: LayeredError.ENOENT) { try database.archiveTable("none") }
            #expect(throws: LayeredError.ENOENT) { try database.unarchiveTable("none") }
            #expect(throws: LayeredError.ENOENT) { try database.offloadTable("none") }
            for name in ["", ".hidden", "a/b", "a\0b"] {
                #expect(throws: LayeredError.EINVAL) { try database.archiveTable(name) }
                #expect(throws: LayeredError.EINVAL) { try database.unarchiveTable(name) }
                #expect(throws: LayeredError.EINVAL) { try database.offloadTable(name) }
            }
            let table = try database.createTable("t")
            try table.drop()
            #expect(throws: LayeredError.ENOENT) { try table.archive() }
            #expect(throws: LayeredError.ENOENT) { try table.offload() }
        }
    }

    @Test func offloadOfAnActiveTableIsNotArchived() async throws {
        try await withDatabase(Configuration(role: .leader)) { database, _ in
            let table = try database.createTable("t")
            #expect(throws: LayeredError.notArchived) { try table.offload() }
            try table.archive()
            try table.unarchive()
            #expect(throws: LayeredError.notArchived) { try table.offload() }
            #expect(try table.state == .active)
        }
    }

    @Test func openCursorMakesOffloadEBUSY() async throws {
        try await withDatabase(Configuration(role: .leader)) { database, _ in
            let table = try database.createTable("t")
            try fill(table)
            try table.archive()
            let cursor = try table.makeCursor()
            #expect(try cursor.next())
            #expect(throws: LayeredError.EBUSY) { try table.offload() }
            #expect(try table.state == .archived)
            #expect(try cursor.next())
            try cursor.close()

            try table.offload()
            #expect(try table.state == .offloaded)
            try table.unarchive()
            try expectEveryRow(of: table)
        }
    }

    // MARK: The arbiter, both orderings

    /// The maintenance task chose the table from its snapshot and is paused; the unarchive
    /// wins, the task's stale offload is refused, and nothing is poisoned: archived again, the
    /// table is offloaded normally.
    @Test func unarchiveWinsAgainstAPausedAutoOffload() async throws {
        let configuration = Configuration(
            role: .leader, offloadIdle: .milliseconds(1), maintenanceInterval: .milliseconds(5))
        try await withDatabase(configuration) { database, _ in
            let table = try database.createTable("t")
            try fill(table)

            try database.setFailpoint("offload.decided", to: "pause")
            try table.archive()
            try await database.waitForFailpoint("offload.decided")
            try table.unarchive()
            try database.setFailpoint("offload.decided", to: "off")

            try await waitUntil("the stale offload is refused") {
                try database.statistics().offloadsRefused > 0
            }
            #expect(try database.statistics().offloads == 0)
            #expect(try table.state == .active)
            try expectEveryRow(of: table)
            try table.put("still", "writable")

            try table.archive()
            try await waitUntil("the maintenance task offloads the table") {
                try table.state == .offloaded
            }
            #expect(try database.statistics().offloads == 1)
            try table.unarchive()
            try expectEveryRow(of: table, extra: ["still"])
        }
    }

    /// The offload takes the arbiter while the unarchive is paused before it: the unarchive
    /// throws the retryable `EAGAIN`, and a retry after the offload restores every row.
    @Test func offloadWinsAgainstAPausedUnarchive() async throws {
        try await withDatabase(Configuration(role: .leader)) { database, _ in
            let table = try database.createTable("t")
            try fill(table)
            try table.archive()

            try database.setFailpoint("unarchive.before_lock", to: "pause")
            try database.setFailpoint("offload.after_arbiter", to: "pause")
            let unarchive = Task {
                try await onDedicatedThread(named: "test-unarchive") { () throws(LayeredError) in try database.unarchiveTable("t") }
            }
            try await database.waitForFailpoint("unarchive.before_lock")
            let offload = Task {
                try await onDedicatedThread(named: "test-offload") { () throws(LayeredError) in try database.offloadTable("t") }
            }
            try await database.waitForFailpoint("offload.after_arbiter")

            // While the offload runs: a second offload or an archive is "in progress", a drop
            // is refused.
            #expect(throws: LayeredError.inProgress) { try table.offload() }
            #expect(throws: LayeredError.inProgress) { try table.archive() }
            #expect(throws: LayeredError.EBUSY) { try table.drop(force: true) }

            try database.setFailpoint("unarchive.before_lock", to: "off")
            await #expect(throws: LayeredError.EAGAIN) { try await unarchive.value }
            try database.setFailpoint("offload.after_arbiter", to: "off")
            try await offload.value
            #expect(try table.state == .offloaded)

            try table.unarchive()
            #expect(try table.state == .active)
            try expectEveryRow(of: table)
            let statistics = try database.statistics()
            #expect(statistics.offloads == 1)
            #expect(statistics.restores == 1)
        }
    }

    // MARK: Helpers

    private func key(_ index: Int) -> String {
        let digits = String(index)
        return "key" + String(repeating: "0", count: max(0, 5 - digits.count)) + digits
    }

    private func value(_ index: Int) -> String { "val\(index)" }

    private func fill(_ table: Table) throws {
        for index in 0..<Self.rowCount { try table.put(key(index), value(index)) }
    }

    /// Every row ``fill(_:)`` wrote is there with its value, and the table holds nothing else
    /// but the `extra` keys.
    private func expectEveryRow(of table: Table, extra: Set<String> = []) throws {
        for index in 0..<Self.rowCount {
            #expect(try table.get(key(index), as: String.self) == value(index))
        }
        let entries = table.entries()
        let keys = entries.map { String(decoding: $0.key, as: UTF8.self) }
        #expect(entries.error == nil)
        #expect(keys.count == Self.rowCount + extra.count)
        #expect(extra.isSubset(of: Set(keys)))
    }

    /// Polls `condition` until it holds, failing the test if it does not within `timeout`.
    private func waitUntil(
        _ what: String, timeout: Duration = .seconds(30), _ condition: () throws -> Bool
    ) async throws {
        let deadline = ContinuousClock.now + timeout
        while try !condition() {
            try #require(ContinuousClock.now < deadline, "timed out waiting until \(what)")
            try await Task.sleep(for: .milliseconds(2))
        }
    }
}
