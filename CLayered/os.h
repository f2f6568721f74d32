/*
 * os.h -- the one seam to the operating system (internal).
 *
 * Every file-system call of the core and every reading of the clock goes
 * through a table of function pointers that the connection holds
 * (conn->os) and hands to its files (fs_env.os), so a test can put a
 * simulated disk (power cuts, I/O faults) or clock underneath
 * (layered_open_os in layered_test.h).  os.c holds the one table that calls
 * the system; no other file calls these functions directly, which
 * Tests/os_seam_test.sh checks on the objects of liblayered.a.  Threads,
 * locks and futexes are not the file system and do not go through it.
 *
 * CONVENTION: each member has the signature and the convention of the
 * system call it is named for: it returns what the call returns (-1 on
 * failure, MAP_FAILED for mmap) and leaves the error in errno, so a call
 * site reads as the plain call did.  open and openat take their mode
 * always (0 when no file is created).  fsync also syncs directories
 * (os_dir_fsync).  clock_gettime is asked for CLOCK_MONOTONIC only, and
 * also gives the deadlines of condition-variable waits on CLOCK_MONOTONIC
 * (the maintenance thread, layered_failpoint_wait).  The helpers below the
 * table (os_*) return 0 or an errno, like the rest of the core.
 *
 * Concurrency contract: one table serves every thread of a connection and
 * all its files; each member may be called from any thread, concurrently
 * with every other, as the system calls may.  A table is never copied:
 * it must outlive every connection and file that uses it.
 */
#ifndef LAYERED_OS_H
#define LAYERED_OS_H

#include "namespace.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>

struct os_ops {
    /* files and directories */
    int (*open)(const char *path, int flags, mode_t mode);
    int (*openat)(int dirfd, const char *path, int flags, mode_t mode);
    int (*close)(int fd);
    ssize_t (*read)(int fd, void *buf, size_t len);
    ssize_t (*pread)(int fd, void *buf, size_t len, off_t off);
    ssize_t (*preadv)(int fd, const struct iovec *iov, int iovcnt,
                      off_t off);
    ssize_t (*write)(int fd, const void *buf, size_t len);
    ssize_t (*pwritev)(int fd, const struct iovec *iov, int iovcnt,
                       off_t off);
    off_t (*lseek)(int fd, off_t off, int whence);
    int (*ftruncate)(int fd, off_t len);
    int (*fsync)(int fd);
    int (*fdatasync)(int fd);
    int (*syncfs)(int fd);
    /* Start writing back a range (SYNC_FILE_RANGE_WRITE): no durability
     * is promised, it only lets the device work while the caller goes on;
     * fdatasync still makes the range durable.  May be NULL. */
    int (*sync_file_range)(int fd, off_t off, off_t len, unsigned flags);
    int (*fstat)(int fd, struct stat *st);
    int (*fstatat)(int dirfd, const char *path, struct stat *st, int flags);
    int (*stat)(const char *path, struct stat *st);
    int (*mkdir)(const char *path, mode_t mode);
    int (*rename)(const char *from, const char *to);
    int (*renameat)(int fromdirfd, const char *from, int todirfd,
                    const char *to);
    /* renameat that fails with EEXIST, atomically, if `to` exists
     * (renameat2's RENAME_NOREPLACE). */
    int (*renameat_noreplace)(int fromdirfd, const char *from, int todirfd,
                              const char *to);
    int (*unlink)(const char *path);
    int (*unlinkat)(int dirfd, const char *path, int flags);
    int (*flock)(int fd, int op);
    /* read-only mappings of files */
    void *(*mmap)(void *addr, size_t len, int prot, int flags, int fd,
                  off_t off);
    int (*munmap)(void *addr, size_t len);
    int (*madvise)(void *addr, size_t len, int advice);
    /* the clock */
    int (*clock_gettime)(clockid_t clock, struct timespec *ts);
};

/* The system's calls: what a connection uses unless a test gives it
 * another table. */
extern const struct os_ops os_default;

/* os_dir_fsync --
 *     fsync a directory, so the entries created, renamed or removed in it
 *     are durable.  Returns 0 or an errno.  Any thread. */
int os_dir_fsync(const struct os_ops *os, int dirfd);

/* os_parent_fsync --
 *     os_dir_fsync of the directory that holds path (trailing slashes
 *     ignored: "a/b/" is held by "a"), opened for the purpose.  Returns 0
 *     or an errno (ENOMEM, or the open's or fsync's).  Any thread. */
int os_parent_fsync(const struct os_ops *os, const char *path);

/* os_pwrite_full --
 *     Write len bytes at off, going on after short writes and EINTR.
 *     Returns 0 or an errno (EIO for a write that wrote nothing).  Any
 *     thread. */
int os_pwrite_full(const struct os_ops *os, int fd, const void *p,
                   size_t len, uint64_t off);

/* os_now_ns --
 *     The monotonic clock in nanoseconds.  Any thread. */
uint64_t os_now_ns(const struct os_ops *os);

#endif /* LAYERED_OS_H */
