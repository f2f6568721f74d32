/*
 * peer_rocksdb.c -- RocksDB (through its C API) in the side-by-side
 * benchmark, with two copy methods:
 *
 *   rocksdb        write batches of about 1 MiB into the write-ahead log
 *                  and memtables, the last one written with sync, which
 *                  syncs the log: the general-purpose path.
 *   rocksdb-sst    an SstFileWriter fed the rows in key order (Finish syncs
 *                  the file), then IngestExternalFile with move_files: the
 *                  bulk-load path.  Honest for this workload because the
 *                  source hands out its rows sorted, as every engine's does,
 *                  and the ingested file is as durable as a flushed one.
 *
 * Tables are column families.  Compression is off (the values are random
 * bytes, and no other engine compresses).  point: the write-ahead log is
 * written on every put, without a sync.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rocksdb/c.h>

#include "peers.h"

#define CHECK(what)                                                         \
    do {                                                                    \
        if (err != NULL)                                                    \
            fail("rocksdb", what, err);                                     \
    } while (0)

#define BATCH_BYTES (1u << 20)

static rocksdb_cache_t *block_cache;

static rocksdb_options_t *
options_new(int tables)
{
    rocksdb_options_t *o = rocksdb_options_create();
    rocksdb_block_based_table_options_t *t =
        rocksdb_block_based_options_create();

    if (block_cache == NULL)
        block_cache = rocksdb_cache_create_lru(256u << 20);
    rocksdb_block_based_options_set_block_cache(t, block_cache);
    rocksdb_options_set_block_based_table_factory(o, t);
    rocksdb_block_based_options_destroy(t);
    rocksdb_options_set_create_if_missing(o, 1);
    rocksdb_options_set_compression(o, rocksdb_no_compression);
    rocksdb_options_set_max_open_files(o, 1000);
    if (tables > 1) {
        /* Every column family has its own memtable: keep each small. */
        rocksdb_options_set_write_buffer_size(o, 1u << 20);
        rocksdb_options_set_arena_block_size(o, 64u << 10);
    }
    return o;
}

struct db {
    rocksdb_t *db;
    rocksdb_column_family_handle_t **cf; /* tables > 1: one per table */
    int tables;
};

/* Open a fresh database at `path` with `tables` tables (empty). */
static void
db_create(struct db *d, rocksdb_options_t *o, const char *path, int tables)
{
    char *err = NULL, name[32];
    int t;

    remove_tree(path);
    d->tables = tables;
    d->db = rocksdb_open(o, path, &err);
    CHECK("rocksdb_open");
    d->cf = calloc((size_t)tables, sizeof(*d->cf));
    if (d->cf == NULL)
        fail("rocksdb", "calloc", NULL);
    if (tables == 1)
        return;
    for (t = 0; t < tables; t++) {
        snprintf(name, sizeof(name), "t%05d", t);
        d->cf[t] = rocksdb_create_column_family(d->db, o, name, &err);
        CHECK("rocksdb_create_column_family");
    }
}

static void
db_close(struct db *d)
{
    int t;

    for (t = 0; t < d->tables; t++)
        if (d->cf[t] != NULL)
            rocksdb_column_family_handle_destroy(d->cf[t]);
    rocksdb_close(d->db);
    free(d->cf);
}

static void
batch_put(rocksdb_writebatch_t *b, struct db *d, int t, const char *k,
          size_t klen, const char *v, size_t vlen)
{
    if (d->tables == 1)
        rocksdb_writebatch_put(b, k, klen, v, vlen);
    else
        rocksdb_writebatch_put_cf(b, d->cf[t], k, klen, v, vlen);
}

struct copy_state {
    struct workload w;
    rocksdb_options_t *options;
    struct db src;
    char dst_path[4096], sst_path[4096];
};

static void *
copy_prepare(const struct workload *w)
{
    struct copy_state *s = calloc(1, sizeof(*s));
    rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    rocksdb_flushoptions_t *fo = rocksdb_flushoptions_create();
    unsigned char key[KEY_LEN];
    char path[4096], *err = NULL;
    size_t batch = 0;
    uint64_t i;
    int t;

    if (s == NULL)
        fail("rocksdb", "calloc", NULL);
    s->w = *w;
    s->options = options_new(w->tables);
    path_join(path, sizeof(path), w->dir, "src");
    path_join(s->dst_path, sizeof(s->dst_path), w->dir, "dst");
    path_join(s->sst_path, sizeof(s->sst_path), w->dir, "ingest");
    db_create(&s->src, s->options, path, w->tables);
    for (t = 0; t < w->tables; t++)
        for (i = 0; i < w->rows; i++) {
            uint64_t row = (uint64_t)t * w->rows + i;
            row_key(row, key);
            batch_put(b, &s->src, t, (const char *)key, KEY_LEN,
                      (const char *)row_value(row, w->value_len),
                      w->value_len);
            if ((batch += KEY_LEN + w->value_len) >= BATCH_BYTES) {
                rocksdb_write(s->src.db, wo, b, &err);
                CHECK("rocksdb_write");
                rocksdb_writebatch_clear(b);
                batch = 0;
            }
        }
    rocksdb_writeoptions_set_sync(wo, 1);
    rocksdb_write(s->src.db, wo, b, &err);
    CHECK("rocksdb_write");
    rocksdb_flushoptions_set_wait(fo, 1);
    if (w->tables == 1) {
        rocksdb_flush(s->src.db, fo, &err);
        CHECK("rocksdb_flush");
    }
    rocksdb_flushoptions_destroy(fo);
    rocksdb_writebatch_destroy(b);
    rocksdb_writeoptions_destroy(wo);
    return s;
}

/*
 * batch_copy --
 *     Copy every table in key order in ~1 MiB write batches; the last batch
 *     is written with sync, which syncs the write-ahead log.
 */
static uint64_t
batch_copy(struct copy_state *s, struct db *dst)
{
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    char *err = NULL;
    size_t batch = 0;
    uint64_t copied = 0;
    int t;

    rocksdb_readoptions_set_fill_cache(ro, 0);
    for (t = 0; t < s->w.tables; t++) {
        rocksdb_iterator_t *it =
            s->w.tables == 1
                ? rocksdb_create_iterator(s->src.db, ro)
                : rocksdb_create_iterator_cf(s->src.db, ro, s->src.cf[t]);
        for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it);
             rocksdb_iter_next(it)) {
            size_t klen, vlen;
            const char *k = rocksdb_iter_key(it, &klen);
            const char *v = rocksdb_iter_value(it, &vlen);
            batch_put(b, dst, t, k, klen, v, vlen);
            copied++;
            if ((batch += klen + vlen) >= BATCH_BYTES) {
                rocksdb_write(dst->db, wo, b, &err);
                CHECK("rocksdb_write");
                rocksdb_writebatch_clear(b);
                batch = 0;
            }
        }
        rocksdb_iter_get_error(it, &err);
        CHECK("rocksdb_iter");
        rocksdb_iter_destroy(it);
    }
    rocksdb_writeoptions_set_sync(wo, 1);
    rocksdb_write(dst->db, wo, b, &err);
    CHECK("rocksdb_write (sync)");
    rocksdb_writebatch_destroy(b);
    rocksdb_writeoptions_destroy(wo);
    rocksdb_readoptions_destroy(ro);
    return copied;
}

/*
 * sst_copy --
 *     Write the (one) table's rows in key order into an SST file, which
 *     Finish syncs, and move it into the destination.
 */
static uint64_t
sst_copy(struct copy_state *s, struct db *dst)
{
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_envoptions_t *eo = rocksdb_envoptions_create();
    rocksdb_sstfilewriter_t *wr = rocksdb_sstfilewriter_create(eo, s->options);
    rocksdb_ingestexternalfileoptions_t *io =
        rocksdb_ingestexternalfileoptions_create();
    rocksdb_iterator_t *it;
    const char *files[1] = {s->sst_path};
    char *err = NULL;
    uint64_t copied = 0;

    rocksdb_readoptions_set_fill_cache(ro, 0);
    rocksdb_sstfilewriter_open(wr, s->sst_path, &err);
    CHECK("rocksdb_sstfilewriter_open");
    it = rocksdb_create_iterator(s->src.db, ro);
    for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it);
         rocksdb_iter_next(it)) {
        size_t klen, vlen;
        const char *k = rocksdb_iter_key(it, &klen);
        const char *v = rocksdb_iter_value(it, &vlen);
        rocksdb_sstfilewriter_put(wr, k, klen, v, vlen, &err);
        CHECK("rocksdb_sstfilewriter_put");
        copied++;
    }
    rocksdb_iter_get_error(it, &err);
    CHECK("rocksdb_iter");
    rocksdb_iter_destroy(it);
    rocksdb_sstfilewriter_finish(wr, &err);
    CHECK("rocksdb_sstfilewriter_finish");
    rocksdb_ingestexternalfileoptions_set_move_files(io, 1);
    rocksdb_ingest_external_file(dst->db, files, 1, io, &err);
    CHECK("rocksdb_ingest_external_file");
    rocksdb_ingestexternalfileoptions_destroy(io);
    rocksdb_sstfilewriter_destroy(wr);
    rocksdb_envoptions_destroy(eo);
    rocksdb_readoptions_destroy(ro);
    return copied;
}

static double
copy_run_with(struct copy_state *s,
              uint64_t (*copy)(struct copy_state *, struct db *))
{
    struct db dst;
    uint64_t t0, copied;

    db_create(&dst, s->options, s->dst_path, s->w.tables);
    t0 = bench_now_ns();
    copied = copy(s, &dst);
    t0 = bench_now_ns() - t0;
    if (copied != s->w.rows * (uint64_t)s->w.tables)
        fail("rocksdb", "copy", "copied the wrong number of rows");
    db_close(&dst);
    remove_tree(s->dst_path);
    remove_tree(s->sst_path);
    return t0 / 1e9;
}

static double
batch_run(void *arg, int run)
{
    (void)run;
    return copy_run_with(arg, batch_copy);
}

static double
sst_run(void *arg, int run)
{
    (void)run;
    return copy_run_with(arg, sst_copy);
}

static void
copy_finish(void *arg)
{
    struct copy_state *s = arg;

    db_close(&s->src);
    rocksdb_options_destroy(s->options);
    free(s);
}

/* ---- point operations ---- */

struct point_state {
    rocksdb_options_t *options;
    struct db db;
    uint64_t rows;
};

static void *
point_prepare(const struct workload *w)
{
    struct point_state *s = calloc(1, sizeof(*s));
    rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
    rocksdb_flushoptions_t *fo = rocksdb_flushoptions_create();
    unsigned char key[KEY_LEN];
    char path[4096], *err = NULL;
    uint64_t i;

    if (s == NULL)
        fail("rocksdb", "calloc", NULL);
    s->rows = w->rows;
    s->options = options_new(1);
    path_join(path, sizeof(path), w->dir, "db");
    db_create(&s->db, s->options, path, 1);
    for (i = 0; i < w->rows; i++) {
        row_key(i, key);
        rocksdb_put(s->db.db, wo, (const char *)key, KEY_LEN,
                    (const char *)row_value(i, w->value_len), w->value_len,
                    &err);
        CHECK("rocksdb_put");
    }
    rocksdb_flushoptions_set_wait(fo, 1);
    rocksdb_flush(s->db.db, fo, &err);
    CHECK("rocksdb_flush");
    rocksdb_flushoptions_destroy(fo);
    rocksdb_writeoptions_destroy(wo);
    return s;
}

static void
point_read(struct point_job *job)
{
    struct point_state *s = job->state;
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    unsigned char key[KEY_LEN];
    char *err = NULL;
    uint64_t sum = 0;
    int i;

    while (bench_now_ns() < job->deadline)
        for (i = 0; i < POINT_BATCH; i++) {
            rocksdb_pinnableslice_t *p;
            const char *v;
            size_t vlen;
            row_key(rand_next(&job->seed) % s->rows, key);
            p = rocksdb_get_pinned(s->db.db, ro, (const char *)key, KEY_LEN,
                                   &err);
            CHECK("rocksdb_get_pinned");
            if (p == NULL)
                fail("rocksdb", "rocksdb_get_pinned", "key not found");
            v = rocksdb_pinnableslice_value(p, &vlen);
            sum += (unsigned char)v[0];
            rocksdb_pinnableslice_destroy(p);
            job->ops++;
        }
    rocksdb_readoptions_destroy(ro);
    if (sum == 1)
        fprintf(stderr, " ");
}

static void
point_insert(struct point_job *job)
{
    struct point_state *s = job->state;
    rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
    unsigned char key[KEY_LEN];
    char *err = NULL;
    int i;

    while (bench_now_ns() < job->deadline)
        for (i = 0; i < POINT_BATCH; i++) {
            uint64_t row = job->next_new++;
            row_key(row, key);
            rocksdb_put(s->db.db, wo, (const char *)key, KEY_LEN,
                        (const char *)row_value(row, 100), 100, &err);
            CHECK("rocksdb_put");
            job->ops++;
        }
    rocksdb_writeoptions_destroy(wo);
}

static uint64_t
point_scan(void *arg)
{
    struct point_state *s = arg;
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_iterator_t *it = rocksdb_create_iterator(s->db.db, ro);
    unsigned char prev[KEY_LEN];
    char *err = NULL;
    uint64_t n = 0, sum = 0;

    for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it);
         rocksdb_iter_next(it)) {
        size_t klen, vlen;
        const char *k = rocksdb_iter_key(it, &klen);
        const char *v = rocksdb_iter_value(it, &vlen);
        scan_check("rocksdb", prev, k, klen, n++);
        sum += (unsigned char)v[0];
    }
    rocksdb_iter_get_error(it, &err);
    CHECK("rocksdb_iter");
    rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
    if (sum == 1)
        fprintf(stderr, " ");
    return n;
}

static void
point_finish(void *arg)
{
    struct point_state *s = arg;

    db_close(&s->db);
    rocksdb_options_destroy(s->options);
    free(s);
}

/*
 * Thousands of column families are beyond what RocksDB is built for: each
 * has its own memtable and files, and creating one rewrites the options
 * file, so creating n of them takes time quadratic in n (1,000 took over
 * four minutes here).  The many-tables workload runs it with 100.
 */
/* ---- batch: one WriteBatch per batch, written with sync ---- */

struct batch_state {
    struct db d;
    rocksdb_options_t *options;
    rocksdb_writeoptions_t *wo;
    size_t value_len;
};

static void *
wbatch_prepare(const struct workload *w)
{
    struct batch_state *s = calloc(1, sizeof(*s));

    if (s == NULL)
        fail("rocksdb", "calloc", NULL);
    s->value_len = w->value_len;
    s->options = options_new(1);
    db_create(&s->d, s->options, w->dir, 1);
    s->wo = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(s->wo, 1);
    return s;
}

static double
wbatch_run(void *state, uint64_t first_row, int batches)
{
    struct batch_state *s = state;
    unsigned char key[KEY_LEN];
    rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
    uint64_t start = bench_now_ns(), row = first_row;
    char *err = NULL;

    for (int i = 0; i < batches; i++) {
        rocksdb_writebatch_clear(wb);
        for (int j = 0; j < BATCH_ROWS; j++, row++) {
            row_key(row, key);
            rocksdb_writebatch_put(wb, (const char *)key, KEY_LEN,
                                   (const char *)row_value(row, s->value_len),
                                   s->value_len);
        }
        rocksdb_write(s->d.db, s->wo, wb, &err);
        CHECK("rocksdb_write");
    }
    rocksdb_writebatch_destroy(wb);
    return (double)(bench_now_ns() - start) / 1e9;
}

static void
wbatch_finish(void *state)
{
    struct batch_state *s = state;

    rocksdb_writeoptions_destroy(s->wo);
    db_close(&s->d);
    rocksdb_options_destroy(s->options);
    free(s);
}

const struct engine engine_rocksdb_batch = {
    .name = "rocksdb",
    .copy_method = "1 MiB write batches, WAL synced by the last",
    .max_tables = 100,
    .copy_prepare = copy_prepare,
    .copy_run = batch_run,
    .copy_finish = copy_finish,
    .many_prepare = copy_prepare,
    .many_run = batch_run,
    .many_finish = copy_finish,
    .point_prepare = point_prepare,
    .point_read = point_read,
    .point_insert = point_insert,
    .point_scan = point_scan,
    .point_finish = point_finish,
    .batch_method = "WriteBatch, written with sync",
    .batch_prepare = wbatch_prepare,
    .batch_run = wbatch_run,
    .batch_finish = wbatch_finish,
};

const struct engine engine_rocksdb_sst = {
    .name = "rocksdb-sst",
    .copy_method = "SstFileWriter (synced) + IngestExternalFile",
    .copy_prepare = copy_prepare,
    .copy_run = sst_run,
    .copy_finish = copy_finish,
};
