import Foundation
import Layered

/// The work of a child process in a kill-and-recover cycle.
struct ChildSpec: Codable {
    var home: String
    var settings: RunSettings
    var cycle: Int
    /// Tables that exist when the child starts (it writes to and may drop them).
    var tables: [String]
    /// Tables the child creates first.
    var create: [String]
    /// Tables the child drops (force, no checkpoint wait) while its step-up runs.
    var drops: [String]
    var writers: Int
    var writesPerPhase: Int
}

/// The child side: runs a cycle of its own (create, fill, step-up with drops and writes, more
/// writes as leader) and reports on standard output, one `write(2)` per line, every intent
/// before the call and every acknowledgement after it returns:
///
///     R | F | S | s | G | Z       ready, filling, step-up started / returned, leader writes, done
///     H                           leader writes done, waiting to be killed (--kill-before-close)
///     C name / c name             create intended / acknowledged
///     W w table key value         put intended by writer w      X w table key   remove intended
///     A w                         writer w's write acknowledged E w code        refused (code)
///     D name / d name / e name code   drop intended / acknowledged / refused
///     P message                   the database panicked          V kind detail   unexpected
struct ChildProcess {
    let spec: ChildSpec

    func run() -> Int32 {
        let database: Database
        do {
            database = try Database(path: spec.home, configuration: spec.settings.configuration(messages: nil))
        } catch {
            emitLine("V open-failed \(error)")
            return 2
        }
        emitLine("R")
        for name in spec.create {
            emitLine("C \(name)")
            do {
                try database.createTable(name)
                emitLine("c \(name)")
            } catch {
                return fail(error, "create \(name)")
            }
        }
        let all = spec.tables + spec.create
        emitLine("F")
        writePhase(database, tables: all, phase: 0, waitFor: nil)

        emitLine("S")
        let workers = Workers()
        let drops = spec.drops
        let stepUpReturned = DispatchSemaphore(value: 0)
        workers.spawn("child-dropper") {
            var refused: [String] = []
            for name in drops {
                emitLine("D \(name)")
                do {
                    try database.dropTable(name, force: true)
                    emitLine("d \(name)")
                } catch LayeredError.EBUSY {
                    refused.append(name)
                } catch {
                    emitLine("e \(name) \(layeredError(error).code)")
                }
            }
            stepUpReturned.wait()
            for name in refused {
                for attempt in 0..<2000 {
                    do {
                        try database.dropTable(name, force: true)
                        emitLine("d \(name)")
                        break
                    } catch LayeredError.EBUSY where attempt < 1999 {
                        usleep(1000)
                    } catch {
                        emitLine("e \(name) \(layeredError(error).code)")
                        break
                    }
                }
            }
        }
        let started = DispatchSemaphore(value: 0)
        workers.spawn("child-writers") { [self] in
            started.wait()
            writePhase(database, tables: all, phase: 1, waitFor: nil)
        }
        started.signal()
        let result = blocking { try await database.stepUp() }
        stepUpReturned.signal()
        workers.join()
        if case .failure(let error) = result {
            return fail(error, "step-up")
        }
        emitLine("s")

        emitLine("G")
        writePhase(database, tables: all, phase: 2, waitFor: nil)
        if spec.settings.killBeforeClose {
            // Every leader write is acknowledged and none has been flushed by a close: the
            // parent kills the process here.  It is not expected to wake up.
            emitLine("H")
            sleep(60)
        }
        emitLine("Z")
        do {
            try database.close()
        } catch {
            return fail(error, "close")
        }
        return 0
    }

    private func fail(_ error: Error, _ what: String) -> Int32 {
        let error = layeredError(error)
        if let message = error.panicText {
            emitLine("P \(message)")
            return 3
        }
        emitLine("V unexpected-error \(what): \(error)")
        return 2
    }

    /// Writers, each with its own keys, all reporting intent and acknowledgement.
    private func writePhase(_ database: Database, tables: [String], phase: Int, waitFor: DispatchSemaphore?) {
        guard !tables.isEmpty else { return }
        let workers = Workers()
        for writer in 0..<spec.writers {
            var random = StressRandom(
                seed: spec.settings.seed, Stream.childWriter.rawValue, UInt64(spec.cycle), UInt64(phase),
                UInt64(writer))
            let plan = (0..<spec.writesPerPhase).map { index in
                WriteOp(table: tables[random.int(0..<tables.count)],
                        key: "x\(writer)-\(random.int(0..<32))",
                        value: random.chance(0.15) ? nil
                            : makeValue("y\(spec.cycle).\(phase).\(writer).\(index)", length: random.int(8...120)))
            }
            workers.spawn("child-writer-\(writer)") {
                for op in plan {
                    guard let table = try? database.table(named: op.table) else { continue }
                    if let value = op.value {
                        emitLine("W \(writer) \(op.table) \(op.key) \(value)")
                    } else {
                        emitLine("X \(writer) \(op.table) \(op.key)")
                    }
                    do {
                        if let value = op.value {
                            try table.put(op.key, value)
                        } else {
                            _ = try table.remove(op.key)
                        }
                        emitLine("A \(writer)")
                    } catch {
                        emitLine("E \(writer) \(layeredError(error).code)")
                    }
                }
            }
        }
        workers.join()
    }
}

/// The parent's view of a child's report: applies each line to the model as it arrives, and
/// at the end turns every intent without an answer into an uncertainty.
final class ChildLog: @unchecked Sendable {
    private let condition = NSCondition()
    private let stress: Stress
    private var phases: Set<String> = []
    private var endOfOutput = false
    private var pendingWrites: [Int: WriteOp] = [:]
    private var pendingCreates: Set<String> = []
    private var pendingDrops: Set<String> = []
    private(set) var acknowledged = 0
    private(set) var panicMessage: String?

    init(stress: Stress) {
        self.stress = stress
    }

    func apply(_ line: Substring) {
        let fields = line.split(separator: " ", maxSplits: 4, omittingEmptySubsequences: false).map(String.init)
        guard let tag = fields.first else { return }
        let model = stress.model
        condition.lock()
        defer {
            condition.broadcast()
            condition.unlock()
        }
        switch (tag, fields.count) {
        case ("R", 1), ("F", 1), ("S", 1), ("s", 1), ("G", 1), ("H", 1), ("Z", 1):
            phases.insert(tag)
        case ("C", 2):
            pendingCreates.insert(fields[1])
        case ("c", 2):
            pendingCreates.remove(fields[1])
            model.added(fields[1])
        case ("W", 5):
            pendingWrites[Int(fields[1]) ?? -1] = WriteOp(table: fields[2], key: fields[3], value: fields[4])
        case ("X", 4):
            pendingWrites[Int(fields[1]) ?? -1] = WriteOp(table: fields[2], key: fields[3], value: nil)
        case ("A", 2):
            if let op = pendingWrites.removeValue(forKey: Int(fields[1]) ?? -1) {
                model.acknowledge(op.table, op.key, op.value)
                acknowledged += 1
            }
        case ("E", 3):
            if let op = pendingWrites.removeValue(forKey: Int(fields[1]) ?? -1),
                Int32(fields[2]) == LayeredError.panic.code
            {
                model.mayHave(op.table, op.key, op.value)
            }
        case ("D", 2):
            pendingDrops.insert(fields[1])
        case ("d", 2):
            pendingDrops.remove(fields[1])
            stress.noteDropped(fields[1])
        case ("e", 3):
            pendingDrops.remove(fields[1])
            if Int32(fields[2]) == LayeredError.panic.code {
                model.markExistenceUncertain(fields[1])
            }
        case ("P", _):
            panicMessage = String(line.dropFirst(2))
        case ("V", _):
            stress.tally.violation("child: " + (fields.count > 1 ? fields[1] : "?"), String(line))
        default:
            stress.tally.violation("child: unreadable report", String(line))
        }
    }

    func endOfStream() {
        condition.lock()
        endOfOutput = true
        condition.broadcast()
        condition.unlock()
    }

    /// Waits until the child reported `phase` (true) or its output ended first (false).
    func wait(for phase: String) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        while !phases.contains(phase) && !endOfOutput { condition.wait() }
        return phases.contains(phase)
    }

    /// Intents the child never answered: their outcome is unknown.
    func settle() {
        condition.lock()
        defer { condition.unlock() }
        let model = stress.model
        for op in pendingWrites.values { model.mayHave(op.table, op.key, op.value) }
        for name in pendingCreates { model.added(name, uncertain: true) }
        for name in pendingDrops { model.markExistenceUncertain(name) }
        pendingWrites = [:]
        pendingCreates = []
        pendingDrops = []
    }
}

extension Stress {
    /// A cycle in a child process killed with SIGKILL at a point chosen by the seed (while it
    /// fills, while its step-up drains, or while it writes as leader), then recovery: reopen and
    /// verify that every acknowledged write, create and drop survived and nothing else appeared.
    func crashCycle(_ cycle: Int) -> Bool {
        var random = StressRandom(seed: settings.seed, Stream.child.rawValue, UInt64(cycle))
        let tables = model.liveNames
        let create = (0..<max(2, settings.tables / 4)).map { "x\(cycle)_\($0)" }
        let drops = Array((tables + create).shuffled(using: &random).prefix(max(1, settings.tables / 4)))
        var killPhase = ["F", "S", "S", "G"][random.int(0..<4)]
        var killDelay = Double(random.int(0...40))
        if settings.killBeforeClose {
            killPhase = "H"
            killDelay = 0
        }
        let spec = ChildSpec(
            home: home, settings: settings, cycle: cycle, tables: tables, create: create, drops: drops,
            writers: settings.writers, writesPerPhase: max(32, 2 * settings.tables))

        digest.add("child: kill in \(killPhase) after \(killDelay) ms, drops \(drops.joined(separator: ","))")
        closeDatabase(reason: "before the child")
        runChild(killPhase: killPhase, killDelay: killDelay, spec: spec)
        return database != nil
    }

    private func runChild(killPhase: String, killDelay: Double, spec: ChildSpec) {
        let log = ChildLog(stress: self)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.executablePath)
        let json = String(decoding: try! JSONEncoder().encode(spec), as: UTF8.self)
        process.arguments = ["--child-spec", json]
        let pipe = Pipe()
        process.standardOutput = pipe
        do {
            try process.run()
        } catch {
            tally.violation("child failed", "cannot start \(Self.executablePath): \(error)")
            openDatabase()
            return
        }
        try? pipe.fileHandleForWriting.close()
        let reader = Workers()
        reader.spawn("child-reader") {
            let handle = pipe.fileHandleForReading
            var buffer = Data()
            while true {
                let data = handle.availableData
                if data.isEmpty { break }
                buffer.append(data)
                while let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                    let line = String(decoding: buffer[buffer.startIndex..<newline], as: UTF8.self)
                    buffer.removeSubrange(buffer.startIndex...newline)
                    log.apply(Substring(line))
                }
            }
            log.endOfStream()
        }

        var killed = false
        if log.wait(for: killPhase) {
            sleep(milliseconds: killDelay)
            if process.isRunning {
                killed = kill(process.processIdentifier, SIGKILL) == 0
            }
        }
        process.waitUntilExit()
        reader.join()
        log.settle()
        let status = process.terminationStatus
        if process.terminationReason == .uncaughtSignal && status == SIGKILL {
            killed = true
        }
        tally.withLock {
            if killed {
                tally.childrenKilled += 1
            } else {
                tally.childrenFinished += 1
            }
            tally.acknowledgedBeforeKill += log.acknowledged
        }
        if let message = log.panicMessage {
            tally.panic("child: \(message)")
        } else if !killed && status != 0 {
            tally.violation("child failed", "exit status \(status)")
        }
        tally.count(.crash)
        guard openDatabase() else { return }
        verify(database!, fullDroppedCheck: true, context: killed ? "recovery after kill -9" : "after child")
    }
}

extension Stress {
    /// This executable, to run as the child.
    static let executablePath: String = {
        var buffer = [CChar](repeating: 0, count: 4096)
        let length = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard length > 0 else { return CommandLine.arguments[0] }
        return String(decoding: buffer[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }()
}
