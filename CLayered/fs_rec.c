/*
 * fs_rec.c -- the record codec of the file store: little-endian integers,
 * record and file headers, record sizes, the checksum check of a record.
 * Knows nothing of the index.
 */

#include "fs_int.h"

/*
 * fs_rec_hdr_encode --
 *     Fill a 24-byte record header; the header checksum covers the rest.
 */
void
fs_rec_hdr_encode(unsigned char *p, uint32_t type, uint64_t lsn, size_t klen,
                  size_t vlen, uint32_t bcrc)
{
    le32_put(p + 4, bcrc);
    le64_put(p + 8, lsn);
    le32_put(p + 16, (uint32_t)klen | (type << 24));
    le32_put(p + 20, (uint32_t)vlen);
    le32_put(p, crc32c(0, p + 4, REC_HDR_SIZE - 4));
}

/*
 * fs_rec_hdr_decode --
 *     Check and decode a record header.  False if the checksum fails or a
 *     field is out of range (so a header that passes is safe to size by).
 */
bool
fs_rec_hdr_decode(const unsigned char *p, struct rec_hdr *h)
{
    uint32_t kt;

    if (le32_get(p) != crc32c(0, p + 4, REC_HDR_SIZE - 4))
        return (false);
    h->bcrc = le32_get(p + 4);
    h->lsn = le64_get(p + 8);
    kt = le32_get(p + 16);
    h->klen = kt & REC_KLEN_MASK;
    h->type = kt >> 24;
    h->vlen = le32_get(p + 20);
    if (h->type == REC_CLEAR)
        return (h->klen == 0 && h->vlen == 0);
    if (h->klen == 0 || h->klen > LAYERED_KEY_MAX ||
        h->vlen > LAYERED_VALUE_MAX)
        return (false);
    if (h->type == REC_PUT)
        return (true);
    return ((h->type == REC_DEL || h->type == REC_TOMB) && h->vlen == 0);
}

/*
 * fs_file_hdr_encode --
 *     The 32-byte file header.
 */
void
fs_file_hdr_encode(unsigned char *p)
{
    memset(p, 0, FILE_HDR_SIZE);
    memcpy(p, FILE_MAGIC, 8);
    le32_put(p + 8, FILE_VERSION);
    le32_put(p + 12, FILE_HDR_SIZE);
    le32_put(p + 28, crc32c(0, p, 28));
}

/*
 * fs_all_zero --
 *     True if len bytes at p are all zero (a preallocated or never-written
 *     tail).
 */
bool
fs_all_zero(const unsigned char *p, uint64_t len)
{
    if (len == 0)
        return (true);
    return (p[0] == 0 && memcmp(p, p + 1, len - 1) == 0);
}

/*
 * fs_rec_check --
 *     Check a mapped record against the node pointing at it: header
 *     checksum, type, key, body checksum.  NULL if good, else why not.
 */
const char *
fs_rec_check(const unsigned char *p, const struct fs_node *n,
             struct rec_hdr *h)
{
    if (!fs_rec_hdr_decode(p, h))
        return ("bad record header");
    if (h->klen != NODE_KLEN(n) || h->vlen != n->vlen ||
        h->type == REC_DEL || (h->type == REC_TOMB) != NODE_IS_TOMB(n) ||
        memcmp(p + REC_HDR_SIZE, n->key, h->klen) != 0)
        return ("record does not hold the indexed key");
    if (crc32c(0, p + REC_HDR_SIZE, h->klen + h->vlen) != h->bcrc)
        return ("body checksum mismatch");
    return (NULL);
}

/*
 * The record format for readers that do not open the file (filestore.h):
 * the same decoding as fs_load's, so verify.c never disagrees with an open
 * about what a record is.
 */
_Static_assert(FS_RECORD_HEADER_BYTES == REC_HDR_SIZE, "record header size");
_Static_assert(FS_RECORD_PUT == REC_PUT && FS_RECORD_DEL == REC_DEL &&
                   FS_RECORD_TOMB == REC_TOMB && FS_RECORD_CLEAR == REC_CLEAR,
               "record types");

bool
fs_record_decode(const unsigned char *p, fs_record *r)
{
    struct rec_hdr h;

    if (!fs_rec_hdr_decode(p, &h))
        return (false);
    r->lsn = h.lsn;
    r->type = h.type;
    r->klen = h.klen;
    r->vlen = h.vlen;
    r->bcrc = h.bcrc;
    return (true);
}

const char *
fs_header_check(const unsigned char *p)
{
    unsigned char want[FILE_HDR_SIZE];

    fs_file_hdr_encode(want);
    if (memcmp(p, want, sizeof(want)) == 0)
        return (NULL);
    if (memcmp(p, FILE_MAGIC, 8) != 0)
        return ("not a Layered file (bad magic)");
    if (le32_get(p + 28) != crc32c(0, p, 28))
        return ("file header checksum mismatch");
    return ("unsupported file format version");
}
