/*
 * bench_reopen.c -- what a reopen costs: close a database holding one
 * table of `rows` rows in its stable constituent, then open it again and
 * read one row (the first access opens the table's files and loads their
 * index).  Prints the median time of the open, of the first read and of
 * both, and the resident memory the loaded table adds per key.
 *
 * usage: bench_reopen [rows [runs [dir]]]
 *     rows  rows in the table (default 1000000)
 *     runs  reopens; the median is reported (default 5)
 *     dir   scratch directory (default $TMPDIR or /tmp)
 * Keys are 16 bytes, values 100 bytes.  The files stay in the page cache
 * between reopens, so the figure is the engine's own work (reading and
 * checking every record today), not the disk's.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"
#include "layered.h"

#define KLEN 16
#define VLEN 100
#define MAX_RUNS 15

/* Resident set size in bytes (/proc/self/statm). */
static double
rss_bytes(void)
{
    unsigned long size, resident;
    FILE *fp;

    if ((fp = fopen("/proc/self/statm", "r")) == NULL)
        return 0;
    if (fscanf(fp, "%lu %lu", &size, &resident) != 2)
        resident = 0;
    (void)fclose(fp);
    return (double)resident * (double)sysconf(_SC_PAGESIZE);
}

static void
row_key(size_t i, unsigned char *key)
{
    uint64_t x = (uint64_t)i * 0x9e3779b97f4a7c15ull;

    /* A big-endian row number behind a scrambled prefix: unique keys in
     * random order. */
    for (int b = 0; b < 8; b++) {
        key[b] = (unsigned char)(x >> (56 - 8 * b));
        key[8 + b] = (unsigned char)((uint64_t)i >> (56 - 8 * b));
    }
}

static void
open_db(const char *home, int role, layered_conn **connp)
{
    layered_config cfg;

    layered_config_init(&cfg);
    cfg.role = role;
    cfg.sync = LAYERED_SYNC_NONE;
    BENCH_OK(layered_open(home, &cfg, connp));
}

int
main(int argc, char **argv)
{
    size_t rows = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000000;
    int runs = argc > 2 ? atoi(argv[2]) : 5;
    const char *base = argc > 3 ? argv[3] : getenv("TMPDIR");
    double t_open[MAX_RUNS], t_read[MAX_RUNS], t_all[MAX_RUNS];
    double rss_added[MAX_RUNS];
    unsigned char key[KLEN], value[VLEN];
    char home[4096], cmd[4200];
    layered_conn *conn;
    layered_session *s;
    layered_cursor *c;
    double t0, t1, t2, before;
    size_t i;
    int r;

    if (rows == 0 || runs < 1 || runs > MAX_RUNS) {
        fprintf(stderr, "usage: bench_reopen [rows [runs (1-%d) [dir]]]\n",
                MAX_RUNS);
        return 2;
    }
    (void)snprintf(home, sizeof(home), "%s/layered-reopen.XXXXXX",
                   base != NULL ? base : "/tmp");
    if (mkdtemp(home) == NULL) {
        perror("mkdtemp");
        return 1;
    }

    /* Load as leader: the rows land in the stable constituent. */
    memset(value, 'v', sizeof(value));
    open_db(home, LAYERED_ROLE_LEADER, &conn);
    BENCH_OK(layered_session_open(conn, &s));
    BENCH_OK(layered_create(s, "layered:t", NULL));
    BENCH_OK(layered_cursor_open(s, "layered:t", &c));
    t0 = bench_now();
    for (i = 0; i < rows; i++) {
        row_key(i, key);
        BENCH_OK(layered_cursor_insert(c, key, KLEN, value, VLEN));
    }
    BENCH_OK(layered_cursor_close(c));
    BENCH_OK(layered_checkpoint(s));
    BENCH_OK(layered_close(conn));
    printf("bench_reopen: %zu rows of %d+%d bytes loaded in %.1f s, %d "
           "reopens\n", rows, KLEN, VLEN, bench_now() - t0, runs);

    for (r = 0; r < runs; r++) {
        int exact;

        before = rss_bytes();
        t0 = bench_now();
        open_db(home, LAYERED_ROLE_LEADER, &conn);
        t1 = bench_now();
        BENCH_OK(layered_session_open(conn, &s));
        BENCH_OK(layered_cursor_open(s, "layered:t", &c));
        row_key(rows / 2, key);
        BENCH_OK(layered_cursor_search_near(c, key, KLEN, &exact));
        t2 = bench_now();
        if (exact != 0) {
            fprintf(stderr, "bench_reopen: row %zu not found\n", rows / 2);
            return 1;
        }
        rss_added[r] = (rss_bytes() - before) / (double)rows;
        BENCH_OK(layered_cursor_close(c));
        BENCH_OK(layered_close(conn));
        t_open[r] = (t1 - t0) * 1e3;
        t_read[r] = (t2 - t1) * 1e3;
        t_all[r] = (t2 - t0) * 1e3;
    }

    printf("%-44s %12s\n", "reopen, median of runs", "ms");
    printf("%-44s %12.2f\n", "layered_open", bench_median(t_open, runs));
    printf("%-44s %12.2f\n", "first read (opens the table, loads its index)",
           bench_median(t_read, runs));
    printf("%-44s %12.2f\n", "open + first read", bench_median(t_all, runs));
    printf("%-44s %12.2f\n", "open + first read, per million keys",
           bench_median(t_all, runs) * 1e6 / (double)rows);
    printf("%-44s %12.1f\n", "resident bytes per key after the load",
           bench_median(rss_added, runs));

    (void)snprintf(cmd, sizeof(cmd), "rm -rf '%s'", home);
    return system(cmd) == 0 ? 0 : 1;
}
