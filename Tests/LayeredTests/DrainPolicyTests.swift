import Foundation
import Testing
@testable import Layered

/// How each drain policy meets a forced drop that arrives while a drain worker is paused after
/// dequeuing the table, before it takes any lock.
@Suite struct DrainPolicyTests {
    @Test func skipMissingSkipsTheDroppedTable() async throws {
        let report = try await raceDrop(policy: .skipMissing, expectDrop: nil)
        #expect(report.tablesSkipped == 1)
        #expect(report.tablesDrained == 1)
    }

    @Test func readLockSkipsATableDroppedBeforeTheLock() async throws {
        let report = try await raceDrop(policy: .readLock, expectDrop: nil)
        #expect(report.tablesSkipped == 1)
    }

    @Test func queueScanRefusesToDropATableInFlight() async throws {
        let report = try await raceDrop(policy: .queueScan, expectDrop: .EBUSY)
        #expect(report.tablesSkipped == 0)
        #expect(report.tablesDrained == 2)
    }

    /// Two tables with rows, one drain thread; the step-up pauses before the first table's
    /// lock, the first table is dropped (force, no checkpoint wait), and the drain resumes.
    private func raceDrop(policy: DrainPolicy, expectDrop: LayeredError?) async throws -> StepUpReport {
        let configuration = Configuration(drainThreads: 1, drainPolicy: policy)
        return try await withDatabase(configuration) { database, _ in
            let first = try database.createTable("a")
            let second = try database.createTable("b")
            for i in 0..<10 {
                try first.put("k\(i)", "a")
                try second.put("k\(i)", "b")
            }
            try database.setFailpoint("drain.before_lock", "pause")
            let stepUp = Task { try await database.stepUp() }
            try await database.waitForFailpoint("drain.before_lock")
            var dropError: LayeredError?
            do {
                try database.dropTable("a", force: true)
            } catch let error as LayeredError {
                dropError = error
            }
            try database.setFailpoint("drain.before_lock", "off")
            let report = try await stepUp.value

            #expect(dropError == expectDrop)
            #expect(try database.role == .leader)
            #expect(try second.get("k3", as: String.self) == "b")
            if dropError != nil {
                try first.drop()
            }
            #expect(try database.tables().map(\.name) == ["b"])
            return report
        }
    }
}
