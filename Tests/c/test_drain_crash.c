/*
 * test_drain_crash.c -- a crash (SIGKILL) at each drain and drop failpoint,
 * then reopen and step up: no acknowledged row is lost, no dropped table
 * comes back, and a repeated drain copies nothing twice.
 *
 * The database: tables a, b (100 leader rows each in stable) get follower
 * rows in their ingest (a: 70,000, more than one copy batch; b: 100);
 * table c is dropped before the crash.  The child steps up with one drain
 * thread (tables drain in name order: a, then b) and, for the drop
 * failpoints, drops b on another thread; it pauses at the failpoint, says
 * so on a pipe, and the parent kills it.
 */
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

#define A_INGEST 70000
#define B_INGEST 100

static const char *const failpoints[] = {
    "drain.queued",       "drain.before_lock",     "drain.copy",
    "drain.before_clear", "drop.before_exclusive", "drop.after_remove",
};

/* Every expected row present with its value, and nothing else. */
static void
check_rows(layered_session *s, const char *uri, int leader_rows,
           int ingest_rows)
{
    layered_cursor *c;
    const void *val;
    size_t vlen;
    char k[32], v[64];
    int i, n = 0;

    CHECK_OK(layered_cursor_open(s, uri, &c));
    for (i = 0; i < leader_rows + ingest_rows; i++) {
        const char *prefix = i < ingest_rows ? "F" : "L";
        int j = i < ingest_rows ? i : i - ingest_rows;
        snprintf(k, sizeof(k), "%s%06d", prefix, j);
        snprintf(v, sizeof(v), "value-%s-%d", prefix, j);
        CHECK_OK(layered_cursor_search(c, k, strlen(k)));
        CHECK_OK(layered_cursor_get(c, NULL, NULL, &val, &vlen));
        CHECK(vlen == strlen(v) && memcmp(val, v, vlen) == 0);
    }
    CHECK_OK(layered_cursor_reset(c));
    while (layered_cursor_next(c) == 0)
        n++;
    CHECK(n == leader_rows + ingest_rows);
    CHECK_OK(layered_cursor_close(c));
}

static void
build(const char *home)
{
    layered_config cfg;
    layered_conn *conn;
    layered_session *s;

    layered_config_init(&cfg);
    cfg.role = LAYERED_ROLE_LEADER;
    CHECK_OK(layered_open(home, &cfg, &conn));
    CHECK_OK(layered_session_open(conn, &s));
    CHECK_OK(layered_create(s, "layered:a", NULL));
    CHECK_OK(layered_create(s, "layered:b", NULL));
    CHECK_OK(layered_create(s, "layered:c", NULL));
    tu_insert_rows(s, "layered:a", "L", 100);
    tu_insert_rows(s, "layered:b", "L", 100);
    tu_insert_rows(s, "layered:c", "L", 100);
    CHECK_OK(layered_checkpoint(s));
    CHECK_OK(layered_close(conn));
    cfg.role = LAYERED_ROLE_FOLLOWER;
    CHECK_OK(layered_open(home, &cfg, &conn));
    CHECK_OK(layered_session_open(conn, &s));
    tu_insert_rows(s, "layered:a", "F", A_INGEST);
    tu_insert_rows(s, "layered:b", "F", B_INGEST);
    tu_insert_rows(s, "layered:c", "F", 100);
    CHECK_OK(layered_drop(s, "layered:c", 0));
    CHECK_OK(layered_close(conn));
}

struct bg {
    layered_conn *conn;
    layered_session *s;
};

static void *
bg_step_up(void *arg)
{
    (void)layered_step_up(((struct bg *)arg)->conn, NULL);
    return NULL;
}

static void *
bg_drop(void *arg)
{
    (void)layered_drop(((struct bg *)arg)->s, "layered:b", 0);
    return NULL;
}

/*
 * child --
 *     Run up to the failpoint, report, wait to be killed.
 */
static int
child(const char *home, const char *fp)
{
    layered_config cfg;
    struct bg bg;
    pthread_t tid;
    char action[64];

    snprintf(action, sizeof(action), "%s=pause", fp);
    layered_config_init(&cfg);
    cfg.drain_threads = 1;
    cfg.failpoints = action;
    CHECK_OK(layered_open(home, &cfg, &bg.conn));
    CHECK_OK(layered_session_open(bg.conn, &bg.s));
    CHECK(pthread_create(&tid, NULL,
                         strncmp(fp, "drop.", 5) == 0 ? bg_drop : bg_step_up,
                         &bg) == 0);
    CHECK_OK(layered_failpoint_wait(bg.conn, fp, 60000));
    CHECK(write(1, "r", 1) == 1);
    for (;;)
        pause();
}

int
main(int argc, char *argv[])
{
    size_t i;

    if (argc == 4 && strcmp(argv[1], "--child") == 0)
        return child(argv[2], argv[3]);

    for (i = 0; i < sizeof(failpoints) / sizeof(failpoints[0]); i++) {
        const char *fp = failpoints[i];
        char *home = tu_mkdtemp("drain-crash"), r;
        layered_conn *conn;
        layered_session *s;
        layered_drain_stats ds;
        int fds[2], status, state, a_copied;
        bool b_dropped = strcmp(fp, "drop.after_remove") == 0;
        pid_t pid;

        build(home);
        CHECK(pipe(fds) == 0);
        fflush(stdout);
        if ((pid = fork()) == 0) {
            dup2(fds[1], 1);
            close(fds[0]);
            execl("/proc/self/exe", "test_drain_crash", "--child", home, fp,
                  (char *)NULL);
            _exit(127);
        }
        close(fds[1]);
        CHECK(read(fds[0], &r, 1) == 1 && r == 'r');
        CHECK(kill(pid, SIGKILL) == 0);
        CHECK(waitpid(pid, &status, 0) == pid && WIFSIGNALED(status));
        close(fds[0]);

        /* Recover: reopen as follower and step up again. */
        CHECK_OK(layered_open(home, NULL, &conn));
        CHECK_OK(layered_session_open(conn, &s));
        /* The rows of a that the crashed drain had copied into stable:
         * the first batch when it died inside the copy, all of them when
         * it died before the clear, none before the copy. */
        a_copied = tu_count_rows(s, "file:a.stable") - 100;
        CHECK(a_copied >= 0);
        if (strcmp(fp, "drain.copy") == 0)
            CHECK(a_copied > 0 && a_copied < A_INGEST);
        else if (strcmp(fp, "drain.before_clear") == 0)
            CHECK(a_copied == A_INGEST);
        else
            CHECK(a_copied == 0);
        CHECK_RET(ENOENT, layered_table_state(s, "layered:c", &state));
        if (b_dropped)
            /* The drop was durably decided: the open finished it. */
            CHECK_RET(ENOENT, layered_table_state(s, "layered:b", &state));
        CHECK_OK(layered_step_up(conn, &ds));
        printf("  crash at %-22s re-drain copied %llu rows\n", fp,
               (unsigned long long)ds.rows);
        if (strcmp(fp, "drain.copy") == 0)
            /* The first batch of a reached stable before the crash: the
             * re-drain copies the rest of a and all of b, and not one row
             * of that batch again. */
            CHECK(ds.rows == (uint64_t)(A_INGEST - a_copied) + B_INGEST);
        else if (strcmp(fp, "drain.before_clear") == 0)
            /* a and b (one batch) were copied and synced before the first
             * clear: nothing is left to copy. */
            CHECK(ds.rows == 0);
        else
            CHECK(ds.rows == A_INGEST + (b_dropped ? 0 : B_INGEST));
        check_rows(s, "layered:a", 100, A_INGEST);
        if (!b_dropped)
            check_rows(s, "layered:b", 100, B_INGEST);
        CHECK_RET(ENOENT, layered_table_state(s, "layered:c", &state));
        CHECK_OK(layered_close(conn));

        /* And once more: a reopen keeps it all. */
        CHECK_OK(layered_open(home, NULL, &conn));
        CHECK_OK(layered_session_open(conn, &s));
        check_rows(s, "layered:a", 100, A_INGEST);
        if (b_dropped)
            CHECK_RET(ENOENT, layered_table_state(s, "layered:b", &state));
        else
            check_rows(s, "layered:b", 100, B_INGEST);
        CHECK_OK(layered_close(conn));
        tu_rmdir(home);
        free(home);
    }
    printf("test_drain_crash: ok\n");
    return 0;
}
