/*
 * bench_drain.c -- step-up drain throughput, beside the machine's own
 * sequential write-and-sync bandwidth for the same number of bytes,
 * measured in the same run.
 *
 *   large: 1 table x 1,000,000 rows (16-byte keys, 100-byte values)
 *   many:  10,000 tables x 100 rows: the fixed cost per table
 *
 *   ./bench_drain [runs] [dir]     (dir: where the database lives; /tmp)
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "layered.h"

#define KEY_LEN 16
#define VALUE_LEN 100

static uint64_t
now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void
die(const char *what, int ret)
{
    fprintf(stderr, "bench_drain: %s: %s\n", what, layered_strerror(ret));
    exit(1);
}
#define TRY(call)                                                           \
    do {                                                                    \
        int ret_ = (call);                                                  \
        if (ret_ != 0)                                                      \
            die(#call, ret_);                                               \
    } while (0)

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Sequential write + one fdatasync of `bytes` bytes in 4 MiB writes. */
static double
write_sync_seconds(const char *dir, uint64_t bytes)
{
    char path[4096];
    size_t chunk = 4u << 20;
    char *buf = malloc(chunk);
    uint64_t t0, done = 0;
    int fd;

    memset(buf, 0x5a, chunk);
    if ((size_t)snprintf(path, sizeof(path), "%s/seqwrite.tmp", dir) >=
        sizeof(path))
        die("path too long", ENAMETOOLONG);
    if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644)) < 0)
        die("open", 1);
    t0 = now();
    while (done < bytes) {
        size_t n = bytes - done < chunk ? (size_t)(bytes - done) : chunk;
        if (write(fd, buf, n) != (ssize_t)n)
            die("write", 1);
        done += n;
    }
    if (fdatasync(fd) != 0)
        die("fdatasync", 1);
    t0 = now() - t0;
    close(fd);
    unlink(path);
    free(buf);
    return t0 / 1e9;
}

static void
fill(layered_session *s, const char *uri, int rows, uint64_t *rng)
{
    layered_cursor *c;
    unsigned char key[KEY_LEN], value[VALUE_LEN];
    int i, j;

    TRY(layered_cursor_open(s, uri, &c));
    memset(value, 'v', sizeof(value));
    for (i = 0; i < rows; i++) {
        for (j = 0; j < KEY_LEN; j += 8) {
            uint64_t x = (*rng ^= *rng << 13, *rng ^= *rng >> 7,
                          *rng ^= *rng << 17);
            memcpy(key + j, &x, 8);
        }
        memcpy(value, &i, sizeof(i));
        TRY(layered_cursor_insert(c, key, KEY_LEN, value, VALUE_LEN));
    }
    TRY(layered_cursor_close(c));
}

static uint64_t
dir_bytes(const char *dir, int ntables)
{
    char path[4096];
    struct stat st;
    uint64_t sum = 0;

    for (int i = 0; i < ntables; i++) {
        if ((size_t)snprintf(path, sizeof(path), "%s/shared/t%05d.stable",
                             dir, i) >= sizeof(path))
            die("path too long", ENAMETOOLONG);
        if (stat(path, &st) == 0)
            sum += (uint64_t)st.st_size;
    }
    return sum;
}

/*
 * scenario --
 *     Create ntables, then per run: fill the ingests (as follower), step
 *     up, record, step down.  Each run drains freshly written rows.
 */
static void
scenario(const char *base, const char *label, int ntables, int rows,
         int runs, int threads)
{
    char home[4096];
    layered_config cfg;
    layered_conn *conn;
    layered_session *s;
    layered_drain_stats ds;
    double rps[16], mbs[16], seq[16], ratio[16], per_table[16];
    uint64_t rng = 88172645463325252ull;
    int r, t;

    snprintf(home, sizeof(home), "%s/bench-drain-%s", base, label);
    {
        char cmd[4200];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", home);
        if (system(cmd) != 0)
            die("rm", 1);
    }
    layered_config_init(&cfg);
    cfg.sync = LAYERED_SYNC_NONE; /* loading speed; the drain always syncs */
    cfg.drain_threads = threads;
    TRY(layered_open(home, &cfg, &conn));
    TRY(layered_session_open(conn, &s));
    for (t = 0; t < ntables; t++) {
        char uri[64];
        snprintf(uri, sizeof(uri), "layered:t%05d", t);
        TRY(layered_create(s, uri, NULL));
    }
    for (r = 0; r < runs; r++) {
        uint64_t before, written;
        for (t = 0; t < ntables; t++) {
            char uri[64];
            snprintf(uri, sizeof(uri), "layered:t%05d", t);
            fill(s, uri, rows, &rng);
        }
        TRY(layered_checkpoint(s)); /* the ingest is on disk, not buffered */
        before = dir_bytes(home, ntables);
        TRY(layered_step_up(conn, &ds));
        written = dir_bytes(home, ntables) - before;
        if (ds.rows != (uint64_t)ntables * (uint64_t)rows)
            die("rows drained", EINVAL);
        rps[r] = ds.rows / (ds.elapsed_ns / 1e9);
        mbs[r] = written / 1e6 / (ds.elapsed_ns / 1e9);
        per_table[r] = ds.elapsed_ns / 1e3 / ntables;
        seq[r] = written / 1e6 / write_sync_seconds(home, written);
        ratio[r] = mbs[r] / seq[r];
        TRY(layered_step_down(conn));
    }
    TRY(layered_close(conn));
    qsort(rps, (size_t)runs, sizeof(double), cmp_double);
    qsort(mbs, (size_t)runs, sizeof(double), cmp_double);
    qsort(seq, (size_t)runs, sizeof(double), cmp_double);
    qsort(ratio, (size_t)runs, sizeof(double), cmp_double);
    qsort(per_table, (size_t)runs, sizeof(double), cmp_double);
    printf("%-6s %6d x %-8d %2d thr  %9.0f rows/s  %7.1f MB/s  "
           "write+sync %7.1f MB/s  drain/bandwidth %5.1f%% (%.1f..%.1f)  "
           "%7.1f us/table\n",
           label, ntables, rows, threads, rps[runs / 2], mbs[runs / 2],
           seq[runs / 2], 100 * ratio[runs / 2], 100 * ratio[0],
           100 * ratio[runs - 1], per_table[runs / 2]);
    {
        char cmd[4200];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", home);
        if (system(cmd) != 0)
            die("rm", 1);
    }
}

int
main(int argc, char *argv[])
{
    int runs = argc > 1 ? atoi(argv[1]) : 5;
    const char *dir = argc > 2 ? argv[2] : "/tmp";
    int ntables = getenv("BENCH_TABLES") ? atoi(getenv("BENCH_TABLES"))
                                         : 10000;

    if (runs < 1 || runs > 16)
        return 1;
    printf("step-up drain, median of %d runs (min..max of the ratio); MB are "
           "file bytes written to stable\n", runs);
    scenario(dir, "large", 1, 1000000, runs, 2);
    scenario(dir, "many", ntables, 100, runs, 2);
    return 0;
}
