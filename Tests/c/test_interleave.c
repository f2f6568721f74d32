/*
 * test_interleave.c -- every ordering of the named steps of two racing
 * operations, enumerated by a deterministic scheduler over the failpoints.
 *
 * Each operation runs on a thread of its own.  A scheduler hook
 * (layered_test_set_scheduler) stops an operation's thread at every
 * failpoint of interest and lets exactly one thread run at a time, until it
 * reaches its next step or finishes.  The explorer runs the scenario again
 * and again, depth first over the choices "which paused thread goes next",
 * until every ordering of the steps has run (stateless exploration, bounded
 * by the steps each operation has).  A thread that was let go but does not
 * reach a step within a short time is blocked on a lock another paused
 * thread holds: the scheduler then lets another thread go (this only
 * changes which orderings are reachable, never what is checked).
 *
 * After every ordering the invariants are checked: no panic under the
 * three fixed policies; under the unprotected policy, the orderings where
 * the drop wins do panic (the test requires that at least one does); after
 * a successful step-up every existing table's ingest is empty and holds
 * every acknowledged row in the layered view; a drop that returned an error
 * changed nothing (the table and all its rows are there); no table is left
 * stopping; an unarchive that returned 0 leaves a usable table; an offload
 * that returned 0 leaves an offloaded table that unarchives with every row;
 * after a final checkpoint database_size equals the stable files' sizes on
 * disk plus the buffer.
 *
 * The pairs: drain x drop (each policy; with and without a reader cursor;
 * with and without retrying an EBUSY drop), drain x offload, drain x
 * archive/unarchive, offload x unarchive, offload x drop, checkpoint x drop,
 * step-down x drop.  The number of orderings explored is printed per pair.
 */
#include <dirent.h>
#include <inttypes.h>
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "layered_test.h"
#include "testutil.h"

#define MAX_OPS 3
#define MAX_DEPTH 64
#define MAX_RUNS (full_depth ? 5000 : 400)
/* How long a thread that was let go may take to reach its next step before
 * it counts as blocked (on a lock a paused thread holds). */
#define BLOCKED_MS 40

static const char *const policy_names[] = {"skip-missing", "read-lock",
                                           "queue-scan", "unprotected"};

/* The failpoints that are steps of the protocols: the points between which
 * the protocols take and release their locks and make their decisions.
 * LAYERED_SIM_DEPTH=full adds the syncs and the metadata writes (more
 * orderings of the same decisions). */
static const char *const steps[] = {
    "drain.queued",          "drain.before_lock",
    "drain.before_read_lock", "drain.copy",
    "drain.before_clear",    "drop.before_exclusive",
    "drop.after_remove",     "offload.before_arbiter",
    "offload.after_arbiter", "offload.after_stopping",
    "unarchive.before_lock", NULL};
static const char *const full_steps[] = {"drain.sync", "meta.write", NULL};
static bool full_depth;

enum op_state { OP_WAITING, OP_RUNNING, OP_AT_STEP, OP_DONE };

struct world;

struct op {
    const char *name;
    int (*fn)(struct world *w, struct op *op);
    pthread_t tid;
    layered_session *s;
    enum op_state state;
    const char *at;
    uint64_t grants;
    uint64_t last_report_ns;
    int ret;
    int aux; /* what the op wants the checker to know */
    struct world *w;
};

enum mode {
    MODE_INGEST,       /* follower, both tables with ingest rows */
    MODE_DRAINED,      /* follower, drained once: empty ingests */
    MODE_DRAINED_MORE, /* follower, drained once, then more ingest rows */
    MODE_LEADER        /* leader, drained */
};

struct world {
    char *home;
    int expect_rows;
    layered_conn *conn;
    layered_session *s;
    int policy;
    int panics;
    struct op ops[MAX_OPS];
    int nops;
    pthread_mutex_t m;
    pthread_cond_t cv;
    /* the exploration */
    int schedule[MAX_DEPTH], nsched;
    int choices[MAX_DEPTH], options[MAX_DEPTH], depth;
    char trace[512];
};

static __thread struct op *current_op;

static uint64_t
now_ms(void)
{
    return tu_now_ns() / 1000000u;
}

static bool
is_step(const char *name)
{
    for (int i = 0; steps[i] != NULL; i++)
        if (strcmp(steps[i], name) == 0)
            return true;
    for (int i = 0; full_depth && full_steps[i] != NULL; i++)
        if (strcmp(full_steps[i], name) == 0)
            return true;
    return false;
}

static void
panic_cb(void *arg, int error, const char *msg)
{
    struct world *w = arg;

    (void)error;
    (void)msg;
    __atomic_add_fetch(&w->panics, 1, __ATOMIC_SEQ_CST);
}

static void
quiet(void *arg, const char *msg)
{
    (void)arg;
    (void)msg;
}

/* The hook: a thread of one of our operations stops at a step and waits to
 * be let go again; every other thread passes. */
static int
sched_hook(void *arg, const char *name)
{
    struct world *w = arg;
    struct op *op = current_op;
    uint64_t g;

    if (op == NULL || op->w != w || !is_step(name))
        return 0;
    (void)pthread_mutex_lock(&w->m);
    op->state = OP_AT_STEP;
    op->at = name;
    g = op->grants;
    (void)pthread_cond_broadcast(&w->cv);
    while (op->grants == g)
        (void)pthread_cond_wait(&w->cv, &w->m);
    op->state = OP_RUNNING;
    (void)pthread_mutex_unlock(&w->m);
    return 0;
}

static void *
op_thread(void *arg)
{
    struct op *op = arg;
    struct world *w = op->w;

    current_op = op;
    /* The start is a step too: nothing runs before the scheduler says. */
    (void)pthread_mutex_lock(&w->m);
    op->state = OP_AT_STEP;
    op->at = "start";
    (void)pthread_cond_broadcast(&w->cv);
    while (op->grants == 0)
        (void)pthread_cond_wait(&w->cv, &w->m);
    op->state = OP_RUNNING;
    (void)pthread_mutex_unlock(&w->m);

    op->ret = op->fn(w, op);

    (void)pthread_mutex_lock(&w->m);
    op->state = OP_DONE;
    op->at = "done";
    (void)pthread_cond_broadcast(&w->cv);
    (void)pthread_mutex_unlock(&w->m);
    current_op = NULL;
    return NULL;
}

/* Wait until no operation is running (each paused at a step or done), or
 * the running one has taken longer than BLOCKED_MS.  Mutex held. */
static void
wait_quiet(struct world *w, struct op *released)
{
    uint64_t deadline = now_ms() + BLOCKED_MS;
    struct timespec ts;

    for (;;) {
        bool running = false;
        for (int i = 0; i < w->nops; i++)
            if (w->ops[i].state == OP_RUNNING ||
                w->ops[i].state == OP_WAITING)
                running = running || &w->ops[i] == released ||
                          w->ops[i].state == OP_WAITING;
        if (!running)
            return;
        if (released != NULL && now_ms() >= deadline)
            return; /* blocked: choose among the others */
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 2 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        (void)pthread_cond_timedwait(&w->cv, &w->m, &ts);
    }
}

/* Run the operations to the end along the schedule prefix (then the first
 * choice), recording each decision. */
static void
run_schedule(struct world *w)
{
    struct op *released = NULL;
    size_t tl = 0;

    w->depth = 0;
    w->trace[0] = '\0';
    for (int i = 0; i < w->nops; i++) {
        w->ops[i].w = w;
        w->ops[i].state = OP_WAITING;
        w->ops[i].grants = 0;
        CHECK(pthread_create(&w->ops[i].tid, NULL, op_thread, &w->ops[i]) ==
              0);
    }
    (void)pthread_mutex_lock(&w->m);
    for (;;) {
        int ready[MAX_OPS], n = 0, pick, alldone = 1;

        wait_quiet(w, released);
        for (int i = 0; i < w->nops; i++) {
            if (w->ops[i].state != OP_DONE)
                alldone = 0;
            if (w->ops[i].state == OP_AT_STEP)
                ready[n++] = i;
        }
        if (alldone)
            break;
        if (n == 0) {
            /* Every live thread runs or is blocked: wait for one. */
            released = NULL;
            (void)pthread_cond_wait(&w->cv, &w->m);
            continue;
        }
        pick = 0;
        if (n > 1) {
            if (w->depth < w->nsched && w->schedule[w->depth] < n)
                pick = w->schedule[w->depth];
            if (w->depth < MAX_DEPTH) {
                w->choices[w->depth] = pick;
                w->options[w->depth] = n;
                w->depth++;
            }
        }
        released = &w->ops[ready[pick]];
        if (tl < sizeof(w->trace) - 40)
            tl += (size_t)snprintf(w->trace + tl, sizeof(w->trace) - tl,
                                   "%s%s@%s", tl ? " " : "", released->name,
                                   released->at);
        released->state = OP_RUNNING;
        released->grants++;
        released->last_report_ns = tu_now_ns();
        (void)pthread_cond_broadcast(&w->cv);
    }
    (void)pthread_mutex_unlock(&w->m);
    for (int i = 0; i < w->nops; i++)
        CHECK(pthread_join(w->ops[i].tid, NULL) == 0);
}

/* The next schedule in depth-first order, or false when all are done. */
static bool
next_schedule(struct world *w)
{
    for (int d = w->depth - 1; d >= 0; d--)
        if (w->choices[d] + 1 < w->options[d]) {
            for (int i = 0; i < d; i++)
                w->schedule[i] = w->choices[i];
            w->schedule[d] = w->choices[d] + 1;
            w->nsched = d + 1;
            return true;
        }
    return false;
}

/* ---- the scenario's database ---- */

#define ROWS_STABLE 20
#define ROWS_INGEST 20

static void
world_open(struct world *w, int role)
{
    layered_config cfg;

    layered_config_init(&cfg);
    cfg.role = role;
    cfg.drain_threads = 1;
    cfg.drain_policy = w->policy;
    cfg.panic_handler = panic_cb;
    cfg.panic_arg = w;
    cfg.message_handler = quiet;
    CHECK_OK(layered_open(w->home, &cfg, &w->conn));
    CHECK_OK(layered_session_open(w->conn, &w->s));
}

/* Tables t and u: ROWS_STABLE rows checkpointed by a leader, then, on a
 * follower, ROWS_INGEST ingest rows; the mode says what follows;
 * `archived`: t archived at the end. */
static void
world_setup(struct world *w, int policy, enum mode mode, bool archived)
{
    memset(w->ops, 0, sizeof(w->ops));
    w->nops = 0;
    w->panics = 0;
    w->policy = policy;
    w->home = tu_mkdtemp("interleave");
    world_open(w, LAYERED_ROLE_LEADER);
    CHECK_OK(layered_create(w->s, "layered:t", NULL));
    CHECK_OK(layered_create(w->s, "layered:u", NULL));
    tu_insert_rows(w->s, "layered:t", "S", ROWS_STABLE);
    tu_insert_rows(w->s, "layered:u", "S", ROWS_STABLE);
    CHECK_OK(layered_checkpoint(w->s));
    CHECK_OK(layered_close(w->conn));
    world_open(w, LAYERED_ROLE_FOLLOWER);
    tu_insert_rows(w->s, "layered:t", "F", ROWS_INGEST);
    tu_insert_rows(w->s, "layered:u", "F", ROWS_INGEST);
    w->expect_rows = ROWS_STABLE + ROWS_INGEST;
    if (mode != MODE_INGEST) {
        CHECK_OK(layered_step_up(w->conn, NULL));
        if (mode != MODE_LEADER)
            CHECK_OK(layered_step_down(w->conn));
    }
    if (mode == MODE_DRAINED_MORE) {
        tu_insert_rows(w->s, "layered:t", "G", ROWS_INGEST);
        tu_insert_rows(w->s, "layered:u", "G", ROWS_INGEST);
        w->expect_rows += ROWS_INGEST;
    }
    if (archived)
        CHECK_OK(layered_archive(w->s, "layered:t"));
    CHECK_OK(layered_test_set_scheduler(w->conn, sched_hook, w));
}

static struct op *
add_op(struct world *w, const char *name,
       int (*fn)(struct world *, struct op *))
{
    struct op *op = &w->ops[w->nops++];

    op->name = name;
    op->fn = fn;
    CHECK_OK(layered_session_open(w->conn, &op->s));
    return op;
}

/* ---- the operations ---- */

static int
op_step_up(struct world *w, struct op *op)
{
    (void)op;
    return layered_step_up(w->conn, NULL);
}

static int
op_step_down(struct world *w, struct op *op)
{
    (void)op;
    return layered_step_down(w->conn);
}

static int
op_checkpoint(struct world *w, struct op *op)
{
    (void)w;
    return layered_checkpoint(op->s);
}

static int
op_drop(struct world *w, struct op *op)
{
    (void)w;
    return layered_drop(op->s, "layered:t", LAYERED_DROP_FORCE);
}

/* A drop while a reader holds the table; aux = 1: after EBUSY, close the
 * reader and retry once the other operation (the step-up) has finished, as
 * the README tells callers to. */
static int
op_drop_reader(struct world *w, struct op *op)
{
    layered_cursor *c;
    struct op *other = &w->ops[0] == op ? &w->ops[1] : &w->ops[0];
    int ret;

    if ((ret = layered_cursor_open(op->s, "layered:t", &c)) != 0)
        return ret == ENOENT ? 0 : ret;
    ret = layered_drop(op->s, "layered:t", LAYERED_DROP_FORCE);
    (void)layered_cursor_close(c);
    if (ret == EBUSY && op->aux == 1) {
        /* Not an ordering: waiting for an event (the scheduler sees this
         * thread as blocked and runs the other one meanwhile). */
        (void)pthread_mutex_lock(&w->m);
        while (other->state != OP_DONE)
            (void)pthread_cond_wait(&w->cv, &w->m);
        (void)pthread_mutex_unlock(&w->m);
        ret = layered_drop(op->s, "layered:t", LAYERED_DROP_FORCE);
    }
    return ret;
}

static int
op_offload(struct world *w, struct op *op)
{
    (void)w;
    return layered_offload(op->s, "layered:t");
}

static int
op_archive_unarchive(struct world *w, struct op *op)
{
    int ret;

    (void)w;
    if ((ret = layered_archive(op->s, "layered:t")) != 0)
        return ret;
    return layered_unarchive(op->s, "layered:t");
}

static int
op_unarchive(struct world *w, struct op *op)
{
    (void)w;
    return layered_unarchive(op->s, "layered:t");
}

/* ---- the invariants ---- */

static uint64_t
stable_files_bytes(const char *home)
{
    char dir[4096], path[4600];
    struct dirent *e;
    struct stat st;
    uint64_t sum = 0;
    DIR *d;

    (void)snprintf(dir, sizeof(dir), "%s/shared", home);
    CHECK((d = opendir(dir)) != NULL);
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n > 7 && strcmp(e->d_name + n - 7, ".stable") == 0) {
            (void)snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
            CHECK(stat(path, &st) == 0);
            sum += (uint64_t)st.st_size;
        }
    }
    (void)closedir(d);
    return sum;
}

/* Rows and tombstones (a cursor shows no tombstones). */
static int
entries(layered_session *s, const char *uri)
{
    uint64_t n;

    CHECK_OK(layered_test_constituent_entries(s, uri, &n));
    return (int)n;
}

struct expect {
    bool step_up;     /* a step-up is one of the ops */
    bool drop;        /* a drop of t is one of the ops */
    bool may_panic;   /* the unprotected policy */
};

/* Returns true if this ordering panicked. */
static bool
check_world(struct world *w, const struct expect *ex, const char *pair)
{
    layered_conn_stats st;
    const char *where = w->trace;
    int state, ret, rows;
    bool t_exists;

    if (w->panics > 0) {
        if (!ex->may_panic) {
            fprintf(stderr, "%s [%s]: panic in ordering: %s\n", pair,
                    policy_names[w->policy], where);
            CHECK(w->panics == 0);
        }
        (void)layered_close(w->conn);
        return true;
    }
    for (int i = 0; i < w->nops; i++)
        CHECK_OK(layered_session_close(w->ops[i].s));
    CHECK_OK(layered_test_set_scheduler(w->conn, NULL, NULL));
    if (ex->step_up) {
        for (int i = 0; i < w->nops; i++)
            if (w->ops[i].fn == op_step_up && w->ops[i].ret != 0) {
                fprintf(stderr, "%s: step-up failed: %s (%s)\n", pair,
                        layered_strerror(w->ops[i].ret), where);
                CHECK(w->ops[i].ret == 0);
            }
    }
    ret = layered_table_state(w->s, "layered:t", &state);
    CHECK(ret == 0 || ret == ENOENT);
    t_exists = ret == 0;
    for (int i = 0; i < w->nops; i++) {
        struct op *op = &w->ops[i];
        bool is_drop = op->fn == op_drop || op->fn == op_drop_reader;
        if (is_drop && op->ret != 0 && !t_exists) {
            fprintf(stderr, "%s: a drop returned %s but the table is gone "
                    "(%s)\n", pair, layered_strerror(op->ret), where);
            CHECK(t_exists);
        }
        if (is_drop && op->ret == 0 && t_exists) {
            fprintf(stderr, "%s: a drop returned 0 but the table is there "
                    "(%s)\n", pair, where);
            CHECK(!t_exists);
        }
    }
    {
        /* Both an offload and an unarchive succeeded: only the order
         * offload, then restore is possible (an unarchive first makes the
         * offload refuse), so the table is active. */
        bool offloaded = false, unarchived = false;
        for (int i = 0; i < w->nops; i++) {
            offloaded = offloaded ||
                        (w->ops[i].fn == op_offload && w->ops[i].ret == 0);
            unarchived = unarchived ||
                         ((w->ops[i].fn == op_unarchive ||
                           w->ops[i].fn == op_archive_unarchive) &&
                          w->ops[i].ret == 0);
        }
        if (t_exists && (offloaded || unarchived)) {
            int want = unarchived ? LAYERED_TABLE_ACTIVE
                                  : LAYERED_TABLE_OFFLOADED;
            if (state != want) {
                fprintf(stderr, "%s: offload %s, unarchive %s, table state "
                        "%d (%s)\n", pair, offloaded ? "ok" : "-",
                        unarchived ? "ok" : "-", state, where);
                CHECK(state == want);
            }
        }
    }
    if (t_exists) {
        CHECK(state != LAYERED_TABLE_STOPPING);
        if (state == LAYERED_TABLE_ARCHIVED ||
            state == LAYERED_TABLE_OFFLOADED)
            CHECK_OK(layered_unarchive(w->s, "layered:t"));
        rows = tu_count_rows(w->s, "layered:t");
        if (rows != w->expect_rows) {
            fprintf(stderr, "%s: layered:t holds %d rows, expected %d (%s)\n",
                    pair, rows, w->expect_rows, where);
            CHECK(rows == w->expect_rows);
        }
    }
    CHECK(tu_count_rows(w->s, "layered:u") == w->expect_rows);
    CHECK_OK(layered_stats(w->conn, &st));
    if (st.role == LAYERED_ROLE_LEADER) {
        /* After a successful step-up every existing ingest is empty. */
        if (t_exists)
            CHECK(entries(w->s, "file:t.ingest") == 0);
        CHECK(entries(w->s, "file:u.ingest") == 0);
    }
    CHECK_OK(layered_checkpoint(w->s));
    CHECK_OK(layered_stats(w->conn, &st));
    CHECK(st.database_size ==
          stable_files_bytes(w->home) + LAYERED_CHECKPOINT_SIZE_BUFFER);
    CHECK_OK(layered_close(w->conn));
    return false;
}

/* Explore every ordering of one pair; returns the number of orderings
 * that panicked. */
static int
explore(const char *pair, int policy, enum mode mode, bool archived,
        int (*a)(struct world *, struct op *), const char *an,
        int (*b)(struct world *, struct op *), const char *bn, int baux,
        const struct expect *ex)
{
    struct world w;
    int runs = 0, panicked = 0;

    memset(&w, 0, sizeof(w));
    (void)pthread_mutex_init(&w.m, NULL);
    (void)pthread_cond_init(&w.cv, NULL);
    w.nsched = 0;
    do {
        world_setup(&w, policy, mode, archived);
        add_op(&w, an, a);
        add_op(&w, bn, b)->aux = baux;
        run_schedule(&w);
        if (check_world(&w, ex, pair))
            panicked++;
        tu_rmdir(w.home);
        free(w.home);
        runs++;
    } while (runs < MAX_RUNS && next_schedule(&w));
    printf("  %-34s %-12s %4d orderings%s", pair, policy_names[policy],
           runs, runs == MAX_RUNS ? " (bound reached)" : "");
    if (ex->may_panic)
        printf(", %d panicked", panicked);
    printf("\n");
    (void)pthread_mutex_destroy(&w.m);
    (void)pthread_cond_destroy(&w.cv);
    return panicked;
}

int
main(void)
{
    struct expect ex;
    int policy, panicked;

    const char *depth = getenv("LAYERED_SIM_DEPTH");
    struct stat sb;

    setvbuf(stdout, NULL, _IOLBF, 0);
    full_depth = depth != NULL && strcmp(depth, "full") == 0;
    /* Thousands of small databases: keep them in memory when possible. */
    if (getenv("TMPDIR") == NULL && stat("/dev/shm", &sb) == 0 &&
        S_ISDIR(sb.st_mode))
        (void)setenv("TMPDIR", "/dev/shm", 1);
    printf("test_interleave: every ordering of the protocol steps\n");
    for (policy = LAYERED_DRAIN_SKIP_MISSING;
         policy <= LAYERED_DRAIN_UNPROTECTED; policy++) {
        ex = (struct expect){true, true, policy == LAYERED_DRAIN_UNPROTECTED};
        panicked = explore("drain x drop", policy, MODE_INGEST, false,
                           op_step_up, "stepup", op_drop, "drop", 0, &ex);
        if (policy == LAYERED_DRAIN_UNPROTECTED)
            CHECK(panicked > 0); /* the tests can see the race */
        (void)explore("drain x drop (reader, no retry)", policy, MODE_INGEST,
                      false, op_step_up, "stepup", op_drop_reader, "drop", 0,
                      &ex);
        (void)explore("drain x drop (reader, retry)", policy, MODE_INGEST,
                      false, op_step_up, "stepup", op_drop_reader, "drop", 1,
                      &ex);
        ex = (struct expect){true, false, false};
        (void)explore("drain x offload", policy, MODE_DRAINED_MORE, true,
                      op_step_up, "stepup", op_offload, "offload", 0, &ex);
        (void)explore("drain x archive/unarchive", policy, MODE_INGEST, false,
                      op_step_up, "stepup", op_archive_unarchive, "arch", 0,
                      &ex);
    }
    ex = (struct expect){false, false, false};
    (void)explore("offload x unarchive", LAYERED_DRAIN_SKIP_MISSING,
                  MODE_DRAINED, true, op_offload, "offload", op_unarchive,
                  "unarchive", 0, &ex);
    ex = (struct expect){false, true, false};
    (void)explore("offload x drop", LAYERED_DRAIN_SKIP_MISSING, MODE_DRAINED,
                  true, op_offload, "offload", op_drop, "drop", 0, &ex);
    (void)explore("checkpoint x drop", LAYERED_DRAIN_SKIP_MISSING,
                  MODE_INGEST, false, op_checkpoint, "checkpoint", op_drop,
                  "drop", 0, &ex);
    (void)explore("step-down x drop", LAYERED_DRAIN_SKIP_MISSING, MODE_LEADER,
                  false, op_step_down, "stepdown", op_drop, "drop", 0, &ex);
    printf("test_interleave: ok\n");
    return 0;
}
