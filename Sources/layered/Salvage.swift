import ArgumentParser
import Foundation
import Layered

struct Salvage: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Copy every intact row of a damaged table into a new table.",
        discussion: """
            Reads the records of TABLE's two constituent files in file order, as verify does, \
            skipping damaged ones (after a damaged record header the scan goes on at the next \
            record whose checksums pass) and listing each damaged place.  For each key it \
            keeps the record with the highest LSN, the ingest's on a tie, after dropping the \
            ingest records that a drain's clear marker retired; a key whose newest intact \
            record is a removal has no row.  The rows are then written into NEWTABLE, which \
            must not exist, through the normal API, and made durable with a checkpoint.  TABLE \
            is left as it is: drop it, then `layered dump` and `layered load` can give the \
            salvaged rows the old name.

            A key whose newest record is damaged comes back with its newest intact record, an \
            older value, if it has one.  The database is opened as a follower (the rows go \
            into NEWTABLE's ingest) unless --leader is given.  Exits 0 when the rows were \
            copied, damage or not.
            """)

    @OptionGroup var options: HomeOptions

    @Argument(help: "The damaged table.")
    var table: String

    @Argument(help: "The table to create and fill with TABLE's intact rows.")
    var newTable: String

    @Flag(help: "Open the database as leader: the rows go into NEWTABLE's stable constituent.")
    var leader = false

    func validate() throws {
        guard table != newTable else {
            throw ValidationError("NEWTABLE must differ from TABLE")
        }
    }

    /// A key's newest record in one constituent.
    private struct Newest {
        var lsn: UInt64
        var offset: UInt64
        var removed: Bool
    }

    func run() throws {
        let (rows, scan) = try withDatabase(
            options, role: leader ? .leader : .follower, sync: .buffered
        ) { database in
            _ = try attempt(table: table) { try database.state(ofTable: table) }
            if (try? database.state(ofTable: newTable)) != nil {
                throw ToolFailure.failed(
                    "layered:\(newTable) exists: salvage writes into a new table")
            }
            let winners = try newestRecords()
            let handle = try attempt(table: newTable) {
                try database.createTable(newTable)
            }
            let cursor = try attempt("writing layered:\(newTable)") { try handle.makeCursor() }
            defer { try? cursor.close() }
            var rows = 0
            let scan = try FileScan.salvage(
                home: options.home, sharedDirectory: options.sharedDirectory, table: table,
                report: { _ in }
            ) { record in
                guard record.kind == .put,
                    winners[record.isIngest ? 0 : 1].contains(record.offset)
                else { return }
                try attempt("writing layered:\(newTable)") {
                    try cursor.put(Array(record.key), Array(record.value))
                }
                rows += 1
            }
            guard scan.readEverything else {
                throw ToolFailure.failed("reading layered:\(table): \(explain(scan.error))")
            }
            try attempt("checkpoint") { try database.checkpoint() }
            return (rows, scan)
        }
        var summary = "salvage: \(rows) rows of layered:\(table) copied into layered:\(newTable)"
        if scan.damaged > 0 {
            summary += "; \(scan.damaged) damaged \(scan.damaged == 1 ? "place" : "places") skipped (listed above)"
        } else {
            summary += "; no damage found"
        }
        Output.line(summary)
    }

    /// The offsets of the records that hold each key's row, per constituent ([0] ingest,
    /// [1] stable): the first pass of the salvage, which keeps keys and offsets but no values.
    private func newestRecords() throws -> [Set<UInt64>] {
        var newest: [[[UInt8]: Newest]] = [[:], [:]]
        let scan = try FileScan.salvage(
            home: options.home, sharedDirectory: options.sharedDirectory, table: table,
            report: { Output.line($0.line) }
        ) { record in
            let constituent = record.isIngest ? 0 : 1
            switch record.kind {
            case .clear:
                newest[constituent].removeAll(keepingCapacity: true)
            case .put, .remove:
                let key = Array(record.key)
                if let known = newest[constituent][key], known.lsn > record.lsn { return }
                newest[constituent][key] = Newest(
                    lsn: record.lsn, offset: record.offset, removed: record.kind == .remove)
            }
        }
        guard scan.readEverything else {
            throw ToolFailure.failed("reading layered:\(table): \(explain(scan.error))")
        }
        var winners: [Set<UInt64>] = [[], []]
        var stable = newest[1]
        for (key, ingest) in newest[0] {
            if let other = stable.removeValue(forKey: key), other.lsn > ingest.lsn {
                if !other.removed { winners[1].insert(other.offset) }
            } else if !ingest.removed {
                winners[0].insert(ingest.offset)
            }
        }
        for other in stable.values where !other.removed {
            winners[1].insert(other.offset)
        }
        return winners
    }
}
