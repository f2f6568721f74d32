/*
 * filestore.c -- the backing file of one constituent: an append-only log of
 * checksummed records and an in-memory ordered index of key -> offset.
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
 * Locking: each file has one pthread rwlock, writer-preferring (so a stream
 * of readers cannot starve a writer; never take it recursively).  It
 * protects everything in struct fs_file below the lock: the tree and arena,
 * the counters, the write buffer, the end offsets and the descriptor (which
 * compaction replaces).  Readers (fs_seek, fs_read_value, fs_get_info,
 * fs_empty) take it shared; writers (fs_put, fs_del, fs_sync, fs_compact,
 * fs_clear, and fs_copy's destination) take it exclusive.  fs_copy takes
 * the source shared and then the destination exclusive, per batch.  The
 * lock is never held while calling out of this file except to the env's
 * failpoint and message hooks, which must not call back into it.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

/* libbsd's RB_GENERATE_STATIC marks its functions __unused, which glibc does
 * not define; included last so no system header sees the definition. */
#ifndef __unused
#define __unused __attribute__((unused))
#endif
#include <bsd/sys/tree.h>

#include "layered.h"
#include "filestore.h"
#include "os.h"

#define FS_RET(a) do {                                                      \
        int ret_ = (a);                                                     \
        if (ret_ != 0)                                                      \
            return (ret_);                                                  \
    } while (0)
#define FS_ERR(a) do {                                                      \
        if ((ret = (a)) != 0)                                               \
            goto err;                                                       \
    } while (0)

#define FILE_MAGIC "LYRDFILE"
#define FILE_VERSION 1
#define FILE_HDR_SIZE FS_HEADER_BYTES
#define REC_HDR_SIZE 24

#define REC_PUT 1
#define REC_DEL 2
#define REC_TOMB 3
/* A clear marker: every record before it is dead (the drain's clear of an
 * ingest, an append instead of a truncate on the step-up's path). */
#define REC_CLEAR 4

#define REC_KLEN_MASK 0xffffffu

/* Write buffer of LAYERED_SYNC_NONE files. */
#define WBUF_SIZE (1024u * 1024)
/* fs_copy: the destination batch buffer and the rows per batch (the
 * per-batch op array is COPY_BATCH_ROWS * 24 bytes). */
#define COPY_BUF_SIZE (8u * 1024 * 1024)
#define COPY_BATCH_ROWS 65536
/* Sources up to this size are read into memory rather than mapped. */
#define COPY_READ_MAX (1024u * 1024)
/* fs_copy walks src's records in key order, which is random file order:
 * it prefetches the records of the rows this far ahead. */
#define COPY_PREFETCH 8
/* ... and follows dst's index alongside; a gap of more rows than this is
 * crossed with a search instead of steps. */
#define COPY_MAX_STEPS 8
/* fs_compact's write buffer. */
#define COMPACT_BUF_SIZE (4u * 1024 * 1024)
/* fs_compact without force leaves files smaller than this alone. */
#define COMPACT_MIN_BYTES (64u * 1024)

/* Arena chunks grow from ARENA_CHUNK_MIN to ARENA_CHUNK_MAX (headers
 * included), so a small table holds little memory; a node too big for a
 * quarter of the current chunk gets a chunk of its own. */
#define ARENA_CHUNK_MIN (16u * 1024)
#define ARENA_CHUNK_MAX (1024u * 1024)
/* Free lists for node sizes up to this, one per multiple of 8 bytes. */
#define ARENA_FREE_MAX 512
#define ARENA_FREE_LISTS (ARENA_FREE_MAX / 8 + 1)

/* An index entry: key -> record.  kf holds the key length (16 bits) and
 * NODE_TOMB. */
struct fs_node {
    RB_ENTRY(fs_node) rb;
    uint64_t off;
    uint32_t vlen;
    uint32_t kf;
    unsigned char key[];
};
#define NODE_KLEN_MASK 0xffffu
#define NODE_TOMB 0x10000u
#define NODE_KLEN(n) ((size_t)((n)->kf & NODE_KLEN_MASK))
#define NODE_IS_TOMB(n) (((n)->kf & NODE_TOMB) != 0)

RB_HEAD(fs_tree, fs_node);

struct arena_chunk {
    struct arena_chunk *next;
    size_t size;
    unsigned char data[] __attribute__((aligned(8)));
};

struct fs_arena {
    struct arena_chunk *chunks;
    unsigned char *cur;
    size_t avail;
    size_t next_size;
    uint64_t bytes;                     /* malloc'ed, headers included */
    struct fs_node *free[ARENA_FREE_LISTS];
};

struct fs_file {
    char *path;
    fs_env env;

    pthread_rwlock_t lock;
    int fd;
    struct fs_tree tree;
    struct fs_arena arena;
    uint64_t entries;
    uint64_t live_bytes;
    uint64_t max_lsn;
    uint64_t end;          /* logical end of the file, buffer included */
    uint64_t disk_end;     /* end of what has been written to fd */
    unsigned char *wbuf;   /* [disk_end, end) under LAYERED_SYNC_NONE */
    /* gen grows whenever a node leaves the tree or the tree is rebuilt, so a
     * cached node pointer is usable while gen is unchanged; rewrite_gen is
     * gen as of the last compaction or clear (offsets before it moved). */
    uint64_t gen;
    uint64_t rewrite_gen;
    bool tail_dirty;       /* a failed write left bytes past disk_end */
    int sync_error;        /* a real fdatasync failure, sticky */
    /* wgen counts changes made to the file through fd (writes, truncates);
     * synced_wgen is wgen as of the last successful sync.  Equal: nothing
     * to sync, so closing or checkpointing a clean file costs no I/O. */
    uint64_t wgen;
    uint64_t synced_wgen;
    /* Which open of the path this is: distinct for every fs_open of a
     * connection (env->opens), so a sync token taken from an earlier open
     * is recognised. */
    uint64_t instance;
};

/* Decoded record header. */
struct rec_hdr {
    uint32_t bcrc;
    uint64_t lsn;
    uint32_t type;
    uint32_t klen;
    uint32_t vlen;
};

/*
 * node_cmp --
 *     Tree comparator (used by the generated insert/find functions).
 */
static int
node_cmp(struct fs_node *a, struct fs_node *b)
{
    return (fs_key_cmp(a->key, NODE_KLEN(a), b->key, NODE_KLEN(b)));
}

RB_GENERATE_STATIC(fs_tree, fs_node, rb, node_cmp)

/*
 * le32_get, le64_get, le32_put, le64_put --
 *     Unaligned little-endian integer access.
 */
static inline uint32_t
le32_get(const unsigned char *p)
{
    uint32_t v;

    memcpy(&v, p, 4);
    return (le32toh(v));
}

static inline uint64_t
le64_get(const unsigned char *p)
{
    uint64_t v;

    memcpy(&v, p, 8);
    return (le64toh(v));
}

static inline void
le32_put(unsigned char *p, uint32_t v)
{
    v = htole32(v);
    memcpy(p, &v, 4);
}

static inline void
le64_put(unsigned char *p, uint64_t v)
{
    v = htole64(v);
    memcpy(p, &v, 8);
}

/*
 * rec_hdr_encode --
 *     Fill a 24-byte record header; the header checksum covers the rest.
 */
static void
rec_hdr_encode(unsigned char *p, uint32_t type, uint64_t lsn, size_t klen,
               size_t vlen, uint32_t bcrc)
{
    le32_put(p + 4, bcrc);
    le64_put(p + 8, lsn);
    le32_put(p + 16, (uint32_t)klen | (type << 24));
    le32_put(p + 20, (uint32_t)vlen);
    le32_put(p, crc32c(0, p + 4, REC_HDR_SIZE - 4));
}

/*
 * rec_hdr_decode --
 *     Check and decode a record header.  False if the checksum fails or a
 *     field is out of range (so a header that passes is safe to size by).
 */
static bool
rec_hdr_decode(const unsigned char *p, struct rec_hdr *h)
{
    uint32_t kt;

    if (le32_get(p) != crc32c(0, p + 4, REC_HDR_SIZE - 4))
        return (false);
    h->bcrc = le32_get(p + 4);
    h->lsn = le64_get(p + 8);
    kt = le32_get(p + 16);
    h->klen = kt & REC_KLEN_MASK;
    h->type = kt >> 24;
    h->vlen = le32_get(p + 20);
    if (h->type == REC_CLEAR)
        return (h->klen == 0 && h->vlen == 0);
    if (h->klen == 0 || h->klen > LAYERED_KEY_MAX ||
        h->vlen > LAYERED_VALUE_MAX)
        return (false);
    if (h->type == REC_PUT)
        return (true);
    return ((h->type == REC_DEL || h->type == REC_TOMB) && h->vlen == 0);
}

/*
 * rec_size --
 *     Bytes of a record on disk.
 */
static inline uint64_t
rec_size(size_t klen, size_t vlen)
{
    return (REC_HDR_SIZE + (uint64_t)klen + vlen);
}

/*
 * node_rec_size --
 *     Bytes of the record a node points at (for live-byte accounting).
 */
static inline uint64_t
node_rec_size(const struct fs_node *n)
{
    return (rec_size(NODE_KLEN(n), n->vlen));
}

/*
 * file_hdr_encode --
 *     The 32-byte file header.
 */
static void
file_hdr_encode(unsigned char *p)
{
    memset(p, 0, FILE_HDR_SIZE);
    memcpy(p, FILE_MAGIC, 8);
    le32_put(p + 8, FILE_VERSION);
    le32_put(p + 12, FILE_HDR_SIZE);
    le32_put(p + 28, crc32c(0, p, 28));
}

/*
 * all_zero --
 *     True if len bytes at p are all zero (a preallocated or never-written
 *     tail).
 */
static bool
all_zero(const unsigned char *p, uint64_t len)
{
    if (len == 0)
        return (true);
    return (p[0] == 0 && memcmp(p, p + 1, len - 1) == 0);
}

/*
 * fs_message --
 *     Format a message and hand it to the env's message hook.
 */
static void __attribute__((format(printf, 2, 3)))
fs_message(const fs_file *f, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;

    if (f->env.message == NULL)
        return;
    va_start(ap, fmt);
    (void)vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    f->env.message(f->env.message_arg, buf);
}

/*
 * fs_corrupt --
 *     Report damage at an offset and return LAYERED_CORRUPT.
 */
static int
fs_corrupt(const fs_file *f, uint64_t off, const char *why)
{
    fs_message(f, "file-store: %s: corrupt record at offset %llu: %s",
               f->path, (unsigned long long)off, why);
    return (LAYERED_CORRUPT);
}

/*
 * arena_init, arena_destroy --
 *     An empty arena; free every chunk at once.
 */
static void
arena_init(struct fs_arena *a)
{
    memset(a, 0, sizeof(*a));
    a->next_size = ARENA_CHUNK_MIN;
}

static void
arena_destroy(struct fs_arena *a)
{
    struct arena_chunk *c, *next;

    for (c = a->chunks; c != NULL; c = next) {
        next = c->next;
        free(c);
    }
    arena_init(a);
}

/*
 * arena_alloc --
 *     Bump-allocate size bytes (a multiple of 8), reusing a node of the
 *     same size from the free list first.  NULL on ENOMEM.
 */
static void *
arena_alloc(struct fs_arena *a, size_t size)
{
    struct arena_chunk *c;
    struct fs_node *n;
    size_t csize;
    void *p;

    if (size <= ARENA_FREE_MAX && (n = a->free[size / 8]) != NULL) {
        a->free[size / 8] = RB_LEFT(n, rb);
        return (n);
    }
    if (size > a->avail) {
        if (size > a->next_size / 4) {
            /* Oversized: its own chunk; the current one stays current. */
            if ((c = malloc(sizeof(*c) + size)) == NULL)
                return (NULL);
            c->size = size;
            c->next = a->chunks;
            a->chunks = c;
            a->bytes += sizeof(*c) + size;
            return (c->data);
        }
        csize = a->next_size;
        if ((c = malloc(csize)) == NULL)
            return (NULL);
        c->size = csize;
        c->next = a->chunks;
        a->chunks = c;
        a->bytes += csize;
        a->cur = c->data;
        a->avail = csize - sizeof(*c);
        if (a->next_size < ARENA_CHUNK_MAX)
            a->next_size *= 2;
    }
    p = a->cur;
    a->cur += size;
    a->avail -= size;
    return (p);
}

/*
 * node_size --
 *     Bytes of a node for a key length, 8-byte aligned.
 */
static inline size_t
node_size(size_t klen)
{
    return ((offsetof(struct fs_node, key) + klen + 7) & ~(size_t)7);
}

/*
 * node_alloc --
 *     A node for a key, from the arena, not yet linked.  NULL on ENOMEM.
 */
static struct fs_node *
node_alloc(struct fs_arena *a, const void *key, size_t klen)
{
    struct fs_node *n;

    if ((n = arena_alloc(a, node_size(klen))) == NULL)
        return (NULL);
    memcpy(n->key, key, klen);
    n->kf = (uint32_t)klen;
    n->off = 0;
    n->vlen = 0;
    return (n);
}

/*
 * node_free --
 *     Return an unlinked node to its arena's free list (nodes too large
 *     for the lists stay unused until the arena is rebuilt).
 */
static void
node_free(struct fs_arena *a, struct fs_node *n)
{
    size_t size = node_size(NODE_KLEN(n));

    if (size <= ARENA_FREE_MAX) {
        RB_LEFT(n, rb) = a->free[size / 8];
        a->free[size / 8] = n;
    }
}

/*
 * idx_find --
 *     The node holding key, or NULL and (if parentp) the insertion point:
 *     the parent and the side (negative: left).
 */
static struct fs_node *
idx_find(struct fs_tree *t, const void *key, size_t klen,
         struct fs_node **parentp, int *dirp)
{
    struct fs_node *n = RB_ROOT(t), *parent = NULL;
    int c = 0;

    while (n != NULL) {
        c = fs_key_cmp(key, klen, n->key, NODE_KLEN(n));
        if (c == 0)
            return (n);
        parent = n;
        n = c < 0 ? RB_LEFT(n, rb) : RB_RIGHT(n, rb);
    }
    if (parentp != NULL) {
        *parentp = parent;
        *dirp = c;
    }
    return (NULL);
}

/*
 * idx_link --
 *     Link a node at an insertion point found by idx_find (saves the second
 *     descent RB_INSERT would make) and rebalance.
 */
static void
idx_link(struct fs_tree *t, struct fs_node *n, struct fs_node *parent,
         int dir)
{
    RB_SET(n, parent, rb);
    if (parent == NULL)
        RB_ROOT(t) = n;
    else if (dir < 0)
        RB_LEFT(parent, rb) = n;
    else
        RB_RIGHT(parent, rb) = n;
    fs_tree_RB_INSERT_COLOR(t, n);
}

/*
 * idx_search --
 *     The node for a relational search (FS_EQ, FS_GE, FS_GT, FS_LE, FS_LT)
 *     in one descent.
 */
static struct fs_node *
idx_search(struct fs_tree *t, const void *key, size_t klen,
           enum fs_seek_mode mode)
{
    struct fs_node *n = RB_ROOT(t), *best = NULL;
    int c;

    while (n != NULL) {
        c = fs_key_cmp(key, klen, n->key, NODE_KLEN(n));
        switch (mode) {
        case FS_EQ:
            if (c == 0)
                return (n);
            n = c < 0 ? RB_LEFT(n, rb) : RB_RIGHT(n, rb);
            break;
        case FS_GE:
        case FS_GT:
            if (c < 0 || (c == 0 && mode == FS_GE)) {
                best = n;
                n = RB_LEFT(n, rb);
            } else
                n = RB_RIGHT(n, rb);
            break;
        default: /* FS_LE, FS_LT */
            if (c > 0 || (c == 0 && mode == FS_LE)) {
                best = n;
                n = RB_RIGHT(n, rb);
            } else
                n = RB_LEFT(n, rb);
            break;
        }
    }
    return (best);
}

/*
 * idx_set --
 *     Point a node at a new record, keeping live bytes in step.  is_new:
 *     the node is not yet counted.
 */
static void
idx_set(fs_file *f, struct fs_node *n, bool is_new, uint64_t off,
        uint32_t vlen, bool tomb)
{
    if (!is_new)
        f->live_bytes -= node_rec_size(n);
    n->off = off;
    n->vlen = vlen;
    n->kf = (n->kf & NODE_KLEN_MASK) | (tomb ? NODE_TOMB : 0);
    f->live_bytes += node_rec_size(n);
}

/*
 * idx_remove --
 *     Unlink a node (a stable delete); cached positions must re-search.
 */
static void
idx_remove(fs_file *f, struct fs_node *n)
{
    f->live_bytes -= node_rec_size(n);
    fs_tree_RB_REMOVE(&f->tree, n);
    node_free(&f->arena, n);
    --f->entries;
    ++f->gen;
}

/*
 * idx_reset --
 *     Drop the whole index (clear): every node goes with the arena.
 */
static void
idx_reset(fs_file *f)
{
    arena_destroy(&f->arena);
    RB_INIT(&f->tree);
    f->entries = 0;
    f->live_bytes = 0;
    ++f->gen;
    f->rewrite_gen = f->gen;
}

/*
 * lsn_raise --
 *     Raise the connection's LSN counter to at least lsn (CAS loop: other
 *     files may raise it concurrently).
 */
static void
lsn_raise(_Atomic uint64_t *counter, uint64_t lsn)
{
    uint64_t cur = atomic_load(counter);

    while (cur < lsn && !atomic_compare_exchange_weak(counter, &cur, lsn))
        ;
}

/*
 * fs_failpoint --
 *     Ask the env's failpoint hook whether to inject an error.
 */
static inline int
fs_failpoint(const fs_file *f, const char *name)
{
    return (f->env.failpoint == NULL ? 0
                                     : f->env.failpoint(f->env.failpoint_arg,
                                                        name));
}

/*
 * iov_advance --
 *     Step an iovec array past n bytes done by a short read or write.
 */
static void
iov_advance(struct iovec **iovp, int *iovcntp, size_t n)
{
    struct iovec *iov = *iovp;

    while (n > 0 && *iovcntp > 0) {
        if (n >= iov->iov_len) {
            n -= iov->iov_len;
            ++iov;
            --*iovcntp;
        } else {
            iov->iov_base = (char *)iov->iov_base + n;
            iov->iov_len -= n;
            n = 0;
        }
    }
    *iovp = iov;
}

/*
 * pwritev_full --
 *     Write every byte of an iovec array at off, continuing after short
 *     writes (the array is consumed).  Returns 0 or an errno.
 */
static int
pwritev_full(const struct os_ops *os, int fd, struct iovec *iov, int iovcnt,
             uint64_t off)
{
    ssize_t n;

    while (iovcnt > 0) {
        if (iov->iov_len == 0) {
            ++iov;
            --iovcnt;
            continue;
        }
        n = os->pwritev(fd, iov, iovcnt > IOV_MAX ? IOV_MAX : iovcnt,
                        (off_t)off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return (errno);
        }
        if (n == 0)
            return (EIO);
        off += (uint64_t)n;
        iov_advance(&iov, &iovcnt, (size_t)n);
    }
    return (0);
}

/*
 * preadv_full --
 *     Read every byte of an iovec array at off.  A read that reaches the
 *     end of the file first is LAYERED_CORRUPT (the index points past it).
 */
static int
preadv_full(const fs_file *f, struct iovec *iov, int iovcnt, uint64_t off)
{
    uint64_t start = off;
    ssize_t n;

    while (iovcnt > 0) {
        if (iov->iov_len == 0) {
            ++iov;
            --iovcnt;
            continue;
        }
        n = f->env.os->preadv(f->fd, iov, iovcnt, (off_t)off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return (errno);
        }
        if (n == 0)
            return (fs_corrupt(f, start, "record runs past end of file"));
        off += (uint64_t)n;
        iov_advance(&iov, &iovcnt, (size_t)n);
    }
    return (0);
}

/*
 * fs_truncate_back --
 *     After a failed write, cut the file back to what it held before, so no
 *     partial record sits in the middle of the log.  If even that fails,
 *     remember it: the next write retries the cut first.
 */
static void
fs_truncate_back(fs_file *f, uint64_t off)
{
    f->wgen++;
    if (f->env.os->ftruncate(f->fd, (off_t)off) != 0)
        f->tail_dirty = true;
    else
        f->tail_dirty = false;
}

/*
 * fs_write_at_end --
 *     One write(2) of len bytes at disk_end (the write buffer must be
 *     empty or be what is written).  On failure the file is cut back and
 *     the offsets are unchanged.
 */
static int
fs_write_at_end(fs_file *f, struct iovec *iov, int iovcnt)
{
    int ret;

    if (f->tail_dirty) {
        if (f->env.os->ftruncate(f->fd, (off_t)f->disk_end) != 0)
            return (errno);
        f->tail_dirty = false;
    }
    if ((ret = fs_failpoint(f, "fs.write")) != 0)
        return (ret);
    f->wgen++;
    if ((ret = pwritev_full(f->env.os, f->fd, iov, iovcnt, f->disk_end)) != 0)
        fs_truncate_back(f, f->disk_end);
    return (ret);
}

/*
 * fs_datasync --
 *     fdatasync the file.  A real failure is sticky (the kernel may have
 *     dropped the dirty pages, so a later success would lie); an injected
 *     one is not.
 */
static int
fs_datasync(fs_file *f)
{
    int ret;

    uint64_t wgen = f->wgen;

    if (f->sync_error != 0)
        return (f->sync_error);
    if (f->synced_wgen == wgen)
        return (0); /* nothing written since the last sync */
    if ((ret = fs_failpoint(f, "fs.sync")) != 0)
        return (ret);
    if (f->env.os->fdatasync(f->fd) != 0) {
        f->sync_error = errno;
        fs_message(f, "file-store: %s: fdatasync failed: %s", f->path,
                   strerror(errno));
        return (f->sync_error);
    }
    f->synced_wgen = wgen;
    return (0);
}

/*
 * fs_flush --
 *     Write the buffered records (LAYERED_SYNC_NONE).  On failure they stay
 *     buffered (and readable) and the file is cut back.
 */
static int
fs_flush(fs_file *f)
{
    struct iovec iov;

    if (f->end == f->disk_end)
        return (0);
    iov.iov_base = f->wbuf;
    iov.iov_len = (size_t)(f->end - f->disk_end);
    FS_RET(fs_write_at_end(f, &iov, 1));
    f->disk_end = f->end;
    return (0);
}

/*
 * fs_append --
 *     Append one record (header, key, value) by the file's sync level and
 *     return its offset.  Nothing is appended on error.
 */
static int
fs_append(fs_file *f, const unsigned char *hdr, const void *key,
          size_t klen, const void *val, size_t vlen, uint64_t *offp)
{
    struct iovec iov[3];
    uint64_t len = rec_size(klen, vlen), start;
    unsigned char *p;
    int ret;

    if (f->env.sync == LAYERED_SYNC_NONE && len <= WBUF_SIZE) {
        if (f->wbuf == NULL && (f->wbuf = malloc(WBUF_SIZE)) == NULL)
            return (ENOMEM);
        if (f->end - f->disk_end + len > WBUF_SIZE)
            FS_RET(fs_flush(f));
        p = f->wbuf + (f->end - f->disk_end);
        memcpy(p, hdr, REC_HDR_SIZE);
        memcpy(p + REC_HDR_SIZE, key, klen);
        if (vlen > 0)
            memcpy(p + REC_HDR_SIZE + klen, val, vlen);
        *offp = f->end;
        f->end += len;
        return (0);
    }

    /* A direct write: buffered records go first, to keep file order. */
    FS_RET(fs_flush(f));
    start = f->disk_end;
    iov[0].iov_base = (void *)hdr;
    iov[0].iov_len = REC_HDR_SIZE;
    iov[1].iov_base = (void *)key;
    iov[1].iov_len = klen;
    iov[2].iov_base = (void *)val;
    iov[2].iov_len = vlen;
    FS_RET(fs_write_at_end(f, iov, 3));
    if (f->env.sync == LAYERED_SYNC_FSYNC &&
        (ret = fs_datasync(f)) != 0) {
        fs_truncate_back(f, start);
        return (ret);
    }
    f->disk_end = f->end = start + len;
    *offp = start;
    return (0);
}

/*
 * fs_write_header --
 *     Start an empty file: truncate, write the file header, sync.
 */
static int
fs_write_header(fs_file *f, int fd)
{
    unsigned char hdr[FILE_HDR_SIZE];
    struct iovec iov;
    int ret;

    if (f->env.os->ftruncate(fd, 0) != 0)
        return (errno);
    file_hdr_encode(hdr);
    iov.iov_base = hdr;
    iov.iov_len = sizeof(hdr);
    FS_RET(fs_failpoint(f, "fs.write"));
    if ((ret = pwritev_full(f->env.os, fd, &iov, 1, 0)) != 0)
        return (ret);
    FS_RET(fs_failpoint(f, "fs.sync"));
    if (f->env.os->fdatasync(fd) != 0)
        return (errno);
    return (0);
}

/*
 * fs_load --
 *     Read every record of the file, check it, and build the index; cut a
 *     torn tail.  The file is mapped read-only for the scan.
 */
static int
fs_load(fs_file *f, uint64_t size)
{
    struct fs_node *n, *parent;
    struct rec_hdr h;
    const unsigned char *map = NULL, *p;
    const char *why = NULL;
    uint64_t off, rlen;
    int dir = 0, ret = 0;
    bool heap = size <= COPY_READ_MAX;

    if (heap) {
        /* A small file: one pread costs less than a mapping. */
        struct iovec iov;
        if ((map = malloc((size_t)size)) == NULL)
            FS_ERR(ENOMEM);
        iov.iov_base = (void *)map;
        iov.iov_len = (size_t)size;
        FS_ERR(preadv_full(f, &iov, 1, 0));
    } else {
        if ((map = f->env.os->mmap(NULL, (size_t)size, PROT_READ,
                                   MAP_SHARED, f->fd, 0)) == MAP_FAILED) {
            map = NULL;
            FS_ERR(errno);
        }
        (void)f->env.os->madvise((void *)map, (size_t)size,
                                 MADV_SEQUENTIAL);
    }

    for (off = FILE_HDR_SIZE; off < size; off += rlen) {
        p = map + off;
        if (size - off < REC_HDR_SIZE) {
            why = "incomplete record header";
            break;
        }
        if (!rec_hdr_decode(p, &h)) {
            if (all_zero(p + REC_HDR_SIZE, size - off - REC_HDR_SIZE)) {
                why = "bad record header followed only by zero bytes";
                break;
            }
            FS_ERR(fs_corrupt(f, off, "bad record header"));
        }
        rlen = rec_size(h.klen, h.vlen);
        if (rlen > size - off) {
            why = "record runs past end of file";
            break;
        }
        if (crc32c(0, p + REC_HDR_SIZE, h.klen + h.vlen) != h.bcrc) {
            if (off + rlen == size) {
                why = "last record fails its body checksum";
                break;
            }
            if (all_zero(p + rlen, size - off - rlen)) {
                why = "bad record followed only by zero bytes";
                break;
            }
            FS_ERR(fs_corrupt(f, off, "body checksum mismatch"));
        }

        if (h.lsn > f->max_lsn)
            f->max_lsn = h.lsn;
        if (h.type == REC_CLEAR) {
            idx_reset(f);
            continue;
        }
        n = idx_find(&f->tree, p + REC_HDR_SIZE, h.klen, &parent, &dir);
        if (h.type == REC_DEL) {
            if (n != NULL)
                idx_remove(f, n);
            continue;
        }
        if (n == NULL) {
            if ((n = node_alloc(&f->arena, p + REC_HDR_SIZE, h.klen)) ==
                NULL)
                FS_ERR(ENOMEM);
            idx_link(&f->tree, n, parent, dir);
            ++f->entries;
            idx_set(f, n, true, off, h.vlen, h.type == REC_TOMB);
        } else
            idx_set(f, n, false, off, h.vlen, h.type == REC_TOMB);
    }

    if (off < size) {
        fs_message(f,
                   "file-store: %s: cut torn tail at offset %llu "
                   "(%llu bytes): %s",
                   f->path, (unsigned long long)off,
                   (unsigned long long)(size - off), why);
        f->wgen++;
        if (f->env.os->ftruncate(f->fd, (off_t)off) != 0)
            FS_ERR(errno);
        FS_ERR(fs_datasync(f));
    }
    f->end = f->disk_end = off;

err:
    if (map != NULL && heap)
        free((void *)map);
    else if (map != NULL)
        (void)f->env.os->munmap((void *)map, (size_t)size);
    return (ret);
}

/*
 * fs_check_header --
 *     Read and check the file header.  *emptyp is set for a bad header with
 *     only zero bytes after it (a crash while creating the file: there can
 *     be no records to lose), which is rewritten.
 */
static int
fs_check_header(fs_file *f, uint64_t size, bool *emptyp)
{
    unsigned char hdr[FILE_HDR_SIZE], want[FILE_HDR_SIZE], zero[4096];
    uint64_t off;
    ssize_t n;

    *emptyp = false;
    if ((n = f->env.os->pread(f->fd, hdr, sizeof(hdr), 0)) < 0)
        return (errno);
    if (n != (ssize_t)sizeof(hdr))
        return (fs_corrupt(f, 0, "short file header"));
    file_hdr_encode(want);
    if (memcmp(hdr, want, sizeof(hdr)) == 0)
        return (0);
    for (off = FILE_HDR_SIZE; off < size; off += (uint64_t)n) {
        if ((n = f->env.os->pread(f->fd, zero, sizeof(zero), (off_t)off)) <
            0)
            return (errno);
        if (n == 0 || !all_zero(zero, (uint64_t)n))
            break;
    }
    if (off >= size) {
        *emptyp = true;
        return (0);
    }
    if (memcmp(hdr, FILE_MAGIC, 8) != 0)
        return (fs_corrupt(f, 0, "not a Layered file (bad magic)"));
    if (le32_get(hdr + 28) != crc32c(0, hdr, 28))
        return (fs_corrupt(f, 0, "file header checksum mismatch"));
    return (fs_corrupt(f, 0, "unsupported file format version"));
}

/*
 * fs_free --
 *     Release everything a file holds (descriptor excluded).
 */
static void
fs_free(fs_file *f)
{
    arena_destroy(&f->arena);
    (void)pthread_rwlock_destroy(&f->lock);
    free(f->wbuf);
    free(f->path);
    free(f);
}

int
fs_open(const char *path, unsigned flags, const fs_env *env, fs_file **fp)
{
    pthread_rwlockattr_t attr;
    struct stat st;
    fs_file *f;
    bool created = false, empty;
    int ret = 0;

    *fp = NULL;
    if (path == NULL || env == NULL || env->lsn == NULL)
        return (EINVAL);
    if ((f = calloc(1, sizeof(*f))) == NULL)
        return (ENOMEM);
    f->fd = -1;
    f->env = *env;
    if (f->env.os == NULL)
        f->env.os = &os_default;
    f->instance = env->opens != NULL ? atomic_fetch_add(env->opens, 1) + 1 : 0;
    arena_init(&f->arena);
    RB_INIT(&f->tree);
    (void)pthread_rwlockattr_init(&attr);
    (void)pthread_rwlockattr_setkind_np(
        &attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    ret = pthread_rwlock_init(&f->lock, &attr);
    (void)pthread_rwlockattr_destroy(&attr);
    if (ret != 0) {
        free(f);
        return (ret);
    }
    if ((f->path = strdup(path)) == NULL)
        FS_ERR(ENOMEM);
    /* The write buffer (LAYERED_SYNC_NONE) is allocated by the first
     * buffered write: most opened files are only read or drained. */

    for (;;) {
        if ((f->fd = f->env.os->open(path, O_RDWR | O_CLOEXEC, 0)) >= 0) {
            if ((flags & FS_CREATE) != 0 && (flags & FS_EXCL) != 0)
                FS_ERR(EEXIST);
            break;
        }
        if (errno != ENOENT || (flags & FS_CREATE) == 0)
            FS_ERR(errno);
        if ((f->fd = f->env.os->open(path, O_RDWR | O_CREAT | O_EXCL |
                                             O_CLOEXEC, 0644)) >= 0) {
            created = true;
            break;
        }
        if (errno != EEXIST)
            FS_ERR(errno);
    }
    if (f->env.os->fstat(f->fd, &st) != 0)
        FS_ERR(errno);
    empty = (uint64_t)st.st_size < FILE_HDR_SIZE;
    if (!empty)
        FS_ERR(fs_check_header(f, (uint64_t)st.st_size, &empty));
    if (empty) {
        if (st.st_size > 0)
            fs_message(f,
                       "file-store: %s: torn file header (file of %lld "
                       "bytes, no records), rewritten as an empty file",
                       path, (long long)st.st_size);
        FS_ERR(fs_write_header(f, f->fd));
        if (created)
            FS_ERR(os_parent_fsync(f->env.os, path));
        f->end = f->disk_end = FILE_HDR_SIZE;
    } else
        FS_ERR(fs_load(f, (uint64_t)st.st_size));
    lsn_raise(f->env.lsn, f->max_lsn);
    *fp = f;
    return (0);

err:
    if (f->fd >= 0)
        (void)f->env.os->close(f->fd);
    if (created)
        (void)f->env.os->unlink(path);
    fs_free(f);
    return (ret);
}

int
fs_close(fs_file *f)
{
    int ret;

    if (f == NULL)
        return (EINVAL);
    ret = fs_flush(f);
    /* A file with no entries left (an ingest the drain cleared) is cut back
     * to its header, so that its size alone tells the next step-up it holds
     * no rows: a closed ingest is queued for a drain only if it is larger
     * than its header.  The truncate is made durable by the sync below; a
     * crash before that leaves the clear marker, which loads as empty. */
    if (ret == 0 && f->entries == 0 && f->sync_error == 0 &&
        f->disk_end > FILE_HDR_SIZE) {
        /* Both the old and the cut contents are an empty file: if the file
         * was synced before, a failed cut or sync loses nothing. */
        bool clean = f->synced_wgen == f->wgen;

        f->wgen++;
        if (f->env.os->ftruncate(f->fd, FILE_HDR_SIZE) != 0 ||
            fs_datasync(f) != 0)
            ret = clean ? 0 : (f->sync_error != 0 ? f->sync_error : errno);
        goto close;
    }
    if (ret == 0)
        ret = fs_datasync(f);
close:
    if (f->env.os->close(f->fd) != 0 && ret == 0)
        ret = errno;
    fs_free(f);
    return (ret);
}

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

    (void)pthread_rwlock_wrlock(&f->lock);
    if ((n = idx_find(&f->tree, key, klen, &parent, &dir)) == NULL) {
        if ((n = node_alloc(&f->arena, key, klen)) == NULL)
            FS_ERR(ENOMEM);
        fresh = true;
    }
    lsn = atomic_fetch_add(f->env.lsn, 1) + 1;
    rec_hdr_encode(hdr, REC_PUT, lsn, klen, vlen, bcrc);
    FS_ERR(fs_append(f, hdr, key, klen, val, vlen, &off));
    if (fresh) {
        idx_link(&f->tree, n, parent, dir);
        ++f->entries;
        fresh = false;
        idx_set(f, n, true, off, (uint32_t)vlen, false);
    } else
        idx_set(f, n, false, off, (uint32_t)vlen, false);
    if (lsn > f->max_lsn)
        f->max_lsn = lsn;
    if (lsnp != NULL)
        *lsnp = lsn;

err:
    if (fresh)
        node_free(&f->arena, n);
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

    (void)pthread_rwlock_wrlock(&f->lock);
    n = idx_find(&f->tree, key, klen, &parent, &dir);
    if (!keep_tombstone && (n == NULL || NODE_IS_TOMB(n)))
        FS_ERR(LAYERED_NOTFOUND);
    if (keep_tombstone && n == NULL) {
        if ((n = node_alloc(&f->arena, key, klen)) == NULL)
            FS_ERR(ENOMEM);
        fresh = true;
    }
    lsn = atomic_fetch_add(f->env.lsn, 1) + 1;
    rec_hdr_encode(hdr, keep_tombstone ? REC_TOMB : REC_DEL, lsn, klen, 0,
                   bcrc);
    FS_ERR(fs_append(f, hdr, key, klen, NULL, 0, &off));
    if (!keep_tombstone)
        idx_remove(f, n);
    else if (fresh) {
        idx_link(&f->tree, n, parent, dir);
        ++f->entries;
        fresh = false;
        idx_set(f, n, true, off, 0, true);
    } else
        idx_set(f, n, false, off, 0, true);
    if (lsn > f->max_lsn)
        f->max_lsn = lsn;
    if (lsnp != NULL)
        *lsnp = lsn;

err:
    if (fresh)
        node_free(&f->arena, n);
    (void)pthread_rwlock_unlock(&f->lock);
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
        n = idx_search(&f->tree, key, klen, mode);
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
            n = idx_search(&f->tree, pos->key, pos->klen,
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
    return (preadv_full(f, iov, 3, off));
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
    if (!rec_hdr_decode(hdr, &h)) {
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

    (void)pthread_rwlock_wrlock(&f->lock);
    if ((ret = fs_flush(f)) == 0)
        ret = fs_datasync(f);
    (void)pthread_rwlock_unlock(&f->lock);
    return (ret);
}

/* A sequential writer into a new file through a large buffer. */
struct seq_writer {
    fs_file *f;             /* for the failpoint hook */
    int fd;
    unsigned char *buf;
    size_t cap, used;
    uint64_t off;           /* file offset of buf[0] */
};

/*
 * seq_flush --
 *     Write the buffered bytes.
 */
static int
seq_flush(struct seq_writer *w)
{
    struct iovec iov;
    int ret;

    if (w->used == 0)
        return (0);
    FS_RET(fs_failpoint(w->f, "fs.write"));
    iov.iov_base = w->buf;
    iov.iov_len = w->used;
    if ((ret = pwritev_full(w->f->env.os, w->fd, &iov, 1, w->off)) != 0)
        return (ret);
    w->off += w->used;
    w->used = 0;
    return (0);
}

/*
 * seq_add --
 *     Append bytes; a piece larger than the buffer is written directly.
 */
static int
seq_add(struct seq_writer *w, const void *p, size_t len)
{
    struct iovec iov;
    int ret;

    if (len > w->cap - w->used)
        FS_RET(seq_flush(w));
    if (len > w->cap) {
        FS_RET(fs_failpoint(w->f, "fs.write"));
        iov.iov_base = (void *)p;
        iov.iov_len = len;
        if ((ret = pwritev_full(w->f->env.os, w->fd, &iov, 1, w->off)) !=
            0)
            return (ret);
        w->off += len;
        return (0);
    }
    memcpy(w->buf + w->used, p, len);
    w->used += len;
    return (0);
}

/*
 * rec_check --
 *     Check a mapped record against the node pointing at it: header
 *     checksum, type, key, body checksum.  NULL if good, else why not.
 */
static const char *
rec_check(const unsigned char *p, const struct fs_node *n, struct rec_hdr *h)
{
    if (!rec_hdr_decode(p, h))
        return ("bad record header");
    if (h->klen != NODE_KLEN(n) || h->vlen != n->vlen ||
        h->type == REC_DEL || (h->type == REC_TOMB) != NODE_IS_TOMB(n) ||
        memcmp(p + REC_HDR_SIZE, n->key, h->klen) != 0)
        return ("record does not hold the indexed key");
    if (crc32c(0, p + REC_HDR_SIZE, h->klen + h->vlen) != h->bcrc)
        return ("body checksum mismatch");
    return (NULL);
}

int
fs_compact(fs_file *f, bool force, bool *compactedp)
{
    struct fs_arena na;
    struct fs_tree nt;
    struct fs_node *n, *nn, *last = NULL;
    struct rec_hdr h;
    struct seq_writer w;
    const unsigned char *map = NULL;
    unsigned char fhdr[FILE_HDR_SIZE];
    char *tmp = NULL;
    const char *why;
    uint64_t dead, map_len = 0, rlen;
    int tfd = -1, ret = 0;
    bool renamed = false;

    if (compactedp != NULL)
        *compactedp = false;
    arena_init(&na);
    RB_INIT(&nt);
    memset(&w, 0, sizeof(w));

    (void)pthread_rwlock_wrlock(&f->lock);
    dead = f->end - FILE_HDR_SIZE - f->live_bytes;
    if (f->entries == 0 && f->end > FILE_HDR_SIZE) {
        /* Nothing live (a drained ingest): cut the file back to its
         * header, no rewrite needed.  Positions from before moved. */
        FS_ERR(fs_flush(f));
        f->wgen++;
        if (f->env.os->ftruncate(f->fd, FILE_HDR_SIZE) != 0)
            FS_ERR(errno);
        f->end = f->disk_end = FILE_HDR_SIZE;
        f->tail_dirty = false;
        idx_reset(f);
        FS_ERR(fs_datasync(f));
        if (compactedp != NULL)
            *compactedp = true;
        goto err;
    }
    if (!force && (f->end <= COMPACT_MIN_BYTES || dead <= f->live_bytes))
        goto err;
    FS_ERR(fs_flush(f));

    if (asprintf(&tmp, "%s.compact", f->path) < 0) {
        tmp = NULL;
        FS_ERR(ENOMEM);
    }
    if ((tfd = f->env.os->open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC,
                               0644)) < 0)
        FS_ERR(errno);
    map_len = f->disk_end;
    if ((map = f->env.os->mmap(NULL, (size_t)map_len, PROT_READ, MAP_SHARED,
                               f->fd, 0)) == MAP_FAILED) {
        map = NULL;
        FS_ERR(errno);
    }
    if ((w.buf = malloc(COMPACT_BUF_SIZE)) == NULL)
        FS_ERR(ENOMEM);
    w.f = f;
    w.fd = tfd;
    w.cap = COMPACT_BUF_SIZE;
    file_hdr_encode(fhdr);
    FS_ERR(seq_add(&w, fhdr, sizeof(fhdr)));

    /* Live records in key order, copied byte for byte (LSN and checksums
     * unchanged) after checking them; the new index is built alongside,
     * always appending at its right edge. */
    RB_FOREACH(n, fs_tree, &f->tree) {
        rlen = node_rec_size(n);
        if (n->off + rlen > map_len)
            FS_ERR(fs_corrupt(f, n->off, "record offset past end of file"));
        if ((why = rec_check(map + n->off, n, &h)) != NULL)
            FS_ERR(fs_corrupt(f, n->off, why));
        if ((nn = node_alloc(&na, n->key, NODE_KLEN(n))) == NULL)
            FS_ERR(ENOMEM);
        nn->kf = n->kf;
        nn->vlen = n->vlen;
        /* w.off + w.used is the logical end whether or not seq_add
         * flushes first. */
        nn->off = w.off + w.used;
        FS_ERR(seq_add(&w, map + n->off, (size_t)rlen));
        idx_link(&nt, nn, last, 1);
        last = nn;
    }
    FS_ERR(seq_flush(&w));
    FS_ERR(fs_failpoint(f, "fs.sync"));
    if (f->env.os->fdatasync(tfd) != 0)
        FS_ERR(errno);
    if (f->env.os->rename(tmp, f->path) != 0)
        FS_ERR(errno);
    renamed = true;

    /* The new file is in place: switch to it whatever happens next. */
    (void)f->env.os->close(f->fd);
    f->fd = tfd;
    tfd = -1;
    arena_destroy(&f->arena);
    f->arena = na;
    arena_init(&na);
    f->tree = nt;
    RB_INIT(&nt);
    f->end = f->disk_end = w.off;
    f->live_bytes = w.off - FILE_HDR_SIZE;
    ++f->gen;
    f->rewrite_gen = f->gen;
    f->tail_dirty = false;
    f->sync_error = 0;
    f->synced_wgen = f->wgen; /* the new file was synced before the rename */
    if (compactedp != NULL)
        *compactedp = true;
    ret = os_parent_fsync(f->env.os, f->path);

err:
    if (tfd >= 0) {
        (void)f->env.os->close(tfd);
        if (!renamed)
            (void)f->env.os->unlink(tmp);
    }
    if (map != NULL)
        (void)f->env.os->munmap((void *)map, (size_t)map_len);
    (void)pthread_rwlock_unlock(&f->lock);
    arena_destroy(&na);
    free(w.buf);
    free(tmp);
    return (ret);
}

int
fs_clear(fs_file *f, unsigned flags)
{
    unsigned char hdr[REC_HDR_SIZE];
    struct iovec iov;
    uint64_t lsn;
    int ret = 0;

    (void)pthread_rwlock_wrlock(&f->lock);
    /* Append a clear marker rather than truncate: an append is cheap where
     * freeing blocks is not (a truncate may discard them synchronously),
     * and the step-up waits for this.  The dead bytes before the marker
     * are reclaimed by a later checkpoint's compaction. */
    FS_ERR(fs_flush(f));
    lsn = atomic_fetch_add(f->env.lsn, 1) + 1;
    rec_hdr_encode(hdr, REC_CLEAR, lsn, 0, 0, crc32c(0, "", 0));
    iov.iov_base = hdr;
    iov.iov_len = sizeof(hdr);
    FS_ERR(fs_write_at_end(f, &iov, 1));
    f->end = f->disk_end = f->disk_end + sizeof(hdr);
    f->sync_error = 0;
    idx_reset(f);
    if (!(flags & FS_NOSYNC))
        ret = fs_datasync(f);

err:
    (void)pthread_rwlock_unlock(&f->lock);
    return (ret);
}

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
        if ((ret = preadv_full(src, &iov, 1, 0)) != 0) {
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
    FS_RET(preadv_full(dst, &iov, 1, n->off));
    if (!rec_hdr_decode(hdr, &h))
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
    idx_link(&dst->tree, n, parent, dir);
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

    (void)pthread_rwlock_rdlock(&src->lock);
    (void)pthread_rwlock_wrlock(&dst->lock);
    if (!cs->started) {
        cs->dst_start_lsn = dst->max_lsn;
        cs->started = true;
    }
    /* dst's own buffered records go first: the batch is written at
     * disk_end with the buffer empty. */
    FS_ERR(fs_flush(dst));
    FS_ERR(copy_map(cs));
    wbase = dst->disk_end;

    if (!cs->have_key)
        n = RB_MIN(fs_tree, &src->tree);
    else if (cs->node != NULL && cs->gen == src->gen)
        n = RB_NEXT(fs_tree, &src->tree, cs->node);
    else
        n = idx_search(&src->tree, cs->key, cs->klen, FS_GT);
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
            FS_ERR(fs_corrupt(src, n->off, "record offset past end of file"));
        p = n->off >= cs->map_len ? src->wbuf + (n->off - src->disk_end)
                                  : cs->map + n->off;
        if ((why = rec_check(p, n, &h)) != NULL)
            FS_ERR(fs_corrupt(src, n->off, why));
        if (h.lsn > stats->max_lsn)
            stats->max_lsn = h.lsn;

        /* hint: dst's smallest node >= this key, found by stepping along
         * dst in step with src (both in key order), or by a search. */
        if (!hint_set) {
            hint = idx_search(&dst->tree, n->key, h.klen, FS_GE);
            hint_set = true;
        }
        for (k = 0; hint != NULL &&
                    fs_key_cmp(hint->key, NODE_KLEN(hint), n->key, h.klen) < 0;
             ++k) {
            if (k == COPY_MAX_STEPS) {
                hint = idx_search(&dst->tree, n->key, h.klen, FS_GE);
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
            FS_ERR(copy_dst_lsn(dst, dn, &dlsn));
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
            if ((op->fresh = node_alloc(&dst->arena, n->key, h.klen)) == NULL)
                FS_ERR(ENOMEM);
        }
        ++nops;
        if (h.type == REC_PUT) {
            /* Byte for byte: same LSN, same checksums. */
            if (direct == NULL)
                memcpy(cs->buf + used, p, (size_t)rlen);
        } else {
            /* An ingest tombstone becomes a stable delete. */
            rec_hdr_encode(cs->buf + used, REC_DEL, h.lsn, h.klen, 0, h.bcrc);
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
        FS_ERR(fs_write_at_end(dst, &iov, 1));
        dst->disk_end = dst->end = wbase + used;
    }
    for (i = 0; i < nops; ++i) {
        op = &cs->ops[i];
        if (op->type == REC_DEL) {
            idx_remove(dst, op->dst);
            tail = NULL;
        }
        else if (op->dst != NULL)
            idx_set(dst, op->dst, false, op->off, op->vlen, false);
        else {
            copy_link(dst, op->fresh, op->succ, &tail);
            ++dst->entries;
            idx_set(dst, op->fresh, true, op->off, op->vlen, false);
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
            node_free(&dst->arena, cs->ops[i].fresh);
    (void)pthread_rwlock_unlock(&dst->lock);
    (void)pthread_rwlock_unlock(&src->lock);
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
        FS_ERR(ENOMEM);

    /* The hook runs after the first batch even when it wrote nothing (an
     * empty src or a re-drain), so a test pausing there always stops. */
    while (!done) {
        FS_ERR(copy_batch(&cs, stats, &done));
        if (first) {
            first = false;
            if (hook != NULL)
                FS_ERR(hook(hook_arg));
        }
    }

    if (stats->rows > 0 && !(flags & FS_NOSYNC)) {
        (void)pthread_rwlock_wrlock(&dst->lock);
        ret = fs_datasync(dst);
        (void)pthread_rwlock_unlock(&dst->lock);
    }

err:
    copy_unmap(&cs);
    free(cs.buf);
    free(cs.ops);
    free(cs.key);
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
    info->index_bytes = f->arena.bytes;
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

/*
 * The record format for readers that do not open the file (filestore.h):
 * the same decoding as fs_load's, so verify.c never disagrees with an open
 * about what a record is.
 */
_Static_assert(FS_RECORD_HEADER_BYTES == REC_HDR_SIZE, "record header size");
_Static_assert(FS_RECORD_PUT == REC_PUT && FS_RECORD_DEL == REC_DEL &&
                   FS_RECORD_TOMB == REC_TOMB && FS_RECORD_CLEAR == REC_CLEAR,
               "record types");

bool
fs_record_decode(const unsigned char *p, fs_record *r)
{
    struct rec_hdr h;

    if (!rec_hdr_decode(p, &h))
        return (false);
    r->lsn = h.lsn;
    r->type = h.type;
    r->klen = h.klen;
    r->vlen = h.vlen;
    r->bcrc = h.bcrc;
    return (true);
}

const char *
fs_header_check(const unsigned char *p)
{
    unsigned char want[FILE_HDR_SIZE];

    file_hdr_encode(want);
    if (memcmp(p, want, sizeof(want)) == 0)
        return (NULL);
    if (memcmp(p, FILE_MAGIC, 8) != 0)
        return ("not a Layered file (bad magic)");
    if (le32_get(p + 28) != crc32c(0, p, 28))
        return ("file header checksum mismatch");
    return ("unsupported file format version");
}
