/*
 * fuzz_common.h -- what the fuzz targets share (tests only): a CRC32C of
 * their own (to repair the checksums of fuzzed files, independent of the
 * library's internal names), an os table that wraps the simulated disk's
 * and counts open descriptors and mappings (so a leak is a finding), file
 * helpers on the simulated disk, and quiet handlers.
 *
 * Every function is static: each target is one translation unit.
 */
#ifndef LAYERED_FUZZ_COMMON_H
#define LAYERED_FUZZ_COMMON_H

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "layered.h"
#include "layered_test.h"
#include "simdisk.h"

#define FZ_HOME "/h"
#define FZ_SHARED "/h/shared"

/* ---- CRC32C (Castagnoli, reflected 0x82F63B78), chained like zlib's ---- */

static uint32_t fz_crc_table[256];

static inline uint32_t
fz_crc32c(uint32_t crc, const void *buf, size_t len)
{
    const unsigned char *p = buf;

    if (fz_crc_table[1] == 0)
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++)
                c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
            fz_crc_table[i] = c;
        }
    crc = ~crc;
    while (len-- > 0)
        crc = fz_crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

/* ---- speed: liburcu's 10 ms naps ----
 *
 * liburcu's call_rcu thread, woken by new callbacks, naps 10 ms with
 * poll(NULL, 0, 10) before it serves them (to batch them), and rcu_barrier,
 * which every layered_close calls, waits for it: every close would cost tens
 * of milliseconds, most of a fuzz run.  This definition, in the target's
 * executable, takes the place of the C library's for liburcu (a shared
 * library): that one call returns at once; every other poll is the system's.
 * Only the batching is lost, never an ordering: callbacks still wait for
 * their grace period.
 */
#include <poll.h>
#include <sched.h>
#include <sys/syscall.h>

int poll(struct pollfd *fds, nfds_t nfds, int timeout);

int
poll(struct pollfd *fds, nfds_t nfds, int timeout)
{
    struct timespec ts, *tsp = NULL;

    if (fds == NULL && nfds == 0 && timeout == 10) {
        (void)sched_yield();
        return 0;
    }
    if (timeout >= 0) {
        ts.tv_sec = timeout / 1000;
        ts.tv_nsec = (long)(timeout % 1000) * 1000000L;
        tsp = &ts;
    }
    return (int)syscall(SYS_ppoll, fds, nfds, tsp, NULL, (size_t)8);
}

/* ---- speed: liburcu's hash-table worker thread ----
 *
 * Each connection's handle table is a cds_lfht with automatic resizing,
 * and liburcu starts its resize worker thread with the first such table
 * and stops it with the last: every open and close of a fuzz run would
 * start and join a thread.  One table held for the life of the process
 * keeps the worker running.
 */
#define RCU_MEMB /* the library's flavour (CLayered/internal.h) */
#include <urcu.h>
#include <urcu/rculfhash.h>

static inline void
fz_keep_lfht_worker(void)
{
    static struct cds_lfht *keep;

    if (keep == NULL)
        keep = cds_lfht_new(1, 1, 0, CDS_LFHT_AUTO_RESIZE, NULL);
}

/* ---- the counting os table ---- */

static _Atomic long fz_open_fds, fz_open_maps;

static inline int
fz_open(const char *path, int flags, mode_t mode)
{
    int fd = sim_os.open(path, flags, mode);

    if (fd >= 0)
        atomic_fetch_add(&fz_open_fds, 1);
    return fd;
}

static inline int
fz_openat(int dirfd, const char *path, int flags, mode_t mode)
{
    int fd = sim_os.openat(dirfd, path, flags, mode);

    if (fd >= 0)
        atomic_fetch_add(&fz_open_fds, 1);
    return fd;
}

static inline int
fz_close(int fd)
{
    int ret = sim_os.close(fd);

    if (ret == 0)
        atomic_fetch_sub(&fz_open_fds, 1);
    return ret;
}

static inline void *
fz_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    void *p = sim_os.mmap(addr, len, prot, flags, fd, off);

    if (p != MAP_FAILED)
        atomic_fetch_add(&fz_open_maps, 1);
    return p;
}

static inline int
fz_munmap(void *addr, size_t len)
{
    int ret = sim_os.munmap(addr, len);

    if (ret == 0)
        atomic_fetch_sub(&fz_open_maps, 1);
    return ret;
}

static struct os_ops fz_os;

/* sim_reset, and the counting table set up (once). */
static inline void
fz_reset(void)
{
    if (fz_os.open == NULL) {
        fz_os = sim_os;
        fz_os.open = fz_open;
        fz_os.openat = fz_openat;
        fz_os.close = fz_close;
        fz_os.mmap = fz_mmap;
        fz_os.munmap = fz_munmap;
    }
    fz_keep_lfht_worker();
    sim_reset(0);
    atomic_store(&fz_open_fds, 0);
    atomic_store(&fz_open_maps, 0);
}

/* ---- failing a run ---- */

/* The recent calls, printed when a run fails (set by the target). */
static void (*fz_dump_hook)(void);

static inline void __attribute__((noreturn, format(printf, 1, 2)))
fz_fail(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "\nFUZZ FAILURE: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    if (fz_dump_hook != NULL)
        fz_dump_hook();
    abort();
}

/* After a connection is gone (closed, or an open that failed): every
 * descriptor and mapping it made must be released. */
static inline void
fz_check_released(const char *when)
{
    long fds = atomic_load(&fz_open_fds), maps = atomic_load(&fz_open_maps);

    if (fds != 0 || maps != 0)
        fz_fail("%s: %ld descriptors and %ld mappings still open", when, fds,
                maps);
}

/* ---- handlers ---- */

static int fz_verbose = -1;
static _Atomic int fz_panics;

static inline bool
fz_is_verbose(void)
{
    if (fz_verbose < 0)
        fz_verbose = getenv("FUZZ_VERBOSE") != NULL;
    return fz_verbose != 0;
}

static inline void
fz_message(void *arg, const char *msg)
{
    (void)arg;
    if (fz_is_verbose())
        fprintf(stderr, "  layered: %s\n", msg);
}

static inline void
fz_panic(void *arg, int error, const char *msg)
{
    (void)arg;
    atomic_fetch_add(&fz_panics, 1);
    if (fz_is_verbose())
        fprintf(stderr, "  layered PANIC: %s: %s\n", msg,
                layered_strerror(error));
}

static inline void
fz_config(layered_config *cfg, int role, int sync, int threads, int policy)
{
    layered_config_init(cfg);
    cfg->role = role;
    cfg->sync = sync;
    cfg->drain_threads = threads;
    cfg->drain_policy = policy;
    cfg->panic_handler = fz_panic;
    cfg->message_handler = fz_message;
}

/* ---- files on the simulated disk (through sim_os: not counted) ---- */

static inline int
fz_write_file(const char *path, const void *data, size_t len)
{
    const unsigned char *p = data;
    ssize_t n;
    int fd;

    if ((fd = sim_os.open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644)) < 0)
        return errno;
    while (len > 0) {
        if ((n = sim_os.write(fd, p, len)) <= 0) {
            (void)sim_os.close(fd);
            return n < 0 ? errno : ENOSPC;
        }
        p += n;
        len -= (size_t)n;
    }
    return sim_os.close(fd) == 0 ? 0 : errno;
}

/* A whole file into a malloc'ed buffer; NULL if it cannot be read. */
static inline unsigned char *
fz_read_file(const char *path, size_t *lenp)
{
    struct stat st;
    unsigned char *buf;
    size_t done = 0;
    ssize_t n;
    int fd;

    *lenp = 0;
    if ((fd = sim_os.open(path, O_RDONLY, 0)) < 0)
        return NULL;
    if (sim_os.fstat(fd, &st) != 0 || S_ISDIR(st.st_mode) ||
        (buf = malloc((size_t)st.st_size + 1)) == NULL) {
        (void)sim_os.close(fd);
        return NULL;
    }
    while (done < (size_t)st.st_size &&
           (n = sim_os.read(fd, buf + done, (size_t)st.st_size - done)) > 0)
        done += (size_t)n;
    (void)sim_os.close(fd);
    *lenp = done;
    return buf;
}

/* ---- a growable byte buffer ---- */

struct fz_buf {
    unsigned char *p;
    size_t len, cap;
};

static inline void
fz_buf_add(struct fz_buf *b, const void *data, size_t len)
{
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + len)
            cap *= 2;
        if ((b->p = realloc(b->p, cap)) == NULL)
            abort();
        b->cap = cap;
    }
    if (len > 0)
        memcpy(b->p + b->len, data, len);
    b->len += len;
}

static inline void
fz_buf_u8(struct fz_buf *b, unsigned v)
{
    unsigned char c = (unsigned char)v;

    fz_buf_add(b, &c, 1);
}

static inline void
fz_buf_u32(struct fz_buf *b, uint32_t v)
{
    unsigned char c[4] = {(unsigned char)v, (unsigned char)(v >> 8),
                          (unsigned char)(v >> 16), (unsigned char)(v >> 24)};

    fz_buf_add(b, c, 4);
}

static inline void
fz_buf_free(struct fz_buf *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}

#endif /* LAYERED_FUZZ_COMMON_H */
