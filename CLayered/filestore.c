/*
 * filestore.c -- the backing file of one constituent: an append-only log of
 * checksummed records and an in-memory ordered index of key -> offset.
 * This file holds the point operations (put, delete, seek, read, sync,
 * info); the rest of the file store is in fs_rec.c (record codec), fs_io.c
 * (I/O), fs_index.c (arena and index), fs_open.c (open and recovery),
 * fs_compact.c (compaction and clear) and fs_copy.c (the drain copy), which
 * share fs_int.h.  filestore.h is the interface of them all.
 *
 * On-disk format (all integers little-endian)
 * -------------------------------------------
 * offset 0: a 32-byte file header
 *     char magic[8] = "LYRDFILE", u32 version = 1, u32 header size = 32,
 *     u64 reserved = 0, u32 reserved = 0, u32 crc32c of the first 28 bytes.
 * then records, each a 24-byte header followed by the key and the value:
 *     u32 hcrc       crc32c of the 20 header bytes after this field
 *     u32 bcrc       crc32c of key || value
 *     u64 lsn
 *     u32 klen_type  low 24 bits key length, high 8 bits the record type
 *     u32 vlen
 * Record types: PUT (key = value), DEL (a stable delete: the key leaves the
 * index; compaction drops it), TOMB (an ingest tombstone: the index keeps an
 * entry that hides the stable value; compaction keeps it).
 *
 * Recovery (fs_open) reads every record and checks both checksums.  A torn
 * tail -- a record running past the end of the file, a bad record followed
 * only by zero bytes, or a last record whose body checksum fails and that
 * ends exactly at the end of the file -- is what a crash in the middle of an
 * append leaves behind: it is cut and reported.  Damage anywhere else is
 * LAYERED_CORRUPT with the file and offset; nothing is skipped silently.
 *
 * The index is a red-black tree (libbsd) whose nodes carry the key inline
 * and come from a per-file arena (bump allocation in large chunks, freed all
 * at once when the index is rebuilt), so a row costs one node of 48 bytes
 * plus its key, rounded to 8, and no malloc.  Nodes unlinked by a stable
 * delete go on per-size free lists inside the arena.
 *
 * Locking.  Each file has one pthread rwlock, the file's lock,
 * writer-preferring (a stream of readers cannot starve a writer; never
 * taken recursively).  It protects everything readers look at: the tree,
 * the counters, end, disk_end, wgen/synced_wgen, the write buffer and the
 * descriptor (which compaction replaces).  Readers (fs_seek, fs_read_value,
 * fs_get_info, fs_empty, fs_sync_gen) take it shared.  The lock is never
 * held while calling out of the file store except to the env's failpoint
 * and message hooks, which must not call back into it.
 *
 * Group commit (fs_group.c) is the write path of fs_put at
 * LAYERED_SYNC_WRITE and LAYERED_SYNC_FSYNC.  Before it, fs_put held the
 * lock exclusive across the index lookup, the LSN draw and a pwritev per
 * row, so two inserting threads ran one at a time, and slower than one
 * (each handed the lock to the other through a futex sleep and wake-up).
 * Now a put:
 *   1. computes its body checksum (no lock) and, if other writers are
 *      about, walks the index to its key under the lock shared, so the
 *      walk's cache misses (most of an insert's time in a large index)
 *      are taken beside the other writers and not under the lock
 *      exclusive;
 *   2. under glock (a mutex of the file, held for a few dozen
 *      instructions): waits while the gate is closed, allocates its index
 *      node (ENOMEM here changes nothing), enters the gate, draws its LSN,
 *      encodes its header and queues its record (header on its stack, key
 *      and value in the caller's buffers), so queue order is LSN order;
 *   3. if no writer leads, it leads; else it waits (spins briefly, then
 *      sleeps on gcv) until the leader marks its record done or hands it
 *      the lead.  A leader gives writers about to queue a moment to join,
 *      takes up to GROUP_MAX queued records, gives them consecutive
 *      offsets from disk_end, writes them with one pwritev (and, under
 *      LAYERED_SYNC_FSYNC, one fdatasync for all) with no lock held; then
 *      under the lock exclusive it publishes the new end and links every
 *      entry of the group, in queue order; then under glock it marks every
 *      record of the group done with the result and hands the lead to the
 *      first record queued meanwhile;
 *   4. leaves the gate.
 * So one pwritev serves everyone queued while the previous one ran, and
 * the file's lock is held exclusive for index links, never for a system
 * call, so readers and the next writers' walks go on during a write.  The
 * guarantees:
 *   - Acknowledged means written: a put returns 0 only after its group's
 *     pwritev (and fdatasync) returned.  A reader sees a row only once it
 *     is linked, after its write completed, when its put can no longer
 *     fail; the row is never read from the queue (readers of the write
 *     buffer are LAYERED_SYNC_NONE's only).
 *   - No holes, no reordering: there is one leader at a time, each group
 *     is written at disk_end as its leader found it, and the next leader
 *     starts only after the previous one published the new disk_end, so
 *     the log is always a prefix of records in offset (= LSN) order and
 *     recovery's torn-tail rule holds for a crash at any moment.
 *   - A failed group changed nothing: its bytes are cut back (tail_dirty
 *     makes the next write retry a failed cut first), disk_end does not
 *     move, every put of the group gets the error, its nodes go back to
 *     the arena unlinked, and the next group is written at the same offset.
 *   - Newest wins: groups are linked one after another and in queue
 *     order within a group, so the later record of a key (higher offset,
 *     later LSN) is the one indexed, as recovery finds it.
 * The gate keeps the exclusive operations -- fs_del, fs_sync, fs_compact,
 * fs_clear, fs_copy's destination -- apart from group writers: they close
 * it (fs_gate_close: new puts wait at it) and wait until every put inside
 * has linked or failed, and only then take the lock exclusive; so no group
 * is queued or in flight while they move offsets, replace the descriptor
 * or sync, and an fs_sync includes every acknowledged put.
 *
 * Who may touch what:
 *   glock protects the queue, the leader role, gate_closers, and the arena
 *   while the gate is open (group writers allocate and free nodes under it
 *   alone; the lock exclusive with the gate closed, or at
 *   LAYERED_SYNC_NONE where no group writer exists, suffices otherwise).
 *   The write role -- the current leader, or an exclusive operation with
 *   the gate closed; never both, one at a time -- owns the bytes past
 *   disk_end, tail_dirty and sync_error, and may read disk_end without the
 *   lock, since only the write role changes it (always under the lock
 *   exclusive, which readers exclude).
 *   gate_writers and arriving are atomic (see gate_leave for why no
 *   wake-up is lost); a record's state is atomic, stored by its leader
 *   under glock with release order and read by its writer with acquire;
 *   a queued record's off, node and ret belong to its leader until then.
 * Order: the gate (a wait, not a lock: closed before taking the lock,
 * never while holding it) -> the file's lock -> glock.  glock is never held
 * while taking the file's lock.  fs_copy closes the destination's gate,
 * then takes the source shared and the destination exclusive, per batch;
 * no group writer of the destination waits for the source.
 * At LAYERED_SYNC_NONE, fs_put keeps the buffered path: the record goes
 * into the write buffer under the lock exclusive.
 */

#include "fs_int.h"

int
fs_put(fs_file *f, const void *key, size_t klen, const void *val,
       size_t vlen, uint64_t *lsnp)
{
    unsigned char hdr[REC_HDR_SIZE];
    struct fs_node *n, *parent = NULL;
    uint64_t lsn, off;
    uint32_t bcrc;
    int dir = 0, ret;
    bool fresh = false;

    if (klen == 0 || klen > LAYERED_KEY_MAX || key == NULL ||
        vlen > LAYERED_VALUE_MAX || (val == NULL && vlen > 0))
        return (EINVAL);
    /* The body checksum needs no lock: compute it first. */
    bcrc = crc32c(crc32c(0, key, klen), val, vlen);

    if (f->env.sync != LAYERED_SYNC_NONE) {
        struct fs_gw gw;

        gw.key = key;
        gw.klen = klen;
        gw.val = val;
        gw.vlen = vlen;
        gw.bcrc = bcrc;
        if ((ret = fs_group_put(f, &gw)) == 0 && lsnp != NULL)
            *lsnp = gw.lsn;
        return (ret);
    }

    /* LAYERED_SYNC_NONE: the record goes to the write buffer under the
     * lock; no group writer exists at this level. */
    (void)pthread_rwlock_wrlock(&f->lock);
    if ((n = fs_idx_find(&f->tree, key, klen, &parent, &dir)) == NULL) {
        if ((n = fs_node_alloc(&f->arena, key, klen)) == NULL)
            ERR(ENOMEM);
        fresh = true;
    }
    lsn = atomic_fetch_add(f->env.lsn, 1) + 1;
    fs_rec_hdr_encode(hdr, REC_PUT, lsn, klen, vlen, bcrc);
    ERR(fs_append(f, hdr, key, klen, val, vlen, &off));
    if (fresh) {
        fs_idx_link(&f->tree, n, parent, dir);
        ++f->entries;
        fresh = false;
        fs_idx_set(f, n, true, off, (uint32_t)vlen, false);
    } else
        fs_idx_set(f, n, false, off, (uint32_t)vlen, false);
    if (lsn > f->max_lsn)
        f->max_lsn = lsn;
    if (lsnp != NULL)
        *lsnp = lsn;

err:
    if (fresh)
        fs_node_free(&f->arena, n);
    (void)pthread_rwlock_unlock(&f->lock);
    return (ret);
}

int
fs_del(fs_file *f, const void *key, size_t klen, bool keep_tombstone,
       uint64_t *lsnp)
{
    unsigned char hdr[REC_HDR_SIZE];
    struct fs_node *n, *parent = NULL;
    uint64_t lsn, off;
    uint32_t bcrc;
    int dir = 0, ret;
    bool fresh = false;

    if (klen == 0 || klen > LAYERED_KEY_MAX || key == NULL)
        return (EINVAL);
    bcrc = crc32c(0, key, klen);

    fs_gate_close(f);
    (void)pthread_rwlock_wrlock(&f->lock);
    n = fs_idx_find(&f->tree, key, klen, &parent, &dir);
    if (!keep_tombstone && (n == NULL || NODE_IS_TOMB(n)))
        ERR(LAYERED_NOTFOUND);
    if (keep_tombstone && n == NULL) {
        if ((n = fs_node_alloc(&f->arena, key, klen)) == NULL)
            ERR(ENOMEM);
        fresh = true;
    }
    lsn = atomic_fetch_add(f->env.lsn, 1) + 1;
    fs_rec_hdr_encode(hdr, keep_tombstone ? REC_TOMB : REC_DEL, lsn, klen, 0,
                      bcrc);
    ERR(fs_append(f, hdr, key, klen, NULL, 0, &off));
    if (!keep_tombstone)
        fs_idx_remove(f, n);
    else if (fresh) {
        fs_idx_link(&f->tree, n, parent, dir);
        ++f->entries;
        fresh = false;
        fs_idx_set(f, n, true, off, 0, true);
    } else
        fs_idx_set(f, n, false, off, 0, true);
    if (lsn > f->max_lsn)
        f->max_lsn = lsn;
    if (lsnp != NULL)
        *lsnp = lsn;

err:
    if (fresh)
        fs_node_free(&f->arena, n);
    (void)pthread_rwlock_unlock(&f->lock);
    fs_gate_open(f);
    return (ret);
}

/*
 * pos_fill --
 *     Copy a node into a position (the key is copied: the position stays
 *     meaningful after the node is gone).
 */
static int
pos_fill(fs_pos *pos, const struct fs_node *n, uint64_t gen)
{
    size_t klen = NODE_KLEN(n);
    void *p;

    if (klen > pos->key_cap) {
        if ((p = realloc(pos->key, klen)) == NULL) {
            pos->valid = false;
            pos->node = NULL;
            return (ENOMEM);
        }
        pos->key = p;
        pos->key_cap = klen;
    }
    memcpy(pos->key, n->key, klen);
    pos->klen = klen;
    pos->off = n->off;
    pos->vlen = n->vlen;
    pos->tombstone = NODE_IS_TOMB(n);
    pos->valid = true;
    pos->node = (void *)n;
    pos->gen = gen;
    return (0);
}

int
fs_seek(fs_file *f, const void *key, size_t klen, enum fs_seek_mode mode,
        fs_pos *pos)
{
    struct fs_node *n = NULL;
    int ret = 0;

    if ((mode == FS_NEXT || mode == FS_PREV) && !pos->valid)
        return (EINVAL);
    if (key == NULL) {
        if (klen > 0 && mode <= FS_LT)
            return (EINVAL);
        key = "";
    }

    (void)pthread_rwlock_rdlock(&f->lock);
    switch (mode) {
    case FS_EQ:
    case FS_GE:
    case FS_GT:
    case FS_LE:
    case FS_LT:
        n = fs_idx_search(&f->tree, key, klen, mode);
        break;
    case FS_FIRST:
        n = RB_MIN(fs_tree, &f->tree);
        break;
    case FS_LAST:
        n = RB_MAX(fs_tree, &f->tree);
        break;
    case FS_NEXT:
    case FS_PREV:
        /* Step from the cached node while no node has left the tree
         * since the position was filled; else search by its key. */
        if (pos->node != NULL && pos->gen == f->gen)
            n = mode == FS_NEXT ? RB_NEXT(fs_tree, &f->tree, pos->node)
                                : RB_PREV(fs_tree, &f->tree, pos->node);
        else
            n = fs_idx_search(&f->tree, pos->key, pos->klen,
                              mode == FS_NEXT ? FS_GT : FS_LT);
        break;
    default:
        ret = EINVAL;
        break;
    }
    if (ret == 0) {
        if (n == NULL) {
            pos->valid = false;
            pos->node = NULL;
            ret = LAYERED_NOTFOUND;
        } else
            ret = pos_fill(pos, n, f->gen);
    }
    (void)pthread_rwlock_unlock(&f->lock);
    return (ret);
}

/*
 * fs_read_record --
 *     Read the record at off into hdr, key and value buffers, from the
 *     write buffer or the file.  Caller holds the lock (either mode).
 */
static int
fs_read_record(fs_file *f, uint64_t off, unsigned char *hdr, void *key,
               size_t klen, void *val, size_t vlen)
{
    struct iovec iov[3];
    const unsigned char *p;

    if (off >= f->disk_end) {
        p = f->wbuf + (off - f->disk_end);
        memcpy(hdr, p, REC_HDR_SIZE);
        memcpy(key, p + REC_HDR_SIZE, klen);
        if (vlen > 0)
            memcpy(val, p + REC_HDR_SIZE + klen, vlen);
        return (0);
    }
    iov[0].iov_base = hdr;
    iov[0].iov_len = REC_HDR_SIZE;
    iov[1].iov_base = key;
    iov[1].iov_len = klen;
    iov[2].iov_base = val;
    iov[2].iov_len = vlen;
    return (fs_preadv_full(f, iov, 3, off));
}

int
fs_read_value(fs_file *f, const fs_pos *pos, void **bufp, size_t *capp)
{
    unsigned char hdr[REC_HDR_SIZE];
    struct rec_hdr h;
    const char *why;
    unsigned char *buf;
    size_t need;
    bool moved;
    int ret = 0;

    if (!pos->valid)
        return (EINVAL);
    /* The buffer holds the value, then the key read back for the check. */
    need = pos->vlen + pos->klen;
    if (*capp < need || *bufp == NULL) {
        if ((buf = realloc(*bufp, need)) == NULL)
            return (ENOMEM);
        *bufp = buf;
        *capp = need;
    }
    buf = *bufp;

    (void)pthread_rwlock_rdlock(&f->lock);
    /* Records never change in place; only compaction and clear move
     * them.  A record that no longer matches after one of those means the
     * entry moved: the caller seeks again.  Otherwise it is damage. */
    moved = pos->gen < f->rewrite_gen;
    if (pos->off < FILE_HDR_SIZE ||
        pos->off + rec_size(pos->klen, pos->vlen) > f->end) {
        why = "record offset past end of file";
        goto mismatch;
    }
    ret = fs_read_record(f, pos->off, hdr, buf + pos->vlen, pos->klen, buf,
                         pos->vlen);
    if (ret == LAYERED_CORRUPT && moved)
        ret = LAYERED_NOTFOUND;
    if (ret != 0)
        goto err;
    if (!fs_rec_hdr_decode(hdr, &h)) {
        why = "bad record header";
        goto mismatch;
    }
    if (h.klen != pos->klen || h.vlen != pos->vlen ||
        (h.type == REC_TOMB) != pos->tombstone || h.type == REC_DEL ||
        memcmp(buf + pos->vlen, pos->key, pos->klen) != 0) {
        why = "record does not hold the indexed key";
        goto mismatch;
    }
    if (crc32c(crc32c(0, buf + pos->vlen, pos->klen), buf, pos->vlen) !=
        h.bcrc) {
        why = "body checksum mismatch";
        goto mismatch;
    }
    goto err;

mismatch:
    ret = moved ? LAYERED_NOTFOUND : fs_corrupt(f, pos->off, why);
err:
    (void)pthread_rwlock_unlock(&f->lock);
    return (ret);
}

void
fs_pos_free(fs_pos *pos)
{
    free(pos->key);
    pos->key = NULL;
    pos->key_cap = 0;
    pos->klen = 0;
    pos->valid = false;
    pos->node = NULL;
}

int
fs_sync(fs_file *f)
{
    int ret;

    fs_gate_close(f);
    (void)pthread_rwlock_wrlock(&f->lock);
    if ((ret = fs_flush(f)) == 0)
        ret = fs_datasync(f);
    (void)pthread_rwlock_unlock(&f->lock);
    fs_gate_open(f);
    return (ret);
}

void
fs_get_info(fs_file *f, fs_info *info)
{
    (void)pthread_rwlock_rdlock(&f->lock);
    info->file_bytes = f->end;
    info->live_bytes = f->live_bytes;
    info->entries = f->entries;
    info->max_lsn = f->max_lsn;
    /* Group writers allocate nodes under glock alone. */
    (void)pthread_mutex_lock(&f->glock);
    info->index_bytes = f->arena.bytes;
    (void)pthread_mutex_unlock(&f->glock);
    (void)pthread_rwlock_unlock(&f->lock);
}

bool
fs_empty(fs_file *f)
{
    bool empty;

    (void)pthread_rwlock_rdlock(&f->lock);
    empty = f->entries == 0;
    (void)pthread_rwlock_unlock(&f->lock);
    return (empty);
}

/*
 * fs_sync_gen --
 *     The file's open instance and write generation, taken before an
 *     external sync (syncfs) of its file system.
 */
void
fs_sync_gen(fs_file *f, fs_sync_token *token)
{
    (void)pthread_rwlock_rdlock(&f->lock);
    token->instance = f->instance;
    token->gen = f->wgen;
    (void)pthread_rwlock_unlock(&f->lock);
}

/*
 * fs_mark_synced --
 *     An external sync that started after fs_sync_gen filled the token has
 *     succeeded: everything this open of the file wrote up to the token's
 *     generation is durable.
 */
void
fs_mark_synced(fs_file *f, const fs_sync_token *token)
{
    (void)pthread_rwlock_wrlock(&f->lock);
    if (token->instance == f->instance && f->synced_wgen < token->gen &&
        token->gen <= f->wgen && f->disk_end == f->end)
        f->synced_wgen = token->gen;
    (void)pthread_rwlock_unlock(&f->lock);
}

/* fs_batch_apply's state for one op: its record header and the index node
 * made ready for its key before the commit point. */
struct batch_slot {
    unsigned char hdr[REC_HDR_SIZE];
    struct fs_node *node;
    bool skip;
};

static int
batch_file_cmp(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t) * (fs_file *const *)a;
    uintptr_t y = (uintptr_t) * (fs_file *const *)b;

    return (x < y ? -1 : x > y ? 1 : 0);
}

/*
 * batch_index --
 *     Point the index at one applied op's record.  Its node, if the key
 *     was missing, was allocated before the commit point: nothing here can
 *     fail.
 */
static void
batch_index(fs_file *f, const fs_batch_op *op, struct batch_slot *slot,
            uint64_t off)
{
    struct fs_node *n, *parent = NULL;
    int dir = 0;

    n = fs_idx_find(&f->tree, op->key, op->klen, &parent, &dir);
    if (op->kind == FS_BATCH_DEL) {
        if (n != NULL)
            fs_idx_remove(f, n);
    } else if (n == NULL) {
        n = slot->node;
        slot->node = NULL;
        fs_idx_link(&f->tree, n, parent, dir);
        ++f->entries;
        fs_idx_set(f, n, true, off, (uint32_t)op->vlen,
                   op->kind == FS_BATCH_TOMB);
    } else
        fs_idx_set(f, n, false, off, (uint32_t)op->vlen,
                   op->kind == FS_BATCH_TOMB);
    if (op->lsn > f->max_lsn)
        f->max_lsn = op->lsn;
}

int
fs_batch_apply(fs_batch_op *ops, size_t n, unsigned flags,
               int (*commit)(void *arg, const fs_batch_op *ops, size_t n),
               void *arg, bool *committedp)
{
    struct batch_slot *slot = NULL;
    struct fs_node *parent;
    struct iovec *iov = NULL;
    fs_file **files = NULL, *f;
    uint64_t first, off, start;
    size_t nfiles = 0, locked = 0, i, j, k;
    uint32_t type;
    int dir, ret = 0;
    bool replay = (flags & FS_BATCH_REPLAY) != 0, any_del = false;

    *committedp = false;
    if (n == 0)
        return (0);
    for (i = 0; i < n; i++) {
        if (ops[i].f == NULL || ops[i].key == NULL || ops[i].klen == 0 ||
            ops[i].klen > LAYERED_KEY_MAX || ops[i].vlen > LAYERED_VALUE_MAX ||
            (ops[i].val == NULL && ops[i].vlen > 0) ||
            ops[i].kind < FS_BATCH_PUT || ops[i].kind > FS_BATCH_DEL ||
            (ops[i].kind != FS_BATCH_PUT && ops[i].vlen > 0))
            return (EINVAL);
        if (ops[i].kind == FS_BATCH_DEL)
            any_del = true;
    }
    if ((slot = calloc(n, sizeof(*slot))) == NULL ||
        (files = malloc(n * sizeof(*files))) == NULL ||
        (iov = malloc(3 * n * sizeof(*iov))) == NULL) {
        free(slot);
        free(files);
        return (ENOMEM);
    }
    for (i = 0; i < n; i++)
        files[i] = ops[i].f;
    qsort(files, n, sizeof(*files), batch_file_cmp);
    for (i = 0; i < n; i++)
        if (nfiles == 0 || files[nfiles - 1] != files[i])
            files[nfiles++] = files[i];
    /* Address order: two batches sharing files lock them in one order.
     * Each file's gate first (no group of puts queued or in flight: the
     * batch writes at the file's end), then its lock; closing a gate holds
     * no file lock, so the puts inside can finish (fs_group.c). */
    for (j = 0; j < nfiles; j++)
        fs_gate_close(files[j]);
    for (locked = 0; locked < nfiles; locked++)
        (void)pthread_rwlock_wrlock(&files[locked]->lock);

    /* Everything that can fail, before the commit point.  Buffered
     * records go out first so each file's batch is one direct write that
     * keeps file order. */
    for (j = 0; j < nfiles; j++)
        ERR(fs_flush(files[j]));
    for (i = 0; i < n; i++) {
        f = ops[i].f;
        if (replay && ops[i].lsn <= f->max_lsn) {
            slot[i].skip = true;
            continue;
        }
        if (ops[i].kind == FS_BATCH_DEL)
            continue;
        /* A key the file lacks needs a node; so may any key once an
         * earlier op of the batch can remove it. */
        if (any_del ||
            fs_idx_find(&f->tree, ops[i].key, ops[i].klen, &parent, &dir) ==
                NULL)
            if ((slot[i].node = fs_node_alloc(&f->arena, ops[i].key,
                                              ops[i].klen)) == NULL)
                ERR(ENOMEM);
    }
    if (!replay) {
        first = atomic_fetch_add(ops[0].f->env.lsn, n) + 1;
        for (i = 0; i < n; i++)
            ops[i].lsn = first + i;
    } else
        for (i = 0; i < n; i++)
            fs_lsn_raise(ops[i].f->env.lsn, ops[i].lsn);
    for (i = 0; i < n; i++) {
        type = ops[i].kind == FS_BATCH_PUT    ? REC_PUT
               : ops[i].kind == FS_BATCH_TOMB ? REC_TOMB
                                              : REC_DEL;
        fs_rec_hdr_encode(slot[i].hdr, type, ops[i].lsn, ops[i].klen,
                          ops[i].vlen,
                          crc32c(crc32c(0, ops[i].key, ops[i].klen),
                                 ops[i].val, ops[i].vlen));
    }
    if (commit != NULL)
        ERR(commit(arg, ops, n));

    /* The commit point is passed: from here an error leaves the batch
     * committed but not all applied, which only a replay repairs. */
    *committedp = true;
    for (j = 0; j < nfiles; j++) {
        f = files[j];
        for (i = k = 0; i < n; i++) {
            if (ops[i].f != f || slot[i].skip)
                continue;
            iov[k].iov_base = slot[i].hdr;
            iov[k++].iov_len = REC_HDR_SIZE;
            iov[k].iov_base = (void *)ops[i].key;
            iov[k++].iov_len = ops[i].klen;
            if (ops[i].vlen > 0) {
                iov[k].iov_base = (void *)ops[i].val;
                iov[k++].iov_len = ops[i].vlen;
            }
        }
        if (k == 0)
            continue;
        start = f->disk_end;
        ERR(fs_write_at_end(f, iov, (int)k));
        for (i = 0, off = start; i < n; i++) {
            if (ops[i].f != f || slot[i].skip)
                continue;
            batch_index(f, &ops[i], &slot[i], off);
            off += rec_size(ops[i].klen, ops[i].vlen);
        }
        f->disk_end = f->end = off;
    }

err:
    for (i = 0; i < n; i++)
        if (slot[i].node != NULL)
            fs_node_free(&ops[i].f->arena, slot[i].node);
    while (locked > 0)
        (void)pthread_rwlock_unlock(&files[--locked]->lock);
    for (j = 0; j < nfiles; j++)
        fs_gate_open(files[j]);
    free(iov);
    free(files);
    free(slot);
    return (ret);
}
