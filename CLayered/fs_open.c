/*
 * fs_open.c -- opening a file store: loading and recovery, the header
 * check, open, close, free.
 */

#include "fs_int.h"

/*
 * fs_load --
 *     Read every record of the file, check it, and build the index; cut a
 *     torn tail.  The file is mapped read-only for the scan.
 */
int
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
            ERR(ENOMEM);
        iov.iov_base = (void *)map;
        iov.iov_len = (size_t)size;
        ERR(fs_preadv_full(f, &iov, 1, 0));
    } else {
        if ((map = f->env.os->mmap(NULL, (size_t)size, PROT_READ,
                                   MAP_SHARED, f->fd, 0)) == MAP_FAILED) {
            map = NULL;
            ERR(errno);
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
        if (!fs_rec_hdr_decode(p, &h)) {
            if (fs_all_zero(p + REC_HDR_SIZE, size - off - REC_HDR_SIZE)) {
                why = "bad record header followed only by zero bytes";
                break;
            }
            ERR(fs_corrupt(f, off, "bad record header"));
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
            if (fs_all_zero(p + rlen, size - off - rlen)) {
                why = "bad record followed only by zero bytes";
                break;
            }
            ERR(fs_corrupt(f, off, "body checksum mismatch"));
        }

        if (h.lsn > f->max_lsn)
            f->max_lsn = h.lsn;
        if (h.type == REC_CLEAR) {
            fs_idx_reset(f);
            continue;
        }
        n = fs_idx_find(&f->tree, p + REC_HDR_SIZE, h.klen, &parent, &dir);
        if (h.type == REC_DEL) {
            if (n != NULL)
                fs_idx_remove(f, n);
            continue;
        }
        if (n == NULL) {
            if ((n = fs_node_alloc(&f->arena, p + REC_HDR_SIZE, h.klen)) ==
                NULL)
                ERR(ENOMEM);
            fs_idx_link(&f->tree, n, parent, dir);
            ++f->entries;
            fs_idx_set(f, n, true, off, h.vlen, h.type == REC_TOMB);
        } else
            fs_idx_set(f, n, false, off, h.vlen, h.type == REC_TOMB);
    }

    if (off < size) {
        fs_message(f,
                   "file-store: %s: cut torn tail at offset %llu "
                   "(%llu bytes): %s",
                   f->path, (unsigned long long)off,
                   (unsigned long long)(size - off), why);
        f->wgen++;
        if (f->env.os->ftruncate(f->fd, (off_t)off) != 0)
            ERR(errno);
        ERR(fs_datasync(f));
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
    fs_file_hdr_encode(want);
    if (memcmp(hdr, want, sizeof(hdr)) == 0)
        return (0);
    for (off = FILE_HDR_SIZE; off < size; off += (uint64_t)n) {
        if ((n = f->env.os->pread(f->fd, zero, sizeof(zero), (off_t)off)) <
            0)
            return (errno);
        if (n == 0 || !fs_all_zero(zero, (uint64_t)n))
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
    fs_arena_destroy(&f->arena);
    fs_group_destroy(f);
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
    fs_arena_init(&f->arena);
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
    if ((ret = fs_group_init(f)) != 0) {
        (void)pthread_rwlock_destroy(&f->lock);
        free(f);
        return (ret);
    }
    if ((f->path = strdup(path)) == NULL)
        ERR(ENOMEM);
    /* The write buffer (LAYERED_SYNC_NONE) is allocated by the first
     * buffered write: most opened files are only read or drained. */

    for (;;) {
        if ((f->fd = f->env.os->open(path, O_RDWR | O_CLOEXEC, 0)) >= 0) {
            if ((flags & FS_CREATE) != 0 && (flags & FS_EXCL) != 0)
                ERR(EEXIST);
            break;
        }
        if (errno != ENOENT || (flags & FS_CREATE) == 0)
            ERR(errno);
        if ((f->fd = f->env.os->open(path, O_RDWR | O_CREAT | O_EXCL |
                                             O_CLOEXEC, 0644)) >= 0) {
            created = true;
            break;
        }
        if (errno != EEXIST)
            ERR(errno);
    }
    if (f->env.os->fstat(f->fd, &st) != 0)
        ERR(errno);
    empty = (uint64_t)st.st_size < FILE_HDR_SIZE;
    if (!empty)
        ERR(fs_check_header(f, (uint64_t)st.st_size, &empty));
    if (empty) {
        if (st.st_size > 0)
            fs_message(f,
                       "file-store: %s: torn file header (file of %lld "
                       "bytes, no records), rewritten as an empty file",
                       path, (long long)st.st_size);
        ERR(fs_write_header(f, f->fd));
        if (created)
            ERR(os_parent_fsync(f->env.os, path));
        f->end = f->disk_end = FILE_HDR_SIZE;
    } else
        ERR(fs_load(f, (uint64_t)st.st_size));
    fs_lsn_raise(f->env.lsn, f->max_lsn);
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
