/*
 * bench_filestore.c -- throughput of the file store: inserts, scans, point
 * lookups, the drain copy (next to a plain sequential write of the same
 * bytes), and index memory per key.
 *
 * usage: bench_filestore [rows [runs [dir]]]
 *     rows  rows per table (default 1000000)
 *     runs  repetitions; the median is reported (default 5)
 *     dir   scratch directory (default $TMPDIR or /tmp)
 * Keys are 16 random bytes, values 100 bytes.  Files live in the page
 * cache, so the numbers measure the engine's CPU and syscall cost, not the
 * disk; the sequential-write row shows what the same bytes cost raw.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"
#include "layered.h"
#include "filestore.h"

#define KLEN 16
#define VLEN 100
#define MAX_RUNS 15

static _Atomic uint64_t lsn;
static char *dir;
static size_t rows;
static unsigned char *keys;   /* rows * KLEN random keys */

static uint64_t
xorshift(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static char *
path_for(const char *name)
{
    char *p;

    if (asprintf(&p, "%s/%s", dir, name) < 0)
        exit(1);
    return p;
}

static fs_file *
open_fresh(const char *path, int sync)
{
    fs_env env;
    fs_file *f;

    memset(&env, 0, sizeof(env));
    env.lsn = &lsn;
    env.sync = sync;
    (void)unlink(path);
    BENCH_OK(fs_open(path, FS_CREATE | FS_EXCL, &env, &f));
    return f;
}

/* Insert every key; returns seconds (fs_sync included). */
static double
run_insert(const char *path, int sync, fs_file **keep)
{
    unsigned char val[VLEN];
    double t0, t;
    fs_file *f;
    size_t i;

    memset(val, 'v', sizeof(val));
    f = open_fresh(path, sync);
    t0 = bench_now();
    for (i = 0; i < rows; i++) {
        memcpy(val, keys + i * KLEN, 8);
        BENCH_OK(fs_put(f, keys + i * KLEN, KLEN, val, VLEN, NULL));
    }
    BENCH_OK(fs_sync(f));
    t = bench_now() - t0;
    if (keep != NULL)
        *keep = f;
    else
        BENCH_OK(fs_close(f));
    return t;
}

/* Scan in key order reading every value. */
static double
run_scan(fs_file *f)
{
    fs_pos pos = {0};
    void *buf = NULL;
    size_t cap = 0, n = 0;
    double t0 = bench_now(), t;
    int ret;

    for (ret = fs_seek(f, NULL, 0, FS_FIRST, &pos); ret == 0;
         ret = fs_seek(f, NULL, 0, FS_NEXT, &pos)) {
        BENCH_OK(fs_read_value(f, &pos, &buf, &cap));
        n++;
    }
    t = bench_now() - t0;
    if (ret != LAYERED_NOTFOUND || n != rows) {
        fprintf(stderr, "scan: %zu rows, ret %d\n", n, ret);
        exit(1);
    }
    fs_pos_free(&pos);
    free(buf);
    return t;
}

/* Point lookups of every key in random order. */
static double
run_lookup(fs_file *f, uint64_t seed)
{
    fs_pos pos = {0};
    void *buf = NULL;
    size_t cap = 0, i, k;
    uint64_t s = seed;
    double t0 = bench_now(), t;

    for (i = 0; i < rows; i++) {
        k = (size_t)(xorshift(&s) % rows);
        BENCH_OK(fs_seek(f, keys + k * KLEN, KLEN, FS_EQ, &pos));
        BENCH_OK(fs_read_value(f, &pos, &buf, &cap));
    }
    t = bench_now() - t0;
    fs_pos_free(&pos);
    free(buf);
    return t;
}

/* fs_copy of the whole src into a fresh dst (including its one sync). */
static double
run_copy(fs_file *src, const char *dpath, fs_copy_stats *st)
{
    fs_file *dst = open_fresh(dpath, LAYERED_SYNC_WRITE);
    double t0 = bench_now(), t;

    BENCH_OK(fs_copy(src, dst, 0, NULL, NULL, st));
    t = bench_now() - t0;
    BENCH_OK(fs_close(dst));
    if (st->rows != rows) {
        fprintf(stderr, "copy: %llu rows\n", (unsigned long long)st->rows);
        exit(1);
    }
    return t;
}

/* The same bytes written raw: 8 MiB write(2)s and one fdatasync. */
static double
run_seqwrite(const char *path, uint64_t bytes)
{
    const size_t chunk = 8u << 20;
    unsigned char *buf = malloc(chunk);
    uint64_t left = bytes;
    double t0, t;
    ssize_t n;
    int fd;

    if (buf == NULL)
        exit(1);
    memset(buf, 'w', chunk);
    (void)unlink(path);
    if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644)) < 0)
        exit(1);
    t0 = bench_now();
    while (left > 0) {
        n = write(fd, buf, left < chunk ? (size_t)left : chunk);
        if (n <= 0)
            exit(1);
        left -= (uint64_t)n;
    }
    if (fdatasync(fd) != 0)
        exit(1);
    t = bench_now() - t0;
    close(fd);
    free(buf);
    return t;
}

int
main(int argc, char **argv)
{
    double ins_none[MAX_RUNS], ins_write[MAX_RUNS], scan[MAX_RUNS],
        look[MAX_RUNS], copy[MAX_RUNS], seqw[MAX_RUNS], ccopy[MAX_RUNS],
        cscan[MAX_RUNS];
    char *src_path, *dst_path, *raw_path, *tmpl;
    const char *tmp = getenv("TMPDIR");
    uint64_t s = 0x9E3779B97F4A7C15ull, copy_bytes;
    fs_copy_stats st;
    fs_info info;
    fs_file *src;
    double mb, t;
    int runs, r, wruns;
    size_t i;

    rows = argc > 1 ? strtoul(argv[1], NULL, 0) : 1000000;
    runs = argc > 2 ? atoi(argv[2]) : 5;
    if (rows == 0 || runs < 1 || runs > MAX_RUNS) {
        fprintf(stderr, "usage: %s [rows [runs (1..%d) [dir]]]\n", argv[0],
                MAX_RUNS);
        return 2;
    }
    if (asprintf(&tmpl, "%s/layered-bench-XXXXXX",
                 argc > 3 ? argv[3] : tmp != NULL && *tmp ? tmp : "/tmp") < 0 ||
        (dir = mkdtemp(tmpl)) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    src_path = path_for("bench.ingest");
    dst_path = path_for("bench.stable");
    raw_path = path_for("bench.raw");

    if ((keys = malloc(rows * KLEN)) == NULL)
        return 1;
    for (i = 0; i < rows * KLEN; i += 8) {
        uint64_t w = xorshift(&s);
        memcpy(keys + i, &w, 8);
    }

    printf("bench_filestore: %zu rows, %d-byte keys, %d-byte values, "
           "median of %d runs, dir %s\n", rows, KLEN, VLEN, runs, dir);

    /* SYNC_WRITE is a syscall per row: fewer runs keep the bench short. */
    wruns = runs < 3 ? runs : 3;
    for (r = 0; r < runs; r++)
        ins_none[r] = run_insert(src_path, LAYERED_SYNC_NONE, NULL);
    for (r = 0; r < wruns; r++)
        ins_write[r] = run_insert(src_path, LAYERED_SYNC_WRITE, NULL);

    (void)run_insert(src_path, LAYERED_SYNC_NONE, &src);
    fs_get_info(src, &info);
    for (r = 0; r < runs; r++)
        scan[r] = run_scan(src);
    for (r = 0; r < runs; r++)
        look[r] = run_lookup(src, 12345 + (uint64_t)r);
    copy_bytes = 0;
    for (r = 0; r < runs; r++) {
        copy[r] = run_copy(src, dst_path, &st);
        copy_bytes = info.file_bytes; /* dst = same records, same size */
        seqw[r] = run_seqwrite(raw_path, copy_bytes);
    }
    /* After compaction src's records and index nodes lie in key order:
     * the same copy and scan without the random memory access. */
    BENCH_OK(fs_compact(src, true, NULL));
    for (r = 0; r < runs; r++) {
        ccopy[r] = run_copy(src, dst_path, &st);
        cscan[r] = run_scan(src);
    }

    mb = (double)copy_bytes / (1024.0 * 1024.0);
    printf("\n%-34s %14s %12s\n", "operation", "rows/s", "MiB/s");
    t = bench_median(ins_none, runs);
    printf("%-34s %14.0f %12.1f\n", "insert, SYNC_NONE", rows / t, mb / t);
    t = bench_median(ins_write, wruns);
    printf("%-34s %14.0f %12.1f\n", "insert, SYNC_WRITE (write/row)",
           rows / t, mb / t);
    t = bench_median(scan, runs);
    printf("%-34s %14.0f %12.1f\n", "scan (NEXT + read_value)", rows / t,
           mb / t);
    t = bench_median(look, runs);
    printf("%-34s %14.0f %12s\n", "point lookup (EQ + read_value)",
           rows / t, "-");
    t = bench_median(copy, runs);
    printf("%-34s %14.0f %12.1f\n", "fs_copy into empty dst (+sync)",
           rows / t, mb / t);
    t = bench_median(ccopy, runs);
    printf("%-34s %14.0f %12.1f\n", "fs_copy, src compacted", rows / t,
           mb / t);
    t = bench_median(cscan, runs);
    printf("%-34s %14.0f %12.1f\n", "scan, src compacted", rows / t,
           mb / t);
    t = bench_median(seqw, runs);
    printf("%-34s %14s %12.1f\n", "raw write(8 MiB)+fdatasync, same", "-",
           mb / t);
    printf("\nfile %.1f MiB for %zu rows (%.1f bytes/row on disk)\n", mb,
           rows, (double)info.file_bytes / (double)rows);
    printf("index %.1f MiB: %.1f bytes/key (node 48 + key %d, arena "
           "chunks included)\n",
           (double)info.index_bytes / (1024.0 * 1024.0),
           (double)info.index_bytes / (double)info.entries, KLEN);

    BENCH_OK(fs_close(src));
    (void)unlink(src_path);
    (void)unlink(dst_path);
    (void)unlink(raw_path);
    (void)rmdir(dir);
    free(keys);
    free(src_path);
    free(dst_path);
    free(raw_path);
    free(tmpl);
    return 0;
}
