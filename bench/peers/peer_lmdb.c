/*
 * peer_lmdb.c -- LMDB in the side-by-side benchmark.
 *
 * copy: one read transaction on the source environment, one write
 * transaction on a fresh destination environment, every row put with
 * MDB_APPEND (the keys arrive sorted), one commit, which syncs.
 * many: the same with one named database per table, all in one write
 * transaction.  point: MDB_NOSYNC, so a commit writes its pages to the
 * operating system without syncing them, like the other engines' writes
 * in this workload; reads renew their read transaction every POINT_BATCH
 * reads.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lmdb.h>

#include "peers.h"

#define TRY(call)                                                           \
    do {                                                                    \
        int ret_ = (call);                                                  \
        if (ret_ != 0)                                                      \
            fail("lmdb", #call, mdb_strerror(ret_));                        \
    } while (0)

struct copy_state {
    struct workload w;
    MDB_env *src;
    MDB_dbi *src_dbi; /* one per table */
    char dst_path[4096];
};

static size_t
map_size(const struct workload *w)
{
    /* Leaf pages of 3 or more rows at half fill, plus branch pages. */
    return (size_t)w->tables * w->rows * (w->value_len + KEY_LEN + 64) * 3 +
           ((size_t)w->tables << 16) + (256u << 20);
}

static MDB_env *
env_open(const struct workload *w, const char *path, unsigned flags)
{
    MDB_env *env;

    make_dir(path);
    TRY(mdb_env_create(&env));
    TRY(mdb_env_set_mapsize(env, map_size(w)));
    TRY(mdb_env_set_maxdbs(env, (MDB_dbi)w->tables + 1));
    TRY(mdb_env_open(env, path, flags, 0644));
    return env;
}

static void
table_name(char *out, size_t size, int tables, int t)
{
    /* The copy workload uses the main database; many uses named ones. */
    if (tables == 1)
        out[0] = '\0';
    else
        snprintf(out, size, "t%05d", t);
}

static MDB_dbi
dbi_open(MDB_txn *txn, int tables, int t)
{
    char name[32];
    MDB_dbi dbi;

    table_name(name, sizeof(name), tables, t);
    TRY(mdb_dbi_open(txn, name[0] ? name : NULL, MDB_CREATE, &dbi));
    return dbi;
}

static void *
copy_prepare(const struct workload *w)
{
    struct copy_state *s = calloc(1, sizeof(*s));
    char path[4096];
    MDB_txn *txn;
    MDB_val k, v;
    unsigned char key[KEY_LEN];
    uint64_t i;
    int t;

    if (s == NULL || (s->src_dbi = calloc((size_t)w->tables,
                                          sizeof(MDB_dbi))) == NULL)
        fail("lmdb", "calloc", NULL);
    s->w = *w;
    path_join(path, sizeof(path), w->dir, "src");
    path_join(s->dst_path, sizeof(s->dst_path), w->dir, "dst");
    s->src = env_open(w, path, 0);
    /* The source is written in random key order, 10,000 rows a commit. */
    TRY(mdb_txn_begin(s->src, NULL, 0, &txn));
    for (t = 0; t < w->tables; t++)
        s->src_dbi[t] = dbi_open(txn, w->tables, t);
    for (t = 0; t < w->tables; t++)
        for (i = 0; i < w->rows; i++) {
            uint64_t row = (uint64_t)t * w->rows + i;
            if (row > 0 && row % 10000 == 0) {
                TRY(mdb_txn_commit(txn));
                TRY(mdb_txn_begin(s->src, NULL, 0, &txn));
            }
            row_key(row, key);
            k = (MDB_val){KEY_LEN, key};
            v = (MDB_val){w->value_len, (void *)row_value(row, w->value_len)};
            TRY(mdb_put(txn, s->src_dbi[t], &k, &v, 0));
        }
    TRY(mdb_txn_commit(txn));
    return s;
}

/*
 * copy_run --
 *     Copy every table of the source into a fresh environment in one write
 *     transaction with MDB_APPEND; the commit makes it durable.
 */
static double
copy_run(void *arg, int run)
{
    struct copy_state *s = arg;
    MDB_env *dst;
    MDB_txn *rtxn, *wtxn;
    MDB_cursor *rc, *wc;
    MDB_dbi *dst_dbi;
    MDB_val k, v;
    uint64_t t0, copied = 0;
    int t, ret;

    remove_tree(s->dst_path);
    dst = env_open(&s->w, s->dst_path, 0);
    if ((dst_dbi = calloc((size_t)s->w.tables, sizeof(MDB_dbi))) == NULL)
        fail("lmdb", "calloc", NULL);
    /* The destination's (empty) tables exist before the clock starts, as
     * the other engines' do. */
    TRY(mdb_txn_begin(dst, NULL, 0, &wtxn));
    for (t = 0; t < s->w.tables; t++)
        dst_dbi[t] = dbi_open(wtxn, s->w.tables, t);
    TRY(mdb_txn_commit(wtxn));

    t0 = bench_now_ns();
    TRY(mdb_txn_begin(s->src, NULL, MDB_RDONLY, &rtxn));
    TRY(mdb_txn_begin(dst, NULL, 0, &wtxn));
    for (t = 0; t < s->w.tables; t++) {
        TRY(mdb_cursor_open(rtxn, s->src_dbi[t], &rc));
        TRY(mdb_cursor_open(wtxn, dst_dbi[t], &wc));
        for (ret = mdb_cursor_get(rc, &k, &v, MDB_FIRST); ret == 0;
             ret = mdb_cursor_get(rc, &k, &v, MDB_NEXT)) {
            TRY(mdb_cursor_put(wc, &k, &v, MDB_APPEND));
            copied++;
        }
        if (ret != MDB_NOTFOUND)
            fail("lmdb", "mdb_cursor_get", mdb_strerror(ret));
        mdb_cursor_close(wc);
        mdb_cursor_close(rc);
    }
    TRY(mdb_txn_commit(wtxn));
    mdb_txn_abort(rtxn);
    t0 = bench_now_ns() - t0;

    if (copied != s->w.rows * (uint64_t)s->w.tables)
        fail("lmdb", "copy", "copied the wrong number of rows");
    mdb_env_close(dst);
    free(dst_dbi);
    remove_tree(s->dst_path);
    (void)run;
    return t0 / 1e9;
}

static void
copy_finish(void *arg)
{
    struct copy_state *s = arg;

    mdb_env_close(s->src);
    free(s->src_dbi);
    free(s);
}

/* ---- point operations ---- */

struct point_state {
    MDB_env *env;
    MDB_dbi dbi;
    uint64_t rows;
};

static void *
point_prepare(const struct workload *w)
{
    struct point_state *s = calloc(1, sizeof(*s));
    struct workload grown = *w;
    MDB_txn *txn;
    MDB_val k, v;
    unsigned char key[KEY_LEN];
    uint64_t i;

    if (s == NULL)
        fail("lmdb", "calloc", NULL);
    s->rows = w->rows;
    grown.rows = w->rows * 4; /* room for the inserts */
    s->env = env_open(&grown, w->dir, MDB_NOSYNC | MDB_NOTLS);
    TRY(mdb_txn_begin(s->env, NULL, 0, &txn));
    s->dbi = dbi_open(txn, 1, 0);
    for (i = 0; i < w->rows; i++) {
        if (i > 0 && i % 10000 == 0) {
            TRY(mdb_txn_commit(txn));
            TRY(mdb_txn_begin(s->env, NULL, 0, &txn));
        }
        row_key(i, key);
        k = (MDB_val){KEY_LEN, key};
        v = (MDB_val){w->value_len, (void *)row_value(i, w->value_len)};
        TRY(mdb_put(txn, s->dbi, &k, &v, 0));
    }
    TRY(mdb_txn_commit(txn));
    TRY(mdb_env_sync(s->env, 1));
    return s;
}

static void
point_read(struct point_job *job)
{
    struct point_state *s = job->state;
    MDB_txn *txn;
    MDB_val k, v;
    unsigned char key[KEY_LEN];
    uint64_t sum = 0;
    int i;

    TRY(mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn));
    while (bench_now_ns() < job->deadline) {
        for (i = 0; i < POINT_BATCH; i++) {
            row_key(rand_next(&job->seed) % s->rows, key);
            k = (MDB_val){KEY_LEN, key};
            TRY(mdb_get(txn, s->dbi, &k, &v));
            sum += ((const unsigned char *)v.mv_data)[0];
            job->ops++;
        }
        mdb_txn_reset(txn);
        TRY(mdb_txn_renew(txn));
    }
    mdb_txn_abort(txn);
    if (sum == 1)
        fprintf(stderr, " ");
}

static void
point_insert(struct point_job *job)
{
    struct point_state *s = job->state;
    MDB_txn *txn;
    MDB_val k, v;
    unsigned char key[KEY_LEN];
    int i;

    while (bench_now_ns() < job->deadline)
        for (i = 0; i < POINT_BATCH; i++) {
            uint64_t row = job->next_new++;
            row_key(row, key);
            k = (MDB_val){KEY_LEN, key};
            v = (MDB_val){100, (void *)row_value(row, 100)};
            TRY(mdb_txn_begin(s->env, NULL, 0, &txn));
            TRY(mdb_put(txn, s->dbi, &k, &v, 0));
            TRY(mdb_txn_commit(txn));
            job->ops++;
        }
}

static uint64_t
point_scan(void *arg)
{
    struct point_state *s = arg;
    MDB_txn *txn;
    MDB_cursor *c;
    MDB_val k, v;
    unsigned char prev[KEY_LEN];
    uint64_t n = 0, sum = 0;
    int ret;

    TRY(mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn));
    TRY(mdb_cursor_open(txn, s->dbi, &c));
    for (ret = mdb_cursor_get(c, &k, &v, MDB_FIRST); ret == 0;
         ret = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        scan_check("lmdb", prev, k.mv_data, k.mv_size, n++);
        sum += ((const unsigned char *)v.mv_data)[0];
    }
    if (ret != MDB_NOTFOUND)
        fail("lmdb", "mdb_cursor_get", mdb_strerror(ret));
    mdb_cursor_close(c);
    mdb_txn_abort(txn);
    if (sum == 1)
        fprintf(stderr, " ");
    return n;
}

static void
point_finish(void *arg)
{
    struct point_state *s = arg;

    mdb_env_close(s->env);
    free(s);
}

/* ---- batch: one write transaction per batch, synced at commit ---- */

struct batch_state {
    char path[4096];
    MDB_env *env;
    MDB_dbi dbi;
    size_t value_len;
};

static void *
wbatch_prepare(const struct workload *w)
{
    struct batch_state *s = calloc(1, sizeof(*s));
    struct workload sized = *w;
    MDB_txn *txn;

    if (s == NULL)
        fail("lmdb", "calloc", NULL);
    s->value_len = w->value_len;
    sized.rows = 1000000; /* room for the runs' rows */
    path_join(s->path, sizeof(s->path), w->dir, "batch");
    s->env = env_open(&sized, s->path, 0);
    TRY(mdb_txn_begin(s->env, NULL, 0, &txn));
    s->dbi = dbi_open(txn, 1, 0);
    TRY(mdb_txn_commit(txn));
    return s;
}

static double
wbatch_run(void *state, uint64_t first_row, int batches)
{
    struct batch_state *s = state;
    unsigned char key[KEY_LEN];
    MDB_txn *txn;
    MDB_val k, v;
    uint64_t start = bench_now_ns(), row = first_row;

    for (int i = 0; i < batches; i++) {
        TRY(mdb_txn_begin(s->env, NULL, 0, &txn));
        for (int j = 0; j < BATCH_ROWS; j++, row++) {
            row_key(row, key);
            k.mv_data = key;
            k.mv_size = KEY_LEN;
            v.mv_data = (void *)row_value(row, s->value_len);
            v.mv_size = s->value_len;
            TRY(mdb_put(txn, s->dbi, &k, &v, 0));
        }
        TRY(mdb_txn_commit(txn));
    }
    return (double)(bench_now_ns() - start) / 1e9;
}

static void
wbatch_finish(void *state)
{
    struct batch_state *s = state;

    mdb_env_close(s->env);
    free(s);
}

const struct engine engine_lmdb = {
    .name = "lmdb",
    .copy_method = "MDB_APPEND, one txn, commit syncs",
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
    .batch_method = "one write txn per batch, commit syncs",
    .batch_prepare = wbatch_prepare,
    .batch_run = wbatch_run,
    .batch_finish = wbatch_finish,
};
