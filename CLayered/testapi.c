/*
 * testapi.c -- what the library's own tests may ask that the API does not
 * answer (declared in layered_test.h, not installed).
 */
#include "internal.h"
#include "layered_test.h"

/*
 * layered_test_constituent_entries --
 *     The index entries of a constituent, tombstones included: an ingest
 *     that holds only removals reads as empty through a cursor, yet it is
 *     not empty (its tombstones hide stable rows until drained).
 */
int
layered_test_constituent_entries(layered_session *session, const char *name,
                                 uint64_t *entriesp)
{
    layered_conn *conn;
    struct dhandle *dh;
    fs_info info;

    API_SESSION(session, conn);
    if (name == NULL || entriesp == NULL)
        return EINVAL;
    RET(dh_get(conn, name, &dh));
    fs_get_info(dh->fs, &info);
    *entriesp = info.entries;
    dh_release(dh);
    return 0;
}
