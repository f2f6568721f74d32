/*
 * verify.c -- read a home's files without opening them: layered_verify
 * checks every checksum, layered_salvage_scan hands every intact record of
 * one table to its caller.
 *
 * Neither opens a connection: layered_open cuts torn tails and finishes
 * interrupted drops and offloads, and a verifier must change nothing.  So
 * the files are read here with pread(2) through the os.h table, never
 * mapped (a file truncated under a mapping would raise SIGBUS in the
 * caller), and never opened for writing.
 *
 * Constituent files: the record format and its decoding are filestore.c's
 * (fs_record_decode, fs_header_check).  What is a torn tail and what is
 * damage follows fs_load, rule for rule and in the same order:
 *   - fewer than FS_RECORD_HEADER_BYTES left: a torn tail;
 *   - a bad record header followed only by zero bytes: a torn tail; else
 *     damage;
 *   - a record running past the end of the file: a torn tail;
 *   - a bad body checksum on the last record, or on a record followed only
 *     by zero bytes: a torn tail; else damage.
 * Where fs_load stops at damage, the scan goes on: after a bad body
 * checksum at the next record (the header passed its checksum, so its
 * lengths can be trusted), after a bad header at the next offset where a
 * whole record -- header and body -- passes its checksums.  A file header
 * that fails is damage too, and its records are still read from offset
 * FS_HEADER_BYTES on.
 *
 * Metadata: layered.meta and layered.meta.log are checked by meta.c's load
 * rules (load_snapshot, load_journal): the snapshot's closing checksum and
 * every line, each journal record's checksum, a torn last journal record
 * reported as such, a journal of an earlier generation ignored as the next
 * open ignores it.  The journal is replayed over the snapshot only to learn
 * which tables exist and in which state.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "batch_rec.h"
#include "internal.h"

#define META_FILE "layered.meta"
#define META_LOG "layered.meta.log"

/* Bytes read at once from a constituent file; a record larger than this
 * is read whole. */
#define SCAN_WINDOW (1024u * 1024)
/* Bytes read at once while checking that the rest of a file is zero. */
#define ZERO_CHUNK (64u * 1024)

/* A table the metadata lists. */
struct vtable {
    int state;     /* LAYERED_TABLE_* */
    bool dropping; /* an interrupted drop: the next open finishes it */
    char name[LAYERED_NAME_MAX + 1];
};

struct verify {
    const struct os_ops *os;
    const char *home;
    char *shared;         /* the shared directory's path */
    int home_fd, shared_fd;
    layered_verify_report report;
    int (*record)(void *arg, const layered_record *rec);
    void *arg;
    layered_verify_stats st;

    /* The tables the metadata lists, sorted by name. */
    struct vtable *tables;
    size_t ntables, tables_cap;
    uint64_t meta_gen;
    bool meta_gen_known;

    /* The constituent file being scanned and a window on it:
     * buf holds [boff, boff + blen). */
    int fd;
    char path[PATH_MAX];
    int constituent;
    uint64_t size;
    unsigned char *buf;
    size_t cap;
    uint64_t boff;
    size_t blen;
    unsigned char *zero;
};

/*
 * verify_report --
 *     Count a damage or torn-tail report and hand it to the caller's
 *     callback; returns the callback's value.
 */
static int __attribute__((format(printf, 5, 6)))
verify_report(struct verify *v, int kind, const char *file, uint64_t offset,
              const char *fmt, ...)
{
    char what[512];
    va_list ap;

    if (kind == LAYERED_VERIFY_DAMAGE)
        v->st.damaged++;
    else
        v->st.torn_tails++;
    if (v->report == NULL)
        return 0;
    va_start(ap, fmt);
    (void)vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    return v->report(v->arg, kind, file, offset, what);
}

/*
 * verify_path --
 *     "dir/name" into buf, for reports.
 */
static void
verify_path(char *buf, size_t len, const char *dir, const char *name)
{
    (void)snprintf(buf, len, "%s/%s", dir, name);
}

/*
 * open_dirs --
 *     Open the home and the shared directory read-only.  A missing shared
 *     directory is an error only when `need_shared` is set.
 */
static int
open_dirs(struct verify *v, const char *home, const char *shared_dir,
          bool need_shared)
{
    v->home = home;
    if ((v->home_fd = v->os->open(home, O_RDONLY | O_DIRECTORY | O_CLOEXEC,
                                  0)) < 0)
        return errno;
    if (shared_dir != NULL)
        v->shared = strdup(shared_dir);
    else if (asprintf(&v->shared, "%s/shared", home) < 0)
        v->shared = NULL;
    if (v->shared == NULL)
        return ENOMEM;
    if ((v->shared_fd = v->os->open(v->shared, O_RDONLY | O_DIRECTORY |
                                                   O_CLOEXEC, 0)) < 0 &&
        (errno != ENOENT || need_shared))
        return errno;
    return 0;
}

/*
 * verify_init, verify_free --
 *     An empty verifier; release what it holds.
 */
static void
verify_init(struct verify *v)
{
    memset(v, 0, sizeof(*v));
    v->os = &os_default;
    v->home_fd = v->shared_fd = v->fd = -1;
}

static void
verify_free(struct verify *v)
{
    if (v->fd >= 0)
        (void)v->os->close(v->fd);
    if (v->home_fd >= 0)
        (void)v->os->close(v->home_fd);
    if (v->shared_fd >= 0)
        (void)v->os->close(v->shared_fd);
    free(v->shared);
    free(v->tables);
    free(v->buf);
    free(v->zero);
}

/* ---- constituent files ---- */

/*
 * scan_window --
 *     Point *pp at the len bytes at off (off + len <= the file's size),
 *     reading from the file when the window does not hold them.
 */
static int
scan_window(struct verify *v, uint64_t off, size_t len,
            const unsigned char **pp)
{
    size_t want, done = 0;
    ssize_t n;

    if (off >= v->boff && off + len <= v->boff + v->blen) {
        *pp = v->buf + (off - v->boff);
        return 0;
    }
    want = len > SCAN_WINDOW ? len : SCAN_WINDOW;
    if (want > v->size - off)
        want = (size_t)(v->size - off);
    if (want > v->cap) {
        unsigned char *nb = realloc(v->buf, want);
        if (nb == NULL)
            return ENOMEM;
        v->buf = nb;
        v->cap = want;
    }
    v->blen = 0;
    while (done < want) {
        if ((n = v->os->pread(v->fd, v->buf + done, want - done,
                              (off_t)(off + done))) < 0) {
            if (errno == EINTR)
                continue;
            return errno;
        }
        if (n == 0)
            return EIO; /* the file shrank since its size was taken */
        done += (size_t)n;
    }
    v->boff = off;
    v->blen = want;
    *pp = v->buf;
    return 0;
}

/*
 * scan_zero_from --
 *     Is every byte from off to the end of the file zero?
 */
static int
scan_zero_from(struct verify *v, uint64_t off, bool *zerop)
{
    uint64_t left;
    size_t len;
    ssize_t n;

    *zerop = false;
    if (v->zero == NULL && (v->zero = malloc(ZERO_CHUNK)) == NULL)
        return ENOMEM;
    while (off < v->size) {
        left = v->size - off;
        len = left < ZERO_CHUNK ? (size_t)left : ZERO_CHUNK;
        if ((n = v->os->pread(v->fd, v->zero, len, (off_t)off)) < 0) {
            if (errno == EINTR)
                continue;
            return errno;
        }
        if (n == 0)
            return EIO;
        if (v->zero[0] != 0 ||
            memcmp(v->zero, v->zero + 1, (size_t)n - 1) != 0)
            return 0;
        off += (uint64_t)n;
    }
    *zerop = true;
    return 0;
}

/*
 * scan_intact --
 *     Is there a whole record at off whose header and body checksums pass?
 *     On success *r is its header and *pp its bytes.
 */
static int
scan_intact(struct verify *v, uint64_t off, fs_record *r,
            const unsigned char **pp, bool *intactp)
{
    const unsigned char *p = NULL;
    uint64_t rlen;

    *intactp = false;
    RET(scan_window(v, off, FS_RECORD_HEADER_BYTES, &p));
    /* The type byte (the high byte of klen_type) first: most offsets fail
     * there, before the checksum is computed. */
    if (p[19] < FS_RECORD_PUT || p[19] > FS_RECORD_CLEAR ||
        !fs_record_decode(p, r))
        return 0;
    rlen = FS_RECORD_HEADER_BYTES + (uint64_t)r->klen + r->vlen;
    if (rlen > v->size - off)
        return 0;
    RET(scan_window(v, off, (size_t)rlen, &p));
    if (crc32c(0, p + FS_RECORD_HEADER_BYTES, r->klen + r->vlen) != r->bcrc)
        return 0;
    *pp = p;
    *intactp = true;
    return 0;
}

/*
 * scan_resync --
 *     The first offset from `from` on where an intact record begins, or
 *     the file's size if none does.
 */
static int
scan_resync(struct verify *v, uint64_t from, uint64_t *nextp)
{
    const unsigned char *p = NULL;
    fs_record r;
    uint64_t off;
    bool intact;

    for (off = from; v->size - off >= FS_RECORD_HEADER_BYTES; off++) {
        RET(scan_intact(v, off, &r, &p, &intact));
        if (intact) {
            *nextp = off;
            return 0;
        }
    }
    *nextp = v->size;
    return 0;
}

/*
 * scan_deliver --
 *     Hand an intact record to the salvage callback, if there is one.
 */
static int
scan_deliver(struct verify *v, uint64_t off, const fs_record *r,
             const unsigned char *p)
{
    layered_record rec;

    v->st.records++;
    if (v->record == NULL)
        return 0;
    memset(&rec, 0, sizeof(rec));
    rec.constituent = v->constituent;
    rec.offset = off;
    rec.lsn = r->lsn;
    switch (r->type) {
    case FS_RECORD_PUT:
        rec.kind = LAYERED_RECORD_PUT;
        rec.value = p + FS_RECORD_HEADER_BYTES + r->klen;
        rec.value_len = r->vlen;
        break;
    case FS_RECORD_CLEAR:
        rec.kind = LAYERED_RECORD_CLEAR;
        break;
    default: /* FS_RECORD_DEL, FS_RECORD_TOMB */
        rec.kind = LAYERED_RECORD_REMOVE;
        break;
    }
    if (r->type != FS_RECORD_CLEAR) {
        rec.key = p + FS_RECORD_HEADER_BYTES;
        rec.key_len = r->klen;
    }
    return v->record(v->arg, &rec);
}

/*
 * scan_torn --
 *     Report the torn tail that begins at off.
 */
static int
scan_torn(struct verify *v, uint64_t off, const char *why)
{
    return verify_report(v, LAYERED_VERIFY_TORN_TAIL, v->path, off,
                         "%s (%" PRIu64 " bytes; the next open cuts them)",
                         why, v->size - off);
}

/*
 * scan_records --
 *     Read every record from off to the end of the open file.
 */
static int
scan_records(struct verify *v, uint64_t off)
{
    const unsigned char *p = NULL;
    fs_record r;
    uint64_t rlen, next;
    int ret = 0;
    bool zero, intact;

    while (off < v->size) {
        if (v->size - off < FS_RECORD_HEADER_BYTES)
            return scan_torn(v, off, "incomplete record header");
        RET(scan_window(v, off, FS_RECORD_HEADER_BYTES, &p));
        if (!fs_record_decode(p, &r)) {
            RET(scan_zero_from(v, off + FS_RECORD_HEADER_BYTES,
                                      &zero));
            if (zero)
                return scan_torn(
                    v, off, "bad record header followed only by zero bytes");
            RET(scan_resync(v, off + 1, &next));
            if (next < v->size)
                ret = verify_report(
                    v, LAYERED_VERIFY_DAMAGE, v->path, off,
                    "bad record header; %" PRIu64 " bytes skipped to the "
                    "next intact record, at offset %" PRIu64,
                    next - off, next);
            else
                ret = verify_report(
                    v, LAYERED_VERIFY_DAMAGE, v->path, off,
                    "bad record header; no intact record follows (%" PRIu64
                    " bytes to the end of the file)", v->size - off);
            if (ret != 0)
                return ret;
            off = next;
            continue;
        }
        rlen = FS_RECORD_HEADER_BYTES + (uint64_t)r.klen + r.vlen;
        if (rlen > v->size - off)
            return scan_torn(v, off, "record runs past end of file");
        RET(scan_intact(v, off, &r, &p, &intact));
        if (!intact) {
            if (off + rlen == v->size)
                return scan_torn(v, off,
                                 "last record fails its body checksum");
            RET(scan_zero_from(v, off + rlen, &zero));
            if (zero)
                return scan_torn(
                    v, off, "bad record followed only by zero bytes");
            RET(verify_report(
                     v, LAYERED_VERIFY_DAMAGE, v->path, off,
                     "record body checksum mismatch (lsn %" PRIu64
                     ", key %" PRIu32 " bytes, value %" PRIu32 " bytes)",
                     r.lsn, r.klen, r.vlen));
            off += rlen;
            continue;
        }
        RET(scan_deliver(v, off, &r, p));
        off += rlen;
    }
    return 0;
}

/*
 * scan_file --
 *     Read one constituent file: its header, then its records.  *foundp
 *     says whether it exists.
 */
static int
scan_file(struct verify *v, int dirfd, const char *dir, const char *table,
          int constituent, bool *foundp)
{
    const unsigned char *p = NULL;
    struct stat st;
    const char *why;
    char name[LAYERED_NAME_MAX + 16];
    int ret = 0;
    bool zero;

    *foundp = false;
    (void)snprintf(name, sizeof(name), "%s.%s", table,
                   constituent == LAYERED_CONSTITUENT_INGEST ? "ingest"
                                                             : "stable");
    verify_path(v->path, sizeof(v->path), dir, name);
    if (dirfd < 0)
        return 0;
    if ((v->fd = v->os->openat(dirfd, name, O_RDONLY | O_CLOEXEC, 0)) < 0)
        return errno == ENOENT ? 0 : errno;
    *foundp = true;
    v->constituent = constituent;
    v->boff = 0;
    v->blen = 0;
    if (v->os->fstat(v->fd, &st) != 0)
        ERR(errno);
    v->size = (uint64_t)st.st_size;
    v->st.files++;
    v->st.bytes += v->size;

    /* fs_open rewrites a file shorter than its header, or one whose bad
     * header is followed only by zero bytes, as an empty file: a crash
     * while it was created, with no records to lose. */
    if (v->size < FS_HEADER_BYTES) {
        if (v->size > 0)
            ret = scan_torn(v, 0, "file shorter than its header (no "
                                  "records)");
        goto err;
    }
    ERR(scan_window(v, 0, FS_HEADER_BYTES, &p));
    if ((why = fs_header_check(p)) != NULL) {
        ERR(scan_zero_from(v, FS_HEADER_BYTES, &zero));
        if (zero) {
            ret = scan_torn(v, 0, "torn file header (no records)");
            goto err;
        }
        ERR(verify_report(v, LAYERED_VERIFY_DAMAGE, v->path, 0,
                          "%s; its records are read from offset %d on", why,
                          FS_HEADER_BYTES));
    }
    ret = scan_records(v, FS_HEADER_BYTES);

err:
    (void)v->os->close(v->fd);
    v->fd = -1;
    return ret;
}

/* ---- metadata ---- */

/*
 * read_meta --
 *     Read a whole metadata file into a NUL-terminated buffer; *bufp is
 *     NULL if the file does not exist.
 */
static int
read_meta(struct verify *v, const char *name, char **bufp, size_t *lenp)
{
    struct stat st;
    char *buf = NULL;
    size_t done = 0;
    ssize_t n;
    int fd, ret = 0;

    *bufp = NULL;
    *lenp = 0;
    if ((fd = v->os->openat(v->home_fd, name, O_RDONLY | O_CLOEXEC, 0)) < 0)
        return errno == ENOENT ? 0 : errno;
    if (v->os->fstat(fd, &st) != 0)
        ERR(errno);
    if ((buf = malloc((size_t)st.st_size + 1)) == NULL)
        ERR(ENOMEM);
    while (done < (size_t)st.st_size) {
        if ((n = v->os->pread(fd, buf + done, (size_t)st.st_size - done,
                              (off_t)done)) < 0) {
            if (errno == EINTR)
                continue;
            ERR(errno);
        }
        if (n == 0)
            ERR(EIO);
        done += (size_t)n;
    }
    buf[done] = '\0';
    v->st.files++;
    v->st.bytes += done;
    *bufp = buf;
    *lenp = done;
    buf = NULL;
err:
    free(buf);
    (void)v->os->close(fd);
    return ret;
}

/*
 * table_slot --
 *     The index of a table in the sorted list, or where it would go.
 */
static size_t
table_slot(struct verify *v, const char *name, bool *foundp)
{
    size_t lo = 0, hi = v->ntables, mid;
    int c;

    *foundp = false;
    while (lo < hi) {
        mid = lo + (hi - lo) / 2;
        if ((c = strcmp(v->tables[mid].name, name)) == 0) {
            *foundp = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/*
 * table_apply --
 *     Apply one metadata change to the table list, as meta.c's apply_op
 *     does to the connection's tree.
 */
static int
table_apply(struct verify *v, const char *op, const char *name, uint64_t arg)
{
    struct vtable *t;
    size_t i;
    bool found;

    i = table_slot(v, name, &found);
    if (strcmp(op, "create") == 0) {
        if (!found) {
            if (v->ntables == v->tables_cap) {
                size_t cap = v->tables_cap == 0 ? 64 : v->tables_cap * 2;
                struct vtable *nt = realloc(v->tables, cap * sizeof(*nt));
                if (nt == NULL)
                    return ENOMEM;
                v->tables = nt;
                v->tables_cap = cap;
            }
            memmove(v->tables + i + 1, v->tables + i,
                    (v->ntables - i) * sizeof(*v->tables));
            v->ntables++;
            (void)snprintf(v->tables[i].name, sizeof(v->tables[i].name),
                           "%s", name);
        }
        v->tables[i].state = LAYERED_TABLE_ACTIVE;
        v->tables[i].dropping = false;
        return 0;
    }
    if (!found)
        return 0;
    t = &v->tables[i];
    if (strcmp(op, "dropping") == 0)
        t->dropping = true;
    else if (strcmp(op, "drop") == 0) {
        memmove(v->tables + i, v->tables + i + 1,
                (v->ntables - i - 1) * sizeof(*v->tables));
        v->ntables--;
    } else if (strcmp(op, "state") == 0)
        t->state = (int)arg;
    return 0;
}

/*
 * verify_snapshot --
 *     Check layered.meta: every line, the count and the checksum of its
 *     end line (meta.c, load_snapshot); list its tables.
 */
static int
verify_snapshot(struct verify *v, bool *foundp)
{
    char *buf, *line, *next, *end, name[LAYERED_NAME_MAX + 2];
    char path[PATH_MAX];
    size_t len;
    uint64_t lsn, drained, count = 0, want = 0, gen;
    uint32_t want_crc = 0;
    int state, ret;
    bool end_ok, crc_ok, bad_line = false;

    *foundp = false;
    if ((ret = read_meta(v, META_FILE, &buf, &len)) != 0 || buf == NULL)
        return ret;
    *foundp = true;
    verify_path(path, sizeof(path), v->home, META_FILE);

    /* The end line, "end COUNT CRC", and the checksum of every byte before
     * it, taken before the lines are cut apart below. */
    end = len >= 2 ? memrchr(buf, '\n', len - 1) : NULL;
    end = end == NULL ? buf : end + 1;
    end_ok = sscanf(end, "end %" SCNu64 " %" SCNx32, &want, &want_crc) == 2;
    crc_ok = end_ok && crc32c(0, buf, (size_t)(end - buf)) == want_crc;
    for (line = buf; line < end; line = next) {
        if ((next = memchr(line, '\n', (size_t)(end - line))) != NULL)
            *next++ = '\0';
        else
            next = end;
        if (strcmp(line, "layered-meta 1") == 0 ||
            sscanf(line, "lsn %" SCNu64, &lsn) == 1)
            continue;
        if (sscanf(line, "gen %" SCNu64, &gen) == 1) {
            v->meta_gen = gen;
            continue;
        }
        if (sscanf(line, "table %201s %d %" SCNu64, name, &state,
                   &drained) == 3 &&
            tbl_name_valid(name, strlen(name)) && state >= 0 &&
            state <= LAYERED_TABLE_DROPPED) {
            ERR(table_apply(v, "create", name, 0));
            ERR(table_apply(v, "state", name, (uint64_t)state));
            if (state == LAYERED_TABLE_DROPPED)
                ERR(table_apply(v, "dropping", name, 0));
            count++;
            continue;
        }
        bad_line = true;
        ERR(verify_report(v, LAYERED_VERIFY_DAMAGE, path,
                          (uint64_t)(line - buf), "unreadable line"));
    }
    /* A line that cannot be read is where the damage is; the checksum is
     * reported only when every line reads. */
    if (!end_ok)
        ret = verify_report(v, LAYERED_VERIFY_DAMAGE, path,
                            (uint64_t)(end - buf), "no end line");
    else if (!crc_ok && !bad_line)
        ret = verify_report(v, LAYERED_VERIFY_DAMAGE, path,
                            (uint64_t)(end - buf),
                            "checksum mismatch: the bytes before this "
                            "offset are not those the end line checksums");
    else if (crc_ok && count != want)
        ret = verify_report(v, LAYERED_VERIFY_DAMAGE, path,
                            (uint64_t)(end - buf),
                            "%" PRIu64 " tables listed, %" PRIu64
                            " expected", count, want);
    /* Only an intact snapshot says which journal is current. */
    v->meta_gen_known = crc_ok;
err:
    free(buf);
    return ret;
}

/*
 * verify_journal --
 *     Check every record of layered.meta.log (meta.c, load_journal) and
 *     replay it over the snapshot's tables.
 */
static int
verify_journal(struct verify *v, bool *foundp)
{
    static const char *const ops[] = {"create", "dropping", "drop", "state",
                                      "journal"};
    char *buf, *line, *next, *nl, op[16], name[LAYERED_NAME_MAX + 2];
    char path[PATH_MAX];
    size_t len, i;
    uint64_t arg, off;
    uint32_t crc;
    int ret;
    bool first = true;

    *foundp = false;
    if ((ret = read_meta(v, META_LOG, &buf, &len)) != 0 || buf == NULL)
        return ret;
    *foundp = true;
    verify_path(path, sizeof(path), v->home, META_LOG);

    for (line = buf; line < buf + len; line = next) {
        nl = memchr(line, '\n', (size_t)(buf + len - line));
        next = nl == NULL ? buf + len : nl + 1;
        off = (uint64_t)(line - buf);
        if (nl == NULL || nl - line < 10 ||
            sscanf(line, "%8" SCNx32, &crc) != 1 ||
            crc32c(0, line + 9, (size_t)(nl - line - 9)) != crc ||
            (*nl = '\0',
             sscanf(line + 9, "%15s %201s %" SCNu64, op, name, &arg) != 3)) {
            if (next == buf + len) {
                ret = verify_report(v, LAYERED_VERIFY_TORN_TAIL, path, off,
                                    "incomplete last record (%zu bytes; the "
                                    "next open cuts them)",
                                    (size_t)(buf + len - line));
                break;
            }
            ERR(verify_report(v, LAYERED_VERIFY_DAMAGE, path, off,
                              "damaged record"));
            first = false; /* its generation is unknown: read on */
            continue;
        }
        for (i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
            if (strcmp(op, ops[i]) == 0)
                break;
        if (i == sizeof(ops) / sizeof(ops[0])) {
            ERR(verify_report(v, LAYERED_VERIFY_DAMAGE, path, off,
                              "unknown record \"%s\"", op));
            first = false;
            continue;
        }
        if (first) {
            first = false;
            /* Not the snapshot's journal: it was folded into the snapshot
             * already, and the next open starts it afresh. */
            if (strcmp(op, "journal") != 0 ||
                (v->meta_gen_known && arg != v->meta_gen))
                break;
            continue;
        }
        if (strcmp(op, "journal") == 0 || !tbl_name_valid(name, strlen(name))) {
            ERR(verify_report(v, LAYERED_VERIFY_DAMAGE, path, off,
                              "bad record"));
            continue;
        }
        ERR(table_apply(v, op, name, arg));
    }
err:
    free(buf);
    return ret;
}

/*
 * verify_batch --
 *     The batch journal (batch_rec.h): every record's header and body
 *     checksum, and its ops.  A torn tail is reported as such (the next
 *     open cuts it); after damage the records' boundaries are unknown, so
 *     the rest of the journal is not read.  A journal that is missing or
 *     empty (every clean close and checkpoint empties it) is fine.
 */
static int
verify_batch(struct verify *v)
{
    char path[PATH_MAX], name[LAYERED_NAME_MAX + 1];
    struct brec_op op;
    struct brec rec;
    const char *why;
    uint64_t off, pos;
    size_t len;
    uint32_t i;
    char *buf;
    int ret = 0, rc;

    if ((ret = read_meta(v, BREC_JOURNAL, &buf, &len)) != 0 || buf == NULL)
        return ret;
    verify_path(path, sizeof(path), v->home, BREC_JOURNAL);
    for (off = 0; off < len; off += rec.len) {
        rc = brec_check((const unsigned char *)buf, len, off, &rec, &why);
        if (rc == BREC_TORN) {
            ret = verify_report(v, LAYERED_VERIFY_TORN_TAIL, path, off,
                                "%s (%zu bytes; the next open cuts them)",
                                why, (size_t)(len - off));
            break;
        }
        if (rc == BREC_BAD) {
            ret = verify_report(v, LAYERED_VERIFY_DAMAGE, path, off, "%s",
                                why);
            break;
        }
        for (i = 0, pos = 0; i < rec.nops; i++) {
            if (!brec_op_next(&rec, &pos, &op))
                break;
            memcpy(name, op.name, op.nlen);
            name[op.nlen] = '\0';
            if (!tbl_name_valid(name, op.nlen))
                break;
        }
        if (i < rec.nops || pos != rec.blen) {
            ret = verify_report(v, LAYERED_VERIFY_DAMAGE, path, off,
                                "a record whose ops do not parse");
            break;
        }
        v->st.records++;
    }
    free(buf);
    return ret;
}

/*
 * verify_table --
 *     Read a table's constituents; report one that its state requires and
 *     that is missing.  `listed` is false for a name the metadata does not
 *     list: then nothing is required, and a table with no files is ENOENT.
 */
static int
verify_table(struct verify *v, const char *name, int state, bool listed)
{
    bool ingest, stable;
    int ret = 0;

    RET(scan_file(v, v->home_fd, v->home, name,
                         LAYERED_CONSTITUENT_INGEST, &ingest));
    if (!ingest && listed &&
        (state == LAYERED_TABLE_ACTIVE || state == LAYERED_TABLE_ARCHIVED) &&
        (ret = verify_report(v, LAYERED_VERIFY_DAMAGE, v->path, 0,
                             "missing: the table is %s, so its ingest "
                             "constituent must exist",
                             state == LAYERED_TABLE_ACTIVE ? "active"
                                                           : "archived")) !=
            0)
        return ret;
    RET(scan_file(v, v->shared_fd, v->shared, name,
                         LAYERED_CONSTITUENT_STABLE, &stable));
    if (!stable && listed &&
        (ret = verify_report(v, LAYERED_VERIFY_DAMAGE, v->path, 0,
                             "missing: every table keeps its stable "
                             "constituent")) != 0)
        return ret;
    return !listed && !ingest && !stable ? ENOENT : 0;
}

/*
 * verify_lock --
 *     Hold the home's LOCK file shared for the call: an open elsewhere is
 *     EBUSY, and so is an open while this runs.  A home without a LOCK file
 *     was never opened.
 */
static int
verify_lock(struct verify *v, int *fdp)
{
    *fdp = v->os->openat(v->home_fd, "LOCK", O_RDONLY | O_CLOEXEC, 0);
    if (*fdp < 0)
        return errno == ENOENT ? 0 : errno;
    if (v->os->flock(*fdp, LOCK_SH | LOCK_NB) != 0)
        return errno == EWOULDBLOCK ? EBUSY : errno;
    return 0;
}

int
layered_verify(const char *home, const char *shared_dir, const char *table,
               layered_verify_report report, void *arg,
               layered_verify_stats *stats)
{
    struct verify v;
    size_t i;
    int lock_fd = -1, ret;
    bool snapshot, journal, found;

    verify_init(&v);
    v.report = report;
    v.arg = arg;
    if (home == NULL || *home == '\0' ||
        (shared_dir != NULL && *shared_dir == '\0') ||
        (table != NULL && !tbl_name_valid(table, strlen(table))))
        ERR(EINVAL);
    ERR(open_dirs(&v, home, shared_dir, true));
    ERR(verify_lock(&v, &lock_fd));
    /* Without a snapshot the current journal is generation 0. */
    v.meta_gen_known = true;
    ERR(verify_snapshot(&v, &snapshot));
    ERR(verify_journal(&v, &journal));
    if (!snapshot && !journal)
        ERR(ENOENT);
    ERR(verify_batch(&v));
    if (table != NULL) {
        i = table_slot(&v, table, &found);
        if (found && v.tables[i].dropping)
            ERR(ENOENT);
        ERR(verify_table(&v, table, found ? v.tables[i].state : 0, found));
    } else
        for (i = 0; i < v.ntables; i++)
            if (!v.tables[i].dropping &&
                v.tables[i].state != LAYERED_TABLE_DROPPED)
                ERR(verify_table(&v, v.tables[i].name, v.tables[i].state,
                                 true));
    if (v.st.damaged > 0)
        ret = LAYERED_CORRUPT;
err:
    if (stats != NULL)
        *stats = v.st;
    if (lock_fd >= 0)
        (void)v.os->close(lock_fd); /* releases the flock */
    verify_free(&v);
    return ret;
}

int
layered_salvage_scan(const char *home, const char *shared_dir,
                     const char *table,
                     int (*record)(void *arg, const layered_record *rec),
                     layered_verify_report report, void *arg,
                     layered_verify_stats *stats)
{
    struct verify v;
    int ret;
    bool ingest, stable;

    verify_init(&v);
    v.report = report;
    v.record = record;
    v.arg = arg;
    if (home == NULL || *home == '\0' || record == NULL ||
        (shared_dir != NULL && *shared_dir == '\0') || table == NULL ||
        !tbl_name_valid(table, strlen(table)))
        ERR(EINVAL);
    ERR(open_dirs(&v, home, shared_dir, false));
    ERR(scan_file(&v, v.home_fd, v.home, table, LAYERED_CONSTITUENT_INGEST,
                  &ingest));
    ERR(scan_file(&v, v.shared_fd, v.shared, table,
                  LAYERED_CONSTITUENT_STABLE, &stable));
    if (!ingest && !stable)
        ERR(ENOENT);
    if (v.st.damaged > 0)
        ret = LAYERED_CORRUPT;
err:
    if (stats != NULL)
        *stats = v.st;
    verify_free(&v);
    return ret;
}
