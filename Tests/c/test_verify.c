/*
 * test_verify.c -- layered_verify and layered_salvage_scan: every damage is
 * reported with its file and offset, a torn tail is reported as such and is
 * not damage, the scan goes on past damage, and nothing is modified.
 *
 * Each test builds a home with two tables (stable rows from a step-up,
 * ingest rows and a tombstone written after it), closes it, damages one
 * file with a single flipped bit, a cut or an append, and checks what the
 * two calls report against the records of the undamaged file.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

#define MAX_REPORTS 64
#define MAX_RECORDS 4096

struct report {
    int kind;
    char file[512];
    uint64_t offset;
    char what[512];
};

struct record {
    int constituent;
    int kind;
    uint64_t offset;
    uint64_t lsn;
    char key[64];
    size_t value_len;
};

/* What one call reported and delivered. */
struct seen {
    int nreports;
    struct report reports[MAX_REPORTS];
    int nrecords;
    struct record records[MAX_RECORDS];
};

static int
on_report(void *arg, int kind, const char *file, uint64_t offset,
          const char *what)
{
    struct seen *s = arg;
    struct report *r;

    printf("    report: %s %s at %llu: %s\n",
           kind == LAYERED_VERIFY_DAMAGE ? "damage" : "torn tail", file,
           (unsigned long long)offset, what);
    CHECK(s->nreports < MAX_REPORTS);
    r = &s->reports[s->nreports++];
    r->kind = kind;
    snprintf(r->file, sizeof(r->file), "%s", file);
    r->offset = offset;
    snprintf(r->what, sizeof(r->what), "%s", what);
    return 0;
}

static int
on_record(void *arg, const layered_record *rec)
{
    struct seen *s = arg;
    struct record *r;

    CHECK(s->nrecords < MAX_RECORDS);
    r = &s->records[s->nrecords++];
    r->constituent = rec->constituent;
    r->kind = rec->kind;
    r->offset = rec->offset;
    r->lsn = rec->lsn;
    CHECK(rec->key_len < sizeof(r->key));
    if (rec->kind == LAYERED_RECORD_CLEAR)
        CHECK(rec->key == NULL && rec->value == NULL);
    else
        memcpy(r->key, rec->key, rec->key_len);
    r->key[rec->key_len] = '\0';
    if (rec->kind == LAYERED_RECORD_PUT)
        CHECK(rec->value != NULL);
    else
        CHECK(rec->value == NULL && rec->value_len == 0);
    r->value_len = rec->value_len;
    return 0;
}

/*
 * build_home --
 *     Tables t1 and t2: 40 rows each drained into stable, then 10 more
 *     rows and one removal each in ingest.
 */
static char *
build_home(void)
{
    layered_conn *conn;
    layered_session *s;
    layered_cursor *c;
    char *home = tu_mkdtemp("verify");

    CHECK_OK(layered_open(home, NULL, &conn));
    CHECK_OK(layered_session_open(conn, &s));
    CHECK_OK(layered_create(s, "layered:t1", NULL));
    CHECK_OK(layered_create(s, "layered:t2", NULL));
    tu_insert_rows(s, "layered:t1", "a", 40);
    tu_insert_rows(s, "layered:t2", "a", 40);
    CHECK_OK(layered_step_up(conn, NULL));
    CHECK_OK(layered_step_down(conn));
    tu_insert_rows(s, "layered:t1", "b", 10);
    tu_insert_rows(s, "layered:t2", "b", 10);
    CHECK_OK(layered_cursor_open(s, "layered:t1", &c));
    CHECK_OK(layered_cursor_remove(c, "a000003", 7));
    CHECK_OK(layered_cursor_close(c));
    CHECK_OK(layered_close(conn));
    return home;
}

static char *
path_of(const char *home, const char *name)
{
    char *p;

    CHECK(asprintf(&p, "%s/%s", home, name) > 0);
    return p;
}

static void
flip_bit(const char *path, uint64_t offset, int bit)
{
    unsigned char b;
    int fd;

    CHECK((fd = open(path, O_RDWR)) >= 0);
    CHECK(pread(fd, &b, 1, (off_t)offset) == 1);
    b ^= (unsigned char)(1u << bit);
    CHECK(pwrite(fd, &b, 1, (off_t)offset) == 1);
    CHECK(close(fd) == 0);
}

static uint64_t
file_size(const char *path)
{
    struct stat st;

    CHECK(stat(path, &st) == 0);
    return (uint64_t)st.st_size;
}

/* The whole file, to check that a call changed nothing. */
static unsigned char *
file_bytes(const char *path, size_t *lenp)
{
    unsigned char *buf;
    int fd;

    *lenp = (size_t)file_size(path);
    CHECK((buf = malloc(*lenp + 1)) != NULL);
    CHECK((fd = open(path, O_RDONLY)) >= 0);
    CHECK(pread(fd, buf, *lenp, 0) == (ssize_t)*lenp);
    CHECK(close(fd) == 0);
    return buf;
}

static void
check_unchanged(const char *path, const unsigned char *before, size_t len)
{
    size_t now_len;
    unsigned char *now = file_bytes(path, &now_len);

    CHECK(now_len == len && memcmp(now, before, len) == 0);
    free(now);
}

/* The records of t1's stable file (and of its ingest), undamaged. */
static void
scan_t1(const char *home, struct seen *s)
{
    memset(s, 0, sizeof(*s));
    CHECK_OK(layered_salvage_scan(home, NULL, "t1", on_record, on_report, s,
                                  NULL));
    CHECK(s->nreports == 0);
}

/* A clean home verifies, and the records are what was written. */
static void
test_clean(void)
{
    layered_verify_stats st;
    struct seen seen;
    char *home = build_home(), *stable = path_of(home, "shared/t1.stable");
    unsigned char *before;
    size_t len;
    int puts = 0, removes = 0, clears = 0, i;

    printf("clean home\n");
    before = file_bytes(stable, &len);
    memset(&seen, 0, sizeof(seen));
    CHECK_OK(layered_verify(home, NULL, NULL, on_report, &seen, &st));
    CHECK(seen.nreports == 0 && st.damaged == 0 && st.torn_tails == 0);
    /* Two metadata files (or one, if the snapshot folded the journal) and
     * four constituents. */
    CHECK(st.files >= 5 && st.records > 0 && st.bytes > 0);
    CHECK_OK(layered_verify(home, NULL, "t1", NULL, NULL, NULL));
    CHECK_RET(ENOENT, layered_verify(home, NULL, "t3", NULL, NULL, NULL));
    CHECK_RET(EINVAL, layered_verify(home, NULL, "../t1", NULL, NULL, NULL));
    CHECK_RET(EINVAL, layered_verify(NULL, NULL, NULL, NULL, NULL, NULL));
    CHECK_RET(EINVAL, layered_verify(home, "", NULL, NULL, NULL, NULL));

    scan_t1(home, &seen);
    for (i = 0; i < seen.nrecords; i++) {
        struct record *r = &seen.records[i];
        if (i > 0 && r->constituent == seen.records[i - 1].constituent)
            CHECK(r->offset > seen.records[i - 1].offset);
        puts += r->kind == LAYERED_RECORD_PUT;
        removes += r->kind == LAYERED_RECORD_REMOVE;
        clears += r->kind == LAYERED_RECORD_CLEAR;
    }
    /* Stable: 40 rows drained.  Ingest: 40 rows, the clear after the
     * drain, then 10 rows and the tombstone. */
    CHECK(puts == 90 && removes == 1 && clears == 1);
    CHECK(seen.records[0].constituent == LAYERED_CONSTITUENT_INGEST);
    CHECK(seen.records[seen.nrecords - 1].constituent ==
          LAYERED_CONSTITUENT_STABLE);
    CHECK_RET(ENOENT, layered_salvage_scan(home, NULL, "t3", on_record, NULL,
                                           NULL, NULL));
    CHECK_RET(EINVAL, layered_salvage_scan(home, NULL, "t1", NULL, NULL, NULL,
                                           NULL));
    check_unchanged(stable, before, len);

    free(before);
    free(stable);
    tu_rmdir(home);
    free(home);
}

/* The index of t1's stable record number n (0-based) among all records. */
static int
stable_record(const struct seen *s, int n)
{
    for (int i = 0; i < s->nrecords; i++)
        if (s->records[i].constituent == LAYERED_CONSTITUENT_STABLE &&
            n-- == 0)
            return i;
    CHECK(!"no such stable record");
    return -1;
}

/* Every record of `clean` but the one at index `skip` is in `damaged`, in
 * the same order. */
static void
check_all_but(const struct seen *clean, const struct seen *damaged, int skip)
{
    int i, j = 0;

    CHECK(damaged->nrecords == clean->nrecords - 1);
    for (i = 0; i < clean->nrecords; i++) {
        if (i == skip)
            continue;
        CHECK(clean->records[i].offset == damaged->records[j].offset);
        CHECK(strcmp(clean->records[i].key, damaged->records[j].key) == 0);
        j++;
    }
}

/*
 * A flipped bit in a record's value: damage at the record's offset, and the
 * scan goes on with the next record.  Open agrees: the table is corrupt.
 */
static void
test_body_damage(void)
{
    struct seen clean, seen;
    layered_conn *conn;
    layered_session *s;
    layered_cursor *c;
    char *home = build_home(), *stable = path_of(home, "shared/t1.stable");
    unsigned char *before;
    size_t len;
    int victim, ret;

    printf("a flipped bit in a record body\n");
    scan_t1(home, &clean);
    victim = stable_record(&clean, 20);
    flip_bit(stable,
             clean.records[victim].offset + 24 +
                 strlen(clean.records[victim].key) + 2,
             3);
    before = file_bytes(stable, &len);

    memset(&seen, 0, sizeof(seen));
    CHECK_RET(LAYERED_CORRUPT,
              layered_verify(home, NULL, NULL, on_report, &seen, NULL));
    CHECK(seen.nreports == 1);
    CHECK(seen.reports[0].kind == LAYERED_VERIFY_DAMAGE);
    CHECK(strcmp(seen.reports[0].file, stable) == 0);
    CHECK(seen.reports[0].offset == clean.records[victim].offset);
    CHECK(strstr(seen.reports[0].what, "body checksum") != NULL);
    /* The other table is not damaged. */
    CHECK_OK(layered_verify(home, NULL, "t2", NULL, NULL, NULL));

    memset(&seen, 0, sizeof(seen));
    CHECK_RET(LAYERED_CORRUPT, layered_salvage_scan(home, NULL, "t1",
                                                    on_record, on_report,
                                                    &seen, NULL));
    CHECK(seen.nreports == 1);
    check_all_but(&clean, &seen, victim);
    check_unchanged(stable, before, len);

    /* An open of the table refuses the same damage. */
    CHECK_OK(layered_open(home, NULL, &conn));
    CHECK_OK(layered_session_open(conn, &s));
    ret = layered_cursor_open(s, "layered:t1", &c);
    CHECK_RET(LAYERED_CORRUPT, ret);
    CHECK_OK(layered_close(conn));

    free(before);
    free(stable);
    tu_rmdir(home);
    free(home);
}

/*
 * A flipped bit in a record header: damage at the record's offset, the
 * scan resynchronises on the next record, which is intact.
 */
static void
test_header_damage(void)
{
    struct seen clean, seen;
    char *home = build_home(), *stable = path_of(home, "shared/t1.stable");
    char want[64];
    int victim;

    printf("a flipped bit in a record header\n");
    scan_t1(home, &clean);
    victim = stable_record(&clean, 7);
    flip_bit(stable, clean.records[victim].offset + 9, 0); /* the lsn */

    memset(&seen, 0, sizeof(seen));
    CHECK_RET(LAYERED_CORRUPT, layered_salvage_scan(home, NULL, "t1",
                                                    on_record, on_report,
                                                    &seen, NULL));
    CHECK(seen.nreports == 1);
    CHECK(seen.reports[0].kind == LAYERED_VERIFY_DAMAGE);
    CHECK(seen.reports[0].offset == clean.records[victim].offset);
    snprintf(want, sizeof(want), "at offset %llu",
             (unsigned long long)clean.records[victim + 1].offset);
    CHECK(strstr(seen.reports[0].what, "bad record header") != NULL);
    CHECK(strstr(seen.reports[0].what, want) != NULL);
    check_all_but(&clean, &seen, victim);

    free(stable);
    tu_rmdir(home);
    free(home);
}

/*
 * A torn tail -- half a record, or a zeroed block -- is reported as such,
 * is not damage, and is left in place; the next open cuts it.
 */
static void
test_torn_tail(void)
{
    layered_verify_stats st;
    struct seen clean, seen;
    layered_conn *conn;
    layered_session *s;
    char *home = build_home(), *stable = path_of(home, "shared/t1.stable");
    unsigned char zeros[100] = {0};
    uint64_t last, size;
    int fd;

    printf("torn tails\n");
    scan_t1(home, &clean);
    last = clean.records[clean.nrecords - 1].offset;
    size = file_size(stable);
    CHECK(truncate(stable, (off_t)(size - 3)) == 0);

    memset(&seen, 0, sizeof(seen));
    CHECK_OK(layered_verify(home, NULL, NULL, on_report, &seen, &st));
    CHECK(seen.nreports == 1 && st.torn_tails == 1 && st.damaged == 0);
    CHECK(seen.reports[0].kind == LAYERED_VERIFY_TORN_TAIL);
    CHECK(seen.reports[0].offset == last);
    CHECK(strcmp(seen.reports[0].file, stable) == 0);
    CHECK(file_size(stable) == size - 3);

    memset(&seen, 0, sizeof(seen));
    CHECK_OK(layered_salvage_scan(home, NULL, "t1", on_record, on_report,
                                  &seen, NULL));
    CHECK(seen.nrecords == clean.nrecords - 1);

    /* The open cuts it; then there is nothing to report. */
    CHECK_OK(layered_open(home, NULL, &conn));
    CHECK_OK(layered_session_open(conn, &s));
    CHECK(tu_count_rows(s, "file:t1.stable") == 39);
    CHECK_OK(layered_close(conn));
    CHECK(file_size(stable) == last);
    CHECK_OK(layered_verify(home, NULL, NULL, NULL, NULL, &st));
    CHECK(st.torn_tails == 0);

    /* Zero bytes after the last record: a preallocated tail. */
    CHECK((fd = open(stable, O_WRONLY | O_APPEND)) >= 0);
    CHECK(write(fd, zeros, sizeof(zeros)) == (ssize_t)sizeof(zeros));
    CHECK(close(fd) == 0);
    memset(&seen, 0, sizeof(seen));
    CHECK_OK(layered_verify(home, NULL, NULL, on_report, &seen, NULL));
    CHECK(seen.nreports == 1 && seen.reports[0].offset == last);
    CHECK(strstr(seen.reports[0].what, "zero bytes") != NULL);

    free(stable);
    tu_rmdir(home);
    free(home);
}

/* Damage in the metadata files, and a missing constituent. */
static void
test_metadata(void)
{
    struct seen seen;
    layered_conn *conn;
    char *home = build_home(), *meta = path_of(home, "layered.meta");
    char *log = path_of(home, "layered.meta.log");
    char *ingest = path_of(home, "t2.ingest");
    const char *torn = "0badf00d create";
    int fd;

    printf("metadata damage, a missing constituent\n");
    /* The snapshot: the "1" of "layered-meta 1" becomes "0". */
    flip_bit(meta, 13, 0);
    memset(&seen, 0, sizeof(seen));
    CHECK_RET(LAYERED_CORRUPT,
              layered_verify(home, NULL, NULL, on_report, &seen, NULL));
    CHECK(seen.nreports == 1 && strcmp(seen.reports[0].file, meta) == 0);
    CHECK(seen.reports[0].offset == 0);
    CHECK_RET(LAYERED_CORRUPT, layered_open(home, NULL, &conn));
    flip_bit(meta, 13, 0);

    /* A torn journal record is a torn tail. */
    CHECK((fd = open(log, O_WRONLY | O_APPEND)) >= 0);
    CHECK(write(fd, torn, strlen(torn)) == (ssize_t)strlen(torn));
    CHECK(close(fd) == 0);
    memset(&seen, 0, sizeof(seen));
    CHECK_OK(layered_verify(home, NULL, NULL, on_report, &seen, NULL));
    CHECK(seen.nreports == 1 && strcmp(seen.reports[0].file, log) == 0);
    CHECK(seen.reports[0].kind == LAYERED_VERIFY_TORN_TAIL);
    CHECK(seen.reports[0].offset == file_size(log) - strlen(torn));

    /* A missing constituent of an active table is damage. */
    CHECK(unlink(ingest) == 0);
    memset(&seen, 0, sizeof(seen));
    CHECK_RET(LAYERED_CORRUPT,
              layered_verify(home, NULL, NULL, on_report, &seen, NULL));
    CHECK(seen.nreports == 2 && strcmp(seen.reports[1].file, ingest) == 0);
    CHECK(strstr(seen.reports[1].what, "missing") != NULL);

    free(meta);
    free(log);
    free(ingest);
    tu_rmdir(home);
    free(home);
}

/* An open home is EBUSY for verify (and verify keeps an open out), not
 * for the salvage scan; a directory that is not a home is ENOENT. */
static void
test_open_home(void)
{
    struct seen seen;
    layered_conn *conn;
    char *home = build_home(), *empty = tu_mkdtemp("verify-empty");
    char *empty_shared = path_of(empty, "shared");

    printf("an open home, not a home\n");
    CHECK_OK(layered_open(home, NULL, &conn));
    CHECK_RET(EBUSY, layered_verify(home, NULL, NULL, NULL, NULL, NULL));
    memset(&seen, 0, sizeof(seen));
    CHECK_OK(layered_salvage_scan(home, NULL, "t1", on_record, NULL, &seen,
                                  NULL));
    CHECK(seen.nrecords > 0);
    CHECK_OK(layered_close(conn));
    CHECK_RET(ENOENT, layered_verify(empty, NULL, NULL, NULL, NULL, NULL));
    CHECK(mkdir(empty_shared, 0755) == 0);
    CHECK_RET(ENOENT, layered_verify(empty, NULL, NULL, NULL, NULL, NULL));
    CHECK_RET(ENOENT, layered_verify("/nonexistent/home", NULL, NULL, NULL,
                                     NULL, NULL));

    tu_rmdir(home);
    tu_rmdir(empty);
    free(home);
    free(empty);
    free(empty_shared);
}

/* A home whose batch journal holds two committed batches: the process
 * committed them and died before any checkpoint or close retired them. */
static char *
build_batch_home(void)
{
    char *home = build_home();
    pid_t pid;
    int status;

    if ((pid = fork()) == 0) {
        layered_conn *conn;
        layered_session *s;
        layered_batch *b;

        CHECK_OK(layered_open(home, NULL, &conn));
        CHECK_OK(layered_session_open(conn, &s));
        for (int i = 0; i < 2; i++) {
            CHECK_OK(layered_batch_open(s, &b));
            CHECK_OK(layered_batch_put(b, "layered:t1", "bk", 2, "v1", 2));
            CHECK_OK(layered_batch_remove(b, "layered:t2", "a000001", 7));
            CHECK_OK(layered_batch_commit(b));
            CHECK_OK(layered_batch_close(b));
        }
        _exit(0); /* as kill -9: no close, the journal not retired */
    }
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
          WEXITSTATUS(status) == 0);
    return home;
}

/* The batch journal is read too: its records' checksums, a torn tail. */
static void
test_batch_journal(void)
{
    layered_verify_stats st, clean;
    struct seen seen;
    char *home = build_batch_home(), *journal = path_of(home, "layered.batch");
    uint64_t size = file_size(journal);

    printf("batch journal\n");
    CHECK(size > 2 * 24);
    memset(&seen, 0, sizeof(seen));
    CHECK_OK(layered_verify(home, NULL, NULL, on_report, &seen, &clean));
    CHECK(seen.nreports == 0);
    /* A flipped bit in the last record's body: the next open cuts it as a
     * torn append, so it is a torn tail, not damage. */
    flip_bit(journal, size - 3, 2);
    memset(&seen, 0, sizeof(seen));
    CHECK_OK(layered_verify(home, NULL, NULL, on_report, &seen, &st));
    CHECK(seen.nreports == 1 &&
          seen.reports[0].kind == LAYERED_VERIFY_TORN_TAIL &&
          st.records == clean.records - 1);
    flip_bit(journal, size - 3, 2);
    /* The first record's body damaged: damage, with the file and 0. */
    flip_bit(journal, 30, 0);
    memset(&seen, 0, sizeof(seen));
    CHECK_RET(LAYERED_CORRUPT,
              layered_verify(home, NULL, NULL, on_report, &seen, &st));
    CHECK(seen.nreports == 1 && seen.reports[0].kind == LAYERED_VERIFY_DAMAGE &&
          seen.reports[0].offset == 0 &&
          strstr(seen.reports[0].file, "layered.batch") != NULL);
    CHECK(st.records == clean.records - 2); /* neither record counted */
    flip_bit(journal, 30, 0);
    /* Cut short: a torn tail, not damage. */
    CHECK(truncate(journal, (off_t)size - 5) == 0);
    memset(&seen, 0, sizeof(seen));
    CHECK_OK(layered_verify(home, NULL, NULL, on_report, &seen, &st));
    CHECK(seen.nreports == 1 &&
          seen.reports[0].kind == LAYERED_VERIFY_TORN_TAIL &&
          seen.reports[0].offset > 0 && st.records == clean.records - 1);
    free(journal);
    tu_rmdir(home);
    free(home);
}

int
main(void)
{
    test_clean();
    test_body_damage();
    test_header_damage();
    test_torn_tail();
    test_metadata();
    test_open_home();
    test_batch_journal();
    printf("test_verify: ok\n");
    return 0;
}
