/*
 * manifest.h -- the stable store's table of contents and its pointer
 * records (internal; docs/storage.md 2.3, docs/disaggregation.md 2).
 *
 * A manifest lists every table of the stable store with its runs (run
 * file, extent, LSN range, rows) and its drained LSN.  It is an immutable
 * file, MANIFEST-EPOCH-SEQ, created exclusively and made durable before
 * anything names it.
 *
 * The state of the store is the latest of the pointer records
 * CURRENT-0, CURRENT-1, ...  Each names an epoch, a holder, a lease expiry
 * and a manifest.  A record is written under a temporary name, synced, and
 * moved into place with a rename that fails if the name exists: one writer
 * wins each number, and a record is never seen half-written.  A writer
 * that lost (EEXIST) reads the latest again; one that finds a newer epoch
 * was deposed.  models/lease.pml checks the protocol.
 *
 * Encodings (little-endian), each ending with a CRC32C of what precedes:
 *   manifest: "LYRDMANI" u32 version u32 0 u64 epoch u64 seq u32 tables,
 *             per table: u16 name length, name, u64 id, u32 state,
 *             u64 drained_lsn, u32 runs, per run: u16 file name length,
 *             name, u64 offset, u64 length, u64 min_lsn, u64 max_lsn,
 *             u64 rows
 *   record:   "LYRDCURR" u32 version u32 0 u64 n u64 epoch u64 holder
 *             u64 expiry_ns u16 manifest name length, name
 *
 * Threads: these functions share nothing; a caller serialises what it
 * does to one store.  Every file-system call goes through the os table.
 */
#ifndef LAYERED_MANIFEST_H
#define LAYERED_MANIFEST_H

#include "namespace.h"

#include <stddef.h>
#include <stdint.h>

struct os_ops;

#define MF_NAME_MAX 80 /* run files, manifests */

struct mf_run {
    char file[MF_NAME_MAX + 1];
    uint64_t off, len, min_lsn, max_lsn, rows;
};

struct mf_table {
    char *name;
    uint64_t id;
    uint32_t state;
    uint64_t drained_lsn;
    size_t nruns;
    struct mf_run *runs;
};

struct mf {
    uint64_t epoch, seq;
    size_t ntables;
    struct mf_table *tables;
};

struct mf_ptr {
    uint64_t n;
    uint64_t epoch;
    uint64_t holder;
    uint64_t expiry_ns;
    char manifest[MF_NAME_MAX + 1];
};

/* Encode into a malloc'ed buffer.  0, EINVAL (a name too long), ENOMEM. */
int mf_encode(const struct mf *m, unsigned char **bufp, size_t *lenp);
/* Decode and check.  0, ENOMEM, LAYERED_CORRUPT (*why, *offp). */
int mf_decode(const unsigned char *p, size_t len, struct mf **mp,
              const char **why, uint64_t *offp);
void mf_free(struct mf *m);

/* The manifest's file name for its epoch and sequence. */
void mf_name(char *buf, size_t len, uint64_t epoch, uint64_t seq);

/*
 * mf_write --
 *     Create the manifest's file (mf_name) in dirfd exclusively, write it,
 *     fdatasync it and fsync the directory.  On an error the file is
 *     removed.  0, EEXIST, ENOMEM, or an errno.
 */
int mf_write(const struct os_ops *os, int dirfd, const struct mf *m);
/* Read and check a manifest file. 0, ENOENT, LAYERED_CORRUPT, errno. */
int mf_read(const struct os_ops *os, int dirfd, const char *name,
            struct mf **mp, const char **why, uint64_t *offp);

/*
 * mf_ptr_create --
 *     Create pointer record p->n with its content, or fail with EEXIST if
 *     another writer made it first (nothing of this call is left then).
 *     On 0 the record and its name are durable.  An error after the
 *     rename (the directory's fsync) leaves the outcome unknown: read the
 *     latest record again.
 */
int mf_ptr_create(const struct os_ops *os, int dirfd, const struct mf_ptr *p);
/* Read record n.  0, ENOENT, LAYERED_CORRUPT, or an errno. */
int mf_ptr_read(const struct os_ops *os, int dirfd, uint64_t n,
                struct mf_ptr *p);
/*
 * mf_ptr_latest --
 *     The latest record, looking up from record `from` (which must exist;
 *     0 for a new store).  0, ENOENT (no record `from`),
 *     LAYERED_CORRUPT, or an errno.
 */
int mf_ptr_latest(const struct os_ops *os, int dirfd, uint64_t from,
                  struct mf_ptr *p);

/*
 * mf_publish --
 *     Publish m (whose epoch must be latest->epoch, and whose seq must be
 *     new) as the store's state: write its file, then create record
 *     latest->n + 1 naming it, with the same epoch and holder, and the
 *     given expiry.  On 0, *out is the new latest.  EEXIST: another record
 *     was created first -- the caller reads the latest; a newer epoch means
 *     it was deposed.  The manifest file of a lost publish is removed.
 */
int mf_publish(const struct os_ops *os, int dirfd,
               const struct mf_ptr *latest, const struct mf *m,
               uint64_t expiry_ns, struct mf_ptr *out);

#endif /* LAYERED_MANIFEST_H */
