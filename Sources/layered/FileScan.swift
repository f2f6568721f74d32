import CLayered
import Layered

/// A damage or torn-tail report from `layered_verify` or `layered_salvage_scan`.
struct ScanReport {
    var isDamage: Bool
    var file: String
    var offset: UInt64
    var what: String

    /// The line the tool prints for it.
    var line: String {
        "\(isDamage ? "damage" : "torn tail"): \(file): offset \(offset): \(what)"
    }
}

/// An intact record from `layered_salvage_scan`; its key and value are valid only during the
/// callback that receives it.
struct ScanRecord {
    enum Kind { case put, remove, clear }

    var isIngest: Bool
    var kind: Kind
    var offset: UInt64
    var lsn: UInt64
    var key: UnsafeRawBufferPointer
    var value: UnsafeRawBufferPointer
}

/// What a scan read, and how it ended.
struct ScanResult {
    /// 0, `LAYERED_CORRUPT` (damage was reported) or another error code.
    var code: Int32
    var files: UInt64
    var bytes: UInt64
    var records: UInt64
    var damaged: UInt64
    var tornTails: UInt64

    init(code: Int32, _ stats: layered_verify_stats) {
        self.code = code
        files = stats.files
        bytes = stats.bytes
        records = stats.records
        damaged = stats.damaged
        tornTails = stats.torn_tails
    }

    /// Whether the code is 0 or `LAYERED_CORRUPT`: the scan read everything.
    var readEverything: Bool { code == 0 || code == LAYERED_CORRUPT }

    var error: LayeredError { LayeredError(code: code) }
}

/// The C scans of a home's files, which need no connection: `layered_verify` and
/// `layered_salvage_scan`.  The callbacks may throw: the scan then stops and the error is
/// rethrown.
enum FileScan {
    /// The callbacks and the first error they threw, passed to C as its `arg`.
    private final class Context {
        let report: (ScanReport) throws -> Void
        let record: ((ScanRecord) throws -> Void)?
        var error: Error?

        init(report: @escaping (ScanReport) throws -> Void, record: ((ScanRecord) throws -> Void)?) {
            self.report = report
            self.record = record
        }
    }

    /// `layered_verify`: every checksum of the home, or of one table's files.
    static func verify(
        home: String, sharedDirectory: String?, table: String?,
        report: @escaping (ScanReport) throws -> Void
    ) throws -> ScanResult {
        let context = Context(report: report, record: nil)
        var stats = layered_verify_stats()
        let code = withExtendedLifetime(context) {
            withOptionalCString(sharedDirectory) { shared in
                withOptionalCString(table) { table in
                    layered_verify(
                        home, shared, table, reportThunk,
                        Unmanaged.passUnretained(context).toOpaque(), &stats)
                }
            }
        }
        if let error = context.error { throw error }
        return ScanResult(code: code, stats)
    }

    /// `layered_salvage_scan`: every intact record of a table's two constituents, in file
    /// order.
    static func salvage(
        home: String, sharedDirectory: String?, table: String,
        report: @escaping (ScanReport) throws -> Void,
        record: @escaping (ScanRecord) throws -> Void
    ) throws -> ScanResult {
        let context = Context(report: report, record: record)
        var stats = layered_verify_stats()
        let code = withExtendedLifetime(context) {
            withOptionalCString(sharedDirectory) { shared in
                layered_salvage_scan(
                    home, shared, table,
                    { argument, record in
                        let context = Unmanaged<Context>.fromOpaque(argument!)
                            .takeUnretainedValue()
                        let r = record!.pointee
                        let kind: ScanRecord.Kind =
                            switch r.kind {
                            case LAYERED_RECORD_PUT: .put
                            case LAYERED_RECORD_REMOVE: .remove
                            default: .clear
                            }
                        do {
                            try context.record?(
                                ScanRecord(
                                    isIngest: r.constituent == LAYERED_CONSTITUENT_INGEST,
                                    kind: kind, offset: r.offset, lsn: r.lsn,
                                    key: UnsafeRawBufferPointer(start: r.key, count: r.key_len),
                                    value: UnsafeRawBufferPointer(
                                        start: r.value, count: r.value_len)))
                            return 0
                        } catch {
                            context.error = error
                            return 1
                        }
                    },
                    reportThunk, Unmanaged.passUnretained(context).toOpaque(), &stats)
            }
        }
        if let error = context.error { throw error }
        return ScanResult(code: code, stats)
    }

    /// The report callback of both scans.
    private static let reportThunk: layered_verify_report = { argument, kind, file, offset, what in
        let context = Unmanaged<Context>.fromOpaque(argument!).takeUnretainedValue()
        do {
            try context.report(
                ScanReport(
                    isDamage: kind == LAYERED_VERIFY_DAMAGE, file: String(cString: file!),
                    offset: offset, what: String(cString: what!)))
            return 0
        } catch {
            context.error = error
            return 1
        }
    }
}

private func withOptionalCString<Result>(
    _ string: String?, _ body: (UnsafePointer<CChar>?) throws -> Result
) rethrows -> Result {
    guard let string else { return try body(nil) }
    return try string.withCString { try body($0) }
}
