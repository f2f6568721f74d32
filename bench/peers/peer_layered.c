/*
 * peer_layered.c -- Layered in the side-by-side benchmark.
 *
 * copy and many are real step-up drains: as follower, the rows are written
 * into the ingest constituents and checkpointed (untimed); the timed part
 * is layered_step_up, which copies every ingest into its stable
 * constituent, syncs it and clears the ingest.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layered.h"
#include "peers.h"

#define TRY(call)                                                           \
    do {                                                                    \
        int ret_ = (call);                                                  \
        if (ret_ != 0)                                                      \
            fail("layered", #call, layered_strerror(ret_));                 \
    } while (0)

struct drain_state {
    struct workload w;
    char home[4096];
    layered_conn *conn;       /* many: the tables persist across runs */
    layered_session *session;
};

static void *
drain_prepare(const struct workload *w)
{
    struct drain_state *s = calloc(1, sizeof(*s));

    if (s == NULL)
        fail("layered", "calloc", NULL);
    s->w = *w;
    path_join(s->home, sizeof(s->home), w->dir, "home");
    return s;
}

static void
open_home(struct drain_state *s)
{
    layered_config cfg;

    layered_config_init(&cfg);
    cfg.sync = LAYERED_SYNC_NONE; /* loading; the drain syncs regardless */
    TRY(layered_open(s->home, &cfg, &s->conn));
    TRY(layered_session_open(s->conn, &s->session));
}

static void
create_tables(struct drain_state *s)
{
    char uri[64];
    int t;

    for (t = 0; t < s->w.tables; t++) {
        snprintf(uri, sizeof(uri), "layered:t%05d", t);
        TRY(layered_create(s->session, uri, NULL));
    }
}

/*
 * step_up_timed --
 *     Fill every table's ingest with this run's rows in random key order,
 *     checkpoint (so the timed part starts from data on disk, not in write
 *     buffers), then time the step-up and check what it drained.
 */
static double
step_up_timed(struct drain_state *s, int run)
{
    layered_cursor *c;
    layered_drain_stats ds;
    unsigned char key[KEY_LEN];
    char uri[64];
    uint64_t t0, i, base = (uint64_t)run * s->w.rows * (uint64_t)s->w.tables;
    int t;

    for (t = 0; t < s->w.tables; t++) {
        snprintf(uri, sizeof(uri), "layered:t%05d", t);
        TRY(layered_cursor_open(s->session, uri, &c));
        for (i = 0; i < s->w.rows; i++) {
            uint64_t row = base + (uint64_t)t * s->w.rows + i;
            row_key(row, key);
            TRY(layered_cursor_insert(c, key, KEY_LEN,
                                      row_value(row, s->w.value_len),
                                      s->w.value_len));
        }
        TRY(layered_cursor_close(c));
    }
    TRY(layered_checkpoint(s->session));
    t0 = bench_now_ns();
    TRY(layered_step_up(s->conn, &ds));
    t0 = bench_now_ns() - t0;
    if (ds.rows != s->w.rows * (uint64_t)s->w.tables ||
        ds.tables_drained != (uint64_t)s->w.tables)
        fail("layered", "step-up", "drained the wrong number of rows");
    return t0 / 1e9;
}

/*
 * copy_run --
 *     One table in a fresh home each run: the stable constituent starts
 *     empty, as the peers' destinations do.
 */
static double
copy_run(void *arg, int run)
{
    struct drain_state *s = arg;
    double seconds;

    remove_tree(s->home);
    open_home(s);
    create_tables(s);
    seconds = step_up_timed(s, run);
    TRY(layered_close(s->conn));
    s->conn = NULL;
    return seconds;
}

static void *
many_prepare(const struct workload *w)
{
    struct drain_state *s = drain_prepare(w);

    open_home(s);
    create_tables(s);
    return s;
}

/*
 * many_run --
 *     The tables are created once, by many_prepare (creating ten thousand tables durably
 *     takes longer than draining them); each run fills them with new rows,
 *     steps up and steps down again.  From the second run on, the drain
 *     writes into stable constituents that already hold earlier runs'
 *     rows, which is more work than the peers' empty destinations.
 */
static double
many_run(void *arg, int run)
{
    struct drain_state *s = arg;
    double seconds;

    seconds = step_up_timed(s, run);
    TRY(layered_step_down(s->conn));
    return seconds;
}

static void
drain_finish(void *arg)
{
    struct drain_state *s = arg;

    if (s->conn != NULL)
        TRY(layered_close(s->conn));
    remove_tree(s->home);
    free(s);
}

/* ---- point operations: a leader's table, writes under SYNC_WRITE ---- */

struct point_state {
    layered_conn *conn;
    uint64_t rows;
};

static void *
point_prepare(const struct workload *w)
{
    struct point_state *s = calloc(1, sizeof(*s));
    layered_config cfg;
    layered_session *session;
    layered_cursor *c;
    unsigned char key[KEY_LEN];
    char home[4096];
    uint64_t i;

    if (s == NULL)
        fail("layered", "calloc", NULL);
    s->rows = w->rows;
    path_join(home, sizeof(home), w->dir, "home");
    layered_config_init(&cfg);
    cfg.role = LAYERED_ROLE_LEADER;
    cfg.sync = LAYERED_SYNC_WRITE;
    TRY(layered_open(home, &cfg, &s->conn));
    TRY(layered_session_open(s->conn, &session));
    TRY(layered_create(session, "layered:p", NULL));
    TRY(layered_cursor_open(session, "layered:p", &c));
    for (i = 0; i < w->rows; i++) {
        row_key(i, key);
        TRY(layered_cursor_insert(c, key, KEY_LEN, row_value(i, w->value_len),
                                  w->value_len));
    }
    TRY(layered_cursor_close(c));
    TRY(layered_checkpoint(session));
    TRY(layered_session_close(session));
    return s;
}

static void
point_read(struct point_job *job)
{
    struct point_state *s = job->state;
    layered_session *session;
    layered_cursor *c;
    unsigned char key[KEY_LEN];
    const void *k, *v;
    size_t klen, vlen;
    uint64_t sum = 0;
    int i;

    TRY(layered_session_open(s->conn, &session));
    TRY(layered_cursor_open(session, "layered:p", &c));
    while (bench_now_ns() < job->deadline)
        for (i = 0; i < POINT_BATCH; i++) {
            row_key(rand_next(&job->seed) % s->rows, key);
            TRY(layered_cursor_search(c, key, KEY_LEN));
            TRY(layered_cursor_get(c, &k, &klen, &v, &vlen));
            sum += ((const unsigned char *)v)[0];
            job->ops++;
        }
    TRY(layered_session_close(session));
    if (sum == 1)
        fprintf(stderr, " ");
}

static void
point_insert(struct point_job *job)
{
    struct point_state *s = job->state;
    layered_session *session;
    layered_cursor *c;
    unsigned char key[KEY_LEN];
    int i;

    TRY(layered_session_open(s->conn, &session));
    TRY(layered_cursor_open(session, "layered:p", &c));
    while (bench_now_ns() < job->deadline)
        for (i = 0; i < POINT_BATCH; i++) {
            uint64_t row = job->next_new++;
            row_key(row, key);
            TRY(layered_cursor_insert(c, key, KEY_LEN, row_value(row, 100),
                                      100));
            job->ops++;
        }
    TRY(layered_session_close(session));
}

static uint64_t
point_scan(void *arg)
{
    struct point_state *s = arg;
    layered_session *session;
    layered_cursor *c;
    unsigned char prev[KEY_LEN];
    const void *k, *v;
    size_t klen, vlen;
    uint64_t n = 0, sum = 0;
    int ret;

    TRY(layered_session_open(s->conn, &session));
    TRY(layered_cursor_open(session, "layered:p", &c));
    while ((ret = layered_cursor_next(c)) == 0) {
        TRY(layered_cursor_get(c, &k, &klen, &v, &vlen));
        scan_check("layered", prev, k, klen, n++);
        sum += ((const unsigned char *)v)[0];
    }
    if (ret != LAYERED_NOTFOUND)
        fail("layered", "layered_cursor_next", layered_strerror(ret));
    TRY(layered_session_close(session));
    if (sum == 1)
        fprintf(stderr, " ");
    return n;
}

static void
point_finish(void *arg)
{
    struct point_state *s = arg;

    TRY(layered_close(s->conn));
    free(s);
}

/* ---- batch: layered_batch_* on one table, follower (ingest) ---- */

struct batch_state {
    char home[4096];
    size_t value_len;
    layered_conn *conn;
    layered_session *session;
};

static void *
wbatch_prepare(const struct workload *w)
{
    struct batch_state *s = calloc(1, sizeof(*s));
    layered_config cfg;

    if (s == NULL)
        fail("layered", "calloc", NULL);
    snprintf(s->home, sizeof(s->home), "%s", w->dir);
    s->value_len = w->value_len;
    layered_config_init(&cfg);
    cfg.sync = LAYERED_SYNC_FSYNC;
    TRY(layered_open(s->home, &cfg, &s->conn));
    TRY(layered_session_open(s->conn, &s->session));
    TRY(layered_create(s->session, "layered:b", NULL));
    return s;
}

static double
wbatch_run(void *state, uint64_t first_row, int batches)
{
    struct batch_state *s = state;
    unsigned char key[KEY_LEN];
    layered_batch *b;
    uint64_t start = bench_now_ns(), row = first_row;

    for (int i = 0; i < batches; i++) {
        TRY(layered_batch_open(s->session, &b));
        for (int j = 0; j < BATCH_ROWS; j++, row++) {
            row_key(row, key);
            TRY(layered_batch_put(b, "layered:b", key, KEY_LEN,
                                  row_value(row, s->value_len), s->value_len));
        }
        TRY(layered_batch_commit(b));
        TRY(layered_batch_close(b));
    }
    return (double)(bench_now_ns() - start) / 1e9;
}

static void
wbatch_finish(void *state)
{
    struct batch_state *s = state;

    TRY(layered_close(s->conn));
    free(s);
}

const struct engine engine_layered = {
    .name = "layered",
    .copy_method = "step-up drain (ingest → stable, synced)",
    .copy_prepare = drain_prepare,
    .copy_run = copy_run,
    .copy_finish = drain_finish,
    .many_prepare = many_prepare,
    .many_run = many_run,
    .many_finish = drain_finish,
    .point_prepare = point_prepare,
    .point_read = point_read,
    .point_insert = point_insert,
    .point_scan = point_scan,
    .point_finish = point_finish,
    .batch_method = "layered_batch_commit: one journal record, one fdatasync",
    .batch_prepare = wbatch_prepare,
    .batch_run = wbatch_run,
    .batch_finish = wbatch_finish,
};
