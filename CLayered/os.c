/*
 * os.c -- the one seam to the operating system: the table of the system's
 * file-system and clock calls, and the helpers built on a table.  The only
 * file of the core that calls these functions directly (os.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "os.h"

/*
 * sys_open, sys_openat --
 *     open(2) and openat(2) are variadic: the table's members always take
 *     the mode.
 */
static int
sys_open(const char *path, int flags, mode_t mode)
{
    return open(path, flags, mode);
}

static int
sys_openat(int dirfd, const char *path, int flags, mode_t mode)
{
    return openat(dirfd, path, flags, mode);
}

static int
sys_renameat_noreplace(int fromdirfd, const char *from, int todirfd,
                       const char *to)
{
    return renameat2(fromdirfd, from, todirfd, to, RENAME_NOREPLACE);
}

const struct os_ops os_default = {
    .open = sys_open,
    .openat = sys_openat,
    .close = close,
    .read = read,
    .pread = pread,
    .preadv = preadv,
    .write = write,
    .pwritev = pwritev,
    .lseek = lseek,
    .ftruncate = ftruncate,
    .fsync = fsync,
    .fdatasync = fdatasync,
    .syncfs = syncfs,
    .sync_file_range = sync_file_range,
    .fstat = fstat,
    .fstatat = fstatat,
    .stat = stat,
    .mkdir = mkdir,
    .rename = rename,
    .renameat = renameat,
    .renameat_noreplace = sys_renameat_noreplace,
    .unlink = unlink,
    .unlinkat = unlinkat,
    .flock = flock,
    .mmap = mmap,
    .munmap = munmap,
    .madvise = madvise,
    .clock_gettime = clock_gettime,
};

int
os_dir_fsync(const struct os_ops *os, int dirfd)
{
    return os->fsync(dirfd) == 0 ? 0 : errno;
}

int
os_parent_fsync(const struct os_ops *os, const char *path)
{
    char *copy, *slash;
    const char *parent;
    int fd, ret;

    if ((copy = strdup(path)) == NULL)
        return ENOMEM;
    /* "a/b/" names b: ignore trailing slashes. */
    for (slash = copy + strlen(copy) - 1; slash > copy && *slash == '/';
         slash--)
        *slash = '\0';
    if ((slash = strrchr(copy, '/')) == NULL)
        parent = ".";
    else if (slash == copy)
        parent = "/";
    else {
        *slash = '\0';
        parent = copy;
    }
    if ((fd = os->open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0)) < 0)
        ret = errno;
    else {
        ret = os_dir_fsync(os, fd);
        (void)os->close(fd);
    }
    free(copy);
    return ret;
}

uint64_t
os_now_ns(const struct os_ops *os)
{
    struct timespec ts;

    (void)os->clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int
os_pwrite_full(const struct os_ops *os, int fd, const void *p, size_t len,
               uint64_t off)
{
    size_t done = 0;

    while (done < len) {
        struct iovec iov = {.iov_base = (char *)(uintptr_t)p + done,
                            .iov_len = len - done};
        ssize_t n = os->pwritev(fd, &iov, 1, (off_t)(off + done));

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? errno : EIO;
        done += (size_t)n;
    }
    return 0;
}
