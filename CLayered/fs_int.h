/*
 * fs_int.h -- the internals shared by the files of the file store
 * (fs_rec.c, fs_io.c, fs_index.c, fs_open.c, filestore.c, fs_compact.c,
 * fs_copy.c).  filestore.h stays the interface the rest of the engine uses.
 * The format and the locking are described in filestore.c.
 */
#ifndef LAYERED_FS_INT_H
#define LAYERED_FS_INT_H

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
#include "err.h"
#include "filestore.h"
#include "os.h"

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

/* Group commit (fs_group.c): the most records one group write takes (three
 * iovecs each, well under IOV_MAX), and how long a waiting writer spins
 * before it sleeps (in pause instructions, a few microseconds: about one
 * small pwritev). */
#define GROUP_MAX 64
#define GROUP_SPIN 2000
/* How long a leader waits for writers about to queue to join its group
 * (group_lead), in pause instructions. */
#define GROUP_JOIN_SPIN 100

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

/* One record of a group write: lives on its writer's stack from
 * fs_group_put's enqueue until the writer returns.  key, val, klen, vlen
 * and bcrc are filled by the writer, node, lsn and hdr at its enqueue;
 * then off, ret and state are the leader's, which links or frees node. */
struct fs_gw {
    struct fs_gw *next;             /* the pending queue, under glock */
    unsigned char hdr[REC_HDR_SIZE];
    const void *key, *val;
    size_t klen, vlen;
    uint32_t bcrc;                  /* crc32c of key || value */
    uint64_t lsn;
    uint64_t off;                   /* where the leader wrote it */
    struct fs_node *node;           /* allocated at the enqueue, unlinked */
    int ret;
    _Atomic int state;              /* GW_WAIT, GW_LEAD, GW_DONE */
};
#define GW_WAIT 0
#define GW_LEAD 1 /* the previous leader handed over: write the next group */
#define GW_DONE 2 /* written and linked (ret 0) or failed (ret); node used
                   * or freed */

struct fs_file {
    char *path;
    fs_env env;

    /* Group commit (fs_group.c; the locking paragraph of filestore.c). */
    pthread_mutex_t glock;
    pthread_cond_t gcv;             /* a group is done or handed over */
    pthread_cond_t gate_cv;         /* the gate opened / writers left */
    struct fs_gw *pend_head;        /* queued records, in LSN order */
    struct fs_gw **pend_tail;
    bool leading;                   /* some writer is the leader */
    _Atomic unsigned gate_closers;  /* exclusive operations wanting in */
    _Atomic unsigned gate_writers;  /* fs_group_put calls inside the gate */
    _Atomic unsigned arriving;      /* puts past their walk, not queued */

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
 * node_size --
 *     Bytes of a node for a key length, 8-byte aligned.
 */
static inline size_t
node_size(size_t klen)
{
    return ((offsetof(struct fs_node, key) + klen + 7) & ~(size_t)7);
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

/* A sequential writer into a new file through a large buffer. */
struct seq_writer {
    fs_file *f;             /* for the failpoint hook */
    int fd;
    unsigned char *buf;
    size_t cap, used;
    uint64_t off;           /* file offset of buf[0] */
};

/* record codec (fs_rec.c) */
void fs_rec_hdr_encode(unsigned char *p, uint32_t type, uint64_t lsn,
                       size_t klen, size_t vlen, uint32_t bcrc);
bool fs_rec_hdr_decode(const unsigned char *p, struct rec_hdr *h);
void fs_file_hdr_encode(unsigned char *p);
bool fs_all_zero(const unsigned char *p, uint64_t len);
const char *fs_rec_check(const unsigned char *p, const struct fs_node *n,
                         struct rec_hdr *h);

/* I/O layer (fs_io.c) */
void __attribute__((format(printf, 2, 3))) fs_message(const fs_file *f,
                   const char *fmt, ...);
int fs_corrupt(const fs_file *f, uint64_t off, const char *why);
int fs_preadv_full(const fs_file *f, struct iovec *iov, int iovcnt,
                   uint64_t off);
int fs_write_at_end(fs_file *f, struct iovec *iov, int iovcnt);
int fs_datasync(fs_file *f);
int fs_flush(fs_file *f);
int fs_append(fs_file *f, const unsigned char *hdr, const void *key,
              size_t klen, const void *val, size_t vlen, uint64_t *offp);
int fs_write_header(fs_file *f, int fd);
int fs_seq_flush(struct seq_writer *w);
int fs_seq_add(struct seq_writer *w, const void *p, size_t len);

/* arena and index (fs_index.c): the caller holds the file's lock (exclusive
 * to change the index) or has the file to itself (fs_open) */
void fs_arena_init(struct fs_arena *a);
void fs_arena_destroy(struct fs_arena *a);
struct fs_node *fs_node_alloc(struct fs_arena *a, const void *key,
                              size_t klen);
void fs_node_free(struct fs_arena *a, struct fs_node *n);
struct fs_node *fs_idx_find(struct fs_tree *t, const void *key, size_t klen,
                            struct fs_node **parentp, int *dirp);
void fs_idx_link(struct fs_tree *t, struct fs_node *n, struct fs_node *parent,
                 int dir);
struct fs_node *fs_idx_search(struct fs_tree *t, const void *key, size_t klen,
                              enum fs_seek_mode mode);
void fs_idx_set(fs_file *f, struct fs_node *n, bool is_new, uint64_t off,
                uint32_t vlen, bool tomb);
void fs_idx_remove(fs_file *f, struct fs_node *n);
void fs_idx_reset(fs_file *f);
void fs_lsn_raise(_Atomic uint64_t *counter, uint64_t lsn);

/* group commit (fs_group.c) */
int fs_group_init(fs_file *f);
void fs_group_destroy(fs_file *f);
int fs_group_put(fs_file *f, struct fs_gw *gw);
void fs_gate_close(fs_file *f);
void fs_gate_open(fs_file *f);
int fs_write_group(fs_file *f, struct iovec *iov, int iovcnt,
                   uint64_t start, unsigned *wchangesp);

/* open (fs_open.c) */
int fs_load(fs_file *f, uint64_t size);

#endif
