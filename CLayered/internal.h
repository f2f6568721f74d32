/*
 * internal.h -- structures and functions shared by the C core's subsystems.
 *
 * LOCK ORDER (the one place it is written down; checked by
 * lock_order_acquire in rwlock.c in builds with LAYERED_LOCK_ORDER, which
 * is on by default without NDEBUG).  A thread may only acquire a
 * lock whose level is higher than every level it already holds:
 *
 *   1 LOCK_CHECKPOINT  conn->ckpt_lock    checkpoints, step-up (whole
 *                                         duration), drop with
 *                                         LAYERED_DROP_CHECKPOINT_WAIT
 *   2 LOCK_ROLE        conn->role_lock    the role; writes hold it shared,
 *                                         step-up/step-down exclusive
 *   3 LOCK_SCHEMA      conn->schema_lock  the table tree, the metadata
 *                                         files, opening and removing
 *                                         dhandles
 *   4 LOCK_DRAIN       conn->drain_lock   the drain queue and in-flight
 *                                         marks
 *   5 LOCK_DHANDLE     dhandle->lock      exclusive: try-lock only
 *   6 LOCK_BATCH       conn->batch_lock   the batch journal: a batch
 *                                         commit (role lock shared and its
 *                                         tables' shared locks held) and a
 *                                         retire (checkpoint, step-up, drop,
 *                                         offload) hold it while they take
 *                                         file-store locks
 *   7 (file store)     fs_file's rwlock   internal to filestore.c, never
 *                                         held across its calls, except by
 *                                         fs_batch_apply, which takes the
 *                                         locks of a batch's files in
 *                                         address order
 *   leaves             failpoint, panic, session-list mutexes: nothing is
 *                      acquired while holding them
 *
 * The one exemption: SHARED dhandle locks (cursors, drain workers) are not
 * ordered against levels 1-4.  A cursor holds its shared locks for its
 * whole life and may take the role lock shared to write, while step-up
 * holds the role lock and takes shared dhandle locks to drain.  This cannot
 * deadlock because a shared dhandle acquisition can only wait for an
 * EXCLUSIVE holder, exclusive acquisition is try-lock (it never waits, so
 * never queues ahead of a reader), and an exclusive holder (drop, sweep)
 * never waits for level 1 or 2 while holding it: it already holds the
 * schema lock and, under queue-scan, took the drain lock before.
 */
#ifndef LAYERED_INTERNAL_H
#define LAYERED_INTERNAL_H

#include "namespace.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <bsd/sys/queue.h>
#include <bsd/sys/tree.h>

#define RCU_MEMB
#include <urcu.h>
#include <urcu/rculfhash.h>

#include "err.h"
#include "filestore.h"
#include "layered.h"
#include "os.h"

/* ---- lock order (rwlock.c) ---- */
enum lock_level {
    LOCK_CHECKPOINT = 1,
    LOCK_ROLE = 2,
    LOCK_SCHEMA = 3,
    LOCK_DRAIN = 4,
    LOCK_DHANDLE = 5,
    LOCK_BATCH = 6,
    LOCK_LEVEL_MAX = LOCK_BATCH /* the checker's table is sized by it */
};
/* LAYERED_LOCK_ORDER=1 compiles the checker in, =0 leaves it out; unset, it
 * follows NDEBUG.  CMake's LAYERED_LOCK_ORDER_CHECK option sets it in an
 * optimised build, so that the release tests check the order too. */
#ifndef LAYERED_LOCK_ORDER
#ifdef NDEBUG
#define LAYERED_LOCK_ORDER 0
#else
#define LAYERED_LOCK_ORDER 1
#endif
#endif
#if LAYERED_LOCK_ORDER
void lock_order_acquire(enum lock_level level);
void lock_order_release(enum lock_level level);
#else
static inline void
lock_order_acquire(enum lock_level level)
{
    (void)level;
}
static inline void
lock_order_release(enum lock_level level)
{
    (void)level;
}
#endif

/* Ordered mutex helpers: take a connection lock and record its level. */
void conn_lock(pthread_mutex_t *m, enum lock_level level);
void conn_unlock(pthread_mutex_t *m, enum lock_level level);

/* ---- per-dhandle read-write lock (rwlock.c) ----
 * state > 0: that many readers; 0: free; -1: one exclusive holder.
 * Readers wait (futex) only while an exclusive holder exists; exclusive
 * acquisition never waits. */
typedef struct dh_rwlock {
    _Atomic int32_t state;
} dh_rwlock;

void dh_rwlock_init(dh_rwlock *l);
void dh_rwlock_read_lock(dh_rwlock *l);
void dh_rwlock_read_unlock(dh_rwlock *l);
int dh_rwlock_try_write_lock(dh_rwlock *l); /* 0 or EBUSY */
void dh_rwlock_write_unlock(dh_rwlock *l);

/* ---- failpoints (failpoint.c) ---- */
#define FP_MAX 32
#define FP_NAME_MAX 48
enum fp_action { FP_OFF, FP_PAUSE, FP_SLEEP, FP_RETURN };
struct failpoint {
    char name[FP_NAME_MAX];
    enum fp_action action;
    int arg;            /* sleep ms or error to return */
    uint64_t hits;      /* threads that reached it since it was set */
    uint64_t epoch;     /* bumped on every set: releases paused threads */
};
struct fp_table {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    _Atomic int active; /* any failpoint not off: the fast path's test */
    bool released;      /* connection closing or panicked: never pause */
    /* A test's scheduler (layered_test_set_scheduler): called first at
     * every failpoint, with no lock held; may block the calling thread;
     * a non-zero return is injected like return(ERR).  Set before any
     * other thread uses the connection. */
    int (*hook)(void *arg, const char *name);
    void *hook_arg;
    int n;
    struct failpoint fp[FP_MAX];
};
/* At open, before any other thread can use the connection. */
int fp_init(struct fp_table *t);
/* At close, once no other thread uses the connection. */
void fp_destroy(struct fp_table *t);
/* Any thread, any locks held; takes the failpoint mutex (a leaf). */
int fp_set(struct fp_table *t, const char *name, const char *action);
/* Any thread, any locks held; takes the failpoint mutex (a leaf). */
int fp_set_list(struct fp_table *t, const char *list);
/* Any thread, any locks held; takes the failpoint mutex (a leaf). */
void fp_release_all(struct fp_table *t);
/* fp_hit when some failpoint is set.  Any thread, any locks held. */
int fp_hit_slow(struct fp_table *t, const char *name);
/* Returns 0 to continue or an injected error.  Costs one relaxed atomic
 * load when no failpoint is set.  Any thread, any locks held: a paused
 * thread waits with them held, which is the point. */
static inline int
fp_hit(struct fp_table *t, const char *name)
{
    if (atomic_load_explicit(&t->active, memory_order_relaxed) == 0)
        return 0;
    return fp_hit_slow(t, name);
}

/* ---- dhandles (dhandle.c) ---- */
#define DH_OPEN 0x1u
#define DH_DEAD 0x4u     /* out of the table: lookups skip it */
#define DH_DROPPED 0x8u  /* its files were removed */

struct dhandle {
    struct cds_lfht_node node; /* in conn->dhandles, keyed by name */
    struct rcu_head rcu;
    layered_conn *conn;
    char *name;                /* "file:NAME.ingest" / "file:NAME.stable" */
    unsigned long hash;
    dh_rwlock lock;
    _Atomic uint32_t flags;
    /* Pins keep the memory (and fs) alive; the handle table holds one pin
     * while the handle is in it.  Whoever drops the count to zero closes
     * the file and frees the handle after an RCU grace period.  A lookup
     * may only take a pin if the count is not zero. */
    _Atomic int64_t pins;
    fs_file *fs;
    bool ingest;
    uint64_t table_id; /* the incarnation of the table it belongs to */
};

/* Register the calling thread with RCU once (every API entry).  Any
 * thread; no lock. */
void layered_rcu_enter(void);
/* Register the pthread_atfork handlers that keep liburcu working in a
 * forked child (fork.c).  Any thread; once per process. */
void fork_handlers_init(void);
/* At open, before any other thread can use the connection. */
int dh_table_create(layered_conn *conn);
/* At close, once no other thread uses the connection. */
void dh_table_destroy(layered_conn *conn);
/* Find or open a constituent's handle and pin it.  ENOENT if the table or
 * its file does not exist (or is being dropped).  Any thread, not holding
 * the schema lock; takes it to open. */
int dh_get(layered_conn *conn, const char *name, struct dhandle **dhp);
/* dh_get for a caller that holds the schema lock.  Schema lock held. */
int dh_get_schema_held(layered_conn *conn, const char *name,
                       struct dhandle **dhp);
/* Pin every open handle into a malloc'ed array (checkpoint).  Any thread;
 * no lock (an RCU walk). */
int dh_collect(layered_conn *conn, struct dhandle ***arrp, size_t *np);
/* Drop a pin; the last one closes the file (a failed close panics).  Any
 * thread, any locks held. */
void dh_release(struct dhandle *dh);
/* dh_get, then take the shared lock; a handle found DEAD after locking is
 * released and looked up again.  Any thread, not holding the schema lock;
 * takes it to open. */
int dh_get_locked(layered_conn *conn, const char *name,
                  struct dhandle **dhp);
/* Undo dh_get_locked.  Any thread; the caller's shared lock and pin. */
void dh_unlock_release(struct dhandle *dh);
/* Mark a handle DEAD (and DROPPED if dropped), remove it from the table,
 * drop the table's pin.  Schema lock and the handle's exclusive lock
 * held. */
void dh_remove(struct dhandle *dh, bool dropped);
/* Drop and offload: take a constituent's handle exclusive with a try-lock
 * (EBUSY if anyone holds it), pinned; with `open` the handle is opened if
 * it is not, else a constituent that is not open yields NULL (nobody can
 * open it while the caller holds the schema lock).  Schema lock held. */
int dh_lock_exclusive(layered_conn *conn, const char *table, bool ingest,
                      bool open, struct dhandle **dhp);
/* Undo dh_lock_exclusive (NULL: nothing).  The caller's exclusive lock
 * and pin. */
void dh_unlock_exclusive(struct dhandle *dh);
/* Find an open handle without opening it: pinned, or NULL.  Any thread;
 * no lock (an RCU lookup). */
struct dhandle *dh_find(layered_conn *conn, const char *name);
/* Close idle handles (only the table's pin, no lock holder) when more than
 * the limit are open.  Any thread, not holding the schema lock; takes
 * it. */
void dh_sweep(layered_conn *conn);
/* Close every handle.  At close, once no other thread uses the
 * connection. */
int dh_close_all(layered_conn *conn);
/* A constituent's handle name, "file:TABLE.ingest|stable".  Any thread. */
void dh_name(char *buf, size_t len, const char *table, bool ingest);

/* ---- tables (table.c) and metadata (meta.c) ---- */
struct table {
    RB_ENTRY(table) link;
    uint64_t id;         /* incarnation: unique within the connection */
    int state;           /* LAYERED_TABLE_*; schema lock */
    bool dropping;       /* a drop is past its point of no return */
    uint64_t drained_lsn; /* highest ingest LSN its stable holds */
    /* The arbiter (lifecycle.c): the table's metadata-update queue lock,
     * taken after the schema lock, never before.  It protects the four
     * fields below; whoever takes it first decides between an offload and
     * an unarchive. */
    pthread_mutex_t arbiter;
    bool pending_archived; /* archived in the intended metadata */
    bool durable_archived; /* archived in the metadata on disk */
    bool shutting_down;    /* an offload has ruled: no unarchive now */
    bool unarchiving;      /* a restore from the shared store runs */
    uint64_t archived_at_ns;
    char name[];
};
RB_HEAD(__layered_table_tree, table);
/* The tree's order, by name.  Schema lock held (the tree's walks). */
int tbl_cmp(struct table *a, struct table *b);
RB_PROTOTYPE(__layered_table_tree, table, link, tbl_cmp)

/* The table of that name, or NULL.  Schema lock held. */
struct table *tbl_find(layered_conn *conn, const char *name);
/* Add a table (a new incarnation) to the tree.  Schema lock held. */
int tbl_insert(layered_conn *conn, const char *name, int state,
               struct table **tp);
/* Take a table out of the tree and free it.  Schema lock held. */
void tbl_free(layered_conn *conn, struct table *t);
/* Parse "layered:NAME" into NAME (validated).  Any thread; no lock. */
int tbl_uri_parse(const char *uri, const char **namep);
/* A valid table name.  Any thread; no lock. */
bool tbl_name_valid(const char *name, size_t len);
/* Create an empty constituent file, replacing an orphan.  Schema lock
 * held. */
int tbl_create_file(layered_conn *conn, int dirfd, const char *dir,
                    const char *name, const char *suffix);
/* Remove a table's two files and sync both directories.  Schema lock
 * held. */
int tbl_unlink_files(layered_conn *conn, const char *name);

/* Metadata (meta.c): a checksummed snapshot file replaced atomically plus
 * a checksummed journal appended (fdatasync) by each schema change and
 * folded into a new snapshot when it grows. */
enum meta_op {
    META_CREATE,
    META_DROPPING,
    META_DROP,
    META_STATE,
    META_JOURNAL /* a journal's first record: its generation (meta.c) */
};
/* Read the metadata into the table tree.  At open, before any other
 * thread can use the connection. */
int meta_load(layered_conn *conn);
/* Append one record durably.  Schema lock held (or at open). */
int meta_log(layered_conn *conn, enum meta_op op, const char *name,
             uint64_t arg);
/* Fold the tree into a new snapshot.  Schema lock held. */
int meta_snapshot(layered_conn *conn);
/* At close, once no other thread uses the connection. */
void meta_close(layered_conn *conn);

/* ---- lifecycle (lifecycle.c) ---- */
/* Start the maintenance thread.  At open, no lock. */
int lifecycle_start(layered_conn *conn);
/* Stop and join the maintenance thread.  At close, no lock (takes the
 * maintenance mutex, a leaf). */
void lifecycle_stop(layered_conn *conn);
/* Open-time recovery: finish offloads a crash interrupted; derive the
 * arbiter fields from the durable state.  At open, before any other
 * thread can use the connection. */
int lifecycle_recover(layered_conn *conn);
/* Drop's check: EBUSY while an offload or restore runs.  Schema lock
 * held; takes the table's arbiter. */
int lifecycle_drop_check(struct table *t);

/* ---- drain queue (drain.c) ---- */
/* The step-up (layered_step_up), also run by an open as leader (at_open:
 * errors are returned, never a panic).  No lock held; takes the checkpoint
 * and role locks. */
int drain_step_up(layered_conn *conn, layered_drain_stats *stats,
                  bool at_open);
struct drain_ctx;
struct drain_item {
    TAILQ_ENTRY(drain_item) link;
    /* An item holds no open handle while queued (10,000 queued tables must
     * not hold 20,000 descriptors): the table's name and incarnation
     * identify it, and a handle found under the name with another
     * incarnation means the table was dropped (and re-created). */
    uint64_t table_id;
    uint64_t ingest_bytes;  /* ingest size when queued: batch sizing */
    struct dhandle *locked; /* READ_LOCK: ingest, pinned and shared-locked
                               from before the copy to after the clear */
    fs_sync_token dst_sync, src_sync; /* for fs_mark_synced after syncfs */
    uint64_t rows, bytes_copied, max_lsn;
    int result;             /* 0, LAYERED_NOTFOUND (skipped) or error */
    char table[LAYERED_NAME_MAX + 1];
};
TAILQ_HEAD(drain_queue, drain_item);
/* Drop (queue-scan) and offload (every policy): claim the table's drain
 * item.  Returns EBUSY (drain lock not held) if the item is in flight,
 * else 0 with the drain lock held and *itemp the queued item or NULL.
 * Schema lock held; takes the drain lock. */
int drain_queue_claim(layered_conn *conn, const char *table,
                      uint64_t table_id, struct drain_item **itemp);
/* End a claim: remove the item once past the point of no return, keep it
 * on failure.  The claim's drain lock held; releases it. */
void drain_queue_release(layered_conn *conn, struct drain_item *item,
                         bool remove);

/* ---- sessions and cursors ---- */
struct layered_cursor {
    TAILQ_ENTRY(layered_cursor) link;
    layered_session *session;
    bool layered;             /* layered:NAME, else a file: constituent */
    struct dhandle *ingest;   /* locked shared + pinned (layered cursors) */
    struct dhandle *stable;   /* locked shared + pinned (layered cursors) */
    struct dhandle *file;     /* file: cursors */
    fs_pos ipos, spos;        /* constituent positions */
    bool positioned;
    void *key;
    size_t key_len, key_cap;
    void *val;
    size_t val_len, val_cap;
    char table[LAYERED_NAME_MAX + 1];
};

struct layered_session {
    TAILQ_ENTRY(layered_session) link;
    layered_conn *conn;
    TAILQ_HEAD(, layered_cursor) cursors;
    TAILQ_HEAD(, layered_batch) batches;
};

/* Close a cursor: release its handles and free it.  The session's
 * thread, registered with RCU, not holding the schema lock (a sweep takes
 * it). */
int cursor_close(layered_cursor *c);

/* ---- batches and the batch journal (batch.c) ---- */
/* Open the journal, replay what its files lack, cut a torn tail, retire
 * it.  At open, after the metadata is loaded, before any other thread can
 * use the connection. */
int batch_journal_open(layered_conn *conn);
/* At close, once no other thread uses the connection. */
void batch_journal_close(layered_conn *conn);
/* Make the journal's rows durable in their files and empty it durably;
 * call before rewriting or removing a constituent.  Any thread, holding
 * no file-store lock; takes the journal lock. */
int batch_retire(layered_conn *conn);
/* Free a batch (session close).  The session's thread. */
void batch_free(layered_batch *b);

/* ---- the connection ---- */
struct layered_conn {
    char *home;
    char *shared_dir;
    int home_fd, shared_fd; /* directories, for fsync after renames */
    int lock_fd;            /* home/LOCK, flock'ed: one opener */
    int drain_threads;
    int drain_policy;
    int sync;
    layered_panic_handler panic_handler;
    void *panic_arg;
    layered_message_handler message_handler;
    void *message_arg;
    const struct os_ops *os; /* every file-system and clock call */
    fs_env env;

    _Atomic uint64_t lsn;
    _Atomic uint64_t fs_opens; /* env.opens */
    _Atomic int role;

    /* panic.c */
    _Atomic int panicked;
    int panic_error;
    char panic_msg[512];
    pthread_mutex_t panic_lock;

    pthread_mutex_t ckpt_lock;   /* LOCK_CHECKPOINT */
    pthread_rwlock_t role_lock;  /* LOCK_ROLE */
    pthread_mutex_t schema_lock; /* LOCK_SCHEMA */
    pthread_mutex_t drain_lock;  /* LOCK_DRAIN */

    /* Under the schema lock. */
    struct __layered_table_tree tables;
    uint64_t ntables;
    uint64_t next_table_id;
    int meta_fd;            /* the journal, open for append */
    uint64_t meta_entries;  /* journal records since the snapshot */
    uint64_t meta_gen;      /* the snapshot's generation */

    /* dhandle.c: the handle table, lock-free lookups under RCU */
    struct cds_lfht *dhandles;
    _Atomic int64_t dh_open;
    int64_t dh_open_limit;

    /* drain.c: the queue lives as long as the connection */
    struct drain_queue drain_queue;    /* queued, not yet taken */
    struct drain_queue drain_inflight; /* taken by a worker */
    struct drain_ctx *drain_ctx;       /* the running step-up, or NULL */
    _Atomic bool draining; /* a step-up runs: read without any lock */
    _Atomic uint64_t drain_busy_drops;
    /* syncfs(2) reports writeback errors (Linux >= 5.8); else the drain
     * syncs each file of a batch. */
    bool syncfs_reports_errors;

    /* batch.c: the batch journal, "layered.batch" in the home.  Under
     * batch_lock. */
    pthread_mutex_t batch_lock; /* LOCK_BATCH */
    int batch_fd;
    uint64_t batch_end;       /* bytes of committed records */
    bool batch_tail_dirty; /* bytes past batch_end may be in the file, or
                              their removal not yet durable */

    pthread_mutex_t sessions_lock; /* leaf */
    TAILQ_HEAD(, layered_session) sessions;

    struct fp_table fps;

    /* statistics */
    /* The last checkpoint's stable bytes; database_size is derived from it
     * (ckpt_database_size), so the two are always one consistent pair. */
    _Atomic uint64_t stable_ckpt_bytes;
    _Atomic uint64_t st_creates, st_drops, st_drop_busy, st_checkpoints,
        st_compactions, st_step_ups, st_step_downs, st_tables_drained,
        st_tables_skipped, st_rows_drained, st_bytes_drained, st_inserts,
        st_removes, st_batches, st_batch_ops, st_archives, st_unarchives,
        st_restores, st_offloads,
        st_offloads_refused;

    /* lifecycle.c: the maintenance thread (auto-offload) */
    int offload_idle_ms;
    int maintenance_interval_ms;
    pthread_t maint_tid;
    bool maint_running;
    bool maint_stop;
    pthread_mutex_t maint_lock; /* leaf */
    pthread_cond_t maint_cond;
};

/* panic.c */
/* Stop the connection; returns LAYERED_PANIC.  Any thread, any locks held
 * (takes the panic mutex, a leaf; the handler runs with the caller's
 * locks). */
int layered_panic(layered_conn *conn, int error, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Any thread; no lock. */
static inline bool
conn_panicked(layered_conn *conn)
{
    return atomic_load_explicit(&conn->panicked, memory_order_acquire) != 0;
}

/* The entry check of a call on a connection: NULL is EINVAL, a panicked
 * connection LAYERED_PANIC; registers the thread with RCU. */
#define API_CONN(conn)                                                      \
    do {                                                                    \
        if ((conn) == NULL)                                                 \
            return EINVAL;                                                  \
        if (conn_panicked(conn))                                            \
            return LAYERED_PANIC;                                           \
        layered_rcu_enter();                                                \
    } while (0)
/* The entry check of a call on a session: sets conn.  Every public function
 * starts with one of the three. */
#define API_SESSION(session, conn)                                          \
    do {                                                                    \
        if ((session) == NULL)                                              \
            return EINVAL;                                                  \
        (conn) = (session)->conn;                                           \
        API_CONN(conn);                                                     \
    } while (0)
/* The entry check of a call on a cursor.  (The close functions take none
 * of these: a panicked connection must still close, so they check NULL and
 * enter RCU themselves.) */
#define API_CURSOR(c)                                                       \
    do {                                                                    \
        if ((c) == NULL)                                                    \
            return EINVAL;                                                  \
        API_CONN((c)->session->conn);                                       \
    } while (0)

/* checkpoint.c */
/* The sum of the stable files' sizes on disk.  Schema lock held (or at
 * open). */
uint64_t ckpt_stable_bytes(layered_conn *conn);
/* Publish a checkpoint's stable bytes.  Any thread; no lock. */
void ckpt_publish_size(layered_conn *conn, uint64_t stable);
/* database_size for those stable bytes.  Any thread; no lock. */
uint64_t ckpt_database_size(uint64_t stable);

#endif /* LAYERED_INTERNAL_H */
