/*
 * arbiter.pml -- the auto-offload racing an unarchive, and the per-table
 * arbiter lock that decides between them.  README.md maps every step to
 * the C (lifecycle.c).
 *
 *   spin -a arbiter.pml
 *
 * Options (-D...):
 *   PASSES=n        auto-offload passes (default 2: an unarchive, a new
 *                   archive and a second offload fit in one run)
 *   NO_EXPLICIT     no user call of layered_offload besides the task
 *   NO_ARCHIVE      no user call of layered_archive
 *   NO_CURSOR       no cursor holding the ingest's shared lock
 * Mutants, each expected to produce a counterexample:
 *   BROKEN_ARBITER     the offload enters the irreversible stopping state
 *                      on the strength of its caller's snapshot and asks
 *                      the arbiter only afterwards
 *   NO_SHUTDOWN_CHECK  the unarchive does not look at shutting_down (and
 *                      so goes ahead while an offload that has ruled runs)
 */

#ifndef PASSES
#define PASSES 2
#endif

/* table states (LAYERED_TABLE_*) */
#define ACTIVE    0
#define ARCHIVED  1
#define STOPPING  2
#define OFFLOADED 3

/* return codes */
#define OK           0
#define EAGAIN       11
#define EBUSY        16
#define ENOENT       2
#define ENOSPC       28
#define IN_PROGRESS  110     /* LAYERED_IN_PROGRESS */
#define NOT_ARCHIVED 111     /* LAYERED_NOT_ARCHIVED */

bit schema_lk;               /* conn->schema_lock */
bit arb_lk;                  /* t->arbiter */

/* the table (struct table); the arbiter lock guards the four flags */
byte state = ARCHIVED;       /* t->state, and the durable state with it */
bit pending_archived = 1;
bit durable_archived = 1;
bit shutting_down;
bit unarchiving;

bit ingest_file = 1;         /* NAME.ingest exists in the home directory */
bit ingest_rows;             /* the ingest holds entries */
/* the ingest's data handle: open, shared holders, exclusive holder */
bit hopen;
byte rd;
bit wr;

/* ghost: the last call that changed the table's archived state was an
 * unarchive that returned 0 (an archive that returns 0 clears it) */
bit unarchived_ok;
byte finished;

inline lock(l)   { atomic { l == 0 -> l = 1 } }
inline unlock(l) { l = 0 }

/* meta_log: the metadata write may fail (ENOSPC) */
inline meta_log(ret) {
  if
  :: skip
  :: ret = ENOSPC
  fi
}

/*
 * offload_table (lifecycle.c).  explicit_call only changes a message in
 * the C; both callers run the same steps.
 */
inline offload_table(ret) {
  ret = OK;
  already = 0;
  held = 0;
  /* failpoint offload.before_arbiter */
#ifndef BROKEN_ARBITER
  /* the ruling: one hold of the arbiter */
  lock(schema_lk);
  lock(arb_lk);
  if
  :: shutting_down || unarchiving -> ret = IN_PROGRESS
  :: else ->
     if
     :: state == OFFLOADED -> already = 1
     :: state != OFFLOADED && (!pending_archived || !durable_archived) ->
        ret = NOT_ARCHIVED
     :: state != OFFLOADED && pending_archived && durable_archived ->
        shutting_down = 1
     fi
  fi;
  unlock(arb_lk);
  atomic {
    assert(!already || state == OFFLOADED);  /* returned 0: offloaded */
    unlock(schema_lk)
  }
  if
  :: ret != OK || already -> goto off_out
  :: else
  fi;
  /* failpoint offload.after_arbiter (may return an error) */
  if
  :: ret = ENOSPC; goto undo_unlocked
  :: skip
  fi;
#endif
  lock(schema_lk);
  /* drain_queue_claim: no step-up runs in this model (drain_drop.pml
   * models the claim) */
  atomic {                                   /* dh_lock_exclusive(open) */
    hopen = 1;
    if
    :: rd == 0 && wr == 0 -> wr = 1; held = 1
    :: else -> ret = EBUSY
    fi
  }
  if
  :: ret != OK -> goto undo
  :: else
  fi;
  if
  :: ingest_rows -> ret = EBUSY; goto undo   /* !fs_empty(ingest) */
  :: else
  fi;
  meta_log(ret);                             /* fs_sync(stable), META_STATE stopping */
  if
  :: ret != OK -> goto undo
  :: else
  fi;
#ifdef BROKEN_ARBITER
  state = STOPPING;                          /* irreversible, before the ruling */
  lock(arb_lk);
  if
  :: shutting_down || unarchiving -> ret = IN_PROGRESS
  :: !(shutting_down || unarchiving) && (!pending_archived || !durable_archived) ->
     ret = NOT_ARCHIVED
  :: !(shutting_down || unarchiving) && pending_archived && durable_archived ->
     shutting_down = 1
  fi;
  unlock(arb_lk);
  if
  :: ret != OK -> wr = 0; held = 0; unlock(schema_lk); goto off_out
  :: else
  fi;
#endif
  /* irreversible from here: every path ends offloaded */
  state = STOPPING;
  /* failpoint offload.after_stopping */
  atomic { hopen = 0 }                       /* dh_remove(ingest), DEAD */
  ingest_file = 0;                           /* unlinkat NAME.ingest */
  /* failpoint offload.after_remove */
  state = OFFLOADED;                         /* its record may fail: ignored */
  /* err: after success */
  wr = 0; held = 0;
  lock(arb_lk);
  shutting_down = 0;
  unlock(arb_lk);
  atomic {
    assert(state == OFFLOADED);              /* returned 0: offloaded */
    unlock(schema_lk)
  }
  goto off_out;
undo:
  /* err: after a failure, not stopping yet: give the table back as it
   * was, ending the ruling before schema_lk goes */
  atomic {
    if
    :: held -> wr = 0; held = 0
    :: else
    fi
  }
  lock(arb_lk);
  shutting_down = 0;
  unlock(arb_lk);
  unlock(schema_lk);
  goto off_out;
undo_unlocked:
  /* err: after a failure with schema_lk not held */
  lock(arb_lk);
  shutting_down = 0;
  unlock(arb_lk);
off_out:
  skip
}

/* auto_offload_pass: the decision, from a snapshot taken in its own
 * hold of the locks */
inline snapshot(candidate) {
  lock(schema_lk);
  lock(arb_lk);
  candidate = state == ARCHIVED && !shutting_down;
  unlock(arb_lk);
  unlock(schema_lk)
}

/* the maintenance task: auto_offload_pass, PASSES times */
proctype AutoOffload() {
  byte ret, pass;
  bit candidate, already, held;

  for (pass : 1 .. PASSES) {
    snapshot(candidate);
    /* failpoint offload.decided: the snapshot grows stale here */
    if
    :: candidate -> offload_table(ret)
    :: else
    fi
  }
  finished++
}

/* a user's layered_offload.  Under BROKEN_ARBITER, where the offload
 * trusts its caller's decision, the caller checks first that the table is
 * archived, as the maintenance task does. */
proctype Offload() {
  byte ret;
  bit candidate = 1, already, held;

#ifdef BROKEN_ARBITER
  snapshot(candidate);
#endif
  if
  :: candidate -> offload_table(ret)
  :: else
  fi;
  finished++
}

/* layered_unarchive, retried while it returns EAGAIN */
#ifndef NO_SHUTDOWN_CHECK
#define SHUT shutting_down
#else
#define SHUT 0                               /* the mutant */
#endif
proctype Unarchive() {
  byte ret;
  bit restoring, persist;

  do
  :: true ->
     ret = OK; restoring = 0; persist = 0;
     /* failpoint unarchive.before_lock */
     lock(schema_lk);
     lock(arb_lk);
     if
     :: SHUT -> ret = EAGAIN                 /* the offload ruled first */
     :: !SHUT && unarchiving -> ret = IN_PROGRESS
     :: !SHUT && !unarchiving && state == OFFLOADED ->
        unarchiving = 1; restoring = 1
     :: !SHUT && !unarchiving && state != OFFLOADED &&
        (pending_archived || state == ARCHIVED) ->
        pending_archived = 0; persist = 1    /* an offload not yet ruled refuses */
     :: !SHUT && !unarchiving && state != OFFLOADED &&
        !(pending_archived || state == ARCHIVED) -> skip
     fi;
     unlock(arb_lk);
     if
     :: restoring ->                         /* restore */
        if
        :: ret = ENOSPC                      /* tbl_create_file */
        :: ingest_file = 1;
           meta_log(ret);
           if
           :: ret == OK -> state = ACTIVE
           :: else
           fi
        fi
     :: persist ->
        meta_log(ret);
        if
        :: ret == OK -> state = ACTIVE
        :: else
        fi
     :: else
     fi;
     if
     :: restoring || persist ->
        lock(arb_lk);
        if
        :: ret == OK -> pending_archived = 0; durable_archived = 0
        :: ret != OK && persist -> pending_archived = durable_archived
        :: else
        fi;
        unarchiving = 0;
        unlock(arb_lk)
     :: else
     fi;
     atomic {
       if
       :: ret == OK -> unarchived_ok = 1
       :: else
       fi;
       unlock(schema_lk)
     }
     if
     :: ret == EAGAIN                        /* retry */
     :: else -> break
     fi
  od;
  finished++
}

/* layered_archive */
proctype Archive() {
  byte ret = OK;
  bit persist;

  lock(schema_lk);
  lock(arb_lk);
  if
  :: shutting_down || unarchiving -> ret = IN_PROGRESS
  :: !(shutting_down || unarchiving) && state == ACTIVE ->
     pending_archived = 1; persist = 1
  :: else
  fi;
  unlock(arb_lk);
  if
  :: persist ->
     meta_log(ret);
     if
     :: ret != OK ->
        lock(arb_lk); pending_archived = 0; unlock(arb_lk)
     :: else ->
        atomic { state = ARCHIVED; unarchived_ok = 0 }
        lock(arb_lk); durable_archived = 1; unlock(arb_lk)
     fi
  :: else
  fi;
  unlock(schema_lk);
  finished++
}

/*
 * A cursor on the table: dh_get_locked on the ingest (a live handle is
 * found without the schema lock; otherwise it is opened under it unless
 * the table is stopping or offloaded: ENOENT); it may write a row into
 * the ingest (a follower's write), then closes.
 */
proctype Cursor() {
  bit opened;

  atomic {
    wr == 0 && (hopen || schema_lk == 0) ->
    if
    :: hopen -> rd++; opened = 1
    :: !hopen && (state == ACTIVE || state == ARCHIVED) && ingest_file ->
       hopen = 1; rd++; opened = 1
    :: else
    fi
  }
  if
  :: opened ->
     if
     :: ingest_rows = 1
     :: skip
     fi;
     rd--
  :: else
  fi;
  finished++
}

/* an unarchive that returned 0 leaves the table usable until someone
 * archives it again */
active proctype Monitor() {
end_monitor:
  atomic {
    (unarchived_ok && !(state == ACTIVE && ingest_file)) ->
    assert(!unarchived_ok || (state == ACTIVE && ingest_file))
  }
}

#ifdef NO_EXPLICIT
#define N_EXPLICIT 0
#else
#define N_EXPLICIT 1
#endif
#ifdef NO_ARCHIVE
#define N_ARCHIVE 0
#else
#define N_ARCHIVE 1
#endif
#ifdef NO_CURSOR
#define N_CURSOR 0
#else
#define N_CURSOR 1
#endif
#define NPROC (2 + N_EXPLICIT + N_ARCHIVE + N_CURSOR)

init {
  atomic {
    /* an archived table; its ingest may still hold entries, its handle
     * may be open */
    if
    :: ingest_rows = 1
    :: skip
    fi;
    if
    :: hopen = 1
    :: skip
    fi;
    run AutoOffload();
    run Unarchive();
#ifndef NO_EXPLICIT
    run Offload();
#endif
#ifndef NO_ARCHIVE
    run Archive();
#endif
#ifndef NO_CURSOR
    run Cursor();
#endif
  }
  finished == NPROC ->
  /* when every call has returned: no table left stopping, no arbiter
   * flag left set, no lock left held; a table listed active or archived
   * has its ingest */
  assert(state != STOPPING);
  assert(!shutting_down && !unarchiving);
  assert(schema_lk == 0 && arb_lk == 0 && rd == 0 && wr == 0);
  assert(state == OFFLOADED || ingest_file)
}
