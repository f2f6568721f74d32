/*
 * simdisk.c -- the simulated disk behind `sim_os` (see simdisk.h for the
 * model it promises).
 *
 * Representation.  Every file and directory is an inode, kept until
 * sim_reset (inodes are small next to the data, and keeping them spares a
 * reference count: an unlinked file that is still open just has no name).
 * Each inode holds two states:
 *
 *   - the current state, what the calls see: a file's bytes, a
 *     directory's entries;
 *   - the durable state, what is on the platter: the same, as of the last
 *     sync.
 *
 * Between them sit the pending changes, in the order they were made: per
 * file, its writes and truncates since the last fdatasync/fsync; for the
 * directories, one global list of entry changes (create, unlink, mkdir,
 * rmdir, rename).  Replaying all pending changes onto the durable state
 * gives the current state; replaying a prefix of them gives a state the
 * disk could hold after a power cut.  A sync replays (and so drops) the
 * pending changes it makes durable; a cut draws how many each file and
 * each directory keeps; sim_reboot replays those and makes the result the
 * new current state.
 *
 * A rename across two directories is one change that belongs to both.  It
 * must be all or nothing, so whenever it is made durable in one directory
 * it is made durable in the other, and with it everything the other
 * directory did before it (a journal commits in order); at a cut, if one
 * directory's prefix takes it and the other's does not, the taking one is
 * cut back to before it.  Both rules keep every directory's surviving
 * changes an in-order prefix of its own history.
 *
 * Everything is serialised by one mutex, so concurrency costs nothing in
 * the model: each call is atomic, as the system's calls are with respect
 * to one another on one file.
 *
 * Where simdisk.h leaves room, this implementation decides:
 *
 *   - a short write writes the largest multiple of 512 bytes that is at
 *     most half of what was asked (none for less than 1024 bytes: the call
 *     returns 0); the next write of that descriptor fails with ENOSPC;
 *   - the call a cut fires at takes its index; calls made while the power
 *     is cut take none;
 *   - the fault and the cut are armed independently; sim_fault_fired is
 *     true once either has fired, until the next sim_fail_at, sim_cut_at
 *     or sim_reset (sim_disarm does not clear it);
 *   - with the power cut, clock_gettime still works (the clock is not the
 *     disk, and the engine's timed waits must not spin); madvise fails;
 *   - an O_DSYNC write also makes the file's earlier pending changes
 *     durable: the model keeps a file's changes in order, so it cannot
 *     keep a write without those before it;
 *   - the fsync of either directory of a rename across two makes the
 *     rename durable in both, with everything the other directory did
 *     before it (as a journal commit would);
 *   - a torn write keeps its bytes up to a sector boundary strictly inside
 *     it; if it made the file longer, the file ends at the tear;
 *   - a failed call does nothing: an fsync that fails leaves the changes
 *     pending, so a later sync that succeeds still makes them durable.
 *     Linux may instead drop the dirty pages after a writeback error;
 *     that is not modelled;
 *   - descriptors: the lowest free number, but never a number from before
 *     a reboot; a relative path with AT_FDCWD starts at "/";
 *   - mappings: see so_mmap and so_munmap.
 *
 * Mutants: SIMDISK_MUTANT_* below break one promise each on purpose, so
 * the check that test_simdisk catches the break can be run (see
 * CMakeLists.txt).  No other build defines them.
 */
/* The build defines it; a plain compile of the file gets it too. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "simdisk.h"

/* Descriptor numbers start far above what the process holds, so a real
 * system call made by mistake on a simulated descriptor fails (EBADF)
 * instead of touching some real file. */
#define SIM_FD_BASE 100000
/* The unit a write is torn at (a sector), and the block size reported. */
#define SIM_SECTOR 512
#define SIM_BLKSIZE 4096
/* The largest file the simulation holds in memory; past it, EFBIG. */
#define SIM_MAX_FILE ((uint64_t)1 << 30)
#define SIM_DEV ((dev_t)0x51d)

/* The open flags modelled (or harmless to ignore).  Anything else -- O_PATH,
 * O_TMPFILE, O_DIRECT -- is EINVAL, so a use the model does not cover is
 * loud rather than silently wrong.  O_SYNC contains O_DSYNC's bit and gets
 * the same treatment: its data and size are durable at once. */
#define SIM_OPEN_FLAGS                                                      \
    (O_ACCMODE | O_CREAT | O_EXCL | O_TRUNC | O_APPEND | O_DIRECTORY |      \
     O_CLOEXEC | O_DSYNC | O_SYNC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY |    \
     O_NOATIME | O_LARGEFILE)

struct inode;

struct dent {
    char *name;
    struct inode *ino;
};

/* A directory's entries, sorted by name (sim_dir_entry lists in order). */
struct dents {
    struct dent *v;
    size_t n, cap;
};

struct bytes {
    unsigned char *p;
    uint64_t size, cap;
};

enum fop_kind { FOP_WRITE, FOP_TRUNCATE };

/* One pending change of a file's contents. */
struct fop {
    enum fop_kind kind;
    uint64_t off; /* write: where it starts; truncate: the new size */
    uint64_t len; /* write: how many bytes */
    unsigned char *data;
};

struct inode {
    uint64_t ino;
    bool isdir;
    struct inode *next; /* every inode, in creation order */
    uint32_t links;     /* names it has in the current state */

    /* A regular file. */
    struct bytes cur, dur;
    struct fop *ops; /* pending, oldest first */
    size_t nops, capops;
    size_t keep;   /* chosen at a cut: ops[0, keep) survive ... */
    uint64_t tear; /* ... the last of them only its first `tear` bytes
                      when nonzero */

    /* A directory. */
    struct dents ents, dents; /* current, durable */
    struct inode *parent;     /* for "..": itself for "/" */
    bool removed;             /* rmdir'ed (or lost): nothing new in it */
    size_t npend;             /* scratch: pending changes touching it */
    uint64_t mark;            /* scratch: changes up to this seq are kept */
};

/* One part of a directory change: name in dir now refers to target, or
 * is gone when target is NULL. */
struct dpart {
    struct inode *dir;
    char *name;
    struct inode *target;
};

/* One pending directory change: one part, or two for a rename (the
 * target's name set, the source's removed), applied together. */
struct dchange {
    uint64_t seq;
    int nparts;
    struct dpart part[2];
};

struct fdesc {
    bool open;
    struct inode *ino;
    int acc; /* O_RDONLY, O_WRONLY or O_RDWR */
    bool append, dsync;
    bool enospc_next; /* a short write fault: the next write fails */
    uint64_t pos;
    char *path; /* as opened, for sim_last_event */
};

/* A mapping: an anonymous private copy of the file's bytes, read-only
 * like the PROT_READ mapping it stands for. */
struct mapping {
    void *addr;
    size_t maplen; /* len rounded up to pages */
    bool stale;    /* from before a reboot: PROT_NONE, only munmap works */
};

static pthread_mutex_t sim_mu = PTHREAD_MUTEX_INITIALIZER;

static struct {
    bool init;
    struct inode *root, *inodes, **tail;
    uint64_t next_ino;

    struct dchange **pend; /* pending directory changes, oldest first */
    size_t npend, cappend;
    uint64_t next_seq;

    struct fdesc *fds; /* fds[i] is descriptor SIM_FD_BASE + i */
    size_t nfds, capfds;
    size_t fd_first; /* below it, descriptors of before the last reboot */

    struct mapping *maps;
    size_t nmaps, capmaps;

    uint64_t rng;
    uint64_t calls;
    bool fault_armed, cut_armed;
    uint64_t fault_k, cut_k;
    enum sim_fault fault;
    bool fired;     /* the armed fault or cut has fired */
    bool cut;       /* the power is cut */
    bool short_now; /* the counted call just entered gets a short write */

    char event[PATH_MAX + 256];
    char event_out[PATH_MAX + 256];
    char entry[NAME_MAX + 1];
} S;

/* ---------------------------------------------------------------------- */
/* Memory helpers.  The simulation is a test tool: running out of memory
 * is not a disk behaviour it models, so it stops the test. */

static void *
xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n != 0 ? n : 1);

    if (q == NULL) {
        fputs("simdisk: out of memory\n", stderr);
        abort();
    }
    return q;
}

static char *
xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;

    return memcpy(xrealloc(NULL, n), s, n);
}

static void *
xmemdup(const void *p, size_t n)
{
    void *q = xrealloc(NULL, n);

    if (n != 0)
        memcpy(q, p, n);
    return q;
}

#define GROW(v, n, cap)                                                     \
    do {                                                                    \
        if ((n) == (cap)) {                                                 \
            (cap) = (cap) != 0 ? 2 * (cap) : 8;                             \
            (v) = xrealloc((v), (cap) * sizeof *(v));                       \
        }                                                                   \
    } while (0)

/* ---------------------------------------------------------------------- */
/* Bytes of a file. */

/* Grows (zero-filled, as a file grown by ftruncate or a write past its
 * end reads) or shrinks. */
static void
bytes_resize(struct bytes *b, uint64_t size)
{
    if (size > b->cap) {
        uint64_t cap = b->cap != 0 ? b->cap : 4096;

        while (cap < size)
            cap *= 2;
        b->p = xrealloc(b->p, (size_t)cap);
        b->cap = cap;
    }
    if (size > b->size)
        memset(b->p + b->size, 0, (size_t)(size - b->size));
    b->size = size;
}

static void
bytes_write(struct bytes *b, uint64_t off, const void *src, uint64_t len)
{
    if (len == 0)
        return;
    if (off + len > b->size)
        bytes_resize(b, off + len);
    memcpy(b->p + off, src, (size_t)len);
}

static void
bytes_copy(struct bytes *to, const struct bytes *from)
{
    bytes_resize(to, 0);
    bytes_write(to, 0, from->p, from->size);
}

/* Applies a pending file change, a write only its first `limit` bytes. */
static void
fop_apply(struct bytes *b, const struct fop *op, uint64_t limit)
{
    if (op->kind == FOP_TRUNCATE)
        bytes_resize(b, op->off);
    else
        bytes_write(b, op->off, op->data, limit < op->len ? limit : op->len);
}

/* ---------------------------------------------------------------------- */
/* Directory entries. */

/* The position of name in d, or where it would go. */
static size_t
dents_pos(const struct dents *d, const char *name, bool *found)
{
    size_t lo = 0, hi = d->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(d->v[mid].name, name);

        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

static struct inode *
dents_get(const struct dents *d, const char *name)
{
    bool found;
    size_t i = dents_pos(d, name, &found);

    return found ? d->v[i].ino : NULL;
}

/* Makes name refer to target (NULL: removes it).  Returns what it referred
 * to before. */
static struct inode *
dents_set(struct dents *d, const char *name, struct inode *target)
{
    bool found;
    size_t i = dents_pos(d, name, &found);
    struct inode *old = found ? d->v[i].ino : NULL;

    if (found && target != NULL)
        d->v[i].ino = target;
    else if (found) {
        free(d->v[i].name);
        memmove(&d->v[i], &d->v[i + 1], (d->n - i - 1) * sizeof d->v[0]);
        d->n--;
    } else if (target != NULL) {
        GROW(d->v, d->n, d->cap);
        memmove(&d->v[i + 1], &d->v[i], (d->n - i) * sizeof d->v[0]);
        d->v[i].name = xstrdup(name);
        d->v[i].ino = target;
        d->n++;
    }
    return old;
}

static void
dents_clear(struct dents *d)
{
    for (size_t i = 0; i < d->n; i++)
        free(d->v[i].name);
    d->n = 0;
}

static void
dents_copy(struct dents *to, const struct dents *from)
{
    dents_clear(to);
    for (size_t i = 0; i < from->n; i++)
        dents_set(to, from->v[i].name, from->v[i].ino);
}

/* ---------------------------------------------------------------------- */
/* Inodes and their changes. */

static struct inode *
inode_new(bool isdir, struct inode *parent)
{
    struct inode *n = xrealloc(NULL, sizeof *n);

    memset(n, 0, sizeof *n);
    n->ino = S.next_ino++;
    n->isdir = isdir;
    n->parent = parent != NULL ? parent : n;
    *S.tail = n;
    S.tail = &n->next;
    return n;
}

static void
inode_free(struct inode *n)
{
    free(n->cur.p);
    free(n->dur.p);
    for (size_t i = 0; i < n->nops; i++)
        free(n->ops[i].data);
    free(n->ops);
    dents_clear(&n->ents);
    free(n->ents.v);
    dents_clear(&n->dents);
    free(n->dents.v);
    free(n);
}

/* A write or truncate: into the current state at once, and pending until
 * the file is synced. */
static void
file_change(struct inode *f, enum fop_kind kind, uint64_t off,
            const void *data, uint64_t len)
{
    struct fop *op;

    if (kind == FOP_TRUNCATE)
        bytes_resize(&f->cur, off);
    else
        bytes_write(&f->cur, off, data, len);
    GROW(f->ops, f->nops, f->capops);
    op = &f->ops[f->nops++];
    op->kind = kind;
    op->off = off;
    op->len = len;
    op->data = kind == FOP_WRITE ? xmemdup(data, (size_t)len) : NULL;
}

/* fdatasync/fsync of a file: its data and size become durable. */
static void
file_sync(struct inode *f)
{
    for (size_t i = 0; i < f->nops; i++) {
        fop_apply(&f->dur, &f->ops[i], f->ops[i].len);
        free(f->ops[i].data);
    }
    f->nops = 0;
}

/* The distinct directories a change touches (one or two). */
static int
change_dirs(const struct dchange *c, struct inode *d[2])
{
    d[0] = c->part[0].dir;
    if (c->nparts == 1 || c->part[1].dir == d[0])
        return 1;
    d[1] = c->part[1].dir;
    return 2;
}

static void
dchange_record(int nparts, const struct dpart *parts)
{
    struct dchange *c = xrealloc(NULL, sizeof *c);

    c->seq = ++S.next_seq;
    c->nparts = nparts;
    for (int i = 0; i < nparts; i++) {
        c->part[i] = parts[i];
        c->part[i].name = xstrdup(parts[i].name);
    }
    GROW(S.pend, S.npend, S.cappend);
    S.pend[S.npend++] = c;
}

static void
dchange_free(struct dchange *c)
{
    for (int i = 0; i < c->nparts; i++)
        free(c->part[i].name);
    free(c);
}

/* A directory change: into the current state at once (keeping the link
 * counts that st_nlink reports), and pending until a directory it touches
 * is synced. */
static void
dir_change(int nparts, const struct dpart *parts)
{
    for (int i = 0; i < nparts; i++) {
        struct inode *old =
            dents_set(&parts[i].dir->ents, parts[i].name, parts[i].target);

        if (old != NULL)
            old->links--;
        if (parts[i].target != NULL)
            parts[i].target->links++;
    }
#ifdef SIMDISK_MUTANT_RENAME_SPLIT
    /* Mutant: a rename is recorded as two changes, so a cut can keep one
     * without the other. */
    for (int i = 0; i < nparts; i++)
        dchange_record(1, &parts[i]);
#else
    dchange_record(nparts, parts);
#endif
}

static void
dir_change1(struct inode *dir, const char *name, struct inode *target)
{
    struct dpart p = {dir, (char *)name, target};

    dir_change(1, &p);
}

/* Makes durable every pending change whose seq is at most the mark of the
 * directories it touches (the callers set marks that agree for both
 * directories of a rename); the others stay pending. */
static void
commit_marked(void)
{
    size_t j = 0;

    for (size_t i = 0; i < S.npend; i++) {
        struct dchange *c = S.pend[i];
        struct inode *d[2];
        int nd = change_dirs(c, d);
        bool keep = c->seq <= d[0]->mark && (nd == 1 || c->seq <= d[1]->mark);

        if (keep) {
            for (int p = 0; p < c->nparts; p++)
                dents_set(&c->part[p].dir->dents, c->part[p].name,
                          c->part[p].target);
            dchange_free(c);
        } else
            S.pend[j++] = c;
    }
    S.npend = j;
}

/* fsync of a directory: its pending changes become durable; and since a
 * rename that touches another directory is one change, so does the other
 * directory's history up to that rename (and so on, transitively).  One
 * pass from the newest change back suffices: raising a mark to a change's
 * seq only concerns the changes older than it, which come later in the
 * pass. */
static void
dir_sync(struct inode *dir)
{
#ifdef SIMDISK_MUTANT_DIRSYNC_NOOP
    /* Mutant: the fsync of a directory makes nothing durable. */
    (void)dir;
    return;
#endif
    for (size_t i = 0; i < S.npend; i++) {
        struct inode *d[2];
        int nd = change_dirs(S.pend[i], d);

        for (int k = 0; k < nd; k++)
            d[k]->mark = 0;
    }
    dir->mark = UINT64_MAX;
    for (size_t i = S.npend; i-- > 0;) {
        struct dchange *c = S.pend[i];
        struct inode *d[2];
        int nd = change_dirs(c, d);
        uint64_t m = d[0]->mark;

        if (nd == 2 && d[1]->mark > m)
            m = d[1]->mark;
        if (c->seq <= m)
            for (int k = 0; k < nd; k++)
                if (d[k]->mark < c->seq)
                    d[k]->mark = c->seq;
    }
    commit_marked();
}

/* syncfs: everything durable. */
static void
sync_all(void)
{
    for (struct inode *n = S.inodes; n != NULL; n = n->next)
        if (!n->isdir)
            file_sync(n);
        else
            n->mark = UINT64_MAX;
    commit_marked();
}

/* ---------------------------------------------------------------------- */
/* The power cut. */

/* splitmix64: small, and the same sequence everywhere for a seed. */
static uint64_t
rnd(void)
{
    uint64_t z = (S.rng += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* How many of n pending changes survive: none, all, or (half the time)
 * some in-order prefix, so each outcome is common over a few seeds. */
static size_t
choose_prefix(size_t n)
{
    if (n == 0)
        return 0;
#ifdef SIMDISK_MUTANT_CUT_KEEPS_ALL
    /* Mutant: a cut loses nothing. */
    return n;
#endif
    switch (rnd() % 4) {
    case 0:
        return 0;
    case 1:
        return n;
    default:
        return n > 1 ? 1 + (size_t)(rnd() % (n - 1)) : (size_t)(rnd() % 2);
    }
}

/* Draws, at the cut instant, what will survive; sim_reboot applies it.
 * The draws go over the inodes in creation order, so the same seed and
 * the same calls draw the same survivors. */
static void
cut_power(void)
{
    S.cut = true;
    for (struct inode *n = S.inodes; n != NULL; n = n->next)
        n->npend = 0;
    for (size_t i = 0; i < S.npend; i++) {
        struct inode *d[2];
        int nd = change_dirs(S.pend[i], d);

        for (int k = 0; k < nd; k++)
            d[k]->npend++;
    }
    for (struct inode *n = S.inodes; n != NULL; n = n->next) {
        if (n->isdir) {
            n->npend = choose_prefix(n->npend);
            n->mark = 0;
            continue;
        }
        n->keep = choose_prefix(n->nops);
        n->tear = 0;
        if (n->keep > 0 && n->ops[n->keep - 1].kind == FOP_WRITE) {
            /* Tear the last kept write at a sector boundary strictly
             * inside it (a tear at its start is keeping one write less,
             * at its end keeping it whole): it reached the disk only up
             * to that sector. */
            const struct fop *op = &n->ops[n->keep - 1];
            uint64_t first = op->off / SIM_SECTOR + 1;
            uint64_t last = (op->off + op->len - 1) / SIM_SECTOR;

#ifndef SIMDISK_MUTANT_CUT_KEEPS_ALL
            if (first <= last && rnd() % 2 == 0)
                n->tear = (first + rnd() % (last - first + 1)) * SIM_SECTOR -
                          op->off;
#else
            (void)first;
            (void)last;
#endif
        }
    }
    /* Each directory keeps its first npend changes: turn the count into
     * the seq of the last one kept. */
    for (size_t i = 0; i < S.npend; i++) {
        struct inode *d[2];
        int nd = change_dirs(S.pend[i], d);

        for (int k = 0; k < nd; k++)
            if (d[k]->npend > 0) {
                d[k]->npend--;
                d[k]->mark = S.pend[i]->seq;
            }
    }
    /* A rename across directories survives in both or in neither: where
     * one directory keeps it and the other does not, cut the keeping one
     * back to before it.  Cutting back only concerns newer changes, which
     * come later in this pass. */
    for (size_t i = 0; i < S.npend; i++) {
        struct dchange *c = S.pend[i];
        struct inode *d[2];

        if (change_dirs(c, d) == 2 &&
            (c->seq <= d[0]->mark) != (c->seq <= d[1]->mark))
            for (int k = 0; k < 2; k++)
                if (d[k]->mark >= c->seq)
                    d[k]->mark = c->seq - 1;
    }
}

/* After a cut: the survivors drawn become the durable and the current
 * state. */
static void
apply_survivors(void)
{
    struct inode **stack;
    size_t nstack = 0, capstack = 0;

    for (struct inode *n = S.inodes; n != NULL; n = n->next) {
        if (n->isdir)
            continue;
        for (size_t i = 0; i < n->keep; i++)
            fop_apply(&n->dur, &n->ops[i],
                      i + 1 == n->keep && n->tear != 0 ? n->tear
                                                       : n->ops[i].len);
        for (size_t i = 0; i < n->nops; i++)
            free(n->ops[i].data);
        n->nops = n->keep = 0;
        n->tear = 0;
        bytes_copy(&n->cur, &n->dur);
    }
    commit_marked();
    for (size_t i = 0; i < S.npend; i++)
        dchange_free(S.pend[i]);
    S.npend = 0;

    /* The tree as it survived: names, link counts, parents.  What is not
     * reachable from "/" is lost (its inode lingers until sim_reset). */
    for (struct inode *n = S.inodes; n != NULL; n = n->next) {
        n->links = 0;
        if (n->isdir) {
            dents_copy(&n->ents, &n->dents);
            n->removed = true;
            n->parent = n;
        }
    }
    S.root->links = 1;
    S.root->removed = false;
    stack = xrealloc(NULL, 8 * sizeof *stack);
    capstack = 8;
    stack[nstack++] = S.root;
    while (nstack > 0) {
        struct inode *d = stack[--nstack];

        for (size_t i = 0; i < d->ents.n; i++) {
            struct inode *t = d->ents.v[i].ino;

            t->links++;
            if (t->isdir && t->removed) {
                t->removed = false;
                t->parent = d;
                GROW(stack, nstack, capstack);
                stack[nstack++] = t;
            }
        }
    }
    free(stack);
}

/* ---------------------------------------------------------------------- */
/* Descriptors and mappings. */

static struct fdesc *
fd_get(int fd)
{
    size_t i;

    if (fd < SIM_FD_BASE)
        return NULL;
    i = (size_t)(fd - SIM_FD_BASE);
    if (i < S.fd_first || i >= S.nfds || !S.fds[i].open)
        return NULL;
    return &S.fds[i];
}

/* The lowest free descriptor (as the system gives), never one from before
 * the last reboot: a descriptor kept across it must stay EBADF, not come
 * to name some newer file.  -1: none left. */
static int
fd_slot(void)
{
    size_t i;

    for (i = S.fd_first; i < S.nfds; i++)
        if (!S.fds[i].open)
            return (int)i;
    if (i > (size_t)(INT_MAX - SIM_FD_BASE))
        return -1;
    GROW(S.fds, S.nfds, S.capfds);
    memset(&S.fds[S.nfds], 0, sizeof S.fds[0]);
    return (int)S.nfds++;
}

static void
fd_release(struct fdesc *d)
{
    free(d->path);
    memset(d, 0, sizeof *d);
}

static struct mapping *
map_find(const void *addr)
{
    for (size_t i = 0; i < S.nmaps; i++)
        if (S.maps[i].addr == addr)
            return &S.maps[i];
    return NULL;
}

/* A reboot (or a cut's reboot) ends the process that held the handles:
 * descriptors are gone, and mappings become inaccessible (PROT_NONE keeps
 * their addresses reserved, so a stale munmap cannot free a newer
 * mapping, and any use of one faults at once). */
static void
invalidate_handles(void)
{
    for (size_t i = S.fd_first; i < S.nfds; i++)
        if (S.fds[i].open)
            fd_release(&S.fds[i]);
    S.fd_first = S.nfds;
    for (size_t i = 0; i < S.nmaps; i++)
        if (!S.maps[i].stale) {
            (void)mprotect(S.maps[i].addr, S.maps[i].maplen, PROT_NONE);
            S.maps[i].stale = true;
        }
}

/* ---------------------------------------------------------------------- */
/* State as a whole. */

static void
reset_locked(uint64_t seed)
{
    struct inode *n, *next;

    for (n = S.inodes; n != NULL; n = next) {
        next = n->next;
        inode_free(n);
    }
    for (size_t i = 0; i < S.npend; i++)
        dchange_free(S.pend[i]);
    free(S.pend);
    for (size_t i = 0; i < S.nfds; i++)
        free(S.fds[i].path);
    free(S.fds);
    for (size_t i = 0; i < S.nmaps; i++)
        (void)munmap(S.maps[i].addr, S.maps[i].maplen);
    free(S.maps);
    memset(&S, 0, sizeof S);
    S.tail = &S.inodes;
    S.next_ino = 2; /* ext4's root is inode 2 */
    S.root = inode_new(true, NULL);
    S.root->links = 1;
    S.rng = seed;
    S.init = true;
}

/* Every entry point takes the one mutex; the first ever starts from an
 * empty file system, as sim_reset(0) would. */
static void
lock(void)
{
    pthread_mutex_lock(&sim_mu);
    if (!S.init)
        reset_locked(0);
}

/* Unlocks and returns as the system calls do: -1 with errno, or r. */
static long
finish(int err, long r)
{
    pthread_mutex_unlock(&sim_mu);
    if (err != 0) {
        errno = err;
        return -1;
    }
    return r;
}

/* For sim_last_event: the path a call names, or the path its descriptor
 * was opened by. */
static void
describe(char *out, size_t n, int fd, int dirfd, const char *path)
{
    const struct fdesc *d;

    if (path == NULL) {
        if ((d = fd_get(fd)) != NULL)
            snprintf(out, n, "%s", d->path);
        else
            snprintf(out, n, "fd %d", fd);
    } else if (path[0] == '/' || dirfd == AT_FDCWD)
        snprintf(out, n, "%s%s", path[0] == '/' ? "" : "/", path);
    else if ((d = fd_get(dirfd)) != NULL)
        snprintf(out, n, "%s%s%s", d->path,
                 d->path[strlen(d->path) - 1] == '/' ? "" : "/", path);
    else
        snprintf(out, n, "fd %d/%s", dirfd, path);
}

/* Enters a counted call: while the power is cut, fails it (EIO) without
 * counting it; otherwise gives it the next index and fires the cut or the
 * fault armed there.  Returns 0 to go on, or the errno the call fails
 * with (nothing of it done).  A short-write fault on a write sets
 * S.short_now for the write to act on; on any other call it is EIO. */
static int
count_call(const char *call, bool is_write, int fd, int dirfd,
           const char *path)
{
    char what[PATH_MAX + 32];
    uint64_t idx;

    if (S.cut)
        return EIO;
    idx = S.calls++;
    if (S.cut_armed && idx == S.cut_k) {
        S.cut_armed = false;
        S.fired = true;
        cut_power();
        describe(what, sizeof what, fd, dirfd, path);
        snprintf(S.event, sizeof S.event,
                 "power cut before call %" PRIu64 ": %s %s", idx, call, what);
        return EIO;
    }
    if (S.fault_armed && idx == S.fault_k) {
        static const char *const names[] = {"none", "EIO", "ENOSPC",
                                            "EDQUOT", "short write"};
        int err = EIO;

        S.fault_armed = false;
        S.fired = true;
        describe(what, sizeof what, fd, dirfd, path);
        snprintf(S.event, sizeof S.event,
                 "%s%s injected into call %" PRIu64 ": %s %s",
                 names[S.fault],
                 S.fault == SIM_FAULT_SHORT && !is_write
                     ? " (EIO: not a write)"
                     : "",
                 idx, call, what);
        switch (S.fault) {
        case SIM_FAULT_NONE:
        case SIM_FAULT_EIO:
            break;
        case SIM_FAULT_ENOSPC:
            err = ENOSPC;
            break;
        case SIM_FAULT_EDQUOT:
            err = EDQUOT;
            break;
        case SIM_FAULT_SHORT:
            if (is_write) {
                S.short_now = true;
                err = 0;
            }
            break;
        }
        return err;
    }
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Paths. */

/* "", "." and ".." name no entry of their own: no create, remove or
 * rename acts on them. */
static bool
special_name(const char *name)
{
    return name[0] == '\0' || strcmp(name, ".") == 0 ||
           strcmp(name, "..") == 0;
}

static struct inode *
lookup(struct inode *dir, const char *name)
{
    if (name[0] == '\0' || strcmp(name, ".") == 0)
        return dir;
    if (strcmp(name, "..") == 0)
        return dir->removed ? NULL : dir->parent; /* as Linux: ENOENT */
    return dents_get(&dir->ents, name);
}

/* Walks every component of path but the last, from "/" for an absolute
 * path, from dirfd's directory otherwise ("/" for AT_FDCWD: the simulated
 * process works in the root).  Returns the directory reached and the last
 * component ("" for "/"), and whether a slash followed it. */
static int
walk(int dirfd, const char *path, struct inode **dirp, char *last,
     bool *slashp)
{
    struct inode *d;
    const char *p = path;

    if (path == NULL)
        return EFAULT;
    if (*path == '\0')
        return ENOENT;
    if (*p == '/' || dirfd == AT_FDCWD)
        d = S.root;
    else {
        struct fdesc *f = fd_get(dirfd);

        if (f == NULL)
            return EBADF;
        if (!f->ino->isdir)
            return ENOTDIR;
        d = f->ino;
    }
    for (;;) {
        const char *e, *q;
        size_t len;
        struct inode *n;

        while (*p == '/')
            p++;
        for (e = p; *e != '\0' && *e != '/'; e++)
            ;
        if ((len = (size_t)(e - p)) > NAME_MAX)
            return ENAMETOOLONG;
        memcpy(last, p, len);
        last[len] = '\0';
        for (q = e; *q == '/'; q++)
            ;
        if (*q == '\0') {
            *dirp = d;
            *slashp = *e == '/';
            return 0;
        }
        if ((n = lookup(d, last)) == NULL)
            return ENOENT;
        if (!n->isdir)
            return ENOTDIR;
        d = n;
        p = e;
    }
}

static int
resolve(int dirfd, const char *path, struct inode **np)
{
    char last[NAME_MAX + 1];
    struct inode *dir, *n;
    bool slash;
    int err;

    if ((err = walk(dirfd, path, &dir, last, &slash)) != 0)
        return err;
    if ((n = lookup(dir, last)) == NULL)
        return ENOENT;
    if (slash && !n->isdir)
        return ENOTDIR;
    *np = n;
    return 0;
}

static void
fill_stat(const struct inode *n, struct stat *st)
{
    uint64_t size = n->isdir ? SIM_BLKSIZE : n->cur.size;

    memset(st, 0, sizeof *st);
    st->st_dev = SIM_DEV;
    st->st_ino = (ino_t)n->ino;
    st->st_mode = n->isdir ? (S_IFDIR | 0755) : (S_IFREG | 0644);
    if (n->isdir) {
        nlink_t links = n->removed ? 0 : 2;

        for (size_t i = 0; i < n->ents.n; i++)
            links += n->ents.v[i].ino->isdir;
        st->st_nlink = links;
    } else
        st->st_nlink = n->links;
    st->st_size = (off_t)size;
    st->st_blksize = SIM_BLKSIZE;
    st->st_blocks = (blkcnt_t)((size + SIM_BLKSIZE - 1) / SIM_BLKSIZE *
                               (SIM_BLKSIZE / 512));
}

/* ---------------------------------------------------------------------- */
/* The calls. */

static int
openat_locked(const char *call, int dirfd, const char *path, int flags)
{
    char last[NAME_MAX + 1], what[PATH_MAX + 32];
    struct inode *dir, *t;
    struct fdesc *d;
    bool slash;
    int acc = flags & O_ACCMODE, err, slot;

    if ((err = count_call(call, false, -1, dirfd, path)) != 0)
        return -err;
    if ((flags & ~SIM_OPEN_FLAGS) != 0 || acc == O_ACCMODE)
        return -EINVAL;
    if ((err = walk(dirfd, path, &dir, last, &slash)) != 0)
        return -err;
    if ((slot = fd_slot()) < 0)
        return -EMFILE;
    if ((t = lookup(dir, last)) == NULL) {
        if (!(flags & O_CREAT))
            return -ENOENT;
        if (slash) /* "name/" cannot be created as a file */
            return -EISDIR;
        if (flags & O_DIRECTORY) /* as Linux 6.4 on */
            return -EINVAL;
        if (dir->removed)
            return -ENOENT;
        t = inode_new(false, NULL);
        dir_change1(dir, last, t);
    } else {
        if ((flags & (O_CREAT | O_EXCL)) == (O_CREAT | O_EXCL))
            return -EEXIST;
        if (t->isdir) {
            if (acc != O_RDONLY || (flags & (O_CREAT | O_TRUNC)))
                return -EISDIR;
        } else {
            if ((flags & O_DIRECTORY) || slash)
                return -ENOTDIR;
            if ((flags & O_TRUNC) && acc != O_RDONLY && t->cur.size != 0)
                file_change(t, FOP_TRUNCATE, 0, NULL, 0);
        }
    }
    describe(what, sizeof what, -1, dirfd, path);
    d = &S.fds[slot];
    d->open = true;
    d->ino = t;
    d->acc = acc;
    d->append = (flags & O_APPEND) != 0;
    d->dsync = (flags & O_DSYNC) != 0;
    d->path = xstrdup(what);
    return SIM_FD_BASE + slot;
}

static int
so_openat(int dirfd, const char *path, int flags, mode_t mode)
{
    int r;

    (void)mode; /* permissions are not modelled */
    lock();
    r = openat_locked("openat", dirfd, path, flags);
    return (int)finish(r < 0 ? -r : 0, r);
}

static int
so_open(const char *path, int flags, mode_t mode)
{
    int r;

    (void)mode;
    lock();
    r = openat_locked("open", AT_FDCWD, path, flags);
    return (int)finish(r < 0 ? -r : 0, r);
}

/* close works even with the power cut: the process lets go of what it
 * held, whatever the disk does. */
static int
so_close(int fd)
{
    struct fdesc *d;

    lock();
    if ((d = fd_get(fd)) == NULL)
        return (int)finish(EBADF, 0);
    fd_release(d);
    return (int)finish(0, 0);
}

/* The checks read, pread and preadv share. */
static int
read_fd(int fd, struct fdesc **dp)
{
    struct fdesc *d;

    if (S.cut)
        return EIO;
    if ((d = fd_get(fd)) == NULL || d->acc == O_WRONLY)
        return EBADF;
    if (d->ino->isdir)
        return EISDIR;
    *dp = d;
    return 0;
}

/* Copies what the file holds of [off, off + len). */
static size_t
copy_out(const struct inode *f, uint64_t off, void *buf, size_t len)
{
    size_t n;

    if (off >= f->cur.size)
        return 0;
    n = f->cur.size - off < len ? (size_t)(f->cur.size - off) : len;
    memcpy(buf, f->cur.p + off, n);
    return n;
}

/* The checks of an iovec array the system makes; *total: its bytes. */
static int
check_iov(const struct iovec *iov, int iovcnt, size_t *total)
{
    size_t sum = 0;

    if (iovcnt < 0 || iovcnt > IOV_MAX)
        return EINVAL;
    for (int i = 0; i < iovcnt; i++) {
        if (iov[i].iov_len > (size_t)SSIZE_MAX - sum)
            return EINVAL;
        sum += iov[i].iov_len;
    }
    *total = sum;
    return 0;
}

static ssize_t
so_read(int fd, void *buf, size_t len)
{
    struct fdesc *d;
    size_t n;
    int err;

    lock();
    if ((err = read_fd(fd, &d)) != 0)
        return finish(err, 0);
    if (len > SSIZE_MAX)
        len = SSIZE_MAX;
    n = copy_out(d->ino, d->pos, buf, len);
    d->pos += n;
    return finish(0, (long)n);
}

static ssize_t
so_pread(int fd, void *buf, size_t len, off_t off)
{
    struct fdesc *d;
    int err;

    lock();
    if ((err = read_fd(fd, &d)) != 0)
        return finish(err, 0);
    if (off < 0)
        return finish(EINVAL, 0);
    if (len > SSIZE_MAX)
        len = SSIZE_MAX;
    return finish(0, (long)copy_out(d->ino, (uint64_t)off, buf, len));
}

static ssize_t
so_preadv(int fd, const struct iovec *iov, int iovcnt, off_t off)
{
    struct fdesc *d;
    size_t total, n = 0;
    int err;

    lock();
    if ((err = read_fd(fd, &d)) != 0)
        return finish(err, 0);
    if (off < 0)
        return finish(EINVAL, 0);
    if ((err = check_iov(iov, iovcnt, &total)) != 0)
        return finish(err, 0);
    for (int i = 0; i < iovcnt; i++) {
        size_t got = copy_out(d->ino, (uint64_t)off + n, iov[i].iov_base,
                              iov[i].iov_len);

        n += got;
        if (got < iov[i].iov_len)
            break;
    }
    return finish(0, (long)n);
}

/* write and pwritev.  The bytes of all the iovecs are one write: one
 * pending change, kept or lost (or torn) as a whole. */
static int
write_locked(const char *call, int fd, const struct iovec *iov, int iovcnt,
             bool positioned, off_t off, size_t *np)
{
    struct fdesc *d;
    unsigned char *buf;
    uint64_t start;
    size_t total, n, done = 0;
    bool short_write;
    int err;

    if ((err = count_call(call, true, fd, AT_FDCWD, NULL)) != 0)
        return err;
    short_write = S.short_now;
    S.short_now = false;
    if ((d = fd_get(fd)) == NULL || d->acc == O_RDONLY)
        return EBADF; /* a directory is only ever open O_RDONLY */
    if ((err = check_iov(iov, iovcnt, &total)) != 0)
        return err;
    if (positioned && off < 0)
        return EINVAL;
    if (d->enospc_next) {
        /* The write after a short one: the disk is full after all. */
        d->enospc_next = false;
        return ENOSPC;
    }
    /* O_APPEND writes at the end even through pwritev, as Linux does. */
    start = d->append ? d->ino->cur.size
                      : positioned ? (uint64_t)off : d->pos;
    if (total > 0 && start + total > SIM_MAX_FILE)
        return EFBIG;
    n = total;
    if (short_write) {
        /* Up to half, in whole sectors: what fitted before the disk filled
         * up.  The next write of this descriptor reports ENOSPC. */
        n = total / 2 / SIM_SECTOR * SIM_SECTOR;
        d->enospc_next = true;
    }
    if (n > 0) {
        buf = xrealloc(NULL, n);
        for (int i = 0; i < iovcnt && done < n; i++) {
            size_t k = iov[i].iov_len < n - done ? iov[i].iov_len : n - done;

            if (k != 0)
                memcpy(buf + done, iov[i].iov_base, k);
            done += k;
        }
        file_change(d->ino, FOP_WRITE, start, buf, n);
        free(buf);
        /* O_DSYNC: durable on return.  The model keeps a file's changes
         * in order, so this makes the earlier pending ones durable too. */
        if (d->dsync)
            file_sync(d->ino);
    }
    if (!positioned)
        d->pos = start + n;
    *np = n;
    return 0;
}

static ssize_t
so_write(int fd, const void *buf, size_t len)
{
    struct iovec iov = {(void *)buf, len};
    size_t n = 0;
    int err;

    lock();
    err = write_locked("write", fd, &iov, 1, false, 0, &n);
    return finish(err, (long)n);
}

static ssize_t
so_pwritev(int fd, const struct iovec *iov, int iovcnt, off_t off)
{
    size_t n = 0;
    int err;

    lock();
    err = write_locked("pwritev", fd, iov, iovcnt, true, off, &n);
    return finish(err, (long)n);
}

static off_t
so_lseek(int fd, off_t off, int whence)
{
    struct fdesc *d;
    int64_t base, pos;

    lock();
    if (S.cut)
        return finish(EIO, 0);
    if ((d = fd_get(fd)) == NULL)
        return finish(EBADF, 0);
    switch (whence) {
    case SEEK_SET:
        base = 0;
        break;
    case SEEK_CUR:
        base = (int64_t)d->pos;
        break;
    case SEEK_END:
        base = d->ino->isdir ? 0 : (int64_t)d->ino->cur.size;
        break;
    default:
        return finish(EINVAL, 0);
    }
    if (__builtin_add_overflow(base, (int64_t)off, &pos))
        return finish(EOVERFLOW, 0);
    if (pos < 0)
        return finish(EINVAL, 0);
    d->pos = (uint64_t)pos;
    return finish(0, (long)pos);
}

static int
so_ftruncate(int fd, off_t len)
{
    struct fdesc *d;
    int err;

    lock();
    if ((err = count_call("ftruncate", false, fd, AT_FDCWD, NULL)) != 0)
        return (int)finish(err, 0);
    if ((d = fd_get(fd)) == NULL)
        return (int)finish(EBADF, 0);
    if (d->ino->isdir || d->acc == O_RDONLY || len < 0)
        return (int)finish(EINVAL, 0);
    if ((uint64_t)len > SIM_MAX_FILE)
        return (int)finish(EFBIG, 0);
    if ((uint64_t)len != d->ino->cur.size)
        file_change(d->ino, FOP_TRUNCATE, (uint64_t)len, NULL, 0);
    return (int)finish(0, 0);
}

/* fsync and fdatasync: the same in the model (data and size; the name is
 * the directory's business).  On a directory: its entries. */
static int
sync_locked(const char *call, int fd, bool data_only)
{
    struct fdesc *d;
    int err;

    if ((err = count_call(call, false, fd, AT_FDCWD, NULL)) != 0)
        return err;
    if ((d = fd_get(fd)) == NULL)
        return EBADF;
    if (d->ino->isdir)
        dir_sync(d->ino);
    else {
#ifdef SIMDISK_MUTANT_FSYNC_NOOP
        /* Mutant: fdatasync of a file makes nothing durable. */
        if (data_only)
            return 0;
#else
        (void)data_only;
#endif
        file_sync(d->ino);
    }
    return 0;
}

static int
so_fsync(int fd)
{
    lock();
    return (int)finish(sync_locked("fsync", fd, false), 0);
}

static int
so_fdatasync(int fd)
{
    lock();
    return (int)finish(sync_locked("fdatasync", fd, true), 0);
}

static int
so_syncfs(int fd)
{
    int err;

    lock();
    if ((err = count_call("syncfs", false, fd, AT_FDCWD, NULL)) != 0)
        return (int)finish(err, 0);
    if (fd_get(fd) == NULL)
        return (int)finish(EBADF, 0);
    sync_all();
    return (int)finish(0, 0);
}

/* Writeback started early changes nothing the disk promises: only a sync
 * makes data durable, so this checks its descriptor and does nothing. */
static int
so_sync_file_range(int fd, off_t off, off_t len, unsigned flags)
{
    (void)off;
    (void)len;
    (void)flags;
    lock();
    if (S.cut)
        return (int)finish(EIO, 0);
    if (fd_get(fd) == NULL)
        return (int)finish(EBADF, 0);
    return (int)finish(0, 0);
}

static int
so_fstat(int fd, struct stat *st)
{
    struct fdesc *d;

    lock();
    if (S.cut)
        return (int)finish(EIO, 0);
    if ((d = fd_get(fd)) == NULL)
        return (int)finish(EBADF, 0);
    fill_stat(d->ino, st);
    return (int)finish(0, 0);
}

static int
so_fstatat(int dirfd, const char *path, struct stat *st, int flags)
{
    struct inode *n;
    int err;

    lock();
    if (S.cut)
        return (int)finish(EIO, 0);
    /* No symbolic links exist, so AT_SYMLINK_NOFOLLOW changes nothing. */
    if (flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | AT_NO_AUTOMOUNT))
        return (int)finish(EINVAL, 0);
    if (path != NULL && path[0] == '\0' && (flags & AT_EMPTY_PATH)) {
        struct fdesc *d = fd_get(dirfd);

        if (dirfd != AT_FDCWD && d == NULL)
            return (int)finish(EBADF, 0);
        fill_stat(d != NULL ? d->ino : S.root, st);
        return (int)finish(0, 0);
    }
    if ((err = resolve(dirfd, path, &n)) != 0)
        return (int)finish(err, 0);
    fill_stat(n, st);
    return (int)finish(0, 0);
}

static int
so_stat(const char *path, struct stat *st)
{
    struct inode *n;
    int err;

    lock();
    if (S.cut)
        return (int)finish(EIO, 0);
    if ((err = resolve(AT_FDCWD, path, &n)) != 0)
        return (int)finish(err, 0);
    fill_stat(n, st);
    return (int)finish(0, 0);
}

static int
so_mkdir(const char *path, mode_t mode)
{
    char last[NAME_MAX + 1];
    struct inode *dir;
    bool slash;
    int err;

    (void)mode;
    lock();
    if ((err = count_call("mkdir", false, -1, AT_FDCWD, path)) != 0)
        return (int)finish(err, 0);
    if ((err = walk(AT_FDCWD, path, &dir, last, &slash)) != 0)
        return (int)finish(err, 0);
    if (special_name(last) || dents_get(&dir->ents, last) != NULL)
        return (int)finish(EEXIST, 0);
    if (dir->removed)
        return (int)finish(ENOENT, 0);
    dir_change1(dir, last, inode_new(true, dir));
    return (int)finish(0, 0);
}

static int
rename_locked(const char *call, int fromfd, const char *from, int tofd,
              const char *to, bool noreplace)
{
    char fname[NAME_MAX + 1], tname[NAME_MAX + 1];
    struct inode *fdir, *tdir, *src, *dst;
    struct dpart parts[2];
    bool fslash, tslash;
    int err;

    if ((err = count_call(call, false, -1, fromfd, from)) != 0)
        return err;
    if ((err = walk(fromfd, from, &fdir, fname, &fslash)) != 0 ||
        (err = walk(tofd, to, &tdir, tname, &tslash)) != 0)
        return err;
    if (special_name(fname) || special_name(tname))
        return EBUSY;
    if ((src = dents_get(&fdir->ents, fname)) == NULL)
        return ENOENT;
    if ((fslash || tslash) && !src->isdir)
        return ENOTDIR;
    dst = dents_get(&tdir->ents, tname);
    if (noreplace && dst != NULL)
        return EEXIST;
    if (dst == src) /* the same file: rename does nothing */
        return 0;
    if (tdir->removed)
        return ENOENT;
    if (src->isdir) {
        if (dst != NULL && !dst->isdir)
            return ENOTDIR;
        if (dst != NULL && dst->ents.n != 0)
            return ENOTEMPTY;
        /* Not into itself or below: walk up from the target directory
         * (a live directory's parents lead to "/"). */
        for (struct inode *p = tdir;; p = p->parent) {
            if (p == src)
                return EINVAL;
            if (p == p->parent)
                break;
        }
    } else if (dst != NULL && dst->isdir)
        return EISDIR;
    /* One change: the target's name set, the source's removed. */
    parts[0] = (struct dpart){tdir, tname, src};
    parts[1] = (struct dpart){fdir, fname, NULL};
    dir_change(2, parts);
    if (src->isdir)
        src->parent = tdir;
    if (dst != NULL && dst->isdir)
        dst->removed = true;
    return 0;
}

static int
so_rename(const char *from, const char *to)
{
    lock();
    return (int)finish(
        rename_locked("rename", AT_FDCWD, from, AT_FDCWD, to, false), 0);
}

static int
so_renameat(int fromfd, const char *from, int tofd, const char *to)
{
    lock();
    return (int)finish(
        rename_locked("renameat", fromfd, from, tofd, to, false), 0);
}

static int
so_renameat_noreplace(int fromfd, const char *from, int tofd, const char *to)
{
    lock();
    return (int)finish(
        rename_locked("renameat2", fromfd, from, tofd, to, true), 0);
}

static int
unlink_locked(const char *call, int dirfd, const char *path, int flags)
{
    char last[NAME_MAX + 1];
    struct inode *dir, *t;
    bool slash;
    int err;

    if ((err = count_call(call, false, -1, dirfd, path)) != 0)
        return err;
    if (flags & ~AT_REMOVEDIR)
        return EINVAL;
    if ((err = walk(dirfd, path, &dir, last, &slash)) != 0)
        return err;
    if (special_name(last)) {
        if (!(flags & AT_REMOVEDIR))
            return EISDIR;
        return strcmp(last, "..") == 0 ? ENOTEMPTY
               : last[0] == '\0'       ? EBUSY
                                       : EINVAL;
    }
    if ((t = dents_get(&dir->ents, last)) == NULL)
        return ENOENT;
    if (flags & AT_REMOVEDIR) {
        if (!t->isdir)
            return ENOTDIR;
        if (t->ents.n != 0)
            return ENOTEMPTY;
    } else {
        if (t->isdir)
            return EISDIR;
        if (slash)
            return ENOTDIR;
    }
    dir_change1(dir, last, NULL);
    if (t->isdir)
        t->removed = true;
    return 0;
}

static int
so_unlink(const char *path)
{
    lock();
    return (int)finish(unlink_locked("unlink", AT_FDCWD, path, 0), 0);
}

static int
so_unlinkat(int dirfd, const char *path, int flags)
{
    lock();
    return (int)finish(unlink_locked("unlinkat", dirfd, path, flags), 0);
}

/* One process uses the simulated disk, so every lock is granted. */
static int
so_flock(int fd, int op)
{
    int base = op & ~LOCK_NB;

    lock();
    if (S.cut)
        return (int)finish(EIO, 0);
    if (fd_get(fd) == NULL)
        return (int)finish(EBADF, 0);
    if (base != LOCK_SH && base != LOCK_EX && base != LOCK_UN)
        return (int)finish(EINVAL, 0);
    return (int)finish(0, 0);
}

/* A read-only mapping is a copy of [off, off + len) as it is now, zeros
 * past the end of the file.  (A MAP_SHARED mapping would see later writes;
 * the engine maps only files it no longer writes.)  The copy lives in
 * anonymous memory made read-only, so a store into it faults as it would
 * into the real mapping. */
static void *
so_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    long page = sysconf(_SC_PAGESIZE);
    struct fdesc *d;
    struct mapping *m;
    size_t maplen;
    void *p;
    int err, type = flags & MAP_TYPE;

    (void)addr; /* a hint only */
    lock();
    if ((err = count_call("mmap", false, fd, AT_FDCWD, NULL)) != 0)
        goto fail;
    err = EINVAL;
    if (len == 0 || prot != PROT_READ ||
        (type != MAP_SHARED && type != MAP_PRIVATE) ||
        (flags & ~(MAP_TYPE | MAP_POPULATE | MAP_NORESERVE)) != 0 || off < 0 ||
        off % page != 0)
        goto fail;
    err = EBADF;
    if ((d = fd_get(fd)) == NULL)
        goto fail;
    err = ENODEV;
    if (d->ino->isdir)
        goto fail;
    err = EACCES;
    if (d->acc == O_WRONLY)
        goto fail;
    err = ENOMEM;
    if (len > SIZE_MAX - (size_t)page)
        goto fail;
    maplen = (len + (size_t)page - 1) / (size_t)page * (size_t)page;
    p = mmap(NULL, maplen, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        err = errno;
        goto fail;
    }
    (void)copy_out(d->ino, (uint64_t)off, p, len);
    (void)mprotect(p, maplen, PROT_READ);
    GROW(S.maps, S.nmaps, S.capmaps);
    m = &S.maps[S.nmaps++];
    m->addr = p;
    m->maplen = maplen;
    m->stale = false;
    pthread_mutex_unlock(&sim_mu);
    return p;
fail:
    pthread_mutex_unlock(&sim_mu);
    errno = err;
    return MAP_FAILED;
}

/* munmap works even with the power cut, and on a mapping from before a
 * reboot.  Only whole mappings are unmapped: anything else the engine
 * does not do, so it is EINVAL rather than modelled. */
static int
so_munmap(void *addr, size_t len)
{
    long page = sysconf(_SC_PAGESIZE);
    struct mapping *m;

    lock();
    if ((m = map_find(addr)) == NULL || len == 0 ||
        (len + (size_t)page - 1) / (size_t)page * (size_t)page != m->maplen)
        return (int)finish(EINVAL, 0);
    (void)munmap(m->addr, m->maplen);
    *m = S.maps[--S.nmaps];
    return (int)finish(0, 0);
}

/* Advice is taken and ignored; on what is not a live mapping, ENOMEM as
 * the system says for an unmapped range. */
static int
so_madvise(void *addr, size_t len, int advice)
{
    (void)advice;
    lock();
    if (S.cut)
        return (int)finish(EIO, 0);
    for (size_t i = 0; i < S.nmaps; i++) {
        const struct mapping *m = &S.maps[i];
        const char *a = addr, *b = m->addr;

        if (!m->stale && a >= b && a + len <= b + m->maplen)
            return (int)finish(0, 0);
    }
    return (int)finish(ENOMEM, 0);
}

/* The clock is the real one, even with the power cut: it is not the disk,
 * and the engine's timed waits must go on working while its calls fail. */
static int
so_clock_gettime(clockid_t clock, struct timespec *ts)
{
    return clock_gettime(clock, ts);
}

const struct os_ops sim_os = {
    .open = so_open,
    .openat = so_openat,
    .close = so_close,
    .read = so_read,
    .pread = so_pread,
    .preadv = so_preadv,
    .write = so_write,
    .pwritev = so_pwritev,
    .lseek = so_lseek,
    .ftruncate = so_ftruncate,
    .fsync = so_fsync,
    .fdatasync = so_fdatasync,
    .syncfs = so_syncfs,
    .sync_file_range = so_sync_file_range,
    .fstat = so_fstat,
    .fstatat = so_fstatat,
    .stat = so_stat,
    .mkdir = so_mkdir,
    .rename = so_rename,
    .renameat = so_renameat,
    .renameat_noreplace = so_renameat_noreplace,
    .unlink = so_unlink,
    .unlinkat = so_unlinkat,
    .flock = so_flock,
    .mmap = so_mmap,
    .munmap = so_munmap,
    .madvise = so_madvise,
    .clock_gettime = so_clock_gettime,
};

/* ---------------------------------------------------------------------- */
/* The controls. */

void
sim_reset(uint64_t seed)
{
    pthread_mutex_lock(&sim_mu);
    reset_locked(seed);
    pthread_mutex_unlock(&sim_mu);
}

uint64_t
sim_calls(void)
{
    uint64_t n;

    lock();
    n = S.calls;
    pthread_mutex_unlock(&sim_mu);
    return n;
}

void
sim_count_restart(void)
{
    lock();
    S.calls = 0;
    pthread_mutex_unlock(&sim_mu);
}

void
sim_fail_at(uint64_t k, enum sim_fault fault)
{
    lock();
    S.fault_armed = fault != SIM_FAULT_NONE;
    S.fault_k = k;
    S.fault = fault;
    S.fired = false;
    pthread_mutex_unlock(&sim_mu);
}

void
sim_cut_at(uint64_t k)
{
    lock();
    S.cut_armed = true;
    S.cut_k = k;
    S.fired = false;
    pthread_mutex_unlock(&sim_mu);
}

void
sim_cut_now(void)
{
    lock();
    if (!S.cut) {
        cut_power();
        snprintf(S.event, sizeof S.event,
                 "power cut by sim_cut_now after %" PRIu64 " calls", S.calls);
    }
    pthread_mutex_unlock(&sim_mu);
}

void
sim_disarm(void)
{
    lock();
    S.fault_armed = S.cut_armed = false;
    pthread_mutex_unlock(&sim_mu);
}

bool
sim_fault_fired(void)
{
    bool r;

    lock();
    r = S.fired;
    pthread_mutex_unlock(&sim_mu);
    return r;
}

bool
sim_power_is_cut(void)
{
    bool r;

    lock();
    r = S.cut;
    pthread_mutex_unlock(&sim_mu);
    return r;
}

void
sim_reboot(void)
{
    lock();
    if (S.cut)
        apply_survivors();
    invalidate_handles();
    S.cut = false;
    pthread_mutex_unlock(&sim_mu);
}

int64_t
sim_file_size(const char *path)
{
    struct inode *n;
    int64_t r = -1;

    lock();
    if (resolve(AT_FDCWD, path, &n) == 0 && !n->isdir)
        r = (int64_t)n->cur.size;
    pthread_mutex_unlock(&sim_mu);
    return r;
}

bool
sim_exists(const char *path)
{
    struct inode *n;
    bool r;

    lock();
    r = resolve(AT_FDCWD, path, &n) == 0;
    pthread_mutex_unlock(&sim_mu);
    return r;
}

const char *
sim_dir_entry(const char *dir, int i)
{
    struct inode *n;
    const char *r = NULL;

    lock();
    if (resolve(AT_FDCWD, dir, &n) == 0 && n->isdir && i >= 0 &&
        (size_t)i < n->ents.n) {
        snprintf(S.entry, sizeof S.entry, "%s", n->ents.v[i].name);
        r = S.entry;
    }
    pthread_mutex_unlock(&sim_mu);
    return r;
}

const char *
sim_last_event(void)
{
    lock();
    memcpy(S.event_out, S.event, sizeof S.event_out);
    pthread_mutex_unlock(&sim_mu);
    return S.event_out;
}
