import Foundation
import Testing
@testable import Layered

@Suite struct BatchTests {
    @Test func aBatchLandsWhole() async throws {
        try await withDatabase { database, _ in
            let orders = try database.createTable("orders")
            let items = try database.createTable("items")
            try items.put("cart-7", "3 apples")
            let count = try database.write { batch in
                batch.put("order-7", "paid", in: orders)
                batch.put("order-8", Data([0, 1]), in: orders)
                batch.remove("cart-7", from: items)
                batch.remove("never-there", from: items)
                return batch.count
            }
            #expect(count == 4)
            #expect(try orders.get("order-7", as: String.self) == "paid")
            #expect(try orders.get("order-8", as: Data.self) == Data([0, 1]))
            #expect(try !items.contains("cart-7"))
            let stats = try database.statistics()
            #expect(stats.batches == 1)
            #expect(stats.batchOps == 4)
        }
    }

    @Test func laterOpsOnAKeyWin() async throws {
        try await withDatabase { database, _ in
            let t = try database.createTable("t")
            try database.write { batch in
                batch.put("k", "one", in: t)
                batch.put("k", "two", in: t)
                batch.put("gone", "x", in: t)
                batch.remove("gone", from: t)
            }
            #expect(try t.get("k", as: String.self) == "two")
            #expect(try !t.contains("gone"))
        }
    }

    @Test func anEmptyBatchWritesNothing() async throws {
        try await withDatabase { database, _ in
            _ = try database.createTable("t")
            try database.write { _ in }
            #expect(try database.statistics().batches == 0)
        }
    }

    /// Every failure leaves every table as it was.
    @Test func aFailedBatchChangesNothing() async throws {
        try await withDatabase { database, _ in
            let t = try database.createTable("t")
            let other = try database.createTable("other")
            try t.put("base", "0")
            try other.drop()
            let oversized = [UInt8](repeating: 0x61, count: 65536)
            struct Stop: Error {}

            #expect(throws: LayeredError.ENOENT) {
                try database.write { batch in
                    batch.put("base", "changed", in: t)
                    batch.put("k", "v", in: other)
                }
            }
            #expect(throws: LayeredError.EINVAL) {
                try database.write { batch in
                    batch.put("base", "changed", in: t)
                    batch.put(oversized, "v", in: t)
                }
            }
            #expect(throws: LayeredError.EINVAL) {
                try database.write { batch in
                    batch.put("base", "changed", in: t)
                    batch.put("", "v", in: t)
                }
            }
            #expect(throws: Stop.self) {
                try database.write { batch in
                    batch.put("base", "changed", in: t)
                    throw Stop()
                }
            }
            try database.setFailpoint("batch.sync", to: "return(EIO)")
            #expect(throws: LayeredError.EIO) {
                try database.write { batch in batch.put("base", "changed", in: t) }
            }
            try database.setFailpoint("batch.sync", to: "off")
            #expect(try t.get("base", as: String.self) == "0")
            #expect(try database.statistics().batches == 0)
        }
    }

    @Test func aTableOfAnotherDatabaseIsRefused() async throws {
        try await withDatabase { first, _ in
            try await withDatabase { second, _ in
                let mine = try first.createTable("t")
                let theirs = try second.createTable("t")
                #expect(throws: LayeredError.EINVAL) {
                    try first.write { batch in
                        batch.put("k", "v", in: mine)
                        batch.put("k", "v", in: theirs)
                    }
                }
                #expect(try !mine.contains("k"))
                #expect(try !theirs.contains("k"))
            }
        }
    }

    /// A batch committed on a follower survives a reopen and a step-up drains it.
    @Test func aBatchSurvivesReopenAndStepUp() async throws {
        try await withTemporaryDirectory { directory in
            let home = directory.appendingPathComponent("home")
            do {
                let database = try Database(url: home)
                let a = try database.createTable("a")
                let b = try database.createTable("b")
                try database.write { batch in
                    batch.put("x", "1", in: a)
                    batch.put("y", "2", in: b)
                }
                try database.close()
            }
            let database = try Database(url: home)
            defer { try? database.close() }
            let a = try database.table(named: "a")
            let b = try database.table(named: "b")
            #expect(try a.get("x", as: String.self) == "1")
            _ = try await database.stepUp()
            #expect(try b.get("y", as: String.self) == "2")
            try database.write { batch in batch.put("z", "3", in: a) }
            #expect(try a.get("z", as: String.self) == "3")
        }
    }

    /// Batches from many tasks at once: each lands whole.
    @Test func concurrentBatches() async throws {
        try await withDatabase { database, _ in
            let a = try database.createTable("a")
            let b = try database.createTable("b")
            try await withThrowingTaskGroup(of: Void.self) { group in
                for task in 0..<4 {
                    group.addTask {
                        for i in 0..<50 {
                            try database.write { batch in
                                batch.put("k\(task)-\(i)", "a", in: a)
                                batch.put("k\(task)-\(i)", "b", in: b)
                            }
                        }
                    }
                }
                try await group.waitForAll()
            }
            #expect(Array(a.entries()).count == 200)
            #expect(Array(b.entries()).count == 200)
            #expect(try database.statistics().batches == 200)
        }
    }
}
