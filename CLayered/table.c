/*
 * table.c -- the table tree: the connection's layered tables by name, the
 * rules for their names and URIs, and the two files each table owns.
 *
 * The tree (conn->tables) and every change to it run under the schema
 * lock, which also covers the metadata files (meta.c), opening and
 * removing dhandles (dhandle.c) and creating and removing a table's files
 * (see the lock order in internal.h).  The schema API (layered.c), the
 * metadata, the handle table, the drain, the lifecycle and the checkpoint
 * all look tables up here; this file uses none of them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

int
tbl_cmp(struct table *a, struct table *b)
{
    return strcmp(a->name, b->name);
}

RB_GENERATE(__layered_table_tree, table, link, tbl_cmp)

bool
tbl_name_valid(const char *name, size_t len)
{
    if (len == 0 || len > LAYERED_NAME_MAX || name[0] == '.')
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
            return false;
    }
    return true;
}

/*
 * tbl_uri_parse --
 *     "layered:NAME" -> NAME, validated.
 */
int
tbl_uri_parse(const char *uri, const char **namep)
{
    if (uri == NULL || strncmp(uri, "layered:", 8) != 0)
        return EINVAL;
    if (!tbl_name_valid(uri + 8, strlen(uri + 8)))
        return EINVAL;
    *namep = uri + 8;
    return 0;
}

struct table *
tbl_find(layered_conn *conn, const char *name)
{
    struct {
        struct table t;
        char name[LAYERED_NAME_MAX + 1];
    } key;

    if (strlen(name) > LAYERED_NAME_MAX)
        return NULL;
    memset(&key.t, 0, sizeof(key.t));
    strcpy(key.t.name, name);
    return RB_FIND(__layered_table_tree, &conn->tables, &key.t);
}

int
tbl_insert(layered_conn *conn, const char *name, int state,
           struct table **tp)
{
    struct table *t;
    size_t n = strlen(name);

    if ((t = calloc(1, sizeof(*t) + n + 1)) == NULL)
        return ENOMEM;
    memcpy(t->name, name, n + 1);
    t->id = ++conn->next_table_id;
    t->state = state;
    (void)pthread_mutex_init(&t->arbiter, NULL);
    (void)RB_INSERT(__layered_table_tree, &conn->tables, t);
    conn->ntables++;
    *tp = t;
    return 0;
}

void
tbl_free(layered_conn *conn, struct table *t)
{
    (void)RB_REMOVE(__layered_table_tree, &conn->tables, t);
    conn->ntables--;
    (void)pthread_mutex_destroy(&t->arbiter);
    free(t);
}

/*
 * tbl_create_file --
 *     Create one empty constituent file, replacing an orphan left by a
 *     crash between a create's file creation and its metadata record.
 */
int
tbl_create_file(layered_conn *conn, int dirfd, const char *dir,
                const char *name, const char *suffix)
{
    char path[4096];
    fs_file *f = NULL;

    (void)snprintf(path, sizeof(path), "%s.%s", name, suffix);
    if (conn->os->unlinkat(dirfd, path, 0) != 0 && errno != ENOENT)
        return errno;
    if ((size_t)snprintf(path, sizeof(path), "%s/%s.%s", dir, name,
                         suffix) >= sizeof(path))
        return ENAMETOOLONG;
    RET(fs_open(path, FS_CREATE | FS_EXCL, &conn->env, &f));
    return fs_close(f);
}

/*
 * unlink_constituents --
 *     Remove a table's two files; a missing file is fine.
 */
static int
unlink_constituents(layered_conn *conn, const char *name)
{
    char path[LAYERED_NAME_MAX + 16];
    int ret = 0;

    (void)snprintf(path, sizeof(path), "%s.ingest", name);
    if (conn->os->unlinkat(conn->home_fd, path, 0) != 0 && errno != ENOENT)
        ret = errno;
    (void)snprintf(path, sizeof(path), "%s.stable", name);
    if (conn->os->unlinkat(conn->shared_fd, path, 0) != 0 &&
        errno != ENOENT &&
        ret == 0)
        ret = errno;
    return ret;
}

/*
 * tbl_unlink_files --
 *     Remove a table's two files and sync both directories.
 */
int
tbl_unlink_files(layered_conn *conn, const char *name)
{

    RET(unlink_constituents(conn, name));
    RET(os_dir_fsync(conn->os, conn->home_fd));
    return os_dir_fsync(conn->os, conn->shared_fd);
}
