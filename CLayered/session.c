/*
 * session.c -- sessions: a caller's context, owning its cursors and
 * batches.  One thread uses a session at a time; the connection's session
 * list has its own leaf mutex so sessions open and close from any thread.
 */
#include <stdlib.h>

#include "internal.h"

int
layered_session_open(layered_conn *conn, layered_session **sessionp)
{
    layered_session *s;

    if (sessionp == NULL)
        return EINVAL;
    *sessionp = NULL;
    API_CONN(conn);
    if ((s = calloc(1, sizeof(*s))) == NULL)
        return ENOMEM;
    s->conn = conn;
    TAILQ_INIT(&s->cursors);
    TAILQ_INIT(&s->batches);
    (void)pthread_mutex_lock(&conn->sessions_lock);
    TAILQ_INSERT_TAIL(&conn->sessions, s, link);
    (void)pthread_mutex_unlock(&conn->sessions_lock);
    *sessionp = s;
    return 0;
}

int
layered_session_close(layered_session *s)
{
    layered_cursor *c;
    layered_batch *b;
    layered_conn *conn;
    int ret = 0, tret;

    if (s == NULL)
        return EINVAL;
    conn = s->conn;
    layered_rcu_enter();
    while ((c = TAILQ_FIRST(&s->cursors)) != NULL)
        TRET(cursor_close(c));
    while ((b = TAILQ_FIRST(&s->batches)) != NULL)
        batch_free(b);
    (void)pthread_mutex_lock(&conn->sessions_lock);
    TAILQ_REMOVE(&conn->sessions, s, link);
    (void)pthread_mutex_unlock(&conn->sessions_lock);
    free(s);
    return ret;
}
