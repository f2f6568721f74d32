/*
 * layered.c -- layered tables: names and URIs, the table tree, create,
 * drop, state and listing.
 *
 * The table tree (conn->tables) and every change to it run under the
 * schema lock, which also covers the metadata files and opening or
 * removing dhandles (see the lock order in internal.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

int
table_cmp(struct table *a, struct table *b)
{
    return strcmp(a->name, b->name);
}

RB_GENERATE(__layered_table_tree, table, link, table_cmp)

bool
name_valid(const char *name, size_t len)
{
    if (len == 0 || len > LAYERED_NAME_MAX || name[0] == '.')
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
            return false;
    }
    return true;
}

/*
 * uri_parse_layered --
 *     "layered:NAME" -> NAME, validated.
 */
int
uri_parse_layered(const char *uri, const char **namep)
{
    if (uri == NULL || strncmp(uri, "layered:", 8) != 0)
        return EINVAL;
    if (!name_valid(uri + 8, strlen(uri + 8)))
        return EINVAL;
    *namep = uri + 8;
    return 0;
}

struct table *
table_find(layered_conn *conn, const char *name)
{
    struct {
        struct table t;
        char name[LAYERED_NAME_MAX + 1];
    } key;

    if (strlen(name) > LAYERED_NAME_MAX)
        return NULL;
    memset(&key.t, 0, sizeof(key.t));
    strcpy(key.t.name, name);
    return RB_FIND(__layered_table_tree, &conn->tables, &key.t);
}

int
table_insert(layered_conn *conn, const char *name, int state,
             struct table **tp)
{
    struct table *t;
    size_t n = strlen(name);

    if ((t = calloc(1, sizeof(*t) + n + 1)) == NULL)
        return ENOMEM;
    memcpy(t->name, name, n + 1);
    t->id = ++conn->next_table_id;
    t->state = state;
    (void)pthread_mutex_init(&t->arbiter, NULL);
    (void)RB_INSERT(__layered_table_tree, &conn->tables, t);
    conn->ntables++;
    *tp = t;
    return 0;
}

void
table_free(layered_conn *conn, struct table *t)
{
    (void)RB_REMOVE(__layered_table_tree, &conn->tables, t);
    conn->ntables--;
    (void)pthread_mutex_destroy(&t->arbiter);
    free(t);
}

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

/*
 * create_file --
 *     Create one empty constituent file, replacing an orphan left by a
 *     crash between a create's file creation and its metadata record.
 */
int
create_file(layered_conn *conn, int dirfd, const char *dir, const char *name,
            const char *suffix)
{
    char path[4096];
    fs_file *f = NULL;
    int ret;

    (void)snprintf(path, sizeof(path), "%s.%s", name, suffix);
    if (conn->os->unlinkat(dirfd, path, 0) != 0 && errno != ENOENT)
        return errno;
    if ((size_t)snprintf(path, sizeof(path), "%s/%s.%s", dir, name,
                         suffix) >= sizeof(path))
        return ENAMETOOLONG;
    if ((ret = fs_open(path, FS_CREATE | FS_EXCL, &conn->env, &f)) != 0)
        return ret;
    return fs_close(f);
}

int
layered_create(layered_session *session, const char *uri, const char *config)
{
    layered_conn *conn;
    struct table *t;
    const char *name;
    bool exclusive;
    int ret;

    if (session == NULL)
        return EINVAL;
    conn = session->conn;
    API_CONN(conn);
    if ((ret = uri_parse_layered(uri, &name)) != 0 ||
        (ret = parse_create_config(config, &exclusive)) != 0)
        return ret;

    conn_lock(&conn->schema_lock, LOCK_SCHEMA);
    if ((t = table_find(conn, name)) != NULL) {
        ret = t->dropping ? EBUSY : exclusive ? EEXIST : 0;
        goto err;
    }
    /* Files first, then the metadata record: a crash in between leaves
     * orphan files that the next create of the name replaces, never a
     * table listed without its files. */
    if ((ret = create_file(conn, conn->home_fd, conn->home, name,
                           "ingest")) != 0 ||
        (ret = create_file(conn, conn->shared_fd, conn->shared_dir, name,
                           "stable")) != 0 ||
        (ret = os_dir_fsync(conn->os, conn->home_fd)) != 0 ||
        (ret = os_dir_fsync(conn->os, conn->shared_fd)) != 0 ||
        (ret = meta_log(conn, META_CREATE, name, 0)) != 0) {
        (void)meta_unlink_table(conn, name);
        goto err;
    }
    ERR(table_insert(conn, name, LAYERED_TABLE_ACTIVE, &t));
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
    int ret;

    if (session == NULL)
        return EINVAL;
    conn = session->conn;
    API_CONN(conn);
    if ((ret = uri_parse_layered(uri, &name)) != 0)
        return ret;
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
    if ((t = table_find(conn, name)) == NULL) {
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
    ERR_MSG(conn, meta_unlink_table(conn, name),
            "drop layered:%s: removing its files failed; the next drop or "
            "open finishes it", name);
    ERR(fp_hit(&conn->fps, "drop.after_remove"));
    ERR(meta_log(conn, META_DROP, name, 0));
    table_free(conn, t);
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
    int ret;

    if (session == NULL || statep == NULL)
        return EINVAL;
    conn = session->conn;
    API_CONN(conn);
    if ((ret = uri_parse_layered(uri, &name)) != 0)
        return ret;
    conn_lock(&conn->schema_lock, LOCK_SCHEMA);
    if ((t = table_find(conn, name)) == NULL)
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

    if (session == NULL || callback == NULL)
        return EINVAL;
    conn = session->conn;
    API_CONN(conn);
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
