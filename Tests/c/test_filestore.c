/*
 * test_filestore.c -- the file store: records, index, recovery, copy.
 *
 * Every test runs in its own scratch directory and checks the file's whole
 * contents against an in-memory reference.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "filestore.h"
#include "testutil.h"

static uint64_t seed_state;
static _Atomic uint64_t lsn_counter;

/* Messages received through the env hook. */
static pthread_mutex_t msg_lock = PTHREAD_MUTEX_INITIALIZER;
static int msg_count;
static char msg_last[1024];

static void
msg_hook(void *arg, const char *msg)
{
    (void)arg;
    pthread_mutex_lock(&msg_lock);
    ++msg_count;
    snprintf(msg_last, sizeof(msg_last), "%s", msg);
    pthread_mutex_unlock(&msg_lock);
}

static void
msg_reset(void)
{
    pthread_mutex_lock(&msg_lock);
    msg_count = 0;
    msg_last[0] = '\0';
    pthread_mutex_unlock(&msg_lock);
}

/* Failpoint hook: fails the named point with fp_error fp_times times. */
static const char *fp_name;
static int fp_error;
static int fp_times;
static int fp_hits;

static int
fp_hook(void *arg, const char *name)
{
    (void)arg;
    if (fp_name != NULL && strcmp(name, fp_name) == 0 && fp_times > 0) {
        --fp_times;
        ++fp_hits;
        return fp_error;
    }
    return 0;
}

static void
fp_set(const char *name, int error, int times)
{
    fp_name = name;
    fp_error = error;
    fp_times = times;
    fp_hits = 0;
}

static fs_env
env_make(int sync)
{
    fs_env env;

    memset(&env, 0, sizeof(env));
    env.lsn = &lsn_counter;
    env.sync = sync;
    env.message = msg_hook;
    env.failpoint = fp_hook;
    return env;
}

static char *
path_in(const char *dir, const char *name)
{
    char *p;

    CHECK(asprintf(&p, "%s/%s", dir, name) > 0);
    return p;
}

static uint64_t
file_size(const char *path)
{
    struct stat st;

    CHECK(stat(path, &st) == 0);
    return (uint64_t)st.st_size;
}

/* The key of universe index i: a few shapes so that prefixes, zero bytes
 * and lengths all matter to the order. */
static size_t
key_of(uint64_t i, unsigned char *buf)
{
    size_t n;

    switch (i % 4) {
    case 0:
        return (size_t)sprintf((char *)buf, "k%08llu", (unsigned long long)i);
    case 1:
        return (size_t)sprintf((char *)buf, "k%llu", (unsigned long long)i);
    case 2:
        n = (size_t)sprintf((char *)buf, "k%06llu", (unsigned long long)i);
        buf[n] = '\0';
        buf[n + 1] = (unsigned char)(i & 0xff);
        return n + 2;
    default:
        n = 1 + (size_t)(i % 37);
        memset(buf, 0xff, n);
        buf[0] = (unsigned char)(i >> 8);
        buf[n - 1] = (unsigned char)i;
        return n;
    }
}

/* A value determined by (key index, version) and length. */
static void
val_fill(unsigned char *buf, size_t len, uint64_t i, uint64_t version)
{
    uint64_t s = (i * 0x9E3779B97F4A7C15ull) ^ (version + 1) * 0xD1B54A32D192ED03ull;
    size_t k;

    if (s == 0)
        s = 1;
    for (k = 0; k < len; k++) {
        if ((k & 7) == 0)
            tu_rand(&s);
        buf[k] = (unsigned char)(s >> ((k & 7) * 8));
    }
}

static size_t
val_len(uint64_t i, uint64_t version)
{
    return (size_t)((i * 7 + version * 13) % 300);
}

/* Reference state of one key of the universe. */
struct ref {
    unsigned char key[64];
    size_t klen;
    int state; /* 0 absent, 1 present, 2 tombstone */
    uint64_t version;
};

static int
ref_cmp(const void *a, const void *b)
{
    const struct ref *x = a, *y = b;
    size_t n = x->klen < y->klen ? x->klen : y->klen;
    int c = memcmp(x->key, y->key, n);

    if (c != 0)
        return c;
    return x->klen < y->klen ? -1 : x->klen > y->klen;
}

/* The key universe in key order; idx[i] is the universe index of refs[i]
 * (which determines its values). */
static struct ref *
refs_make(size_t n, uint64_t **idxp)
{
    struct ref *refs = calloc(n, sizeof(*refs));
    uint64_t *idx = calloc(n, sizeof(*idx));
    size_t i;

    CHECK(refs != NULL && idx != NULL);
    for (i = 0; i < n; i++) {
        refs[i].klen = key_of(i, refs[i].key);
        refs[i].version = i; /* temporarily: the universe index */
    }
    qsort(refs, n, sizeof(*refs), ref_cmp);
    for (i = 0; i < n; i++) {
        idx[i] = refs[i].version;
        refs[i].version = 0;
    }
    *idxp = idx;
    return refs;
}

/* Check the file's whole contents against the reference, forward and
 * backward, values included. */
static void
check_contents(fs_file *f, struct ref *refs, uint64_t *idx, size_t n)
{
    fs_pos pos = {0};
    void *buf = NULL;
    size_t cap = 0, i, vlen, count = 0;
    unsigned char want[400];
    int ret;
    long j;
    fs_info info;

    i = 0;
    for (ret = fs_seek(f, NULL, 0, FS_FIRST, &pos); ret == 0;
         ret = fs_seek(f, NULL, 0, FS_NEXT, &pos)) {
        while (i < n && refs[i].state == 0)
            i++;
        CHECK(i < n);
        CHECK(pos.klen == refs[i].klen &&
              memcmp(pos.key, refs[i].key, pos.klen) == 0);
        CHECK(pos.tombstone == (refs[i].state == 2));
        if (!pos.tombstone) {
            vlen = val_len(idx[i], refs[i].version);
            CHECK(pos.vlen == vlen);
            CHECK_OK(fs_read_value(f, &pos, &buf, &cap));
            val_fill(want, vlen, idx[i], refs[i].version);
            CHECK(memcmp(buf, want, vlen) == 0);
        } else
            CHECK(pos.vlen == 0);
        i++;
        count++;
    }
    CHECK_RET(LAYERED_NOTFOUND, ret);
    while (i < n && refs[i].state == 0)
        i++;
    CHECK(i == n);

    j = (long)n - 1;
    for (ret = fs_seek(f, NULL, 0, FS_LAST, &pos); ret == 0;
         ret = fs_seek(f, NULL, 0, FS_PREV, &pos)) {
        while (j >= 0 && refs[j].state == 0)
            j--;
        CHECK(j >= 0);
        CHECK(pos.klen == refs[j].klen &&
              memcmp(pos.key, refs[j].key, pos.klen) == 0);
        j--;
    }
    CHECK_RET(LAYERED_NOTFOUND, ret);
    while (j >= 0 && refs[j].state == 0)
        j--;
    CHECK(j == -1);

    fs_get_info(f, &info);
    CHECK(info.entries == count);
    CHECK(fs_empty(f) == (count == 0));
    fs_pos_free(&pos);
    free(buf);
}

/* Apply one put to file and reference. */
static void
do_put(fs_file *f, struct ref *refs, uint64_t *idx, size_t i, uint64_t version)
{
    unsigned char v[400];
    size_t vlen = val_len(idx[i], version);

    val_fill(v, vlen, idx[i], version);
    CHECK_OK(fs_put(f, refs[i].key, refs[i].klen, v, vlen, NULL));
    refs[i].state = 1;
    refs[i].version = version;
}

static void
do_del(fs_file *f, struct ref *refs, size_t i, bool keep)
{
    int ret = fs_del(f, refs[i].key, refs[i].klen, keep, NULL);

    if (keep) {
        CHECK_OK(ret);
        refs[i].state = 2;
    } else if (refs[i].state == 1) {
        CHECK_OK(ret);
        refs[i].state = 0;
    } else
        CHECK_RET(LAYERED_NOTFOUND, ret);
}

static void
test_crc(void)
{
    unsigned char buf[4096 + 16];
    uint64_t s = seed_state;
    size_t i, off, len;
    uint32_t a, b;

    CHECK(crc32c(0, "123456789", 9) == 0xE3069283u);
    CHECK(crc32c_portable(0, "123456789", 9) == 0xE3069283u);
    CHECK(crc32c(0, "", 0) == 0);
    for (i = 0; i < sizeof(buf); i++)
        buf[i] = (unsigned char)tu_rand(&s);
    for (i = 0; i < 500; i++) {
        off = tu_rand(&s) % 16;
        len = tu_rand(&s) % 4096;
        a = crc32c(0, buf + off, len);
        b = crc32c_portable(0, buf + off, len);
        CHECK(a == b);
        /* Chaining gives the checksum of the concatenation. */
        CHECK(crc32c(crc32c(0, buf + off, len / 3), buf + off + len / 3,
                     len - len / 3) == a);
    }
}

static void
test_roundtrip(const char *dir)
{
    char *path = path_in(dir, "rt");
    fs_env env = env_make(LAYERED_SYNC_WRITE);
    fs_file *f;
    fs_pos pos = {0};
    void *buf = NULL;
    size_t cap = 0;
    uint64_t lsn;

    CHECK_RET(ENOENT, fs_open(path, 0, &env, &f));
    CHECK(f == NULL);
    CHECK_OK(fs_open(path, FS_CREATE | FS_EXCL, &env, &f));
    CHECK(fs_empty(f));
    CHECK_RET(LAYERED_NOTFOUND, fs_seek(f, NULL, 0, FS_FIRST, &pos));
    CHECK_RET(EINVAL, fs_put(f, "", 0, "v", 1, NULL));
    CHECK_RET(EINVAL, fs_put(f, "k", 1, NULL, 1, NULL));
    CHECK_OK(fs_put(f, "hello", 5, "world", 5, &lsn));
    CHECK(lsn == atomic_load(&lsn_counter));
    CHECK_OK(fs_put(f, "empty", 5, NULL, 0, NULL));
    CHECK_OK(fs_seek(f, "hello", 5, FS_EQ, &pos));
    CHECK(pos.valid && pos.vlen == 5 && !pos.tombstone);
    CHECK_OK(fs_read_value(f, &pos, &buf, &cap));
    CHECK(memcmp(buf, "world", 5) == 0);
    CHECK_OK(fs_seek(f, "empty", 5, FS_EQ, &pos));
    CHECK(pos.vlen == 0);
    CHECK_OK(fs_read_value(f, &pos, &buf, &cap));
    CHECK_OK(fs_close(f));

    CHECK_RET(EEXIST, fs_open(path, FS_CREATE | FS_EXCL, &env, &f));
    CHECK_OK(fs_open(path, 0, &env, &f));
    CHECK_OK(fs_seek(f, "hello", 5, FS_EQ, &pos));
    CHECK_OK(fs_read_value(f, &pos, &buf, &cap));
    CHECK(memcmp(buf, "world", 5) == 0);
    CHECK_OK(fs_close(f));
    fs_pos_free(&pos);
    free(buf);
    free(path);
}

static void
test_order(const char *dir)
{
    const size_t n = 3000;
    char *path = path_in(dir, "order");
    fs_env env = env_make(LAYERED_SYNC_NONE);
    struct ref *refs;
    uint64_t *idx, s = seed_state;
    size_t i, k;
    fs_file *f;

    refs = refs_make(n, &idx);
    CHECK_OK(fs_open(path, FS_CREATE, &env, &f));
    for (k = 0; k < n * 2; k++) {
        i = tu_rand(&s) % n;
        do_put(f, refs, idx, i, refs[i].version + 1);
    }
    check_contents(f, refs, idx, n);
    CHECK_OK(fs_close(f));
    CHECK_OK(fs_open(path, 0, &env, &f));
    check_contents(f, refs, idx, n);
    CHECK_OK(fs_close(f));
    free(refs);
    free(idx);
    free(path);
}

static void
test_overwrite_delete(const char *dir, bool keep)
{
    const size_t n = 500;
    char *path = path_in(dir, keep ? "del-keep" : "del-stable");
    fs_env env = env_make(LAYERED_SYNC_WRITE);
    struct ref *refs;
    uint64_t *idx, s = seed_state;
    fs_info info;
    size_t i, k;
    fs_file *f;

    refs = refs_make(n, &idx);
    CHECK_OK(fs_open(path, FS_CREATE, &env, &f));
    for (k = 0; k < n * 4; k++) {
        i = tu_rand(&s) % n;
        if (tu_rand(&s) % 3 == 0)
            do_del(f, refs, i, keep);
        else
            do_put(f, refs, idx, i, refs[i].version + 1);
    }
    check_contents(f, refs, idx, n);
    fs_get_info(f, &info);
    CHECK(info.live_bytes < info.file_bytes);
    CHECK_OK(fs_close(f));
    CHECK_OK(fs_open(path, 0, &env, &f));
    check_contents(f, refs, idx, n);
    /* Absent keys: a stable delete is NOTFOUND, an ingest one a tombstone. */
    CHECK_RET(keep ? 0 : LAYERED_NOTFOUND,
              fs_del(f, "no-such-key", 11, keep, NULL));
    CHECK_OK(fs_close(f));
    free(refs);
    free(idx);
    free(path);
}

static void
check_pos(const fs_pos *pos, const char *key)
{
    CHECK(pos->valid);
    CHECK(pos->klen == strlen(key) && memcmp(pos->key, key, pos->klen) == 0);
}

static void
test_seek_modes(const char *dir)
{
    char *path = path_in(dir, "seek");
    fs_env env = env_make(LAYERED_SYNC_NONE);
    fs_pos pos = {0}, pos2 = {0};
    char k[16];
    int i;
    fs_file *f;

    CHECK_OK(fs_open(path, FS_CREATE, &env, &f));
    CHECK_RET(LAYERED_NOTFOUND, fs_seek(f, NULL, 0, FS_LAST, &pos));
    CHECK_RET(LAYERED_NOTFOUND, fs_seek(f, "a", 1, FS_GE, &pos));
    CHECK(!pos.valid);
    CHECK_RET(EINVAL, fs_seek(f, NULL, 0, FS_NEXT, &pos));
    for (i = 10; i <= 90; i += 10) {
        sprintf(k, "%d", i);
        CHECK_OK(fs_put(f, k, 2, k, 2, NULL));
    }
    CHECK_OK(fs_seek(f, "50", 2, FS_EQ, &pos));
    check_pos(&pos, "50");
    CHECK_RET(LAYERED_NOTFOUND, fs_seek(f, "55", 2, FS_EQ, &pos));
    CHECK_RET(LAYERED_NOTFOUND, fs_seek(f, "5", 1, FS_EQ, &pos));
    CHECK_OK(fs_seek(f, "55", 2, FS_GE, &pos));
    check_pos(&pos, "60");
    CHECK_OK(fs_seek(f, "50", 2, FS_GE, &pos));
    check_pos(&pos, "50");
    CHECK_OK(fs_seek(f, "5", 1, FS_GE, &pos)); /* "5" < "50" */
    check_pos(&pos, "50");
    CHECK_OK(fs_seek(f, "50", 2, FS_GT, &pos));
    check_pos(&pos, "60");
    CHECK_OK(fs_seek(f, "500", 3, FS_GT, &pos));
    check_pos(&pos, "60");
    CHECK_OK(fs_seek(f, "55", 2, FS_LE, &pos));
    check_pos(&pos, "50");
    CHECK_OK(fs_seek(f, "50", 2, FS_LE, &pos));
    check_pos(&pos, "50");
    CHECK_OK(fs_seek(f, "50", 2, FS_LT, &pos));
    check_pos(&pos, "40");
    CHECK_OK(fs_seek(f, "500", 3, FS_LT, &pos));
    check_pos(&pos, "50");
    CHECK_RET(LAYERED_NOTFOUND, fs_seek(f, "90", 2, FS_GT, &pos));
    CHECK_RET(LAYERED_NOTFOUND, fs_seek(f, "10", 2, FS_LT, &pos));
    CHECK_RET(LAYERED_NOTFOUND, fs_seek(f, "0", 1, FS_LE, &pos));
    CHECK_OK(fs_seek(f, "0", 1, FS_GE, &pos));
    check_pos(&pos, "10");
    CHECK_OK(fs_seek(f, "zz", 2, FS_LE, &pos));
    check_pos(&pos, "90");
    CHECK_OK(fs_seek(f, NULL, 0, FS_FIRST, &pos));
    check_pos(&pos, "10");
    CHECK_RET(LAYERED_NOTFOUND, fs_seek(f, NULL, 0, FS_PREV, &pos));
    CHECK_OK(fs_seek(f, NULL, 0, FS_LAST, &pos));
    check_pos(&pos, "90");
    CHECK_RET(LAYERED_NOTFOUND, fs_seek(f, NULL, 0, FS_NEXT, &pos));

    /* NEXT and PREV after the current entry was deleted. */
    CHECK_OK(fs_seek(f, "50", 2, FS_EQ, &pos));
    CHECK_OK(fs_seek(f, "50", 2, FS_EQ, &pos2));
    CHECK_OK(fs_del(f, "50", 2, false, NULL));
    CHECK_OK(fs_seek(f, NULL, 0, FS_NEXT, &pos));
    check_pos(&pos, "60");
    CHECK_OK(fs_seek(f, NULL, 0, FS_PREV, &pos2));
    check_pos(&pos2, "40");
    /* ... and after the next one was deleted too. */
    CHECK_OK(fs_seek(f, "60", 2, FS_EQ, &pos));
    CHECK_OK(fs_del(f, "70", 2, false, NULL));
    CHECK_OK(fs_seek(f, NULL, 0, FS_NEXT, &pos));
    check_pos(&pos, "80");
    /* A key inserted after the position is seen by NEXT. */
    CHECK_OK(fs_seek(f, "40", 2, FS_EQ, &pos));
    CHECK_OK(fs_put(f, "45", 2, "45", 2, NULL));
    CHECK_OK(fs_seek(f, NULL, 0, FS_NEXT, &pos));
    check_pos(&pos, "45");
    /* Overwriting keeps the cached step valid and the new value visible. */
    CHECK_OK(fs_put(f, "60", 2, "sixty", 5, NULL));
    CHECK_OK(fs_seek(f, NULL, 0, FS_NEXT, &pos));
    check_pos(&pos, "60");
    CHECK(pos.vlen == 5);
    /* Tombstones are returned; the caller decides. */
    CHECK_OK(fs_del(f, "80", 2, true, NULL));
    CHECK_OK(fs_seek(f, NULL, 0, FS_NEXT, &pos));
    check_pos(&pos, "80");
    CHECK(pos.tombstone);
    CHECK_OK(fs_close(f));
    fs_pos_free(&pos);
    fs_pos_free(&pos2);
    free(path);
}

static void
copy_file(const char *from, const char *to, uint64_t len)
{
    int in, out;
    char buf[65536];
    ssize_t n;
    uint64_t left = len;

    CHECK((in = open(from, O_RDONLY)) >= 0);
    CHECK((out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0644)) >= 0);
    while (left > 0) {
        n = read(in, buf, left < sizeof(buf) ? left : sizeof(buf));
        CHECK(n > 0);
        CHECK(write(out, buf, (size_t)n) == n);
        left -= (uint64_t)n;
    }
    close(in);
    close(out);
}

static void
patch_file(const char *path, uint64_t off, const void *p, size_t len)
{
    int fd;

    CHECK((fd = open(path, O_WRONLY)) >= 0);
    CHECK(pwrite(fd, p, len, (off_t)off) == (ssize_t)len);
    close(fd);
}

static void
flip_bit(const char *path, uint64_t off, int bit)
{
    unsigned char b;
    int fd;

    CHECK((fd = open(path, O_RDWR)) >= 0);
    CHECK(pread(fd, &b, 1, (off_t)off) == 1);
    b ^= (unsigned char)(1u << bit);
    CHECK(pwrite(fd, &b, 1, (off_t)off) == 1);
    close(fd);
}

/* Write n records of varying sizes; ends[i] = file end after record i. */
static void
write_records(const char *path, size_t n, uint64_t *ends)
{
    fs_env env = env_make(LAYERED_SYNC_WRITE);
    unsigned char k[64], v[400];
    fs_info info;
    fs_file *f;
    size_t i, klen, vlen;

    CHECK_OK(fs_open(path, FS_CREATE, &env, &f));
    for (i = 0; i < n; i++) {
        klen = key_of(i, k);
        vlen = val_len(i, 0);
        val_fill(v, vlen, i, 0);
        CHECK_OK(fs_put(f, k, klen, v, vlen, NULL));
        fs_get_info(f, &info);
        ends[i] = info.file_bytes;
    }
    CHECK_OK(fs_close(f));
}

/* Check the file holds exactly records 0..want-1 of write_records. */
static void
check_prefix(fs_file *f, size_t want)
{
    unsigned char k[64], v[400];
    fs_pos pos = {0};
    void *buf = NULL;
    size_t cap = 0, i, klen, vlen;
    fs_info info;

    fs_get_info(f, &info);
    CHECK(info.entries == want);
    for (i = 0; i < want; i++) {
        klen = key_of(i, k);
        vlen = val_len(i, 0);
        val_fill(v, vlen, i, 0);
        CHECK_OK(fs_seek(f, k, klen, FS_EQ, &pos));
        CHECK_OK(fs_read_value(f, &pos, &buf, &cap));
        CHECK(pos.vlen == vlen && memcmp(buf, v, vlen) == 0);
    }
    fs_pos_free(&pos);
    free(buf);
}

/* True if the bytes [from, to) of a file are all zero. */
static bool
original_is_zero(const char *path, uint64_t from, uint64_t to)
{
    unsigned char b;
    bool zero = true;
    int fd;

    CHECK((fd = open(path, O_RDONLY)) >= 0);
    for (uint64_t off = from; off < to && zero; off++) {
        CHECK(pread(fd, &b, 1, (off_t)off) == 1);
        zero = b == 0;
    }
    close(fd);
    return zero;
}

static void
test_torn_tail(const char *dir)
{
    const size_t n = 120;
    char *path = path_in(dir, "torn"), *cut = path_in(dir, "torn-cut");
    fs_env env = env_make(LAYERED_SYNC_WRITE);
    uint64_t ends[120], size, at, s = seed_state, zeros;
    unsigned char zbuf[4096];
    size_t want, r;
    int variant;
    fs_file *f;

    write_records(path, n, ends);
    size = file_size(path);
    CHECK(size == ends[n - 1]);
    memset(zbuf, 0, sizeof(zbuf));
    for (r = 0; r < 220; r++) {
        at = r < 20 ? r * 3 : tu_rand(&s) % (size + 1);
        variant = (int)(r % 2);
        copy_file(path, cut, at);
        /* Variant 1: the cut tail is followed by zero bytes (as after a
         * crash with preallocated blocks). */
        zeros = 0;
        if (variant == 1 && at < size) {
            zeros = size - at < sizeof(zbuf) ? size - at : sizeof(zbuf);
            patch_file(cut, at, zbuf, (size_t)zeros);
        }
        want = 0;
        while (want < n && ends[want] <= at)
            want++;
        /* The zeros may restore a cut record exactly: its missing bytes
         * were zeros.  Then it is whole, and it loads. */
        while (variant == 1 && want < n && ends[want] <= at + zeros &&
               original_is_zero(path, at, ends[want]))
            want++;
        msg_reset();
        CHECK_OK(fs_open(cut, 0, &env, &f));
        check_prefix(f, want);
        /* A cut anywhere but a record boundary is reported. */
        if (at + zeros != (want == 0 ? 32 : ends[want - 1]) && at + zeros > 0)
            CHECK(msg_count >= 1);
        /* The file takes appends after the cut, and keeps them. */
        CHECK_OK(fs_put(f, "appended", 8, "after-cut", 9, NULL));
        CHECK_OK(fs_close(f));
        msg_reset();
        CHECK_OK(fs_open(cut, 0, &env, &f));
        CHECK(msg_count == 0);
        {
            fs_pos pos = {0};
            void *buf = NULL;
            size_t cap = 0;

            CHECK_OK(fs_seek(f, "appended", 8, FS_EQ, &pos));
            CHECK_OK(fs_read_value(f, &pos, &buf, &cap));
            CHECK(memcmp(buf, "after-cut", 9) == 0);
            fs_pos_free(&pos);
            free(buf);
        }
        fs_info info;
        fs_get_info(f, &info);
        CHECK(info.entries == want + 1);
        CHECK_OK(fs_close(f));
    }

    /* A last record whose body checksum fails, ending exactly at the end of
     * the file, is a torn tail. */
    copy_file(path, cut, size);
    flip_bit(cut, size - 1, 3);
    msg_reset();
    CHECK_OK(fs_open(cut, 0, &env, &f));
    check_prefix(f, n - 1);
    CHECK(msg_count == 1 && strstr(msg_last, "torn tail") != NULL);
    CHECK_OK(fs_close(f));
    CHECK(file_size(cut) == ends[n - 2]);
    free(path);
    free(cut);
}

static void
test_corrupt_middle(const char *dir)
{
    const size_t n = 40;
    char *path = path_in(dir, "corrupt"), *bad = path_in(dir, "corrupt-bad");
    char want[64];
    fs_env env = env_make(LAYERED_SYNC_WRITE);
    uint64_t ends[40], mid;
    fs_file *f;
    int variant;

    write_records(path, n, ends);
    mid = ends[n / 2 - 1]; /* offset of record n/2 */
    for (variant = 0; variant < 4; variant++) {
        copy_file(path, bad, file_size(path));
        switch (variant) {
        case 0: flip_bit(bad, mid + 10, 0); break;            /* lsn */
        case 1: flip_bit(bad, mid + 18, 1); break;            /* klen */
        case 2: flip_bit(bad, mid + 24, 2); break;            /* key */
        default: flip_bit(bad, ends[n / 2] - 1, 7); break;    /* value */
        }
        msg_reset();
        f = (fs_file *)1;
        CHECK_RET(LAYERED_CORRUPT, fs_open(bad, 0, &env, &f));
        CHECK(f == NULL);
        snprintf(want, sizeof(want), "offset %llu", (unsigned long long)mid);
        CHECK(strstr(msg_last, want) != NULL);
        CHECK(strstr(msg_last, bad) != NULL);
        /* The damaged file is left as it was. */
        CHECK(file_size(bad) == file_size(path));
    }

    /* A damaged file header, and a file that is not ours. */
    copy_file(path, bad, file_size(path));
    flip_bit(bad, 9, 0);
    CHECK_RET(LAYERED_CORRUPT, fs_open(bad, 0, &env, &f));
    patch_file(bad, 0, "NOTLAYERED", 10);
    CHECK_RET(LAYERED_CORRUPT, fs_open(bad, 0, &env, &f));
    free(path);
    free(bad);
}

static void
test_torn_header(const char *dir)
{
    char *path = path_in(dir, "torn-header");
    fs_env env = env_make(LAYERED_SYNC_WRITE);
    unsigned char z[4096];
    fs_file *f;
    int fd;

    /* A crash right after creation: shorter than the header. */
    CHECK((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644)) >= 0);
    CHECK(write(fd, "LYRD", 4) == 4);
    close(fd);
    msg_reset();
    CHECK_OK(fs_open(path, 0, &env, &f));
    CHECK(fs_empty(f) && msg_count == 1);
    CHECK_OK(fs_put(f, "k", 1, "v", 1, NULL));
    CHECK_OK(fs_close(f));
    CHECK_OK(fs_open(path, 0, &env, &f));
    CHECK(!fs_empty(f));
    CHECK_OK(fs_close(f));

    /* Blocks allocated but never written: all zero bytes. */
    memset(z, 0, sizeof(z));
    CHECK((fd = open(path, O_WRONLY | O_TRUNC)) >= 0);
    CHECK(write(fd, z, sizeof(z)) == (ssize_t)sizeof(z));
    close(fd);
    CHECK_OK(fs_open(path, 0, &env, &f));
    CHECK(fs_empty(f));
    CHECK_OK(fs_close(f));
    CHECK(file_size(path) == 32);

    /* A new empty file (size 0) opened without FS_CREATE. */
    CHECK((fd = open(path, O_WRONLY | O_TRUNC)) >= 0);
    close(fd);
    CHECK_OK(fs_open(path, 0, &env, &f));
    CHECK(fs_empty(f));
    CHECK_OK(fs_close(f));
    free(path);
}

static void
test_big_value(const char *dir, int sync)
{
    const size_t big = 16u * 1024 * 1024 + 3;
    char *path = path_in(dir, sync == LAYERED_SYNC_NONE ? "big-none" : "big");
    fs_env env = env_make(sync);
    unsigned char *v = malloc(big);
    fs_pos pos = {0};
    void *buf = NULL;
    size_t cap = 0;
    fs_file *f;
    int round;

    CHECK(v != NULL);
    val_fill(v, big, 77, 1);
    CHECK_OK(fs_open(path, FS_CREATE, &env, &f));
    CHECK_OK(fs_put(f, "a-small", 7, "x", 1, NULL));
    CHECK_OK(fs_put(f, "big", 3, v, big, NULL));
    CHECK_OK(fs_put(f, "z-small", 7, "y", 1, NULL));
    for (round = 0; round < 2; round++) {
        CHECK_OK(fs_seek(f, "big", 3, FS_EQ, &pos));
        CHECK(pos.vlen == big);
        CHECK_OK(fs_read_value(f, &pos, &buf, &cap));
        CHECK(memcmp(buf, v, big) == 0);
        CHECK_OK(fs_seek(f, "z-small", 7, FS_EQ, &pos));
        CHECK_OK(fs_read_value(f, &pos, &buf, &cap));
        CHECK(memcmp(buf, "y", 1) == 0);
        CHECK_OK(fs_close(f));
        CHECK_OK(fs_open(path, 0, &env, &f));
    }
    CHECK_RET(EINVAL, fs_put(f, "too-big", 7, v, LAYERED_VALUE_MAX + 1u, NULL));
    CHECK_OK(fs_close(f));
    fs_pos_free(&pos);
    free(buf);
    free(v);
    free(path);
}

static void
test_compact(const char *dir, bool keep)
{
    const size_t n = 2000;
    char *path = path_in(dir, keep ? "compact-keep" : "compact");
    fs_env env = env_make(LAYERED_SYNC_NONE);
    struct ref *refs;
    uint64_t *idx, before, s = seed_state;
    fs_info info;
    fs_pos pos = {0};
    void *buf = NULL;
    size_t cap = 0, i, k;
    bool did;
    fs_file *f;
    int ret;

    refs = refs_make(n, &idx);
    CHECK_OK(fs_open(path, FS_CREATE, &env, &f));
    for (i = 0; i < n; i++)
        do_put(f, refs, idx, i, 1);
    /* Little dead data: nothing to do without force. */
    CHECK_OK(fs_compact(f, false, &did));
    CHECK(!did);
    for (k = 0; k < 3; k++)
        for (i = 0; i < n; i++)
            do_put(f, refs, idx, i, refs[i].version + 1);
    for (i = 0; i < n; i++)
        if (tu_rand(&s) % 2 == 0)
            do_del(f, refs, i, keep);
    CHECK_OK(fs_seek(f, NULL, 0, FS_FIRST, &pos));
    before = file_size(path);
    fs_get_info(f, &info);
    CHECK(info.file_bytes >= before);
    CHECK_OK(fs_compact(f, false, &did));
    CHECK(did);
    CHECK(file_size(path) < before / 3);
    fs_get_info(f, &info);
    CHECK(info.file_bytes == file_size(path));
    CHECK(info.live_bytes == info.file_bytes - 32);
    CHECK(access(path, F_OK) == 0);
    check_contents(f, refs, idx, n);
    /* A position taken before compaction: its record moved. */
    ret = fs_read_value(f, &pos, &buf, &cap);
    CHECK(ret == 0 || ret == LAYERED_NOTFOUND);
    /* Writes continue after compaction. */
    do_put(f, refs, idx, 0, 99);
    CHECK_OK(fs_close(f));
    CHECK_OK(fs_open(path, 0, &env, &f));
    check_contents(f, refs, idx, n);
    /* Forced compaction of a compact file: still the same. */
    CHECK_OK(fs_compact(f, true, &did));
    CHECK(did);
    check_contents(f, refs, idx, n);
    CHECK_OK(fs_close(f));

    /* A failed compaction leaves the old file intact. */
    CHECK_OK(fs_open(path, 0, &env, &f));
    before = file_size(path);
    fp_set("fs.sync", EIO, 1);
    CHECK_RET(EIO, fs_compact(f, true, &did));
    CHECK(!did);
    fp_set(NULL, 0, 0);
    CHECK(file_size(path) == before);
    {
        char *tmp;

        CHECK(asprintf(&tmp, "%s.compact", path) > 0);
        CHECK(access(tmp, F_OK) != 0);
        free(tmp);
    }
    check_contents(f, refs, idx, n);
    CHECK_OK(fs_close(f));
    fs_pos_free(&pos);
    free(buf);
    free(refs);
    free(idx);
    free(path);
}

static int hook_calls;

static int
copy_hook(void *arg)
{
    ++hook_calls;
    return arg == NULL ? 0 : *(int *)arg;
}

static void
test_copy(const char *dir)
{
    const size_t n = 3000;
    char *spath = path_in(dir, "copy.ingest"), *dpath = path_in(dir, "copy.stable");
    fs_env env = env_make(LAYERED_SYNC_WRITE), nenv = env_make(LAYERED_SYNC_NONE);
    struct ref *refs, *srefs;
    uint64_t *idx, s = seed_state;
    fs_copy_stats st;
    fs_info si, di;
    fs_file *src, *dst;
    size_t i, newer = 0, tombs = 0, puts = 0;
    unsigned char *big;
    fs_pos pos = {0};
    void *buf = NULL;
    size_t cap = 0;
    uint64_t before, first;
    int hook_err = EBUSY;

    refs = refs_make(n, &idx);
    srefs = calloc(n, sizeof(*srefs));
    CHECK(srefs != NULL);

    /* 1. Into an empty dst. */
    CHECK_OK(fs_open(spath, FS_CREATE, &nenv, &src));
    CHECK_OK(fs_open(dpath, FS_CREATE, &env, &dst));
    for (i = 0; i < n; i++)
        if (i % 3 != 0)
            do_put(src, refs, idx, i, 1);
    hook_calls = 0;
    CHECK_OK(fs_copy(src, dst, 0, copy_hook, NULL, &st));
    CHECK(hook_calls == 1);
    CHECK(st.rows == n - (n + 2) / 3 && st.skipped == 0);
    fs_get_info(src, &si);
    fs_get_info(dst, &di);
    CHECK(st.max_lsn == si.max_lsn && di.max_lsn == si.max_lsn);
    check_contents(dst, refs, idx, n);
    /* 2. Again: nothing to copy. */
    CHECK_OK(fs_copy(src, dst, 0, NULL, NULL, &st));
    CHECK(st.rows == 0 && st.skipped == n - (n + 2) / 3);
    CHECK_OK(fs_clear(src, 0));
    CHECK(fs_empty(src));

    /* 3. A second round: the ingest gets new values, tombstones (for keys
     * dst has and keys it lacks); dst then gets newer values for some keys,
     * which the copy must keep. */
    memcpy(srefs, refs, n * sizeof(*refs));
    for (i = 0; i < n; i++) {
        switch (tu_rand(&s) % 4) {
        case 0:
            do_put(src, refs, idx, i, 2);
            puts++;
            break;
        case 1:
            do_del(src, refs, i, true);
            tombs++;
            break;
        default:
            break;
        }
    }
    for (i = 0; i < n; i += 7) {
        do_put(dst, refs, idx, i, 3);
        newer++;
    }
    /* The expected result: per key, the newest of src and dst. */
    for (i = 0; i < n; i++) {
        if (i % 7 == 0)
            continue;       /* dst's value (version 3) wins */
        if (refs[i].state == 2)
            refs[i].state = 0;  /* a src tombstone removes the key */
    }
    for (i = 0; i < n; i += 7)
        refs[i].state = 1;
    CHECK_OK(fs_copy(src, dst, 0, NULL, NULL, &st));
    CHECK(st.skipped > 0);
    check_contents(dst, refs, idx, n);
    /* Re-running after a "crash" before the clear copies nothing. */
    CHECK_OK(fs_copy(src, dst, 0, NULL, NULL, &st));
    CHECK(st.rows == 0);
    CHECK_OK(fs_close(dst));
    CHECK_OK(fs_open(dpath, 0, &env, &dst));
    check_contents(dst, refs, idx, n);
    CHECK_OK(fs_copy(src, dst, 0, NULL, NULL, &st));
    CHECK(st.rows == 0);
    CHECK_OK(fs_clear(src, 0));

    /* 4. Many rows (several batches), plus a value larger than the copy
     * buffer, into a dst with data. */
    big = malloc(9u << 20);
    CHECK(big != NULL);
    fs_get_info(dst, &di);
    before = di.entries;
    val_fill(big, 9u << 20, 5, 5);
    {
        unsigned char k[32], v[100];
        size_t klen;

        for (i = 0; i < 150000; i++) {
            klen = (size_t)sprintf((char *)k, "bulk%09zu", i);
            memset(v, (int)(i & 0xff), sizeof(v));
            CHECK_OK(fs_put(src, k, klen, v, sizeof(v), NULL));
        }
        CHECK_OK(fs_put(src, "bulk-big", 8, big, 9u << 20, NULL));
        hook_calls = 0;
        CHECK_OK(fs_copy(src, dst, 0, copy_hook, NULL, &st));
        CHECK(hook_calls == 1);
        CHECK(st.rows == 150001);
        CHECK(st.bytes == 150000 * (13 + 100) + 8 + (9u << 20));
        CHECK_OK(fs_close(dst));
        CHECK_OK(fs_open(dpath, 0, &env, &dst));
        CHECK_OK(fs_seek(dst, "bulk-big", 8, FS_EQ, &pos));
        CHECK_OK(fs_read_value(dst, &pos, &buf, &cap));
        CHECK(memcmp(buf, big, 9u << 20) == 0);
        for (i = 0; i < 150000; i += 997) {
            klen = (size_t)sprintf((char *)k, "bulk%09zu", i);
            CHECK_OK(fs_seek(dst, k, klen, FS_EQ, &pos));
            CHECK_OK(fs_read_value(dst, &pos, &buf, &cap));
            CHECK(pos.vlen == 100 && ((unsigned char *)buf)[99] == (i & 0xff));
        }
        fs_get_info(dst, &di);
        CHECK(di.entries == before + 150001);
    }
    /* 5. A write failure in the copy stops it with the error; a re-run
     * finishes the job. */
    CHECK_OK(fs_clear(dst, 0));
    fp_set("fs.write", ENOSPC, 1);
    CHECK_RET(ENOSPC, fs_copy(src, dst, 0, NULL, NULL, &st));
    fp_set(NULL, 0, 0);
    CHECK_OK(fs_copy(src, dst, 0, NULL, NULL, &st));
    CHECK(st.rows == 150001);
    fs_get_info(dst, &di);
    CHECK(di.entries == 150001);
    /* A hook error stops the copy after its first batch; a re-run copies
     * the rest. */
    CHECK_OK(fs_clear(dst, 0));
    hook_calls = 0;
    CHECK_RET(EBUSY, fs_copy(src, dst, 0, copy_hook, &hook_err, &st));
    CHECK(hook_calls == 1 && st.rows > 0 && st.rows < 150001);
    first = st.rows;
    CHECK_OK(fs_copy(src, dst, 0, NULL, NULL, &st));
    CHECK(st.rows == 150001 - first && st.skipped == first);
    fs_get_info(dst, &di);
    CHECK(di.entries == 150001);
    CHECK_OK(fs_close(src));
    CHECK_OK(fs_close(dst));
    printf("test_filestore: copy: %zu puts, %zu tombstones, %zu newer in dst\n",
           puts, tombs, newer);
    fs_pos_free(&pos);
    free(buf);
    free(big);
    free(refs);
    free(srefs);
    free(idx);
    free(spath);
    free(dpath);
}

static void
test_write_failure(const char *dir, int sync)
{
    char *path = path_in(dir, sync == LAYERED_SYNC_NONE ? "fail-none"
                              : sync == LAYERED_SYNC_FSYNC ? "fail-fsync"
                                                          : "fail");
    fs_env env = env_make(sync);
    fs_pos pos = {0};
    void *buf = NULL;
    size_t cap = 0;
    uint64_t size;
    fs_info a, b;
    fs_file *f;

    CHECK_OK(fs_open(path, FS_CREATE, &env, &f));
    CHECK_OK(fs_put(f, "k1", 2, "one", 3, NULL));
    CHECK_OK(fs_put(f, "k2", 2, "two", 3, NULL));
    CHECK_OK(fs_sync(f));
    size = file_size(path);
    fs_get_info(f, &a);

    if (sync == LAYERED_SYNC_NONE) {
        /* Buffered: the failure shows at the flush; the records stay
         * buffered and readable, and the next flush writes them. */
        CHECK_OK(fs_put(f, "k1", 2, "uno", 3, NULL));
        fp_set("fs.write", ENOSPC, 1);
        CHECK_RET(ENOSPC, fs_sync(f));
        CHECK(fp_hits == 1);
        CHECK(file_size(path) == size);
        CHECK_OK(fs_seek(f, "k1", 2, FS_EQ, &pos));
        CHECK_OK(fs_read_value(f, &pos, &buf, &cap));
        CHECK(memcmp(buf, "uno", 3) == 0);
        CHECK_OK(fs_sync(f));
        CHECK(file_size(path) > size);
    } else {
        fp_set(sync == LAYERED_SYNC_FSYNC ? "fs.sync" : "fs.write", ENOSPC, 1);
        CHECK_RET(ENOSPC, fs_put(f, "k1", 2, "uno", 3, NULL));
        CHECK(fp_hits == 1);
        CHECK(fp_times == 0);
        CHECK(file_size(path) == size);
        fs_get_info(f, &b);
        CHECK(a.file_bytes == b.file_bytes && a.entries == b.entries &&
              a.live_bytes == b.live_bytes);
        CHECK_OK(fs_seek(f, "k1", 2, FS_EQ, &pos));
        CHECK_OK(fs_read_value(f, &pos, &buf, &cap));
        CHECK(memcmp(buf, "one", 3) == 0);
        /* A new key is not indexed after a failed write. */
        fp_set("fs.write", EIO, 2);
        CHECK_RET(EIO, fs_put(f, "k3", 2, "three", 5, NULL));
        CHECK_RET(EIO, fs_del(f, "k2", 2, false, NULL));
        CHECK_RET(LAYERED_NOTFOUND, fs_seek(f, "k3", 2, FS_EQ, &pos));
        CHECK_OK(fs_seek(f, "k2", 2, FS_EQ, &pos));
        /* The next write works. */
        CHECK_OK(fs_put(f, "k1", 2, "uno", 3, NULL));
    }
    fp_set(NULL, 0, 0);
    CHECK_OK(fs_close(f));
    msg_reset();
    CHECK_OK(fs_open(path, 0, &env, &f));
    CHECK(msg_count == 0);
    CHECK_OK(fs_seek(f, "k1", 2, FS_EQ, &pos));
    CHECK_OK(fs_read_value(f, &pos, &buf, &cap));
    CHECK(memcmp(buf, "uno", 3) == 0);
    CHECK_OK(fs_seek(f, "k2", 2, FS_EQ, &pos));
    CHECK_OK(fs_close(f));
    fs_pos_free(&pos);
    free(buf);
    free(path);
}

/* A real short write: RLIMIT_FSIZE stops a record halfway (EFBIG); the file
 * must be cut back and stay usable. */
static void
test_short_write(const char *dir)
{
    char *path = path_in(dir, "short-write");
    fs_env env = env_make(LAYERED_SYNC_WRITE);
    struct rlimit old, lim;
    unsigned char v[8192];
    fs_file *f;
    uint64_t size;

    memset(v, 'v', sizeof(v));
    signal(SIGXFSZ, SIG_IGN);
    CHECK_OK(fs_open(path, FS_CREATE, &env, &f));
    CHECK_OK(fs_put(f, "a", 1, v, 100, NULL));
    size = file_size(path);
    CHECK(getrlimit(RLIMIT_FSIZE, &old) == 0);
    lim = old;
    lim.rlim_cur = size + 1000;
    CHECK(setrlimit(RLIMIT_FSIZE, &lim) == 0);
    CHECK_RET(EFBIG, fs_put(f, "b", 1, v, sizeof(v), NULL));
    CHECK(setrlimit(RLIMIT_FSIZE, &old) == 0);
    CHECK(file_size(path) == size);
    CHECK_OK(fs_put(f, "c", 1, v, sizeof(v), NULL));
    CHECK_OK(fs_close(f));
    msg_reset();
    CHECK_OK(fs_open(path, 0, &env, &f));
    CHECK(msg_count == 0);
    {
        fs_info info;

        fs_get_info(f, &info);
        CHECK(info.entries == 2);
    }
    CHECK_OK(fs_close(f));
    free(path);
}

static void
test_lsn(const char *dir)
{
    char *path = path_in(dir, "lsn");
    fs_env env = env_make(LAYERED_SYNC_WRITE);
    uint64_t prev = 0, lsn, max;
    fs_info info;
    fs_file *f;
    int i;

    CHECK_OK(fs_open(path, FS_CREATE, &env, &f));
    for (i = 0; i < 100; i++) {
        if (i % 5 == 4)
            CHECK_OK(fs_del(f, "k", 1, true, &lsn));
        else
            CHECK_OK(fs_put(f, "k", 1, "v", 1, &lsn));
        CHECK(lsn > prev);
        prev = lsn;
    }
    fs_get_info(f, &info);
    CHECK(info.max_lsn == prev);
    max = prev;
    CHECK_OK(fs_close(f));
    /* Opening raises the counter to the file's highest LSN ... */
    atomic_store(&lsn_counter, 3);
    CHECK_OK(fs_open(path, 0, &env, &f));
    CHECK(atomic_load(&lsn_counter) == max);
    fs_get_info(f, &info);
    CHECK(info.max_lsn == max);
    CHECK_OK(fs_put(f, "k", 1, "w", 1, &lsn));
    CHECK(lsn == max + 1);
    CHECK_OK(fs_close(f));
    /* ... and never lowers it. */
    atomic_store(&lsn_counter, max + 1000);
    CHECK_OK(fs_open(path, 0, &env, &f));
    CHECK(atomic_load(&lsn_counter) == max + 1000);
    CHECK_OK(fs_close(f));
    free(path);
}

static void
test_sync_none(const char *dir)
{
    char *path = path_in(dir, "sync-none");
    fs_env env = env_make(LAYERED_SYNC_NONE);
    unsigned char k[32], v[300];
    fs_pos pos = {0};
    void *buf = NULL;
    size_t cap = 0, klen, i;
    fs_info info;
    fs_file *f;

    CHECK_OK(fs_open(path, FS_CREATE, &env, &f));
    for (i = 0; i < 100; i++) {
        klen = (size_t)sprintf((char *)k, "n%04zu", i);
        val_fill(v, sizeof(v), i, 0);
        CHECK_OK(fs_put(f, k, klen, v, sizeof(v), NULL));
    }
    /* Nothing on disk yet, everything readable. */
    CHECK(file_size(path) == 32);
    fs_get_info(f, &info);
    CHECK(info.file_bytes > 32 && info.entries == 100);
    for (i = 0; i < 100; i++) {
        klen = (size_t)sprintf((char *)k, "n%04zu", i);
        val_fill(v, sizeof(v), i, 0);
        CHECK_OK(fs_seek(f, k, klen, FS_EQ, &pos));
        CHECK_OK(fs_read_value(f, &pos, &buf, &cap));
        CHECK(memcmp(buf, v, sizeof(v)) == 0);
    }
    /* A full buffer is written by itself. */
    for (i = 100; i < 5000; i++) {
        klen = (size_t)sprintf((char *)k, "n%04zu", i);
        val_fill(v, sizeof(v), i, 0);
        CHECK_OK(fs_put(f, k, klen, v, sizeof(v), NULL));
    }
    CHECK(file_size(path) > 32);
    fs_get_info(f, &info);
    CHECK(file_size(path) < info.file_bytes);
    CHECK_OK(fs_sync(f));
    CHECK(file_size(path) == info.file_bytes);
    CHECK_OK(fs_put(f, "last", 4, "x", 1, NULL));
    CHECK_OK(fs_close(f));
    CHECK_OK(fs_open(path, 0, &env, &f));
    fs_get_info(f, &info);
    CHECK(info.entries == 5001);
    CHECK_OK(fs_close(f));
    fs_pos_free(&pos);
    free(buf);
    free(path);
}

static void
test_clear(const char *dir)
{
    char *path = path_in(dir, "clear");
    fs_env env = env_make(LAYERED_SYNC_NONE);
    fs_pos pos = {0};
    fs_info info;
    fs_file *f;

    CHECK_OK(fs_open(path, FS_CREATE, &env, &f));
    CHECK_OK(fs_put(f, "a", 1, "1", 1, NULL));
    CHECK_OK(fs_put(f, "b", 1, "2", 1, NULL));
    CHECK_OK(fs_seek(f, "a", 1, FS_EQ, &pos));
    CHECK_OK(fs_clear(f, 0));
    CHECK(fs_empty(f));
    /* The clear is a 24-byte marker appended after the dead records. */
    CHECK(file_size(path) == 32 + 2 * 26 + 24);
    fs_get_info(f, &info);
    CHECK(info.file_bytes == 32 + 2 * 26 + 24 && info.live_bytes == 0 &&
          info.entries == 0);
    /* A position from before the clear finds nothing after it. */
    CHECK_RET(LAYERED_NOTFOUND, fs_seek(f, NULL, 0, FS_NEXT, &pos));
    /* Reopened after a crash (the file as the clear left it, not closed),
     * the marker still hides everything before it. */
    {
        char *crashed = NULL;
        fs_file *g;
        CHECK(asprintf(&crashed, "%s.crashed", path) > 0);
        copy_file(path, crashed, file_size(path));
        CHECK_OK(fs_open(crashed, 0, &env, &g));
        CHECK(fs_empty(g));
        /* Compaction of a file with nothing live cuts it to its header. */
        bool compacted;
        CHECK_OK(fs_compact(g, false, &compacted));
        CHECK(compacted && file_size(crashed) == 32);
        CHECK_OK(fs_close(g));
        free(crashed);
    }
    /* Closing a file with no entries cuts it back to its header: a closed
     * ingest larger than its header holds rows (the drain queue relies on
     * it). */
    CHECK_OK(fs_close(f));
    CHECK(file_size(path) == 32);
    CHECK_OK(fs_open(path, 0, &env, &f));
    CHECK(fs_empty(f));
    CHECK_OK(fs_put(f, "c", 1, "3", 1, NULL));
    CHECK_OK(fs_close(f));
    CHECK_OK(fs_open(path, 0, &env, &f));
    fs_get_info(f, &info);
    CHECK(info.entries == 1);
    CHECK_OK(fs_close(f));
    fs_pos_free(&pos);
    free(path);
}

/* syncfs(2) of the file system holding path. */
static int
syncfs_of(const char *path)
{
    int fd = open(path, O_RDONLY), ret;

    if (fd < 0)
        return errno;
    ret = syncfs(fd) == 0 ? 0 : errno;
    close(fd);
    return ret;
}

/* Sync tokens: a file synced from outside (syncfs) skips its own sync,
 * and a token from an earlier open of the same path is ignored. */
static void
test_sync_token(const char *dir)
{
    char *path = path_in(dir, "token");
    fs_env env = env_make(LAYERED_SYNC_WRITE);
    _Atomic uint64_t opens = 0;
    fs_sync_token tok, stale;
    fs_file *f;

    env.opens = &opens;
    CHECK_OK(fs_open(path, FS_CREATE, &env, &f));
    CHECK_OK(fs_put(f, "a", 1, "1", 1, NULL));
    fs_sync_gen(f, &tok);
    CHECK(syncfs_of(path) == 0);
    fs_mark_synced(f, &tok);
    fp_set("fs.sync", EIO, 1);
    CHECK_OK(fs_sync(f));      /* nothing left to sync: no fdatasync */
    CHECK(fp_hits == 0);
    CHECK_OK(fs_put(f, "b", 1, "2", 1, NULL));
    CHECK_RET(EIO, fs_sync(f)); /* a write since: it syncs */
    CHECK(fp_hits == 1);
    fp_set(NULL, 0, 0);
    fs_sync_gen(f, &stale);
    CHECK_OK(fs_close(f));

    /* Reopened: the old token belongs to another open. */
    CHECK_OK(fs_open(path, 0, &env, &f));
    CHECK_OK(fs_put(f, "c", 1, "3", 1, NULL));
    CHECK_OK(fs_put(f, "d", 1, "4", 1, NULL));
    fs_mark_synced(f, &stale);
    fp_set("fs.sync", EIO, 1);
    CHECK_RET(EIO, fs_sync(f));
    CHECK(fp_hits == 1);
    fp_set(NULL, 0, 0);
    CHECK_OK(fs_close(f));
    free(path);
}

/* Multi-threaded: two writers on disjoint key ranges (puts and stable
 * deletes), two readers scanning and reading values, ~1 s. */
#define MT_KEYS 2000
struct mt_state {
    fs_file *f;
    int id;
    _Atomic bool *stop;
    /* writer: final version per key (0: deleted / never written) */
    uint64_t version[MT_KEYS];
    uint64_t ops;
};

static size_t
mt_key(int writer, size_t i, unsigned char *k)
{
    return (size_t)sprintf((char *)k, "w%d-%05zu", writer, i);
}

/* A value that names its key and version: checkable by readers. */
static size_t
mt_val(const unsigned char *k, size_t klen, uint64_t version, unsigned char *v)
{
    size_t len = 16 + (size_t)(version % 200), i;

    memcpy(v, k, klen);
    memcpy(v + klen, &version, 8);
    for (i = klen + 8; i < len + klen; i++)
        v[i] = (unsigned char)(k[klen - 1] + i + version);
    return len + klen;
}

static void *
mt_writer(void *arg)
{
    struct mt_state *st = arg;
    unsigned char k[32], v[400];
    uint64_t s = seed_state + (uint64_t)st->id * 7919, ver = 0;
    size_t i, klen, vlen;
    int ret;

    while (!atomic_load(st->stop)) {
        i = tu_rand(&s) % MT_KEYS;
        klen = mt_key(st->id, i, k);
        if (tu_rand(&s) % 5 == 0) {
            ret = fs_del(st->f, k, klen, false, NULL);
            CHECK(ret == (st->version[i] != 0 ? 0 : LAYERED_NOTFOUND));
            st->version[i] = 0;
        } else {
            vlen = mt_val(k, klen, ++ver, v);
            CHECK_OK(fs_put(st->f, k, klen, v, vlen, NULL));
            st->version[i] = ver;
        }
        st->ops++;
    }
    return NULL;
}

static void *
mt_reader(void *arg)
{
    struct mt_state *st = arg;
    unsigned char want[400], prev[64];
    fs_pos pos = {0};
    void *buf = NULL;
    size_t cap = 0, prevlen = 0, vlen;
    uint64_t ver;
    int ret;

    while (!atomic_load(st->stop)) {
        prevlen = 0;
        for (ret = fs_seek(st->f, NULL, 0, FS_FIRST, &pos); ret == 0;
             ret = fs_seek(st->f, NULL, 0, FS_NEXT, &pos)) {
            /* Strictly ascending keys. */
            if (prevlen > 0) {
                size_t m = prevlen < pos.klen ? prevlen : pos.klen;
                int c = memcmp(prev, pos.key, m);
                CHECK(c < 0 || (c == 0 && prevlen < pos.klen));
            }
            memcpy(prev, pos.key, pos.klen);
            prevlen = pos.klen;
            ret = fs_read_value(st->f, &pos, &buf, &cap);
            CHECK_OK(ret);
            CHECK(pos.vlen >= pos.klen + 8);
            CHECK(memcmp(buf, pos.key, pos.klen) == 0);
            memcpy(&ver, (unsigned char *)buf + pos.klen, 8);
            vlen = mt_val(pos.key, pos.klen, ver, want);
            CHECK(vlen == pos.vlen && memcmp(buf, want, vlen) == 0);
            st->ops++;
        }
        CHECK_RET(LAYERED_NOTFOUND, ret);
    }
    fs_pos_free(&pos);
    free(buf);
    return NULL;
}

static void
test_threads(const char *dir, int sync)
{
    char *path = path_in(dir, sync == LAYERED_SYNC_NONE ? "mt-none" : "mt");
    fs_env env = env_make(sync);
    _Atomic bool stop = false;
    struct mt_state *st = calloc(4, sizeof(*st));
    pthread_t th[4];
    unsigned char k[32], v[400];
    fs_pos pos = {0};
    void *buf = NULL;
    size_t cap = 0, i, klen, vlen, live = 0;
    fs_info info;
    fs_file *f;
    int t;

    CHECK(st != NULL);
    CHECK_OK(fs_open(path, FS_CREATE, &env, &f));
    for (t = 0; t < 4; t++) {
        st[t].f = f;
        st[t].id = t;
        st[t].stop = &stop;
        CHECK(pthread_create(&th[t], NULL, t < 2 ? mt_writer : mt_reader,
                             &st[t]) == 0);
    }
    usleep(1000 * 1000);
    atomic_store(&stop, true);
    for (t = 0; t < 4; t++)
        CHECK(pthread_join(th[t], NULL) == 0);
    printf("test_filestore: threads (sync %d): %llu+%llu writes, "
           "%llu+%llu reads\n", sync,
           (unsigned long long)st[0].ops, (unsigned long long)st[1].ops,
           (unsigned long long)st[2].ops, (unsigned long long)st[3].ops);
    CHECK(st[0].ops > 0 && st[1].ops > 0 && st[2].ops > 0 && st[3].ops > 0);

    /* Afterwards, and after a reopen: exactly the writers' final state. */
    for (int round = 0; round < 2; round++) {
        live = 0;
        for (t = 0; t < 2; t++)
            for (i = 0; i < MT_KEYS; i++) {
                klen = mt_key(t, i, k);
                if (st[t].version[i] == 0) {
                    CHECK_RET(LAYERED_NOTFOUND,
                              fs_seek(f, k, klen, FS_EQ, &pos));
                    continue;
                }
                live++;
                CHECK_OK(fs_seek(f, k, klen, FS_EQ, &pos));
                CHECK_OK(fs_read_value(f, &pos, &buf, &cap));
                vlen = mt_val(k, klen, st[t].version[i], v);
                CHECK(pos.vlen == vlen && memcmp(buf, v, vlen) == 0);
            }
        fs_get_info(f, &info);
        CHECK(info.entries == live);
        CHECK_OK(fs_close(f));
        CHECK_OK(fs_open(path, 0, &env, &f));
    }
    CHECK_OK(fs_close(f));
    fs_pos_free(&pos);
    free(buf);
    free(st);
    free(path);
}

/* Readers and a compaction at the same time: readers see every key. */
struct cr_state {
    fs_file *f;
    _Atomic bool *stop;
    uint64_t scans;
};

static void *
cr_reader(void *arg)
{
    struct cr_state *st = arg;
    fs_pos pos = {0};
    void *buf = NULL;
    size_t cap = 0, count;
    int ret;

    while (!atomic_load(st->stop)) {
        count = 0;
        for (ret = fs_seek(st->f, NULL, 0, FS_FIRST, &pos); ret == 0;
             ret = fs_seek(st->f, NULL, 0, FS_NEXT, &pos)) {
            ret = fs_read_value(st->f, &pos, &buf, &cap);
            if (ret == LAYERED_NOTFOUND) {
                /* Moved by compaction: seek again. */
                CHECK_OK(fs_seek(st->f, pos.key, pos.klen, FS_EQ, &pos));
                ret = fs_read_value(st->f, &pos, &buf, &cap);
            }
            CHECK(ret == 0 || ret == LAYERED_NOTFOUND);
            count++;
        }
        CHECK_RET(LAYERED_NOTFOUND, ret);
        CHECK(count == 1000);
        st->scans++;
    }
    fs_pos_free(&pos);
    free(buf);
    return NULL;
}

static void
test_compact_concurrent(const char *dir)
{
    char *path = path_in(dir, "compact-mt");
    fs_env env = env_make(LAYERED_SYNC_WRITE);
    _Atomic bool stop = false;
    struct cr_state st[2];
    pthread_t th[2];
    unsigned char k[32], v[100];
    size_t i, klen;
    fs_file *f;
    int t, r;

    CHECK_OK(fs_open(path, FS_CREATE, &env, &f));
    memset(v, 'c', sizeof(v));
    for (i = 0; i < 1000; i++) {
        klen = (size_t)sprintf((char *)k, "c%05zu", i);
        CHECK_OK(fs_put(f, k, klen, v, sizeof(v), NULL));
    }
    for (t = 0; t < 2; t++) {
        st[t].f = f;
        st[t].stop = &stop;
        st[t].scans = 0;
        CHECK(pthread_create(&th[t], NULL, cr_reader, &st[t]) == 0);
    }
    for (r = 0; r < 30; r++) {
        for (i = 0; i < 1000; i += 3) {
            klen = (size_t)sprintf((char *)k, "c%05zu", i);
            CHECK_OK(fs_put(f, k, klen, v, sizeof(v), NULL));
        }
        CHECK_OK(fs_compact(f, true, NULL));
    }
    atomic_store(&stop, true);
    for (t = 0; t < 2; t++)
        CHECK(pthread_join(th[t], NULL) == 0);
    CHECK_OK(fs_close(f));
    free(path);
}

int
main(void)
{
    char *dir;

    seed_state = tu_seed("test_filestore");
    dir = tu_mkdtemp("filestore");

    test_crc();
    test_roundtrip(dir);
    test_order(dir);
    test_overwrite_delete(dir, false);
    test_overwrite_delete(dir, true);
    test_seek_modes(dir);
    test_torn_tail(dir);
    test_corrupt_middle(dir);
    test_torn_header(dir);
    test_big_value(dir, LAYERED_SYNC_WRITE);
    test_big_value(dir, LAYERED_SYNC_NONE);
    test_compact(dir, false);
    test_compact(dir, true);
    test_copy(dir);
    test_write_failure(dir, LAYERED_SYNC_WRITE);
    test_write_failure(dir, LAYERED_SYNC_FSYNC);
    test_write_failure(dir, LAYERED_SYNC_NONE);
    test_short_write(dir);
    test_lsn(dir);
    test_sync_none(dir);
    test_clear(dir);
    test_sync_token(dir);
    test_threads(dir, LAYERED_SYNC_WRITE);
    test_threads(dir, LAYERED_SYNC_NONE);
    test_compact_concurrent(dir);

    tu_rmdir(dir);
    free(dir);
    printf("test_filestore: all tests passed\n");
    return 0;
}
