/*
 * fs_compact.c -- compaction and clear of a file store.
 */

#include "fs_int.h"

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
    fs_arena_init(&na);
    RB_INIT(&nt);
    memset(&w, 0, sizeof(w));

    fs_gate_close(f);
    (void)pthread_rwlock_wrlock(&f->lock);
    dead = f->end - FILE_HDR_SIZE - f->live_bytes;
    if (f->entries == 0 && f->end > FILE_HDR_SIZE) {
        /* Nothing live (a drained ingest): cut the file back to its
         * header, no rewrite needed.  Positions from before moved. */
        ERR(fs_flush(f));
        f->wgen++;
        if (f->env.os->ftruncate(f->fd, FILE_HDR_SIZE) != 0)
            ERR(errno);
        f->end = f->disk_end = FILE_HDR_SIZE;
        f->tail_dirty = false;
        fs_idx_reset(f);
        ERR(fs_datasync(f));
        if (compactedp != NULL)
            *compactedp = true;
        goto err;
    }
    if (!force && (f->end <= COMPACT_MIN_BYTES || dead <= f->live_bytes))
        goto err;
    ERR(fs_flush(f));

    if (asprintf(&tmp, "%s.compact", f->path) < 0) {
        tmp = NULL;
        ERR(ENOMEM);
    }
    if ((tfd = f->env.os->open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC,
                               0644)) < 0)
        ERR(errno);
    map_len = f->disk_end;
    if ((map = f->env.os->mmap(NULL, (size_t)map_len, PROT_READ, MAP_SHARED,
                               f->fd, 0)) == MAP_FAILED) {
        map = NULL;
        ERR(errno);
    }
    if ((w.buf = malloc(COMPACT_BUF_SIZE)) == NULL)
        ERR(ENOMEM);
    w.f = f;
    w.fd = tfd;
    w.cap = COMPACT_BUF_SIZE;
    fs_file_hdr_encode(fhdr);
    ERR(fs_seq_add(&w, fhdr, sizeof(fhdr)));

    /* Live records in key order, copied byte for byte (LSN and checksums
     * unchanged) after checking them; the new index is built alongside,
     * always appending at its right edge. */
    RB_FOREACH(n, fs_tree, &f->tree) {
        rlen = node_rec_size(n);
        if (n->off + rlen > map_len)
            ERR(fs_corrupt(f, n->off, "record offset past end of file"));
        if ((why = fs_rec_check(map + n->off, n, &h)) != NULL)
            ERR(fs_corrupt(f, n->off, why));
        if ((nn = fs_node_alloc(&na, n->key, NODE_KLEN(n))) == NULL)
            ERR(ENOMEM);
        nn->kf = n->kf;
        nn->vlen = n->vlen;
        /* w.off + w.used is the logical end whether or not fs_seq_add
         * flushes first. */
        nn->off = w.off + w.used;
        ERR(fs_seq_add(&w, map + n->off, (size_t)rlen));
        fs_idx_link(&nt, nn, last, 1);
        last = nn;
    }
    ERR(fs_seq_flush(&w));
    ERR(fs_failpoint(f, "fs.sync"));
    if (f->env.os->fdatasync(tfd) != 0)
        ERR(errno);
    if (f->env.os->rename(tmp, f->path) != 0)
        ERR(errno);
    renamed = true;

    /* The new file is in place: switch to it whatever happens next. */
    (void)f->env.os->close(f->fd);
    f->fd = tfd;
    tfd = -1;
    fs_arena_destroy(&f->arena);
    f->arena = na;
    fs_arena_init(&na);
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
    fs_gate_open(f);
    fs_arena_destroy(&na);
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

    fs_gate_close(f);
    (void)pthread_rwlock_wrlock(&f->lock);
    /* Append a clear marker rather than truncate: an append is cheap where
     * freeing blocks is not (a truncate may discard them synchronously),
     * and the step-up waits for this.  The dead bytes before the marker
     * are reclaimed by a later checkpoint's compaction. */
    ERR(fs_flush(f));
    lsn = atomic_fetch_add(f->env.lsn, 1) + 1;
    fs_rec_hdr_encode(hdr, REC_CLEAR, lsn, 0, 0, crc32c(0, "", 0));
    iov.iov_base = hdr;
    iov.iov_len = sizeof(hdr);
    ERR(fs_write_at_end(f, &iov, 1));
    f->end = f->disk_end = f->disk_end + sizeof(hdr);
    f->sync_error = 0;
    fs_idx_reset(f);
    if (!(flags & FS_NOSYNC))
        ret = fs_datasync(f);

err:
    (void)pthread_rwlock_unlock(&f->lock);
    fs_gate_open(f);
    return (ret);
}
