import ArgumentParser
import Foundation
import Layered

@main
struct LayeredStress: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "layered-stress",
        abstract: "Stress Layered's table lifecycle: step-up drains racing drops, creates, reads, writes, checkpoints, archive, unarchive and offload, reopens and kill -9.",
        discussion: """
            Each cycle opens (or keeps) the database as a follower, creates tables, fills their \
            ingest constituents from concurrent writers, then steps up while other threads drop \
            (force, no checkpoint wait), create, read, write and checkpoint.  Some drops are \
            made while a reader thread holds a cursor open on the table (--hold-rate), and some \
            drops that returned EBUSY are not retried (--no-retry-rate): those tables must stay \
            intact.  After the step-up every table left must have an empty ingest constituent, \
            and a fresh leader write to a key that was in the ingest must read back.  It then \
            verifies every invariant, steps down, and sometimes closes and reopens the database \
            or runs a child process that it kills with SIGKILL mid-cycle before recovering.  The \
            exit status is 0 only if every invariant held.

            The lifecycle workload (on unless --no-lifecycle) runs alongside: the database's \
            maintenance thread offloads tables archived for --offload-idle ms, while lifecycle \
            threads archive, unarchive (retrying EAGAIN) and explicitly offload tables during and \
            after the step-up.  Every cycle then checks that no table is left stopping, that \
            every offloaded table is listed, keeps its stable file and lost its ingest file, and \
            comes back with all its acknowledged rows when unarchived.
            """,
        version: "0.1.0")

    @Option(name: .shortAndLong, help: "Seconds to run (default 30, unless --cycles is given).")
    var duration: Double?

    @Option(name: .shortAndLong, help: "Cycles to run instead of a duration.")
    var cycles: Int?

    @Option(help: "Tables created per cycle; about half of the live tables are dropped each cycle.")
    var tables = 48

    @Option(help: "Writes per table per cycle while filling the ingest constituents.")
    var rows = 40

    @Option(help: "Writer threads (filling, and writing during the step-up).")
    var writers = 4

    @Option(help: "Reader threads during the step-up.")
    var readers = 2

    @Option(help: "Threads dropping tables (force, no checkpoint wait) during the step-up.")
    var droppers = 2

    @Option(help: "Probability that a drop of the step-up phase is made while a reader thread holds a cursor open on the table (the drop must return EBUSY and change nothing).")
    var holdRate = 0.25

    @Option(help: "Probability that a drop of the step-up phase that returned EBUSY is not retried: the table must then be left intact (every row readable, its ingest empty after the step-up, droppable later).")
    var noRetryRate = 0.35

    @Option(help: "Threads that drain at step-up, including the calling one (1-64).")
    var drainThreads = 4

    @Option(help: "Drain policy: \(PolicyName.allCases.map(\.rawValue).joined(separator: ", ")).")
    var policy: PolicyName = .skipMissing

    @Option(help: "Durability of each write: none, write, fsync.  With none, writes are durable only at checkpoint or close, so kill -9 cycles lose acknowledged writes (and say so).")
    var sync: SyncName = .write

    @Option(help: "Seed of the schedule (default: random; every run prints it).")
    var seed: UInt64?

    @Option(help: "Database home directory (default: a temporary one, removed afterwards unless --keep).")
    var home: String?

    @Flag(help: "Keep the home directory.")
    var keep = false

    @Option(
        name: .customLong("failpoint"),
        help: ArgumentHelp(
            "A failpoint NAME=ACTION to set at every open, e.g. drain.before_lock=sleep(1) (repeatable; default none).",
            discussion: "A sleep or pause only widens a window that exists anyway; return(ERR) injects an error, which the tool then reports."))
    var failpoints: [String] = []

    @Flag(
        inversion: .prefixedNo,
        help: "Run the lifecycle workload: archive, unarchive and offload threads, and the maintenance thread's auto-offload.")
    var lifecycle = true

    @Option(help: "Lifecycle threads (archive, unarchive, explicit offload); each owns its own tables.")
    var lifecycleThreads = 2

    @Option(help: "Milliseconds a table stays archived and idle before the maintenance thread offloads it (1 or more).")
    var offloadIdle = 5

    @Option(help: "Milliseconds between the maintenance thread's looks (1 or more).")
    var maintenanceInterval = 5

    @Option(help: "Probability that a cycle closes and reopens the database.")
    var reopenRate = 0.2

    @Option(help: "Probability that a cycle runs a child process and kills it with SIGKILL.")
    var crashRate = 0.1

    @Flag(help: "Kill every child at one fixed point instead of one the seed picks: after its leader writes are acknowledged and before it closes.  With --sync none the recovery check must then find lost writes.")
    var killBeforeClose = false

    @Flag(help: "Stop at the first cycle with a violation.")
    var stopOnFailure = false

    @Flag(name: .shortAndLong, help: "Print the library's messages and each cycle's summary.")
    var verbose = false

    /// Set when the tool runs itself as the child of a kill-and-recover cycle: the child's
    /// work, as JSON.
    @Option(help: .hidden)
    var childSpec: String?

    func validate() throws {
        guard tables >= 1, rows >= 1, writers >= 1, readers >= 0, droppers >= 1 else {
            throw ValidationError("--tables, --rows, --writers and --droppers must be at least 1")
        }
        guard (1...64).contains(drainThreads) else {
            throw ValidationError("--drain-threads must be 1 to 64")
        }
        guard (0...1).contains(reopenRate), (0...1).contains(crashRate), (0...1).contains(holdRate),
            (0...1).contains(noRetryRate)
        else {
            throw ValidationError("--reopen-rate, --crash-rate, --hold-rate and --no-retry-rate are probabilities (0 to 1)")
        }
        guard lifecycleThreads >= 1, offloadIdle >= 1, maintenanceInterval >= 1 else {
            throw ValidationError("--lifecycle-threads, --offload-idle and --maintenance-interval must be at least 1")
        }
        for item in failpoints where item != "none" && !item.contains("=") {
            throw ValidationError("--failpoint takes NAME=ACTION, e.g. drain.copy=sleep(2)")
        }
    }

    func run() throws {
        if let childSpec {
            let spec = try JSONDecoder().decode(ChildSpec.self, from: Data(childSpec.utf8))
            throw ExitCode(ChildProcess(spec: spec).run())
        }
        var generator = SystemRandomNumberGenerator()
        let settings = RunSettings(
            seed: seed ?? generator.next() % 1_000_000_000,
            duration: cycles == nil ? (duration ?? 30) : duration,
            cycles: cycles,
            tables: tables, rows: rows, writers: writers, readers: readers,
            droppers: droppers, holdRate: holdRate, noRetryRate: noRetryRate,
            drainThreads: drainThreads, policy: policy, sync: sync,
            failpoints: failpoints.filter { $0 != "none" },
            reopenRate: reopenRate, crashRate: crashRate, killBeforeClose: killBeforeClose,
            lifecycle: lifecycle, lifecycleThreads: lifecycleThreads,
            offloadIdleMilliseconds: offloadIdle, maintenanceIntervalMilliseconds: maintenanceInterval,
            stopOnFailure: stopOnFailure, verbose: verbose)

        let temporary = home == nil
        let homePath: String
        if let home {
            homePath = home
        } else {
            let template = NSTemporaryDirectory() + "layered-stress.XXXXXX"
            var buffer = Array(template.utf8CString)
            guard mkdtemp(&buffer) != nil else {
                throw ValidationError("cannot create a temporary directory in \(NSTemporaryDirectory())")
            }
            homePath = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) + "/db"
        }
        defer {
            if temporary && !keep {
                try? FileManager.default.removeItem(atPath: (homePath as NSString).deletingLastPathComponent)
            } else {
                Output.line("home kept at \(homePath)")
            }
        }

        let stress = Stress(settings: settings, home: homePath)
        let passed = stress.run()
        if !passed { throw ExitCode(1) }
    }
}

/// The drain policies, by their command-line names.
enum PolicyName: String, CaseIterable, ExpressibleByArgument, Codable {
    case skipMissing = "skip-missing"
    case readLock = "read-lock"
    case queueScan = "queue-scan"
    case unprotected

    var policy: DrainPolicy {
        switch self {
        case .skipMissing: .skipMissing
        case .readLock: .readLock
        case .queueScan: .queueScan
        case .unprotected: .unprotected
        }
    }
}

enum SyncName: String, CaseIterable, ExpressibleByArgument, Codable {
    case none, write, fsync

    var level: SyncLevel {
        switch self {
        case .none: .buffered
        case .write: .write
        case .fsync: .fsync
        }
    }
}

/// The settings of a run, resolved from the options.
struct RunSettings: Codable {
    var seed: UInt64
    var duration: Double?
    var cycles: Int?
    var tables: Int
    var rows: Int
    var writers: Int
    var readers: Int
    var droppers: Int
    /// Probability that a step-up-phase drop is made while a reader holds the table.
    var holdRate: Double
    /// Probability that a step-up-phase drop that returned `EBUSY` is not retried.
    var noRetryRate: Double
    var drainThreads: Int
    var policy: PolicyName
    var sync: SyncName
    var failpoints: [String]
    var reopenRate: Double
    var crashRate: Double
    /// Whether each child is killed after its leader writes and before it closes (else at a
    /// point the seed picks).
    var killBeforeClose: Bool
    /// Whether the lifecycle workload runs (and the maintenance thread auto-offloads).
    var lifecycle: Bool
    var lifecycleThreads: Int
    var offloadIdleMilliseconds: Int
    var maintenanceIntervalMilliseconds: Int
    var stopOnFailure: Bool
    var verbose: Bool

    var replayHint: String {
        if let cycles { return " --cycles \(cycles)" }
        return ""
    }

    /// The failpoints as a name-to-action map for ``Configuration``.
    var failpointMap: [String: String] {
        var map: [String: String] = [:]
        for item in failpoints {
            guard let equals = item.firstIndex(of: "=") else { continue }
            map[String(item[..<equals])] = String(item[item.index(after: equals)...])
        }
        return map
    }

    func configuration(messages: (@Sendable (String) -> Void)?) -> Configuration {
        Configuration(
            drainThreads: drainThreads, drainPolicy: policy.policy, syncLevel: sync.level,
            failpoints: failpointMap, messageHandler: messages,
            offloadIdle: lifecycle ? .milliseconds(offloadIdleMilliseconds) : nil,
            maintenanceInterval: .milliseconds(lifecycle ? maintenanceIntervalMilliseconds : 1000))
    }

    /// The lifecycle settings, as the header and the report print them.
    var lifecycleSummary: String {
        lifecycle
            ? "on (\(lifecycleThreads) threads, offload after \(offloadIdleMilliseconds) ms idle, maintenance every \(maintenanceIntervalMilliseconds) ms)"
            : "off"
    }
}
