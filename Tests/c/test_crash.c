/*
 * test_crash.c -- durability under kill -9.  A child process writes with
 * LAYERED_SYNC_WRITE and reports each key on a pipe only after the insert
 * returned; the parent kills it with SIGKILL at a random moment, reopens
 * the database and checks that every acknowledged row is there with its
 * value.  Rounds alternate follower (ingest) and leader (stable) writes,
 * and some rounds step up or checkpoint while writing.
 */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

#define ROUNDS 16

static void
key_of(char *buf, size_t len, long i)
{
    snprintf(buf, len, "key-%09ld", i);
}

static void
value_of(char *buf, size_t len, long i)
{
    snprintf(buf, len, "value-%ld-%ld", i, i * 7919);
}

/*
 * writer --
 *     The child: insert keys from `start` upwards until killed.
 */
static int
writer(const char *home, long start, int role, int fd)
{
    layered_config cfg;
    layered_conn *conn;
    layered_session *s;
    layered_cursor *c;
    char k[32], v[64];
    long i;

    layered_config_init(&cfg);
    cfg.role = role;
    cfg.sync = LAYERED_SYNC_WRITE;
    CHECK_OK(layered_open(home, &cfg, &conn));
    CHECK_OK(layered_session_open(conn, &s));
    for (i = start;; i++) {
        CHECK_OK(layered_cursor_open(s, "layered:c", &c));
        key_of(k, sizeof(k), i);
        value_of(v, sizeof(v), i);
        CHECK_OK(layered_cursor_insert(c, k, strlen(k), v, strlen(v)));
        CHECK_OK(layered_cursor_close(c));
        /* Acknowledged: the insert returned. */
        CHECK(write(fd, &i, sizeof(i)) == sizeof(i));
        if (i % 5000 == 4999)
            CHECK_OK(layered_checkpoint(s));
        if (role == LAYERED_ROLE_FOLLOWER && i == start + 3000)
            CHECK_OK(layered_step_up(conn, NULL));
    }
}

static void
verify(const char *home, long acked)
{
    layered_conn *conn;
    layered_session *s;
    layered_cursor *c;
    const void *val;
    size_t vlen;
    char k[32], v[64];
    long i;

    CHECK_OK(layered_open(home, NULL, &conn));
    CHECK_OK(layered_session_open(conn, &s));
    CHECK_OK(layered_cursor_open(s, "layered:c", &c));
    for (i = 0; i < acked; i++) {
        key_of(k, sizeof(k), i);
        value_of(v, sizeof(v), i);
        if (layered_cursor_search(c, k, strlen(k)) != 0) {
            fprintf(stderr, "acknowledged key %s lost (acked %ld)\n", k,
                    acked);
            CHECK(0);
        }
        CHECK_OK(layered_cursor_get(c, NULL, NULL, &val, &vlen));
        CHECK(vlen == strlen(v) && memcmp(val, v, vlen) == 0);
    }
    CHECK_OK(layered_cursor_close(c));
    CHECK_OK(layered_session_close(s));
    CHECK_OK(layered_close(conn));
}

int
main(int argc, char *argv[])
{
    char *home;
    layered_conn *conn;
    layered_session *s;
    uint64_t rng;
    long next = 0, got;
    int round, fds[2], status;
    pid_t pid;

    if (argc == 5 && strcmp(argv[1], "--writer") == 0)
        return writer(argv[2], atol(argv[3]), atoi(argv[4]), 1);

    rng = tu_seed("test_crash");
    home = tu_mkdtemp("crash");
    CHECK_OK(layered_open(home, NULL, &conn));
    CHECK_OK(layered_session_open(conn, &s));
    CHECK_OK(layered_create(s, "layered:c", NULL));
    CHECK_OK(layered_close(conn));

    for (round = 0; round < ROUNDS; round++) {
        char start[32], role[8];
        long before = next;

        snprintf(start, sizeof(start), "%ld", next);
        snprintf(role, sizeof(role), "%d",
                 round % 2 ? LAYERED_ROLE_LEADER : LAYERED_ROLE_FOLLOWER);
        CHECK(pipe(fds) == 0);
        fflush(stdout);
        if ((pid = fork()) == 0) {
            dup2(fds[1], 1);
            close(fds[0]);
            execl("/proc/self/exe", "test_crash", "--writer", home, start,
                  role, (char *)NULL);
            _exit(127);
        }
        CHECK(pid > 0);
        close(fds[1]);
        /* Kill at a random moment, 5 to 300 ms after the start, reading
         * acknowledgements meanwhile so the child never blocks on the
         * pipe. */
        {
            uint64_t deadline =
                tu_now_ns() + (5 + tu_rand(&rng) % 295) * 1000000ull;
            struct pollfd pfd = {.fd = fds[0], .events = POLLIN};
            while (tu_now_ns() < deadline) {
                if (poll(&pfd, 1, 1) == 1 &&
                    read(fds[0], &got, sizeof(got)) == sizeof(got)) {
                    CHECK(got == next);
                    next++;
                }
            }
        }
        CHECK(kill(pid, SIGKILL) == 0);
        CHECK(waitpid(pid, &status, 0) == pid);
        CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        while (read(fds[0], &got, sizeof(got)) == sizeof(got)) {
            CHECK(got == next);
            next++;
        }
        close(fds[0]);
        printf("  round %d (%s): %ld rows acknowledged before SIGKILL\n",
               round, round % 2 ? "leader" : "follower", next - before);
        verify(home, next);
    }
    CHECK(next > 0);
    tu_rmdir(home);
    free(home);
    printf("test_crash: ok, %ld acknowledged rows survived %d kills\n", next,
           ROUNDS);
    return 0;
}
