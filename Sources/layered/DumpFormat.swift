import Foundation

/// The text format of `layered dump` and `layered load`, modelled on `mdb_dump -p`:
///
/// ```
/// VERSION=1
/// format=print
/// table=NAME
/// HEADER=END
///  KEY
///  VALUE
///  ...
/// DATA=END
/// ```
///
/// Each row is two lines, the key's and then the value's, each starting with one space.  A byte
/// from 0x20 to 0x7e other than the backslash stands for itself; the backslash is written `\\`;
/// every other byte is a backslash and two lowercase hex digits (`\0a` for a newline).  So an
/// empty value is a line holding only the space, and no data line can be mistaken for
/// `DATA=END`.  Lines end with a newline; a loader also takes a carriage return before it
/// (which the format never holds unescaped), and hex digits in either case.  The header's
/// `table=` names the table dumped; load writes into the table it is given.
enum DumpFormat {
    static let version = "1"

    static func header(table: String) -> String {
        "VERSION=\(version)\nformat=print\ntable=\(table)\nHEADER=END\n"
    }

    static let trailer = "DATA=END\n"

    private static let hexDigits = Array("0123456789abcdef".utf8)

    /// Appends a data line for `bytes`: a space, the escaped bytes, a newline.
    static func appendLine(_ bytes: UnsafeRawBufferPointer, to out: inout [UInt8]) {
        out.append(0x20)
        for byte in bytes {
            if byte == 0x5C {
                out.append(0x5C)
                out.append(0x5C)
            } else if byte >= 0x20 && byte <= 0x7E {
                out.append(byte)
            } else {
                out.append(0x5C)
                out.append(hexDigits[Int(byte >> 4)])
                out.append(hexDigits[Int(byte & 0x0F)])
            }
        }
        out.append(0x0A)
    }

    /// The bytes a data line stands for (the line without its newline), or a description of
    /// what is wrong with it.
    static func decodeLine(_ line: ArraySlice<UInt8>) -> Result<[UInt8], DumpError> {
        guard line.first == 0x20 else {
            return .failure(DumpError(column: 1, "a data line must start with a space"))
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(line.count)
        var index = line.startIndex + 1
        while index < line.endIndex {
            let byte = line[index]
            let column = index - line.startIndex + 1
            if byte == 0x5C {
                if index + 1 < line.endIndex, line[index + 1] == 0x5C {
                    bytes.append(0x5C)
                    index += 2
                    continue
                }
                guard index + 2 < line.endIndex,
                    let high = hexValue(line[index + 1]), let low = hexValue(line[index + 2])
                else {
                    return .failure(
                        DumpError(column: column, "a backslash must be followed by \\ or two hex digits"))
                }
                bytes.append(high << 4 | low)
                index += 3
            } else if byte >= 0x20 && byte <= 0x7E {
                bytes.append(byte)
                index += 1
            } else {
                return .failure(
                    DumpError(
                        column: column,
                        "byte 0x\(String(byte, radix: 16)) must be escaped"))
            }
        }
        return .success(bytes)
    }

    private static func hexValue(_ digit: UInt8) -> UInt8? {
        switch digit {
        case 0x30...0x39: digit - 0x30
        case 0x61...0x66: digit - 0x61 + 10
        case 0x41...0x46: digit - 0x41 + 10
        default: nil
        }
    }
}

/// What is wrong with a line of a dump.
struct DumpError: Error {
    var column: Int
    var message: String

    init(column: Int, _ message: String) {
        self.column = column
        self.message = message
    }
}

/// Reads a file descriptor line by line, in large reads; a line may be any length.
final class LineReader {
    private let fd: Int32
    private var buffer: [UInt8] = []
    private var start = 0
    private var isAtEnd = false
    /// The number of the line last returned, from 1.
    private(set) var lineNumber = 0

    init(fd: Int32) {
        self.fd = fd
    }

    /// The next line without its newline (and without a carriage return before it), or `nil`
    /// at the end of the input.  A last line without a newline is returned as it is.
    func next() throws -> ArraySlice<UInt8>? {
        var scanned = 0  // bytes after `start` known to hold no newline
        while true {
            if let newline = buffer[(start + scanned)...].firstIndex(of: 0x0A) {
                var end = newline
                if end > start && buffer[end - 1] == 0x0D { end -= 1 }
                let line = buffer[start..<end]
                start = newline + 1
                lineNumber += 1
                return line
            }
            if isAtEnd {
                guard start < buffer.count else { return nil }
                let line = buffer[start...]
                start = buffer.count
                lineNumber += 1
                return line
            }
            scanned = buffer.count - start
            try fill()
        }
    }

    /// Drops the lines already returned and reads more; sets `isAtEnd` at the end of the input.
    private func fill() throws {
        if start > 0 {
            buffer.removeFirst(start)
            start = 0
        }
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 {
                throw ToolFailure.failed("reading: \(String(cString: strerror(errno)))")
            }
            if n == 0 { isAtEnd = true }
            buffer.append(contentsOf: chunk[..<n])
            return
        }
    }

    /// What one read(2) fills.
    private var chunk = [UInt8](repeating: 0, count: 1 << 20)
}

/// Writes to a file descriptor through a buffer.
final class BufferedWriter {
    private let fd: Int32
    private var buffer: [UInt8] = []
    private let limit = 1 << 20

    init(fd: Int32) {
        self.fd = fd
        buffer.reserveCapacity(limit)
    }

    func write(_ text: String) throws {
        buffer.append(contentsOf: text.utf8)
        if buffer.count >= limit { try flush() }
    }

    func writeLine(_ bytes: UnsafeRawBufferPointer) throws {
        DumpFormat.appendLine(bytes, to: &buffer)
        if buffer.count >= limit { try flush() }
    }

    func flush() throws {
        guard !buffer.isEmpty else { return }
        guard writeAll(fd, &buffer) else {
            throw ToolFailure.failed("writing: \(String(cString: strerror(errno)))")
        }
        buffer.removeAll(keepingCapacity: true)
    }
}
