internal import Logging

/// The level at which a message of the C core goes to ``Configuration/logger``.
///
/// The C core's message handler passes a line of text and no level, so the level is read from
/// the line's wording: `LibraryMessageTests` holds a sample of every message the core writes
/// (each `layered_msg`, `ERR_MSG` and `fs_message` in `CLayered/`) and fails when the number of
/// those calls changes, so that a new message is given its level on purpose.
///
/// - `notice`: recovery that went as designed: a torn tail or record cut, a torn header
///   rewritten, an interrupted drop or offload finished at open, the batch journal's ops of a
///   table dropped since skipped.  Expected after a crash.
/// - `info`: an operation that declined and returned an error its caller sees anyway (an offload
///   of a table whose ingest still holds rows, an auto-offload refused because the table was
///   unarchived meanwhile).
/// - `warning`: a step the core went on without, whose effect a later drop or open completes
///   (removing an offloaded ingest, recording an offload, a metadata snapshot, removing a
///   dropped table's files), and an auto-offload that failed and is retried later.
/// - `error`: everything else: damage, a failed sync, checkpoint or drain, a home open
///   elsewhere, a call after a panic.  A message this list does not know is an error too.
///
/// A panic itself reaches the logger at `critical`, from the panic handler.
enum LibraryMessage {
    static func level(of message: String) -> Logger.Level {
        if recovery.contains(where: message.contains) { return .notice }
        if declined.contains(where: message.contains) { return .info }
        if continued.contains(where: message.contains) { return .warning }
        return .error
    }

    private static let recovery = [
        "cut torn tail", "cut a torn record", "torn file header", "finished the interrupted",
        "its ops are skipped",
    ]
    private static let declined = ["rows not yet drained", "refused: unarchived meanwhile"]
    private static let continued = [
        ": removing the ingest: ", "(the next open completes it)", "metadata snapshot: ",
        "the next drop or open finishes it", "auto-offload of ",
    ]
}
