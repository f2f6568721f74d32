import ArgumentParser
import Foundation
import Layered

/// `layered`: inspect, dump, load, verify, salvage and operate a Layered database from the
/// command line, in the manner of WiredTiger's `wt` and LMDB's `mdb_stat`, `mdb_dump` and
/// `mdb_load`.
///
/// The exit status is part of the interface (``ExitStatus``): scripts can rely on it.
@main
struct LayeredTool {
    static func main() async {
        let command: ParsableCommand
        do {
            command = try LayeredCommand.parseAsRoot()
        } catch {
            // Help and version requests exit 0; everything else the parser refuses is a usage
            // error, exit 2 (ArgumentParser's own default would be 64).
            if LayeredCommand.exitCode(for: error) == .success {
                LayeredCommand.exit(withError: error)
            }
            Output.error(LayeredCommand.fullMessage(for: error))
            exit(ExitStatus.usage)
        }
        do {
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                var command = command
                try command.run()
            }
            exit(ExitStatus.success)
        } catch let failure as ToolFailure {
            Output.error("layered: \(failure.message)")
            exit(failure.status)
        } catch {
            // `layered help SUBCOMMAND` reaches here as a help request, exit 0; a
            // ValidationError thrown while running is a usage error too.
            switch LayeredCommand.exitCode(for: error) {
            case .success:
                LayeredCommand.exit(withError: error)
            case .validationFailure:
                Output.error(LayeredCommand.fullMessage(for: error))
                exit(ExitStatus.usage)
            default:
                Output.error("layered: \(error)")
                exit(ExitStatus.failed)
            }
        }
    }
}

/// The exit statuses of every subcommand.
enum ExitStatus {
    /// The subcommand did what it was asked (`verify`: no damage; torn tails may be reported).
    static let success: Int32 = 0
    /// The operation failed; the error is printed on standard error.
    static let failed: Int32 = 1
    /// A usage error: an unknown subcommand or option, a missing or malformed argument.
    static let usage: Int32 = 2
    /// `verify` found damage; each damaged place is printed with its file and offset.
    static let damage: Int32 = 3

    /// The table for `--help` and the README.
    static let table = """
        EXIT STATUS
          0  success (verify: no damage; torn tails may be listed)
          1  the operation failed; the error is printed on standard error
          2  usage error: unknown subcommand or option, missing or malformed argument
          3  verify found damage; each damaged place is printed with its file and offset
        """
}

/// An error that ends the tool with a message and an exit status.
struct ToolFailure: Error {
    var status: Int32
    var message: String

    static func failed(_ message: String) -> ToolFailure {
        ToolFailure(status: ExitStatus.failed, message: message)
    }
}

struct LayeredCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "layered",
        abstract: "Inspect, dump, load, verify, salvage and operate a Layered database.",
        discussion: """
            HOME is a database home directory.  Every subcommand but verify opens the database \
            (as a follower unless it says otherwise), so the home must not be open in another \
            process; opening cuts torn tails of the files it reads and finishes a drop or an \
            offload that a crash interrupted.  verify reads the files itself and changes \
            nothing.  --shared DIR names the directory of the stable constituents when it is \
            not HOME/shared.

            \(ExitStatus.table)
            """,
        version: "0.1.0",
        subcommands: [
            Stat.self, Tables.self, Dump.self, Load.self, Verify.self, Salvage.self,
            Checkpoint.self, StepUp.self, StepDown.self, Archive.self, Unarchive.self,
            Offload.self,
        ])

    func run() async throws {
        throw ToolFailure(
            status: ExitStatus.usage,
            message: "a subcommand is required\n\n" + LayeredCommand.helpMessage())
    }
}

/// The arguments every subcommand takes: the home and where its stable constituents are.
struct HomeOptions: ParsableArguments {
    @Argument(help: "The database home directory.")
    var home: String

    @Option(
        name: .customLong("shared"),
        help: ArgumentHelp(
            "The directory of the stable constituents (default: HOME/shared).",
            valueName: "dir"))
    var sharedDirectory: String?

    /// The shared directory as the library resolves it.
    var resolvedSharedDirectory: String {
        sharedDirectory ?? (home as NSString).appendingPathComponent("shared")
    }

    /// Fails unless the home is a Layered home: a directory holding the metadata journal or
    /// snapshot.  Opening anything else would create files in it.
    func requireHome() throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: home, isDirectory: &isDirectory) else {
            throw ToolFailure.failed("\(home): no such directory")
        }
        guard isDirectory.boolValue else {
            throw ToolFailure.failed("\(home): not a directory")
        }
        let metadata = ["layered.meta.log", "layered.meta"].map {
            (home as NSString).appendingPathComponent($0)
        }
        guard metadata.contains(where: { FileManager.default.fileExists(atPath: $0) }) else {
            throw ToolFailure.failed(
                "\(home): not a Layered home (it holds neither layered.meta nor layered.meta.log)")
        }
    }

    /// Opens the database.  With `create`, a missing home (or an empty directory) becomes a new
    /// database; otherwise the home must be a Layered home.
    func open(role: Role = .follower, sync: SyncLevel = .write, create: Bool = false) throws
        -> Database
    {
        if create {
            let contents = try? FileManager.default.contentsOfDirectory(atPath: home)
            if let contents, !contents.isEmpty { try requireHome() }
        } else {
            try requireHome()
        }
        let configuration = Configuration(
            role: role, sharedDirectory: sharedDirectory, syncLevel: sync, createIfMissing: create)
        return try attempt("opening \(home)") {
            try Database(path: home, configuration: configuration)
        }
    }
}

/// Runs a library call and turns its error into a ``ToolFailure`` that says what was being done.
func attempt<Result>(_ what: String, _ body: () throws -> Result) throws -> Result {
    do {
        return try body()
    } catch let error as LayeredError {
        throw ToolFailure.failed("\(what): \(explain(error))")
    }
}

/// ``attempt(_:_:)`` for a call on a named table: "no such table" rather than the text of
/// ENOENT.
func attempt<Result>(table: String, _ body: () throws -> Result) throws -> Result {
    do {
        return try body()
    } catch let error as LayeredError {
        throw ToolFailure.failed("layered:\(table): \(explain(error, table: table))")
    }
}

/// An error's description, with what an operator can do about the common ones; for a call on a
/// named table, ENOENT and EINVAL say what they mean there.
func explain(_ error: LayeredError, table: String) -> String {
    switch error {
    case .ENOENT: "no such table"
    case .EINVAL: "not a table name (1 to 200 bytes of A-Z a-z 0-9 _ . -, not starting with .)"
    default: explain(error)
    }
}

/// An error's description, with what an operator can do about the common ones.
func explain(_ error: LayeredError) -> String {
    switch error {
    case .EBUSY:
        return "\(error) (the database is open in another process, or a cursor or a drain holds the table)"
    case .panic:
        return "the database panicked: \(error.message)"
    case .corrupt:
        return "\(error) (run `layered verify` to see where; `layered salvage` copies the intact rows of a table)"
    default:
        return error.description
    }
}

/// Closes a database, reporting a failed close (the last writes may not be durable).
func closeDatabase(_ database: Database) throws {
    try attempt("closing \(database.path)") { try database.close() }
}

/// Runs `body` with an open database and closes it afterwards, also when `body` fails.
func withDatabase<Result>(
    _ options: HomeOptions, role: Role = .follower, sync: SyncLevel = .write,
    create: Bool = false, _ body: (Database) throws -> Result
) throws -> Result {
    let database = try options.open(role: role, sync: sync, create: create)
    do {
        let result = try body(database)
        try closeDatabase(database)
        return result
    } catch {
        try? database.close()
        throw error
    }
}
