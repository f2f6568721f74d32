import Foundation
import Testing
@testable import Layered

/// Panics provoked on purpose: the call that triggered one throws `.panic`, every later call
/// throws it too, and the process keeps running.
@Suite struct PanicTests {
    /// A follower with a table holding rows, and a step-up paused before its drain takes any lock.
    private func pausedStepUp(
        _ database: Database, table name: String
    ) async throws -> Task<StepUpReport, any Error> {
        let table = try database.createTable(name)
        for i in 0..<20 { try table.put("k\(i)", "v\(i)") }
        let stepUp = Task { try await database.stepUp() }
        try await database.waitForFailpoint("drain.before_lock")
        return stepUp
    }

    @Test func unprotectedDrainRacingAForcedDropPanics() async throws {
        try await withTemporaryDirectory { directory in
            let database = try Database(
                url: directory.appendingPathComponent("home"),
                configuration: Configuration(
                    drainPolicy: .unprotected, failpoints: ["drain.before_lock": "pause"]))
            let bystander = try database.createTable("bystander")
            try bystander.put("k", "v")
            let stepUp = try await pausedStepUp(database, table: "victim")

            try database.dropTable("victim", force: true, waitForCheckpoint: false)
            try database.setFailpoint("drain.before_lock", to: "off")

            let message: String
            do {
                _ = try await stepUp.value
                Issue.record("the step-up should have panicked")
                return
            } catch let error as LayeredError where error == .panic {
                message = error.message
            }
            #expect(message.contains("victim"))
            #expect(message.contains("step-up failed"))
            try expectPanickedForever(database, message: message, table: bystander)

            // A new connection recovers: the bystander's rows are there, the victim is gone.
            let reopened = try Database(url: directory.appendingPathComponent("home"))
            #expect(try reopened.tables().map(\.name) == ["bystander"])
            #expect(try reopened.table(named: "bystander").get("k", as: String.self) == "v")
            _ = try await reopened.stepUp()
            #expect(try reopened.role == .leader)
            #expect(try reopened.table(named: "bystander").get("k", as: String.self) == "v")
            try reopened.close()
        }
    }

    @Test func anErrorInsideTheDrainCopyPanics() async throws {
        try await withTemporaryDirectory { directory in
            let database = try Database(
                url: directory.appendingPathComponent("home"),
                configuration: Configuration(failpoints: ["drain.copy": "return(EIO)"]))
            let table = try database.createTable("t")
            try table.put("k", "v")
            do {
                _ = try await database.stepUp()
                Issue.record("the step-up should have panicked")
            } catch let error as LayeredError where error == .panic {
                let message = error.message
                #expect(message.contains("layered:t"))
                #expect(message.contains(LayeredError.EIO.description))
                try expectPanickedForever(database, message: message, table: table)
            }
        }
    }

    @Test func aPanicInOneDatabaseLeavesOthersServing() async throws {
        try await withDatabase { healthy, _ in
            let table = try healthy.createTable("t")
            try await withTemporaryDirectory { directory in
                let broken = try Database(
                    url: directory.appendingPathComponent("home"),
                    configuration: Configuration(failpoints: ["drain.copy": "return(EIO)"]))
                try broken.createTable("t").put("k", "v")
                await #expect(throws: LayeredError.self) { try await broken.stepUp() }
                #expect(try broken.statistics().hasPanicked)
            }
            try table.put("k", "v")
            #expect(try table.get("k", as: String.self) == "v")
            #expect(try !healthy.statistics().hasPanicked)
        }
    }

    /// Every later call throws the same panic; statistics and failpoints still work; close
    /// throws the panic too and frees everything.
    private func expectPanickedForever(_ database: Database, message: String, table: Table) throws {
        // Equality compares codes only, so each message is checked on its own.
        func expectPanic(_ body: () throws(LayeredError) -> Void, line: Int = #line) {
            do {
                try body()
                Issue.record("no panic (line \(line))")
            } catch {
                #expect(error == .panic, "line \(line)")
                #expect(error.message == message, "line \(line)")
            }
        }
        #expect(try database.statistics().hasPanicked)
        expectPanic { () throws(LayeredError) in try database.createTable("after") }
        expectPanic { () throws(LayeredError) in _ = try database.tables() }
        expectPanic { () throws(LayeredError) in _ = try database.state(ofTable: table.name) }
        expectPanic { () throws(LayeredError) in try database.checkpoint() }
        expectPanic { () throws(LayeredError) in try database.stepDown() }
        expectPanic { () throws(LayeredError) in try database.dropTable(table.name, force: true) }
        expectPanic { () throws(LayeredError) in try table.put("k", "v") }
        expectPanic { () throws(LayeredError) in _ = try table.get("k") }
        expectPanic { () throws(LayeredError) in _ = try table.makeCursor() }
        let entries = table.entries()
        #expect(Array(entries).isEmpty)
        #expect(entries.error == .panic)
        #expect(entries.error?.message == message)
        try database.setFailpoint("fs.write", to: "off")
        expectPanic { () throws(LayeredError) in try database.close() }
        #expect(!database.isOpen)
    }
}
