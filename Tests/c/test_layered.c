/*
 * test_layered.c -- layered tables through the public API: reads see
 * ingest over stable, tombstones hide, iteration merges both in order;
 * create/drop semantics; a drop with an open cursor is EBUSY; a dropped
 * table stays gone after reopen; checkpoint and database_size.
 */
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>

#include "testutil.h"

static layered_conn *
open_db(const char *home, int role)
{
    layered_config cfg;
    layered_conn *conn;

    layered_config_init(&cfg);
    cfg.role = role;
    CHECK_OK(layered_open(home, &cfg, &conn));
    return conn;
}

static void
put(layered_cursor *c, const char *k, const char *v)
{
    CHECK_OK(layered_cursor_insert(c, k, strlen(k), v, strlen(v)));
}

/* Expect a lookup to find value v (NULL: not found). */
static void
expect(layered_cursor *c, const char *k, const char *v)
{
    const void *val;
    size_t vlen;

    if (v == NULL) {
        CHECK_RET(LAYERED_NOTFOUND, layered_cursor_search(c, k, strlen(k)));
        return;
    }
    CHECK_OK(layered_cursor_search(c, k, strlen(k)));
    CHECK_OK(layered_cursor_get(c, NULL, NULL, &val, &vlen));
    CHECK(vlen == strlen(v) && memcmp(val, v, vlen) == 0);
}

/* Walk forward and backward; compare with the expected "k=v" list. */
static void
expect_scan(layered_cursor *c, const char *const *want, int n)
{
    const void *k, *v;
    size_t klen, vlen;
    char buf[256];
    int i, ret;

    CHECK_OK(layered_cursor_reset(c));
    for (i = 0; (ret = layered_cursor_next(c)) == 0; i++) {
        CHECK(i < n);
        CHECK_OK(layered_cursor_get(c, &k, &klen, &v, &vlen));
        snprintf(buf, sizeof(buf), "%.*s=%.*s", (int)klen, (const char *)k,
                 (int)vlen, (const char *)v);
        if (strcmp(buf, want[i]) != 0) {
            fprintf(stderr, "scan %d: got %s want %s\n", i, buf, want[i]);
            CHECK(0);
        }
    }
    CHECK_RET(LAYERED_NOTFOUND, ret);
    CHECK(i == n);
    for (i = n - 1; (ret = layered_cursor_prev(c)) == 0; i--) {
        CHECK(i >= 0);
        CHECK_OK(layered_cursor_get(c, &k, &klen, &v, &vlen));
        snprintf(buf, sizeof(buf), "%.*s=%.*s", (int)klen, (const char *)k,
                 (int)vlen, (const char *)v);
        CHECK(strcmp(buf, want[i]) == 0);
    }
    CHECK_RET(LAYERED_NOTFOUND, ret);
    CHECK(i == -1);
}

static void
test_layers(void)
{
    char *home = tu_mkdtemp("layers");
    layered_conn *conn = open_db(home, LAYERED_ROLE_LEADER);
    layered_session *s;
    layered_cursor *c, *fc;
    const void *k;
    size_t klen;
    int exact;

    CHECK_OK(layered_session_open(conn, &s));
    CHECK_OK(layered_create(s, "layered:t", NULL));
    CHECK_OK(layered_cursor_open(s, "layered:t", &c));
    /* Leader writes land in stable. */
    put(c, "a", "stable-a");
    put(c, "b", "stable-b");
    put(c, "d", "stable-d");
    put(c, "f", "stable-f");
    CHECK_OK(layered_cursor_close(c));
    CHECK_OK(layered_checkpoint(s));
    CHECK_OK(layered_session_close(s));
    CHECK_OK(layered_close(conn));

    /* As a follower: writes go to ingest and shadow stable. */
    conn = open_db(home, LAYERED_ROLE_FOLLOWER);
    CHECK_OK(layered_session_open(conn, &s));
    CHECK_OK(layered_cursor_open(s, "layered:t", &c));
    put(c, "b", "ingest-b");
    put(c, "c", "ingest-c");
    CHECK_OK(layered_cursor_remove(c, "d", 1));
    CHECK_RET(LAYERED_NOTFOUND, layered_cursor_remove(c, "d", 1));
    CHECK_RET(LAYERED_NOTFOUND, layered_cursor_remove(c, "zz", 2));
    put(c, "g", "ingest-g");
    CHECK_OK(layered_cursor_remove(c, "g", 1));
    expect(c, "a", "stable-a");
    expect(c, "b", "ingest-b");
    expect(c, "c", "ingest-c");
    expect(c, "d", NULL);
    expect(c, "g", NULL);
    {
        const char *want[] = {"a=stable-a", "b=ingest-b", "c=ingest-c",
                              "f=stable-f"};
        expect_scan(c, want, 4);
    }
    /* search_near around a hidden key */
    CHECK_OK(layered_cursor_search_near(c, "d", 1, &exact));
    CHECK(exact == 1);
    CHECK_OK(layered_cursor_get(c, &k, &klen, NULL, NULL));
    CHECK(klen == 1 && memcmp(k, "f", 1) == 0);
    CHECK_OK(layered_cursor_search_near(c, "z", 1, &exact));
    CHECK(exact == -1);
    CHECK_OK(layered_cursor_get(c, &k, &klen, NULL, NULL));
    CHECK(klen == 1 && memcmp(k, "f", 1) == 0);
    CHECK_OK(layered_cursor_search_near(c, "b", 1, &exact));
    CHECK(exact == 0);
    /* next from a search position continues in order */
    CHECK_OK(layered_cursor_next(c));
    CHECK_OK(layered_cursor_get(c, &k, &klen, NULL, NULL));
    CHECK(klen == 1 && memcmp(k, "c", 1) == 0);
    CHECK_OK(layered_cursor_next(c));
    CHECK_OK(layered_cursor_get(c, &k, &klen, NULL, NULL));
    CHECK(klen == 1 && memcmp(k, "f", 1) == 0);
    CHECK_RET(LAYERED_NOTFOUND, layered_cursor_next(c));
    CHECK_RET(EINVAL, layered_cursor_get(c, &k, &klen, NULL, NULL));

    /* The constituents, read-only, for diagnostics. */
    CHECK_OK(layered_cursor_open(s, "file:t.stable", &fc));
    CHECK_RET(ENOTSUP, layered_cursor_insert(fc, "x", 1, "y", 1));
    CHECK_RET(ENOTSUP, layered_cursor_remove(fc, "a", 1));
    {
        int n = 0;
        while (layered_cursor_next(fc) == 0)
            n++;
        CHECK(n == 4); /* a b d f: the stable constituent as is */
    }
    CHECK_OK(layered_cursor_close(fc));
    CHECK_OK(layered_cursor_open(s, "file:t.ingest", &fc));
    {
        int n = 0;
        while (layered_cursor_next(fc) == 0)
            n++;
        CHECK(n == 2); /* b c (tombstones are not rows) */
    }
    CHECK_OK(layered_cursor_close(fc));

    /* Reopen: everything is still there. */
    CHECK_OK(layered_cursor_close(c));
    CHECK_OK(layered_session_close(s));
    CHECK_OK(layered_close(conn));
    conn = open_db(home, LAYERED_ROLE_FOLLOWER);
    CHECK_OK(layered_session_open(conn, &s));
    CHECK_OK(layered_cursor_open(s, "layered:t", &c));
    {
        const char *want[] = {"a=stable-a", "b=ingest-b", "c=ingest-c",
                              "f=stable-f"};
        expect_scan(c, want, 4);
    }
    /* Step up: the merged view is unchanged, the ingest is empty. */
    CHECK_OK(layered_cursor_close(c));
    {
        layered_drain_stats ds;
        CHECK_OK(layered_step_up(conn, &ds));
        CHECK(ds.tables_queued == 1 && ds.tables_drained == 1);
        CHECK(ds.tables_skipped == 0);
        CHECK(ds.rows == 3); /* b, c, the removal of d (g never reached stable) */
    }
    CHECK_OK(layered_cursor_open(s, "layered:t", &c));
    {
        const char *want[] = {"a=stable-a", "b=ingest-b", "c=ingest-c",
                              "f=stable-f"};
        expect_scan(c, want, 4);
    }
    CHECK_OK(layered_cursor_open(s, "file:t.ingest", &fc));
    CHECK_RET(LAYERED_NOTFOUND, layered_cursor_next(fc));
    CHECK_OK(layered_cursor_close(fc));
    CHECK_OK(layered_cursor_close(c));
    CHECK_OK(layered_session_close(s));
    CHECK_OK(layered_close(conn));
    tu_rmdir(home);
    free(home);
}

/* Random operations against a reference model, across the layers. */
static void
test_model(void)
{
    enum { NKEYS = 300, OPS = 6000 };
    char *home = tu_mkdtemp("model");
    layered_conn *conn = open_db(home, LAYERED_ROLE_FOLLOWER);
    layered_session *s;
    layered_cursor *c;
    static char model[NKEYS][16]; /* "" = absent */
    uint64_t rng = tu_seed("test_layered model");
    char k[16], v[16];
    int i, op;

    CHECK_OK(layered_session_open(conn, &s));
    CHECK_OK(layered_create(s, "layered:m", NULL));
    for (op = 0; op < OPS; op++) {
        i = (int)(tu_rand(&rng) % NKEYS);
        snprintf(k, sizeof(k), "k%05d", i);
        if (op % 1500 == 1499) {
            /* Switch roles now and then: layers get mixed. */
            layered_conn_stats st;
            CHECK_OK(layered_stats(conn, &st));
            if (st.role == LAYERED_ROLE_FOLLOWER)
                CHECK_OK(layered_step_up(conn, NULL));
            else
                CHECK_OK(layered_step_down(conn));
        }
        CHECK_OK(layered_cursor_open(s, "layered:m", &c));
        if (tu_rand(&rng) % 3 == 0) {
            int ret = layered_cursor_remove(c, k, strlen(k));
            CHECK_RET(model[i][0] ? 0 : LAYERED_NOTFOUND, ret);
            model[i][0] = '\0';
        } else {
            snprintf(v, sizeof(v), "v%d", op);
            put(c, k, v);
            strcpy(model[i], v);
        }
        CHECK_OK(layered_cursor_close(c));
    }
    CHECK_OK(layered_cursor_open(s, "layered:m", &c));
    for (i = 0; i < NKEYS; i++) {
        snprintf(k, sizeof(k), "k%05d", i);
        expect(c, k, model[i][0] ? model[i] : NULL);
    }
    {
        int n = 0, want = 0, ret;
        const void *kk;
        size_t klen;
        char prev[16] = "";
        for (i = 0; i < NKEYS; i++)
            want += model[i][0] != '\0';
        CHECK_OK(layered_cursor_reset(c)); /* the lookups positioned it */
        while ((ret = layered_cursor_next(c)) == 0) {
            CHECK_OK(layered_cursor_get(c, &kk, &klen, NULL, NULL));
            CHECK(klen < sizeof(prev));
            memcpy(k, kk, klen);
            k[klen] = '\0';
            CHECK(strcmp(prev, k) < 0);
            strcpy(prev, k);
            n++;
        }
        CHECK_RET(LAYERED_NOTFOUND, ret);
        if (n != want)
            fprintf(stderr, "scan found %d rows, model has %d (last %s)\n", n, want, prev);
        CHECK(n == want);
    }
    CHECK_OK(layered_cursor_close(c));
    CHECK_OK(layered_session_close(s));
    CHECK_OK(layered_close(conn));
    tu_rmdir(home);
    free(home);
}

static void
test_drop(void)
{
    char *home = tu_mkdtemp("drop");
    char path[4096];
    layered_conn *conn = open_db(home, LAYERED_ROLE_FOLLOWER);
    layered_session *s;
    layered_cursor *c;
    layered_conn_stats st;
    struct stat sb;
    int state;

    CHECK_OK(layered_session_open(conn, &s));
    CHECK_OK(layered_create(s, "layered:d", NULL));
    CHECK_RET(EEXIST, layered_create(s, "layered:d", NULL));
    CHECK_OK(layered_create(s, "layered:d", "exclusive=false"));
    CHECK_RET(EINVAL, layered_create(s, "layered:d", "bogus=1"));
    CHECK_OK(layered_table_state(s, "layered:d", &state));
    CHECK(state == LAYERED_TABLE_ACTIVE);

    /* An open cursor holds the read lock: the drop is EBUSY and changes
     * nothing. */
    CHECK_OK(layered_cursor_open(s, "layered:d", &c));
    put(c, "k", "v");
    CHECK_RET(EBUSY, layered_drop(s, "layered:d", LAYERED_DROP_FORCE));
    CHECK_RET(EBUSY, layered_drop(s, "layered:d", 0));
    expect(c, "k", "v");
    CHECK_OK(layered_cursor_close(c));
    CHECK_OK(layered_stats(conn, &st));
    CHECK(st.drop_busy == 2);

    CHECK_OK(layered_drop(s, "layered:d", 0));
    CHECK_RET(ENOENT, layered_table_state(s, "layered:d", &state));
    CHECK_RET(ENOENT, layered_cursor_open(s, "layered:d", &c));
    CHECK_RET(ENOENT, layered_cursor_open(s, "file:d.ingest", &c));
    CHECK_RET(ENOENT, layered_drop(s, "layered:d", 0));
    CHECK_OK(layered_drop(s, "layered:d", LAYERED_DROP_FORCE));
    CHECK_OK(layered_drop(s, "layered:never", LAYERED_DROP_FORCE));
    CHECK_RET(EINVAL, layered_drop(s, "layered:d", 0x80));
    snprintf(path, sizeof(path), "%s/d.ingest", home);
    CHECK(stat(path, &sb) != 0 && errno == ENOENT);
    snprintf(path, sizeof(path), "%s/shared/d.stable", home);
    CHECK(stat(path, &sb) != 0 && errno == ENOENT);

    /* Gone after reopen, and the name can be created again (empty). */
    CHECK_OK(layered_session_close(s));
    CHECK_OK(layered_close(conn));
    conn = open_db(home, LAYERED_ROLE_FOLLOWER);
    CHECK_OK(layered_session_open(conn, &s));
    CHECK_RET(ENOENT, layered_table_state(s, "layered:d", &state));
    CHECK_OK(layered_create(s, "layered:d", NULL));
    CHECK_OK(layered_cursor_open(s, "layered:d", &c));
    CHECK_RET(LAYERED_NOTFOUND, layered_cursor_next(c));
    CHECK_OK(layered_cursor_close(c));
    /* Drop waiting for the checkpoint lock works the same. */
    CHECK_OK(layered_drop(s, "layered:d", LAYERED_DROP_CHECKPOINT_WAIT));
    CHECK_OK(layered_session_close(s));
    CHECK_OK(layered_close(conn));
    tu_rmdir(home);
    free(home);
}

static int
count_cb(void *arg, const char *name, int state)
{
    (void)name;
    CHECK(state == LAYERED_TABLE_ACTIVE);
    (*(int *)arg)++;
    return 0;
}

static void
test_checkpoint_size(void)
{
    char *home = tu_mkdtemp("size"), *shared;
    layered_conn *conn = open_db(home, LAYERED_ROLE_FOLLOWER);
    layered_session *s;
    layered_cursor *c;
    layered_conn_stats st;
    uint64_t published;
    char k[32], v[100];
    int i, n = 0;

    CHECK(asprintf(&shared, "%s/shared", home) > 0);
    /* A follower that never checkpointed: the buffer, never less. */
    CHECK_OK(layered_stats(conn, &st));
    CHECK(st.database_size == LAYERED_CHECKPOINT_SIZE_BUFFER);
    CHECK(tu_stable_files_bytes(shared) == 0);
    CHECK_OK(layered_session_open(conn, &s));
    CHECK_OK(layered_create(s, "layered:a", NULL));
    CHECK_OK(layered_create(s, "layered:b", NULL));
    CHECK_OK(layered_list_tables(s, count_cb, &n));
    CHECK(n == 2);
    CHECK_OK(layered_step_up(conn, NULL));
    CHECK_OK(layered_stats(conn, &st));
    published = st.database_size;
    CHECK_OK(layered_cursor_open(s, "layered:a", &c));
    memset(v, 'x', sizeof(v));
    for (i = 0; i < 1000; i++) {
        snprintf(k, sizeof(k), "key%06d", i);
        CHECK_OK(layered_cursor_insert(c, k, strlen(k), v, sizeof(v)));
    }
    CHECK_OK(layered_cursor_close(c));
    /* Not published before the checkpoint, though the file grew... */
    CHECK_OK(layered_stats(conn, &st));
    CHECK(st.database_size - LAYERED_CHECKPOINT_SIZE_BUFFER < 1000 * 100);
    CHECK(st.database_size == published);
    CHECK(tu_stable_files_bytes(shared) >= 1000 * 100);
    /* ...and after it, the stable files as they are on disk. */
    CHECK_OK(layered_checkpoint(s));
    CHECK_OK(layered_stats(conn, &st));
    CHECK(st.stable_checkpoint_bytes >= 1000 * 100);
    TU_CHECK_SIZE_ON_DISK(conn, shared);
    CHECK(st.checkpoints == 1 && st.tables == 2);
    /* Dropping the big table brings it back down, to what is left on
     * disk. */
    CHECK_OK(layered_drop(s, "layered:a", LAYERED_DROP_FORCE));
    CHECK_OK(layered_checkpoint(s));
    CHECK_OK(layered_stats(conn, &st));
    TU_CHECK_SIZE_ON_DISK(conn, shared);
    CHECK(st.stable_checkpoint_bytes < 1000);
    CHECK_OK(layered_drop(s, "layered:b", LAYERED_DROP_FORCE));
    CHECK_OK(layered_checkpoint(s));
    CHECK_OK(layered_stats(conn, &st));
    CHECK(st.database_size == LAYERED_CHECKPOINT_SIZE_BUFFER);
    CHECK(tu_stable_files_bytes(shared) == 0);
    TU_CHECK_SIZE_ON_DISK(conn, shared);
    CHECK(st.tables == 0);
    CHECK_OK(layered_session_close(s));
    CHECK_OK(layered_close(conn));
    tu_rmdir(home);
    free(shared);
    free(home);
}

/* Checkpoint compacts a file that is mostly dead, keeping its data. */
static void
test_compaction(void)
{
    char *home = tu_mkdtemp("compact");
    layered_conn *conn = open_db(home, LAYERED_ROLE_LEADER);
    layered_session *s;
    layered_cursor *c;
    layered_conn_stats st;
    char k[32], v[200];
    int i, round;

    CHECK_OK(layered_session_open(conn, &s));
    CHECK_OK(layered_create(s, "layered:c", NULL));
    CHECK_OK(layered_cursor_open(s, "layered:c", &c));
    memset(v, 'v', sizeof(v));
    for (round = 0; round < 5; round++)
        for (i = 0; i < 2000; i++) {
            snprintf(k, sizeof(k), "key%06d", i);
            v[0] = (char)('0' + round);
            CHECK_OK(layered_cursor_insert(c, k, strlen(k), v, sizeof(v)));
        }
    CHECK_OK(layered_cursor_close(c));
    CHECK_OK(layered_checkpoint(s));
    CHECK_OK(layered_stats(conn, &st));
    CHECK(st.compactions >= 1);
    CHECK(st.stable_checkpoint_bytes < 2 * 2000 * (200 + 64));
    /* The size published is that of the compacted file. */
    {
        char *shared;
        CHECK(asprintf(&shared, "%s/shared", home) > 0);
        TU_CHECK_SIZE_ON_DISK(conn, shared);
        free(shared);
    }
    CHECK_OK(layered_cursor_open(s, "layered:c", &c));
    for (i = 0; i < 2000; i++) {
        const void *val;
        size_t vlen;
        snprintf(k, sizeof(k), "key%06d", i);
        CHECK_OK(layered_cursor_search(c, k, strlen(k)));
        CHECK_OK(layered_cursor_get(c, NULL, NULL, &val, &vlen));
        CHECK(vlen == 200 && ((const char *)val)[0] == '4');
    }
    CHECK_OK(layered_cursor_close(c));
    CHECK_OK(layered_session_close(s));
    CHECK_OK(layered_close(conn));
    tu_rmdir(home);
    free(home);
}

/* A drop racing a checkpoint's compaction: the compaction must not bring
 * back the file the drop removed (it renames a new file over the old
 * one).  The checkpoint is paused at its sync of the table. */
struct ckpt_call {
    pthread_t tid;
    layered_session *s;
    int ret;
};

static void *
checkpoint_thread(void *arg)
{
    struct ckpt_call *c = arg;

    c->ret = layered_checkpoint(c->s);
    return NULL;
}

static void
test_drop_during_compaction(void)
{
    char *home = tu_mkdtemp("drop-compact"), path[4096];
    layered_conn *conn = open_db(home, LAYERED_ROLE_LEADER);
    layered_session *s;
    layered_cursor *c;
    struct ckpt_call ck;
    struct stat sb;
    char v[1024];
    int i;

    CHECK_OK(layered_session_open(conn, &s));
    CHECK_OK(layered_session_open(conn, &ck.s));
    CHECK_OK(layered_create(s, "layered:t", NULL));
    CHECK_OK(layered_cursor_open(s, "layered:t", &c));
    memset(v, 'v', sizeof(v));
    for (i = 0; i < 200; i++) /* mostly dead: the checkpoint compacts */
        CHECK_OK(layered_cursor_insert(c, "k", 1, v, sizeof(v)));
    CHECK_OK(layered_cursor_close(c));
    CHECK_OK(layered_failpoint_set(conn, "fs.sync", "pause"));
    CHECK(pthread_create(&ck.tid, NULL, checkpoint_thread, &ck) == 0);
    CHECK_OK(layered_failpoint_wait(conn, "fs.sync", 30000));
    CHECK_RET(EBUSY, layered_drop(s, "layered:t", LAYERED_DROP_FORCE));
    /* Released without naming the failpoint: the checkpoint goes on, and
     * a later pause no longer waits. */
    CHECK_RET(EINVAL, layered_failpoint_release_all(NULL));
    CHECK_OK(layered_failpoint_release_all(conn));
    CHECK(pthread_join(ck.tid, NULL) == 0);
    CHECK_OK(ck.ret);
    CHECK_OK(layered_cursor_open(s, "layered:t", &c));
    CHECK_OK(layered_cursor_insert(c, "k2", 2, "v", 1));
    CHECK_OK(layered_cursor_close(c));
    CHECK_OK(layered_checkpoint(s)); /* syncs: passes "pause" fs.sync */
    CHECK_OK(layered_failpoint_set(conn, "fs.sync", "off"));
    CHECK_OK(layered_drop(s, "layered:t", LAYERED_DROP_FORCE));
    snprintf(path, sizeof(path), "%s/shared/t.stable", home);
    CHECK(stat(path, &sb) != 0 && errno == ENOENT);
    CHECK_OK(layered_checkpoint(s));
    CHECK(stat(path, &sb) != 0 && errno == ENOENT);
    CHECK_OK(layered_close(conn));
    tu_rmdir(home);
    free(home);
}

int
main(void)
{
    test_layers();
    test_model();
    test_drop();
    test_checkpoint_size();
    test_compaction();
    test_drop_during_compaction();
    printf("test_layered: ok\n");
    return 0;
}
