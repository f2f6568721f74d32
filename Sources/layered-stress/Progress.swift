import Foundation

/// A progress bar on a terminal, a plain line every 5 seconds otherwise.
final class Progress: @unchecked Sendable {
    private let stress: Stress
    private let started: ContinuousClock.Instant
    private let condition = NSCondition()
    private var stopped = false
    private var finished = false

    init(stress: Stress, started: ContinuousClock.Instant) {
        self.stress = stress
        self.started = started
    }

    func start() {
        let thread = Thread { [self] in
            let interval = Output.isTerminal ? 0.25 : 5.0
            condition.lock()
            while !stopped {
                _ = condition.wait(until: Date(timeIntervalSinceNow: interval))
                if stopped { break }
                condition.unlock()
                show()
                condition.lock()
            }
            finished = true
            condition.broadcast()
            condition.unlock()
        }
        thread.name = "progress"
        thread.start()
    }

    func stop() {
        condition.lock()
        stopped = true
        condition.broadcast()
        while !finished { condition.wait() }
        condition.unlock()
        if Output.isTerminal { show(final: true) }
    }

    private func show(final: Bool = false) {
        let settings = stress.settings
        let tally = stress.tally
        let elapsed = (ContinuousClock.now - started).seconds
        let cycles = tally.withLock { tally.cycles }
        var fraction = 0.0
        if let duration = settings.duration { fraction = elapsed / duration }
        if let total = settings.cycles { fraction = max(fraction, Double(cycles) / Double(max(total, 1))) }
        fraction = min(1, final ? 1 : fraction)
        let status = String(format: "%5.1fs  cycles %d  ops %d  drops %d  EBUSY %d  panics %d  violations %d",
            elapsed, cycles, tally.totalOperations, tally.operationCount(.drop),
            tally.withLock { tally.busyDrops }, tally.panics, tally.violations)
        if Output.isTerminal {
            let width = 24
            let filled = Int(fraction * Double(width))
            let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
            if final {
                Output.line("[\(bar)] \(status)")
            } else {
                Output.progress("[\(bar)] \(status)")
            }
        } else {
            Output.line("progress: \(status)")
        }
    }
}
