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
        #expect(LayeredError.panic.code == -34001)
        #expect(LayeredError.corrupt.code == -34002)
        #expect(LayeredError.notArchived.code == -34003)
        #expect(LayeredError.inProgress.code == -34004)
        #expect(LayeredError.notFound.code == LAYERED_NOTFOUND)
        #expect(LayeredError.panic.code == LAYERED_PANIC)
        #expect(LayeredError.corrupt.code == LAYERED_CORRUPT)
        #expect(LayeredError.notArchived.code == LAYERED_NOT_ARCHIVED)
        #expect(LayeredError.inProgress.code == LAYERED_IN_PROGRESS)
        // The reserved range ends at the last code: no library code is left without a member.
        #expect(LAYERED_ERROR_MIN == LAYERED_IN_PROGRESS)
        #expect(LAYERED_ERROR_MAX == LAYERED_NOTFOUND)
        let members = Set((LayeredError.named + [.panic]).map(\.code))
        for code in LAYERED_ERROR_MIN...LAYERED_ERROR_MAX {
            #expect(members.contains(code), "no member for library code \(code)")
        }
        #expect((LayeredError.named + [.panic]).allSatisfy { $0.isLibraryCode == ($0.code < 0) })
    }

    @Test func errnoMembersMatchGlibc() {
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
            #expect(!error.isLibraryCode)
        }
        // Every named member is checked above or in the library-code test.
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
        let error = LayeredError(code: LAYERED_PANIC, message: "step-up failed")
        #expect(error == .panic)
        #expect(error.message == "step-up failed")
        #expect(error.description.contains("LAYERED_PANIC"))
        #expect(error.description.hasSuffix(": step-up failed"))
    }

    @Test func equalityAndHashingCompareCodesOnly() {
        let first = LayeredError(code: Glibc.EBUSY, message: "a cursor holds layered:t")
        let second = LayeredError(code: Glibc.EBUSY, message: "a drain holds layered:t")
        #expect(first == second)
        #expect(first == .EBUSY)
        #expect(first != .EINVAL)
        #expect(Set([first, second, .EBUSY]).count == 1)
        #expect(first.message != second.message)
    }

    @Test func aCodeWithoutAMemberIsStillAnError() {
        let future = LayeredError(code: -34099)
        #expect(future.code == -34099)
        #expect(future.isLibraryCode)
        #expect(!LayeredError.named.contains(future) && future != .panic)
        #expect(future.description == "unknown Layered error code")
        #expect(future.message == "unknown Layered error code")
        // WiredTiger's WT_ROLLBACK, LAYERED_NOTFOUND's value before the move to -34,000.
        #expect(LayeredError(code: -31800) != .notFound)
        #expect(LayeredError(code: 9999).code == 9999)
    }

    @Test func descriptionsComeFromLayeredStrerror() {
        #expect(LayeredError.notFound.description == String(cString: layered_strerror(-34000)))
        #expect(LayeredError.notFound.description.contains("LAYERED_NOTFOUND"))
        #expect(LayeredError.corrupt.description.contains("damaged"))
        #expect(LayeredError.EBUSY.description == String(cString: strerror(Glibc.EBUSY)))
        #expect(LayeredError.ENOENT.description == "No such file or directory")
        #expect(LayeredError.ENOENT.message == "No such file or directory")
        #expect(LayeredError(code: Glibc.EIO, message: "").message == "Input/output error")
        #expect(
            LayeredError(code: Glibc.EINVAL, message: "the database is closed").description
                == "Invalid argument: the database is closed")
    }

    @Test func membersWorkInCatchClauses() {
        func untyped(_ error: LayeredError) throws { throw error }
        func typed(_ error: LayeredError) throws(LayeredError) { throw error }

        var caught = ""
        do {
            try untyped(LayeredError(code: Glibc.EBUSY, message: "held"))
        } catch LayeredError.ENOENT {
            caught = "missing"
        } catch LayeredError.EBUSY {
            caught = "busy"
        } catch {
            caught = "other"
        }
        #expect(caught == "busy")

        do {
            try typed(.EEXIST)
        } catch .EBUSY {
            caught = "busy"
        } catch LayeredError.EEXIST {
            caught = "exists"
        } catch {
            caught = "other"
        }
        #expect(caught == "exists")

        do {
            try untyped(LayeredError(code: LAYERED_PANIC, message: "gone"))
        } catch let error as LayeredError where error == .panic {
            caught = error.message
        } catch {
            caught = "other"
        }
        #expect(caught == "gone")

        // Not a LayeredError: no member matches it.
        struct Other: Error {}
        #expect(!(LayeredError.EBUSY ~= Other()))
        #expect(throws: LayeredError.notFound) { try untyped(.notFound) }
    }

    /// A `switch` over an error needs a `default`: a code added later falls into it.
    @Test func aSwitchOverCodesFallsToItsDefault() {
        func classify(_ error: LayeredError) -> String {
            switch error {
            case .EBUSY, .EAGAIN, .inProgress: "retry"
            case .ENOENT, .notFound: "missing"
            case .panic: "panic: \(error.message)"
            default: "other \(error.code)"
            }
        }
        #expect(classify(.EAGAIN) == "retry")
        #expect(classify(.inProgress) == "retry")
        #expect(classify(LayeredError(code: Glibc.ENOENT, message: "no such table")) == "missing")
        #expect(classify(LayeredError(code: LAYERED_PANIC, message: "why")) == "panic: why")
        #expect(classify(LayeredError(code: -34099)) == "other -34099")
        #expect(classify(.EIO) == "other \(Glibc.EIO)")
    }

    /// The errors the database throws, caught the way an application would.
    @Test func theDatabaseThrowsErrorsThatMatchTheirMembers() async throws {
        try await withDatabase { database, _ in
            let table = try database.createTable("t")
            let cursor = try table.makeCursor()
            var outcome = ""
            do {
                try database.dropTable("t")
            } catch LayeredError.EBUSY {
                outcome = "busy"
            } catch {
                outcome = "\(error)"
            }
            #expect(outcome == "busy")
            try cursor.close()

            do {
                try database.createTable("t")
                Issue.record("the table exists")
            } catch {
                switch error {
                case .EEXIST: outcome = "exists"
                default: outcome = "\(error)"
                }
            }
            #expect(outcome == "exists")

            try database.close()
            let closed = #expect(throws: LayeredError.EINVAL) { try table.put("k", "v") }
            #expect(closed?.message == "the database is closed")
        }
    }

    @Test func checkThrowsForNonZeroOnly() throws {
        try check(0)
        #expect(throws: LayeredError.EIO) { try check(Glibc.EIO) }
        let panic = #expect(throws: LayeredError.panic) {
            try check(LAYERED_PANIC, panicMessage: "why")
        }
        #expect(panic?.message == "why")
    }
}
