/*
 * failpoint.c -- named points where tests pause, sleep or inject errors.
 *
 * The hot path (fp_hit in internal.h) is one relaxed load of `active`.
 * Everything else runs under the table's mutex, a leaf lock: a thread
 * paused at a failpoint waits on the condition variable with no library
 * lock of the failpoint table held (it may hold its caller's locks, which
 * is the point: the test decides what happens while they are held).
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"
#include "layered_test.h"

int
fp_init(struct fp_table *t)
{
    pthread_condattr_t ca;

    memset(t, 0, sizeof(*t));
    if (pthread_mutex_init(&t->lock, NULL) != 0)
        return ENOMEM;
    (void)pthread_condattr_init(&ca);
    (void)pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    if (pthread_cond_init(&t->cond, &ca) != 0) {
        (void)pthread_mutex_destroy(&t->lock);
        return ENOMEM;
    }
    (void)pthread_condattr_destroy(&ca);
    return 0;
}

void
fp_destroy(struct fp_table *t)
{
    (void)pthread_cond_destroy(&t->cond);
    (void)pthread_mutex_destroy(&t->lock);
}

static const struct {
    const char *name;
    int value;
} err_names[] = {
    {"ENOENT", ENOENT}, {"EIO", EIO},       {"ENOSPC", ENOSPC},
    {"EBUSY", EBUSY},   {"EINVAL", EINVAL}, {"ENOMEM", ENOMEM},
    {"EACCES", EACCES}, {"EROFS", EROFS},   {"EFBIG", EFBIG},
    {"EAGAIN", EAGAIN}, {"NOTFOUND", LAYERED_NOTFOUND},
    {"CORRUPT", LAYERED_CORRUPT},
};

/*
 * parse_action --
 *     "off", "pause", "sleep(MS)", "return(ERR)".
 */
static int
parse_action(const char *s, enum fp_action *actionp, int *argp)
{
    char word[32], *end;
    size_t n;
    long v;

    *argp = 0;
    if (strcmp(s, "off") == 0) {
        *actionp = FP_OFF;
        return 0;
    }
    if (strcmp(s, "pause") == 0) {
        *actionp = FP_PAUSE;
        return 0;
    }
    if (strncmp(s, "sleep(", 6) == 0) {
        errno = 0;
        v = strtol(s + 6, &end, 10);
        if (errno != 0 || end == s + 6 || strcmp(end, ")") != 0 || v < 0 ||
            v > 3600 * 1000)
            return EINVAL;
        *actionp = FP_SLEEP;
        *argp = (int)v;
        return 0;
    }
    if (strncmp(s, "return(", 7) == 0) {
        s += 7;
        n = strcspn(s, ")");
        if (n == 0 || n >= sizeof(word) || strcmp(s + n, ")") != 0)
            return EINVAL;
        memcpy(word, s, n);
        word[n] = '\0';
        *actionp = FP_RETURN;
        for (size_t i = 0; i < sizeof(err_names) / sizeof(err_names[0]); i++)
            if (strcmp(word, err_names[i].name) == 0) {
                *argp = err_names[i].value;
                return 0;
            }
        errno = 0;
        v = strtol(word, &end, 10);
        if (errno != 0 || *end != '\0' || v == 0 || v < INT32_MIN ||
            v > INT32_MAX)
            return EINVAL;
        *argp = (int)v;
        return 0;
    }
    return EINVAL;
}

static bool
fp_name_valid(const char *name)
{
    size_t n = strlen(name);

    if (n == 0 || n >= FP_NAME_MAX)
        return false;
    for (; *name != '\0'; name++)
        if (!isalnum((unsigned char)*name) && *name != '.' && *name != '_')
            return false;
    return true;
}

static struct failpoint *
fp_lookup(struct fp_table *t, const char *name)
{
    for (int i = 0; i < t->n; i++)
        if (strcmp(t->fp[i].name, name) == 0)
            return &t->fp[i];
    return NULL;
}

int
fp_set(struct fp_table *t, const char *name, const char *action)
{
    struct failpoint *fp;
    enum fp_action act;
    int arg, active;

    if (name == NULL || action == NULL || !fp_name_valid(name))
        return EINVAL;
    RET(parse_action(action, &act, &arg));

    (void)pthread_mutex_lock(&t->lock);
    if ((fp = fp_lookup(t, name)) == NULL) {
        if (t->n == FP_MAX) {
            (void)pthread_mutex_unlock(&t->lock);
            return ENOMEM;
        }
        fp = &t->fp[t->n++];
        memset(fp, 0, sizeof(*fp));
        (void)snprintf(fp->name, sizeof(fp->name), "%s", name);
    }
    fp->action = act;
    fp->arg = arg;
    fp->hits = 0;
    fp->epoch++;
    active = t->hook != NULL;
    for (int i = 0; i < t->n; i++)
        if (t->fp[i].action != FP_OFF)
            active = 1;
    atomic_store(&t->active, active);
    (void)pthread_cond_broadcast(&t->cond);
    (void)pthread_mutex_unlock(&t->lock);
    return 0;
}

/*
 * fp_set_list --
 *     "name=action;name=action", as in the config and LAYERED_FAILPOINTS.
 */
int
fp_set_list(struct fp_table *t, const char *list)
{
    char *copy, *item, *save, *eq;
    int ret = 0;

    if (list == NULL || *list == '\0')
        return 0;
    if ((copy = strdup(list)) == NULL)
        return ENOMEM;
    for (item = strtok_r(copy, ";", &save); item != NULL;
         item = strtok_r(NULL, ";", &save)) {
        while (isspace((unsigned char)*item))
            item++;
        if (*item == '\0')
            continue;
        if ((eq = strchr(item, '=')) == NULL) {
            ret = EINVAL;
            break;
        }
        *eq = '\0';
        if ((ret = fp_set(t, item, eq + 1)) != 0)
            break;
    }
    free(copy);
    return ret;
}

void
fp_release_all(struct fp_table *t)
{
    (void)pthread_mutex_lock(&t->lock);
    t->released = true;
    (void)pthread_cond_broadcast(&t->cond);
    (void)pthread_mutex_unlock(&t->lock);
}

/*
 * fp_hit_slow --
 *     A thread reached a failpoint while some failpoint is set.
 */
int
fp_hit_slow(struct fp_table *t, const char *name)
{
    struct failpoint *fp;
    uint64_t epoch;
    int ms, ret = 0;

    if (t->hook != NULL && (ret = t->hook(t->hook_arg, name)) != 0)
        return ret;
    (void)pthread_mutex_lock(&t->lock);
    if ((fp = fp_lookup(t, name)) == NULL || fp->action == FP_OFF) {
        (void)pthread_mutex_unlock(&t->lock);
        return 0;
    }
    fp->hits++;
    (void)pthread_cond_broadcast(&t->cond);
    switch (fp->action) {
    case FP_PAUSE:
        /* Wait until the failpoint is set again (to anything). */
        epoch = fp->epoch;
        while (fp->epoch == epoch && !t->released)
            (void)pthread_cond_wait(&t->cond, &t->lock);
        break;
    case FP_SLEEP:
        ms = fp->arg;
        (void)pthread_mutex_unlock(&t->lock);
        (void)nanosleep(&(struct timespec){ms / 1000, (ms % 1000) * 1000000L},
                        NULL);
        return 0;
    case FP_RETURN:
        ret = fp->arg;
        break;
    case FP_OFF:
        break;
    }
    (void)pthread_mutex_unlock(&t->lock);
    return ret;
}

int
layered_failpoint_set(layered_conn *conn, const char *name,
                      const char *action)
{
    if (conn == NULL)
        return EINVAL;
    return fp_set(&conn->fps, name, action);
}

int
layered_failpoint_release_all(layered_conn *conn)
{
    if (conn == NULL)
        return EINVAL;
    fp_release_all(&conn->fps);
    return 0;
}

/*
 * layered_test_set_scheduler --
 *     Install (or with NULL remove) a test's scheduler hook, called at
 *     every failpoint (layered_test.h).
 */
int
layered_test_set_scheduler(layered_conn *conn,
                           int (*hook)(void *arg, const char *name),
                           void *arg)
{
    struct fp_table *t;
    int active = 0;

    if (conn == NULL)
        return EINVAL;
    t = &conn->fps;
    (void)pthread_mutex_lock(&t->lock);
    t->hook = hook;
    t->hook_arg = arg;
    active = hook != NULL;
    for (int i = 0; i < t->n; i++)
        if (t->fp[i].action != FP_OFF)
            active = 1;
    atomic_store(&t->active, active);
    (void)pthread_mutex_unlock(&t->lock);
    return 0;
}

int
layered_failpoint_wait(layered_conn *conn, const char *name, int timeout_ms)
{
    struct fp_table *t;
    struct failpoint *fp;
    struct timespec deadline;
    int ret = 0;

    if (conn == NULL || name == NULL)
        return EINVAL;
    t = &conn->fps;
    (void)conn->os->clock_gettime(CLOCK_MONOTONIC, &deadline);
    if (timeout_ms >= 0) {
        deadline.tv_sec += timeout_ms / 1000;
        deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (deadline.tv_nsec >= 1000000000L) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000L;
        }
    }
    (void)pthread_mutex_lock(&t->lock);
    if ((fp = fp_lookup(t, name)) == NULL)
        ret = EINVAL;
    while (ret == 0 && fp->hits == 0) {
        if (timeout_ms < 0)
            (void)pthread_cond_wait(&t->cond, &t->lock);
        else if (pthread_cond_timedwait(&t->cond, &t->lock, &deadline) ==
                 ETIMEDOUT)
            ret = fp->hits == 0 ? ETIMEDOUT : 0;
    }
    (void)pthread_mutex_unlock(&t->lock);
    return ret;
}
