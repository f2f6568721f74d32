/*
 * peer_sqlite.c -- SQLite in the side-by-side benchmark.
 *
 * Tables are WITHOUT ROWID tables keyed by a BLOB (so rows sort by memcmp,
 * as in every engine here), in 8 KiB pages so a 1 KiB row stays on its leaf
 * page.  copy: a fresh destination database file with the source attached,
 * "INSERT INTO t SELECT * FROM src.t" in one transaction (SQLite copies
 * the records without decoding them when the tables match), rollback
 * journal, synchronous=FULL: the commit syncs.  many: one INSERT ... SELECT
 * per table, all in one transaction.  point: WAL mode with synchronous=OFF,
 * so each autocommit insert writes its WAL frames to the operating system
 * without a sync; one connection per thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "peers.h"

static void
exec(sqlite3 *db, const char *sql)
{
    char *err = NULL;

    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
        fail("sqlite", sql, err);
}

static sqlite3 *
db_open_flags(const char *path, const char *pragmas, int mutex_flag)
{
    sqlite3 *db;

    if (sqlite3_open_v2(path, &db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                            mutex_flag,
                        NULL) != SQLITE_OK)
        fail("sqlite", "sqlite3_open_v2", sqlite3_errmsg(db));
    sqlite3_busy_timeout(db, 60000);
    exec(db, "PRAGMA page_size=8192; PRAGMA cache_size=-262144;");
    exec(db, pragmas);
    return db;
}

static sqlite3 *
db_open(const char *path, const char *pragmas)
{
    return db_open_flags(path, pragmas, SQLITE_OPEN_NOMUTEX);
}

static sqlite3_stmt *
prepare(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *stmt;

    if (sqlite3_prepare_v2(db, sql, -1, &stmt, NULL) != SQLITE_OK)
        fail("sqlite", sql, sqlite3_errmsg(db));
    return stmt;
}

static void
step_done(sqlite3 *db, sqlite3_stmt *stmt)
{
    if (sqlite3_step(stmt) != SQLITE_DONE)
        fail("sqlite", sqlite3_sql(stmt), sqlite3_errmsg(db));
    sqlite3_reset(stmt);
}

static void
create_tables(sqlite3 *db, int tables)
{
    char sql[128];
    int t;

    exec(db, "BEGIN");
    for (t = 0; t < tables; t++) {
        snprintf(sql, sizeof(sql),
                 "CREATE TABLE t%05d(k BLOB PRIMARY KEY, v BLOB) "
                 "WITHOUT ROWID",
                 t);
        exec(db, sql);
    }
    exec(db, "COMMIT");
}

static void
insert_rows(sqlite3 *db, sqlite3_stmt *ins, uint64_t first, uint64_t rows,
            size_t value_len)
{
    unsigned char key[KEY_LEN];
    uint64_t i;

    for (i = 0; i < rows; i++) {
        row_key(first + i, key);
        sqlite3_bind_blob(ins, 1, key, KEY_LEN, SQLITE_TRANSIENT);
        sqlite3_bind_blob(ins, 2, row_value(first + i, value_len),
                          (int)value_len, SQLITE_STATIC);
        step_done(db, ins);
    }
}

struct copy_state {
    struct workload w;
    char src_path[4096], dst_path[4096];
};

static void *
copy_prepare(const struct workload *w)
{
    struct copy_state *s = calloc(1, sizeof(*s));
    sqlite3 *db;
    char sql[128];
    int t;

    if (s == NULL)
        fail("sqlite", "calloc", NULL);
    s->w = *w;
    path_join(s->src_path, sizeof(s->src_path), w->dir, "src.db");
    path_join(s->dst_path, sizeof(s->dst_path), w->dir, "dst.db");
    db = db_open(s->src_path, "PRAGMA synchronous=FULL");
    create_tables(db, w->tables);
    exec(db, "BEGIN");
    for (t = 0; t < w->tables; t++) {
        sqlite3_stmt *ins;
        snprintf(sql, sizeof(sql), "INSERT INTO t%05d VALUES(?, ?)", t);
        ins = prepare(db, sql);
        insert_rows(db, ins, (uint64_t)t * w->rows, w->rows, w->value_len);
        sqlite3_finalize(ins);
    }
    exec(db, "COMMIT");
    sqlite3_close(db);
    return s;
}

/*
 * copy_run --
 *     Create the destination's tables (untimed), then one transaction of
 *     INSERT ... SELECT statements, committed with a sync.
 */
static double
copy_run(void *arg, int run)
{
    struct copy_state *s = arg;
    sqlite3 *db;
    sqlite3_stmt *count;
    char sql[4200];
    uint64_t t0, copied = 0;
    int t;

    remove_tree(s->dst_path);
    db = db_open(s->dst_path, "PRAGMA journal_mode=DELETE; "
                              "PRAGMA synchronous=FULL");
    create_tables(db, s->w.tables);
    snprintf(sql, sizeof(sql), "ATTACH '%s' AS src", s->src_path);
    exec(db, sql);

    t0 = bench_now_ns();
    exec(db, "BEGIN");
    for (t = 0; t < s->w.tables; t++) {
        snprintf(sql, sizeof(sql),
                 "INSERT INTO main.t%05d SELECT * FROM src.t%05d", t, t);
        exec(db, sql);
    }
    exec(db, "COMMIT");
    t0 = bench_now_ns() - t0;

    /* The transfer path does not count changes; count the rows. */
    for (t = 0; t < s->w.tables; t++) {
        snprintf(sql, sizeof(sql), "SELECT count(*) FROM main.t%05d", t);
        count = prepare(db, sql);
        if (sqlite3_step(count) != SQLITE_ROW)
            fail("sqlite", "count", sqlite3_errmsg(db));
        copied += (uint64_t)sqlite3_column_int64(count, 0);
        sqlite3_finalize(count);
    }
    if (copied != s->w.rows * (uint64_t)s->w.tables)
        fail("sqlite", "copy", "copied the wrong number of rows");
    sqlite3_close(db);
    remove_tree(s->dst_path);
    (void)run;
    return t0 / 1e9;
}

static void
copy_finish(void *arg)
{
    free(arg);
}

/* ---- point operations ---- */

/*
 * Readers each have a connection (WAL readers run in parallel); writers
 * share one serialized connection, since SQLite admits one writer at a
 * time and a second connection would wait in the busy handler's sleeps.
 */
struct point_state {
    char path[4096];
    uint64_t rows;
    sqlite3 *writer;
};

static const char *point_pragmas =
    "PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF";

static void *
point_prepare(const struct workload *w)
{
    struct point_state *s = calloc(1, sizeof(*s));
    sqlite3 *db;
    sqlite3_stmt *ins;

    if (s == NULL)
        fail("sqlite", "calloc", NULL);
    s->rows = w->rows;
    path_join(s->path, sizeof(s->path), w->dir, "point.db");
    db = db_open(s->path, point_pragmas);
    create_tables(db, 1);
    exec(db, "BEGIN");
    ins = prepare(db, "INSERT INTO t00000 VALUES(?, ?)");
    insert_rows(db, ins, 0, w->rows, w->value_len);
    sqlite3_finalize(ins);
    exec(db, "COMMIT");
    exec(db, "PRAGMA wal_checkpoint(TRUNCATE)");
    sqlite3_close(db);
    s->writer = db_open_flags(s->path, point_pragmas, SQLITE_OPEN_FULLMUTEX);
    return s;
}

static void
point_read(struct point_job *job)
{
    struct point_state *s = job->state;
    sqlite3 *db = db_open(s->path, point_pragmas);
    sqlite3_stmt *sel = prepare(db, "SELECT v FROM t00000 WHERE k = ?");
    unsigned char key[KEY_LEN];
    uint64_t sum = 0;
    int i;

    while (bench_now_ns() < job->deadline)
        for (i = 0; i < POINT_BATCH; i++) {
            row_key(rand_next(&job->seed) % s->rows, key);
            sqlite3_bind_blob(sel, 1, key, KEY_LEN, SQLITE_STATIC);
            if (sqlite3_step(sel) != SQLITE_ROW)
                fail("sqlite", "point read", sqlite3_errmsg(db));
            sum += ((const unsigned char *)sqlite3_column_blob(sel, 0))[0];
            sqlite3_reset(sel);
            job->ops++;
        }
    sqlite3_finalize(sel);
    sqlite3_close(db);
    if (sum == 1)
        fprintf(stderr, " ");
}

static void
point_insert(struct point_job *job)
{
    struct point_state *s = job->state;
    sqlite3 *db = s->writer;
    sqlite3_stmt *ins = prepare(db, "INSERT INTO t00000 VALUES(?, ?)");
    int i;

    while (bench_now_ns() < job->deadline)
        for (i = 0; i < POINT_BATCH; i++) {
            insert_rows(db, ins, job->next_new++, 1, 100);
            job->ops++;
        }
    sqlite3_finalize(ins);
}

static uint64_t
point_scan(void *arg)
{
    struct point_state *s = arg;
    sqlite3 *db = db_open(s->path, point_pragmas);
    sqlite3_stmt *sel = prepare(db, "SELECT k, v FROM t00000 ORDER BY k");
    unsigned char prev[KEY_LEN];
    uint64_t n = 0, sum = 0;
    int ret;

    while ((ret = sqlite3_step(sel)) == SQLITE_ROW) {
        scan_check("sqlite", prev, sqlite3_column_blob(sel, 0),
                   (size_t)sqlite3_column_bytes(sel, 0), n++);
        sum += ((const unsigned char *)sqlite3_column_blob(sel, 1))[0];
    }
    if (ret != SQLITE_DONE)
        fail("sqlite", "scan", sqlite3_errmsg(db));
    sqlite3_finalize(sel);
    sqlite3_close(db);
    if (sum == 1)
        fprintf(stderr, " ");
    return n;
}

static void
point_finish(void *arg)
{
    struct point_state *s = arg;

    sqlite3_close(s->writer);
    free(s);
}

const struct engine engine_sqlite = {
    .name = "sqlite",
    .copy_method = "INSERT … SELECT, one txn, synchronous=FULL",
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
