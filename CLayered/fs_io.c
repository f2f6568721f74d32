/*
 * fs_io.c -- the I/O layer of the file store: full writes and reads, the
 * write buffer, appends, truncating back, sync, and its failpoints.
 * Knows nothing of the index.
 */

#include "fs_int.h"

/*
 * fs_message --
 *     Format a message and hand it to the env's message hook.
 */
void __attribute__((format(printf, 2, 3)))
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
int
fs_corrupt(const fs_file *f, uint64_t off, const char *why)
{
    fs_message(f, "file-store: %s: corrupt record at offset %llu: %s",
               f->path, (unsigned long long)off, why);
    return (LAYERED_CORRUPT);
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
 * fs_preadv_full --
 *     Read every byte of an iovec array at off.  A read that reaches the
 *     end of the file first is LAYERED_CORRUPT (the index points past it).
 */
int
fs_preadv_full(const fs_file *f, struct iovec *iov, int iovcnt, uint64_t off)
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
int
fs_write_at_end(fs_file *f, struct iovec *iov, int iovcnt)
{
    int ret = 0;

    if (f->tail_dirty) {
        if (f->env.os->ftruncate(f->fd, (off_t)f->disk_end) != 0)
            return (errno);
        f->tail_dirty = false;
    }
    RET(fs_failpoint(f, "fs.write"));
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
int
fs_datasync(fs_file *f)
{

    uint64_t wgen = f->wgen;

    if (f->sync_error != 0)
        return (f->sync_error);
    if (f->synced_wgen == wgen)
        return (0); /* nothing written since the last sync */
    RET(fs_failpoint(f, "fs.sync"));
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
int
fs_flush(fs_file *f)
{
    struct iovec iov;

    if (f->end == f->disk_end)
        return (0);
    iov.iov_base = f->wbuf;
    iov.iov_len = (size_t)(f->end - f->disk_end);
    RET(fs_write_at_end(f, &iov, 1));
    f->disk_end = f->end;
    return (0);
}

/*
 * fs_append --
 *     Append one record (header, key, value) by the file's sync level and
 *     return its offset.  Nothing is appended on error.
 */
int
fs_append(fs_file *f, const unsigned char *hdr, const void *key,
          size_t klen, const void *val, size_t vlen, uint64_t *offp)
{
    struct iovec iov[3];
    uint64_t len = rec_size(klen, vlen), start;
    unsigned char *p;
    int ret = 0;

    if (f->env.sync == LAYERED_SYNC_NONE && len <= WBUF_SIZE) {
        if (f->wbuf == NULL && (f->wbuf = malloc(WBUF_SIZE)) == NULL)
            return (ENOMEM);
        if (f->end - f->disk_end + len > WBUF_SIZE)
            RET(fs_flush(f));
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
    RET(fs_flush(f));
    start = f->disk_end;
    iov[0].iov_base = (void *)hdr;
    iov[0].iov_len = REC_HDR_SIZE;
    iov[1].iov_base = (void *)key;
    iov[1].iov_len = klen;
    iov[2].iov_base = (void *)val;
    iov[2].iov_len = vlen;
    RET(fs_write_at_end(f, iov, 3));
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
 * fs_write_group --
 *     The I/O of a group write (fs_group.c): write the records at start
 *     (the file's disk_end) and, under LAYERED_SYNC_FSYNC, fdatasync them;
 *     one fdatasync covers the whole group.  Called by the group's leader
 *     without the file's lock, so it changes only what the write role owns
 *     (the file's bytes past disk_end, tail_dirty, sync_error; see the
 *     locking paragraph in filestore.c) and counts its changes through fd
 *     in *wchangesp, which the leader adds to wgen under the lock.  On
 *     failure the file is cut back to start: no byte of the group stays,
 *     and if even the cut fails, tail_dirty makes the next write retry it
 *     before writing at start again.
 */
int
fs_write_group(fs_file *f, struct iovec *iov, int iovcnt, uint64_t start,
               unsigned *wchangesp)
{
    int ret = 0;

    *wchangesp = 0;
    if (f->tail_dirty) {
        ++*wchangesp;
        if (f->env.os->ftruncate(f->fd, (off_t)start) != 0)
            return (errno);
        f->tail_dirty = false;
    }
    /* A real fdatasync failure is sticky (fs_datasync): no write at this
     * level can be acknowledged until compaction or clear replaces the
     * contents. */
    if (f->env.sync == LAYERED_SYNC_FSYNC && f->sync_error != 0)
        return (f->sync_error);
    RET(fs_failpoint(f, "fs.write"));
    ++*wchangesp;
    if ((ret = pwritev_full(f->env.os, f->fd, iov, iovcnt, start)) != 0)
        goto cut;
    if (f->env.sync == LAYERED_SYNC_FSYNC) {
        if ((ret = fs_failpoint(f, "fs.sync")) != 0)
            goto cut;
        if (f->env.os->fdatasync(f->fd) != 0) {
            ret = f->sync_error = errno;
            fs_message(f, "file-store: %s: fdatasync failed: %s", f->path,
                       strerror(ret));
            goto cut;
        }
    }
    return (0);

cut:
    ++*wchangesp;
    f->tail_dirty = f->env.os->ftruncate(f->fd, (off_t)start) != 0;
    return (ret);
}

/*
 * fs_write_header --
 *     Start an empty file: truncate, write the file header, sync.
 */
int
fs_write_header(fs_file *f, int fd)
{
    unsigned char hdr[FILE_HDR_SIZE];
    struct iovec iov;

    if (f->env.os->ftruncate(fd, 0) != 0)
        return (errno);
    fs_file_hdr_encode(hdr);
    iov.iov_base = hdr;
    iov.iov_len = sizeof(hdr);
    RET(fs_failpoint(f, "fs.write"));
    RET(pwritev_full(f->env.os, fd, &iov, 1, 0));
    RET(fs_failpoint(f, "fs.sync"));
    if (f->env.os->fdatasync(fd) != 0)
        return (errno);
    return (0);
}

/*
 * fs_seq_flush --
 *     Write the buffered bytes.
 */
int
fs_seq_flush(struct seq_writer *w)
{
    struct iovec iov;

    if (w->used == 0)
        return (0);
    RET(fs_failpoint(w->f, "fs.write"));
    iov.iov_base = w->buf;
    iov.iov_len = w->used;
    RET(pwritev_full(w->f->env.os, w->fd, &iov, 1, w->off));
    w->off += w->used;
    w->used = 0;
    return (0);
}

/*
 * fs_seq_add --
 *     Append bytes; a piece larger than the buffer is written directly.
 */
int
fs_seq_add(struct seq_writer *w, const void *p, size_t len)
{
    struct iovec iov;
    int ret = 0;

    if (len > w->cap - w->used)
        RET(fs_seq_flush(w));
    if (len > w->cap) {
        RET(fs_failpoint(w->f, "fs.write"));
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
