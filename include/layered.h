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
 * - Output handles come last.  A function that fails leaves its output
 *   handle set to NULL.
 * - After the connection has panicked every call on it, its sessions and its
 *   cursors returns LAYERED_PANIC (closing handles still frees them).
 * - Threads: a connection is shared by any number of threads, including
 *   threads the library did not create.  A session and its cursors are used
 *   by one thread at a time; many sessions may run at once.
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
 * is being drained. */
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
#define LAYERED_TABLE_STOPPING 3
#define LAYERED_TABLE_DROPPED 4

typedef struct layered_conn layered_conn;
typedef struct layered_session layered_session;
typedef struct layered_cursor layered_cursor;

/**
 * Called once, on the thread that triggered the first panic of a
 * connection.  The connection has already stopped serving.  If the handler
 * returns, the call that panicked returns LAYERED_PANIC.
 * @param[in] arg the config's panic_arg
 * @param[in] error the error that caused the panic
 * @param[in] message a description; valid only during the call
 */
typedef void (*layered_panic_handler)(void *arg, int error,
                                      const char *message);

/**
 * Receives the library's informational and error messages (one line each,
 * no newline).  May be called from any thread, concurrently.
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
 * @return a static string; never NULL.  Thread-safe.
 */
const char *layered_strerror(int error);

/**
 * Fill a configuration with the defaults.
 * @param[out] cfg the configuration to initialise
 */
void layered_config_init(layered_config *cfg);

/**
 * Open a connection to a database home directory.
 *
 * Reads the metadata file, finishes any drop a crash interrupted, and sets
 * the configured failpoints.  Constituent files are opened lazily, on first
 * use; a torn tail is cut when a file is opened.
 * @param[in] home the home directory
 * @param[in] cfg the configuration, or NULL for the defaults
 * @param[out] connp the new connection
 * @return 0, or EINVAL (NULL home or connp, a field out of range, a
 * malformed failpoint string), ENOENT (home or its parent missing),
 * ENOTDIR, EACCES/EROFS (cannot write the home), EBUSY (the home is open
 * in this or another process), LAYERED_CORRUPT (damaged metadata file),
 * ENOMEM, EIO.
 * Any thread may call it.
 */
int layered_open(const char *home, const layered_config *cfg,
                 layered_conn **connp);

/**
 * Close a connection: closes its sessions and cursors, flushes and syncs
 * every file, writes the metadata, frees everything.
 * @param[in] conn the connection; freed even when an error is returned
 * @return 0, EINVAL (NULL conn), EIO/ENOSPC (a final flush failed; data of
 * writes under LAYERED_SYNC_NONE since the last checkpoint may be lost),
 * LAYERED_PANIC (the connection had panicked; resources are still freed).
 * No other thread may use the connection or its sessions during or after
 * the call.  Releases every paused failpoint first.
 */
int layered_close(layered_conn *conn);

/**
 * Step up from follower to leader: drain every ingest constituent that
 * holds data into its stable constituent, using drain_threads threads
 * (drain_threads - 1 workers plus the calling thread).
 *
 * Holds the checkpoint lock for its whole duration and sets the leader
 * flag before draining.  Writes wait until it returns; reads continue.
 * A drain error fails the step-up and panics the connection, unless the
 * drain policy turns it into a skip.
 * @param[in] conn the connection
 * @param[out] stats what the drain did, or NULL
 * @return 0 (also when already leader: nothing to do), EINVAL (NULL conn),
 * LAYERED_PANIC (the drain failed, or had failed before), ENOMEM/EAGAIN
 * (worker threads could not be started; nothing was changed).
 * Blocks on the checkpoint lock, the drain, and writes in progress.
 */
int layered_step_up(layered_conn *conn, layered_drain_stats *stats);

/**
 * Step down from leader to follower: writes go to ingest constituents
 * again.  Waits for writes in progress.
 * @return 0 (also when already follower), EINVAL, LAYERED_PANIC.
 */
int layered_step_down(layered_conn *conn);

/**
 * Read the connection's statistics.
 * @param[out] stats filled on success
 * @return 0, EINVAL.  Works after a panic (panicked is set).  Any thread.
 */
int layered_stats(layered_conn *conn, layered_conn_stats *stats);

/**
 * Open a session.  Any thread; the session is then used by one thread at
 * a time.
 * @return 0, EINVAL, ENOMEM, LAYERED_PANIC.
 */
int layered_session_open(layered_conn *conn, layered_session **sessionp);

/**
 * Close a session and every cursor it still has open.
 * @return 0, EINVAL (NULL session).  The session is freed either way.
 */
int layered_session_close(layered_session *session);

/**
 * Create a layered table: both constituent files and its metadata entry,
 * durably, before returning.
 * @param[in] uri "layered:NAME"; NAME is 1 to LAYERED_NAME_MAX bytes of
 * [A-Za-z0-9_.-], not starting with '.'
 * @param[in] config NULL, "" or "exclusive=true|false" (default true)
 * @return 0, EINVAL (bad uri or config), EEXIST (exists and exclusive),
 * ENOSPC/EIO/EACCES (files or metadata could not be written; nothing was
 * created), LAYERED_PANIC.  Blocks on the schema lock.
 */
int layered_create(layered_session *session, const char *uri,
                   const char *config);

/**
 * Drop a layered table: its files are removed, its handles marked DEAD and
 * removed from the handle table, its metadata entry removed.  Every check
 * that can fail runs before anything irreversible.
 * @param[in] uri "layered:NAME"
 * @param[in] flags LAYERED_DROP_FORCE: a missing table is not an error;
 * LAYERED_DROP_CHECKPOINT_WAIT: first take the checkpoint lock (waits for a
 * running step-up or checkpoint)
 * @return 0, EINVAL (bad uri or flags), ENOENT (no such table, without
 * FORCE), EBUSY (a cursor, a drain, a checkpoint syncing the table, or an
 * offload or restore holds it; nothing was changed; retry later),
 * ENOSPC/EIO (metadata could not be written), LAYERED_PANIC.
 */
int layered_drop(layered_session *session, const char *uri,
                 unsigned flags);

/**
 * Checkpoint: flush and sync every constituent, compact files that are
 * mostly dead, write the metadata, then publish database_size.
 * @return 0, ENOSPC/EIO (nothing is published), LAYERED_PANIC.  Blocks on
 * the checkpoint lock (so it waits for a step-up).
 */
int layered_checkpoint(layered_session *session);

/**
 * Report a table's lifecycle state.
 * @param[in] uri "layered:NAME"
 * @param[out] statep one of LAYERED_TABLE_*
 * @return 0, EINVAL, ENOENT (no such table), LAYERED_PANIC.
 */
int layered_table_state(layered_session *session, const char *uri,
                        int *statep);

/**
 * Call a function for every table, in name order.  The callback must not
 * call into the library.  A non-zero return from it stops the walk and is
 * returned.
 * @return 0, EINVAL, LAYERED_PANIC, or the callback's value.
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
 * a drop meanwhile returns EBUSY.
 * @return 0, EINVAL (bad uri), ENOENT (no such table or constituent),
 * LAYERED_CORRUPT (a damaged file), EIO, ENOMEM, LAYERED_PANIC.
 */
int layered_cursor_open(layered_session *session, const char *uri,
                        layered_cursor **cursorp);

/**
 * Insert or overwrite a key.  Waits while a step-up drains.
 * @return 0, EINVAL (key empty or over LAYERED_KEY_MAX, value over
 * LAYERED_VALUE_MAX, NULL pointer with non-zero length), ENOTSUP (a
 * read-only file: cursor), ENOSPC/EIO (nothing was written),
 * LAYERED_PANIC.  Leaves the cursor unpositioned.
 */
int layered_cursor_insert(layered_cursor *cursor, const void *key,
                          size_t key_len, const void *value,
                          size_t value_len);

/**
 * Remove a key.
 * @return 0, LAYERED_NOTFOUND (no such key), EINVAL, ENOTSUP, ENOSPC, EIO,
 * LAYERED_PANIC.  Leaves the cursor unpositioned.
 */
int layered_cursor_remove(layered_cursor *cursor, const void *key,
                          size_t key_len);

/**
 * Position the cursor on a key.
 * @return 0, LAYERED_NOTFOUND (unpositioned), EINVAL, LAYERED_CORRUPT, EIO,
 * LAYERED_PANIC.
 */
int layered_cursor_search(layered_cursor *cursor, const void *key,
                          size_t key_len);

/**
 * Position the cursor on the key, or the nearest one: the smallest larger
 * key, else the largest smaller key.
 * @param[out] exactp 0 if on the key, 1 if on a larger key, -1 if smaller
 * @return 0, LAYERED_NOTFOUND (table empty), EINVAL, EIO, LAYERED_PANIC.
 */
int layered_cursor_search_near(layered_cursor *cursor, const void *key,
                               size_t key_len, int *exactp);

/**
 * Move to the next key (from unpositioned: the first).
 * @return 0, LAYERED_NOTFOUND (no more: unpositioned), EIO, LAYERED_PANIC.
 */
int layered_cursor_next(layered_cursor *cursor);

/**
 * Move to the previous key (from unpositioned: the last).
 * @return 0, LAYERED_NOTFOUND, EIO, LAYERED_PANIC.
 */
int layered_cursor_prev(layered_cursor *cursor);

/**
 * The current key and value.  The pointers stay valid until the cursor
 * moves, is reset or closed.
 * @return 0, EINVAL (not positioned or NULL argument).
 */
int layered_cursor_get(layered_cursor *cursor, const void **keyp,
                       size_t *key_lenp, const void **valuep,
                       size_t *value_lenp);

/**
 * Unposition the cursor.
 * @return 0, EINVAL.
 */
int layered_cursor_reset(layered_cursor *cursor);

/**
 * Close a cursor and release its table's read lock.
 * @return 0, EINVAL.  The cursor is freed either way.
 */
int layered_cursor_close(layered_cursor *cursor);

/**
 * Archive a table: it stays readable and writable, and becomes a candidate
 * for offload.  The metadata is durable before this returns.
 * @param[in] uri "layered:NAME"
 * @return 0 (also when already archived or offloaded), EINVAL, ENOENT,
 * LAYERED_IN_PROGRESS (an offload or restore is under way; retry),
 * ENOSPC/EIO (nothing changed), LAYERED_PANIC.
 */
int layered_archive(layered_session *session, const char *uri);

/**
 * Unarchive a table.  An archived table becomes active at once; an
 * offloaded one is brought back from the shared store with all its data.
 * Takes the table's arbiter lock: an offload that has not yet ruled will
 * then find the table not archived (LAYERED_NOT_ARCHIVED); one that has
 * already ruled makes this call fail with EAGAIN, and a retry after the
 * offload restores the table.  The metadata is durable before this
 * returns.
 * @return 0 (also when already active), EINVAL, ENOENT, EAGAIN (an offload
 * is shutting the table down: retry), LAYERED_IN_PROGRESS (another
 * restore is under way), ENOSPC/EIO, LAYERED_PANIC.
 */
int layered_unarchive(layered_session *session, const char *uri);

/**
 * Offload an archived table: close its handles, remove its local state
 * (the ingest constituent, which must be empty), keep its stable data in
 * the shared store, and record it as offloaded.  The table's arbiter lock
 * decides against a concurrent unarchive; only after it has ruled does
 * the table enter the irreversible stopping state.
 * @return 0 (also when already offloaded), EINVAL, ENOENT,
 * LAYERED_NOT_ARCHIVED (archived neither in the pending nor the durable
 * metadata: an unarchive came first), LAYERED_IN_PROGRESS (an offload or
 * restore is under way), EBUSY (a cursor or drain holds the table, or its
 * ingest holds rows not yet drained; nothing changed), ENOSPC/EIO,
 * LAYERED_PANIC.
 */
int layered_offload(layered_session *session, const char *uri);

/**
 * Set a failpoint.  Names used by the library:
 *   "drain.queued"           step-up, after queuing the drain items,
 *                            before any worker takes one
 *   "drain.before_lock"      a drain worker, after dequeuing an item,
 *                            before it takes a lock or opens a cursor
 *   "drain.copy"             a drain worker inside the copy, after the
 *                            first batch of rows was written
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
 *   "fs.write"               any file write (use return(ERR) to inject
 *                            ENOSPC or EIO)
 *   "fs.sync"                any file sync
 *   "meta.write"             the metadata file write
 * Actions: "off"; "pause" (threads reaching it wait until it is set to
 * something else); "sleep(MS)"; "return(ERR)" with ERR a number or an
 * errno name (ENOENT, EIO, ENOSPC, EBUSY, ...).  Setting a failpoint
 * resets its hit count.
 * @return 0, EINVAL (bad name or action), ENOMEM (too many failpoints).
 * Any thread.  Works after a panic.
 */
int layered_failpoint_set(layered_conn *conn, const char *name,
                          const char *action);

/**
 * Wait until some thread is paused at, or has passed, a failpoint since it
 * was last set.
 * @param[in] timeout_ms how long to wait at most; negative: forever
 * @return 0, ETIMEDOUT, EINVAL (unknown failpoint).  Any thread.
 */
int layered_failpoint_wait(layered_conn *conn, const char *name,
                           int timeout_ms);

#ifdef __cplusplus
}
#endif
#endif /* LAYERED_H */
