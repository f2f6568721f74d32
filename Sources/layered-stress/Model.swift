import Foundation

/// What the tool knows one table must hold: the acknowledged rows, plus the values a key may
/// also hold because a write to it was in flight when the process was killed or the database
/// panicked (neither acknowledged nor refused).
final class TableModel {
    let name: String
    /// Acknowledged rows: the value of every key whose last acknowledged write was a put.
    var rows: [String: String] = [:]
    /// Other states a key may be in (`nil`: absent), from unacknowledged writes.
    var alternatives: [String: [String?]] = [:]
    /// Whether a create or drop of the table was in flight when the process died or panicked:
    /// the table may exist or not, but if it exists it must be readable and droppable.
    var existenceUncertain = false

    init(name: String) {
        self.name = name
    }

    /// Records an acknowledged put (`value`) or remove (`nil`).
    func acknowledge(_ key: String, _ value: String?) {
        rows[key] = value
        alternatives[key] = nil
    }

    /// Records a write whose outcome is unknown.
    func mayHave(_ key: String, _ value: String?) {
        alternatives[key, default: []].append(value)
    }

    /// Compares the table's actual rows with the model; returns a description of each row that
    /// should not be there or is missing, at most `limit`.
    func mismatches(_ actual: [String: String], limit: Int = 5) -> (count: Int, samples: [String]) {
        var count = 0
        var samples: [String] = []
        func note(_ text: String) {
            count += 1
            if samples.count < limit { samples.append(text) }
        }
        for (key, value) in actual {
            let expected = rows[key]
            if expected == value { continue }
            if alternatives[key]?.contains(where: { $0 == value }) ?? false { continue }
            note(expected == nil
                ? "\(name): unacknowledged row \(key)=\(value.prefix(24))"
                : "\(name): row \(key) holds \(value.prefix(24)), acknowledged \(expected!.prefix(24))")
        }
        for (key, value) in rows where actual[key] == nil {
            if alternatives[key]?.contains(where: { $0 == nil }) ?? false { continue }
            note("\(name): acknowledged row \(key)=\(value.prefix(24)) is missing")
        }
        return (count, samples)
    }

    /// Makes the model what the database showed once every uncertainty was checked.
    func adopt(_ actual: [String: String]) {
        rows = actual
        alternatives = [:]
        existenceUncertain = false
    }
}

/// A table's lifecycle as the model saw it at one moment (``Model/lifecycleToken(_:)``).
struct LifecycleToken {
    var mayBeArchived: Bool
    var busy: Bool
    var epoch: Int
}

/// The model of the whole database: live tables, dropped tables, and which of the tool's own
/// threads hold a table open (to tell an `EBUSY` caused by the drain from one caused by the
/// tool's own cursors).
final class Model: @unchecked Sendable {
    private let lock = NSLock()
    private var live: [String: TableModel] = [:]
    private var dropped: Set<String> = []
    private var holders: [String: Int] = [:]
    private var touches: [String: Int] = [:]
    /// Tables that may be archived or offloaded: marked before an archive is issued, cleared
    /// once an unarchive has succeeded.  Only these can be offloaded.
    private var mayBeArchived: Set<String> = []
    /// Lifecycle calls of the tool's own in flight, per table.
    private var lifecycleCalls: [String: Int] = [:]
    /// Changes whenever a table's lifecycle mark changes or one of its lifecycle calls starts
    /// or ends.
    private var lifecycleEpochs: [String: Int] = [:]
    /// Keys written to each table's ingest constituent in this cycle's follower phase, and
    /// whether the last of those writes was a remove (which leaves a tombstone in the ingest).
    private var ingestKeys: [String: [String: Bool]] = [:]

    func withLock<Result>(_ body: () throws -> Result) rethrows -> Result {
        lock.lock()
        defer { lock.unlock() }
        return try body()
    }

    var liveNames: [String] {
        withLock { live.keys.sorted() }
    }

    var droppedNames: Set<String> {
        withLock { dropped }
    }

    func table(_ name: String) -> TableModel? {
        withLock { live[name] }
    }

    func isDropped(_ name: String) -> Bool {
        withLock { dropped.contains(name) }
    }

    func added(_ name: String, uncertain: Bool = false) {
        withLock {
            let table = TableModel(name: name)
            table.existenceUncertain = uncertain
            live[name] = table
            dropped.remove(name)
        }
    }

    func markDropped(_ name: String) {
        withLock {
            live[name] = nil
            dropped.insert(name)
            mayBeArchived.remove(name)
        }
    }

    // MARK: Lifecycle

    /// Runs one of the tool's lifecycle calls on a table; `archiving` marks the table as
    /// possibly archived before the call is issued.
    func lifecycleCall<Result>(_ table: String, archiving: Bool = false, _ body: () throws -> Result)
        rethrows -> Result
    {
        withLock {
            if archiving { mayBeArchived.insert(table) }
            lifecycleCalls[table, default: 0] += 1
            lifecycleEpochs[table, default: 0] += 1
        }
        defer {
            withLock {
                lifecycleCalls[table, default: 1] -= 1
                lifecycleEpochs[table, default: 0] += 1
            }
        }
        return try body()
    }

    /// Records a successful unarchive: the table is active and cannot be offloaded until it is
    /// archived again.
    func markUnarchived(_ table: String) {
        withLock {
            mayBeArchived.remove(table)
            lifecycleEpochs[table, default: 0] += 1
        }
    }

    /// Whether the tool ever archived the table since it was last unarchived.
    func isMaybeArchived(_ table: String) -> Bool {
        withLock { mayBeArchived.contains(table) }
    }

    /// A table's lifecycle at one moment: whether it may be archived (or offloaded), whether one
    /// of the tool's lifecycle calls on it is in flight, and a token that changes with either.
    func lifecycleToken(_ table: String) -> LifecycleToken {
        withLock {
            LifecycleToken(
                mayBeArchived: mayBeArchived.contains(table),
                busy: (lifecycleCalls[table] ?? 0) > 0,
                epoch: lifecycleEpochs[table] ?? 0)
        }
    }

    /// Whether the table may have been offloaded (or been under an offload or restore) at some
    /// moment between `before` was taken and now.
    func mayHaveBeenOffloaded(_ table: String, since before: LifecycleToken) -> Bool {
        let now = lifecycleToken(table)
        return before.mayBeArchived || before.busy || now.mayBeArchived || now.busy
            || before.epoch != now.epoch
    }

    func markExistenceUncertain(_ name: String) {
        withLock { live[name]?.existenceUncertain = true }
    }

    /// Records an acknowledged write, unless the table has been dropped meanwhile (the write
    /// then happened before the drop, which removed it).
    func acknowledge(_ table: String, _ key: String, _ value: String?) {
        withLock { live[table]?.acknowledge(key, value) }
    }

    func mayHave(_ table: String, _ key: String, _ value: String?) {
        withLock { live[table]?.mayHave(key, value) }
    }

    /// The acknowledged value of a key that no thread writes at the moment, or `nil` when the
    /// model cannot say (the table is gone or uncertain, or the key has unacknowledged writes).
    func certainValue(_ table: String, _ key: String) -> String?? {
        withLock {
            guard let model = live[table], !model.existenceUncertain, model.alternatives[key] == nil
            else { return nil }
            return .some(model.rows[key])
        }
    }

    /// The acknowledged rows whose keys start with `prefix`, or `nil` when the model cannot say.
    func certainRows(_ table: String, prefix: String) -> [String: String]? {
        withLock {
            guard let model = live[table], !model.existenceUncertain,
                !model.alternatives.keys.contains(where: { $0.hasPrefix(prefix) })
            else { return nil }
            return model.rows.filter { $0.key.hasPrefix(prefix) }
        }
    }

    /// Runs `body` counted as one of the tool's own holders of the table.
    func holding<Result>(_ table: String, _ body: () throws -> Result) rethrows -> Result {
        withLock {
            holders[table, default: 0] += 1
            touches[table, default: 0] += 1
        }
        defer {
            withLock {
                holders[table, default: 1] -= 1
                touches[table, default: 0] += 1
            }
        }
        return try body()
    }

    /// A token that changes whenever one of the tool's threads opens or closes the table, and
    /// whether one holds it now.
    func holdState(_ table: String) -> (held: Bool, touches: Int) {
        withLock { ((holders[table] ?? 0) > 0, touches[table] ?? 0) }
    }

    // MARK: Ingest keys

    /// Forgets the ingest keys of the previous follower phase.
    func resetIngestKeys() {
        withLock { ingestKeys = [:] }
    }

    /// Records an acknowledged follower write that reached the ingest: a put, or a remove that
    /// found the key (and so left a tombstone).
    func noteIngestWrite(_ table: String, _ key: String, removed: Bool) {
        withLock { ingestKeys[table, default: [:]][key] = removed }
    }

    /// The keys written to a table's ingest in this follower phase, in key order, each with
    /// whether its last write was a remove.
    func ingestKeys(_ table: String) -> [(key: String, removed: Bool)] {
        withLock { (ingestKeys[table] ?? [:]).sorted { $0.key < $1.key }.map { ($0.key, $0.value) } }
    }

    func forgetHolds() {
        withLock {
            holders = [:]
            touches = [:]
        }
    }
}
