/*
 * test_atomicity.c -- a call that returns an error has changed nothing, and
 * no durability is taken for granted.  One scenario per defect of that kind:
 *
 *   queue_scan_busy_drop    a queue-scan drop that returns EBUSY (a reader
 *                           holds the table) leaves the table's drain item
 *                           queued: the step-up drains it, the ingest ends
 *                           empty, and a leader write of a key the ingest
 *                           held is visible
 *   queue_scan_failed_drop  the same when the drop's metadata write fails
 *                           (ENOSPC) after the queue was scanned
 *   closed_ingest_trimmed   a drained ingest, closed, is cut to its header:
 *                           the next step-up does not queue it
 *   offload_races_stepup    under each policy, an offload of a table whose
 *                           cleared ingest was queued (a crash left the
 *                           clear marker) never fails the step-up
 *   journal_reset_fails     a failed journal reset after a snapshot rename
 *                           panics: no later schema change is acknowledged
 *                           into a journal the next open ignores
 *   fold_keeps_create       a journal fold triggered by a create's record
 *                           keeps that create (child killed, no close)
 *   drain_sync_error        a sync error of the drain reaches the step-up
 *                           even when a sweep tried to close the handle
 *                           between the copy and the sync
 *   drained_lsn_incarnation a table dropped and re-created during the drain
 *                           does not inherit the old incarnation's LSN
 *   new_home_parent_sync    creating a home syncs its parent directory
 *   cursor_many_tombstones  a cursor move crosses any number of keys that
 *                           ingest tombstones hide (it used to give up with
 *                           EAGAIN after 100)
 */
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "layered_test.h"
#include "testutil.h"

static const char *const policy_names[] = {"skip-missing", "read-lock",
                                           "queue-scan", "unprotected"};

struct db {
    char *home;
    layered_conn *conn;
    layered_session *s;
    int panics;
    char panic_msg[512];
};

static void
panic_cb(void *arg, int error, const char *msg)
{
    struct db *db = arg;

    (void)error;
    db->panics++;
    (void)snprintf(db->panic_msg, sizeof(db->panic_msg), "%s", msg);
    printf("    (panic handler: %s)\n", msg);
}

static void
quiet(void *arg, const char *msg)
{
    (void)arg;
    (void)msg;
}

static void
db_open(struct db *db, int role, int policy, int threads)
{
    layered_config cfg;

    layered_config_init(&cfg);
    cfg.role = role;
    cfg.drain_threads = threads;
    cfg.drain_policy = policy;
    cfg.panic_handler = panic_cb;
    cfg.panic_arg = db;
    cfg.message_handler = quiet;
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

static void
db_new(struct db *db, const char *tag)
{
    memset(db, 0, sizeof(*db));
    db->home = tu_mkdtemp(tag);
}

static void
db_free(struct db *db)
{
    if (db->conn != NULL)
        db_close(db);
    tu_rmdir(db->home);
    free(db->home);
}

static void
put(layered_session *s, const char *uri, const char *k, const char *v)
{
    layered_cursor *c;

    CHECK_OK(layered_cursor_open(s, uri, &c));
    CHECK_OK(layered_cursor_insert(c, k, strlen(k), v, strlen(v)));
    CHECK_OK(layered_cursor_close(c));
}

/* The value of k (NULL: not found) in a static buffer. */
static const char *
get(layered_session *s, const char *uri, const char *k)
{
    static char buf[256];
    layered_cursor *c;
    const void *v;
    size_t vlen;
    int ret;

    CHECK_OK(layered_cursor_open(s, uri, &c));
    ret = layered_cursor_search(c, k, strlen(k));
    if (ret == LAYERED_NOTFOUND) {
        CHECK_OK(layered_cursor_close(c));
        return NULL;
    }
    CHECK_OK(ret);
    CHECK_OK(layered_cursor_get(c, NULL, NULL, &v, &vlen));
    CHECK(vlen < sizeof(buf));
    memcpy(buf, v, vlen);
    buf[vlen] = '\0';
    CHECK_OK(layered_cursor_close(c));
    return buf;
}

/* Entries (rows and tombstones) of a constituent. */
static int
constituent_entries(layered_session *s, const char *table, const char *kind)
{
    char uri[128];
    uint64_t n;

    (void)snprintf(uri, sizeof(uri), "file:%s.%s", table, kind);
    CHECK_OK(layered_test_constituent_entries(s, uri, &n));
    return (int)n;
}

/* A leader fills layered:t, a follower reopens and adds `rows` ingest rows
 * "F..." plus the key "shared" (also in the stable, with "stable"). */
static void
follower_with_ingest(struct db *db, int policy, int rows)
{
    db_open(db, LAYERED_ROLE_LEADER, policy, 2);
    CHECK_OK(layered_create(db->s, "layered:t", NULL));
    tu_insert_rows(db->s, "layered:t", "L", 50);
    put(db->s, "layered:t", "shared", "stable");
    CHECK_OK(layered_checkpoint(db->s));
    db_close(db);
    db_open(db, LAYERED_ROLE_FOLLOWER, policy, 2);
    tu_insert_rows(db->s, "layered:t", "F", rows);
    put(db->s, "layered:t", "shared", "ingest");
}

/* After a step-up that must have drained layered:t: the ingest is empty,
 * every row is there, and a leader write of "shared" is what a read sees
 * (a stale ingest value would hide it). */
static void
check_drained(struct db *db, int rows)
{
    CHECK(constituent_entries(db->s, "t", "ingest") == 0);
    CHECK(tu_count_rows(db->s, "layered:t") == 50 + rows + 1);
    put(db->s, "layered:t", "shared", "leader");
    CHECK(get(db->s, "layered:t", "shared") != NULL &&
          strcmp(get(db->s, "layered:t", "shared"), "leader") == 0);
}

static void
queue_scan_busy_drop(void)
{
    struct db db;
    struct tu_stepper st;
    layered_cursor *reader;

    printf("queue_scan_busy_drop\n");
    db_new(&db, "qsbusy");
    follower_with_ingest(&db, LAYERED_DRAIN_QUEUE_SCAN, 100);
    CHECK_OK(layered_cursor_open(db.s, "layered:t", &reader));
    CHECK_OK(layered_failpoint_set(db.conn, "drain.queued", "pause"));
    tu_step_up_start(&st, db.conn);
    CHECK_OK(layered_failpoint_wait(db.conn, "drain.queued", 10000));
    /* The reader holds the table: the drop must fail and change nothing. */
    CHECK_RET(EBUSY, layered_drop(db.s, "layered:t", LAYERED_DROP_FORCE));
    CHECK_OK(layered_cursor_close(reader));
    CHECK_OK(layered_failpoint_set(db.conn, "drain.queued", "off"));
    tu_step_up_join(&st);
    CHECK_OK(st.ret);
    CHECK(db.panics == 0);
    CHECK(st.ds.tables_drained == 1 && st.ds.tables_skipped == 0);
    check_drained(&db, 100);
    db_free(&db);
}

static void
queue_scan_failed_drop(void)
{
    struct db db;
    struct tu_stepper st;

    printf("queue_scan_failed_drop\n");
    db_new(&db, "qsfail");
    follower_with_ingest(&db, LAYERED_DRAIN_QUEUE_SCAN, 100);
    CHECK_OK(layered_failpoint_set(db.conn, "drain.queued", "pause"));
    tu_step_up_start(&st, db.conn);
    CHECK_OK(layered_failpoint_wait(db.conn, "drain.queued", 10000));
    CHECK_OK(layered_failpoint_set(db.conn, "meta.write", "return(ENOSPC)"));
    CHECK_RET(ENOSPC, layered_drop(db.s, "layered:t", LAYERED_DROP_FORCE));
    CHECK_OK(layered_failpoint_set(db.conn, "meta.write", "off"));
    CHECK_OK(layered_failpoint_set(db.conn, "drain.queued", "off"));
    tu_step_up_join(&st);
    CHECK_OK(st.ret);
    CHECK(db.panics == 0);
    CHECK(st.ds.tables_drained == 1 && st.ds.tables_skipped == 0);
    check_drained(&db, 100);
    db_free(&db);
}

static uint64_t
file_bytes(const char *dir, const char *name)
{
    char path[4096];
    struct stat sb;

    (void)snprintf(path, sizeof(path), "%s/%s", dir, name);
    CHECK(stat(path, &sb) == 0);
    return (uint64_t)sb.st_size;
}

static void
closed_ingest_trimmed(void)
{
    struct db db;
    layered_drain_stats ds;

    printf("closed_ingest_trimmed\n");
    db_new(&db, "trim");
    follower_with_ingest(&db, LAYERED_DRAIN_SKIP_MISSING, 100);
    CHECK_OK(layered_step_up(db.conn, &ds));
    CHECK(ds.tables_drained == 1);
    CHECK_OK(layered_step_down(db.conn));
    db_close(&db);
    /* Drained and closed: an empty ingest is its 32-byte header. */
    CHECK(file_bytes(db.home, "t.ingest") == 32);
    db_open(&db, LAYERED_ROLE_FOLLOWER, LAYERED_DRAIN_SKIP_MISSING, 2);
    CHECK_OK(layered_step_up(db.conn, &ds));
    CHECK(ds.tables_queued == 0 && ds.tables_drained == 0);
    db_free(&db);
}

static void
copy_file(const char *from, const char *to)
{
    char buf[65536];
    ssize_t n;
    int in, out;

    CHECK((in = open(from, O_RDONLY)) >= 0);
    CHECK((out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0644)) >= 0);
    while ((n = read(in, buf, sizeof(buf))) > 0)
        CHECK(write(out, buf, (size_t)n) == n);
    CHECK(n == 0);
    (void)close(in);
    (void)close(out);
}

static void
offload_races_stepup(int policy)
{
    struct db db;
    struct tu_stepper st;
    char path[4096], saved[4096];
    int ret, state;

    printf("offload_races_stepup: %s\n", policy_names[policy]);
    db_new(&db, "offrace");
    follower_with_ingest(&db, policy, 100);
    CHECK_OK(layered_step_up(db.conn, NULL));
    /* The ingest as a crash right after the drain leaves it: the clear
     * marker after the dead records (the handle never closed). */
    (void)snprintf(path, sizeof(path), "%s/t.ingest", db.home);
    (void)snprintf(saved, sizeof(saved), "%s/t.ingest.saved", db.home);
    copy_file(path, saved);
    CHECK_OK(layered_step_down(db.conn));
    CHECK_OK(layered_archive(db.s, "layered:t"));
    db_close(&db);
    CHECK(rename(saved, path) == 0);
    CHECK(file_bytes(db.home, "t.ingest") > 32);

    db_open(&db, LAYERED_ROLE_FOLLOWER, policy, 2);
    CHECK_OK(layered_failpoint_set(db.conn, "drain.queued", "pause"));
    tu_step_up_start(&st, db.conn);
    CHECK_OK(layered_failpoint_wait(db.conn, "drain.queued", 10000));
    CHECK(st.ds.tables_queued == 0); /* not filled in until it returns */
    ret = layered_offload(db.s, "layered:t");
    CHECK_OK(layered_failpoint_set(db.conn, "drain.queued", "off"));
    tu_step_up_join(&st);
    /* An offload is a lifecycle step, never a reason to panic. */
    CHECK_OK(ret);
    CHECK_OK(st.ret);
    CHECK(db.panics == 0);
    CHECK_OK(layered_table_state(db.s, "layered:t", &state));
    CHECK(state == LAYERED_TABLE_OFFLOADED);
    CHECK_OK(layered_unarchive(db.s, "layered:t"));
    CHECK(tu_count_rows(db.s, "layered:t") == 50 + 100 + 1);
    db_free(&db);
}

static void
journal_reset_fails(void)
{
    struct db db;
    int state;

    printf("journal_reset_fails\n");
    db_new(&db, "jreset");
    db_open(&db, LAYERED_ROLE_LEADER, LAYERED_DRAIN_SKIP_MISSING, 2);
    CHECK_OK(layered_create(db.s, "layered:a", NULL));
    CHECK_OK(layered_create(db.s, "layered:gone", NULL));
    CHECK_OK(layered_failpoint_set(db.conn, "meta.journal_reset",
                                   "return(EIO)"));
    /* The checkpoint's snapshot is renamed into place, then the journal
     * reset fails: the connection must stop taking schema changes. */
    CHECK(layered_checkpoint(db.s) != 0);
    CHECK(db.panics == 1);
    CHECK(strstr(db.panic_msg, "metadata journal") != NULL);
    CHECK_RET(LAYERED_PANIC, layered_create(db.s, "layered:b", NULL));
    CHECK_RET(LAYERED_PANIC,
              layered_drop(db.s, "layered:gone", LAYERED_DROP_FORCE));
    db_close(&db);

    db.panics = 0;
    db_open(&db, LAYERED_ROLE_LEADER, LAYERED_DRAIN_SKIP_MISSING, 2);
    CHECK_OK(layered_table_state(db.s, "layered:a", &state));
    CHECK_OK(layered_table_state(db.s, "layered:gone", &state));
    CHECK_RET(ENOENT, layered_table_state(db.s, "layered:b", &state));
    /* And the journal of the new generation takes changes again. */
    CHECK_OK(layered_create(db.s, "layered:c", NULL));
    CHECK_OK(layered_drop(db.s, "layered:gone", LAYERED_DROP_FORCE));
    db_close(&db);
    db_open(&db, LAYERED_ROLE_LEADER, LAYERED_DRAIN_SKIP_MISSING, 2);
    CHECK_OK(layered_table_state(db.s, "layered:c", &state));
    CHECK_RET(ENOENT, layered_table_state(db.s, "layered:gone", &state));
    db_free(&db);
}

static void
fold_keeps_create(void)
{
    struct db db;
    pid_t pid;
    int status, state, i;

    printf("fold_keeps_create\n");
    db_new(&db, "fold");
    pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        db_open(&db, LAYERED_ROLE_LEADER, LAYERED_DRAIN_SKIP_MISSING, 1);
        CHECK_OK(layered_create(db.s, "layered:t", NULL));
        /* 1024 journal records (a fold is due past 1024) ... */
        for (i = 0; i < 511; i++) {
            CHECK_OK(layered_archive(db.s, "layered:t"));
            CHECK_OK(layered_unarchive(db.s, "layered:t"));
        }
        CHECK_OK(layered_archive(db.s, "layered:t"));
        /* ... so this create's record is the 1025th. */
        CHECK_OK(layered_create(db.s, "layered:late", NULL));
        _exit(0); /* no close: what is durable is what the open sees */
    }
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    db_open(&db, LAYERED_ROLE_LEADER, LAYERED_DRAIN_SKIP_MISSING, 1);
    CHECK_OK(layered_table_state(db.s, "layered:t", &state));
    CHECK(state == LAYERED_TABLE_ARCHIVED);
    CHECK_OK(layered_table_state(db.s, "layered:late", &state));
    db_free(&db);
}

static void
drain_sync_error(bool per_file)
{
    struct db db;
    struct tu_stepper st;
    layered_cursor *c[24];
    char uri[64];
    struct rlimit old, rl;
    int i;

    printf("drain_sync_error%s\n", per_file ? " (per-file syncs)" : "");
    if (per_file)
        CHECK(setenv("LAYERED_NO_SYNCFS", "1", 1) == 0);
    /* A small descriptor budget: 64 descriptors, 32 handles. */
    CHECK(getrlimit(RLIMIT_NOFILE, &old) == 0);
    rl = old;
    rl.rlim_cur = 64;
    CHECK(setrlimit(RLIMIT_NOFILE, &rl) == 0);

    db_new(&db, "dsync");
    db_open(&db, LAYERED_ROLE_LEADER, LAYERED_DRAIN_SKIP_MISSING, 1);
    CHECK_OK(layered_create(db.s, "layered:t", NULL));
    CHECK_OK(layered_create(db.s, "layered:u", NULL));
    for (i = 0; i < 24; i++) {
        (void)snprintf(uri, sizeof(uri), "layered:o%02d", i);
        CHECK_OK(layered_create(db.s, uri, NULL));
    }
    db_close(&db);
    db_open(&db, LAYERED_ROLE_FOLLOWER, LAYERED_DRAIN_SKIP_MISSING, 1);
    tu_insert_rows(db.s, "layered:t", "F", 100);
    if (per_file)
        tu_insert_rows(db.s, "layered:u", "F", 100); /* a batch of two */
    /* Readers keep 48 handles open: more than the budget, so closing a
     * cursor sweeps idle handles. */
    for (i = 0; i < 24; i++) {
        (void)snprintf(uri, sizeof(uri), "layered:o%02d", i);
        CHECK_OK(layered_cursor_open(db.s, uri, &c[i]));
    }
    CHECK_OK(layered_failpoint_set(db.conn, "drain.sync", "pause"));
    tu_step_up_start(&st, db.conn);
    CHECK_OK(layered_failpoint_wait(db.conn, "drain.sync", 10000));
    /* Between the copy and its sync: every sync fails, and a sweep tries
     * to close the idle stable handle the copy just wrote. */
    CHECK_OK(layered_failpoint_set(db.conn, "fs.sync", "return(EIO)"));
    for (i = 0; i < 24; i++)
        CHECK_OK(layered_cursor_close(c[i]));
    CHECK_OK(layered_failpoint_set(db.conn, "drain.sync", "off"));
    tu_step_up_join(&st);
    /* The drain could not make its copy durable: the step-up must not
     * report success (it fails and panics the connection). */
    CHECK(st.ret != 0);
    CHECK(db.panics == 1);
    CHECK_OK(layered_failpoint_set(db.conn, "fs.sync", "off"));
    db_free(&db);
    CHECK(setrlimit(RLIMIT_NOFILE, &old) == 0);
    if (per_file)
        CHECK(unsetenv("LAYERED_NO_SYNCFS") == 0);
}

/* The drained LSN the metadata snapshot records for a table. */
static uint64_t
snapshot_drained_lsn(const char *home, const char *table)
{
    char path[4096], line[512], name[256];
    unsigned long long drained = ~0ull;
    int state;
    FILE *f;

    (void)snprintf(path, sizeof(path), "%s/layered.meta", home);
    CHECK((f = fopen(path, "r")) != NULL);
    while (fgets(line, sizeof(line), f) != NULL) {
        unsigned long long d;
        if (sscanf(line, "table %255s %d %llu", name, &state, &d) == 3 &&
            strcmp(name, table) == 0)
            drained = d;
    }
    (void)fclose(f);
    CHECK(drained != ~0ull);
    return drained;
}

static void
drained_lsn_incarnation(void)
{
    struct db db;
    struct tu_stepper st;

    printf("drained_lsn_incarnation\n");
    db_new(&db, "dlsn");
    follower_with_ingest(&db, LAYERED_DRAIN_SKIP_MISSING, 100);
    /* Pause after the clear's sync (the second sync of the batch). */
    CHECK_OK(layered_failpoint_set(db.conn, "drain.sync", "pause"));
    tu_step_up_start(&st, db.conn);
    CHECK_OK(layered_failpoint_wait(db.conn, "drain.sync", 10000));
    CHECK_OK(layered_failpoint_set(db.conn, "drain.sync", "pause"));
    CHECK_OK(layered_failpoint_wait(db.conn, "drain.sync", 10000));
    /* Drop and re-create the table while the worker has not yet recorded
     * what it drained. */
    CHECK_OK(layered_drop(db.s, "layered:t", LAYERED_DROP_FORCE));
    CHECK_OK(layered_create(db.s, "layered:t", NULL));
    CHECK_OK(layered_failpoint_set(db.conn, "drain.sync", "off"));
    tu_step_up_join(&st);
    CHECK_OK(st.ret);
    CHECK(db.panics == 0);
    /* The step-up's snapshot: the new incarnation has drained nothing. */
    CHECK(snapshot_drained_lsn(db.home, "t") == 0);
    CHECK(tu_count_rows(db.s, "layered:t") == 0);
    db_free(&db);
}

static void
new_home_parent_sync(void)
{
    char *parent = tu_mkdtemp("newhome"), home[4096];
    layered_config cfg;
    layered_conn *conn = NULL;

    printf("new_home_parent_sync\n");
    (void)snprintf(home, sizeof(home), "%s/db", parent);
    layered_config_init(&cfg);
    cfg.message_handler = quiet;
    /* The parent's fsync is what makes the new home reachable after a
     * power cut: its failure is the open's failure. */
    cfg.failpoints = "open.parent_sync=return(EIO)";
    CHECK_RET(EIO, layered_open(home, &cfg, &conn));
    cfg.failpoints = NULL;
    CHECK_OK(layered_open(home, &cfg, &conn));
    CHECK_OK(layered_close(conn));
    tu_rmdir(parent);
    free(parent);
}

static void
cursor_many_tombstones(void)
{
    struct db db;
    layered_cursor *c;
    char key[32];
    int i, n = 0, ret;

    printf("cursor_many_tombstones\n");
    db_new(&db, "tombs");
    db_open(&db, LAYERED_ROLE_LEADER, LAYERED_DRAIN_SKIP_MISSING, 2);
    CHECK_OK(layered_create(db.s, "layered:t", NULL));
    tu_insert_rows(db.s, "layered:t", "k", 300);
    CHECK_OK(layered_checkpoint(db.s));
    db_close(&db);
    db_open(&db, LAYERED_ROLE_FOLLOWER, LAYERED_DRAIN_SKIP_MISSING, 2);
    CHECK_OK(layered_cursor_open(db.s, "layered:t", &c));
    for (i = 0; i < 250; i++) {
        (void)snprintf(key, sizeof(key), "k%06d", i);
        CHECK_OK(layered_cursor_remove(c, key, strlen(key)));
    }
    CHECK_OK(layered_cursor_reset(c));
    while ((ret = layered_cursor_next(c)) == 0)
        n++;
    CHECK_RET(LAYERED_NOTFOUND, ret);
    CHECK(n == 50);
    n = 0;
    while ((ret = layered_cursor_prev(c)) == 0)
        n++;
    CHECK_RET(LAYERED_NOTFOUND, ret);
    CHECK(n == 50);
    CHECK_OK(layered_cursor_search_near(c, "k000000", 7, &i));
    CHECK_OK(layered_cursor_close(c));
    db_free(&db);
}

/* With an argument, only the scenario of that name runs (each scenario
 * can then be tried alone against a build that lacks a fix). */
static bool
wanted(int argc, char **argv, const char *name)
{
    return argc < 2 || strcmp(argv[1], name) == 0;
}

int
main(int argc, char **argv)
{
    int policy;

    /* First: it forks, and the process has no threads yet (ThreadSanitizer
     * cannot follow a fork of a threaded process). */
    if (wanted(argc, argv, "fold_keeps_create"))
        fold_keeps_create();
    if (wanted(argc, argv, "queue_scan_busy_drop"))
        queue_scan_busy_drop();
    if (wanted(argc, argv, "queue_scan_failed_drop"))
        queue_scan_failed_drop();
    if (wanted(argc, argv, "closed_ingest_trimmed"))
        closed_ingest_trimmed();
    for (policy = LAYERED_DRAIN_SKIP_MISSING;
         policy <= LAYERED_DRAIN_UNPROTECTED; policy++)
        if (wanted(argc, argv, "offload_races_stepup"))
            offload_races_stepup(policy);
    if (wanted(argc, argv, "journal_reset_fails"))
        journal_reset_fails();
    if (wanted(argc, argv, "drain_sync_error")) {
        drain_sync_error(false);
        drain_sync_error(true);
    }
    if (wanted(argc, argv, "drained_lsn_incarnation"))
        drained_lsn_incarnation();
    if (wanted(argc, argv, "new_home_parent_sync"))
        new_home_parent_sync();
    if (wanted(argc, argv, "cursor_many_tombstones"))
        cursor_many_tombstones();
    printf("test_atomicity: ok\n");
    return 0;
}
