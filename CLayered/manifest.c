/*
 * manifest.c -- manifests and pointer records (manifest.h): encoding,
 * checks, and the durable, exclusive creation of each.
 *
 * The order of the steps is what the power-cut sweep (Tests/sim/
 * test_manifest.c) and the lease model (models/lease.pml) rely on:
 *   - a manifest's bytes are synced before any record names it;
 *   - a record's bytes are synced before its name appears (rename without
 *     replace), so its name never stands for a torn record;
 *   - the directory is synced after each, so an acknowledged publish
 *     survives a power cut.
 */
#include <inttypes.h>

#include "fs_int.h"
#include "manifest.h"

#define MF_MAGIC "LYRDMANI"
#define PTR_MAGIC "LYRDCURR"
#define MF_VERSION 1

/* ---- a growing byte buffer ---- */

struct buf {
    unsigned char *p;
    size_t len, cap;
    int error;
};

static void
buf_add(struct buf *b, const void *p, size_t len)
{
    if (b->error != 0)
        return;
    if (b->len + len > b->cap) {
        size_t cap = b->cap < 256 ? 256 : b->cap;
        unsigned char *n;

        while (cap < b->len + len)
            cap *= 2;
        if ((n = realloc(b->p, cap)) == NULL) {
            b->error = ENOMEM;
            return;
        }
        b->p = n;
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, len);
    b->len += len;
}

static void
buf_u16(struct buf *b, uint16_t v)
{
    unsigned char x[2] = {(unsigned char)v, (unsigned char)(v >> 8)};

    buf_add(b, x, 2);
}

static void
buf_u32(struct buf *b, uint32_t v)
{
    unsigned char x[4];

    le32_put(x, v);
    buf_add(b, x, 4);
}

static void
buf_u64(struct buf *b, uint64_t v)
{
    unsigned char x[8];

    le64_put(x, v);
    buf_add(b, x, 8);
}

static void
buf_str(struct buf *b, const char *s, size_t max)
{
    size_t n = strlen(s);

    if (n == 0 || n > max) {
        if (b->error == 0)
            b->error = EINVAL;
        return;
    }
    buf_u16(b, (uint16_t)n);
    buf_add(b, s, n);
}

static void
buf_crc(struct buf *b)
{
    if (b->error == 0)
        buf_u32(b, crc32c(0, b->p, b->len));
}

/* ---- a bounded reader ---- */

struct rd {
    const unsigned char *p, *start, *end;
    bool bad;
};

static bool
rd_take(struct rd *r, size_t n, const unsigned char **pp)
{
    if (r->bad || (size_t)(r->end - r->p) < n) {
        r->bad = true;
        return false;
    }
    *pp = r->p;
    r->p += n;
    return true;
}

static uint64_t
rd_u64(struct rd *r)
{
    const unsigned char *p;

    return rd_take(r, 8, &p) ? le64_get(p) : 0;
}

static uint32_t
rd_u32(struct rd *r)
{
    const unsigned char *p;

    return rd_take(r, 4, &p) ? le32_get(p) : 0;
}

/* A name of 1..max bytes, copied with its NUL into out (max + 1 bytes) or
 * into a malloc'ed string (out NULL, *dupp). */
static bool
rd_str(struct rd *r, size_t max, char *out, char **dupp)
{
    const unsigned char *p;
    size_t n;

    if (!rd_take(r, 2, &p))
        return false;
    n = (size_t)p[0] | (size_t)p[1] << 8;
    if (n == 0 || n > max || !rd_take(r, n, &p) || memchr(p, '\0', n)) {
        r->bad = true;
        return false;
    }
    if (out == NULL) {
        if ((out = malloc(n + 1)) == NULL)
            return false;
        *dupp = out;
    }
    memcpy(out, p, n);
    out[n] = '\0';
    return true;
}

/* ---- manifests ---- */

void
mf_name(char *buf, size_t len, uint64_t epoch, uint64_t seq)
{
    (void)snprintf(buf, len, "MANIFEST-%020" PRIu64 "-%020" PRIu64, epoch,
                   seq);
}

int
mf_encode(const struct mf *m, unsigned char **bufp, size_t *lenp)
{
    struct buf b = {0};
    size_t i, j;

    buf_add(&b, MF_MAGIC, 8);
    buf_u32(&b, MF_VERSION);
    buf_u32(&b, 0);
    buf_u64(&b, m->epoch);
    buf_u64(&b, m->seq);
    buf_u32(&b, (uint32_t)m->ntables);
    for (i = 0; i < m->ntables; i++) {
        const struct mf_table *t = &m->tables[i];

        buf_str(&b, t->name, LAYERED_NAME_MAX);
        buf_u64(&b, t->id);
        buf_u32(&b, t->state);
        buf_u64(&b, t->drained_lsn);
        buf_u32(&b, (uint32_t)t->nruns);
        for (j = 0; j < t->nruns; j++) {
            const struct mf_run *r = &t->runs[j];

            buf_str(&b, r->file, MF_NAME_MAX);
            buf_u64(&b, r->off);
            buf_u64(&b, r->len);
            buf_u64(&b, r->min_lsn);
            buf_u64(&b, r->max_lsn);
            buf_u64(&b, r->rows);
        }
    }
    buf_crc(&b);
    if (b.error != 0) {
        free(b.p);
        return b.error;
    }
    *bufp = b.p;
    *lenp = b.len;
    return 0;
}

void
mf_free(struct mf *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->ntables; i++) {
        free(m->tables[i].name);
        free(m->tables[i].runs);
    }
    free(m->tables);
    free(m);
}

int
mf_decode(const unsigned char *p, size_t len, struct mf **mp,
          const char **why, uint64_t *offp)
{
    struct rd r = {p, p, p + len, false};
    const unsigned char *magic;
    struct mf *m = NULL;
    uint64_t ntables, i, j, nruns;
    int ret = 0;

    *mp = NULL;
#define BAD(why_)                                                           \
    do {                                                                    \
        if (why != NULL)                                                    \
            *why = (why_);                                                  \
        if (offp != NULL)                                                   \
            *offp = (uint64_t)(r.p - p);                                    \
        ret = LAYERED_CORRUPT;                                              \
        goto err;                                                           \
    } while (0)
    if (len < 8 + 4 + 4 + 8 + 8 + 4 + 4)
        BAD("shorter than a manifest");
    if (le32_get(p + len - 4) != crc32c(0, p, len - 4))
        BAD("manifest checksum mismatch");
    r.end = p + len - 4;
    if (!rd_take(&r, 8, &magic) || memcmp(magic, MF_MAGIC, 8) != 0)
        BAD("not a manifest (bad magic)");
    if (rd_u32(&r) != MF_VERSION || rd_u32(&r) != 0)
        BAD("unsupported manifest version");
    if ((m = calloc(1, sizeof(*m))) == NULL)
        ERR(ENOMEM);
    m->epoch = rd_u64(&r);
    m->seq = rd_u64(&r);
    ntables = rd_u32(&r);
    /* Each table takes at least 27 bytes: a bound before allocating. */
    if (r.bad || ntables > (uint64_t)(r.end - r.p) / 27)
        BAD("manifest table count out of range");
    if (ntables > 0 &&
        (m->tables = calloc((size_t)ntables, sizeof(*m->tables))) == NULL)
        ERR(ENOMEM);
    for (i = 0; i < ntables; i++) {
        struct mf_table *t = &m->tables[i];

        m->ntables = (size_t)i + 1;
        if (!rd_str(&r, LAYERED_NAME_MAX, NULL, &t->name)) {
            if (r.bad)
                BAD("manifest table name out of range");
            ERR(ENOMEM);
        }
        t->id = rd_u64(&r);
        t->state = rd_u32(&r);
        t->drained_lsn = rd_u64(&r);
        nruns = rd_u32(&r);
        if (r.bad || nruns > (uint64_t)(r.end - r.p) / 43)
            BAD("manifest run count out of range");
        if (nruns > 0 &&
            (t->runs = calloc((size_t)nruns, sizeof(*t->runs))) == NULL)
            ERR(ENOMEM);
        for (j = 0; j < nruns; j++) {
            struct mf_run *run = &t->runs[j];

            t->nruns = (size_t)j + 1;
            if (!rd_str(&r, MF_NAME_MAX, run->file, NULL))
                BAD("manifest run file name out of range");
            run->off = rd_u64(&r);
            run->len = rd_u64(&r);
            run->min_lsn = rd_u64(&r);
            run->max_lsn = rd_u64(&r);
            run->rows = rd_u64(&r);
            if (r.bad || run->min_lsn > run->max_lsn || run->len == 0)
                BAD("manifest run fields out of range");
        }
    }
    if (r.p != r.end)
        BAD("manifest has bytes after its tables");
#undef BAD
    *mp = m;
    return 0;

err:
    mf_free(m);
    return ret;
}

/* Create `name` exclusively with these bytes, synced; closed either way,
 * removed on an error. */
static int
create_synced(const struct os_ops *os, int dirfd, const char *name,
              const unsigned char *p, size_t len)
{
    int fd, ret = 0;

    if ((fd = os->openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
                         0644)) < 0)
        return errno;
    if ((ret = os_pwrite_full(os, fd, p, len, 0)) == 0 &&
        os->fdatasync(fd) != 0)
        ret = errno;
    if (os->close(fd) != 0 && ret == 0)
        ret = errno;
    if (ret != 0)
        (void)os->unlinkat(dirfd, name, 0);
    return ret;
}

/* Read a whole small file. */
static int
read_file(const struct os_ops *os, int dirfd, const char *name,
          unsigned char **bufp, size_t *lenp)
{
    unsigned char *buf = NULL;
    struct stat st;
    size_t done = 0;
    int fd, ret = 0;

    if ((fd = os->openat(dirfd, name, O_RDONLY | O_CLOEXEC, 0)) < 0)
        return errno;
    if (os->fstat(fd, &st) != 0)
        ERR(errno);
    if (st.st_size > (off_t)(64u << 20))
        ERR(LAYERED_CORRUPT); /* no manifest or record is that large */
    if ((buf = malloc((size_t)st.st_size + 1)) == NULL)
        ERR(ENOMEM);
    while (done < (size_t)st.st_size) {
        ssize_t n = os->pread(fd, buf + done, (size_t)st.st_size - done,
                              (off_t)done);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            ERR(errno);
        if (n == 0)
            break;
        done += (size_t)n;
    }
    *bufp = buf;
    *lenp = done;
    buf = NULL;
err:
    free(buf);
    (void)os->close(fd);
    return ret;
}

int
mf_write(const struct os_ops *os, int dirfd, const struct mf *m)
{
    char name[MF_NAME_MAX + 1];
    unsigned char *buf;
    size_t len;
    int ret;

    if (os == NULL)
        os = &os_default;
    RET(mf_encode(m, &buf, &len));
    mf_name(name, sizeof(name), m->epoch, m->seq);
    ret = create_synced(os, dirfd, name, buf, len);
    free(buf);
    RET(ret);
    /* When a pointer record in this directory follows, its directory
     * sync would cover this one (entries become durable in order: the
     * sweep's mutant without it passes); the sync stays so that a
     * manifest written on its own is durable too. */
    if ((ret = os_dir_fsync(os, dirfd)) != 0)
        (void)os->unlinkat(dirfd, name, 0);
    return ret;
}

int
mf_read(const struct os_ops *os, int dirfd, const char *name,
        struct mf **mp, const char **why, uint64_t *offp)
{
    unsigned char *buf;
    size_t len;
    int ret;

    if (os == NULL)
        os = &os_default;
    *mp = NULL;
    RET(read_file(os, dirfd, name, &buf, &len));
    ret = mf_decode(buf, len, mp, why, offp);
    free(buf);
    return ret;
}

/* ---- pointer records ---- */

static void
ptr_name(char *buf, size_t len, uint64_t n)
{
    (void)snprintf(buf, len, "CURRENT-%020" PRIu64, n);
}

int
mf_ptr_create(const struct os_ops *os, int dirfd, const struct mf_ptr *p)
{
    char name[64], tmp[96];
    struct buf b = {0};
    int ret;

    if (os == NULL)
        os = &os_default;
    buf_add(&b, PTR_MAGIC, 8);
    buf_u32(&b, MF_VERSION);
    buf_u32(&b, 0);
    buf_u64(&b, p->n);
    buf_u64(&b, p->epoch);
    buf_u64(&b, p->holder);
    buf_u64(&b, p->expiry_ns);
    buf_str(&b, p->manifest, MF_NAME_MAX);
    buf_crc(&b);
    if (b.error != 0) {
        free(b.p);
        return b.error;
    }
    ptr_name(name, sizeof(name), p->n);
    /* The temporary name is the writer's own (its holder id): two writers
     * racing for one number never share it. */
    (void)snprintf(tmp, sizeof(tmp), "%s.tmp-%016" PRIx64, name, p->holder);
    (void)os->unlinkat(dirfd, tmp, 0); /* left by a crash of ours */
    ret = create_synced(os, dirfd, tmp, b.p, b.len);
    free(b.p);
    RET(ret);
    /* The commit point: the synced record takes its number, or another
     * writer's already has it. */
    if (os->renameat_noreplace(dirfd, tmp, dirfd, name) != 0) {
        ret = errno;
        (void)os->unlinkat(dirfd, tmp, 0);
        return ret;
    }
    return os_dir_fsync(os, dirfd);
}

int
mf_ptr_read(const struct os_ops *os, int dirfd, uint64_t n, struct mf_ptr *p)
{
    const unsigned char *magic;
    unsigned char *buf;
    char name[64];
    struct rd r;
    size_t len;
    int ret = 0;

    if (os == NULL)
        os = &os_default;
    ptr_name(name, sizeof(name), n);
    RET(read_file(os, dirfd, name, &buf, &len));
    r = (struct rd){buf, buf, buf + (len >= 4 ? len - 4 : 0), false};
    if (len < 4 + 8 + 8 + 32 + 2 || le32_get(buf + len - 4) !=
                                         crc32c(0, buf, len - 4) ||
        !rd_take(&r, 8, &magic) || memcmp(magic, PTR_MAGIC, 8) != 0 ||
        rd_u32(&r) != MF_VERSION || rd_u32(&r) != 0)
        ERR(LAYERED_CORRUPT);
    memset(p, 0, sizeof(*p));
    p->n = rd_u64(&r);
    p->epoch = rd_u64(&r);
    p->holder = rd_u64(&r);
    p->expiry_ns = rd_u64(&r);
    if (!rd_str(&r, MF_NAME_MAX, p->manifest, NULL) || r.p != r.end ||
        p->n != n)
        ERR(LAYERED_CORRUPT);
err:
    free(buf);
    return ret;
}

int
mf_ptr_latest(const struct os_ops *os, int dirfd, uint64_t from,
              struct mf_ptr *p)
{
    char name[64];
    struct stat st;
    uint64_t n = from;

    if (os == NULL)
        os = &os_default;
    ptr_name(name, sizeof(name), n);
    if (os->fstatat(dirfd, name, &st, 0) != 0)
        return errno;
    for (;;) {
        ptr_name(name, sizeof(name), n + 1);
        if (os->fstatat(dirfd, name, &st, 0) != 0) {
            if (errno != ENOENT)
                return errno;
            break;
        }
        n++;
    }
    return mf_ptr_read(os, dirfd, n, p);
}

int
mf_publish(const struct os_ops *os, int dirfd, const struct mf_ptr *latest,
           const struct mf *m, uint64_t expiry_ns, struct mf_ptr *out)
{
    struct mf_ptr next;
    int ret;

    if (os == NULL)
        os = &os_default;
    if (m->epoch != latest->epoch)
        return EINVAL;
    RET(mf_write(os, dirfd, m));
    memset(&next, 0, sizeof(next));
    next.n = latest->n + 1;
    next.epoch = latest->epoch;
    next.holder = latest->holder;
    next.expiry_ns = expiry_ns;
    mf_name(next.manifest, sizeof(next.manifest), m->epoch, m->seq);
    if ((ret = mf_ptr_create(os, dirfd, &next)) != 0) {
        /* Lost (EEXIST) or failed before the rename: no record names the
         * manifest, which is removed.  A failed directory sync after the
         * rename also lands here: the record may stand, naming a manifest
         * that is gone -- so only remove it when the record is not ours. */
        struct mf_ptr now;

        if (ret == EEXIST ||
            mf_ptr_read(os, dirfd, next.n, &now) != 0 ||
            strcmp(now.manifest, next.manifest) != 0) {
            char name[MF_NAME_MAX + 1];

            mf_name(name, sizeof(name), m->epoch, m->seq);
            (void)os->unlinkat(dirfd, name, 0);
        }
        return ret;
    }
    if (out != NULL)
        *out = next;
    return 0;
}
