/*
 * test_lifecycle.c -- archive, offload and unarchive, and the race between
 * the auto-offload task and a user's unarchive, forced in both orderings
 * with failpoints that pause:
 *   1. unarchive wins: the task decided from its snapshot and is paused;
 *      the unarchive succeeds; the offload then refuses
 *      (LAYERED_NOT_ARCHIVED), the table is active and readable, and
 *      archiving it again lets it be offloaded normally;
 *   2. offload wins: the unarchive is paused before the arbiter while the
 *      offload takes it; the unarchive gets EAGAIN; after the offload a
 *      retry restores the table with all its rows;
 *   3. a crash at each step of an offload: after reopen the table is
 *      archived (the crash came before the durable stopping record) or
 *      offloaded (after it: the open finishes the offload), never lost,
 *      and restorable;
 *   4. the races with the drain and with drop -- offload against drop,
 *      offload against a step-up at each of its failpoints, unarchive
 *      against the drain -- under each of the four drain policies (each
 *      in a child process of its own, so one policy's failure does not
 *      hide another's): no panic, no stuck state, an offload either
 *      succeeds or is refused cleanly (EBUSY, LAYERED_NOT_ARCHIVED), and
 *      a step-up racing an offload succeeds.
 */
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

#define ROWS 500

static const char *const policy_names[] = {"skip-missing", "read-lock",
                                           "queue-scan", "unprotected"};

static layered_conn *
open_db_policy(const char *home, int role, int idle_ms, int policy,
               int drain_threads)
{
    layered_config cfg;
    layered_conn *conn;

    layered_config_init(&cfg);
    cfg.role = role;
    cfg.offload_idle_ms = idle_ms;
    cfg.maintenance_interval_ms = 5;
    cfg.drain_policy = policy;
    if (drain_threads > 0)
        cfg.drain_threads = drain_threads;
    CHECK_OK(layered_open(home, &cfg, &conn));
    return conn;
}

static layered_conn *
open_db(const char *home, int role, int idle_ms)
{
    return open_db_policy(home, role, idle_ms, LAYERED_DRAIN_SKIP_MISSING,
                          0);
}

static void
fill(layered_session *s, const char *uri, int n)
{
    layered_cursor *c;
    char k[32], v[32];

    CHECK_OK(layered_cursor_open(s, uri, &c));
    for (int i = 0; i < n; i++) {
        snprintf(k, sizeof(k), "key%05d", i);
        snprintf(v, sizeof(v), "val%05d", i);
        CHECK_OK(layered_cursor_insert(c, k, strlen(k), v, strlen(v)));
    }
    CHECK_OK(layered_cursor_close(c));
}

static void
check_rows_total(layered_session *s, const char *uri, int n, int total)
{
    layered_cursor *c;
    const void *v;
    size_t vlen;
    char k[32], want[32];
    int i, count = 0;

    CHECK_OK(layered_cursor_open(s, uri, &c));
    for (i = 0; i < n; i++) {
        snprintf(k, sizeof(k), "key%05d", i);
        snprintf(want, sizeof(want), "val%05d", i);
        CHECK_OK(layered_cursor_search(c, k, strlen(k)));
        CHECK_OK(layered_cursor_get(c, NULL, NULL, &v, &vlen));
        CHECK(vlen == strlen(want) && memcmp(v, want, vlen) == 0);
    }
    CHECK_OK(layered_cursor_reset(c));
    while (layered_cursor_next(c) == 0)
        count++;
    CHECK(count == total);
    CHECK_OK(layered_cursor_close(c));
}

static void
check_rows(layered_session *s, const char *uri, int n)
{
    check_rows_total(s, uri, n, n);
}

static int
state_of(layered_session *s, const char *uri)
{
    int state;

    CHECK_OK(layered_table_state(s, uri, &state));
    return state;
}

static void
wait_state(layered_session *s, const char *uri, int want)
{
    uint64_t deadline = tu_now_ns() + 30ull * 1000000000ull;

    while (state_of(s, uri) != want) {
        CHECK(tu_now_ns() < deadline);
        usleep(1000);
    }
}

/* The leader owns stable: tables are filled as leader so the ingest is
 * empty and the table can be offloaded. */
static char *
make_db(const char *tag)
{
    char *home = tu_mkdtemp(tag);
    layered_conn *conn = open_db(home, LAYERED_ROLE_LEADER, 0);
    layered_session *s;

    CHECK_OK(layered_session_open(conn, &s));
    CHECK_OK(layered_create(s, "layered:t", NULL));
    fill(s, "layered:t", ROWS);
    CHECK_OK(layered_close(conn));
    return home;
}

static void
test_api(void)
{
    char *home = make_db("life-api"), path[4096];
    layered_conn *conn = open_db(home, LAYERED_ROLE_LEADER, 0);
    layered_session *s;
    layered_cursor *c;
    layered_conn_stats st;
    struct stat sb;

    CHECK_OK(layered_session_open(conn, &s));
    CHECK_RET(EINVAL, layered_archive(NULL, "layered:t"));
    CHECK_RET(EINVAL, layered_archive(s, "bad"));
    CHECK_RET(ENOENT, layered_archive(s, "layered:none"));
    CHECK_RET(ENOENT, layered_offload(s, "layered:none"));
    CHECK_RET(ENOENT, layered_unarchive(s, "layered:none"));
    CHECK_RET(LAYERED_NOT_ARCHIVED, layered_offload(s, "layered:t"));
    CHECK_OK(layered_unarchive(s, "layered:t")); /* already active */
    CHECK_OK(layered_archive(s, "layered:t"));
    CHECK_OK(layered_archive(s, "layered:t"));
    CHECK(state_of(s, "layered:t") == LAYERED_TABLE_ARCHIVED);
    check_rows(s, "layered:t", ROWS); /* archived tables stay readable */
    /* A cursor open: the offload refuses and changes nothing. */
    CHECK_OK(layered_cursor_open(s, "layered:t", &c));
    CHECK_RET(EBUSY, layered_offload(s, "layered:t"));
    CHECK_OK(layered_cursor_close(c));
    CHECK(state_of(s, "layered:t") == LAYERED_TABLE_ARCHIVED);
    CHECK_OK(layered_offload(s, "layered:t"));
    CHECK_OK(layered_offload(s, "layered:t"));
    CHECK(state_of(s, "layered:t") == LAYERED_TABLE_OFFLOADED);
    snprintf(path, sizeof(path), "%s/t.ingest", home);
    CHECK(stat(path, &sb) != 0 && errno == ENOENT);
    CHECK_RET(ENOENT, layered_cursor_open(s, "layered:t", &c));
    /* Its stable data stays in the shared store, and counts. */
    CHECK_OK(layered_checkpoint(s));
    snprintf(path, sizeof(path), "%s/shared", home);
    CHECK(tu_stable_files_bytes(path) > 0);
    TU_CHECK_SIZE_ON_DISK(conn, path);
    /* Offloaded is durable and survives reopen. */
    CHECK_OK(layered_close(conn));
    conn = open_db(home, LAYERED_ROLE_LEADER, 0);
    CHECK_OK(layered_session_open(conn, &s));
    CHECK(state_of(s, "layered:t") == LAYERED_TABLE_OFFLOADED);
    CHECK_OK(layered_unarchive(s, "layered:t"));
    CHECK(state_of(s, "layered:t") == LAYERED_TABLE_ACTIVE);
    check_rows(s, "layered:t", ROWS);
    CHECK_OK(layered_stats(conn, &st));
    CHECK(st.restores == 1 && st.unarchives == 1);
    /* An offloaded table can be dropped. */
    CHECK_OK(layered_archive(s, "layered:t"));
    CHECK_OK(layered_offload(s, "layered:t"));
    CHECK_OK(layered_drop(s, "layered:t", 0));
    snprintf(path, sizeof(path), "%s/shared/t.stable", home);
    CHECK(stat(path, &sb) != 0 && errno == ENOENT);
    CHECK_OK(layered_close(conn));
    tu_rmdir(home);
    free(home);
}

/* 1. The auto-offload decided, then the user unarchived. */
static void
test_unarchive_wins(void)
{
    char *home = make_db("life-unarchive-wins");
    layered_conn *conn = open_db(home, LAYERED_ROLE_LEADER, 1);
    layered_session *s;
    layered_conn_stats st;

    printf("  unarchive wins against a paused auto-offload\n");
    CHECK_OK(layered_session_open(conn, &s));
    CHECK_OK(layered_failpoint_set(conn, "offload.decided", "pause"));
    CHECK_OK(layered_archive(s, "layered:t"));
    CHECK_OK(layered_failpoint_wait(conn, "offload.decided", 30000));
    CHECK_OK(layered_unarchive(s, "layered:t"));
    CHECK_OK(layered_failpoint_set(conn, "offload.decided", "off"));
    /* The task tries its stale decision and is refused. */
    {
        uint64_t deadline = tu_now_ns() + 30ull * 1000000000ull;
        do {
            CHECK(tu_now_ns() < deadline);
            usleep(1000);
            CHECK_OK(layered_stats(conn, &st));
        } while (st.offloads_refused == 0);
    }
    CHECK(st.offloads == 0);
    CHECK(state_of(s, "layered:t") == LAYERED_TABLE_ACTIVE);
    check_rows(s, "layered:t", ROWS);
    fill(s, "layered:t", ROWS); /* and writable */
    /* Nothing was poisoned: archive again and the task offloads it. */
    CHECK_OK(layered_archive(s, "layered:t"));
    wait_state(s, "layered:t", LAYERED_TABLE_OFFLOADED);
    CHECK_OK(layered_unarchive(s, "layered:t"));
    check_rows(s, "layered:t", ROWS);
    CHECK_OK(layered_close(conn));
    tu_rmdir(home);
    free(home);
}

struct call {
    pthread_t tid;
    layered_session *s;
    int ret;
};

static void *
unarchive_thread(void *arg)
{
    struct call *c = arg;

    c->ret = layered_unarchive(c->s, "layered:t");
    return NULL;
}

static void *
offload_thread(void *arg)
{
    struct call *c = arg;

    c->ret = layered_offload(c->s, "layered:t");
    return NULL;
}

static void *
offload_a_thread(void *arg)
{
    struct call *c = arg;

    c->ret = layered_offload(c->s, "layered:a");
    return NULL;
}

/* 2. The offload took the arbiter while the unarchive was paused. */
static void
test_offload_wins(void)
{
    char *home = make_db("life-offload-wins");
    layered_conn *conn = open_db(home, LAYERED_ROLE_LEADER, 0);
    layered_session *s;
    struct call un, off;

    printf("  offload wins against a paused unarchive\n");
    CHECK_OK(layered_session_open(conn, &s));
    CHECK_OK(layered_session_open(conn, &un.s));
    CHECK_OK(layered_session_open(conn, &off.s));
    CHECK_OK(layered_archive(s, "layered:t"));
    CHECK_OK(layered_failpoint_set(conn, "unarchive.before_lock", "pause"));
    CHECK_OK(layered_failpoint_set(conn, "offload.after_arbiter", "pause"));
    CHECK(pthread_create(&un.tid, NULL, unarchive_thread, &un) == 0);
    CHECK_OK(layered_failpoint_wait(conn, "unarchive.before_lock", 30000));
    CHECK(pthread_create(&off.tid, NULL, offload_thread, &off) == 0);
    CHECK_OK(layered_failpoint_wait(conn, "offload.after_arbiter", 30000));
    /* A second offload or a drop while this one runs: clear errors. */
    CHECK_RET(LAYERED_IN_PROGRESS, layered_offload(s, "layered:t"));
    CHECK_RET(EBUSY, layered_drop(s, "layered:t", LAYERED_DROP_FORCE));
    CHECK_OK(layered_failpoint_set(conn, "unarchive.before_lock", "off"));
    CHECK(pthread_join(un.tid, NULL) == 0);
    CHECK_RET(EAGAIN, un.ret); /* retryable */
    CHECK_OK(layered_failpoint_set(conn, "offload.after_arbiter", "off"));
    CHECK(pthread_join(off.tid, NULL) == 0);
    CHECK_OK(off.ret);
    CHECK(state_of(s, "layered:t") == LAYERED_TABLE_OFFLOADED);
    CHECK_OK(layered_unarchive(s, "layered:t")); /* the retry restores */
    CHECK(state_of(s, "layered:t") == LAYERED_TABLE_ACTIVE);
    check_rows(s, "layered:t", ROWS);
    CHECK_OK(layered_close(conn));
    tu_rmdir(home);
    free(home);
}

/* 3. A crash at each step of an offload. */
static int
crash_child(const char *home, const char *fp)
{
    layered_conn *conn = open_db(home, LAYERED_ROLE_LEADER, 0);
    layered_session *s;
    struct call off;

    CHECK_OK(layered_session_open(conn, &s));
    CHECK_OK(layered_session_open(conn, &off.s));
    CHECK_OK(layered_archive(s, "layered:t"));
    CHECK_OK(layered_failpoint_set(conn, fp, "pause"));
    CHECK(pthread_create(&off.tid, NULL, offload_thread, &off) == 0);
    CHECK_OK(layered_failpoint_wait(conn, fp, 30000));
    CHECK(write(1, "r", 1) == 1);
    for (;;)
        pause();
}

static void
test_offload_crash(void)
{
    /* The state after reopen follows from lifecycle.c: nothing durable
     * happens before the stopping record (the ruling lives in memory);
     * once it is durable the open finishes the offload. */
    static const struct {
        const char *fp;
        int state;
    } fps[] = {
        {"offload.before_arbiter", LAYERED_TABLE_ARCHIVED},
        {"offload.after_arbiter", LAYERED_TABLE_ARCHIVED},
        {"offload.after_stopping", LAYERED_TABLE_OFFLOADED},
        {"offload.after_remove", LAYERED_TABLE_OFFLOADED},
    };

    for (size_t i = 0; i < sizeof(fps) / sizeof(fps[0]); i++) {
        char *home = make_db("life-crash"), r;
        layered_conn *conn;
        layered_session *s;
        int fds[2], status, state;
        pid_t pid;

        CHECK(pipe(fds) == 0);
        fflush(stdout);
        if ((pid = fork()) == 0) {
            dup2(fds[1], 1);
            close(fds[0]);
            execl("/proc/self/exe", "test_lifecycle", "--crash-child", home,
                  fps[i].fp, (char *)NULL);
            _exit(127);
        }
        close(fds[1]);
        CHECK(read(fds[0], &r, 1) == 1);
        CHECK(kill(pid, SIGKILL) == 0);
        CHECK(waitpid(pid, &status, 0) == pid && WIFSIGNALED(status));
        close(fds[0]);

        conn = open_db(home, LAYERED_ROLE_LEADER, 0);
        CHECK_OK(layered_session_open(conn, &s));
        state = state_of(s, "layered:t");
        printf("  crash at %-24s -> %s after reopen\n", fps[i].fp,
               state == LAYERED_TABLE_ARCHIVED    ? "archived"
               : state == LAYERED_TABLE_OFFLOADED ? "offloaded"
                                                  : "another state");
        CHECK(state == fps[i].state);
        /* The metadata and the files agree: the ingest exists exactly
         * when the table is not offloaded. */
        {
            char path[4096];
            struct stat sb;
            snprintf(path, sizeof(path), "%s/t.ingest", home);
            CHECK((stat(path, &sb) == 0) ==
                  (state == LAYERED_TABLE_ARCHIVED));
        }
        CHECK_OK(layered_unarchive(s, "layered:t"));
        check_rows(s, "layered:t", ROWS);
        CHECK_OK(layered_close(conn));
        tu_rmdir(home);
        free(home);
    }
}

/*
 * 4. The races with the drain and with drop, under one drain policy.
 */
/* Insert n rows "<prefix>NNNNN" -> "val<prefix>NNNNN". */
static void
fill_prefix(layered_session *s, const char *uri, const char *prefix, int n)
{
    layered_cursor *c;
    char k[32], v[40];

    CHECK_OK(layered_cursor_open(s, uri, &c));
    for (int i = 0; i < n; i++) {
        snprintf(k, sizeof(k), "%s%05d", prefix, i);
        snprintf(v, sizeof(v), "val%s%05d", prefix, i);
        CHECK_OK(layered_cursor_insert(c, k, strlen(k), v, strlen(v)));
    }
    CHECK_OK(layered_cursor_close(c));
}

/* No panic, and after a checkpoint database_size is the stable files on
 * disk plus the buffer. */
static void
check_healthy(const char *home, layered_conn *conn, layered_session *s)
{
    layered_conn_stats st;
    char *shared;

    CHECK_OK(layered_stats(conn, &st));
    CHECK(!st.panicked);
    CHECK_OK(layered_checkpoint(s));
    CHECK(asprintf(&shared, "%s/shared", home) > 0);
    TU_CHECK_SIZE_ON_DISK(conn, shared);
    free(shared);
}

/* The offload's outcome must be one of the clean ones; returns it. */
static int
offload_cleanly(layered_session *s, const char *uri)
{
    int ret = layered_offload(s, uri);

    if (ret != 0 && ret != EBUSY && ret != LAYERED_NOT_ARCHIVED) {
        fprintf(stderr, "offload %s: %s\n", uri, layered_strerror(ret));
        CHECK(0);
    }
    return ret;
}

/* Offload against drop, and an offload during the copy of its table. */
static void
race_offload_vs_drop_and_drain(int policy)
{
    char *home = make_db("life-vs");
    layered_conn *conn;
    layered_session *s;
    struct tu_stepper up;
    struct call off;

    printf("  %s: offload against drop and against the drain\n",
           policy_names[policy]);
    /* Drop first, offload after: the offload finds nothing. */
    conn = open_db_policy(home, LAYERED_ROLE_LEADER, 0, policy, 0);
    CHECK_OK(layered_session_open(conn, &s));
    CHECK_OK(layered_create(s, "layered:d", NULL));
    CHECK_OK(layered_archive(s, "layered:d"));
    CHECK_OK(layered_drop(s, "layered:d", LAYERED_DROP_FORCE));
    CHECK_RET(ENOENT, layered_offload(s, "layered:d"));
    CHECK_OK(layered_close(conn));

    /* A follower with rows in the archived table's ingest steps up; the
     * offload during the copy refuses (EBUSY), after the drain it works. */
    conn = open_db_policy(home, LAYERED_ROLE_FOLLOWER, 0, policy, 0);
    CHECK_OK(layered_session_open(conn, &s));
    {
        layered_cursor *c;
        CHECK_OK(layered_cursor_open(s, "layered:t", &c));
        CHECK_OK(layered_cursor_insert(c, "zz-follower", 11, "x", 1));
        CHECK_OK(layered_cursor_close(c));
    }
    CHECK_OK(layered_archive(s, "layered:t"));
    CHECK_RET(EBUSY, layered_offload(s, "layered:t")); /* undrained rows */
    CHECK(state_of(s, "layered:t") == LAYERED_TABLE_ARCHIVED);
    CHECK_OK(layered_failpoint_set(conn, "drain.copy", "pause"));
    tu_step_up_start(&up, conn);
    CHECK_OK(layered_failpoint_wait(conn, "drain.copy", 30000));
    CHECK_OK(layered_session_open(conn, &off.s));
    CHECK_RET(EBUSY, layered_offload(off.s, "layered:t"));
    CHECK(state_of(s, "layered:t") == LAYERED_TABLE_ARCHIVED);
    CHECK_OK(layered_failpoint_set(conn, "drain.copy", "off"));
    tu_step_up_join(&up);
    CHECK_OK(up.ret);
    CHECK(up.ds.tables_drained == 1 && up.ds.rows == 1);
    CHECK_OK(layered_offload(s, "layered:t"));
    CHECK_OK(layered_unarchive(s, "layered:t"));
    check_rows_total(s, "layered:t", ROWS, ROWS + 1);

    /* An offload paused after its ruling: a drop gets EBUSY and succeeds
     * once the offload finished. */
    CHECK_OK(layered_archive(s, "layered:t"));
    CHECK_OK(layered_failpoint_set(conn, "offload.after_arbiter", "pause"));
    CHECK(pthread_create(&off.tid, NULL, offload_thread, &off) == 0);
    CHECK_OK(layered_failpoint_wait(conn, "offload.after_arbiter", 30000));
    CHECK_RET(EBUSY, layered_drop(s, "layered:t", LAYERED_DROP_FORCE));
    CHECK_OK(layered_failpoint_set(conn, "offload.after_arbiter", "off"));
    CHECK(pthread_join(off.tid, NULL) == 0);
    CHECK_OK(off.ret);
    CHECK_OK(layered_drop(s, "layered:t", LAYERED_DROP_FORCE));
    check_healthy(home, conn, s);
    {
        layered_conn_stats st;
        char *shared;
        CHECK_OK(layered_stats(conn, &st));
        CHECK(st.database_size == LAYERED_CHECKPOINT_SIZE_BUFFER);
        CHECK(asprintf(&shared, "%s/shared", home) > 0);
        CHECK(tu_stable_files_bytes(shared) == 0);
        free(shared);
    }
    CHECK_OK(layered_close(conn));
    tu_rmdir(home);
    free(home);
}

static const char *const drain_fps[] = {"drain.queued", "drain.before_lock",
                                        "drain.copy", "drain.before_clear"};

/*
 * race_offload_vs_step_up --
 *     The archived table's ingest holds rows; an offload at each step of
 *     the step-up that drains it is refused (EBUSY: rows not yet drained,
 *     or the drain holds the table) and changes nothing; the step-up
 *     succeeds; then the offload works and every row comes back.
 */
static void
race_offload_vs_step_up(int policy)
{
    for (size_t i = 0; i < sizeof(drain_fps) / sizeof(drain_fps[0]); i++) {
        const char *fp = drain_fps[i];
        char *home = make_db("life-vs-up");
        layered_conn *conn;
        layered_session *s;
        struct tu_stepper up;

        printf("  %s: offload during a step-up draining the table (%s)\n",
               policy_names[policy], fp);
        conn = open_db_policy(home, LAYERED_ROLE_FOLLOWER, 0, policy, 1);
        CHECK_OK(layered_session_open(conn, &s));
        fill_prefix(s, "layered:t", "zf", 100);
        CHECK_OK(layered_archive(s, "layered:t"));
        CHECK_OK(layered_failpoint_set(conn, fp, "pause"));
        tu_step_up_start(&up, conn);
        CHECK_OK(layered_failpoint_wait(conn, fp, 30000));
        CHECK_RET(EBUSY, layered_offload(s, "layered:t"));
        CHECK(state_of(s, "layered:t") == LAYERED_TABLE_ARCHIVED);
        CHECK_OK(layered_failpoint_set(conn, fp, "off"));
        tu_step_up_join(&up);
        CHECK_OK(up.ret);
        CHECK(up.ds.tables_queued == 1 && up.ds.tables_drained == 1);
        CHECK(up.ds.rows == 100);
        CHECK(tu_count_rows(s, "file:t.ingest") == 0);
        CHECK_OK(layered_offload(s, "layered:t"));
        CHECK(state_of(s, "layered:t") == LAYERED_TABLE_OFFLOADED);
        CHECK_OK(layered_unarchive(s, "layered:t"));
        check_rows_total(s, "layered:t", ROWS, ROWS + 100);
        check_healthy(home, conn, s);
        CHECK_OK(layered_close(conn));
        tu_rmdir(home);
        free(home);
    }
}

/*
 * race_offload_cleared_ingest --
 *     A table whose ingest a step-up drained and cleared (its file still
 *     holds the old records and the clear marker: nothing compacted it)
 *     is archived after a step-down; the next step-up must not trip over
 *     an offload of it.  Table u has live rows, so the step-up has work
 *     whatever it queues.  Orderings: the offload while the step-up is
 *     paused after queuing (drain.queued), while a worker is paused
 *     before its lock (drain.before_lock), and a whole step-up while the
 *     offload is paused after its ruling (offload.after_arbiter).
 *     Expected: the step-up succeeds, no panic, the offload succeeds or
 *     is refused cleanly, every row of a is there after unarchive.
 */
static void
race_offload_cleared_ingest(int policy)
{
    static const char *const fps[] = {"drain.queued", "drain.before_lock",
                                       "offload.after_arbiter"};

    for (size_t i = 0; i < sizeof(fps) / sizeof(fps[0]); i++) {
        const char *fp = fps[i];
        char *home = tu_mkdtemp("life-cleared");
        layered_conn *conn;
        layered_session *s;
        struct tu_stepper up;
        struct call off;
        int ret, state;

        printf("  %s: offload of a drained-and-cleared table racing a "
               "step-up (%s)\n", policy_names[policy], fp);
        conn = open_db_policy(home, LAYERED_ROLE_FOLLOWER, 0, policy, 1);
        CHECK_OK(layered_session_open(conn, &s));
        CHECK_OK(layered_create(s, "layered:a", NULL));
        CHECK_OK(layered_create(s, "layered:u", NULL));
        fill(s, "layered:a", ROWS);
        CHECK_OK(layered_step_up(conn, NULL)); /* drains and clears a */
        CHECK(tu_count_rows(s, "file:a.ingest") == 0);
        CHECK_OK(layered_step_down(conn));
        CHECK_OK(layered_archive(s, "layered:a"));
        /* Reopened, the connection has no handle of a's ingest: whether
         * it is empty is not known until someone opens it. */
        CHECK_OK(layered_close(conn));
        conn = open_db_policy(home, LAYERED_ROLE_FOLLOWER, 0, policy, 1);
        CHECK_OK(layered_session_open(conn, &s));
        CHECK(state_of(s, "layered:a") == LAYERED_TABLE_ARCHIVED);
        fill_prefix(s, "layered:u", "u", 50);

        if (strcmp(fp, "offload.after_arbiter") == 0) {
            CHECK_OK(layered_session_open(conn, &off.s));
            CHECK_OK(layered_failpoint_set(conn, fp, "pause"));
            CHECK(pthread_create(&off.tid, NULL, offload_a_thread, &off) ==
                  0);
            CHECK_OK(layered_failpoint_wait(conn, fp, 30000));
            tu_step_up_start(&up, conn);
            tu_step_up_join(&up);
            CHECK_OK(layered_failpoint_set(conn, fp, "off"));
            CHECK(pthread_join(off.tid, NULL) == 0);
            ret = off.ret;
            CHECK(ret == 0 || ret == EBUSY || ret == LAYERED_NOT_ARCHIVED);
        } else {
            CHECK_OK(layered_failpoint_set(conn, fp, "pause"));
            tu_step_up_start(&up, conn);
            CHECK_OK(layered_failpoint_wait(conn, fp, 30000));
            ret = offload_cleanly(s, "layered:a");
            CHECK_OK(layered_failpoint_set(conn, fp, "off"));
            tu_step_up_join(&up);
        }
        CHECK_OK(up.ret);
        check_healthy(home, conn, s);
        CHECK(up.ds.tables_drained + up.ds.tables_skipped ==
              up.ds.tables_queued);
        CHECK(up.ds.rows == 50);
        CHECK(tu_count_rows(s, "file:u.ingest") == 0);
        check_rows_total(s, "layered:u", 0, 50);
        state = state_of(s, "layered:a");
        CHECK(state == (ret == 0 ? LAYERED_TABLE_OFFLOADED
                                 : LAYERED_TABLE_ARCHIVED));
        CHECK_OK(layered_unarchive(s, "layered:a"));
        check_rows(s, "layered:a", ROWS);
        CHECK_OK(layered_close(conn));
        tu_rmdir(home);
        free(home);
    }
}

/*
 * race_unarchive_vs_drain --
 *     An unarchive needs none of the locks the drain holds: it succeeds
 *     while the step-up is paused after queuing the table or inside its
 *     copy, and so does the restore of an offloaded table while another
 *     table is being copied.  The step-up succeeds, the tables are active
 *     with every row, and writable.
 */
static void
race_unarchive_vs_drain(int policy)
{
    static const char *const fps[] = {"drain.queued", "drain.copy"};

    for (size_t i = 0; i < sizeof(fps) / sizeof(fps[0]); i++) {
        const char *fp = fps[i];
        char *home = make_db("life-un-drain");
        layered_conn *conn;
        layered_session *s;
        struct tu_stepper up;

        printf("  %s: unarchive and restore during a step-up (%s)\n",
               policy_names[policy], fp);
        /* o: offloaded; t: archived with rows in its ingest. */
        conn = open_db_policy(home, LAYERED_ROLE_LEADER, 0, policy, 1);
        CHECK_OK(layered_session_open(conn, &s));
        CHECK_OK(layered_create(s, "layered:o", NULL));
        fill(s, "layered:o", ROWS);
        CHECK_OK(layered_archive(s, "layered:o"));
        CHECK_OK(layered_offload(s, "layered:o"));
        CHECK_OK(layered_close(conn));
        conn = open_db_policy(home, LAYERED_ROLE_FOLLOWER, 0, policy, 1);
        CHECK_OK(layered_session_open(conn, &s));
        fill_prefix(s, "layered:t", "zf", 100);
        CHECK_OK(layered_archive(s, "layered:t"));

        CHECK_OK(layered_failpoint_set(conn, fp, "pause"));
        tu_step_up_start(&up, conn);
        CHECK_OK(layered_failpoint_wait(conn, fp, 30000));
        CHECK_OK(layered_unarchive(s, "layered:t"));
        CHECK(state_of(s, "layered:t") == LAYERED_TABLE_ACTIVE);
        CHECK_OK(layered_unarchive(s, "layered:o")); /* a restore */
        CHECK(state_of(s, "layered:o") == LAYERED_TABLE_ACTIVE);
        CHECK_OK(layered_failpoint_set(conn, fp, "off"));
        tu_step_up_join(&up);
        CHECK_OK(up.ret);
        CHECK(up.ds.tables_queued == 1 && up.ds.tables_drained == 1);
        CHECK(up.ds.rows == 100);
        check_rows_total(s, "layered:t", ROWS, ROWS + 100);
        check_rows(s, "layered:o", ROWS);
        fill_prefix(s, "layered:o", "new", 10); /* writable, as leader */
        check_rows_total(s, "layered:o", ROWS, ROWS + 10);
        check_healthy(home, conn, s);
        CHECK_OK(layered_close(conn));
        /* And after reopen. */
        conn = open_db_policy(home, LAYERED_ROLE_FOLLOWER, 0, policy, 1);
        CHECK_OK(layered_session_open(conn, &s));
        CHECK(state_of(s, "layered:t") == LAYERED_TABLE_ACTIVE);
        CHECK(state_of(s, "layered:o") == LAYERED_TABLE_ACTIVE);
        check_rows_total(s, "layered:t", ROWS, ROWS + 100);
        check_rows_total(s, "layered:o", ROWS, ROWS + 10);
        CHECK_OK(layered_close(conn));
        tu_rmdir(home);
        free(home);
    }
}

static int
races(int policy)
{
    race_offload_vs_drop_and_drain(policy);
    race_offload_vs_step_up(policy);
    race_unarchive_vs_drain(policy);
    race_offload_cleared_ingest(policy);
    printf("  %s: races ok\n", policy_names[policy]);
    return 0;
}

/* Each policy's races in a child of its own: all four are reported even
 * when one fails. */
static bool
races_in_child(int policy)
{
    char arg[16];
    pid_t pid;
    int status;

    snprintf(arg, sizeof(arg), "%d", policy);
    fflush(stdout);
    fflush(stderr);
    if ((pid = fork()) == 0) {
        execl("/proc/self/exe", "test_lifecycle", "--races", arg,
              (char *)NULL);
        _exit(127);
    }
    CHECK(pid > 0);
    CHECK(waitpid(pid, &status, 0) == pid);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return true;
    if (WIFSIGNALED(status))
        printf("  %s: races FAILED (signal %d)\n", policy_names[policy],
               WTERMSIG(status));
    else
        printf("  %s: races FAILED (exit %d)\n", policy_names[policy],
               WEXITSTATUS(status));
    return false;
}

int
main(int argc, char *argv[])
{
    bool ok = true;

    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc == 4 && strcmp(argv[1], "--crash-child") == 0)
        return crash_child(argv[2], argv[3]);
    if (argc == 3 && strcmp(argv[1], "--races") == 0)
        return races(atoi(argv[2]));
    test_api();
    test_unarchive_wins();
    test_offload_wins();
    test_offload_crash();
    for (int p = LAYERED_DRAIN_SKIP_MISSING; p <= LAYERED_DRAIN_UNPROTECTED;
         p++)
        ok = races_in_child(p) && ok;
    if (!ok) {
        printf("test_lifecycle: FAILED\n");
        return 1;
    }
    printf("test_lifecycle: ok\n");
    return 0;
}
