/*
 * test_sim.c -- power cuts and I/O faults at every call of real workloads,
 * on the simulated disk (simdisk.h).
 *
 * For each workload: run it once to count its counted calls (N), then for
 * every k in [0, N): (a) make call k fail (EIO, ENOSPC, EDQUOT or a short
 * write, chosen by k), let the workload go on, and cut the power a few
 * calls later (1 to 32, chosen by k and the seed) or at its end; (b) cut
 * the power just before call k.  The workload stops at a
 * panic or a cut; the connection is closed; the disk reboots into what
 * survived.  Then the database is opened again
 * on the simulated disk and checked against a model the workload kept:
 *
 *   - open succeeds: a torn tail is never LAYERED_CORRUPT;
 *   - every table whose create was acknowledged exists unless its drop was
 *     acknowledged; no dropped table comes back; a table whose create or
 *     drop failed is there complete or not at all;
 *   - every row acknowledged under LAYERED_SYNC_FSYNC, or written before a
 *     checkpoint or step-up that returned 0, is there with its value; no row
 *     is there that was never written, none that a durable remove removed;
 *   - a table's lifecycle state is one the acknowledged calls allow (an
 *     offload that failed past its stopping record may have completed);
 *   - every listed table has its files (an offloaded one its stable);
 *   - every batch is visible whole or not at all, and one that committed
 *     is there (a batch's journal record is synced at every sync level);
 *   - step-up after recovery succeeds and leaves every ingest empty;
 *   - a checkpoint succeeds and database_size equals the sizes of the
 *     stable files on the disk plus the buffer.
 *
 * A violation prints the workload, the seed, the kind (fail/cut), the call
 * index and the simulated disk's event, and the run exits non-zero.
 * LAYERED_SIM_DEPTH=full runs more seeds per call index (the power cut's
 * random choices differ per seed); LAYERED_SIM_SEED sets the base seed.
 * With arguments "WORKLOAD fail|cut K [SEED]" a single point is replayed.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "layered.h"
#include "layered_test.h"
#include "simdisk.h"

#define HOME "/sim/home"
#define SHARED "/sim/shared"
#define MAX_TABLES 16
#define MAX_KEYS 64

/* A key's versions: 0 never written, 1 its value, 2 removed.  A table's:
 * 0 not created, 1 created, 2 dropped.  The model keeps, per key and per
 * table, the version certainly durable (lo) and the highest one a call
 * attempted (hi): after recovery the visible version must lie in [lo, hi]. */
struct mkey {
    char key[24];
    char val[40];
    char alt[40]; /* an earlier value still allowed (an overwrite not yet
                     durable), or "" */
    int lo, hi;
    int acked; /* version acknowledged, not yet known durable */
    bool ingest; /* acked on a follower: a step-up's drain makes it durable */
};

struct mtable {
    char name[24];
    int lo, hi;
    /* lifecycle: a bit set of the LAYERED_TABLE_* states allowed */
    unsigned states;
    struct mkey keys[MAX_KEYS];
    int nkeys;
};

/* The ops of one batch, for the all-or-nothing check: table and key
 * indexes, and whether the op is a remove.  An op counts only if the key's
 * state before the batch was certain (a put: a key never written before;
 * a remove: a key durably present and nothing else attempted). */
#define MAX_GROUPS 16
#define MAX_GROUP_OPS 8
struct mgroup {
    int n;
    int t[MAX_GROUP_OPS], k[MAX_GROUP_OPS];
    bool remove[MAX_GROUP_OPS], certain[MAX_GROUP_OPS];
};

struct run {
    const char *workload;
    uint64_t seed;
    const char *kind; /* "count", "fail", "cut" */
    uint64_t k;
    int sync;
    int policy;
    int role;
    layered_conn *conn;
    layered_session *s;
    bool stopped; /* a call failed or the connection panicked */
    int panics;
    struct mtable t[MAX_TABLES];
    int nt;
    struct mgroup g[MAX_GROUPS];
    int ng;
    int violations;
};

static uint64_t total_points, total_cuts, total_faults, total_violations;

static void
violation(struct run *r, const char *fmt, ...)
{
    va_list ap;

    r->violations++;
    fprintf(stderr, "VIOLATION [%s seed %" PRIu64 " %s at call %" PRIu64
            " (%s)]: ", r->workload, r->seed, r->kind, r->k,
            sim_last_event());
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
}

static void
panic_cb(void *arg, int error, const char *msg)
{
    struct run *r = arg;

    (void)error;
    (void)msg;
    r->panics++;
}

static void
quiet(void *arg, const char *msg)
{
    (void)arg;
    if (getenv("LAYERED_SIM_TRACE") != NULL)
        fprintf(stderr, "  message: %s\n", msg);
}

static int
db_open(struct run *r, int role)
{
    layered_config cfg;
    int ret;

    layered_config_init(&cfg);
    cfg.role = role;
    cfg.drain_threads = 1; /* one thread: the calls come in one order */
    cfg.drain_policy = r->policy;
    cfg.sync = r->sync;
    cfg.shared_dir = SHARED;
    cfg.panic_handler = panic_cb;
    cfg.panic_arg = r;
    cfg.message_handler = quiet;
    r->role = role;
    if ((ret = layered_open_os(HOME, &cfg, &sim_os, &r->conn)) != 0)
        return ret;
    if ((ret = layered_session_open(r->conn, &r->s)) != 0) {
        (void)layered_close(r->conn);
        r->conn = NULL;
    }
    return ret;
}

static void
db_close(struct run *r)
{
    if (r->conn != NULL)
        (void)layered_close(r->conn);
    r->conn = NULL;
    r->s = NULL;
}

static struct mtable *
mt(struct run *r, const char *name)
{
    for (int i = 0; i < r->nt; i++)
        if (strcmp(r->t[i].name, name) == 0)
            return &r->t[i];
    if (r->nt == MAX_TABLES) {
        fprintf(stderr, "test_sim: more than %d tables in a workload\n",
                MAX_TABLES);
        abort();
    }
    struct mtable *t = &r->t[r->nt++];
    memset(t, 0, sizeof(*t));
    (void)snprintf(t->name, sizeof(t->name), "%s", name);
    return t;
}

static struct mkey *
mk(struct mtable *t, const char *key)
{
    for (int i = 0; i < t->nkeys; i++)
        if (strcmp(t->keys[i].key, key) == 0)
            return &t->keys[i];
    if (t->nkeys == MAX_KEYS) {
        fprintf(stderr, "test_sim: more than %d keys in a table\n",
                MAX_KEYS);
        abort();
    }
    struct mkey *k = &t->keys[t->nkeys++];
    memset(k, 0, sizeof(*k));
    (void)snprintf(k->key, sizeof(k->key), "%s", key);
    return k;
}

/* A call's result: true on success.  The workload goes on after an error
 * (later calls must still keep their promises: a failure must not make a
 * later acknowledgement a lie), and stops once the connection panicked or
 * the power is cut. */
static bool
ok_traced(struct run *r, int ret, const char *what)
{
    static int trace = -1;

    if (trace < 0)
        trace = getenv("LAYERED_SIM_TRACE") != NULL;
    if (trace)
        fprintf(stderr, "  [call %" PRIu64 "] %s: %s\n", sim_calls(), what,
                layered_strerror(ret));
    if (r->panics > 0 || sim_power_is_cut() || r->conn == NULL)
        r->stopped = true;
    return ret == 0 && !r->stopped;
}
#define ok(r, ret) ok_traced((r), (ret), #ret)


/* Everything acknowledged is durable now (a checkpoint or a clean close
 * that returned 0); with `ingest_only`, what the follower wrote (a step-up
 * that returned 0 drained and synced it; the leader's own earlier writes
 * are only as durable as their sync level and the last checkpoint). */
static void
durable(struct run *r, bool ingest_only)
{
    for (int i = 0; i < r->nt; i++)
        for (int j = 0; j < r->t[i].nkeys; j++) {
            struct mkey *k = &r->t[i].keys[j];
            if (ingest_only && !k->ingest)
                continue;
            k->ingest = false;
            if (k->acked > k->lo)
                k->lo = k->acked;
            if (k->acked != 0)
                k->alt[0] = '\0'; /* the overwrite is durable too */
        }
}

static void
all_durable(struct run *r)
{
    durable(r, false);
}

#define STATE_BIT(s) (1u << (s))

/* ---- workload steps: each does nothing once the run stopped ---- */

static void
w_create(struct run *r, const char *name)
{
    char uri[64];
    struct mtable *t;

    if (r->stopped)
        return;
    t = mt(r, name);
    (void)snprintf(uri, sizeof(uri), "layered:%s", name);
    t->hi = 1;
    if (ok(r, layered_create(r->s, uri, NULL))) {
        t->lo = 1;
        t->states = STATE_BIT(LAYERED_TABLE_ACTIVE);
    } else
        t->states |= STATE_BIT(LAYERED_TABLE_ACTIVE);
}

static void
w_drop_flags(struct run *r, const char *name, unsigned flags)
{
    char uri[64];
    struct mtable *t;

    if (r->stopped)
        return;
    t = mt(r, name);
    (void)snprintf(uri, sizeof(uri), "layered:%s", name);
    t->hi = 2;
    if (ok(r, layered_drop(r->s, uri, flags)))
        t->lo = 2;
}

static void
w_drop(struct run *r, const char *name)
{
    w_drop_flags(r, name, LAYERED_DROP_FORCE);
}

static void
w_put(struct run *r, const char *name, const char *key)
{
    char uri[64];
    layered_cursor *c;
    struct mkey *k;
    int ret;

    if (r->stopped)
        return;
    k = mk(mt(r, name), key);
    (void)snprintf(k->val, sizeof(k->val), "v-%s-%s", name, key);
    (void)snprintf(uri, sizeof(uri), "layered:%s", name);
    if (!ok(r, layered_cursor_open(r->s, uri, &c)))
        return;
    k->hi = 1;
    ret = layered_cursor_insert(c, k->key, strlen(k->key), k->val,
                                strlen(k->val));
    if (ok(r, ret)) {
        struct mtable *t = mt(r, name);
        k->acked = 1;
        k->ingest = r->role == LAYERED_ROLE_FOLLOWER;
        if (r->sync == LAYERED_SYNC_FSYNC)
            k->lo = 1;
        /* An acknowledged write proves the table exists. */
        if (t->lo < 1 && r->sync == LAYERED_SYNC_FSYNC)
            t->lo = 1;
    }
    (void)ok(r, layered_cursor_close(c));
}

static void
w_remove(struct run *r, const char *name, const char *key)
{
    char uri[64];
    layered_cursor *c;
    struct mkey *k;
    int ret;

    if (r->stopped)
        return;
    k = mk(mt(r, name), key);
    (void)snprintf(uri, sizeof(uri), "layered:%s", name);
    if (!ok(r, layered_cursor_open(r->s, uri, &c)))
        return;
    k->hi = 2;
    ret = layered_cursor_remove(c, k->key, strlen(k->key));
    if (ok(r, ret)) {
        k->acked = 2;
        k->ingest = r->role == LAYERED_ROLE_FOLLOWER;
        if (r->sync == LAYERED_SYNC_FSYNC)
            k->lo = 2;
    }
    (void)ok(r, layered_cursor_close(c));
}

static void
w_checkpoint(struct run *r)
{
    if (!r->stopped && ok(r, layered_checkpoint(r->s)))
        all_durable(r);
}

static void
w_step_up(struct run *r)
{
    layered_drain_stats ds;

    if (!r->stopped && ok(r, layered_step_up(r->conn, &ds))) {
        durable(r, true);
        r->role = LAYERED_ROLE_LEADER;
    }
}

static void
w_step_down(struct run *r)
{
    if (!r->stopped && ok(r, layered_step_down(r->conn)))
        r->role = LAYERED_ROLE_FOLLOWER;
}

/* Lifecycle calls: on success the state is `to`; on failure either. */
static void
w_lifecycle(struct run *r, const char *name,
            int (*call)(layered_session *, const char *), int to,
            unsigned also_on_failure)
{
    char uri[64];
    struct mtable *t;

    if (r->stopped)
        return;
    t = mt(r, name);
    (void)snprintf(uri, sizeof(uri), "layered:%s", name);
    if (ok(r, call(r->s, uri))) {
        /* Archiving an offloaded table succeeds and leaves it offloaded
         * (it is archived already). */
        t->states = STATE_BIT(to) |
                    (to == LAYERED_TABLE_ARCHIVED
                         ? t->states & STATE_BIT(LAYERED_TABLE_OFFLOADED)
                         : 0);
    } else
        t->states |= STATE_BIT(to) | also_on_failure;
}

static void
w_reopen(struct run *r, int role)
{
    int ret;

    if (r->stopped)
        return;
    ret = layered_close(r->conn);
    r->conn = NULL;
    r->s = NULL;
    /* A clean close makes everything durable (its metadata snapshot and
     * the files' closing syncs). */
    if (ret == 0 && r->panics == 0 && !sim_power_is_cut())
        all_durable(r);
    if ((ret = db_open(r, role)) != 0)
        r->stopped = true;
    (void)ok(r, ret);
}

/* A batch of n ops, "TABLE:KEY" puts and "-TABLE:KEY" removes.  A
 * committed batch is durable at every sync level (its journal record is
 * synced); a failed one changed nothing, unless the connection panicked
 * after the commit point (then the next open replays it): either way all
 * of it or none, which check_groups verifies. */
static void
w_batch(struct run *r, int n, const char *const *ops)
{
    char table[24], uri[64];
    layered_batch *b;
    struct mgroup *g;
    struct mtable *t;
    struct mkey *k;
    const char *op, *colon;
    bool committed;

    if (r->stopped)
        return;
    if (r->ng == MAX_GROUPS || n > MAX_GROUP_OPS) {
        fprintf(stderr, "test_sim: too many batches or ops\n");
        abort();
    }
    if (!ok(r, layered_batch_open(r->s, &b)))
        return;
    g = &r->g[r->ng++];
    memset(g, 0, sizeof(*g));
    for (int i = 0; i < n; i++) {
        op = ops[i];
        g->remove[i] = *op == '-';
        op += g->remove[i];
        colon = strchr(op, ':');
        (void)snprintf(table, sizeof(table), "%.*s", (int)(colon - op), op);
        t = mt(r, table);
        k = mk(t, colon + 1);
        g->t[i] = (int)(t - r->t);
        g->k[i] = (int)(k - t->keys);
        /* A key an earlier batch wrote no longer tells about that batch. */
        for (int e = 0; e < r->ng - 1; e++)
            for (int j = 0; j < r->g[e].n; j++)
                if (r->g[e].t[j] == g->t[i] && r->g[e].k[j] == g->k[i])
                    r->g[e].certain[j] = false;
        g->n++;
        (void)snprintf(uri, sizeof(uri), "layered:%s", table);
        if (g->remove[i]) {
            g->certain[i] = k->lo == 1 && k->hi == 1;
            k->hi = 2;
            (void)ok(r, layered_batch_remove(b, uri, k->key, strlen(k->key)));
        } else {
            g->certain[i] = k->hi == 0;
            (void)snprintf(k->val, sizeof(k->val), "b-%s-%s", table, k->key);
            k->hi = 1;
            (void)ok(r, layered_batch_put(b, uri, k->key, strlen(k->key),
                                          k->val, strlen(k->val)));
        }
    }
    committed = !r->stopped && ok(r, layered_batch_commit(b));
    for (int i = 0; i < g->n && committed; i++) {
        k = &r->t[g->t[i]].keys[g->k[i]];
        k->acked = k->lo = g->remove[i] ? 2 : 1;
        k->ingest = false;
        if (r->t[g->t[i]].lo < 1)
            r->t[g->t[i]].lo = 1;
    }
    (void)layered_batch_close(b);
}

static void
put_keys(struct run *r, const char *table, const char *prefix, int from,
         int n)
{
    char key[24];

    for (int i = from; i < from + n; i++) {
        (void)snprintf(key, sizeof(key), "%s%03d", prefix, i);
        w_put(r, table, key);
    }
}

/* ---- the workloads ---- */

/* Leader: create, insert, remove, checkpoint, drop, create again. */
static void
wl_schema(struct run *r)
{
    if (!ok(r, db_open(r, LAYERED_ROLE_LEADER)))
        return;
    w_create(r, "a");
    w_create(r, "b");
    put_keys(r, "a", "k", 0, 4);
    w_remove(r, "a", "k001");
    w_checkpoint(r);
    put_keys(r, "b", "k", 0, 3);
    w_drop(r, "b");
    w_create(r, "c");
    put_keys(r, "c", "k", 0, 2);
    w_checkpoint(r);
    w_reopen(r, LAYERED_ROLE_LEADER);
    w_drop_flags(r, "a", LAYERED_DROP_FORCE | LAYERED_DROP_CHECKPOINT_WAIT);
    put_keys(r, "c", "k", 2, 2);
}

/* Follower ingest, step-up (drain), leader writes, step-down, again. */
static void
wl_stepup(struct run *r)
{
    if (!ok(r, db_open(r, LAYERED_ROLE_LEADER)))
        return;
    w_create(r, "t");
    w_create(r, "u");
    w_create(r, "gone");
    put_keys(r, "t", "s", 0, 3);
    w_checkpoint(r);
    w_reopen(r, LAYERED_ROLE_FOLLOWER);
    put_keys(r, "t", "f", 0, 3);
    w_remove(r, "t", "s000");
    put_keys(r, "u", "f", 0, 2);
    put_keys(r, "gone", "f", 0, 2);
    w_drop(r, "gone");
    w_step_up(r);
    put_keys(r, "t", "l", 0, 2);
    w_checkpoint(r);
    w_step_down(r);
    put_keys(r, "u", "g", 0, 2);
    w_step_up(r);
}

/* Archive, offload, unarchive (restore), archive again. */
static void
wl_lifecycle(struct run *r)
{
    if (!ok(r, db_open(r, LAYERED_ROLE_LEADER)))
        return;
    w_create(r, "t");
    put_keys(r, "t", "k", 0, 3);
    w_checkpoint(r);
    w_lifecycle(r, "t", layered_archive, LAYERED_TABLE_ARCHIVED, 0);
    /* An offload that failed past its stopping record is finished by the
     * next open. */
    w_lifecycle(r, "t", layered_offload, LAYERED_TABLE_OFFLOADED, 0);
    w_lifecycle(r, "t", layered_unarchive, LAYERED_TABLE_ACTIVE, 0);
    put_keys(r, "t", "k", 3, 2);
    w_lifecycle(r, "t", layered_archive, LAYERED_TABLE_ARCHIVED, 0);
    w_lifecycle(r, "t", layered_unarchive, LAYERED_TABLE_ACTIVE, 0);
}

/* Enough overwrites that a checkpoint compacts the file. */
static void
wl_compact(struct run *r)
{
    char key[24];

    if (!ok(r, db_open(r, LAYERED_ROLE_LEADER)))
        return;
    w_create(r, "t");
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < 40; i++) {
            (void)snprintf(key, sizeof(key), "big%03d", i);
            w_put(r, "t", key);
        }
    w_checkpoint(r);
    w_remove(r, "t", "big000");
    w_checkpoint(r);
}

/* Many tables with few descriptors: closing cursors sweeps idle handles
 * (the connection keeps at most half the descriptor limit open), so a
 * handle is closed with writes a checkpoint has not synced yet.  A sweep
 * must sync before it closes, and a failed close must not pass for a
 * synced file. */
static void
wl_sweep(struct run *r)
{
    char name[16];
    struct rlimit old, rl;

    if (getrlimit(RLIMIT_NOFILE, &old) != 0)
        abort();
    rl = old;
    rl.rlim_cur = 24; /* the connection keeps at most 12 handles open */
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        abort();
    if (ok(r, db_open(r, LAYERED_ROLE_LEADER))) {
        for (int i = 0; i < 10; i++) {
            (void)snprintf(name, sizeof(name), "s%02d", i);
            w_create(r, name);
        }
        w_checkpoint(r);
        /* Writing table i sweeps the handles of the tables before it,
         * which nothing writes again: only the sweep's sync can make
         * their rows durable before the checkpoint reports them so. */
        for (int i = 0; i < 10; i++) {
            (void)snprintf(name, sizeof(name), "s%02d", i);
            put_keys(r, name, "k", 0, 2);
        }
        w_checkpoint(r);
    }
    if (setrlimit(RLIMIT_NOFILE, &old) != 0)
        abort();
}

/* Under queue-scan: a drop refused with EBUSY (a reader holds the table)
 * while the step-up is paused with the table queued must change nothing:
 * the step-up drains the table and a leader write is visible. */
struct stepper {
    layered_conn *conn;
    int ret;
};

static void *
step_up_thread(void *arg)
{
    struct stepper *st = arg;

    st->ret = layered_step_up(st->conn, NULL);
    return NULL;
}

static void
wl_busy_drop(struct run *r)
{
    layered_cursor *reader = NULL;
    struct stepper st;
    pthread_t tid;
    int ret;

    if (!ok(r, db_open(r, LAYERED_ROLE_LEADER)))
        return;
    w_create(r, "t");
    w_put(r, "t", "shared");
    w_checkpoint(r);
    w_reopen(r, LAYERED_ROLE_FOLLOWER);
    put_keys(r, "t", "f", 0, 2);
    if (r->stopped)
        return;
    if (!ok(r, layered_cursor_open(r->s, "layered:t", &reader)) ||
        !ok(r, layered_failpoint_set(r->conn, "drain.queued", "pause")))
        goto out;
    st.conn = r->conn;
    st.ret = 0;
    if (pthread_create(&tid, NULL, step_up_thread, &st) != 0)
        abort();
    ret = layered_failpoint_wait(r->conn, "drain.queued", 10000);
    if (ret == 0) {
        ret = layered_drop(r->s, "layered:t", LAYERED_DROP_FORCE);
        if (ret == 0) {
            struct mtable *t = mt(r, "t");
            t->lo = t->hi = 2;
        } else if (ret != EBUSY)
            r->stopped = true;
    }
    (void)layered_cursor_close(reader);
    reader = NULL;
    (void)layered_failpoint_set(r->conn, "drain.queued", "off");
    (void)pthread_join(tid, NULL);
    if (!ok(r, st.ret) || r->stopped)
        goto out;
    durable(r, true);
    r->role = LAYERED_ROLE_LEADER;
    /* A leader write of a key the follower's ingest held must be what a
     * read returns (a stale ingest would hide it). */
    {
        struct mtable *t = mt(r, "t");
        if (t->lo < 2) {
            struct mkey *k = mk(t, "f000");
            layered_cursor *c;
            const void *v;
            size_t vlen;
            (void)snprintf(k->alt, sizeof(k->alt), "%s", k->val);
            (void)snprintf(k->val, sizeof(k->val), "leader");
            k->hi = 1;
            if (!ok(r, layered_cursor_open(r->s, "layered:t", &c)))
                goto out;
            if (ok(r, layered_cursor_insert(c, "f000", 4, "leader", 6))) {
                k->acked = 1;
                if (r->sync == LAYERED_SYNC_FSYNC)
                    k->alt[0] = '\0';
                if (layered_cursor_search(c, "f000", 4) != 0 ||
                    layered_cursor_get(c, NULL, NULL, &v, &vlen) != 0 ||
                    vlen != 6 || memcmp(v, "leader", 6) != 0)
                    violation(r, "a leader write is hidden after step-up");
            }
            (void)layered_cursor_close(c);
        }
    }
out:
    if (reader != NULL)
        (void)layered_cursor_close(reader);
}

/* Batches across tables: follower and leader, with checkpoints, a step-up
 * (which retires the batch journal before its drain clears the ingests), a
 * drop of a table that batches wrote, and a reopen. */
static void
wl_batch(struct run *r)
{
    static const char *const b1[] = {"a:b1", "b:b1", "c:b1"};
    static const char *const b2[] = {"a:b2", "b:b2", "-a:s000"};
    static const char *const b3[] = {"c:b3", "b:b3", "-a:s001", "a:b3"};
    static const char *const b4[] = {"a:b4", "b:b4", "c:b4", "-c:b1"};
    static const char *const b5[] = {"a:b5", "-b:b1", "b:b5"};
    static const char *const b6[] = {"a:b6", "b:b6"};

    if (!ok(r, db_open(r, LAYERED_ROLE_LEADER)))
        return;
    w_create(r, "a");
    w_create(r, "b");
    w_create(r, "c");
    w_reopen(r, LAYERED_ROLE_FOLLOWER);
    put_keys(r, "a", "s", 0, 2);
    w_checkpoint(r);
    w_batch(r, 3, b1);
    w_batch(r, 3, b2);
    w_checkpoint(r);
    w_batch(r, 4, b3);
    w_step_up(r);
    w_batch(r, 4, b4);
    w_drop(r, "c");
    w_batch(r, 3, b5);
    w_reopen(r, LAYERED_ROLE_LEADER);
    w_batch(r, 2, b6);
}

/* ---- the check after recovery ---- */

/* Each batch: all of its ops visible, or none (ops on tables that a drop
 * may have removed since, and ops whose key's earlier state was not
 * certain, are left out). */
static void
check_groups(struct run *r)
{
    char uri[64];
    layered_cursor *c;
    int applied, counted, ret;

    for (int i = 0; i < r->ng; i++) {
        struct mgroup *g = &r->g[i];
        applied = counted = 0;
        for (int j = 0; j < g->n; j++) {
            struct mtable *t = &r->t[g->t[j]];
            struct mkey *k = &t->keys[g->k[j]];
            if (!g->certain[j] || t->hi == 2)
                continue;
            (void)snprintf(uri, sizeof(uri), "layered:%s", t->name);
            if (layered_cursor_open(r->s, uri, &c) != 0)
                continue;
            ret = layered_cursor_search(c, k->key, strlen(k->key));
            (void)layered_cursor_close(c);
            if (ret != 0 && ret != LAYERED_NOTFOUND)
                continue;
            counted++;
            applied += g->remove[j] ? ret == LAYERED_NOTFOUND : ret == 0;
        }
        if (applied != 0 && applied != counted)
            violation(r, "batch %d: %d of its %d ops visible after recovery",
                      i + 1, applied, counted);
    }
}


static void
check_rows(struct run *r, struct mtable *t)
{
    char uri[64];
    layered_cursor *c;
    const void *kp, *vp;
    size_t klen, vlen;
    int ret;

    (void)snprintf(uri, sizeof(uri), "layered:%s", t->name);
    if ((ret = layered_cursor_open(r->s, uri, &c)) != 0) {
        violation(r, "layered:%s exists but a cursor cannot open: %s",
                  t->name, layered_strerror(ret));
        return;
    }
    /* Each key of the model: its visible version within [lo, hi]. */
    for (int i = 0; i < t->nkeys; i++) {
        struct mkey *k = &t->keys[i];
        bool present;
        ret = layered_cursor_search(c, k->key, strlen(k->key));
        if (ret != 0 && ret != LAYERED_NOTFOUND) {
            violation(r, "layered:%s key %s: search: %s", t->name, k->key,
                      layered_strerror(ret));
            continue;
        }
        present = ret == 0;
        if (present) {
            if (layered_cursor_get(c, NULL, NULL, &vp, &vlen) != 0 ||
                ((vlen != strlen(k->val) || memcmp(vp, k->val, vlen) != 0) &&
                 (k->alt[0] == '\0' || vlen != strlen(k->alt) ||
                  memcmp(vp, k->alt, vlen) != 0)))
                violation(r, "layered:%s key %s: wrong value", t->name,
                          k->key);
            else if (!(k->lo <= 1 && 1 <= k->hi))
                violation(r, "layered:%s key %s: present, versions [%d,%d]",
                          t->name, k->key, k->lo, k->hi);
        } else if (!(k->lo == 0 || k->lo == 2 || k->hi == 2))
            violation(r, "layered:%s key %s: acknowledged and durable, "
                      "missing after recovery", t->name, k->key);
    }
    /* No key the model does not know. */
    (void)layered_cursor_reset(c);
    while ((ret = layered_cursor_next(c)) == 0) {
        bool known = false;
        if (layered_cursor_get(c, &kp, &klen, NULL, NULL) != 0)
            break;
        for (int i = 0; i < t->nkeys && !known; i++)
            known = strlen(t->keys[i].key) == klen &&
                    memcmp(t->keys[i].key, kp, klen) == 0;
        if (!known)
            violation(r, "layered:%s: a row that was never written",
                      t->name);
    }
    if (ret != LAYERED_NOTFOUND)
        violation(r, "layered:%s: scan: %s", t->name, layered_strerror(ret));
    (void)layered_cursor_close(c);
}

static int
add_stable_bytes(void *arg, const char *name, int state)
{
    char path[256];
    int64_t n;

    (void)state;
    (void)snprintf(path, sizeof(path), SHARED "/%s.stable", name);
    if ((n = sim_file_size(path)) > 0)
        *(uint64_t *)arg += (uint64_t)n;
    return 0;
}

static void
check(struct run *r)
{
    layered_conn_stats st;
    char path[256];
    uint64_t stable = 0;
    int ret, state;

    r->panics = 0;
    r->policy = LAYERED_DRAIN_SKIP_MISSING;
    if ((ret = db_open(r, LAYERED_ROLE_FOLLOWER)) != 0) {
        violation(r, "open after recovery: %s", layered_strerror(ret));
        return;
    }
    for (int i = 0; i < r->nt; i++) {
        struct mtable *t = &r->t[i];
        char uri[64];
        (void)snprintf(uri, sizeof(uri), "layered:%s", t->name);
        ret = layered_table_state(r->s, uri, &state);
        if (ret == ENOENT) {
            if (!(t->lo == 0 || t->lo == 2 || t->hi == 2))
                violation(r, "layered:%s: acknowledged create undone",
                          t->name);
            continue;
        }
        if (ret != 0) {
            violation(r, "layered:%s: state: %s", t->name,
                      layered_strerror(ret));
            continue;
        }
        if (t->lo == 2)
            violation(r, "layered:%s: acknowledged drop undone", t->name);
        if (t->hi == 0)
            violation(r, "layered:%s: never created, exists", t->name);
        if (t->states != 0 && !(t->states & STATE_BIT(state)))
            violation(r, "layered:%s: state %d not allowed (mask %#x)",
                      t->name, state, t->states);
        (void)snprintf(path, sizeof(path), SHARED "/%s.stable", t->name);
        if (!sim_exists(path))
            violation(r, "layered:%s listed without its stable file",
                      t->name);
        if (state == LAYERED_TABLE_ARCHIVED ||
            state == LAYERED_TABLE_OFFLOADED)
            if ((ret = layered_unarchive(r->s, uri)) != 0) {
                violation(r, "layered:%s: unarchive after recovery: %s",
                          t->name, layered_strerror(ret));
                continue;
            }
        (void)snprintf(path, sizeof(path), HOME "/%s.ingest", t->name);
        if (!sim_exists(path))
            violation(r, "layered:%s listed without its ingest file",
                      t->name);
        check_rows(r, t);
    }
    check_groups(r);
    if ((ret = layered_step_up(r->conn, NULL)) != 0) {
        violation(r, "step-up after recovery: %s", layered_strerror(ret));
        goto done;
    }
    for (int i = 0; i < r->nt; i++) {
        char uri[64];
        (void)snprintf(uri, sizeof(uri), "layered:%s", r->t[i].name);
        if (layered_table_state(r->s, uri, &state) != 0)
            continue;
        uint64_t n = 0;
        (void)snprintf(uri, sizeof(uri), "file:%s.ingest", r->t[i].name);
        if ((ret = layered_test_constituent_entries(r->s, uri, &n)) != 0 ||
            n != 0)
            violation(r, "layered:%s: ingest holds %" PRIu64 " entries "
                      "(rows and tombstones) after a successful step-up (%s)",
                      r->t[i].name, n, layered_strerror(ret));
    }
    if ((ret = layered_checkpoint(r->s)) != 0) {
        violation(r, "checkpoint after recovery: %s", layered_strerror(ret));
        goto done;
    }
    /* The stable files of the tables that exist, as the disk has them (a
     * create that a cut interrupted may leave an orphan file of a table
     * that does not exist: it is no constituent, and the next create of
     * the name replaces it). */
    (void)layered_list_tables(r->s, add_stable_bytes, &stable);
    (void)layered_stats(r->conn, &st);
    if (st.database_size != stable + LAYERED_CHECKPOINT_SIZE_BUFFER)
        violation(r, "database_size %" PRIu64 " != stable files %" PRIu64
                  " + buffer", st.database_size, stable);
done:
    if ((ret = layered_close(r->conn)) != 0)
        violation(r, "close after recovery: %s", layered_strerror(ret));
    r->conn = NULL;
}

/* ---- the sweep ---- */

/* The machine before the workload: /sim exists and is durable (the engine
 * creates only the last component of a home).  Not counted. */
static void
sim_machine(void)
{
    int fd;

    if (sim_os.mkdir("/sim", 0755) != 0 ||
        (fd = sim_os.open("/", O_RDONLY | O_DIRECTORY, 0)) < 0 ||
        sim_os.fsync(fd) != 0 || sim_os.close(fd) != 0)
        abort();
    sim_count_restart();
}

struct workload {
    const char *name;
    void (*fn)(struct run *);
    int sync;
    int policy;
};

static const struct workload workloads[] = {
    {"schema-fsync", wl_schema, LAYERED_SYNC_FSYNC, LAYERED_DRAIN_SKIP_MISSING},
    {"schema-write", wl_schema, LAYERED_SYNC_WRITE, LAYERED_DRAIN_SKIP_MISSING},
    {"schema-none", wl_schema, LAYERED_SYNC_NONE, LAYERED_DRAIN_SKIP_MISSING},
    {"stepup-skip-missing", wl_stepup, LAYERED_SYNC_FSYNC,
     LAYERED_DRAIN_SKIP_MISSING},
    {"stepup-read-lock", wl_stepup, LAYERED_SYNC_FSYNC,
     LAYERED_DRAIN_READ_LOCK},
    {"stepup-queue-scan", wl_stepup, LAYERED_SYNC_FSYNC,
     LAYERED_DRAIN_QUEUE_SCAN},
    {"stepup-write", wl_stepup, LAYERED_SYNC_WRITE, LAYERED_DRAIN_SKIP_MISSING},
    {"lifecycle", wl_lifecycle, LAYERED_SYNC_FSYNC, LAYERED_DRAIN_SKIP_MISSING},
    {"compact", wl_compact, LAYERED_SYNC_WRITE, LAYERED_DRAIN_SKIP_MISSING},
    {"sweep", wl_sweep, LAYERED_SYNC_WRITE, LAYERED_DRAIN_SKIP_MISSING},
    {"busy-drop-queue-scan", wl_busy_drop, LAYERED_SYNC_FSYNC,
     LAYERED_DRAIN_QUEUE_SCAN},
    {"batch-fsync", wl_batch, LAYERED_SYNC_FSYNC, LAYERED_DRAIN_SKIP_MISSING},
    {"batch-none", wl_batch, LAYERED_SYNC_NONE, LAYERED_DRAIN_SKIP_MISSING},
};
#define NWORKLOADS (sizeof(workloads) / sizeof(workloads[0]))

static const enum sim_fault faults[] = {SIM_FAULT_EIO, SIM_FAULT_ENOSPC,
                                        SIM_FAULT_EDQUOT, SIM_FAULT_SHORT};

/* One point: run the workload with the fault or cut armed, recover, check.
 * Returns the violations. */
static int
run_point(const struct workload *w, const char *kind, uint64_t k,
          uint64_t seed, uint64_t *callsp)
{
    struct run r;

    memset(&r, 0, sizeof(r));
    r.workload = w->name;
    r.seed = seed;
    r.kind = kind;
    r.k = k;
    r.sync = w->sync;
    r.policy = w->policy;
    sim_reset(seed);
    sim_machine();
    if (strcmp(kind, "fail") == 0) {
        /* The fault, then a power cut a few calls later (or at the end):
         * what the calls after the fault acknowledged must be durable
         * already, before a later snapshot could repair and so hide a
         * journal the fault left void. */
        sim_fail_at(k, faults[k % 4]);
        sim_cut_at(k + 1 + (k * 2654435761u + seed) % 32);
    }
    else if (strcmp(kind, "cut") == 0)
        sim_cut_at(k);
    w->fn(&r);
    if (callsp != NULL)
        *callsp = sim_calls();
    if (strcmp(kind, "fail") == 0 && !sim_power_is_cut())
        sim_cut_now();
    db_close(&r);
    if (strcmp(kind, "count") == 0 && r.stopped)
        violation(&r, "the workload fails without any fault");
    sim_disarm();
    sim_reboot();
    check(&r);
    total_points++;
    return r.violations;
}

static int
sweep(const struct workload *w, int seeds, uint64_t base_seed)
{
    uint64_t n = 0, k;
    int v = 0;

    v += run_point(w, "count", 0, base_seed, &n);
    for (k = 0; k < n; k++) {
        v += run_point(w, "fail", k, base_seed + k, NULL);
        total_faults++;
        for (int s = 0; s < seeds; s++) {
            v += run_point(w, "cut", k, base_seed + k * 1000 + (uint64_t)s,
                           NULL);
            total_cuts++;
        }
    }
    printf("  %-22s %4" PRIu64 " calls, %4" PRIu64 " faults, %5" PRIu64
           " power cuts (%d seed%s each): %d violation%s\n",
           w->name, n, n, n * (uint64_t)seeds, seeds, seeds == 1 ? "" : "s",
           v, v == 1 ? "" : "s");
    return v;
}

int
main(int argc, char **argv)
{
    const char *depth = getenv("LAYERED_SIM_DEPTH");
    const char *seedenv = getenv("LAYERED_SIM_SEED");
    uint64_t base = seedenv != NULL ? strtoull(seedenv, NULL, 0) : 20261202;
    int seeds = depth != NULL && strcmp(depth, "full") == 0 ? 8 : 1;
    const char *only = getenv("LAYERED_SIM_WORKLOAD");
    int v = 0;

    if (argc >= 4) {
        /* Replay one point: WORKLOAD fail|cut K [SEED] */
        for (size_t i = 0; i < NWORKLOADS; i++)
            if (strcmp(workloads[i].name, argv[1]) == 0)
                return run_point(&workloads[i], argv[2],
                                 strtoull(argv[3], NULL, 0),
                                 argc > 4 ? strtoull(argv[4], NULL, 0)
                                          : base,
                                 NULL) == 0
                           ? 0
                           : 1;
        fprintf(stderr, "test_sim: no workload %s\n", argv[1]);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("test_sim: base seed %" PRIu64 ", %d power-cut seed%s per call "
           "(LAYERED_SIM_DEPTH=%s)\n", base, seeds, seeds == 1 ? "" : "s",
           depth != NULL ? depth : "default");
    for (size_t i = 0; i < NWORKLOADS; i++)
        if (only == NULL || strcmp(only, workloads[i].name) == 0)
            v += sweep(&workloads[i], seeds, base);
    total_violations = (uint64_t)v;
    printf("test_sim: %" PRIu64 " points, %" PRIu64 " faults, %" PRIu64
           " power cuts, %" PRIu64 " violations\n", total_points,
           total_faults, total_cuts, total_violations);
    return v == 0 ? 0 : 1;
}
