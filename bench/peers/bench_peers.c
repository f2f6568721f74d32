/*
 * bench_peers.c -- Layered beside LMDB, WiredTiger, RocksDB and SQLite on
 * identical workloads, measured in one run on one machine, beside the
 * machine's own limits (sequential write + fdatasync of the same bytes, and
 * memcpy of them).
 *
 * usage: bench_peers [-d dir] [-r runs] [-n rows] [-t tables] [-p rows]
 *                    [-s seconds] [-b batches] [-w workloads] [-e engines]
 *                    [-o datafile]
 *   -d  scratch directory (default $BENCH_DIR, else /tmp)
 *   -r  runs per figure; each figure is the median, with min and max (5)
 *   -n  rows of the copy workload (1000000)
 *   -t  tables of the many-tables workload, 100 rows each (10000)
 *   -p  rows preloaded for the point workload (1000000)
 *   -s  seconds per point-operation run (1)
 *   -b  batches per run of the batch workload, 100 rows each (200)
 *   -w  comma-separated workloads: copy100, copy1k, many, point, batch
 *       (all; point also runs the ordered scan of its preloaded table),
 *       and insert: only the insert figures of point (1 and 2 threads),
 *       the quick look at the write path, e.g.
 *       bench_peers -w insert -e layered -p 100000 -s 0.5 -r 5
 *   -e  comma-separated engines (every one built in)
 *   -o  also write the figures as tab-separated lines for the chart and
 *       the goals: "copy100|copy1k ENGINE MB/s min max" and
 *       "many ENGINE us-per-table min max tables"
 * Prints Markdown tables on stdout and progress on stderr.
 *
 * The engines run interleaved (run 1 of every engine, then run 2, ...), so
 * drift in the machine's speed spreads over all of them alike.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "peers.h"

#define MAX_RUNS 31
#define MAX_ENGINES 8
#define VALUE_POOL (4u << 20)

static const struct engine *all_engines[] = {
    &engine_layered,
#ifdef HAVE_LMDB
    &engine_lmdb,
#endif
#ifdef HAVE_WIREDTIGER
    &engine_wiredtiger,
#endif
#ifdef HAVE_ROCKSDB
    &engine_rocksdb_batch,
    &engine_rocksdb_sst,
#endif
#ifdef HAVE_SQLITE
    &engine_sqlite,
#endif
};
#define N_ALL (sizeof(all_engines) / sizeof(all_engines[0]))

static const struct engine *engines[MAX_ENGINES];
static int n_engines;
static const char *base_dir;
static int runs = 5;
static unsigned char *value_pool;
static uint64_t start_ns;

/* ---- helpers shared with the engines ---- */

uint64_t
bench_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t
mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

void
row_key(uint64_t i, unsigned char key[KEY_LEN])
{
    uint64_t a = mix64(i), b = mix64(i ^ 0x5851f42d4c957f2dull);

    memcpy(key, &a, 8);
    memcpy(key + 8, &b, 8);
}

const unsigned char *
row_value(uint64_t i, size_t value_len)
{
    return value_pool + mix64(i * 3 + 1) % (VALUE_POOL - value_len);
}

uint64_t
rand_next(uint64_t *state)
{
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    return *state;
}

void
fail(const char *engine, const char *what, const char *detail)
{
    fprintf(stderr, "bench_peers: %s: %s failed: %s\n", engine, what,
            detail ? detail : "");
    exit(1);
}

void
scan_check(const char *engine, unsigned char prev[KEY_LEN], const void *key,
           size_t key_len, uint64_t n)
{
    if (key_len != KEY_LEN)
        fail(engine, "scan", "a key of the wrong length");
    if (n > 0 && memcmp(prev, key, KEY_LEN) >= 0)
        fail(engine, "scan", "keys out of order");
    memcpy(prev, key, KEY_LEN);
}

void
remove_tree(const char *path)
{
    char cmd[4200];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
    if (system(cmd) != 0)
        fail("harness", "rm -rf", path);
}

void
make_dir(const char *path)
{
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        fail("harness", "mkdir", path);
}

void
path_join(char *out, size_t size, const char *dir, const char *name)
{
    if ((size_t)snprintf(out, size, "%s/%s", dir, name) >= size)
        fail("harness", "path", name);
}

/* Progress on stderr, stamped with the seconds since the start. */
static void __attribute__((format(printf, 1, 2)))
progress(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "[%6.1f] ", (bench_now_ns() - start_ns) / 1e9);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
}

/* ---- statistics ---- */

struct figure {
    double v[MAX_RUNS];
    int n;
};

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static double
fig_median(struct figure *f)
{
    qsort(f->v, (size_t)f->n, sizeof(double), cmp_double);
    return f->n % 2 ? f->v[f->n / 2]
                    : (f->v[f->n / 2 - 1] + f->v[f->n / 2]) / 2;
}
static double fig_min(struct figure *f) { fig_median(f); return f->v[0]; }
static double fig_max(struct figure *f) { fig_median(f); return f->v[f->n - 1]; }

/* ---- the machine's limits ---- */

/*
 * write_sync_seconds --
 *     Sequential write of `bytes` in 4 MiB writes plus one fdatasync: the
 *     least any durable copy of those bytes can cost on this file system.
 */
static double
write_sync_seconds(uint64_t bytes)
{
    char path[4096];
    size_t chunk = 4u << 20;
    unsigned char *buf = malloc(chunk);
    uint64_t t0, done = 0;
    int fd;

    if (buf == NULL)
        fail("write+sync", "malloc", NULL);
    memcpy(buf, value_pool, chunk);
    path_join(path, sizeof(path), base_dir, "peers-seqwrite.tmp");
    if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644)) < 0)
        fail("write+sync", "open", strerror(errno));
    t0 = bench_now_ns();
    while (done < bytes) {
        size_t n = bytes - done < chunk ? (size_t)(bytes - done) : chunk;
        if (write(fd, buf, n) != (ssize_t)n)
            fail("write+sync", "write", strerror(errno));
        done += n;
    }
    if (fdatasync(fd) != 0)
        fail("write+sync", "fdatasync", strerror(errno));
    t0 = bench_now_ns() - t0;
    close(fd);
    unlink(path);
    free(buf);
    return t0 / 1e9;
}

/*
 * memcpy_seconds --
 *     memcpy of `bytes` in 64 MiB pieces between two buffers that are
 *     already faulted in: the least a copy of those bytes costs in memory.
 */
static double
memcpy_seconds(uint64_t bytes)
{
    size_t chunk = 64u << 20;
    unsigned char *src = malloc(chunk), *dst = malloc(chunk);
    uint64_t t0, done = 0;
    volatile unsigned char sink;

    if (src == NULL || dst == NULL)
        fail("memcpy", "malloc", NULL);
    memset(src, 1, chunk);
    memset(dst, 2, chunk);
    t0 = bench_now_ns();
    while (done < bytes) {
        size_t n = bytes - done < chunk ? (size_t)(bytes - done) : chunk;
        memcpy(dst, src, n);
        done += n;
    }
    t0 = bench_now_ns() - t0;
    sink = dst[chunk / 2];
    (void)sink;
    free(src);
    free(dst);
    return t0 / 1e9;
}

/* ---- workloads ---- */

static void
engine_dir(char *out, size_t size, const struct engine *e, const char *w)
{
    char name[256];

    snprintf(name, sizeof(name), "peers-%s-%s", e->name, w);
    path_join(out, size, base_dir, name);
    remove_tree(out);
    make_dir(out);
}

static FILE *chart;

/*
 * copy_workload --
 *     One table of `rows` rows of value_len bytes, copied durably by every
 *     engine `runs` times; printed beside write+sync and memcpy of the
 *     same payload bytes.
 */
static void
copy_workload(const char *label, uint64_t rows, size_t value_len)
{
    char dirs[MAX_ENGINES][4096];
    void *state[MAX_ENGINES];
    struct figure sec[MAX_ENGINES], wsync = {0}, mcpy = {0};
    uint64_t bytes = rows * (KEY_LEN + value_len);
    double best_peer = 0, ws_med;
    int e, r;

    memset(sec, 0, sizeof(sec));
    for (e = 0; e < n_engines; e++) {
        struct workload w = {.rows = rows, .value_len = value_len,
                             .tables = 1};
        state[e] = NULL;
        if (engines[e]->copy_run == NULL)
            continue;
        engine_dir(dirs[e], sizeof(dirs[e]), engines[e], label);
        w.dir = dirs[e];
        progress("%s: %s: preparing\n", label, engines[e]->name);
        state[e] = engines[e]->copy_prepare(&w);
    }
    for (r = 0; r < runs; r++) {
        for (e = 0; e < n_engines; e++) {
            if (state[e] == NULL)
                continue;
            sec[e].v[sec[e].n++] = engines[e]->copy_run(state[e], r);
            progress("%s: run %d: %-16s %.3f s\n", label, r + 1,
                    engines[e]->name, sec[e].v[sec[e].n - 1]);
        }
        wsync.v[wsync.n++] = write_sync_seconds(bytes);
        mcpy.v[mcpy.n++] = memcpy_seconds(bytes);
        progress("%s: run %d: write+sync %.3f s, memcpy %.3f s\n",
                label, r + 1, wsync.v[r], mcpy.v[r]);
    }
    for (e = 0; e < n_engines; e++) {
        if (state[e] == NULL)
            continue;
        engines[e]->copy_finish(state[e]);
        remove_tree(dirs[e]);
        if (e > 0 && (best_peer == 0 || fig_median(&sec[e]) < best_peer))
            best_peer = fig_median(&sec[e]);
    }

    ws_med = fig_median(&wsync);
    printf("\n### Copy: %llu rows, %d-byte keys, %zu-byte values "
           "(%.1f MB of keys and values)\n\n",
           (unsigned long long)rows, KEY_LEN, value_len, bytes / 1e6);
    printf("| engine | method | seconds | rows/s | MB/s | of write+sync | "
           "vs fastest peer |\n");
    printf("|---|---|---:|---:|---:|---:|---:|\n");
    for (e = 0; e < n_engines; e++) {
        double med, lo, hi;
        if (state[e] == NULL)
            continue;
        med = fig_median(&sec[e]);
        lo = fig_min(&sec[e]);
        hi = fig_max(&sec[e]);
        printf("| %s%s%s | %s | %.3f (%.3f–%.3f) | %.0f | %.0f (%.0f–%.0f) "
               "| %.0f%% | %.2f× |\n",
               e == 0 ? "**" : "", engines[e]->name, e == 0 ? "**" : "",
               engines[e]->copy_method, med, lo, hi, rows / med,
               bytes / 1e6 / med, bytes / 1e6 / hi, bytes / 1e6 / lo,
               100 * ws_med / med, best_peer > 0 ? best_peer / med : 0);
        if (chart)
            fprintf(chart, "%s\t%s\t%.1f\t%.1f\t%.1f\n", label,
                    engines[e]->name, bytes / 1e6 / med, bytes / 1e6 / hi,
                    bytes / 1e6 / lo);
    }
    printf("| *write+sync (limit)* | one 4 MiB-write file, one fdatasync "
           "| %.3f (%.3f–%.3f) | %.0f | %.0f (%.0f–%.0f) | 100%% | |\n",
           ws_med, fig_min(&wsync), fig_max(&wsync), rows / ws_med,
           bytes / 1e6 / ws_med, bytes / 1e6 / fig_max(&wsync),
           bytes / 1e6 / fig_min(&wsync));
    printf("| *memcpy (limit)* | 64 MiB memcpy | %.3f (%.3f–%.3f) | %.0f | "
           "%.0f (%.0f–%.0f) | | |\n",
           fig_median(&mcpy), fig_min(&mcpy), fig_max(&mcpy),
           rows / fig_median(&mcpy), bytes / 1e6 / fig_median(&mcpy),
           bytes / 1e6 / fig_max(&mcpy), bytes / 1e6 / fig_min(&mcpy));
    if (chart) {
        fprintf(chart, "%s\twrite+sync\t%.1f\t%.1f\t%.1f\n", label,
                bytes / 1e6 / ws_med, bytes / 1e6 / fig_max(&wsync),
                bytes / 1e6 / fig_min(&wsync));
        fflush(chart);
    }
    fflush(stdout);
}

/*
 * many_workload --
 *     `tables` tables of 100 rows each, copied (drained) durably in one
 *     operation; reports the cost per table.  An engine with a table cap
 *     runs with fewer tables, which the table says.
 */
static void
many_workload(int tables)
{
    char dirs[MAX_ENGINES][4096];
    void *state[MAX_ENGINES];
    int ntab[MAX_ENGINES];
    struct figure sec[MAX_ENGINES];
    int e, r;

    memset(sec, 0, sizeof(sec));
    for (e = 0; e < n_engines; e++) {
        struct workload w = {.rows = 100, .value_len = 100};
        state[e] = NULL;
        if (engines[e]->many_run == NULL)
            continue;
        ntab[e] = tables;
        if (engines[e]->max_tables > 0 && engines[e]->max_tables < tables)
            ntab[e] = engines[e]->max_tables;
        w.tables = ntab[e];
        engine_dir(dirs[e], sizeof(dirs[e]), engines[e], "many");
        w.dir = dirs[e];
        progress("many: %s: preparing %d tables\n", engines[e]->name,
                ntab[e]);
        state[e] = engines[e]->many_prepare(&w);
    }
    for (r = 0; r < runs; r++)
        for (e = 0; e < n_engines; e++) {
            if (state[e] == NULL)
                continue;
            sec[e].v[sec[e].n++] = engines[e]->many_run(state[e], r);
            progress("many: run %d: %-16s %.3f s\n", r + 1,
                    engines[e]->name, sec[e].v[sec[e].n - 1]);
        }
    printf("\n### Many tables: 100 rows each (16-byte keys, 100-byte "
           "values), copied durably in one operation\n\n");
    printf("| engine | tables | seconds | µs per table | rows/s |\n");
    printf("|---|---:|---:|---:|---:|\n");
    for (e = 0; e < n_engines; e++) {
        double med;
        if (state[e] == NULL)
            continue;
        engines[e]->many_finish(state[e]);
        remove_tree(dirs[e]);
        med = fig_median(&sec[e]);
        printf("| %s%s%s | %d | %.3f (%.3f–%.3f) | %.1f (%.1f–%.1f) | "
               "%.0f |\n",
               e == 0 ? "**" : "", engines[e]->name, e == 0 ? "**" : "",
               ntab[e], med, fig_min(&sec[e]), fig_max(&sec[e]),
               med * 1e6 / ntab[e], fig_min(&sec[e]) * 1e6 / ntab[e],
               fig_max(&sec[e]) * 1e6 / ntab[e], ntab[e] * 100.0 / med);
        if (chart)
            fprintf(chart, "many\t%s\t%.1f\t%.1f\t%.1f\t%d\n",
                    engines[e]->name, med * 1e6 / ntab[e],
                    fig_min(&sec[e]) * 1e6 / ntab[e],
                    fig_max(&sec[e]) * 1e6 / ntab[e], ntab[e]);
    }
    fflush(stdout);
}

/*
 * batch_workload --
 *     `batches` atomic batches of BATCH_ROWS new rows (16-byte keys,
 *     100-byte values) per run, each synced before the next starts.
 */
static void
batch_workload(int batches)
{
    char dirs[MAX_ENGINES][4096];
    void *state[MAX_ENGINES];
    struct figure sec[MAX_ENGINES];
    int e, r;

    memset(sec, 0, sizeof(sec));
    for (e = 0; e < n_engines; e++) {
        struct workload w = {.rows = 0, .value_len = 100, .tables = 1};
        state[e] = NULL;
        if (engines[e]->batch_run == NULL)
            continue;
        engine_dir(dirs[e], sizeof(dirs[e]), engines[e], "batch");
        w.dir = dirs[e];
        state[e] = engines[e]->batch_prepare(&w);
    }
    for (r = 0; r < runs; r++)
        for (e = 0; e < n_engines; e++) {
            if (state[e] == NULL)
                continue;
            sec[e].v[sec[e].n++] = engines[e]->batch_run(
                state[e], (uint64_t)r * (uint64_t)batches * BATCH_ROWS,
                batches);
            progress("batch: run %d: %-16s %.3f s\n", r + 1,
                     engines[e]->name, sec[e].v[sec[e].n - 1]);
        }
    printf("\n### Batches: %d atomic batches of %d new rows (16-byte keys, "
           "100-byte values), each synced\n\n", batches, BATCH_ROWS);
    printf("| engine | method | seconds | batches/s | rows/s |\n");
    printf("|---|---|---:|---:|---:|\n");
    for (e = 0; e < n_engines; e++) {
        double med;
        if (state[e] == NULL)
            continue;
        engines[e]->batch_finish(state[e]);
        remove_tree(dirs[e]);
        med = fig_median(&sec[e]);
        printf("| %s%s%s | %s | %.3f (%.3f–%.3f) | %.0f (%.0f–%.0f) | "
               "%.0f (%.0f–%.0f) |\n",
               e == 0 ? "**" : "", engines[e]->name, e == 0 ? "**" : "",
               engines[e]->batch_method, med, fig_min(&sec[e]),
               fig_max(&sec[e]), batches / med, batches / fig_max(&sec[e]),
               batches / fig_min(&sec[e]), batches * (double)BATCH_ROWS / med,
               batches * (double)BATCH_ROWS / fig_max(&sec[e]),
               batches * (double)BATCH_ROWS / fig_min(&sec[e]));
    }
    fflush(stdout);
}

struct point_thread {
    pthread_t tid;
    struct point_job job;
    void (*fn)(struct point_job *);
};

static void *
point_thread_main(void *arg)
{
    struct point_thread *t = arg;

    t->fn(&t->job);
    return NULL;
}

/*
 * point_run --
 *     Run fn on `threads` threads for `seconds`; operations per second.
 *     Every (run, kind, thread) gets its own random stream and its own
 *     range of new row numbers, so inserts never repeat a key.
 */
static double
point_run(void *state, void (*fn)(struct point_job *), int threads,
          double seconds, uint64_t rows, int run, int kind)
{
    struct point_thread t[2];
    uint64_t start, ops = 0;
    int i;

    start = bench_now_ns();
    for (i = 0; i < threads; i++) {
        t[i].fn = fn;
        t[i].job = (struct point_job){
            .state = state,
            .thread = i,
            .deadline = start + (uint64_t)(seconds * 1e9),
            .seed = 0x2545f4914f6cdd1dull *
                    (uint64_t)(1 + (run * 4 + kind) * 2 + i),
            .next_new = rows + 100000000ull *
                                   (uint64_t)(1 + (run * 4 + kind) * 2 + i)};
        if (pthread_create(&t[i].tid, NULL, point_thread_main, &t[i]) != 0)
            fail("harness", "pthread_create", NULL);
    }
    for (i = 0; i < threads; i++) {
        pthread_join(t[i].tid, NULL);
        ops += t[i].job.ops;
    }
    return ops / ((bench_now_ns() - start) / 1e9);
}

/*
 * point_workload --
 *     Random point reads of existing keys, then inserts of new keys, on one
 *     and two threads, against a table preloaded with `rows` rows.  With
 *     inserts_only, no scan and no reads.
 */
static void
point_workload(uint64_t rows, double seconds, int inserts_only)
{
    char dirs[MAX_ENGINES][4096];
    void *state[MAX_ENGINES];
    /* [engine][read1, read2, insert1, insert2] */
    static struct figure ops[MAX_ENGINES][4], scan[MAX_ENGINES];
    static const char *kinds[4] = {"read, 1 thread", "read, 2 threads",
                                   "insert, 1 thread", "insert, 2 threads"};
    int e, r, k;

    memset(ops, 0, sizeof(ops));
    memset(scan, 0, sizeof(scan));
    for (e = 0; e < n_engines; e++) {
        struct workload w = {.rows = rows, .value_len = 100, .tables = 1};
        state[e] = NULL;
        if (engines[e]->point_prepare == NULL)
            continue;
        engine_dir(dirs[e], sizeof(dirs[e]), engines[e], "point");
        w.dir = dirs[e];
        progress("point: %s: preparing\n", engines[e]->name);
        state[e] = engines[e]->point_prepare(&w);
    }
    /* The scans come first, while every table holds exactly `rows` rows. */
    for (r = 0; r < runs && !inserts_only; r++)
        for (e = 0; e < n_engines; e++) {
            uint64_t start, n;
            if (state[e] == NULL || engines[e]->point_scan == NULL)
                continue;
            start = bench_now_ns();
            n = engines[e]->point_scan(state[e]);
            scan[e].v[scan[e].n++] = (bench_now_ns() - start) / 1e9;
            if (n != rows)
                fail(engines[e]->name, "scan", "did not read every row");
            progress("scan: run %d: %-16s %.3f s\n", r + 1, engines[e]->name,
                    scan[e].v[scan[e].n - 1]);
        }
    for (r = 0; r < runs; r++)
        for (k = inserts_only ? 2 : 0; k < 4; k++)
            for (e = 0; e < n_engines; e++) {
                if (state[e] == NULL)
                    continue;
                ops[e][k].v[ops[e][k].n++] = point_run(
                    state[e],
                    k < 2 ? engines[e]->point_read : engines[e]->point_insert,
                    k % 2 + 1, seconds, rows, r, k);
                progress("point: run %d: %-16s %-18s %.0f ops/s\n",
                        r + 1, engines[e]->name, kinds[k],
                        ops[e][k].v[ops[e][k].n - 1]);
            }
    printf("\n### Point operations: %llu rows preloaded (16-byte keys, "
           "100-byte values); operations per second\n\n",
           (unsigned long long)rows);
    printf("| engine | %s | %s | %s | %s |\n", kinds[0], kinds[1], kinds[2],
           kinds[3]);
    printf("|---|---:|---:|---:|---:|\n");
    for (e = 0; e < n_engines; e++) {
        if (state[e] == NULL)
            continue;
        engines[e]->point_finish(state[e]);
        remove_tree(dirs[e]);
        printf("| %s%s%s", e == 0 ? "**" : "", engines[e]->name,
               e == 0 ? "**" : "");
        for (k = 0; k < 4; k++)
            if (ops[e][k].n == 0)
                printf(" | –");
            else
                printf(" | %.0f (%.0f–%.0f)", fig_median(&ops[e][k]),
                       fig_min(&ops[e][k]), fig_max(&ops[e][k]));
        printf(" |\n");
    }
    if (inserts_only) {
        fflush(stdout);
        return;
    }
    printf("\n### Scan: every row of the point table (%llu rows, 16-byte keys, "
           "100-byte values) in key order\n\n",
           (unsigned long long)rows);
    printf("| engine | seconds | rows/s | vs lmdb |\n");
    printf("|---|---:|---:|---:|\n");
    for (e = 0; e < n_engines; e++) {
        double lmdb = 0;
        int p;
        if (state[e] == NULL || scan[e].n == 0)
            continue;
        for (p = 0; p < n_engines; p++)
            if (scan[p].n > 0 && strcmp(engines[p]->name, "lmdb") == 0)
                lmdb = fig_median(&scan[p]);
        printf("| %s%s%s | %.3f (%.3f–%.3f) | %.0f | ", e == 0 ? "**" : "",
               engines[e]->name, e == 0 ? "**" : "", fig_median(&scan[e]),
               fig_min(&scan[e]), fig_max(&scan[e]),
               rows / fig_median(&scan[e]));
        if (lmdb > 0)
            printf("%.2f× |\n", lmdb / fig_median(&scan[e]));
        else
            printf("|\n");
    }
    fflush(stdout);
}

static int
listed(const char *list, const char *name)
{
    size_t n = strlen(name);
    const char *p;

    if (list == NULL)
        return 1;
    for (p = list; (p = strstr(p, name)) != NULL; p += n)
        if ((p == list || p[-1] == ',') && (p[n] == ',' || p[n] == '\0'))
            return 1;
    return 0;
}

/*
 * raise_fd_limit --
 *     Many-table workloads keep a file or two per table open; lift the soft
 *     limit on descriptors as far as the process may.
 */
static void
raise_fd_limit(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    rl.rlim_cur = rl.rlim_max;
    (void)setrlimit(RLIMIT_NOFILE, &rl);
}

int
main(int argc, char *argv[])
{
    const char *workloads = NULL, *engine_list = NULL, *chart_path = NULL;
    uint64_t copy_rows = 1000000, point_rows = 1000000;
    int tables = 10000, batches = 200, opt;
    double seconds = 1;
    size_t i;

    start_ns = bench_now_ns();
    base_dir = getenv("BENCH_DIR") ? getenv("BENCH_DIR") : "/tmp";
    while ((opt = getopt(argc, argv, "d:r:n:t:p:s:w:e:o:b:")) != -1)
        switch (opt) {
        case 'd': base_dir = optarg; break;
        case 'r': runs = atoi(optarg); break;
        case 'n': copy_rows = strtoull(optarg, NULL, 10); break;
        case 't': tables = atoi(optarg); break;
        case 'p': point_rows = strtoull(optarg, NULL, 10); break;
        case 's': seconds = atof(optarg); break;
        case 'w': workloads = optarg; break;
        case 'e': engine_list = optarg; break;
        case 'o': chart_path = optarg; break;
        case 'b': batches = atoi(optarg); break;
        default:
            fprintf(stderr, "usage: bench_peers [-d dir] [-r runs] [-n rows] "
                            "[-t tables] [-p rows] [-s seconds] [-b batches] "
                            "[-w copy100,copy1k,many,point,insert,batch] "
                            "[-e engines] [-o datafile]\n");
            return 2;
        }
    if (runs < 1 || runs > MAX_RUNS || copy_rows < 1 || tables < 1 ||
        point_rows < 1 || seconds <= 0 || batches < 1) {
        fprintf(stderr, "bench_peers: an argument is out of range\n");
        return 2;
    }
    for (i = 0; i < N_ALL; i++)
        if (listed(engine_list, all_engines[i]->name))
            engines[n_engines++] = all_engines[i];
    if (n_engines == 0 || engines[0] != &engine_layered) {
        fprintf(stderr, "bench_peers: the engine list must include layered\n");
        return 2;
    }
    if ((value_pool = malloc(VALUE_POOL)) == NULL)
        fail("harness", "malloc", NULL);
    {
        uint64_t s = 0x9e3779b97f4a7c15ull;
        for (i = 0; i < VALUE_POOL; i += 8) {
            uint64_t x = rand_next(&s);
            memcpy(value_pool + i, &x, 8);
        }
    }
    if (chart_path && (chart = fopen(chart_path, "w")) == NULL)
        fail("harness", "fopen", chart_path);
    raise_fd_limit();

    printf("Median of %d runs (min–max).  Scratch directory: %s.\n", runs,
           base_dir);
    if (listed(workloads, "copy100"))
        copy_workload("copy100", copy_rows, 100);
    if (listed(workloads, "copy1k"))
        copy_workload("copy1k", copy_rows, 1024);
    if (listed(workloads, "many"))
        many_workload(tables);
    if (listed(workloads, "point"))
        point_workload(point_rows, seconds, 0);
    else if (workloads != NULL && listed(workloads, "insert"))
        point_workload(point_rows, seconds, 1);
    if (listed(workloads, "batch"))
        batch_workload(batches);
    if (chart)
        fclose(chart);
    return 0;
}
