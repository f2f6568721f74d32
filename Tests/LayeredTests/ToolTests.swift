import Foundation
import Layered
import Testing

/// The `layered` command-line tool, run as a subprocess: each subcommand's output and its exit
/// status (0 success, 1 failure, 2 usage error, 3 damage found by verify).
///
/// The tool is the `layered` executable built beside this test bundle (`swift build
/// --build-tests` builds both), or the one `LAYERED_TOOL` names.  Each test makes its database
/// through the Swift API, closes it, and runs the tool on it.
@Suite(.serialized) struct ToolTests {
    // MARK: stat, tables

    @Test func statPrintsTheConnectionAndEveryTable() async throws {
        try await withTemporaryDirectory { directory in
            let home = try await makeTwoTables(in: directory)
            let text = try runTool(["stat", home.path])
            #expect(text.status == 0, "\(text.stderr)")
            #expect(text.stdout.contains("database size"))
            #expect(text.stdout.contains("counters since open"))
            #expect(text.stdout.contains("NAME  STATE"))

            let run = try runTool(["stat", home.path, "--json"])
            #expect(run.status == 0, "\(run.stderr)")
            let json = try #require(try JSONSerialization.jsonObject(with: run.stdoutData) as? [String: Any])
            let connection = try #require(json["connection"] as? [String: Any])
            #expect(connection["tables"] as? Int == 2)
            #expect(connection["role"] as? String == "follower")
            #expect(
                number(connection["database_size"])
                    == (try stableFilesBytes(home: home)) + Statistics.checkpointSizeBuffer)
            let tables = try #require(json["tables"] as? [[String: Any]])
            #expect(tables.map { $0["name"] as? String } == ["a", "b"])
            #expect(tables.map { $0["rows"] as? Int } == [3, 2])
            let totals = try #require(json["totals"] as? [String: Any])
            #expect(totals["rows"] as? Int == 5)
        }
    }

    @Test func tablesListsRowsAndTheBytesOfEachConstituent() async throws {
        try await withTemporaryDirectory { directory in
            let home = try await makeTwoTables(in: directory)
            let database = try Database(url: home)
            try database.archiveTable("b")
            try database.offloadTable("b")
            try database.close()

            let text = try runTool(["tables", home.path])
            #expect(text.status == 0, "\(text.stderr)")
            let lines = text.stdout.split(separator: "\n")
            #expect(lines.count == 3)
            #expect(lines[0].hasPrefix("NAME  STATE"))
            #expect(lines[2].hasPrefix("b     offloaded"))

            let run = try runTool(["tables", home.path, "--json"])
            #expect(run.status == 0, "\(run.stderr)")
            let tables = try #require(try JSONSerialization.jsonObject(with: run.stdoutData) as? [[String: Any]])
            #expect(tables.count == 2)
            let a = tables[0], b = tables[1]
            #expect(a["state"] as? String == "active")
            #expect(a["rows"] as? Int == 3)
            let ingest = try #require(a["ingest"] as? [String: Any])
            let stable = try #require(a["stable"] as? [String: Any])
            #expect(ingest["rows"] as? Int == 3)
            #expect(stable["rows"] as? Int == 0)
            #expect(number(ingest["bytes"]) == fileSize(home.appendingPathComponent("a.ingest")))
            #expect(number(stable["bytes"]) == fileSize(home.appendingPathComponent("shared/a.stable")))
            // An offloaded table: no ingest file, and its rows are not read.
            #expect(b["state"] as? String == "offloaded")
            #expect(b["rows"] is NSNull)
            let offloadedIngest = try #require(b["ingest"] as? [String: Any])
            #expect(offloadedIngest["exists"] as? Bool == false)
            let offloadedStable = try #require(b["stable"] as? [String: Any])
            #expect(
                number(offloadedStable["bytes"]) == fileSize(home.appendingPathComponent("shared/b.stable")))
        }
    }

    // MARK: dump, load

    @Test func dumpThenLoadRoundTripsEveryByte() async throws {
        try await withTemporaryDirectory { directory in
            let home = directory.appendingPathComponent("home")
            let rows = Self.awkwardRows()
            let database = try Database(url: home)
            let table = try database.createTable("bytes")
            for (key, value) in rows { try table.put(key, value) }
            try database.close()

            let dumpFile = directory.appendingPathComponent("bytes.dump")
            let dump = try runTool(["dump", home.path, "bytes", "--output", dumpFile.path])
            #expect(dump.status == 0, "\(dump.stderr)")
            #expect(dump.stdout.contains("dumped \(rows.count) rows"))
            let text = try Data(contentsOf: dumpFile)
            #expect(text.starts(with: Array("VERSION=1\nformat=print\ntable=bytes\nHEADER=END\n".utf8)))
            #expect(text.suffix(9) == Data("DATA=END\n".utf8))
            // Printable ASCII only, and every data line starts with a space.
            #expect(text.allSatisfy { $0 == 0x0A || (0x20...0x7E).contains($0) })
            let lines = String(decoding: text, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
            #expect(lines[4..<(lines.count - 2)].allSatisfy { $0.hasPrefix(" ") })
            #expect(lines.count == 4 + 2 * rows.count + 2)
            // The escapes: a backslash doubled, a newline as \0a, printable bytes as they are.
            #expect(lines.contains(#" \\\0aA "#))
            #expect(lines.contains(" "))  // the empty value

            let copy = directory.appendingPathComponent("copy")
            let load = try runTool(["load", copy.path, "copy", "--input", dumpFile.path, "--create"])
            #expect(load.status == 0, "\(load.stderr)")
            #expect(load.stdout.contains("loaded \(rows.count) rows into layered:copy"))

            // Through the pipes too: dump to standard output, load from standard input.
            let piped = try runTool(["dump", home.path, "bytes"])
            #expect(piped.status == 0)
            #expect(piped.stdoutData == text)
            let fromStdin = try runTool(["load", copy.path, "piped", "--create"], input: piped.stdoutData)
            #expect(fromStdin.status == 0, "\(fromStdin.stderr)")

            let loaded = try Database(url: copy)
            defer { try? loaded.close() }
            let expected = rows.sorted { $0.key.lexicographicallyPrecedes($1.key) }
            for name in ["copy", "piped"] {
                let entries = Array(try loaded.table(named: name).entries())
                #expect(entries.count == expected.count)
                #expect(entries.map(\.key) == expected.map(\.key))
                #expect(entries.map(\.value) == expected.map(\.value))
            }
        }
    }

    @Test func loadRefusesMalformedInput() async throws {
        try await withTemporaryDirectory { directory in
            let home = try await makeTwoTables(in: directory)
            let header = "VERSION=1\nformat=print\ntable=a\nHEADER=END\n"

            let badEscape = try runTool(
                ["load", home.path, "a"], input: Data((header + " k1\n v1\n k2\n v\\zz\nDATA=END\n").utf8))
            #expect(badEscape.status == 1)
            #expect(badEscape.stderr.contains("line 8: column 3"))
            #expect(badEscape.stderr.contains("rows loaded before it: 1"))

            let unterminated = try runTool(["load", home.path, "a"], input: Data((header + " k1\n v1\n").utf8))
            #expect(unterminated.status == 1)
            #expect(unterminated.stderr.contains("ends before DATA=END"))

            let notADump = try runTool(["load", home.path, "new"], input: Data("hello\n".utf8))
            #expect(notADump.status == 1)
            #expect(notADump.stderr.contains("no VERSION= line"))

            let missing = try runTool(["load", home.path, "new"], input: Data((header + "DATA=END\n").utf8))
            #expect(missing.status == 1)
            #expect(missing.stderr.contains("layered:new: no such table"))

            let database = try Database(url: home)
            defer { try? database.close() }
            #expect(try database.tables().map(\.name) == ["a", "b"])
            #expect(try database.table(named: "a").get("k1", as: String.self) == "v1")
        }
    }

    // MARK: verify

    @Test func verifyFindsAFlippedBitAndChangesNothing() async throws {
        try await withTemporaryDirectory { directory in
            let home = try await makeTwoTables(in: directory)
            let clean = try runTool(["verify", home.path])
            #expect(clean.status == 0, "\(clean.stderr)")
            #expect(clean.stdout.contains("no damage"))

            let stable = home.appendingPathComponent("shared/b.stable")
            let records = try recordOffsets(stable)
            #expect(records.count == 2)
            let victim = records[0]  // not the last: damage there would be a torn tail
            try flipBit(stable, at: victim.offset + 24 + UInt64(victim.keyLength))
            let before = try snapshotFiles(home)

            let damaged = try runTool(["verify", home.path])
            #expect(damaged.status == 3)
            #expect(damaged.stdout.contains("damage: \(stable.path): offset \(victim.offset): record body checksum mismatch"))
            #expect(damaged.stdout.contains("1 damaged"))
            #expect(damaged.stderr.contains("damage found"))
            // Only the damaged table, or only the other one.
            #expect(try runTool(["verify", home.path, "b"]).status == 3)
            #expect(try runTool(["verify", home.path, "a"]).status == 0)
            #expect(try runTool(["verify", home.path, "nope"]).status == 1)
            #expect(try snapshotFiles(home) == before)
        }
    }

    @Test func verifyReportsATornTailAsNoDamage() async throws {
        try await withTemporaryDirectory { directory in
            let home = try await makeTwoTables(in: directory)
            let ingest = home.appendingPathComponent("a.ingest")
            let last = try #require(try recordOffsets(ingest).last)
            let handle = try FileHandle(forWritingTo: ingest)
            try handle.truncate(atOffset: fileSize(ingest) - 3)
            try handle.close()
            let before = try snapshotFiles(home)

            let run = try runTool(["verify", home.path])
            #expect(run.status == 0, "\(run.stderr)")
            #expect(run.stdout.contains("torn tail: \(ingest.path): offset \(last.offset): record runs past end of file"))
            #expect(run.stdout.contains("no damage, 1 torn tail"))
            #expect(try snapshotFiles(home) == before)
        }
    }

    @Test func verifyRefusesAnOpenHome() async throws {
        try await withTemporaryDirectory { directory in
            let home = try await makeTwoTables(in: directory)
            let database = try Database(url: home)
            defer { try? database.close() }
            let run = try runTool(["verify", home.path])
            #expect(run.status == 1)
            #expect(run.stderr.contains("open in another process"))
            // So does every subcommand that opens it.
            #expect(try runTool(["stat", home.path]).status == 1)
        }
    }

    // MARK: salvage

    @Test func salvageRecoversEveryRowButTheDamagedOne() async throws {
        try await withTemporaryDirectory { directory in
            let home = directory.appendingPathComponent("home")
            let database = try Database(url: home)
            let orders = try database.createTable("orders")
            for i in 0..<30 { try orders.put(Self.key(i), "stable-\(i)") }
            _ = try await database.stepUp()
            try database.stepDown()
            for i in 30..<35 { try orders.put(Self.key(i), "ingest-\(i)") }
            try orders.put(Self.key(0), "newer")   // ingest over stable
            try orders.remove(Self.key(1))         // an ingest tombstone hides the stable row
            try database.close()

            // Damage the stable record of key 10: it has no other record.
            let stable = home.appendingPathComponent("shared/orders.stable")
            let records = try recordOffsets(stable)
            #expect(records.count == 30)
            try flipBit(stable, at: records[10].offset + 24 + UInt64(records[10].keyLength) + 1)

            let run = try runTool(["salvage", home.path, "orders", "rescued"])
            #expect(run.status == 0, "\(run.stderr)")
            #expect(run.stdout.contains("damage: \(stable.path): offset \(records[10].offset)"))
            #expect(run.stdout.contains("salvage: 33 rows of layered:orders copied into layered:rescued"))

            let reopened = try Database(url: home)
            defer { try? reopened.close() }
            var expected: [String: String] = [:]
            for i in 0..<30 where i != 1 && i != 10 { expected[Self.key(i)] = "stable-\(i)" }
            for i in 30..<35 { expected[Self.key(i)] = "ingest-\(i)" }
            expected[Self.key(0)] = "newer"
            #expect(strings(try reopened.table(named: "rescued").entries()) == expected)
            try reopened.close()

            // A second salvage into the same table is refused.
            let again = try runTool(["salvage", home.path, "orders", "rescued"])
            #expect(again.status == 1)
            #expect(again.stderr.contains("layered:rescued exists"))
        }
    }

    // MARK: Operations

    @Test func checkpointStepUpStepDown() async throws {
        try await withTemporaryDirectory { directory in
            let home = directory.appendingPathComponent("home")
            let database = try Database(url: home)
            for name in ["t1", "t2", "t3"] {
                let table = try database.createTable(name)
                for i in 0..<20 { try table.put(Self.key(i), "\(name)-\(i)") }
            }
            try database.close()

            let checkpoint = try runTool(["checkpoint", home.path])
            #expect(checkpoint.status == 0, "\(checkpoint.stderr)")
            #expect(checkpoint.stdout.contains("checkpoint: database size"))

            let stepUp = try runTool(["step-up", home.path])
            #expect(stepUp.status == 0, "\(stepUp.stderr)")
            #expect(stepUp.stdout.contains("step-up: draining up to 3 tables"))
            #expect(stepUp.stdout.contains("step-up: 3 tables drained (3 queued, 0 skipped), 60 rows"))
            // Not a terminal: plain lines, no bar.
            #expect(!stepUp.stdout.contains("\u{1B}["))

            let reopened = try Database(url: home)
            for name in ["t1", "t2", "t3"] {
                let table = try reopened.table(named: name)
                #expect(try countRows(Cursor(table: table, constituent: .ingest)) == 0)
                #expect(try countRows(Cursor(table: table, constituent: .stable)) == 20)
            }
            try reopened.close()

            let stepDown = try runTool(["step-down", home.path])
            #expect(stepDown.status == 0, "\(stepDown.stderr)")
            #expect(stepDown.stdout.contains("follower"))
        }
    }

    @Test func archiveOffloadUnarchive() async throws {
        try await withTemporaryDirectory { directory in
            let home = try await makeTwoTables(in: directory)  // b's rows are in stable

            let archive = try runTool(["archive", home.path, "a", "b"])
            #expect(archive.status == 0, "\(archive.stderr)")
            #expect(archive.stdout.contains("archived layered:a (1 of 2)"))
            #expect(archive.stdout.contains("archived layered:b (2 of 2)"))

            // a's rows are still in its ingest: it cannot be offloaded before a step-up.
            let offload = try runTool(["offload", home.path, "a", "b"])
            #expect(offload.status == 1)
            #expect(offload.stderr.contains("layered:a: "))
            #expect(offload.stderr.contains("run `layered step-up"))
            #expect(offload.stdout.contains("offloaded layered:b (2 of 2)"))

            let notArchived = try runTool(["offload", home.path, "nope"])
            #expect(notArchived.status == 1)
            #expect(notArchived.stderr.contains("layered:nope: no such table"))

            var database = try Database(url: home)
            #expect(try database.state(ofTable: "a") == .archived)
            #expect(try database.state(ofTable: "b") == .offloaded)
            try database.close()

            let unarchive = try runTool(["unarchive", home.path, "a", "b"])
            #expect(unarchive.status == 0, "\(unarchive.stderr)")
            database = try Database(url: home)
            defer { try? database.close() }
            #expect(try database.state(ofTable: "a") == .active)
            #expect(try database.state(ofTable: "b") == .active)
            #expect(try database.table(named: "b").get(Self.key(1), as: String.self) == "b-1")
        }
    }

    // MARK: Exit statuses

    @Test func usageErrorsExitTwo() async throws {
        try await withTemporaryDirectory { directory in
            let home = try await makeTwoTables(in: directory)
            for arguments in [
                [], ["bogus"], ["stat"], ["stat", home.path, "--bogus"], ["dump", home.path],
                ["archive", home.path], ["salvage", home.path, "a", "a"], ["load"],
            ] {
                let run = try runTool(arguments)
                #expect(run.status == 2, "layered \(arguments): \(run.stderr)")
                #expect(!run.stderr.isEmpty)
            }
            let help = try runTool(["--help"])
            #expect(help.status == 0)
            #expect(help.stdout.contains("EXIT STATUS"))
            #expect(help.stdout.contains("3  verify found damage"))
            #expect(try runTool(["help", "verify"]).status == 0)

            let missing = try runTool(["stat", directory.appendingPathComponent("nope").path])
            #expect(missing.status == 1)
            #expect(missing.stderr.contains("no such directory"))
            let notHome = try runTool(["tables", directory.path])
            #expect(notHome.status == 1)
            #expect(notHome.stderr.contains("not a Layered home"))
            #expect(!FileManager.default.fileExists(atPath: directory.appendingPathComponent("LOCK").path))
        }
    }

    // MARK: Helpers

    static func key(_ i: Int) -> String { String(format: "key-%03d", i) }

    /// Rows that exercise the format: every byte value in a key of its own and in a value, an
    /// empty value, a 16 KiB value, and a key of escapes.
    static func awkwardRows() -> [(key: [UInt8], value: [UInt8])] {
        var rows: [(key: [UInt8], value: [UInt8])] = []
        let every = (0...255).map { UInt8($0) }
        for byte in every {
            rows.append(([byte], Array(every[Int(byte)...] + every[..<Int(byte)])))
        }
        rows.append((Array("empty".utf8), []))
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        let big = (0..<16384).map { _ -> UInt8 in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return UInt8(truncatingIfNeeded: state >> 56)
        }
        rows.append((Array("big".utf8), big))
        rows.append(([0x5C, 0x0A, 0x41, 0x20], Array("value with spaces and a \\ backslash".utf8)))
        return rows
    }

    /// A home with tables a (3 rows in its ingest) and b (2 rows, drained into stable); closed.
    func makeTwoTables(in directory: URL) async throws -> URL {
        let home = directory.appendingPathComponent("home")
        let database = try Database(url: home)
        let b = try database.createTable("b")
        try b.put(Self.key(0), "b-0")
        try b.put(Self.key(1), "b-1")
        _ = try await database.stepUp()
        try database.stepDown()
        let a = try database.createTable("a")
        for i in 0..<3 { try a.put(Self.key(i), "a-\(i)") }
        try database.close()
        return home
    }
}

/// What one run of the tool did.
struct ToolRun {
    var status: Int32
    var stdoutData: Data
    var stderr: String
    var stdout: String { String(decoding: stdoutData, as: UTF8.self) }
}

/// The `layered` executable: `LAYERED_TOOL`, or the one built beside the test bundle.
let toolPath: String? = {
    if let path = ProcessInfo.processInfo.environment["LAYERED_TOOL"] { return path }
    var directory = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        .deletingLastPathComponent()
    for _ in 0..<4 {
        let candidate = directory.appendingPathComponent("layered").path
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: candidate, isDirectory: &isDirectory),
            !isDirectory.boolValue, FileManager.default.isExecutableFile(atPath: candidate)
        {
            return candidate
        }
        directory.deleteLastPathComponent()
    }
    return nil
}()

/// Runs the tool with the arguments and standard input, and waits for it.
func runTool(_ arguments: [String], input: Data = Data()) throws -> ToolRun {
    let path = try #require(
        toolPath, "the layered executable was not found: build it with `swift build --build-tests`")
    let scratch = FileManager.default.temporaryDirectory
        .appendingPathComponent("layered-tool-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: scratch) }
    let files = ["in", "out", "err"].map { scratch.appendingPathComponent($0) }
    try input.write(to: files[0])
    _ = FileManager.default.createFile(atPath: files[1].path, contents: nil)
    _ = FileManager.default.createFile(atPath: files[2].path, contents: nil)

    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    process.standardInput = try FileHandle(forReadingFrom: files[0])
    process.standardOutput = try FileHandle(forWritingTo: files[1])
    process.standardError = try FileHandle(forWritingTo: files[2])
    try process.run()
    process.waitUntilExit()
    return ToolRun(
        status: process.terminationStatus, stdoutData: try Data(contentsOf: files[1]),
        stderr: String(decoding: try Data(contentsOf: files[2]), as: UTF8.self))
}

/// A JSON number as UInt64.
func number(_ value: Any?) -> UInt64? {
    (value as? NSNumber)?.uint64Value
}

func fileSize(_ url: URL) -> UInt64 {
    let attributes = try? FileManager.default.attributesOfItem(atPath: url.path)
    return (attributes?[.size] as? NSNumber)?.uint64Value ?? 0
}

/// The records of a constituent file, walked by their headers (the format at the top of
/// CLayered/filestore.c: a 32-byte file header, then records of a 24-byte header, the key and
/// the value).
func recordOffsets(_ url: URL) throws -> [(offset: UInt64, keyLength: Int, valueLength: Int)] {
    let bytes = [UInt8](try Data(contentsOf: url))
    func le32(_ at: Int) -> Int {
        Int(bytes[at]) | Int(bytes[at + 1]) << 8 | Int(bytes[at + 2]) << 16 | Int(bytes[at + 3]) << 24
    }
    var records: [(offset: UInt64, keyLength: Int, valueLength: Int)] = []
    var offset = 32
    while offset + 24 <= bytes.count {
        let keyLength = le32(offset + 16) & 0xFFFFFF
        let valueLength = le32(offset + 20)
        records.append((UInt64(offset), keyLength, valueLength))
        offset += 24 + keyLength + valueLength
    }
    return records
}

func flipBit(_ url: URL, at offset: UInt64) throws {
    var bytes = [UInt8](try Data(contentsOf: url))
    bytes[Int(offset)] ^= 0x10
    try Data(bytes).write(to: url)
}

/// Every file under a directory with its contents and modification time.
func snapshotFiles(_ directory: URL) throws -> [String: Data] {
    var files: [String: Data] = [:]
    let enumerator = try #require(FileManager.default.enumerator(atPath: directory.path))
    for case let name as String in enumerator {
        let url = directory.appendingPathComponent(name)
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory),
            !isDirectory.boolValue
        else { continue }
        let attributes = try FileManager.default.attributesOfItem(atPath: url.path)
        let modified = (attributes[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
        files[name] = try Data(contentsOf: url) + Data("\(modified)".utf8)
    }
    return files
}

func countRows(_ cursor: Cursor) throws -> Int {
    defer { try? cursor.close() }
    var rows = 0
    while try cursor.next() { rows += 1 }
    return rows
}
