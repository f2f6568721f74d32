/*
 * drain_drop.pml -- the step-up drain racing a drop(force, no checkpoint
 * wait), under each drain policy.  README.md maps every step to the C.
 *
 *   spin -a -DPOLICY=SKIP_MISSING drain_drop.pml   (or READ_LOCK,
 *        QUEUE_SCAN, UNPROTECTED)
 *
 * Properties (assertions; README.md has the list):
 *   (a) the step-up never panics: ENOENT is never its error
 *   (b) a drop that returned an error before its point of no return
 *       changed nothing; one that failed after it is listed "dropping"
 *   (c) after a step-up that returned 0, every table still listed and not
 *       dropping has an empty ingest and its rows durably in its stable
 *   (d) no half-done drop: files gone but the table listed, not dropping
 *   (e) no lost row: a listed, live table's rows are in its ingest or
 *       durably in its stable, at every state
 *   (f) the ingest is cleared only once its copy is durable
 *   (g) the drain copies from and clears only handles of the incarnation
 *       it queued (a re-created table is not the one it was asked to drain)
 *   and: the copy reads live handles of present files; when all returns,
 *   no lock is held and no drain item is left queued or in flight; no
 *   deadlock (pan's invalid end states).
 *
 * Options (-D...):
 *   NT=1|2          tables (default 2); table 0 is the one dropped and read
 *   NW=1|2          drain workers, the step-up's own thread included (2)
 *   NO_READER       no cursor holding shared locks on table 0
 *   RECREATE        after the drop, table 0 may be created again: a new
 *                   incarnation (table_id) under the same name
 *   DROP_RETRY=n    on EBUSY the drop's caller gives up (0), retries (1)
 *                   or either (2, the default: both are explored)
 * Mutants, each expected to produce a counterexample:
 *   QUEUE_SCAN_EARLY_REMOVE  (with QUEUE_SCAN) the drop removes the queued
 *                            item when it claims it, before its try-locks
 *                            and its "dropping" record can fail
 *   NO_DEAD_CHECK            (with READ_LOCK) the worker does not look at
 *                            DEAD after taking the shared lock
 *   CLEAR_BEFORE_SYNC        the ingest is cleared before the copy's sync
 *   NO_INCARNATION_CHECK     (with RECREATE) drain_open does not compare the
 *                            handle's table_id with the item's
 */

#define SKIP_MISSING 1
#define READ_LOCK    2
#define QUEUE_SCAN   3
#define UNPROTECTED  4

#ifndef POLICY
#define POLICY SKIP_MISSING
#endif
#ifndef NT
#define NT 2
#endif
#ifndef NW
#define NW 2
#endif
#ifndef DROP_RETRY
#define DROP_RETRY 2
#endif
#define BATCH NT            /* DRAIN_BATCH_MAX is never the limit here */

/* return codes */
#define OK        0
#define ENOENT    2
#define EBUSY     16
#define ENOSPC    28
#define NOTFOUND  100       /* LAYERED_NOTFOUND: skipped, "already gone" */
#define NOT_DONE  101       /* DRAIN_NOT_DONE */
#define LATE      102       /* an error after the drop's point of no return */

/* where a table's drain item is */
#define I_NONE     0        /* never queued, or freed by drain_queue_empty */
#define I_QUEUED   1
#define I_INFLIGHT 2
#define I_DONE     3        /* drain_item_done ran */
#define I_REMOVED  4        /* removed by a queue-scan drop's claim */

/* data handles: ingest (c = 0) and stable (c = 1) of table t, one pair
 * per incarnation (a re-created table has new handles) */
#ifdef RECREATE
#define NINC 2
#else
#define NINC 1
#endif
#define NH (2 * NT)
#define H(t, c) (2 * (t) + (c))
#define CUR(t, c) (NH * (inc[t] - 1) + H(t, c))  /* the current incarnation's */
#define HINC(h) ((h) / NH + 1)                  /* a handle's table_id */
#define NOH 255

/* ---- the state ---- */
bit schema_lk;              /* conn->schema_lock */
bit drain_lk;               /* conn->drain_lock */
bit leader;                 /* conn->role */
bit panicked;               /* layered_panic ran */
bit stop;                   /* ctx->stop: a worker failed */
byte drain_error;           /* ctx->error */
byte workers_done;          /* the step-up joins its workers */
byte finished;              /* processes that returned (for the final check) */

bit listed[NT];             /* in conn->tables */
byte inc[NT];               /* t->id: its incarnation, 1 or (re-created) 2 */
bit dropping[NT];           /* t->dropping: the durable "dropping" record */
bit files[NT];              /* NAME.ingest and NAME.stable exist */
bit ingest_rows[NT];        /* the ingest holds rows not yet drained */
bit copied[NT];             /* the stable holds them, not yet synced */
bit stable_rows[NT];        /* the stable holds them durably ("drained") */
bit had_rows[NT];           /* the incarnation had rows to drain */
byte item[NT];              /* I_* */
byte qinc[NT];              /* item->table_id: the incarnation queued */

bit hopen[NH * NINC];       /* the handle is in the dhandle table, not DEAD */
bit hdead[NH * NINC];       /* DEAD (and DROPPED: no sweep in this model) */
byte rd[NH * NINC];         /* shared holders of the handle's lock */
bit wr[NH * NINC];          /* the exclusive holder (try-lock only) */

/* ---- locks ---- */
inline lock(l)   { atomic { l == 0 -> l = 1 } }
inline unlock(l) { l = 0 }

/*
 * dh_get: the lock-free lookup finds a live handle and pins it; otherwise,
 * under the schema lock, the handle is opened if the table is listed, not
 * dropping and its files exist, else ENOENT (dh_open_locked).  The two
 * guards are evaluated together: the C code looks up again under the
 * schema lock.  Pins are not modelled (they keep memory alive, nothing
 * else).
 */
inline dh_get(t, c, h, ret) {
  atomic {
    if
    :: hopen[CUR(t, c)] -> h = CUR(t, c); ret = OK
    :: !hopen[CUR(t, c)] && schema_lk == 0 ->
       if
       :: listed[t] && !dropping[t] && files[t] ->
          hopen[CUR(t, c)] = 1; h = CUR(t, c); ret = OK
       :: else -> h = NOH; ret = ENOENT
       fi
    fi
  }
}

/* the shared lock waits only while an exclusive holder has it */
inline read_lock(h)   { atomic { wr[h] == 0 -> rd[h]++ } }
inline read_unlock(h) { assert(rd[h] > 0); rd[h]-- }

/*
 * dh_get_locked (dhandle.c): get, lock shared, and if a drop killed the
 * handle meanwhile, unlock and look again.
 */
inline dh_get_locked(t, c, h, ret) {
  do
  :: dh_get(t, c, h, ret);
     if
     :: ret != OK -> break
     :: else
     fi;
     read_lock(h);
     if
     :: !hdead[h] -> break
     :: else -> read_unlock(h); h = NOH
     fi
  od
}

/* drain_open (drain.c): dh_get_locked, and a handle of another
 * incarnation than the item's is ENOENT, as if the table were missing */
inline drain_open(t, c, h, ret) {
  dh_get_locked(t, c, h, ret);
#ifndef NO_INCARNATION_CHECK
  if
  :: ret == OK && HINC(h) != qinc[t] -> read_unlock(h); h = NOH; ret = ENOENT
  :: else
  fi
#endif
}

/* try-lock exclusive of a handle that is open (dh_lock_exclusive with
 * open = false: an unopened constituent has nothing to lock) */
inline try_exclusive(t, c, h, ret) {
  atomic {
    if
    :: hopen[CUR(t, c)] ->
       if
       :: rd[CUR(t, c)] == 0 && wr[CUR(t, c)] == 0 -> wr[CUR(t, c)] = 1; h = CUR(t, c)
       :: else -> ret = EBUSY
       fi
    :: else
    fi
  }
}

/* drain_policy_result */
inline policy_result(ret) {
#if POLICY == SKIP_MISSING
  if
  :: ret == ENOENT -> ret = NOTFOUND
  :: else
  fi
#endif
  skip
}

/* ---- the drain worker (drain.c:drain_worker) ---- */
inline drain_worker() {
  do
  :: true ->
     /* take items into a batch: drain_take, drain_copy */
     n = 0; ret = OK;
     do
     :: n < BATCH && ret == OK && !stop ->
        atomic {                              /* drain_take */
          drain_lk == 0 ->
          t = NT;
          for (i : 0 .. NT - 1) {
            if
            :: t == NT && item[i] == I_QUEUED -> t = i
            :: else
            fi
          }
          if
          :: t < NT -> item[t] = I_INFLIGHT
          :: else
          fi
        }
        if
        :: t == NT -> break
        :: else
        fi;
        bt[n] = t; blocked[n] = NOH; src = NOH; dst = NOH; r = OK;
        /* drain_copy; failpoint drain.before_lock here */
#if POLICY == READ_LOCK
        dh_get(t, 0, src, r);                 /* drain_read_lock: pin */
        if
        :: r == ENOENT -> r = NOTFOUND
        :: else
        fi;
        if
        :: r == OK ->
           /* failpoint drain.before_read_lock */
           read_lock(src);
#ifndef NO_DEAD_CHECK
           if
           :: hdead[src] || HINC(src) != qinc[t] -> read_unlock(src); r = NOTFOUND
           :: else -> blocked[n] = src
           fi
#else
           blocked[n] = src
#endif
        :: else
        fi;
        src = NOH;
#endif
        if
        :: r == OK -> drain_open(t, 0, src, r)      /* ingest */
        :: else
        fi;
        if
        :: r == OK -> drain_open(t, 1, dst, r)      /* stable */
        :: else
        fi;
        if
        :: r == OK ->                         /* fs_copy, failpoint drain.copy */
           atomic {
             assert(files[t] && !hdead[src] && !hdead[dst]);
             assert(HINC(src) == qinc[t] && HINC(dst) == qinc[t]);   /* (g) */
             copied[t] = copied[t] | ingest_rows[t]
           }
        :: else
        fi;
        atomic {
          if
          :: src != NOH -> read_unlock(src)
          :: else
          fi;
          if
          :: dst != NOH -> read_unlock(dst)
          :: else
          fi
        }
        policy_result(r);
        bres[n] = r;
        if
        :: r != OK && r != NOTFOUND -> ret = r
        :: else
        fi;
        n++
     :: else -> break
     od;
     if
     :: n == 0 -> break
     :: else
     fi;
     if
     :: ret != OK ->
        for (i : 0 .. n - 1) {
          if
          :: bres[i] == OK -> bres[i] = NOT_DONE
          :: else
          fi
        }
     :: else
     fi;
#ifdef CLEAR_BEFORE_SYNC
     goto clear;
sync_stable:
#endif
     /* drain_sync(stable): one syncfs for the batch; a stable constituent
      * whose handle is gone (dropped) has nothing to keep */
     if
     :: ret == OK ->
        atomic {
          for (i : 0 .. n - 1) {
            if
            :: bres[i] == OK && hopen[CUR(bt[i], 1)] &&
               HINC(CUR(bt[i], 1)) == qinc[bt[i]] ->
               stable_rows[bt[i]] = stable_rows[bt[i]] | copied[bt[i]]
            :: else
            fi
          }
        }
     :: else
     fi;
#ifdef CLEAR_BEFORE_SYNC
     goto cleared;
clear:
#endif
     /* drain_clear of each item copied; failpoint drain.before_clear */
     i = 0;
     do
     :: i < n && ret == OK ->
        if
        :: bres[i] == OK ->
           src = NOH; r = OK;
           drain_open(bt[i], 0, src, r);
           if
           :: r == OK ->
              atomic {                        /* fs_clear */
                assert(stable_rows[bt[i]] || !ingest_rows[bt[i]]);   /* (f) */
                assert(HINC(src) == qinc[bt[i]]);                    /* (g) */
                ingest_rows[bt[i]] = 0;
                read_unlock(src)
              }
           :: else
           fi;
           policy_result(r);
           bres[i] = r;
           if
           :: r != OK && r != NOTFOUND ->
              ret = r;
              for (j : i + 1 .. n - 1) {
                if
                :: bres[j] == OK -> bres[j] = NOT_DONE
                :: else
                fi
              }
           :: else
           fi
        :: else
        fi;
        i++
     :: else -> break
     od;
#ifdef CLEAR_BEFORE_SYNC
     goto sync_stable;
cleared:
#endif
     /* drain_sync(ingest): makes the clears durable; no crash is modelled,
      * so it changes nothing here */
     skip;
     /* drain_item_done */
     for (i : 0 .. n - 1) {
       atomic {
         if
         :: blocked[i] != NOH -> read_unlock(blocked[i])
         :: else
         fi;
         drain_lk == 0 ->
         item[bt[i]] = I_DONE;
         if
         :: bres[i] != OK && bres[i] != NOTFOUND && bres[i] != NOT_DONE &&
            drain_error == OK ->
            drain_error = bres[i]; stop = 1
         :: else
         fi
       }
     }
  od
}

/* one of the drain_threads workers; the step-up's own thread is one of
 * them (it runs drain_worker too and does nothing else meanwhile) */
proctype Worker() {
  byte n, i, j, t, r, ret, src, dst;
  byte bt[BATCH], bres[BATCH], blocked[BATCH];

  drain_worker();
  workers_done++
}

/* layered_step_up: checkpoint and role locks held throughout (nothing else
 * in this model takes them: the drop does not wait for checkpoints) */
proctype StepUp() {
  byte i;

  leader = 1;
  lock(schema_lk);                            /* drain_queue_build */
  lock(drain_lk);
  d_step {
    for (i : 0 .. NT - 1) {
      if
      :: listed[i] && !dropping[i] && ingest_rows[i] ->
         item[i] = I_QUEUED; qinc[i] = inc[i]
      :: else
      fi
    }
  }
  unlock(drain_lk);
  unlock(schema_lk);
  /* failpoint drain.queued; start drain_threads - 1 workers and work the
   * queue on this thread too */
  atomic {
    for (i : 1 .. NW) {
      run Worker()
    }
  }
  workers_done == NW;                         /* drain_worker, pthread_join */
  atomic {                                    /* drain_queue_empty */
    drain_lk == 0 ->
    for (i : 0 .. NT - 1) {
      if
      :: item[i] == I_QUEUED -> item[i] = I_NONE
      :: else
      fi
    }
  }
  if
  :: drain_error != OK ->
     panicked = 1;
     assert(!panicked)                        /* (a) no panic */
  :: else ->
     /* drain_check_empty, under the schema lock: (c) every table that
      * still exists has an empty ingest and a stable that holds its
      * drained rows */
     atomic {
       schema_lk == 0 ->
       for (i : 0 .. NT - 1) {
         assert(!listed[i] || dropping[i] ||
                (!ingest_rows[i] && (stable_rows[i] || !had_rows[i])))
       }
     }
  fi;
  finished++
}

/*
 * layered_drop(LAYERED_DROP_FORCE) of table 0; on EBUSY the caller may
 * retry (see DROP_RETRY).
 */
proctype Drop() {
  byte ret, ig, st;
  bit claimed;

  do
  :: true ->
     ret = OK; ig = NOH; st = NOH; claimed = 0;
     /* failpoint drop.before_exclusive */
     lock(schema_lk);
     if
     :: !listed[0] -> unlock(schema_lk); break    /* force: absent is 0 */
     :: else
     fi;
#if POLICY == QUEUE_SCAN
     atomic {                                 /* drain_queue_claim */
       drain_lk == 0 ->
       if
       :: item[0] == I_INFLIGHT -> ret = EBUSY
       :: else -> drain_lk = 1; claimed = 1
#ifdef QUEUE_SCAN_EARLY_REMOVE
          ;
          if
          :: item[0] == I_QUEUED -> item[0] = I_REMOVED
          :: else
          fi
#endif
       fi
     }
     if
     :: ret != OK -> goto err
     :: else
     fi;
#endif
     try_exclusive(0, 0, ig, ret);            /* dh_lock_exclusive ingest */
     if
     :: ret != OK -> goto err
     :: else
     fi;
     try_exclusive(0, 1, st, ret);            /* dh_lock_exclusive stable */
     if
     :: ret != OK -> goto err
     :: else
     fi;
     if
     :: !dropping[0] ->                       /* meta_log(META_DROPPING) */
        if
        :: ret = ENOSPC; goto err
        :: dropping[0] = 1
        fi
     :: else
     fi;
     /* irreversible from here */
     if
     :: claimed ->                            /* drain_queue_release(remove) */
        atomic {
          if
          :: item[0] == I_QUEUED -> item[0] = I_REMOVED
          :: else
          fi;
          unlock(drain_lk); claimed = 0
        }
     :: else
     fi;
     atomic {                                 /* dh_remove ingest, stable */
       if
       :: ig != NOH -> hdead[ig] = 1; hopen[ig] = 0
       :: else
       fi;
       if
       :: st != NOH -> hdead[st] = 1; hopen[st] = 0
       :: else
       fi
     }
     files[0] = 0;                            /* tbl_unlink_files */
     /* failpoint drop.after_remove */
     if                                       /* meta_log(META_DROP) */
     :: ret = LATE
     :: listed[0] = 0                         /* tbl_free */
     fi;
err:
     atomic {
       if
       :: ig != NOH -> wr[ig] = 0
       :: else
       fi;
       if
       :: st != NOH -> wr[st] = 0
       :: else
       fi;
       if
       :: claimed -> unlock(drain_lk)        /* drain_queue_release(keep) */
       :: else
       fi;
       /* (b) a drop that failed before its point of no return changed
        * nothing: the table is listed with its files, its item is where
        * a drain put it, its rows are in the ingest or drained (b) */
       if
       :: ret != OK && ret != LATE ->
          assert(listed[0] && !dropping[0] && files[0] && item[0] != I_REMOVED &&
                 (ingest_rows[0] || stable_rows[0]))
       :: ret == LATE ->                      /* decided, finished later */
          assert(listed[0] && dropping[0])
       :: ret == OK -> assert(!listed[0])
       fi;
       unlock(schema_lk)
     }
     if
#if DROP_RETRY != 0
     :: ret == EBUSY                          /* the caller retries */
#endif
#if DROP_RETRY != 1
     :: ret == EBUSY -> break                 /* the caller gives up */
#endif
     :: ret != EBUSY -> break
     fi
  od;
  finished++
}

/* a cursor on table 0 (layered_cursor_open .. layered_cursor_close) */
proctype Reader() {
  byte ig = NOH, st = NOH, ret = OK;

  dh_get_locked(0, 0, ig, ret);
  if
  :: ret == OK -> dh_get_locked(0, 1, st, ret)
  :: else
  fi;
  /* reads */
  atomic {
    if
    :: ig != NOH -> read_unlock(ig)
    :: else
    fi;
    if
    :: st != NOH -> read_unlock(st)
    :: else
    fi
  }
  finished++
}

/*
 * layered_create of table 0 (RECREATE): a new incarnation, with new
 * handles and no rows (writes wait for the step-up's role lock); EEXIST
 * or EBUSY while the old one is listed.
 */
proctype Create() {
  lock(schema_lk);
  if
  :: !listed[0] ->
     inc[0] = 2; listed[0] = 1; files[0] = 1; dropping[0] = 0;
     had_rows[0] = 0; ingest_rows[0] = 0; copied[0] = 0; stable_rows[0] = 0
  :: else
  fi;
  unlock(schema_lk);
  finished++
}

/*
 * Invariants, checked at every state: (d) no half-done drop (files gone,
 * the table still listed and not "dropping"); (e) no lost row: a listed,
 * live table's rows are in its ingest or durably in its stable.
 */
#define HALF_DONE(t) (!files[t] && listed[t] && !dropping[t])
#define LOST(t) (listed[t] && !dropping[t] && had_rows[t] && !ingest_rows[t] && !stable_rows[t])
#if NT == 1
#define ANY_HALF_DONE HALF_DONE(0)
#define ANY_LOST LOST(0)
#else
#define ANY_HALF_DONE (HALF_DONE(0) || HALF_DONE(1))
#define ANY_LOST (LOST(0) || LOST(1))
#endif

active proctype Monitor() {
end_monitor:
  atomic {
    if
    :: ANY_HALF_DONE -> assert(!ANY_HALF_DONE)
    :: ANY_LOST -> assert(!ANY_LOST)
    fi
  }
}

#ifdef NO_READER
#define N_READER 0
#else
#define N_READER 1
#endif
#ifdef RECREATE
#define N_CREATE 1
#else
#define N_CREATE 0
#endif
#define NPROC (2 + N_READER + N_CREATE)

init {
  byte i;

  atomic {
    for (i : 0 .. NT - 1) {
      listed[i] = 1; inc[i] = 1; files[i] = 1; had_rows[i] = 1; ingest_rows[i] = 1
    }
    /* table 0's constituents may or may not be open already */
    if
    :: hopen[H(0, 0)] = 1
    :: skip
    fi;
    if
    :: hopen[H(0, 1)] = 1
    :: skip
    fi;
    run StepUp();
    run Drop();
#ifndef NO_READER
    run Reader();
#endif
#ifdef RECREATE
    run Create();
#endif
  }
  /* every process returned: no lock is left held, no drain item is
   * left in flight, no table is half dropped */
  finished == NPROC ->
  assert(schema_lk == 0 && drain_lk == 0);
  for (i : 0 .. NT - 1) {
    assert(item[i] != I_INFLIGHT && item[i] != I_QUEUED);
    assert(!HALF_DONE(i))
  }
  for (i : 0 .. NH * NINC - 1) {
    assert(rd[i] == 0 && wr[i] == 0)
  }
}
