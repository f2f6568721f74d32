import Foundation

/// Standard output and standard error, written at once (a pipe would otherwise hold lines back
/// until exit), and the one progress line a terminal shows.
enum Output {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var progressVisible = false

    /// Whether standard output is a terminal: progress is then a bar redrawn in place, and
    /// plain lines otherwise.
    static let isTerminal = isatty(STDOUT_FILENO) != 0

    /// Writes a line to standard output (clearing the progress line first).
    static func line(_ text: String) {
        lock.withLock {
            write(STDOUT_FILENO, (progressVisible ? "\r\u{1B}[K" : "") + text + "\n")
            progressVisible = false
        }
    }

    /// Redraws the progress line on a terminal.
    static func progress(_ text: String) {
        lock.withLock {
            write(STDOUT_FILENO, "\r\u{1B}[K" + text)
            progressVisible = true
        }
    }

    /// Writes a line to standard error.
    static func error(_ text: String) {
        lock.withLock {
            if progressVisible {
                write(STDOUT_FILENO, "\n")
                progressVisible = false
            }
            write(STDERR_FILENO, text.hasSuffix("\n") ? text : text + "\n")
        }
    }

    /// Writes JSON to standard output: snake_case keys, sorted, so that the output is the same
    /// from run to run.
    static func json(_ value: some Encodable) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        line(String(decoding: try encoder.encode(value), as: UTF8.self))
    }

    private static func write(_ fd: Int32, _ text: String) {
        var bytes = Array(text.utf8)
        _ = writeAll(fd, &bytes)
    }
}

/// write(2) until every byte is written; false on an error.
@discardableResult
func writeAll(_ fd: Int32, _ bytes: inout [UInt8], count: Int? = nil) -> Bool {
    let total = count ?? bytes.count
    var offset = 0
    while offset < total {
        let written = bytes.withUnsafeBytes { buffer in
            Glibc.write(fd, buffer.baseAddress! + offset, total - offset)
        }
        if written < 0 && errno == EINTR { continue }
        if written <= 0 { return false }
        offset += written
    }
    return true
}

/// A table of text columns: the first `leftAligned` columns are aligned on the left (names),
/// the others on the right (numbers).
func formatColumns(_ header: [String], _ rows: [[String]], leftAligned: Int = 1) -> [String] {
    var widths = header.map(\.count)
    for row in rows {
        for (index, cell) in row.enumerated() { widths[index] = max(widths[index], cell.count) }
    }
    return ([header] + rows).map { row in
        row.enumerated().map { index, cell in
            let padding = String(repeating: " ", count: widths[index] - cell.count)
            return index < leftAligned ? cell + padding : padding + cell
        }.joined(separator: "  ").trimmingCharacters(in: .whitespaces)
    }
}

/// Bytes in a short human form, for progress lines: 1.5 MB.
func humanBytes(_ bytes: UInt64) -> String {
    let units = ["B", "KB", "MB", "GB", "TB"]
    var value = Double(bytes)
    var unit = 0
    while value >= 1000 && unit < units.count - 1 {
        value /= 1000
        unit += 1
    }
    return unit == 0 ? "\(bytes) B" : String(format: "%.1f", value) + " " + units[unit]
}

extension Duration {
    /// The duration in seconds.
    var seconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}
