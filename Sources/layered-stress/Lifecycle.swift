import Foundation
import Layered

/// One step of a lifecycle thread's plan.
enum LifecycleStep {
    case archive(String)
    case unarchive(String)
    case offload(String)
    /// A put to a table archived just before (writes to archived tables are allowed; the row
    /// must survive an offload and come back with the table).
    case write(table: String, key: String, value: String)
    case pause(milliseconds: Double)
    /// Wait until the step-up has returned: the database is leader and the ingests drained.
    case awaitStepUp

    var text: String {
        switch self {
        case .archive(let table): "archive \(table)"
        case .unarchive(let table): "unarchive \(table)"
        case .offload(let table): "offload \(table)"
        case .write(let table, let key, let value): "write \(table)/\(key)=\(value)"
        case .pause(let milliseconds): "pause \(milliseconds)"
        case .awaitStepUp: "await step-up"
        }
    }
}

/// The lifecycle workload: archive, unarchive and explicit offload threads running beside the
/// drain/drop workload, while the database's maintenance thread offloads tables that have been
/// archived and idle for the configured period.
///
/// Each lifecycle thread owns a disjoint share of the cycle's tables, so the tool never issues
/// two lifecycle calls on one table at once; the maintenance thread is the only other party,
/// and the arbiter decides between it and the tool's unarchives.
extension Stress {
    /// The lifecycle threads' plans for one cycle, drawn from the seed.
    ///
    /// While the step-up runs, a few calls land on tables whose ingest holds follower rows (an
    /// offload is refused with `EBUSY` until the drain has emptied the ingest) and race the
    /// drain and the drops.  Once the step-up has returned the tables are drained and writes go
    /// to the stable constituents, so offloads really happen: each thread archives a batch,
    /// writes to some of the archived tables, waits about the idle period, offloads a few
    /// explicitly and unarchives others while the maintenance thread works through its (stale)
    /// snapshot of the batch, archiving some of them again.
    func lifecyclePlans(cycle: Int, live: [String]) -> [[LifecycleStep]] {
        guard settings.lifecycle, !live.isEmpty else { return [] }
        var random = StressRandom(seed: settings.seed, Stream.lifecycle.rawValue, UInt64(cycle))
        let shuffled = live.shuffled(using: &random)
        let threads = settings.lifecycleThreads
        let window = settings.offloadIdleMilliseconds + settings.maintenanceIntervalMilliseconds
        var plans: [[LifecycleStep]] = []
        for thread in 0..<threads {
            var random = StressRandom(
                seed: settings.seed, Stream.lifecycle.rawValue, UInt64(cycle), UInt64(thread + 1))
            let mine = stride(from: thread, to: shuffled.count, by: threads).map { shuffled[$0] }
            guard !mine.isEmpty else {
                plans.append([])
                continue
            }
            var plan: [LifecycleStep] = []
            for _ in 0..<min(mine.count, 4) {
                let table = mine[random.int(0..<mine.count)]
                switch random.int(0..<10) {
                case 0..<4:
                    plan.append(.archive(table))
                case 4..<7:
                    // Refused with EBUSY while the ingest holds follower rows; after the drain
                    // of the table, it succeeds.
                    plan.append(.archive(table))
                    plan.append(.pause(milliseconds: Double(random.int(0...30)) / 10))
                    plan.append(.offload(table))
                default:
                    plan.append(.unarchive(table))
                }
                plan.append(.pause(milliseconds: Double(random.int(0...20)) / 10))
            }
            plan.append(.awaitStepUp)

            let batch = Array(mine.shuffled(using: &random).prefix(max(1, mine.count / 3)))
            for (index, table) in batch.enumerated() {
                plan.append(.archive(table))
                if random.chance(0.3) {
                    plan.append(.write(
                        table: table, key: "l\(thread)-\(random.int(0..<16))",
                        value: makeValue("l\(cycle).\(thread).\(index)", length: random.int(8...64))))
                }
            }
            plan.append(.pause(milliseconds: Double(random.int(0...window))))
            for table in batch.shuffled(using: &random).prefix(max(1, batch.count / 5)) {
                plan.append(.offload(table))
            }
            for table in batch.shuffled(using: &random).prefix(max(1, batch.count * 2 / 5)) {
                plan.append(.unarchive(table))
                if random.chance(0.3) { plan.append(.archive(table)) }
            }
            plans.append(plan)
        }
        return plans
    }

    /// Runs one lifecycle thread's plan, from the step-up's launch.
    func runLifecycle(_ database: Database, plan: [LifecycleStep], race: Race) {
        race.waitLaunched()
        for step in plan {
            if race.panicked { return }
            switch step {
            case .archive(let name):
                archive(database, name, race: race)
            case .unarchive(let name):
                unarchive(database, name, race: race)
            case .offload(let name):
                offload(database, name, race: race)
            case .write(let name, let key, let value):
                guard let table = try? database.table(named: name) else { continue }
                if write(table, key, value, race: race) {
                    tally.withLock { tally.archivedWrites += 1 }
                }
            case .pause(let milliseconds):
                sleep(milliseconds: milliseconds)
            case .awaitStepUp:
                race.waitEnded()
            }
        }
    }

    /// Archives a table: marked in the model as possibly archived before the call.
    func archive(_ database: Database, _ name: String, race: Race?) {
        do {
            try model.lifecycleCall(name, archiving: true) { try database.archiveTable(name) }
            tally.count(.archive)
        } catch {
            lifecycleError(error, "archive", name, race: race)
        }
    }

    /// Unarchives a table, retrying while an offload that won the arbiter finishes (`EAGAIN`:
    /// the retry then restores the table) or another restore runs.  Returns whether it
    /// succeeded; a failure has been reported (a violation, or a panic), unless the table was
    /// dropped.
    @discardableResult
    func unarchive(_ database: Database, _ name: String, race: Race?) -> Bool {
        let deadline = ContinuousClock.now + .seconds(10)
        var retries = 0
        while true {
            if race?.panicked ?? false { return false }
            do {
                try model.lifecycleCall(name) { try database.unarchiveTable(name) }
                model.markUnarchived(name)
                tally.count(.unarchive)
                return true
            } catch {
                let error = layeredError(error)
                if error == .EAGAIN || error == .inProgress {
                    tally.withLock {
                        if error == .EAGAIN {
                            tally.unarchiveRetries += 1
                        } else {
                            tally.inProgressErrors += 1
                        }
                    }
                    retries += 1
                    if ContinuousClock.now < deadline {
                        sleep(milliseconds: 1)
                        continue
                    }
                    tally.violation("unarchive never succeeded", "\(name): \(error) after \(retries) retries in 10 s")
                    return false
                }
                lifecycleError(error, "unarchive", name, race: race)
                return false
            }
        }
    }

    /// Offloads a table explicitly (unless it is already offloaded: the call would do nothing,
    /// and the report tells the explicit offloads from the maintenance thread's).
    func offload(_ database: Database, _ name: String, race: Race?) {
        if let state = try? database.state(ofTable: name), state == .offloaded {
            tally.withLock { tally.offloadsAlreadyDone += 1 }
            return
        }
        do {
            try model.lifecycleCall(name) { try database.offloadTable(name) }
            tally.count(.offload)
            tally.withLock { tally.explicitOffloads += 1 }
        } catch {
            switch layeredError(error) {
            case .notArchived:
                tally.withLock { tally.offloadsNotArchived += 1 }
            case .EBUSY:
                tally.withLock { tally.offloadsBusy += 1 }
            default:
                lifecycleError(error, "offload", name, race: race)
            }
        }
    }

    /// The errors every lifecycle call may meet: a panic, an offload or restore under way, or
    /// a table dropped meanwhile.  Anything else breaks the C API's contract.
    private func lifecycleError(_ error: Error, _ call: String, _ name: String, race: Race?) {
        let error = layeredError(error)
        if let message = error.panicText {
            if let race {
                race.notePanic(message)
            } else {
                tally.panic(message)
            }
        } else if error == .inProgress {
            tally.withLock { tally.inProgressErrors += 1 }
        } else if error == .ENOENT
            && ((race?.mayBeDropped(name) ?? false) || model.isDropped(name))
        {
            // Dropped meanwhile.
        } else {
            tally.violation("unexpected error", "\(call) \(name): \(error)")
        }
    }

    // MARK: End-of-cycle checks

    /// An offloaded table keeps its stable constituent in the shared store and has no ingest
    /// constituent left in the home directory.
    func checkOffloadedFiles(_ name: String, context: String) {
        if fileSize("\(home)/shared/\(name).stable") == nil {
            tally.violation("offloaded table lost its stable file", "\(context): \(name)")
        }
        if fileSize("\(home)/\(name).ingest") != nil {
            tally.violation("offloaded table kept its ingest file", "\(context): \(name)")
        }
    }

    /// Every row of a listed table, for the end-of-cycle check; `nil` (after reporting a
    /// violation) when it cannot be read.
    ///
    /// A table left stopping is a violation.  An offloaded table must keep its files as
    /// ``checkOffloadedFiles(_:context:)`` says and come back when unarchived; its rows are
    /// then read like any other table's.  An archived table may be offloaded by the maintenance
    /// thread between the listing and the read (the read then throws `ENOENT`): it is looked at
    /// again and restored.
    func rowsForVerify(_ database: Database, _ name: String, state listed: TableState, context: String)
        -> [String: String]?
    {
        var state = listed
        for _ in 0..<50 {
            switch state {
            case .stopping:
                tally.violation("table left stopping", "\(context): \(name) is stopping, not offloaded")
                return nil
            case .offloaded:
                tally.withLock { tally.offloadedSeen += 1 }
                if !model.isMaybeArchived(name) {
                    tally.violation("offloaded table the tool never archived", "\(context): \(name)")
                }
                checkOffloadedFiles(name, context: context)
                guard unarchive(database, name, race: nil) else {
                    if !model.isDropped(name) {
                        tally.violation("offloaded table not restorable", "\(context): \(name)")
                    }
                    return nil
                }
                tally.withLock { tally.verifyRestores += 1 }
            case .archived:
                if !model.isMaybeArchived(name) {
                    tally.violation("archived table the tool never archived", "\(context): \(name)")
                }
            default:
                break
            }
            do {
                var actual: [String: String] = [:]
                let entries = try database.table(named: name).entries()
                for (key, value) in entries {
                    actual[String(decoding: key, as: UTF8.self)] = String(decoding: value, as: UTF8.self)
                }
                if let error = entries.error { throw error }
                return actual
            } catch LayeredError.ENOENT where settings.lifecycle && model.isMaybeArchived(name) {
                // Offloaded by the maintenance thread since the listing: look again.
                let now = try? database.state(ofTable: name)
                guard now == .offloaded else {
                    tally.violation("unreadable table", "\(context): \(name): ENOENT, state \(now.map { "\($0)" } ?? "none")")
                    return nil
                }
                state = .offloaded
            } catch {
                tally.violation("unreadable table", "\(context): \(name): \(error)")
                return nil
            }
        }
        tally.violation("unreadable table", "\(context): \(name): offloaded again after every restore")
        return nil
    }
}
