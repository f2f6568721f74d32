import CLayered
import Foundation
import Testing
@testable import Layered

#if canImport(Glibc)
import Glibc
#endif

@Suite struct LayeredErrorTests {
    @Test func libraryCodesMatchTheCHeader() {
        #expect(LayeredError.notFound.code == -34000)
        #expect(LayeredError.panic("").code == -34001)
        #expect(LayeredError.corrupt.code == -34002)
        #expect(LayeredError.notArchived.code == -34003)
        #expect(LayeredError.inProgress.code == -34004)
        #expect(LayeredError.notFound.code == LAYERED_NOTFOUND)
        #expect(LayeredError.panic("x").code == LAYERED_PANIC)
        #expect(LayeredError.corrupt.code == LAYERED_CORRUPT)
        #expect(LayeredError.notArchived.code == LAYERED_NOT_ARCHIVED)
        #expect(LayeredError.inProgress.code == LAYERED_IN_PROGRESS)
        // The reserved range ends at the last code: no library code is left without a case.
        #expect(LAYERED_ERROR_MIN == LAYERED_IN_PROGRESS)
        #expect(LAYERED_ERROR_MAX == LAYERED_NOTFOUND)
        for code in LAYERED_ERROR_MIN...LAYERED_ERROR_MAX {
            if case .unknown = LayeredError(code: code) {
                Issue.record("no case for library code \(code)")
            }
        }
    }

    @Test func errnoCasesMatchGlibc() {
        let expected: [(LayeredError, Int32)] = [
            (.EPERM, Glibc.EPERM), (.ENOENT, Glibc.ENOENT), (.EINTR, Glibc.EINTR),
            (.EIO, Glibc.EIO), (.EBADF, Glibc.EBADF), (.EAGAIN, Glibc.EAGAIN),
            (.ENOMEM, Glibc.ENOMEM), (.EACCES, Glibc.EACCES), (.EBUSY, Glibc.EBUSY),
            (.EEXIST, Glibc.EEXIST), (.EXDEV, Glibc.EXDEV), (.ENOTDIR, Glibc.ENOTDIR),
            (.EISDIR, Glibc.EISDIR), (.EINVAL, Glibc.EINVAL), (.ENFILE, Glibc.ENFILE),
            (.EMFILE, Glibc.EMFILE), (.EFBIG, Glibc.EFBIG), (.ENOSPC, Glibc.ENOSPC),
            (.EROFS, Glibc.EROFS), (.ERANGE, Glibc.ERANGE), (.EDEADLK, Glibc.EDEADLK),
            (.ENAMETOOLONG, Glibc.ENAMETOOLONG), (.ENOTEMPTY, Glibc.ENOTEMPTY),
            (.ELOOP, Glibc.ELOOP), (.EOVERFLOW, Glibc.EOVERFLOW), (.ENOTSUP, Glibc.ENOTSUP),
            (.ETIMEDOUT, Glibc.ETIMEDOUT), (.EDQUOT, Glibc.EDQUOT),
        ]
        for (error, code) in expected {
            #expect(error.code == code, "\(error)")
            #expect(error.code > 0)
        }
        // Every named case is checked above or in the library-code test.
        #expect(LayeredError.named.count == expected.count + 4)
    }

    @Test func everyNamedCodeRoundTrips() {
        var seen = Set<Int32>()
        for error in LayeredError.named {
            #expect(LayeredError(code: error.code) == error)
            #expect(seen.insert(error.code).inserted, "duplicate code \(error.code)")
        }
    }

    @Test func panicCarriesItsMessage() {
        let error = LayeredError(code: LAYERED_PANIC, panicMessage: "step-up failed")
        #expect(error == .panic("step-up failed"))
        #expect(error.description.contains("LAYERED_PANIC"))
        #expect(error.description.hasSuffix(": step-up failed"))
    }

    @Test func unknownCodesFallBack() {
        #expect(LayeredError(code: 9999) == .unknown(9999))
        #expect(LayeredError(code: -34099) == .unknown(-34099))
        // WiredTiger's WT_ROLLBACK, LAYERED_NOTFOUND's value before the move to -34,000.
        #expect(LayeredError(code: -31800) == .unknown(-31800))
        #expect(LayeredError.unknown(9999).code == 9999)
        #expect(LayeredError.unknown(-34099).description == "unknown Layered error code")
    }

    @Test func descriptionsComeFromLayeredStrerror() {
        #expect(LayeredError.notFound.description == String(cString: layered_strerror(-34000)))
        #expect(LayeredError.notFound.description.contains("LAYERED_NOTFOUND"))
        #expect(LayeredError.corrupt.description.contains("damaged"))
        #expect(LayeredError.EBUSY.description == String(cString: strerror(Glibc.EBUSY)))
        #expect(LayeredError.ENOENT.description == "No such file or directory")
    }

    @Test func casesWorkInCatchPatterns() {
        func fail(_ error: LayeredError) throws { throw error }

        var caught = ""
        do {
            try fail(.EBUSY)
        } catch LayeredError.EBUSY {
            caught = "busy"
        } catch {
            caught = "other"
        }
        #expect(caught == "busy")

        do {
            try fail(.panic("gone"))
        } catch LayeredError.panic(let message) {
            caught = message
        } catch {
            caught = "other"
        }
        #expect(caught == "gone")

        #expect(throws: LayeredError.notFound) { try fail(.notFound) }
    }

    @Test func checkThrowsForNonZeroOnly() throws {
        try check(0)
        #expect(throws: LayeredError.EIO) { try check(Glibc.EIO) }
        #expect(throws: LayeredError.panic("why")) { try check(LAYERED_PANIC, panicMessage: "why") }
    }
}
