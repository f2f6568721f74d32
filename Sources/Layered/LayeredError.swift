#if canImport(Glibc)
internal import Glibc
#elseif canImport(Musl)
internal import Musl
#endif
internal import CLayered

/// An error reported by Layered.
///
/// Every C return code has a case here: the library's own codes (negative in C) have descriptive
/// names, and `errno` values (positive in C) use their `Errno`-style names, so both read naturally
/// in `catch` patterns:
///
/// ```swift
/// do {
///     try database.dropTable("orders")
/// } catch LayeredError.EBUSY {
///     // a cursor or a drain holds the table: retry later
/// } catch LayeredError.panic(let message) {
///     // the database no longer serves requests
/// }
/// ```
///
/// ``description`` is the text of `layered_strerror`.
public enum LayeredError: Error, Hashable, Sendable {
    /// `LAYERED_NOTFOUND`: the key was not found, or a cursor ran off the end of the table.
    case notFound
    /// `LAYERED_PANIC`: the database has panicked and no longer serves requests.
    ///
    /// The associated message is the one the C core reported with the first panic; every call made
    /// on the database after it throws the same message.
    case panic(String)
    /// `LAYERED_CORRUPT`: a file is damaged somewhere other than a torn tail.
    case corrupt
    /// `LAYERED_NOT_ARCHIVED`: an offload found that the table is no longer archived: an
    /// unarchive came first.
    case notArchived
    /// `LAYERED_IN_PROGRESS`: an offload or a restore of the table is already under way; retry
    /// once it has finished.
    case inProgress

    /// `EPERM`: the operation is not permitted.
    case EPERM
    /// `ENOENT`: no such table, file or directory.
    case ENOENT
    /// `EINTR`: a system call was interrupted.
    case EINTR
    /// `EIO`: an input/output error.
    case EIO
    /// `EBADF`: a bad file descriptor.
    case EBADF
    /// `EAGAIN`: a resource is temporarily unavailable: threads could not be started, or an
    /// unarchive met an offload that had already taken the table (retry: the retry restores it).
    case EAGAIN
    /// `ENOMEM`: out of memory.
    case ENOMEM
    /// `EACCES`: permission denied.
    case EACCES
    /// `EBUSY`: a cursor, a drain, an offload or another process holds the resource, or an
    /// offload found rows not yet drained; retry later.
    case EBUSY
    /// `EEXIST`: the table already exists.
    case EEXIST
    /// `EXDEV`: a cross-device link.
    case EXDEV
    /// `ENOTDIR`: a path component is not a directory.
    case ENOTDIR
    /// `EISDIR`: the path is a directory.
    case EISDIR
    /// `EINVAL`: an invalid argument: a malformed table name, an empty or oversized key, a value
    /// out of range, or a handle whose database has been closed.
    case EINVAL
    /// `ENFILE`: too many open files in the system.
    case ENFILE
    /// `EMFILE`: too many open files in the process.
    case EMFILE
    /// `EFBIG`: a file is too large.
    case EFBIG
    /// `ENOSPC`: no space left on the device.
    case ENOSPC
    /// `EROFS`: the file system is read-only.
    case EROFS
    /// `ERANGE`: a result is out of range.
    case ERANGE
    /// `EDEADLK`: the operation would deadlock.
    case EDEADLK
    /// `ENAMETOOLONG`: a file name is too long.
    case ENAMETOOLONG
    /// `ENOTEMPTY`: a directory is not empty.
    case ENOTEMPTY
    /// `ELOOP`: too many symbolic links.
    case ELOOP
    /// `EOVERFLOW`: a value is too large for its data type.
    case EOVERFLOW
    /// `ENOTSUP`: the operation is not supported (for example, writing through a read-only
    /// cursor).
    case ENOTSUP
    /// `ETIMEDOUT`: a wait timed out.
    case ETIMEDOUT
    /// `EDQUOT`: the disk quota is exceeded.
    case EDQUOT

    /// A code this version of the Swift layer has no name for: its C value.
    case unknown(Int32)

    /// The named codes, for mapping a C value to its case.  Every case but ``panic(_:)`` and
    /// ``unknown(_:)`` is listed exactly once.
    static let named: [LayeredError] = [
        .notFound, .corrupt, .notArchived, .inProgress,
        .EPERM, .ENOENT, .EINTR, .EIO, .EBADF, .EAGAIN, .ENOMEM, .EACCES, .EBUSY, .EEXIST, .EXDEV,
        .ENOTDIR, .EISDIR, .EINVAL, .ENFILE, .EMFILE, .EFBIG, .ENOSPC, .EROFS, .ERANGE, .EDEADLK,
        .ENAMETOOLONG, .ENOTEMPTY, .ELOOP, .EOVERFLOW, .ENOTSUP, .ETIMEDOUT, .EDQUOT,
    ]

    private static let byCode: [Int32: LayeredError] = Dictionary(
        uniqueKeysWithValues: named.map { ($0.code, $0) })

    /// Creates the error for a non-zero C return code.
    ///
    /// `LAYERED_PANIC` becomes ``panic(_:)`` with `panicMessage`; a code without a name becomes
    /// ``unknown(_:)``.
    /// - Parameters:
    ///   - code: a positive `errno` value or a negative `LAYERED_*` code.
    ///   - panicMessage: the message for `LAYERED_PANIC`.
    public init(code: Int32, panicMessage: String = "") {
        if code == LAYERED_PANIC {
            self = .panic(panicMessage)
        } else {
            self = Self.byCode[code] ?? .unknown(code)
        }
    }

    /// The C value of this error: a positive `errno` value or a negative `LAYERED_*` code.
    public var code: Int32 {
        switch self {
        case .notFound: LAYERED_NOTFOUND
        case .panic: LAYERED_PANIC
        case .corrupt: LAYERED_CORRUPT
        case .notArchived: LAYERED_NOT_ARCHIVED
        case .inProgress: LAYERED_IN_PROGRESS
        case .EPERM: Glibc.EPERM
        case .ENOENT: Glibc.ENOENT
        case .EINTR: Glibc.EINTR
        case .EIO: Glibc.EIO
        case .EBADF: Glibc.EBADF
        case .EAGAIN: Glibc.EAGAIN
        case .ENOMEM: Glibc.ENOMEM
        case .EACCES: Glibc.EACCES
        case .EBUSY: Glibc.EBUSY
        case .EEXIST: Glibc.EEXIST
        case .EXDEV: Glibc.EXDEV
        case .ENOTDIR: Glibc.ENOTDIR
        case .EISDIR: Glibc.EISDIR
        case .EINVAL: Glibc.EINVAL
        case .ENFILE: Glibc.ENFILE
        case .EMFILE: Glibc.EMFILE
        case .EFBIG: Glibc.EFBIG
        case .ENOSPC: Glibc.ENOSPC
        case .EROFS: Glibc.EROFS
        case .ERANGE: Glibc.ERANGE
        case .EDEADLK: Glibc.EDEADLK
        case .ENAMETOOLONG: Glibc.ENAMETOOLONG
        case .ENOTEMPTY: Glibc.ENOTEMPTY
        case .ELOOP: Glibc.ELOOP
        case .EOVERFLOW: Glibc.EOVERFLOW
        case .ENOTSUP: Glibc.ENOTSUP
        case .ETIMEDOUT: Glibc.ETIMEDOUT
        case .EDQUOT: Glibc.EDQUOT
        case .unknown(let code): code
        }
    }
}

extension LayeredError: CustomStringConvertible {
    /// The description `layered_strerror` gives for ``code``, followed by the panic message for
    /// ``panic(_:)``.
    public var description: String {
        let text = String(cString: layered_strerror(code))
        if case .panic(let message) = self, !message.isEmpty {
            return "\(text): \(message)"
        }
        return text
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
    throw LayeredError(code: code, panicMessage: code == LAYERED_PANIC ? panicMessage() : "")
}
