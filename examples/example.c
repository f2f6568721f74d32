/*
 * example.c -- a small C program using Layered: create a table, write as a
 * follower, step up (drain), write as leader, checkpoint, read everything
 * back in order, step down, drop.  Copy it as a starting point.
 *
 *   cc example.c $(pkg-config --cflags --libs --static layered)
 *   ./a.out /tmp/example-db
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <layered.h>

#define CHECK(call)                                                         \
    do {                                                                    \
        int ret_ = (call);                                                  \
        if (ret_ != 0) {                                                    \
            fprintf(stderr, "%s: %s\n", #call, layered_strerror(ret_));     \
            exit(1);                                                        \
        }                                                                   \
    } while (0)

int
main(int argc, char *argv[])
{
    const char *home = argc > 1 ? argv[1] : "example-db";
    layered_config cfg;
    layered_conn *conn;
    layered_session *session;
    layered_cursor *cursor;
    layered_drain_stats drain;
    layered_conn_stats stats;
    const void *key, *value;
    size_t key_len, value_len;
    char k[32], v[64];
    int i, ret;

    layered_config_init(&cfg);
    cfg.role = LAYERED_ROLE_FOLLOWER;
    cfg.drain_threads = 2;
    CHECK(layered_open(home, &cfg, &conn));
    CHECK(layered_session_open(conn, &session));
    CHECK(layered_create(session, "layered:accounts", "exclusive=false"));

    /* As a follower, writes land in the ingest constituent. */
    CHECK(layered_cursor_open(session, "layered:accounts", &cursor));
    for (i = 0; i < 1000; i++) {
        snprintf(k, sizeof(k), "acct-%04d", i);
        snprintf(v, sizeof(v), "balance=%d", i * 10);
        CHECK(layered_cursor_insert(cursor, k, strlen(k), v, strlen(v)));
    }
    CHECK(layered_cursor_close(cursor));

    /* Step up: the ingest is drained into the stable constituent. */
    CHECK(layered_step_up(conn, &drain));
    printf("step-up: %llu tables drained, %llu rows, %llu bytes, %.3f ms\n",
           (unsigned long long)drain.tables_drained,
           (unsigned long long)drain.rows, (unsigned long long)drain.bytes,
           drain.elapsed_ns / 1e6);

    /* As the leader, writes go straight to stable. */
    CHECK(layered_cursor_open(session, "layered:accounts", &cursor));
    CHECK(layered_cursor_insert(cursor, "acct-9999", 9, "balance=1", 9));
    CHECK(layered_cursor_remove(cursor, "acct-0000", 9));
    CHECK(layered_checkpoint(session));

    /* Read back in key order. */
    i = 0;
    while ((ret = layered_cursor_next(cursor)) == 0) {
        CHECK(layered_cursor_get(cursor, &key, &key_len, &value, &value_len));
        if (i++ < 3)
            printf("  %.*s = %.*s\n", (int)key_len, (const char *)key,
                   (int)value_len, (const char *)value);
    }
    if (ret != LAYERED_NOTFOUND)
        CHECK(ret);
    printf("%d rows\n", i);
    if (i != 1000) {
        fprintf(stderr, "expected 1000 rows, read %d\n", i);
        return 1;
    }
    CHECK(layered_cursor_close(cursor));

    CHECK(layered_stats(conn, &stats));
    printf("database_size %llu bytes (stable %llu + buffer %u)\n",
           (unsigned long long)stats.database_size,
           (unsigned long long)stats.stable_checkpoint_bytes,
           LAYERED_CHECKPOINT_SIZE_BUFFER);

    CHECK(layered_step_down(conn));
    CHECK(layered_drop(session, "layered:accounts", LAYERED_DROP_FORCE));
    CHECK(layered_session_close(session));
    CHECK(layered_close(conn));
    printf("ok\n");
    return 0;
}
