/*
 * layered.c -- the schema API: create, drop, state and listing of layered
 * tables.
 *
 * Each call changes or reads the table tree (table.c) under the schema
 * lock, which also covers the metadata files and opening or removing
 * dhandles (see the lock order in internal.h).
 */
#include <string.h>

#include "internal.h"

/*
 * parse_create_config --
 *     NULL, "" or "exclusive=true|false".
 */
static int
parse_create_config(const char *config, bool *exclusivep)
{
    *exclusivep = true;
    if (config == NULL || *config == '\0')
        return 0;
    if (strcmp(config, "exclusive=true") == 0)
        return 0;
    if (strcmp(config, "exclusive=false") == 0) {
        *exclusivep = false;
        return 0;
    }
    return EINVAL;
}

int
layered_create(layered_session *session, const char *uri, const char *config)
{
    layered_conn *conn;
    struct table *t;
    const char *name;
    bool exclusive;
    int ret = 0;

    API_SESSION(session, conn);
    RET(tbl_uri_parse(uri, &name));
    RET(parse_create_config(config, &exclusive));

    conn_lock(&conn->schema_lock, LOCK_SCHEMA);
    if ((t = tbl_find(conn, name)) != NULL) {
        ret = t->dropping ? EBUSY : exclusive ? EEXIST : 0;
        goto err;
    }
    /* Files first, then the metadata record: a crash in between leaves
     * orphan files that the next create of the name replaces, never a
     * table listed without its files. */
    if ((ret = tbl_create_file(conn, conn->home_fd, conn->home, name,
                               "ingest")) != 0 ||
        (ret = tbl_create_file(conn, conn->shared_fd, conn->shared_dir,
                               name, "stable")) != 0 ||
        (ret = os_dir_fsync(conn->os, conn->home_fd)) != 0 ||
        (ret = os_dir_fsync(conn->os, conn->shared_fd)) != 0 ||
        (ret = meta_log(conn, META_CREATE, name, 0)) != 0) {
        (void)tbl_unlink_files(conn, name);
        goto err;
    }
    ERR(tbl_insert(conn, name, LAYERED_TABLE_ACTIVE, &t));
    (void)atomic_fetch_add(&conn->st_creates, 1);
err:
    conn_unlock(&conn->schema_lock, LOCK_SCHEMA);
    return ret;
}

/*
 * layered_drop --
 *     Every check that can fail (the table, the drain queue under
 *     queue-scan, both exclusive locks, the durable "dropping" record)
 *     happens before anything irreversible, so EBUSY or a failed metadata
 *     write leaves the table exactly as it was -- including its drain
 *     item: under queue-scan the drop claims the item (holding the drain
 *     lock, so no worker can take it) and removes it only once the
 *     "dropping" record is durable (drain.c, drain_queue_claim).  After
 *     that record a failure is finished by the next drop or open: the drop
 *     is decided, never undone.
 */
int
layered_drop(layered_session *session, const char *uri, unsigned flags)
{
    layered_conn *conn;
    struct dhandle *ingest = NULL, *stable = NULL;
    struct drain_item *item = NULL;
    struct table *t;
    const char *name;
    bool ckpt = false, schema = false, claimed = false, held = false;
    int ret = 0;

    API_SESSION(session, conn);
    RET(tbl_uri_parse(uri, &name));
    if ((flags & ~(LAYERED_DROP_FORCE | LAYERED_DROP_CHECKPOINT_WAIT)) != 0)
        return EINVAL;

    if (flags & LAYERED_DROP_CHECKPOINT_WAIT) {
        /* Waits for a running step-up or checkpoint to finish. */
        conn_lock(&conn->ckpt_lock, LOCK_CHECKPOINT);
        ckpt = true;
    }
    ERR(fp_hit(&conn->fps, "drop.before_exclusive"));
    conn_lock(&conn->schema_lock, LOCK_SCHEMA);
    schema = true;
    if ((t = tbl_find(conn, name)) == NULL) {
        ret = (flags & LAYERED_DROP_FORCE) ? 0 : ENOENT;
        goto err;
    }
    ERR(lifecycle_drop_check(t));
    if (conn->drain_policy == LAYERED_DRAIN_QUEUE_SCAN) {
        ERR(drain_queue_claim(conn, name, t->id, &item));
        claimed = true;
    }
    lock_order_acquire(LOCK_DHANDLE);
    held = true;
    ERR(dh_lock_exclusive(conn, name, true, false, &ingest));
    ERR(dh_lock_exclusive(conn, name, false, false, &stable));
    /* No batch journal record may name the table once its files go: a
     * re-created table of the same name starts empty, and replay would
     * write the old rows into it (batch.c).  No batch holds the table now
     * (the exclusive locks), so none can name it after this. */
    ERR(batch_retire(conn));

    if (!t->dropping) {
        ERR(meta_log(conn, META_DROPPING, name, 0));
        t->dropping = true;
    }
    /* Irreversible from here: the drop is durably decided, so the drain
     * item it supersedes can go. */
    if (claimed) {
        drain_queue_release(conn, item, true);
        claimed = false;
    }
    if (ingest != NULL)
        dh_remove(ingest, true);
    if (stable != NULL)
        dh_remove(stable, true);
    ERR_MSG(conn, tbl_unlink_files(conn, name),
            "drop layered:%s: removing its files failed; the next drop or "
            "open finishes it", name);
    ERR(fp_hit(&conn->fps, "drop.after_remove"));
    ERR(meta_log(conn, META_DROP, name, 0));
    tbl_free(conn, t);
    (void)atomic_fetch_add(&conn->st_drops, 1);

err:
    if (ret == EBUSY) {
        (void)atomic_fetch_add(&conn->st_drop_busy, 1);
        if (atomic_load(&conn->draining))
            (void)atomic_fetch_add(&conn->drain_busy_drops, 1);
    }
    dh_unlock_exclusive(ingest);
    dh_unlock_exclusive(stable);
    if (held)
        lock_order_release(LOCK_DHANDLE);
    if (claimed)
        drain_queue_release(conn, item, false);
    if (schema)
        conn_unlock(&conn->schema_lock, LOCK_SCHEMA);
    if (ckpt)
        conn_unlock(&conn->ckpt_lock, LOCK_CHECKPOINT);
    return ret;
}

int
layered_table_state(layered_session *session, const char *uri, int *statep)
{
    layered_conn *conn;
    struct table *t;
    const char *name;
    int ret = 0;

    API_SESSION(session, conn);
    if (statep == NULL)
        return EINVAL;
    RET(tbl_uri_parse(uri, &name));
    conn_lock(&conn->schema_lock, LOCK_SCHEMA);
    if ((t = tbl_find(conn, name)) == NULL)
        ret = ENOENT;
    else
        *statep = t->dropping ? LAYERED_TABLE_DROPPED : t->state;
    conn_unlock(&conn->schema_lock, LOCK_SCHEMA);
    return ret;
}

int
layered_list_tables(layered_session *session,
                    int (*callback)(void *arg, const char *name, int state),
                    void *arg)
{
    layered_conn *conn;
    struct table *t;
    int ret = 0;

    API_SESSION(session, conn);
    if (callback == NULL)
        return EINVAL;
    conn_lock(&conn->schema_lock, LOCK_SCHEMA);
    RB_FOREACH(t, __layered_table_tree, &conn->tables)
    {
        if (t->dropping)
            continue;
        if ((ret = callback(arg, t->name, t->state)) != 0)
            break;
    }
    conn_unlock(&conn->schema_lock, LOCK_SCHEMA);
    return ret;
}
