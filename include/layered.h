/*
 * layered.h -- the public C API of Layered, an embeddable storage engine for
 * layered tables.
 *
 * A layered table "layered:NAME" is a pair of constituents: an ingest
 * constituent ("file:NAME.ingest", in the home directory, written while the
 * connection is a follower) and a stable constituent ("file:NAME.stable", in
 * the shared directory, written while it is leader).  Reads see ingest over
 * stable.  Step-up (follower to leader) drains every ingest constituent into
 * its stable constituent before it returns.
 *
 * Conventions
 * -----------
 * - Every function returns an int: 0 on success, a positive errno value
 *   (ENOENT, EBUSY, EINVAL, EIO, ENOSPC, ...) or a negative library code in
 *   the range [LAYERED_ERROR_MIN, LAYERED_ERROR_MAX], from -34,000 down.
 *   layered_strerror() describes both.
 * - Each function's @return lists the errors it returns and why.  Where a
 *   list names EIO or ENOSPC for a failed write or sync, the other errno
 *   values of such a failure (EDQUOT, EFBIG, EROFS) come back the same way;
 *   where it names EMFILE or EACCES for a file that could not be opened or
 *   created, so do ENFILE, EROFS, ENAMETOOLONG and ELOOP.  An error injected
 *   with a failpoint's return(ERR) action is returned by the call that
 *   reaches the failpoint, whatever its list says.
 * - Output handles come last.  A function that fails leaves its output
 *   handle set to NULL.
 * - After the connection has panicked every call on it, its sessions and its
 *   cursors returns LAYERED_PANIC, except layered_stats,
 *   layered_failpoint_set/_wait, layered_cursor_get/_reset/_close and
 *   layered_session_close, which keep working; layered_close returns
 *   LAYERED_PANIC and still frees everything.
 * - The connection panics (rather than return an error that the next call
 *   would not see) when durability it cannot give back is lost: a drain
 *   that fails, a metadata failure after a snapshot was renamed into place
 *   (later changes would go to a journal the next open ignores), a failed
 *   append that cannot be cut back, and a constituent file whose close
 *   failed to sync it.  So any call that closes handles
 *   (layered_cursor_close, layered_session_close, a drop) can be the one
 *   that panics.
 * - A call that returns an error has changed nothing, unless its @return
 *   says otherwise (a drop past its durable "dropping" record, which the
 *   next drop or open finishes).
 * - Threads: a connection is shared by any number of threads, including
 *   threads the library did not create.  A session and its cursors are used
 *   by one thread at a time; many sessions may run at once.  Each function
 *   says which threads may call it and what it blocks on ("Threads:").
 *   Exclusive table locks are only ever tried, never waited for: a call
 *   that needs one and cannot have it at once returns EBUSY.
 */
#ifndef LAYERED_H
#define LAYERED_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Library version. */
#define LAYERED_VERSION_MAJOR 0
#define LAYERED_VERSION_MINOR 1
#define LAYERED_VERSION_PATCH 0

/*
 * Library error codes: negative, so they never collide with errno values
 * (positive) or success (0), and allocated downward from -34,000.
 *
 * Why -34,000: programs that embed Layered often link another engine too,
 * and a shared "ret == CODE" test must never confuse the two.  LMDB uses
 * -30,600 to -30,800, Berkeley DB -30,800 to -30,999 and WiredTiger
 * -31,800 to -31,999 (where -31,800 is WT_ROLLBACK); -34,000 to -34,999
 * is clear of all of them, and future Layered codes stay in it.
 * LAYERED_ERROR_MIN and LAYERED_ERROR_MAX bound the codes defined today.
 */
#define LAYERED_ERROR_MAX (-34000)
/** The key was not found, or a cursor ran off the end of the table. */
#define LAYERED_NOTFOUND (-34000)
/** The connection has panicked: it no longer serves requests. */
#define LAYERED_PANIC (-34001)
/** A file is damaged somewhere other than a torn tail. */
#define LAYERED_CORRUPT (-34002)
/** An offload found that the table is no longer archived. */
#define LAYERED_NOT_ARCHIVED (-34003)
/** An offload or a restore of the table is already under way. */
#define LAYERED_IN_PROGRESS (-34004)
#define LAYERED_ERROR_MIN (-34004)

/** Largest key, in bytes.  Keys are 1 to LAYERED_KEY_MAX bytes. */
#define LAYERED_KEY_MAX 65535
/** Largest value, in bytes.  Values are 0 to LAYERED_VALUE_MAX bytes. */
#define LAYERED_VALUE_MAX (256u * 1024 * 1024)
/** Longest table name (the NAME in "layered:NAME"), in bytes. */
#define LAYERED_NAME_MAX 200
/** Most ops in one batch (layered_batch_put/_remove). */
#define LAYERED_BATCH_OPS_MAX (1u << 24)
/** Most bytes of one batch: per op its table name, key, value and 12
 * bytes. */
#define LAYERED_BATCH_BYTES_MAX (1024u * 1024 * 1024)
/** The fixed buffer added to the stable checkpoint sizes in database_size. */
#define LAYERED_CHECKPOINT_SIZE_BUFFER (1024u * 1024)

/** Roles. */
#define LAYERED_ROLE_FOLLOWER 0
#define LAYERED_ROLE_LEADER 1

/** Drain policies: how step-up's drain and a concurrent forced drop meet. */
/** ENOENT while the drain opens or clears a table means "already dropped":
 * the table is skipped (counted in tables_skipped).  The default. */
#define LAYERED_DRAIN_SKIP_MISSING 0
/** The drain worker holds the ingest handle's read lock across copy and
 * clear and skips a handle found DEAD; a drop meanwhile returns EBUSY. */
#define LAYERED_DRAIN_READ_LOCK 1
/** Drop removes a still-queued drain item, or returns EBUSY while the item
 * is being drained (tests force the drop-wins ordering at the
 * "drain.queued" failpoint, see layered_failpoint_set). */
#define LAYERED_DRAIN_QUEUE_SCAN 2
/** No protection: a drop racing the drain fails the step-up, which panics
 * the connection.  Kept so tests can prove they detect the race. */
#define LAYERED_DRAIN_UNPROTECTED 3

/** Durability of a single write (insert or remove). */
/** Writes are buffered in the process; durable at checkpoint or close. */
#define LAYERED_SYNC_NONE 0
/** Each write reaches the operating system before it returns: it survives
 * the process being killed (kill -9), not a machine crash.  The default. */
#define LAYERED_SYNC_WRITE 1
/** Each write is synced to stable storage (fdatasync) before it returns. */
#define LAYERED_SYNC_FSYNC 2

/** Flags for layered_drop(). */
/** A table that does not exist is not an error. */
#define LAYERED_DROP_FORCE 0x1u
/** Take the checkpoint lock first, which waits for a running step-up. */
#define LAYERED_DROP_CHECKPOINT_WAIT 0x2u

/** Table states, as reported by layered_table_state(). */
#define LAYERED_TABLE_ACTIVE 0
#define LAYERED_TABLE_ARCHIVED 1
#define LAYERED_TABLE_OFFLOADED 2
/** An offload has ruled and is removing the local state (transient). */
#define LAYERED_TABLE_STOPPING 3
/** A drop failed after its point of no return; the next drop or open
 * finishes it. */
#define LAYERED_TABLE_DROPPED 4

typedef struct layered_conn layered_conn;
typedef struct layered_session layered_session;
typedef struct layered_cursor layered_cursor;
typedef struct layered_batch layered_batch;

/**
 * Called once, on the thread that triggered the first panic of a
 * connection.  The connection has already stopped serving.  If the handler
 * returns, the call that panicked returns LAYERED_PANIC.  It runs with
 * library locks held: it may call layered_strerror and layered_stats,
 * nothing else.
 * @param[in] arg the config's panic_arg
 * @param[in] error the error that caused the panic
 * @param[in] message a description; valid only during the call
 */
typedef void (*layered_panic_handler)(void *arg, int error,
                                      const char *message);

/**
 * Receives the library's informational and error messages (one line each,
 * no newline; valid only during the call).  May be called from any thread,
 * concurrently, with library locks held: it must not call into the library
 * (layered_strerror excepted).
 */
typedef void (*layered_message_handler)(void *arg, const char *message);

/** Configuration for layered_open().  Initialise with layered_config_init(). */
typedef struct layered_config {
    /** LAYERED_ROLE_FOLLOWER (default) or LAYERED_ROLE_LEADER. */
    int role;
    /** Directory of the stable constituents; NULL: "<home>/shared".
     * Created if missing and `create` is set. */
    const char *shared_dir;
    /** Threads that drain at step-up, including the calling thread; 1..64.
     * Default 2. */
    int drain_threads;
    /** One of LAYERED_DRAIN_*.  Default LAYERED_DRAIN_SKIP_MISSING. */
    int drain_policy;
    /** One of LAYERED_SYNC_*.  Default LAYERED_SYNC_WRITE. */
    int sync;
    /** Non-zero (default): create the home (and shared) directory if
     * missing; the parent must exist.  Zero: a missing home is ENOENT. */
    int create;
    /** NULL: log to stderr and abort(). */
    layered_panic_handler panic_handler;
    void *panic_arg;
    /** NULL: messages go to stderr. */
    layered_message_handler message_handler;
    void *message_arg;
    /** Failpoints to set at open, "name=action;name=action" (see
     * layered_failpoint_set); also read from the LAYERED_FAILPOINTS
     * environment variable, which is applied after this string.  NULL: none. */
    const char *failpoints;
    /** Auto-offload: a maintenance thread offloads tables that have been
     * archived for at least this long (ms) with no cursor open.  0 (the
     * default): no maintenance thread. */
    int offload_idle_ms;
    /** How often the maintenance thread looks (ms); default 1000. */
    int maintenance_interval_ms;
} layered_config;

/** Statistics of a connection, from layered_stats(). */
typedef struct layered_conn_stats {
    /** Sum of stable checkpoint sizes plus LAYERED_CHECKPOINT_SIZE_BUFFER, as
     * of the last successful checkpoint; never below the buffer. */
    uint64_t database_size;
    /** The sum of stable constituent sizes that database_size counts. */
    uint64_t stable_checkpoint_bytes;
    /** Current role (LAYERED_ROLE_*). */
    int role;
    /** Non-zero once the connection has panicked. */
    int panicked;
    /** Highest LSN handed out so far. */
    uint64_t lsn;
    uint64_t tables;            /**< tables that exist now */
    uint64_t creates;           /**< successful layered_create calls */
    uint64_t drops;             /**< drops that removed a table */
    uint64_t drop_busy;         /**< drops that returned EBUSY */
    uint64_t checkpoints;       /**< successful checkpoints */
    uint64_t compactions;       /**< files compacted by checkpoints */
    uint64_t step_ups;          /**< successful step-ups */
    uint64_t step_downs;        /**< successful step-downs */
    uint64_t tables_drained;    /**< tables copied by step-up drains */
    uint64_t tables_skipped;    /**< tables a drain skipped (already gone) */
    uint64_t rows_drained;      /**< rows copied by drains */
    uint64_t bytes_drained;     /**< key + value bytes copied by drains */
    uint64_t inserts;           /**< successful cursor inserts */
    uint64_t removes;           /**< successful cursor removes */
    uint64_t batches;           /**< batches committed (empty ones not
                                     counted) */
    uint64_t batch_ops;         /**< ops in the batches committed */
    uint64_t archives;          /**< tables archived */
    uint64_t unarchives;        /**< tables unarchived (restores included) */
    uint64_t restores;          /**< offloaded tables brought back */
    uint64_t offloads;          /**< tables offloaded (explicit and auto) */
    uint64_t offloads_refused;  /**< auto-offloads the arbiter refused
                                     (LAYERED_NOT_ARCHIVED) */
} layered_conn_stats;

/** What one step-up did, from layered_step_up(). */
typedef struct layered_drain_stats {
    uint64_t tables_queued;  /**< tables whose ingest held data */
    uint64_t tables_drained; /**< tables copied and cleared */
    uint64_t tables_skipped; /**< tables skipped: dropped meanwhile */
    uint64_t rows;           /**< rows (including removals) copied */
    uint64_t bytes;          /**< key + value bytes copied */
    uint64_t busy_drops;     /**< drops that returned EBUSY meanwhile */
    uint64_t elapsed_ns;     /**< wall time of the step-up */
} layered_drain_stats;

/**
 * Describe an error code.
 * @param[in] error 0, a positive errno value or a LAYERED_* code
 * @return a static string; never NULL.  An unknown negative code reads
 * "unknown Layered error code".
 * Threads: any; never blocks.
 */
const char *layered_strerror(int error);

/**
 * Fill a configuration with the defaults.
 * @param[out] cfg the configuration to initialise; NULL: nothing is done
 * Threads: any; never blocks.
 */
void layered_config_init(layered_config *cfg);

/*
 * Requirements
 * ------------
 * Linux with glibc 2.32 or later (for strerrordesc_np), liburcu and libbsd.
 *
 * The drain makes a batch of several tables durable with one syncfs(2) of
 * the shared directory's file system (and one of the home's for the
 * clears); a batch of one table uses fdatasync(2).  syncfs reports
 * writeback errors only since Linux 5.8, so layered_open checks the kernel
 * release: before 5.8 the drain syncs each file of a batch with
 * fdatasync(2) instead (slower for many small tables, equally safe).
 */

/*
 * fork(2).  A process that uses the library may fork without exec: the
 * library registers fork handlers (pthread_atfork, on its first use) that
 * pause its helper threads before the fork and restart them in both
 * processes afterwards.  The parent's connections keep working.  The child
 * may open new connections on other homes and use them as any process
 * would.  It must neither use nor close a connection, session or cursor it
 * inherited: their threads are gone and their locks and files are shared
 * with the parent (opening a home the parent holds open returns EBUSY).
 * Calling fork from inside a library callback (a panic or message handler)
 * is not supported.  Because of the RCU flavour the library uses, the fork
 * must happen while no other thread that has ever called into the library
 * is still running: such a thread's RCU reader registration is copied into
 * the child, where it can hang or crash the child's use of the library (a
 * thread that has exited is fine).  That includes the library's own
 * threads: a step-up's drain workers while it runs, and the maintenance
 * thread of a connection opened with offload_idle_ms > 0, for as long as it
 * is open.
 */

/**
 * Open a connection to a database home directory.
 *
 * Reads the metadata file, finishes any drop or offload a crash
 * interrupted, replays the batch journal (the constituents its records
 * name are opened, the rows they lack written and synced, the journal
 * emptied; a torn tail of it is cut), sets the configured failpoints and,
 * with offload_idle_ms, starts the maintenance thread.  Other constituent
 * files are opened lazily, on first use; a torn tail is cut when a file is
 * opened.  Opened as a leader (cfg->role), it then drains every ingest
 * constituent that holds rows, as layered_step_up does: a node that
 * stopped as a follower, or during a step-up, leaves them, and a leader
 * reads the ingest over the stable.
 * @param[in] home the home directory.  With cfg->create it is created if
 * missing, but its parent must exist (so must shared_dir's)
 * @param[in] cfg the configuration, or NULL for the defaults; its strings
 * are copied
 * @param[out] connp the new connection
 * @return 0, or EINVAL (NULL or empty home, NULL connp, a field out of
 * range, an empty shared_dir, a malformed failpoint string in cfg or in
 * LAYERED_FAILPOINTS), ENOENT (home missing with create 0, or the parent
 * of home or shared_dir missing), ENOTDIR (home or shared_dir is not a
 * directory), EACCES/EROFS (cannot create or write the home, its LOCK file
 * or the metadata journal), EBUSY (the home is open in this or another
 * process), LAYERED_CORRUPT (damaged metadata file or journal, or a batch
 * journal record damaged before intact ones; the message names the file
 * and offset), ENOMEM (also: more than 32 failpoints),
 * EAGAIN (the maintenance thread could not be started), EIO/ENOSPC
 * (reading the metadata, syncing the directory that holds a home or
 * shared directory this call created, or the writes that finish an
 * interrupted drop or offload, failed), or the error of a leader open's
 * drain (reported through the message handler; no panic: the connection
 * is not opened, and the next open drains again).
 * Threads: any.  Blocks on file I/O only: a home open elsewhere is EBUSY at
 * once, never a wait.
 */
int layered_open(const char *home, const layered_config *cfg,
                 layered_conn **connp);

/**
 * Close a connection: releases every paused failpoint, stops the
 * maintenance thread, closes its sessions and cursors, flushes and syncs
 * every open constituent, writes a metadata snapshot and frees everything.
 * @param[in] conn the connection; freed even when an error is returned
 * @return 0, EINVAL (NULL conn), EIO/ENOSPC (a final flush or sync, or the
 * metadata snapshot, failed; writes under LAYERED_SYNC_NONE since the last
 * checkpoint may be lost), ENOMEM/EACCES/EMFILE (the metadata snapshot
 * could not be written), LAYERED_PANIC (the connection had panicked: the
 * files are still flushed and freed, the metadata is not rewritten).
 * Threads: any, once no other thread uses the connection, its sessions or
 * its cursors, or will.  Blocks on the maintenance thread finishing an
 * auto-offload in progress, and on file I/O.
 */
int layered_close(layered_conn *conn);

/**
 * Step up from follower to leader: drain every ingest constituent that
 * holds data into its stable constituent, using drain_threads threads
 * (drain_threads - 1 workers plus the calling thread).
 *
 * Holds the checkpoint lock for its whole duration and sets the leader
 * flag before draining.  Writes wait until it returns; reads continue, and
 * so do drops without LAYERED_DROP_CHECKPOINT_WAIT (the drain policy
 * decides how they meet the drain).  A worker thread that cannot be started
 * is not an error: the others, at least the calling thread, do its share.
 * Any drain error (a failed copy, sync, clear or metadata snapshot, or an
 * ENOENT the policy does not skip) fails the step-up and panics the
 * connection; with the default panic handler the process aborts.  See
 * "Requirements" above for what the drain's syncs report.
 * @param[in] conn the connection
 * @param[out] stats what the drain did, or NULL; filled also when the
 * step-up fails (zeroed when it returns EINVAL or LAYERED_PANIC at once)
 * @return 0 (also when already leader: nothing to do), EINVAL (NULL conn),
 * EIO/ENOSPC (retiring the batch journal -- syncing the constituents or
 * emptying the journal -- failed before anything changed: still
 * follower), LAYERED_PANIC (the connection had panicked, or the drain
 * failed: the panic handler received the error and the table).
 * Threads: any.  Blocks on the checkpoint lock (a checkpoint, a step-down
 * or a drop with LAYERED_DROP_CHECKPOINT_WAIT in progress), on writes in
 * progress, on the schema lock (briefly, while it queues the tables and
 * records what was drained), on the drain's I/O, and at any drain
 * failpoint set to pause.  The panic handler of a
 * failed step-up runs on the calling thread with the checkpoint and role
 * locks held.
 */
int layered_step_up(layered_conn *conn, layered_drain_stats *stats);

/**
 * Step down from leader to follower: writes go to ingest constituents
 * again.
 * @param[in] conn the connection
 * @return 0 (also when already follower), EINVAL (NULL conn),
 * LAYERED_PANIC.
 * Threads: any.  Blocks on the checkpoint lock (a running step-up or
 * checkpoint) and on writes in progress.
 */
int layered_step_down(layered_conn *conn);

/**
 * Read the connection's statistics.  Works after a panic (panicked is
 * set).  The drain counters move as each table's drain finishes, so
 * polling this shows a step-up's progress.
 * @param[in] conn the connection
 * @param[out] stats filled on success
 * @return 0, EINVAL (NULL conn or stats).
 * Threads: any, including the panic handler.  Takes the schema lock
 * briefly (for the table count), so it waits while a schema change (create,
 * drop, archive, unarchive, offload) or the first open of a table's files
 * holds it.
 */
int layered_stats(layered_conn *conn, layered_conn_stats *stats);

/**
 * Open a session.
 * @param[in] conn the connection
 * @param[out] sessionp the new session
 * @return 0, EINVAL (NULL conn or sessionp), ENOMEM, LAYERED_PANIC.
 * Threads: any; the session is then used by one thread at a time.  Takes a
 * leaf mutex of the session list; never blocks otherwise.
 */
int layered_session_open(layered_conn *conn, layered_session **sessionp);

/**
 * Close a session and every cursor it still has open.  Works after a
 * panic.
 * @param[in] session the session; freed, with its cursors, either way
 * @return 0, EINVAL (NULL session).
 * Threads: the thread using the session.  Like layered_cursor_close it
 * may take the schema lock to close idle handles.
 */
int layered_session_close(layered_session *session);

/**
 * Create a layered table: both constituent files and its metadata entry,
 * durably, before returning.
 * @param[in] session the session
 * @param[in] uri "layered:NAME"; NAME is 1 to LAYERED_NAME_MAX bytes of
 * [A-Za-z0-9_.-], not starting with '.'
 * @param[in] config NULL, "" or "exclusive=true|false" (default true)
 * @return 0 (also when the table exists, whatever its state, and exclusive
 * is false), EINVAL (NULL session, bad uri or config), EEXIST (exists and
 * exclusive), EBUSY (a drop of the table failed part way: dropping it
 * again, or reopening, finishes it), ENOSPC/EIO/EACCES/EMFILE/ENAMETOOLONG
 * (files or metadata could not be written; nothing was created), ENOMEM,
 * LAYERED_PANIC.
 * Threads: the session's.  Holds the schema lock while it creates and
 * syncs the files and the metadata record.
 */
int layered_create(layered_session *session, const char *uri,
                   const char *config);

/**
 * Drop a layered table: its files are removed (the stable one too, from the
 * shared store, also for an offloaded table), its handles marked DEAD and
 * removed from the handle table, its metadata entry removed.  Every check
 * that can fail runs before anything irreversible.
 * @param[in] session the session
 * @param[in] uri "layered:NAME"
 * @param[in] flags LAYERED_DROP_FORCE: a missing table is not an error;
 * LAYERED_DROP_CHECKPOINT_WAIT: first take the checkpoint lock (waits for a
 * running step-up or checkpoint)
 * @return 0, EINVAL (NULL session, bad uri, unknown flags), ENOENT (no
 * such table, without FORCE), EBUSY (a cursor, a drain, a checkpoint
 * syncing the table, or an offload or restore holds it; nothing was
 * changed; retry later), ENOSPC/EIO (the drop record could not be written,
 * or retiring the batch journal -- syncing the constituents -- failed;
 * nothing was changed), EIO/EACCES/ENOSPC after the point of no return
 * (removing the files or writing the final record failed: the table now
 * reads as LAYERED_TABLE_DROPPED, cannot be opened, and the next drop or
 * open finishes it), LAYERED_PANIC.
 * Threads: the session's.  Blocks on the checkpoint lock (only with
 * LAYERED_DROP_CHECKPOINT_WAIT), the schema lock and, under
 * LAYERED_DRAIN_QUEUE_SCAN, the drain-queue lock; never on a cursor or a
 * drain: the table's locks are taken with try-lock (EBUSY).
 */
int layered_drop(layered_session *session, const char *uri,
                 unsigned flags);

/**
 * Checkpoint: flush and sync every open constituent, compact files that
 * are mostly dead, write the metadata, then publish database_size.
 * @param[in] session the session
 * @return 0, EINVAL (NULL session), ENOSPC/EIO (a flush, sync or
 * compaction failed; nothing is published.  A failed sync is sticky: every
 * later checkpoint reports it again, since the kernel may have dropped the
 * unwritten pages), LAYERED_CORRUPT (compaction found a damaged record; the
 * file is left as it was), ENOMEM, EMFILE/EACCES (compaction's temporary
 * file or the metadata snapshot could not be created), LAYERED_PANIC.
 * Threads: the session's.  Blocks on the checkpoint lock (a step-up, a
 * step-down, another checkpoint or a drop with
 * LAYERED_DROP_CHECKPOINT_WAIT), on each constituent's lock in turn
 * (while a drop or an offload holds it, briefly) and on the schema lock for
 * the snapshot.  Reads and writes continue, except on the file being
 * synced or compacted; a drop of a table being synced returns EBUSY.
 */
int layered_checkpoint(layered_session *session);

/**
 * Report a table's lifecycle state.
 * @param[in] session the session
 * @param[in] uri "layered:NAME"
 * @param[out] statep one of LAYERED_TABLE_*, set on success
 * @return 0, EINVAL (NULL session or statep, bad uri), ENOENT (no such
 * table), LAYERED_PANIC.
 * Threads: the session's.  Takes the schema lock.
 */
int layered_table_state(layered_session *session, const char *uri,
                        int *statep);

/**
 * Call a function for every table, in name order.  Tables whose drop
 * failed part way are left out.
 * @param[in] session the session
 * @param[in] callback called with arg, the table's name (valid during the
 * call) and its LAYERED_TABLE_* state.  It runs under the schema lock, so
 * it must not call into the library.  A non-zero return stops the walk
 * and is returned unchanged
 * @param[in] arg passed to the callback
 * @return 0, EINVAL (NULL session or callback), LAYERED_PANIC, or the
 * callback's value.
 * Threads: the session's.  Holds the schema lock for the whole walk.
 */
int layered_list_tables(layered_session *session,
                        int (*callback)(void *arg, const char *name,
                                        int state),
                        void *arg);

/**
 * Open a cursor.  On "layered:NAME" it reads ingest over stable (an ingest
 * removal hides a stable value) and writes to the constituent of the
 * current role.  On "file:NAME.ingest" or "file:NAME.stable" it is
 * read-only (for diagnostics).  An open cursor holds the table's read lock:
 * a drop or an offload meanwhile returns EBUSY.  The first open of a
 * constituent reads its whole file and builds its index.
 *
 * An offloaded table has no local state: opening it, or either of its
 * constituents, returns ENOENT until layered_unarchive() brings it back.
 * An archived table opens as usual.
 * @param[in] session the session
 * @param[in] uri "layered:NAME", "file:NAME.ingest" or "file:NAME.stable"
 * @param[out] cursorp the new cursor, unpositioned
 * @return 0, EINVAL (NULL session, uri or cursorp, bad uri), ENOENT (no
 * such table or constituent file; the table is offloaded, being offloaded
 * or being dropped), LAYERED_CORRUPT (a damaged file; the message names the
 * file and offset), EIO/ENOSPC (reading the file, or cutting its torn
 * tail, failed), EMFILE/EACCES (the file could not be opened for reading
 * and writing), ENOMEM, LAYERED_PANIC.
 * Threads: the session's.  Blocks on the schema lock while a constituent
 * not yet open is loaded, and on the table's lock while a drop, an offload
 * or the closing of idle handles holds it exclusively (briefly: for their
 * own metadata and file I/O, never while waiting for another lock).
 */
int layered_cursor_open(layered_session *session, const char *uri,
                        layered_cursor **cursorp);

/**
 * Insert or overwrite a key.  Leaves the cursor unpositioned.
 * @param[in] cursor a cursor on "layered:NAME"
 * @param[in] key the key, 1 to LAYERED_KEY_MAX bytes
 * @param[in] key_len its length
 * @param[in] value the value, 0 to LAYERED_VALUE_MAX bytes; may be NULL
 * when value_len is 0
 * @param[in] value_len its length
 * @return 0, EINVAL (NULL cursor, key NULL, empty or over LAYERED_KEY_MAX,
 * value over LAYERED_VALUE_MAX, NULL value with non-zero length), ENOTSUP
 * (a read-only file: cursor), ENOSPC/EIO (nothing was written; under
 * LAYERED_SYNC_NONE also a failed flush of earlier buffered writes),
 * ENOMEM, LAYERED_PANIC (also when the step-up it waited for failed).
 * Threads: the cursor's session's.  Takes the role lock shared, so it
 * waits while a step-up (its whole drain) or a step-down runs; then the
 * file's write lock (waits for reads, writes, a drain batch, a sync or a
 * compaction of the same file).  Under LAYERED_SYNC_FSYNC it waits for the
 * fdatasync.
 */
int layered_cursor_insert(layered_cursor *cursor, const void *key,
                          size_t key_len, const void *value,
                          size_t value_len);

/**
 * Remove a key.  On a follower the ingest keeps a tombstone that hides the
 * stable value until the drain removes it there too.  Leaves the cursor
 * unpositioned.
 * @param[in] cursor a cursor on "layered:NAME"
 * @param[in] key the key, 1 to LAYERED_KEY_MAX bytes
 * @param[in] key_len its length
 * @return 0, LAYERED_NOTFOUND (no such key; nothing written), EINVAL (NULL
 * cursor, key NULL, empty or over LAYERED_KEY_MAX), ENOTSUP (a file:
 * cursor), ENOSPC/EIO (nothing was written), ENOMEM, LAYERED_PANIC.
 * Threads: as layered_cursor_insert().
 */
int layered_cursor_remove(layered_cursor *cursor, const void *key,
                          size_t key_len);

/*
 * Reading.  A cursor has no snapshot: each move sees the tables as they are
 * at that moment.  After LAYERED_NOTFOUND the cursor is unpositioned; after
 * another error its position is undefined (reset it or search again),
 * except as said for EAGAIN.
 *
 * EAGAIN: one move looks again at a key whose record was rewritten between
 * its seek and its read no more than 100 times (keys hidden by an ingest
 * removal are skipped without limit: they are progress).  Only a key that
 * other threads rewrite faster than the cursor can read it makes the move
 * return EAGAIN.  layered_cursor_next/_prev from a
 * positioned cursor then keep their place past the keys looked at
 * (layered_cursor_get is not meaningful until a move succeeds), and
 * calling again continues; from an unpositioned cursor, and for
 * layered_cursor_search/_search_near, a repeated call looks at the same
 * key again.
 *
 * Threads: the cursor's session's.  Each read takes the constituent files'
 * locks shared, waiting for a write, a drain batch, a sync or a compaction
 * of the same file, and reads values from disk.
 */

/**
 * Position the cursor on a key.
 * @param[in] cursor the cursor
 * @param[in] key the key, 1 to LAYERED_KEY_MAX bytes
 * @param[in] key_len its length
 * @return 0, LAYERED_NOTFOUND (no such key), EINVAL (NULL cursor, key
 * NULL, empty or over LAYERED_KEY_MAX), LAYERED_CORRUPT, EIO, ENOMEM,
 * EAGAIN, LAYERED_PANIC.
 */
int layered_cursor_search(layered_cursor *cursor, const void *key,
                          size_t key_len);

/**
 * Position the cursor on the key, or the nearest one: the smallest larger
 * key, else the largest smaller key.
 * @param[in] cursor the cursor
 * @param[in] key the key, 1 to LAYERED_KEY_MAX bytes
 * @param[in] key_len its length
 * @param[out] exactp 0 if on the key, 1 if on a larger key, -1 if smaller;
 * set on success
 * @return 0, LAYERED_NOTFOUND (table empty), EINVAL (NULL cursor or
 * exactp, key NULL, empty or over LAYERED_KEY_MAX), LAYERED_CORRUPT, EIO,
 * ENOMEM, EAGAIN, LAYERED_PANIC.
 */
int layered_cursor_search_near(layered_cursor *cursor, const void *key,
                               size_t key_len, int *exactp);

/**
 * Move to the next key (from unpositioned: the first).
 * @param[in] cursor the cursor
 * @return 0, LAYERED_NOTFOUND (no more keys: unpositioned, so the next call
 * starts from the first key), EINVAL (NULL cursor), LAYERED_CORRUPT, EIO,
 * ENOMEM, EAGAIN, LAYERED_PANIC.
 */
int layered_cursor_next(layered_cursor *cursor);

/**
 * Move to the previous key (from unpositioned: the last).
 * @param[in] cursor the cursor
 * @return 0, LAYERED_NOTFOUND (no more keys: unpositioned, so the next call
 * starts from the last key), EINVAL (NULL cursor), LAYERED_CORRUPT, EIO,
 * ENOMEM, EAGAIN, LAYERED_PANIC.
 */
int layered_cursor_prev(layered_cursor *cursor);

/**
 * The current key and value.  Any output pointer may be NULL: that part is
 * not returned.  The pointers stay valid until the cursor's next call other
 * than this one, or its close.  An empty value is a non-NULL pointer with
 * length 0.  Works after a panic.
 * @param[in] cursor a positioned cursor
 * @param[out] keyp the key, or NULL
 * @param[out] key_lenp its length, or NULL
 * @param[out] valuep the value, or NULL
 * @param[out] value_lenp its length, or NULL
 * @return 0, EINVAL (NULL cursor, or the cursor is not positioned).
 * Threads: the cursor's session's; never blocks.
 */
int layered_cursor_get(layered_cursor *cursor, const void **keyp,
                       size_t *key_lenp, const void **valuep,
                       size_t *value_lenp);

/**
 * Unposition the cursor.  Works after a panic.
 * @param[in] cursor the cursor
 * @return 0, EINVAL (NULL cursor).
 * Threads: the cursor's session's; never blocks.
 */
int layered_cursor_reset(layered_cursor *cursor);

/**
 * Close a cursor and release its table's read lock.  Works after a panic.
 * @param[in] cursor the cursor; freed either way
 * @return 0, EINVAL (NULL cursor).
 * Threads: the cursor's session's.  When more handles are open than the
 * descriptor budget allows, it takes the schema lock and closes idle ones
 * (flushing and syncing them; a failure there is reported through the
 * message handler, not returned).
 */
int layered_cursor_close(layered_cursor *cursor);

/*
 * Batches
 * -------
 * A batch collects puts and removes on any number of layered tables and
 * applies them atomically: after layered_batch_commit returns 0 every op
 * is there; after a crash, kill -9 or power cut at any moment either
 * every op of a committed batch is visible or none is.  A commit writes
 * one checksummed record holding every op to the batch journal
 * ("layered.batch" in the home) and fdatasyncs it -- at every sync level:
 * the rows' own writes could reach the disk before the record, so the
 * record must be durable first -- then writes the rows to their
 * constituents without syncing them.  So one fdatasync per batch, however
 * many ops, and a committed batch is durable at every sync level.  The
 * next open replays records whose rows did not reach their files;
 * checkpoints, step-up, drops, offloads and close empty the journal after
 * syncing the constituents.
 *
 * Each op goes where a single write would: on a follower to the table's
 * ingest (a remove leaves a tombstone), on a leader to its stable
 * constituent.  A remove of a key that is not there is not an error.
 * Later ops on the same key win.  Ops take LSNs in the batch's order.
 *
 * What readers see.  The rows become visible together: every file a batch
 * writes is locked from before its journal record until all its rows are
 * indexed, so a read either sees none of a batch or, once it has seen any
 * row of it, every read that starts afterwards sees all of it; every read
 * that starts after layered_batch_commit returned 0 sees the whole batch.
 * A cursor has no snapshot: a scan in progress while a batch commits sees
 * the batch's rows ahead of its position and not those behind it (it has
 * passed them), so it may return part of a batch.  Reads of files the
 * batch writes wait while it commits (the journal's fdatasync included),
 * as they wait for a single write's fdatasync under LAYERED_SYNC_FSYNC.
 */

/**
 * Start an empty batch.
 * @param[in] session the session; the batch belongs to it and is freed
 * by layered_session_close if still open
 * @param[out] batchp the new batch
 * @return 0, EINVAL (NULL session or batchp), ENOMEM, LAYERED_PANIC.
 * Threads: the session's; never blocks.
 */
int layered_batch_open(layered_session *session, layered_batch **batchp);

/**
 * Add a put to a batch: the key and value are copied; nothing is written
 * until layered_batch_commit.  The table is only looked up at commit.
 * @param[in] batch the batch
 * @param[in] uri "layered:NAME"
 * @param[in] key the key, 1 to LAYERED_KEY_MAX bytes
 * @param[in] key_len its length
 * @param[in] value the value, 0 to LAYERED_VALUE_MAX bytes; may be NULL
 * when value_len is 0
 * @param[in] value_len its length
 * @return 0, EINVAL (NULL batch, uri or key, a malformed uri, a key empty
 * or over LAYERED_KEY_MAX, a value over LAYERED_VALUE_MAX, NULL value with
 * non-zero length, the batch over LAYERED_BATCH_OPS_MAX or
 * LAYERED_BATCH_BYTES_MAX, or already committed), ENOMEM, LAYERED_PANIC.
 * A call that fails leaves the batch as it was.
 * Threads: the batch's session's; never blocks.
 */
int layered_batch_put(layered_batch *batch, const char *uri,
                      const void *key, size_t key_len, const void *value,
                      size_t value_len);

/**
 * Add a remove to a batch: the key is copied.
 * @param[in] batch the batch
 * @param[in] uri "layered:NAME"
 * @param[in] key the key, 1 to LAYERED_KEY_MAX bytes
 * @param[in] key_len its length
 * @return as layered_batch_put.
 * Threads: the batch's session's; never blocks.
 */
int layered_batch_remove(layered_batch *batch, const char *uri,
                         const void *key, size_t key_len);

/**
 * Commit a batch: all of its ops or none.  Afterwards, whatever it
 * returned, the batch is spent: layered_batch_put, _remove and _commit
 * return EINVAL; close it.  An empty batch commits nothing and returns 0
 * (no journal record, no sync).
 * @param[in] batch the batch
 * @return 0, EINVAL (NULL batch, already committed), ENOENT (a table does
 * not exist, is offloaded or is being dropped or offloaded), LAYERED_CORRUPT
 * /EIO/EMFILE/EACCES (opening a table's files failed), ENOSPC/EIO (the
 * journal record could not be written or synced; it was cut back),
 * ENOMEM, LAYERED_PANIC (the connection had panicked, or the rows of a
 * batch already committed to the journal could not be written to their
 * files: the connection panics, and the next open replays the batch;
 * also when a journal record that failed could not be cut back).  Every
 * error but that panic means nothing was written: the tables are looked up
 * and locked, the sizes checked and the memory taken before the journal
 * record, which is the commit point.
 * Threads: the batch's session's.  Like a cursor, it holds each table's
 * shared lock while it commits (a drop or an offload meanwhile returns
 * EBUSY) and takes the role lock shared (waits for a step-up or a
 * step-down; they wait for it).  Takes the journal lock (batches commit
 * one at a time) and the locks of the files it writes, and waits for the
 * journal's fdatasync.
 */
int layered_batch_commit(layered_batch *batch);

/**
 * Free a batch; an uncommitted batch is discarded.  Works after a panic.
 * @param[in] batch the batch; freed
 * @return 0, EINVAL (NULL batch).
 * Threads: the batch's session's; never blocks.
 */
int layered_batch_close(layered_batch *batch);

/**
 * Archive a table: it stays readable and writable, and becomes a candidate
 * for offload.  The metadata is durable before this returns.
 * @param[in] session the session
 * @param[in] uri "layered:NAME"
 * @return 0 (also when already archived or offloaded), EINVAL (NULL
 * session, bad uri), ENOENT (no such table, or it is being dropped),
 * LAYERED_IN_PROGRESS (an offload or restore is under way; retry),
 * ENOSPC/EIO (the metadata record could not be written; nothing changed),
 * LAYERED_PANIC.
 * Threads: the session's.  Holds the schema lock while the metadata record
 * is written and synced.
 */
int layered_archive(layered_session *session, const char *uri);

/**
 * Unarchive a table.  An archived table becomes active at once; an
 * offloaded one is brought back from the shared store with all its data
 * (a new empty ingest beside its stable constituent).
 * Takes the table's arbiter lock: an offload that has not yet ruled will
 * then find the table not archived (LAYERED_NOT_ARCHIVED); one that has
 * already ruled makes this call fail with EAGAIN, and a retry after the
 * offload restores the table.  The metadata is durable before this
 * returns.
 * @param[in] session the session
 * @param[in] uri "layered:NAME"
 * @return 0 (also when already active), EINVAL (NULL session, bad uri),
 * ENOENT (no such table, or it is being dropped; or, for an offloaded
 * table, its stable constituent is missing from the shared store), EAGAIN
 * (an offload is shutting the table down: retry), LAYERED_IN_PROGRESS
 * (another restore is under way), ENOSPC/EIO/EACCES/EMFILE (the new ingest
 * or the metadata record could not be written; the table stays as it was),
 * ENOMEM, LAYERED_PANIC.
 * Threads: the session's.  Holds the schema lock while it writes and syncs
 * (for a restore: the new ingest file too).
 */
int layered_unarchive(layered_session *session, const char *uri);

/**
 * Offload an archived table: close its handles, remove its local state
 * (the ingest constituent, which must be empty), keep its stable data in
 * the shared store, and record it as offloaded.  The table's arbiter lock
 * decides against a concurrent unarchive; only after it has ruled does
 * the table enter the irreversible stopping state, and from there the call
 * returns 0: a failure to remove the ingest file or to write the final
 * record is reported through the message handler, and the next open
 * completes the record.
 * @param[in] session the session
 * @param[in] uri "layered:NAME"
 * @return 0 (also when already offloaded), EINVAL (NULL session, bad uri),
 * ENOENT (no such table, or it is being dropped), LAYERED_NOT_ARCHIVED
 * (not archived in both the pending and the durable metadata: never
 * archived, or an unarchive came first), LAYERED_IN_PROGRESS (an offload
 * or restore is under way), EBUSY (a cursor, a drain or a checkpoint holds
 * the table, a running step-up's drain worker has the table in flight --
 * under every drain policy: an offload never makes a step-up fail -- or its
 * ingest holds rows not yet drained; nothing changed),
 * LAYERED_CORRUPT/EIO/EMFILE (opening the ingest to check it failed;
 * nothing changed), ENOSPC/EIO (the stable constituent could not be
 * synced, retiring the batch journal failed, or the stopping record could
 * not be written; nothing changed),
 * ENOMEM, LAYERED_PANIC.  An offload that finds the table queued for a
 * running step-up's drain (its ingest is empty) takes it out of the queue
 * once the stopping record is durable.
 * Threads: the session's, or the maintenance thread.  Holds the schema lock
 * from the ruling to the end, while it opens the ingest and writes and
 * syncs the metadata; never waits for a cursor or a drain (try-lock).
 */
int layered_offload(layered_session *session, const char *uri);

/*
 * Failpoints.  They are part of the API on purpose: an application that
 * builds a replicated system on this library tests its own handling of the
 * races the library resolves (a drop during a step-up, an offload during an
 * unarchive) by pausing or failing the library at these named points, and
 * the Swift layer and the stress tool use them the same way.  A failpoint
 * that is not set costs one relaxed atomic load.  The entry points that
 * only the library's own tests need (a simulated disk under a connection,
 * a scheduler that enumerates interleavings) are not here: they live in
 * the uninstalled CLayered/layered_test.h.
 */

/**
 * Set a failpoint.  Names used by the library:
 *   "drain.queued"           step-up, after queuing the drain items,
 *                            before any worker takes one.  Under
 *                            LAYERED_DRAIN_QUEUE_SCAN the drop-wins
 *                            ordering is forced here: a drop made while
 *                            step-up is paused removes the queued item
 *   "drain.before_lock"      a drain worker, after dequeuing an item,
 *                            before it takes a lock or opens a cursor.
 *                            The drop-wins ordering of the other policies;
 *                            under LAYERED_DRAIN_QUEUE_SCAN the item is in
 *                            flight here, so a drop returns EBUSY
 *   "drain.before_read_lock" LAYERED_DRAIN_READ_LOCK: a drain worker that
 *                            has pinned the ingest handle, before it takes
 *                            the handle's read lock (a drop here wins; the
 *                            worker then finds the handle DEAD and skips)
 *   "drain.copy"             a drain worker inside the copy, after the
 *                            first batch of rows was written
 *   "drain.sync"             a drain worker before it syncs a batch: once
 *                            after the copies, once after the clears
 *   "drain.before_clear"     a drain worker after the copy, before it
 *                            clears the ingest
 *   "drop.before_exclusive"  a drop, before it takes the exclusive locks
 *   "drop.after_remove"      a drop, after removing the files, before the
 *                            metadata update
 *   "offload.decided"        the auto-offload task, after choosing tables
 *                            from its snapshot, before acting on them
 *   "offload.before_arbiter" an offload, before the arbiter lock
 *   "offload.after_arbiter"  an offload that has won the arbiter, before
 *                            the table enters the stopping state
 *   "offload.after_stopping" an offload, after the stopping state is
 *                            durable (schema lock held: crash tests)
 *   "offload.after_remove"   an offload, after removing the local files,
 *                            before recording the table as offloaded
 *                            (schema lock held: crash tests)
 *   "unarchive.before_lock"  an unarchive, before the arbiter lock
 *   "batch.before_commit"    a batch commit that holds its tables'
 *                            shared locks and the role lock shared,
 *                            before the journal record
 *   "batch.before_journal"   a batch commit holding its files' locks,
 *                            LSNs drawn, before the record is written
 *   "batch.write"            the batch journal append (return(ERR):
 *                            the commit fails, nothing changed)
 *   "batch.sync"             the batch journal append's fdatasync (the
 *                            record is cut back: nothing changed)
 *   "batch.committed"        a batch commit whose journal record is
 *                            durable, before any row is written (pause
 *                            or sleep only: an injected error is
 *                            ignored, the batch is committed)
 *   "batch.applied"          a batch commit after its rows are written,
 *                            journal lock held (an error here panics:
 *                            tests use it for the committed-not-returned
 *                            case)
 *   "batch.retire"           emptying the batch journal, after syncing
 *                            the constituents (checkpoint, step-up, drop,
 *                            offload, close)
 *   "fs.write"               any constituent file write (use return(ERR)
 *                            to inject ENOSPC or EIO)
 *   "fs.sync"                any constituent file sync, and the drain's
 *                            syncfs of a batch
 *   "meta.write"             the metadata journal append and snapshot
 *   "meta.sync"              the journal append's fdatasync
 *   "meta.snapshot_dir_sync" the directory fsync after a snapshot rename
 *                            (an error here panics the connection)
 *   "meta.journal_reset"     starting the new journal after a snapshot
 *                            rename (an error here panics the connection)
 *   "open.parent_sync"       layered_open, syncing the parent of a
 *                            directory it created
 * Actions: "off"; "pause" (threads reaching it wait until it is set to
 * something else, or the connection closes or panics); "sleep(MS)" with
 * MS 0 to 3,600,000; "return(ERR)" with ERR a non-zero number or one of
 * ENOENT, EIO, ENOSPC, EBUSY, EINVAL, ENOMEM, EACCES, EROFS, EFBIG, EAGAIN,
 * NOTFOUND, CORRUPT (the last two: LAYERED_NOTFOUND, LAYERED_CORRUPT).
 * Setting a failpoint resets its hit count and releases threads paused at
 * it.
 * @param[in] conn the connection
 * @param[in] name 1 to 47 bytes of [A-Za-z0-9._]; any such name is
 * accepted, whether the library uses it or not
 * @param[in] action one of the actions above
 * @return 0, EINVAL (NULL conn, name or action; a malformed name or
 * action), ENOMEM (32 other failpoints are already set).
 * Threads: any; works after a panic.  Takes a leaf mutex; never blocks.
 */
int layered_failpoint_set(layered_conn *conn, const char *name,
                          const char *action);

/**
 * Wait until some thread is paused at, or has passed, a failpoint since it
 * was last set.  The failpoint must have been set first (to "pause",
 * "sleep" or "return"), normally before starting the thread that is to
 * reach it: a thread passing a failpoint that is not set leaves no trace,
 * and one set to "off" counts nothing (waiting on it times out).
 * @param[in] conn the connection
 * @param[in] name the failpoint
 * @param[in] timeout_ms how long to wait at most; 0: only look; negative:
 * forever
 * @return 0, ETIMEDOUT, EINVAL (NULL conn or name, or a failpoint never set
 * on this connection).
 * Threads: any; works after a panic.  Blocks until a thread reaches the
 * failpoint or the timeout passes; it must return before the connection is
 * closed.
 */
int layered_failpoint_wait(layered_conn *conn, const char *name,
                           int timeout_ms);

/**
 * Release every thread paused at a failpoint, and from now on let threads
 * pass "pause" failpoints without waiting (the other actions still apply).
 * layered_close does this first; a caller that waits for its own
 * operations before it closes (the Swift layer does) calls it before that
 * wait, without having to know which failpoints were set (by
 * layered_failpoint_set, cfg->failpoints or LAYERED_FAILPOINTS).
 * @param[in] conn the connection
 * @return 0, EINVAL (NULL conn).
 * Threads: any; works after a panic.  Takes a leaf mutex; never blocks.
 */
int layered_failpoint_release_all(layered_conn *conn);

/*
 * Verify and salvage
 * ------------------
 * layered_verify and layered_salvage_scan read a home's files themselves,
 * read-only and without a connection: unlike layered_open they never cut a
 * torn tail or finish an interrupted drop or offload.  They check every
 * checksum by the rules an open applies: a torn tail (the incomplete
 * append a crash leaves at the end of a file, which the next open of the
 * file cuts) is reported as LAYERED_VERIFY_TORN_TAIL and is not damage;
 * whatever an open or a read would refuse with LAYERED_CORRUPT is
 * LAYERED_VERIFY_DAMAGE.  After damage in a constituent file the scan goes
 * on at the next record whose header and body checksums both pass, so each
 * damaged region is reported once and every intact record after it is
 * still read.
 */

/** Kinds of report, passed to a layered_verify_report. */
/** Damage: a file header, record or metadata line fails its checksum or
 * cannot be read, or a constituent that the table's state requires is
 * missing.  An open or a read of it would fail (LAYERED_CORRUPT, ENOENT). */
#define LAYERED_VERIFY_DAMAGE 1
/** A torn tail: an incomplete append at the end of a file, which the next
 * open of the file cuts.  Not damage. */
#define LAYERED_VERIFY_TORN_TAIL 2

/**
 * Receives one report of layered_verify() or layered_salvage_scan().
 * @param[in] arg the caller's argument
 * @param[in] kind LAYERED_VERIFY_DAMAGE or LAYERED_VERIFY_TORN_TAIL
 * @param[in] file the file's path: the home or shared directory as given,
 * "/" and the file's name; valid only during the call
 * @param[in] offset the byte offset in the file where the damage or the
 * torn tail begins (0 for a missing file)
 * @param[in] what a description; valid only during the call
 * @return 0 to go on; anything else stops the call, which returns it
 * unchanged.
 */
typedef int (*layered_verify_report)(void *arg, int kind, const char *file,
                                     uint64_t offset, const char *what);

/** What layered_verify() or layered_salvage_scan() read. */
typedef struct layered_verify_stats {
    uint64_t files;      /**< files read: metadata and constituents */
    uint64_t bytes;      /**< their sizes, summed */
    uint64_t records;    /**< constituent records whose checksums passed */
    uint64_t damaged;    /**< LAYERED_VERIFY_DAMAGE reports */
    uint64_t torn_tails; /**< LAYERED_VERIFY_TORN_TAIL reports */
} layered_verify_stats;

/**
 * Check every checksum of a database home without modifying anything.
 *
 * Reads the metadata snapshot (layered.meta: its checksum and every line)
 * and journal (layered.meta.log: every record's checksum), the batch
 * journal (layered.batch: every record's checksums and ops; a batch that
 * committed but was not yet retired lives there), then every
 * record of every constituent of the tables they list: the file header,
 * each record header and each record body.  A constituent that the table's
 * state requires and that is missing is damage (an active or archived
 * table has both; an offloaded or stopping one keeps its stable
 * constituent).  Tables whose drop was interrupted are skipped: the next
 * open finishes the drop.  Nothing is written, truncated or created.
 * @param[in] home the home directory
 * @param[in] shared_dir the directory of the stable constituents, as
 * layered_config.shared_dir: NULL for "<home>/shared"
 * @param[in] table NULL for every table, or one table's NAME (without
 * "layered:"): the metadata and that table's constituents are read.  A
 * NAME that the metadata does not list has its files read if they exist
 * @param[in] report called for each damage and each torn tail, in the
 * order of the files and of the offsets in each; NULL: they are only
 * counted
 * @param[in] arg passed to report
 * @param[out] stats what was read, or NULL; filled also when an error is
 * returned, as far as the call got
 * @return 0 (no damage; torn tails may have been reported),
 * LAYERED_CORRUPT (damage was reported; every file was still read), EINVAL
 * (NULL or empty home, empty shared_dir, a malformed table name), ENOENT
 * (home or the shared directory is missing; the home holds neither
 * metadata file, so it is not a Layered home; table is not listed and has
 * no files), ENOTDIR, EACCES, EMFILE, EBUSY (the home is open in this or
 * another process), EIO (a read failed, or a file shrank while it was
 * read), ENOMEM, or report's non-zero value.
 * Threads: any; needs no connection.  Holds the home's LOCK file shared
 * (flock) for the whole call, so a layered_open of the home meanwhile
 * returns EBUSY.  Blocks on file I/O only.
 */
int layered_verify(const char *home, const char *shared_dir,
                   const char *table, layered_verify_report report,
                   void *arg, layered_verify_stats *stats);

/** Constituents, in layered_record.constituent. */
#define LAYERED_CONSTITUENT_INGEST 0
#define LAYERED_CONSTITUENT_STABLE 1

/** Kinds of record, in layered_record.kind. */
/** The key was set to the value. */
#define LAYERED_RECORD_PUT 0
/** The key was removed: a stable delete, or an ingest tombstone (which
 * hides the stable value). */
#define LAYERED_RECORD_REMOVE 1
/** Every earlier record of the same file is dead: the drain cleared the
 * ingest after copying it into the stable constituent. */
#define LAYERED_RECORD_CLEAR 2

/** One intact record, as layered_salvage_scan() delivers it. */
typedef struct layered_record {
    int constituent;     /**< LAYERED_CONSTITUENT_* */
    int kind;            /**< LAYERED_RECORD_* */
    uint64_t offset;     /**< where the record begins in its file */
    uint64_t lsn;        /**< the LSN it was written with */
    const void *key;     /**< NULL for LAYERED_RECORD_CLEAR */
    size_t key_len;
    const void *value;   /**< a PUT's value, non-NULL also when empty;
                              NULL for the other kinds */
    size_t value_len;
} layered_record;

/**
 * Read every intact record of one table's constituents, in file order, so
 * that a damaged table's rows can be rebuilt (salvage).
 *
 * Reads NAME.ingest in the home, then NAME.stable in the shared directory,
 * by the rules of layered_verify: records whose checksums pass go to
 * record, damage and torn tails to report.  A missing constituent is
 * skipped (an offloaded table has no ingest).  The metadata is not read
 * and nothing is written.
 *
 * To rebuild the rows: drop each record of a constituent that comes before
 * a LAYERED_RECORD_CLEAR in the same constituent; then for each key keep
 * the record with the highest LSN across both constituents, the ingest's
 * on a tie; a key whose kept record is a removal has no row.  A key whose
 * newest record is damaged comes back with its newest intact record (an
 * older value) if there is one.
 * @param[in] home the home directory
 * @param[in] shared_dir as for layered_verify: NULL for "<home>/shared"
 * @param[in] table the table's NAME (without "layered:")
 * @param[in] record called for each intact record, in file order; the
 * record and the memory it points to are valid only during the call.  No
 * library lock is held, so it may call into the library (to write the
 * rows into another table).  A non-zero return stops the scan and is
 * returned unchanged
 * @param[in] report as for layered_verify, or NULL
 * @param[in] arg passed to record and report
 * @param[out] stats what was read, or NULL; filled also when an error is
 * returned
 * @return 0, LAYERED_CORRUPT (damage was reported; every intact record was
 * still delivered), EINVAL (NULL or empty home, empty shared_dir, NULL
 * record, a malformed table name), ENOENT (the home is missing, or neither
 * constituent exists), ENOTDIR, EACCES, EMFILE, EIO (a read failed, or a
 * file shrank while it was read), ENOMEM, or a callback's non-zero value.
 * Threads: any; needs no connection and takes no lock, so the calling
 * process may have the database open meanwhile (to write the rows through
 * it).  Nothing may write to the table during the call, in this process or
 * another: a write made meanwhile may be seen in part (as a torn tail) or
 * not at all.  Blocks on file I/O only.
 */
int layered_salvage_scan(const char *home, const char *shared_dir,
                         const char *table,
                         int (*record)(void *arg, const layered_record *rec),
                         layered_verify_report report, void *arg,
                         layered_verify_stats *stats);

#ifdef __cplusplus
}
#endif
#endif /* LAYERED_H */
