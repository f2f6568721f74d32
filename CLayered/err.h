/*
 * err.h -- the error dialect of every file of the library.
 *
 * A function that takes nothing it must give back returns through RET; one
 * that does has a single "err:" label that releases what was taken, in
 * reverse order, and reaches it through ERR or ERR_MSG (which need an int
 * ret).  Cleanup after the label that can itself fail goes through TRET
 * (which needs an int tret beside ret): the first error is kept, and the
 * cleanup still runs.
 */
#ifndef LAYERED_ERR_H
#define LAYERED_ERR_H

#include "layered.h"
#include "namespace.h"

/* Return the error of x, if any. */
#define RET(x)                                                              \
    do {                                                                    \
        int ret_ = (x);                                                     \
        if (ret_ != 0)                                                      \
            return (ret_);                                                  \
    } while (0)
/* Jump to err with the error of x, if any. */
#define ERR(x)                                                              \
    do {                                                                    \
        if ((ret = (x)) != 0)                                               \
            goto err;                                                       \
    } while (0)
/* ERR, first reporting the error through the connection's message
 * callback. */
#define ERR_MSG(conn, x, ...)                                               \
    do {                                                                    \
        if ((ret = (x)) != 0) {                                             \
            layered_msg(conn, __VA_ARGS__);                                 \
            goto err;                                                       \
        }                                                                   \
    } while (0)
/* Keep the first error: ret takes the error of x only if it holds none. */
#define TRET(x)                                                             \
    do {                                                                    \
        if ((tret = (x)) != 0 && ret == 0)                                  \
            ret = tret;                                                     \
    } while (0)

/* panic.c: a message through the connection's callback (or stderr).  Any
 * thread; no lock. */
void layered_msg(layered_conn *conn, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif /* LAYERED_ERR_H */
