/*
 * checkpoint.c -- checkpoints and database_size.
 *
 * A checkpoint makes every open constituent durable, compacts files that
 * are mostly dead, writes a metadata snapshot, and only then publishes
 * database_size = sum of the stable files' sizes + the fixed buffer.  The
 * size is recomputed from the files rather than adjusted by deltas, so a
 * drop racing a drain cannot push it below the buffer, let alone below
 * zero; the clamp makes that explicit.  A failed checkpoint publishes
 * nothing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "internal.h"

/*
 * ckpt_stable_bytes --
 *     The sum of the stable files' sizes on disk; schema lock held.  Each
 *     was synced by the checkpoint, drain or close that last wrote it.
 */
uint64_t
ckpt_stable_bytes(layered_conn *conn)
{
    struct table *t;
    struct stat st;
    char path[LAYERED_NAME_MAX + 16];
    uint64_t sum = 0;

    RB_FOREACH(t, __layered_table_tree, &conn->tables)
    {
        if (t->dropping)
            continue;
        (void)snprintf(path, sizeof(path), "%s.stable", t->name);
        if (conn->os->fstatat(conn->shared_fd, path, &st, 0) == 0)
            sum += (uint64_t)st.st_size;
    }
    return sum;
}

/*
 * ckpt_publish_size --
 *     Publish the stable bytes of a checkpoint.  One atomic store: the
 *     pair that layered_stats reports (stable bytes, database_size) is
 *     derived from this one number by ckpt_database_size, so a reader can
 *     never see the two from different checkpoints.
 */
void
ckpt_publish_size(layered_conn *conn, uint64_t stable)
{
    atomic_store(&conn->stable_ckpt_bytes, stable);
}

/*
 * ckpt_database_size --
 *     database_size = stable bytes + the buffer, never below the buffer
 *     (an overflowing sum saturates).
 */
uint64_t
ckpt_database_size(uint64_t stable)
{
    uint64_t size = stable + LAYERED_CHECKPOINT_SIZE_BUFFER;

    return size < stable ? UINT64_MAX : size;
}

/*
 * checkpoint_locked --
 *     The checkpoint proper; the caller holds the checkpoint lock.
 */
static int
checkpoint_locked(layered_conn *conn)
{
    struct dhandle **arr = NULL;
    uint64_t sum;
    size_t n = 0, i;
    bool compacted = false;
    int ret;

    /* Before any compaction: the batch journal's rows durable in their
     * files and the journal emptied (batch.c). */
    ERR(batch_retire(conn));
    ERR(dh_collect(conn, &arr, &n));
    for (i = 0; i < n; i++) {
        /* The shared lock keeps a drop out while the file is synced and
         * maybe compacted: a compaction renames a new file over the old
         * one, which would bring back a file a drop had just removed.  A
         * drop meanwhile gets EBUSY; a handle it already killed is
         * skipped. */
        dh_rwlock_read_lock(&arr[i]->lock);
        if (atomic_load(&arr[i]->flags) & DH_DEAD) {
            dh_rwlock_read_unlock(&arr[i]->lock);
            continue;
        }
        if ((ret = fs_sync(arr[i]->fs)) == 0)
            ret = fs_compact(arr[i]->fs, false, &compacted);
        dh_rwlock_read_unlock(&arr[i]->lock);
        ERR_MSG(conn, ret, "checkpoint: syncing or compacting %s failed",
                arr[i]->name);
        if (compacted)
            (void)atomic_fetch_add(&conn->st_compactions, 1);
    }

    conn_lock(&conn->schema_lock, LOCK_SCHEMA);
    sum = ckpt_stable_bytes(conn);
    ret = meta_snapshot(conn);
    conn_unlock(&conn->schema_lock, LOCK_SCHEMA);
    if (ret != 0)
        goto err;
    ckpt_publish_size(conn, sum);
    (void)atomic_fetch_add(&conn->st_checkpoints, 1);

err:
    for (i = 0; i < n; i++)
        dh_release(arr[i]);
    free(arr);
    return ret;
}

int
layered_checkpoint(layered_session *session)
{
    layered_conn *conn;
    int ret;

    API_SESSION(session, conn);
    conn_lock(&conn->ckpt_lock, LOCK_CHECKPOINT);
    ret = checkpoint_locked(conn);
    conn_unlock(&conn->ckpt_lock, LOCK_CHECKPOINT);
    return ret;
}
