/*
 * batch_rec.h -- the framing of the batch journal's records (internal),
 * shared by the journal itself (batch.c) and by layered_verify (verify.c).
 *
 * A record: u32 hcrc (crc32c of the next 20 bytes), u32 bcrc (of the
 * body), u64 first_lsn, u32 nops, u32 body_len, then the body.  Each op in
 * the body: u8 kind (FS_BATCH_*), u8 constituent (0 ingest, 1 stable), u16
 * name length, u32 key length, u32 value length, then the name, key and
 * value.  All little-endian.
 *
 * A torn tail -- what a crash in the middle of an append leaves: a record
 * running past the end, a bad header followed only by zero bytes, a last
 * record whose body checksum fails -- is cut; anything else that fails is
 * damage.  The same rules as a constituent file's (fs_open.c).
 *
 * Any thread; no lock: these only read the bytes given.
 */
#ifndef LAYERED_BATCH_REC_H
#define LAYERED_BATCH_REC_H

#include "namespace.h"

#include <stdbool.h>
#include <stdint.h>

/* Little-endian reads of the journal's fields. */
static inline uint32_t
brec_get16(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8;
}

static inline uint32_t
brec_get32(const unsigned char *p)
{
    return brec_get16(p) | brec_get16(p + 2) << 16;
}

static inline uint64_t
brec_get64(const unsigned char *p)
{
    return (uint64_t)brec_get32(p) | (uint64_t)brec_get32(p + 4) << 32;
}

#define BREC_JOURNAL "layered.batch"
#define BREC_HDR_BYTES 24
#define BREC_OP_BYTES 12

/* brec_check's results besides 0. */
#define BREC_TORN 1 /* a torn tail starts here */
#define BREC_BAD 2  /* damage here */

struct brec {
    uint64_t first_lsn;
    uint32_t nops;
    const unsigned char *body;
    uint64_t blen;
    uint64_t len; /* header and body */
};

struct brec_op {
    uint32_t kind, cons;
    const unsigned char *name, *key, *val;
    uint32_t nlen, klen, vlen;
};

/* The record at off of buf[0..size): 0 (r filled), BREC_TORN or BREC_BAD
 * (*why says what). */
int brec_check(const unsigned char *buf, uint64_t size, uint64_t off,
               struct brec *r, const char **why);
/* The next op of r's body at *posp (start at 0): true and *op, or false
 * if the bytes there do not parse as an op.  The name is not checked
 * beyond its length. */
bool brec_op_next(const struct brec *r, uint64_t *posp, struct brec_op *op);

#endif /* LAYERED_BATCH_REC_H */
