/*
 * peers.h -- the engine interface of the side-by-side benchmark.
 *
 * Every engine (Layered and each peer) implements the same three workloads
 * on the same rows; the harness (bench_peers.c) times them, interleaves the
 * engines run by run, and reports the median, min and max.
 *
 *   copy   rows read in key order from one table and written durably into
 *          a fresh one (Layered: a step-up drain of an ingest constituent)
 *   many   the same for many small tables, in one durable operation
 *   point  random point reads of existing keys and inserts of new keys, by
 *          one or two threads, each write reaching the operating system
 *          (surviving kill -9) but not synced
 *   scan   a full scan in key order of the point workload's preloaded
 *          table, before any point operation
 *   batch  atomic batches of BATCH_ROWS new rows, each batch made durable
 *          (synced) before the next starts, by one thread
 */
#ifndef PEERS_H
#define PEERS_H

#include <stddef.h>
#include <stdint.h>

#define KEY_LEN 16

/* What a workload is asked to do. */
struct workload {
    const char *dir;  /* this engine's scratch directory (exists, empty) */
    uint64_t rows;    /* rows per table */
    size_t value_len; /* bytes per value */
    int tables;       /* tables (the copy workload: 1) */
    int threads;      /* point workload: threads */
};

/* One thread's share of a timed point-operation run. */
struct point_job {
    void *state;        /* the engine's point state */
    int thread;         /* 0 .. threads-1 */
    uint64_t deadline;  /* stop at this bench_now_ns() */
    uint64_t seed;      /* this thread's random stream */
    uint64_t next_new;  /* inserts: the next never-used row number */
    uint64_t ops;       /* out: operations done */
};

/*
 * One engine.  prepare builds the source data (untimed) and returns the
 * engine's state; run does its untimed setup, times the operation itself
 * and returns the seconds it took; finish frees the state and removes the
 * files.  A NULL function means the engine does not take part.
 */
struct engine {
    const char *name;        /* column label */
    const char *copy_method; /* how it copies, for the notes */
    const char *batch_method; /* how it commits a batch */
    int max_tables;          /* many-tables cap (0: no cap) */

    void *(*copy_prepare)(const struct workload *);
    double (*copy_run)(void *state, int run);
    void (*copy_finish)(void *state);

    void *(*many_prepare)(const struct workload *);
    double (*many_run)(void *state, int run);
    void (*many_finish)(void *state);

    void *(*point_prepare)(const struct workload *);
    /* Called on each benchmark thread; loops until job->deadline. */
    void (*point_read)(struct point_job *);
    void (*point_insert)(struct point_job *);
    /* Reads every row of the point table in key order, checking the order
     * (scan_check); returns the rows read.  Any thread, no other running. */
    uint64_t (*point_scan)(void *state);
    void (*point_finish)(void *state);

    /* batch: prepare opens an empty table; run commits `batches` batches
     * of BATCH_ROWS new rows (rows from first_row on), each synced, and
     * returns the seconds; the rows stay for the next run. */
    void *(*batch_prepare)(const struct workload *);
    double (*batch_run)(void *state, uint64_t first_row, int batches);
    void (*batch_finish)(void *state);
};

/* Rows per batch of the batch workload. */
#define BATCH_ROWS 100

extern const struct engine engine_layered, engine_lmdb, engine_wiredtiger,
    engine_rocksdb_batch, engine_rocksdb_sst, engine_sqlite;

/* ---- shared by the engines (bench_peers.c) ---- */

uint64_t bench_now_ns(void);
/* The key of row i: 16 bytes that look random and sort in no useful way. */
void row_key(uint64_t i, unsigned char key[KEY_LEN]);
/* The value of row i: value_len incompressible bytes (a pointer into a
 * shared pool; valid for the life of the process). */
const unsigned char *row_value(uint64_t i, size_t value_len);
/* A random number from a per-thread stream. */
uint64_t rand_next(uint64_t *state);
/* Stop with a message naming the engine and the call that failed. */
void fail(const char *engine, const char *what, const char *detail)
    __attribute__((noreturn));
/* Remove a directory tree (or file) if it exists. */
void remove_tree(const char *path);
/* Create a directory (and fail loudly if it cannot). */
void make_dir(const char *path);
/* Write `path` with `fmt` formatted, as a path: dir + "/" + name. */
void path_join(char *out, size_t size, const char *dir, const char *name);

/* A scan's check of row n (0, 1, ...): the key is KEY_LEN bytes and
 * after the previous one (kept in prev) by memcmp; fails otherwise. */
void scan_check(const char *engine, unsigned char prev[KEY_LEN],
                const void *key, size_t key_len, uint64_t n);

/* How many checks of the clock a point loop makes: every POINT_BATCH ops. */
#define POINT_BATCH 64

#endif /* PEERS_H */
