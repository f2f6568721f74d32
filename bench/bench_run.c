/*
 * bench_run.c -- immutable sorted runs (CLayered/fs_run.c) on their own:
 * writing `rows` sorted rows as one run and syncing it, opening it, random
 * point lookups through the mapping, and a full ordered walk.  Next to it,
 * the same bytes written raw in 1 MiB writes and synced, in the same run.
 *
 * usage: bench_run [rows [runs [dir]]]
 *     rows  rows (default 1000000), keys 16 bytes, values 100 bytes
 *     runs  repetitions; medians are reported (default 5)
 *     dir   scratch directory (default $TMPDIR or /tmp)
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "fs_run.h"
#include "bench_util.h"
#include "layered.h"

#define KLEN 16
#define VLEN 100
#define MAX_RUNS 15

/* Row i's key: big-endian i behind a fixed prefix, so keys ascend with i. */
static void
row_key(uint64_t i, unsigned char *key)
{
    memcpy(key, "run-key-", 8);
    for (int b = 0; b < 8; b++)
        key[8 + b] = (unsigned char)(i >> (56 - 8 * b));
}

int
main(int argc, char **argv)
{
    size_t rows = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000000;
    int runs = argc > 2 ? atoi(argv[2]) : 5;
    const char *base = argc > 3 ? argv[3] : getenv("TMPDIR");
    double t_write[MAX_RUNS], t_raw[MAX_RUNS], t_open[MAX_RUNS],
        t_get[MAX_RUNS], t_walk[MAX_RUNS];
    unsigned char key[KLEN], value[VLEN];
    char path[4000], raw[4096];
    uint64_t seed = 88172645463325252ull, length = 0, blocks = 0;
    double mb;
    int r;

    if (rows == 0 || runs < 1 || runs > MAX_RUNS) {
        fprintf(stderr, "usage: bench_run [rows [runs (1-%d) [dir]]]\n",
                MAX_RUNS);
        return 2;
    }
    (void)snprintf(path, sizeof(path), "%s/bench-run.%d",
                   base != NULL ? base : "/tmp", (int)getpid());
    (void)snprintf(raw, sizeof(raw), "%s.raw", path);
    memset(value, 'v', sizeof(value));

    for (r = 0; r < runs; r++) {
        run_writer *w;
        run_info info;
        run_iter it;
        run_row row;
        unsigned char *map, *buf;
        size_t i, n, done;
        double t0;
        run *rn;
        int fd;

        /* Write and sync the run. */
        if ((fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644)) < 0) {
            perror(path);
            return 1;
        }
        t0 = bench_now();
        BENCH_OK(run_writer_open(NULL, fd, 0, 1, 1, &w));
        for (i = 0; i < rows; i++) {
            row_key(i, key);
            BENCH_OK(run_writer_add(w, key, KLEN, value, VLEN, RUN_PUT, i + 1));
        }
        BENCH_OK(run_writer_finish(w, &info));
        run_writer_free(w);
        if (fdatasync(fd) != 0) {
            perror("fdatasync");
            return 1;
        }
        t_write[r] = bench_now() - t0;
        length = info.length;
        blocks = info.blocks;

        /* The same bytes, raw: 1 MiB writes and one sync. */
        {
            int rfd = open(raw, O_WRONLY | O_CREAT | O_TRUNC, 0644);

            if (rfd < 0 || (buf = calloc(1, 1 << 20)) == NULL) {
                perror(raw);
                return 1;
            }
            t0 = bench_now();
            for (done = 0; done < length; done += n) {
                n = length - done < (1u << 20) ? length - done : (1u << 20);
                if (write(rfd, buf, n) != (ssize_t)n) {
                    perror("write");
                    return 1;
                }
            }
            if (fdatasync(rfd) != 0) {
                perror("fdatasync");
                return 1;
            }
            t_raw[r] = bench_now() - t0;
            free(buf);
            (void)close(rfd);
        }

        t0 = bench_now();
        map = mmap(NULL, length, PROT_READ, MAP_SHARED, fd, 0);
        if (map == MAP_FAILED) {
            perror("mmap");
            return 1;
        }
        BENCH_OK(run_open(map, length, &rn, NULL, NULL));
        t_open[r] = bench_now() - t0;

        t0 = bench_now();
        for (i = 0; i < rows; i++) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            row_key(seed % rows, key);
            BENCH_OK(run_get(rn, key, KLEN, &row, NULL));
        }
        t_get[r] = bench_now() - t0;

        t0 = bench_now();
        memset(&it, 0, sizeof(it));
        n = 0;
        for (int ret = run_iter_seek(rn, &it, NULL, 0, NULL); ret == 0;
             ret = run_iter_next(&it, NULL))
            n++;
        t_walk[r] = bench_now() - t0;
        if (n != rows) {
            fprintf(stderr, "bench_run: the walk saw %zu of %zu rows\n", n,
                    rows);
            return 1;
        }
        run_iter_free(&it);
        run_close(rn);
        (void)munmap(map, length);
        (void)close(fd);
        (void)unlink(path);
        (void)unlink(raw);
    }

    mb = (double)length / 1e6;
    printf("bench_run: %zu rows of %d+%d bytes: a run of %.1f MB in %llu "
           "blocks (%.2f bytes per row), %d runs, medians\n", rows, KLEN, VLEN,
           mb, (unsigned long long)blocks, (double)length / (double)rows,
           runs);
    printf("%-44s %14s %10s\n", "", "rows/s", "MB/s");
    printf("%-44s %14.0f %10.1f\n", "write the run + fdatasync",
           rows / bench_median(t_write, runs), mb / bench_median(t_write, runs));
    printf("%-44s %14s %10.1f\n", "raw 1 MiB writes of as many bytes + sync",
           "", mb / bench_median(t_raw, runs));
    printf("%-44s %14.2f\n", "run / raw", bench_median(t_raw, runs) /
           bench_median(t_write, runs));
    printf("%-44s %14.3f ms\n", "open (footer, index, filter checked)",
           bench_median(t_open, runs) * 1e3);
    printf("%-44s %14.0f\n", "random lookups (mapped, first touch checks)",
           rows / bench_median(t_get, runs));
    printf("%-44s %14.0f\n", "ordered walk", rows / bench_median(t_walk, runs));
    printf("%-44s %14.2f\n", "resident index bytes per row (block index)",
           (double)blocks * 32.0 / (double)rows);
    return 0;
}
