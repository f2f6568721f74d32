/*
 * cursor.c -- cursors on layered tables and on single constituents.
 *
 * A layered cursor merges two ordered sources: ingest over stable.  On a
 * key present in both, the ingest entry wins; an ingest tombstone hides the
 * stable value and is itself never returned.  The cursor holds both
 * handles' shared locks and pins from open to close, which is what makes a
 * drop meanwhile return EBUSY.
 *
 * Moving: each source keeps its own position.  The source that supplied
 * the current key steps with FS_NEXT/FS_PREV (no search while its index
 * keeps its nodes); the other source is searched afresh relative to the
 * current key, which stays correct however the tables changed since.
 * There is no snapshot isolation: a move sees the tables as they are.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* How often one move looks at a key again because its record was
 * rewritten between the seek and the read.  Keys skipped because an ingest
 * tombstone hides them are progress, not retries: a move crosses any
 * number of removed keys. */
#define MOVE_RETRIES 100

static int
buf_set(void **bufp, size_t *capp, const void *src, size_t len)
{
    if (len > *capp || *bufp == NULL) {
        size_t cap = len < 64 ? 64 : len;
        void *nb = realloc(*bufp, cap);
        if (nb == NULL)
            return ENOMEM;
        *bufp = nb;
        *capp = cap;
    }
    if (len > 0)
        memcpy(*bufp, src, len);
    return 0;
}

static void
cursor_unposition(layered_cursor *c)
{
    c->positioned = false;
    c->ipos.valid = false;
    c->spos.valid = false;
    c->key_len = c->val_len = 0;
}

/* The two sources: [0] ingest (or the single file), [1] stable or none. */
static fs_file *
source_fs(layered_cursor *c, int i)
{
    if (!c->layered)
        return i == 0 ? c->file->fs : NULL;
    return i == 0 ? c->ingest->fs : c->stable->fs;
}

static fs_pos *
source_pos(layered_cursor *c, int i)
{
    return i == 0 ? &c->ipos : &c->spos;
}

/*
 * cursor_move --
 *     Position on the first visible key after (forward) or before the
 *     cursor's current key, or from the start/end when `from_edge`.  With
 *     `inclusive` the current key itself qualifies (search_near).
 */
static int
cursor_move(layered_cursor *c, bool forward, bool from_edge, bool inclusive)
{
    fs_pos *pos, *best;
    fs_file *fs, *best_fs;
    int i, cmp, ret = 0, tries;
    bool edge = from_edge, incl = inclusive;

    for (tries = 0; tries < MOVE_RETRIES;) {
        best = NULL;
        best_fs = NULL;
        for (i = 0; i < 2; i++) {
            if ((fs = source_fs(c, i)) == NULL)
                continue;
            pos = source_pos(c, i);
            if (edge)
                ret = fs_seek(fs, NULL, 0, forward ? FS_FIRST : FS_LAST, pos);
            else if (!incl && pos->valid &&
                     fs_key_cmp(pos->key, pos->klen, c->key, c->key_len) == 0)
                ret = fs_seek(fs, NULL, 0, forward ? FS_NEXT : FS_PREV, pos);
            else
                ret = fs_seek(fs, c->key, c->key_len,
                              forward ? (incl ? FS_GE : FS_GT)
                                      : (incl ? FS_LE : FS_LT),
                              pos);
            if (ret == LAYERED_NOTFOUND)
                continue;
            if (ret != 0)
                return ret;
            if (best == NULL) {
                best = pos;
                best_fs = fs;
                continue;
            }
            cmp = fs_key_cmp(pos->key, pos->klen, best->key, best->klen);
            /* Equal keys: the ingest (i == 0, already best) wins. */
            if ((forward && cmp < 0) || (!forward && cmp > 0)) {
                best = pos;
                best_fs = fs;
            }
        }
        if (best == NULL) {
            cursor_unposition(c);
            return LAYERED_NOTFOUND;
        }
        /* Move the reference to the key found; the next round steps both
         * sources past it if it turns out to be hidden. */
        RET(buf_set(&c->key, &c->key_cap, best->key, best->klen));
        c->key_len = best->klen;
        edge = false;
        incl = false;
        if (best->tombstone)
            continue; /* removed in ingest: hides any stable value */
        ret = fs_read_value(best_fs, best, &c->val, &c->val_cap);
        if (ret == LAYERED_NOTFOUND) {
            /* Rewritten since the seek: look at this key again. */
            incl = true;
            tries++;
            continue;
        }
        if (ret != 0)
            return ret;
        c->val_len = best->vlen;
        c->positioned = true;
        return 0;
    }
    return EAGAIN;
}

static int
key_check(const void *key, size_t klen)
{
    return key == NULL || klen == 0 || klen > LAYERED_KEY_MAX ? EINVAL : 0;
}

int
layered_cursor_open(layered_session *session, const char *uri,
                    layered_cursor **cursorp)
{
    layered_conn *conn;
    layered_cursor *c = NULL;
    const char *name;
    char dhname[LAYERED_NAME_MAX + 16];
    int ret;

    if (cursorp == NULL)
        return EINVAL;
    *cursorp = NULL;
    API_SESSION(session, conn);
    if (uri == NULL)
        return EINVAL;
    if ((c = calloc(1, sizeof(*c))) == NULL)
        return ENOMEM;
    c->session = session;
    if (strncmp(uri, "layered:", 8) == 0) {
        ERR(tbl_uri_parse(uri, &name));
        c->layered = true;
        (void)snprintf(c->table, sizeof(c->table), "%s", name);
        dh_name(dhname, sizeof(dhname), name, true);
        ERR(dh_get_locked(conn, dhname, &c->ingest));
        dh_name(dhname, sizeof(dhname), name, false);
        ERR(dh_get_locked(conn, dhname, &c->stable));
    } else if (strncmp(uri, "file:", 5) == 0) {
        if (strlen(uri) >= sizeof(dhname))
            ERR(EINVAL);
        ERR(dh_get_locked(conn, uri, &c->file));
    } else
        ERR(EINVAL);
    TAILQ_INSERT_TAIL(&session->cursors, c, link);
    *cursorp = c;
    return 0;

err:
    if (c->ingest != NULL)
        dh_unlock_release(c->ingest);
    if (c->stable != NULL)
        dh_unlock_release(c->stable);
    free(c);
    return ret;
}

/*
 * cursor_write_target --
 *     Take the role lock shared and choose the constituent a write goes
 *     to.  The lock is held until cursor_write_done, so a step-up or
 *     step-down waits for this write and this write waits for them.
 */
static struct dhandle *
cursor_write_target(layered_cursor *c)
{
    layered_conn *conn = c->session->conn;

    lock_order_acquire(LOCK_ROLE);
    (void)pthread_rwlock_rdlock(&conn->role_lock);
    /* A step-up that failed panicked before releasing the role lock: a
     * write that waited for it must not go on. */
    if (conn_panicked(conn))
        return NULL;
    return atomic_load(&conn->role) == LAYERED_ROLE_LEADER ? c->stable
                                                            : c->ingest;
}

static void
cursor_write_done(layered_cursor *c)
{
    (void)pthread_rwlock_unlock(&c->session->conn->role_lock);
    lock_order_release(LOCK_ROLE);
}

int
layered_cursor_insert(layered_cursor *c, const void *key, size_t klen,
                      const void *value, size_t vlen)
{
    struct dhandle *target;
    int ret = 0;

    API_CURSOR(c);
    if ((ret = key_check(key, klen)) != 0 || (value == NULL && vlen > 0) ||
        vlen > LAYERED_VALUE_MAX)
        return ret != 0 ? ret : EINVAL;
    if (!c->layered)
        return ENOTSUP;
    cursor_unposition(c);
    if ((target = cursor_write_target(c)) == NULL)
        ret = LAYERED_PANIC;
    else
        ret = fs_put(target->fs, key, klen, value == NULL ? "" : value, vlen,
                     NULL);
    cursor_write_done(c);
    if (ret == 0)
        (void)atomic_fetch_add(&c->session->conn->st_inserts, 1);
    return ret;
}

/*
 * visible --
 *     Is the key visible through the layers?  0, LAYERED_NOTFOUND or an
 *     error.
 */
static int
visible(layered_cursor *c, const void *key, size_t klen)
{
    int ret;

    ret = fs_seek(c->ingest->fs, key, klen, FS_EQ, &c->ipos);
    if (ret == 0)
        return c->ipos.tombstone ? LAYERED_NOTFOUND : 0;
    if (ret != LAYERED_NOTFOUND)
        return ret;
    return fs_seek(c->stable->fs, key, klen, FS_EQ, &c->spos);
}

int
layered_cursor_remove(layered_cursor *c, const void *key, size_t klen)
{
    struct dhandle *target;
    int ret = 0;

    API_CURSOR(c);
    RET(key_check(key, klen));
    if (!c->layered)
        return ENOTSUP;
    cursor_unposition(c);
    if ((target = cursor_write_target(c)) == NULL)
        ret = LAYERED_PANIC;
    else if ((ret = visible(c, key, klen)) == 0)
        /* On a follower the ingest keeps a tombstone that hides the
         * stable value until the drain removes it there too. */
        ret = fs_del(target->fs, key, klen, target == c->ingest, NULL);
    cursor_write_done(c);
    cursor_unposition(c);
    if (ret == 0)
        (void)atomic_fetch_add(&c->session->conn->st_removes, 1);
    return ret;
}

/*
 * cursor_move_from --
 *     Unposition, make `key` the reference and move from it.
 */
static int
cursor_move_from(layered_cursor *c, const void *key, size_t klen,
                 bool forward, bool inclusive)
{

    cursor_unposition(c);
    RET(buf_set(&c->key, &c->key_cap, key, klen));
    c->key_len = klen;
    return cursor_move(c, forward, false, inclusive);
}

int
layered_cursor_search(layered_cursor *c, const void *key, size_t klen)
{
    int ret = 0;

    API_CURSOR(c);
    RET(key_check(key, klen));
    /* The first visible key >= key: found only if it is key itself. */
    if ((ret = cursor_move_from(c, key, klen, true, true)) == 0 &&
        fs_key_cmp(c->key, c->key_len, key, klen) != 0) {
        cursor_unposition(c);
        ret = LAYERED_NOTFOUND;
    }
    return ret;
}

int
layered_cursor_search_near(layered_cursor *c, const void *key, size_t klen,
                           int *exactp)
{
    int ret = 0;

    API_CURSOR(c);
    if ((ret = key_check(key, klen)) != 0 || exactp == NULL)
        return ret != 0 ? ret : EINVAL;
    if ((ret = cursor_move_from(c, key, klen, true, true)) == 0) {
        *exactp = fs_key_cmp(c->key, c->key_len, key, klen) == 0 ? 0 : 1;
        return 0;
    }
    if (ret != LAYERED_NOTFOUND)
        return ret;
    if ((ret = cursor_move_from(c, key, klen, false, false)) == 0)
        *exactp = -1;
    return ret;
}

int
layered_cursor_next(layered_cursor *c)
{

    API_CURSOR(c);
    return cursor_move(c, true, !c->positioned, false);
}

int
layered_cursor_prev(layered_cursor *c)
{

    API_CURSOR(c);
    return cursor_move(c, false, !c->positioned, false);
}

int
layered_cursor_get(layered_cursor *c, const void **keyp, size_t *klenp,
                   const void **valuep, size_t *vlenp)
{
    if (c == NULL || !c->positioned)
        return EINVAL;
    if (keyp != NULL)
        *keyp = c->key;
    if (klenp != NULL)
        *klenp = c->key_len;
    if (valuep != NULL)
        *valuep = c->val_len > 0 ? c->val : "";
    if (vlenp != NULL)
        *vlenp = c->val_len;
    return 0;
}

int
layered_cursor_reset(layered_cursor *c)
{
    if (c == NULL)
        return EINVAL;
    cursor_unposition(c);
    return 0;
}

int
cursor_close(layered_cursor *c)
{
    layered_conn *conn = c->session->conn;

    TAILQ_REMOVE(&c->session->cursors, c, link);
    if (c->ingest != NULL)
        dh_unlock_release(c->ingest);
    if (c->stable != NULL)
        dh_unlock_release(c->stable);
    if (c->file != NULL)
        dh_unlock_release(c->file);
    fs_pos_free(&c->ipos);
    fs_pos_free(&c->spos);
    free(c->key);
    free(c->val);
    free(c);
    dh_sweep(conn);
    return 0;
}

int
layered_cursor_close(layered_cursor *c)
{
    if (c == NULL)
        return EINVAL;
    layered_rcu_enter();
    return cursor_close(c);
}
