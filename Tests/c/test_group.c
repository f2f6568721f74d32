/*
 * test_group.c -- group commit in the file store's write path (fs_group.c):
 * concurrent fs_put at every sync level, then a check of every acknowledged
 * row, the newest-LSN-wins rule and the log's LSN order on disk after a
 * reopen; concurrent puts beside compaction, clear-free syncs and deletes;
 * and a failing group write while other writers are in the same group.
 *
 * It reads fs_int.h for two things only: the record header layout (to walk
 * the log on disk) and the count of writers inside the gate (to know, with
 * no sleep, that the writers of a group have all queued).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs_int.h"
#include "testutil.h"

static uint64_t seed_state;
static _Atomic uint64_t lsn_counter;

#define THREADS 4
#define SHARED_KEYS 64

/* Failpoint state of the fault test. */
struct fault {
    fs_file *_Atomic f;
    const char *name;     /* the failpoint to fail */
    int error;
    _Atomic int fails;    /* how many more hits fail */
    _Atomic int hits;
    unsigned wait_writers; /* the second hit waits for this many writers */
};

/* Group writes made (for the report: how many puts shared a write). */
static _Atomic int writes_seen;

static int
fault_hook(void *arg, const char *name)
{
    struct fault *ft = arg;
    fs_file *f;
    int hit;

    if (strcmp(name, "fs.write") == 0)
        atomic_fetch_add(&writes_seen, 1);
    if (ft == NULL || ft->name == NULL || strcmp(name, ft->name) != 0)
        return 0;
    hit = atomic_fetch_add(&ft->hits, 1);
    /* The first hit is the group of the first writer alone; the others
     * queue behind it meanwhile.  The second hit belongs to the group that
     * holds all of them once every writer is inside the gate (each enters
     * it in the same glock hold that queues its record). */
    if (hit == 0 && (f = atomic_load(&ft->f)) != NULL)
        while (atomic_load(&f->gate_writers) < ft->wait_writers)
            sched_yield();
    if (atomic_load(&ft->fails) > 0) {
        atomic_fetch_sub(&ft->fails, 1);
        return ft->error;
    }
    return 0;
}

static fs_env
env_make(int sync, struct fault *ft)
{
    fs_env env;

    memset(&env, 0, sizeof(env));
    env.lsn = &lsn_counter;
    env.sync = sync;
    env.failpoint = fault_hook;
    env.failpoint_arg = ft;
    return env;
}

/* One acknowledged put. */
struct ack {
    unsigned char key[32];
    size_t klen;
    uint64_t lsn;
    uint32_t tag; /* the value's identity: thread << 20 | sequence */
};

struct writer {
    pthread_t tid;
    fs_file *f;
    int id, n;
    struct ack *acks;
    int nacks;
    int errors;
    int expect_error; /* the error a failed put may return (0: none) */
};

static size_t
val_make(uint32_t tag, unsigned char *v)
{
    size_t len = 8 + tag % 97, i;

    memcpy(v, &tag, 4);
    for (i = 4; i < len; i++)
        v[i] = (unsigned char)(tag * 31 + i);
    return len;
}

static void *
writer_main(void *arg)
{
    struct writer *w = arg;
    uint64_t s = seed_state + (uint64_t)w->id * 104729;
    unsigned char v[128];
    struct ack *a;
    size_t vlen;
    int i, ret;

    for (i = 0; i < w->n; i++) {
        a = &w->acks[w->nacks];
        /* Half the puts go to keys every thread writes, half to the
         * thread's own. */
        if (tu_rand(&s) % 2 == 0)
            a->klen = (size_t)sprintf((char *)a->key, "shared-%03d",
                                      (int)(tu_rand(&s) % SHARED_KEYS));
        else
            a->klen = (size_t)sprintf((char *)a->key, "own-%d-%06d", w->id,
                                      i);
        a->tag = (uint32_t)w->id << 20 | (uint32_t)i;
        vlen = val_make(a->tag, v);
        ret = fs_put(w->f, a->key, a->klen, v, vlen, &a->lsn);
        if (ret == 0)
            w->nacks++;
        else {
            CHECK(w->expect_error != 0 && ret == w->expect_error);
            w->errors++;
        }
    }
    return NULL;
}

static int
ack_cmp(const void *pa, const void *pb)
{
    const struct ack *a = pa, *b = pb;
    int c = fs_key_cmp(a->key, a->klen, b->key, b->klen);

    if (c != 0)
        return c;
    return a->lsn < b->lsn ? -1 : a->lsn > b->lsn;
}

/* Every acknowledged put, sorted by key then LSN. */
static struct ack *
acks_gather(struct writer *w, int nw, int *np)
{
    struct ack *all;
    int i, n = 0;

    for (i = 0; i < nw; i++)
        n += w[i].nacks;
    CHECK((all = malloc(sizeof(*all) * (size_t)(n > 0 ? n : 1))) != NULL);
    n = 0;
    for (i = 0; i < nw; i++) {
        memcpy(all + n, w[i].acks, sizeof(*all) * (size_t)w[i].nacks);
        n += w[i].nacks;
    }
    qsort(all, (size_t)n, sizeof(*all), ack_cmp);
    *np = n;
    return all;
}

/* The file's index holds exactly the acknowledged keys, each with the
 * value of its newest acknowledged put. */
static void
check_index(fs_file *f, const struct ack *all, int n, bool only_these)
{
    unsigned char want[128];
    fs_pos pos = {0};
    void *buf = NULL;
    size_t cap = 0, wlen;
    fs_info info;
    uint64_t keys = 0, max_lsn = 0;
    int i;

    for (i = 0; i < n; i++) {
        if (all[i].lsn > max_lsn)
            max_lsn = all[i].lsn;
        if (i + 1 < n && fs_key_cmp(all[i].key, all[i].klen, all[i + 1].key,
                                    all[i + 1].klen) == 0)
            continue; /* not the newest of its key */
        keys++;
        CHECK_OK(fs_seek(f, all[i].key, all[i].klen, FS_EQ, &pos));
        CHECK_OK(fs_read_value(f, &pos, &buf, &cap));
        wlen = val_make(all[i].tag, want);
        if (pos.vlen != wlen || memcmp(buf, want, wlen) != 0) {
            uint32_t got;
            memcpy(&got, buf, 4);
            fprintf(stderr, "key %.*s: value tag %08x, newest ack %08x\n",
                    (int)all[i].klen, all[i].key, got, all[i].tag);
            CHECK(!"the index holds the newest acknowledged value");
        }
    }
    fs_get_info(f, &info);
    CHECK(info.entries == keys);
    /* With other writes beside (only_these false), later LSNs may be
     * those of rows since deleted. */
    CHECK(only_these ? info.max_lsn == max_lsn : info.max_lsn >= max_lsn);
    fs_pos_free(&pos);
    free(buf);
}

static int
lsn_cmp(const void *pa, const void *pb)
{
    uint64_t a = *(const uint64_t *)pa, b = *(const uint64_t *)pb;

    return a < b ? -1 : a > b;
}

/* Walk the log on disk: a run of whole records with strictly increasing
 * LSNs (file order is LSN order: no group overtook another), exactly one
 * per acknowledged put, and nothing else. */
static void
check_log(const char *path, const struct ack *all, int n)
{
    unsigned char hdr[REC_HDR_SIZE];
    uint64_t *lsns, off = FILE_HDR_SIZE, prev = 0, lsn, size;
    struct stat st;
    uint32_t klen, vlen;
    int fd, i, recs = 0;

    CHECK((lsns = malloc(sizeof(*lsns) * (size_t)(n > 0 ? n : 1))) != NULL);
    for (i = 0; i < n; i++)
        lsns[i] = all[i].lsn;
    qsort(lsns, (size_t)n, sizeof(*lsns), lsn_cmp);
    CHECK((fd = open(path, O_RDONLY)) >= 0);
    CHECK(fstat(fd, &st) == 0);
    size = (uint64_t)st.st_size;
    while (off < size) {
        CHECK(pread(fd, hdr, sizeof(hdr), (off_t)off) == sizeof(hdr));
        memcpy(&lsn, hdr + 8, 8);
        memcpy(&klen, hdr + 16, 4);
        memcpy(&vlen, hdr + 20, 4);
        klen &= REC_KLEN_MASK;
        CHECK(lsn > prev);
        CHECK(recs < n && lsns[recs] == lsn);
        prev = lsn;
        recs++;
        off += rec_size(klen, vlen);
    }
    CHECK(off == size);
    CHECK(recs == n);
    CHECK(close(fd) == 0);
    free(lsns);
}

static void
writers_run(struct writer *w, int nw, fs_file *f, int n, int expect_error)
{
    int i;

    for (i = 0; i < nw; i++) {
        w[i].f = f;
        w[i].id = i;
        w[i].n = n;
        w[i].nacks = 0;
        w[i].errors = 0;
        w[i].expect_error = expect_error;
        CHECK((w[i].acks = calloc((size_t)n, sizeof(struct ack))) != NULL);
        CHECK(pthread_create(&w[i].tid, NULL, writer_main, &w[i]) == 0);
    }
}

static void
writers_join(struct writer *w, int nw)
{
    int i;

    for (i = 0; i < nw; i++)
        CHECK(pthread_join(w[i].tid, NULL) == 0);
}

static void
writers_free(struct writer *w, int nw)
{
    int i;

    for (i = 0; i < nw; i++)
        free(w[i].acks);
}

/*
 * test_concurrent --
 *     THREADS writers, shared and own keys, at one sync level; check the
 *     index, then reopen and check the index and the log again.
 */
static void
test_concurrent(const char *dir, int sync, int per_thread)
{
    struct writer w[THREADS];
    struct ack *all;
    fs_env env = env_make(sync, NULL);
    fs_file *f;
    char *path;
    int n, writes;

    CHECK(asprintf(&path, "%s/concurrent-%d", dir, sync) > 0);
    CHECK_OK(fs_open(path, FS_CREATE, &env, &f));
    atomic_store(&writes_seen, 0);
    writers_run(w, THREADS, f, per_thread, 0);
    writers_join(w, THREADS);
    writes = atomic_load(&writes_seen);
    all = acks_gather(w, THREADS, &n);
    CHECK(n == THREADS * per_thread);
    check_index(f, all, n, true);
    CHECK_OK(fs_close(f));
    check_log(path, all, n);
    CHECK_OK(fs_open(path, 0, &env, &f));
    check_index(f, all, n, true);
    CHECK_OK(fs_close(f));
    printf("test_group: concurrent (sync %d): %d puts in %d writes\n", sync,
           n, writes);
    free(all);
    writers_free(w, THREADS);
    free(path);
}

struct busy {
    fs_file *f;
    _Atomic bool stop;
    int compactions, syncs, deletes;
};

/* Exclusive operations beside group writers: forced compaction, sync, and
 * deletes of keys no writer uses (they must wait at the gate, or include
 * nothing in flight). */
static void *
busy_main(void *arg)
{
    struct busy *b = arg;
    unsigned char k[32];
    size_t klen;
    bool done;

    while (!atomic_load(&b->stop)) {
        CHECK_OK(fs_compact(b->f, true, &done));
        b->compactions++;
        CHECK_OK(fs_sync(b->f));
        b->syncs++;
        klen = (size_t)sprintf((char *)k, "zz-%d", b->deletes);
        CHECK_OK(fs_put(b->f, k, klen, "x", 1, NULL));
        CHECK_OK(fs_del(b->f, k, klen, false, NULL));
        b->deletes++;
    }
    return NULL;
}

static void
test_concurrent_exclusive(const char *dir, int sync)
{
    struct writer w[THREADS];
    struct busy b = {0};
    struct ack *all;
    fs_env env = env_make(sync, NULL);
    pthread_t tid;
    fs_file *f;
    char *path;
    int n;

    CHECK(asprintf(&path, "%s/exclusive-%d", dir, sync) > 0);
    CHECK_OK(fs_open(path, FS_CREATE, &env, &f));
    b.f = f;
    CHECK(pthread_create(&tid, NULL, busy_main, &b) == 0);
    writers_run(w, THREADS, f, 3000, 0);
    writers_join(w, THREADS);
    atomic_store(&b.stop, true);
    CHECK(pthread_join(tid, NULL) == 0);
    all = acks_gather(w, THREADS, &n);
    CHECK(n == THREADS * 3000);
    check_index(f, all, n, false);
    CHECK_OK(fs_close(f));
    CHECK_OK(fs_open(path, 0, &env, &f));
    check_index(f, all, n, false);
    CHECK_OK(fs_close(f));
    printf("test_group: beside exclusive operations (sync %d): %d puts, "
           "%d compactions, %d syncs, %d deletes\n",
           sync, n, b.compactions, b.syncs, b.deletes);
    free(all);
    writers_free(w, THREADS);
    free(path);
}

/*
 * test_group_fault --
 *     The first writer's group fails at `name`; while it is in its write,
 *     the other writers queue into the next group, which fails too (every
 *     one of them gets the error: two failpoint hits for THREADS puts prove
 *     they shared one write).  Nothing of either group is visible, counted
 *     or on disk, and the writes after them land at the offsets the failed
 *     groups would have taken.
 */
static void
test_group_fault(const char *dir, int sync, const char *name)
{
    struct fault ft = {.name = name, .error = EIO};
    struct writer w[THREADS];
    struct ack *all;
    fs_env env = env_make(sync, &ft);
    fs_info info;
    fs_file *f;
    char *path;
    uint64_t size;
    int i, n, errors = 0;

    CHECK(asprintf(&path, "%s/fault-%d-%s", dir, sync, name) > 0);
    CHECK_OK(fs_open(path, FS_CREATE, &env, &f));
    fs_get_info(f, &info);
    size = info.file_bytes;
    atomic_store(&ft.hits, 0);
    atomic_store(&ft.fails, 2);
    ft.wait_writers = THREADS;
    atomic_store(&ft.f, f);
    writers_run(w, THREADS, f, 1, EIO);
    writers_join(w, THREADS);
    for (i = 0; i < THREADS; i++)
        errors += w[i].errors;
    CHECK(errors == THREADS);
    CHECK(atomic_load(&ft.hits) == 2);
    fs_get_info(f, &info);
    CHECK(info.entries == 0 && info.file_bytes == size &&
          info.live_bytes == 0);
    writers_free(w, THREADS);

    /* The next writes succeed, written where the failed groups were. */
    atomic_store(&ft.f, NULL);
    writers_run(w, THREADS, f, 200, 0);
    writers_join(w, THREADS);
    all = acks_gather(w, THREADS, &n);
    CHECK(n == THREADS * 200);
    check_index(f, all, n, true);
    CHECK_OK(fs_close(f));
    check_log(path, all, n);
    CHECK_OK(fs_open(path, 0, &env, &f));
    check_index(f, all, n, true);
    CHECK_OK(fs_close(f));
    printf("test_group: failed group (sync %d, %s): %d failed together\n",
           sync, name, THREADS - 1);
    free(all);
    writers_free(w, THREADS);
    free(path);
}

int
main(void)
{
    char *dir;

    seed_state = tu_seed("test_group");
    dir = tu_mkdtemp("group");

    test_concurrent(dir, LAYERED_SYNC_NONE, 5000);
    test_concurrent(dir, LAYERED_SYNC_WRITE, 5000);
    test_concurrent(dir, LAYERED_SYNC_FSYNC, 200);
    test_concurrent_exclusive(dir, LAYERED_SYNC_WRITE);
    test_group_fault(dir, LAYERED_SYNC_WRITE, "fs.write");
    test_group_fault(dir, LAYERED_SYNC_FSYNC, "fs.write");
    test_group_fault(dir, LAYERED_SYNC_FSYNC, "fs.sync");

    tu_rmdir(dir);
    free(dir);
    printf("test_group: all tests passed\n");
    return 0;
}
