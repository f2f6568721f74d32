import Foundation
import Testing
@testable import Layered

/// How each drain policy meets a forced drop (no checkpoint wait) of a table the step-up is
/// draining, in both orderings of the README's table: the drop lands before the worker opens the
/// table, or while the worker copies it.  Every ordering is forced with a paused failpoint.
@Suite struct DrainPolicyTests {
    /// The drop lands after the step-up queued the table and before the worker opened it (under
    /// queue-scan while the item is still queued, the ordering that policy is about).  The drop
    /// succeeds under every policy; the three fixed ones skip the table, the unprotected one
    /// panics.
    @Test(arguments: DrainPolicy.allCases)
    func dropBeforeTheWorkerOpensTheTable(policy: DrainPolicy) async throws {
        let failpoint = policy == .queueScan ? "drain.queued" : "drain.before_lock"
        try await raceDrop(policy: policy, at: failpoint) { dropError, result, database in
            #expect(dropError == nil)
            switch policy {
            case .unprotected:
                guard case .failure(let error) = result, error == .panic else {
                    Issue.record("the step-up should have panicked, not \(result)")
                    return
                }
                #expect(error.message.contains("step-up failed: draining layered:a"))
                #expect(try database.statistics().hasPanicked)
                let later = #expect(throws: LayeredError.panic) { try database.tables() }
                #expect(later?.message == error.message)
            case .skipMissing, .readLock, .queueScan:
                let report = try result.get()
                #expect(report.tablesQueued == 2)
                #expect(report.tablesSkipped == 1)
                #expect(report.tablesDrained == 1)
                #expect(report.rows == 10)
                #expect(report.busyDrops == 0)
                #expect(try !database.statistics().hasPanicked)
            }
        }
    }

    /// The drop lands while the worker copies the table: every policy refuses it (`EBUSY`, the
    /// copy holds the table's read lock), the step-up drains both tables, and the drop succeeds
    /// when retried after it.
    @Test(arguments: DrainPolicy.allCases)
    func dropWhileTheWorkerCopies(policy: DrainPolicy) async throws {
        try await raceDrop(policy: policy, at: "drain.copy") { dropError, result, database in
            #expect(dropError == .EBUSY)
            let report = try result.get()
            #expect(report.tablesQueued == 2)
            #expect(report.tablesSkipped == 0)
            #expect(report.tablesDrained == 2)
            #expect(report.rows == 20)
            #expect(report.busyDrops == 1)
            #expect(try !database.statistics().hasPanicked)
        }
    }

    /// Queue-scan's other ordering: the worker has taken the item (it is in flight) but not yet
    /// opened the table; the drop is refused and the drain goes on.
    @Test func queueScanRefusesToDropATableInFlight() async throws {
        try await raceDrop(policy: .queueScan, at: "drain.before_lock") { dropError, result, _ in
            #expect(dropError == .EBUSY)
            let report = try result.get()
            #expect(report.tablesSkipped == 0)
            #expect(report.tablesDrained == 2)
            #expect(report.busyDrops == 1)
        }
    }

    /// Two tables with rows, one drain thread (so "a" is drained first); the step-up pauses at
    /// `failpoint`, "a" is dropped (force, no checkpoint wait), the drain resumes.  `check` sees
    /// the drop's error, the step-up's outcome and the database.  Afterwards, unless the database
    /// panicked: it is leader, "b" has its rows, a refused drop of "a" left "a" whole and
    /// succeeds when retried, and only "b" is left.
    private func raceDrop(
        policy: DrainPolicy, at failpoint: String,
        _ check: (LayeredError?, Result<StepUpReport, LayeredError>, Database) throws -> Void
    ) async throws {
        let configuration = Configuration(drainThreads: 1, drainPolicy: policy)
        try await withDatabase(configuration) { database, _ in
            let first = try database.createTable("a")
            let second = try database.createTable("b")
            for i in 0..<10 {
                try first.put("k\(i)", "a")
                try second.put("k\(i)", "b")
            }
            try database.setFailpoint(failpoint, to: "pause")
            let stepUp = Task { () async -> Result<StepUpReport, LayeredError> in
                do throws(LayeredError) {
                    return .success(try await database.stepUp())
                } catch {
                    return .failure(error)
                }
            }
            try await database.waitForFailpoint(failpoint)
            var dropError: LayeredError?
            do throws(LayeredError) {
                try database.dropTable("a", force: true)
            } catch {
                dropError = error
            }
            try database.setFailpoint(failpoint, to: "off")
            let result = await stepUp.value

            try check(dropError, result, database)
            if try database.statistics().hasPanicked { return }
            #expect(try database.role == .leader)
            #expect(try second.get("k3", as: String.self) == "b")
            if dropError != nil {
                #expect(try first.get("k3", as: String.self) == "a")
                try first.drop()
            }
            #expect(try database.tables().map(\.name) == ["b"])
        }
    }
}
