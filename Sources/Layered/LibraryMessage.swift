internal import Logging

/// The level at which a message of the C core goes to ``Configuration/logger``.
///
/// The C core's message handler passes a line of text and no level, so the level is read from
/// the line's wording, which the core keeps stable for this reason: every `layered_msg` and
/// `fs_message` call in `CLayered/` has a sample in `LibraryMessageTests`.
///
/// - `notice`: recovery that went as designed: a torn tail or record cut, a torn header rewritten,
///   an interrupted drop or offload finished at open.  Expected after a crash; nothing is lost
///   that was promised.
/// - `info`: an operation that declined and returned an error the caller sees anyway (an offload
///   of a table whose ingest still holds rows, an auto-offload refused because the table was
///   unarchived meanwhile).
/// - `error`: damage or a failed sync or drain: a corrupt record, a failed `fdatasync`, a
///   step-up that could not open a table, a call after a panic.
/// - `warning`: everything else: a step the core went on without (removing an offloaded ingest,
///   a metadata snapshot) whose effect the next open completes.
enum LibraryMessage {
    static func level(of message: String) -> Logger.Level {
        if recovery.contains(where: message.contains) { return .notice }
        if declined.contains(where: message.contains) { return .info }
        if failure.contains(where: message.contains) { return .error }
        return .warning
    }

    private static let recovery = [
        "cut torn tail", "cut a torn record", "torn file header", "finished the interrupted",
    ]
    private static let declined = ["not yet drained", "refused: unarchived meanwhile"]
    private static let failure = [
        "corrupt record", "fdatasync failed", "step-up:", "after panic:", "syncing the directory",
        "unarchive layered:",
    ]
}
