import Foundation
import Layered

/// How a drop call ended.
enum DropOutcome {
    case dropped
    case busy
    case panic
    case failed
}

/// One drop issued while the step-up phase ran, with what is needed to place it relative to the
/// drain of its table.
struct DropRecord {
    var table: String
    var start: ContinuousClock.Instant
    var end: ContinuousClock.Instant
    /// Drain items finished (drained + skipped, connection-wide counters) just before the call
    /// and just after it returned.
    var finishedBefore: Int
    var finishedAfter: Int
    var outcome: DropOutcome
    /// Whether one of the tool's own threads held the table open around the call.
    var ownHolder: Bool
}

/// The shared state of one step-up phase: when the step-up ran, whether the database panicked,
/// and every drop's record.
final class Race: @unchecked Sendable {
    let targets: Set<String>
    private let condition = NSCondition()
    private var launchedFlag = false
    private var endedFlag = false
    private(set) var stepUpStart: ContinuousClock.Instant?
    private(set) var stepUpEnd: ContinuousClock.Instant?
    private(set) var baselineFinished = 0
    private var panicMessageValue: String?
    private var records: [DropRecord] = []

    init(targets: Set<String>) {
        self.targets = targets
    }

    var panicked: Bool {
        condition.lock()
        defer { condition.unlock() }
        return panicMessageValue != nil
    }

    var panicMessage: String? {
        condition.lock()
        defer { condition.unlock() }
        return panicMessageValue
    }

    func notePanic(_ message: String) {
        condition.lock()
        if panicMessageValue == nil { panicMessageValue = message }
        condition.unlock()
    }

    func launched(baselineFinished: Int) {
        condition.lock()
        self.baselineFinished = baselineFinished
        stepUpStart = .now
        launchedFlag = true
        condition.broadcast()
        condition.unlock()
    }

    func ended() {
        condition.lock()
        stepUpEnd = .now
        endedFlag = true
        launchedFlag = true
        condition.broadcast()
        condition.unlock()
    }

    func waitLaunched() {
        condition.lock()
        while !launchedFlag { condition.wait() }
        condition.unlock()
    }

    func waitEnded() {
        condition.lock()
        while !endedFlag { condition.wait() }
        condition.unlock()
    }

    var isEnded: Bool {
        condition.lock()
        defer { condition.unlock() }
        return endedFlag
    }

    func record(_ record: DropRecord) {
        condition.lock()
        records.append(record)
        condition.unlock()
    }

    var dropRecords: [DropRecord] {
        condition.lock()
        defer { condition.unlock() }
        return records
    }

    /// The table named in a step-up panic ("... draining layered:NAME: ..."), if any.
    var panicTable: String? {
        guard let message = panicMessage, let range = message.range(of: "draining layered:") else {
            return nil
        }
        let rest = message[range.upperBound...]
        return String(rest.prefix { $0 != ":" && $0 != " " })
    }
}

/// Places each drop of a step-up phase relative to the drain of its table.
///
/// The C API reports drain progress only as connection-wide counters (tables drained and
/// skipped), not per table, so a drop is placed exactly only when the evidence allows:
///  - it ended before the step-up began, or began after it returned;
///  - it returned `EBUSY` while none of the tool's own cursors held the table: the drain did;
///  - the step-up panicked naming its table;
///  - drain items are taken in name order, at most `drainThreads` at a time, so a table at queue
///    position `i` is still queued while fewer than `i - drainThreads + 1` items are finished;
///  - every queued item was finished before the drop began: after.
/// The rest succeeded while the step-up ran with the table somewhere between its dequeue and the
/// end of its drain; the step-up's skip count says how many of those found their table gone
/// (dropped before the open or between the copy and the clear) and the others came after.
func classifyDrops(
    race: Race, queued: [String], drainThreads: Int, report: StepUpReport?, tally: Tally
) {
    guard let stepUpStart = race.stepUpStart, let stepUpEnd = race.stepUpEnd else { return }
    let rank = Dictionary(uniqueKeysWithValues: queued.enumerated().map { ($1, $0) })
    let records = race.dropRecords
    let panicTable = race.panicTable
    let queuedCount = report.map { Int($0.tablesQueued) } ?? queued.count
    let removedEarly = records.filter { $0.outcome == .dropped && rank[$0.table] != nil }
    var definitelyQueued = 0
    var ambiguous = 0
    for record in records {
        switch record.outcome {
        case .panic, .failed:
            continue
        case .busy:
            if record.end < stepUpStart || record.start > stepUpEnd || record.ownHolder {
                tally.count(.busyOwnCursor)
            } else {
                tally.count(.busyDraining)
            }
        case .dropped:
            if record.end < stepUpStart {
                tally.count(.beforeStepUp)
            } else if record.start > stepUpEnd {
                tally.count(.afterStepUp)
            } else if record.table == panicTable {
                tally.count(.panicWindow)
            } else if let position = rank[record.table] {
                // Tables earlier in name order that may have left the queue before this drop
                // returned could only move this table forward.
                let earlier = removedEarly.filter {
                    rank[$0.table]! < position && $0.start < record.end && $0.table != record.table
                }.count
                let finished = record.finishedAfter - race.baselineFinished
                let started = record.finishedBefore - race.baselineFinished
                if finished + drainThreads <= position - earlier {
                    tally.count(.stillQueued)
                    definitelyQueued += 1
                } else if report != nil && started >= queuedCount {
                    tally.count(.afterDrained)
                } else {
                    ambiguous += 1
                }
            } else {
                tally.count(.notQueued)
            }
        }
    }
    guard ambiguous > 0 else { return }
    if let report {
        let skipped = min(ambiguous, max(0, Int(report.tablesSkipped) - definitelyQueued))
        tally.count(.undeterminedSkipped, skipped)
        tally.count(.undeterminedAfter, ambiguous - skipped)
    } else {
        tally.count(.panicCycle, ambiguous)
    }
}
