/*
 * testutil.c -- helpers shared by the C tests.
 */
#include "testutil.h"

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <linux/futex.h>
#include <sched.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

char *
tu_mkdtemp(const char *tag)
{
    const char *tmp = getenv("TMPDIR");
    char *path;

    if (tmp == NULL || *tmp == '\0')
        tmp = "/tmp";
    CHECK(asprintf(&path, "%s/layered-%s-XXXXXX", tmp, tag) > 0);
    CHECK(mkdtemp(path) != NULL);
    return path;
}

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st; (void)flag; (void)ftw;
    return remove(path);
}

void
tu_rmdir(const char *path)
{
    (void)nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

uint64_t
tu_rand(uint64_t *state)
{
    uint64_t x = *state;

    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *state = x;
}

uint64_t
tu_seed(const char *test)
{
    const char *env = getenv("LAYERED_TEST_SEED");
    uint64_t seed;

    seed = env != NULL ? strtoull(env, NULL, 0) : (uint64_t)tu_now_ns();
    if (seed == 0)
        seed = 1;
    printf("%s: seed %llu (replay with LAYERED_TEST_SEED=%llu)\n", test,
           (unsigned long long)seed, (unsigned long long)seed);
    fflush(stdout);
    return seed;
}

uint64_t
tu_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void
tu_insert_rows(layered_session *s, const char *uri, const char *prefix, int n)
{
    layered_cursor *c;
    char k[32], v[64];

    CHECK_OK(layered_cursor_open(s, uri, &c));
    for (int i = 0; i < n; i++) {
        snprintf(k, sizeof(k), "%s%06d", prefix, i);
        snprintf(v, sizeof(v), "value-%s-%d", prefix, i);
        CHECK_OK(layered_cursor_insert(c, k, strlen(k), v, strlen(v)));
    }
    CHECK_OK(layered_cursor_close(c));
}

int
tu_count_rows(layered_session *s, const char *uri)
{
    layered_cursor *c;
    int n = 0, ret;

    CHECK_OK(layered_cursor_open(s, uri, &c));
    while ((ret = layered_cursor_next(c)) == 0)
        n++;
    CHECK_RET(LAYERED_NOTFOUND, ret);
    CHECK_OK(layered_cursor_close(c));
    return n;
}

uint64_t
tu_stable_files_bytes(const char *shared_dir)
{
    static const char suffix[] = ".stable";
    struct dirent *e;
    struct stat st;
    uint64_t sum = 0;
    size_t n;
    DIR *d;

    CHECK((d = opendir(shared_dir)) != NULL);
    while ((e = readdir(d)) != NULL) {
        n = strlen(e->d_name);
        if (n <= sizeof(suffix) - 1 ||
            strcmp(e->d_name + n - (sizeof(suffix) - 1), suffix) != 0)
            continue;
        CHECK(fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0);
        CHECK(S_ISREG(st.st_mode));
        sum += (uint64_t)st.st_size;
    }
    CHECK(closedir(d) == 0);
    return sum;
}

void
tu_check_size_on_disk(layered_conn *conn, const char *shared_dir,
                      const char *file, int line)
{
    layered_conn_stats st;
    uint64_t files = tu_stable_files_bytes(shared_dir);

    CHECK_OK(layered_stats(conn, &st));
    if (st.database_size != files + LAYERED_CHECKPOINT_SIZE_BUFFER ||
        st.stable_checkpoint_bytes != files) {
        fprintf(stderr,
                "%s:%d: database_size %llu, stable_checkpoint_bytes %llu; "
                "the *.stable files in %s hold %llu bytes (+ buffer %llu "
                "= %llu)\n",
                file, line, (unsigned long long)st.database_size,
                (unsigned long long)st.stable_checkpoint_bytes, shared_dir,
                (unsigned long long)files,
                (unsigned long long)LAYERED_CHECKPOINT_SIZE_BUFFER,
                (unsigned long long)(files + LAYERED_CHECKPOINT_SIZE_BUFFER));
        abort();
    }
}

pid_t
tu_gettid(void)
{
    return (pid_t)syscall(SYS_gettid);
}

/* Is the thread asleep in a futex wait?  The syscall file of a blocked
 * thread reads "NR ARG0 ARG1 ...", of a running one "running". */
static bool
thread_in_futex_wait(pid_t tid)
{
    char path[64], buf[256], state = '?';
    long nr = -1;
    unsigned long uaddr, op;
    FILE *f;
    bool in_wait;

    snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)tid);
    if ((f = fopen(path, "r")) == NULL)
        return false;
    if (fgets(buf, sizeof(buf), f) != NULL) {
        char *p = strrchr(buf, ')');
        if (p != NULL && p[1] == ' ')
            state = p[2];
    }
    fclose(f);
    if (state != 'S')
        return false;
    snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", (int)tid);
    CHECK((f = fopen(path, "r")) != NULL);
    in_wait = fscanf(f, "%ld 0x%lx 0x%lx", &nr, &uaddr, &op) == 3 &&
              nr == SYS_futex &&
              ((op & FUTEX_CMD_MASK) == FUTEX_WAIT ||
               (op & FUTEX_CMD_MASK) == FUTEX_WAIT_BITSET);
    fclose(f);
    return in_wait;
}

void
tu_wait_thread_blocked(pid_t tid, int timeout_ms)
{
    uint64_t deadline = tu_now_ns() + (uint64_t)timeout_ms * 1000000u;

    while (!thread_in_futex_wait(tid)) {
        if (tu_now_ns() > deadline) {
            fprintf(stderr, "thread %d did not block within %d ms\n",
                    (int)tid, timeout_ms);
            abort();
        }
        sched_yield();
    }
}

static void *
step_up_thread(void *arg)
{
    struct tu_stepper *st = arg;

    st->ret = layered_step_up(st->conn, &st->ds);
    return NULL;
}

void
tu_step_up_start(struct tu_stepper *st, layered_conn *conn)
{
    memset(st, 0, sizeof(*st));
    st->conn = conn;
    CHECK(pthread_create(&st->tid, NULL, step_up_thread, st) == 0);
}

void
tu_step_up_join(struct tu_stepper *st)
{
    CHECK(pthread_join(st->tid, NULL) == 0);
}
