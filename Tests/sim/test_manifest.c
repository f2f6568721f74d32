/*
 * test_manifest.c -- manifests and pointer records (CLayered/manifest.h)
 * under the simulated disk.
 *
 * 1. A power cut before each call, and a fault at each call, of a store's
 *    life: record 0 and manifest 0 created, three publishes.  After the
 *    reboot the latest record must read whole (never torn), name a
 *    manifest that reads whole and is one of those published, and be at
 *    least the last publish that returned 0.
 * 2. Two writers publishing from the same latest record: exactly one wins,
 *    the other gets EEXIST and leaves no manifest behind; a deposed leader
 *    (older epoch) cannot publish over a takeover.
 * 3. Damaged manifests and records are LAYERED_CORRUPT.
 *
 * Built against a mutant of manifest.c (Tests/sim/mutants.sh, workload
 * "manifest") it must report a VIOLATION.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layered.h"
#include "manifest.h"
#include "simdisk.h"

#define DIR_PATH "/sim"
#define PUBLISHES 3

static uint64_t violations, points;

static void
violation(const char *what, const char *fmt, const char *detail)
{
    fprintf(stderr, "VIOLATION [%s]: %s%s\n", what, fmt, detail);
    violations++;
}

/* Manifest number s of the workload: s tables, table i with i + 1 runs. */
static struct mf *
make_mf(uint64_t seq)
{
    struct mf *m = calloc(1, sizeof(*m));
    char name[32];

    if (m == NULL)
        abort();
    m->epoch = 1;
    m->seq = seq;
    m->ntables = (size_t)seq;
    if (seq > 0 && (m->tables = calloc(seq, sizeof(*m->tables))) == NULL)
        abort();
    for (size_t i = 0; i < seq; i++) {
        struct mf_table *t = &m->tables[i];

        (void)snprintf(name, sizeof(name), "t%zu", i);
        if ((t->name = strdup(name)) == NULL)
            abort();
        t->id = 10 + i;
        t->drained_lsn = 100 * seq + i;
        t->nruns = i + 1;
        if ((t->runs = calloc(t->nruns, sizeof(*t->runs))) == NULL)
            abort();
        for (size_t j = 0; j < t->nruns; j++) {
            (void)snprintf(t->runs[j].file, sizeof(t->runs[j].file),
                           "1-%zu.run", j);
            t->runs[j].off = 4096 * j;
            t->runs[j].len = 4096;
            t->runs[j].min_lsn = j;
            t->runs[j].max_lsn = j + 5;
            t->runs[j].rows = 7;
        }
    }
    return m;
}

/* Does m equal make_mf(seq)?  By their encodings. */
static bool
same_as(const struct mf *m, uint64_t seq)
{
    struct mf *want = make_mf(seq);
    unsigned char *a, *b;
    size_t alen, blen;
    bool same;

    if (mf_encode(m, &a, &alen) != 0 || mf_encode(want, &b, &blen) != 0)
        abort();
    same = alen == blen && memcmp(a, b, alen) == 0;
    free(a);
    free(b);
    mf_free(want);
    return same;
}

/* The store's life; returns the seq of the last publish that returned 0
 * (-1: not even the creation). */
static int64_t
life(int dirfd)
{
    struct mf_ptr latest, next;
    struct mf *m;
    int64_t done = -1;
    int ret;

    m = make_mf(0);
    ret = mf_write(&sim_os, dirfd, m);
    mf_free(m);
    if (ret != 0)
        return done;
    memset(&latest, 0, sizeof(latest));
    latest.n = 0;
    latest.epoch = 1;
    latest.holder = 0xa;
    mf_name(latest.manifest, sizeof(latest.manifest), 1, 0);
    if (mf_ptr_create(&sim_os, dirfd, &latest) != 0)
        return done;
    done = 0;
    for (uint64_t s = 1; s <= PUBLISHES; s++) {
        m = make_mf(s);
        ret = mf_publish(&sim_os, dirfd, &latest, m, 1000 * s, &next);
        mf_free(m);
        if (ret != 0)
            return done;
        latest = next;
        done = (int64_t)s;
    }
    return done;
}

static void
cut_point(const char *kind, uint64_t k, uint64_t seed, uint64_t *callsp)
{
    char what[200];
    struct mf_ptr p;
    struct mf *m;
    int dirfd, ret;
    int64_t done, seq;

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
    /* The open is the first counted call: it may be the one that fails. */
    if ((dirfd = sim_os.open(DIR_PATH, O_RDONLY | O_DIRECTORY, 0)) < 0)
        done = -1;
    else {
        done = life(dirfd);
        (void)sim_os.close(dirfd);
    }
    if (callsp != NULL)
        *callsp = sim_calls();
    (void)snprintf(what, sizeof(what), "%s at call %" PRIu64 " seed %" PRIu64
                   " (%s), last publish returned 0: %" PRId64, kind, k, seed,
                   sim_last_event(), done);
    if (strcmp(kind, "fail") != 0 && strcmp(kind, "cut") != 0 &&
        done != PUBLISHES)
        violation(what, "fails without a fault", "");
    sim_cut_now();
    sim_disarm();
    sim_reboot();
    points++;
    if ((dirfd = sim_os.open(DIR_PATH, O_RDONLY | O_DIRECTORY, 0)) < 0) {
        violation(what, "the directory is gone", "");
        return;
    }
    ret = mf_ptr_latest(&sim_os, dirfd, 0, &p);
    if (ret == ENOENT) {
        if (done >= 0)
            violation(what, "record 0 was created, and is gone", "");
        (void)sim_os.close(dirfd);
        return;
    }
    if (ret != 0) {
        violation(what, "the latest record does not read: ",
                  layered_strerror(ret));
        (void)sim_os.close(dirfd);
        return;
    }
    if ((ret = mf_read(&sim_os, dirfd, p.manifest, &m, NULL, NULL)) != 0) {
        violation(what, "the latest record names a manifest that does not "
                  "read: ", layered_strerror(ret));
        (void)sim_os.close(dirfd);
        return;
    }
    seq = (int64_t)m->seq;
    if (p.n != (uint64_t)seq || !same_as(m, m->seq))
        violation(what, "the latest record's manifest is not the one "
                  "published", "");
    if (seq < done)
        violation(what, "an acknowledged publish was lost", "");
    mf_free(m);
    (void)sim_os.close(dirfd);
}

/* Two writers from one latest record; a deposed leader. */
static void
races(void)
{
    struct mf_ptr base, a, b, take, after;
    struct mf *m;
    char name[MF_NAME_MAX + 1];
    int dirfd, ra, rb;

    sim_reset(1);
    if (sim_os.mkdir(DIR_PATH, 0755) != 0 ||
        (dirfd = sim_os.open(DIR_PATH, O_RDONLY | O_DIRECTORY, 0)) < 0)
        abort();
    m = make_mf(0);
    if (mf_write(&sim_os, dirfd, m) != 0)
        abort();
    mf_free(m);
    memset(&base, 0, sizeof(base));
    base.epoch = 1;
    base.holder = 0xa;
    mf_name(base.manifest, sizeof(base.manifest), 1, 0);
    if (mf_ptr_create(&sim_os, dirfd, &base) != 0)
        abort();

    /* Two writers, one number. */
    m = make_mf(1);
    ra = mf_publish(&sim_os, dirfd, &base, m, 1, &a);
    mf_free(m);
    m = make_mf(2);
    rb = mf_publish(&sim_os, dirfd, &base, m, 2, &b);
    mf_free(m);
    if (ra != 0 || rb != EEXIST)
        violation("race", "two publishes from one record: both won or "
                  "neither", "");
    mf_name(name, sizeof(name), 1, 2);
    if (sim_exists(DIR_PATH "/MANIFEST-00000000000000000001-"
                            "00000000000000000002"))
        violation("race", "the losing publish left its manifest: ", name);

    /* A takeover (epoch 2) after record 1; the old leader, still holding
     * its view of record 1, cannot publish any more. */
    memset(&take, 0, sizeof(take));
    take.n = a.n + 1;
    take.epoch = 2;
    take.holder = 0xb;
    (void)snprintf(take.manifest, sizeof(take.manifest), "%s", a.manifest);
    if (mf_ptr_create(&sim_os, dirfd, &take) != 0)
        violation("race", "the takeover record was refused", "");
    m = make_mf(3);
    if (mf_publish(&sim_os, dirfd, &a, m, 3, &after) != EEXIST)
        violation("race", "a deposed leader published over the takeover",
                  "");
    mf_free(m);
    if (mf_ptr_latest(&sim_os, dirfd, 0, &after) != 0 || after.epoch != 2 ||
        after.holder != 0xb)
        violation("race", "the latest record is not the takeover", "");
    (void)sim_os.close(dirfd);
}

/* Every single-byte change of a manifest's encoding is caught. */
static void
damage(void)
{
    struct mf *m = make_mf(3), *got;
    unsigned char *buf;
    size_t len;

    if (mf_encode(m, &buf, &len) != 0)
        abort();
    if (mf_decode(buf, len, &got, NULL, NULL) != 0 || !same_as(got, 3))
        violation("damage", "a manifest does not round-trip", "");
    mf_free(got);
    for (size_t i = 0; i < len; i++) {
        buf[i] ^= 0x20;
        if (mf_decode(buf, len, &got, NULL, NULL) != LAYERED_CORRUPT)
            violation("damage", "a changed byte was not caught", "");
        buf[i] ^= 0x20;
    }
    for (size_t cut = 0; cut < len; cut += 7)
        if (mf_decode(buf, cut, &got, NULL, NULL) != LAYERED_CORRUPT)
            violation("damage", "a truncated manifest was not caught", "");
    free(buf);
    mf_free(m);
}

int
main(int argc, char **argv)
{
    int seeds = argc > 1 ? atoi(argv[1]) : 10;
    uint64_t n = 0;

    cut_point("count", 0, 1, &n);
    for (int s = 0; s < 5 * seeds; s++)
        cut_point("done", 0, 700000 + (uint64_t)s, NULL);
    for (uint64_t k = 0; k < n; k++) {
        cut_point("fail", k, 9 + k, NULL);
        for (int s = 0; s < seeds; s++)
            cut_point("cut", k, 2000 * k + (uint64_t)s, NULL);
    }
    races();
    damage();
    printf("test_manifest: %" PRIu64 " calls, %" PRIu64 " power-cut and "
           "fault points, races, damage: %" PRIu64 " violation%s\n", n, points,
           violations, violations == 1 ? "" : "s");
    return violations == 0 ? 0 : 1;
}
