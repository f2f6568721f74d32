/*
 * dhandle.c -- the connection's data-handle table: constituent name ->
 * struct dhandle, on liburcu's lock-free hash table (cds_lfht).
 *
 * Lookups run inside rcu_read_lock and take no lock.  Inserts and removals
 * happen only under the schema lock, so "find, else open and add" never
 * races another opener and cds_lfht_add_unique always succeeds.  A removed
 * handle's memory is freed by call_rcu once its pin count reaches zero, so
 * a reader that found it in the table can still read its flags; it may
 * only use it after taking a pin, and a pin can only be taken while the
 * count is not zero (the table's own pin is dropped at removal).
 *
 * RCU flavour: urcu-memb (membarrier-based, no signals), with threads
 * registered lazily on their first call into the library and unregistered
 * by a thread-specific-data destructor when they exit, so threads the
 * library did not create (Swift's cooperative pool) are safe.  Measured
 * against urcu-bp (which registers by itself on a thread's first read
 * lock) with bench/bench_dhandle.c, a bare cds_lfht lookup of 400 names,
 * medians of 5 runs on a shared 2-core VM, two separate runs:
 *                 1 thread          2 threads
 *   urcu-memb     22.0 / 20.8 M/s   14.2 / 28.8 M/s
 *   urcu-bp       13.4 / 18.8 M/s   22.2 / 43.9 M/s
 * The spread between runs is larger than the difference between the
 * flavours, so neither is measurably faster here.  memb was kept: its read
 * lock is a thread-local increment with no "registered yet?" branch, its
 * grace periods use membarrier(2) instead of signals, and the one cost bp
 * would save, registering a new thread, is one branch per API call
 * (layered_rcu_enter) plus a registration per thread lifetime.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

/*
 * ThreadSanitizer and the grace period.  liburcu is not built with
 * ThreadSanitizer, so the tool sees neither the call_rcu queue nor the
 * grace period: to it, dh_free_rcu (on the call_rcu thread) races with
 * every earlier access to the handle.  Two kinds of access precede a
 * free.  A pin holder's are ordered by the pin count's atomics up to the
 * thread that drops the last pin and hands the handle to call_rcu.  A
 * lookup that reads a handle without pinning it (dh_match's strcmp, the
 * DEAD and pin-count checks) is ordered by the grace period: it ran in a
 * read-side critical section that began before the handle was removed,
 * and the callback waits for that section to end.  dh_seen marks each
 * such access, and the hand-over to call_rcu, with a release on the
 * handle; dh_free_rcu acquires it.  The ordering is per handle and only
 * at those points, so a handle touched anywhere else without a pin -- a
 * real use-after-free -- is still reported.
 */
#if defined(__SANITIZE_THREAD__)
#define DH_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define DH_TSAN 1
#endif
#endif
#ifdef DH_TSAN
#include <sanitizer/tsan_interface.h>
#define dh_seen(dh) __tsan_release(dh)
#define dh_grace_period_done(dh) __tsan_acquire(dh)
#else
#define dh_seen(dh) ((void)0)
#define dh_grace_period_done(dh) ((void)0)
#endif

static pthread_key_t rcu_key;
static pthread_once_t rcu_key_once = PTHREAD_ONCE_INIT;
static __thread bool rcu_registered;

static void
rcu_thread_exit(void *arg)
{
    (void)arg;
    rcu_unregister_thread();
    rcu_registered = false;
}

static void
rcu_key_create(void)
{
    (void)pthread_key_create(&rcu_key, rcu_thread_exit);
}

/*
 * layered_rcu_enter --
 *     Register the calling thread with RCU once; it is unregistered when
 *     the thread exits.  The first thread also installs the fork handlers
 *     (fork.c), before this process has any call_rcu state.
 */
void
layered_rcu_enter(void)
{
    if (rcu_registered)
        return;
    fork_handlers_init();
    (void)pthread_once(&rcu_key_once, rcu_key_create);
    rcu_register_thread();
    rcu_registered = true;
    (void)pthread_setspecific(rcu_key, (void *)1);
}

static unsigned long
name_hash(const char *s)
{
    /* FNV-1a, 64 bit. */
    uint64_t h = 0xcbf29ce484222325ULL;

    for (; *s != '\0'; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ULL;
    }
    return (unsigned long)h;
}

static int
dh_match(struct cds_lfht_node *node, const void *key)
{
    struct dhandle *dh = caa_container_of(node, struct dhandle, node);
    bool match;

    /* A node found by the traversal may have been added a moment ago: read
     * the flags with acquire before the name (see dh_open_locked). */
    (void)atomic_load_explicit(&dh->flags, memory_order_acquire);
    match = strcmp(dh->name, (const char *)key) == 0;
    dh_seen(dh);
    return match;
}

int
dh_table_create(layered_conn *conn)
{
    conn->dhandles = cds_lfht_new(1024, 1024, 0,
                                  CDS_LFHT_AUTO_RESIZE | CDS_LFHT_ACCOUNTING,
                                  NULL);
    return conn->dhandles == NULL ? ENOMEM : 0;
}

void
dh_table_destroy(layered_conn *conn)
{
    if (conn->dhandles != NULL)
        (void)cds_lfht_destroy(conn->dhandles, NULL);
    conn->dhandles = NULL;
}

void
dh_name(char *buf, size_t len, const char *table, bool ingest)
{
    (void)snprintf(buf, len, "file:%s.%s", table, ingest ? "ingest" : "stable");
}

static void
dh_free_rcu(struct rcu_head *head)
{
    struct dhandle *dh = caa_container_of(head, struct dhandle, rcu);

    dh_grace_period_done(dh);
    free(dh->name);
    free(dh);
}

/*
 * dh_pin --
 *     Pin a handle the caller has already pinned.
 */
static void
dh_pin(struct dhandle *dh)
{
    (void)atomic_fetch_add(&dh->pins, 1);
}

/*
 * dh_release --
 *     Drop a pin; the last one closes the file and frees the memory after
 *     a grace period (concurrent lookups may still be reading it).
 *
 *     Whoever removes a handle that others rely on being durable syncs it
 *     first (the sweep and the offload do, under the exclusive lock), so
 *     this close normally has nothing to write.  If it fails anyway the
 *     file's last writes may be lost and nobody is left to be told: that
 *     is a panic, never a message (a drain must not take "closed" for
 *     "synced").  A dropped file's close error does not matter.
 */
void
dh_release(struct dhandle *dh)
{
    int ret;

    if (atomic_fetch_sub(&dh->pins, 1) != 1)
        return;
    if (dh->fs != NULL && (ret = fs_close(dh->fs)) != 0 &&
        !(atomic_load(&dh->flags) & DH_DROPPED))
        (void)layered_panic(dh->conn, ret, "closing %s: %s", dh->name,
                            layered_strerror(ret));
    dh->fs = NULL;
    dh_seen(dh);
    call_rcu(&dh->rcu, dh_free_rcu);
}

/*
 * pin_if_live --
 *     Take a pin unless the count already reached zero (being freed).
 */
static bool
pin_if_live(struct dhandle *dh)
{
    int64_t p = atomic_load(&dh->pins);

    while (p > 0)
        if (atomic_compare_exchange_weak(&dh->pins, &p, p + 1))
            return true;
    return false;
}

/*
 * dh_find --
 *     The lock-free path: find a live handle and pin it.
 */
struct dhandle *
dh_find(layered_conn *conn, const char *name)
{
    struct cds_lfht_iter iter;
    struct cds_lfht_node *node;
    struct dhandle *dh = NULL;
    bool live;

    rcu_read_lock();
    cds_lfht_lookup(conn->dhandles, name_hash(name), dh_match, name, &iter);
    if ((node = cds_lfht_iter_get_node(&iter)) != NULL) {
        dh = caa_container_of(node, struct dhandle, node);
        live = !(atomic_load(&dh->flags) & DH_DEAD) && pin_if_live(dh);
        dh_seen(dh);
        if (!live)
            dh = NULL;
    }
    rcu_read_unlock();
    return dh;
}

/*
 * constituent_of --
 *     Split "file:NAME.ingest|stable" into NAME and the kind.
 */
static int
constituent_of(const char *name, char *table, size_t len, bool *ingestp)
{
    const char *base, *dot;
    size_t n;

    if (strncmp(name, "file:", 5) != 0)
        return EINVAL;
    base = name + 5;
    if ((dot = strrchr(base, '.')) == NULL)
        return EINVAL;
    if (strcmp(dot, ".ingest") == 0)
        *ingestp = true;
    else if (strcmp(dot, ".stable") == 0)
        *ingestp = false;
    else
        return EINVAL;
    n = (size_t)(dot - base);
    if (n == 0 || n >= len || !tbl_name_valid(base, n))
        return EINVAL;
    memcpy(table, base, n);
    table[n] = '\0';
    return 0;
}

/*
 * dh_open_locked --
 *     Open a constituent's file and add its handle; schema lock held.
 */
static int
dh_open_locked(layered_conn *conn, const char *name, struct dhandle **dhp)
{
    struct cds_lfht_node *added;
    struct dhandle *dh = NULL;
    struct table *t;
    char table[LAYERED_NAME_MAX + 1], *path = NULL;
    bool ingest;
    int ret;

    ERR(constituent_of(name, table, sizeof(table), &ingest));
    /* A table being dropped, dropped or offloaded has no local handles. */
    t = tbl_find(conn, table);
    if (t == NULL || t->dropping || t->state == LAYERED_TABLE_DROPPED ||
        t->state == LAYERED_TABLE_OFFLOADED ||
        t->state == LAYERED_TABLE_STOPPING)
        ERR(ENOENT);

    if ((dh = calloc(1, sizeof(*dh))) == NULL ||
        (dh->name = strdup(name)) == NULL)
        ERR(ENOMEM);
    if (asprintf(&path, "%s/%s.%s", ingest ? conn->home : conn->shared_dir,
                 table, ingest ? "ingest" : "stable") < 0) {
        path = NULL;
        ERR(ENOMEM);
    }
    ERR(fs_open(path, 0, &conn->env, &dh->fs));
    dh->conn = conn;
    dh->ingest = ingest;
    dh->table_id = t->id;
    dh->hash = name_hash(name);
    dh_rwlock_init(&dh->lock);
    atomic_init(&dh->pins, 2); /* the table's and the caller's */
    cds_lfht_node_init(&dh->node);
    /* Publish: lookups (dh_match too) read the flags with acquire before
     * touching any other field.  liburcu's own publication (rcu_assign_pointer) already
     * orders this; the release store makes it visible to ThreadSanitizer,
     * which does not see inside liburcu. */
    atomic_store_explicit(&dh->flags, DH_OPEN, memory_order_release);

    rcu_read_lock();
    added = cds_lfht_add_unique(conn->dhandles, dh->hash, dh_match, dh->name,
                                &dh->node);
    rcu_read_unlock();
    if (added != &dh->node) {
        /* Impossible while every insert holds the schema lock. */
        (void)fs_close(dh->fs);
        dh->fs = NULL;
        ERR(layered_panic(conn, EINVAL, "dhandle %s added twice", name));
    }
    (void)atomic_fetch_add(&conn->dh_open, 1);
    *dhp = dh;
    dh = NULL;

err:
    if (dh != NULL) {
        free(dh->name);
        free(dh);
    }
    free(path);
    return ret;
}

int
dh_get(layered_conn *conn, const char *name, struct dhandle **dhp)
{
    int ret;

    *dhp = NULL;
    if ((*dhp = dh_find(conn, name)) != NULL)
        return 0;
    conn_lock(&conn->schema_lock, LOCK_SCHEMA);
    if ((*dhp = dh_find(conn, name)) != NULL)
        ret = 0;
    else
        ret = dh_open_locked(conn, name, dhp);
    conn_unlock(&conn->schema_lock, LOCK_SCHEMA);
    return ret;
}

int
dh_get_schema_held(layered_conn *conn, const char *name,
                   struct dhandle **dhp)
{
    if ((*dhp = dh_find(conn, name)) != NULL)
        return 0;
    return dh_open_locked(conn, name, dhp);
}

/*
 * dh_collect --
 *     Pin every live handle into an array the caller releases and frees.
 */
int
dh_collect(layered_conn *conn, struct dhandle ***arrp, size_t *np)
{
    struct cds_lfht_iter iter;
    struct dhandle *dh, **arr = NULL, **na;
    size_t n = 0, cap = 0;
    int ret = 0;
    bool live;

    rcu_read_lock();
    cds_lfht_for_each_entry(conn->dhandles, &iter, dh, node)
    {
        live = !(atomic_load(&dh->flags) & DH_DEAD) && pin_if_live(dh);
        dh_seen(dh);
        if (!live)
            continue;
        if (n == cap) {
            cap = cap == 0 ? 64 : cap * 2;
            if ((na = realloc(arr, cap * sizeof(*arr))) == NULL) {
                dh_release(dh);
                ret = ENOMEM;
                break;
            }
            arr = na;
        }
        arr[n++] = dh;
    }
    rcu_read_unlock();
    if (ret != 0) {
        while (n > 0)
            dh_release(arr[--n]);
        free(arr);
        return ret;
    }
    *arrp = arr;
    *np = n;
    return 0;
}

/*
 * dh_get_locked --
 *     Find or open a handle, pin it and take its lock shared.  A drop may
 *     have killed the handle between the lookup and the lock: the DEAD
 *     check after locking catches that, and looking up again then finds
 *     the table gone (ENOENT) or a newer handle.
 */
int
dh_get_locked(layered_conn *conn, const char *name, struct dhandle **dhp)
{
    struct dhandle *dh;

    for (;;) {
        RET(dh_get(conn, name, &dh));
        dh_rwlock_read_lock(&dh->lock);
        if (!(atomic_load(&dh->flags) & DH_DEAD)) {
            *dhp = dh;
            return 0;
        }
        dh_rwlock_read_unlock(&dh->lock);
        dh_release(dh);
    }
}

void
dh_unlock_release(struct dhandle *dh)
{
    dh_rwlock_read_unlock(&dh->lock);
    dh_release(dh);
}

int
dh_lock_exclusive(layered_conn *conn, const char *table, bool ingest,
                  bool open, struct dhandle **dhp)
{
    char name[LAYERED_NAME_MAX + 16];
    struct dhandle *dh;

    *dhp = NULL;
    dh_name(name, sizeof(name), table, ingest);
    if (open) {
        RET(dh_get_schema_held(conn, name, &dh));
    } else if ((dh = dh_find(conn, name)) == NULL)
        return 0;
    if (dh_rwlock_try_write_lock(&dh->lock) != 0) {
        dh_release(dh);
        return EBUSY;
    }
    *dhp = dh;
    return 0;
}

void
dh_unlock_exclusive(struct dhandle *dh)
{
    if (dh == NULL)
        return;
    dh_rwlock_write_unlock(&dh->lock);
    dh_release(dh);
}

/*
 * dh_remove --
 *     Take a handle out of the table.  Schema lock and the handle's
 *     exclusive lock held; the caller keeps its own pin.
 */
void
dh_remove(struct dhandle *dh, bool dropped)
{
    layered_conn *conn = dh->conn;

    (void)atomic_fetch_or(&dh->flags, DH_DEAD | (dropped ? DH_DROPPED : 0));
    rcu_read_lock();
    (void)cds_lfht_del(conn->dhandles, &dh->node);
    rcu_read_unlock();
    (void)atomic_fetch_sub(&conn->dh_open, 1);
    dh_release(dh); /* the table's pin; the caller still holds one */
}

/*
 * dh_sweep_locked, dh_sweep --
 *     Close idle handles while too many are open: each costs a file
 *     descriptor and its index memory.  A handle is idle when only the
 *     table's pin is left and its exclusive lock can be had at once;
 *     removing it under the schema lock means the next user opens it
 *     again from disk.  dh_sweep takes the schema lock, dh_sweep_locked
 *     runs under it.
 */
static void
dh_sweep_locked(layered_conn *conn)
{
    struct cds_lfht_iter iter;
    struct dhandle *dh;
    bool idle;

    if (atomic_load(&conn->dh_open) <= conn->dh_open_limit)
        return;
    rcu_read_lock();
    cds_lfht_for_each_entry(conn->dhandles, &iter, dh, node)
    {
        if (atomic_load(&conn->dh_open) <= conn->dh_open_limit / 2)
            break;
        idle = atomic_load(&dh->pins) == 1 &&
               dh_rwlock_try_write_lock(&dh->lock) == 0;
        dh_seen(dh);
        if (!idle)
            continue;
        /* Sync before closing, holding the lock exclusive: a handle the
         * sweep closed is durable (the drain relies on it), and one whose
         * sync fails stays open, its error sticky for the next checkpoint
         * or drain sync to report. */
        if (fs_sync(dh->fs) != 0) {
            dh_rwlock_write_unlock(&dh->lock);
            continue;
        }
        /* Holding the lock exclusive, a user that pinned meanwhile will
         * see DEAD after its read lock and look the name up again. */
        dh_pin(dh);
        dh_remove(dh, false);
        dh_rwlock_write_unlock(&dh->lock);
        dh_release(dh);
    }
    rcu_read_unlock();
}

void
dh_sweep(layered_conn *conn)
{
    if (atomic_load(&conn->dh_open) <= conn->dh_open_limit)
        return;
    conn_lock(&conn->schema_lock, LOCK_SCHEMA);
    dh_sweep_locked(conn);
    conn_unlock(&conn->schema_lock, LOCK_SCHEMA);
}

/*
 * dh_close_all --
 *     Connection close: remove and close every handle.  No other thread
 *     uses the connection any more.
 */
int
dh_close_all(layered_conn *conn)
{
    struct cds_lfht_iter iter;
    struct dhandle *dh;
    int ret = 0, tret;

    rcu_read_lock();
    cds_lfht_for_each_entry(conn->dhandles, &iter, dh, node)
    {
        (void)cds_lfht_del(conn->dhandles, &dh->node);
        (void)atomic_fetch_or(&dh->flags, DH_DEAD);
        (void)atomic_fetch_sub(&conn->dh_open, 1);
        if (atomic_fetch_sub(&dh->pins, 1) == 1) {
            if (dh->fs != NULL)
                TRET(fs_close(dh->fs));
            dh->fs = NULL;
            dh_seen(dh);
            call_rcu(&dh->rcu, dh_free_rcu);
        }
    }
    rcu_read_unlock();
    return ret;
}
