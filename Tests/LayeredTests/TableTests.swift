import Foundation
import Testing
@testable import Layered

@Suite struct TableTests {
    @Test func putGetRemoveWithEveryByteStringType() async throws {
        try await withDatabase { database, _ in
            let table = try database.createTable("t")
            try table.put([UInt8]([1, 2, 3]), [UInt8]([4, 5]))
            try table.put("name", "Ada")
            try table.put(Data([0xFF, 0x00]), Data([0x00]))
            try table.put("slice"[...], bytes("slice-value")[1...])

            #expect(try table.get([UInt8]([1, 2, 3])) == [4, 5])
            #expect(try table.get("name", as: String.self) == "Ada")
            #expect(try table.get(Data([0xFF, 0x00]), as: Data.self) == Data([0x00]))
            #expect(try table.get("name") == bytes("Ada"))
            #expect(try table.get("slice", as: Substring.self) == "lice-value")
            #expect(try table.get("slice", as: ArraySlice<UInt8>.self) == bytes("lice-value")[...])

            #expect(try table.contains("name"))
            #expect(try table.remove("name"))
            #expect(try !table.contains("name"))
            #expect(try table.get("name") == nil)
            #expect(try !table.remove("name"))
        }
    }

    @Test func overwriteReplacesTheValue() async throws {
        try await withDatabase { database, _ in
            let table = try database.createTable("t")
            try table.put("k", "one")
            try table.put("k", "two")
            #expect(try table.get("k", as: String.self) == "two")
        }
    }

    @Test func emptyValuesAreValues() async throws {
        try await withDatabase { database, _ in
            let table = try database.createTable("t")
            try table.put("k", "")
            #expect(try table.get("k") == [])
            try table.put("d", Data())
            #expect(try table.get("d", as: Data.self) == Data())
        }
    }

    @Test func keyLengthLimits() async throws {
        try await withDatabase { database, _ in
            let table = try database.createTable("t")
            let longest = [UInt8](repeating: 0x61, count: 65535)
            try table.put(longest, "v")
            #expect(try table.get(longest, as: String.self) == "v")

            let oversized = [UInt8](repeating: 0x61, count: 65536)
            #expect(throws: LayeredError.EINVAL) { try table.put(oversized, "v") }
            #expect(throws: LayeredError.EINVAL) { try table.get(oversized) }
            #expect(throws: LayeredError.EINVAL) { try table.remove(oversized) }
            #expect(throws: LayeredError.EINVAL) { try table.put("", "v") }
            #expect(throws: LayeredError.EINVAL) { try table.put([UInt8](), "v") }
            #expect(throws: LayeredError.EINVAL) { try table.get("") }
        }
    }

    @Test func largeValuesRoundTrip() async throws {
        try await withDatabase { database, _ in
            let table = try database.createTable("t")
            let value = (0..<(4 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
            try table.put("big", value)
            #expect(try table.get("big") == value)
        }
    }

    @Test func operationsOnADroppedTableAreENOENT() async throws {
        try await withDatabase { database, _ in
            let table = try database.createTable("t")
            try table.drop()
            #expect(throws: LayeredError.ENOENT) { try table.put("k", "v") }
            #expect(throws: LayeredError.ENOENT) { try table.get("k") }
            #expect(throws: LayeredError.ENOENT) { try table.remove("k") }
            #expect(throws: LayeredError.ENOENT) { try table.state }
            #expect(throws: LayeredError.ENOENT) { try table.drop() }
            try table.drop(force: true)
        }
    }

    @Test func handlesCompareByDatabaseAndName() async throws {
        try await withDatabase { database, _ in
            let a = try database.createTable("a")
            try database.createTable("b")
            #expect(try database.table(named: "a") == a)
            #expect(try database.table(named: "b") != a)
            #expect(Set([a, try database.table(named: "a"), try database.table(named: "b")]).count == 2)
            try await withDatabase { other, _ throws in
                #expect(try other.createTable("a") != a)
            }
        }
    }

    // MARK: Layered reads

    @Test func followerWritesAreReadableAfterStepUp() async throws {
        try await withDatabase { database, _ in
            let table = try database.createTable("t")
            for i in 0..<50 { try table.put("k\(i)", "v\(i)") }
            try table.remove("k7")
            _ = try await database.stepUp()
            for i in 0..<50 where i != 7 {
                #expect(try table.get("k\(i)", as: String.self) == "v\(i)")
            }
            #expect(try table.get("k7") == nil)
            // The drain moved every row into the stable constituent and cleared the ingest.
            let ingest = try Cursor(table: table, constituent: .ingest)
            #expect(try !ingest.next())
            try ingest.close()
            #expect(strings(try rows(of: table, constituent: .stable)).count == 49)
        }
    }

    @Test func leaderWritesGoToStable() async throws {
        try await withDatabase(Configuration(role: .leader)) { database, _ in
            let table = try database.createTable("t")
            try table.put("k", "v")
            #expect(strings(try rows(of: table, constituent: .stable)) == ["k": "v"])
            #expect(try rows(of: table, constituent: .ingest).isEmpty)
        }
    }

    @Test func ingestShadowsStableAfterStepDown() async throws {
        try await withDatabase(Configuration(role: .leader)) { database, _ in
            let table = try database.createTable("t")
            try table.put("a", "stable-a")
            try table.put("b", "stable-b")
            try database.stepDown()
            try table.put("a", "ingest-a")
            try table.remove("b")
            try table.put("c", "ingest-c")
            #expect(try table.get("a", as: String.self) == "ingest-a")
            #expect(try table.get("b") == nil)
            #expect(strings(table.entries()) == ["a": "ingest-a", "c": "ingest-c"])
            #expect(strings(try rows(of: table, constituent: .stable)) == ["a": "stable-a", "b": "stable-b"])

            _ = try await database.stepUp()
            #expect(strings(try rows(of: table, constituent: .stable)) == ["a": "ingest-a", "c": "ingest-c"])
        }
    }

    /// Every row of a constituent, read with a read-only constituent cursor.
    private func rows(of table: Table, constituent: Cursor.Constituent) throws -> [(key: [UInt8], value: [UInt8])] {
        let cursor = try Cursor(table: table, constituent: constituent)
        var rows: [(key: [UInt8], value: [UInt8])] = []
        while try cursor.next() { rows.append(try cursor.entry()!) }
        return rows
    }
}
