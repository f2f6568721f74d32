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
    /// Whether the table may have been under an offload or a restore around the call.
    var lifecycle: Bool
    /// Whether the table's ingest constituent held data just before the call (`nil`: not
    /// looked at, or the look failed).
    var ingestHadData: Bool?
    /// Whether the drop was made on purpose while a reader thread of the tool held a cursor open
    /// on the table (``ReaderHold``).
    var heldByReader = false
}

/// What the tool does about one drop target of a step-up phase, drawn from the seed.
struct DropPlan {
    /// Drop it while a reader thread holds a cursor open on it.
    var holdByReader: Bool
    /// Retry the drop after the step-up if it returned `EBUSY` (otherwise leave the table).
    var retryIfBusy: Bool

    var text: String {
        (holdByReader ? "held" : "free") + (retryIfBusy ? "+retry" : "+keep")
    }
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
    /// When the tool learned that the step-up had built its drain queue (the probe on the
    /// `drain.queued` failpoint returned): an upper bound of the build.
    private(set) var queueBuilt: ContinuousClock.Instant?
    private var panicMessageValue: String?
    private var records: [DropRecord] = []
    /// Drops of each table in flight, and the tables a drop has removed.
    private var dropsInFlight: [String: Int] = [:]
    private var droppedTables: Set<String> = []
    /// Tables whose drop returned `EBUSY` and was not retried: whether a reader held them.
    private var unretriedTables: [String: Bool] = [:]

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

    func noteQueueBuilt() {
        condition.lock()
        queueBuilt = .now
        condition.broadcast()
        condition.unlock()
    }

    /// Waits until the step-up's queue was seen built or the step-up returned; returns when
    /// the queue was seen built.
    func waitQueueBuilt() -> ContinuousClock.Instant? {
        condition.lock()
        defer { condition.unlock() }
        while queueBuilt == nil && !endedFlag { condition.wait() }
        return queueBuilt
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

    var isLaunched: Bool {
        condition.lock()
        defer { condition.unlock() }
        return launchedFlag
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

    /// A drop of `table` is about to be called.
    func beginDrop(_ table: String) {
        condition.lock()
        dropsInFlight[table, default: 0] += 1
        condition.unlock()
    }

    /// A drop of `table` returned; `dropped` when it returned 0.
    func endDrop(_ table: String, dropped: Bool) {
        condition.lock()
        if dropped { droppedTables.insert(table) }
        dropsInFlight[table, default: 1] -= 1
        condition.unlock()
    }

    /// Whether the table may be gone because of a drop: one is in flight, or one succeeded.  A
    /// table whose every drop returned `EBUSY` is not: `EBUSY` changed nothing.
    func mayBeDropped(_ table: String) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        return (dropsInFlight[table] ?? 0) > 0 || droppedTables.contains(table)
    }

    /// A drop of `table` returned `EBUSY` and will not be retried.
    func noteUnretried(_ table: String, byReader: Bool) {
        condition.lock()
        unretriedTables[table] = byReader
        condition.unlock()
    }

    /// The tables whose drop returned `EBUSY` and was not retried, each with whether a reader
    /// held it then.
    var unretried: [String: Bool] {
        condition.lock()
        defer { condition.unlock() }
        return unretriedTables
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
/// skipped), which the batched drain publishes when a whole batch is done, not per table.  So
/// the evidence is:
///  - the drop ended before the step-up began, or began after it returned;
///  - it ended before the step-up had built its queue (as seen by a probe on the `drain.queued`
///    failpoint), or straddled that moment;
///  - it returned `EBUSY` while none of the tool's own cursors held the table: the drain did;
///  - the step-up panicked naming its table;
///  - every queued table was finished before the drop began: after;
///  - just before the drop, the dropper looked at the table's ingest constituent (a read-only
///    cursor, closed before the drop): already empty means the drain had cleared it (after);
///    still holding data means the drop came before the clear (before the drain opened the
///    table, or between its copy and its clear), which the step-up's skip count then shows.
func classifyDrops(race: Race, queued: Set<String>, report: StepUpReport?, tally: Tally) {
    guard let stepUpStart = race.stepUpStart, let stepUpEnd = race.stepUpEnd else { return }
    let records = race.dropRecords
    let panicTable = race.panicTable
    var ambiguous = 0
    for record in records {
        switch record.outcome {
        case .panic, .failed:
            continue
        case .busy where record.heldByReader:
            tally.count(record.end < stepUpStart || record.start > stepUpEnd ? .busyReaderOutside : .busyReader)
        case .busy:
            if record.end < stepUpStart || record.start > stepUpEnd || record.ownHolder {
                tally.count(.busyOwnCursor)
            } else if record.lifecycle {
                tally.count(.busyLifecycle)
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
            } else if let queueBuilt = race.queueBuilt, record.start <= queueBuilt {
                tally.count(.aroundQueueBuild)
            } else if !queued.contains(record.table) {
                tally.count(.notQueued)
            } else if let report,
                record.finishedBefore - race.baselineFinished >= Int(report.tablesQueued)
            {
                tally.count(.afterDrained)
            } else if record.ingestHadData == false {
                tally.count(.afterCleared)
            } else if record.ingestHadData == true {
                tally.count(report == nil ? .panicCycle : .beforeClear)
            } else {
                ambiguous += 1
            }
        }
    }
    tally.count(report == nil ? .panicCycle : .undetermined, ambiguous)
}
