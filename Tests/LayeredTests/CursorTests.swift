import Foundation
import Testing
@testable import Layered

@Suite struct CursorTests {
    private func filled(_ database: Database) throws -> Table {
        let table = try database.createTable("t")
        for key in ["b", "d", "f"] { try table.put(key, key.uppercased()) }
        return table
    }

    @Test func searchPositionsOnAKey() async throws {
        try await withDatabase { database, _ in
            let cursor = try filled(database).makeCursor()
            #expect(try cursor.key() == nil)
            #expect(try cursor.search("d"))
            #expect(try cursor.key(as: String.self) == "d")
            #expect(try cursor.value(as: String.self) == "D")
            #expect(try cursor.entry()?.value == bytes("D"))
            #expect(try !cursor.search("c"))
            #expect(try cursor.key() == nil)
            #expect(throws: LayeredError.EINVAL) { try cursor.search("") }
        }
    }

    @Test func searchNearReportsWhereItLanded() async throws {
        try await withDatabase { database, _ in
            let table = try filled(database)
            let cursor = try table.makeCursor()
            #expect(try cursor.search(near: "d") == .exact)
            #expect(try cursor.key(as: String.self) == "d")
            #expect(try cursor.search(near: "c") == .larger)
            #expect(try cursor.key(as: String.self) == "d")
            #expect(try cursor.search(near: "a") == .larger)
            #expect(try cursor.key(as: String.self) == "b")
            #expect(try cursor.search(near: "z") == .smaller)
            #expect(try cursor.key(as: String.self) == "f")
            try cursor.close()

            let empty = try database.createTable("empty").makeCursor()
            #expect(try empty.search(near: "a") == nil)
        }
    }

    @Test func nextAndPrevWalkBothWays() async throws {
        try await withDatabase { database, _ in
            let cursor = try filled(database).makeCursor()
            var forward: [String] = []
            while try cursor.next() { forward.append(try cursor.key(as: String.self)!) }
            #expect(forward == ["b", "d", "f"])
            #expect(try cursor.key() == nil)

            var backward: [String] = []
            while try cursor.previous() { backward.append(try cursor.key(as: String.self)!) }
            #expect(backward == ["f", "d", "b"])

            #expect(try cursor.search("d"))
            #expect(try cursor.next())
            #expect(try cursor.key(as: String.self) == "f")
            try cursor.reset()
            #expect(try cursor.key() == nil)
            #expect(try cursor.previous())
            #expect(try cursor.key(as: String.self) == "f")
        }
    }

    @Test func writesThroughACursor() async throws {
        try await withDatabase { database, _ in
            let table = try filled(database)
            let cursor = try table.makeCursor()
            try cursor.put("c", Data("C".utf8))
            #expect(try cursor.key() == nil)
            #expect(try cursor.remove("b"))
            #expect(try !cursor.remove("b"))
            #expect(throws: LayeredError.EINVAL) { try cursor.put("", "x") }
            try cursor.close()
            #expect(strings(table.entries()) == ["c": "C", "d": "D", "f": "F"])
        }
    }

    @Test func constituentCursorsAreReadOnly() async throws {
        try await withDatabase { database, _ in
            let table = try filled(database)
            let ingest = try Cursor(table: table, constituent: .ingest)
            #expect(ingest.constituent == .ingest)
            #expect(try ingest.next())
            #expect(throws: LayeredError.ENOTSUP) { try ingest.put("x", "y") }
            #expect(throws: LayeredError.ENOTSUP) { try ingest.remove("b") }
            let stable = try Cursor(table: table, constituent: .stable)
            #expect(try !stable.next())
        }
    }

    @Test func openOnAMissingTableIsENOENT() async throws {
        try await withDatabase { database, _ in
            let table = try database.createTable("t")
            try table.drop()
            #expect(throws: LayeredError.ENOENT) { try table.makeCursor() }
            #expect(throws: LayeredError.ENOENT) { try Cursor(table: table, constituent: .stable) }
        }
    }

    @Test func anOpenCursorMakesDropEBUSYUntilClosed() async throws {
        try await withDatabase { database, _ in
            let table = try filled(database)
            let cursor = try table.makeCursor()
            #expect(throws: LayeredError.EBUSY) { try database.dropTable("t") }
            #expect(throws: LayeredError.EBUSY) { try database.dropTable("t", force: true) }
            #expect(try database.statistics().busyDrops == 2)
            #expect(try table.get("b", as: String.self) == "B")
            try cursor.close()
            try database.dropTable("t")
            #expect(throws: LayeredError.ENOENT) { try database.state(ofTable: "t") }
        }
    }

    @Test func deinitClosesTheCursor() async throws {
        try await withDatabase { database, _ in
            let table = try filled(database)
            do {
                let cursor = try table.makeCursor()
                #expect(try cursor.next())
                #expect(throws: LayeredError.EBUSY) { try table.drop() }
            }
            try table.drop()
        }
    }

    @Test func closedCursorThrowsEINVAL() async throws {
        try await withDatabase { database, _ in
            let cursor = try filled(database).makeCursor()
            try cursor.close()
            try cursor.close()
            #expect(throws: LayeredError.EINVAL) { try cursor.next() }
            #expect(throws: LayeredError.EINVAL) { try cursor.previous() }
            #expect(throws: LayeredError.EINVAL) { try cursor.search("b") }
            #expect(throws: LayeredError.EINVAL) { try cursor.search(near: "b") }
            #expect(throws: LayeredError.EINVAL) { try cursor.reset() }
            #expect(throws: LayeredError.EINVAL) { try cursor.key() }
            #expect(throws: LayeredError.EINVAL) { try cursor.put("k", "v") }
        }
    }

    @Test func closingTheDatabaseClosesItsCursors() async throws {
        try await withTemporaryDirectory { directory in
            let database = try Database(url: directory.appendingPathComponent("home"))
            let cursor = try filled(database).makeCursor()
            #expect(try cursor.next())
            try database.close()
            #expect(throws: LayeredError.EINVAL) { try cursor.next() }
            try cursor.close()
        }
    }

    @Test func manyCursorsAtOnce() async throws {
        try await withDatabase { database, _ in
            let table = try filled(database)
            let cursors = try (0..<100).map { _ in try table.makeCursor() }
            for cursor in cursors { #expect(try cursor.next()) }
            #expect(throws: LayeredError.EBUSY) { try table.drop() }
            for cursor in cursors { try cursor.close() }
            try table.drop()
        }
    }
}
