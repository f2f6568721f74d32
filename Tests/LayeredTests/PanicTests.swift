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
            try database.setFailpoint("drain.before_lock", "off")

            let message: String
            do {
                _ = try await stepUp.value
                Issue.record("the step-up should have panicked")
                return
            } catch LayeredError.panic(let text) {
                message = text
            }
            #expect(message.contains("victim"))
            #expect(message.contains("step-up failed"))
            try expectPanickedForever(database, message: message, table: bystander)

            // A new connection recovers: the bystander's rows are there, the victim is gone.
            let reopened = try Database(url: directory.appendingPathComponent("home"))
            #expect(try reopened.tables().map(\.name) == ["bystander"])
            #expect(try reopened.table("bystander").get("k", as: String.self) == "v")
            _ = try await reopened.stepUp()
            #expect(try reopened.role == .leader)
            #expect(try reopened.table("bystander").get("k", as: String.self) == "v")
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
            } catch LayeredError.panic(let message) {
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
                #expect(try broken.statistics().isPanicked)
            }
            try table.put("k", "v")
            #expect(try table.get("k", as: String.self) == "v")
            #expect(try !healthy.statistics().isPanicked)
        }
    }

    /// Every later call throws the same panic; statistics and failpoints still work; close
    /// throws the panic too and frees everything.
    private func expectPanickedForever(_ database: Database, message: String, table: Table) throws {
        let panic = LayeredError.panic(message)
        #expect(try database.statistics().isPanicked)
        #expect(throws: panic) { try database.createTable("after") }
        #expect(throws: panic) { try database.tables() }
        #expect(throws: panic) { try database.tableState(table.name) }
        #expect(throws: panic) { try database.checkpoint() }
        #expect(throws: panic) { try database.stepDown() }
        #expect(throws: panic) { try database.dropTable(table.name, force: true) }
        #expect(throws: panic) { try table.put("k", "v") }
        #expect(throws: panic) { try table.get("k") }
        #expect(throws: panic) { try table.makeCursor() }
        let entries = table.entries()
        #expect(Array(entries).isEmpty)
        #expect(entries.error == panic)
        try database.setFailpoint("fs.write", "off")
        #expect(throws: panic) { try database.close() }
        #expect(!database.isOpen)
    }
}
