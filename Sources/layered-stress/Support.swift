import Dispatch
import Foundation
import Layered

/// Threads of the tool's own (never Swift's cooperative pool: every call into the library
/// blocks), joined together.
final class Workers: @unchecked Sendable {
    private let group = DispatchGroup()

    func spawn(_ name: String, _ body: @escaping @Sendable () -> Void) {
        group.enter()
        let thread = Thread { [group] in
            body()
            group.leave()
        }
        thread.name = name
        thread.start()
    }

    func join() {
        group.wait()
    }
}

/// Runs an async throwing call from a thread that is not part of the cooperative pool, and
/// waits for it.
func blocking<Value: Sendable>(_ body: @escaping @Sendable () async throws -> Value) -> Result<Value, Error> {
    let box = ResultBox<Value>()
    let done = DispatchSemaphore(value: 0)
    Task.detached {
        do {
            box.result = .success(try await body())
        } catch {
            box.result = .failure(error)
        }
        done.signal()
    }
    done.wait()
    return box.result!
}

/// Carries a result from a task to the thread waiting for it (the semaphore orders the two).
private final class ResultBox<Value>: @unchecked Sendable {
    var result: Result<Value, Error>?
}

func sleep(milliseconds: Double) {
    if milliseconds > 0 { usleep(useconds_t(milliseconds * 1000)) }
}

/// Standard output shared by the progress line and the log: one writer at a time, written at
/// once (a pipe would otherwise buffer the periodic lines until exit).
enum Output {
    private static let lock = NSLock()
    nonisolated(unsafe) static var progressVisible = false
    static let isTerminal = isatty(STDOUT_FILENO) != 0

    static func line(_ text: String) {
        lock.lock()
        defer { lock.unlock() }
        writeAll((progressVisible ? "\r\u{1B}[K" : "") + text + "\n")
        progressVisible = false
    }

    static func progress(_ text: String) {
        lock.lock()
        defer { lock.unlock() }
        writeAll("\r\u{1B}[K" + text)
        progressVisible = true
    }

    private static func writeAll(_ text: String) {
        var bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeMutableBytes { buffer in
                write(STDOUT_FILENO, buffer.baseAddress! + offset, buffer.count - offset)
            }
            if written < 0 && errno == EINTR { continue }
            if written <= 0 { return }
            offset += written
        }
    }
}

extension LayeredError {
    var isPanic: Bool { self == .panic }

    var panicText: String? { isPanic ? message : nil }
}

/// The error as a `LayeredError` (anything else becomes code 0, with its description).
func layeredError(_ error: Error) -> LayeredError {
    error as? LayeredError ?? LayeredError(code: 0, message: String(describing: error))
}

/// The size of a file, or `nil` if it does not exist.
func fileSize(_ path: String) -> UInt64? {
    var info = stat()
    guard stat(path, &info) == 0 else { return nil }
    return UInt64(info.st_size)
}

/// Writes a line to standard output with one `write(2)` (a line up to `PIPE_BUF` bytes reaches
/// the parent whole even when the process is killed right after).
func emitLine(_ line: String) {
    var bytes = Array((line + "\n").utf8)
    var offset = 0
    while offset < bytes.count {
        let written = bytes.withUnsafeMutableBytes { buffer in
            write(STDOUT_FILENO, buffer.baseAddress! + offset, buffer.count - offset)
        }
        if written < 0 {
            if errno == EINTR { continue }
            exit(4)
        }
        offset += written
    }
}

/// A deterministic value of `length` bytes (at least the tag) for a write.
func makeValue(_ tag: String, length: Int) -> String {
    tag.count >= length ? tag : tag + String(repeating: "~", count: length - tag.count)
}
