/*
 * peer_layered.c -- Layered in the side-by-side benchmark.
 *
 * copy and many are real step-up drains: as follower, the rows are written
 * into the ingest constituents and checkpointed (untimed); the timed part
 * is layered_step_up, which copies every ingest into its stable
 * constituent, syncs it and clears the ingest.  Each run uses a fresh home
 * so the stable constituents start empty, as the peers' destinations do.
 */
#include <errno.h>
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

/*
 * drain_run --
 *     Create the tables in a fresh home, fill their ingests in random key
 *     order, checkpoint, then time the step-up.
 */
static double
drain_run(void *arg, int run)
{
    struct drain_state *s = arg;
    layered_config cfg;
    layered_conn *conn;
    layered_session *session;
    layered_cursor *c;
    layered_drain_stats ds;
    unsigned char key[KEY_LEN];
    char uri[64];
    uint64_t t0, i;
    int t;

    remove_tree(s->home);
    layered_config_init(&cfg);
    cfg.sync = LAYERED_SYNC_NONE; /* loading; the drain syncs regardless */
    TRY(layered_open(s->home, &cfg, &conn));
    TRY(layered_session_open(conn, &session));
    for (t = 0; t < s->w.tables; t++) {
        snprintf(uri, sizeof(uri), "layered:t%05d", t);
        TRY(layered_create(session, uri, NULL));
        TRY(layered_cursor_open(session, uri, &c));
        for (i = 0; i < s->w.rows; i++) {
            uint64_t row = (uint64_t)t * s->w.rows + i;
            row_key(row, key);
            TRY(layered_cursor_insert(c, key, KEY_LEN,
                                      row_value(row, s->w.value_len),
                                      s->w.value_len));
        }
        TRY(layered_cursor_close(c));
    }
    TRY(layered_checkpoint(session));
    t0 = bench_now_ns();
    TRY(layered_step_up(conn, &ds));
    t0 = bench_now_ns() - t0;
    if (ds.rows != s->w.rows * (uint64_t)s->w.tables ||
        ds.tables_drained != (uint64_t)s->w.tables)
        fail("layered", "step-up", "drained the wrong number of rows");
    TRY(layered_session_close(session));
    TRY(layered_close(conn));
    (void)run;
    return t0 / 1e9;
}

static void
drain_finish(void *arg)
{
    struct drain_state *s = arg;

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

static void
point_finish(void *arg)
{
    struct point_state *s = arg;

    TRY(layered_close(s->conn));
    free(s);
}

const struct engine engine_layered = {
    .name = "layered",
    .copy_method = "step-up drain (ingest → stable, synced)",
    .copy_prepare = drain_prepare,
    .copy_run = drain_run,
    .copy_finish = drain_finish,
    .many_prepare = drain_prepare,
    .many_run = drain_run,
    .many_finish = drain_finish,
    .point_prepare = point_prepare,
    .point_read = point_read,
    .point_insert = point_insert,
    .point_finish = point_finish,
};
