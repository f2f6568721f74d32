import Foundation
import Layered

/// Operations the tool counts.
enum Operation: String, CaseIterable {
    case put, remove, get, scan, create, drop, checkpoint, archive, unarchive, offload
    case stepUp = "step-up"
    case stepDown = "step-down"
    case reopen
    case crash = "kill+recover"
}

/// Where a drop landed relative to the drain of its table.
enum DropTiming: String, CaseIterable {
    /// The drop finished before the step-up began: the table was never queued.
    case beforeStepUp = "before: step-up not started"
    /// Succeeded after the step-up began but before the tool saw its queue built: the table was
    /// most likely dropped before it could be queued.
    case aroundQueueBuild = "around the queue build (maybe never queued)"
    /// The drop returned `EBUSY` with none of the tool's own cursors on the table: the drain
    /// held it.
    case busyDraining = "during: EBUSY, drain held the table"
    /// The step-up failed (panic) draining exactly this table.
    case panicWindow = "during: hit the window, step-up panicked"
    /// Succeeded while the step-up ran, the table's ingest still holding data just before:
    /// the drop came before the drain opened the table or between its copy and its clear.
    case beforeClear = "during: before its open or clear (ingest still held data)"
    /// Succeeded while the step-up ran, the table's ingest already cleared by the drain.
    case afterCleared = "after: its drain had cleared the ingest"
    /// Succeeded while a step-up ran that then panicked (the panic leaves no skip count).
    case panicCycle = "overlapped a step-up that panicked"
    /// Succeeded while the step-up ran; the ingest could not be looked at.
    case undetermined = "overlapped the step-up, order unknown"
    /// Every queued item was finished when the drop started.
    case afterDrained = "after: every table drained"
    /// The drop started after the step-up returned.
    case afterStepUp = "after: step-up finished"
    /// Overlapped the step-up, but the table held no ingest data and was not queued.
    case notQueued = "overlapped step-up, table had no ingest data (not queued)"
    /// `EBUSY` from a cursor a reader thread of the tool held open on the table on purpose
    /// (the drain may have held it too).
    case busyReader = "EBUSY: a reader held the table on purpose, during the step-up"
    /// The same, before the step-up began or after it returned.
    case busyReaderOutside = "EBUSY: a reader held the table on purpose, outside the step-up"
    /// `EBUSY` caused (or possibly caused) by one of the tool's own cursors.
    case busyOwnCursor = "EBUSY from the tool's own cursor"
    /// `EBUSY` on a table that may have been under an offload or a restore at the time.
    case busyLifecycle = "EBUSY on an archived table (an offload or restore, or the drain)"

    /// Whether a drop of this kind overlapped the drain of its table.
    var overlapsDrain: Bool {
        switch self {
        case .busyDraining, .panicWindow, .beforeClear, .afterCleared, .panicCycle, .undetermined,
            .afterDrained:
            true
        default: false
        }
    }
}

/// Every count and every violation of a run.  Thread-safe.
final class Tally: @unchecked Sendable {
    private let lock = NSLock()
    private var operations: [Operation: Int] = [:]
    private var dropTimings: [DropTiming: Int] = [:]
    private var violationCounts: [String: Int] = [:]
    /// The first few violations of each kind.
    private(set) var violationSamples: [String: [String]] = [:]
    private(set) var panicMessages: [String] = []
    private(set) var firstViolationAt: Double?
    private(set) var firstViolationCycle: Int?
    let started = ContinuousClock.now

    var tablesSkipped = 0
    var tablesDrained = 0
    var tablesQueued = 0
    var rowsDrained: UInt64 = 0
    var bytesDrained: UInt64 = 0
    var drainTime: Duration = .zero
    var busyDrops = 0
    var busyRetries = 0
    /// Drops made while a reader of the tool held a cursor open on the table, and those of
    /// them that returned `EBUSY`.
    var heldDrops = 0
    var readerRefusedDrops = 0
    /// Planned reader holds not taken: the table was gone or offloaded when the reader opened it.
    var holdsNotTaken = 0
    /// Drops of the step-up phase that returned `EBUSY` and were not retried, and of them the
    /// ones a reader had refused.
    var unretriedBusy = 0
    var unretriedReaderBusy = 0
    /// Ingest constituents looked at after successful step-ups, the ones found not empty, and
    /// those skipped because their table was offloaded.
    var ingestChecks = 0
    var ingestsNotEmpty = 0
    var ingestChecksOffloaded = 0
    /// Leader writes to keys that were in an ingest, read back after the step-up, and those a
    /// stale ingest entry hid.
    var leaderProbes = 0
    var leaderProbesHidden = 0
    /// Stable constituents of tables whose EBUSY drop was not retried, compared with the model.
    var stableChecks = 0
    var cycles = 0
    var childrenKilled = 0
    var childrenFinished = 0
    var acknowledgedBeforeKill = 0
    var messages = 0
    var cycle = 0

    // The lifecycle workload.
    /// Explicit offloads that returned 0 on a table not already offloaded.
    var explicitOffloads = 0
    /// Explicit offloads skipped because the table was already offloaded.
    var offloadsAlreadyDone = 0
    /// Explicit offloads refused with `EBUSY` (ingest rows not yet drained, a cursor or a drain).
    var offloadsBusy = 0
    /// Explicit offloads refused with `LAYERED_NOT_ARCHIVED`.
    var offloadsNotArchived = 0
    /// Unarchives retried because an offload had won the arbiter (`EAGAIN`).
    var unarchiveRetries = 0
    /// `LAYERED_IN_PROGRESS` from archive, unarchive or offload.
    var inProgressErrors = 0
    /// Reads and writes refused with `ENOENT` because their table was offloaded.
    var offloadedReads = 0
    var offloadedWrites = 0
    /// Writes acknowledged on tables archived just before (leader phase).
    var archivedWrites = 0
    /// Offloaded tables the end-of-cycle check restored and verified.
    var verifyRestores = 0
    /// Offloaded tables found by the end-of-cycle checks (before restoring them).
    var offloadedSeen = 0
    /// The database's lifecycle counters, summed over every connection of the run (read just
    /// before each close).
    var statArchives: UInt64 = 0
    var statUnarchives: UInt64 = 0
    var statRestores: UInt64 = 0
    var statOffloads: UInt64 = 0
    var statOffloadsRefused: UInt64 = 0

    /// Adds a connection's lifecycle counters to the run's.
    func absorb(_ statistics: Statistics) {
        withLock {
            statArchives += statistics.archives
            statUnarchives += statistics.unarchives
            statRestores += statistics.restores
            statOffloads += statistics.offloads
            statOffloadsRefused += statistics.offloadsRefused
        }
    }

    func withLock<Result>(_ body: () throws -> Result) rethrows -> Result {
        lock.lock()
        defer { lock.unlock() }
        return try body()
    }

    func count(_ operation: Operation, _ n: Int = 1) {
        withLock { operations[operation, default: 0] += n }
    }

    func count(_ timing: DropTiming, _ n: Int = 1) {
        guard n > 0 else { return }
        withLock { dropTimings[timing, default: 0] += n }
    }

    func operationCount(_ operation: Operation) -> Int {
        withLock { operations[operation] ?? 0 }
    }

    var totalOperations: Int {
        withLock { operations.values.reduce(0, +) }
    }

    var violations: Int {
        withLock { violationCounts.values.reduce(0, +) }
    }

    var panics: Int {
        withLock { panicMessages.count }
    }

    /// Records a broken invariant.
    func violation(_ kind: String, _ detail: String) {
        withLock {
            violationCounts[kind, default: 0] += 1
            if violationSamples[kind, default: []].count < 3 {
                violationSamples[kind, default: []].append("cycle \(cycle): \(kind): \(detail)")
            }
            if firstViolationAt == nil {
                firstViolationAt = (ContinuousClock.now - started).seconds
                firstViolationCycle = cycle
            }
        }
    }

    /// Records a panic of one connection (each connection panics at most once).
    func panic(_ message: String) {
        withLock { panicMessages.append("cycle \(cycle): \(message)") }
        violation("panic", message)
    }

    /// The end-of-run report.
    func report(options: RunSettings, elapsed: Duration, digest: UInt64) -> String {
        withLock {
            var lines: [String] = []
            let seconds = max(elapsed.seconds, 0.001)
            func row(_ label: String, _ text: String) {
                lines.append(label.padding(toLength: 16, withPad: " ", startingAt: 0) + text)
            }
            let total = operations.values.reduce(0, +)
            lines.append("")
            lines.append("== layered-stress report")
            row("seed", "\(options.seed)  (replay: --seed \(options.seed)\(options.replayHint))")
            row("schedule", String(format: "digest %016llx over %d cycles", digest, cycles))
            row("policy", "\(options.policy.rawValue), \(options.drainThreads) drain threads, "
                + "hold rate \(options.holdRate), no-retry rate \(options.noRetryRate), failpoints: "
                + (options.failpoints.isEmpty ? "none" : options.failpoints.joined(separator: ";"))
                + ", lifecycle \(options.lifecycleSummary)")
            row("duration", String(format: "%.1f s, %d cycles", seconds, cycles))
            row("operations", Operation.allCases.map { "\($0.rawValue) \(operations[$0] ?? 0)" }
                .joined(separator: ", "))
            row("throughput", String(format: "%.0f ops/s; drains: %llu rows, %.1f MiB in %.2f s (%.0f rows/s)",
                Double(total) / seconds, rowsDrained, Double(bytesDrained) / 1_048_576,
                drainTime.seconds, drainTime.seconds > 0 ? Double(rowsDrained) / drainTime.seconds : 0))
            row("drains", "tables queued \(tablesQueued), drained \(tablesDrained), skipped \(tablesSkipped)")
            let drops = dropTimings.values.reduce(0, +)
            let overlapping = dropTimings.filter { $0.key.overlapsDrain }.values.reduce(0, +)
            row("drops", "\(drops) classified, \(overlapping) overlapped the drain of their table")
            for timing in DropTiming.allCases {
                lines.append("                  \(String(dropTimings[timing] ?? 0).leftPadded(6))  \(timing.rawValue)")
            }
            row("EBUSY", "\(busyDrops) drops refused, \(busyRetries) retries")
            row("reader holds", "\(heldDrops) drops made while a reader held the table: \(readerRefusedDrops) refused by the reader (EBUSY); "
                + "\(holdsNotTaken) holds not taken (table gone or offloaded)")
            row("not retried", "\(unretriedBusy) EBUSY drops not retried (\(unretriedReaderBusy) refused by a reader, "
                + "\(unretriedBusy - unretriedReaderBusy) by the drain or otherwise): tables kept, checked intact "
                + "(\(stableChecks) stable constituents read on their own), then dropped")
            row("ingest empty", "\(ingestChecks) ingest constituents checked after step-ups, \(ingestsNotEmpty) not empty, "
                + "\(ingestChecksOffloaded) skipped (offloaded); leader writes to ingest keys \(leaderProbes), "
                + "\(leaderProbesHidden) hidden by a stale ingest")
            if options.lifecycle {
                let auto = Int(statOffloads) - explicitOffloads
                row("lifecycle", "archives \(statArchives), unarchives \(statUnarchives) (restores \(statRestores)), "
                    + "offloads \(statOffloads): explicit \(explicitOffloads), auto \(auto); "
                    + "auto-offloads refused by the arbiter \(statOffloadsRefused)")
                lines.append("                  unarchive EAGAIN retries \(unarchiveRetries), in-progress errors \(inProgressErrors); "
                    + "explicit offloads refused: \(offloadsBusy) EBUSY (undrained ingest or held), "
                    + "\(offloadsNotArchived) not archived; \(offloadsAlreadyDone) found already offloaded")
                lines.append("                  offloaded tables: \(offloadedReads) reads and \(offloadedWrites) writes refused with ENOENT; "
                    + "\(offloadedSeen) found offloaded at cycle end, \(verifyRestores) restored and verified; "
                    + "\(archivedWrites) writes acknowledged on archived tables")
            }
            row("kill -9", "\(childrenKilled) children killed mid-cycle (\(acknowledgedBeforeKill) writes acknowledged before the kill), \(childrenFinished) finished first")
            row("panics", "\(panicMessages.count)")
            for message in panicMessages.prefix(5) {
                lines.append("                  \(message)")
            }
            let violations = violationCounts.values.reduce(0, +)
            row("violations", "\(violations)")
            for (kind, count) in violationCounts.sorted(by: { $0.key < $1.key }) {
                lines.append("                  \(String(count).leftPadded(6))  \(kind)")
            }
            for (_, samples) in violationSamples.sorted(by: { $0.key < $1.key }) {
                for sample in samples {
                    lines.append("                  \(sample)")
                }
            }
            if let firstViolationAt, let firstViolationCycle {
                row("first failure", String(format: "after %.1f s, in cycle %d", firstViolationAt, firstViolationCycle))
            }
            row("result", violations == 0 ? "PASS: every invariant held" : "FAIL")
            return lines.joined(separator: "\n")
        }
    }
}

extension Duration {
    var seconds: Double {
        let (whole, fraction) = components
        return Double(whole) + Double(fraction) / 1e18
    }
}

extension String {
    func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
}
