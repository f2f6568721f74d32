import Foundation
import Synchronization
import Testing
@testable import Layered

/// The database shared by many tasks on Swift's cooperative pool, whose threads the C library
/// did not create.
@Suite struct ConcurrencyTests {
    @Test func hundredTasksReadAndWriteWhileSteppingUpAndDropping() async throws {
        try await withDatabase { database, _ in
            let kept = try (0..<4).map { try database.createTable("kept\($0)") }
            let doomed = try (0..<8).map { try database.createTable("doomed\($0)") }
            for table in kept + doomed { try table.put("seed", "seed") }
            let tasks = 100
            let rounds = 40
            let dropRetries = Counter()
            // The step-up starts once a quarter of the writes are done, so it runs among them;
            // the drops start once the step-up has queued its tables, so they race the drain.
            let writesUnderWay = Gate(count: tasks * rounds / 4)
            try database.setFailpoint("drain.queued", to: "sleep(0)")

            try await withThrowingTaskGroup(of: Void.self) { group in
                for task in 0..<tasks {
                    group.addTask {
                        for round in 0..<rounds {
                            let key = "task\(task)-\(round)"
                            let table = kept[(task + round) % kept.count]
                            try table.put(key, key)
                            writesUnderWay.arrive()
                            #expect(try table.get(key, as: String.self) == key)
                            #expect(try table.get("seed", as: String.self) == "seed")

                            let victim = doomed[(task + round) % doomed.count]
                            do {
                                try victim.put(key, key)
                                _ = try victim.get(key)
                            } catch LayeredError.ENOENT {
                                // dropped meanwhile
                            }
                            if round % 10 == 0 { await Task.yield() }
                        }
                    }
                }
                group.addTask {
                    await writesUnderWay.wait()
                    let report = try await database.stepUp()
                    #expect(report.tablesQueued >= UInt64(kept.count))
                    #expect(report.tablesDrained + report.tablesSkipped == report.tablesQueued)
                }
                group.addTask {
                    try await database.waitForFailpoint("drain.queued")
                    for table in doomed {
                        await Task.yield()
                        while true {
                            do {
                                try table.drop(force: true)
                                break
                            } catch LayeredError.EBUSY {
                                dropRetries.increment()
                                await Task.yield()
                            }
                        }
                    }
                }
                try await group.waitForAll()
            }

            #expect(try database.role == .leader)
            #expect(try database.tables().map(\.name) == ["kept0", "kept1", "kept2", "kept3"])
            var rows = 0
            for table in kept {
                for (key, value) in table.entries() {
                    #expect(key == value)
                    rows += 1
                }
            }
            #expect(rows == tasks * rounds + kept.count)
            let statistics = try database.statistics()
            #expect(statistics.stepUps == 1)
            #expect(statistics.busyDrops == UInt64(dropRetries.value))
        }
    }

    @Test func cursorsOnManyTasksAtOnce() async throws {
        try await withDatabase { database, _ in
            let table = try database.createTable("t")
            for i in 0..<100 { try table.put(String(format: "k%03d", i), "v") }
            try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<100 {
                    group.addTask {
                        let cursor = try table.makeCursor()
                        var count = 0
                        while try cursor.next() { count += 1 }
                        try cursor.close()
                        return count
                    }
                }
                for try await count in group { #expect(count == 100) }
            }
        }
    }
}

/// Opens once ``arrive()`` has been called `count` times; ``wait()`` returns once it is open.
private final class Gate: Sendable {
    private let state: Mutex<(remaining: Int, waiters: [CheckedContinuation<Void, Never>])>

    init(count: Int) { state = Mutex((remaining: count, waiters: [])) }

    func arrive() {
        let opened = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            guard state.remaining > 0 else { return [] }
            state.remaining -= 1
            guard state.remaining == 0 else { return [] }
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in opened { waiter.resume() }
    }

    func wait() async {
        await withCheckedContinuation { (waiter: CheckedContinuation<Void, Never>) in
            let open = state.withLock { state -> Bool in
                if state.remaining == 0 { return true }
                state.waiters.append(waiter)
                return false
            }
            if open { waiter.resume() }
        }
    }
}

private final class Counter: Sendable {
    private let count = Atomic<Int>(0)
    func increment() { count.add(1, ordering: .relaxed) }
    var value: Int { count.load(ordering: .relaxed) }
}
