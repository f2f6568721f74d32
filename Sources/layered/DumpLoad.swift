import ArgumentParser
import Foundation
import Layered

/// The format, as `dump --help` and `load --help` explain it.
private let formatHelp = """
    The format (version 1), as mdb_dump -p writes it: a header, then two lines per row, the \
    key's and the value's, then DATA=END:

      VERSION=1
      format=print
      table=NAME
      HEADER=END
       key
       value
      DATA=END

    Each data line starts with one space.  Bytes 0x20 to 0x7e stand for themselves, except the \
    backslash, which is written \\\\; every other byte is a backslash and two hex digits (\\0a \
    for a newline).  An empty value is a line holding only the space.  Rows are in key order.
    """

struct Dump: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a table's rows in a portable text format.",
        discussion: formatHelp + "\n\n`layered load` reads it back, byte for byte.")

    @OptionGroup var options: HomeOptions

    @Argument(help: "The table's name (the NAME of layered:NAME).")
    var table: String

    @Option(name: .shortAndLong, help: ArgumentHelp("Write to a file instead of standard output.", valueName: "file"))
    var output: String?

    func run() throws {
        let rows = try withDatabase(options) { database in
            let handle = try attempt(table: table) { try database.table(named: table) }
            if try attempt(table: table, { try handle.state }) == .offloaded {
                throw ToolFailure.failed(
                    "layered:\(table) is offloaded: `layered unarchive \(options.home) \(table)` brings it back")
            }
            return try write(handle)
        }
        if let output {
            Output.line("dumped \(rows) rows of layered:\(table) to \(output)")
        }
    }

    /// Writes the dump; a partial output file is removed.
    private func write(_ handle: Table) throws -> Int {
        var fd = STDOUT_FILENO
        if let output {
            fd = open(output, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            guard fd >= 0 else {
                throw ToolFailure.failed("\(output): \(String(cString: strerror(errno)))")
            }
        }
        do {
            let writer = BufferedWriter(fd: fd)
            try writer.write(DumpFormat.header(table: table))
            let cursor = try attempt("reading layered:\(table)") { try handle.makeCursor() }
            defer { try? cursor.close() }
            var rows = 0
            while try attempt("reading layered:\(table)", { try cursor.next() }) {
                guard let entry = try cursor.entry() else { break }
                try entry.key.withUnsafeBytes { try writer.writeLine($0) }
                try entry.value.withUnsafeBytes { try writer.writeLine($0) }
                rows += 1
            }
            try writer.write(DumpFormat.trailer)
            try writer.flush()
            if let output {
                let closed = close(fd)
                fd = -1
                guard closed == 0 else {
                    throw ToolFailure.failed("\(output): \(String(cString: strerror(errno)))")
                }
            }
            return rows
        } catch {
            if let output {
                if fd >= 0 { close(fd) }
                unlink(output)
            }
            throw error
        }
    }
}

struct Load: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Read rows in the format of `layered dump` into a table.",
        discussion: formatHelp + """


            Each row is inserted, overwriting the key if the table has it; other rows stay.  \
            The header is read before the database is opened: a malformed header changes \
            nothing.  A malformed row stops the load with its line number, and the rows before \
            it are kept.  The rows are made durable by a checkpoint at the end.  As a follower \
            (the default) the rows go into the ingest constituent, which a step-up drains; with \
            --leader straight into the stable constituent.
            """)

    @OptionGroup var options: HomeOptions

    @Argument(help: "The table to load into (the header's table= may name another).")
    var table: String

    @Option(name: .shortAndLong, help: ArgumentHelp("Read from a file instead of standard input.", valueName: "file"))
    var input: String?

    @Flag(help: "Create the table if it does not exist, and the home if it is missing or empty.")
    var create = false

    @Flag(help: "Open the database as leader: the rows go into the stable constituent.")
    var leader = false

    func run() throws {
        var fd = STDIN_FILENO
        if let input {
            fd = open(input, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else {
                throw ToolFailure.failed("\(input): \(String(cString: strerror(errno)))")
            }
        }
        defer { if input != nil { close(fd) } }
        let source = input ?? "standard input"
        let reader = LineReader(fd: fd)
        try readHeader(reader, source: source)
        let rows = try withDatabase(
            options, role: leader ? .leader : .follower, sync: .buffered, create: create
        ) { database in
            let handle: Table =
                create
                ? try attempt(table: table) {
                    try database.createTable(table, exclusive: false)
                }
                : try attempt(table: table) { try database.table(named: table) }
            let cursor = try attempt("writing layered:\(table)") { try handle.makeCursor() }
            defer { try? cursor.close() }
            var rows = 0
            do {
                try readRows(reader, source: source, into: cursor, rows: &rows)
            } catch let failure as ToolFailure {
                throw ToolFailure.failed(failure.message + " (rows loaded before it: \(rows))")
            }
            try attempt("checkpoint") { try database.checkpoint() }
            return rows
        }
        Output.line("loaded \(rows) rows into layered:\(table)")
    }

    private func malformed(_ reader: LineReader, _ source: String, _ message: String) -> ToolFailure {
        ToolFailure.failed("\(source), line \(reader.lineNumber): \(message)")
    }

    private func readHeader(_ reader: LineReader, source: String) throws {
        guard let first = try reader.next() else {
            throw ToolFailure.failed("\(source): empty input, not a dump")
        }
        let version = String(decoding: first, as: UTF8.self)
        guard version.hasPrefix("VERSION=") else {
            throw malformed(reader, source, "not a dump of `layered dump` (no VERSION= line)")
        }
        guard version == "VERSION=\(DumpFormat.version)" else {
            throw malformed(reader, source, "unsupported dump version \(version.dropFirst(8))")
        }
        var format: String?
        while true {
            guard let line = try reader.next() else {
                throw malformed(reader, source, "the input ends inside the header")
            }
            let text = String(decoding: line, as: UTF8.self)
            if text == "HEADER=END" { break }
            if text.hasPrefix("format=") {
                format = String(text.dropFirst(7))
            } else if !text.hasPrefix("table=") {
                throw malformed(reader, source, "unknown header line \"\(text)\"")
            }
        }
        guard format == "print" else {
            throw malformed(
                reader, source,
                format.map { "unsupported format \"\($0)\"" } ?? "the header has no format= line")
        }
    }

    /// Reads the rows up to DATA=END into the cursor's table, counting them in `rows`.
    private func readRows(
        _ reader: LineReader, source: String, into cursor: Cursor, rows: inout Int
    ) throws {
        let end = Array("DATA=END".utf8)
        func decode(_ line: ArraySlice<UInt8>) throws -> [UInt8] {
            switch DumpFormat.decodeLine(line) {
            case .success(let bytes): return bytes
            case .failure(let error):
                throw malformed(reader, source, "column \(error.column): \(error.message)")
            }
        }
        while true {
            guard let keyLine = try reader.next() else {
                throw malformed(reader, source, "the input ends before DATA=END")
            }
            if keyLine.elementsEqual(end) { break }
            let key = try decode(keyLine)
            guard (1...65535).contains(key.count) else {
                throw malformed(reader, source, "a key must be 1 to 65535 bytes, this one is \(key.count)")
            }
            guard let valueLine = try reader.next(), !valueLine.elementsEqual(end) else {
                throw malformed(reader, source, "a key without a value")
            }
            let value = try decode(valueLine)
            try attempt("\(source), line \(reader.lineNumber): writing the row") {
                try cursor.put(key, value)
            }
            rows += 1
        }
        if try reader.next() != nil {
            throw malformed(reader, source, "text after DATA=END")
        }
    }
}
