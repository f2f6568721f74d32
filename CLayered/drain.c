/*
 * drain.c -- step-up: drain every ingest constituent into its stable
 * constituent, and the drain-vs-drop race.
 *
 * PROTOCOL
 *   1. Step-up takes the checkpoint lock (for its whole duration) and the
 *      role lock exclusive (writes wait; reads continue), and sets the
 *      leader flag before draining.
 *   2. Under the schema lock and the drain lock it queues one item per
 *      table whose ingest holds entries (rows or tombstones): an open
 *      handle's index says so; a closed ingest holds entries only if it is
 *      larger than its header, because closing a handle with no entries
 *      cuts its file back to the header (fs_close).  An item names the
 *      table and its incarnation; it holds no handle.
 *   3. drain_threads - 1 workers plus the calling thread take batches of
 *      items: under the drain lock items move from the queue to the
 *      in-flight list; then, with no drain-wide lock held, for each item
 *      the worker opens the ingest and stable constituents by name (shared
 *      locks: the "cursor opens"), copies (fs_copy) and releases them; one
 *      sync makes the batch's copies durable; then for each item it
 *      reopens the ingest and clears it; one more sync makes the clears
 *      durable (see DRAIN_BATCH_MAX below).
 *   4. The first error stops every worker; step-up then panics the
 *      connection.  Otherwise the drained LSNs go into one metadata
 *      snapshot.
 *
 * THE RACE: between a worker dequeuing an item and opening the ingest
 * (and again between the copy and the clear), a drop(force) without
 * checkpoint wait can remove the table: the open finds no table -> ENOENT.
 * The policy decides what that means:
 *   SKIP_MISSING  ENOENT at either open or at the clear becomes
 *                 LAYERED_NOTFOUND: "already gone", the table is skipped.
 *                 A drop that arrives while the worker holds the
 *                 constituents open gets EBUSY (try-lock), so the copy is
 *                 never cut short: a caller retries after step-up.
 *   READ_LOCK     the worker pins the ingest handle, takes its shared
 *                 lock (failpoint drain.before_read_lock in between) and
 *                 holds it across copy and clear; right after acquiring it
 *                 it checks DEAD: a drop that won is seen and the table
 *                 skipped, a drop that comes later gets EBUSY.  The
 *                 worker's own opens re-take the shared lock, safe because
 *                 exclusive acquisition never queues (rwlock.c).
 *   QUEUE_SCAN    drop claims the table's queue entry (drain_queue_claim:
 *                 it takes the drain lock and keeps it): an in-flight item
 *                 makes the drop return EBUSY at once; a queued one stays
 *                 queued while the drop takes its exclusive locks and
 *                 writes its durable "dropping" record, and is removed
 *                 only then (drain_queue_release), when the drop can no
 *                 longer fail.  A drop that returns EBUSY or a metadata
 *                 error has therefore left the item in the queue, and the
 *                 drain copies the table as if no drop had been tried.
 *                 Items move to the in-flight list under the same lock, so
 *                 there is no moment when an item is neither queued nor in
 *                 flight, and no worker can take the item while a drop
 *                 holds its claim.
 *   UNPROTECTED   ENOENT is an error: step-up fails and panics.
 * OFFLOAD is not a drop: it is a legitimate lifecycle step that must never
 * fail a step-up, whatever the policy.  An offload only ever takes a table
 * whose ingest holds no entries, and it claims the table's queue entry as a
 * queue-scan drop does, under every policy (lifecycle.c): EBUSY while a
 * worker has the item in flight, otherwise the item is removed once the
 * offload's "stopping" record is durable (an empty ingest has nothing to
 * drain).  No worker can then open a table an offload took.
 * A table that was dropped and its name re-created meanwhile is another
 * incarnation: every open of an item's constituent compares the handle's
 * table_id with the item's (drain_open, drain_read_lock), so a drain
 * never copies into or clears a table it did not queue.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

struct drain_ctx {
    layered_conn *conn;
    pthread_mutex_t lock; /* leaf: error and stats */
    int error;
    char error_table[LAYERED_NAME_MAX + 1];
    _Atomic bool stop;
    int batch_max; /* tables per batch, within the descriptor budget */
    layered_drain_stats stats;
};

/*
 * A worker drains in batches of up to DRAIN_BATCH_MAX tables or
 * DRAIN_BATCH_BYTES of ingest, whichever comes first (the first item is
 * always taken; items leave the queue one by one, as their copy starts).
 * It copies every table of the batch without syncing,
 * makes all the stable copies durable with one sync, clears every ingest
 * without syncing, and makes the clears durable with one more sync.  A
 * clear therefore never becomes durable before its copy, and the step-up
 * returns (the node serves as leader) only after both syncs of every
 * batch.  Many small tables pay two syncs per batch instead of two per
 * table; a large table is a batch of its own.  The per-table protocol and
 * the policies are unchanged: every item of a batch is in flight, and
 * under READ_LOCK its read lock is held from before the copy until after
 * its clear.
 */
#define DRAIN_BATCH_MAX 1024
/* An item's result when the batch stopped before finishing it: not an
 * error of its own (the item that failed reports the error). */
#define DRAIN_NOT_DONE (-1)
#define DRAIN_BATCH_BYTES (64u << 20)

static int
copy_hook(void *arg)
{
    return fp_hit(&((layered_conn *)arg)->fps, "drain.copy");
}

/*
 * drain_open --
 *     Open a constituent of the item's table for the drain (shared lock +
 *     pin).  A handle of another incarnation means the table was dropped
 *     (and maybe re-created) since it was queued: ENOENT, as if missing.
 *     Out of descriptors, idle handles are closed and the open retried.
 */
static int
drain_open(layered_conn *conn, struct drain_item *item, bool ingest,
           struct dhandle **dhp)
{
    char name[LAYERED_NAME_MAX + 16];
    int ret;

    *dhp = NULL;
    dh_name(name, sizeof(name), item->table, ingest);
    if ((ret = dh_get_locked(conn, name, dhp)) == EMFILE || ret == ENFILE) {
        dh_sweep(conn);
        ret = dh_get_locked(conn, name, dhp);
    }
    if (ret != 0)
        return ret;
    if ((*dhp)->table_id != item->table_id) {
        dh_unlock_release(*dhp);
        *dhp = NULL;
        return ENOENT;
    }
    return 0;
}

/*
 * drain_read_lock --
 *     READ_LOCK: pin the ingest handle, then take its shared lock and
 *     check DEAD.  A drop between the pin and the lock (the failpoint
 *     drain.before_read_lock holds the worker there) wins: its exclusive
 *     try-lock succeeds on a pinned but unlocked handle, marks it DEAD and
 *     removes the files; the worker then finds DEAD and skips the table.
 *     A drop after the lock gets EBUSY until the clear is done.
 */
static int
drain_read_lock(layered_conn *conn, struct drain_item *item)
{
    char name[LAYERED_NAME_MAX + 16];
    struct dhandle *dh;
    int ret;

    dh_name(name, sizeof(name), item->table, true);
    if ((ret = dh_get(conn, name, &dh)) == EMFILE || ret == ENFILE) {
        dh_sweep(conn);
        ret = dh_get(conn, name, &dh);
    }
    if (ret == ENOENT)
        return LAYERED_NOTFOUND; /* the drop won before the pin */
    if (ret != 0)
        return ret;
    if ((ret = fp_hit(&conn->fps, "drain.before_read_lock")) != 0) {
        dh_release(dh);
        return ret;
    }
    dh_rwlock_read_lock(&dh->lock);
    if ((atomic_load(&dh->flags) & DH_DEAD) != 0 ||
        dh->table_id != item->table_id) {
        /* Dead: dropped (or closed by a sweep, which the lookup in
         * drain_open tells apart by finding the table again). */
        bool dropped = (atomic_load(&dh->flags) & DH_DROPPED) != 0 ||
                       dh->table_id != item->table_id;
        dh_unlock_release(dh);
        if (dropped)
            return LAYERED_NOTFOUND;
        if ((ret = drain_open(conn, item, true, &dh)) == ENOENT)
            return LAYERED_NOTFOUND;
        if (ret != 0)
            return ret;
    }
    item->locked = dh;
    return 0;
}

/*
 * drain_policy_result --
 *     What an error means under the policy: skip-missing turns ENOENT into
 *     "already gone".
 */
static int
drain_policy_result(layered_conn *conn, int ret)
{
    if (ret == ENOENT && conn->drain_policy == LAYERED_DRAIN_SKIP_MISSING)
        return LAYERED_NOTFOUND;
    return ret;
}

/*
 * drain_copy --
 *     The copy step of one table: 0 (copied, not yet durable),
 *     LAYERED_NOTFOUND (skipped) or an error.
 */
static int
drain_copy(layered_conn *conn, struct drain_item *item)
{
    struct dhandle *src = NULL, *dst = NULL;
    fs_copy_stats cs;
    int ret;

    memset(&cs, 0, sizeof(cs));
    ERR(fp_hit(&conn->fps, "drain.before_lock"));
    if (conn->drain_policy == LAYERED_DRAIN_READ_LOCK)
        ERR(drain_read_lock(conn, item));
    ERR(drain_open(conn, item, true, &src));
    ERR(drain_open(conn, item, false, &dst));
    ERR(fs_copy(src->fs, dst->fs, FS_NOSYNC, copy_hook, conn, &cs));
    item->rows = cs.rows;
    item->bytes_copied = cs.bytes;
    item->max_lsn = cs.max_lsn;
    fs_sync_gen(dst->fs, &item->dst_sync);
err:
    if (src != NULL)
        dh_unlock_release(src);
    if (dst != NULL)
        dh_unlock_release(dst);
    return drain_policy_result(conn, ret);
}

/*
 * drain_clear --
 *     The clear step: the stable copy is durable, so emptying the ingest
 *     loses nothing, and a crash before the clear is durable only repeats
 *     a copy that skips every row.
 */
static int
drain_clear(layered_conn *conn, struct drain_item *item)
{
    struct dhandle *src = NULL;
    int ret;

    ERR(fp_hit(&conn->fps, "drain.before_clear"));
    ERR(drain_open(conn, item, true, &src));
    if (!fs_empty(src->fs))
        ERR(fs_clear(src->fs, FS_NOSYNC));
    fs_sync_gen(src->fs, &item->src_sync);
err:
    if (src != NULL)
        dh_unlock_release(src);
    return drain_policy_result(conn, ret);
}

/*
 * drain_mark_synced --
 *     After a successful syncfs: tell the item's file, if its handle is
 *     still open, that it is synced up to the generation recorded before.
 *     A handle closed meanwhile synced itself on close.
 */
static void
drain_mark_synced(layered_conn *conn, struct drain_item *item, bool stable)
{
    char name[LAYERED_NAME_MAX + 16];
    struct dhandle *dh;

    dh_name(name, sizeof(name), item->table, !stable);
    if ((dh = dh_find(conn, name)) == NULL)
        return;
    if (dh->table_id == item->table_id)
        fs_mark_synced(dh->fs, stable ? &item->dst_sync : &item->src_sync);
    dh_release(dh);
}

/*
 * drain_sync --
 *     Make the files of the items that got this far durable: one syncfs of
 *     the directory's file system for the whole batch (one fdatasync when
 *     the batch holds one table), then each file learns it is synced.
 */
static int
drain_sync(layered_conn *conn, struct drain_item **batch, int n, bool stable)
{
    char name[LAYERED_NAME_MAX + 16];
    struct dhandle *dh;
    int i, count = 0, last = -1, ret = 0;

    for (i = 0; i < n; i++)
        if (batch[i]->result == 0) {
            count++;
            last = i;
        }
    if (count == 0)
        return 0;
    RET(fp_hit(&conn->fps, "drain.sync"));
    if (count == 1) {
        dh_name(name, sizeof(name), batch[last]->table, !stable);
        /* Not found: the table was dropped or offloaded since (nothing of
         * it to keep), or a sweep closed the handle, which it does only
         * after a successful sync (dh_sweep_locked). */
        if ((dh = dh_find(conn, name)) == NULL)
            return 0;
        ret = dh->table_id == batch[last]->table_id ? fs_sync(dh->fs) : 0;
        dh_release(dh);
        return ret;
    }
    if (!conn->syncfs_reports_errors) {
        /* Before Linux 5.8 syncfs(2) does not report writeback errors:
         * sync each file instead. */
        for (i = 0; i < n && ret == 0; i++) {
            if (batch[i]->result != 0)
                continue;
            dh_name(name, sizeof(name), batch[i]->table, !stable);
            if ((dh = dh_find(conn, name)) == NULL)
                continue; /* as above */
            if (dh->table_id == batch[i]->table_id)
                ret = fs_sync(dh->fs);
            dh_release(dh);
        }
        return ret;
    }
    if ((ret = fp_hit(&conn->fps, "fs.sync")) == 0 &&
        conn->os->syncfs(stable ? conn->shared_fd : conn->home_fd) != 0)
        ret = errno;
    if (ret == 0)
        for (i = 0; i < n; i++)
            if (batch[i]->result == 0)
                drain_mark_synced(conn, batch[i], stable);
    return ret;
}

/*
 * drain_take --
 *     Move the next item from the queue to the in-flight list, unless the
 *     batch already holds `bytes` of ingest and would grow past the limit.
 *     Items move one at a time, as their copy starts, so an item a worker
 *     has not reached is still queued (a queue-scan drop can remove it).
 */
static struct drain_item *
drain_take(layered_conn *conn, int n, uint64_t bytes)
{
    struct drain_item *item;

    conn_lock(&conn->drain_lock, LOCK_DRAIN);
    if ((item = TAILQ_FIRST(&conn->drain_queue)) != NULL &&
        (n == 0 || bytes + item->ingest_bytes <= DRAIN_BATCH_BYTES)) {
        TAILQ_REMOVE(&conn->drain_queue, item, link);
        TAILQ_INSERT_TAIL(&conn->drain_inflight, item, link);
    } else
        item = NULL;
    conn_unlock(&conn->drain_lock, LOCK_DRAIN);
    return item;
}

/*
 * drain_item_done --
 *     Account for one item and free it.
 */
static void
drain_item_done(struct drain_ctx *ctx, struct drain_item *item)
{
    layered_conn *conn = ctx->conn;
    int ret = item->result;

    if (item->locked != NULL)
        dh_unlock_release(item->locked);
    conn_lock(&conn->drain_lock, LOCK_DRAIN);
    TAILQ_REMOVE(&conn->drain_inflight, item, link);
    conn_unlock(&conn->drain_lock, LOCK_DRAIN);

    if (ret == 0 && item->max_lsn > 0) {
        /* Recorded in memory now, made durable by one metadata snapshot at
         * the end of the step-up (the per-key LSN rule in fs_copy already
         * makes a repeated drain safe without it). */
        struct table *t;
        conn_lock(&conn->schema_lock, LOCK_SCHEMA);
        if ((t = tbl_find(conn, item->table)) != NULL &&
            t->id == item->table_id && t->drained_lsn < item->max_lsn)
            t->drained_lsn = item->max_lsn;
        conn_unlock(&conn->schema_lock, LOCK_SCHEMA);
    }
    /* The connection's counters move as each table finishes, so a caller
     * polling layered_stats sees the drain progress. */
    if (ret == 0) {
        (void)atomic_fetch_add(&conn->st_tables_drained, 1);
        (void)atomic_fetch_add(&conn->st_rows_drained, item->rows);
        (void)atomic_fetch_add(&conn->st_bytes_drained, item->bytes_copied);
    } else if (ret == LAYERED_NOTFOUND)
        (void)atomic_fetch_add(&conn->st_tables_skipped, 1);
    (void)pthread_mutex_lock(&ctx->lock);
    if (ret == 0) {
        ctx->stats.tables_drained++;
        ctx->stats.rows += item->rows;
        ctx->stats.bytes += item->bytes_copied;
    } else if (ret == LAYERED_NOTFOUND)
        ctx->stats.tables_skipped++;
    else if (ret != DRAIN_NOT_DONE && ctx->error == 0) {
        ctx->error = ret;
        (void)snprintf(ctx->error_table, sizeof(ctx->error_table), "%s",
                       item->table);
        atomic_store(&ctx->stop, true);
    }
    (void)pthread_mutex_unlock(&ctx->lock);
    free(item);
}

/*
 * drain_worker --
 *     Take batches until the queue is empty or a worker failed.
 */
static void *
drain_worker(void *arg)
{
    struct drain_ctx *ctx = arg;
    layered_conn *conn = ctx->conn;
    struct drain_item **batch;
    int i, n, ret;

    layered_rcu_enter();
    if ((batch = calloc(DRAIN_BATCH_MAX, sizeof(*batch))) == NULL) {
        (void)pthread_mutex_lock(&ctx->lock);
        if (ctx->error == 0) {
            ctx->error = ENOMEM;
            (void)snprintf(ctx->error_table, sizeof(ctx->error_table),
                           "(worker)");
        }
        (void)pthread_mutex_unlock(&ctx->lock);
        return NULL;
    }
    for (;;) {
        struct drain_item *item;
        uint64_t bytes = 0;

        /* Copy items one after the other until the batch is full or the
         * queue is empty, then make the batch durable and clear it.  The
         * first real error ends the batch: its copies are not synced and
         * nothing is cleared. */
        for (n = 0, ret = 0; n < ctx->batch_max && ret == 0 &&
                             !atomic_load(&ctx->stop) &&
                             (item = drain_take(conn, n, bytes)) != NULL;
             n++) {
            batch[n] = item;
            bytes += item->ingest_bytes;
            if ((item->result = drain_copy(conn, item)) != 0 &&
                item->result != LAYERED_NOTFOUND)
                ret = item->result;
        }
        if (n == 0)
            break;
        if (ret != 0)
            for (i = 0; i < n; i++)
                if (batch[i]->result == 0)
                    batch[i]->result = DRAIN_NOT_DONE; /* copied, not durable */
        if (ret == 0 && (ret = drain_sync(conn, batch, n, true)) != 0)
            for (i = 0; i < n; i++)
                if (batch[i]->result == 0)
                    batch[i]->result = ret;
        for (i = 0; i < n && ret == 0; i++)
            if (batch[i]->result == 0 &&
                (batch[i]->result = drain_clear(conn, batch[i])) != 0 &&
                batch[i]->result != LAYERED_NOTFOUND) {
                ret = batch[i]->result;
                while (++i < n)
                    if (batch[i]->result == 0)
                        batch[i]->result = DRAIN_NOT_DONE;
            }
        if (ret == 0 && (ret = drain_sync(conn, batch, n, false)) != 0)
            for (i = 0; i < n; i++)
                if (batch[i]->result == 0)
                    batch[i]->result = ret;
        for (i = 0; i < n; i++)
            drain_item_done(ctx, batch[i]);
        /* The batch's handles are idle now: keep the descriptors within
         * budget however many tables the step-up drains. */
        dh_sweep(conn);
    }
    free(batch);
    return NULL;
}

/*
 * drain_queue_build --
 *     Queue every table whose ingest holds data.  Schema and drain locks
 *     held, so a drop either finished before (the table is gone) or will
 *     find the item (queue-scan).
 */
static int
drain_queue_build(layered_conn *conn, struct drain_ctx *ctx)
{
    struct drain_item *item;
    struct dhandle *dh;
    struct table *t;
    struct stat st;
    char name[LAYERED_NAME_MAX + 16];
    uint64_t bytes;

    RB_FOREACH(t, __layered_table_tree, &conn->tables)
    {
        if (t->dropping || (t->state != LAYERED_TABLE_ACTIVE &&
                            t->state != LAYERED_TABLE_ARCHIVED))
            continue;
        /* An open handle knows; otherwise a file holding no more than its
         * header is empty, and a larger one holds entries: closing a handle
         * whose index is empty cuts its file back to the header (fs_close).
         * Only a crash between a clear and the close leaves a larger file
         * with no entries; the worker then finds it empty (opening every
         * ingest here would cost a descriptor and an index load per table:
         * the worker opens it when its turn comes). */
        dh_name(name, sizeof(name), t->name, true);
        if ((dh = dh_find(conn, name)) != NULL) {
            fs_info info;
            bool empty = fs_empty(dh->fs);
            fs_get_info(dh->fs, &info);
            bytes = info.file_bytes;
            dh_release(dh);
            if (empty)
                continue;
        } else {
            (void)snprintf(name, sizeof(name), "%s.ingest", t->name);
            if (conn->os->fstatat(conn->home_fd, name, &st, 0) != 0) {
                layered_msg(conn, "step-up: %s/%s: %s", conn->home, name,
                            layered_strerror(errno));
                return errno;
            }
            if ((uint64_t)st.st_size <= FS_HEADER_BYTES)
                continue;
            bytes = (uint64_t)st.st_size;
        }
        if ((item = calloc(1, sizeof(*item))) == NULL)
            return ENOMEM;
        item->table_id = t->id;
        item->ingest_bytes = bytes;
        (void)snprintf(item->table, sizeof(item->table), "%s", t->name);
        TAILQ_INSERT_TAIL(&conn->drain_queue, item, link);
        ctx->stats.tables_queued++;
    }
    return 0;
}

/*
 * drain_queue_empty --
 *     Free the items left queued (after a failure or a failed build).
 */
static void
drain_queue_empty(layered_conn *conn)
{
    struct drain_item *item;

    conn_lock(&conn->drain_lock, LOCK_DRAIN);
    while ((item = TAILQ_FIRST(&conn->drain_queue)) != NULL) {
        TAILQ_REMOVE(&conn->drain_queue, item, link);
        free(item);
    }
    conn_unlock(&conn->drain_lock, LOCK_DRAIN);
}

/*
 * drain_queue_claim --
 *     For a drop under queue-scan and for every offload, called with the
 *     schema lock held: take the drain lock and look for the table's item.
 *     In flight: the drain lock is released and EBUSY returned.  Otherwise
 *     0 with the drain lock HELD and *itemp the queued item or NULL; the
 *     caller ends the claim with drain_queue_release once it has either
 *     failed (the item stays queued) or passed its point of no return (the
 *     item is removed).  While the claim is held no worker can take the
 *     item (drain_take needs the drain lock), so a claim that ends in
 *     failure leaves the drain exactly as it was.  The caller takes its
 *     exclusive handle locks and writes its durable record while holding
 *     the claim: lock order schema -> drain -> dhandle (internal.h); the
 *     workers wait for the drain lock meanwhile, for at most one metadata
 *     append.
 */
int
drain_queue_claim(layered_conn *conn, const char *table, uint64_t table_id,
                  struct drain_item **itemp)
{
    struct drain_item *item;

    *itemp = NULL;
    conn_lock(&conn->drain_lock, LOCK_DRAIN);
    TAILQ_FOREACH(item, &conn->drain_inflight, link)
        if (item->table_id == table_id && strcmp(item->table, table) == 0) {
            conn_unlock(&conn->drain_lock, LOCK_DRAIN);
            return EBUSY;
        }
    TAILQ_FOREACH(item, &conn->drain_queue, link)
        if (item->table_id == table_id && strcmp(item->table, table) == 0) {
            *itemp = item;
            break;
        }
    return 0;
}

/*
 * drain_queue_release --
 *     End a claim: with `remove` the claimed item (if any) leaves the queue
 *     and counts as skipped (the drop or offload supersedes the drain).
 *     Releases the drain lock.
 */
void
drain_queue_release(layered_conn *conn, struct drain_item *item, bool remove)
{
    if (remove && item != NULL) {
        TAILQ_REMOVE(&conn->drain_queue, item, link);
        free(item);
        (void)atomic_fetch_add(&conn->st_tables_skipped, 1);
        if (conn->drain_ctx != NULL) {
            (void)pthread_mutex_lock(&conn->drain_ctx->lock);
            conn->drain_ctx->stats.tables_skipped++;
            (void)pthread_mutex_unlock(&conn->drain_ctx->lock);
        }
    }
    conn_unlock(&conn->drain_lock, LOCK_DRAIN);
}

/*
 * drain_check_empty --
 *     The step-up's own check, in builds with the checker (not NDEBUG):
 *     after a successful drain every table that still exists has an empty
 *     ingest.  An ingest that still holds entries would hide the leader's
 *     writes to those keys (reads merge ingest over stable).  Role lock
 *     held exclusive, so no write can add entries meanwhile.
 */
static int
drain_check_empty(layered_conn *conn, char *table, size_t len)
{
#ifdef NDEBUG
    (void)conn;
    (void)table;
    (void)len;
    return 0;
#else
    struct dhandle *dh;
    struct table *t;
    struct stat st;
    char name[LAYERED_NAME_MAX + 16], path[LAYERED_NAME_MAX + 16];
    bool empty;
    int ret = 0;

    conn_lock(&conn->schema_lock, LOCK_SCHEMA);
    RB_FOREACH(t, __layered_table_tree, &conn->tables)
    {
        if (t->dropping || (t->state != LAYERED_TABLE_ACTIVE &&
                            t->state != LAYERED_TABLE_ARCHIVED))
            continue;
        dh_name(name, sizeof(name), t->name, true);
        if ((dh = dh_find(conn, name)) != NULL) {
            empty = fs_empty(dh->fs);
            dh_release(dh);
        } else {
            (void)snprintf(path, sizeof(path), "%s.ingest", t->name);
            empty = conn->os->fstatat(conn->home_fd, path, &st, 0) != 0 ||
                    (uint64_t)st.st_size <= FS_HEADER_BYTES;
            if (!empty && dh_get_schema_held(conn, name, &dh) == 0) {
                empty = fs_empty(dh->fs);
                dh_release(dh);
            }
        }
        if (!empty) {
            layered_msg(conn, "step-up: layered:%s still holds ingest "
                        "entries after its drain", t->name);
            ret = ENOTEMPTY;
            (void)snprintf(table, len, "%s", t->name);
            break;
        }
    }
    conn_unlock(&conn->schema_lock, LOCK_SCHEMA);
    return ret;
#endif
}

int
layered_step_up(layered_conn *conn, layered_drain_stats *stats)
{
    if (stats != NULL)
        memset(stats, 0, sizeof(*stats));
    API_CONN(conn);
    return drain_step_up(conn, stats, false);
}

/*
 * drain_step_up --
 *     The step-up: leader first, then drain every ingest that holds data.
 *     at_open: the connection is being opened as a leader and no other
 *     thread can use it yet; a failed drain is returned (the open fails
 *     and the connection is freed, the next open drains again), not a
 *     panic, and a drain that found nothing to do is not a step-up.
 */
int
drain_step_up(layered_conn *conn, layered_drain_stats *stats, bool at_open)
{
    struct drain_ctx ctx;
    pthread_t *tids = NULL;
    uint64_t start;
    int i, nthreads = 0, ret = 0;

    start = os_now_ns(conn->os);
    memset(&ctx, 0, sizeof(ctx));
    ctx.conn = conn;
    (void)pthread_mutex_init(&ctx.lock, NULL);
    /* A batch keeps up to two handles per table open until it ends. */
    ctx.batch_max = (int)(conn->dh_open_limit / (2 * conn->drain_threads));
    if (ctx.batch_max < 1)
        ctx.batch_max = 1;
    if (ctx.batch_max > DRAIN_BATCH_MAX)
        ctx.batch_max = DRAIN_BATCH_MAX;

    conn_lock(&conn->ckpt_lock, LOCK_CHECKPOINT);
    lock_order_acquire(LOCK_ROLE);
    (void)pthread_rwlock_wrlock(&conn->role_lock);
    if (atomic_load(&conn->role) == LAYERED_ROLE_LEADER)
        goto done;
    /* The drain clears ingests: no batch journal record may still name
     * their rows (batch.c).  No batch runs now (they hold the role lock
     * shared), and a failure here changes nothing: still a follower. */
    if ((ret = batch_retire(conn)) != 0)
        goto done;
    /* Leader first: from here on writes (once they can run) go to stable. */
    atomic_store(&conn->role, LAYERED_ROLE_LEADER);

    conn_lock(&conn->schema_lock, LOCK_SCHEMA);
    conn_lock(&conn->drain_lock, LOCK_DRAIN);
    ret = drain_queue_build(conn, &ctx);
    conn->drain_ctx = &ctx;
    atomic_store(&conn->draining, true);
    atomic_store(&conn->drain_busy_drops, 0);
    conn_unlock(&conn->drain_lock, LOCK_DRAIN);
    conn_unlock(&conn->schema_lock, LOCK_SCHEMA);
    if (ret == 0)
        ret = fp_hit(&conn->fps, "drain.queued");
    if (ret != 0) {
        ctx.error = ret;
        (void)snprintf(ctx.error_table, sizeof(ctx.error_table), "(queue)");
        goto workers_done;
    }

    if (conn->drain_threads > 1 &&
        (tids = calloc((size_t)conn->drain_threads - 1, sizeof(*tids))) !=
            NULL)
        for (i = 0; i < conn->drain_threads - 1; i++) {
            /* A worker that cannot start leaves more for the others. */
            if (pthread_create(&tids[nthreads], NULL, drain_worker, &ctx) ==
                0)
                nthreads++;
        }
    (void)drain_worker(&ctx);
    for (i = 0; i < nthreads; i++)
        (void)pthread_join(tids[i], NULL);
    free(tids);

workers_done:
    drain_queue_empty(conn);
    conn_lock(&conn->drain_lock, LOCK_DRAIN);
    conn->drain_ctx = NULL;
    atomic_store(&conn->draining, false);
    conn_unlock(&conn->drain_lock, LOCK_DRAIN);
    ctx.stats.busy_drops = atomic_load(&conn->drain_busy_drops);

    if (ctx.error == 0 &&
        (ret = drain_check_empty(conn, ctx.error_table,
                                 sizeof(ctx.error_table))) != 0)
        ctx.error = ret;
    if (ctx.error == 0 && !(at_open && ctx.stats.tables_queued == 0)) {
        conn_lock(&conn->schema_lock, LOCK_SCHEMA);
        ret = meta_snapshot(conn);
        conn_unlock(&conn->schema_lock, LOCK_SCHEMA);
        if (ret != 0) {
            ctx.error = ret;
            (void)snprintf(ctx.error_table, sizeof(ctx.error_table),
                           "(metadata)");
        }
    }
    if (ctx.error == 0 && !(at_open && ctx.stats.tables_queued == 0))
        (void)atomic_fetch_add(&conn->st_step_ups, 1);

done:
    /* Panic while still holding the role lock: a write waiting for the
     * step-up must find the connection panicked when it gets the lock,
     * not write into a stable constituent whose ingest was never drained
     * (the ingest value would hide it).  The handler runs with the
     * checkpoint and role locks held; statistics take neither. */
    if (ctx.error != 0 && at_open) {
        layered_msg(conn, "opening as leader: draining layered:%s: %s",
                    ctx.error_table, layered_strerror(ctx.error));
        ret = ctx.error;
    } else if (ctx.error != 0)
        ret = layered_panic(conn, ctx.error,
                            "step-up failed: draining layered:%s: %s",
                            ctx.error_table, layered_strerror(ctx.error));
    (void)pthread_rwlock_unlock(&conn->role_lock);
    lock_order_release(LOCK_ROLE);
    conn_unlock(&conn->ckpt_lock, LOCK_CHECKPOINT);
    ctx.stats.elapsed_ns = os_now_ns(conn->os) - start;
    if (stats != NULL)
        *stats = ctx.stats;
    (void)pthread_mutex_destroy(&ctx.lock);
    if (ctx.error == 0)
        dh_sweep(conn);
    /* ret is 0 unless the drain failed (the panic's value) or the batch
     * journal could not be retired (nothing changed). */
    return ret;
}
