/*
 * error.c -- layered_strerror: one description for library codes and errno
 * values alike.
 */
#include <string.h>

#include "layered.h"

const char *
layered_strerror(int error)
{
    switch (error) {
    case 0:
        return "success";
    case LAYERED_NOTFOUND:
        return "LAYERED_NOTFOUND: item not found";
    case LAYERED_PANIC:
        return "LAYERED_PANIC: the connection has panicked and no longer "
               "serves requests";
    case LAYERED_CORRUPT:
        return "LAYERED_CORRUPT: a file is damaged";
    case LAYERED_NOT_ARCHIVED:
        return "LAYERED_NOT_ARCHIVED: the table is not archived";
    case LAYERED_IN_PROGRESS:
        return "LAYERED_IN_PROGRESS: an offload or restore of the table is "
               "under way";
    }
    if (error > 0)
        /* strerror() of glibc returns a static or thread-local string for
         * every value; strerrordesc_np is the thread-safe one. */
        return strerrordesc_np(error) != NULL ? strerrordesc_np(error)
                                              : "unknown errno value";
    return "unknown Layered error code";
}
