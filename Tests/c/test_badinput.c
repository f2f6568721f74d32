/*
 * test_badinput.c -- bad input gets a clear error and leaves the database
 * intact: NULL handles, malformed URIs and configurations, oversized keys
 * and values, a missing or unwritable home, a home open twice, a full disk
 * (injected and real, through RLIMIT_FSIZE), damaged metadata and damaged
 * constituent files.
 */
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

static char last_msg[1024];

static void
msg_cb(void *arg, const char *msg)
{
    (void)arg;
    snprintf(last_msg, sizeof(last_msg), "%s", msg);
}

static layered_conn *
open_home(const char *home)
{
    layered_config cfg;
    layered_conn *conn;

    layered_config_init(&cfg);
    cfg.message_handler = msg_cb;
    CHECK_OK(layered_open(home, &cfg, &conn));
    return conn;
}

static void
test_null_and_config(void)
{
    char *home = tu_mkdtemp("bad-null");
    layered_config cfg;
    layered_conn *conn = NULL;
    layered_session *s = NULL;
    layered_cursor *c = (layered_cursor *)1;
    layered_conn_stats st;
    char path[4096];
    int exact, state;

    CHECK_RET(EINVAL, layered_open(NULL, NULL, &conn));
    CHECK(conn == NULL);
    CHECK_RET(EINVAL, layered_open(home, NULL, NULL));
    CHECK_RET(EINVAL, layered_open("", NULL, &conn));
    layered_config_init(&cfg);
    cfg.role = 7;
    CHECK_RET(EINVAL, layered_open(home, &cfg, &conn));
    layered_config_init(&cfg);
    cfg.drain_threads = 0;
    CHECK_RET(EINVAL, layered_open(home, &cfg, &conn));
    layered_config_init(&cfg);
    cfg.drain_policy = 9;
    CHECK_RET(EINVAL, layered_open(home, &cfg, &conn));
    layered_config_init(&cfg);
    cfg.sync = -1;
    CHECK_RET(EINVAL, layered_open(home, &cfg, &conn));
    layered_config_init(&cfg);
    cfg.failpoints = "drain.copy=explode";
    CHECK_RET(EINVAL, layered_open(home, &cfg, &conn));
    cfg.failpoints = "nonsense";
    CHECK_RET(EINVAL, layered_open(home, &cfg, &conn));

    CHECK_RET(EINVAL, layered_close(NULL));
    CHECK_RET(EINVAL, layered_step_up(NULL, NULL));
    CHECK_RET(EINVAL, layered_step_down(NULL));
    CHECK_RET(EINVAL, layered_stats(NULL, &st));
    CHECK_RET(EINVAL, layered_session_open(NULL, &s));
    CHECK_RET(EINVAL, layered_session_close(NULL));
    CHECK_RET(EINVAL, layered_create(NULL, "layered:t", NULL));
    CHECK_RET(EINVAL, layered_drop(NULL, "layered:t", 0));
    CHECK_RET(EINVAL, layered_checkpoint(NULL));
    CHECK_RET(EINVAL, layered_table_state(NULL, "layered:t", &state));
    CHECK_RET(EINVAL, layered_cursor_open(NULL, "layered:t", &c));
    CHECK(c == NULL);
    CHECK_RET(EINVAL, layered_cursor_insert(NULL, "k", 1, "v", 1));
    CHECK_RET(EINVAL, layered_cursor_remove(NULL, "k", 1));
    CHECK_RET(EINVAL, layered_cursor_search(NULL, "k", 1));
    CHECK_RET(EINVAL, layered_cursor_search_near(NULL, "k", 1, &exact));
    CHECK_RET(EINVAL, layered_cursor_next(NULL));
    CHECK_RET(EINVAL, layered_cursor_prev(NULL));
    CHECK_RET(EINVAL, layered_cursor_get(NULL, NULL, NULL, NULL, NULL));
    CHECK_RET(EINVAL, layered_cursor_reset(NULL));
    CHECK_RET(EINVAL, layered_cursor_close(NULL));
    CHECK_RET(EINVAL, layered_failpoint_set(NULL, "x", "off"));
    CHECK_RET(EINVAL, layered_failpoint_wait(NULL, "x", 0));

    conn = open_home(home);
    CHECK_RET(EINVAL, layered_stats(conn, NULL));
    CHECK_RET(EINVAL, layered_session_open(conn, NULL));
    CHECK_RET(EINVAL, layered_failpoint_set(conn, "drain.copy", "sleep(x)"));
    CHECK_RET(EINVAL, layered_failpoint_set(conn, "bad name", "off"));
    CHECK_RET(EINVAL, layered_failpoint_set(conn, "drain.copy", NULL));
    CHECK_RET(EINVAL, layered_failpoint_wait(conn, "never.set", 0));
    CHECK_OK(layered_failpoint_set(conn, "never.hit", "pause"));
    CHECK_RET(ETIMEDOUT, layered_failpoint_wait(conn, "never.hit", 10));
    CHECK_OK(layered_failpoint_set(conn, "never.hit", "off"));

    /* The same home twice: refused while the first is open. */
    {
        layered_conn *second = (layered_conn *)1;
        CHECK_RET(EBUSY, layered_open(home, NULL, &second));
        CHECK(second == NULL);
    }
    /* A home that is a file; a missing home without create; a missing
     * parent. */
    snprintf(path, sizeof(path), "%s/afile", home);
    close(open(path, O_CREAT | O_WRONLY, 0644));
    {
        layered_conn *x;
        CHECK_RET(ENOTDIR, layered_open(path, NULL, &x));
        snprintf(path, sizeof(path), "%s/missing", home);
        layered_config_init(&cfg);
        cfg.create = 0;
        CHECK_RET(ENOENT, layered_open(path, &cfg, &x));
        snprintf(path, sizeof(path), "%s/missing/deeper", home);
        CHECK_RET(ENOENT, layered_open(path, NULL, &x));
    }
    CHECK_OK(layered_close(conn));
    tu_rmdir(home);
    free(home);
}

static void
test_uris_and_keys(void)
{
    char *home = tu_mkdtemp("bad-uri");
    layered_conn *conn = open_home(home);
    layered_session *s;
    layered_cursor *c;
    char longname[300], *bigkey;
    const char *bad[] = {"layered:",        "layered",      "table:t",
                         "t",               "layered:a/b",  "layered:.x",
                         "layered:a b",     "layered:a\n",  "LAYERED:t",
                         "layered:t;rm -rf", NULL};
    int i, exact;

    CHECK_OK(layered_session_open(conn, &s));
    for (i = 0; bad[i] != NULL; i++) {
        CHECK_RET(EINVAL, layered_create(s, bad[i], NULL));
        CHECK_RET(EINVAL, layered_drop(s, bad[i], LAYERED_DROP_FORCE));
        CHECK_RET(EINVAL, layered_cursor_open(s, bad[i], &c));
    }
    CHECK_RET(EINVAL, layered_create(s, NULL, NULL));
    memset(longname, 'n', sizeof(longname));
    memcpy(longname, "layered:", 8);
    longname[8 + LAYERED_NAME_MAX + 1] = '\0';
    CHECK_RET(EINVAL, layered_create(s, longname, NULL));
    longname[8 + LAYERED_NAME_MAX] = '\0';
    CHECK_OK(layered_create(s, longname, NULL)); /* exactly the maximum */
    CHECK_RET(EINVAL, layered_cursor_open(s, "file:t", &c));
    CHECK_RET(EINVAL, layered_cursor_open(s, "file:t.other", &c));
    CHECK_RET(ENOENT, layered_cursor_open(s, "file:nope.ingest", &c));
    CHECK_RET(ENOENT, layered_cursor_open(s, "layered:nope", &c));

    CHECK_OK(layered_create(s, "layered:t", NULL));
    CHECK_OK(layered_cursor_open(s, "layered:t", &c));
    bigkey = calloc(1, LAYERED_KEY_MAX + 1);
    CHECK(bigkey != NULL);
    CHECK_RET(EINVAL, layered_cursor_insert(c, "", 0, "v", 1));
    CHECK_RET(EINVAL, layered_cursor_insert(c, NULL, 1, "v", 1));
    CHECK_RET(EINVAL, layered_cursor_insert(c, "k", 1, NULL, 1));
    CHECK_RET(EINVAL, layered_cursor_insert(c, bigkey, LAYERED_KEY_MAX + 1,
                                            "v", 1));
    CHECK_RET(EINVAL, layered_cursor_insert(c, "k", 1, bigkey,
                                            (size_t)LAYERED_VALUE_MAX + 1));
    CHECK_RET(EINVAL, layered_cursor_search(c, bigkey, LAYERED_KEY_MAX + 1));
    CHECK_RET(EINVAL, layered_cursor_remove(c, "", 0));
    CHECK_RET(EINVAL, layered_cursor_search_near(c, "k", 1, NULL));
    /* The largest key and an empty value work. */
    memset(bigkey, 'K', LAYERED_KEY_MAX);
    CHECK_OK(layered_cursor_insert(c, bigkey, LAYERED_KEY_MAX, NULL, 0));
    CHECK_OK(layered_cursor_search_near(c, bigkey, LAYERED_KEY_MAX, &exact));
    CHECK(exact == 0);
    {
        const void *k, *v;
        size_t klen, vlen;
        CHECK_OK(layered_cursor_get(c, &k, &klen, &v, &vlen));
        CHECK(klen == LAYERED_KEY_MAX && vlen == 0 && v != NULL);
    }
    free(bigkey);
    CHECK_OK(layered_cursor_close(c));
    CHECK_OK(layered_session_close(s));
    CHECK_OK(layered_close(conn));
    tu_rmdir(home);
    free(home);
}

/* Writes fail cleanly when the disk is full, and work again after. */
static void
test_full_disk_injected(void)
{
    char *home = tu_mkdtemp("bad-full");
    layered_conn *conn = open_home(home);
    layered_session *s;
    layered_cursor *c;
    int state;

    CHECK_OK(layered_session_open(conn, &s));
    CHECK_OK(layered_create(s, "layered:t", NULL));
    CHECK_OK(layered_cursor_open(s, "layered:t", &c));
    CHECK_OK(layered_cursor_insert(c, "a", 1, "1", 1));
    CHECK_OK(layered_failpoint_set(conn, "fs.write", "return(ENOSPC)"));
    CHECK_RET(ENOSPC, layered_cursor_insert(c, "b", 1, "2", 1));
    CHECK_OK(layered_failpoint_set(conn, "fs.write", "off"));
    CHECK_RET(LAYERED_NOTFOUND, layered_cursor_search(c, "b", 1));
    CHECK_OK(layered_cursor_insert(c, "c", 1, "3", 1));
    CHECK_OK(layered_cursor_close(c));

    /* Metadata writes failing: the create is refused, nothing is left. */
    CHECK_OK(layered_failpoint_set(conn, "meta.write", "return(ENOSPC)"));
    CHECK_RET(ENOSPC, layered_create(s, "layered:u", NULL));
    CHECK_RET(ENOSPC, layered_drop(s, "layered:t", 0));
    CHECK_OK(layered_failpoint_set(conn, "meta.write", "off"));
    CHECK_RET(ENOENT, layered_table_state(s, "layered:u", &state));
    CHECK_OK(layered_table_state(s, "layered:t", &state));
    CHECK_OK(layered_failpoint_set(conn, "fs.sync", "return(EIO)"));
    CHECK_RET(EIO, layered_checkpoint(s));
    CHECK_OK(layered_failpoint_set(conn, "fs.sync", "off"));
    CHECK_OK(layered_checkpoint(s));
    CHECK_OK(layered_session_close(s));
    CHECK_OK(layered_close(conn));

    conn = open_home(home);
    CHECK_OK(layered_session_open(conn, &s));
    CHECK_OK(layered_cursor_open(s, "layered:t", &c));
    CHECK_OK(layered_cursor_search(c, "a", 1));
    CHECK_RET(LAYERED_NOTFOUND, layered_cursor_search(c, "b", 1));
    CHECK_OK(layered_cursor_search(c, "c", 1));
    CHECK_OK(layered_cursor_close(c));
    CHECK_RET(ENOENT, layered_table_state(s, "layered:u", &state));
    CHECK_OK(layered_close(conn));
    tu_rmdir(home);
    free(home);
}

/*
 * rlimit_child --
 *     Write with a small file-size limit until the kernel refuses.
 */
static int
rlimit_child(const char *home, int fd)
{
    struct rlimit rl = {256 * 1024, 256 * 1024};
    layered_conn *conn;
    layered_session *s;
    layered_cursor *c;
    char k[32], v[1000];
    int i, ret;

    memset(v, 'v', sizeof(v));
    signal(SIGXFSZ, SIG_IGN);
    CHECK(setrlimit(RLIMIT_FSIZE, &rl) == 0);
    conn = open_home(home);
    CHECK_OK(layered_session_open(conn, &s));
    CHECK_OK(layered_cursor_open(s, "layered:t", &c));
    for (i = 0;; i++) {
        snprintf(k, sizeof(k), "k%06d", i);
        if ((ret = layered_cursor_insert(c, k, strlen(k), v, sizeof(v))) !=
            0) {
            CHECK_RET(EFBIG, ret);
            break;
        }
        CHECK(write(fd, &i, sizeof(i)) == sizeof(i));
    }
    /* Still refused, still consistent. */
    CHECK_RET(EFBIG, layered_cursor_insert(c, "zz", 2, v, sizeof(v)));
    CHECK_OK(layered_cursor_search(c, "k000000", 7));
    CHECK_OK(layered_close(conn));
    return 0;
}

/*
 * unwritable_child --
 *     As an ordinary user (root ignores permissions), open a home whose
 *     directory is not writable.
 */
static int
unwritable_child(const char *path)
{
    layered_conn *conn;

    if (geteuid() == 0)
        CHECK(setgid(65534) == 0 && setuid(65534) == 0);
    CHECK_RET(EACCES, layered_open(path, NULL, &conn));
    return 0;
}

/*
 * A real kernel error: a child whose file-size limit is small writes until
 * the kernel refuses (EFBIG); every write it saw succeed is there after.
 */
static void
test_full_disk_rlimit(void)
{
    char *home = tu_mkdtemp("bad-rlimit");
    layered_conn *conn = open_home(home);
    layered_session *s;
    layered_cursor *c;
    char k[32], v[1000];
    int fds[2], status, n = 0, i, got;
    pid_t pid;

    CHECK_OK(layered_session_open(conn, &s));
    CHECK_OK(layered_create(s, "layered:t", NULL));
    CHECK_OK(layered_close(conn));
    memset(v, 'v', sizeof(v));
    CHECK(pipe(fds) == 0);
    fflush(stdout);
    if ((pid = fork()) == 0) {
        char fdarg[16];
        snprintf(fdarg, sizeof(fdarg), "%d", fds[1]);
        close(fds[0]);
        /* A fresh process: no threads inherited across the fork. */
        execl("/proc/self/exe", "test_badinput", "--rlimit-child", home,
              fdarg, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    while (read(fds[0], &got, sizeof(got)) == sizeof(got))
        n = got + 1;
    close(fds[0]);
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(n > 100);
    conn = open_home(home);
    CHECK_OK(layered_session_open(conn, &s));
    CHECK_OK(layered_cursor_open(s, "layered:t", &c));
    for (i = 0; i < n; i++) {
        snprintf(k, sizeof(k), "k%06d", i);
        CHECK_OK(layered_cursor_search(c, k, strlen(k)));
    }
    /* Writable again without the limit. */
    CHECK_OK(layered_cursor_insert(c, "zz", 2, v, sizeof(v)));
    CHECK_OK(layered_cursor_close(c));
    CHECK_OK(layered_close(conn));
    printf("  full disk (RLIMIT_FSIZE): %d rows written before EFBIG, all "
           "intact\n", n);
    tu_rmdir(home);
    free(home);
}

/* An unwritable home: EACCES (checked as an unprivileged user). */
static void
test_unwritable_home(void)
{
    char *home = tu_mkdtemp("bad-ro");
    char path[4096];
    pid_t pid;
    int status;

    snprintf(path, sizeof(path), "%s/db", home);
    CHECK(mkdir(path, 0555) == 0);
    CHECK(chmod(home, 0755) == 0);
    fflush(stdout);
    if ((pid = fork()) == 0) {
        execl("/proc/self/exe", "test_badinput", "--unwritable-child", path,
              (char *)NULL);
        _exit(127);
    }
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    tu_rmdir(home);
    free(home);
}

static void
flip_byte(const char *path, off_t off)
{
    int fd = open(path, O_RDWR);
    unsigned char b;

    CHECK(fd >= 0);
    CHECK(pread(fd, &b, 1, off) == 1);
    b ^= 0x10;
    CHECK(pwrite(fd, &b, 1, off) == 1);
    close(fd);
}

static void
test_damage(void)
{
    char *home = tu_mkdtemp("bad-damage");
    char path[4096], v[100];
    layered_conn *conn = open_home(home);
    layered_session *s;
    layered_cursor *c;
    struct stat st;
    int i;

    CHECK_OK(layered_session_open(conn, &s));
    CHECK_OK(layered_create(s, "layered:t", NULL));
    CHECK_OK(layered_create(s, "layered:u", NULL));
    CHECK_OK(layered_cursor_open(s, "layered:t", &c));
    memset(v, 'v', sizeof(v));
    for (i = 0; i < 1000; i++) {
        char k[16];
        snprintf(k, sizeof(k), "k%05d", i);
        CHECK_OK(layered_cursor_insert(c, k, strlen(k), v, sizeof(v)));
    }
    CHECK_OK(layered_cursor_close(c));
    CHECK_OK(layered_close(conn));

    /* A damaged record in the middle of t's ingest: LAYERED_CORRUPT naming
     * the file and offset; other tables stay usable. */
    snprintf(path, sizeof(path), "%s/t.ingest", home);
    CHECK(stat(path, &st) == 0);
    flip_byte(path, st.st_size / 2);
    conn = open_home(home);
    CHECK_OK(layered_session_open(conn, &s));
    last_msg[0] = '\0';
    CHECK_RET(LAYERED_CORRUPT, layered_cursor_open(s, "layered:t", &c));
    printf("  damaged file reported as: %s\n", last_msg);
    CHECK(strstr(last_msg, "t.ingest") != NULL);
    CHECK(strstr(last_msg, "offset") != NULL);
    CHECK_OK(layered_cursor_open(s, "layered:u", &c));
    CHECK_OK(layered_cursor_insert(c, "k", 1, "v", 1));
    CHECK_OK(layered_cursor_close(c));
    CHECK_OK(layered_close(conn));

    /* Damaged metadata: the open refuses with LAYERED_CORRUPT. */
    snprintf(path, sizeof(path), "%s/layered.meta", home);
    CHECK(stat(path, &st) == 0);
    flip_byte(path, st.st_size / 3);
    {
        layered_config cfg;
        layered_config_init(&cfg);
        cfg.message_handler = msg_cb;
        last_msg[0] = '\0';
        CHECK_RET(LAYERED_CORRUPT, layered_open(home, &cfg, &conn));
        printf("  damaged metadata reported as: %s\n", last_msg);
        CHECK(strstr(last_msg, "layered.meta") != NULL);
    }
    tu_rmdir(home);
    free(home);
}

int
main(int argc, char *argv[])
{
    if (argc == 4 && strcmp(argv[1], "--rlimit-child") == 0)
        return rlimit_child(argv[2], atoi(argv[3]));
    if (argc == 3 && strcmp(argv[1], "--unwritable-child") == 0)
        return unwritable_child(argv[2]);
    test_null_and_config();
    test_uris_and_keys();
    test_full_disk_injected();
    test_full_disk_rlimit();
    test_unwritable_home();
    test_damage();
    printf("test_badinput: ok\n");
    return 0;
}
