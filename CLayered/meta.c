/*
 * meta.c -- the metadata: which tables exist, their state and drained LSN.
 *
 * Two files in the home directory:
 *   layered.meta      a snapshot, replaced atomically (write a temporary,
 *                     fsync, rename, fsync the directory); its last line
 *                     carries a CRC32C of everything before it
 *   layered.meta.log  a journal of the schema changes since the snapshot:
 *                     one line each with its own CRC32C, appended and
 *                     fdatasync'ed before the change is reported done
 * A schema change costs one small append and one sync instead of
 * rewriting every table's entry, so creating or dropping N tables is O(N)
 * rather than O(N^2).  The journal is folded into a new snapshot when it
 * holds more records than there are tables, and at close.  Both carry a
 * generation number: a journal whose generation is not the snapshot's was
 * already folded in (a crash between the rename and the journal reset) and
 * is ignored.
 *
 * A torn last journal line (crash mid-append) is cut; a damaged line
 * elsewhere, or a snapshot whose CRC does not match, is LAYERED_CORRUPT.
 * Every function here runs under the schema lock.
 *
 * FAILURES: a schema change is acknowledged only once its record is
 * durable, and the next open must see exactly what was acknowledged.  So:
 *   - a failed append is cut back (and the cut synced) before the error is
 *     returned: the record is durably absent, nothing changed;
 *   - a failed snapshot before its rename changed nothing (the temporary
 *     is removed, the journal of the current generation stays in use);
 *   - from the rename on, the snapshot of generation g+1 may be on disk,
 *     and records appended to the journal of generation g would be
 *     ignored by the next open: a failure there (the directory fsync, the
 *     journal reset) panics the connection, so no later change can be
 *     acknowledged into a journal the next open discards.  The state on
 *     disk is consistent either way: the old snapshot and its journal, or
 *     the new snapshot, which holds everything.
 *   - when the cut back of a failed append fails too, the journal may end
 *     in a partial or an unsynced record: panic.
 * A snapshot folds the journal when it grows (meta_log, before appending:
 * the tree then holds every acknowledged change, since each caller applies
 * its change to the tree right after its record, under the schema lock).
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

#define META_FILE "layered.meta"
#define META_TMP "layered.meta.tmp"
#define META_LOG "layered.meta.log"

static const char *const op_names[] = {
    [META_CREATE] = "create", [META_DROPPING] = "dropping",
    [META_DROP] = "drop",     [META_STATE] = "state",
    [META_JOURNAL] = "journal",
};

/*
 * read_all --
 *     Read a whole file into a NUL-terminated buffer.
 */
static int
read_all(layered_conn *conn, int dirfd, const char *name, char **bufp,
         size_t *lenp)
{
    struct stat st;
    char *buf = NULL;
    size_t done = 0;
    ssize_t n;
    int fd, ret = 0;

    *bufp = NULL;
    *lenp = 0;
    if ((fd = conn->os->openat(dirfd, name, O_RDONLY | O_CLOEXEC, 0)) < 0)
        return errno;
    if (conn->os->fstat(fd, &st) != 0)
        ERR(errno);
    if ((buf = malloc((size_t)st.st_size + 1)) == NULL)
        ERR(ENOMEM);
    while (done < (size_t)st.st_size) {
        if ((n = conn->os->read(fd, buf + done,
                                (size_t)st.st_size - done)) < 0) {
            if (errno == EINTR)
                continue;
            ERR(errno);
        }
        if (n == 0)
            break;
        done += (size_t)n;
    }
    buf[done] = '\0';
    *bufp = buf;
    *lenp = done;
    buf = NULL;
err:
    free(buf);
    (void)conn->os->close(fd);
    return ret;
}

/*
 * write_all --
 *     write(2) until done; a short write is an error (ENOSPC if none).
 */
static int
write_all(layered_conn *conn, int fd, const char *buf, size_t len)
{
    ssize_t n;

    while (len > 0) {
        if ((n = conn->os->write(fd, buf, len)) < 0) {
            if (errno == EINTR)
                continue;
            return errno;
        }
        if (n == 0)
            return ENOSPC;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/*
 * apply_op --
 *     Apply one journal record to the in-memory table tree.
 */
static int
apply_op(layered_conn *conn, int op, const char *name, uint64_t arg)
{
    struct table *t = tbl_find(conn, name);
    int ret;

    switch (op) {
    case META_CREATE:
        if (t == NULL && (ret = tbl_insert(conn, name,
                                           LAYERED_TABLE_ACTIVE, &t)) != 0)
            return ret;
        t->state = LAYERED_TABLE_ACTIVE;
        t->dropping = false;
        t->drained_lsn = 0;
        return 0;
    case META_DROPPING:
        if (t != NULL)
            t->dropping = true;
        return 0;
    case META_DROP:
        if (t != NULL)
            tbl_free(conn, t);
        return 0;
    case META_STATE:
        if (t != NULL)
            t->state = (int)arg;
        return 0;
    }
    return EINVAL;
}

/*
 * load_snapshot --
 *     Parse layered.meta: header, lsn, gen, tables, end line with CRC.
 */
static int
load_snapshot(layered_conn *conn, bool *foundp)
{
    char *buf = NULL, *line, *next, *end, name[LAYERED_NAME_MAX + 2];
    size_t len;
    uint64_t lsn, drained, count = 0, want;
    uint32_t want_crc;
    int state, ret;

    *foundp = false;
    if ((ret = read_all(conn, conn->home_fd, META_FILE, &buf, &len)) != 0)
        return ret == ENOENT ? 0 : ret;
    *foundp = true;

    /* The end line: "end COUNT CRC\n", the CRC covering what precedes. */
    end = len >= 2 ? memrchr(buf, '\n', len - 1) : NULL;
    end = end == NULL ? buf : end + 1;
    if (sscanf(end, "end %" SCNu64 " %" SCNx32, &want, &want_crc) != 2 ||
        crc32c(0, buf, (size_t)(end - buf)) != want_crc)
        ERR_MSG(conn, LAYERED_CORRUPT,
                "%s/%s: damaged (checksum mismatch at offset %zu)",
                conn->home, META_FILE, (size_t)(end - buf));
    *end = '\0';
    for (line = buf; line != NULL && *line != '\0'; line = next) {
        if ((next = strchr(line, '\n')) != NULL)
            *next++ = '\0';
        if (strcmp(line, "layered-meta 1") == 0)
            continue;
        if (sscanf(line, "gen %" SCNu64, &conn->meta_gen) == 1)
            continue;
        if (sscanf(line, "lsn %" SCNu64, &lsn) == 1) {
            uint64_t cur = atomic_load(&conn->lsn);
            while (cur < lsn && !atomic_compare_exchange_weak(&conn->lsn,
                                                              &cur, lsn))
                ;
            continue;
        }
        if (sscanf(line, "table %201s %d %" SCNu64, name, &state,
                   &drained) == 3 &&
            tbl_name_valid(name, strlen(name)) && state >= 0 &&
            state <= LAYERED_TABLE_DROPPED) {
            struct table *t;
            ERR(apply_op(conn, META_CREATE, name, 0));
            t = tbl_find(conn, name);
            t->state = state;
            t->drained_lsn = drained;
            count++;
            continue;
        }
        ERR_MSG(conn, LAYERED_CORRUPT, "%s/%s: unreadable line at offset %zu",
                conn->home, META_FILE, (size_t)(line - buf));
    }
    if (count != want)
        ERR_MSG(conn, LAYERED_CORRUPT, "%s/%s: %" PRIu64
                " tables listed, %" PRIu64 " expected",
                conn->home, META_FILE, count, want);
err:
    free(buf);
    return ret;
}

/*
 * format_record --
 *     "CRC op name arg\n" into buf; returns its length.
 */
static size_t
format_record(char *buf, size_t cap, int op, const char *name, uint64_t arg)
{
    int body, n;

    body = snprintf(buf + 9, cap - 9, "%s %s %" PRIu64 "\n", op_names[op],
                    name, arg);
    n = snprintf(buf, 10, "%08" PRIx32,
                 crc32c(0, buf + 9, (size_t)body - 1));
    buf[n] = ' ';
    return (size_t)body + 9;
}

/*
 * load_journal --
 *     Replay layered.meta.log if it belongs to the snapshot's generation.
 */
static int
load_journal(layered_conn *conn)
{
    char *buf = NULL, *line, *next, op[16], name[LAYERED_NAME_MAX + 2];
    size_t len, good = 0;
    uint64_t arg;
    uint32_t crc;
    int fd = -1, i, ret;
    bool first = true;

    if ((ret = read_all(conn, conn->home_fd, META_LOG, &buf, &len)) != 0) {
        if (ret != ENOENT)
            return ret;
        ret = 0;
        goto open;
    }
    for (line = buf; line < buf + len; line = next) {
        char *nl = memchr(line, '\n', (size_t)(buf + len - line));
        bool last;

        next = nl == NULL ? buf + len : nl + 1;
        last = next == buf + len;
        if (nl == NULL || nl - line < 10 ||
            sscanf(line, "%8" SCNx32, &crc) != 1 ||
            crc32c(0, line + 9, (size_t)(nl - line - 9)) != crc ||
            (*nl = '\0',
             sscanf(line + 9, "%15s %201s %" SCNu64, op, name, &arg) != 3)) {
            if (last)
                break; /* a torn tail: cut below */
            ERR_MSG(conn, LAYERED_CORRUPT,
                    "%s/%s: damaged record at offset %zu", conn->home,
                    META_LOG, (size_t)(line - buf));
        }
        for (i = 0; i <= META_JOURNAL; i++)
            if (strcmp(op, op_names[i]) == 0)
                break;
        if (i > META_JOURNAL)
            ERR_MSG(conn, LAYERED_CORRUPT,
                    "%s/%s: unknown record at offset %zu", conn->home,
                    META_LOG, (size_t)(line - buf));
        good = (size_t)(next - buf);
        if (first) {
            first = false;
            /* Not this snapshot's journal: already folded in. */
            if (i != META_JOURNAL || arg != conn->meta_gen) {
                good = 0;
                break;
            }
            continue;
        }
        /* A state outside LAYERED_TABLE_* would reach the next snapshot,
         * which load_snapshot rejects: the home would not open again. */
        if (i == META_JOURNAL || !tbl_name_valid(name, strlen(name)) ||
            (i == META_STATE && arg > LAYERED_TABLE_DROPPED))
            ERR_MSG(conn, LAYERED_CORRUPT, "%s/%s: bad record at offset %zu",
                    conn->home, META_LOG, (size_t)(line - buf));
        ERR(apply_op(conn, i, name, arg));
        conn->meta_entries++;
    }

open:
    if ((fd = conn->os->openat(conn->home_fd, META_LOG,
                               O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
                               0644)) < 0)
        ERR(errno);
    if (good == 0) {
        char rec[64];
        size_t n = format_record(rec, sizeof(rec), META_JOURNAL, "-",
                                 conn->meta_gen);
        if (conn->os->ftruncate(fd, 0) != 0)
            ERR(errno);
        ERR(write_all(conn, fd, rec, n));
        if (conn->os->fdatasync(fd) != 0)
            ERR(errno);
        /* The journal may be new: its directory entry must be durable
         * before any record in it is acknowledged. */
        ERR(os_dir_fsync(conn->os, conn->home_fd));
        conn->meta_entries = 0;
    } else if (good < len) {
        layered_msg(conn, "%s/%s: cut a torn record at offset %zu",
                    conn->home, META_LOG, good);
        if (conn->os->ftruncate(fd, (off_t)good) != 0 ||
            conn->os->fdatasync(fd) != 0)
            ERR(errno);
    }
    if (conn->os->lseek(fd, 0, SEEK_END) < 0)
        ERR(errno);
    conn->meta_fd = fd;
    fd = -1;
err:
    if (fd >= 0)
        (void)conn->os->close(fd);
    free(buf);
    return ret;
}

/*
 * meta_load --
 *     Read the snapshot and journal; finish drops a crash interrupted.
 */
int
meta_load(layered_conn *conn)
{
    struct table *t, *tnext;
    bool found;
    int ret;

    conn->meta_gen = 0;
    ERR(load_snapshot(conn, &found));
    ERR(load_journal(conn));
    RB_FOREACH_SAFE(t, __layered_table_tree, &conn->tables, tnext)
    {
        if (!t->dropping && t->state != LAYERED_TABLE_DROPPED)
            continue;
        /* The drop was decided durably before it removed anything. */
        ERR(tbl_unlink_files(conn, t->name));
        ERR(meta_log(conn, META_DROP, t->name, 0));
        layered_msg(conn, "finished the interrupted drop of layered:%s",
                    t->name);
        tbl_free(conn, t);
    }
err:
    return ret;
}

/*
 * meta_log --
 *     Append one record to the journal and sync it.  On failure the
 *     journal is cut back (durably) so the record is not there; if that
 *     is impossible the connection panics.
 */
int
meta_log(layered_conn *conn, enum meta_op op, const char *name, uint64_t arg)
{
    char rec[LAYERED_NAME_MAX + 64];
    off_t end;
    size_t n;
    int ret = 0;

    if (conn_panicked(conn))
        return LAYERED_PANIC;
    /* Fold a long journal first, while the tree holds exactly what the
     * journal does.  A fold that fails before its rename changed nothing
     * (report it, keep appending here); one that fails after panicked. */
    if (conn->meta_entries > 1024 && conn->meta_entries > conn->ntables &&
        (ret = meta_snapshot(conn)) != 0) {
        if (conn_panicked(conn))
            return LAYERED_PANIC;
        layered_msg(conn, "metadata snapshot: %s", layered_strerror(ret));
    }
    n = format_record(rec, sizeof(rec), (int)op, name, arg);
    if ((end = conn->os->lseek(conn->meta_fd, 0, SEEK_END)) < 0)
        return errno;
    RET(fp_hit(&conn->fps, "meta.write"));
    if ((ret = write_all(conn, conn->meta_fd, rec, n)) == 0 &&
        (ret = fp_hit(&conn->fps, "meta.sync")) == 0 &&
        conn->os->fdatasync(conn->meta_fd) != 0)
        ret = errno;
    if (ret != 0) {
        /* The record may be partly written, or written but not known to be
         * durable (a failed fdatasync): cut it off and make the cut
         * durable, or the next open could see a change reported failed. */
        if (conn->os->ftruncate(conn->meta_fd, end) != 0 ||
            conn->os->fdatasync(conn->meta_fd) != 0)
            return layered_panic(conn, errno,
                                 "metadata journal %s/%s: a failed append "
                                 "(%s) could not be cut back",
                                 conn->home, META_LOG,
                                 layered_strerror(ret));
        return ret;
    }
    conn->meta_entries++;
    return 0;
}

/*
 * meta_snapshot --
 *     Write every table to a new snapshot, replace the old one atomically,
 *     then start a new journal.
 */
int
meta_snapshot(layered_conn *conn)
{
    struct table *t;
    char *buf = NULL, line[LAYERED_NAME_MAX + 80], rec[64];
    size_t len = 0, cap = 4096, n;
    uint64_t count = 0;
    int fd = -1, ret;

#define APPEND(s, l)                                                        \
    do {                                                                    \
        while (len + (l) + 1 > cap) {                                       \
            char *nb = realloc(buf, cap * 2);                               \
            if (nb == NULL)                                                 \
                ERR(ENOMEM);                                                \
            buf = nb;                                                       \
            cap *= 2;                                                       \
        }                                                                   \
        memcpy(buf + len, s, l);                                            \
        len += (l);                                                         \
    } while (0)

    if (conn_panicked(conn))
        return LAYERED_PANIC;
    if ((buf = malloc(cap)) == NULL)
        return ENOMEM;
    n = (size_t)snprintf(line, sizeof(line),
                         "layered-meta 1\ngen %" PRIu64 "\nlsn %" PRIu64 "\n",
                         conn->meta_gen + 1, atomic_load(&conn->lsn));
    APPEND(line, n);
    RB_FOREACH(t, __layered_table_tree, &conn->tables)
    {
        n = (size_t)snprintf(line, sizeof(line), "table %s %d %" PRIu64 "\n",
                             t->name, t->dropping ? LAYERED_TABLE_DROPPED
                                                  : t->state,
                             t->drained_lsn);
        APPEND(line, n);
        count++;
    }
    n = (size_t)snprintf(line, sizeof(line), "end %" PRIu64 " %08" PRIx32 "\n",
                         count, crc32c(0, buf, len));
    APPEND(line, n);
#undef APPEND

    if ((ret = fp_hit(&conn->fps, "meta.write")) != 0)
        goto err;
    if ((fd = conn->os->openat(conn->home_fd, META_TMP,
                               O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
                               0644)) < 0)
        ERR(errno);
    ERR(write_all(conn, fd, buf, len));
    if (conn->os->fsync(fd) != 0)
        ERR(errno);
    (void)conn->os->close(fd);
    fd = -1;
    if (conn->os->renameat(conn->home_fd, META_TMP, conn->home_fd,
                           META_FILE) != 0)
        ERR(errno);
    /* From here the new snapshot may be what the next open reads, and it
     * ignores the current journal: every failure panics (see FAILURES
     * above), so nothing more is appended to a journal that is void. */
    conn->meta_gen++;
    if ((ret = fp_hit(&conn->fps, "meta.snapshot_dir_sync")) != 0 ||
        (ret = os_dir_fsync(conn->os, conn->home_fd)) != 0) {
        ret = layered_panic(conn, ret, "metadata %s/%s: syncing the directory "
                            "after the snapshot rename: %s", conn->home,
                            META_FILE, layered_strerror(ret));
        goto err;
    }

    /* The snapshot holds everything: start the journal of the new
     * generation.  A crash before this leaves an old-generation journal,
     * which load_journal ignores. */
    n = format_record(rec, sizeof(rec), META_JOURNAL, "-", conn->meta_gen);
    if ((ret = fp_hit(&conn->fps, "meta.journal_reset")) == 0) {
        if (conn->os->ftruncate(conn->meta_fd, 0) != 0 ||
            conn->os->lseek(conn->meta_fd, 0, SEEK_SET) < 0)
            ret = errno;
        else if ((ret = write_all(conn, conn->meta_fd, rec, n)) == 0 &&
                 conn->os->fdatasync(conn->meta_fd) != 0)
            ret = errno;
    }
    if (ret != 0) {
        ret = layered_panic(conn, ret, "metadata journal %s/%s: starting "
                            "generation %" PRIu64 ": %s", conn->home,
                            META_LOG, conn->meta_gen, layered_strerror(ret));
        goto err;
    }
    conn->meta_entries = 0;
err:
    if (fd >= 0) {
        (void)conn->os->close(fd);
        (void)conn->os->unlinkat(conn->home_fd, META_TMP, 0);
    }
    free(buf);
    return ret;
}

void
meta_close(layered_conn *conn)
{
    if (conn->meta_fd >= 0)
        (void)conn->os->close(conn->meta_fd);
    conn->meta_fd = -1;
}
