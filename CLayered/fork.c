/*
 * fork.c -- keeps liburcu usable in the child of a fork(2) without exec.
 *
 * fork copies only the calling thread.  liburcu's call_rcu machinery names
 * helper threads that the child does not have: the default call_rcu
 * thread, and the lock-free hash table's resize worker (its queue is
 * paused and restarted by the call_rcu fork functions, which the hash
 * table registers with).  In the child the first rcu_barrier -- every
 * layered_close -- waits for a callback that no thread will ever run, and
 * a call_rcu'd handle is never freed.
 *
 * liburcu's answer is call_rcu_before_fork, call_rcu_after_fork_parent
 * and call_rcu_after_fork_child (urcu_memb_call_rcu_* for this flavour).
 * Before the fork they take call_rcu's list lock and pause every call_rcu
 * thread and the resize worker at a point where they hold no lock and are
 * unregistered as RCU readers; afterwards the parent resumes them, and the
 * child throws their state away and starts a new default call_rcu thread
 * that inherits the callbacks still queued.  They are registered with
 * pthread_atfork once, from layered_rcu_enter, which every thread runs
 * before its first use of RCU: so they are in place before this process
 * has a call_rcu thread or a hash table.
 *
 * liburcu's documentation warns against pthread_atfork for these when the
 * callbacks allocate or free (dh_free_rcu frees): on a glibc that took the
 * malloc locks in an atfork handler of its own, a call_rcu thread blocked
 * in free() could never reach its pause.  glibc 2.24 and later take the
 * malloc locks in fork() itself, after every prepare handler has returned,
 * and release them in the child before the child handlers run, so the
 * pause completes and the child can start its new call_rcu thread.
 *
 * What this does not cover is written in layered.h: urcu-memb (unlike
 * urcu-bp, whose after-fork handler prunes the readers of threads the
 * child does not have) has no fork handling for its reader registry, a
 * list through the registered threads' thread-local storage.  A parent
 * thread that is registered at the fork stays in the child's registry:
 * if it was in a read-side critical section, the child's grace periods
 * wait for it forever; and the child's next thread may be given its stack,
 * whose thread-local storage glibc zeroes, breaking the list the grace
 * periods walk.  Threads unregister when they exit (dhandle.c), so a
 * thread that has exited leaves nothing behind.
 */
#include "internal.h"

static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

static void
fork_register(void)
{
    /* Fails only with ENOMEM; the library then works as before, without
     * fork support, which is all it can do. */
    (void)pthread_atfork(call_rcu_before_fork, call_rcu_after_fork_parent,
                         call_rcu_after_fork_child);
}

/*
 * fork_handlers_init --
 *     Register the fork handlers once per process.  Any thread.
 */
void
fork_handlers_init(void)
{
    (void)pthread_once(&fork_once, fork_register);
}
