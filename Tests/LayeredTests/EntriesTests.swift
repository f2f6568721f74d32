import Foundation
import Testing
@testable import Layered

@Suite struct EntriesTests {
    @Test func iteratesInByteOrderShorterFirst() async throws {
        try await withDatabase { database, _ in
            let table = try database.createTable("t")
            for key in ["b", "ab", "a", "abc", "B", "\u{00}", "aa"] { try table.put(key, key) }
            let keys = table.entries().map { String(decoding: $0.key, as: UTF8.self) }
            #expect(keys == ["\u{00}", "B", "a", "aa", "ab", "abc", "b"])
            for (key, value) in table.entries() { #expect(key == value) }
        }
    }

    @Test func boundsAreLowerInclusiveUpperExclusive() async throws {
        try await withDatabase { database, _ in
            let table = try database.createTable("t")
            for i in 0..<10 { try table.put("k\(i)", "v\(i)") }
            func keys(_ entries: Entries) -> [String] {
                entries.map { String(decoding: $0.key, as: UTF8.self) }
            }
            #expect(keys(table.entries(from: "k3", before: "k6")) == ["k3", "k4", "k5"])
            #expect(keys(table.entries(from: "k35")) == ["k4", "k5", "k6", "k7", "k8", "k9"])
            #expect(keys(table.entries(before: "k2")) == ["k0", "k1"])
            #expect(keys(table.entries(from: "a", before: "k1")) == ["k0"])
            #expect(keys(table.entries(from: "k9")) == ["k9"])
            #expect(keys(table.entries(from: "z")) == [])
            #expect(keys(table.entries(from: "k5", before: "k5")) == [])
            #expect(keys(table.entries(from: Data("k8".utf8), before: bytes("k9"))) == ["k8"])
            let entries = table.entries(from: "k1", before: "k3")
            #expect(entries.lowerBound == bytes("k1"))
            #expect(entries.upperBound == bytes("k3"))
        }
    }

    @Test func emptyTableYieldsNothing() async throws {
        try await withDatabase { database, _ in
            let table = try database.createTable("t")
            #expect(Array(table.entries()).isEmpty)
            #expect(Array(table.entries(from: "a")).isEmpty)
        }
    }

    @Test func aSequenceCanBeIteratedAgain() async throws {
        try await withDatabase { database, _ in
            let table = try database.createTable("t")
            try table.put("a", "1")
            let entries = table.entries()
            #expect(entries.map(\.key) == [bytes("a")])
            try table.put("b", "2")
            #expect(entries.map(\.key) == [bytes("a"), bytes("b")])
        }
    }

    @Test func theCursorIsHeldOnlyWhileIterating() async throws {
        try await withDatabase { database, _ in
            let table = try database.createTable("t")
            for i in 0..<5 { try table.put("k\(i)", "v") }
            let entries = table.entries()

            var iterator = entries.makeIterator()
            _ = iterator.next()
            #expect(throws: LayeredError.EBUSY) { try table.drop() }
            while iterator.next() != nil {}
            // Finished: the cursor is closed although the iterator still exists.
            try table.drop()
            try database.createTable("t")
            for i in 0..<5 { try table.put("k\(i)", "v") }

            for _ in entries { break }
            // Abandoned after one entry: the iterator's deinit closed the cursor.
            try table.drop()
        }
    }

    @Test func anErrorEndsTheIterationAndIsKept() async throws {
        try await withDatabase { database, _ in
            let table = try database.createTable("t")
            try table.drop()
            let entries = table.entries()
            #expect(Array(entries).isEmpty)
            #expect(entries.error == .ENOENT)

            let other = try database.createTable("u")
            try other.put("k", "v")
            let good = other.entries()
            #expect(Array(good).count == 1)
            #expect(good.error == nil)
        }
    }
}
