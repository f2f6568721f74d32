import Foundation
import Logging
import Synchronization
import Testing
@testable import Layered

/// The levels the library's messages reach a `Logger` at, and the logger itself end to end.
@Suite struct LibraryMessageTests {
    /// One sample of each message the C core writes, as its format string prints it, and the
    /// level it must get.
    static let samples: [(String, Logger.Level)] = [
        // batch.c
        ("batch: retiring the journal: syncing file:t.ingest failed", .error),
        ("batch: /h/layered.batch: emptying the journal failed", .error),
        ("batch: /h/layered.batch: offset 40: layered:t is not there; its ops are skipped",
            .notice),
        ("batch: /h/layered.batch: corrupt record at offset 40: its ops do not parse", .error),
        ("batch: /h/layered.batch: open failed", .error),
        ("batch: /h: syncing the directory failed", .error),
        ("batch: /h/layered.batch: cut torn tail at offset 40 (12 bytes): short record",
            .notice),
        ("batch: /h/layered.batch: corrupt record at offset 40: body checksum mismatch", .error),
        // checkpoint.c
        ("checkpoint: syncing or compacting /h/t.stable failed", .error),
        // conn.c: the directory sync, the LOCK file (the env_message relay repeats file-store
        // messages and has no text of its own)
        ("/h/shared: syncing the directory that holds it: Input/output error", .error),
        ("/h: the database is open elsewhere", .error),
        // drain.c
        ("step-up: /h/t: No such file or directory", .error),
        ("step-up: layered:t still holds ingest entries after its drain", .error),
        ("opening as leader: draining layered:t: Input/output error", .error),
        // fs_io.c, fs_open.c
        ("file-store: /h/t.ingest: corrupt record at offset 96: bad checksum", .error),
        ("file-store: /h/t.ingest: fdatasync failed: Input/output error", .error),
        // (the same message from a group of puts' sync, fs_io.c)
        ("file-store: /h/t.ingest: fdatasync failed: No space left on device", .error),
        ("file-store: /h/t.ingest: cut torn tail at offset 96 (12 bytes): short record", .notice),
        ("file-store: /h/t.ingest: torn file header (file of 7 bytes, no records), rewritten as "
            + "an empty file", .notice),
        // layered.c
        ("drop layered:t: removing its files failed; the next drop or open finishes it", .warning),
        // lifecycle.c
        ("offload layered:t: the ingest holds rows not yet drained", .info),
        ("offload layered:t: removing the ingest: Input/output error", .warning),
        ("offload layered:t: recording it: Input/output error (the next open completes it)",
            .warning),
        ("unarchive layered:t: its stable constituent in /h/shared: No such file or directory",
            .error),
        ("finished the interrupted offload of layered:t", .notice),
        ("auto-offload of layered:t refused: unarchived meanwhile", .info),
        ("auto-offload of layered:t: Input/output error", .warning),
        // meta.c
        ("/h/METADATA: damaged (checksum mismatch at offset 40)", .error),
        ("/h/METADATA: unreadable line at offset 40", .error),
        ("/h/METADATA: 3 tables listed, 2 expected", .error),
        ("/h/JOURNAL: damaged record at offset 40", .error),
        ("/h/JOURNAL: unknown record at offset 40", .error),
        ("/h/JOURNAL: bad record at offset 40", .error),
        ("/h/JOURNAL: cut a torn record at offset 40", .notice),
        ("finished the interrupted drop of layered:t", .notice),
        ("metadata snapshot: No space left on device", .warning),
        // panic.c
        ("after panic: step-up failed: draining layered:t", .error),
    ]

    @Test func everyMessageOfTheCoreHasItsLevel() {
        for (message, level) in Self.samples {
            #expect(LibraryMessage.level(of: message) == level, "\(message)")
        }
        #expect(LibraryMessage.level(of: "a message not written yet") == .error)
    }

    /// The samples cover every call that writes a message: a new call fails this test until it
    /// has a sample (and so a level chosen on purpose).
    @Test func theSamplesCoverEveryMessageCall() throws {
        let core = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("CLayered")
        var calls = 0
        for name in try FileManager.default.contentsOfDirectory(atPath: core.path)
        where name.hasSuffix(".c") {
            let text = try String(contentsOf: core.appendingPathComponent(name), encoding: .utf8)
            for marker in ["layered_msg(", "fs_message(", "ERR_MSG("] {
                calls += text.components(separatedBy: marker).count - 1
            }
        }
        // Not messages: the definitions of layered_msg and fs_message, and env_message's relay.
        let definitionsAndRelays = 3
        #expect(calls - definitionsAndRelays == Self.samples.count)
    }

    @Test func theLoggerReceivesMessagesAtTheirLevel() async throws {
        let recorder = LogRecorder()
        let logger = Logger(label: "test") { _ in recorder }
        try await withDatabase(Configuration(logger: logger)) { database, home in
            let table = try database.createTable("t")
            try table.put("k", "v")
            try table.archive()
            #expect(throws: LayeredError.EBUSY) { try table.offload() }
            let entry = try #require(recorder.entries.first { $0.message.contains("not yet drained") })
            #expect(entry.level == .info)
            #expect(entry.metadata["layered.home"] == .string(home.path))

            // A second open of the home: its own logger gets the open-elsewhere error.
            let second = LogRecorder()
            #expect(throws: LayeredError.EBUSY) {
                try Database(
                    url: home, configuration: Configuration(logger: Logger(label: "second") { _ in second }))
            }
            let busy = try #require(second.entries.first { $0.message.contains("open elsewhere") })
            #expect(busy.level == .error)
        }
    }

    @Test func aPanicIsLoggedOnceAtCritical() async throws {
        let recorder = LogRecorder()
        let logger = Logger(label: "test") { _ in recorder }
        let configuration = Configuration(
            failpoints: ["drain.copy": "return(EIO)"], logger: logger)
        try await withDatabase(configuration) { database, _ in
            try database.createTable("t").put("k", "v")
            let error = await #expect(throws: LayeredError.panic) { try await database.stepUp() }
            let critical = recorder.entries.filter { $0.level == .critical }
            #expect(critical.count == 1)
            #expect(critical.first?.message == "panic: \(error?.message ?? "")")
            #expect(error?.message.contains("layered:t") ?? false)
        }
    }

    @Test func theMessageHandlerStillGetsTheRawLine() async throws {
        let recorder = LogRecorder()
        let messages = Messages()
        let configuration = Configuration(
            logger: Logger(label: "test") { _ in recorder }, messageHandler: { messages.append($0) })
        try await withDatabase(configuration) { database, _ in
            let table = try database.createTable("t")
            try table.put("k", "v")
            try table.archive()
            #expect(throws: LayeredError.EBUSY) { try table.offload() }
            #expect(messages.all == ["offload layered:t: the ingest holds rows not yet drained"])
            #expect(recorder.entries.map(\.message) == messages.all)
        }
    }
}

/// A log handler that keeps what it receives.
final class LogRecorder: LogHandler, @unchecked Sendable {
    struct Entry {
        var level: Logger.Level
        var message: String
        var metadata: Logger.Metadata
    }

    private let recorded = Mutex<[Entry]>([])
    // LogHandler's own properties, set only while the logger is configured, before it is shared.
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    var entries: [Entry] { recorded.withLock { $0 } }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let merged = metadata.merging(event.metadata ?? [:]) { $1 }
        recorded.withLock {
            $0.append(Entry(level: event.level, message: "\(event.message)", metadata: merged))
        }
    }
}
