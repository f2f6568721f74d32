import ArgumentParser
import Foundation
import Layered

struct Stat: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the connection's statistics and each table's.",
        discussion: """
            The connection's statistics are those of a database just opened: database_size and \
            stable_checkpoint_bytes as the stable files on disk give them, the highest LSN, the \
            table count, and the operation counters (cumulative since the open, so 0 here).  \
            Then, for each table, what `layered tables` prints, and the totals.  Counting rows \
            reads every row of every table.  Exits 1 if a table could not be read (its error is \
            printed); the other tables are still listed.
            """)

    @OptionGroup var options: HomeOptions

    @Flag(help: "Print JSON: {\"connection\": {...}, \"tables\": [...], \"totals\": {...}}.")
    var json = false

    func run() throws {
        let (statistics, tables) = try withDatabase(options) { database in
            let statistics = try attempt("reading the statistics") { try database.statistics() }
            return (statistics, try TableInfo.all(database, options))
        }
        let report = StatReport(
            home: options.home, sharedDirectory: options.resolvedSharedDirectory,
            connection: ConnectionInfo(statistics), tables: tables,
            totals: Totals(tables))
        if json {
            try Output.json(report)
        } else {
            report.print()
        }
        try TableInfo.failIfUnreadable(tables)
    }
}

struct Tables: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the tables: name, state, rows, and the rows and bytes of each constituent file.",
        discussion: """
            ROWS is what a read of the layered table sees (ingest over stable); INGEST ROWS and \
            STABLE ROWS are the rows of each constituent alone (an ingest tombstone is not a \
            row); BYTES are the files' sizes.  An offloaded table has no ingest file and cannot \
            be read until it is unarchived: its rows are shown as "-" (null in JSON).  Counting \
            rows reads every row.  Exits 1 if a table could not be read (its error is printed); \
            the other tables are still listed.
            """)

    @OptionGroup var options: HomeOptions

    @Flag(help: "Print a JSON array, one object per table.")
    var json = false

    func run() throws {
        let tables = try withDatabase(options) { try TableInfo.all($0, options) }
        if json {
            try Output.json(tables)
        } else {
            TableInfo.printTable(tables)
        }
        try TableInfo.failIfUnreadable(tables)
    }
}

/// One constituent file of a table.
struct ConstituentInfo: Encodable {
    var path: String
    /// The file's size, or `nil` if it does not exist.
    var bytes: UInt64?
    /// The rows of the constituent alone, or `nil` if it was not read.
    var rows: UInt64?

    init(path: String) {
        self.path = path
        let attributes = try? FileManager.default.attributesOfItem(atPath: path)
        bytes = (attributes?[.size] as? NSNumber)?.uint64Value
    }

    enum CodingKeys: String, CodingKey { case path, exists, bytes, rows }

    func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(path, forKey: .path)
        try container.encode(bytes != nil, forKey: .exists)
        try container.encode(bytes, forKey: .bytes)
        try container.encode(rows, forKey: .rows)
    }
}

/// A table as `layered tables` lists it.
struct TableInfo: Encodable {
    var name: String
    var state: String
    /// The rows a read of the layered table sees, or `nil` if it was not read.
    var rows: UInt64?
    var ingest: ConstituentInfo
    var stable: ConstituentInfo
    /// Why the table could not be read, or `nil`.
    var error: String?

    enum CodingKeys: String, CodingKey { case name, state, rows, ingest, stable, error }

    func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(name, forKey: .name)
        try container.encode(state, forKey: .state)
        try container.encode(rows, forKey: .rows)
        try container.encode(ingest, forKey: .ingest)
        try container.encode(stable, forKey: .stable)
        try container.encode(error, forKey: .error)
    }

    /// Every table of the database, in name order, with its rows counted.
    static func all(_ database: Database, _ options: HomeOptions) throws -> [TableInfo] {
        let tables = try attempt("listing the tables") { try database.tables() }
        return tables.map { name, state in
            var info = TableInfo(
                name: name, state: stateName(state), rows: nil,
                ingest: ConstituentInfo(
                    path: (options.home as NSString).appendingPathComponent("\(name).ingest")),
                stable: ConstituentInfo(
                    path: (options.resolvedSharedDirectory as NSString)
                        .appendingPathComponent("\(name).stable")))
            guard state == .active || state == .archived else { return info }
            do {
                let table = try database.table(named: name)
                info.rows = try countRows(try Cursor(table: table))
                info.ingest.rows = try countRows(try Cursor(table: table, constituent: .ingest))
                info.stable.rows = try countRows(try Cursor(table: table, constituent: .stable))
            } catch let error as LayeredError {
                info.error = explain(error)
            } catch {
                info.error = "\(error)"
            }
            return info
        }
    }

    /// The rows a cursor reads from its start; closes it.
    private static func countRows(_ cursor: Cursor) throws -> UInt64 {
        defer { try? cursor.close() }
        var rows: UInt64 = 0
        while try cursor.next() { rows += 1 }
        return rows
    }

    static func printTable(_ tables: [TableInfo]) {
        func cell(_ value: UInt64?) -> String { value.map(String.init) ?? "-" }
        let rows = tables.map { table in
            [
                table.name, table.state, cell(table.rows), cell(table.ingest.rows),
                cell(table.ingest.bytes), cell(table.stable.rows), cell(table.stable.bytes),
            ]
        }
        for line in formatColumns(
            ["NAME", "STATE", "ROWS", "INGEST ROWS", "INGEST BYTES", "STABLE ROWS", "STABLE BYTES"],
            rows, leftAligned: 2)
        {
            Output.line(line)
        }
    }

    /// Prints each table's error and fails if there is one.
    static func failIfUnreadable(_ tables: [TableInfo]) throws {
        let unreadable = tables.filter { $0.error != nil }
        guard !unreadable.isEmpty else { return }
        for table in unreadable {
            Output.error("layered: layered:\(table.name): \(table.error!)")
        }
        throw ToolFailure.failed(
            "\(unreadable.count) of \(tables.count) tables could not be read")
    }
}

/// A table state's name, as the tool prints it.
func stateName(_ state: TableState) -> String {
    switch state {
    case .active: "active"
    case .archived: "archived"
    case .offloaded: "offloaded"
    case .stopping: "stopping"
    case .dropped: "dropped"
    case .unknown(let value): "unknown(\(value))"
    }
}

/// The connection's statistics, for `layered stat`.
struct ConnectionInfo: Encodable {
    var databaseSize: UInt64
    var stableCheckpointBytes: UInt64
    var role: String
    var panicked: Bool
    var lsn: UInt64
    var tables: UInt64
    var creates: UInt64
    var drops: UInt64
    var dropBusy: UInt64
    var checkpoints: UInt64
    var compactions: UInt64
    var stepUps: UInt64
    var stepDowns: UInt64
    var tablesDrained: UInt64
    var tablesSkipped: UInt64
    var rowsDrained: UInt64
    var bytesDrained: UInt64
    var inserts: UInt64
    var removes: UInt64
    var batches: UInt64
    var batchOps: UInt64
    var archives: UInt64
    var unarchives: UInt64
    var restores: UInt64
    var offloads: UInt64
    var offloadsRefused: UInt64

    init(_ s: Statistics) {
        databaseSize = s.databaseSize
        stableCheckpointBytes = s.stableCheckpointBytes
        role = s.role == .leader ? "leader" : "follower"
        panicked = s.hasPanicked
        lsn = s.lsn
        tables = s.tableCount
        creates = s.tablesCreated
        drops = s.tablesDropped
        dropBusy = s.busyDrops
        checkpoints = s.checkpoints
        compactions = s.compactions
        stepUps = s.stepUps
        stepDowns = s.stepDowns
        tablesDrained = s.tablesDrained
        tablesSkipped = s.tablesSkipped
        rowsDrained = s.rowsDrained
        bytesDrained = s.bytesDrained
        inserts = s.puts
        removes = s.removals
        batches = s.batches
        batchOps = s.batchOps
        archives = s.archives
        unarchives = s.unarchives
        restores = s.restores
        offloads = s.offloads
        offloadsRefused = s.offloadsRefused
    }

    /// The counters that grow with operations, named as in JSON.
    var counters: [(String, UInt64)] {
        [
            ("creates", creates), ("drops", drops), ("drop_busy", dropBusy),
            ("checkpoints", checkpoints), ("compactions", compactions), ("step_ups", stepUps),
            ("step_downs", stepDowns), ("tables_drained", tablesDrained),
            ("tables_skipped", tablesSkipped), ("rows_drained", rowsDrained),
            ("bytes_drained", bytesDrained), ("inserts", inserts), ("removes", removes),
            ("batches", batches), ("batch_ops", batchOps), ("archives", archives),
            ("unarchives", unarchives), ("restores", restores),
            ("offloads", offloads), ("offloads_refused", offloadsRefused),
        ]
    }
}

/// The sums over the tables that could be read.
struct Totals: Encodable {
    var rows: UInt64 = 0
    var ingestBytes: UInt64 = 0
    var stableBytes: UInt64 = 0

    init(_ tables: [TableInfo]) {
        for table in tables {
            rows += table.rows ?? 0
            ingestBytes += table.ingest.bytes ?? 0
            stableBytes += table.stable.bytes ?? 0
        }
    }
}

/// What `layered stat` prints.
struct StatReport: Encodable {
    var home: String
    var sharedDirectory: String
    var connection: ConnectionInfo
    var tables: [TableInfo]
    var totals: Totals

    func print() {
        let c = connection
        let pairs: [(String, String)] = [
            ("home", home),
            ("shared directory", sharedDirectory),
            ("role", c.role),
            ("database size", "\(c.databaseSize)"),
            ("stable checkpoint bytes", "\(c.stableCheckpointBytes)"),
            ("lsn", "\(c.lsn)"),
            ("tables", "\(c.tables)"),
            ("panicked", c.panicked ? "yes" : "no"),
        ]
        let width = pairs.map(\.0.count).max()!
        for (key, value) in pairs {
            Output.line(key + String(repeating: " ", count: width - key.count + 2) + value)
        }
        Output.line(
            "counters since open: "
                + c.counters.map { "\($0.0) \($0.1)" }.joined(separator: ", "))
        Output.line("")
        TableInfo.printTable(tables)
        Output.line("")
        Output.line(
            "total: \(totals.rows) rows, \(totals.ingestBytes) ingest bytes, "
                + "\(totals.stableBytes) stable bytes")
    }
}
