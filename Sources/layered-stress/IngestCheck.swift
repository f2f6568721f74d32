import Foundation
import Layered

/// What a look at a table's ingest constituent through a read-only `file:NAME.ingest` cursor
/// found.
///
/// Such a cursor skips tombstones (a remove made on a follower), so an ingest that holds only
/// tombstones reads as empty unless it holds 100 or more of them in a row, where the cursor
/// gives up with `EAGAIN` (cursor.c: a move retries at most 100 hidden keys).  The leader-write
/// check (``Stress/checkAfterStepUp(_:cycle:race:)``) is what sees the other tombstones.
enum IngestLook {
    case empty
    /// Visible rows (counted up to a limit) and the first key.
    case rows(Int, String)
    /// Only hidden entries (tombstones), too many in a row for the cursor to step over.
    case tombstones
    /// The table or its ingest cannot be opened (`ENOENT`): gone, or offloaded.
    case gone
    case failed(LayeredError)
}

extension Stress {
    /// Looks at a table's ingest constituent; the cursor is closed before returning.
    func lookAtIngest(_ database: Database, _ name: String) -> IngestLook {
        do {
            let cursor = try Cursor(table: try database.table(named: name), constituent: .ingest)
            defer { try? cursor.close() }
            var rows = 0
            var first: String?
            while try cursor.next() {
                if first == nil { first = try cursor.key(as: String.self) }
                rows += 1
                if rows >= 100_000 { break }
            }
            return rows == 0 ? .empty : .rows(rows, first ?? "?")
        } catch LayeredError.EAGAIN {
            return .tombstones
        } catch LayeredError.ENOENT {
            return .gone
        } catch {
            return .failed(layeredError(error))
        }
    }

    /// The checks after a successful step-up, with nothing else of the tool's running:
    ///
    ///  - every table that still exists (and is not offloaded, which leaves no ingest) has an
    ///    empty ingest constituent;
    ///  - for each table, a fresh value written as leader to one key that this cycle's
    ///    follower phase left in the ingest as a value, and to one it left as a tombstone, reads
    ///    back: a stale ingest entry would hide it (the one way to see an ingest that holds only
    ///    a few tombstones).
    ///
    /// A table whose drop returned `EBUSY` and was not retried is checked like any other: the
    /// drop changed nothing, so it must have been drained.
    ///
    /// Returns the tables found with a stale ingest (each already reported).
    func checkAfterStepUp(_ database: Database, cycle: Int, race: Race) -> Set<String> {
        let listing: [(name: String, state: TableState)]
        do {
            listing = try database.tables()
        } catch {
            tally.violation(layeredError(error).isPanic ? "panic" : "unexpected error",
                            "after step-up: listing tables: \(error)")
            return []
        }
        var stale: Set<String> = []
        let unretried = race.unretried
        var random = StressRandom(seed: settings.seed, Stream.probe.rawValue, UInt64(cycle))
        for (index, (name, state)) in listing.enumerated() {
            if state == .offloaded {
                tally.withLock { tally.ingestChecksOffloaded += 1 }
                continue
            }
            let why = unretried[name].map {
                " (a drop of it returned EBUSY\($0 ? " while a reader held it" : "") and was not retried)"
            } ?? ""
            switch lookAtIngest(database, name) {
            case .empty:
                tally.withLock { tally.ingestChecks += 1 }
                if unretried[name] != nil { checkStable(database, name, why: why) }
            case .rows(let count, let first):
                tally.withLock {
                    tally.ingestChecks += 1
                    tally.ingestsNotEmpty += 1
                }
                tally.violation("ingest not empty after step-up",
                    "\(name): \(count)\(count >= 100_000 ? "+" : "") rows, first \(first)\(why)")
                stale.insert(name)
            case .tombstones:
                tally.withLock {
                    tally.ingestChecks += 1
                    tally.ingestsNotEmpty += 1
                }
                tally.violation("ingest not empty after step-up",
                    "\(name): holds only removes (100 or more in a row; EAGAIN from the ingest cursor)\(why)")
                stale.insert(name)
            case .gone:
                // Offloaded since the listing (it must have been archived), or a violation.
                let now = try? database.state(ofTable: name)
                if (now == .offloaded || now == .stopping) && model.isMaybeArchived(name) {
                    tally.withLock { tally.ingestChecksOffloaded += 1 }
                } else {
                    tally.violation("ingest unreadable after step-up",
                        "\(name): ENOENT, state \(now.map { "\($0)" } ?? "none")\(why)")
                }
                continue
            case .failed(let error):
                tally.violation(error.isPanic ? "panic" : "ingest unreadable after step-up", "\(name): \(error)\(why)")
                continue
            }
            if !probeLeaderWrites(database, name, cycle: cycle, index: index, why: why, random: &random) {
                stale.insert(name)
            }
        }
        return stale
    }

    /// A table whose drop returned `EBUSY` and was not retried, with an empty ingest: its stable
    /// constituent alone (a read-only `file:NAME.stable` cursor) holds every acknowledged row.
    private func checkStable(_ database: Database, _ name: String, why: String) {
        var actual: [String: String] = [:]
        do {
            let cursor = try Cursor(table: try database.table(named: name), constituent: .stable)
            defer { try? cursor.close() }
            while try cursor.next() {
                if let (key, value) = try cursor.entry() {
                    actual[String(decoding: key, as: UTF8.self)] = String(decoding: value, as: UTF8.self)
                }
            }
        } catch {
            let error = layeredError(error)
            if error == .ENOENT && model.isMaybeArchived(name) { return }  // offloaded meanwhile
            tally.violation(error.isPanic ? "panic" : "stable unreadable after step-up", "\(name): \(error)\(why)")
            return
        }
        guard let table = model.table(name) else { return }
        let (count, samples) = model.withLock { table.mismatches(actual, limit: 3) }
        tally.withLock { tally.stableChecks += 1 }
        if count > 0 {
            tally.violation("stable incomplete after an EBUSY drop",
                "\(name): \(count) rows differ\(why): " + samples.joined(separator: "; "))
        }
    }

    /// Writes a fresh value as leader to a key the follower phase left in the table's ingest as
    /// a value and to one it left as a tombstone (when there are such keys), and reads each back.
    /// Returns `false` if a stale ingest entry hid one (reported).
    private func probeLeaderWrites(
        _ database: Database, _ name: String, cycle: Int, index: Int, why: String,
        random: inout StressRandom
    ) -> Bool {
        var visible = true
        let keys = model.ingestKeys(name)
        let values = keys.filter { !$0.removed }.map(\.key)
        let removed = keys.filter { $0.removed }.map(\.key)
        var chosen: [(key: String, wasRemoved: Bool)] = []
        if !values.isEmpty { chosen.append((values[random.int(0..<values.count)], false)) }
        if !removed.isEmpty { chosen.append((removed[random.int(0..<removed.count)], true)) }
        guard !chosen.isEmpty, let table = try? database.table(named: name) else { return true }
        for (number, probe) in chosen.enumerated() {
            let value = makeValue("p\(cycle).\(index).\(number)", length: random.int(8...64))
            let lifecycle = model.lifecycleToken(name)
            guard write(table, probe.key, value, race: nil) else { continue }
            do {
                let read = try table.get(probe.key, as: String.self)
                tally.withLock { tally.leaderProbes += 1 }
                if read != value {
                    tally.withLock { tally.leaderProbesHidden += 1 }
                    tally.violation("leader write hidden by a stale ingest",
                        "\(name)/\(probe.key) (left in the ingest as \(probe.wasRemoved ? "a remove" : "a value")) "
                        + "read \(read.map { String($0.prefix(24)) } ?? "nothing") after the leader wrote \(value.prefix(24))\(why)")
                    // Reported here, not again by the verify that follows: the value the stale
                    // entry shows is one the key may hold until the table is dropped.
                    model.mayHave(name, probe.key, read)
                    visible = false
                }
            } catch {
                let error = layeredError(error)
                if error == .ENOENT && model.mayHaveBeenOffloaded(name, since: lifecycle) {
                    tally.withLock { tally.offloadedReads += 1 }
                } else {
                    tally.violation(error.isPanic ? "panic" : "unexpected error",
                                    "read back \(name)/\(probe.key) after step-up: \(error)")
                }
            }
        }
        return visible
    }
}
