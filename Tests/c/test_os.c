/*
 * test_os.c -- the seam to the operating system is the one the library
 * uses: a connection opened with layered_open_os makes its file-system and
 * clock calls through the table it was given.
 *
 *   counted       a counting table (each call wraps the system's and is
 *                 counted by kind) sees the opens, writes, syncs, renames
 *                 and unlinks of create, insert, checkpoint, step-up, drop
 *                 and close; every descriptor and mapping it handed out
 *                 was given back through it; a connection opened without
 *                 it does not use it
 *   fdatasync_eio a table whose fdatasync fails with EIO makes an insert
 *                 under LAYERED_SYNC_FSYNC fail with EIO, and the row is
 *                 not there after reopen
 */
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>

#include "layered_test.h"
#include "testutil.h"

#define OS_CALLS(X)                                                         \
    X(open) X(openat) X(close) X(read) X(pread) X(preadv) X(write)          \
    X(pwritev) X(lseek) X(ftruncate) X(fsync) X(fdatasync) X(syncfs)        \
    X(sync_file_range) X(renameat_noreplace)                                \
    X(fstat) X(fstatat) X(stat) X(mkdir) X(rename) X(renameat) X(unlink)    \
    X(unlinkat) X(flock) X(mmap) X(munmap) X(madvise) X(clock_gettime)

enum {
#define KIND(name) K_##name,
    OS_CALLS(KIND)
#undef KIND
    K_N
};

static const char *const kind_names[] = {
#define NAME(name) #name,
    OS_CALLS(NAME)
#undef NAME
};

static _Atomic uint64_t calls[K_N];
static _Atomic int64_t fds_open, maps_open; /* handed out, not given back */
static _Atomic bool fail_fdatasync;

#define WRAP(type, name, params, args)                                      \
    static type c_##name params                                             \
    {                                                                       \
        atomic_fetch_add(&calls[K_##name], 1);                              \
        return os_default.name args;                                        \
    }

static int
c_open(const char *path, int flags, mode_t mode)
{
    int fd;

    atomic_fetch_add(&calls[K_open], 1);
    if ((fd = os_default.open(path, flags, mode)) >= 0)
        atomic_fetch_add(&fds_open, 1);
    return fd;
}

static int
c_openat(int dirfd, const char *path, int flags, mode_t mode)
{
    int fd;

    atomic_fetch_add(&calls[K_openat], 1);
    if ((fd = os_default.openat(dirfd, path, flags, mode)) >= 0)
        atomic_fetch_add(&fds_open, 1);
    return fd;
}

static int
c_close(int fd)
{
    atomic_fetch_add(&calls[K_close], 1);
    atomic_fetch_sub(&fds_open, 1);
    return os_default.close(fd);
}

static int
c_fdatasync(int fd)
{
    atomic_fetch_add(&calls[K_fdatasync], 1);
    if (atomic_load(&fail_fdatasync)) {
        errno = EIO;
        return -1;
    }
    return os_default.fdatasync(fd);
}

static void *
c_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    void *p;

    atomic_fetch_add(&calls[K_mmap], 1);
    if ((p = os_default.mmap(addr, len, prot, flags, fd, off)) != MAP_FAILED)
        atomic_fetch_add(&maps_open, 1);
    return p;
}

static int
c_munmap(void *addr, size_t len)
{
    atomic_fetch_add(&calls[K_munmap], 1);
    atomic_fetch_sub(&maps_open, 1);
    return os_default.munmap(addr, len);
}

WRAP(ssize_t, read, (int fd, void *buf, size_t len), (fd, buf, len))
WRAP(ssize_t, pread, (int fd, void *buf, size_t len, off_t off),
     (fd, buf, len, off))
WRAP(ssize_t, preadv, (int fd, const struct iovec *iov, int n, off_t off),
     (fd, iov, n, off))
WRAP(ssize_t, write, (int fd, const void *buf, size_t len), (fd, buf, len))
WRAP(ssize_t, pwritev, (int fd, const struct iovec *iov, int n, off_t off),
     (fd, iov, n, off))
WRAP(off_t, lseek, (int fd, off_t off, int whence), (fd, off, whence))
WRAP(int, ftruncate, (int fd, off_t len), (fd, len))
WRAP(int, fsync, (int fd), (fd))
WRAP(int, syncfs, (int fd), (fd))
WRAP(int, fstat, (int fd, struct stat *st), (fd, st))
WRAP(int, fstatat, (int dirfd, const char *path, struct stat *st, int flags),
     (dirfd, path, st, flags))
WRAP(int, stat, (const char *path, struct stat *st), (path, st))
WRAP(int, mkdir, (const char *path, mode_t mode), (path, mode))
WRAP(int, rename, (const char *from, const char *to), (from, to))
WRAP(int, renameat, (int fd1, const char *from, int fd2, const char *to),
     (fd1, from, fd2, to))
WRAP(int, renameat_noreplace,
     (int fd1, const char *from, int fd2, const char *to),
     (fd1, from, fd2, to))
WRAP(int, unlink, (const char *path), (path))
WRAP(int, unlinkat, (int dirfd, const char *path, int flags),
     (dirfd, path, flags))
WRAP(int, flock, (int fd, int op), (fd, op))
WRAP(int, sync_file_range, (int fd, off_t off, off_t len, unsigned flags),
     (fd, off, len, flags))
WRAP(int, madvise, (void *addr, size_t len, int advice), (addr, len, advice))
WRAP(int, clock_gettime, (clockid_t clock, struct timespec *ts), (clock, ts))

static const struct os_ops counting = {
#define MEMBER(name) .name = c_##name,
    OS_CALLS(MEMBER)
#undef MEMBER
};

static uint64_t
count(int kind)
{
    return atomic_load(&calls[kind]);
}

static void
print_counts(void)
{
    for (int k = 0; k < K_N; k++)
        printf("    %-14s %llu\n", kind_names[k],
               (unsigned long long)count(k));
}

static void
counted(void)
{
    layered_config cfg;
    layered_conn *conn;
    layered_session *s;
    uint64_t before[K_N];
    char *dir, *home;

    printf("counted\n");
    dir = tu_mkdtemp("os");
    CHECK(asprintf(&home, "%s/home", dir) > 0); /* created by the open */
    layered_config_init(&cfg);
    CHECK_OK(layered_open_os(home, &cfg, &counting, &conn));
    CHECK_OK(layered_session_open(conn, &s));
    CHECK_OK(layered_create(s, "layered:kept", NULL));
    CHECK_OK(layered_create(s, "layered:dropped", NULL));
    tu_insert_rows(s, "layered:kept", "k", 1000);
    tu_insert_rows(s, "layered:dropped", "d", 1000);
    CHECK_OK(layered_checkpoint(s));
    CHECK_OK(layered_step_up(conn, NULL));
    tu_insert_rows(s, "layered:kept", "leader", 100);
    CHECK_OK(layered_drop(s, "layered:dropped", 0));
    CHECK_OK(layered_checkpoint(s));
    CHECK_OK(layered_close(conn));
    print_counts();

    CHECK(count(K_open) + count(K_openat) > 0);
    CHECK(count(K_write) + count(K_pwritev) > 0);
    CHECK(count(K_fsync) + count(K_fdatasync) > 0);
    CHECK(count(K_rename) + count(K_renameat) > 0);
    CHECK(count(K_unlink) + count(K_unlinkat) > 0);
    /* ... and the calls only one place makes: the new home, the lock, the
     * stable sizes, the step-up's clock. */
    CHECK(count(K_mkdir) > 0);
    CHECK(count(K_flock) > 0);
    CHECK(count(K_fstatat) > 0);
    CHECK(count(K_clock_gettime) > 0);
    /* Nothing opened or mapped through the table was left behind, nor
     * released behind its back. */
    CHECK(atomic_load(&fds_open) == 0);
    CHECK(atomic_load(&maps_open) == 0);

    /* The table belongs to the connection it was given to. */
    for (int k = 0; k < K_N; k++)
        before[k] = count(k);
    CHECK_OK(layered_open(home, &cfg, &conn));
    CHECK_OK(layered_session_open(conn, &s));
    CHECK(tu_count_rows(s, "layered:kept") == 1100);
    CHECK_OK(layered_close(conn));
    for (int k = 0; k < K_N; k++)
        CHECK(count(k) == before[k]);

    free(home);
    tu_rmdir(dir);
    free(dir);
}

static void
fdatasync_eio(void)
{
    layered_config cfg;
    layered_conn *conn;
    layered_session *s;
    layered_cursor *c;
    uint64_t syncs;
    char *home;

    printf("fdatasync_eio\n");
    home = tu_mkdtemp("os-eio");
    layered_config_init(&cfg);
    cfg.sync = LAYERED_SYNC_FSYNC;
    CHECK_OK(layered_open_os(home, &cfg, &counting, &conn));
    CHECK_OK(layered_session_open(conn, &s));
    CHECK_OK(layered_create(s, "layered:t", NULL));
    CHECK_OK(layered_cursor_open(s, "layered:t", &c));
    CHECK_OK(layered_cursor_insert(c, "a", 1, "1", 1));

    syncs = count(K_fdatasync);
    atomic_store(&fail_fdatasync, true);
    CHECK_RET(EIO, layered_cursor_insert(c, "b", 1, "2", 1));
    atomic_store(&fail_fdatasync, false);
    CHECK(count(K_fdatasync) > syncs);

    CHECK_OK(layered_cursor_close(c));
    /* The failure is sticky (the kernel may have dropped the pages): the
     * close reports it again rather than claim the file durable. */
    CHECK_RET(EIO, layered_close(conn));

    /* The failed insert changed nothing. */
    CHECK_OK(layered_open(home, &cfg, &conn));
    CHECK_OK(layered_session_open(conn, &s));
    CHECK_OK(layered_cursor_open(s, "layered:t", &c));
    CHECK_OK(layered_cursor_search(c, "a", 1));
    CHECK_RET(LAYERED_NOTFOUND, layered_cursor_search(c, "b", 1));
    CHECK_OK(layered_cursor_close(c));
    CHECK_OK(layered_close(conn));
    tu_rmdir(home);
    free(home);
}

int
main(void)
{
    counted();
    fdatasync_eio();
    printf("test_os: ok\n");
    return 0;
}
