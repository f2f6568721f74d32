/*
 * bench_dhandle.c -- handle lookups per second.
 *
 *   1. Layered's handle table (cds_lfht under urcu-memb, lookup + pin +
 *      unpin, exactly what every cursor open does) on 400 open handles;
 *   2. the same lookups in a chained hash table protected by a
 *      pthread_rwlock (read-locked per lookup), the usual alternative;
 *   3. the bare cds_lfht lookup under the two RCU flavours the library
 *      could use: urcu-memb (registered threads; the library registers
 *      lazily and unregisters at thread exit) and urcu-bp (registers by
 *      itself on the first read lock).
 * Each at 1 and 2 threads, median of 5 runs of 0.5 s, all in one run.
 *
 *   ./bench_dhandle [runs]
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include <urcu/urcu-bp.h>

extern const struct rcu_flavor_struct urcu_memb_flavor, urcu_bp_flavor;

#define NTABLES 200 /* 400 handles: all stay open (the sweep keeps 512) */
#define NNAMES (NTABLES * 2)
#define RUN_NS 500000000ull

static char names[NNAMES][48];
static layered_conn *conn;

static uint64_t
now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- the pthread_rwlock hash table ---- */
struct rw_entry {
    struct rw_entry *next;
    const char *name;
    _Atomic int64_t pins;
};
#define RW_BUCKETS 4096
static struct rw_entry *rw_table[RW_BUCKETS];
static pthread_rwlock_t rw_lock = PTHREAD_RWLOCK_INITIALIZER;

static unsigned long
hash_name(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ULL;
    }
    return (unsigned long)h;
}

static struct rw_entry *
rw_find(const char *name)
{
    struct rw_entry *e;

    pthread_rwlock_rdlock(&rw_lock);
    for (e = rw_table[hash_name(name) % RW_BUCKETS]; e != NULL; e = e->next)
        if (strcmp(e->name, name) == 0) {
            atomic_fetch_add(&e->pins, 1);
            break;
        }
    pthread_rwlock_unlock(&rw_lock);
    return e;
}

/* ---- bare lfht, two flavours ---- */
struct bare {
    struct cds_lfht_node node;
    const char *name;
};
static struct cds_lfht *ht_memb, *ht_bp;

static int
bare_match(struct cds_lfht_node *node, const void *key)
{
    return strcmp(caa_container_of(node, struct bare, node)->name, key) == 0;
}

enum kind { K_LAYERED, K_RWLOCK, K_MEMB, K_BP };
struct arg {
    enum kind kind;
    uint64_t ops;
    unsigned seed;
};

static void *
worker(void *p)
{
    struct arg *a = p;
    struct cds_lfht_iter it;
    struct dhandle *dh;
    struct rw_entry *e;
    uint64_t end, ops = 0;
    unsigned i = a->seed;

    if (a->kind == K_MEMB)
        urcu_memb_register_thread();
    end = now() + RUN_NS;
    while ((ops & 1023) != 0 || now() < end) {
        const char *name = names[(i = i * 1103515245u + 12345u) % NNAMES];
        switch (a->kind) {
        case K_LAYERED:
            layered_rcu_enter(); /* what every API entry does */
            dh = dh_find(conn, name);
            if (dh == NULL)
                abort();
            dh_release(dh);
            break;
        case K_RWLOCK:
            if ((e = rw_find(name)) == NULL)
                abort();
            atomic_fetch_sub(&e->pins, 1);
            break;
        case K_MEMB:
            urcu_memb_read_lock();
            cds_lfht_lookup(ht_memb, hash_name(name), bare_match, name, &it);
            if (cds_lfht_iter_get_node(&it) == NULL)
                abort();
            urcu_memb_read_unlock();
            break;
        case K_BP:
            urcu_bp_read_lock();
            cds_lfht_lookup(ht_bp, hash_name(name), bare_match, name, &it);
            if (cds_lfht_iter_get_node(&it) == NULL)
                abort();
            urcu_bp_read_unlock();
            break;
        }
        ops++;
    }
    if (a->kind == K_MEMB)
        urcu_memb_unregister_thread();
    a->ops = ops;
    return NULL;
}

static double
measure(enum kind kind, int nthreads)
{
    pthread_t t[2];
    struct arg a[2];
    uint64_t start = now(), total = 0;
    int i;

    for (i = 0; i < nthreads; i++) {
        a[i].kind = kind;
        a[i].seed = (unsigned)(i * 7919 + 1);
        pthread_create(&t[i], NULL, worker, &a[i]);
    }
    for (i = 0; i < nthreads; i++) {
        pthread_join(t[i], NULL);
        total += a[i].ops;
    }
    return (double)total / ((double)(now() - start) / 1e9);
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int
main(int argc, char *argv[])
{
    static const char *const kind_names[] = {
        "layered dhandle table (lfht, memb)", "pthread_rwlock hash table",
        "bare cds_lfht, urcu-memb", "bare cds_lfht, urcu-bp"};
    int runs = argc > 1 ? atoi(argv[1]) : 5;
    char home[] = "/tmp/layered-bench-dh-XXXXXX";
    layered_session *s;
    layered_cursor *c;
    double med[4][3];
    int i, k, th, r;

    if (runs < 1 || runs > 50 || mkdtemp(home) == NULL)
        return 1;
    if (layered_open(home, NULL, &conn) != 0 ||
        layered_session_open(conn, &s) != 0)
        return 1;
    for (i = 0; i < NTABLES; i++) {
        char uri[48];
        snprintf(uri, sizeof(uri), "layered:bench%04d", i);
        snprintf(names[2 * i], sizeof(names[0]), "file:bench%04d.ingest", i);
        snprintf(names[2 * i + 1], sizeof(names[0]), "file:bench%04d.stable",
                 i);
        if (layered_create(s, uri, NULL) != 0 ||
            layered_cursor_open(s, uri, &c) != 0 ||
            layered_cursor_close(c) != 0)
            return 1;
    }
    ht_memb = cds_lfht_new_flavor(1024, 1024, 0, CDS_LFHT_AUTO_RESIZE,
                                  &urcu_memb_flavor, NULL);
    ht_bp = cds_lfht_new_flavor(1024, 1024, 0, CDS_LFHT_AUTO_RESIZE,
                                &urcu_bp_flavor, NULL);
    for (i = 0; i < NNAMES; i++) {
        struct rw_entry *e = calloc(1, sizeof(*e));
        struct bare *b1 = calloc(1, sizeof(*b1)), *b2 = calloc(1, sizeof(*b2));
        unsigned long h = hash_name(names[i]);
        e->name = b1->name = b2->name = names[i];
        e->next = rw_table[h % RW_BUCKETS];
        rw_table[h % RW_BUCKETS] = e;
        urcu_memb_read_lock();
        cds_lfht_add(ht_memb, h, &b1->node);
        urcu_memb_read_unlock();
        urcu_bp_read_lock();
        cds_lfht_add(ht_bp, h, &b2->node);
        urcu_bp_read_unlock();
    }

    printf("handle lookups per second, %d names, median of %d runs of "
           "%.1f s (min..max)\n",
           NNAMES, runs, RUN_NS / 1e9);
    for (k = 0; k < 4; k++)
        for (th = 1; th <= 2; th++) {
            double v[50];
            for (r = 0; r < runs; r++)
                v[r] = measure((enum kind)k, th);
            qsort(v, (size_t)runs, sizeof(double), cmp_double);
            med[k][th] = v[runs / 2];
            printf("  %-36s %d thread%s %8.2f M/s  (%.2f..%.2f)\n",
                   kind_names[k], th, th > 1 ? "s" : " ", v[runs / 2] / 1e6,
                   v[0] / 1e6, v[runs - 1] / 1e6);
        }
    printf("ratio layered / rwlock table: 1 thread %.2fx, 2 threads %.2fx\n",
           med[K_LAYERED][1] / med[K_RWLOCK][1],
           med[K_LAYERED][2] / med[K_RWLOCK][2]);
    printf("ratio urcu-memb / urcu-bp (bare lookup): 1 thread %.2fx, "
           "2 threads %.2fx\n",
           med[K_MEMB][1] / med[K_BP][1], med[K_MEMB][2] / med[K_BP][2]);
    layered_close(conn);
    {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", home);
        if (system(cmd) != 0)
            return 1;
    }
    return 0;
}
