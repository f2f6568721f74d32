/*
 * test_runfile.c -- run files (CLayered/fs_run.h) under the simulated disk:
 * a power cut before each of the writer's calls, and an I/O fault at each
 * of them, then a reboot and an open of what survived.
 *
 * The promise checked: once run_file_finish returned 0, the file opens and
 * holds every run and every row exactly, whatever is cut after; before
 * that (or when it returned an error) the name is absent, or what it names
 * fails to open with LAYERED_CORRUPT -- or opens whole and exact (a cut
 * after the last sync but before the return).  Never a file that opens
 * with some runs or rows missing or wrong.
 *
 * usage: test_runfile [seeds]   (power cuts per call, default 20; ten
 *                               times as many after a finished write)
 * Built against a mutant of fs_run.c (Tests/sim/mutants.sh, workload
 * "runfile"), it must report a VIOLATION.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs_run.h"
#include "layered.h"
#include "simdisk.h"

#define DIR_PATH "/sim"
#define NAME "1-1.run"
#define TABLES 3

static const size_t rows_per_table[TABLES] = {5, 900, 40};
static uint64_t violations, points;

static void
key_of(size_t t, size_t i, char *buf, size_t *lenp)
{
    *lenp = (size_t)snprintf(buf, 32, "t%zu-key-%06zu", t, i);
}

static void
value_of(size_t t, size_t i, char *buf, size_t *lenp)
{
    size_t n = 20 + (i * 7 + t) % 90;

    for (size_t j = 0; j < n; j++)
        buf[j] = (char)('a' + (i + j + t) % 26);
    *lenp = n;
}

/* Write the file: 0 if run_file_finish returned 0. */
static int
write_file(int dirfd)
{
    run_file_writer *fw;
    run_writer *w;
    char k[32], v[128];
    size_t klen, vlen;
    int ret;

    if ((ret = run_file_create(&sim_os, dirfd, NAME, &fw)) != 0)
        return ret;
    for (size_t t = 0; t < TABLES; t++) {
        if ((ret = run_file_add_run(fw, 100 + t, 1, &w)) != 0) {
            run_file_abort(fw);
            return ret;
        }
        for (size_t i = 0; i < rows_per_table[t] && ret == 0; i++) {
            key_of(t, i, k, &klen);
            value_of(t, i, v, &vlen);
            ret = run_writer_add(w, k, klen, v, vlen, RUN_PUT, i + 1);
        }
        if (ret != 0) {
            run_writer_free(w);
            run_file_abort(fw);
            return ret;
        }
        if ((ret = run_file_end_run(fw, w, NULL)) != 0) {
            run_file_abort(fw);
            return ret;
        }
    }
    return run_file_finish(fw);
}

/* Open what survived: 0 whole and exact, 1 absent or refused as damaged,
 * -1 a violation (opens but differs, or fails otherwise). */
static int
check_file(int dirfd, const char *what)
{
    const char *why = NULL;
    uint64_t off = 0, id;
    run_file *rf;
    run_iter it;
    int ret;

    ret = run_file_open(&sim_os, dirfd, NAME, &rf, &why, &off);
    if (ret == ENOENT || ret == LAYERED_CORRUPT)
        return 1;
    if (ret != 0) {
        fprintf(stderr, "VIOLATION [%s]: open: %s\n", what,
                layered_strerror(ret));
        return -1;
    }
    if (run_file_count(rf) != TABLES) {
        fprintf(stderr, "VIOLATION [%s]: %zu runs, %d written\n", what,
                run_file_count(rf), TABLES);
        run_file_close(rf);
        return -1;
    }
    for (size_t t = 0; t < TABLES; t++) {
        run *r = run_file_run(rf, t, &id);
        size_t i = 0;

        memset(&it, 0, sizeof(it));
        for (ret = run_iter_seek(r, &it, NULL, 0, NULL); ret == 0;
             ret = run_iter_next(&it, NULL), i++) {
            char k[32], v[128];
            size_t klen, vlen;

            key_of(t, i, k, &klen);
            value_of(t, i, v, &vlen);
            if (i >= rows_per_table[t] || it.row.klen != klen ||
                memcmp(it.row.key, k, klen) != 0 || it.row.vlen != vlen ||
                memcmp(it.row.val, v, vlen) != 0)
                break;
        }
        run_iter_free(&it);
        if (id != 100 + t || ret != LAYERED_NOTFOUND ||
            i != rows_per_table[t]) {
            fprintf(stderr, "VIOLATION [%s]: run %zu (table %" PRIu64
                    ") opens but holds %zu good rows of %zu (%s)\n", what, t,
                    id, i, rows_per_table[t], layered_strerror(ret));
            run_file_close(rf);
            return -1;
        }
    }
    run_file_close(rf);
    return 0;
}

static int
open_dir(void)
{
    return sim_os.open(DIR_PATH, O_RDONLY | O_DIRECTORY, 0);
}

/* One point: kind "count", "cut" or "fail" at call k. */
static void
run_point(const char *kind, uint64_t k, uint64_t seed, uint64_t *callsp)
{
    char what[160];
    int dirfd, ret, got;
    bool acked;

    sim_reset(seed);
    if (sim_os.mkdir(DIR_PATH, 0755) != 0 ||
        (dirfd = sim_os.open("/", O_RDONLY | O_DIRECTORY, 0)) < 0 ||
        sim_os.fsync(dirfd) != 0 || sim_os.close(dirfd) != 0)
        abort();
    sim_count_restart();
    if (strcmp(kind, "cut") == 0)
        sim_cut_at(k);
    else if (strcmp(kind, "fail") == 0)
        sim_fail_at(k, (enum sim_fault)(1 + k % 4));
    if ((dirfd = open_dir()) < 0)
        ret = errno;
    else {
        ret = write_file(dirfd);
        (void)sim_os.close(dirfd);
    }
    acked = ret == 0 && !sim_power_is_cut();
    if (callsp != NULL)
        *callsp = sim_calls();
    (void)snprintf(what, sizeof(what), "%s at call %" PRIu64 " seed %" PRIu64
                   " (%s), finish %s", kind, k, seed, sim_last_event(),
                   acked ? "returned 0" : layered_strerror(ret));
    if ((strcmp(kind, "count") == 0 || strcmp(kind, "done") == 0) &&
        ret != 0) {
        fprintf(stderr, "VIOLATION [%s]: fails without a fault\n", what);
        violations++;
    }
    /* Whatever happened, the power goes now; then the survivors. */
    sim_cut_now();
    sim_disarm();
    sim_reboot();
    if ((dirfd = open_dir()) < 0) {
        fprintf(stderr, "VIOLATION [%s]: the directory is gone\n", what);
        violations++;
        return;
    }
    got = check_file(dirfd, what);
    (void)sim_os.close(dirfd);
    if (got < 0)
        violations++;
    else if (acked && got != 0) {
        fprintf(stderr, "VIOLATION [%s]: finished, but after the cut the "
                "file is absent or damaged\n", what);
        violations++;
    }
    points++;
}

int
main(int argc, char **argv)
{
    int seeds = argc > 1 ? atoi(argv[1]) : 20;
    uint64_t n = 0;

    run_point("count", 0, 1, &n);
    /* Finished, then the power cut: what survives is the durable state,
     * with a different choice of unsynced survivors per seed. */
    for (int s = 0; s < 10 * seeds; s++)
        run_point("done", 0, 500000 + (uint64_t)s, NULL);
    for (uint64_t k = 0; k < n; k++) {
        run_point("fail", k, 7 + k, NULL);
        for (int s = 0; s < seeds; s++)
            run_point("cut", k, 1000 * k + (uint64_t)s, NULL);
    }
    printf("test_runfile: %" PRIu64 " calls, %" PRIu64 " points (faults and "
           "%d power cuts per call): %" PRIu64 " violation%s\n", n, points,
           seeds, violations, violations == 1 ? "" : "s");
    return violations == 0 ? 0 : 1;
}
