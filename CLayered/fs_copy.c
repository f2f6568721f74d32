/*
 * fs_copy.c -- the drain copy of one file store into another, with its
 * mapping of the source and prefetch.
 */

#include "fs_int.h"

/* One row of an fs_copy batch, applied to dst's index once the batch is
 * written. */
struct copy_op {
    struct fs_node *dst;    /* dst's node for the key, or NULL */
    struct fs_node *fresh;  /* a new node to link (PUT of a new key) */
    struct fs_node *succ;   /* for fresh: dst's next larger node, or NULL */
    uint64_t off;           /* the record's offset in dst */
    uint64_t lsn;
    uint32_t vlen;
    uint32_t type;          /* REC_PUT or REC_DEL */
};

/* State of one fs_copy across batches. */
struct copy_state {
    fs_file *src, *dst;
    const unsigned char *map;   /* src mapped read-only, [0, map_len) */
    uint64_t map_len, map_gen;
    bool map_heap;              /* map is a malloc'ed copy, not a mapping */
    unsigned char *buf;
    size_t buf_size;
    struct copy_op *ops;
    size_t ops_max;
    unsigned char *key;         /* the last src key done (resume point) */
    size_t klen;
    bool have_key;
    struct fs_node *node;       /* its src node, valid while gen holds */
    uint64_t gen;
    bool started;
    uint64_t dst_start_lsn;
};

/*
 * copy_unmap --
 *     Release the view of src.
 */
static void
copy_unmap(struct copy_state *cs)
{
    if (cs->map == NULL)
        return;
    if (cs->map_heap)
        free((void *)cs->map);
    else
        (void)cs->src->env.os->munmap((void *)cs->map, (size_t)cs->map_len);
    cs->map = NULL;
}

/*
 * copy_map --
 *     Map src's on-disk part (again, if compaction replaced the file or it
 *     grew since).  Called with src's lock held.
 */
static int
copy_map(struct copy_state *cs)
{
    fs_file *src = cs->src;
    void *m;
    int ret;

    if (cs->map != NULL && cs->map_gen == src->rewrite_gen &&
        cs->map_len >= src->disk_end)
        return (0);
    copy_unmap(cs);
    if (src->disk_end <= COPY_READ_MAX) {
        /* A small file: one pread costs less than mapping and unmapping
         * it (page faults and a TLB shootdown per table). */
        struct iovec iov;
        if ((m = malloc((size_t)src->disk_end)) == NULL)
            return (ENOMEM);
        iov.iov_base = m;
        iov.iov_len = (size_t)src->disk_end;
        if ((ret = fs_preadv_full(src, &iov, 1, 0)) != 0) {
            free(m);
            return (ret);
        }
        cs->map_heap = true;
    } else {
        if ((m = src->env.os->mmap(NULL, (size_t)src->disk_end, PROT_READ,
                                   MAP_SHARED, src->fd, 0)) == MAP_FAILED)
            return (errno);
        (void)src->env.os->madvise(m, (size_t)src->disk_end, MADV_WILLNEED);
        cs->map_heap = false;
    }
    cs->map = m;
    cs->map_len = src->disk_end;
    cs->map_gen = src->rewrite_gen;
    return (0);
}

/*
 * copy_dst_lsn --
 *     The LSN of the record a dst node points at (recovery path only: a
 *     src record not newer than everything dst held when the copy began).
 */
static int
copy_dst_lsn(fs_file *dst, const struct fs_node *n, uint64_t *lsnp)
{
    unsigned char hdr[REC_HDR_SIZE];
    struct rec_hdr h;
    struct iovec iov;

    iov.iov_base = hdr;
    iov.iov_len = sizeof(hdr);
    RET(fs_preadv_full(dst, &iov, 1, n->off));
    if (!fs_rec_hdr_decode(hdr, &h))
        return (fs_corrupt(dst, n->off, "bad record header"));
    *lsnp = h.lsn;
    return (0);
}

/*
 * copy_prefetch --
 *     Start loading the record of a src node that the copy reaches soon.
 */
static inline void
copy_prefetch(const struct copy_state *cs, const struct fs_node *n)
{
    const unsigned char *p;

    if (n->off + REC_HDR_SIZE <= cs->map_len) {
        p = cs->map + n->off;
        __builtin_prefetch(p);
        __builtin_prefetch(p + 64);
    }
}

/*
 * copy_link --
 *     Link a new dst node given its successor (captured when the batch was
 *     built): rows are applied in key order, so no row applied in between
 *     can have changed that successor.  Saves a descent per row.  *tailp
 *     caches dst's largest node (NULL: unknown) for appends at the end.
 */
static void
copy_link(fs_file *dst, struct fs_node *n, struct fs_node *succ,
          struct fs_node **tailp)
{
    struct fs_node *parent;
    int dir;

    if (succ == NULL) {
        parent = *tailp != NULL ? *tailp : RB_MAX(fs_tree, &dst->tree);
        *tailp = n;
        dir = 1;
    } else if (RB_LEFT(succ, rb) == NULL) {
        parent = succ;
        dir = -1;
    } else {
        for (parent = RB_LEFT(succ, rb); RB_RIGHT(parent, rb) != NULL;)
            parent = RB_RIGHT(parent, rb);
        dir = 1;
    }
    fs_idx_link(&dst->tree, n, parent, dir);
}

/*
 * copy_batch --
 *     Copy the next batch of src rows into dst: build the records in the
 *     batch buffer, write them with one write, then update dst's index.
 *     Sets *donep when src is exhausted.  Takes and releases the locks.
 */
static int
copy_batch(struct copy_state *cs, fs_copy_stats *stats, bool *donep)
{
    fs_file *src = cs->src, *dst = cs->dst;
    struct copy_op *op;
    struct fs_node *n, *dn, *last = NULL, *ahead, *hint = NULL, *tail = NULL;
    struct rec_hdr h;
    struct iovec iov;
    const unsigned char *p, *direct = NULL;
    const char *why;
    uint64_t rlen, dlsn = 0, wbase, bytes = 0;
    size_t used = 0, nops = 0, i, steps, k;
    int ret = 0;
    bool hint_set = false;

    /* dst's gate first: its group writers need dst's lock to finish, and
     * none of them waits for src's. */
    fs_gate_close(dst);
    (void)pthread_rwlock_rdlock(&src->lock);
    (void)pthread_rwlock_wrlock(&dst->lock);
    if (!cs->started) {
        cs->dst_start_lsn = dst->max_lsn;
        cs->started = true;
    }
    /* dst's own buffered records go first: the batch is written at
     * disk_end with the buffer empty. */
    ERR(fs_flush(dst));
    ERR(copy_map(cs));
    wbase = dst->disk_end;

    if (!cs->have_key)
        n = RB_MIN(fs_tree, &src->tree);
    else if (cs->node != NULL && cs->gen == src->gen)
        n = RB_NEXT(fs_tree, &src->tree, cs->node);
    else
        n = fs_idx_search(&src->tree, cs->key, cs->klen, FS_GT);
    for (ahead = n, k = 0; ahead != NULL && k < COPY_PREFETCH; ++k) {
        copy_prefetch(cs, ahead);
        ahead = RB_NEXT(fs_tree, &src->tree, ahead);
    }

    for (steps = 0; n != NULL && steps < cs->ops_max;
         ++steps, last = n, n = RB_NEXT(fs_tree, &src->tree, n)) {
        if (ahead != NULL) {
            copy_prefetch(cs, ahead);
            ahead = RB_NEXT(fs_tree, &src->tree, ahead);
        }
        rlen = node_rec_size(n);
        if (n->off + rlen > src->end)
            ERR(fs_corrupt(src, n->off, "record offset past end of file"));
        p = n->off >= cs->map_len ? src->wbuf + (n->off - src->disk_end)
                                  : cs->map + n->off;
        if ((why = fs_rec_check(p, n, &h)) != NULL)
            ERR(fs_corrupt(src, n->off, why));
        if (h.lsn > stats->max_lsn)
            stats->max_lsn = h.lsn;

        /* hint: dst's smallest node >= this key, found by stepping along
         * dst in step with src (both in key order), or by a search. */
        if (!hint_set) {
            hint = fs_idx_search(&dst->tree, n->key, h.klen, FS_GE);
            hint_set = true;
        }
        for (k = 0; hint != NULL &&
                    fs_key_cmp(hint->key, NODE_KLEN(hint), n->key, h.klen) < 0;
             ++k) {
            if (k == COPY_MAX_STEPS) {
                hint = fs_idx_search(&dst->tree, n->key, h.klen, FS_GE);
                break;
            }
            hint = RB_NEXT(fs_tree, &dst->tree, hint);
        }
        dn = hint != NULL && NODE_KLEN(hint) == h.klen &&
                     memcmp(hint->key, n->key, h.klen) == 0
                 ? hint
                 : NULL;
        if (h.type == REC_TOMB && (dn == NULL || NODE_IS_TOMB(dn)))
            continue;   /* nothing in dst to delete */
        if (dn != NULL && h.lsn <= cs->dst_start_lsn) {
            ERR(copy_dst_lsn(dst, dn, &dlsn));
            if (dlsn >= h.lsn) {
                ++stats->skipped;
                continue;
            }
        }
        if (rlen > cs->buf_size - used) {
            if (nops > 0)
                break;  /* the next batch starts with this row */
            /* Larger than the whole buffer: written straight from src. */
            direct = p;
        }

        op = &cs->ops[nops];
        op->dst = dn;
        op->fresh = NULL;
        op->succ = hint;
        op->off = wbase + used;
        op->lsn = h.lsn;
        op->vlen = h.vlen;
        op->type = h.type == REC_TOMB ? REC_DEL : REC_PUT;
        if (dn == NULL) {
            if ((op->fresh = fs_node_alloc(&dst->arena, n->key,
                h.klen)) == NULL)
                ERR(ENOMEM);
        }
        ++nops;
        if (h.type == REC_PUT) {
            /* Byte for byte: same LSN, same checksums. */
            if (direct == NULL)
                memcpy(cs->buf + used, p, (size_t)rlen);
        } else {
            /* An ingest tombstone becomes a stable delete. */
            fs_rec_hdr_encode(cs->buf + used, REC_DEL, h.lsn, h.klen, 0,
                h.bcrc);
            memcpy(cs->buf + used + REC_HDR_SIZE, n->key, h.klen);
        }
        used += (size_t)rlen;
        bytes += h.klen + h.vlen;
        if (direct != NULL) {
            last = n;
            n = RB_NEXT(fs_tree, &src->tree, n);
            break;
        }
    }

    if (used > 0) {
        iov.iov_base = direct != NULL ? (void *)direct : cs->buf;
        iov.iov_len = used;
        ERR(fs_write_at_end(dst, &iov, 1));
        dst->disk_end = dst->end = wbase + used;
    }
    for (i = 0; i < nops; ++i) {
        op = &cs->ops[i];
        if (op->type == REC_DEL) {
            fs_idx_remove(dst, op->dst);
            tail = NULL;
        }
        else if (op->dst != NULL)
            fs_idx_set(dst, op->dst, false, op->off, op->vlen, false);
        else {
            copy_link(dst, op->fresh, op->succ, &tail);
            ++dst->entries;
            fs_idx_set(dst, op->fresh, true, op->off, op->vlen, false);
            op->fresh = NULL;
        }
        if (op->lsn > dst->max_lsn)
            dst->max_lsn = op->lsn;
    }
    stats->rows += nops;
    stats->bytes += bytes;
    nops = 0;

    /* Remember where to resume: the last row looked at. */
    if (last != NULL) {
        memcpy(cs->key, last->key, NODE_KLEN(last));
        cs->klen = NODE_KLEN(last);
        cs->node = last;
        cs->gen = src->gen;
        cs->have_key = true;
    }
    *donep = n == NULL;

err:
    /* On error the batch's fresh nodes were never linked. */
    for (i = 0; i < nops; ++i)
        if (cs->ops[i].fresh != NULL)
            fs_node_free(&dst->arena, cs->ops[i].fresh);
    (void)pthread_rwlock_unlock(&dst->lock);
    (void)pthread_rwlock_unlock(&src->lock);
    fs_gate_open(dst);
    return (ret);
}

int
fs_copy(fs_file *src, fs_file *dst, unsigned flags, int (*hook)(void *arg),
        void *hook_arg, fs_copy_stats *stats)
{
    struct copy_state cs;
    fs_copy_stats local;
    fs_info info;
    size_t nops;
    bool done = false, first = true;
    int ret = 0;

    if (stats == NULL)
        stats = &local;
    memset(stats, 0, sizeof(*stats));
    if (src == NULL || dst == NULL || src == dst)
        return (EINVAL);
    memset(&cs, 0, sizeof(cs));
    cs.src = src;
    cs.dst = dst;
    /* Buffers sized to the source, so a small table costs small
     * allocations: the output is never larger than src's records. */
    fs_get_info(src, &info);
    cs.buf_size = info.file_bytes < COPY_BUF_SIZE ? (size_t)info.file_bytes
                                                  : COPY_BUF_SIZE;
    if (cs.buf_size < 4096)
        cs.buf_size = 4096;
    nops = info.entries + 1 < COPY_BATCH_ROWS ? (size_t)info.entries + 1
                                               : COPY_BATCH_ROWS;
    cs.ops_max = nops;
    if ((cs.buf = malloc(cs.buf_size)) == NULL ||
        (cs.ops = malloc(nops * sizeof(*cs.ops))) == NULL ||
        (cs.key = malloc(LAYERED_KEY_MAX)) == NULL)
        ERR(ENOMEM);

    /* The hook runs after the first batch even when it wrote nothing (an
     * empty src or a re-drain), so a test pausing there always stops. */
    while (!done) {
        ERR(copy_batch(&cs, stats, &done));
        if (first) {
            first = false;
            if (hook != NULL)
                ERR(hook(hook_arg));
        }
    }

    if (stats->rows > 0 && !(flags & FS_NOSYNC)) {
        fs_gate_close(dst);
        (void)pthread_rwlock_wrlock(&dst->lock);
        ret = fs_datasync(dst);
        (void)pthread_rwlock_unlock(&dst->lock);
        fs_gate_open(dst);
    }

err:
    copy_unmap(&cs);
    free(cs.buf);
    free(cs.ops);
    free(cs.key);
    return (ret);
}
