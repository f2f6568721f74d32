#if canImport(Glibc)
internal import Glibc
#elseif canImport(Musl)
internal import Musl
#endif
internal import CLayered

/// An error reported by Layered: the C return code, and a message that says what went wrong.
///
/// Like swift-system's `Errno`, this is a struct, not an enum: a code that a later version of the
/// C library adds is still a `LayeredError`, with its C value in ``code``, and never breaks a
/// caller's `switch`.  Each C code has a static member: the library's own codes (negative in C)
/// have descriptive names, `errno` values (positive in C) their C names.  Both work in `catch`
/// clauses and `switch` cases, which compare codes:
///
/// ```swift
/// do {
///     try database.dropTable("orders")
/// } catch LayeredError.EBUSY {
///     // a cursor or a drain holds the table: retry later
/// } catch LayeredError.panic {
///     // the database no longer serves requests; `error.message` says why
/// }
/// ```
///
/// ```swift
/// do {
///     try table.put(key, value)
/// } catch {                       // `error` is a LayeredError: `put` throws nothing else
///     switch error {
///     case .ENOSPC, .EDQUOT: pauseWriters()
///     case .panic: restart(reason: error.message)
///     default: throw error
///     }
/// }
/// ```
///
/// In a function, a `do` whose calls all throw `LayeredError` catches a `LayeredError`; inside a
/// closure, write `do throws(LayeredError)` for the same.  `catch LayeredError.EBUSY` and
/// `case .EBUSY:` match either way: ``~=(_:_:)-(_,Error)`` compares the code of any
/// error that is a `LayeredError`.
///
/// Two errors are equal, and hash alike, when their codes are equal: the message is context,
/// not identity.
public struct LayeredError: Error, Hashable, Sendable {
    /// The C return code: a positive `errno` value or a negative `LAYERED_*` code.
    public let code: Int32
    /// What went wrong.  For ``panic``, the message the C core reported with the database's first
    /// panic (every later call throws the same one); for the other codes, the text of
    /// `layered_strerror`, or a more precise sentence where the Swift layer knows one (a closed
    /// database, a name with a NUL byte).
    public let message: String

    /// Creates the error for a non-zero C return code.
    ///
    /// - Parameters:
    ///   - code: a positive `errno` value or a negative `LAYERED_*` code.
    ///   - message: what went wrong; `nil` or empty: the text of `layered_strerror(code)`.
    public init(code: Int32, message: String? = nil) {
        self.code = code
        if let message, !message.isEmpty {
            self.message = message
        } else {
            self.message = Self.text(of: code)
        }
    }

    /// Whether the code is one of the library's own (`LAYERED_*`, negative) rather than an
    /// `errno` value.
    public var isLibraryCode: Bool { code < 0 }

    /// Whether two errors have the same code; their messages may differ.
    public static func == (lhs: LayeredError, rhs: LayeredError) -> Bool {
        lhs.code == rhs.code
    }

    /// Hashes the code only, as ``==(_:_:)`` compares it only.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(code)
    }

    /// Matches any error that is a `LayeredError` with the pattern's code, so that
    /// `catch LayeredError.EBUSY` works where the thrown type is `any Error`.
    public static func ~= (pattern: LayeredError, value: any Error) -> Bool {
        (value as? LayeredError)?.code == pattern.code
    }

    /// Matches an error with the pattern's code: `case .EBUSY:` in a `switch` over an error.
    public static func ~= (pattern: LayeredError, value: LayeredError) -> Bool {
        pattern.code == value.code
    }

    /// The text of `layered_strerror` for a code.
    static func text(of code: Int32) -> String {
        String(cString: layered_strerror(code))
    }

    /// `LAYERED_NOTFOUND`: the key was not found, or a cursor ran off the end of the table.
    public static var notFound: LayeredError { LayeredError(code: LAYERED_NOTFOUND) }
    /// `LAYERED_PANIC`: the database has panicked and no longer serves requests.
    ///
    /// ``message`` is the one the C core reported with the first panic; every call made on the
    /// database after it throws the same message.
    public static var panic: LayeredError { LayeredError(code: LAYERED_PANIC) }
    /// `LAYERED_CORRUPT`: a file is damaged somewhere other than a torn tail.
    public static var corrupt: LayeredError { LayeredError(code: LAYERED_CORRUPT) }
    /// `LAYERED_NOT_ARCHIVED`: an offload found that the table is no longer archived: an
    /// unarchive came first.
    public static var notArchived: LayeredError { LayeredError(code: LAYERED_NOT_ARCHIVED) }
    /// `LAYERED_IN_PROGRESS`: an offload or a restore of the table is already under way; retry
    /// once it has finished.
    public static var inProgress: LayeredError { LayeredError(code: LAYERED_IN_PROGRESS) }

    /// `EPERM`: the operation is not permitted.
    public static var EPERM: LayeredError { LayeredError(code: Glibc.EPERM) }
    /// `ENOENT`: no such table, file or directory.
    public static var ENOENT: LayeredError { LayeredError(code: Glibc.ENOENT) }
    /// `EINTR`: a system call was interrupted.
    public static var EINTR: LayeredError { LayeredError(code: Glibc.EINTR) }
    /// `EIO`: an input/output error.
    public static var EIO: LayeredError { LayeredError(code: Glibc.EIO) }
    /// `EBADF`: a bad file descriptor.
    public static var EBADF: LayeredError { LayeredError(code: Glibc.EBADF) }
    /// `EAGAIN`: a resource is temporarily unavailable: threads could not be started, or an
    /// unarchive met an offload that had already taken the table (retry: the retry restores it).
    public static var EAGAIN: LayeredError { LayeredError(code: Glibc.EAGAIN) }
    /// `ENOMEM`: out of memory.
    public static var ENOMEM: LayeredError { LayeredError(code: Glibc.ENOMEM) }
    /// `EACCES`: permission denied.
    public static var EACCES: LayeredError { LayeredError(code: Glibc.EACCES) }
    /// `EBUSY`: a cursor, a drain, an offload or another process holds the resource, or an
    /// offload found rows not yet drained; retry later.
    public static var EBUSY: LayeredError { LayeredError(code: Glibc.EBUSY) }
    /// `EEXIST`: the table already exists.
    public static var EEXIST: LayeredError { LayeredError(code: Glibc.EEXIST) }
    /// `EXDEV`: a cross-device link.
    public static var EXDEV: LayeredError { LayeredError(code: Glibc.EXDEV) }
    /// `ENOTDIR`: a path component is not a directory.
    public static var ENOTDIR: LayeredError { LayeredError(code: Glibc.ENOTDIR) }
    /// `EISDIR`: the path is a directory.
    public static var EISDIR: LayeredError { LayeredError(code: Glibc.EISDIR) }
    /// `EINVAL`: an invalid argument: a malformed table name, an empty or oversized key, a value
    /// out of range, or a handle whose database has been closed.
    public static var EINVAL: LayeredError { LayeredError(code: Glibc.EINVAL) }
    /// `ENFILE`: too many open files in the system.
    public static var ENFILE: LayeredError { LayeredError(code: Glibc.ENFILE) }
    /// `EMFILE`: too many open files in the process.
    public static var EMFILE: LayeredError { LayeredError(code: Glibc.EMFILE) }
    /// `EFBIG`: a file is too large.
    public static var EFBIG: LayeredError { LayeredError(code: Glibc.EFBIG) }
    /// `ENOSPC`: no space left on the device.
    public static var ENOSPC: LayeredError { LayeredError(code: Glibc.ENOSPC) }
    /// `EROFS`: the file system is read-only.
    public static var EROFS: LayeredError { LayeredError(code: Glibc.EROFS) }
    /// `ERANGE`: a result is out of range.
    public static var ERANGE: LayeredError { LayeredError(code: Glibc.ERANGE) }
    /// `EDEADLK`: the operation would deadlock.
    public static var EDEADLK: LayeredError { LayeredError(code: Glibc.EDEADLK) }
    /// `ENAMETOOLONG`: a file name is too long.
    public static var ENAMETOOLONG: LayeredError { LayeredError(code: Glibc.ENAMETOOLONG) }
    /// `ENOTEMPTY`: a directory is not empty.
    public static var ENOTEMPTY: LayeredError { LayeredError(code: Glibc.ENOTEMPTY) }
    /// `ELOOP`: too many symbolic links.
    public static var ELOOP: LayeredError { LayeredError(code: Glibc.ELOOP) }
    /// `EOVERFLOW`: a value is too large for its data type.
    public static var EOVERFLOW: LayeredError { LayeredError(code: Glibc.EOVERFLOW) }
    /// `ENOTSUP`: the operation is not supported (for example, writing through a read-only
    /// cursor).
    public static var ENOTSUP: LayeredError { LayeredError(code: Glibc.ENOTSUP) }
    /// `ETIMEDOUT`: a wait timed out.
    public static var ETIMEDOUT: LayeredError { LayeredError(code: Glibc.ETIMEDOUT) }
    /// `EDQUOT`: the disk quota is exceeded.
    public static var EDQUOT: LayeredError { LayeredError(code: Glibc.EDQUOT) }

    /// Every code with a static member but ``panic``, for tests that check them against C.
    static var named: [LayeredError] {
        [
            .notFound, .corrupt, .notArchived, .inProgress, .EPERM, .ENOENT, .EINTR, .EIO, .EBADF,
            .EAGAIN, .ENOMEM, .EACCES, .EBUSY, .EEXIST, .EXDEV, .ENOTDIR, .EISDIR, .EINVAL, .ENFILE,
            .EMFILE, .EFBIG, .ENOSPC, .EROFS, .ERANGE, .EDEADLK, .ENAMETOOLONG, .ENOTEMPTY, .ELOOP,
            .EOVERFLOW, .ENOTSUP, .ETIMEDOUT, .EDQUOT,
        ]
    }
}

extension LayeredError: CustomStringConvertible {
    /// The text of `layered_strerror` for ``code``, followed by ``message`` when it says more.
    public var description: String {
        let text = Self.text(of: code)
        return message == text ? text : "\(text): \(message)"
    }
}

/// Throws the error for a C return code; returns if it is 0.
///
/// The one place where C return codes become Swift errors.  `LAYERED_PANIC` carries the message
/// the database recorded when it panicked.
/// - Parameters:
///   - code: the return code of a `layered_*` call.
///   - panicMessage: called only for `LAYERED_PANIC`.
@inline(__always)
func check(_ code: Int32, panicMessage: @autoclosure () -> String = "") throws(LayeredError) {
    guard code != 0 else { return }
    throw LayeredError(code: code, message: code == LAYERED_PANIC ? panicMessage() : nil)
}
