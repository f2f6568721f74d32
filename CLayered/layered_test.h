/*
 * layered_test.h -- entry points for the library's own tests.  Not part of
 * the API and not installed: users see layered.h only.  The names follow
 * the public layered_* rule (Tests/symbols_test.sh).
 */
#ifndef LAYERED_TEST_H
#define LAYERED_TEST_H

#include "layered.h"
#include "os.h"

/*
 * layered_open_os --
 *     layered_open with every file-system and clock call of the connection
 *     and its files made through os (os.h), so a test can put a simulated
 *     disk or clock underneath.
 *     @param[in] home, cfg, connp as for layered_open
 *     @param[in] os the calls to use; NULL: the system's (os_default).  It
 *         is not copied: it must stay valid until layered_close returns.
 *     @return as layered_open.
 *     Any thread; the same contract as layered_open.
 */
int layered_open_os(const char *home, const layered_config *cfg,
                    const struct os_ops *os, layered_conn **connp);

/*
 * layered_test_set_scheduler --
 *     Install a scheduler hook, called at every failpoint the connection's
 *     threads reach (before the failpoint's own action), with no library
 *     lock held except what the failpoint's site holds (see the failpoint
 *     list in layered.h).  The hook may block the calling thread, which is
 *     how a test enumerates the orderings of two or three operations; a
 *     non-zero return is injected as the failpoint's error.  NULL removes
 *     it.
 *     @return 0, EINVAL (NULL conn).
 *     Threads: call it before other threads use the connection.
 */
int layered_test_set_scheduler(layered_conn *conn,
                               int (*hook)(void *arg, const char *name),
                               void *arg);

/*
 * layered_test_constituent_entries --
 *     The index entries (rows and tombstones) of a constituent,
 *     "file:NAME.ingest" or "file:NAME.stable" (a cursor does not show
 *     tombstones).
 *     @return 0, EINVAL (NULL argument, malformed name), ENOENT (no such
 *     table or file), LAYERED_PANIC, and the errors of opening the file.
 *     Threads: any; opens the file if it is not open.
 */
int layered_test_constituent_entries(layered_session *session,
                                     const char *name, uint64_t *entriesp);

#endif /* LAYERED_TEST_H */
