import ArgumentParser
import Foundation
import Layered
import Synchronization

struct Checkpoint: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Checkpoint: sync every constituent, compact files that are mostly dead, write the metadata.",
        discussion: """
            A checkpoint works on the constituents the connection has open, so the tables are \
            opened and checkpointed in batches of \(batchSize); a line reports each batch.  \
            Prints the database size the checkpoint published.  A table that cannot be opened \
            (a damaged file) is reported and left out, and the tool then exits 1.
            """)

    static let batchSize = 200

    @OptionGroup var options: HomeOptions

    func run() throws {
        var unreadable = 0
        let statistics = try withDatabase(options) { database in
            let tables = try attempt("listing the tables") { try database.tables() }
                .filter { $0.state == .active || $0.state == .archived }
            var done = 0
            repeat {
                let batch = tables[done..<min(done + Self.batchSize, tables.count)]
                for (name, _) in batch {
                    // Opening a cursor loads both constituents, and they stay open for the
                    // checkpoint (a connection keeps up to 512 idle handles).  A table that
                    // cannot be opened is reported, and the others are still checkpointed.
                    do {
                        try Cursor(table: try database.table(named: name)).close()
                    } catch let error as LayeredError {
                        Output.error("layered: layered:\(name): \(explain(error, table: name))")
                        unreadable += 1
                    }
                }
                try attempt("checkpoint") { try database.checkpoint() }
                done += batch.count
                if tables.count > Self.batchSize {
                    Output.line("checkpoint: \(done) of \(tables.count) tables")
                }
            } while done < tables.count
            return try attempt("reading the statistics") { try database.statistics() }
        }
        Output.line(
            "checkpoint: database size \(statistics.databaseSize) bytes "
                + "(\(statistics.stableCheckpointBytes) stable bytes + "
                + "\(Statistics.checkpointSizeBuffer) buffer), "
                + "\(statistics.compactions) files compacted")
        if unreadable > 0 {
            throw ToolFailure.failed(
                "\(unreadable) tables could not be opened, and were not checkpointed")
        }
    }
}

struct StepUp: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "step-up",
        abstract: "Step up: drain every ingest constituent into its stable constituent.",
        discussion: """
            Opens the database as a follower and steps up, which copies every ingest that holds \
            data into its stable constituent and clears it.  Progress is reported as tables \
            finish draining (the drain publishes its counts per batch of tables): a progress \
            bar when standard output is a terminal, a line per change otherwise.  The role is \
            not stored in the home: the next open chooses its own.  A failed drain panics the \
            connection, and the tool exits 1 with the panic's message.
            """)

    @OptionGroup var options: HomeOptions

    func run() async throws {
        let database = try options.open(role: .follower)
        do {
            // An ingest file larger than its header may hold data: at most this many tables
            // are drained (a drained ingest keeps its clear marker until it is compacted).
            let expected = try attempt("listing the tables") { try database.tables() }
                .filter { name, state in
                    guard state == .active || state == .archived else { return false }
                    let path = (options.home as NSString).appendingPathComponent("\(name).ingest")
                    let size = (try? FileManager.default.attributesOfItem(atPath: path))?[.size]
                    return ((size as? NSNumber)?.uint64Value ?? 0) > 32
                }.count
            Output.line("step-up: draining up to \(expected) tables")
            let printer = DrainProgress(expected: expected)
            let report: StepUpReport
            do {
                report = try await database.stepUp { printer.show($0) }
            } catch {
                throw ToolFailure.failed("step-up: \(explain(error))")
            }
            Output.line(
                "step-up: \(report.tablesDrained) tables drained (\(report.tablesQueued) queued, "
                    + "\(report.tablesSkipped) skipped), \(report.rows) rows, "
                    + "\(report.bytes) bytes in \(String(format: "%.2f", report.duration.seconds)) s")
            try closeDatabase(database)
        } catch {
            try? database.close()
            throw error
        }
    }
}

/// The step-up's progress: a bar on a terminal, a line whenever the drained count grows
/// otherwise.  Called from the progress thread of ``Database/stepUp(progress:)``, then once
/// from the task when the step-up finishes.
final class DrainProgress: Sendable {
    private let expected: Int
    private let lastDrained = Mutex<UInt64?>(nil)

    init(expected: Int) {
        self.expected = expected
    }

    func show(_ progress: StepUpProgress) {
        let counts =
            "\(progress.tablesDrained) tables, \(progress.rows) rows, \(humanBytes(progress.bytes)), "
            + String(format: "%.1f s", progress.elapsed.seconds)
        if Output.isTerminal {
            let width = 24
            let fraction =
                progress.isFinished
                ? 1 : min(1, Double(progress.tablesDrained) / Double(max(expected, 1)))
            let filled = Int(fraction * Double(width))
            let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
            if progress.isFinished {
                Output.line("[\(bar)] \(counts)")
            } else {
                Output.progress("[\(bar)] \(counts)")
            }
            return
        }
        let changed = lastDrained.withLock { last in
            defer { last = progress.tablesDrained }
            return last != progress.tablesDrained
        }
        if changed && !progress.isFinished && progress.tablesDrained > 0 {
            Output.line("drained \(counts)")
        }
    }
}

struct StepDown: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "step-down",
        abstract: "Step down: open the database as leader and become a follower.",
        discussion: """
            The role is not stored in the home (each open chooses it), so this checks that a \
            leader can step down here: it opens as leader, steps down and closes.  Nothing is \
            drained or written but the metadata snapshot every close writes.
            """)

    @OptionGroup var options: HomeOptions

    func run() throws {
        try withDatabase(options, role: .leader) { database in
            try attempt("step-down") { try database.stepDown() }
        }
        Output.line("step-down: done; the database is a follower")
    }
}

/// What archive, unarchive and offload share: one or more tables, done in order, a line for
/// each; a table that fails is reported and the others are still done.
struct LifecycleOptions: ParsableArguments {
    @OptionGroup var options: HomeOptions

    @Argument(help: "The tables (the NAME of layered:NAME).")
    var tables: [String] = []

    func validate() throws {
        guard !tables.isEmpty else { throw ValidationError("Missing expected argument '<tables> ...'") }
    }

    func run(
        _ verb: String, _ operation: (Database, String) throws -> Void,
        hint: (LayeredError) -> String? = { _ in nil }
    ) throws {
        var failed = 0
        try withDatabase(options) { database in
            for (index, name) in tables.enumerated() {
                do {
                    try operation(database, name)
                    Output.line("\(verb) layered:\(name) (\(index + 1) of \(tables.count))")
                } catch let error as LayeredError {
                    Output.error(
                        "layered: layered:\(name): \(hint(error) ?? explain(error, table: name))")
                    failed += 1
                }
            }
        }
        if failed > 0 {
            throw ToolFailure.failed("\(failed) of \(tables.count) tables failed")
        }
    }
}

struct Archive: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Archive tables: they stay readable and writable and become candidates for offload.")

    @OptionGroup var lifecycle: LifecycleOptions

    func run() throws {
        try lifecycle.run("archived") { try $0.archiveTable($1) }
    }
}

struct Unarchive: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Unarchive tables; an offloaded table is brought back from the shared store.")

    @OptionGroup var lifecycle: LifecycleOptions

    func run() throws {
        try lifecycle.run("unarchived") { try $0.unarchiveTable($1) }
    }
}

struct Offload: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Offload archived tables: remove their local state, keep their stable data in the shared store.",
        discussion: """
            A table's ingest must be empty: rows written as a follower must be drained first \
            (`layered step-up HOME`).
            """)

    @OptionGroup var lifecycle: LifecycleOptions

    func run() throws {
        let home = lifecycle.options.home
        try lifecycle.run("offloaded", { try $0.offloadTable($1) }) { error in
            switch error {
            case .EBUSY:
                "\(error) (its ingest holds rows not yet drained: run `layered step-up \(home)` first)"
            case .notArchived:
                "\(error) (archive it first: `layered archive \(home) NAME`)"
            default:
                nil
            }
        }
    }
}
