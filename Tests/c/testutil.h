/*
 * testutil.h -- helpers shared by the C tests: loud checks, scratch
 * directories, random numbers.
 */
#ifndef LAYERED_TESTUTIL_H
#define LAYERED_TESTUTIL_H

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "layered.h"

/* Fail loudly with the expression that failed. */
#define CHECK(expr)                                                         \
    do {                                                                    \
        if (!(expr)) {                                                      \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__,          \
                    __LINE__, #expr);                                       \
            abort();                                                        \
        }                                                                   \
    } while (0)

/* Check that a library call returns an expected code. */
#define CHECK_RET(expected, call)                                           \
    do {                                                                    \
        int check_ret_ = (call);                                            \
        int check_exp_ = (expected);                                        \
        if (check_ret_ != check_exp_) {                                     \
            fprintf(stderr, "%s:%d: %s returned %d (%s), expected %d (%s)\n", \
                    __FILE__, __LINE__, #call, check_ret_,                  \
                    layered_strerror(check_ret_), check_exp_,               \
                    layered_strerror(check_exp_));                          \
            abort();                                                        \
        }                                                                   \
    } while (0)

#define CHECK_OK(call) CHECK_RET(0, call)

/* A fresh empty scratch directory under $TMPDIR (or /tmp); returns a
 * malloc'ed path.  Removed by tu_rmdir. */
char *tu_mkdtemp(const char *tag);
/* rm -rf path */
void tu_rmdir(const char *path);
/* Deterministic xorshift random numbers. */
uint64_t tu_rand(uint64_t *state);
/* Seed from LAYERED_TEST_SEED or the clock; prints it. */
uint64_t tu_seed(const char *test);
/* Monotonic nanoseconds. */
uint64_t tu_now_ns(void);
/* Insert n rows "<prefix>NNNNNN" -> "value-<prefix>-N" into a table. */
void tu_insert_rows(layered_session *s, const char *uri, const char *prefix,
                    int n);
/* The rows a forward scan of the table (or file: constituent) returns. */
int tu_count_rows(layered_session *s, const char *uri);
/* A step-up on a thread of its own: start it, then join it; ret and ds are
 * its result and statistics. */
struct tu_stepper {
    pthread_t tid;
    layered_conn *conn;
    int ret;
    layered_drain_stats ds;
};
void tu_step_up_start(struct tu_stepper *st, layered_conn *conn);
void tu_step_up_join(struct tu_stepper *st);

/* The sum of the sizes of the "*.stable" files in a directory (the shared
 * store), as stat reports them. */
uint64_t tu_stable_files_bytes(const char *shared_dir);
/* After a checkpoint: database_size is the stable files' sizes on disk
 * plus LAYERED_CHECKPOINT_SIZE_BUFFER, and stable_checkpoint_bytes is that
 * sum.  Prints both sides when they differ. */
#define TU_CHECK_SIZE_ON_DISK(conn, shared_dir)                             \
    tu_check_size_on_disk((conn), (shared_dir), __FILE__, __LINE__)
void tu_check_size_on_disk(layered_conn *conn, const char *shared_dir,
                           const char *file, int line);

/* The calling thread's kernel id. */
pid_t tu_gettid(void);
/* Wait until thread tid of this process sleeps in a futex wait (a lock or
 * condition variable), as /proc/self/task/TID/syscall shows it; fails after
 * timeout_ms.  For orderings with no failpoint: "this thread is now blocked
 * on the lock the other one holds". */
void tu_wait_thread_blocked(pid_t tid, int timeout_ms);

#endif
