/*
 * test_batch.c -- atomic write batches (layered_batch_*).
 *
 * Atomicity across tables on a follower and a leader; the API's edges
 * (NULLs, empty batches, reuse after commit); a failed commit changes
 * nothing (missing, offloaded and dropped tables, bad sizes, an injected
 * journal write or sync error); replay after a process dies at the commit
 * point, after the rows were written, and after a later single write
 * overwrote a batch row (the LSN rule); a table dropped and re-created
 * never receives an old record; a batch racing a step-up, a drop and an
 * offload, each ordering forced at a failpoint; and what a concurrent
 * reader may see.  Power cuts at every call are in Tests/sim (workloads
 * batch-fsync and batch-none).
 */
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "layered_test.h"
#include "testutil.h"

static layered_conn *
db_open(const char *home, int role, int sync)
{
    layered_config cfg;
    layered_conn *conn;

    layered_config_init(&cfg);
    cfg.role = role;
    cfg.sync = sync;
    CHECK_OK(layered_open(home, &cfg, &conn));
    return conn;
}

static void
create(layered_session *s, const char *uri)
{
    CHECK_OK(layered_create(s, uri, NULL));
}

/* The value of a key, or NULL (LAYERED_NOTFOUND); malloc'ed. */
static char *
get(layered_session *s, const char *uri, const char *key)
{
    layered_cursor *c;
    const void *v;
    size_t vlen;
    char *out = NULL;
    int ret;

    CHECK_OK(layered_cursor_open(s, uri, &c));
    ret = layered_cursor_search(c, key, strlen(key));
    CHECK(ret == 0 || ret == LAYERED_NOTFOUND);
    if (ret == 0) {
        CHECK_OK(layered_cursor_get(c, NULL, NULL, &v, &vlen));
        CHECK((out = malloc(vlen + 1)) != NULL);
        memcpy(out, v, vlen);
        out[vlen] = '\0';
    }
    CHECK_OK(layered_cursor_close(c));
    return out;
}

static bool
has(layered_session *s, const char *uri, const char *key, const char *val)
{
    char *v = get(s, uri, key);
    bool ok = v != NULL && (val == NULL || strcmp(v, val) == 0);

    free(v);
    return ok;
}

static void
insert(layered_session *s, const char *uri, const char *key, const char *val)
{
    layered_cursor *c;

    CHECK_OK(layered_cursor_open(s, uri, &c));
    CHECK_OK(layered_cursor_insert(c, key, strlen(key), val, strlen(val)));
    CHECK_OK(layered_cursor_close(c));
}

static void
bput(layered_batch *b, const char *uri, const char *key, const char *val)
{
    CHECK_OK(layered_batch_put(b, uri, key, strlen(key), val, strlen(val)));
}

static off_t
journal_size(const char *home)
{
    char path[512];
    struct stat st;

    (void)snprintf(path, sizeof(path), "%s/layered.batch", home);
    CHECK(stat(path, &st) == 0);
    return st.st_size;
}

static uint64_t
entries(layered_session *s, const char *file)
{
    uint64_t n = 0;

    CHECK_OK(layered_test_constituent_entries(s, file, &n));
    return n;
}

/* A batch of puts and a remove across three tables, committed on the
 * given role: everything lands in the role's constituents. */
static void
test_atomic(int role)
{
    char *home = tu_mkdtemp("batch-atomic");
    layered_conn *conn = db_open(home, role, LAYERED_SYNC_FSYNC);
    layered_session *s;
    layered_batch *b;
    layered_conn_stats st;
    const char *target = role == LAYERED_ROLE_LEADER ? "stable" : "ingest";
    char file[64];

    CHECK_OK(layered_session_open(conn, &s));
    create(s, "layered:a");
    create(s, "layered:b");
    create(s, "layered:c");
    insert(s, "layered:c", "old", "gone soon");
    CHECK_OK(layered_batch_open(s, &b));
    bput(b, "layered:a", "k1", "a1");
    bput(b, "layered:b", "k1", "b1");
    bput(b, "layered:a", "k2", "first");
    bput(b, "layered:a", "k2", "second"); /* a later op on a key wins */
    CHECK_OK(layered_batch_remove(b, "layered:c", "old", 3));
    CHECK_OK(layered_batch_remove(b, "layered:c", "never", 5));
    /* Nothing is visible before the commit. */
    CHECK(!has(s, "layered:a", "k1", NULL));
    CHECK_OK(layered_batch_commit(b));
    CHECK(has(s, "layered:a", "k1", "a1"));
    CHECK(has(s, "layered:b", "k1", "b1"));
    CHECK(has(s, "layered:a", "k2", "second"));
    CHECK(!has(s, "layered:c", "old", NULL));
    (void)snprintf(file, sizeof(file), "file:a.%s", target);
    CHECK(entries(s, file) == 2);
    (void)snprintf(file, sizeof(file), "file:b.%s", target);
    CHECK(entries(s, file) == 1);
    CHECK_OK(layered_stats(conn, &st));
    CHECK(st.batches == 1 && st.batch_ops == 6);
    /* The journal holds the record until a checkpoint retires it. */
    CHECK(journal_size(home) > 0);
    CHECK_OK(layered_checkpoint(s));
    CHECK(journal_size(home) == 0);
    CHECK(has(s, "layered:a", "k1", "a1"));
    /* Spent after commit. */
    CHECK_RET(EINVAL, layered_batch_put(b, "layered:a", "x", 1, "", 0));
    CHECK_RET(EINVAL, layered_batch_remove(b, "layered:a", "x", 1));
    CHECK_RET(EINVAL, layered_batch_commit(b));
    CHECK_OK(layered_batch_close(b));
    /* Survives a clean reopen. */
    CHECK_OK(layered_close(conn));
    conn = db_open(home, role, LAYERED_SYNC_FSYNC);
    CHECK_OK(layered_session_open(conn, &s));
    CHECK(has(s, "layered:b", "k1", "b1"));
    CHECK(!has(s, "layered:c", "old", NULL));
    CHECK_OK(layered_close(conn));
    tu_rmdir(home);
    free(home);
}

/* NULLs, bad arguments, empty batches: nothing is written. */
static void
test_edges(void)
{
    char *home = tu_mkdtemp("batch-edges");
    layered_conn *conn = db_open(home, LAYERED_ROLE_FOLLOWER,
                                 LAYERED_SYNC_WRITE);
    layered_session *s;
    layered_batch *b, *b2;
    static char big[LAYERED_KEY_MAX + 1];

    CHECK_OK(layered_session_open(conn, &s));
    create(s, "layered:a");
    CHECK_RET(EINVAL, layered_batch_open(NULL, &b));
    CHECK_RET(EINVAL, layered_batch_open(s, NULL));
    CHECK_RET(EINVAL, layered_batch_put(NULL, "layered:a", "k", 1, "", 0));
    CHECK_RET(EINVAL, layered_batch_remove(NULL, "layered:a", "k", 1));
    CHECK_RET(EINVAL, layered_batch_commit(NULL));
    CHECK_RET(EINVAL, layered_batch_close(NULL));
    CHECK_OK(layered_batch_open(s, &b));
    CHECK(b != NULL);
    CHECK_RET(EINVAL, layered_batch_put(b, NULL, "k", 1, "", 0));
    CHECK_RET(EINVAL, layered_batch_put(b, "layered:a", NULL, 1, "", 0));
    CHECK_RET(EINVAL, layered_batch_put(b, "layered:a", "k", 0, "", 0));
    CHECK_RET(EINVAL, layered_batch_put(b, "layered:a", big, sizeof(big),
                                        "", 0));
    CHECK_RET(EINVAL, layered_batch_put(b, "layered:a", "k", 1, NULL, 1));
    CHECK_RET(EINVAL, layered_batch_put(b, "layered:a", "k", 1, "v",
                                        (size_t)LAYERED_VALUE_MAX + 1));
    CHECK_RET(EINVAL, layered_batch_put(b, "file:a.ingest", "k", 1, "", 0));
    CHECK_RET(EINVAL, layered_batch_put(b, "layered:", "k", 1, "", 0));
    CHECK_RET(EINVAL, layered_batch_put(b, "layered:bad/name", "k", 1, "", 0));
    /* The failed calls left the batch empty: an empty commit writes
     * nothing, not even a journal record. */
    CHECK_OK(layered_batch_commit(b));
    CHECK(journal_size(home) == 0);
    CHECK_RET(EINVAL, layered_batch_commit(b));
    CHECK_OK(layered_batch_close(b));
    /* A failed put keeps the ops before it. */
    CHECK_OK(layered_batch_open(s, &b));
    bput(b, "layered:a", "kept", "1");
    CHECK_RET(EINVAL, layered_batch_put(b, "layered:a", big, sizeof(big),
                                        "", 0));
    CHECK_OK(layered_batch_commit(b));
    CHECK(has(s, "layered:a", "kept", "1"));
    CHECK_OK(layered_batch_close(b));
    /* An open batch is freed with its session (ASan checks the leak). */
    CHECK_OK(layered_batch_open(s, &b2));
    bput(b2, "layered:a", "discarded", "1");
    CHECK_OK(layered_session_close(s));
    CHECK_OK(layered_session_open(conn, &s));
    CHECK(!has(s, "layered:a", "discarded", NULL));
    CHECK_OK(layered_close(conn));
    tu_rmdir(home);
    free(home);
}

/* Everything the rows of a failed commit could have touched is as before.
 * Table a holds "base" = "0"; the batch writes a:base and a:new. */
static void
check_unchanged(layered_session *s, const char *home)
{
    CHECK(has(s, "layered:a", "base", "0"));
    CHECK(!has(s, "layered:a", "new", NULL));
    CHECK(journal_size(home) == 0);
}

static int
failing_batch(layered_session *s, const char *other)
{
    layered_batch *b;
    int ret;

    CHECK_OK(layered_batch_open(s, &b));
    bput(b, "layered:a", "base", "changed");
    bput(b, "layered:a", "new", "1");
    if (other != NULL)
        bput(b, other, "k", "v");
    ret = layered_batch_commit(b);
    CHECK_OK(layered_batch_close(b));
    return ret;
}

static void
test_errors_change_nothing(void)
{
    char *home = tu_mkdtemp("batch-errors");
    layered_conn *conn = db_open(home, LAYERED_ROLE_FOLLOWER,
                                 LAYERED_SYNC_FSYNC);
    layered_session *s;

    CHECK_OK(layered_session_open(conn, &s));
    create(s, "layered:a");
    create(s, "layered:off");
    create(s, "layered:dropped");
    insert(s, "layered:a", "base", "0");
    CHECK_OK(layered_checkpoint(s));
    CHECK_RET(ENOENT, failing_batch(s, "layered:nosuch"));
    check_unchanged(s, home);
    CHECK_OK(layered_drop(s, "layered:dropped", 0));
    CHECK_RET(ENOENT, failing_batch(s, "layered:dropped"));
    check_unchanged(s, home);
    CHECK_OK(layered_archive(s, "layered:off"));
    CHECK_OK(layered_offload(s, "layered:off"));
    CHECK_RET(ENOENT, failing_batch(s, "layered:off"));
    check_unchanged(s, home);
    /* The journal append fails, or its sync: cut back, nothing written. */
    CHECK_OK(layered_failpoint_set(conn, "batch.write", "return(EIO)"));
    CHECK_RET(EIO, failing_batch(s, NULL));
    CHECK_OK(layered_failpoint_set(conn, "batch.write", "off"));
    check_unchanged(s, home);
    CHECK_OK(layered_failpoint_set(conn, "batch.sync", "return(ENOSPC)"));
    CHECK_RET(ENOSPC, failing_batch(s, NULL));
    CHECK_OK(layered_failpoint_set(conn, "batch.sync", "off"));
    check_unchanged(s, home);
    CHECK_OK(layered_failpoint_set(conn, "batch.before_journal",
                                   "return(ENOMEM)"));
    CHECK_RET(ENOMEM, failing_batch(s, NULL));
    CHECK_OK(layered_failpoint_set(conn, "batch.before_journal", "off"));
    check_unchanged(s, home);
    /* And none of it comes back at the next open. */
    CHECK_OK(layered_close(conn));
    conn = db_open(home, LAYERED_ROLE_FOLLOWER, LAYERED_SYNC_FSYNC);
    CHECK_OK(layered_session_open(conn, &s));
    check_unchanged(s, home);
    /* A batch still works afterwards. */
    CHECK_OK(failing_batch(s, NULL));
    CHECK(has(s, "layered:a", "base", "changed"));
    CHECK_OK(layered_close(conn));
    tu_rmdir(home);
    free(home);
}

/* ---- a process that dies ---- */

static const char *die_at;

static int
die_hook(void *arg, const char *name)
{
    (void)arg;
    if (die_at != NULL && strcmp(name, die_at) == 0)
        _exit(0); /* as kill -9: no close, nothing flushed */
    return 0;
}

enum crash_case {
    CRASH_COMMITTED,   /* dies at the commit point: no row written */
    CRASH_APPLIED,     /* dies after the rows were written */
    CRASH_OVERWRITTEN, /* a single write overwrites a batch row, then dies */
    CRASH_RECREATED,   /* the table is dropped and re-created, then dies */
    CRASH_STEPPED_UP   /* a follower's batch, a step-up, then dies */
};

static void
crash_child(const char *home, int role, enum crash_case cc)
{
    layered_conn *conn = db_open(home, role, LAYERED_SYNC_WRITE);
    layered_session *s;
    layered_batch *b;

    CHECK_OK(layered_session_open(conn, &s));
    CHECK_OK(layered_test_set_scheduler(conn, die_hook, NULL));
    die_at = cc == CRASH_COMMITTED ? "batch.committed"
             : cc == CRASH_APPLIED ? "batch.applied"
                                   : NULL;
    CHECK_OK(layered_batch_open(s, &b));
    bput(b, "layered:a", "k1", "a1");
    bput(b, "layered:b", "k1", "b1");
    bput(b, "layered:r", "k1", "r1");
    CHECK_OK(layered_batch_remove(b, "layered:a", "base", 4));
    CHECK_OK(layered_batch_commit(b));
    if (cc == CRASH_OVERWRITTEN) {
        insert(s, "layered:a", "k1", "single");
        insert(s, "layered:a", "base", "back");
    }
    if (cc == CRASH_RECREATED) {
        CHECK_OK(layered_drop(s, "layered:r", 0));
        create(s, "layered:r");
    }
    if (cc == CRASH_STEPPED_UP)
        CHECK_OK(layered_step_up(conn, NULL));
    _exit(0);
}

static void
test_crash(int role, enum crash_case cc)
{
    char *home = tu_mkdtemp("batch-crash");
    layered_conn *conn = db_open(home, role, LAYERED_SYNC_WRITE);
    layered_session *s;
    int status;
    pid_t pid;

    CHECK_OK(layered_session_open(conn, &s));
    create(s, "layered:a");
    create(s, "layered:b");
    create(s, "layered:r");
    insert(s, "layered:a", "base", "0");
    CHECK_OK(layered_close(conn));
    if ((pid = fork()) == 0)
        crash_child(home, role, cc);
    CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
          WEXITSTATUS(status) == 0);
    /* A drop and a step-up retire the journal; the others leave it. */
    CHECK((journal_size(home) > 0) ==
          (cc != CRASH_RECREATED && cc != CRASH_STEPPED_UP));

    conn = db_open(home, role, LAYERED_SYNC_WRITE);
    CHECK_OK(layered_session_open(conn, &s));
    if (cc == CRASH_OVERWRITTEN) {
        /* Replay must not bring the older batch values back. */
        CHECK(has(s, "layered:a", "k1", "single"));
        CHECK(has(s, "layered:a", "base", "back"));
    } else {
        CHECK(has(s, "layered:a", "k1", "a1"));
        CHECK(!has(s, "layered:a", "base", NULL));
    }
    CHECK(has(s, "layered:b", "k1", "b1"));
    if (cc == CRASH_RECREATED)
        /* The new incarnation never receives the old record's row. */
        CHECK(tu_count_rows(s, "layered:r") == 0);
    else
        CHECK(has(s, "layered:r", "k1", "r1"));
    /* Replayed once: each row once in its file. */
    if (cc == CRASH_COMMITTED || cc == CRASH_APPLIED)
        CHECK(entries(s, role == LAYERED_ROLE_LEADER ? "file:b.stable"
                                                     : "file:b.ingest") == 1);
    /* Nothing was replayed into the ingests the drain cleared. */
    if (cc == CRASH_STEPPED_UP) {
        CHECK(entries(s, "file:a.ingest") == 0);
        CHECK(entries(s, "file:b.ingest") == 0);
    }
    /* The open retired the journal. */
    CHECK(journal_size(home) == 0);
    CHECK_OK(layered_close(conn));
    tu_rmdir(home);
    free(home);
}

/* A damaged journal: a torn tail is cut; damage before intact data is
 * LAYERED_CORRUPT. */
static void
test_damaged_journal(void)
{
    char *home = tu_mkdtemp("batch-damage");
    layered_conn *conn = db_open(home, LAYERED_ROLE_FOLLOWER,
                                 LAYERED_SYNC_WRITE);
    layered_config cfg;
    layered_session *s;
    char path[512];
    FILE *f;
    int status;
    pid_t pid;
    long size;

    CHECK_OK(layered_session_open(conn, &s));
    create(s, "layered:a");
    create(s, "layered:b");
    create(s, "layered:r");
    CHECK_OK(layered_close(conn));
    /* Two committed records, the process gone before the rows. */
    if ((pid = fork()) == 0) {
        conn = db_open(home, LAYERED_ROLE_FOLLOWER, LAYERED_SYNC_WRITE);
        CHECK_OK(layered_session_open(conn, &s));
        layered_batch *b;
        CHECK_OK(layered_batch_open(s, &b));
        bput(b, "layered:a", "one", "1");
        CHECK_OK(layered_batch_commit(b));
        CHECK_OK(layered_batch_close(b));
        CHECK_OK(layered_test_set_scheduler(conn, die_hook, NULL));
        die_at = "batch.committed";
        CHECK_OK(layered_batch_open(s, &b));
        bput(b, "layered:b", "two", "2");
        CHECK_OK(layered_batch_commit(b));
        _exit(1);
    }
    CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
          WEXITSTATUS(status) == 0);
    (void)snprintf(path, sizeof(path), "%s/layered.batch", home);
    size = (long)journal_size(home);
    CHECK(size > 48);
    /* Damage the first record's body: intact data follows it. */
    CHECK((f = fopen(path, "r+b")) != NULL);
    CHECK(fseek(f, 26, SEEK_SET) == 0 && fputc('X', f) != EOF);
    CHECK(fclose(f) == 0);
    layered_config_init(&cfg);
    CHECK_RET(LAYERED_CORRUPT, layered_open(home, &cfg, &conn));
    /* Now a torn tail instead: the file cut inside the first record's body
     * (its header intact), as a crash during its append leaves it. */
    CHECK(truncate(path, 30) == 0);
    CHECK_OK(layered_open(home, &cfg, &conn));
    CHECK_OK(layered_session_open(conn, &s));
    /* Neither record replays: the first batch's rows reached their file
     * before the process died and stay; the second batch's never did. */
    CHECK(has(s, "layered:a", "one", "1"));
    CHECK(!has(s, "layered:b", "two", NULL));
    CHECK(journal_size(home) == 0);
    CHECK_OK(layered_close(conn));
    tu_rmdir(home);
    free(home);
}

/* ---- races, each ordering forced at a failpoint ---- */

struct committer {
    pthread_t tid;
    layered_conn *conn;
    const char *uri2; /* a second table, or NULL */
    int ret;
};

static void *
commit_thread(void *arg)
{
    struct committer *c = arg;
    layered_session *s;
    layered_batch *b;

    CHECK_OK(layered_session_open(c->conn, &s));
    CHECK_OK(layered_batch_open(s, &b));
    bput(b, "layered:a", "race", "1");
    if (c->uri2 != NULL)
        bput(b, c->uri2, "race", "2");
    c->ret = layered_batch_commit(b);
    CHECK_OK(layered_batch_close(b));
    CHECK_OK(layered_session_close(s));
    return NULL;
}

static void
commit_start(struct committer *c, layered_conn *conn, const char *uri2)
{
    memset(c, 0, sizeof(*c));
    c->conn = conn;
    c->uri2 = uri2;
    CHECK(pthread_create(&c->tid, NULL, commit_thread, c) == 0);
}

static void
commit_join(struct committer *c)
{
    CHECK(pthread_join(c->tid, NULL) == 0);
}

/* Batch first (paused holding the role lock): the step-up waits, then
 * drains the batch.  Step-up first (paused at drain.queued): the batch
 * waits, then writes to the stable constituents. */
static void
test_race_step_up(bool batch_first)
{
    char *home = tu_mkdtemp("batch-stepup");
    layered_conn *conn = db_open(home, LAYERED_ROLE_FOLLOWER,
                                 LAYERED_SYNC_FSYNC);
    layered_session *s;
    struct committer c;
    struct tu_stepper st;

    CHECK_OK(layered_session_open(conn, &s));
    create(s, "layered:a");
    create(s, "layered:b");
    insert(s, "layered:b", "other", "x"); /* gives the drain work */
    if (batch_first) {
        CHECK_OK(layered_failpoint_set(conn, "batch.before_commit", "pause"));
        commit_start(&c, conn, "layered:b");
        CHECK_OK(layered_failpoint_wait(conn, "batch.before_commit", 10000));
        CHECK_OK(layered_failpoint_set(conn, "drain.queued", "sleep(0)"));
        tu_step_up_start(&st, conn);
        /* The step-up cannot queue while the batch holds the role lock. */
        usleep(50 * 1000);
        CHECK_RET(ETIMEDOUT, layered_failpoint_wait(conn, "drain.queued", 0));
        CHECK_OK(layered_failpoint_set(conn, "batch.before_commit", "off"));
    } else {
        CHECK_OK(layered_failpoint_set(conn, "drain.queued", "pause"));
        tu_step_up_start(&st, conn);
        CHECK_OK(layered_failpoint_wait(conn, "drain.queued", 10000));
        CHECK_OK(layered_failpoint_set(conn, "batch.before_commit",
                                       "sleep(0)"));
        commit_start(&c, conn, "layered:b");
        usleep(50 * 1000);
        CHECK_RET(ETIMEDOUT,
                  layered_failpoint_wait(conn, "batch.before_commit", 0));
        CHECK_OK(layered_failpoint_set(conn, "drain.queued", "off"));
    }
    commit_join(&c);
    tu_step_up_join(&st);
    CHECK_OK(c.ret);
    CHECK_OK(st.ret);
    CHECK(has(s, "layered:a", "race", "1"));
    CHECK(has(s, "layered:b", "race", "2"));
    CHECK(entries(s, "file:a.ingest") == 0);
    CHECK(entries(s, "file:b.ingest") == 0);
    CHECK(entries(s, "file:a.stable") == 1);
    CHECK(entries(s, "file:b.stable") == 2);
    CHECK_OK(layered_close(conn));
    /* And after a reopen, nothing replays into the cleared ingests. */
    conn = db_open(home, LAYERED_ROLE_FOLLOWER, LAYERED_SYNC_FSYNC);
    CHECK_OK(layered_session_open(conn, &s));
    CHECK(entries(s, "file:a.ingest") == 0);
    CHECK(has(s, "layered:a", "race", "1"));
    CHECK_OK(layered_close(conn));
    tu_rmdir(home);
    free(home);
}

struct remover {
    layered_session *s;
    bool offload;
    int ret;
};

static void *
remover_thread(void *arg)
{
    struct remover *x = arg;

    x->ret = x->offload ? layered_offload(x->s, "layered:b")
                        : layered_drop(x->s, "layered:b", 0);
    return NULL;
}

/* A drop or an offload of table b racing a batch on a and b.  Batch
 * first: the drop/offload gets EBUSY and the batch lands.  Drop/offload
 * first (paused past its point of no return): the batch fails with ENOENT
 * and writes nothing, not even to a. */
static void
test_race_remove(bool offload, bool batch_first)
{
    char *home = tu_mkdtemp("batch-drop");
    layered_conn *conn = db_open(home, LAYERED_ROLE_FOLLOWER,
                                 LAYERED_SYNC_FSYNC);
    layered_session *s, *s2;
    struct committer c;
    const char *fp = offload ? "offload.after_stopping" : "drop.after_remove";

    CHECK_OK(layered_session_open(conn, &s));
    CHECK_OK(layered_session_open(conn, &s2));
    create(s, "layered:a");
    create(s, "layered:b");
    if (offload)
        CHECK_OK(layered_archive(s, "layered:b"));
    if (batch_first) {
        CHECK_OK(layered_failpoint_set(conn, "batch.before_commit", "pause"));
        commit_start(&c, conn, "layered:b");
        CHECK_OK(layered_failpoint_wait(conn, "batch.before_commit", 10000));
        CHECK_RET(EBUSY, offload ? layered_offload(s, "layered:b")
                                 : layered_drop(s, "layered:b", 0));
        CHECK_OK(layered_failpoint_set(conn, "batch.before_commit", "off"));
        commit_join(&c);
        CHECK_OK(c.ret);
        CHECK(has(s, "layered:a", "race", "1"));
        CHECK(has(s, "layered:b", "race", "2"));
    } else {
        struct remover a = {s2, offload, -1};
        pthread_t tid;
        CHECK_OK(layered_failpoint_set(conn, fp, "pause"));
        CHECK(pthread_create(&tid, NULL, remover_thread, &a) == 0);
        CHECK_OK(layered_failpoint_wait(conn, fp, 10000));
        CHECK_OK(layered_failpoint_set(conn, "batch.before_commit",
                                       "sleep(0)"));
        commit_start(&c, conn, "layered:b");
        usleep(50 * 1000);
        CHECK_OK(layered_failpoint_set(conn, fp, "off"));
        CHECK(pthread_join(tid, NULL) == 0);
        commit_join(&c);
        CHECK_OK(a.ret);
        CHECK_RET(ENOENT, c.ret);
        CHECK(!has(s, "layered:a", "race", NULL));
        CHECK(journal_size(home) == 0);
    }
    CHECK_OK(layered_close(conn));
    tu_rmdir(home);
    free(home);
}

/* ---- what a concurrent reader sees ---- */

struct writer_arg {
    layered_conn *conn;
    int n;
};

static void *
batch_writer(void *arg)
{
    struct writer_arg *w = arg;
    layered_session *s;
    layered_batch *b;
    char k[32];

    CHECK_OK(layered_session_open(w->conn, &s));
    for (int i = 0; i < w->n; i++) {
        (void)snprintf(k, sizeof(k), "k%06d", i);
        CHECK_OK(layered_batch_open(s, &b));
        bput(b, "layered:a", k, "a");
        bput(b, "layered:b", k, "b");
        CHECK_OK(layered_batch_commit(b));
        CHECK_OK(layered_batch_close(b));
    }
    CHECK_OK(layered_session_close(s));
    return NULL;
}

/* Once a read saw a row of a batch, every read that starts afterwards
 * sees all of it; a read that starts after the commit returned sees it
 * all. */
static void
test_visibility(void)
{
    char *home = tu_mkdtemp("batch-visible");
    layered_conn *conn = db_open(home, LAYERED_ROLE_FOLLOWER,
                                 LAYERED_SYNC_WRITE);
    layered_session *s;
    layered_cursor *ca, *cb;
    struct writer_arg w;
    pthread_t tid;
    char k[32];
    int seen = 0, ret;

    CHECK_OK(layered_session_open(conn, &s));
    create(s, "layered:a");
    create(s, "layered:b");
    w.conn = conn;
    w.n = 2000;
    CHECK(pthread_create(&tid, NULL, batch_writer, &w) == 0);
    CHECK_OK(layered_cursor_open(s, "layered:a", &ca));
    CHECK_OK(layered_cursor_open(s, "layered:b", &cb));
    for (int i = 0; i < w.n;) {
        (void)snprintf(k, sizeof(k), "k%06d", i);
        /* Table b's row is written first of the two files or second,
         * depending on addresses: look at both orders. */
        layered_cursor *first = i % 2 ? ca : cb, *second = i % 2 ? cb : ca;
        ret = layered_cursor_search(first, k, strlen(k));
        CHECK(ret == 0 || ret == LAYERED_NOTFOUND);
        if (ret == LAYERED_NOTFOUND)
            continue;
        CHECK_OK(layered_cursor_search(second, k, strlen(k)));
        seen++;
        i++;
    }
    CHECK(pthread_join(tid, NULL) == 0);
    CHECK(seen == w.n);
    CHECK_OK(layered_close(conn));
    tu_rmdir(home);
    free(home);
}

/* Single puts (group commit) on other threads while batches write the same
 * files: every acknowledged row of both kinds is there, also after a
 * reopen (the file's records never interleave wrongly). */
struct mixed_arg {
    layered_conn *conn;
    int id, n;
};

static void *
single_writer(void *arg)
{
    struct mixed_arg *m = arg;
    layered_session *s;
    layered_cursor *c;
    char k[32];

    CHECK_OK(layered_session_open(m->conn, &s));
    CHECK_OK(layered_cursor_open(s, "layered:a", &c));
    for (int i = 0; i < m->n; i++) {
        (void)snprintf(k, sizeof(k), "s%d-%06d", m->id, i);
        CHECK_OK(layered_cursor_insert(c, k, strlen(k), "single", 6));
    }
    CHECK_OK(layered_cursor_close(c));
    CHECK_OK(layered_session_close(s));
    return NULL;
}

static void
test_mixed_with_single_puts(int sync)
{
    char *home = tu_mkdtemp("batch-mixed");
    layered_conn *conn = db_open(home, LAYERED_ROLE_FOLLOWER, sync);
    struct mixed_arg m[2];
    struct writer_arg w;
    layered_session *s;
    pthread_t tid[3];
    char k[32];

    printf("  batches beside single puts on the same files (sync %d)\n",
           sync);
    CHECK_OK(layered_session_open(conn, &s));
    create(s, "layered:a");
    create(s, "layered:b");
    w.conn = conn;
    w.n = 300;
    CHECK(pthread_create(&tid[0], NULL, batch_writer, &w) == 0);
    for (int t = 0; t < 2; t++) {
        m[t].conn = conn;
        m[t].id = t;
        m[t].n = 600;
        CHECK(pthread_create(&tid[1 + t], NULL, single_writer, &m[t]) == 0);
    }
    for (int t = 0; t < 3; t++)
        CHECK(pthread_join(tid[t], NULL) == 0);
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < w.n; i++) {
            (void)snprintf(k, sizeof(k), "k%06d", i);
            CHECK(has(s, "layered:a", k, "a") && has(s, "layered:b", k, "b"));
        }
        for (int t = 0; t < 2; t++)
            for (int i = 0; i < m[t].n; i++) {
                (void)snprintf(k, sizeof(k), "s%d-%06d", t, i);
                CHECK(has(s, "layered:a", k, "single"));
            }
        CHECK(entries(s, "file:a.ingest") == (uint64_t)(w.n + 2 * 600));
        /* Again after a reopen: the files read back whole. */
        CHECK_OK(layered_close(conn));
        conn = db_open(home, LAYERED_ROLE_FOLLOWER, sync);
        CHECK_OK(layered_session_open(conn, &s));
    }
    CHECK_OK(layered_close(conn));
    tu_rmdir(home);
    free(home);
}

int
main(void)
{
    test_atomic(LAYERED_ROLE_FOLLOWER);
    test_atomic(LAYERED_ROLE_LEADER);
    test_edges();
    test_errors_change_nothing();
    for (int role = 0; role < 2; role++) {
        test_crash(role, CRASH_COMMITTED);
        test_crash(role, CRASH_APPLIED);
        test_crash(role, CRASH_OVERWRITTEN);
        test_crash(role, CRASH_RECREATED);
    }
    test_crash(LAYERED_ROLE_FOLLOWER, CRASH_STEPPED_UP);
    test_damaged_journal();
    test_race_step_up(true);
    test_race_step_up(false);
    test_race_remove(false, true);
    test_race_remove(false, false);
    test_race_remove(true, true);
    test_race_remove(true, false);
    test_visibility();
    test_mixed_with_single_puts(LAYERED_SYNC_WRITE);
    test_mixed_with_single_puts(LAYERED_SYNC_FSYNC);
    printf("test_batch: ok\n");
    return 0;
}
