/*
 * fs_run.h -- immutable sorted runs (internal): the unit of the stable
 * store described in docs/storage.md.
 *
 * A run holds one table's rows in strictly ascending key order, written
 * once by a run_writer and never changed:
 *
 *     block* index filter footer
 *
 * A block (about RUN_BLOCK_TARGET bytes, larger only to hold one big row)
 * is a sequence of rows followed by its restart offsets and a CRC32C.  A
 * row is varint(shared) varint(unshared) varint(vlen) u8(type)
 * varint(lsn), the unshared key suffix and the value; every
 * RUN_RESTART_INTERVAL rows a row shares nothing (a restart point, where a
 * search can start).  The index holds, per block, the block's last key,
 * offset and length; the filter is a bloom filter over every key; each
 * has its CRC32C (the filter is blocked: each key's bits in one 64-byte
 * block).  The footer (RUN_FOOTER_BYTES, at the run's end) locates
 * both and carries the table's incarnation id, the writer's epoch, the
 * LSN range and the row count, under its own CRC32C.  All integers
 * little-endian; offsets are relative to the run's first byte, so a run
 * can sit anywhere in a file holding many runs.
 *
 * Concurrency: a run_writer belongs to one thread.  An opened run is
 * immutable: any number of threads may read it at once, with no lock; its
 * memory must stay mapped until run_close.
 */
#ifndef LAYERED_FS_RUN_H
#define LAYERED_FS_RUN_H

#include "namespace.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct os_ops;

#define RUN_BLOCK_TARGET (4u * 1024)
#define RUN_RESTART_INTERVAL 16
#define RUN_FOOTER_BYTES 96
#define RUN_BLOOM_BITS_PER_KEY 10

/* Row types. */
#define RUN_PUT 1 /* key = value */
#define RUN_DEL 2 /* the key is deleted: hides older runs' values */

/* What run_writer_finish and run_open report about a run. */
typedef struct run_info {
    uint64_t table_id;
    uint64_t epoch;
    uint64_t min_lsn, max_lsn;
    uint64_t rows;
    uint64_t blocks;
    uint64_t length; /* bytes of the whole run, footer included */
} run_info;

typedef struct run_writer run_writer;

/*
 * run_writer_open --
 *     Start a run written to fd at offset off, through os (NULL: the
 *     system's).  Bytes are written in large sequential writes as blocks
 *     fill; nothing is synced (the caller syncs the file once for every
 *     run it holds).
 *     @return 0, ENOMEM.
 */
int run_writer_open(const struct os_ops *os, int fd, uint64_t off,
                    uint64_t table_id, uint64_t epoch, run_writer **wp);
/*
 * run_writer_add --
 *     Add a row.  Keys must be strictly ascending, 1 to LAYERED_KEY_MAX
 *     bytes; type RUN_PUT or RUN_DEL (a delete has no value).
 *     @return 0, EINVAL (order, sizes or type: the row is not added and
 *     the writer stays usable), ENOMEM, or the write's errno (the writer
 *     is then failed: every later call returns that error).
 */
int run_writer_add(run_writer *w, const void *key, size_t klen,
                   const void *val, size_t vlen, int type, uint64_t lsn);
/*
 * run_writer_finish --
 *     Write the last block, the index, the filter and the footer.  With
 *     no rows, EINVAL (a run is never empty).
 *     @return 0 and *info, or an error; either way the writer is spent
 *     (free it).
 */
int run_writer_finish(run_writer *w, run_info *info);
/* Free a writer (finished, failed or abandoned).  NULL is allowed. */
void run_writer_free(run_writer *w);

typedef struct run run;

/*
 * run_open --
 *     Open the run whose last byte is base[len - 1] (the run may be
 *     shorter than len when base points at the start of a file of runs:
 *     give the run's exact extent).  Checks the footer, the index and the
 *     filter, never the blocks (each block is checked when first read).
 *     @return 0, ENOMEM, LAYERED_CORRUPT (*why says what, and the offset
 *     relative to base is in *offp when they are not NULL).
 */
int run_open(const unsigned char *base, size_t len, run **rp,
             const char **why, uint64_t *offp);
void run_get_info(const run *r, run_info *info);
void run_close(run *r);

/* A row read from a run; key and value point into the run's memory
 * (the value) or into the iterator's key buffer (the key). */
typedef struct run_row {
    const unsigned char *key;
    size_t klen;
    const unsigned char *val;
    size_t vlen;
    int type;
    uint64_t lsn;
} run_row;

/* Might the run hold the key?  The filter only: false if it certainly
 * does not, true for every key it holds and about 1% of the others. */
bool run_may_hold(const run *r, const void *key, size_t klen);

/*
 * run_get --
 *     Look a key up: the filter, the index, one block.
 *     @return 0 (*row filled: its key is the caller's key), LAYERED_NOTFOUND,
 *     LAYERED_CORRUPT (a damaged block: *offp its offset), ENOMEM.
 */
int run_get(run *r, const void *key, size_t klen, run_row *row,
            uint64_t *offp);

/* An ordered walk over a run.  Declared here so callers can embed it:
 * zero it before the first run_iter_seek. */
typedef struct run_iter {
    run *r;
    uint64_t block;         /* the current block's number */
    const unsigned char *p; /* the next row in the block */
    const unsigned char *end;
    unsigned char *key;     /* the current row's full key */
    size_t klen, kcap;
    bool key_lent;          /* key is the caller's buffer, not ours */
    run_row row;
    bool valid;
} run_iter;

/*
 * run_iter_seek --
 *     Position on the first row with key >= key (key NULL: the first
 *     row).
 *     @return 0 (it->row), LAYERED_NOTFOUND (past the end), LAYERED_CORRUPT,
 *     ENOMEM.
 */
int run_iter_seek(run *r, run_iter *it, const void *key, size_t klen,
                  uint64_t *offp);
/* The next row: 0, LAYERED_NOTFOUND at the end, LAYERED_CORRUPT, ENOMEM. */
int run_iter_next(run_iter *it, uint64_t *offp);
/* Free the iterator's key buffer. */
void run_iter_free(run_iter *it);

/*
 * Run files: many runs (of one table or many) back to back in one file,
 * then a trailer listing each run's table id and extent:
 *
 *     run* entry* trailer
 *     entry   := u64 table id, u64 offset, u64 length        (24 bytes)
 *     trailer := magic "LYRDRUNF", u32 version, u32 entry count,
 *                u32 crc32c of the entries and the trailer's first 16
 *                bytes, u32 reserved                           (24 bytes)
 *
 * A run file is created exclusively, written with large sequential writes,
 * made durable with one fdatasync and one fsync of its directory, and never
 * changed after.  A file without a whole, checksummed trailer is not a run
 * file (LAYERED_CORRUPT): a crash before run_file_finish returns leaves
 * either no file or such a file, never a part of the runs read as whole.
 */
#define RUN_FILE_TRAILER_BYTES 24
#define RUN_FILE_ENTRY_BYTES 24

typedef struct run_file_writer run_file_writer;

/*
 * run_file_create --
 *     Create `name` in the directory dirfd exclusively (EEXIST if it
 *     exists) for writing runs.
 *     @return 0, EEXIST, ENOMEM, or the open's errno.
 */
int run_file_create(const struct os_ops *os, int dirfd, const char *name,
                    run_file_writer **fwp);
/*
 * run_file_add_run --
 *     Start the next run of the file, for table_id; add its rows with
 *     run_writer_add, then end it with run_file_end_run.  One run at a
 *     time.
 *     @return 0, EINVAL (a run is already open, or the file failed), ENOMEM.
 */
int run_file_add_run(run_file_writer *fw, uint64_t table_id, uint64_t epoch,
                     run_writer **wp);
/* Finish the open run (run_writer_finish) and list it.  The run writer is
 * freed either way.  @return 0 (and *info), or its error. */
int run_file_end_run(run_file_writer *fw, run_writer *w, run_info *info);
/*
 * run_file_finish --
 *     Write the trailer, fdatasync the file, close it and fsync its
 *     directory: on 0 the file and its name are durable.  On an error the
 *     file is removed (best effort: a file left by a failure never has a
 *     valid trailer unless it was whole).  The writer is freed either way.
 *     @return 0, EINVAL (no run, or a run still open), or an errno.
 */
int run_file_finish(run_file_writer *fw);
/* Give up: close and remove the file, free the writer.  NULL is allowed. */
void run_file_abort(run_file_writer *fw);

typedef struct run_file run_file;

/*
 * run_file_open --
 *     Open a run file read-only: map it, check its trailer and open every
 *     run it lists (run_open).
 *     @return 0, ENOENT, LAYERED_CORRUPT (*why and *offp say what and
 *     where, when not NULL), ENOMEM, or the open's or mmap's errno.
 */
int run_file_open(const struct os_ops *os, int dirfd, const char *name,
                  run_file **rfp, const char **why, uint64_t *offp);
/* The number of runs, and run i (its table id in *table_idp). */
size_t run_file_count(const run_file *rf);
run *run_file_run(const run_file *rf, size_t i, uint64_t *table_idp);
void run_file_close(run_file *rf);

#endif /* LAYERED_FS_RUN_H */
