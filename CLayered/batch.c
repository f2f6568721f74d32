/*
 * batch.c -- atomic write batches and the connection's batch journal.
 *
 * A batch collects puts and removes on any number of layered tables and
 * commits them as one unit: after a kill or a power cut either every op of
 * a committed batch is visible or none is.
 *
 * Commit protocol (layered_batch_commit)
 * --------------------------------------
 * 1. Resolve: each table's two handles are pinned and locked shared, as a
 *    cursor does, so a drop or an offload meanwhile returns EBUSY; a table
 *    that is gone, offloaded or being dropped fails the commit (ENOENT)
 *    with nothing written.
 * 2. The role lock is taken shared, as a single write does: the role
 *    chooses each op's constituent (follower: the ingest; leader: the
 *    stable), and a step-up or step-down waits for the batch.
 * 3. Under the journal lock, fs_batch_apply takes every target file's lock
 *    exclusive, checks what can fail, draws one LSN per op and calls
 *    batch_commit_record: one checksummed record holding every op (table,
 *    constituent, kind, key, value; LSNs first_lsn + i) is appended to
 *    "layered.batch" in the home and fdatasync'ed.  That sync is the commit
 *    point.  Then each file gets its ops in one write, unsynced.
 *
 * The journal record is synced at every sync level, not only at
 * LAYERED_SYNC_FSYNC: the rows' own writes may reach the disk in any order
 * with respect to the record, and a row that survived a power cut without
 * its record would be half a batch.  So a committed batch is also durable,
 * at the price of one fdatasync per batch whatever the level.
 *
 * Replay (batch_journal_open, at open): every intact record is applied with
 * fs_batch_apply(FS_BATCH_REPLAY), which skips an op whose file already
 * holds its LSN or a later one.  The rule is exact because a file is
 * append-only while a record that names it is in the journal, and a batch
 * holds its files' locks from the LSN draw to the write, so each file's
 * LSNs grow in file order (filestore.h).  A torn tail is cut (a torn batch
 * was never committed: its caller saw no success); a damaged record with
 * intact data after it is LAYERED_CORRUPT, with the file and offset.
 *
 * Retiring (batch_retire): sync every open constituent, then truncate the
 * journal and sync it.  It must run before anything rewrites or removes a
 * constituent that a record may name -- the drain's clear at step-up, a
 * drop, an offload -- or replay could write into a cleared ingest or into a
 * table re-created under the same name (its new files are empty, so the
 * LSN rule would let an old record in).  Checkpoints retire too, which
 * keeps the journal short.  A compaction racing a batch needs no retire:
 * it keeps every live record's LSN, so a record committed after the
 * checkpoint's retire still replays exactly.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "batch_rec.h"
#include "internal.h"

#define BATCH_JOURNAL BREC_JOURNAL
/* The record format is in batch_rec.h. */
#define BATCH_HDR_BYTES BREC_HDR_BYTES
#define BATCH_OP_BYTES BREC_OP_BYTES

struct batch_op {
    bool remove;
    size_t table;    /* index into the batch's tables */
    unsigned char *key; /* key, then value, in one allocation */
    size_t klen;
    size_t vlen;
};

struct batch_table {
    char name[LAYERED_NAME_MAX + 1];
    struct dhandle *ingest, *stable; /* pinned, locked shared at commit */
};

struct layered_batch {
    TAILQ_ENTRY(layered_batch) link;
    layered_session *session;
    bool spent; /* committed (or failed to): only close is left */
    struct batch_op *ops;
    size_t nops, ops_cap;
    struct batch_table *tables;
    size_t ntables, tables_cap;
    uint64_t bytes; /* journal bytes the ops will take */
};

static inline void
put16(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}

static inline void
put32(unsigned char *p, uint32_t v)
{
    put16(p, v);
    put16(p + 2, v >> 16);
}

static inline void
put64(unsigned char *p, uint64_t v)
{
    put32(p, (uint32_t)v);
    put32(p + 4, (uint32_t)(v >> 32));
}

int
layered_batch_open(layered_session *session, layered_batch **batchp)
{
    layered_batch *b;

    if (batchp == NULL)
        return EINVAL;
    *batchp = NULL;
    if (session == NULL)
        return EINVAL;
    API_CONN(session->conn);
    if ((b = calloc(1, sizeof(*b))) == NULL)
        return ENOMEM;
    b->session = session;
    TAILQ_INSERT_TAIL(&session->batches, b, link);
    *batchp = b;
    return 0;
}

/*
 * batch_add --
 *     Copy one op into the batch.  Every check comes first: a call that
 *     fails leaves the batch as it was.
 */
static int
batch_add(layered_batch *b, const char *uri, bool remove, const void *key,
          size_t klen, const void *value, size_t vlen)
{
    struct batch_table *nt;
    struct batch_op *no, *op;
    const char *name;
    uint64_t bytes;
    size_t i, nlen;
    int ret;

    if (b == NULL)
        return EINVAL;
    if (conn_panicked(b->session->conn))
        return LAYERED_PANIC;
    if (b->spent || uri == NULL || key == NULL || klen == 0 ||
        klen > LAYERED_KEY_MAX || vlen > LAYERED_VALUE_MAX ||
        (value == NULL && vlen > 0))
        return EINVAL;
    if ((ret = tbl_uri_parse(uri, &name)) != 0)
        return ret;
    nlen = strlen(name);
    bytes = BATCH_OP_BYTES + nlen + klen + vlen;
    if (b->nops >= LAYERED_BATCH_OPS_MAX ||
        b->bytes + bytes > LAYERED_BATCH_BYTES_MAX)
        return EINVAL;
    for (i = 0; i < b->ntables; i++)
        if (strcmp(b->tables[i].name, name) == 0)
            break;
    if (i == b->ntables && b->ntables == b->tables_cap) {
        size_t cap = b->tables_cap == 0 ? 4 : b->tables_cap * 2;
        if ((nt = realloc(b->tables, cap * sizeof(*nt))) == NULL)
            return ENOMEM;
        b->tables = nt;
        b->tables_cap = cap;
    }
    if (b->nops == b->ops_cap) {
        size_t cap = b->ops_cap == 0 ? 16 : b->ops_cap * 2;
        if ((no = realloc(b->ops, cap * sizeof(*no))) == NULL)
            return ENOMEM;
        b->ops = no;
        b->ops_cap = cap;
    }
    op = &b->ops[b->nops];
    if ((op->key = malloc(klen + vlen)) == NULL)
        return ENOMEM;
    memcpy(op->key, key, klen);
    if (vlen > 0)
        memcpy(op->key + klen, value, vlen);
    op->klen = klen;
    op->vlen = vlen;
    op->remove = remove;
    op->table = i;
    if (i == b->ntables) {
        memset(&b->tables[i], 0, sizeof(b->tables[i]));
        memcpy(b->tables[i].name, name, nlen + 1);
        b->ntables++;
    }
    b->nops++;
    b->bytes += bytes;
    return 0;
}

int
layered_batch_put(layered_batch *b, const char *uri, const void *key,
                  size_t klen, const void *value, size_t vlen)
{
    return batch_add(b, uri, false, key, klen, value, vlen);
}

int
layered_batch_remove(layered_batch *b, const char *uri, const void *key,
                     size_t klen)
{
    return batch_add(b, uri, true, key, klen, NULL, 0);
}

/* What batch_commit_record needs besides the ops. */
struct commit_ctx {
    layered_conn *conn;
    layered_batch *b;
};

/*
 * batch_write_record --
 *     Append one encoded record at the journal's end and sync it.  On
 *     failure the journal is cut back to where it was and that cut made
 *     durable, so a record the caller is told failed can never come back
 *     at replay; if even the cut fails, the connection panics (whether the
 *     batch is committed is then unknown).  Journal lock held.
 */
static int
batch_write_record(layered_conn *conn, const unsigned char *rec, size_t len)
{
    const struct os_ops *os = conn->os;
    size_t done = 0;
    ssize_t n;
    int ret, err;

    if (conn->batch_tail_dirty) {
        if (os->ftruncate(conn->batch_fd, (off_t)conn->batch_end) != 0 ||
            os->fdatasync(conn->batch_fd) != 0)
            return errno;
        conn->batch_tail_dirty = false;
    }
    if ((ret = fp_hit(&conn->fps, "batch.write")) != 0)
        return ret;
    while (done < len) {
        n = os->pwritev(conn->batch_fd,
                        &(struct iovec){.iov_base = (void *)(rec + done),
                                        .iov_len = len - done},
                        1, (off_t)(conn->batch_end + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            ret = n < 0 ? errno : EIO;
            goto cut;
        }
        done += (size_t)n;
    }
    if ((ret = fp_hit(&conn->fps, "batch.sync")) != 0)
        goto cut;
    if (os->fdatasync(conn->batch_fd) != 0) {
        ret = errno;
        goto cut;
    }
    conn->batch_end += len;
    return 0;

cut:
    err = 0;
    if (os->ftruncate(conn->batch_fd, (off_t)conn->batch_end) != 0 ||
        os->fdatasync(conn->batch_fd) != 0)
        err = errno;
    if (err != 0) {
        conn->batch_tail_dirty = true;
        return layered_panic(conn, ret,
                             "batch: %s/%s: a failed append (%s) could not "
                             "be cut back (%s)",
                             conn->home, BATCH_JOURNAL, layered_strerror(ret),
                             layered_strerror(err));
    }
    return ret;
}

/*
 * batch_commit_record --
 *     fs_batch_apply's commit: encode the batch with the LSNs it drew and
 *     append it durably.  Journal lock and the target files' locks held.
 */
static int
batch_commit_record(void *arg, const fs_batch_op *fops, size_t n)
{
    struct commit_ctx *ctx = arg;
    layered_batch *b = ctx->b;
    const struct batch_op *op;
    unsigned char *rec, *p;
    size_t len = BATCH_HDR_BYTES + (size_t)b->bytes, i, nlen;
    int ret;

    if ((ret = fp_hit(&ctx->conn->fps, "batch.before_journal")) != 0)
        return ret;
    if ((rec = malloc(len)) == NULL)
        return ENOMEM;
    p = rec + BATCH_HDR_BYTES;
    for (i = 0; i < n; i++) {
        op = &b->ops[i];
        nlen = strlen(b->tables[op->table].name);
        p[0] = (unsigned char)fops[i].kind;
        p[1] = fops[i].f == b->tables[op->table].ingest->fs ? 0 : 1;
        put16(p + 2, (uint32_t)nlen);
        put32(p + 4, (uint32_t)op->klen);
        put32(p + 8, (uint32_t)op->vlen);
        p += BATCH_OP_BYTES;
        memcpy(p, b->tables[op->table].name, nlen);
        p += nlen;
        memcpy(p, op->key, op->klen + op->vlen);
        p += op->klen + op->vlen;
    }
    put32(rec + 4, crc32c(0, rec + BATCH_HDR_BYTES, (size_t)b->bytes));
    put64(rec + 8, fops[0].lsn);
    put32(rec + 16, (uint32_t)n);
    put32(rec + 20, (uint32_t)b->bytes);
    put32(rec, crc32c(0, rec + 4, BATCH_HDR_BYTES - 4));
    ret = batch_write_record(ctx->conn, rec, len);
    free(rec);
    /* Committed, no row written yet: where crash tests stop a process.
     * An error injected here is ignored (the record is durable: the batch
     * is committed whatever the failpoint says). */
    if (ret == 0)
        (void)fp_hit(&ctx->conn->fps, "batch.committed");
    return ret;
}

/*
 * batch_release_tables --
 *     Undo the resolution: unlock and unpin every table's handles.
 */
static void
batch_release_tables(layered_batch *b)
{
    size_t i;

    for (i = 0; i < b->ntables; i++) {
        if (b->tables[i].ingest != NULL)
            dh_unlock_release(b->tables[i].ingest);
        if (b->tables[i].stable != NULL)
            dh_unlock_release(b->tables[i].stable);
        b->tables[i].ingest = b->tables[i].stable = NULL;
    }
}

int
layered_batch_commit(layered_batch *b)
{
    struct commit_ctx ctx;
    layered_conn *conn;
    fs_batch_op *fops = NULL;
    struct batch_op *op;
    struct dhandle *dh;
    char dhname[LAYERED_NAME_MAX + 16];
    size_t i;
    int ret = 0;
    bool leader, role = false, committed = false;

    if (b == NULL)
        return EINVAL;
    conn = b->session->conn;
    API_CONN(conn);
    if (b->spent)
        return EINVAL;
    b->spent = true;
    if (b->nops == 0)
        return 0;
    if ((fops = calloc(b->nops, sizeof(*fops))) == NULL)
        return ENOMEM;

    /* 1. Resolve every table as a cursor open does: pinned and locked
     * shared until the end, so a drop or an offload cannot remove a file
     * under the batch (it gets EBUSY), and one that came first makes the
     * lookup fail (ENOENT) before anything is written. */
    for (i = 0; i < b->ntables; i++) {
        dh_name(dhname, sizeof(dhname), b->tables[i].name, true);
        ERR(dh_get_locked(conn, dhname, &b->tables[i].ingest));
        dh_name(dhname, sizeof(dhname), b->tables[i].name, false);
        ERR(dh_get_locked(conn, dhname, &b->tables[i].stable));
    }

    /* 2. The role lock, shared, as a single write takes it (cursor.c):
     * the role cannot change until the batch is applied. */
    lock_order_acquire(LOCK_ROLE);
    (void)pthread_rwlock_rdlock(&conn->role_lock);
    role = true;
    /* A step-up that failed panicked before releasing the role lock. */
    if (conn_panicked(conn))
        ERR(LAYERED_PANIC);
    ERR(fp_hit(&conn->fps, "batch.before_commit"));
    leader = atomic_load(&conn->role) == LAYERED_ROLE_LEADER;
    for (i = 0; i < b->nops; i++) {
        op = &b->ops[i];
        dh = leader ? b->tables[op->table].stable
                    : b->tables[op->table].ingest;
        fops[i].f = dh->fs;
        fops[i].key = op->key;
        fops[i].klen = op->klen;
        fops[i].val = op->remove ? NULL : op->key + op->klen;
        fops[i].vlen = op->vlen;
        fops[i].kind = !op->remove ? FS_BATCH_PUT
                       : leader    ? FS_BATCH_DEL
                                   : FS_BATCH_TOMB;
    }

    /* 3. Journal record, then the rows.  The journal lock is held over
     * both, so a retire (which takes it) never truncates a record whose
     * rows are not yet written. */
    ctx.conn = conn;
    ctx.b = b;
    conn_lock(&conn->batch_lock, LOCK_BATCH);
    ret = fs_batch_apply(fops, b->nops, 0, batch_commit_record, &ctx,
                         &committed);
    if (ret == 0)
        ret = fp_hit(&conn->fps, "batch.applied");
    conn_unlock(&conn->batch_lock, LOCK_BATCH);
    if (ret != 0 && committed)
        /* The record is durable but some rows are not in their files: the
         * connection cannot serve reads that would miss them.  The next
         * open replays the record. */
        ret = layered_panic(conn, ret,
                            "batch: committed, but writing its rows failed: "
                            "%s (the next open replays it)",
                            layered_strerror(ret));
    if (ret == 0) {
        (void)atomic_fetch_add(&conn->st_batches, 1);
        (void)atomic_fetch_add(&conn->st_batch_ops, b->nops);
    }

err:
    if (role) {
        (void)pthread_rwlock_unlock(&conn->role_lock);
        lock_order_release(LOCK_ROLE);
    }
    batch_release_tables(b);
    free(fops);
    return ret;
}

/*
 * batch_free --
 *     Free a batch and take it off its session's list.  The session's
 *     thread.
 */
void
batch_free(layered_batch *b)
{
    size_t i;

    TAILQ_REMOVE(&b->session->batches, b, link);
    for (i = 0; i < b->nops; i++)
        free(b->ops[i].key);
    free(b->ops);
    free(b->tables);
    free(b);
}

int
layered_batch_close(layered_batch *b)
{
    if (b == NULL)
        return EINVAL;
    batch_free(b);
    return 0;
}

/*
 * batch_retire_locked --
 *     Make every row the journal holds durable in its file, then empty the
 *     journal durably.  Journal lock held.
 */
static int
batch_retire_locked(layered_conn *conn)
{
    struct dhandle **arr = NULL;
    size_t n = 0, i;
    int ret;

    if (conn->batch_end == 0 && !conn->batch_tail_dirty)
        return 0;
    ERR(dh_collect(conn, &arr, &n));
    /* Every open constituent: the journal does not say which files its
     * rows went to once their handles may have been closed, and closing a
     * handle syncs it (a failed close panics).  A clean file costs no I/O
     * (fs_sync). */
    for (i = 0; i < n; i++)
        if (!(atomic_load(&arr[i]->flags) & DH_DEAD))
            ERR_MSG(conn, fs_sync(arr[i]->fs),
                    "batch: retiring the journal: syncing %s failed",
                    arr[i]->name);
    ERR(fp_hit(&conn->fps, "batch.retire"));
    /* The rows are durable in their files: the records are retired, even
     * if emptying the file fails.  Until the emptying is durable the old
     * bytes may still be there (after a failed ftruncate) or come back
     * after a power cut, so the tail stays dirty: the next append and the
     * next retire empty the file again, durably, before anything relies on
     * it. */
    conn->batch_end = 0;
    conn->batch_tail_dirty = true;
    if (conn->os->ftruncate(conn->batch_fd, 0) != 0 ||
        conn->os->fdatasync(conn->batch_fd) != 0)
        ERR_MSG(conn, errno, "batch: %s/%s: emptying the journal failed",
                conn->home, BATCH_JOURNAL);
    conn->batch_tail_dirty = false;

err:
    for (i = 0; i < n; i++)
        dh_release(arr[i]);
    free(arr);
    return ret;
}

int
batch_retire(layered_conn *conn)
{
    int ret;

    conn_lock(&conn->batch_lock, LOCK_BATCH);
    ret = batch_retire_locked(conn);
    conn_unlock(&conn->batch_lock, LOCK_BATCH);
    return ret;
}

/*
 * batch_lsn_raise --
 *     Raise the connection's LSN counter past a record's LSNs, applied or
 *     not, so no later write reuses one.
 */
static void
batch_lsn_raise(layered_conn *conn, uint64_t lsn)
{
    uint64_t cur = atomic_load(&conn->lsn);

    while (cur < lsn && !atomic_compare_exchange_weak(&conn->lsn, &cur, lsn))
        ;
}

/*
 * batch_replay_record --
 *     Apply one journal record's ops that their files lack.  At open,
 *     before any other thread can use the connection.
 */
static int
batch_replay_record(layered_conn *conn, const struct brec *r, uint64_t off)
{
    fs_batch_op *fops = NULL;
    struct dhandle **dhs = NULL;
    struct brec_op op;
    struct table *t;
    char name[LAYERED_NAME_MAX + 1], dhname[LAYERED_NAME_MAX + 16];
    uint64_t pos = 0;
    size_t i, n = 0;
    bool committed;
    int ret = 0;

    if ((fops = calloc(r->nops, sizeof(*fops))) == NULL ||
        (dhs = calloc(r->nops, sizeof(*dhs))) == NULL)
        ERR(ENOMEM);
    for (i = 0; i < r->nops; i++) {
        if (!brec_op_next(r, &pos, &op))
            goto bad;
        memcpy(name, op.name, op.nlen);
        name[op.nlen] = '\0';
        if (!tbl_name_valid(name, op.nlen))
            goto bad;
        /* Records are retired before a table is dropped or offloaded, so
         * a table missing here is not one of ours to write: its ops are
         * left out, never written into another incarnation. */
        if ((t = tbl_find(conn, name)) == NULL || t->dropping ||
            (t->state != LAYERED_TABLE_ACTIVE &&
             t->state != LAYERED_TABLE_ARCHIVED)) {
            layered_msg(conn, "batch: %s/%s: offset %" PRIu64
                        ": layered:%s is not there; its ops are skipped",
                        conn->home, BATCH_JOURNAL, off, name);
            continue;
        }
        dh_name(dhname, sizeof(dhname), name, op.cons == 0);
        ERR(dh_get(conn, dhname, &dhs[n]));
        fops[n].f = dhs[n]->fs;
        fops[n].key = op.key;
        fops[n].klen = op.klen;
        fops[n].val = op.val;
        fops[n].vlen = op.vlen;
        fops[n].kind = (int)op.kind;
        fops[n].lsn = r->first_lsn + i;
        n++;
    }
    if (pos != r->blen)
        goto bad;
    ret = fs_batch_apply(fops, n, FS_BATCH_REPLAY, NULL, NULL, &committed);
    goto err;

bad:
    layered_msg(conn, "batch: %s/%s: corrupt record at offset %" PRIu64
                ": its ops do not parse",
                conn->home, BATCH_JOURNAL, off);
    ret = LAYERED_CORRUPT;
err:
    if (dhs != NULL)
        for (i = 0; i < n; i++)
            dh_release(dhs[i]);
    free(dhs);
    free(fops);
    return ret;
}

/*
 * batch_journal_open --
 *     Open (or create) the journal, replay its committed records, cut a
 *     torn tail, and retire it.  At open, before any other thread can use
 *     the connection; after the metadata is loaded and recovered.
 */
int
batch_journal_open(layered_conn *conn)
{
    const struct os_ops *os = conn->os;
    unsigned char *buf = NULL;
    struct brec rec;
    struct stat st;
    uint64_t size, off;
    const char *why = NULL;
    bool created = false;
    int ret = 0, rc;

    conn->batch_fd = os->openat(conn->home_fd, BATCH_JOURNAL,
                                O_RDWR | O_CLOEXEC, 0);
    if (conn->batch_fd < 0 && errno == ENOENT) {
        conn->batch_fd = os->openat(conn->home_fd, BATCH_JOURNAL,
                                    O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        created = true;
    }
    if (conn->batch_fd < 0)
        ERR_MSG(conn, errno, "batch: %s/%s: open failed", conn->home,
                BATCH_JOURNAL);
    /* A record is committed by its fdatasync, which does not make the
     * file's name durable: the directory entry must be first. */
    if (created)
        ERR_MSG(conn, os_dir_fsync(os, conn->home_fd),
                "batch: %s: syncing the directory failed", conn->home);
    if (os->fstat(conn->batch_fd, &st) != 0)
        ERR(errno);
    size = (uint64_t)st.st_size;
    if (size == 0)
        return 0;
    if ((buf = malloc((size_t)size)) == NULL)
        ERR(ENOMEM);
    for (off = 0; off < size;) {
        ssize_t n = os->pread(conn->batch_fd, buf + off, size - off,
                              (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            ERR(n < 0 ? errno : EIO);
        off += (uint64_t)n;
    }

    /* The same torn-tail rules as a constituent file (batch_rec.c). */
    for (off = 0; off < size; off += rec.len) {
        if ((rc = brec_check(buf, size, off, &rec, &why)) == BREC_TORN)
            break;
        if (rc == BREC_BAD)
            goto corrupt;
        batch_lsn_raise(conn, rec.first_lsn + rec.nops - 1);
        ERR(batch_replay_record(conn, &rec, off));
    }
    conn->batch_end = off;
    if (off < size) {
        /* A torn batch was never committed: its caller saw no success. */
        layered_msg(conn, "batch: %s/%s: cut torn tail at offset %" PRIu64
                    " (%" PRIu64 " bytes): %s",
                    conn->home, BATCH_JOURNAL, off, size - off, why);
        conn->batch_tail_dirty = true;
    }
    ERR(batch_retire_locked(conn));
    free(buf);
    return 0;

corrupt:
    layered_msg(conn, "batch: %s/%s: corrupt record at offset %" PRIu64
                ": %s",
                conn->home, BATCH_JOURNAL, off, why);
    ret = LAYERED_CORRUPT;
err:
    free(buf);
    return ret;
}

/*
 * batch_journal_close --
 *     Close the journal's descriptor.  At close, once no other thread uses
 *     the connection.
 */
void
batch_journal_close(layered_conn *conn)
{
    if (conn->batch_fd >= 0)
        (void)conn->os->close(conn->batch_fd);
    conn->batch_fd = -1;
}
