/*
 * test_dhandle.c -- the handle table under concurrency.  Threads create,
 * drop, open cursors on (lookups), write to and read from a shared set of
 * table names for a few seconds, keeping a per-name record of what they
 * did under a per-name mutex.  Afterwards every table that should exist is
 * found with its last row and no dropped one is, before and after reopen.
 * Also forces the idle-handle sweep by opening more tables than the sweep
 * keeps open.  Run under ThreadSanitizer and AddressSanitizer by the test
 * command.
 */
#include <pthread.h>
#include <string.h>

#include "testutil.h"

#define NAMES 24
#define THREADS 4

static layered_conn *conn;
static pthread_mutex_t name_lock[NAMES];
static bool exists[NAMES];
static int last_value[NAMES];
static uint64_t run_until;
static _Atomic uint64_t ops, busy;

static void *
worker(void *arg)
{
    uint64_t rng = (uint64_t)(uintptr_t)arg * 0x9e3779b97f4a7c15ull + 1;
    layered_session *s;
    layered_cursor *c;
    char uri[32], v[16];
    int i, ret;

    CHECK_OK(layered_session_open(conn, &s));
    while (tu_now_ns() < run_until) {
        i = (int)(tu_rand(&rng) % NAMES);
        snprintf(uri, sizeof(uri), "layered:n%02d", i);
        switch (tu_rand(&rng) % 4) {
        case 0: /* create */
            pthread_mutex_lock(&name_lock[i]);
            ret = layered_create(s, uri, NULL);
            CHECK_RET(exists[i] ? EEXIST : 0, ret);
            if (ret == 0) {
                exists[i] = true;
                last_value[i] = -1;
            }
            pthread_mutex_unlock(&name_lock[i]);
            break;
        case 1: /* drop: may meet a reader's cursor */
            pthread_mutex_lock(&name_lock[i]);
            ret = layered_drop(s, uri, LAYERED_DROP_FORCE);
            if (ret == EBUSY)
                busy++;
            else {
                CHECK_OK(ret);
                exists[i] = false;
            }
            pthread_mutex_unlock(&name_lock[i]);
            break;
        case 2: /* write (under the name lock: the model stays exact) */
            pthread_mutex_lock(&name_lock[i]);
            ret = layered_cursor_open(s, uri, &c);
            CHECK_RET(exists[i] ? 0 : ENOENT, ret);
            if (ret == 0) {
                int n = (int)(tu_rand(&rng) % 1000);
                snprintf(v, sizeof(v), "%d", n);
                CHECK_OK(layered_cursor_insert(c, "k", 1, v, strlen(v)));
                last_value[i] = n;
                CHECK_OK(layered_cursor_close(c));
            }
            pthread_mutex_unlock(&name_lock[i]);
            break;
        case 3: /* lookup without the name lock: races creates and drops */
            ret = layered_cursor_open(s, uri, &c);
            CHECK(ret == 0 || ret == ENOENT);
            if (ret == 0) {
                ret = layered_cursor_search(c, "k", 1);
                CHECK(ret == 0 || ret == LAYERED_NOTFOUND);
                CHECK_OK(layered_cursor_close(c));
            }
            break;
        }
        ops++;
    }
    CHECK_OK(layered_session_close(s));
    return NULL;
}

static void
verify(void)
{
    layered_session *s;
    layered_cursor *c;
    const void *val;
    size_t vlen;
    char uri[32], v[16];
    int i, state;

    CHECK_OK(layered_session_open(conn, &s));
    for (i = 0; i < NAMES; i++) {
        snprintf(uri, sizeof(uri), "layered:n%02d", i);
        if (!exists[i]) {
            CHECK_RET(ENOENT, layered_table_state(s, uri, &state));
            CHECK_RET(ENOENT, layered_cursor_open(s, uri, &c));
            continue;
        }
        CHECK_OK(layered_table_state(s, uri, &state));
        CHECK_OK(layered_cursor_open(s, uri, &c));
        if (last_value[i] < 0)
            CHECK_RET(LAYERED_NOTFOUND, layered_cursor_search(c, "k", 1));
        else {
            CHECK_OK(layered_cursor_search(c, "k", 1));
            CHECK_OK(layered_cursor_get(c, NULL, NULL, &val, &vlen));
            snprintf(v, sizeof(v), "%d", last_value[i]);
            CHECK(vlen == strlen(v) && memcmp(val, v, vlen) == 0);
        }
        CHECK_OK(layered_cursor_close(c));
    }
    CHECK_OK(layered_session_close(s));
}

/* More tables than the sweep keeps open: handles are closed and reopened
 * transparently. */
static void
sweep(const char *home)
{
    enum { N = 1200 };
    layered_session *s;
    layered_cursor *c;
    char uri[32], v[16];
    const void *val;
    size_t vlen;
    int i;

    CHECK_OK(layered_session_open(conn, &s));
    for (i = 0; i < N; i++) {
        snprintf(uri, sizeof(uri), "layered:s%04d", i);
        CHECK_OK(layered_create(s, uri, NULL));
        CHECK_OK(layered_cursor_open(s, uri, &c));
        snprintf(v, sizeof(v), "%d", i);
        CHECK_OK(layered_cursor_insert(c, "k", 1, v, strlen(v)));
        CHECK_OK(layered_cursor_close(c));
    }
    CHECK_OK(layered_step_up(conn, NULL));
    for (i = 0; i < N; i++) {
        snprintf(uri, sizeof(uri), "layered:s%04d", i);
        CHECK_OK(layered_cursor_open(s, uri, &c));
        CHECK_OK(layered_cursor_search(c, "k", 1));
        CHECK_OK(layered_cursor_get(c, NULL, NULL, &val, &vlen));
        snprintf(v, sizeof(v), "%d", i);
        CHECK(vlen == strlen(v) && memcmp(val, v, vlen) == 0);
        CHECK_OK(layered_cursor_close(c));
    }
    CHECK_OK(layered_step_down(conn));
    CHECK_OK(layered_session_close(s));
    (void)home;
}

int
main(void)
{
    char *home = tu_mkdtemp("dhandle");
    pthread_t tids[THREADS];
    const char *secs = getenv("LAYERED_TEST_SECONDS");
    int i;

    for (i = 0; i < NAMES; i++)
        pthread_mutex_init(&name_lock[i], NULL);
    CHECK_OK(layered_open(home, NULL, &conn));
    run_until = tu_now_ns() + (uint64_t)(secs ? atoi(secs) : 3) * 1000000000ull;
    for (i = 0; i < THREADS; i++)
        CHECK(pthread_create(&tids[i], NULL, worker,
                             (void *)(uintptr_t)(i + 1)) == 0);
    for (i = 0; i < THREADS; i++)
        CHECK(pthread_join(tids[i], NULL) == 0);
    printf("test_dhandle: %llu operations, %llu drops met a cursor (EBUSY)\n",
           (unsigned long long)ops, (unsigned long long)busy);
    CHECK(ops > 100);
    verify();
    CHECK_OK(layered_close(conn));
    CHECK_OK(layered_open(home, NULL, &conn));
    verify();
    sweep(home);
    CHECK_OK(layered_close(conn));
    tu_rmdir(home);
    free(home);
    printf("test_dhandle: ok\n");
    return 0;
}
