/*
 * fs_group.c -- group commit, the write path of fs_put at
 * LAYERED_SYNC_WRITE and LAYERED_SYNC_FSYNC: writers queue their records,
 * one of them (the leader) writes the queue with one pwritev (and one
 * fdatasync) outside the file's lock, then each links its own index entry.
 * Also the gate that keeps the file's exclusive operations (fs_del,
 * fs_sync, fs_compact, fs_clear, fs_copy's destination) apart from group
 * writers.  The protocol and what each lock protects are in the locking
 * paragraph of filestore.c.
 */

#include "fs_int.h"

/*
 * cpu_relax --
 *     One step of a spin-wait.
 */
static inline void
cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#endif
}

/*
 * fs_group_init, fs_group_destroy --
 *     The group-commit state of a new file; release it.
 */
int
fs_group_init(fs_file *f)
{
    pthread_mutexattr_t attr;
    int ret;

    (void)pthread_mutexattr_init(&attr);
    /* Adaptive: glock's holds are a few dozen instructions, so a writer
     * that finds it taken spins a little before it sleeps. */
    (void)pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ADAPTIVE_NP);
    ret = pthread_mutex_init(&f->glock, &attr);
    (void)pthread_mutexattr_destroy(&attr);
    if (ret != 0)
        return (ret);
    if ((ret = pthread_cond_init(&f->gcv, NULL)) != 0) {
        (void)pthread_mutex_destroy(&f->glock);
        return (ret);
    }
    if ((ret = pthread_cond_init(&f->gate_cv, NULL)) != 0) {
        (void)pthread_cond_destroy(&f->gcv);
        (void)pthread_mutex_destroy(&f->glock);
        return (ret);
    }
    f->pend_head = NULL;
    f->pend_tail = &f->pend_head;
    f->leading = false;
    atomic_store(&f->gate_closers, 0);
    atomic_store(&f->gate_writers, 0);
    atomic_store(&f->arriving, 0);
    return (0);
}

void
fs_group_destroy(fs_file *f)
{
    (void)pthread_cond_destroy(&f->gate_cv);
    (void)pthread_cond_destroy(&f->gcv);
    (void)pthread_mutex_destroy(&f->glock);
}

/*
 * group_wrlock --
 *     Take the file's lock exclusive, spinning briefly first: the holds on
 *     the write path are short, and sleeping in the kernel and being woken
 *     costs more than they do.  Nothing of the file held.
 */
static void
group_wrlock(fs_file *f)
{
    int i, j;

    for (i = 0; i < GROUP_SPIN; i += 16) {
        if (pthread_rwlock_trywrlock(&f->lock) == 0)
            return;
        for (j = 0; j < 16; j++)
            cpu_relax();
    }
    (void)pthread_rwlock_wrlock(&f->lock);
}

/*
 * group_rdlock --
 *     The same for the lock shared.  Nothing of the file held.
 */
static void
group_rdlock(fs_file *f)
{
    int i, j;

    for (i = 0; i < GROUP_SPIN; i += 16) {
        if (pthread_rwlock_tryrdlock(&f->lock) == 0)
            return;
        for (j = 0; j < 16; j++)
            cpu_relax();
    }
    (void)pthread_rwlock_rdlock(&f->lock);
}

/*
 * fs_gate_close, fs_gate_open --
 *     Around an exclusive operation: close the gate (new group writers
 *     wait at it) and wait until every group writer inside has linked its
 *     entry or failed, so no group is queued or in flight; then the caller
 *     takes the file's lock exclusive.  Open it again after releasing the
 *     lock.  Nothing of the file held (a group writer inside needs the
 *     file's lock to finish).
 */
void
fs_gate_close(fs_file *f)
{
    (void)pthread_mutex_lock(&f->glock);
    (void)atomic_fetch_add(&f->gate_closers, 1);
    while (atomic_load(&f->gate_writers) > 0)
        (void)pthread_cond_wait(&f->gate_cv, &f->glock);
    (void)pthread_mutex_unlock(&f->glock);
}

void
fs_gate_open(fs_file *f)
{
    (void)pthread_mutex_lock(&f->glock);
    (void)atomic_fetch_sub(&f->gate_closers, 1);
    (void)pthread_cond_broadcast(&f->gate_cv);
    (void)pthread_mutex_unlock(&f->glock);
}

/*
 * gate_leave --
 *     A group writer is done.  The counter is left without glock; the last
 *     writer out wakes a closer.  No wake-up is lost: both counters are
 *     sequentially consistent, the closer raises gate_closers before it
 *     reads gate_writers and the writer lowers gate_writers before it reads
 *     gate_closers, so at least one of them sees the other; a closer that
 *     saw writers inside waits on gate_cv under glock, which the writer
 *     takes to broadcast.  Nothing held.
 */
static void
gate_leave(fs_file *f)
{
    if (atomic_fetch_sub(&f->gate_writers, 1) == 1 &&
        atomic_load(&f->gate_closers) > 0) {
        (void)pthread_mutex_lock(&f->glock);
        (void)pthread_cond_broadcast(&f->gate_cv);
        (void)pthread_mutex_unlock(&f->glock);
    }
}

/*
 * group_link --
 *     Point the index at a written record.  The leader links its group's
 *     records in queue order, and groups are published one after another,
 *     so a later record of a key always replaces an earlier one, as
 *     recovery, which keeps the last record of a key in file order, does.
 *     The file's lock held exclusive; takes glock to return an unused
 *     node to the arena.
 */
static void
group_link(fs_file *f, struct fs_gw *gw)
{
    struct fs_node *n, *parent = NULL;
    int dir = 0;

    if ((n = fs_idx_find(&f->tree, gw->key, gw->klen, &parent, &dir)) ==
        NULL) {
        fs_idx_link(&f->tree, gw->node, parent, dir);
        ++f->entries;
        fs_idx_set(f, gw->node, true, gw->off, (uint32_t)gw->vlen, false);
    } else {
        fs_idx_set(f, n, false, gw->off, (uint32_t)gw->vlen, false);
        (void)pthread_mutex_lock(&f->glock);
        fs_node_free(&f->arena, gw->node);
        (void)pthread_mutex_unlock(&f->glock);
    }
    gw->node = NULL;
    if (gw->lsn > f->max_lsn)
        f->max_lsn = gw->lsn;
}

/*
 * group_wait --
 *     Wait until the leader has written and linked this writer's record
 *     (GW_DONE) or handed the lead to it (GW_LEAD): spin first (a small
 *     group write takes about as long as the spin), then sleep on gcv.
 *     Nothing held.
 */
static int
group_wait(fs_file *f, struct fs_gw *gw)
{
    int i, st;

    for (i = 0; i < GROUP_SPIN; i++) {
        if ((st = atomic_load_explicit(&gw->state, memory_order_acquire)) !=
            GW_WAIT)
            return (st);
        cpu_relax();
    }
    (void)pthread_mutex_lock(&f->glock);
    while ((st = atomic_load(&gw->state)) == GW_WAIT)
        (void)pthread_cond_wait(&f->gcv, &f->glock);
    (void)pthread_mutex_unlock(&f->glock);
    return (st);
}

/*
 * group_lead --
 *     Write the group at the head of the queue (the leader's first) with one
 *     pwritev at disk_end, then under the file's lock publish the new end
 *     and link every record of the group, then mark them done (or failed)
 *     and hand the lead to the next queued writer.  The caller is the
 *     leader: the only writer of the file's bytes until it hands over (the
 *     gate keeps exclusive operations out), so it reads disk_end without
 *     the lock.
 *
 *     Before it takes the group the leader gives the writers that are
 *     about to queue (past their index walk, counted in arriving) a moment
 *     to join it, GROUP_JOIN_SPIN at most: a record that misses this group
 *     waits for the whole next one.  A leader of an idle file waits for
 *     nobody.  Nothing held.
 */
static void
group_lead(fs_file *f)
{
    struct iovec iov[3 * GROUP_MAX];
    struct fs_gw *g[GROUP_MAX], *e;
    uint64_t start, len = 0;
    unsigned wchanges;
    int i, n = 0, ret;

    for (i = 0; i < GROUP_JOIN_SPIN && atomic_load(&f->arriving) > 0; i++)
        cpu_relax();
    (void)pthread_mutex_lock(&f->glock);
    for (e = f->pend_head; e != NULL && n < GROUP_MAX; e = e->next)
        g[n++] = e;
    if ((f->pend_head = e) == NULL)
        f->pend_tail = &f->pend_head;
    (void)pthread_mutex_unlock(&f->glock);

    start = f->disk_end;
    for (i = 0; i < n; i++) {
        e = g[i];
        e->off = start + len;
        iov[3 * i].iov_base = e->hdr;
        iov[3 * i].iov_len = REC_HDR_SIZE;
        iov[3 * i + 1].iov_base = (void *)e->key;
        iov[3 * i + 1].iov_len = e->klen;
        iov[3 * i + 2].iov_base = (void *)e->val;
        iov[3 * i + 2].iov_len = e->vlen;
        len += rec_size(e->klen, e->vlen);
    }
    ret = fs_write_group(f, iov, 3 * n, start, &wchanges);

    /* Publish: readers see the new end only together with the entries
     * that point into it, and only once the bytes reached the OS (and,
     * under LAYERED_SYNC_FSYNC, the disk).  A failed group moves nothing:
     * the next group is written at the same disk_end. */
    group_wrlock(f);
    f->wgen += wchanges;
    if (ret == 0) {
        f->disk_end = f->end = start + len;
        if (f->env.sync == LAYERED_SYNC_FSYNC)
            f->synced_wgen = f->wgen;
        for (i = 0; i < n; i++)
            group_link(f, g[i]);
    }
    (void)pthread_rwlock_unlock(&f->lock);

    (void)pthread_mutex_lock(&f->glock);
    for (i = 0; i < n; i++) {
        e = g[i];
        e->ret = ret;
        if (e->node != NULL) {
            fs_node_free(&f->arena, e->node);
            e->node = NULL;
        }
        /* Last touch of e: once it reads GW_DONE its writer may return. */
        atomic_store_explicit(&e->state, GW_DONE, memory_order_release);
    }
    if (f->pend_head != NULL)
        atomic_store_explicit(&f->pend_head->state, GW_LEAD,
                              memory_order_release);
    else
        f->leading = false;
    (void)pthread_cond_broadcast(&f->gcv);
    (void)pthread_mutex_unlock(&f->glock);
}

/*
 * fs_group_put --
 *     Append a PUT record through a group write and index it.  gw's key,
 *     val, klen, vlen and bcrc are filled by the caller; gw lives on its
 *     stack.  Returns 0 (gw->lsn is the record's LSN) or an error, and
 *     then nothing was written (the group's bytes were cut back), nothing
 *     indexed, and no later record was written at an offset that counted
 *     on this one.  Nothing of the file held; takes the file's lock
 *     shared, then glock, then (as leader) the file's lock exclusive.
 */
int
fs_group_put(fs_file *f, struct fs_gw *gw)
{
    bool lead;
    int ret;

    gw->next = NULL;
    gw->ret = 0;
    atomic_store_explicit(&gw->state, GW_WAIT, memory_order_relaxed);

    /* With other writers about, walk the index to where the key goes under
     * the lock shared, so that the walk's cache misses -- most of an
     * insert's time in a large index -- are taken here, beside the other
     * writers, and the leader's walk under the lock exclusive in
     * group_link finds the path in the cache.  A lone writer walks once,
     * in group_link. */
    if (atomic_load(&f->gate_writers) > 0 || atomic_load(&f->arriving) > 0) {
        group_rdlock(f);
        (void)fs_idx_find(&f->tree, gw->key, gw->klen, NULL, NULL);
        (void)pthread_rwlock_unlock(&f->lock);
    }
    (void)atomic_fetch_add(&f->arriving, 1);

    (void)pthread_mutex_lock(&f->glock);
    while (atomic_load(&f->gate_closers) > 0)
        (void)pthread_cond_wait(&f->gate_cv, &f->glock);
    /* The node comes first: an ENOMEM here changes nothing, where after
     * the write it could not be undone. */
    if ((gw->node = fs_node_alloc(&f->arena, gw->key, gw->klen)) == NULL) {
        (void)pthread_mutex_unlock(&f->glock);
        (void)atomic_fetch_sub(&f->arriving, 1);
        return (ENOMEM);
    }
    (void)atomic_fetch_add(&f->gate_writers, 1);
    /* The LSN is drawn in queue order, which is file order. */
    gw->lsn = atomic_fetch_add(f->env.lsn, 1) + 1;
    fs_rec_hdr_encode(gw->hdr, REC_PUT, gw->lsn, gw->klen, gw->vlen,
                      gw->bcrc);
    *f->pend_tail = gw;
    f->pend_tail = &gw->next;
    if ((lead = !f->leading))
        f->leading = true;
    (void)atomic_fetch_sub(&f->arriving, 1);
    (void)pthread_mutex_unlock(&f->glock);

    /* A leader's record heads the queue (it queued into an empty one, or
     * was handed the lead as its head), so it is in the group it writes. */
    if (lead || group_wait(f, gw) == GW_LEAD)
        group_lead(f);
    ret = gw->ret;
    gate_leave(f);
    return (ret);
}
