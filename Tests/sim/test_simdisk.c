/*
 * test_simdisk.c -- checks the simulated disk against its model
 * (simdisk.h): the calls behave as the system's do, and a power cut keeps
 * exactly what the model allows -- every state it allows shows up over
 * the seeds, and no other state ever does.
 *
 * Each durability test runs one scenario under many seeds and compares
 * what survived with the states the model allows, computed here
 * independently of simdisk.c.  A test that cannot fail proves nothing, so
 * simdisk.c has mutants (SIMDISK_MUTANT_*) that each break one promise;
 * CMakeLists.txt builds this program against each and checks that it
 * fails (expect_check_failure.sh).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "simdisk.h"

#define CHECK(e)                                                            \
    do {                                                                    \
        if (!(e)) {                                                         \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__,          \
                    __LINE__, #e);                                          \
            abort();                                                        \
        }                                                                   \
    } while (0)

/* The call fails with errno e. */
#define CHECK_ERR(call, e)                                                  \
    do {                                                                    \
        errno = 0;                                                          \
        CHECK((call) == -1);                                                \
        CHECK(errno == (e));                                                \
    } while (0)

static const struct os_ops *const os = &sim_os;

/* ---------------------------------------------------------------------- */
/* Helpers. */

/* Bytes 1..251 (never 0, so a zero-filled gap is told apart), different
 * for each fill. */
static void
pattern(unsigned char *p, size_t len, int fill)
{
    for (size_t i = 0; i < len; i++)
        p[i] = (unsigned char)((i * 31 + (size_t)fill * 97 + i / 251) % 251 +
                               1);
}

static unsigned char *
pattern_new(size_t len, int fill)
{
    unsigned char *p = malloc(len != 0 ? len : 1);

    CHECK(p != NULL);
    pattern(p, len, fill);
    return p;
}

/* The whole file into *out (malloc'ed); its size, or -1 with errno. */
static long
slurp(const char *path, unsigned char **out)
{
    struct stat st;
    unsigned char *p;
    ssize_t n;
    int fd;

    if ((fd = os->open(path, O_RDONLY, 0)) < 0)
        return -1;
    CHECK(os->fstat(fd, &st) == 0);
    CHECK(S_ISREG(st.st_mode));
    CHECK((p = malloc((size_t)st.st_size + 1)) != NULL);
    n = os->pread(fd, p, (size_t)st.st_size + 1, 0);
    CHECK(n == st.st_size);
    CHECK(os->close(fd) == 0);
    *out = p;
    return (long)n;
}

/* The file holds exactly len bytes equal to data. */
static bool
holds(const char *path, const void *data, size_t len)
{
    unsigned char *p;
    long n = slurp(path, &p);
    bool same;

    if (n < 0)
        return false;
    same = (size_t)n == len && (len == 0 || memcmp(p, data, len) == 0);
    free(p);
    return same;
}

/* Creates (or truncates) path with data, fdatasync'ed when sync. */
static void
put(const char *path, const void *data, size_t len, bool sync)
{
    int fd = os->open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

    CHECK(fd >= 0);
    CHECK(os->write(fd, data, len) == (ssize_t)len);
    if (sync)
        CHECK(os->fdatasync(fd) == 0);
    CHECK(os->close(fd) == 0);
}

/* fsync of a directory: its entries become durable. */
static void
dsync(const char *dir)
{
    int fd = os->open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);

    CHECK(fd >= 0);
    CHECK(os->fsync(fd) == 0);
    CHECK(os->close(fd) == 0);
}

/* An empty disk but for a durable /sim/home, as the engine's tests use. */
static void
setup(uint64_t seed)
{
    sim_reset(seed);
    CHECK(os->mkdir("/sim", 0755) == 0);
    CHECK(os->mkdir("/sim/home", 0755) == 0);
    dsync("/");
    dsync("/sim");
}

static void
cut_and_reboot(void)
{
    sim_cut_now();
    CHECK(sim_power_is_cut());
    sim_reboot();
    CHECK(!sim_power_is_cut());
}

struct dyn {
    unsigned char *p;
    size_t n, cap;
};

static void
dyn_add(struct dyn *b, const void *p, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2;
        CHECK((b->p = realloc(b->p, b->cap)) != NULL);
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
}

/* Appends the tree under dir -- names, kinds, sizes, bytes -- to b, to
 * compare two states byte for byte. */
static void
dump(const char *dir, struct dyn *b)
{
    char path[4096];
    const char *name;

    for (int i = 0; (name = sim_dir_entry(dir, i)) != NULL; i++) {
        struct stat st;

        snprintf(path, sizeof path, "%s%s%s", dir,
                 dir[strlen(dir) - 1] == '/' ? "" : "/", name);
        CHECK(os->stat(path, &st) == 0);
        dyn_add(b, path, strlen(path) + 1);
        if (S_ISDIR(st.st_mode)) {
            dyn_add(b, "D", 1);
            dump(path, b);
        } else {
            unsigned char *p;
            long n = slurp(path, &p);

            CHECK(n >= 0);
            dyn_add(b, "F", 1);
            dyn_add(b, &n, sizeof n);
            dyn_add(b, p, (size_t)n);
            free(p);
        }
    }
    dyn_add(b, "E", 1);
}

/* ---------------------------------------------------------------------- */
/* An independent model of a file's pending changes: the states a cut may
 * leave. */

struct mop {
    bool trunc;
    uint64_t off, len; /* truncate: off is the new size */
    int fill;
};

struct state {
    unsigned char *p;
    size_t size;
};

enum outcome { OUT_NONE, OUT_ALL, OUT_SOME, OUT_TORN, OUT_N };

/* Applies m to s, a write only its first `limit` bytes. */
static void
state_apply(struct state *s, const struct mop *m, uint64_t limit)
{
    size_t end = (size_t)(m->trunc ? m->off : m->off + limit);
    size_t size = m->trunc || end > s->size ? end : s->size;

    if (size > s->size) {
        CHECK((s->p = realloc(s->p, size)) != NULL);
        memset(s->p + s->size, 0, size - s->size);
    }
    s->size = size;
    if (!m->trunc && limit != 0) {
        unsigned char *data = pattern_new((size_t)m->len, m->fill);

        memcpy(s->p + m->off, data, (size_t)limit);
        free(data);
    }
}

static struct state
state_copy(const struct state *s)
{
    struct state c = {malloc(s->size + 1), s->size};

    CHECK(c.p != NULL);
    if (s->size != 0)
        memcpy(c.p, s->p, s->size);
    return c;
}

/* Which allowed state got (of size n) is: the durable one with ops[0, k)
 * applied, the last maybe torn at a 512-byte boundary inside it.  Fails
 * the test when got is none of them. */
static enum outcome
classify(const struct state *durable, const struct mop *ops, int nops,
         const unsigned char *got, size_t n)
{
    struct state s = state_copy(durable);
    enum outcome r = OUT_N;

    for (int k = 0; k <= nops && r == OUT_N; k++) {
        if (s.size == n && (n == 0 || memcmp(s.p, got, n) == 0)) {
            r = k == 0 ? OUT_NONE : k == nops ? OUT_ALL : OUT_SOME;
            break;
        }
        if (k == nops)
            break;
        if (!ops[k].trunc)
            for (uint64_t b = (ops[k].off / 512 + 1) * 512;
                 b < ops[k].off + ops[k].len && r == OUT_N; b += 512) {
                struct state t = state_copy(&s);

                state_apply(&t, &ops[k], b - ops[k].off);
                if (t.size == n && memcmp(t.p, got, n) == 0)
                    r = OUT_TORN;
                free(t.p);
            }
        state_apply(&s, &ops[k], ops[k].len);
    }
    free(s.p);
    CHECK(r != OUT_N);
    return r;
}

/* Performs ops on fd, as pwritev and ftruncate (several iovecs for the
 * longer writes, as the engine's writes carry). */
static void
perform(int fd, const struct mop *ops, int nops)
{
    for (int i = 0; i < nops; i++) {
        if (ops[i].trunc) {
            CHECK(os->ftruncate(fd, (off_t)ops[i].off) == 0);
            continue;
        }
        unsigned char *data = pattern_new((size_t)ops[i].len, ops[i].fill);
        size_t half = (size_t)ops[i].len / 3;
        struct iovec iov[2] = {{data, half},
                               {data + half, (size_t)ops[i].len - half}};

        CHECK(os->pwritev(fd, iov, 2, (off_t)ops[i].off) ==
              (ssize_t)ops[i].len);
        free(data);
    }
}

/* ---------------------------------------------------------------------- */
/* The calls behave as the system's. */

static void
test_files(void)
{
    unsigned char buf[8192], *data = pattern_new(4096, 1);
    struct stat st, st2;
    struct iovec iov[3];
    uint64_t calls;
    int fd, fd2, dfd;

    sim_reset(1);
    /* Descriptors far from the process's own: a real call fails. */
    CHECK((dfd = os->open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0)) >=
          100000);
    CHECK(fcntl(dfd, F_GETFD) == -1 && errno == EBADF);

    CHECK_ERR(os->open("/f", O_RDONLY, 0), ENOENT);
    CHECK_ERR(os->open("/no/f", O_RDWR | O_CREAT, 0644), ENOENT);
    CHECK_ERR(os->open("", O_RDONLY, 0), ENOENT);
    CHECK_ERR(os->open("/f", 3, 0), EINVAL);
    CHECK_ERR(os->open("/f", O_RDWR | O_CREAT | O_PATH, 0644), EINVAL);
    CHECK((fd = os->open("/f", O_RDWR | O_CREAT | O_EXCL, 0644)) >= 100000);
    CHECK(fd != dfd);
    CHECK_ERR(os->open("/f", O_RDWR | O_CREAT | O_EXCL, 0644), EEXIST);
    CHECK_ERR(os->open("/f/x", O_RDONLY, 0), ENOTDIR);
    CHECK_ERR(os->open("/f", O_RDONLY | O_DIRECTORY, 0), ENOTDIR);
    CHECK_ERR(os->open("/f/", O_RDONLY, 0), ENOTDIR);
    CHECK_ERR(os->open("/", O_RDWR, 0), EISDIR);
    CHECK_ERR(os->open("/new/", O_RDWR | O_CREAT, 0644), EISDIR);
    CHECK_ERR(os->open("/new", O_RDWR | O_CREAT | O_DIRECTORY, 0644), EINVAL);

    /* write, read, lseek. */
    CHECK(os->write(fd, "hello", 5) == 5);
    CHECK(os->lseek(fd, 0, SEEK_CUR) == 5);
    CHECK(os->lseek(fd, 0, SEEK_SET) == 0);
    CHECK(os->read(fd, buf, sizeof buf) == 5 && memcmp(buf, "hello", 5) == 0);
    CHECK(os->read(fd, buf, sizeof buf) == 0);
    CHECK_ERR(os->lseek(fd, -6, SEEK_CUR), EINVAL);
    CHECK_ERR(os->lseek(fd, 0, 42), EINVAL);
    /* pwritev of several iovecs past the end: the gap reads as zeros, the
     * descriptor's offset does not move. */
    iov[0] = (struct iovec){data, 100};
    iov[1] = (struct iovec){data + 100, 0};
    iov[2] = (struct iovec){data + 100, 900};
    CHECK(os->pwritev(fd, iov, 3, 10) == 1000);
    CHECK(os->lseek(fd, 0, SEEK_CUR) == 5);
    CHECK(os->lseek(fd, 0, SEEK_END) == 1010);
    CHECK(os->pread(fd, buf, sizeof buf, 0) == 1010);
    CHECK(memcmp(buf, "hello\0\0\0\0\0", 10) == 0);
    CHECK(memcmp(buf + 10, data, 1000) == 0);
    CHECK(os->pread(fd, buf, 10, 5000) == 0);
    CHECK_ERR(os->pread(fd, buf, 10, -1), EINVAL);
    iov[0] = (struct iovec){buf, 3};
    iov[1] = (struct iovec){buf + 100, 2000};
    CHECK(os->preadv(fd, iov, 2, 8) == 1002);
    CHECK(memcmp(buf, "\0\0", 2) == 0 && buf[2] == data[0]);
    CHECK(memcmp(buf + 100, data + 1, 999) == 0);
    CHECK_ERR(os->pwritev(fd, iov, -1, 0), EINVAL);
    CHECK_ERR(os->pwritev(fd, iov, 1, -1), EINVAL);

    /* ftruncate grows with zeros and shrinks. */
    CHECK(os->ftruncate(fd, 3000) == 0);
    CHECK(os->pread(fd, buf, sizeof buf, 0) == 3000);
    for (int i = 1010; i < 3000; i++)
        CHECK(buf[i] == 0);
    CHECK(os->ftruncate(fd, 3) == 0);
    CHECK(os->ftruncate(fd, 6) == 0);
    CHECK(os->pread(fd, buf, sizeof buf, 0) == 6);
    CHECK(memcmp(buf, "hel\0\0\0", 6) == 0);
    CHECK_ERR(os->ftruncate(fd, -1), EINVAL);

    /* fstat. */
    CHECK(os->ftruncate(fd, 5000) == 0);
    CHECK(os->fstat(fd, &st) == 0);
    CHECK(S_ISREG(st.st_mode) && st.st_size == 5000 && st.st_nlink == 1);
    CHECK(st.st_blksize == 4096 && st.st_blocks == 16);
    CHECK(os->stat("/f", &st2) == 0 && st2.st_ino == st.st_ino);
    CHECK(os->fstat(dfd, &st2) == 0 && S_ISDIR(st2.st_mode));
    CHECK(st2.st_ino != st.st_ino && st2.st_nlink == 2);

    /* O_APPEND writes at the end whatever the offset (the metadata
     * journal's descriptor). */
    CHECK((fd2 = os->open("/f", O_WRONLY | O_APPEND, 0)) >= 0);
    CHECK(os->lseek(fd2, 0, SEEK_SET) == 0);
    CHECK(os->write(fd2, "tail", 4) == 4);
    CHECK(os->lseek(fd2, 0, SEEK_CUR) == 5004);
    CHECK(sim_file_size("/f") == 5004);
    CHECK(os->pread(fd, buf, 4, 5000) == 4 && memcmp(buf, "tail", 4) == 0);
    CHECK_ERR(os->read(fd2, buf, 1), EBADF);
    CHECK(os->close(fd2) == 0);
    /* O_TRUNC. */
    CHECK((fd2 = os->open("/f", O_RDWR | O_TRUNC, 0)) >= 0);
    CHECK(sim_file_size("/f") == 0);
    CHECK(os->close(fd2) == 0);

    /* Wrong descriptors and wrong kinds. */
    CHECK((fd2 = os->open("/f", O_RDONLY, 0)) >= 0);
    CHECK_ERR(os->write(fd2, "x", 1), EBADF);
    CHECK_ERR(os->ftruncate(fd2, 0), EINVAL);
    CHECK(os->close(fd2) == 0);
    CHECK_ERR(os->close(fd2), EBADF);
    CHECK_ERR(os->read(fd2, buf, 1), EBADF);
    CHECK_ERR(os->write(5, "x", 1), EBADF);
    CHECK_ERR(os->fsync(100000 + 999), EBADF);
    CHECK_ERR(os->fstat(-1, &st), EBADF);
    CHECK_ERR(os->read(dfd, buf, 1), EISDIR);
    CHECK_ERR(os->write(dfd, "x", 1), EBADF);
    CHECK_ERR(os->ftruncate(dfd, 0), EINVAL);

    /* fsync and fdatasync of files and directories, syncfs, flock. */
    CHECK(os->fsync(fd) == 0 && os->fdatasync(fd) == 0);
    CHECK(os->fsync(dfd) == 0 && os->fdatasync(dfd) == 0);
    CHECK(os->syncfs(fd) == 0);
    CHECK(os->flock(fd, LOCK_EX | LOCK_NB) == 0);
    CHECK(os->flock(fd, LOCK_UN) == 0);
    CHECK_ERR(os->flock(fd, 0), EINVAL);

    /* Only open/openat, write/pwritev, fsync, fdatasync, syncfs,
     * rename(at), unlink(at), mkdir, ftruncate and mmap are counted. */
    CHECK(os->pwritev(fd, &(struct iovec){data, 100}, 1, 0) == 100);
    calls = sim_calls();
    CHECK(os->pread(fd, buf, 1, 0) == 1 && os->read(fd, buf, 1) >= 0);
    iov[0] = (struct iovec){buf, 1};
    CHECK(os->preadv(fd, iov, 1, 0) == 1);
    CHECK(os->lseek(fd, 0, SEEK_SET) == 0 && os->fstat(fd, &st) == 0);
    CHECK(os->stat("/f", &st) == 0 && os->fstatat(dfd, "f", &st, 0) == 0);
    CHECK(os->flock(fd, LOCK_SH) == 0);
    CHECK(sim_calls() == calls);
    CHECK(os->fsync(fd) == 0 && os->ftruncate(fd, 0) == 0);
    CHECK(sim_calls() == calls + 2);

    /* An unlinked file works on through its descriptor. */
    CHECK(os->unlink("/f") == 0);
    CHECK(!sim_exists("/f") && sim_file_size("/f") == -1);
    CHECK(os->pwritev(fd, &(struct iovec){data, 4096}, 1, 0) == 4096);
    CHECK(os->fdatasync(fd) == 0);
    CHECK(os->pread(fd, buf, sizeof buf, 0) == 4096);
    CHECK(memcmp(buf, data, 4096) == 0);
    CHECK(os->fstat(fd, &st) == 0 && st.st_nlink == 0 && st.st_size == 4096);
    CHECK_ERR(os->stat("/f", &st), ENOENT);
    CHECK(os->close(fd) == 0);
    CHECK(os->close(dfd) == 0);

    /* The clock is the real monotonic one. */
    {
        struct timespec a, b;

        CHECK(os->clock_gettime(CLOCK_MONOTONIC, &a) == 0);
        CHECK(os->clock_gettime(CLOCK_MONOTONIC, &b) == 0);
        CHECK(b.tv_sec > a.tv_sec ||
              (b.tv_sec == a.tv_sec && b.tv_nsec >= a.tv_nsec));
    }
    free(data);
}

/* Creates an empty file name relative to dirfd. */
static void
touch(int dirfd, const char *name)
{
    int fd = os->openat(dirfd, name, O_WRONLY | O_CREAT, 0644);

    CHECK(fd >= 0);
    CHECK(os->close(fd) == 0);
}

static void
test_dirs(void)
{
    struct stat st;
    int dfd, sub, fd;

    sim_reset(2);
    CHECK(os->mkdir("/d", 0755) == 0);
    CHECK_ERR(os->mkdir("/d", 0755), EEXIST);
    CHECK_ERR(os->mkdir("/", 0755), EEXIST);
    CHECK_ERR(os->mkdir("/x/y", 0755), ENOENT);
    CHECK(os->mkdir("/d/sub/", 0755) == 0); /* a trailing slash is fine */
    CHECK(os->stat("/d/", &st) == 0 && S_ISDIR(st.st_mode));
    CHECK(st.st_nlink == 3);
    CHECK(os->stat("/d/./sub/../sub", &st) == 0 && S_ISDIR(st.st_mode));
    CHECK(os->stat("//d//sub", &st) == 0);

    /* Names relative to a directory descriptor. */
    CHECK((dfd = os->open("/d", O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0)) >= 0);
    CHECK((fd = os->openat(dfd, "f", O_RDWR | O_CREAT | O_EXCL, 0644)) >= 0);
    CHECK(os->write(fd, "abc", 3) == 3);
    CHECK(os->fstatat(dfd, "f", &st, 0) == 0 && st.st_size == 3);
    CHECK(os->fstatat(dfd, "", &st, AT_EMPTY_PATH) == 0);
    CHECK(S_ISDIR(st.st_mode));
    CHECK(os->fstatat(AT_FDCWD, "d/f", &st, 0) == 0 && st.st_size == 3);
    CHECK(os->fstatat(dfd, "/d/f", &st, 0) == 0); /* absolute: dirfd unused */
    CHECK_ERR(os->fstatat(dfd, "f", &st, 0x4000000), EINVAL);
    CHECK_ERR(os->fstatat(dfd, "nope", &st, 0), ENOENT);
    CHECK_ERR(os->openat(fd, "x", O_RDONLY, 0), ENOTDIR);
    CHECK_ERR(os->openat(424242, "x", O_RDONLY, 0), EBADF);
    CHECK_ERR(os->fstatat(fd, "x", &st, 0), ENOTDIR);

    /* Listing. */
    touch(dfd, "b");
    CHECK(strcmp(sim_dir_entry("/d", 0), "b") == 0);
    CHECK(strcmp(sim_dir_entry("/d", 1), "f") == 0);
    CHECK(strcmp(sim_dir_entry("/d", 2), "sub") == 0);
    CHECK(sim_dir_entry("/d", 3) == NULL && sim_dir_entry("/d/f", 0) == NULL);
    CHECK(sim_dir_entry("/nope", 0) == NULL);
    CHECK(sim_exists("/d/sub") && sim_exists("/") && !sim_exists("/d/g"));
    CHECK(sim_file_size("/d") == -1);

    /* unlinkat. */
    CHECK_ERR(os->unlinkat(dfd, "sub", 0), EISDIR);
    CHECK_ERR(os->unlinkat(dfd, "f", AT_REMOVEDIR), ENOTDIR);
    CHECK_ERR(os->unlinkat(dfd, "nope", 0), ENOENT);
    CHECK_ERR(os->unlinkat(dfd, "f", 0x1), EINVAL);
    CHECK((sub = os->open("/d/sub", O_RDONLY | O_DIRECTORY, 0)) >= 0);
    touch(sub, "g");
    CHECK_ERR(os->unlinkat(dfd, "sub", AT_REMOVEDIR), ENOTEMPTY);
    CHECK(os->unlinkat(sub, "g", 0) == 0);
    CHECK(os->unlinkat(dfd, "sub", AT_REMOVEDIR) == 0);
    CHECK(!sim_exists("/d/sub"));
    /* Nothing can be created in a removed directory. */
    CHECK_ERR(os->openat(sub, "h", O_WRONLY | O_CREAT, 0644), ENOENT);
    CHECK(os->fstat(sub, &st) == 0 && st.st_nlink == 0);
    CHECK(os->close(sub) == 0);

    /* rename and renameat: atomic replace, within or across
     * directories. */
    CHECK(os->mkdir("/e", 0755) == 0);
    CHECK(os->rename("/d/f", "/d/b") == 0); /* replaces b */
    CHECK(!sim_exists("/d/f") && sim_file_size("/d/b") == 3);
    CHECK(os->renameat(dfd, "b", AT_FDCWD, "/e/c") == 0);
    CHECK(!sim_exists("/d/b") && sim_file_size("/e/c") == 3);
    CHECK(os->write(fd, "d", 1) == 1); /* still the same file */
    CHECK(sim_file_size("/e/c") == 4);
    CHECK(os->rename("/e/c", "/e/c") == 0);
    CHECK_ERR(os->rename("/e/none", "/e/x"), ENOENT);
    CHECK_ERR(os->rename("/e/c", "/none/x"), ENOENT);
    CHECK_ERR(os->rename("/e/c", "/d"), EISDIR);
    CHECK_ERR(os->rename("/d", "/e/c"), ENOTDIR);
    CHECK_ERR(os->rename("/d", "/d/inside"), EINVAL);
    CHECK(os->mkdir("/e/full", 0755) == 0);
    touch(AT_FDCWD, "/e/full/x");
    CHECK_ERR(os->rename("/d", "/e/full"), ENOTEMPTY);
    CHECK(os->rename("/d", "/e/dd") == 0); /* a directory moves */
    CHECK(os->stat("/e/dd/..", &st) == 0);
    CHECK(os->fstatat(dfd, "..", &st, 0) == 0);
    CHECK(os->stat("/e", &st) == 0 && st.st_nlink == 4);
    CHECK(os->close(fd) == 0);
    touch(dfd, "in-moved");
    CHECK(sim_exists("/e/dd/in-moved"));
    CHECK_ERR(os->unlink("/e/dd"), EISDIR);
    CHECK_ERR(os->unlink("/"), EISDIR);
    CHECK_ERR(os->unlinkat(AT_FDCWD, "/", AT_REMOVEDIR), EBUSY);
    CHECK(os->close(dfd) == 0);
}

static void
test_mmap(void)
{
    unsigned char *data = pattern_new(5000, 3);
    const unsigned char *m, *m2;
    uint64_t calls;
    int fd, wfd, dfd;

    sim_reset(3);
    put("/m", data, 5000, false);
    CHECK((fd = os->open("/m", O_RDONLY, 0)) >= 0);
    calls = sim_calls();
    m = os->mmap(NULL, 8192, PROT_READ, MAP_SHARED, fd, 0);
    CHECK(m != MAP_FAILED);
    CHECK(sim_calls() == calls + 1); /* mmap is counted */
    CHECK(memcmp(m, data, 5000) == 0);
    for (int i = 5000; i < 8192; i++) /* zeros past the end of the file */
        CHECK(m[i] == 0);
    CHECK(os->madvise((void *)m, 8192, MADV_SEQUENTIAL) == 0);
    m2 = os->mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 4096);
    CHECK(m2 != MAP_FAILED && memcmp(m2, data + 4096, 904) == 0);
    CHECK(m2[904] == 0 && m2[4095] == 0);
    CHECK(os->munmap((void *)m, 8192) == 0);
    CHECK_ERR(os->munmap((void *)m, 8192), EINVAL);
    CHECK_ERR(os->madvise((void *)m, 8192, MADV_WILLNEED), ENOMEM);
    CHECK_ERR(os->munmap((void *)m2, 100000), EINVAL);
    CHECK(os->munmap((void *)m2, 4096) == 0);

    CHECK(os->mmap(NULL, 0, PROT_READ, MAP_SHARED, fd, 0) == MAP_FAILED);
    CHECK(errno == EINVAL);
    CHECK(os->mmap(NULL, 10, PROT_READ, MAP_SHARED, fd, 100) == MAP_FAILED);
    CHECK(errno == EINVAL);
    CHECK(os->mmap(NULL, 10, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) ==
          MAP_FAILED);
    CHECK(errno == EINVAL);
    CHECK(os->mmap(NULL, 10, PROT_READ, MAP_SHARED, 123, 0) == MAP_FAILED);
    CHECK(errno == EBADF);
    CHECK((dfd = os->open("/", O_RDONLY | O_DIRECTORY, 0)) >= 0);
    CHECK(os->mmap(NULL, 10, PROT_READ, MAP_SHARED, dfd, 0) == MAP_FAILED);
    CHECK(errno == ENODEV);
    CHECK((wfd = os->open("/m", O_WRONLY, 0)) >= 0);
    CHECK(os->mmap(NULL, 10, PROT_READ, MAP_SHARED, wfd, 0) == MAP_FAILED);
    CHECK(errno == EACCES);
    CHECK(os->close(fd) == 0 && os->close(wfd) == 0 && os->close(dfd) == 0);
    free(data);
}

/* ---------------------------------------------------------------------- */
/* What a power cut keeps. */

#define SEEDS 400

/* fdatasync'ed data survives every cut; what followed it survives as an
 * in-order prefix, maybe torn. */
static void
test_synced_survives(void)
{
    static const struct mop synced[] = {{false, 0, 700, 1},
                                        {false, 700, 1300, 2}};
    static const struct mop later[] = {{false, 2000, 2000, 3},
                                       {false, 4000, 100, 4}};
    struct state durable = {NULL, 0};
    int count[OUT_N] = {0};

    for (int i = 0; i < 2; i++)
        state_apply(&durable, &synced[i], synced[i].len);
    for (uint64_t seed = 0; seed < SEEDS; seed++) {
        unsigned char *got;
        long n;
        int fd;

        setup(seed);
        fd = os->open("/sim/home/log", O_WRONLY | O_CREAT | O_APPEND, 0644);
        CHECK(fd >= 0);
        dsync("/sim/home");
        for (int i = 0; i < 2; i++) {
            unsigned char *d =
                pattern_new((size_t)synced[i].len, synced[i].fill);

            CHECK(os->write(fd, d, (size_t)synced[i].len) ==
                  (ssize_t)synced[i].len);
            free(d);
        }
        CHECK(os->fdatasync(fd) == 0);
        for (int i = 0; i < 2; i++) {
            unsigned char *d =
                pattern_new((size_t)later[i].len, later[i].fill);

            CHECK(os->write(fd, d, (size_t)later[i].len) ==
                  (ssize_t)later[i].len);
            free(d);
        }
        cut_and_reboot();
        CHECK((n = slurp("/sim/home/log", &got)) >= 0);
        CHECK((size_t)n >= durable.size);
        CHECK(memcmp(got, durable.p, durable.size) == 0);
        count[classify(&durable, later, 2, got, (size_t)n)]++;
        free(got);
    }
    CHECK(count[OUT_NONE] > 0 && count[OUT_ALL] > 0 && count[OUT_SOME] > 0);
    CHECK(count[OUT_TORN] > 0);
    free(durable.p);
}

/* Unsynced writes and truncates survive as none, all, some (a prefix) or
 * torn -- each of the four over the seeds, and nothing else, ever. */
static void
test_unsynced_prefix(void)
{
    static const struct mop base = {false, 0, 600, 9};
    static const struct mop ops[] = {
        {false, 0, 1500, 1},    /* overwrites the durable bytes, grows */
        {false, 1500, 2000, 2}, /* appends */
        {true, 3000, 0, 0},     /* shrinks */
        {false, 700, 1000, 3},  /* overwrites inside */
        {false, 3000, 1300, 4}, /* appends again */
        {true, 6000, 0, 0},     /* grows with zeros */
    };
    const int nops = (int)(sizeof ops / sizeof ops[0]);
    struct state durable = {NULL, 0};
    int count[OUT_N] = {0};

    state_apply(&durable, &base, base.len);
    for (uint64_t seed = 0; seed < SEEDS; seed++) {
        unsigned char *got;
        long n;
        int fd;

        setup(seed);
        CHECK((fd = os->open("/sim/home/f", O_RDWR | O_CREAT, 0644)) >= 0);
        dsync("/sim/home");
        perform(fd, &base, 1);
        CHECK(os->fdatasync(fd) == 0);
        perform(fd, ops, nops);
        cut_and_reboot();
        CHECK((n = slurp("/sim/home/f", &got)) >= 0);
        count[classify(&durable, ops, nops, got, (size_t)n)]++;
        free(got);
    }
    CHECK(count[OUT_NONE] > 0 && count[OUT_ALL] > 0 && count[OUT_SOME] > 0);
    CHECK(count[OUT_TORN] > 0);
    free(durable.p);
}

/* A created file's name is durable only once its directory is fsynced:
 * the file's own fsync does not do it. */
static void
test_create_needs_dir_fsync(void)
{
    unsigned char *data = pattern_new(5000, 5);
    int gone = 0, kept = 0;

    for (uint64_t seed = 0; seed < SEEDS; seed++) {
        int fd;

        setup(seed);
        CHECK((fd = os->open("/sim/home/new", O_WRONLY | O_CREAT, 0644)) >= 0);
        CHECK(os->write(fd, data, 5000) == 5000);
        CHECK(os->fsync(fd) == 0);
        CHECK(os->close(fd) == 0);
        cut_and_reboot();
        if (!sim_exists("/sim/home/new"))
            gone++;
        else {
            CHECK(holds("/sim/home/new", data, 5000));
            kept++;
        }
    }
    CHECK(gone > 0 && kept > 0);

    for (uint64_t seed = 0; seed < SEEDS; seed++) {
        setup(seed);
        put("/sim/home/new", data, 5000, true);
        dsync("/sim/home");
        cut_and_reboot();
        CHECK(holds("/sim/home/new", data, 5000));
    }
    free(data);
}

/* unlink and mkdir are directory changes like a create. */
static void
test_unlink_and_mkdir(void)
{
    unsigned char *data = pattern_new(3000, 6);
    int back = 0, gone = 0, lost = 0, there = 0;

    for (uint64_t seed = 0; seed < SEEDS; seed++) {
        setup(seed);
        put("/sim/home/old", data, 3000, true);
        dsync("/sim/home");
        CHECK(os->unlink("/sim/home/old") == 0);
        cut_and_reboot();
        if (sim_exists("/sim/home/old")) {
            CHECK(holds("/sim/home/old", data, 3000));
            back++;
        } else
            gone++;

        /* Made durable by the fsync: gone for good. */
        setup(seed);
        put("/sim/home/old", data, 3000, true);
        dsync("/sim/home");
        CHECK(os->unlink("/sim/home/old") == 0);
        dsync("/sim/home");
        cut_and_reboot();
        CHECK(!sim_exists("/sim/home/old"));

        /* A directory synced inside but not in its parent can vanish with
         * all it holds; synced in both, never. */
        setup(seed);
        CHECK(os->mkdir("/sim/home/sub", 0755) == 0);
        put("/sim/home/sub/f", data, 3000, true);
        dsync("/sim/home/sub");
        cut_and_reboot();
        if (sim_exists("/sim/home/sub")) {
            CHECK(holds("/sim/home/sub/f", data, 3000));
            there++;
        } else
            lost++;

        setup(seed);
        CHECK(os->mkdir("/sim/home/sub", 0755) == 0);
        put("/sim/home/sub/f", data, 3000, true);
        dsync("/sim/home/sub");
        dsync("/sim/home");
        cut_and_reboot();
        CHECK(holds("/sim/home/sub/f", data, 3000));
    }
    CHECK(back > 0 && gone > 0 && lost > 0 && there > 0);
    free(data);
}

/* rename in one directory: the target holds the old file or the new one,
 * whole, never neither; the source is gone exactly when the target is
 * new. */
static void
test_rename_same_dir(void)
{
    unsigned char *old = pattern_new(3000, 7), *new = pattern_new(4000, 8);
    int olds = 0, news = 0;

    for (uint64_t seed = 0; seed < SEEDS; seed++) {
        bool is_new;

        setup(seed);
        put("/sim/home/T", old, 3000, true);
        put("/sim/home/T.tmp", new, 4000, true);
        dsync("/sim/home");
        put("/sim/home/a", "a", 1, false); /* pending changes around it */
        CHECK(os->rename("/sim/home/T.tmp", "/sim/home/T") == 0);
        put("/sim/home/b", "b", 1, false);
        cut_and_reboot();
        is_new = holds("/sim/home/T", new, 4000);
        CHECK(is_new || holds("/sim/home/T", old, 3000));
        CHECK(sim_exists("/sim/home/T.tmp") == !is_new);
        if (!is_new)
            CHECK(holds("/sim/home/T.tmp", new, 4000));
        /* The directory's changes survive in order. */
        if (sim_exists("/sim/home/b"))
            CHECK(is_new);
        if (is_new)
            CHECK(sim_exists("/sim/home/a"));
        is_new ? news++ : olds++;

        /* After the directory's fsync, always the new one. */
        setup(seed);
        put("/sim/home/T", old, 3000, true);
        put("/sim/home/T.tmp", new, 4000, true);
        dsync("/sim/home");
        CHECK(os->rename("/sim/home/T.tmp", "/sim/home/T") == 0);
        dsync("/sim/home");
        cut_and_reboot();
        CHECK(holds("/sim/home/T", new, 4000));
        CHECK(!sim_exists("/sim/home/T.tmp"));
    }
    CHECK(olds > 0 && news > 0);
    free(old);
    free(new);
}

/* rename across directories is one change: the file is in exactly one of
 * them, and an fsync of either directory makes it durable in both. */
static void
test_rename_cross_dir(void)
{
    unsigned char *old = pattern_new(3000, 9), *new = pattern_new(4000, 10);
    int in_a = 0, in_b = 0, olds = 0, news = 0;

    for (uint64_t seed = 0; seed < SEEDS; seed++) {
        bool a, b;
        int afd, bfd;

        /* A new name. */
        setup(seed);
        CHECK(os->mkdir("/sim/a", 0755) == 0);
        CHECK(os->mkdir("/sim/b", 0755) == 0);
        dsync("/sim");
        put("/sim/a/f", new, 4000, true);
        dsync("/sim/a");
        put("/sim/a/x", "x", 1, false);
        put("/sim/b/y", "y", 1, false);
        CHECK((afd = os->open("/sim/a", O_RDONLY | O_DIRECTORY, 0)) >= 0);
        CHECK((bfd = os->open("/sim/b", O_RDONLY | O_DIRECTORY, 0)) >= 0);
        CHECK(os->renameat(afd, "f", bfd, "f") == 0);
        put("/sim/a/z", "z", 1, false);
        put("/sim/b/w", "w", 1, false);
        cut_and_reboot();
        a = sim_exists("/sim/a/f");
        b = sim_exists("/sim/b/f");
        CHECK(a != b);
        CHECK(holds(a ? "/sim/a/f" : "/sim/b/f", new, 4000));
        if (b) /* each directory's changes in order */
            CHECK(sim_exists("/sim/a/x") && sim_exists("/sim/b/y"));
        else
            CHECK(!sim_exists("/sim/a/z") && !sim_exists("/sim/b/w"));
        a ? in_a++ : in_b++;

        /* Replacing a durable target. */
        setup(seed);
        CHECK(os->mkdir("/sim/a", 0755) == 0);
        CHECK(os->mkdir("/sim/b", 0755) == 0);
        dsync("/sim");
        put("/sim/a/tmp", new, 4000, true);
        put("/sim/b/T", old, 3000, true);
        dsync("/sim/a");
        dsync("/sim/b");
        CHECK(os->rename("/sim/a/tmp", "/sim/b/T") == 0);
        cut_and_reboot();
        if (holds("/sim/b/T", new, 4000)) {
            CHECK(!sim_exists("/sim/a/tmp"));
            news++;
        } else {
            CHECK(holds("/sim/b/T", old, 3000));
            CHECK(holds("/sim/a/tmp", new, 4000));
            olds++;
        }

        /* The fsync of either directory makes it durable in both, with
         * what each directory did before it. */
        for (int which = 0; which < 2; which++) {
            setup(seed);
            CHECK(os->mkdir("/sim/a", 0755) == 0);
            CHECK(os->mkdir("/sim/b", 0755) == 0);
            dsync("/sim");
            put("/sim/a/tmp", new, 4000, true);
            put("/sim/b/T", old, 3000, true);
            dsync("/sim/a");
            dsync("/sim/b");
            put(which ? "/sim/a/x" : "/sim/b/x", "x", 1, false);
            CHECK(os->rename("/sim/a/tmp", "/sim/b/T") == 0);
            dsync(which ? "/sim/b" : "/sim/a");
            cut_and_reboot();
            CHECK(holds("/sim/b/T", new, 4000));
            CHECK(!sim_exists("/sim/a/tmp"));
            CHECK(sim_exists(which ? "/sim/a/x" : "/sim/b/x"));
        }
    }
    CHECK(in_a > 0 && in_b > 0 && olds > 0 && news > 0);
    free(old);
    free(new);
}

/* Touches many files and directories, syncing nothing: a state with
 * plenty pending.  Results are not checked: a cut may strike anywhere. */
static void
busy_workload(void)
{
    unsigned char *data = pattern_new(9000, 11);
    int fd, log, dfd;

    (void)os->mkdir("/sim/home/t1", 0755);
    (void)os->mkdir("/sim/home/t2", 0755);
    log = os->open("/sim/home/log", O_WRONLY | O_CREAT | O_APPEND, 0644);
    dfd = os->open("/sim/home", O_RDONLY | O_DIRECTORY, 0);
    for (int i = 0; i < 6; i++) {
        char name[64];

        snprintf(name, sizeof name, "/sim/home/t%d/f%d", 1 + i % 2, i);
        fd = os->open(name, O_RDWR | O_CREAT | O_TRUNC, 0644);
        (void)os->write(fd, data + i * 100, (size_t)(700 + 1100 * i));
        (void)os->pwritev(fd, &(struct iovec){data, 1000}, 1, 300);
        if (i % 3 == 1)
            (void)os->ftruncate(fd, 1000);
        if (i == 4)
            (void)os->fdatasync(fd);
        (void)os->close(fd);
        (void)os->write(log, data + i, (size_t)(64 + i * 200));
    }
    (void)os->renameat(dfd, "t1/f0", dfd, "t2/g0");
    (void)os->rename("/sim/home/t2/f1", "/sim/home/t2/f3");
    (void)os->unlinkat(dfd, "t1/f2", 0);
    (void)os->mkdir("/sim/home/t3", 0755);
    (void)os->rename("/sim/home/t2", "/sim/home/t3/t2");
    if (dfd >= 0)
        (void)os->fsync(dfd);
    (void)os->unlinkat(dfd, "t1/f4", 0);
    (void)os->close(dfd);
    (void)os->close(log);
    free(data);
}

/* syncfs makes everything durable: after it a cut loses nothing. */
static void
test_syncfs(void)
{
    for (uint64_t seed = 0; seed < SEEDS / 4; seed++) {
        struct dyn before = {0}, after = {0};
        int fd;

        setup(seed);
        busy_workload();
        CHECK((fd = os->open("/sim", O_RDONLY | O_DIRECTORY, 0)) >= 0);
        CHECK(os->syncfs(fd) == 0);
        CHECK(os->close(fd) == 0);
        dump("/", &before);
        cut_and_reboot();
        dump("/", &after);
        CHECK(before.n == after.n && memcmp(before.p, after.p, before.n) == 0);
        free(before.p);
        free(after.p);
    }
}

/* An O_DSYNC write is durable when it returns. */
static void
test_dsync(void)
{
    unsigned char *data = pattern_new(6000, 12);

    for (uint64_t seed = 0; seed < SEEDS; seed++) {
        int fd;

        setup(seed);
        put("/sim/home/d", "", 0, true);
        dsync("/sim/home");
        CHECK((fd = os->open("/sim/home/d", O_WRONLY | O_DSYNC, 0)) >= 0);
        CHECK(os->write(fd, data, 1000) == 1000);
        CHECK(os->write(fd, data + 1000, 5000) == 5000);
        cut_and_reboot();
        CHECK(holds("/sim/home/d", data, 6000));
    }
    free(data);
}

/* A failed fdatasync makes nothing durable.  (Whether a later one that
 * succeeds does is not part of the model's promises: Linux may drop the
 * dirty pages after a writeback error.) */
static void
test_failed_sync(void)
{
    unsigned char *data = pattern_new(3000, 13);
    int lost = 0;

    for (uint64_t seed = 0; seed < SEEDS; seed++) {
        int fd;

        setup(seed);
        CHECK((fd = os->open("/sim/home/f", O_WRONLY | O_CREAT, 0644)) >= 0);
        dsync("/sim/home");
        CHECK(os->write(fd, data, 3000) == 3000);
        sim_fail_at(sim_calls(), SIM_FAULT_EIO);
        CHECK_ERR(os->fdatasync(fd), EIO);
        CHECK(sim_fault_fired());
        cut_and_reboot();
        lost += !holds("/sim/home/f", data, 3000);
    }
    CHECK(lost > 0);
    free(data);
}

/* ---------------------------------------------------------------------- */
/* Faults. */

struct fixture {
    int p, dfd;
};

static void
fault_fixture(struct fixture *fx)
{
    unsigned char buf[8192] = {1};

    sim_reset(7);
    CHECK(os->mkdir("/d", 0755) == 0);
    CHECK((fx->p = os->open("/p", O_RDWR | O_CREAT, 0644)) >= 0);
    CHECK(os->write(fx->p, buf, sizeof buf) == (ssize_t)sizeof buf);
    put("/r1", "r", 1, false);
    put("/d/r3", "r", 1, false);
    put("/u1", "u", 1, false);
    put("/d/u2", "u", 1, false);
    CHECK((fx->dfd = os->open("/d", O_RDONLY | O_DIRECTORY, 0)) >= 0);
}

/* Calls that are not counted, between the steps: they must not move the
 * count nor meet the fault. */
static void
uncounted(const struct fixture *fx)
{
    unsigned char b[16];
    struct stat st;

    CHECK(os->pread(fx->p, b, sizeof b, 0) == (ssize_t)sizeof b);
    CHECK(os->fstat(fx->p, &st) == 0);
    CHECK(os->lseek(fx->p, 0, SEEK_CUR) >= 0);
    CHECK(os->stat("/d", &st) == 0);
    CHECK(os->fstatat(fx->dfd, ".", &st, 0) == 0);
    CHECK(os->flock(fx->p, LOCK_EX) == 0);
}

#define NSTEPS 14
static const char *const step_call[NSTEPS] = {
    "open",     "write",  "pwritev",  "fsync",     "fdatasync",
    "syncfs",   "mkdir",  "rename",   "renameat",  "unlink",
    "unlinkat", "ftruncate", "openat", "mmap"};

/* Makes counted call number i (each one succeeds without a fault).
 * Returns 0, or the errno it failed with -- after checking that it left
 * no trace. */
static int
step(const struct fixture *fx, int i)
{
    unsigned char buf[4096] = {2};
    struct iovec iov[2] = {{buf, 1000}, {buf + 1000, 3096}};
    int64_t size = sim_file_size("/p");
    const void *m;
    int fd, err = 0;

    switch (i) {
    case 0:
        if ((fd = os->open("/n1", O_RDWR | O_CREAT | O_EXCL, 0644)) < 0) {
            err = errno;
            CHECK(!sim_exists("/n1"));
        } else
            CHECK(os->close(fd) == 0);
        break;
    case 1:
        if (os->write(fx->p, buf, sizeof buf) < 0) {
            err = errno;
            CHECK(sim_file_size("/p") == size);
        } else
            CHECK(sim_file_size("/p") == size + 4096);
        break;
    case 2:
        if (os->pwritev(fx->p, iov, 2, 16384) < 0) {
            err = errno;
            CHECK(sim_file_size("/p") == size);
        } else
            CHECK(sim_file_size("/p") == 20480);
        break;
    case 3:
        err = os->fsync(fx->p) == 0 ? 0 : errno;
        break;
    case 4:
        err = os->fdatasync(fx->p) == 0 ? 0 : errno;
        break;
    case 5:
        err = os->syncfs(fx->dfd) == 0 ? 0 : errno;
        break;
    case 6:
        err = os->mkdir("/d2", 0755) == 0 ? 0 : errno;
        CHECK(sim_exists("/d2") == (err == 0));
        break;
    case 7:
        err = os->rename("/r1", "/r2") == 0 ? 0 : errno;
        CHECK(sim_exists("/r1") == (err != 0) && sim_exists("/r2") == !err);
        break;
    case 8:
        err = os->renameat(fx->dfd, "r3", fx->dfd, "r4") == 0 ? 0 : errno;
        CHECK(sim_exists("/d/r3") == (err != 0));
        CHECK(sim_exists("/d/r4") == (err == 0));
        break;
    case 9:
        err = os->unlink("/u1") == 0 ? 0 : errno;
        CHECK(sim_exists("/u1") == (err != 0));
        break;
    case 10:
        err = os->unlinkat(fx->dfd, "u2", 0) == 0 ? 0 : errno;
        CHECK(sim_exists("/d/u2") == (err != 0));
        break;
    case 11:
        err = os->ftruncate(fx->p, 100) == 0 ? 0 : errno;
        CHECK(sim_file_size("/p") == (err != 0 ? size : 100));
        break;
    case 12:
        if ((fd = os->openat(fx->dfd, "n2", O_WRONLY | O_CREAT, 0644)) < 0)
            err = errno;
        else
            CHECK(os->close(fd) == 0);
        CHECK(sim_exists("/d/n2") == (err == 0));
        break;
    case 13:
        if ((m = os->mmap(NULL, 100, PROT_READ, MAP_SHARED, fx->p, 0)) ==
            MAP_FAILED)
            err = errno;
        else
            CHECK(os->munmap((void *)m, 100) == 0);
        break;
    }
    return err;
}

/* A fault armed at index k hits exactly the k-th counted call, with the
 * chosen error, once. */
static void
test_faults(void)
{
    static const enum sim_fault faults[] = {SIM_FAULT_EIO, SIM_FAULT_ENOSPC,
                                            SIM_FAULT_EDQUOT, SIM_FAULT_SHORT};
    static const int errs[] = {EIO, ENOSPC, EDQUOT, EIO};
    struct fixture fx;

    for (int f = 0; f < 4; f++)
        for (int k = 0; k <= NSTEPS; k++) {
            char what[64];

            /* A short write on a write is test_short_writes'. */
            if (faults[f] == SIM_FAULT_SHORT && (k == 1 || k == 2))
                continue;
            fault_fixture(&fx);
            sim_count_restart();
            CHECK(sim_calls() == 0);
            sim_fail_at((uint64_t)k, faults[f]);
            for (int i = 0; i < NSTEPS; i++) {
                int err;

                CHECK(sim_fault_fired() == (i > k));
                uncounted(&fx);
                err = step(&fx, i);
                CHECK(err == (i == k ? errs[f] : 0));
                CHECK(sim_calls() == (uint64_t)i + 1);
                CHECK(!sim_power_is_cut());
            }
            CHECK(sim_fault_fired() == (k < NSTEPS));
            if (k < NSTEPS) {
                snprintf(what, sizeof what, "into call %d: %s ", k,
                         step_call[k]);
                CHECK(strstr(sim_last_event(), what) != NULL);
                /* It fired once: index k comes again, nothing fails. */
                sim_count_restart();
                for (int i = 0; i <= k; i++)
                    CHECK(os->fsync(fx.p) == 0);
            } else
                sim_disarm();
            CHECK(os->close(fx.p) == 0 && os->close(fx.dfd) == 0);
        }

    /* The event names the path. */
    fault_fixture(&fx);
    sim_count_restart();
    sim_fail_at(1, SIM_FAULT_ENOSPC);
    CHECK(step(&fx, 0) == 0 && step(&fx, 1) == ENOSPC);
    CHECK(strstr(sim_last_event(), "ENOSPC injected into call 1: write /p") !=
          NULL);
    /* Disarmed, nothing fires. */
    sim_fail_at(sim_calls() + 1, SIM_FAULT_EIO);
    sim_disarm();
    CHECK(step(&fx, 2) == 0 && step(&fx, 3) == 0);
    CHECK(!sim_fault_fired());
    CHECK(os->close(fx.p) == 0 && os->close(fx.dfd) == 0);
}

/* A short write writes a 512-byte multiple up to half, then the next write
 * of that descriptor fails with ENOSPC. */
static void
test_short_writes(void)
{
    unsigned char *data = pattern_new(4096, 14), buf[4096];
    struct iovec iov[3] = {{data, 1000}, {data + 1000, 1000},
                           {data + 2000, 1000}};
    int p, q;

    sim_reset(8);
    CHECK((p = os->open("/s", O_RDWR | O_CREAT, 0644)) >= 0);
    CHECK((q = os->open("/q", O_RDWR | O_CREAT, 0644)) >= 0);

    sim_fail_at(sim_calls(), SIM_FAULT_SHORT);
    CHECK(os->write(p, data, 4096) == 2048);
    CHECK(sim_fault_fired());
    CHECK(strstr(sim_last_event(), "short write injected") != NULL);
    CHECK(holds("/s", data, 2048));
    CHECK(os->lseek(p, 0, SEEK_CUR) == 2048);
    CHECK(os->write(q, "x", 1) == 1); /* another descriptor: unaffected */
    CHECK_ERR(os->write(p, "x", 1), ENOSPC);
    CHECK(holds("/s", data, 2048));
    CHECK(os->write(p, data + 2048, 2048) == 2048); /* once only */
    CHECK(holds("/s", data, 4096));

    /* Across iovecs. */
    CHECK(os->ftruncate(p, 0) == 0);
    sim_fail_at(sim_calls(), SIM_FAULT_SHORT);
    CHECK(os->pwritev(p, iov, 3, 0) == 1024);
    CHECK(holds("/s", data, 1024));
    CHECK_ERR(os->pwritev(p, iov, 3, 1024), ENOSPC);

    /* Less than two sectors: nothing written. */
    sim_fail_at(sim_calls(), SIM_FAULT_SHORT);
    CHECK(os->pwritev(p, iov, 1, 0) == 0);
    CHECK_ERR(os->write(p, data, 10), ENOSPC);
    CHECK(os->pread(p, buf, sizeof buf, 0) == 1024);
    CHECK(memcmp(buf, data, 1024) == 0);
    CHECK(os->close(p) == 0 && os->close(q) == 0);
    free(data);
}

/* A cut armed at k: call k and everything after fails with EIO (close
 * and munmap succeed) until sim_reboot, which invalidates every
 * descriptor and mapping. */
static void
test_cut_at(void)
{
    unsigned char *data = pattern_new(4096, 15), b[16];
    struct iovec iov = {b, sizeof b};
    struct timespec ts;
    struct stat st;
    const void *m;
    int fd, dfd, fd2;

    setup(9);
    sim_count_restart();
    CHECK((dfd = os->open("/sim/home", O_RDONLY | O_DIRECTORY, 0)) >= 0);
    CHECK((fd = os->openat(dfd, "f", O_RDWR | O_CREAT, 0644)) >= 0);
    CHECK(os->write(fd, data, 4096) == 4096);
    m = os->mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
    CHECK(m != MAP_FAILED);
    CHECK(sim_calls() == 4);
    sim_cut_at(5);
    CHECK(os->fdatasync(fd) == 0); /* call 4 */
    CHECK(!sim_power_is_cut() && !sim_fault_fired());
    CHECK_ERR(os->write(fd, data, 10), EIO); /* call 5: the cut */
    CHECK(sim_power_is_cut() && sim_fault_fired());
    CHECK(strstr(sim_last_event(), "power cut before call 5: write "
                                   "/sim/home/f") != NULL);
    CHECK(sim_file_size("/sim/home/f") == 4096);
    CHECK(sim_calls() == 6);

    CHECK_ERR(os->open("/sim/home/f", O_RDONLY, 0), EIO);
    CHECK_ERR(os->openat(dfd, "f", O_RDONLY, 0), EIO);
    CHECK_ERR(os->read(fd, b, 1), EIO);
    CHECK_ERR(os->pread(fd, b, 1, 0), EIO);
    CHECK_ERR(os->preadv(fd, &iov, 1, 0), EIO);
    CHECK_ERR(os->write(fd, b, 1), EIO);
    CHECK_ERR(os->pwritev(fd, &iov, 1, 0), EIO);
    CHECK_ERR(os->lseek(fd, 0, SEEK_SET), EIO);
    CHECK_ERR(os->ftruncate(fd, 0), EIO);
    CHECK_ERR(os->fsync(fd), EIO);
    CHECK_ERR(os->fdatasync(fd), EIO);
    CHECK_ERR(os->syncfs(fd), EIO);
    CHECK_ERR(os->fstat(fd, &st), EIO);
    CHECK_ERR(os->fstatat(dfd, "f", &st, 0), EIO);
    CHECK_ERR(os->stat("/sim", &st), EIO);
    CHECK_ERR(os->mkdir("/sim/x", 0755), EIO);
    CHECK_ERR(os->rename("/sim/home/f", "/sim/home/g"), EIO);
    CHECK_ERR(os->renameat(dfd, "f", dfd, "g"), EIO);
    CHECK_ERR(os->unlink("/sim/home/f"), EIO);
    CHECK_ERR(os->unlinkat(dfd, "f", 0), EIO);
    CHECK_ERR(os->flock(fd, LOCK_EX), EIO);
    CHECK_ERR(os->madvise((void *)m, 4096, MADV_WILLNEED), EIO);
    CHECK(os->mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0) == MAP_FAILED);
    CHECK(errno == EIO);
    CHECK(sim_calls() == 6); /* calls that never reach the disk: uncounted */
    CHECK(os->clock_gettime(CLOCK_MONOTONIC, &ts) == 0);
    CHECK(os->munmap((void *)m, 4096) == 0);
    CHECK(os->close(fd) == 0);

    sim_reboot();
    CHECK(!sim_power_is_cut());
    /* The data fdatasync'ed before the cut, under a durable name? The
     * name was never made durable: the file may be gone. */
    if (sim_exists("/sim/home/f"))
        CHECK(holds("/sim/home/f", data, 4096));
    /* Descriptors from before the reboot are invalid, closed or not, and
     * new ones never reuse their numbers. */
    CHECK_ERR(os->fstat(dfd, &st), EBADF);
    CHECK_ERR(os->close(dfd), EBADF);
    CHECK_ERR(os->write(fd, b, 1), EBADF);
    CHECK((fd2 = os->open("/sim/home", O_RDONLY | O_DIRECTORY, 0)) >= 0);
    CHECK(fd2 != fd && fd2 != dfd);
    CHECK(os->fsync(fd2) == 0);
    CHECK(os->close(fd2) == 0);
    free(data);
}

/* A reboot without a cut is a process kill: everything written stays
 * (still volatile), every descriptor and mapping becomes invalid. */
static void
test_reboot_without_cut(void)
{
    unsigned char *data = pattern_new(5000, 16);
    const void *m;
    struct stat st;
    int fd, lost = 0, kept = 0;

    for (uint64_t seed = 0; seed < SEEDS; seed++) {
        setup(seed);
        CHECK((fd = os->open("/sim/home/f", O_RDWR | O_CREAT, 0644)) >= 0);
        dsync("/sim/home");
        CHECK(os->write(fd, data, 5000) == 5000);
        CHECK((m = os->mmap(NULL, 5000, PROT_READ, MAP_SHARED, fd, 0)) !=
              MAP_FAILED);
        sim_reboot();
        CHECK(!sim_power_is_cut());
        CHECK(holds("/sim/home/f", data, 5000));
        CHECK_ERR(os->fstat(fd, &st), EBADF);
        CHECK_ERR(os->close(fd), EBADF);
        CHECK_ERR(os->madvise((void *)m, 5000, MADV_WILLNEED), ENOMEM);
        CHECK(os->munmap((void *)m, 5000) == 0);
        /* Volatile it stays: a cut after the kill can still lose it. */
        cut_and_reboot();
        if (holds("/sim/home/f", data, 5000))
            kept++;
        else
            lost++;
    }
    CHECK(kept > 0 && lost > 0);
    free(data);
}

/* The same seed and the same calls give the same survivors, byte for
 * byte; other seeds give others. */
static void
test_determinism(void)
{
    struct dyn prev = {0};
    uint64_t n;
    int differ = 0;

    setup(0);
    sim_count_restart();
    busy_workload();
    n = sim_calls();
    CHECK(n > 20);
    for (uint64_t seed = 0; seed < 60; seed++) {
        struct dyn run[2] = {{0}, {0}};

        for (int r = 0; r < 2; r++) {
            setup(seed * 7919);
            sim_count_restart();
            /* Cut at a call of the workload, or at its end. */
            sim_cut_at(seed % (n + 1));
            busy_workload();
            if (!sim_power_is_cut())
                sim_cut_now();
            sim_disarm(); /* the dump's calls are counted too */
            sim_reboot();
            dump("/", &run[r]);
        }
        CHECK(run[0].n == run[1].n);
        CHECK(memcmp(run[0].p, run[1].p, run[0].n) == 0);
        if (seed > 0 &&
            (prev.n != run[0].n || memcmp(prev.p, run[0].p, prev.n) != 0))
            differ++;
        free(prev.p);
        prev = run[0];
        free(run[1].p);
    }
    CHECK(differ > 0);
    free(prev.p);
}

/* Threads may call concurrently: each call is atomic. */
#define NTHREADS 4
#define NBLOCKS 200

static void *
writer(void *arg)
{
    int id = (int)(intptr_t)arg;
    unsigned char block[512];
    char name[64];
    struct stat st;
    int fd;

    snprintf(name, sizeof name, "/sim/home/t%d", id);
    CHECK((fd = os->open(name, O_RDWR | O_CREAT, 0644)) >= 0);
    for (int i = 0; i < NBLOCKS; i++) {
        struct iovec iov[2] = {{block, 100}, {block + 100, 412}};

        pattern(block, sizeof block, id * NBLOCKS + i);
        CHECK(os->pwritev(fd, iov, 2, (off_t)i * 512) == 512);
        CHECK(os->fstat(fd, &st) == 0 && st.st_size == (i + 1) * 512);
        if (i % 50 == 49)
            CHECK(os->fdatasync(fd) == 0);
        CHECK(os->stat("/sim/home", &st) == 0);
    }
    CHECK(os->close(fd) == 0);
    return NULL;
}

static void
test_threads(void)
{
    pthread_t t[NTHREADS];

    setup(10);
    for (int i = 0; i < NTHREADS; i++)
        CHECK(pthread_create(&t[i], NULL, writer, (void *)(intptr_t)i) == 0);
    for (int i = 0; i < NTHREADS; i++)
        CHECK(pthread_join(t[i], NULL) == 0);
    dsync("/sim/home");
    cut_and_reboot();
    for (int id = 0; id < NTHREADS; id++) {
        unsigned char *got, block[512];
        char name[64];

        snprintf(name, sizeof name, "/sim/home/t%d", id);
        CHECK(slurp(name, &got) == NBLOCKS * 512);
        for (int i = 0; i < NBLOCKS; i++) {
            pattern(block, sizeof block, id * NBLOCKS + i);
            CHECK(memcmp(got + i * 512, block, 512) == 0);
        }
        free(got);
    }
}

int
main(void)
{
    static const struct {
        const char *name;
        void (*fn)(void);
    } tests[] = {
        {"files", test_files},
        {"dirs", test_dirs},
        {"mmap", test_mmap},
        {"synced_survives", test_synced_survives},
        {"unsynced_prefix", test_unsynced_prefix},
        {"create_needs_dir_fsync", test_create_needs_dir_fsync},
        {"unlink_and_mkdir", test_unlink_and_mkdir},
        {"rename_same_dir", test_rename_same_dir},
        {"rename_cross_dir", test_rename_cross_dir},
        {"syncfs", test_syncfs},
        {"dsync", test_dsync},
        {"failed_sync", test_failed_sync},
        {"faults", test_faults},
        {"short_writes", test_short_writes},
        {"cut_at", test_cut_at},
        {"reboot_without_cut", test_reboot_without_cut},
        {"determinism", test_determinism},
        {"threads", test_threads},
    };

    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
        fprintf(stderr, "test_simdisk: %s\n", tests[i].name);
        tests[i].fn();
    }
    sim_reset(0); /* frees the last run's state */
    fprintf(stderr, "test_simdisk: all passed\n");
    return 0;
}
