/*
 * fuzz_run.c -- libFuzzer target for immutable sorted runs
 * (CLayered/fs_run.c).  The first byte chooses the mode:
 *
 *   0      the rest describes rows (u8 key length, key, u8 value length,
 *          value, ... until the bytes end); they are sorted, deduplicated,
 *          written as a run into a memory file and read back: every row by
 *          walk and by lookup must come back exactly;
 *   1      the rest is a run as it would lie on disk (seeds: real runs),
 *          whose checksums are first repaired where the footer and the
 *          index say they are -- so the fuzzer reaches the structure
 *          checks behind them;
 *   3      the rest is a manifest (CLayered/manifest.h): it decodes, or is
 *          LAYERED_CORRUPT; one that decodes encodes back to the very same
 *          bytes;
 *   other  the same as 1, checksums left as they are.
 *          The run is opened, walked, and every key the walk returned is
 *          looked up (with repaired checksums a damaged filter or index may
 *          make that lookup miss: only then is a miss allowed).  Any answer is fine but a crash, a hang, a leak or a read
 *          out of bounds; a walk must return keys in strictly ascending
 *          order, and a lookup of a key the walk returned must find it or
 *          report damage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fs_run.h"
#include "fuzz_common.h"
#include "manifest.h"
#include "layered.h"

#define FZ_MAX_ROWS 4096

struct frow {
    const uint8_t *key;
    size_t klen;
    const uint8_t *val;
    size_t vlen;
};

static int
frow_cmp(const void *a, const void *b)
{
    const struct frow *x = a, *y = b;
    size_t n = x->klen < y->klen ? x->klen : y->klen;
    int c = memcmp(x->key, y->key, n);

    return c != 0 ? c : (x->klen > y->klen) - (x->klen < y->klen);
}

static void
die(const char *what)
{
    fprintf(stderr, "fuzz_run: %s\n", what);
    abort();
}

static void
round_trip(const uint8_t *data, size_t size)
{
    static struct frow rows[FZ_MAX_ROWS];
    size_t n = 0, i, out;
    run_writer *w;
    run_info info;
    run_iter it;
    run_row row;
    run *r;
    void *map;
    int fd, ret;

    while (size > 0 && n < FZ_MAX_ROWS) {
        size_t klen = data[0];

        if (klen == 0 || size < 1 + klen + 1)
            break;
        rows[n].key = data + 1;
        rows[n].klen = klen;
        rows[n].vlen = data[1 + klen];
        if (size < 2 + klen + rows[n].vlen)
            break;
        rows[n].val = data + 2 + klen;
        data += 2 + klen + rows[n].vlen;
        size -= 2 + klen + rows[n].vlen;
        n++;
    }
    if (n == 0)
        return;
    qsort(rows, n, sizeof(rows[0]), frow_cmp);
    for (i = 0, out = 0; i < n; i++)
        if (out == 0 || frow_cmp(&rows[out - 1], &rows[i]) != 0)
            rows[out++] = rows[i];
    n = out;

    if ((fd = memfd_create("run", 0)) < 0)
        die("memfd_create");
    if (run_writer_open(NULL, fd, 0, 1, 1, &w) != 0)
        die("run_writer_open");
    for (i = 0; i < n; i++)
        if (run_writer_add(w, rows[i].key, rows[i].klen, rows[i].val,
                           rows[i].vlen, RUN_PUT, i) != 0)
            die("run_writer_add refused a sorted row");
    if (run_writer_finish(w, &info) != 0 || info.rows != n)
        die("run_writer_finish");
    run_writer_free(w);
    map = mmap(NULL, info.length, PROT_READ, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED)
        die("mmap");
    if (run_open(map, info.length, &r, NULL, NULL) != 0)
        die("a run just written does not open");
    memset(&it, 0, sizeof(it));
    ret = run_iter_seek(r, &it, NULL, 0, NULL);
    for (i = 0; i < n; i++) {
        if (ret != 0 || it.row.klen != rows[i].klen ||
            memcmp(it.row.key, rows[i].key, it.row.klen) != 0 ||
            it.row.vlen != rows[i].vlen ||
            memcmp(it.row.val, rows[i].val, it.row.vlen) != 0 ||
            it.row.lsn != i)
            die("the walk differs from the rows written");
        ret = run_iter_next(&it, NULL);
    }
    if (ret != LAYERED_NOTFOUND)
        die("the walk goes past the rows written");
    for (i = 0; i < n; i++)
        if (run_get(r, rows[i].key, rows[i].klen, &row, NULL) != 0 ||
            row.vlen != rows[i].vlen ||
            memcmp(row.val, rows[i].val, row.vlen) != 0)
            die("a lookup differs from the rows written");
    run_iter_free(&it);
    run_close(r);
    (void)munmap(map, info.length);
    (void)close(fd);
}

static uint64_t
get64(const unsigned char *p)
{
    uint64_t v = 0;

    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static uint32_t
get32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static void
put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static bool
varint(const unsigned char **pp, const unsigned char *end, uint64_t *vp)
{
    uint64_t v = 0;

    for (unsigned shift = 0; shift < 64 && *pp < end; shift += 7) {
        unsigned char b = *(*pp)++;

        v |= (uint64_t)(b & 0x7f) << shift;
        if ((b & 0x80) == 0) {
            *vp = v;
            return true;
        }
    }
    return false;
}

/* Repair the checksums of a run where its footer and index place them
 * (the format is in CLayered/fs_run.h). */
static void
repair(unsigned char *p, size_t size)
{
    const unsigned char *q, *end;
    uint64_t foot, ioff, ilen, foff, flen, i, n, v, boff, blen;

    if (size < RUN_FOOTER_BYTES)
        return;
    foot = size - RUN_FOOTER_BYTES;
    ioff = get64(p + foot + 64);
    ilen = get64(p + foot + 72);
    foff = get64(p + foot + 80);
    flen = get32(p + foot + 88);
    if (ioff <= foot && ilen >= 8 && ilen <= foot - ioff) {
        q = p + ioff + 4;
        end = p + ioff + ilen - 4;
        n = get32(p + ioff);
        for (i = 0; i < n && q < end; i++) {
            if (!varint(&q, end, &v) || v > (uint64_t)(end - q))
                break;
            q += v;
            if (!varint(&q, end, &boff) || !varint(&q, end, &blen))
                break;
            if (boff < ioff && blen >= 4 && blen <= ioff - boff)
                put32(p + boff + blen - 4,
                      fz_crc32c(0, p + boff, (size_t)blen - 4));
        }
        put32(p + ioff + ilen - 4, fz_crc32c(0, p + ioff, (size_t)ilen - 4));
    }
    if (foff <= foot && flen >= 4 && flen <= foot - foff)
        put32(p + foff + flen - 4, fz_crc32c(0, p + foff, (size_t)flen - 4));
    put32(p + foot + 92, fz_crc32c(0, p + foot, 92));
}

static void
damaged(const uint8_t *data, size_t size, bool fix)
{
    unsigned char prev[LAYERED_KEY_MAX];
    size_t prev_len = 0, steps = 0;
    unsigned char *copy;
    run_iter it;
    run_row row;
    run *r;
    int ret;

    /* An exact-size copy: ASan sees any read past the run's end. */
    if ((copy = malloc(size > 0 ? size : 1)) == NULL)
        return;
    memcpy(copy, data, size);
    if (fix)
        repair(copy, size);
    if (run_open(copy, size, &r, NULL, NULL) != 0) {
        free(copy);
        return;
    }
    memset(&it, 0, sizeof(it));
    for (ret = run_iter_seek(r, &it, NULL, 0, NULL); ret == 0;
         ret = run_iter_next(&it, NULL)) {
        if (steps > 0) {
            size_t m = prev_len < it.row.klen ? prev_len : it.row.klen;
            int c = memcmp(prev, it.row.key, m);

            if (c > 0 || (c == 0 && prev_len >= it.row.klen))
                die("a walk returned keys out of order");
        }
        memcpy(prev, it.row.key, it.row.klen);
        prev_len = it.row.klen;
        ret = run_get(r, prev, prev_len, &row, NULL);
        /* With checksums repaired over damaged bytes, a filter or an index
         * may disagree with the blocks undetectably: a lookup may then miss
         * a row the walk saw.  With the run's own checksums it may not. */
        if (ret != 0 && ret != LAYERED_CORRUPT &&
            !(fix && ret == LAYERED_NOTFOUND))
            die("a key the walk returned is not found");
        if (++steps > 1000000)
            die("the walk does not end");
    }
    if (ret != LAYERED_NOTFOUND && ret != LAYERED_CORRUPT && ret != ENOMEM)
        die("a walk returned an unexpected error");
    run_iter_free(&it);
    run_close(r);
    free(copy);
}

static void
manifest(const uint8_t *data, size_t size)
{
    unsigned char *copy, *again;
    struct mf *m;
    size_t len;
    int ret;

    if ((copy = malloc(size > 0 ? size : 1)) == NULL)
        return;
    memcpy(copy, data, size);
    /* The checksum repaired, so the fuzzer reaches the fields. */
    if (size >= 4)
        put32(copy + size - 4, fz_crc32c(0, copy, size - 4));
    ret = mf_decode(copy, size, &m, NULL, NULL);
    if (ret == 0) {
        if (mf_encode(m, &again, &len) != 0)
            die("a decoded manifest does not encode");
        if (len != size || memcmp(again, copy, size) != 0)
            die("a decoded manifest encodes to other bytes");
        free(again);
        mf_free(m);
    } else if (ret != LAYERED_CORRUPT && ret != ENOMEM)
        die("mf_decode returned an unexpected error");
    free(copy);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    if (data[0] == 0)
        round_trip(data + 1, size - 1);
    else if (data[0] == 3)
        manifest(data + 1, size - 1);
    else
        damaged(data + 1, size - 1, data[0] == 1);
    return 0;
}
