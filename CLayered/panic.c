/*
 * panic.c -- the connection's panic path and message output.
 *
 * The core never calls abort() itself: an unrecoverable error comes here.
 * The first panic is recorded (error and message), background waits are
 * released, every later call returns LAYERED_PANIC, and then the handler
 * runs: by default it logs and aborts, as C users of storage engines
 * expect; the Swift layer installs one that returns.
 */
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"

void
layered_msg(layered_conn *conn, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;

    va_start(ap, fmt);
    (void)vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (conn != NULL && conn->message_handler != NULL)
        conn->message_handler(conn->message_arg, buf);
    else
        fprintf(stderr, "layered: %s\n", buf);
}

/*
 * layered_panic --
 *     Stop the connection.  Returns LAYERED_PANIC for the caller to return.
 */
int
layered_panic(layered_conn *conn, int error, const char *fmt, ...)
{
    char msg[sizeof(conn->panic_msg)];
    va_list ap;
    int expected = 0;

    va_start(ap, fmt);
    (void)vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    (void)pthread_mutex_lock(&conn->panic_lock);
    if (!atomic_compare_exchange_strong(&conn->panicked, &expected, 1)) {
        /* Not the first: the first one is what the handler reported. */
        (void)pthread_mutex_unlock(&conn->panic_lock);
        layered_msg(conn, "after panic: %s", msg);
        return LAYERED_PANIC;
    }
    conn->panic_error = error;
    (void)snprintf(conn->panic_msg, sizeof(conn->panic_msg), "%s", msg);
    (void)pthread_mutex_unlock(&conn->panic_lock);

    /* No thread may stay paused on a connection that no longer serves. */
    fp_release_all(&conn->fps);

    if (conn->panic_handler != NULL) {
        conn->panic_handler(conn->panic_arg, error, msg);
        return LAYERED_PANIC;
    }
    fprintf(stderr, "layered: PANIC: %s: %s\n", msg,
            layered_strerror(error));
    abort();
}
