import ArgumentParser
import CLayered
import Foundation
import Layered

struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check every checksum of the home's files, changing nothing.",
        discussion: """
            Reads the metadata snapshot and journal and every record of every constituent file \
            (or of TABLE's two): the file header, each record header and each record body, \
            without opening the database, so nothing is cut, repaired or created.  Prints one \
            line per damaged place, "damage: FILE: offset N: what", and per torn tail, "torn \
            tail: FILE: offset N: what".  A torn tail is the incomplete append a crash leaves at \
            the end of a file: the next open cuts it, and it is not damage.  After damage the \
            scan goes on at the next intact record, so every damaged region is listed.  A \
            constituent that its table's state requires and that is missing is damage too.

            Exits 0 if there is no damage, 3 if there is, 1 if the files could not be read \
            (the home is open in another process: verify holds its lock, shared, and refuses \
            an open home).
            """)

    @OptionGroup var options: HomeOptions

    @Argument(help: "Check only this table's constituents (and the metadata).")
    var table: String?

    func run() throws {
        try options.requireHome()
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(
            atPath: options.resolvedSharedDirectory, isDirectory: &isDirectory),
            isDirectory.boolValue
        else {
            throw ToolFailure.failed(
                "\(options.resolvedSharedDirectory): no such directory (name the shared directory with --shared DIR)")
        }
        let result = try FileScan.verify(
            home: options.home, sharedDirectory: options.sharedDirectory, table: table
        ) { Output.line($0.line) }
        guard result.readEverything else {
            switch result.error {
            case .ENOENT where table != nil:
                throw ToolFailure.failed(
                    "layered:\(table!): no such table (not in the metadata, and no files)")
            case .EINVAL where table != nil:
                throw ToolFailure.failed("\(table!): not a table name")
            default:
                throw ToolFailure.failed("verifying \(options.home): \(explain(result.error))")
            }
        }
        var summary =
            "verify: \(result.files) files, \(result.records) records, \(result.bytes) bytes: "
        summary += result.damaged == 0 ? "no damage" : "\(result.damaged) damaged"
        if result.tornTails > 0 {
            summary += ", \(result.tornTails) torn \(result.tornTails == 1 ? "tail" : "tails")"
        }
        Output.line(summary)
        if result.code == LAYERED_CORRUPT {
            throw ToolFailure(
                status: ExitStatus.damage,
                message: "damage found in \(options.home): \(result.damaged) damaged \(result.damaged == 1 ? "place" : "places"), listed above")
        }
    }
}
