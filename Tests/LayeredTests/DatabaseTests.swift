import Foundation
import Synchronization
import Testing
@testable import Layered

@Suite struct DatabaseTests {
    // MARK: Opening and closing

    @Test func opensCreatesAndCloses() async throws {
        try await withTemporaryDirectory { directory in
            let home = directory.appendingPathComponent("home")
            let database = try Database(url: home)
            #expect(database.isOpen)
            #expect(database.path == home.path)
            #expect(FileManager.default.fileExists(atPath: home.appendingPathComponent("shared").path))
            try database.close()
            #expect(!database.isOpen)
            try database.close()
        }
    }

    @Test func missingHomeWithoutCreateIsENOENT() async throws {
        await withTemporaryDirectory { directory in
            #expect(throws: LayeredError.ENOENT) {
                try Database(url: directory.appendingPathComponent("home"),
                             configuration: Configuration(createIfMissing: false))
            }
            #expect(throws: LayeredError.ENOENT) {
                try Database(url: directory.appendingPathComponent("missing/home"))
            }
        }
    }

    @Test func emptyOrNULLPathIsEINVAL() {
        #expect(throws: LayeredError.EINVAL) { try Database(path: "") }
        #expect(throws: LayeredError.EINVAL) { try Database(path: "/tmp/a\0b") }
    }

    @Test func homeThatIsAFileIsENOTDIR() async throws {
        try await withTemporaryDirectory { directory in
            let file = directory.appendingPathComponent("file")
            try Data("x".utf8).write(to: file)
            #expect(throws: LayeredError.ENOTDIR) { try Database(url: file) }
        }
    }

    @Test func secondOpenOfAHomeIsEBUSY() async throws {
        try await withDatabase { _, home in
            #expect(throws: LayeredError.EBUSY) { try Database(url: home) }
        }
    }

    @Test func everyOperationAfterCloseIsEINVAL() async throws {
        try await withTemporaryDirectory { directory in
            let database = try Database(url: directory.appendingPathComponent("home"))
            let table = try database.createTable("t")
            try database.close()
            #expect(throws: LayeredError.EINVAL) { try database.createTable("u") }
            #expect(throws: LayeredError.EINVAL) { try database.table(named: "t") }
            #expect(throws: LayeredError.EINVAL) { try database.dropTable("t") }
            #expect(throws: LayeredError.EINVAL) { try database.state(ofTable: "t") }
            #expect(throws: LayeredError.EINVAL) { try database.tables() }
            #expect(throws: LayeredError.EINVAL) { try database.checkpoint() }
            #expect(throws: LayeredError.EINVAL) { try database.stepDown() }
            #expect(throws: LayeredError.EINVAL) { try database.statistics() }
            #expect(throws: LayeredError.EINVAL) { try database.role }
            #expect(throws: LayeredError.EINVAL) { try database.setFailpoint("fs.write", to: "off") }
            await #expect(throws: LayeredError.EINVAL) { try await database.stepUp() }
            await #expect(throws: LayeredError.EINVAL) {
                try await database.waitForFailpoint("fs.write", timeout: .milliseconds(1))
            }
            #expect(throws: LayeredError.EINVAL) { try table.put("k", "v") }
            #expect(throws: LayeredError.EINVAL) { try table.get("k") }
            #expect(throws: LayeredError.EINVAL) { try table.makeCursor() }
        }
    }

    @Test func dataSurvivesReopening() async throws {
        try await withTemporaryDirectory { directory in
            let home = directory.appendingPathComponent("home")
            do {
                let database = try Database(url: home)
                try database.createTable("t").put("k", "v")
                try database.close()
            }
            let database = try Database(url: home, configuration: Configuration(createIfMissing: false))
            #expect(try database.table(named: "t").get("k", as: String.self) == "v")
            try database.close()
        }
    }

    @Test func deinitCloses() async throws {
        try await withTemporaryDirectory { directory in
            let home = directory.appendingPathComponent("home")
            do {
                let database = try Database(url: home)
                try database.createTable("t").put("k", "v")
            }
            // The home's lock was released by deinit: a second open succeeds.
            let database = try Database(url: home)
            #expect(try database.table(named: "t").get("k", as: String.self) == "v")
            try database.close()
        }
    }

    // MARK: Tables

    @Test func createsListsAndDropsTables() async throws {
        try await withDatabase { database, _ in
            let orders = try database.createTable("orders")
            #expect(orders.name == "orders")
            try database.createTable("accounts")
            #expect(try database.tables().map(\.name) == ["accounts", "orders"])
            #expect(try database.tables().allSatisfy { $0.state == .active })
            #expect(try database.state(ofTable: "orders") == .active)
            #expect(try orders.state == .active)
            #expect(try database.table(named: "orders") == orders)
            #expect(try database.statistics().tableCount == 2)

            try database.dropTable("orders")
            #expect(try database.tables().map(\.name) == ["accounts"])
            #expect(throws: LayeredError.ENOENT) { try database.state(ofTable: "orders") }
            #expect(throws: LayeredError.ENOENT) { try database.table(named: "orders") }
            #expect(throws: LayeredError.ENOENT) { try orders.get("k") }
            #expect(try database.statistics().tablesDropped == 1)
        }
    }

    @Test func duplicateCreateIsEEXISTUnlessNotExclusive() async throws {
        try await withDatabase { database, _ in
            try database.createTable("t").put("k", "v")
            #expect(throws: LayeredError.EEXIST) { try database.createTable("t") }
            let again = try database.createTable("t", exclusive: false)
            #expect(try again.get("k", as: String.self) == "v")
        }
    }

    @Test(arguments: ["", ".hidden", "a/b", "a b", "ü", "a:b", String(repeating: "x", count: 201), "a\0b"])
    func malformedTableNamesAreEINVAL(name: String) async throws {
        try await withDatabase { database, _ in
            #expect(throws: LayeredError.EINVAL) { try database.createTable(name) }
            #expect(throws: LayeredError.EINVAL) { try database.table(named: name) }
            #expect(throws: LayeredError.EINVAL) { try database.dropTable(name, force: true) }
            #expect(throws: LayeredError.EINVAL) { try database.state(ofTable: name) }
        }
    }

    @Test func longestAndOddButValidNames() async throws {
        try await withDatabase { database, _ in
            for name in [String(repeating: "x", count: 200), "a.b-c_D9", "0"] {
                try database.createTable(name).put("k", "v")
                #expect(try database.table(named: name).get("k", as: String.self) == "v")
            }
        }
    }

    @Test func dropOfAMissingTableIsENOENTUnlessForced() async throws {
        try await withDatabase { database, _ in
            #expect(throws: LayeredError.ENOENT) { try database.dropTable("nope") }
            try database.dropTable("nope", force: true)
            try database.dropTable("nope", force: true, waitForCheckpoint: true)
        }
    }

    @Test func tableHandlesDoNotHoldTheTable() async throws {
        try await withDatabase { database, _ in
            let table = try database.createTable("t")
            try table.put("k", "v")
            _ = try table.get("k")
            for _ in table.entries() {}
            try table.drop()
            #expect(throws: LayeredError.ENOENT) { try table.put("k", "v") }
        }
    }

    // MARK: Roles, step-up, checkpoint

    @Test func stepUpDrainsAndChangesTheRole() async throws {
        try await withDatabase { database, _ in
            #expect(try database.role == .follower)
            let table = try database.createTable("t")
            try database.createTable("empty")
            for i in 0..<100 { try table.put("key\(i)", "value\(i)") }

            let report = try await database.stepUp()
            #expect(try database.role == .leader)
            #expect(report.tablesQueued == 1)
            #expect(report.tablesDrained == 1)
            #expect(report.tablesSkipped == 0)
            #expect(report.rows == 100)
            #expect(report.bytes > 0)
            #expect(report.duration > .zero)
            let statistics = try database.statistics()
            #expect(statistics.stepUps == 1)
            #expect(statistics.tablesDrained == 1)
            #expect(statistics.rowsDrained == 100)

            let again = try await database.stepUp()
            #expect(again.tablesQueued == 0)

            try database.stepDown()
            #expect(try database.role == .follower)
            try database.stepDown()
            #expect(try database.statistics().stepDowns == 1)
        }
    }

    @Test func stepUpReportsProgressAndAFinalReport() async throws {
        try await withDatabase { database, _ in
            let table = try database.createTable("t")
            for i in 0..<10 { try table.put("k\(i)", "v") }
            // The drain is held before its clear until a progress report has come in.
            try database.setFailpoint("drain.before_clear", to: "pause")
            let reports = Mutex<[StepUpProgress]>([])
            let (updates, continuation) = AsyncStream.makeStream(of: StepUpProgress.self)
            let stepUp = Task {
                try await database.stepUp { progress in
                    reports.withLock { $0.append(progress) }
                    continuation.yield(progress)
                }
            }
            try await database.waitForFailpoint("drain.before_clear")
            let during = await firstElement(of: updates, timeout: .seconds(30))
            #expect(during != nil, "no progress report while the drain was held")
            #expect(during?.isFinished == false)
            #expect(during?.tablesDrained == 0)
            try database.setFailpoint("drain.before_clear", to: "off")
            let report = try await stepUp.value
            continuation.finish()
            let seen = reports.withLock { $0 }
            #expect(seen.count >= 2)
            #expect(seen.dropLast().allSatisfy { !$0.isFinished })
            #expect(seen.last?.isFinished == true)
            #expect(seen.last?.rows == report.rows)
            #expect(seen.last?.tablesDrained == 1)
            #expect(seen.map(\.elapsed) == seen.map(\.elapsed).sorted())
        }
    }

    @Test func leaderOpensAsLeader() async throws {
        try await withDatabase(Configuration(role: .leader)) { database, _ throws in
            #expect(try database.role == .leader)
            #expect(try database.statistics().role == .leader)
        }
    }

    /// After a checkpoint the size is that of the stable files on disk, plus the buffer; with
    /// every table dropped, the buffer alone.
    @Test func checkpointPublishesTheDatabaseSize() async throws {
        try await withDatabase(Configuration(role: .leader)) { database, home in
            let buffer = Statistics.checkpointSizeBuffer
            #expect(buffer == 1024 * 1024)
            #expect(try database.statistics().databaseSize == buffer)
            let table = try database.createTable("t")
            for i in 0..<100 { try table.put("key\(i)", [UInt8](repeating: 7, count: 1000)) }
            #expect(try database.statistics().databaseSize == buffer)
            #expect(try stableFilesBytes(home: home) >= 100_000)
            try database.checkpoint()
            let statistics = try database.statistics()
            let onDisk = try stableFilesBytes(home: home)
            #expect(statistics.checkpoints == 1)
            #expect(statistics.stableCheckpointBytes >= 100_000)
            #expect(statistics.stableCheckpointBytes == onDisk)
            #expect(statistics.databaseSize == buffer + onDisk)

            try database.dropTable("t")
            try database.checkpoint()
            #expect(try stableFilesBytes(home: home) == 0)
            #expect(try database.statistics().databaseSize == buffer)
            #expect(try database.statistics().stableCheckpointBytes == 0)
        }
    }

    @Test func statisticsCountOperations() async throws {
        try await withDatabase { database, _ in
            let table = try database.createTable("t")
            try table.put("a", "1")
            try table.put("b", "2")
            try table.remove("a")
            let statistics = try database.statistics()
            #expect(statistics.tablesCreated == 1)
            #expect(statistics.puts == 2)
            #expect(statistics.removals == 1)
            #expect(statistics.lsn >= 3)
            #expect(!statistics.hasPanicked)
        }
    }

    // MARK: Failpoints

    @Test func failpointsInjectErrors() async throws {
        try await withDatabase { database, _ in
            let table = try database.createTable("t")
            try database.setFailpoint("fs.write", to: "return(ENOSPC)")
            #expect(throws: LayeredError.ENOSPC) { try table.put("k", "v") }
            try database.setFailpoint("fs.write", to: "off")
            try table.put("k", "v")
            #expect(try table.get("k", as: String.self) == "v")
        }
    }

    @Test func failpointsFromTheConfigurationAreSetAtOpen() async throws {
        let configuration = Configuration(failpoints: ["drop.before_exclusive": "return(EIO)"])
        try await withDatabase(configuration) { database, _ in
            try database.createTable("t")
            #expect(throws: LayeredError.EIO) { try database.dropTable("t") }
            #expect(try database.state(ofTable: "t") == .active)
        }
    }

    @Test func badFailpointsAreEINVAL() async throws {
        try await withDatabase { database, _ in
            #expect(throws: LayeredError.EINVAL) { try database.setFailpoint("fs.write", to: "explode") }
            #expect(throws: LayeredError.EINVAL) { try database.setFailpoint("fs.write", to: "a\0b") }
            #expect(throws: LayeredError.EINVAL) { try database.setFailpoint("bad name!", to: "pause") }
            #expect(throws: LayeredError.EINVAL) { try database.setFailpoint("", to: "pause") }
            await #expect(throws: LayeredError.EINVAL) {
                try await database.waitForFailpoint("never.set", timeout: .milliseconds(10))
            }
        }
    }

    @Test func waitForFailpointTimesOut() async throws {
        try await withDatabase { database, _ in
            try database.setFailpoint("drain.copy", to: "pause")
            await #expect(throws: LayeredError.ETIMEDOUT) {
                try await database.waitForFailpoint("drain.copy", timeout: .milliseconds(50))
            }
        }
    }

    @Test func closeReleasesAPausedStepUp() async throws {
        try await withTemporaryDirectory { directory in
            let database = try Database(
                url: directory.appendingPathComponent("home"),
                configuration: Configuration(failpoints: ["drain.copy": "pause"]))
            try database.createTable("t").put("k", "v")
            let stepUp = Task { try await database.stepUp() }
            try await database.waitForFailpoint("drain.copy")
            try database.close()
            _ = try? await stepUp.value
            #expect(!database.isOpen)
        }
    }
}
