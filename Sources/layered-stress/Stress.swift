import Foundation
import Layered

/// One write of a plan: a put (`value`) or a remove (`nil`).
struct WriteOp {
    var table: String
    var key: String
    var value: String?
}

/// One read of a plan: a get of `key`, or a scan of the table when `key` is `nil`.
struct ReadOp {
    var table: String
    var key: String?
}

/// The run: cycles of create, fill, step-up under fire, verify, step down, reopen or crash.
///
/// Each thread's operations are planned on the main thread from the seed before the thread
/// starts (and folded into the schedule digest); threads only execute their plans.
final class Stress: @unchecked Sendable {
    let settings: RunSettings
    let home: String
    let model = Model()
    let tally = Tally()
    private(set) var database: Database?
    var digest = ScheduleDigest()
    /// How long the drops of a step-up phase are spread over: the last drain's duration.
    private var expectedDrain: Duration = .milliseconds(100)
    private let droppedLock = NSLock()
    private var droppedThisCycle: Set<String> = []

    /// Keys each writer owns per table: writers never share a key, so the order of the writes
    /// to a key is the order of its writer's acknowledgements.
    static let keysPerWriter = 64

    init(settings: RunSettings, home: String) {
        self.settings = settings
        self.home = home
    }

    // MARK: The run

    /// Runs every cycle and the final checks; prints the report.  Returns whether every
    /// invariant held.
    func run() -> Bool {
        let limit = settings.cycles.map { "\($0) cycles" } ?? String(format: "%.0f s", settings.duration ?? 0)
        Output.line("layered-stress: seed \(settings.seed) (replay with --seed \(settings.seed)), \(limit), "
            + "policy \(settings.policy.rawValue), \(settings.tables) tables/cycle, \(settings.writers) writers, "
            + "\(settings.readers) readers, \(settings.droppers) droppers (hold rate \(settings.holdRate), "
            + "no-retry rate \(settings.noRetryRate)), \(settings.drainThreads) drain threads, "
            + "failpoints: \(settings.failpoints.isEmpty ? "none" : settings.failpoints.joined(separator: ";")), "
            + "lifecycle \(settings.lifecycleSummary)")
        Output.line("home: \(home)")
        let started = ContinuousClock.now
        let progress = Progress(stress: self, started: started)
        if openDatabase() {
            progress.start()
            var cycle = 0
            while !isFinished(cycle: cycle, elapsed: (ContinuousClock.now - started).seconds) {
                tally.withLock { tally.cycle = cycle }
                let violationsBefore = tally.violations
                let canContinue = runCycle(cycle)
                tally.withLock { tally.cycles += 1 }
                cycle += 1
                if !canContinue || (settings.stopOnFailure && tally.violations > violationsBefore) {
                    break
                }
            }
            finish()
            progress.stop()
        }
        Output.line(tally.report(options: settings, elapsed: ContinuousClock.now - started, digest: digest.value))
        return tally.violations == 0
    }

    private func isFinished(cycle: Int, elapsed: Double) -> Bool {
        if let cycles = settings.cycles, cycle >= cycles { return true }
        if let duration = settings.duration, elapsed >= duration { return true }
        return false
    }

    /// The last checks: every table that is left can be dropped, the database then lists none,
    /// and its size is the bare buffer; the dropped tables stay gone after a final reopen.
    private func finish() {
        guard let database else { return }
        for name in model.liveNames {
            dropWithRetry(database, name, race: nil)
        }
        verify(database, fullDroppedCheck: false, context: "final")
        if reopen(reason: "final") {
            verify(self.database!, fullDroppedCheck: true, context: "final reopen")
        }
        if let statistics = try? self.database?.statistics() { tally.absorb(statistics) }
        do {
            try self.database?.close()
        } catch {
            tally.violation("close failed", "\(error)")
        }
        self.database = nil
    }

    // MARK: Opening and closing

    private func configuration() -> Configuration {
        let tally = self.tally
        let verbose = settings.verbose
        return settings.configuration { message in
            tally.withLock { tally.messages += 1 }
            if verbose { Output.line("library: \(message)") }
        }
    }

    @discardableResult
    func openDatabase() -> Bool {
        do {
            database = try Database(path: home, configuration: configuration())
            model.forgetHolds()
            return true
        } catch {
            tally.violation("open failed", "\(home): \(error)")
            database = nil
            return false
        }
    }

    /// Closes the database.  A close after a panic throws the panic: expected.
    func closeDatabase(reason: String) {
        if let database {
            if let statistics = try? database.statistics() { tally.absorb(statistics) }
            do {
                try database.close()
            } catch LayeredError.panic {
            } catch {
                tally.violation("close failed", "\(reason): \(error)")
            }
        }
        database = nil
    }

    /// Closes and reopens the database.
    @discardableResult
    func reopen(reason: String) -> Bool {
        closeDatabase(reason: reason)
        tally.count(.reopen)
        return openDatabase()
    }

    func noteDropped(_ name: String) {
        model.markDropped(name)
        droppedLock.lock()
        droppedThisCycle.insert(name)
        droppedLock.unlock()
    }

    // MARK: One cycle

    /// Runs one cycle; returns `false` if the run cannot continue (the database cannot be
    /// opened).
    private func runCycle(_ cycle: Int) -> Bool {
        guard let database else { return false }
        var random = StressRandom(seed: settings.seed, Stream.cycle.rawValue, UInt64(cycle))
        droppedLock.lock()
        droppedThisCycle = []
        droppedLock.unlock()
        digest.add("cycle \(cycle)")

        // Create, then fill the ingest constituents from concurrent writers.
        for index in 0..<settings.tables {
            create(database, "t\(cycle)_\(index)", race: nil)
        }
        let live = model.liveNames
        digest.add(live.joined(separator: ","))
        fill(database, cycle: cycle, live: live)

        // Step up while other threads drop, create, read, write and checkpoint.
        let queued = tablesWithIngestData(database, live)
        let dropCount = min(live.count, max(settings.tables / 2, live.count - 2 * settings.tables))
        let targets = Array(live.shuffled(using: &random).prefix(dropCount))
        let stepUpDelay = Double(random.int(0...2))
        let reopenNow = random.chance(settings.reopenRate)
        let crashNow = random.chance(settings.crashRate)
        digest.add("drops " + targets.joined(separator: ","))
        digest.add("step-up after \(stepUpDelay) ms, reopen \(reopenNow), crash \(crashNow)")

        let (race, report) = stepUpUnderFire(database, cycle: cycle, live: live, targets: targets,
                                             delay: stepUpDelay)
        classifyDrops(race: race, queued: Set(queued), report: report, tally: tally)
        if report != nil, let built = race.queueBuilt, let end = race.stepUpEnd {
            expectedDrain = max(.milliseconds(5), end - built)
        }

        if let message = race.panicMessage {
            tally.panic(message)
            guard reopen(reason: "panic") else { return false }
        }
        guard let database = self.database else { return false }
        let stale = report != nil && race.panicMessage == nil
            ? checkAfterStepUp(database, cycle: cycle, race: race) : []
        verify(database, fullDroppedCheck: false, context: "after step-up")
        // The tables whose EBUSY drop was not retried have been checked intact; now they must
        // be droppable.  Dropping them here also keeps the next cycles' schedule independent of
        // which drops happened to meet EBUSY.  A table found with a stale ingest is dropped too,
        // once reported: kept, the one fault would show again in later cycles.
        for name in Set(race.unretried.keys).union(stale).sorted() where model.table(name) != nil {
            dropWithRetry(database, name, race: nil)
        }

        do {
            try database.stepDown()
            tally.count(.stepDown)
            let role = try database.role
            if role != .follower { tally.violation("wrong role", "\(role) after step-down") }
        } catch {
            tally.violation(layeredError(error).isPanic ? "panic" : "step-down failed", "\(error)")
            guard reopen(reason: "step-down") else { return false }
        }

        if crashNow {
            return crashCycle(cycle)
        }
        if reopenNow {
            guard reopen(reason: "cycle") else { return false }
            verify(self.database!, fullDroppedCheck: true, context: "after reopen")
        }
        if settings.verbose {
            Output.line("cycle \(cycle): \(live.count) tables, \(targets.count) drops, step-up "
                + (report.map { "queued \($0.tablesQueued), drained \($0.tablesDrained), skipped \($0.tablesSkipped), \(String(format: "%.1f", $0.duration.seconds * 1000)) ms" } ?? "panicked")
                + ", violations so far \(tally.violations)")
        }
        return true
    }

    /// Creates a table and records it; a panic leaves its existence uncertain.
    private func create(_ database: Database, _ name: String, race: Race?) {
        do {
            try database.createTable(name)
            model.added(name)
            tally.count(.create)
        } catch {
            let error = layeredError(error)
            if let message = error.panicText {
                race?.notePanic(message)
                model.added(name, uncertain: true)
            } else {
                tally.violation("unexpected error", "create \(name): \(error)")
            }
        }
    }

    /// Handles for the live tables; a table the model has but the database does not is left
    /// for ``verify`` to report.
    private func handles(_ database: Database, _ names: [String]) -> [String: Table] {
        var handles: [String: Table] = [:]
        for name in names {
            if let table = try? database.table(named: name) { handles[name] = table }
        }
        return handles
    }

    /// Concurrent writers fill the ingest constituents: each writer its own keys, in tables
    /// chosen by the seed.
    private func fill(_ database: Database, cycle: Int, live: [String]) {
        guard !live.isEmpty else { return }
        let perWriter = max(1, live.count * settings.rows / settings.writers)
        var plans: [[WriteOp]] = []
        for writer in 0..<settings.writers {
            var random = StressRandom(seed: settings.seed, Stream.fill.rawValue, UInt64(cycle), UInt64(writer))
            var plan: [WriteOp] = []
            plan.reserveCapacity(perWriter)
            for index in 0..<perWriter {
                let table = live[random.int(0..<live.count)]
                let key = "a\(writer)-\(random.int(0..<Self.keysPerWriter))"
                let value = random.chance(0.1) ? nil
                    : makeValue("f\(cycle).\(writer).\(index)", length: random.int(8...160))
                plan.append(WriteOp(table: table, key: key, value: value))
            }
            digestPlan(plan)
            plans.append(plan)
        }
        let handles = handles(database, live)
        let workers = Workers()
        model.resetIngestKeys()
        for (writer, plan) in plans.enumerated() {
            workers.spawn("fill-\(writer)") { [self] in
                for op in plan {
                    guard let table = handles[op.table] else { continue }
                    write(table, op.key, op.value, race: nil, toIngest: true)
                }
            }
        }
        workers.join()
    }

    private func digestPlan(_ plan: [WriteOp]) {
        for op in plan {
            digest.add(op.table)
            digest.add(op.key)
            digest.add(op.value ?? "-")
        }
    }

    /// The live tables whose ingest constituent holds data: the ones the step-up will queue.
    private func tablesWithIngestData(_ database: Database, _ live: [String]) -> [String] {
        live.filter { ingestHoldsData(database, $0) ?? false }
    }

    /// Whether a table's ingest constituent holds data, through a read-only cursor closed
    /// before returning; `nil` if it cannot be looked at.
    private func ingestHoldsData(_ database: Database, _ name: String) -> Bool? {
        guard let table = try? database.table(named: name),
            let cursor = try? Cursor(table: table, constituent: .ingest)
        else { return nil }
        defer { try? cursor.close() }
        return try? cursor.next()
    }

    /// One acknowledged-or-not write; the model records only what was acknowledged.  Returns
    /// whether it was acknowledged.  `toIngest`: a follower-phase write, recorded as an ingest
    /// key (a put, or a remove that found the key) for the checks after the step-up.
    @discardableResult
    func write(_ table: Table, _ key: String, _ value: String?, race: Race?, toIngest: Bool = false) -> Bool {
        let lifecycle = model.lifecycleToken(table.name)
        do {
            let reached = try model.holding(table.name) {
                if let value {
                    try table.put(key, value)
                    return true
                }
                return try table.remove(key)
            }
            model.acknowledge(table.name, key, value)
            if toIngest && reached { model.noteIngestWrite(table.name, key, removed: value == nil) }
            tally.count(value == nil ? .remove : .put)
            return true
        } catch {
            let error = layeredError(error)
            if let message = error.panicText {
                // Not acknowledged, not refused either: the write may or may not be there.
                race?.notePanic(message)
                model.mayHave(table.name, key, value)
            } else if error == .ENOENT
                && ((race?.mayBeDropped(table.name) ?? false) || model.isDropped(table.name))
            {
                // The table was dropped: the write was refused.
            } else if error == .ENOENT && model.mayHaveBeenOffloaded(table.name, since: lifecycle) {
                // The table was offloaded: the write was refused.
                tally.withLock { tally.offloadedWrites += 1 }
            } else {
                tally.violation(
                    "unexpected error", "\(value == nil ? "remove" : "put") \(table.name)/\(key): \(error)")
            }
            return false
        }
    }

    // MARK: The step-up under fire

    private func stepUpUnderFire(
        _ database: Database, cycle: Int, live: [String], targets: [String], delay: Double
    ) -> (Race, StepUpReport?) {
        let race = Race(targets: Set(targets))
        let handles = handles(database, live)
        let workers = Workers()
        let seed = settings.seed

        // Each target is dropped before the step-up starts, at a seeded fraction of the
        // expected drain time (the previous step-up's, from its queue build to its return) after
        // the queue is built, or after the step-up returns, so that drops land before, during
        // and after the drain of their tables.  The fractions are the schedule; how long a
        // drain takes is the machine's.
        let beforeLaunch = DispatchGroup()
        let expected = expectedDrain
        for dropper in 0..<settings.droppers {
            var random = StressRandom(seed: seed, Stream.dropper.rawValue, UInt64(cycle), UInt64(dropper))
            let mine = stride(from: dropper, to: targets.count, by: settings.droppers).map { targets[$0] }
            // Which drops are made while a reader holds the table, and which EBUSY drops are
            // left unretried: drawn from a stream of their own, so the timing plan is unchanged.
            var decide = StressRandom(seed: seed, Stream.dropDecision.rawValue, UInt64(cycle), UInt64(dropper))
            var plans: [String: DropPlan] = [:]
            for name in mine {
                plans[name] = DropPlan(
                    holdByReader: decide.chance(settings.holdRate),
                    retryIfBusy: !decide.chance(settings.noRetryRate))
            }
            digest.add("dropper \(dropper) decisions: " + mine.map { "\($0):\(plans[$0]!.text)" }.joined(separator: ","))
            let reader = plans.values.contains { $0.holdByReader }
                ? ReaderHold(
                    name: "dropper-\(dropper)-reader", database: database, model: model,
                    unexpected: { [tally] name, error in
                        tally.violation("unexpected error", "reader holding \(name): \(error)")
                    },
                    panicked: { message in race.notePanic(message) })
                : nil
            var early: [String] = []
            var paced: [(name: String, permille: Int)] = []
            var late: [String] = []
            for name in mine {
                let when = random.next() % 20
                if when < 2 {
                    early.append(name)
                } else if when < 18 {
                    paced.append((name, random.int(0..<1000)))
                } else {
                    late.append(name)
                }
            }
            // A held drop is paced early in the drain, where its table is most likely still
            // queued: a drop that meets a queued item and then the reader must leave the item.
            paced = paced.map { plans[$0.name]!.holdByReader ? ($0.name, decide.int(0..<200)) : $0 }
            paced.sort { $0.permille < $1.permille }
            digest.add("dropper \(dropper): early \(early), paced \(paced.map { "\($0.name)@\($0.permille)" }), late \(late)")
            beforeLaunch.enter()
            workers.spawn("dropper-\(dropper)") { [self, early, paced, late, plans] in
                var refused: [(name: String, byReader: Bool)] = []
                /// One drop, made while the reader holds the table if the plan says so.
                func attempt(_ name: String) {
                    var held = false
                    if plans[name]!.holdByReader, let reader {
                        held = reader.acquire(name)
                        if !held { tally.withLock { tally.holdsNotTaken += 1 } }
                    }
                    let outcome = dropOnce(database, name, race: race, heldByReader: held)
                    if held { reader?.release() }
                    if outcome == .busy { refused.append((name, held)) }
                }
                for name in early { attempt(name) }
                beforeLaunch.leave()
                race.waitLaunched()
                let queueBuilt = race.waitQueueBuilt() ?? .now
                for (name, permille) in paced {
                    let due = queueBuilt + expected * (Double(permille) / 1000)
                    while ContinuousClock.now < due && !race.isEnded && !race.panicked {
                        usleep(100)
                    }
                    if race.panicked { break }
                    attempt(name)
                }
                race.waitEnded()
                for name in late where !race.panicked { attempt(name) }
                reader?.finish()
                // A refused drop is retried once the step-up is over, as a caller would; or, as
                // the plan says, left alone: EBUSY changed nothing, so the table stays, intact.
                for (name, byReader) in refused {
                    if plans[name]!.retryIfBusy {
                        dropWithRetry(database, name, race: race)
                    } else {
                        race.noteUnretried(name, byReader: byReader)
                        tally.withLock {
                            tally.unretriedBusy += 1
                            if byReader { tally.unretriedReaderBusy += 1 }
                        }
                    }
                }
            }
        }

        let creates = max(1, settings.tables / 8)
        var creatorRandom = StressRandom(seed: seed, Stream.creator.rawValue, UInt64(cycle))
        let createGaps = (0..<creates).map { _ in Double(creatorRandom.int(0...20)) / 10 }
        let createRows = (0..<creates).map { index in
            (0..<4).map { row in
                WriteOp(table: "n\(cycle)_\(index)", key: "c\(index)-\(row)",
                        value: makeValue("n\(cycle).\(index).\(row)", length: creatorRandom.int(8...64)))
            }
        }
        digest.add("creates \(createGaps)")
        createRows.forEach(digestPlan)
        workers.spawn("creator") { [self] in
            for (index, gap) in createGaps.enumerated() {
                sleep(milliseconds: gap)
                if race.panicked { break }
                let name = "n\(cycle)_\(index)"
                create(database, name, race: race)
                guard model.table(name) != nil, let table = try? database.table(named: name) else { continue }
                for op in createRows[index] where !race.panicked {
                    write(table, op.key, op.value, race: race)
                }
            }
        }

        let writesPerWriter = max(16, settings.tables)
        for writer in 0..<settings.writers {
            var random = StressRandom(seed: seed, Stream.raceWriter.rawValue, UInt64(cycle), UInt64(writer))
            let plan = (0..<writesPerWriter).map { index in
                WriteOp(table: live[random.int(0..<live.count)],
                        key: "b\(writer)-\(random.int(0..<Self.keysPerWriter))",
                        value: random.chance(0.15) ? nil
                            : makeValue("r\(cycle).\(writer).\(index)", length: random.int(8...160)))
            }
            digestPlan(plan)
            workers.spawn("writer-\(writer)") { [self] in
                // Writes wait while the step-up drains, then go to the stable constituents.
                race.waitLaunched()
                for op in plan {
                    if race.panicked { break }
                    guard let table = handles[op.table] else { continue }
                    write(table, op.key, op.value, race: race)
                }
            }
        }

        let readsPerReader = 4 * max(16, settings.tables)
        for reader in 0..<settings.readers {
            var random = StressRandom(seed: seed, Stream.reader.rawValue, UInt64(cycle), UInt64(reader))
            let plan = (0..<readsPerReader).map { _ in
                ReadOp(table: live[random.int(0..<live.count)],
                       key: random.chance(0.1) ? nil
                           : "a\(random.int(0..<settings.writers))-\(random.int(0..<Self.keysPerWriter))")
            }
            for op in plan {
                digest.add(op.table)
                digest.add(op.key ?? "scan")
            }
            workers.spawn("reader-\(reader)") { [self] in
                for op in plan {
                    if race.panicked { break }
                    guard let table = handles[op.table] else { continue }
                    read(table, op.key, race: race)
                }
            }
        }

        for (thread, plan) in lifecyclePlans(cycle: cycle, live: live).enumerated() {
            digest.add("lifecycle \(thread): " + plan.map(\.text).joined(separator: ","))
            workers.spawn("lifecycle-\(thread)") { [self] in
                runLifecycle(database, plan: plan, race: race)
            }
        }

        var checkpointRandom = StressRandom(seed: seed, Stream.checkpointer.rawValue, UInt64(cycle))
        let checkpointGaps = (0..<2).map { _ in Double(checkpointRandom.int(0...30)) / 10 }
        digest.add("checkpoints \(checkpointGaps)")
        workers.spawn("checkpointer") { [self] in
            for gap in checkpointGaps {
                sleep(milliseconds: gap)
                if race.panicked { break }
                do {
                    try database.checkpoint()
                    tally.count(.checkpoint)
                    checkSize(try database.statistics(), context: "checkpoint during the step-up phase")
                } catch {
                    let error = layeredError(error)
                    if let message = error.panicText {
                        race.notePanic(message)
                    } else {
                        tally.violation("unexpected error", "checkpoint: \(error)")
                    }
                }
            }
        }

        beforeLaunch.wait()
        sleep(milliseconds: delay)
        // A probe, not an injection: "sleep(0)" on drain.queued delays nothing, and waiting for
        // it tells when the step-up has built its queue.
        let probe = settings.failpointMap["drain.queued"] == nil
            && (try? database.setFailpoint("drain.queued", to: "sleep(0)")) != nil
        let prober = Workers()
        if probe {
            prober.spawn("queue-probe") {
                if case .success = blocking({ try await database.waitForFailpoint("drain.queued", timeout: .seconds(60)) }) {
                    race.noteQueueBuilt()
                }
            }
        }
        race.launched(baselineFinished: finishedItems(database))
        let result = blocking { try await database.stepUp() }
        race.ended()
        prober.join()
        if probe { try? database.setFailpoint("drain.queued", to: "off") }
        workers.join()

        switch result {
        case .success(let report):
            tally.count(.stepUp)
            tally.withLock {
                tally.tablesQueued += Int(report.tablesQueued)
                tally.tablesDrained += Int(report.tablesDrained)
                tally.tablesSkipped += Int(report.tablesSkipped)
                tally.rowsDrained += report.rows
                tally.bytesDrained += report.bytes
                tally.drainTime += report.duration
            }
            if let role = try? database.role, role != .leader {
                tally.violation("wrong role", "\(role) after step-up")
            }
            return (race, report)
        case .failure(let error):
            let error = layeredError(error)
            if let message = error.panicText {
                race.notePanic(message)
            } else {
                tally.violation("step-up failed", "\(error)")
            }
            return (race, nil)
        }
    }

    /// Drain items finished so far (drained plus skipped, connection-wide).
    private func finishedItems(_ database: Database) -> Int {
        guard let statistics = try? database.statistics() else { return 0 }
        return Int(statistics.tablesDrained + statistics.tablesSkipped)
    }

    /// One drop (force, no checkpoint wait), recorded for classification.
    ///
    /// `heldByReader`: a reader of the tool holds a cursor open on the table throughout the call
    /// (``ReaderHold``), so the drop must return `EBUSY`.
    @discardableResult
    private func dropOnce(_ database: Database, _ name: String, race: Race, heldByReader: Bool = false)
        -> DropOutcome
    {
        let ingestHadData = race.isLaunched && !race.isEnded ? ingestHoldsData(database, name) : nil
        let heldBefore = model.holdState(name)
        let lifecycle = model.lifecycleToken(name)
        let finishedBefore = finishedItems(database)
        let start = ContinuousClock.now
        let outcome: DropOutcome
        race.beginDrop(name)
        do {
            try database.dropTable(name, force: true)
            outcome = .dropped
        } catch {
            let error = layeredError(error)
            if error == .EBUSY {
                outcome = .busy
            } else if let message = error.panicText {
                race.notePanic(message)
                outcome = .panic
            } else {
                tally.violation("unexpected error", "drop \(name): \(error)")
                outcome = .failed
            }
        }
        race.endDrop(name, dropped: outcome == .dropped)
        let end = ContinuousClock.now
        let finishedAfter = finishedItems(database)
        let heldAfter = model.holdState(name)
        race.record(DropRecord(
            table: name, start: start, end: end, finishedBefore: finishedBefore,
            finishedAfter: finishedAfter, outcome: outcome,
            ownHolder: heldBefore.held || heldAfter.held || heldBefore.touches != heldAfter.touches,
            lifecycle: model.mayHaveBeenOffloaded(name, since: lifecycle),
            ingestHadData: ingestHadData, heldByReader: heldByReader))
        tally.count(.drop)
        if heldByReader {
            tally.withLock {
                tally.heldDrops += 1
                if outcome == .busy { tally.readerRefusedDrops += 1 }
            }
            if outcome == .dropped {
                tally.violation("drop succeeded while a cursor held the table", "\(name)")
            }
        }
        switch outcome {
        case .dropped: noteDropped(name)
        case .busy: tally.withLock { tally.busyDrops += 1 }
        case .panic: model.markExistenceUncertain(name)
        case .failed: break
        }
        return outcome
    }

    /// Drops a table, retrying while it is busy; a table still busy after 10 s once nothing
    /// races it is a violation (it could neither be dropped nor, perhaps, read).
    private func dropWithRetry(_ database: Database, _ name: String, race: Race?) {
        let deadline = ContinuousClock.now + .seconds(10)
        var attempts = 0
        while true {
            if race?.panicked ?? false { return }
            race?.beginDrop(name)
            do {
                try database.dropTable(name, force: true)
                race?.endDrop(name, dropped: true)
                tally.count(.drop)
                noteDropped(name)
                return
            } catch {
                race?.endDrop(name, dropped: false)
                let error = layeredError(error)
                if error == .EBUSY && ContinuousClock.now < deadline {
                    attempts += 1
                    tally.withLock { tally.busyRetries += 1 }
                    sleep(milliseconds: 1)
                    continue
                }
                if let message = error.panicText {
                    if let race {
                        race.notePanic(message)
                    } else {
                        tally.panic(message)
                    }
                    model.markExistenceUncertain(name)
                } else {
                    tally.violation(
                        error == .EBUSY ? "undroppable table" : "unexpected error",
                        "drop \(name) after \(attempts) retries: \(error)")
                }
                return
            }
        }
    }

    /// A read during the step-up: the keys the fill writers own are not written in this phase,
    /// so they must read exactly as acknowledged, mid-drain or not.
    private func read(_ table: Table, _ key: String?, race: Race) {
        let lifecycle = model.lifecycleToken(table.name)
        do {
            if let key {
                let value = try model.holding(table.name) { try table.get(key, as: String.self) }
                tally.count(.get)
                if let expected = model.certainValue(table.name, key), expected != value {
                    tally.violation("wrong read during step-up",
                        "\(table.name)/\(key) read \(value?.prefix(24) ?? "nothing"), acknowledged \(expected?.prefix(24) ?? "nothing")")
                }
            } else {
                let entries = table.entries(from: "a", before: "b")
                var actual: [String: String] = [:]
                model.holding(table.name) {
                    for (key, value) in entries {
                        actual[String(decoding: key, as: UTF8.self)] = String(decoding: value, as: UTF8.self)
                    }
                }
                tally.count(.scan)
                if let error = entries.error { throw error }
                if let expected = model.certainRows(table.name, prefix: "a") {
                    let probe = TableModel(name: table.name)
                    probe.rows = expected
                    let (count, samples) = probe.mismatches(actual, limit: 2)
                    if count > 0 {
                        tally.violation("wrong scan during step-up", samples.joined(separator: "; "))
                    }
                }
            }
        } catch {
            let error = layeredError(error)
            if let message = error.panicText {
                race.notePanic(message)
            } else if error == .ENOENT && (race.mayBeDropped(table.name) || model.isDropped(table.name)) {
                // Dropped meanwhile.
            } else if error == .ENOENT && model.mayHaveBeenOffloaded(table.name, since: lifecycle) {
                // Offloaded: not readable until unarchived.
                tally.withLock { tally.offloadedReads += 1 }
            } else {
                tally.violation("unexpected error", "read \(table.name): \(error)")
            }
        }
    }

    // MARK: Invariants

    /// `database_size` never below the buffer; right after a checkpoint it is the stable
    /// checkpoint bytes plus the buffer.
    func checkSize(_ statistics: Statistics, context: String) {
        let buffer = Statistics.checkpointSizeBuffer
        if statistics.databaseSize < buffer {
            tally.violation("database size below the buffer", "\(context): \(statistics.databaseSize)")
        }
        if statistics.databaseSize != statistics.stableCheckpointBytes + buffer {
            tally.violation("database size inconsistent",
                "\(context): \(statistics.databaseSize) != \(statistics.stableCheckpointBytes) + \(buffer)")
        }
    }

    /// Checks every invariant with nothing else running: the tables listed are exactly the
    /// model's; each holds exactly its acknowledged rows (or, for writes whose outcome is
    /// unknown, one of their possible states) and is readable; every dropped table is gone,
    /// files included; after a checkpoint `database_size` is the buffer plus the stable
    /// constituents' sizes on disk.  Uncertainties resolve to what was found.
    func verify(_ database: Database, fullDroppedCheck: Bool, context: String) {
        let listing: [(name: String, state: TableState)]
        do {
            listing = try database.tables()
        } catch {
            tally.violation(layeredError(error).isPanic ? "panic" : "unexpected error",
                            "\(context): listing tables: \(error)")
            return
        }
        let listed = listing.map(\.name)
        let listedSet = Set(listed)
        let dropped = model.droppedNames

        for name in model.liveNames where !listedSet.contains(name) {
            if model.table(name)?.existenceUncertain ?? false {
                model.markDropped(name)
            } else {
                tally.violation("acknowledged table missing", "\(context): \(name)")
                model.markDropped(name)
            }
        }
        for (name, state) in listing {
            guard let table = model.table(name) else {
                tally.violation(dropped.contains(name) ? "dropped table came back" : "unknown table",
                                "\(context): \(name)")
                dropWithRetry(database, name, race: nil)
                continue
            }
            guard let actual = rowsForVerify(database, name, state: state, context: context) else {
                continue
            }
            let (count, samples) = model.withLock { table.mismatches(actual) }
            if count > 0 {
                tally.violation("wrong rows", "\(context): \(count) in \(name): " + samples.joined(separator: "; "))
            }
            model.withLock { table.adopt(actual) }
        }

        droppedLock.lock()
        let recent = droppedThisCycle
        droppedLock.unlock()
        let shared = home + "/shared"
        for name in fullDroppedCheck ? dropped : recent {
            if listedSet.contains(name) { continue }
            let left = ["\(home)/\(name).ingest", "\(shared)/\(name).stable"].filter { fileSize($0) != nil }
            if !left.isEmpty {
                tally.violation("dropped table left files", "\(context): \(name): "
                    + left.map { "\($0) (\(fileSize($0)!) bytes)" }.joined(separator: ", "))
            }
            do {
                _ = try database.state(ofTable: name)
                tally.violation("dropped table came back", "\(context): \(name) has a state")
            } catch LayeredError.ENOENT {
            } catch {
                tally.violation("unexpected error", "\(context): state of dropped \(name): \(error)")
            }
        }

        do {
            try database.checkpoint()
            tally.count(.checkpoint)
            let statistics = try database.statistics()
            checkSize(statistics, context: context)
            let onDisk = listed.reduce(UInt64(0)) { $0 + (fileSize("\(shared)/\($1).stable") ?? 0) }
            if onDisk != statistics.stableCheckpointBytes {
                tally.violation("database size inconsistent",
                    "\(context): stable files hold \(onDisk) bytes, statistics say \(statistics.stableCheckpointBytes)")
            }
            if statistics.hasPanicked { tally.violation("panic", "\(context): statistics show a panic") }
        } catch {
            tally.violation(layeredError(error).isPanic ? "panic" : "unexpected error", "\(context): checkpoint: \(error)")
        }
    }
}
