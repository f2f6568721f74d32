/// A small, fast, seedable generator (SplitMix64).
///
/// Every decision of a run is drawn from a generator derived from the run's seed and a stream
/// label (the cycle, the phase, the thread), never from timing: the same seed replays the same
/// schedule of operations, thread by thread.  What the scheduler interleaves, and so the outcome
/// of each race, is up to the operating system.
struct StressRandom: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) {
        state = seed
    }

    /// A generator for one stream of the run: `labels` name it (cycle, phase, thread).
    init(seed: UInt64, _ labels: UInt64...) {
        var mixed = seed
        for label in labels {
            mixed = Self.mix(mixed ^ Self.mix(label &+ 0x9E37_79B9_7F4A_7C15))
        }
        state = mixed
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        return Self.mix(state)
    }

    /// A uniform integer in `range`.
    mutating func int(_ range: ClosedRange<Int>) -> Int {
        Int.random(in: range, using: &self)
    }

    /// A uniform integer in `range`.
    mutating func int(_ range: Range<Int>) -> Int {
        Int.random(in: range, using: &self)
    }

    /// `true` with probability `p`.
    mutating func chance(_ p: Double) -> Bool {
        Double(next() >> 11) / Double(1 << 53) < p
    }

    private static func mix(_ value: UInt64) -> UInt64 {
        var z = value
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Stream labels, so that no two parts of a run draw from the same stream.
enum Stream: UInt64 {
    case cycle = 1, fill, raceWriter, reader, dropper, creator, checkpointer, child, childWriter, lifecycle
    case dropDecision, probe
}

/// A running digest of the planned schedule (FNV-1a): two runs with the same seed and the same
/// number of cycles print the same digest.
struct ScheduleDigest {
    private(set) var value: UInt64 = 0xCBF2_9CE4_8422_2325

    mutating func add(_ text: String) {
        for byte in text.utf8 {
            value = (value ^ UInt64(byte)) &* 0x0000_0100_0000_01B3
        }
        value = (value ^ 0xFF) &* 0x0000_0100_0000_01B3
    }

    mutating func add(_ number: Int) {
        add(String(number))
    }
}
