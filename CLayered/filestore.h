/*
 * filestore.h -- the backing file of one constituent (internal).
 *
 * A file is an append-only log of checksummed records plus an in-memory
 * ordered index of key -> record offset.  Values stay on disk.  The file
 * owns its lock: every function here takes it as it needs, so callers hold
 * no file-store lock across calls.
 *
 * Concurrency contract: every function may be called from any thread, and
 * concurrently with every other function on the same file, except
 * fs_close (no other call may be running or follow).  Readers take the
 * file's lock shared, writers exclusive; no function blocks on anything but
 * that lock and file I/O.
 */
#ifndef LAYERED_FILESTORE_H
#define LAYERED_FILESTORE_H

#include "namespace.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct fs_file fs_file;
struct os_ops;

/* What a file needs from its connection. */
typedef struct fs_env {
    /* The connection-wide LSN counter: a write takes the next value with
     * atomic_fetch_add(lsn, 1) + 1 while it holds the file's lock or, for a
     * group write, the file's queue lock as it queues its record, so LSNs
     * in one file increase in file order. */
    _Atomic uint64_t *lsn;
    /* Counts fs_open calls, so each open gets its own instance number
     * (fs_sync_token).  May be NULL: every open is instance 0. */
    _Atomic uint64_t *opens;
    /* LAYERED_SYNC_* */
    int sync;
    /* Report a message (corruption details, repairs).  May be NULL. */
    void (*message)(void *arg, const char *msg);
    void *message_arg;
    /* Failpoint hook: returns 0 to continue or an error to inject.  Called
     * with "fs.write" before every write(2) and "fs.sync" before every
     * fdatasync.  May be NULL. */
    int (*failpoint)(void *arg, const char *name);
    void *failpoint_arg;
    /* The file-system calls (os.h).  May be NULL: the system's
     * (os_default). */
    const struct os_ops *os;
} fs_env;

/* Bytes of an empty file: its header.  A file no larger holds no rows. */
#define FS_HEADER_BYTES 32

/* fs_open flags */
#define FS_CREATE 0x1  /* create the file if missing (with its header) */
#define FS_EXCL 0x2    /* with FS_CREATE: EEXIST if the file exists */

/* fs_copy / fs_clear flag: skip the final fdatasync; the caller makes the
 * file durable itself (one syncfs for many files) and then reports it
 * with fs_mark_synced. */
#define FS_NOSYNC 0x1

/*
 * fs_open --
 *     Open (or create) a file, cut a torn tail, build the index.  Raises
 *     *env->lsn to the highest LSN in the file.  The env is copied.
 *     Errors: ENOENT (missing, no FS_CREATE), EEXIST, EACCES, EROFS,
 *     ENOSPC, EIO, ENOMEM, LAYERED_CORRUPT (damage before the tail; the
 *     message names the file and offset).
 */
int fs_open(const char *path, unsigned flags, const fs_env *env,
            fs_file **fp);

/* fs_close --
 *     Flush buffered records, cut a file with no entries back to its
 *     header, fdatasync, close, free the index.  Frees f even on error; an
 *     error means the file's last writes may not be durable. */
int fs_close(fs_file *f);

/* fs_put --
 *     Append a PUT record and point the index at it.  On error nothing is
 *     appended (a partial write is truncated away) and the index is
 *     unchanged.  *lsnp (may be NULL) receives the record's LSN.  Any
 *     thread; at LAYERED_SYNC_WRITE and LAYERED_SYNC_FSYNC concurrent puts
 *     share one write (group commit, filestore.c): a put may wait for the
 *     group written before its own, and for fs_del, fs_sync, fs_compact,
 *     fs_clear or an fs_copy into the file. */
int fs_put(fs_file *f, const void *key, size_t klen, const void *val,
           size_t vlen, uint64_t *lsnp);

/* fs_del --
 *     Append a DEL record.  With keep_tombstone (ingest files) the index
 *     keeps a tombstone entry for the key (it hides the stable value); else
 *     (stable files) the key leaves the index.  Returns LAYERED_NOTFOUND
 *     only when !keep_tombstone and the key is absent (nothing written).
 *     The two kinds are distinct record types on disk, so fs_open rebuilds
 *     either without being told which kind of file it opens; compaction
 *     keeps tombstones and drops stable deletes. */
int fs_del(fs_file *f, const void *key, size_t klen, bool keep_tombstone,
           uint64_t *lsnp);

/*
 * fs_key_cmp --
 *     The key order of every file and cursor: memcmp, the shorter key
 *     first on a tie.  Any thread.
 */
static inline int
fs_key_cmp(const void *a, size_t alen, const void *b, size_t blen)
{
    int c;

    c = memcmp(a, b, alen < blen ? alen : blen);
    if (c != 0)
        return (c);
    return (alen < blen ? -1 : alen > blen ? 1 : 0);
}

/* A position in a file's index, filled by fs_seek.  Holds a copy of the
 * key; the value is read with fs_read_value. */
typedef struct fs_pos {
    void *key;          /* malloc'ed copy, grown as needed; free with
                           fs_pos_free */
    size_t key_cap;
    size_t klen;
    uint64_t off;       /* record offset */
    uint32_t vlen;
    bool tombstone;
    bool valid;
    /* private: lets fs_seek(FS_NEXT/FS_PREV) step without a search while
     * the index has not lost nodes since */
    void *node;
    uint64_t gen;
} fs_pos;

enum fs_seek_mode {
    FS_EQ,   /* exactly key */
    FS_GE,   /* smallest >= key */
    FS_GT,   /* smallest > key */
    FS_LE,   /* largest <= key */
    FS_LT,   /* largest < key */
    FS_FIRST, /* smallest key (key ignored) */
    FS_LAST,  /* largest key (key ignored) */
    FS_NEXT,  /* the entry after pos (pos must be valid) */
    FS_PREV   /* the entry before pos */
};

/* fs_seek --
 *     Fill pos with the entry found (tombstones included: the caller
 *     decides).  Returns 0 or LAYERED_NOTFOUND (pos->valid = false), ENOMEM,
 *     EINVAL (FS_NEXT/FS_PREV with an invalid pos).  For FS_NEXT/FS_PREV,
 *     key/klen are ignored and pos's own key is the reference (correct even
 *     if that entry was removed meanwhile).  Initialise a pos with {0}. */
int fs_seek(fs_file *f, const void *key, size_t klen, enum fs_seek_mode mode,
            fs_pos *pos);

/* fs_read_value --
 *     Read the value at pos into *bufp (grown with realloc to *capp as
 *     needed), verifying the record's checksum and that it still holds
 *     pos's key.  The value is the first pos->vlen bytes of *bufp (the
 *     buffer is sized vlen + klen: the key is read back behind it for the
 *     check); a tombstone reads as an empty value.  Returns 0,
 *     LAYERED_NOTFOUND (the key was overwritten or removed since the seek
 *     and the record moved by compaction or clear: seek again),
 *     LAYERED_CORRUPT, EIO, ENOMEM, EINVAL (pos not valid). */
int fs_read_value(fs_file *f, const fs_pos *pos, void **bufp, size_t *capp);

void fs_pos_free(fs_pos *pos);

/* fs_sync --
 *     Write buffered records and fdatasync.  A failed fdatasync is sticky:
 *     later syncs of the file return the same error (the kernel may have
 *     dropped the unwritten pages) until fs_clear or fs_compact replaces
 *     the contents.  An error injected by the failpoint is not sticky. */
int fs_sync(fs_file *f);

/* fs_compact --
 *     If the dead bytes exceed the live bytes (and the file is over 64 KiB)
 *     or force is set, rewrite live records in key order into a temporary
 *     file, fsync, rename over, fsync the directory, rebuild the index.
 *     *compactedp (may be NULL) says whether it did.  A failure leaves the
 *     old file in place and valid. */
int fs_compact(fs_file *f, bool force, bool *compactedp);

/* fs_clear --
 *     Remove every record: truncate to the header, empty the index, sync. */
int fs_clear(fs_file *f, unsigned flags);

/* Drain copy statistics */
typedef struct fs_copy_stats {
    uint64_t rows;   /* records written into dst */
    uint64_t bytes;  /* key + value bytes written */
    uint64_t skipped; /* src records dst already held at the same or a newer LSN */
    uint64_t max_lsn; /* highest src LSN seen */
} fs_copy_stats;

/*
 * fs_copy --
 *     The drain copy: every entry of src (key order), PUTs and tombstones,
 *     into dst, keeping each record's LSN.  A src record is skipped when dst
 *     already holds that key at the same or a newer LSN (so a re-drain after
 *     a crash copies nothing twice and never overwrites newer data); a src
 *     tombstone removes the key from dst.  Writes in large sequential
 *     chunks with bounded buffers (never more than 64 MiB whatever the table
 *     size), no allocation per row, one fdatasync of dst at the end.  Takes
 *     src's lock shared and dst's exclusive per batch, so readers proceed
 *     between batches.  hook (may be NULL) is called once, after the first
 *     batch is written (also when that batch wrote nothing), with no lock
 *     held; an error from it stops the copy and is returned.  A copy that
 *     fails part way leaves the batches already written in dst (indexed,
 *     not synced); running it again completes it.  Errors: EINVAL (src ==
 *     dst), ENOMEM, ENOSPC/EIO/EFBIG (from write or fdatasync),
 *     LAYERED_CORRUPT (a src record fails its check), the hook's error.
 */
int fs_copy(fs_file *src, fs_file *dst, unsigned flags,
            int (*hook)(void *arg), void *hook_arg, fs_copy_stats *stats);

/* fs_sync_gen / fs_mark_synced --
 *     For a caller that syncs many files at once with syncfs(2): take a
 *     token (which open of the file, which write generation) before the
 *     sync, hand it back after the sync succeeded, so fs_sync and fs_close
 *     know there is nothing left to sync.  Writes made after fs_sync_gen
 *     stay unsynced; a token from an earlier open of the same path (the
 *     handle was closed and reopened meanwhile) is ignored. */
typedef struct fs_sync_token {
    uint64_t instance;
    uint64_t gen;
} fs_sync_token;
void fs_sync_gen(fs_file *f, fs_sync_token *token);
void fs_mark_synced(fs_file *f, const fs_sync_token *token);

/* fs_batch_apply --
 *     Write the ops of one batch, across any number of files, as a unit.
 *     Takes every file's lock exclusive (in address order, so two batches
 *     never deadlock), checks and prepares everything that can fail
 *     (sizes, memory, buffered records of LAYERED_SYNC_NONE files), gives
 *     each op its LSN -- consecutive values drawn from the connection's
 *     counter -- and calls commit, still holding the locks: commit makes
 *     the batch durable elsewhere (the batch journal) and is its commit
 *     point.  Then each file gets all its ops in one write, without a
 *     sync (the commit's record is what makes them durable), and the index
 *     follows; the locks go only once every file is written, so a reader
 *     that sees one row of the batch sees all of them.  Holding the locks
 *     from the LSN draw to the end keeps each file's LSNs in file order,
 *     which is what makes replay exact (FS_BATCH_REPLAY).
 *     With FS_BATCH_REPLAY the ops carry their LSNs (from the journal) and
 *     commit is NULL: an op is skipped when its file already holds a record
 *     with that LSN or a later one (the file is append-only since the
 *     record was committed, so that record is there) -- the per-key LSN
 *     rule, applied to the file's whole prefix.
 *     Returns 0; before the commit point (*committedp false, nothing
 *     written): EINVAL (a bad size), ENOMEM, ENOSPC/EIO (flushing buffered
 *     records), commit's error; after it (*committedp true): ENOSPC/EIO
 *     from a file's write -- the batch is committed but not all applied,
 *     which the caller must treat as fatal (the next open replays it).
 *     commit runs with the files' locks held: it must not call into the
 *     file store for them.  Any thread. */
#define FS_BATCH_PUT 0  /* key = value */
#define FS_BATCH_TOMB 1 /* an ingest removal: a tombstone */
#define FS_BATCH_DEL 2  /* a stable removal: the key leaves the index */
#define FS_BATCH_REPLAY 0x1

typedef struct fs_batch_op {
    fs_file *f;
    const void *key;
    size_t klen;
    const void *val; /* FS_BATCH_PUT; may be NULL when vlen is 0 */
    size_t vlen;
    int kind;        /* FS_BATCH_* */
    uint64_t lsn;    /* set by fs_batch_apply; given with FS_BATCH_REPLAY */
} fs_batch_op;

int fs_batch_apply(fs_batch_op *ops, size_t n, unsigned flags,
                   int (*commit)(void *arg, const fs_batch_op *ops,
                                 size_t n),
                   void *arg, bool *committedp);

/* Sizes and counts (a consistent snapshot under the lock). */
typedef struct fs_info {
    uint64_t file_bytes;  /* bytes in the file including buffered */
    uint64_t live_bytes;  /* bytes of records the index points at */
    uint64_t entries;     /* index entries including tombstones */
    uint64_t max_lsn;     /* highest LSN in the file */
    uint64_t index_bytes; /* memory held by the index */
} fs_info;

void fs_get_info(fs_file *f, fs_info *info);

/* True if the file has no index entries. */
bool fs_empty(fs_file *f);

/*
 * The record format, for code that reads the files without opening them
 * (verify.c: layered_verify, layered_salvage_scan).  A record is
 * FS_RECORD_HEADER_BYTES of header followed by its key and value; the
 * layout is written at the top of filestore.c.  What counts as a torn tail
 * rather than damage is decided by fs_load's rules, which verify.c applies
 * in the same order: change them together.
 */
#define FS_RECORD_HEADER_BYTES 24
#define FS_RECORD_PUT 1   /* key = value */
#define FS_RECORD_DEL 2   /* a stable delete: the key leaves the index */
#define FS_RECORD_TOMB 3  /* an ingest tombstone: hides the stable value */
#define FS_RECORD_CLEAR 4 /* every earlier record of the file is dead */

/* A decoded record header. */
typedef struct fs_record {
    uint64_t lsn;
    uint32_t type; /* FS_RECORD_* */
    uint32_t klen;
    uint32_t vlen;
    uint32_t bcrc; /* crc32c of key || value */
} fs_record;

/* fs_record_decode --
 *     Check and decode the FS_RECORD_HEADER_BYTES bytes at p.  False if
 *     the header checksum fails or a field is out of range, so a header
 *     that passes is safe to size by: its record is FS_RECORD_HEADER_BYTES
 *     + klen + vlen bytes.  Any thread; touches nothing but p and r. */
bool fs_record_decode(const unsigned char *p, fs_record *r);

/* fs_header_check --
 *     NULL if the FS_HEADER_BYTES bytes at p are the file header this
 *     version writes, else what is wrong with them, in fs_open's words.
 *     Any thread; touches nothing but p. */
const char *fs_header_check(const unsigned char *p);

/* CRC32C (Castagnoli), hardware-accelerated where the CPU has it.  Chains
 * like zlib's crc32: start with 0, pass the previous result to continue. */
uint32_t crc32c(uint32_t crc, const void *buf, size_t len);
/* The same checksum from the portable table code whatever the CPU (tests). */
uint32_t crc32c_portable(uint32_t crc, const void *buf, size_t len);

#endif /* LAYERED_FILESTORE_H */
