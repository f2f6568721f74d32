/*
 * test_drain.c -- the step-up drain racing drop(force, no checkpoint wait),
 * for each drain policy and each ordering, forced with failpoints that
 * pause (no sleeps that hope).  The shape follows the upstream regression
 * test: a leader creates layered:t, inserts 100 rows and checkpoints; the
 * database reopens as a follower with drain_threads = 2; a cursor touches
 * the table (and, as follower, adds 100 rows to its ingest so there is
 * something to drain); step-up runs on another thread; the test waits at a
 * failpoint, drops the table, and releases the failpoint.
 *
 * The unprotected policy must panic in the drop-wins ordering: that is
 * the proof these tests can see the race.  It runs once with a
 * non-aborting handler and once in a forked child with the default
 * handler, which must die of SIGABRT after printing the panic message.
 */
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "layered_test.h"
#include "testutil.h"

struct db {
    char *home;
    layered_conn *conn;
    layered_session *s;
    int panics;
    int panic_error;
};

static void
panic_cb(void *arg, int error, const char *msg)
{
    struct db *db = arg;

    db->panics++;
    db->panic_error = error;
    printf("    (panic handler: %s)\n", msg);
}

static void
db_open(struct db *db, int role, int policy, bool handler)
{
    layered_config cfg;

    layered_config_init(&cfg);
    cfg.role = role;
    cfg.drain_threads = 2;
    cfg.drain_policy = policy;
    if (handler) {
        cfg.panic_handler = panic_cb;
        cfg.panic_arg = db;
    }
    CHECK_OK(layered_open(db->home, &cfg, &db->conn));
    CHECK_OK(layered_session_open(db->conn, &db->s));
}

static void
db_close(struct db *db)
{
    int ret = layered_close(db->conn);

    CHECK(ret == 0 || (ret == LAYERED_PANIC && db->panics > 0));
    db->conn = NULL;
    db->s = NULL;
}

/*
 * setup --
 *     The upstream shape: leader creates and fills, follower reopens,
 *     touches the table and writes to its ingest.
 */
static void
setup(struct db *db, int policy, int ingest_rows)
{
    memset(db, 0, sizeof(*db));
    db->home = tu_mkdtemp("drain");
    db_open(db, LAYERED_ROLE_LEADER, policy, true);
    CHECK_OK(layered_create(db->s, "layered:t", NULL));
    tu_insert_rows(db->s, "layered:t", "L", 100);
    CHECK_OK(layered_checkpoint(db->s));
    db_close(db);
    db_open(db, LAYERED_ROLE_FOLLOWER, policy, true);
    CHECK(tu_count_rows(db->s, "layered:t") == 100);
    tu_insert_rows(db->s, "layered:t", "F", ingest_rows);
}

/* After a scenario: database_size is what the stable files on disk hold
 * (nothing, once the table is dropped), and the dropped table stays
 * gone. */
static void
teardown(struct db *db, bool dropped)
{
    layered_conn_stats st;
    char *shared;
    int state;

    CHECK(asprintf(&shared, "%s/shared", db->home) > 0);
    if (db->panics == 0) {
        CHECK_OK(layered_checkpoint(db->s));
        TU_CHECK_SIZE_ON_DISK(db->conn, shared);
        if (dropped) {
            CHECK_OK(layered_stats(db->conn, &st));
            CHECK(st.database_size == LAYERED_CHECKPOINT_SIZE_BUFFER);
        }
    }
    db_close(db);
    db_open(db, LAYERED_ROLE_FOLLOWER, LAYERED_DRAIN_SKIP_MISSING, true);
    if (dropped) {
        CHECK_RET(ENOENT, layered_table_state(db->s, "layered:t", &state));
        CHECK_OK(layered_step_up(db->conn, NULL));
        CHECK_RET(ENOENT, layered_table_state(db->s, "layered:t", &state));
        CHECK_OK(layered_checkpoint(db->s));
        CHECK(tu_stable_files_bytes(shared) == 0);
        TU_CHECK_SIZE_ON_DISK(db->conn, shared);
    } else {
        CHECK_OK(layered_table_state(db->s, "layered:t", &state));
        CHECK(tu_count_rows(db->s, "layered:t") == 200);
    }
    db_close(db);
    tu_rmdir(db->home);
    free(shared);
    free(db->home);
}

static const char *const policy_names[] = {"skip-missing", "read-lock",
                                           "queue-scan", "unprotected"};

/*
 * drop_wins --
 *     The drop lands after the worker dequeued the item and before it took
 *     a lock or opened anything (queue-scan: while the item is still
 *     queued, the ordering that policy is about).
 */
static void
drop_wins(int policy)
{
    const char *fp = policy == LAYERED_DRAIN_QUEUE_SCAN ? "drain.queued"
                                                        : "drain.before_lock";
    struct tu_stepper st;
    struct db db;

    printf("  %s, drop wins (%s)\n", policy_names[policy], fp);
    setup(&db, policy, 100);
    CHECK_OK(layered_failpoint_set(db.conn, fp, "pause"));
    tu_step_up_start(&st, db.conn);
    CHECK_OK(layered_failpoint_wait(db.conn, fp, 30000));
    CHECK_OK(layered_drop(db.s, "layered:t", LAYERED_DROP_FORCE));
    CHECK_OK(layered_failpoint_set(db.conn, fp, "off"));
    tu_step_up_join(&st);

    if (policy == LAYERED_DRAIN_UNPROTECTED) {
        /* The original bug: ENOENT fails the step-up, which panics. */
        CHECK_RET(LAYERED_PANIC, st.ret);
        CHECK(db.panics == 1 && db.panic_error == ENOENT);
        CHECK_RET(LAYERED_PANIC, layered_checkpoint(db.s));
        CHECK_RET(LAYERED_PANIC, layered_create(db.s, "layered:x", NULL));
    } else {
        CHECK_OK(st.ret);
        CHECK(db.panics == 0);
        CHECK(st.ds.tables_queued == 1);
        CHECK(st.ds.tables_skipped == 1 && st.ds.tables_drained == 0);
    }
    teardown(&db, true);
}

/*
 * drain_wins --
 *     The drop lands while the worker is copying (its constituents open).
 */
static void
drain_wins(int policy)
{
    struct tu_stepper st;
    struct db db;
    layered_cursor *c;
    int n, ret;

    printf("  %s, drain wins (drain.copy)\n", policy_names[policy]);
    setup(&db, policy, 100);
    CHECK_OK(layered_failpoint_set(db.conn, "drain.copy", "pause"));
    tu_step_up_start(&st, db.conn);
    CHECK_OK(layered_failpoint_wait(db.conn, "drain.copy", 30000));
    /* Every policy refuses: the copy holds the table's read locks. */
    ret = layered_drop(db.s, "layered:t", LAYERED_DROP_FORCE);
    CHECK_RET(EBUSY, ret);
    /* Reads continue during the drain: every row is visible. */
    CHECK(tu_count_rows(db.s, "layered:t") == 200);
    CHECK_OK(layered_failpoint_set(db.conn, "drain.copy", "off"));
    tu_step_up_join(&st);
    CHECK_OK(st.ret);
    CHECK(db.panics == 0);
    CHECK(st.ds.tables_drained == 1 && st.ds.tables_skipped == 0);
    CHECK(st.ds.rows == 100 && st.ds.busy_drops == 1);
    /* The stable copy is complete: 100 leader rows + 100 drained. */
    CHECK_OK(layered_cursor_open(db.s, "file:t.stable", &c));
    for (n = 0; layered_cursor_next(c) == 0; n++)
        ;
    CHECK(n == 200);
    CHECK_OK(layered_cursor_close(c));
    /* The retry after step-up succeeds. */
    CHECK_OK(layered_drop(db.s, "layered:t", LAYERED_DROP_FORCE));
    teardown(&db, true);
}

/*
 * drop_before_clear --
 *     The drop lands between the copy and the clear.  Skip-missing and
 *     unprotected hold nothing there; read-lock and queue-scan still hold
 *     the table (lock / in-flight mark).
 */
static void
drop_before_clear(int policy)
{
    struct tu_stepper st;
    struct db db;
    int ret;

    printf("  %s, drop between copy and clear (drain.before_clear)\n",
           policy_names[policy]);
    setup(&db, policy, 100);
    CHECK_OK(layered_failpoint_set(db.conn, "drain.before_clear", "pause"));
    tu_step_up_start(&st, db.conn);
    CHECK_OK(layered_failpoint_wait(db.conn, "drain.before_clear", 30000));
    ret = layered_drop(db.s, "layered:t", LAYERED_DROP_FORCE);
    CHECK_OK(layered_failpoint_set(db.conn, "drain.before_clear", "off"));
    tu_step_up_join(&st);
    switch (policy) {
    case LAYERED_DRAIN_SKIP_MISSING:
        CHECK_OK(ret);
        CHECK_OK(st.ret);
        CHECK(st.ds.tables_skipped == 1);
        break;
    case LAYERED_DRAIN_READ_LOCK:
    case LAYERED_DRAIN_QUEUE_SCAN:
        CHECK_RET(EBUSY, ret);
        CHECK_OK(st.ret);
        CHECK(st.ds.tables_drained == 1);
        CHECK_OK(layered_drop(db.s, "layered:t", LAYERED_DROP_FORCE));
        break;
    case LAYERED_DRAIN_UNPROTECTED:
        CHECK_OK(ret);
        CHECK_RET(LAYERED_PANIC, st.ret);
        CHECK(db.panics == 1);
        break;
    }
    CHECK(db.panics == (policy == LAYERED_DRAIN_UNPROTECTED));
    teardown(&db, true);
}

/*
 * read_lock_finds_dead --
 *     READ_LOCK's own ordering: the worker has pinned the ingest handle
 *     (drain.before_read_lock) but not yet taken its read lock; a drop then
 *     wins (nothing holds the table), and the worker, once it has the read
 *     lock, finds the handle DEAD and skips the table.  Needs the engine's
 *     drain.before_read_lock failpoint: without it the wait below times
 *     out.
 */
static void
read_lock_finds_dead(void)
{
    const char *fp = "drain.before_read_lock";
    layered_conn_stats cs;
    struct tu_stepper st;
    struct db db;
    int ret, state;

    printf("  read-lock, drop wins after the pin, before the read lock "
           "(%s)\n", fp);
    setup(&db, LAYERED_DRAIN_READ_LOCK, 100);
    CHECK_OK(layered_failpoint_set(db.conn, fp, "pause"));
    tu_step_up_start(&st, db.conn);
    if ((ret = layered_failpoint_wait(db.conn, fp, 30000)) != 0) {
        fprintf(stderr, "no drain worker reached %s (%s): the engine "
                "lacks the failpoint\n", fp, layered_strerror(ret));
        CHECK_OK(ret);
    }
    /* The worker holds a pin, no lock: the drop must win. */
    CHECK_OK(layered_drop(db.s, "layered:t", LAYERED_DROP_FORCE));
    CHECK_RET(ENOENT, layered_table_state(db.s, "layered:t", &state));
    CHECK_OK(layered_failpoint_set(db.conn, fp, "off"));
    tu_step_up_join(&st);
    CHECK_OK(st.ret);
    CHECK(db.panics == 0);
    CHECK(st.ds.tables_queued == 1);
    CHECK(st.ds.tables_skipped == 1 && st.ds.tables_drained == 0);
    CHECK(st.ds.rows == 0 && st.ds.busy_drops == 0);
    CHECK_OK(layered_stats(db.conn, &cs));
    CHECK(!cs.panicked && cs.role == LAYERED_ROLE_LEADER);
    CHECK(cs.tables_skipped == 1 && cs.tables_drained == 0);
    CHECK(cs.step_ups == 1 && cs.tables == 0);
    teardown(&db, true);
}

/*
 * write_during_failed_step_up --
 *     A write waiting for a step-up that then fails must not be
 *     acknowledged: it would land in stable while the undrained ingest
 *     still hides it.  Whether the writer is already waiting on the role
 *     lock or arrives later, it gets LAYERED_PANIC.
 */
struct writer {
    pthread_t tid;
    layered_cursor *c;
    _Atomic pid_t ktid; /* set once the writer is about to insert */
    int ret;
};

static void *
writer_thread(void *arg)
{
    struct writer *w = arg;

    /* A read first: the thread's first call into the library (and its
     * registration with RCU) is behind it, so the only thing the insert
     * can block on is the role lock the step-up holds. */
    CHECK_RET(LAYERED_NOTFOUND, layered_cursor_search(w->c, "none", 4));
    atomic_store(&w->ktid, tu_gettid());
    w->ret = layered_cursor_insert(w->c, "F000000", 7, "late", 4);
    return NULL;
}

static void
write_during_failed_step_up(void)
{
    struct tu_stepper st;
    struct writer w;
    struct db db;
    layered_session *ws;
    layered_cursor *c;
    const void *v;
    size_t vlen;
    pid_t ktid;

    printf("  a write waiting for a failing step-up is not acknowledged\n");
    setup(&db, LAYERED_DRAIN_SKIP_MISSING, 100);
    CHECK_OK(layered_failpoint_set(db.conn, "drain.before_lock", "pause"));
    tu_step_up_start(&st, db.conn);
    CHECK_OK(layered_failpoint_wait(db.conn, "drain.before_lock", 30000));
    /* The step-up holds the role lock exclusive now, paused. */
    memset(&w, 0, sizeof(w));
    CHECK_OK(layered_session_open(db.conn, &ws));
    CHECK_OK(layered_cursor_open(ws, "layered:t", &w.c));
    CHECK(pthread_create(&w.tid, NULL, writer_thread, &w) == 0);
    while ((ktid = atomic_load(&w.ktid)) == 0)
        sched_yield();
    /* The writer is blocked on the role lock: the step-up fails while it
     * waits. */
    tu_wait_thread_blocked(ktid, 30000);
    CHECK_OK(layered_failpoint_set(db.conn, "drain.copy", "return(EIO)"));
    CHECK_OK(layered_failpoint_set(db.conn, "drain.before_lock", "off"));
    tu_step_up_join(&st);
    CHECK(pthread_join(w.tid, NULL) == 0);
    CHECK_RET(LAYERED_PANIC, st.ret);
    CHECK_RET(LAYERED_PANIC, w.ret);
    /* A write that arrives after the failed step-up is refused too. */
    CHECK_RET(LAYERED_PANIC,
              layered_cursor_insert(w.c, "F000001", 7, "later", 5));
    (void)layered_cursor_close(w.c);
    db_close(&db);
    /* After reopen the row still has its acknowledged value. */
    db_open(&db, LAYERED_ROLE_FOLLOWER, LAYERED_DRAIN_SKIP_MISSING, true);
    CHECK_OK(layered_cursor_open(db.s, "layered:t", &c));
    CHECK_OK(layered_cursor_search(c, "F000000", 7));
    CHECK_OK(layered_cursor_get(c, NULL, NULL, &v, &vlen));
    CHECK(vlen == strlen("value-F-0") && memcmp(v, "value-F-0", vlen) == 0);
    CHECK_OK(layered_cursor_close(c));
    db_close(&db);
    tu_rmdir(db.home);
    free(db.home);
}

/*
 * abort_child --
 *     Runs in a fresh process (re-executed, so no threads were inherited):
 *     the unprotected race with the default panic handler.
 */
static int
abort_child(const char *home)
{
    struct tu_stepper st;
    struct db db;

    memset(&db, 0, sizeof(db));
    db.home = (char *)home;
    db_open(&db, LAYERED_ROLE_FOLLOWER, LAYERED_DRAIN_UNPROTECTED, false);
    tu_insert_rows(db.s, "layered:t", "F", 100);
    CHECK_OK(layered_failpoint_set(db.conn, "drain.before_lock", "pause"));
    tu_step_up_start(&st, db.conn);
    CHECK_OK(layered_failpoint_wait(db.conn, "drain.before_lock", 30000));
    CHECK_OK(layered_drop(db.s, "layered:t", LAYERED_DROP_FORCE));
    CHECK_OK(layered_failpoint_set(db.conn, "drain.before_lock", "off"));
    tu_step_up_join(&st);
    return 0; /* not reached: the panic aborts */
}

/*
 * unprotected_aborts --
 *     With the default handler the unprotected race kills the process, as
 *     it did upstream: run it in a child, expect SIGABRT and the panic
 *     message on the child's stderr.
 */
static void
unprotected_aborts(void)
{
    struct db db;
    char err[8192], want[512];
    size_t n = 0;
    ssize_t r;
    pid_t pid;
    int fds[2], status;

    printf("  unprotected, default panic handler: the process aborts\n");
    memset(&db, 0, sizeof(db));
    db.home = tu_mkdtemp("drain-abort");
    db_open(&db, LAYERED_ROLE_LEADER, LAYERED_DRAIN_UNPROTECTED, true);
    CHECK_OK(layered_create(db.s, "layered:t", NULL));
    db_close(&db);
    fflush(stdout);
    CHECK(pipe(fds) == 0);
    if ((pid = fork()) == 0) {
        dup2(fds[1], 2);
        close(fds[0]);
        close(fds[1]);
        execl("/proc/self/exe", "test_drain", "--abort-child", db.home,
              (char *)NULL);
        _exit(127);
    }
    CHECK(pid > 0);
    close(fds[1]);
    while (n < sizeof(err) - 1 &&
           (r = read(fds[0], err + n, sizeof(err) - 1 - n)) != 0) {
        if (r < 0) {
            CHECK(errno == EINTR);
            continue;
        }
        n += (size_t)r;
    }
    err[n] = '\0';
    close(fds[0]);
    CHECK(waitpid(pid, &status, 0) == pid);
    /* What the child wrote, for the log. */
    fprintf(stderr, "%s", err);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
    /* The abort is the default panic handler's, for this race: the drop
     * won, the worker's open found no table.  A failed CHECK aborts too,
     * with another message. */
    snprintf(want, sizeof(want),
             "layered: PANIC: step-up failed: draining layered:t: %s: %s\n",
             layered_strerror(ENOENT), layered_strerror(ENOENT));
    if (strstr(err, want) == NULL) {
        fprintf(stderr, "the child's stderr lacks the panic message \"%.*s\"\n",
                (int)strlen(want) - 1, want);
        CHECK(0);
    }
    CHECK(strstr(err, "CHECK failed") == NULL);
    tu_rmdir(db.home);
    free(db.home);
}

/*
 * Random drops: many tables, a dropper thread drops each at whatever point
 * the drain has reached, retrying EBUSY.  The fixed policies never panic.
 */
struct dropper {
    layered_conn *conn;
    int ntables;
    uint64_t seed;
    int busy;
};

static void *
dropper_thread(void *arg)
{
    struct dropper *d = arg;
    layered_session *s;
    char uri[64];
    int order[64], i, j, tmp, ret;
    uint64_t rng = d->seed;

    CHECK_OK(layered_session_open(d->conn, &s));
    for (i = 0; i < d->ntables; i++)
        order[i] = i;
    for (i = d->ntables - 1; i > 0; i--) {
        j = (int)(tu_rand(&rng) % (uint64_t)(i + 1));
        tmp = order[i];
        order[i] = order[j];
        order[j] = tmp;
    }
    for (i = 0; i < d->ntables; i++) {
        snprintf(uri, sizeof(uri), "layered:r%02d", order[i]);
        while ((ret = layered_drop(s, uri, LAYERED_DROP_FORCE)) == EBUSY) {
            d->busy++;
            sched_yield();
        }
        CHECK_OK(ret);
        if (tu_rand(&rng) % 2)
            sched_yield();
    }
    CHECK_OK(layered_session_close(s));
    return NULL;
}

static void
random_drops(int policy, uint64_t seed)
{
    enum { NT = 40 };
    struct dropper d;
    struct tu_stepper st;
    struct db db;
    pthread_t tid;
    char uri[64];
    int i, round;

    for (round = 0; round < 5; round++) {
        memset(&db, 0, sizeof(db));
        db.home = tu_mkdtemp("drain-random");
        db_open(&db, LAYERED_ROLE_FOLLOWER, policy, true);
        for (i = 0; i < NT; i++) {
            snprintf(uri, sizeof(uri), "layered:r%02d", i);
            CHECK_OK(layered_create(db.s, uri, NULL));
            tu_insert_rows(db.s, uri, "F", 200 + i * 50);
        }
        d.conn = db.conn;
        d.ntables = NT;
        d.seed = seed + (uint64_t)round;
        d.busy = 0;
        tu_step_up_start(&st, db.conn);
        CHECK(pthread_create(&tid, NULL, dropper_thread, &d) == 0);
        tu_step_up_join(&st);
        CHECK(pthread_join(tid, NULL) == 0);
        CHECK_OK(st.ret);
        CHECK(db.panics == 0);
        CHECK(st.ds.tables_drained + st.ds.tables_skipped ==
              st.ds.tables_queued);
        for (i = 0; i < NT; i++) {
            int state;
            snprintf(uri, sizeof(uri), "layered:r%02d", i);
            CHECK_RET(ENOENT, layered_table_state(db.s, uri, &state));
        }
        CHECK_OK(layered_checkpoint(db.s));
        {
            layered_conn_stats cs;
            char *shared;
            CHECK_OK(layered_stats(db.conn, &cs));
            CHECK(cs.database_size == LAYERED_CHECKPOINT_SIZE_BUFFER);
            CHECK(asprintf(&shared, "%s/shared", db.home) > 0);
            CHECK(tu_stable_files_bytes(shared) == 0);
            TU_CHECK_SIZE_ON_DISK(db.conn, shared);
            free(shared);
        }
        db_close(&db);
        tu_rmdir(db.home);
        free(db.home);
    }
}

/*
 * leader_open_drains --
 *     A node that was a follower when it stopped (or crashed during a
 *     step-up) and opens as a leader: its ingests still hold rows.  The
 *     open drains them first, so every row is kept and a leader write to
 *     a key the ingest held is not hidden by the stale ingest value.
 */
static void
leader_open_drains(void)
{
    layered_cursor *c;
    layered_conn_stats st;
    struct db db;
    const void *v;
    size_t vlen;
    uint64_t entries;

    printf("  a leader open drains the ingests a follower left\n");
    setup(&db, LAYERED_DRAIN_SKIP_MISSING, 50);
    CHECK_OK(layered_cursor_open(db.s, "layered:t", &c));
    CHECK_OK(layered_cursor_insert(c, "k", 1, "ingest", 6));
    CHECK_OK(layered_cursor_close(c));
    db_close(&db);

    /* A drain that fails at open fails the open, with no panic, and
     * leaves every row where a later open finds it. */
    {
        layered_config cfg;
        layered_conn *conn = NULL;

        layered_config_init(&cfg);
        cfg.role = LAYERED_ROLE_LEADER;
        cfg.panic_handler = panic_cb;
        cfg.panic_arg = &db;
        cfg.failpoints = "drain.sync=return(EIO)";
        CHECK_RET(EIO, layered_open(db.home, &cfg, &conn));
        CHECK(conn == NULL && db.panics == 0);
        db_open(&db, LAYERED_ROLE_FOLLOWER, LAYERED_DRAIN_SKIP_MISSING, true);
        CHECK(tu_count_rows(db.s, "layered:t") == 151);
        db_close(&db);
    }

    db_open(&db, LAYERED_ROLE_LEADER, LAYERED_DRAIN_SKIP_MISSING, true);
    CHECK_OK(layered_test_constituent_entries(db.s, "file:t.ingest",
                                              &entries));
    CHECK(entries == 0);
    CHECK(tu_count_rows(db.s, "layered:t") == 151);
    CHECK_OK(layered_cursor_open(db.s, "layered:t", &c));
    CHECK_OK(layered_cursor_insert(c, "k", 1, "leader", 6));
    CHECK_OK(layered_cursor_search(c, "k", 1));
    CHECK_OK(layered_cursor_get(c, NULL, NULL, &v, &vlen));
    CHECK(vlen == 6 && memcmp(v, "leader", 6) == 0);
    CHECK_OK(layered_cursor_close(c));
    CHECK_OK(layered_stats(db.conn, &st));
    CHECK(st.role == LAYERED_ROLE_LEADER && st.panicked == 0);
    db_close(&db);

    /* Nothing to drain: a leader open is not counted as a step-up. */
    db_open(&db, LAYERED_ROLE_LEADER, LAYERED_DRAIN_SKIP_MISSING, true);
    CHECK_OK(layered_stats(db.conn, &st));
    CHECK(st.step_ups == 0);
    CHECK(tu_count_rows(db.s, "layered:t") == 151);
    db_close(&db);
    tu_rmdir(db.home);
    free(db.home);
}


/*
 * few_descriptors --
 *     A step-up over many more tables than the process may have files
 *     open: queued tables hold no descriptor, batches stay within the
 *     budget, idle handles are closed.  Lowers the soft limit and puts it
 *     back afterwards.
 */
static void
few_descriptors(void)
{
    enum { NT = 300 };
    struct rlimit rl, saved;
    struct db db;
    layered_drain_stats ds;
    char uri[64];
    int i;

    printf("  %d tables drained with a 96-descriptor limit\n", NT);
    CHECK(getrlimit(RLIMIT_NOFILE, &saved) == 0);
    rl = saved;
    rl.rlim_cur = 96;
    CHECK(setrlimit(RLIMIT_NOFILE, &rl) == 0);
    memset(&db, 0, sizeof(db));
    db.home = tu_mkdtemp("drain-fds");
    db_open(&db, LAYERED_ROLE_FOLLOWER, LAYERED_DRAIN_SKIP_MISSING, true);
    for (i = 0; i < NT; i++) {
        snprintf(uri, sizeof(uri), "layered:f%03d", i);
        CHECK_OK(layered_create(db.s, uri, NULL));
        tu_insert_rows(db.s, uri, "F", 20);
    }
    CHECK_OK(layered_step_up(db.conn, &ds));
    CHECK(ds.tables_drained == NT && ds.rows == NT * 20);
    for (i = 0; i < NT; i += 37) {
        snprintf(uri, sizeof(uri), "layered:f%03d", i);
        CHECK(tu_count_rows(db.s, uri) == 20);
    }
    db_close(&db);
    tu_rmdir(db.home);
    free(db.home);
    CHECK(setrlimit(RLIMIT_NOFILE, &saved) == 0);
}

int
main(int argc, char *argv[])
{
    uint64_t seed;
    int p;

    setvbuf(stdout, NULL, _IOLBF, 0); /* a failed CHECK keeps the log */
    if (argc == 3 && strcmp(argv[1], "--abort-child") == 0)
        return abort_child(argv[2]);
    seed = tu_seed("test_drain");

    for (p = LAYERED_DRAIN_SKIP_MISSING; p <= LAYERED_DRAIN_UNPROTECTED; p++) {
        drop_wins(p);
        drain_wins(p);
        drop_before_clear(p);
    }
    unprotected_aborts();
    write_during_failed_step_up();
    for (p = LAYERED_DRAIN_SKIP_MISSING; p <= LAYERED_DRAIN_QUEUE_SCAN; p++) {
        printf("  %s, random drops during a 40-table step-up\n",
               policy_names[p]);
        random_drops(p, seed);
    }
    few_descriptors();
    leader_open_drains();
    /* Last: it needs a failpoint the engine is gaining
     * (drain.before_read_lock). */
    read_lock_finds_dead();
    printf("test_drain: ok\n");
    return 0;
}
