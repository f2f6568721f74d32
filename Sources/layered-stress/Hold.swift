import Foundation
import Layered

/// A reader thread that holds a cursor open on a table while another thread drops it.
///
/// A dropper asks its reader to hold a table (``acquire(_:)``): the reader opens a cursor on
/// `layered:NAME` in its own thread and session, positions it on the first row, and reports
/// back.  The dropper then drops the table (force, no checkpoint wait) while the cursor is
/// open, which must return `EBUSY`, and lets the reader close the cursor (``release()``).  The
/// order is a handshake, not a timing: the drop starts only once the cursor is open, and the
/// cursor closes only once the drop has returned.
final class ReaderHold: @unchecked Sendable {
    private enum State {
        case idle
        case requested(String)
        case held(String)
        case refused(String)
        case releasing
        case finished
    }

    private let condition = NSCondition()
    private var state = State.idle
    private let model: Model
    private let workers = Workers()
    /// Called with an error the reader's open or first step threw that is neither the table
    /// being gone nor a panic.
    private let unexpected: @Sendable (String, LayeredError) -> Void
    /// Called with the panic message when the reader's call found the database panicked.
    private let panicked: @Sendable (String) -> Void

    init(name: String, database: Database, model: Model,
         unexpected: @escaping @Sendable (String, LayeredError) -> Void,
         panicked: @escaping @Sendable (String) -> Void)
    {
        self.model = model
        self.unexpected = unexpected
        self.panicked = panicked
        workers.spawn(name) { [self] in serve(database) }
    }

    /// Has the reader open a cursor on `table` and waits until it is open; returns whether it
    /// is (it is not when the table is gone, offloaded, or the database panicked).
    func acquire(_ table: String) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        while case .releasing = state { condition.wait() }
        state = .requested(table)
        condition.broadcast()
        while true {
            switch state {
            case .held: return true
            case .refused, .finished: return false
            default: condition.wait()
            }
        }
    }

    /// Lets the reader close its cursor, and waits until it has.
    func release() {
        condition.lock()
        defer { condition.unlock() }
        switch state {
        case .held:
            state = .releasing
            condition.broadcast()
            while case .releasing = state { condition.wait() }
        case .refused:
            state = .idle
        default:
            break
        }
    }

    /// Stops the reader thread and waits for it.
    func finish() {
        condition.lock()
        state = .finished
        condition.broadcast()
        condition.unlock()
        workers.join()
    }

    private func serve(_ database: Database) {
        condition.lock()
        while true {
            switch state {
            case .finished:
                condition.unlock()
                return
            case .requested(let table):
                condition.unlock()
                hold(database, table)
                condition.lock()
            default:
                condition.wait()
            }
        }
    }

    /// Opens the cursor, reports, holds it until released, closes it; counted in the model as
    /// one of the tool's own holders of the table throughout.
    private func hold(_ database: Database, _ name: String) {
        model.holding(name) { holdCounted(database, name) }
    }

    private func holdCounted(_ database: Database, _ name: String) {
        let cursor: Cursor
        do {
            cursor = try Cursor(table: try database.table(named: name))
            _ = try cursor.next()
        } catch {
            let error = layeredError(error)
            if let message = error.panicText {
                panicked(message)
            } else if error != .ENOENT {
                unexpected(name, error)
            }
            condition.lock()
            if case .requested = state { state = .refused(name) }
            condition.broadcast()
            condition.unlock()
            return
        }
        condition.lock()
        guard case .requested = state else {
            condition.unlock()
            try? cursor.close()
            return
        }
        state = .held(name)
        condition.broadcast()
        while case .held = state { condition.wait() }
        condition.unlock()
        do {
            try cursor.close()
        } catch {
            let error = layeredError(error)
            if let message = error.panicText { panicked(message) } else { unexpected(name, error) }
        }
        condition.lock()
        if case .releasing = state { state = .idle }
        condition.broadcast()
        condition.unlock()
    }
}
