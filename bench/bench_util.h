/*
 * bench_util.h -- what the C benchmarks share: a loud check of library
 * calls, the monotonic clock in seconds, medians.
 */
#ifndef LAYERED_BENCH_UTIL_H
#define LAYERED_BENCH_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "layered.h"

/* Exit with the call and its error if it fails. */
#define BENCH_OK(call) do {                                                 \
        int bench_ret_ = (call);                                            \
        if (bench_ret_ != 0) {                                              \
            fprintf(stderr, "%s:%d: %s failed: %d (%s)\n", __FILE__,        \
                    __LINE__, #call, bench_ret_,                            \
                    layered_strerror(bench_ret_));                          \
            exit(1);                                                        \
        }                                                                   \
    } while (0)

static inline double
bench_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline int
bench_dbl_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

/* The median of v[0..n); sorts v. */
static inline double
bench_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), bench_dbl_cmp);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

#endif /* LAYERED_BENCH_UTIL_H */
