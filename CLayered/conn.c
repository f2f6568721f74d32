/*
 * conn.c -- connections: open, close, configuration, statistics and the
 * role.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "layered_test.h"

void
layered_config_init(layered_config *cfg)
{
    if (cfg == NULL)
        return;
    memset(cfg, 0, sizeof(*cfg));
    cfg->role = LAYERED_ROLE_FOLLOWER;
    cfg->drain_threads = 2;
    cfg->drain_policy = LAYERED_DRAIN_SKIP_MISSING;
    cfg->sync = LAYERED_SYNC_WRITE;
    cfg->create = 1;
}

static int
env_failpoint(void *arg, const char *name)
{
    return fp_hit(&((layered_conn *)arg)->fps, name);
}

static void
env_message(void *arg, const char *msg)
{
    layered_msg((layered_conn *)arg, "%s", msg);
}

/*
 * parent_fsync --
 *     fsync the directory that holds path: a directory this library
 *     created is reachable after a power cut only once its parent's entry
 *     for it is durable.
 */
static int
parent_fsync(layered_conn *conn, const char *path)
{

    RET(fp_hit(&conn->fps, "open.parent_sync"));
    return os_parent_fsync(conn->os, path);
}

/*
 * open_dir --
 *     Open (creating if allowed) a directory and return its descriptor.
 *     A directory created here is made durable in its parent.
 */
static int
open_dir(layered_conn *conn, const char *path, bool create, int *fdp)
{
    struct stat st;
    int ret;

    if (conn->os->stat(path, &st) != 0) {
        if (errno != ENOENT || !create)
            return errno;
        if (conn->os->mkdir(path, 0755) != 0) {
            if (errno != EEXIST)
                return errno;
        } else if ((ret = parent_fsync(conn, path)) != 0) {
            layered_msg(conn, "%s: syncing the directory that holds it: %s",
                        path, layered_strerror(ret));
            return ret;
        }
    } else if (!S_ISDIR(st.st_mode))
        return ENOTDIR;
    if ((*fdp = conn->os->open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC,
                               0)) < 0)
        return errno;
    return 0;
}

/*
 * syncfs_reports_errors --
 *     syncfs(2) returns writeback errors only from Linux 5.8 on; before,
 *     it always succeeds, and the drain must sync each file instead.
 */
static bool
syncfs_reports_errors(void)
{
    struct utsname u;
    int major = 0, minor = 0;

    if (getenv("LAYERED_NO_SYNCFS") != NULL) /* tests: the per-file path */
        return false;
    if (uname(&u) != 0 || sscanf(u.release, "%d.%d", &major, &minor) != 2)
        return false;
    return major > 5 || (major == 5 && minor >= 8);
}

static void
conn_free(layered_conn *conn)
{
    if (conn->dhandles != NULL) {
        /* A failed open may have opened handles (the batch journal's
         * replay); at close they are closed already. */
        (void)dh_close_all(conn);
        rcu_barrier();
        dh_table_destroy(conn);
    }
    while (!RB_EMPTY(&conn->tables))
        tbl_free(conn, RB_MIN(__layered_table_tree, &conn->tables));
    meta_close(conn);
    batch_journal_close(conn);
    if (conn->lock_fd >= 0)
        (void)conn->os->close(conn->lock_fd); /* releases the flock */
    if (conn->home_fd >= 0)
        (void)conn->os->close(conn->home_fd);
    if (conn->shared_fd >= 0)
        (void)conn->os->close(conn->shared_fd);
    fp_destroy(&conn->fps);
    (void)pthread_mutex_destroy(&conn->panic_lock);
    (void)pthread_mutex_destroy(&conn->ckpt_lock);
    (void)pthread_rwlock_destroy(&conn->role_lock);
    (void)pthread_mutex_destroy(&conn->schema_lock);
    (void)pthread_mutex_destroy(&conn->drain_lock);
    (void)pthread_mutex_destroy(&conn->sessions_lock);
    (void)pthread_mutex_destroy(&conn->batch_lock);
    (void)pthread_mutex_destroy(&conn->maint_lock);
    (void)pthread_cond_destroy(&conn->maint_cond);
    free(conn->home);
    free(conn->shared_dir);
    free(conn);
}

int
layered_open_os(const char *home, const layered_config *cfg,
                const struct os_ops *os, layered_conn **connp)
{
    layered_config defaults;
    layered_conn *conn = NULL;
    pthread_rwlockattr_t rwa;
    struct rlimit rl;
    const char *envfp;
    int ret;

    if (connp == NULL)
        return EINVAL;
    *connp = NULL;
    if (home == NULL || *home == '\0')
        return EINVAL;
    if (cfg == NULL) {
        layered_config_init(&defaults);
        cfg = &defaults;
    }
    if ((cfg->role != LAYERED_ROLE_FOLLOWER &&
         cfg->role != LAYERED_ROLE_LEADER) ||
        cfg->drain_threads < 1 || cfg->drain_threads > 64 ||
        cfg->drain_policy < LAYERED_DRAIN_SKIP_MISSING ||
        cfg->drain_policy > LAYERED_DRAIN_UNPROTECTED ||
        cfg->sync < LAYERED_SYNC_NONE || cfg->sync > LAYERED_SYNC_FSYNC ||
        (cfg->shared_dir != NULL && *cfg->shared_dir == '\0') ||
        cfg->offload_idle_ms < 0 || cfg->maintenance_interval_ms < 0)
        return EINVAL;
    layered_rcu_enter();

    if ((conn = calloc(1, sizeof(*conn))) == NULL)
        return ENOMEM;
    conn->os = os != NULL ? os : &os_default;
    conn->home_fd = conn->shared_fd = conn->lock_fd = conn->meta_fd = -1;
    conn->batch_fd = -1;
    (void)pthread_mutex_init(&conn->panic_lock, NULL);
    (void)pthread_mutex_init(&conn->ckpt_lock, NULL);
    (void)pthread_mutex_init(&conn->schema_lock, NULL);
    (void)pthread_mutex_init(&conn->drain_lock, NULL);
    (void)pthread_mutex_init(&conn->sessions_lock, NULL);
    (void)pthread_mutex_init(&conn->batch_lock, NULL);
    (void)pthread_mutex_init(&conn->maint_lock, NULL);
    {
        pthread_condattr_t ca;
        (void)pthread_condattr_init(&ca);
        (void)pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        (void)pthread_cond_init(&conn->maint_cond, &ca);
        (void)pthread_condattr_destroy(&ca);
    }
    /* Step-up must not starve behind a stream of writers. */
    (void)pthread_rwlockattr_init(&rwa);
    (void)pthread_rwlockattr_setkind_np(
        &rwa, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    (void)pthread_rwlock_init(&conn->role_lock, &rwa);
    (void)pthread_rwlockattr_destroy(&rwa);
    RB_INIT(&conn->tables);
    TAILQ_INIT(&conn->drain_queue);
    TAILQ_INIT(&conn->drain_inflight);
    TAILQ_INIT(&conn->sessions);
    if ((ret = fp_init(&conn->fps)) != 0) {
        free(conn);
        return ret;
    }
    conn->drain_threads = cfg->drain_threads;
    conn->offload_idle_ms = cfg->offload_idle_ms;
    conn->maintenance_interval_ms = cfg->maintenance_interval_ms > 0
                                        ? cfg->maintenance_interval_ms
                                        : 1000;
    conn->drain_policy = cfg->drain_policy;
    conn->sync = cfg->sync;
    conn->panic_handler = cfg->panic_handler;
    conn->panic_arg = cfg->panic_arg;
    conn->message_handler = cfg->message_handler;
    conn->message_arg = cfg->message_arg;
    /* A leader open starts as a follower and steps up below, before any
     * other thread can use the connection. */
    atomic_init(&conn->role, LAYERED_ROLE_FOLLOWER);
    conn->env.lsn = &conn->lsn;
    conn->env.opens = &conn->fs_opens;
    conn->env.sync = cfg->sync;
    conn->env.message = env_message;
    conn->env.message_arg = conn;
    conn->env.failpoint = env_failpoint;
    conn->env.failpoint_arg = conn;
    conn->env.os = conn->os;
    /* Each open handle holds a descriptor: keep well inside the limit. */
    conn->dh_open_limit = 512;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        (int64_t)rl.rlim_cur / 2 < conn->dh_open_limit)
        conn->dh_open_limit = (int64_t)rl.rlim_cur / 2;

    ERR(fp_set_list(&conn->fps, cfg->failpoints));
    if ((envfp = getenv("LAYERED_FAILPOINTS")) != NULL)
        ERR(fp_set_list(&conn->fps, envfp));

    if ((conn->home = strdup(home)) == NULL)
        ERR(ENOMEM);
    ERR(open_dir(conn, home, cfg->create != 0, &conn->home_fd));
    if ((conn->lock_fd = conn->os->openat(conn->home_fd, "LOCK",
                                          O_RDWR | O_CREAT | O_CLOEXEC,
                                          0644)) < 0)
        ERR(errno);
    if (conn->os->flock(conn->lock_fd, LOCK_EX | LOCK_NB) != 0)
        ERR_MSG(conn, errno == EWOULDBLOCK ? EBUSY : errno,
                "%s: the database is open elsewhere", home);
    if (cfg->shared_dir != NULL)
        conn->shared_dir = strdup(cfg->shared_dir);
    else if (asprintf(&conn->shared_dir, "%s/shared", home) < 0)
        conn->shared_dir = NULL;
    if (conn->shared_dir == NULL)
        ERR(ENOMEM);
    ERR(open_dir(conn, conn->shared_dir, cfg->create != 0, &conn->shared_fd));
    conn->syncfs_reports_errors = syncfs_reports_errors();
    ERR(dh_table_create(conn));
    ERR(meta_load(conn));
    ERR(lifecycle_recover(conn));
    /* After recovery: the tables are in their final states, so a batch
     * record replays only into tables that still take writes. */
    ERR(batch_journal_open(conn));
    /* A node that stopped as a follower, or during a step-up, may have left
     * rows in its ingests (replayed batches included): a leader reads the
     * ingest over the stable, so a stale ingest value would hide the
     * leader's writes.  Drain them now, as a step-up does (a drain
     * repeated after a crash copies nothing twice). */
    if (cfg->role == LAYERED_ROLE_LEADER)
        ERR(drain_step_up(conn, NULL, true));
    /* Before this connection's first checkpoint: the files as on disk
     * (after a leader open's drain). */
    ckpt_publish_size(conn, ckpt_stable_bytes(conn));
    ERR(lifecycle_start(conn));
    *connp = conn;
    return 0;

err:
    /* Handles the recovery or a leader open's drain opened. */
    if (conn->dhandles != NULL)
        (void)dh_close_all(conn);
    conn_free(conn);
    return ret;
}

int
layered_open(const char *home, const layered_config *cfg,
             layered_conn **connp)
{
    return layered_open_os(home, cfg, NULL, connp);
}

int
layered_close(layered_conn *conn)
{
    layered_session *s;
    int ret = 0, tret;

    if (conn == NULL)
        return EINVAL;
    layered_rcu_enter();
    fp_release_all(&conn->fps);
    lifecycle_stop(conn);
    while ((s = TAILQ_FIRST(&conn->sessions)) != NULL)
        (void)layered_session_close(s);
    /* The rows of committed batches into their files, durably, and the
     * journal emptied: the next open has nothing to replay.  After a panic
     * the journal stays for that open. */
    if (!conn_panicked(conn))
        TRET(batch_retire(conn));
    TRET(dh_close_all(conn));
    if (!conn_panicked(conn)) {
        conn_lock(&conn->schema_lock, LOCK_SCHEMA);
        TRET(meta_snapshot(conn));
        conn_unlock(&conn->schema_lock, LOCK_SCHEMA);
    } else
        ret = LAYERED_PANIC;
    conn_free(conn);
    return ret;
}

int
layered_stats(layered_conn *conn, layered_conn_stats *st)
{
    if (conn == NULL || st == NULL)
        return EINVAL;
    memset(st, 0, sizeof(*st));
    st->stable_checkpoint_bytes = atomic_load(&conn->stable_ckpt_bytes);
    st->database_size = ckpt_database_size(st->stable_checkpoint_bytes);
    st->role = atomic_load(&conn->role);
    st->panicked = conn_panicked(conn);
    st->lsn = atomic_load(&conn->lsn);
    st->creates = atomic_load(&conn->st_creates);
    st->drops = atomic_load(&conn->st_drops);
    st->drop_busy = atomic_load(&conn->st_drop_busy);
    st->checkpoints = atomic_load(&conn->st_checkpoints);
    st->compactions = atomic_load(&conn->st_compactions);
    st->step_ups = atomic_load(&conn->st_step_ups);
    st->step_downs = atomic_load(&conn->st_step_downs);
    st->tables_drained = atomic_load(&conn->st_tables_drained);
    st->tables_skipped = atomic_load(&conn->st_tables_skipped);
    st->rows_drained = atomic_load(&conn->st_rows_drained);
    st->bytes_drained = atomic_load(&conn->st_bytes_drained);
    st->inserts = atomic_load(&conn->st_inserts);
    st->removes = atomic_load(&conn->st_removes);
    st->batches = atomic_load(&conn->st_batches);
    st->batch_ops = atomic_load(&conn->st_batch_ops);
    st->archives = atomic_load(&conn->st_archives);
    st->unarchives = atomic_load(&conn->st_unarchives);
    st->restores = atomic_load(&conn->st_restores);
    st->offloads = atomic_load(&conn->st_offloads);
    st->offloads_refused = atomic_load(&conn->st_offloads_refused);
    conn_lock(&conn->schema_lock, LOCK_SCHEMA);
    st->tables = conn->ntables;
    conn_unlock(&conn->schema_lock, LOCK_SCHEMA);
    return 0;
}

/*
 * layered_step_down --
 *     Leader to follower.  Takes the checkpoint lock (so it never runs
 *     inside a step-up) and the role lock exclusive (waits for writes in
 *     progress, which chose their constituent under the old role).
 */
int
layered_step_down(layered_conn *conn)
{
    API_CONN(conn);
    conn_lock(&conn->ckpt_lock, LOCK_CHECKPOINT);
    lock_order_acquire(LOCK_ROLE);
    (void)pthread_rwlock_wrlock(&conn->role_lock);
    if (atomic_load(&conn->role) == LAYERED_ROLE_LEADER) {
        atomic_store(&conn->role, LAYERED_ROLE_FOLLOWER);
        (void)atomic_fetch_add(&conn->st_step_downs, 1);
    }
    (void)pthread_rwlock_unlock(&conn->role_lock);
    lock_order_release(LOCK_ROLE);
    conn_unlock(&conn->ckpt_lock, LOCK_CHECKPOINT);
    return 0;
}
