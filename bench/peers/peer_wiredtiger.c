/*
 * peer_wiredtiger.c -- WiredTiger in the side-by-side benchmark.
 *
 * copy: a cursor on the source table, a bulk cursor on a freshly created
 * destination table (the bulk-load path: sorted rows straight into pages),
 * then a checkpoint, which writes and syncs the file and the metadata.
 * The copy tables are not logged (checkpoint-level durability).
 * many: the same, one bulk cursor per table, one checkpoint at the end.
 * point: a logged table, transaction_sync method "none": each commit's log
 * record is written to the operating system without a sync.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wiredtiger.h>

#include "peers.h"

#define TRY(call)                                                           \
    do {                                                                    \
        int ret_ = (call);                                                  \
        if (ret_ != 0)                                                      \
            fail("wiredtiger", #call, wiredtiger_strerror(ret_));           \
    } while (0)

#define TABLE_CONFIG "key_format=u,value_format=u"

struct copy_state {
    struct workload w;
    WT_CONNECTION *conn;
    WT_SESSION *session;
};

static WT_CONNECTION *
conn_open(const char *home, const char *extra)
{
    WT_CONNECTION *conn;
    char config[512];

    snprintf(config, sizeof(config),
             "create,cache_size=512MB,session_max=64,statistics=(none),%s",
             extra);
    TRY(wiredtiger_open(home, NULL, config, &conn));
    return conn;
}

static void
insert_rows(WT_CURSOR *c, uint64_t first, uint64_t rows, size_t value_len)
{
    unsigned char key[KEY_LEN];
    WT_ITEM k, v;
    uint64_t i;

    for (i = 0; i < rows; i++) {
        row_key(first + i, key);
        k = (WT_ITEM){.data = key, .size = KEY_LEN};
        v = (WT_ITEM){.data = row_value(first + i, value_len),
                      .size = value_len};
        c->set_key(c, &k);
        c->set_value(c, &v);
        TRY(c->insert(c));
    }
}

/* Load rows in transactions of 10,000 rows, which fit in the cache. */
static void
load_rows(WT_SESSION *session, WT_CURSOR *c, uint64_t first, uint64_t rows,
          size_t value_len)
{
    uint64_t i, n;

    for (i = 0; i < rows; i += n) {
        n = rows - i < 10000 ? rows - i : 10000;
        TRY(session->begin_transaction(session, NULL));
        insert_rows(c, first + i, n, value_len);
        TRY(session->commit_transaction(session, NULL));
    }
}

static void *
copy_prepare(const struct workload *w)
{
    struct copy_state *s = calloc(1, sizeof(*s));
    WT_CURSOR *c;
    char uri[64];
    int t;

    if (s == NULL)
        fail("wiredtiger", "calloc", NULL);
    s->w = *w;
    s->conn = conn_open(w->dir, "log=(enabled=false)");
    TRY(s->conn->open_session(s->conn, NULL, NULL, &s->session));
    for (t = 0; t < w->tables; t++) {
        snprintf(uri, sizeof(uri), "table:s%05d", t);
        TRY(s->session->create(s->session, uri, TABLE_CONFIG));
        TRY(s->session->open_cursor(s->session, uri, NULL, NULL, &c));
        load_rows(s->session, c, (uint64_t)t * w->rows, w->rows,
                  w->value_len);
        TRY(c->close(c));
    }
    TRY(s->session->checkpoint(s->session, NULL));
    return s;
}

/*
 * copy_run --
 *     Create the destination tables (untimed), then bulk-load each from its
 *     source in key order and checkpoint.
 */
static double
copy_run(void *arg, int run)
{
    struct copy_state *s = arg;
    WT_SESSION *session = s->session;
    WT_CURSOR *src, *dst;
    WT_ITEM k, v;
    char uri[64];
    uint64_t t0, copied = 0;
    int t, ret;

    for (t = 0; t < s->w.tables; t++) {
        snprintf(uri, sizeof(uri), "table:d%05d", t);
        TRY(session->create(session, uri, TABLE_CONFIG));
    }
    TRY(session->checkpoint(session, NULL));

    t0 = bench_now_ns();
    for (t = 0; t < s->w.tables; t++) {
        snprintf(uri, sizeof(uri), "table:s%05d", t);
        TRY(session->open_cursor(session, uri, NULL, NULL, &src));
        snprintf(uri, sizeof(uri), "table:d%05d", t);
        TRY(session->open_cursor(session, uri, NULL, "bulk", &dst));
        while ((ret = src->next(src)) == 0) {
            TRY(src->get_key(src, &k));
            TRY(src->get_value(src, &v));
            dst->set_key(dst, &k);
            dst->set_value(dst, &v);
            TRY(dst->insert(dst));
            copied++;
        }
        if (ret != WT_NOTFOUND)
            fail("wiredtiger", "next", wiredtiger_strerror(ret));
        TRY(dst->close(dst));
        TRY(src->close(src));
    }
    TRY(session->checkpoint(session, NULL));
    t0 = bench_now_ns() - t0;

    if (copied != s->w.rows * (uint64_t)s->w.tables)
        fail("wiredtiger", "copy", "copied the wrong number of rows");
    for (t = 0; t < s->w.tables; t++) {
        snprintf(uri, sizeof(uri), "table:d%05d", t);
        TRY(session->drop(session, uri, NULL));
    }
    (void)run;
    return t0 / 1e9;
}

static void
copy_finish(void *arg)
{
    struct copy_state *s = arg;

    TRY(s->conn->close(s->conn, NULL));
    free(s);
}

/* ---- point operations ---- */

struct point_state {
    WT_CONNECTION *conn;
    uint64_t rows;
};

static void *
point_prepare(const struct workload *w)
{
    struct point_state *s = calloc(1, sizeof(*s));
    WT_SESSION *session;
    WT_CURSOR *c;

    if (s == NULL)
        fail("wiredtiger", "calloc", NULL);
    s->rows = w->rows;
    s->conn = conn_open(w->dir, "log=(enabled=true),"
                                "transaction_sync=(enabled=true,method=none)");
    TRY(s->conn->open_session(s->conn, NULL, NULL, &session));
    TRY(session->create(session, "table:p", TABLE_CONFIG));
    TRY(session->open_cursor(session, "table:p", NULL, NULL, &c));
    load_rows(session, c, 0, w->rows, w->value_len);
    TRY(c->close(c));
    TRY(session->checkpoint(session, NULL));
    TRY(session->close(session, NULL));
    return s;
}

static void
point_read(struct point_job *job)
{
    struct point_state *s = job->state;
    WT_SESSION *session;
    WT_CURSOR *c;
    WT_ITEM k, v;
    unsigned char key[KEY_LEN];
    uint64_t sum = 0;
    int i;

    TRY(s->conn->open_session(s->conn, NULL, NULL, &session));
    TRY(session->open_cursor(session, "table:p", NULL, NULL, &c));
    while (bench_now_ns() < job->deadline)
        for (i = 0; i < POINT_BATCH; i++) {
            row_key(rand_next(&job->seed) % s->rows, key);
            k = (WT_ITEM){.data = key, .size = KEY_LEN};
            c->set_key(c, &k);
            TRY(c->search(c));
            TRY(c->get_value(c, &v));
            sum += ((const unsigned char *)v.data)[0];
            TRY(c->reset(c));
            job->ops++;
        }
    TRY(session->close(session, NULL));
    if (sum == 1)
        fprintf(stderr, " ");
}

static void
point_insert(struct point_job *job)
{
    struct point_state *s = job->state;
    WT_SESSION *session;
    WT_CURSOR *c;
    int i;

    TRY(s->conn->open_session(s->conn, NULL, NULL, &session));
    TRY(session->open_cursor(session, "table:p", NULL, NULL, &c));
    while (bench_now_ns() < job->deadline)
        for (i = 0; i < POINT_BATCH; i++) {
            insert_rows(c, job->next_new++, 1, 100);
            job->ops++;
        }
    TRY(session->close(session, NULL));
}

static uint64_t
point_scan(void *arg)
{
    struct point_state *s = arg;
    WT_SESSION *session;
    WT_CURSOR *c;
    WT_ITEM k, v;
    unsigned char prev[KEY_LEN];
    uint64_t n = 0, sum = 0;
    int ret;

    TRY(s->conn->open_session(s->conn, NULL, NULL, &session));
    TRY(session->open_cursor(session, "table:p", NULL, NULL, &c));
    while ((ret = c->next(c)) == 0) {
        TRY(c->get_key(c, &k));
        TRY(c->get_value(c, &v));
        scan_check("wiredtiger", prev, k.data, k.size, n++);
        sum += ((const unsigned char *)v.data)[0];
    }
    if (ret != WT_NOTFOUND)
        fail("wiredtiger", "next", wiredtiger_strerror(ret));
    TRY(session->close(session, NULL));
    if (sum == 1)
        fprintf(stderr, " ");
    return n;
}

static void
point_finish(void *arg)
{
    struct point_state *s = arg;

    TRY(s->conn->close(s->conn, NULL));
    free(s);
}

/*
 * Creating a WiredTiger table takes milliseconds (a file and a metadata
 * update), and the bulk path needs fresh tables every run, so the many-
 * tables workload runs it with fewer tables.
 */
const struct engine engine_wiredtiger = {
    .name = "wiredtiger",
    .copy_method = "bulk cursor, then checkpoint",
    .max_tables = 500,
    .copy_prepare = copy_prepare,
    .copy_run = copy_run,
    .copy_finish = copy_finish,
    .many_prepare = copy_prepare,
    .many_run = copy_run,
    .many_finish = copy_finish,
    .point_prepare = point_prepare,
    .point_read = point_read,
    .point_insert = point_insert,
    .point_scan = point_scan,
    .point_finish = point_finish,
};
