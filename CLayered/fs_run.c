/*
 * fs_run.c -- immutable sorted runs: the writer, the checks made when a run
 * is opened, point lookups and ordered walks.  The format is in fs_run.h;
 * why the stable store is made of runs is in docs/storage.md.
 *
 * Every length and offset read from a run is checked against the bytes it
 * claims before it is used, so a damaged run is LAYERED_CORRUPT, never a
 * read out of bounds (Tests/fuzz has a target for it).  The footer, the
 * index and the filter are checked by run_open; a block is checked the
 * first time it is read, and a byte per block remembers that (set with a
 * relaxed atomic store: two readers checking the same block at once both
 * check it, which is harmless).
 */
#include "fs_int.h"
#include "fs_run.h"

#define RUN_MAGIC "LYRDRUN1"
#define RUN_VERSION 1
#define RUN_OUT_BUF (1024u * 1024)
#define RUN_BLOOM_K 7
#define RUN_BLOCK_TRAILER 8 /* u32 restart count, u32 crc32c */

struct run_writer {
    const struct os_ops *os;
    int fd;
    uint64_t start; /* the run's first byte in the file */
    uint64_t off;   /* bytes of the run written or buffered so far */
    uint64_t table_id, epoch;
    int error;      /* sticky: a failed write fails the writer */
    bool finished;

    unsigned char *out; /* bytes not yet written, at start + off - outlen */
    size_t outlen;

    unsigned char *block; /* the block being built */
    size_t blen, bcap;
    uint32_t *restarts;
    size_t nrestarts, rcap;
    unsigned brows;

    unsigned char *last; /* the last key added */
    size_t last_len, last_cap;

    unsigned char *index; /* encoded index entries */
    size_t ilen, icap;

    uint64_t *hashes; /* one per row, for the filter */
    size_t nhashes, hcap;

    uint64_t rows, blocks, min_lsn, max_lsn;
};

struct idx_entry {
    const unsigned char *key;
    uint32_t klen;
    uint32_t len;
    uint64_t off;
};

struct run {
    const unsigned char *base;
    size_t len;
    run_info info;
    struct idx_entry *idx;
    unsigned char *idx_keys; /* the index's keys, copied side by side */
    const unsigned char *bloom;
    uint64_t bloom_bits;
    uint32_t bloom_k;
    _Atomic unsigned char *checked;
};

/* ---- integers ---- */

static size_t
varint_put(unsigned char *p, uint64_t v)
{
    size_t n = 0;

    while (v >= 0x80) {
        p[n++] = (unsigned char)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (unsigned char)v;
    return n;
}

/* Decode a varint from [*pp, end); false if it runs past end or is longer
 * than 10 bytes. */
static bool
varint_get(const unsigned char **pp, const unsigned char *end, uint64_t *vp)
{
    const unsigned char *p = *pp;
    uint64_t v = 0;
    unsigned shift;

    for (shift = 0; shift < 64 && p < end; shift += 7) {
        unsigned char b = *p++;

        v |= (uint64_t)(b & 0x7f) << shift;
        if ((b & 0x80) == 0) {
            *pp = p;
            *vp = v;
            return true;
        }
    }
    return false;
}

static int
grow(void *pp, size_t *capp, size_t need, size_t elem)
{
    void *p;
    size_t cap = *capp;

    if (need <= cap)
        return 0;
    if (cap == 0)
        cap = 64;
    while (cap < need)
        cap *= 2;
    if ((p = realloc(*(void **)pp, cap * elem)) == NULL)
        return ENOMEM;
    *(void **)pp = p;
    *capp = cap;
    return 0;
}

/* A 64-bit hash of a key, whose halves serve as two independent hashes
 * of the filter (CRC32C would not do: CRCs of one key under two seeds
 * differ by a constant).  Multiply-xorshift over 8-byte words, then
 * MurmurHash3's finaliser. */
static uint64_t
key_hash(const void *key, size_t klen)
{
    const unsigned char *p = key;
    uint64_t h = 0x9e3779b97f4a7c15ull ^ (klen * 0xc2b2ae3d27d4eb4full);
    uint64_t w;
    size_t i;

    for (i = 0; i + 8 <= klen; i += 8) {
        memcpy(&w, p + i, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdull;
        h ^= h >> 32;
    }
    if (i < klen) {
        w = 0;
        memcpy(&w, p + i, klen - i);
        h = (h ^ w) * 0xff51afd7ed558ccdull;
        h ^= h >> 32;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

/*
 * bloom_block, bloom_next --
 *     The filter is blocked: a key's k bits all fall in one 64-byte block
 *     (one cache line), chosen by the hash's high half; the low half steps
 *     through the block's 512 bits.  A lookup then misses the cache once,
 *     not k times, for a slightly higher false-positive rate.
 */
static inline uint64_t
bloom_block(uint64_t h, uint64_t nblocks)
{
    return (h >> 32) % nblocks;
}

static inline uint32_t
bloom_step(uint64_t h)
{
    uint32_t a = (uint32_t)h;

    return (a >> 17) | (a << 15) | 1;
}

static int
key_cmp(const void *a, size_t alen, const void *b, size_t blen)
{
    return fs_key_cmp(a, alen, b, blen);
}

/* ---- the writer ---- */

int
run_writer_open(const struct os_ops *os, int fd, uint64_t off,
                uint64_t table_id, uint64_t epoch, run_writer **wp)
{
    run_writer *w;

    *wp = NULL;
    if ((w = calloc(1, sizeof(*w))) == NULL)
        return ENOMEM;
    if ((w->out = malloc(RUN_OUT_BUF)) == NULL) {
        free(w);
        return ENOMEM;
    }
    w->os = os != NULL ? os : &os_default;
    w->fd = fd;
    w->start = off;
    w->table_id = table_id;
    w->epoch = epoch;
    w->min_lsn = UINT64_MAX;
    *wp = w;
    return 0;
}

/* Write the buffered bytes, and have the device start on them while the
 * writer goes on (the final sync then waits for less). */
static int
out_flush(run_writer *w)
{
    uint64_t at = w->start + w->off - w->outlen;

    RET(os_pwrite_full(w->os, w->fd, w->out, w->outlen, at));
    if (w->os->sync_file_range != NULL)
        (void)w->os->sync_file_range(w->fd, (off_t)at, (off_t)w->outlen,
                                     SYNC_FILE_RANGE_WRITE);
    w->outlen = 0;
    return 0;
}

/* Append bytes to the run: through the buffer, or straight to the file
 * when they would not fit in it (a block holding one huge value). */
static int
out_add(run_writer *w, const void *p, size_t len)
{
    if (w->outlen + len > RUN_OUT_BUF)
        RET(out_flush(w));
    if (len > RUN_OUT_BUF) {
        RET(os_pwrite_full(w->os, w->fd, p, len, w->start + w->off));
        w->off += len;
        return 0;
    }
    memcpy(w->out + w->outlen, p, len);
    w->outlen += len;
    w->off += len;
    return 0;
}

/* Close the current block: trailer, checksum, index entry. */
static int
block_finish(run_writer *w)
{
    unsigned char tmp[10 + 10 + 10];
    uint64_t boff = w->off;
    size_t i, n, blen;
    uint32_t crc;

    if (w->brows == 0)
        return 0;
    RET(grow(&w->block, &w->bcap, w->blen + 4 * w->nrestarts + 8, 1));
    for (i = 0; i < w->nrestarts; i++)
        le32_put(w->block + w->blen + 4 * i, w->restarts[i]);
    w->blen += 4 * w->nrestarts;
    le32_put(w->block + w->blen, (uint32_t)w->nrestarts);
    w->blen += 4;
    crc = crc32c(0, w->block, w->blen);
    le32_put(w->block + w->blen, crc);
    w->blen += 4;
    blen = w->blen;

    /* The index entry: the block's last key, offset and length. */
    RET(grow(&w->index, &w->icap, w->ilen + sizeof(tmp) + w->last_len, 1));
    n = varint_put(tmp, w->last_len);
    memcpy(w->index + w->ilen, tmp, n);
    w->ilen += n;
    memcpy(w->index + w->ilen, w->last, w->last_len);
    w->ilen += w->last_len;
    n = varint_put(tmp, boff);
    n += varint_put(tmp + n, blen);
    memcpy(w->index + w->ilen, tmp, n);
    w->ilen += n;

    RET(out_add(w, w->block, blen));
    w->blocks++;
    w->blen = 0;
    w->nrestarts = 0;
    w->brows = 0;
    return 0;
}

int
run_writer_add(run_writer *w, const void *key, size_t klen, const void *val,
               size_t vlen, int type, uint64_t lsn)
{
    unsigned char hdr[5 * 10 + 1];
    size_t shared = 0, n;
    bool restart;
    int ret;

    if (w == NULL || w->finished)
        return EINVAL;
    if (w->error != 0)
        return w->error;
    if (key == NULL || klen == 0 || klen > LAYERED_KEY_MAX ||
        (type != RUN_PUT && type != RUN_DEL) ||
        (type == RUN_DEL && vlen != 0) || vlen > LAYERED_VALUE_MAX ||
        (val == NULL && vlen != 0))
        return EINVAL;
    if (w->rows > 0 && key_cmp(w->last, w->last_len, key, klen) >= 0)
        return EINVAL;

    /* Make room for everything first: a failed allocation adds nothing. */
    RET(grow(&w->hashes, &w->hcap, w->nhashes + 1, sizeof(uint64_t)));
    RET(grow(&w->restarts, &w->rcap, w->nrestarts + 1, sizeof(uint32_t)));
    RET(grow(&w->last, &w->last_cap, klen, 1));

    /* A full block is closed before the row that would overflow it. */
    if (w->brows > 0 && w->blen + klen + vlen + sizeof(hdr) +
                                4 * (w->nrestarts + 1) + RUN_BLOCK_TRAILER >
                            RUN_BLOCK_TARGET &&
        (ret = block_finish(w)) != 0)
        return w->error = ret;

    restart = w->brows % RUN_RESTART_INTERVAL == 0;
    if (!restart)
        while (shared < klen && shared < w->last_len &&
               ((const unsigned char *)key)[shared] == w->last[shared])
            shared++;
    n = varint_put(hdr, shared);
    n += varint_put(hdr + n, klen - shared);
    n += varint_put(hdr + n, vlen);
    hdr[n++] = (unsigned char)type;
    n += varint_put(hdr + n, lsn);
    RET(grow(&w->block, &w->bcap, w->blen + n + klen - shared + vlen, 1));
    if (restart)
        w->restarts[w->nrestarts++] = (uint32_t)w->blen;
    memcpy(w->block + w->blen, hdr, n);
    memcpy(w->block + w->blen + n, (const unsigned char *)key + shared,
           klen - shared);
    if (vlen > 0)
        memcpy(w->block + w->blen + n + klen - shared, val, vlen);
    w->blen += n + klen - shared + vlen;
    w->brows++;

    memcpy(w->last, key, klen);
    w->last_len = klen;
    w->hashes[w->nhashes++] = key_hash(key, klen);
    w->rows++;
    if (lsn < w->min_lsn)
        w->min_lsn = lsn;
    if (lsn > w->max_lsn)
        w->max_lsn = lsn;
    return 0;
}

int
run_writer_finish(run_writer *w, run_info *info)
{
    unsigned char foot[RUN_FOOTER_BYTES], head[4];
    unsigned char *bloom = NULL;
    uint64_t index_off, filter_off, nbits, i;
    size_t filter_len;
    uint32_t k;
    int ret = 0;

    if (w == NULL || w->finished)
        return EINVAL;
    w->finished = true;
    if (w->error != 0)
        return w->error;
    if (w->rows == 0)
        return EINVAL;
    ERR(block_finish(w));

    /* The index: a count, the entries, a checksum of both. */
    index_off = w->off;
    le32_put(head, (uint32_t)w->blocks);
    ERR(grow(&w->index, &w->icap, w->ilen + 4, 1));
    memmove(w->index + 4, w->index, w->ilen);
    memcpy(w->index, head, 4);
    w->ilen += 4;
    le32_put(head, crc32c(0, w->index, w->ilen));
    ERR(out_add(w, w->index, w->ilen));
    ERR(out_add(w, head, 4));

    /* The filter: u32 k, u32 reserved, the bits, a checksum. */
    filter_off = w->off;
    nbits = w->rows * RUN_BLOOM_BITS_PER_KEY;
    nbits = (nbits + 511) & ~(uint64_t)511; /* whole 64-byte blocks */
    filter_len = 8 + (size_t)(nbits / 8) + 4;
    if ((bloom = calloc(1, filter_len)) == NULL)
        ERR(ENOMEM);
    k = RUN_BLOOM_K;
    le32_put(bloom, k);
    for (i = 0; i < w->nhashes; i++) {
        uint64_t h = w->hashes[i];
        unsigned char *b = bloom + 8 + bloom_block(h, nbits / 512) * 64;
        uint32_t bit = (uint32_t)h, step = bloom_step(h), j;

        for (j = 0; j < k; j++, bit += step)
            b[(bit & 511) / 8] |= (unsigned char)(1u << (bit % 8));
    }
    le32_put(bloom + filter_len - 4, crc32c(0, bloom, filter_len - 4));
    ERR(out_add(w, bloom, filter_len));

    memset(foot, 0, sizeof(foot));
    memcpy(foot, RUN_MAGIC, 8);
    le32_put(foot + 8, RUN_VERSION);
    le32_put(foot + 12, RUN_FOOTER_BYTES);
    le64_put(foot + 16, w->table_id);
    le64_put(foot + 24, w->epoch);
    le64_put(foot + 32, w->min_lsn);
    le64_put(foot + 40, w->max_lsn);
    le64_put(foot + 48, w->rows);
    le64_put(foot + 56, w->blocks);
    le64_put(foot + 64, index_off);
    le64_put(foot + 72, filter_off - index_off);
    le64_put(foot + 80, filter_off);
    le32_put(foot + 88, (uint32_t)filter_len);
    le32_put(foot + 92, crc32c(0, foot, 92));
    ERR(out_add(w, foot, sizeof(foot)));
    ERR(out_flush(w));

    if (info != NULL) {
        info->table_id = w->table_id;
        info->epoch = w->epoch;
        info->min_lsn = w->min_lsn;
        info->max_lsn = w->max_lsn;
        info->rows = w->rows;
        info->blocks = w->blocks;
        info->length = w->off;
    }
err:
    free(bloom);
    if (ret != 0)
        w->error = ret;
    return ret;
}

void
run_writer_free(run_writer *w)
{
    if (w == NULL)
        return;
    free(w->out);
    free(w->block);
    free(w->restarts);
    free(w->last);
    free(w->index);
    free(w->hashes);
    free(w);
}

/* ---- opening a run ---- */

#define CORRUPT(why_, off_)                                                 \
    do {                                                                    \
        if (why != NULL)                                                    \
            *why = (why_);                                                  \
        if (offp != NULL)                                                   \
            *offp = (off_);                                                 \
        ret = LAYERED_CORRUPT;                                              \
        goto err;                                                           \
    } while (0)

int
run_open(const unsigned char *base, size_t len, run **rp, const char **why,
         uint64_t *offp)
{
    const unsigned char *foot, *p, *end;
    uint64_t index_off, index_len, filter_off, filter_len, blocks, i, next;
    uint64_t v, foot_off;
    run *r = NULL;
    int ret = 0;

    *rp = NULL;
    if (len < RUN_FOOTER_BYTES)
        CORRUPT("shorter than a run footer", 0);
    foot_off = len - RUN_FOOTER_BYTES;
    foot = base + foot_off;
    if (memcmp(foot, RUN_MAGIC, 8) != 0)
        CORRUPT("no run footer (bad magic)", foot_off);
    if (le32_get(foot + 92) != crc32c(0, foot, 92))
        CORRUPT("run footer checksum mismatch", foot_off);
    if (le32_get(foot + 8) != RUN_VERSION ||
        le32_get(foot + 12) != RUN_FOOTER_BYTES)
        CORRUPT("unsupported run version", foot_off);
    blocks = le64_get(foot + 56);
    index_off = le64_get(foot + 64);
    index_len = le64_get(foot + 72);
    filter_off = le64_get(foot + 80);
    filter_len = le32_get(foot + 88);
    /* The parts are contiguous and end at the footer. */
    if (index_off > foot_off || index_len > foot_off - index_off ||
        filter_off != index_off + index_len ||
        filter_len != foot_off - filter_off || filter_len < 8 + 64 + 4 ||
        index_len < 8 || blocks == 0 || le64_get(foot + 48) < blocks ||
        le64_get(foot + 32) > le64_get(foot + 40))
        CORRUPT("run footer fields out of range", foot_off);

    if ((r = calloc(1, sizeof(*r))) == NULL)
        ERR(ENOMEM);
    r->base = base;
    r->len = len;
    r->info.table_id = le64_get(foot + 16);
    r->info.epoch = le64_get(foot + 24);
    r->info.min_lsn = le64_get(foot + 32);
    r->info.max_lsn = le64_get(foot + 40);
    r->info.rows = le64_get(foot + 48);
    r->info.blocks = blocks;
    r->info.length = len;

    /* The index: checksum, count, then every entry in bounds, the blocks
     * back to back from offset 0 to the index, the keys ascending. */
    p = base + index_off;
    end = p + index_len - 4;
    if (le32_get(end) != crc32c(0, p, (size_t)index_len - 4))
        CORRUPT("run index checksum mismatch", index_off);
    if (le32_get(p) != blocks || blocks > index_len)
        CORRUPT("run index block count mismatch", index_off);
    p += 4;
    if ((r->idx = calloc((size_t)blocks, sizeof(*r->idx))) == NULL ||
        (r->checked = calloc((size_t)blocks, 1)) == NULL)
        ERR(ENOMEM);
    for (i = 0, next = 0; i < blocks; i++) {
        struct idx_entry *e = &r->idx[i];

        if (!varint_get(&p, end, &v) || v == 0 || v > LAYERED_KEY_MAX ||
            v > (uint64_t)(end - p))
            CORRUPT("run index entry key out of range", index_off);
        e->key = p;
        e->klen = (uint32_t)v;
        p += v;
        if (!varint_get(&p, end, &e->off) || !varint_get(&p, end, &v) ||
            e->off != next || v < RUN_BLOCK_TRAILER + 4 ||
            v > index_off - e->off)
            CORRUPT("run index entry offset out of range", index_off);
        e->len = (uint32_t)v;
        if (e->len != v)
            CORRUPT("run index entry offset out of range", index_off);
        next = e->off + v;
        if (i > 0 && key_cmp(r->idx[i - 1].key, r->idx[i - 1].klen, e->key,
                             e->klen) >= 0)
            CORRUPT("run index keys out of order", index_off);
    }
    if (p != end || next != index_off)
        CORRUPT("run index does not cover the blocks", index_off);
    /* The keys a lookup's binary search compares, side by side in memory
     * (a few hundred KB for a million rows) rather than scattered over the
     * mapping: the search then misses the cache once or twice, not once
     * per step. */
    {
        size_t total = 0, at = 0;

        for (i = 0; i < blocks; i++)
            total += r->idx[i].klen;
        if ((r->idx_keys = malloc(total)) == NULL)
            ERR(ENOMEM);
        for (i = 0; i < blocks; i++) {
            memcpy(r->idx_keys + at, r->idx[i].key, r->idx[i].klen);
            r->idx[i].key = r->idx_keys + at;
            at += r->idx[i].klen;
        }
    }

    /* The filter. */
    p = base + filter_off;
    if (le32_get(p + filter_len - 4) !=
        crc32c(0, p, (size_t)filter_len - 4))
        CORRUPT("run filter checksum mismatch", filter_off);
    r->bloom_k = le32_get(p);
    if (r->bloom_k == 0 || r->bloom_k > 32 || (filter_len - 12) % 64 != 0)
        CORRUPT("run filter fields out of range", filter_off);
    r->bloom = p + 8;
    r->bloom_bits = (filter_len - 12) * 8;
    *rp = r;
    return 0;

err:
    run_close(r);
    return ret;
}

void
run_get_info(const run *r, run_info *info)
{
    *info = r->info;
}

void
run_close(run *r)
{
    if (r == NULL)
        return;
    free(r->idx);
    free(r->idx_keys);
    free((void *)r->checked);
    free(r);
}

/* ---- blocks and rows ---- */

/*
 * block_check --
 *     Check block b once: its checksum and its restart array.  Sets *pp and
 *     *endp to its rows.
 */
static int
block_rows(run *r, uint64_t b, const unsigned char **pp,
           const unsigned char **endp, const unsigned char **restartsp,
           uint32_t *nrestartsp, uint64_t *offp)
{
    const struct idx_entry *e = &r->idx[b];
    const unsigned char *p = r->base + e->off;
    uint32_t n, i, rows_len, prev = 0;

    n = le32_get(p + e->len - 8);
    /* The restart array must fit in the block beside the trailer. */
    if (n == 0 || n > (e->len - RUN_BLOCK_TRAILER) / 4)
        goto corrupt;
    rows_len = e->len - RUN_BLOCK_TRAILER - 4 * n;
    if (atomic_load_explicit(&r->checked[b], memory_order_relaxed) == 0) {
        if (le32_get(p + e->len - 4) != crc32c(0, p, e->len - 4))
            goto corrupt;
        for (i = 0; i < n; i++) {
            uint32_t at = le32_get(p + rows_len + 4 * i);

            if ((i == 0 && at != 0) || (i > 0 && at <= prev) ||
                at >= rows_len)
                goto corrupt;
            prev = at;
        }
        atomic_store_explicit(&r->checked[b], 1, memory_order_relaxed);
    }
    *pp = p;
    *endp = p + rows_len;
    *restartsp = p + rows_len;
    *nrestartsp = n;
    return 0;

corrupt:
    if (offp != NULL)
        *offp = e->off;
    return LAYERED_CORRUPT;
}

/* Room for a key of need bytes in the iterator, keeping its first
 * it->klen bytes.  A buffer the caller lent (key_lent) is never freed or
 * reallocated. */
static int
key_reserve(run_iter *it, size_t need)
{
    unsigned char *k;
    size_t cap = it->kcap < 64 ? 64 : it->kcap;

    if (need <= it->kcap)
        return 0;
    while (cap < need)
        cap *= 2;
    if (it->key_lent) {
        if ((k = malloc(cap)) == NULL)
            return ENOMEM;
        if (it->klen > 0)
            memcpy(k, it->key, it->klen);
        it->key_lent = false;
    } else if ((k = realloc(it->key, cap)) == NULL)
        return ENOMEM;
    it->key = k;
    it->kcap = cap;
    return 0;
}

/*
 * row_decode --
 *     Decode the row at it->p into it->row, building its key from the
 *     previous one.  Every length is checked against the block.
 */
static int
row_decode(run_iter *it, uint64_t *offp)
{
    const unsigned char *p = it->p;
    uint64_t shared, unshared, vlen, lsn;
    int type;

    if (!varint_get(&p, it->end, &shared) ||
        !varint_get(&p, it->end, &unshared) ||
        !varint_get(&p, it->end, &vlen) || p >= it->end)
        goto corrupt;
    type = *p++;
    if (!varint_get(&p, it->end, &lsn) || shared > it->klen ||
        unshared > LAYERED_KEY_MAX || shared + unshared == 0 ||
        shared + unshared > LAYERED_KEY_MAX ||
        (type != RUN_PUT && type != RUN_DEL) ||
        (type == RUN_DEL && vlen != 0) ||
        unshared > (uint64_t)(it->end - p) ||
        vlen > (uint64_t)(it->end - p) - unshared)
        goto corrupt;
    /* Within a block keys ascend strictly: the new key shares exactly
     * `shared` bytes with the previous one, so its suffix decides. */
    if (it->klen > 0 && key_cmp(p, (size_t)unshared, it->key + shared,
                                it->klen - (size_t)shared) <= 0)
        goto corrupt;
    RET(key_reserve(it, (size_t)(shared + unshared)));
    memcpy(it->key + shared, p, (size_t)unshared);
    it->klen = (size_t)(shared + unshared);
    p += unshared;
    it->row.key = it->key;
    it->row.klen = it->klen;
    it->row.val = p;
    it->row.vlen = (size_t)vlen;
    it->row.type = type;
    it->row.lsn = lsn;
    it->p = p + vlen;
    it->valid = true;
    return 0;

corrupt:
    if (offp != NULL)
        *offp = it->r->idx[it->block].off;
    it->valid = false;
    return LAYERED_CORRUPT;
}

/* Position at the first row of block b that is >= key (key NULL: the
 * first row).  LAYERED_NOTFOUND if every row is smaller (cannot happen
 * when the index chose the block, whose last key is >= key). */
static int
block_seek(run_iter *it, uint64_t b, const void *key, size_t klen,
           uint64_t *offp)
{
    const unsigned char *start, *end, *restarts;
    uint32_t n, lo, hi;

    RET(block_rows(it->r, b, &start, &end, &restarts, &n, offp));
    it->block = b;
    it->end = end;
    it->klen = 0;
    lo = 0;
    if (key != NULL) {
        /* The last restart whose key is < key: its rows share nothing, so
         * each decodes on its own. */
        hi = n;
        while (hi - lo > 1) {
            uint32_t mid = lo + (hi - lo) / 2;

            it->p = start + le32_get(restarts + 4 * mid);
            it->klen = 0;
            RET(row_decode(it, offp));
            if (key_cmp(it->row.key, it->row.klen, key, klen) < 0)
                lo = mid;
            else
                hi = mid;
        }
    }
    it->p = start + le32_get(restarts + 4 * lo);
    it->klen = 0;
    while (it->p < end) {
        RET(row_decode(it, offp));
        if (key == NULL || key_cmp(it->row.key, it->row.klen, key, klen) >= 0)
            return 0;
    }
    it->valid = false;
    return LAYERED_NOTFOUND;
}

int
run_iter_seek(run *r, run_iter *it, const void *key, size_t klen,
              uint64_t *offp)
{
    uint64_t lo = 0, hi = r->info.blocks;
    int ret;

    it->r = r;
    it->valid = false;
    if (key != NULL) {
        /* The first block whose last key is >= key. */
        while (lo < hi) {
            uint64_t mid = lo + (hi - lo) / 2;

            if (key_cmp(r->idx[mid].key, r->idx[mid].klen, key, klen) < 0)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo == r->info.blocks)
            return LAYERED_NOTFOUND;
    }
    ret = block_seek(it, lo, key, klen, offp);
    /* The index says the block's last key is >= key: a block that holds
     * no such row disagrees with its index. */
    if (ret == LAYERED_NOTFOUND) {
        if (offp != NULL)
            *offp = r->idx[lo].off;
        return LAYERED_CORRUPT;
    }
    return ret;
}

int
run_iter_next(run_iter *it, uint64_t *offp)
{
    const struct idx_entry *e;

    if (!it->valid)
        return LAYERED_NOTFOUND;
    if (it->p < it->end)
        return row_decode(it, offp);
    e = &it->r->idx[it->block];
    /* The block's last row must be the key its index entry names. */
    if (key_cmp(it->key, it->klen, e->key, e->klen) != 0) {
        if (offp != NULL)
            *offp = e->off;
        it->valid = false;
        return LAYERED_CORRUPT;
    }
    if (it->block + 1 == it->r->info.blocks) {
        it->valid = false;
        return LAYERED_NOTFOUND;
    }
    RET(block_seek(it, it->block + 1, NULL, 0, offp));
    /* The next block's first key comes after this block's last. */
    if (key_cmp(it->row.key, it->row.klen, e->key, e->klen) <= 0) {
        if (offp != NULL)
            *offp = it->r->idx[it->block].off;
        it->valid = false;
        return LAYERED_CORRUPT;
    }
    return 0;
}

void
run_iter_free(run_iter *it)
{
    if (!it->key_lent)
        free(it->key);
    it->key = NULL;
    it->kcap = 0;
    it->valid = false;
}

bool
run_may_hold(const run *r, const void *key, size_t klen)
{
    uint64_t h = key_hash(key, klen);
    const unsigned char *b =
        r->bloom + bloom_block(h, r->bloom_bits / 512) * 64;
    uint32_t bit = (uint32_t)h, step = bloom_step(h), j;

    for (j = 0; j < r->bloom_k; j++, bit += step)
        if ((b[(bit & 511) / 8] & (1u << (bit % 8))) == 0)
            return false;
    return true;
}

int
run_get(run *r, const void *key, size_t klen, run_row *row, uint64_t *offp)
{
    unsigned char kbuf[256];
    run_iter it;
    int ret;

    if (key == NULL || klen == 0 || klen > LAYERED_KEY_MAX)
        return EINVAL;
    if (!run_may_hold(r, key, klen))
        return LAYERED_NOTFOUND;
    /* Short keys are rebuilt in a buffer on the stack: no allocation. */
    memset(&it, 0, sizeof(it));
    it.key = kbuf;
    it.kcap = sizeof(kbuf);
    it.key_lent = true;
    ret = run_iter_seek(r, &it, key, klen, offp);
    if (ret == 0 && key_cmp(it.row.key, it.row.klen, key, klen) != 0)
        ret = LAYERED_NOTFOUND;
    if (ret == 0) {
        *row = it.row;
        row->key = key;
    }
    run_iter_free(&it);
    return ret;
}

/* ---- run files ---- */

#define RUN_FILE_MAGIC "LYRDRUNF"
#define RUN_FILE_VERSION 1

struct run_file_writer {
    const struct os_ops *os;
    int dirfd, fd;
    char *name;
    uint64_t end;          /* bytes written so far */
    unsigned char *entries;
    size_t nentries, ecap;
    bool in_run, failed;
};

int
run_file_create(const struct os_ops *os, int dirfd, const char *name,
                run_file_writer **fwp)
{
    run_file_writer *fw;

    *fwp = NULL;
    if (os == NULL)
        os = &os_default;
    if ((fw = calloc(1, sizeof(*fw))) == NULL ||
        (fw->name = strdup(name)) == NULL) {
        free(fw);
        return ENOMEM;
    }
    fw->os = os;
    fw->dirfd = dirfd;
    if ((fw->fd = os->openat(dirfd, name,
                             O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644)) <
        0) {
        int err = errno;

        free(fw->name);
        free(fw);
        return err;
    }
    *fwp = fw;
    return 0;
}

int
run_file_add_run(run_file_writer *fw, uint64_t table_id, uint64_t epoch,
                 run_writer **wp)
{
    *wp = NULL;
    if (fw == NULL || fw->in_run || fw->failed)
        return EINVAL;
    RET(grow(&fw->entries, &fw->ecap, (fw->nentries + 1) * RUN_FILE_ENTRY_BYTES,
             1));
    RET(run_writer_open(fw->os, fw->fd, fw->end, table_id, epoch, wp));
    fw->in_run = true;
    return 0;
}

int
run_file_end_run(run_file_writer *fw, run_writer *w, run_info *info)
{
    run_info got;
    unsigned char *e;
    int ret;

    if (fw == NULL || !fw->in_run) {
        run_writer_free(w);
        return EINVAL;
    }
    fw->in_run = false;
    ret = run_writer_finish(w, &got);
    run_writer_free(w);
    if (ret != 0) {
        /* Bytes of a failed run may sit in the file: nothing after them
         * could be trusted to follow the listed extents. */
        fw->failed = true;
        return ret;
    }
    /* Room for the entry was made when the run started. */
    e = fw->entries + fw->nentries * RUN_FILE_ENTRY_BYTES;
    le64_put(e, got.table_id);
    le64_put(e + 8, fw->end);
    le64_put(e + 16, got.length);
    fw->nentries++;
    fw->end += got.length;
    if (info != NULL)
        *info = got;
    return 0;
}

void
run_file_abort(run_file_writer *fw)
{
    if (fw == NULL)
        return;
    (void)fw->os->close(fw->fd);
    (void)fw->os->unlinkat(fw->dirfd, fw->name, 0);
    free(fw->entries);
    free(fw->name);
    free(fw);
}

int
run_file_finish(run_file_writer *fw)
{
    unsigned char trailer[RUN_FILE_TRAILER_BYTES];
    struct iovec iov[2];
    size_t len, done = 0;
    uint32_t crc;
    int ret = 0;

    if (fw == NULL)
        return EINVAL;
    if (fw->in_run || fw->failed || fw->nentries == 0) {
        run_file_abort(fw);
        return EINVAL;
    }
    len = fw->nentries * RUN_FILE_ENTRY_BYTES;
    memcpy(trailer, RUN_FILE_MAGIC, 8);
    le32_put(trailer + 8, RUN_FILE_VERSION);
    le32_put(trailer + 12, (uint32_t)fw->nentries);
    crc = crc32c(crc32c(0, fw->entries, len), trailer, 16);
    le32_put(trailer + 16, crc);
    le32_put(trailer + 20, 0);
    /* The entries and the trailer in one write (a short write goes on). */
    while (done < len + sizeof(trailer)) {
        ssize_t n;
        int cnt = 0;

        if (done < len) {
            iov[cnt].iov_base = fw->entries + done;
            iov[cnt++].iov_len = len - done;
            iov[cnt].iov_base = trailer;
            iov[cnt++].iov_len = sizeof(trailer);
        } else {
            iov[cnt].iov_base = trailer + (done - len);
            iov[cnt++].iov_len = sizeof(trailer) - (done - len);
        }
        n = fw->os->pwritev(fw->fd, iov, cnt, (off_t)(fw->end + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            ERR(n < 0 ? errno : EIO);
        done += (size_t)n;
    }
    /* Durable: the data first, then the name in its directory. */
    if (fw->os->fdatasync(fw->fd) != 0)
        ERR(errno);
    if (fw->os->close(fw->fd) != 0) {
        fw->fd = -1;
        ERR(errno);
    }
    fw->fd = -1;
    ERR(os_dir_fsync(fw->os, fw->dirfd));
    free(fw->entries);
    free(fw->name);
    free(fw);
    return 0;

err:
    if (fw->fd >= 0)
        (void)fw->os->close(fw->fd);
    (void)fw->os->unlinkat(fw->dirfd, fw->name, 0);
    free(fw->entries);
    free(fw->name);
    free(fw);
    return ret;
}

struct run_file {
    const struct os_ops *os;
    int fd;
    unsigned char *map;
    size_t size;
    size_t n;
    run **runs;
    uint64_t *ids;
};

size_t
run_file_count(const run_file *rf)
{
    return rf->n;
}

run *
run_file_run(const run_file *rf, size_t i, uint64_t *table_idp)
{
    if (i >= rf->n)
        return NULL;
    if (table_idp != NULL)
        *table_idp = rf->ids[i];
    return rf->runs[i];
}

void
run_file_close(run_file *rf)
{
    size_t i;

    if (rf == NULL)
        return;
    for (i = 0; i < rf->n; i++)
        run_close(rf->runs[i]);
    if (rf->map != NULL)
        (void)rf->os->munmap(rf->map, rf->size);
    if (rf->fd >= 0)
        (void)rf->os->close(rf->fd);
    free(rf->runs);
    free(rf->ids);
    free(rf);
}

int
run_file_open(const struct os_ops *os, int dirfd, const char *name,
              run_file **rfp, const char **why, uint64_t *offp)
{
    const unsigned char *t, *e;
    uint64_t count, entries_off, prev_end = 0, i;
    run_file *rf;
    struct stat st;
    void *map;
    int ret = 0;

    *rfp = NULL;
    if (os == NULL)
        os = &os_default;
    if ((rf = calloc(1, sizeof(*rf))) == NULL)
        return ENOMEM;
    rf->os = os;
    if ((rf->fd = os->openat(dirfd, name, O_RDONLY | O_CLOEXEC, 0)) < 0) {
        ret = errno;
        free(rf);
        return ret;
    }
    if (os->fstat(rf->fd, &st) != 0)
        ERR(errno);
    if ((uint64_t)st.st_size < RUN_FILE_TRAILER_BYTES + RUN_FILE_ENTRY_BYTES)
        CORRUPT("shorter than a run file trailer", 0);
    rf->size = (size_t)st.st_size;
    if ((map = os->mmap(NULL, rf->size, PROT_READ, MAP_SHARED, rf->fd, 0)) ==
        MAP_FAILED)
        ERR(errno);
    rf->map = map;
    t = rf->map + rf->size - RUN_FILE_TRAILER_BYTES;
    if (memcmp(t, RUN_FILE_MAGIC, 8) != 0)
        CORRUPT("no run file trailer (bad magic)",
                rf->size - RUN_FILE_TRAILER_BYTES);
    count = le32_get(t + 12);
    if (le32_get(t + 8) != RUN_FILE_VERSION || count == 0 ||
        count > (rf->size - RUN_FILE_TRAILER_BYTES) / RUN_FILE_ENTRY_BYTES)
        CORRUPT("run file trailer fields out of range",
                rf->size - RUN_FILE_TRAILER_BYTES);
    entries_off = rf->size - RUN_FILE_TRAILER_BYTES -
                  count * RUN_FILE_ENTRY_BYTES;
    e = rf->map + entries_off;
    if (le32_get(t + 16) !=
        crc32c(crc32c(0, e, (size_t)count * RUN_FILE_ENTRY_BYTES), t, 16))
        CORRUPT("run file trailer checksum mismatch",
                rf->size - RUN_FILE_TRAILER_BYTES);
    if ((rf->runs = calloc((size_t)count, sizeof(*rf->runs))) == NULL ||
        (rf->ids = calloc((size_t)count, sizeof(*rf->ids))) == NULL)
        ERR(ENOMEM);
    for (i = 0; i < count; i++, e += RUN_FILE_ENTRY_BYTES) {
        uint64_t off = le64_get(e + 8), len = le64_get(e + 16);

        /* The runs lie back to back from offset 0 up to the entries. */
        if (off != prev_end || len > entries_off - off)
            CORRUPT("run file entry out of range", entries_off);
        prev_end = off + len;
        rf->ids[i] = le64_get(e);
        if ((ret = run_open(rf->map + off, (size_t)len, &rf->runs[i], why,
                            offp)) != 0) {
            if (ret == LAYERED_CORRUPT && offp != NULL)
                *offp += off;
            goto err;
        }
        rf->n = (size_t)i + 1;
    }
    if (prev_end != entries_off)
        CORRUPT("run file entries do not cover its runs", entries_off);
    *rfp = rf;
    return 0;

err:
    run_file_close(rf);
    return ret;
}
