/*
 * test_run.c -- immutable sorted runs (CLayered/fs_run.c): rows written in
 * key order come back exactly, by point lookup and by ordered walk; keys a
 * run does not hold are not found; two runs share a file; bad input is
 * refused without harm; a failing write fails the writer; and every
 * single-byte flip anywhere in a run is caught as LAYERED_CORRUPT by the
 * open or by a full walk -- never a wrong row, never a read out of bounds
 * (the test runs under ASan too).
 */
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "fs_run.h"
#include "os.h"
#include "testutil.h"

struct row {
    unsigned char key[320];
    size_t klen;
    unsigned char *val;
    size_t vlen;
    int type;
    uint64_t lsn;
};

static int
row_cmp(const void *a, const void *b)
{
    const struct row *x = a, *y = b;
    size_t n = x->klen < y->klen ? x->klen : y->klen;
    int c = memcmp(x->key, y->key, n);

    return c != 0 ? c : (x->klen > y->klen) - (x->klen < y->klen);
}

/* n random rows, sorted, unique keys; a few long keys and, with big, one
 * value larger than the writer's output buffer. */
static struct row *
make_rows(uint64_t *seed, size_t n, bool big)
{
    struct row *rows = calloc(n, sizeof(*rows));
    size_t i, j, out;

    CHECK(rows != NULL);
    for (i = 0; i < n; i++) {
        struct row *r = &rows[i];
        uint64_t x = tu_rand(seed);

        /* Shared prefixes are common: keys of a few families. */
        r->klen = x % 97 == 0 ? 300 : 1 + (size_t)(x % 24);
        for (j = 0; j < r->klen; j++)
            r->key[j] = j < 3 ? (unsigned char)('a' + (x >> 8) % 3)
                              : (unsigned char)tu_rand(seed);
        r->type = tu_rand(seed) % 7 == 0 ? RUN_DEL : RUN_PUT;
        r->vlen = r->type == RUN_DEL ? 0 : (size_t)(tu_rand(seed) % 200);
        r->lsn = tu_rand(seed) % 1000000;
    }
    if (big && n > 10) {
        rows[n / 2].type = RUN_PUT;
        rows[n / 2].vlen = 3u * 1024 * 1024;
    }
    qsort(rows, n, sizeof(*rows), row_cmp);
    for (i = 0, out = 0; i < n; i++)
        if (out == 0 || row_cmp(&rows[out - 1], &rows[i]) != 0)
            rows[out++] = rows[i];
    for (i = 0; i < out; i++) {
        CHECK((rows[i].val = malloc(rows[i].vlen + 1)) != NULL);
        for (j = 0; j < rows[i].vlen; j++)
            rows[i].val[j] = (unsigned char)(i * 31 + j);
    }
    for (; out < n; out++)
        rows[out].klen = 0; /* duplicates removed: marked unused */
    return rows;
}

static size_t
live_rows(const struct row *rows, size_t n)
{
    size_t i = 0;

    while (i < n && rows[i].klen > 0)
        i++;
    return i;
}

static void
free_rows(struct row *rows, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(rows[i].val);
    free(rows);
}

static void
write_run(int fd, uint64_t off, const struct row *rows, size_t n,
          uint64_t table_id, run_info *info)
{
    run_writer *w;

    CHECK_OK(run_writer_open(NULL, fd, off, table_id, 7, &w));
    for (size_t i = 0; i < n; i++)
        CHECK_OK(run_writer_add(w, rows[i].key, rows[i].klen, rows[i].val,
                                rows[i].vlen, rows[i].type, rows[i].lsn));
    CHECK_OK(run_writer_finish(w, info));
    run_writer_free(w);
}

/* Every row by lookup and by walk; absent keys; seeks between keys. */
static void
check_run(run *r, const struct row *rows, size_t n, uint64_t *seed)
{
    run_iter it;
    run_row got;
    size_t i;
    int ret;

    for (i = 0; i < n; i++) {
        CHECK_OK(run_get(r, rows[i].key, rows[i].klen, &got, NULL));
        CHECK(got.type == rows[i].type && got.lsn == rows[i].lsn);
        CHECK(got.vlen == rows[i].vlen &&
              memcmp(got.val, rows[i].val, got.vlen) == 0);
    }
    memset(&it, 0, sizeof(it));
    ret = run_iter_seek(r, &it, NULL, 0, NULL);
    for (i = 0; i < n; i++) {
        CHECK_OK(ret);
        CHECK(it.row.klen == rows[i].klen &&
              memcmp(it.row.key, rows[i].key, it.row.klen) == 0);
        CHECK(it.row.vlen == rows[i].vlen &&
              memcmp(it.row.val, rows[i].val, it.row.vlen) == 0);
        CHECK(it.row.lsn == rows[i].lsn && it.row.type == rows[i].type);
        ret = run_iter_next(&it, NULL);
    }
    CHECK_RET(LAYERED_NOTFOUND, ret);

    /* Keys between rows: not found by lookup, and a seek lands on the
     * next row. */
    for (i = 0; i < 2000; i++) {
        unsigned char k[40];
        size_t klen = 1 + (size_t)(tu_rand(seed) % 30), lo = 0, hi = n, j;
        struct row probe;

        for (j = 0; j < klen; j++)
            k[j] = j < 3 ? (unsigned char)('a' + tu_rand(seed) % 4)
                         : (unsigned char)tu_rand(seed);
        memcpy(probe.key, k, klen);
        probe.klen = klen;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;

            if (row_cmp(&rows[mid], &probe) < 0)
                lo = mid + 1;
            else
                hi = mid;
        }
        ret = run_get(r, k, klen, &got, NULL);
        if (lo < n && row_cmp(&rows[lo], &probe) == 0)
            CHECK_OK(ret);
        else
            CHECK_RET(LAYERED_NOTFOUND, ret);
        ret = run_iter_seek(r, &it, k, klen, NULL);
        if (lo == n)
            CHECK_RET(LAYERED_NOTFOUND, ret);
        else {
            CHECK_OK(ret);
            CHECK(it.row.klen == rows[lo].klen &&
                  memcmp(it.row.key, rows[lo].key, it.row.klen) == 0);
        }
    }
    run_iter_free(&it);
}

static void
round_trip(uint64_t *seed)
{
    char *dir = tu_mkdtemp("run"), path[4096];
    size_t n1 = 20000, n2 = 300, l1, l2;
    struct row *a = make_rows(seed, n1, true), *b = make_rows(seed, n2, false);
    run_info i1, i2, got;
    unsigned char *map;
    struct stat st;
    run *r1, *r2;
    int fd;

    printf("  round trip: two runs in one file, lookups, walks, seeks\n");
    l1 = live_rows(a, n1);
    l2 = live_rows(b, n2);
    (void)snprintf(path, sizeof(path), "%s/runs", dir);
    CHECK((fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644)) >= 0);
    CHECK(pwrite(fd, "prefix", 6, 0) == 6); /* runs need not start at 0 */
    write_run(fd, 100, a, l1, 41, &i1);
    write_run(fd, 100 + i1.length, b, l2, 42, &i2);
    CHECK(i1.rows == l1 && i2.rows == l2 && i1.blocks > 10);
    CHECK(i1.table_id == 41 && i1.epoch == 7);
    CHECK(fstat(fd, &st) == 0 &&
          (uint64_t)st.st_size == 100 + i1.length + i2.length);
    map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    CHECK(map != MAP_FAILED);
    CHECK_OK(run_open(map + 100, i1.length, &r1, NULL, NULL));
    CHECK_OK(run_open(map + 100 + i1.length, i2.length, &r2, NULL, NULL));
    run_get_info(r1, &got);
    CHECK(got.rows == l1 && got.blocks == i1.blocks && got.table_id == 41 &&
          got.min_lsn == i1.min_lsn && got.max_lsn == i1.max_lsn);
    check_run(r1, a, l1, seed);
    check_run(r2, b, l2, seed);
    /* Filter: every key of a run may be held (no false negatives); keys
     * of the other run are rejected but for about 1% (10 bits per key). */
    {
        size_t i, fp = 0, absent = 0;
        run_row row;

        for (i = 0; i < l1; i++)
            CHECK(run_may_hold(r1, a[i].key, a[i].klen));
        for (i = 0; i < l2; i++) {
            /* Short keys of b may be keys of a too. */
            if (run_get(r1, b[i].key, b[i].klen, &row, NULL) == 0)
                continue;
            absent++;
            if (run_may_hold(r1, b[i].key, b[i].klen))
                fp++;
        }
        printf("    filter: %zu of %zu absent keys pass (%.1f%%)\n", fp,
               absent, 100.0 * (double)fp / (double)absent);
        CHECK(absent > l2 / 2 && fp <= absent / 20);
    }
    run_close(r1);
    run_close(r2);
    CHECK(munmap(map, (size_t)st.st_size) == 0);
    CHECK(close(fd) == 0);
    free_rows(a, n1);
    free_rows(b, n2);
    tu_rmdir(dir);
    free(dir);
}

static void
bad_input(void)
{
    char *dir = tu_mkdtemp("run"), path[4096];
    unsigned char junk[200];
    run_writer *w;
    run_info info;
    run *r;
    int fd;

    printf("  bad input: order, sizes, types, empty runs, garbage\n");
    (void)snprintf(path, sizeof(path), "%s/runs", dir);
    CHECK((fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644)) >= 0);
    CHECK_OK(run_writer_open(NULL, fd, 0, 1, 1, &w));
    CHECK_RET(EINVAL, run_writer_finish(w, &info)); /* no rows */
    run_writer_free(w);

    CHECK_OK(run_writer_open(NULL, fd, 0, 1, 1, &w));
    CHECK_OK(run_writer_add(w, "b", 1, "1", 1, RUN_PUT, 5));
    CHECK_RET(EINVAL, run_writer_add(w, "b", 1, "2", 1, RUN_PUT, 6));
    CHECK_RET(EINVAL, run_writer_add(w, "a", 1, "2", 1, RUN_PUT, 6));
    CHECK_RET(EINVAL, run_writer_add(w, "c", 1, "2", 1, 9, 6));
    CHECK_RET(EINVAL, run_writer_add(w, "c", 1, "2", 1, RUN_DEL, 6));
    CHECK_RET(EINVAL, run_writer_add(w, "c", 0, "2", 1, RUN_PUT, 6));
    CHECK_RET(EINVAL, run_writer_add(w, NULL, 1, "2", 1, RUN_PUT, 6));
    CHECK_RET(EINVAL, run_writer_add(w, "c", 1, NULL, 1, RUN_PUT, 6));
    /* The refused rows changed nothing: the writer goes on. */
    CHECK_OK(run_writer_add(w, "c", 1, NULL, 0, RUN_DEL, 7));
    CHECK_OK(run_writer_finish(w, &info));
    CHECK_RET(EINVAL, run_writer_finish(w, &info));
    CHECK_RET(EINVAL, run_writer_add(w, "d", 1, "", 0, RUN_PUT, 8));
    run_writer_free(w);
    run_writer_free(NULL);
    CHECK(info.rows == 2 && info.min_lsn == 5 && info.max_lsn == 7);

    memset(junk, 0, sizeof(junk));
    CHECK_RET(LAYERED_CORRUPT, run_open(junk, 10, &r, NULL, NULL));
    CHECK_RET(LAYERED_CORRUPT, run_open(junk, sizeof(junk), &r, NULL, NULL));
    CHECK(r == NULL);
    CHECK(close(fd) == 0);
    tu_rmdir(dir);
    free(dir);
}

/* Open and walk a (possibly damaged) run: 0 if it opened and every row
 * came back as in rows, LAYERED_CORRUPT if damage was reported. */
static int
open_and_walk(const unsigned char *p, size_t len, const struct row *rows,
              size_t n)
{
    const char *why = NULL;
    uint64_t off = UINT64_MAX;
    run_iter it;
    run_row got;
    size_t i;
    run *r;
    int ret;

    if ((ret = run_open(p, len, &r, &why, &off)) != 0) {
        CHECK(ret == LAYERED_CORRUPT && why != NULL && off < len);
        return ret;
    }
    memset(&it, 0, sizeof(it));
    ret = run_iter_seek(r, &it, NULL, 0, &off);
    for (i = 0; i < n && ret == 0; i++) {
        CHECK(it.row.klen == rows[i].klen &&
              memcmp(it.row.key, rows[i].key, it.row.klen) == 0 &&
              it.row.vlen == rows[i].vlen &&
              memcmp(it.row.val, rows[i].val, it.row.vlen) == 0 &&
              it.row.lsn == rows[i].lsn && it.row.type == rows[i].type);
        ret = run_iter_next(&it, &off);
    }
    if (ret == 0 || (i == n && ret == LAYERED_NOTFOUND))
        ret = 0;
    /* Lookups of every row must agree too (they read other bytes first:
     * the filter and the restart points). */
    for (i = 0; i < n && ret == 0; i++) {
        ret = run_get(r, rows[i].key, rows[i].klen, &got, &off);
        if (ret == 0)
            CHECK(got.vlen == rows[i].vlen &&
                  memcmp(got.val, rows[i].val, got.vlen) == 0 &&
                  got.lsn == rows[i].lsn);
        else
            CHECK(ret == LAYERED_CORRUPT || ret == LAYERED_NOTFOUND);
    }
    run_iter_free(&it);
    run_close(r);
    CHECK(ret == 0 || ret == LAYERED_CORRUPT || ret == LAYERED_NOTFOUND);
    return ret == LAYERED_NOTFOUND ? LAYERED_CORRUPT : ret;
}

static void
every_flip_caught(uint64_t *seed)
{
    char *dir = tu_mkdtemp("run"), path[4096];
    size_t n = 400, live, pos;
    struct row *rows = make_rows(seed, n, false);
    unsigned char *orig, *copy;
    run_info info;
    int fd, bit;
    size_t caught = 0;

    live = live_rows(rows, n);
    (void)snprintf(path, sizeof(path), "%s/runs", dir);
    CHECK((fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644)) >= 0);
    write_run(fd, 0, rows, live, 3, &info);
    CHECK(info.blocks >= 2);
    printf("  every bit flip of a %llu-byte run of %llu blocks is caught\n",
           (unsigned long long)info.length, (unsigned long long)info.blocks);
    CHECK((orig = malloc(info.length)) != NULL);
    CHECK((copy = malloc(info.length)) != NULL);
    CHECK(pread(fd, orig, info.length, 0) == (ssize_t)info.length);
    CHECK_OK(open_and_walk(orig, info.length, rows, live));
    for (pos = 0; pos < info.length; pos++) {
        bit = (int)(tu_rand(seed) % 8);
        memcpy(copy, orig, info.length);
        copy[pos] ^= (unsigned char)(1u << bit);
        if (open_and_walk(copy, info.length, rows, live) != 0)
            caught++;
        else {
            fprintf(stderr, "flip of bit %d at %zu not caught\n", bit, pos);
            CHECK(0);
        }
    }
    CHECK(caught == info.length);
    /* Truncated runs: the footer is gone or misplaced. */
    for (pos = 1; pos < info.length; pos += 97)
        CHECK_RET(LAYERED_CORRUPT,
                  open_and_walk(orig, info.length - pos, rows, live));
    free(orig);
    free(copy);
    CHECK(close(fd) == 0);
    free_rows(rows, n);
    tu_rmdir(dir);
    free(dir);
}

/* A disk that fails the write after `left` successful ones. */
static int writes_left;

static ssize_t
failing_pwritev(int fd, const struct iovec *iov, int iovcnt, off_t off)
{
    if (writes_left-- <= 0) {
        errno = ENOSPC;
        return -1;
    }
    return os_default.pwritev(fd, iov, iovcnt, off);
}

static void
write_failure(uint64_t *seed)
{
    char *dir = tu_mkdtemp("run"), path[4096];
    size_t n = 40000, live, i;
    struct row *rows = make_rows(seed, n, false);
    struct os_ops os = os_default;
    run_writer *w;
    run_info info;
    int fd, ret = 0;

    printf("  a failing write fails the writer for good\n");
    live = live_rows(rows, n);
    os.pwritev = failing_pwritev;
    (void)snprintf(path, sizeof(path), "%s/runs", dir);
    CHECK((fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644)) >= 0);
    for (int left = 0; left < 3; left++) {
        writes_left = left;
        CHECK_OK(run_writer_open(&os, fd, 0, 1, 1, &w));
        for (i = 0, ret = 0; i < live && ret == 0; i++)
            ret = run_writer_add(w, rows[i].key, rows[i].klen, rows[i].val,
                                 rows[i].vlen, rows[i].type, rows[i].lsn);
        if (ret == 0)
            ret = run_writer_finish(w, &info);
        CHECK_RET(ENOSPC, ret);
        /* Failed for good: nothing more is accepted. */
        CHECK(run_writer_add(w, "\xff\xff", 2, "", 0, RUN_PUT, 1) != 0);
        run_writer_free(w);
    }
    CHECK(close(fd) == 0);
    free_rows(rows, n);
    tu_rmdir(dir);
    free(dir);
}

static void
run_files(void)
{
    char *dir = tu_mkdtemp("run"), path[4096];
    run_file_writer *fw;
    run_writer *w;
    run_file *rf;
    const char *why = NULL;
    uint64_t id, off;
    int dfd, fd;

    printf("  run files: two runs, a trailer, refusals\n");
    CHECK((dfd = open(dir, O_RDONLY | O_DIRECTORY)) >= 0);
    CHECK_OK(run_file_create(NULL, dfd, "a.run", &fw));
    CHECK_OK(run_file_add_run(fw, 5, 1, &w));
    {
        run_writer *w2;

        CHECK_RET(EINVAL, run_file_add_run(fw, 6, 1, &w2)); /* one at a time */
        CHECK(w2 == NULL);
    }
    CHECK_OK(run_writer_add(w, "k1", 2, "v1", 2, RUN_PUT, 1));
    CHECK_OK(run_file_end_run(fw, w, NULL));
    CHECK_OK(run_file_add_run(fw, 6, 1, &w));
    CHECK_OK(run_writer_add(w, "k2", 2, NULL, 0, RUN_DEL, 2));
    CHECK_OK(run_file_end_run(fw, w, NULL));
    CHECK_OK(run_file_finish(fw));
    CHECK_RET(EEXIST, run_file_create(NULL, dfd, "a.run", &fw));
    CHECK_OK(run_file_open(NULL, dfd, "a.run", &rf, NULL, NULL));
    CHECK(run_file_count(rf) == 2);
    CHECK(run_file_run(rf, 1, &id) != NULL && id == 6);
    CHECK(run_file_run(rf, 2, &id) == NULL);
    run_file_close(rf);
    CHECK_RET(ENOENT, run_file_open(NULL, dfd, "b.run", &rf, NULL, NULL));

    /* A file with no run, or an empty run: refused, and removed. */
    CHECK_OK(run_file_create(NULL, dfd, "c.run", &fw));
    CHECK_RET(EINVAL, run_file_finish(fw));
    CHECK_RET(ENOENT, run_file_open(NULL, dfd, "c.run", &rf, NULL, NULL));
    CHECK_OK(run_file_create(NULL, dfd, "c.run", &fw));
    CHECK_OK(run_file_add_run(fw, 5, 1, &w));
    CHECK_RET(EINVAL, run_file_end_run(fw, w, NULL)); /* no rows */
    CHECK_RET(EINVAL, run_file_finish(fw));
    CHECK_RET(ENOENT, run_file_open(NULL, dfd, "c.run", &rf, NULL, NULL));

    /* Not a run file; a run file cut short. */
    (void)snprintf(path, sizeof(path), "%s/junk.run", dir);
    CHECK((fd = open(path, O_WRONLY | O_CREAT, 0644)) >= 0);
    CHECK(write(fd, "this is not a run file, not at all, no.", 39) == 39);
    CHECK(close(fd) == 0);
    CHECK_RET(LAYERED_CORRUPT,
              run_file_open(NULL, dfd, "junk.run", &rf, &why, &off));
    CHECK(why != NULL);
    (void)snprintf(path, sizeof(path), "%s/a.run", dir);
    CHECK(truncate(path, 60) == 0);
    CHECK_RET(LAYERED_CORRUPT,
              run_file_open(NULL, dfd, "a.run", &rf, NULL, NULL));
    CHECK(close(dfd) == 0);
    tu_rmdir(dir);
    free(dir);
}

int
main(void)
{
    uint64_t seed;

    setvbuf(stdout, NULL, _IOLBF, 0);
    seed = tu_seed("test_run");
    round_trip(&seed);
    bad_input();
    every_flip_caught(&seed);
    write_failure(&seed);
    run_files();
    printf("test_run: ok\n");
    return 0;
}
