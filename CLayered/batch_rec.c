/*
 * batch_rec.c -- the batch journal's record framing (batch_rec.h).
 */
#include <string.h>

#include "batch_rec.h"
#include "filestore.h"
#include "layered.h"

/* Only zero bytes from p for len bytes (a torn tail's signature). */
static bool
all_zero(const unsigned char *p, uint64_t len)
{
    uint64_t i;

    for (i = 0; i < len; i++)
        if (p[i] != 0)
            return false;
    return true;
}

int
brec_check(const unsigned char *buf, uint64_t size, uint64_t off,
           struct brec *r, const char **why)
{
    const unsigned char *p = buf + off;
    uint64_t blen;

    if (size - off < BREC_HDR_BYTES) {
        *why = "incomplete record header";
        return BREC_TORN;
    }
    if (crc32c(0, p + 4, BREC_HDR_BYTES - 4) != brec_get32(p)) {
        if (all_zero(p + BREC_HDR_BYTES, size - off - BREC_HDR_BYTES)) {
            *why = "bad record header followed only by zero bytes";
            return BREC_TORN;
        }
        *why = "bad record header";
        return BREC_BAD;
    }
    blen = brec_get32(p + 20);
    if (BREC_HDR_BYTES + blen > size - off) {
        *why = "record runs past end of file";
        return BREC_TORN;
    }
    if (crc32c(0, p + BREC_HDR_BYTES, (size_t)blen) != brec_get32(p + 4)) {
        if (off + BREC_HDR_BYTES + blen == size) {
            *why = "last record fails its body checksum";
            return BREC_TORN;
        }
        if (all_zero(p + BREC_HDR_BYTES + blen,
                     size - off - BREC_HDR_BYTES - blen)) {
            *why = "bad record followed only by zero bytes";
            return BREC_TORN;
        }
        *why = "body checksum mismatch";
        return BREC_BAD;
    }
    if (brec_get32(p + 16) == 0 || brec_get64(p + 8) == 0) {
        *why = "a record with no ops";
        return BREC_BAD;
    }
    r->first_lsn = brec_get64(p + 8);
    r->nops = brec_get32(p + 16);
    r->body = p + BREC_HDR_BYTES;
    r->blen = blen;
    r->len = BREC_HDR_BYTES + blen;
    return 0;
}

bool
brec_op_next(const struct brec *r, uint64_t *posp, struct brec_op *op)
{
    const unsigned char *p = r->body + *posp, *end = r->body + r->blen;

    if (*posp > r->blen || (uint64_t)(end - p) < BREC_OP_BYTES)
        return false;
    op->kind = p[0];
    op->cons = p[1];
    op->nlen = brec_get16(p + 2);
    op->klen = brec_get32(p + 4);
    op->vlen = brec_get32(p + 8);
    p += BREC_OP_BYTES;
    if (op->kind > FS_BATCH_DEL || op->cons > 1 || op->nlen == 0 ||
        op->nlen > LAYERED_NAME_MAX || op->klen == 0 ||
        op->klen > LAYERED_KEY_MAX || op->vlen > LAYERED_VALUE_MAX ||
        (op->kind != FS_BATCH_PUT && op->vlen > 0) ||
        (uint64_t)(end - p) < (uint64_t)op->nlen + op->klen + op->vlen)
        return false;
    op->name = p;
    op->key = p + op->nlen;
    op->val = op->kind == FS_BATCH_PUT ? op->key + op->klen : NULL;
    *posp = (uint64_t)(op->key + op->klen + op->vlen - r->body);
    return true;
}
