/*
 * lifecycle.c -- archive, unarchive, offload, and the auto-offload
 * maintenance thread.
 *
 * THE RACE: the auto-offload task decides from a snapshot that a table is
 * archived and idle, works on other tables for a while, then offloads it.
 * Meanwhile a user may unarchive it.  If the offload set the irreversible
 * stopping state first and checked afterwards, a table unarchived in
 * between would be left stopping and unusable.
 *
 * THE ARBITER: each table's `arbiter` mutex guards its metadata-update
 * state: pending_archived (what the latest request wants),
 * durable_archived (what the metadata on disk says), shutting_down (an
 * offload has ruled) and unarchiving (a restore runs).  In ONE hold:
 *   offload    checks pending_archived && durable_archived and sets
 *              shutting_down; otherwise LAYERED_NOT_ARCHIVED, which the
 *              maintenance task counts and ignores;
 *   unarchive  fails with EAGAIN if shutting_down (retryable: a retry
 *              after the offload takes the restore path), else clears
 *              pending_archived, so an offload arriving later refuses.
 * Whoever takes the lock first wins.  Only after the ruling does the
 * offload enter the stopping state, and from there it always reaches
 * "offloaded": the stopping state is durable before the local files go,
 * and opening the database finishes an offload a crash interrupted.  An
 * offload that cannot proceed after winning (a cursor is open, the ingest
 * holds rows) undoes shutting_down before anything irreversible.
 *
 * Locks: schema lock, then arbiter (internal.h has the order).  The
 * schema lock keeps the table from being freed while the arbiter is taken;
 * nothing blocks on I/O while holding the arbiter alone.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

static struct table *
live_table(layered_conn *conn, const char *name)
{
    struct table *t = tbl_find(conn, name);

    return t == NULL || t->dropping ? NULL : t;
}

int
lifecycle_drop_check(struct table *t)
{
    bool busy;

    (void)pthread_mutex_lock(&t->arbiter);
    busy = t->shutting_down || t->unarchiving;
    (void)pthread_mutex_unlock(&t->arbiter);
    return busy ? EBUSY : 0;
}

/*
 * offload_table --
 *     The offload of one table, explicit or automatic.
 */
static int
offload_table(layered_conn *conn, const char *name, bool explicit_call)
{
    struct dhandle *ingest = NULL, *stable = NULL;
    struct drain_item *item = NULL;
    struct table *t;
    char path[LAYERED_NAME_MAX + 16];
    bool already = false, schema = false, claimed = false, held = false;
    int ret = 0, tret;

    RET(fp_hit(&conn->fps, "offload.before_arbiter"));

    /* The ruling: one hold of the arbiter. */
    conn_lock(&conn->schema_lock, LOCK_SCHEMA);
    if ((t = live_table(conn, name)) == NULL)
        ret = ENOENT;
    else {
        (void)pthread_mutex_lock(&t->arbiter);
        if (t->shutting_down || t->unarchiving)
            ret = LAYERED_IN_PROGRESS;
        else if (t->state == LAYERED_TABLE_OFFLOADED)
            already = true;
        else if (!t->pending_archived || !t->durable_archived)
            ret = LAYERED_NOT_ARCHIVED;
        else
            t->shutting_down = true;
        (void)pthread_mutex_unlock(&t->arbiter);
    }
    conn_unlock(&conn->schema_lock, LOCK_SCHEMA);
    if (ret != 0 || already)
        return ret;
    /* shutting_down keeps drops away, so t stays valid from here; every
     * exit from here passes err, which ends the ruling. */

    ERR(fp_hit(&conn->fps, "offload.after_arbiter"));

    /* Everything that can fail comes before the stopping record: the
     * drain claim (a running step-up must never find the table gone: the
     * offload waits for an in-flight drain item with EBUSY and supersedes
     * a queued one, whatever the policy -- drain.c), both exclusive locks,
     * the emptiness check and the stable's sync (its handle closes below,
     * and a close must have nothing left to make durable). */
    conn_lock(&conn->schema_lock, LOCK_SCHEMA);
    schema = true;
    ERR(drain_queue_claim(conn, name, t->id, &item));
    claimed = true;
    lock_order_acquire(LOCK_DHANDLE);
    held = true;
    ERR(dh_lock_exclusive(conn, name, true, true, &ingest));
    ERR(dh_lock_exclusive(conn, name, false, false, &stable));
    if (!fs_empty(ingest->fs)) {
        /* The maintenance task retries every pass: only an explicit call
         * explains its EBUSY. */
        if (explicit_call)
            layered_msg(conn, "offload layered:%s: the ingest holds rows "
                        "not yet drained", name);
        ERR(EBUSY);
    }
    if (stable != NULL)
        ERR(fs_sync(stable->fs));
    /* The ingest goes: no batch journal record may still name it
     * (batch.c); the exclusive locks keep new batches off the table. */
    ERR(batch_retire(conn));
    ERR(meta_log(conn, META_STATE, name, LAYERED_TABLE_STOPPING));

    /* Irreversible from here: every path ends offloaded.  The drain item
     * of the table, if one is queued, has nothing to drain. */
    drain_queue_release(conn, item, true);
    claimed = false;
    t->state = LAYERED_TABLE_STOPPING;
    (void)fp_hit(&conn->fps, "offload.after_stopping");
    dh_remove(ingest, false);
    if (stable != NULL)
        dh_remove(stable, false);
    (void)snprintf(path, sizeof(path), "%s.ingest", name);
    if (conn->os->unlinkat(conn->home_fd, path, 0) != 0 && errno != ENOENT)
        layered_msg(conn, "offload layered:%s: removing the ingest: %s",
                    name, layered_strerror(errno));
    (void)os_dir_fsync(conn->os, conn->home_fd);
    (void)fp_hit(&conn->fps, "offload.after_remove");
    /* One state change under the schema lock: a lookup finds the table
     * stopping or offloaded, never neither.  A failed record leaves the
     * durable state "stopping", which the next open completes; the table
     * is offloaded either way. */
    t->state = LAYERED_TABLE_OFFLOADED;
    if ((tret = meta_log(conn, META_STATE, name, LAYERED_TABLE_OFFLOADED)) !=
        0)
        layered_msg(conn, "offload layered:%s: recording it: %s (the next "
                    "open completes it)", name, layered_strerror(tret));
    (void)atomic_fetch_add(&conn->st_offloads, 1);

err:
    dh_unlock_exclusive(ingest);
    dh_unlock_exclusive(stable);
    if (held)
        lock_order_release(LOCK_DHANDLE);
    if (claimed)
        drain_queue_release(conn, item, false);
    /* The ruling is over: the table is offloaded, or -- a failure before
     * the stopping record -- given back as it was. */
    (void)pthread_mutex_lock(&t->arbiter);
    t->shutting_down = false;
    (void)pthread_mutex_unlock(&t->arbiter);
    if (schema)
        conn_unlock(&conn->schema_lock, LOCK_SCHEMA);
    return ret;
}

int
layered_offload(layered_session *session, const char *uri)
{
    layered_conn *conn;
    const char *name;

    API_SESSION(session, conn);
    RET(tbl_uri_parse(uri, &name));
    return offload_table(conn, name, true);
}

int
layered_archive(layered_session *session, const char *uri)
{
    layered_conn *conn;
    struct table *t;
    const char *name;
    bool persist = false;
    int ret = 0;

    API_SESSION(session, conn);
    RET(tbl_uri_parse(uri, &name));
    conn_lock(&conn->schema_lock, LOCK_SCHEMA);
    if ((t = live_table(conn, name)) == NULL) {
        ret = ENOENT;
        goto err;
    }
    (void)pthread_mutex_lock(&t->arbiter);
    if (t->shutting_down || t->unarchiving)
        ret = LAYERED_IN_PROGRESS;
    else if (t->state == LAYERED_TABLE_ACTIVE) {
        t->pending_archived = true;
        persist = true;
    }
    (void)pthread_mutex_unlock(&t->arbiter);
    if (!persist)
        goto err;
    /* Durable before success; the schema lock is held throughout, so no
     * offload can rule between the pending and the durable mark. */
    if ((ret = meta_log(conn, META_STATE, name, LAYERED_TABLE_ARCHIVED)) !=
        0) {
        (void)pthread_mutex_lock(&t->arbiter);
        t->pending_archived = false;
        (void)pthread_mutex_unlock(&t->arbiter);
        goto err;
    }
    t->state = LAYERED_TABLE_ARCHIVED;
    (void)pthread_mutex_lock(&t->arbiter);
    t->durable_archived = true;
    t->archived_at_ns = os_now_ns(conn->os);
    (void)pthread_mutex_unlock(&t->arbiter);
    (void)atomic_fetch_add(&conn->st_archives, 1);
err:
    conn_unlock(&conn->schema_lock, LOCK_SCHEMA);
    return ret;
}

/*
 * restore --
 *     Bring an offloaded table back: a new empty ingest beside the stable
 *     constituent kept in the shared store.  Schema lock held, unarchiving
 *     set.
 */
static int
restore(layered_conn *conn, struct table *t)
{
    struct stat st;
    char path[LAYERED_NAME_MAX + 16];
    int ret;

    (void)snprintf(path, sizeof(path), "%s.stable", t->name);
    if (conn->os->fstatat(conn->shared_fd, path, &st, 0) != 0) {
        ret = errno;
        layered_msg(conn, "unarchive layered:%s: its stable constituent in "
                    "%s: %s", t->name, conn->shared_dir,
                    layered_strerror(ret));
        return ret;
    }
    if ((ret = tbl_create_file(conn, conn->home_fd, conn->home, t->name,
                               "ingest")) != 0 ||
        (ret = os_dir_fsync(conn->os, conn->home_fd)) != 0 ||
        (ret = meta_log(conn, META_STATE, t->name, LAYERED_TABLE_ACTIVE)) !=
            0)
        return ret;
    t->state = LAYERED_TABLE_ACTIVE;
    (void)atomic_fetch_add(&conn->st_restores, 1);
    return 0;
}

int
layered_unarchive(layered_session *session, const char *uri)
{
    layered_conn *conn;
    struct table *t;
    const char *name;
    bool restoring = false, persist = false;
    int ret = 0;

    API_SESSION(session, conn);
    RET(tbl_uri_parse(uri, &name));
    RET(fp_hit(&conn->fps, "unarchive.before_lock"));
    conn_lock(&conn->schema_lock, LOCK_SCHEMA);
    if ((t = live_table(conn, name)) == NULL) {
        ret = ENOENT;
        goto err;
    }
    (void)pthread_mutex_lock(&t->arbiter);
    if (t->shutting_down)
        ret = EAGAIN; /* the offload ruled first: retry after it */
    else if (t->unarchiving)
        ret = LAYERED_IN_PROGRESS;
    else if (t->state == LAYERED_TABLE_OFFLOADED) {
        t->unarchiving = true;
        restoring = true;
    } else if (t->pending_archived || t->state == LAYERED_TABLE_ARCHIVED) {
        /* From here an offload that has not ruled yet refuses. */
        t->pending_archived = false;
        persist = true;
    }
    (void)pthread_mutex_unlock(&t->arbiter);
    if (ret != 0 || (!restoring && !persist))
        goto err;

    if (restoring)
        ret = restore(conn, t);
    else if ((ret = meta_log(conn, META_STATE, name, LAYERED_TABLE_ACTIVE)) ==
             0)
        t->state = LAYERED_TABLE_ACTIVE;
    (void)pthread_mutex_lock(&t->arbiter);
    if (ret == 0)
        t->pending_archived = t->durable_archived = false;
    else if (persist)
        t->pending_archived = t->durable_archived; /* nothing changed */
    t->unarchiving = false;
    (void)pthread_mutex_unlock(&t->arbiter);
    if (ret == 0)
        (void)atomic_fetch_add(&conn->st_unarchives, 1);
err:
    conn_unlock(&conn->schema_lock, LOCK_SCHEMA);
    return ret;
}

/*
 * lifecycle_recover --
 *     At open: derive the arbiter fields from the durable state and finish
 *     offloads a crash interrupted (stopping is durable only once the
 *     arbiter ruled and the ingest was found empty).
 */
int
lifecycle_recover(layered_conn *conn)
{
    struct table *t;
    char path[LAYERED_NAME_MAX + 16];

    RB_FOREACH(t, __layered_table_tree, &conn->tables)
    {
        if (t->state == LAYERED_TABLE_STOPPING) {
            (void)snprintf(path, sizeof(path), "%s.ingest", t->name);
            if (conn->os->unlinkat(conn->home_fd, path, 0) != 0 &&
                errno != ENOENT)
                return errno;
            RET(os_dir_fsync(conn->os, conn->home_fd));
            RET(meta_log(conn, META_STATE, t->name, LAYERED_TABLE_OFFLOADED));
            t->state = LAYERED_TABLE_OFFLOADED;
            layered_msg(conn, "finished the interrupted offload of "
                        "layered:%s", t->name);
        }
        t->pending_archived = t->durable_archived =
            t->state == LAYERED_TABLE_ARCHIVED ||
            t->state == LAYERED_TABLE_OFFLOADED;
        t->archived_at_ns = os_now_ns(conn->os);
    }
    return 0;
}

/*
 * auto_offload_pass --
 *     One look of the maintenance task: choose from a snapshot, then act.
 *     The snapshot may be stale by the time each offload runs; the arbiter
 *     makes that harmless.
 */
static void
auto_offload_pass(layered_conn *conn)
{
    struct table *t;
    char (*names)[LAYERED_NAME_MAX + 1] = NULL;
    uint64_t now = os_now_ns(conn->os),
             idle = (uint64_t)conn->offload_idle_ms * 1000000u;
    size_t n = 0, cap = 0, i;
    int ret;

    conn_lock(&conn->schema_lock, LOCK_SCHEMA);
    RB_FOREACH(t, __layered_table_tree, &conn->tables)
    {
        bool candidate;
        (void)pthread_mutex_lock(&t->arbiter);
        candidate = !t->dropping && t->state == LAYERED_TABLE_ARCHIVED &&
                    !t->shutting_down && now - t->archived_at_ns >= idle;
        (void)pthread_mutex_unlock(&t->arbiter);
        if (!candidate)
            continue;
        if (n == cap) {
            void *nn = realloc(names, (cap = cap ? cap * 2 : 16) *
                                          sizeof(*names));
            if (nn == NULL)
                break;
            names = nn;
        }
        (void)snprintf(names[n++], sizeof(names[0]), "%s", t->name);
    }
    conn_unlock(&conn->schema_lock, LOCK_SCHEMA);
    if (n > 0)
        (void)fp_hit(&conn->fps, "offload.decided");
    for (i = 0; i < n && !conn_panicked(conn); i++) {
        ret = offload_table(conn, names[i], false);
        if (ret == LAYERED_NOT_ARCHIVED) {
            (void)atomic_fetch_add(&conn->st_offloads_refused, 1);
            layered_msg(conn, "auto-offload of layered:%s refused: "
                        "unarchived meanwhile", names[i]);
        } else if (ret != 0 && ret != EBUSY && ret != ENOENT &&
                   ret != LAYERED_IN_PROGRESS)
            layered_msg(conn, "auto-offload of layered:%s: %s", names[i],
                        layered_strerror(ret));
    }
    free(names);
}

static void *
maintenance(void *arg)
{
    layered_conn *conn = arg;
    struct timespec deadline;

    layered_rcu_enter();
    (void)pthread_mutex_lock(&conn->maint_lock);
    while (!conn->maint_stop) {
        (void)conn->os->clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_sec += conn->maintenance_interval_ms / 1000;
        deadline.tv_nsec += (long)(conn->maintenance_interval_ms % 1000) *
                            1000000L;
        if (deadline.tv_nsec >= 1000000000L) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000L;
        }
        while (!conn->maint_stop &&
               pthread_cond_timedwait(&conn->maint_cond, &conn->maint_lock,
                                      &deadline) == 0)
            ;
        if (conn->maint_stop)
            break;
        (void)pthread_mutex_unlock(&conn->maint_lock);
        if (!conn_panicked(conn))
            auto_offload_pass(conn);
        (void)pthread_mutex_lock(&conn->maint_lock);
    }
    (void)pthread_mutex_unlock(&conn->maint_lock);
    return NULL;
}

int
lifecycle_start(layered_conn *conn)
{
    int ret;

    if (conn->offload_idle_ms <= 0)
        return 0;
    if ((ret = pthread_create(&conn->maint_tid, NULL, maintenance, conn)) !=
        0)
        return ret;
    conn->maint_running = true;
    return 0;
}

void
lifecycle_stop(layered_conn *conn)
{
    if (conn->maint_running) {
        (void)pthread_mutex_lock(&conn->maint_lock);
        conn->maint_stop = true;
        (void)pthread_cond_broadcast(&conn->maint_cond);
        (void)pthread_mutex_unlock(&conn->maint_lock);
        (void)pthread_join(conn->maint_tid, NULL);
        conn->maint_running = false;
    }
}
