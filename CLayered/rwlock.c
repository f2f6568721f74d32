/*
 * rwlock.c -- the per-dhandle read-write lock, and the lock-order checker
 * for the connection's locks (the order itself is documented in
 * internal.h).
 *
 * Why not pthread_rwlock for dhandles: an exclusive acquire must never
 * queue behind readers.  A queued writer blocks new readers in most
 * implementations, and a drain worker that already holds the read lock and
 * re-takes it (its own cursor opens) would then wait for the writer, which
 * waits for the worker: a deadlock.  Here exclusive acquisition is a single
 * compare-and-swap from "free" that fails with EBUSY, so readers only ever
 * wait for an exclusive holder that already has the lock.
 */
#include <linux/futex.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"

#define DH_WRITER (-1)

static void
futex_wait(_Atomic int32_t *addr, int32_t expected)
{
    (void)syscall(SYS_futex, (int32_t *)addr, FUTEX_WAIT_PRIVATE, expected,
                  NULL, NULL, 0);
}

static void
futex_wake_all(_Atomic int32_t *addr)
{
    (void)syscall(SYS_futex, (int32_t *)addr, FUTEX_WAKE_PRIVATE, INT32_MAX,
                  NULL, NULL, 0);
}

void
dh_rwlock_init(dh_rwlock *l)
{
    atomic_init(&l->state, 0);
}

/*
 * dh_rwlock_read_lock --
 *     Take the lock shared; waits only while an exclusive holder has it.
 */
void
dh_rwlock_read_lock(dh_rwlock *l)
{
    int32_t s = atomic_load_explicit(&l->state, memory_order_relaxed);
    int spins = 0;

    for (;;) {
        if (s >= 0) {
            if (atomic_compare_exchange_weak_explicit(
                    &l->state, &s, s + 1, memory_order_acquire,
                    memory_order_relaxed))
                return;
            continue;
        }
        if (++spins < 100) {
            sched_yield();
        } else
            futex_wait(&l->state, DH_WRITER);
        s = atomic_load_explicit(&l->state, memory_order_relaxed);
    }
}

void
dh_rwlock_read_unlock(dh_rwlock *l)
{
    int32_t prev = atomic_fetch_sub_explicit(&l->state, 1,
                                             memory_order_release);
    if (prev <= 0)
        abort(); /* unlock without a read lock held: a library bug */
}

/*
 * dh_rwlock_try_write_lock --
 *     Take the lock exclusive if nobody holds it; never waits.
 */
int
dh_rwlock_try_write_lock(dh_rwlock *l)
{
    int32_t expected = 0;

    return atomic_compare_exchange_strong_explicit(
               &l->state, &expected, DH_WRITER, memory_order_acquire,
               memory_order_relaxed)
               ? 0
               : EBUSY;
}

void
dh_rwlock_write_unlock(dh_rwlock *l)
{
    atomic_store_explicit(&l->state, 0, memory_order_release);
    futex_wake_all(&l->state);
}

#if LAYERED_LOCK_ORDER
/*
 * The checker: each thread keeps a count of the connection locks it holds
 * per level; acquiring a level at or below one already held is a lock-order
 * violation, reported and aborted on at once (deadlocks that only happen
 * under rare timing are found by every run that takes the locks).
 */
static __thread unsigned lock_held[LOCK_LEVEL_MAX + 1];

void
lock_order_acquire(enum lock_level level)
{
    /* Exclusive dhandle locks are try-locks: holding several is safe. */
    int from = level == LOCK_DHANDLE ? level + 1 : level;

    for (int l = from; l <= LOCK_LEVEL_MAX; l++)
        if (lock_held[l] != 0) {
            fprintf(stderr,
                    "layered: lock order violation: acquiring level %d "
                    "while holding level %d\n",
                    (int)level, l);
            abort();
        }
    lock_held[level]++;
}

void
lock_order_release(enum lock_level level)
{
    if (lock_held[level] == 0) {
        fprintf(stderr, "layered: releasing lock level %d not held\n",
                (int)level);
        abort();
    }
    lock_held[level]--;
}
#endif

void
conn_lock(pthread_mutex_t *m, enum lock_level level)
{
    lock_order_acquire(level);
    (void)pthread_mutex_lock(m);
}

void
conn_unlock(pthread_mutex_t *m, enum lock_level level)
{
    (void)pthread_mutex_unlock(m);
    lock_order_release(level);
}
