/*
 * lease.pml -- the leader lease and fencing protocol of the shared store
 * (docs/disaggregation.md): two nodes, one shared store, a failover.
 *
 * The shared store's state is a sequence of pointer records,
 * CURRENT-0, CURRENT-1, ...; the latest is the one that counts.  Each
 * record names the leader's epoch, the holder and the manifest (here: the
 * set of rows the published checkpoint holds, a bit per row).  A record is
 * created exclusively (O_CREAT|O_EXCL on a file system, If-None-Match on an
 * object store): creating CURRENT-(n+1) succeeds for exactly one writer.
 * Every change -- a publish, a lease renewal, a takeover -- is the creation
 * of the next record by a node that read the latest, so the records are one
 * linear history and a writer that read a stale latest fails.
 *
 * Node A is the leader of epoch 1 when the model starts.  It writes rows
 * locally and publishes checkpoints; a checkpoint is acknowledged only when
 * its record was created.  A may be paused at any step for as long as the
 * interleaving likes (SIGSTOP past its lease): spin tries every one.
 *
 * Node B is a follower whose ingest holds rows of its own.  It takes over
 * at any moment -- safety may not depend on the clock, so B does not wait
 * for A's lease to expire (the real protocol does, for liveness) -- by
 * creating the next record with epoch + 1, then picks up the manifest of
 * the record it replaced, drains its ingest into it and publishes.
 *
 * Properties, checked when both nodes are done:
 *   acked   every row of every checkpoint A was told succeeded is in the
 *           latest manifest (no acknowledged checkpoint lost in failover)
 *   ingest  every row of B's ingest is in the latest manifest
 *   late    no row A wrote after B's takeover record exists is visible
 *   epochs  along the records epochs never decrease (checked at each
 *           creation): a deposed leader never publishes over its successor
 *
 * Mutants (-D):
 *   NO_EXCL           a record is written whether or not it exists (a plain
 *                     rename over CURRENT): A's late publish overwrites B's
 *                     takeover
 *   STALE_PICKUP      B drains into the manifest it read before its
 *                     takeover instead of the record it replaced
 *   ACK_BEFORE_CREATE A acknowledges a checkpoint once its manifest is
 *                     written, before the record is created
 *   SAME_EPOCH        B takes over without a new epoch: A cannot tell it was
 *                     deposed and goes on publishing
 */

#ifdef SAME_EPOCH
#define NEXT_EPOCH(e) (e)
#else
#define NEXT_EPOCH(e) (e + 1)
#endif

#define MAXREC 8
/* Rows are bits: A writes bits 0..2, B's ingest holds bits 3 and 4. */
#define B_INGEST 24

typedef record {
    byte epoch;
    byte holder; /* 1 = A, 2 = B */
    byte rows;
};

record rec[MAXREC];
byte nrec = 1;            /* records created; rec[nrec - 1] is the latest */
bool takeover_done = false;
byte acked = 0;           /* rows of checkpoints A was told succeeded */
byte late = 0;            /* rows A wrote after B's takeover record */
bool a_done = false, b_done = false;

/*
 * create(n, e, h, r, ok) -- create record n exclusively: ok is true if this
 * call made it.  One atomic step, as the file system's or the object
 * store's conditional create is.
 */
inline create(n, e, h, r, ok) {
    atomic {
#ifdef NO_EXCL
        if
        :: n < MAXREC ->
            assert(n == 0 || e >= rec[n - 1].epoch);
            rec[n].epoch = e; rec[n].holder = h; rec[n].rows = r;
            if :: nrec <= n -> nrec = n + 1 :: else -> skip fi;
            ok = true
        :: else -> ok = false
        fi
#else
        if
        :: n == nrec && n < MAXREC ->
            assert(n == 0 || e >= rec[n - 1].epoch);
            rec[n].epoch = e; rec[n].holder = h; rec[n].rows = r;
            nrec++;
            ok = true
        :: else -> ok = false
        fi
#endif
    }
}

proctype A() {
    byte mine = 0, n, r, want, nb = 1, tries = 0;
    bool ok;

    do
    :: nb < 8 ->
        /* A write, acknowledged locally (it becomes shared only through a
         * checkpoint). */
        atomic {
            mine = mine | nb;
            if :: takeover_done -> late = late | nb :: else -> skip fi;
            nb = nb * 2
        }
    :: tries < 3 ->
        /* A checkpoint: read the latest record; a newer epoch means this
         * node was deposed -- it steps down. */
        tries++;
        atomic { n = nrec - 1; r = rec[n].rows; ok = (rec[n].epoch == 1) }
        if
        :: !ok -> break
        :: else -> skip
        fi;
        want = r | mine;
#ifdef ACK_BEFORE_CREATE
        acked = acked | mine;
#endif
        /* ... the run files and the manifest are written and synced here
         * (named by epoch and sequence, never reused) ... */
        create(n + 1, 1, 1, want, ok);
        if
        :: ok -> acked = acked | mine
        :: else -> skip /* someone created it first: read again */
        fi
    :: else -> break
    od;
    a_done = true
}

proctype B() {
    byte n, e, r, before, tries = 0;
    bool ok = false;

    /* What B last picked up, before it decides to take over. */
    atomic { before = rec[nrec - 1].rows }

    /* Take over: the next record, with the next epoch. */
    do
    :: tries < 4 ->
        tries++;
        atomic { n = nrec - 1; e = rec[n].epoch; r = rec[n].rows }
        atomic {
            create(n + 1, NEXT_EPOCH(e), 2, r, ok);
            if :: ok -> takeover_done = true :: else -> skip fi
        }
        if :: ok -> break :: else -> skip fi
    :: else -> break
    od;
    if
    :: !ok -> b_done = true; goto end_b /* bounded: A kept winning */
    :: else -> skip
    fi;
#ifdef STALE_PICKUP
    r = before;
#endif
    /* Pick up the replaced record's manifest, drain the ingest into it,
     * publish under the new epoch.  Only B holds epoch e + 1 now, and A's
     * creates all fail from here, so this one cannot lose a race. */
    create(n + 2, NEXT_EPOCH(e), 2, r | B_INGEST, ok);
#ifndef SAME_EPOCH
    assert(ok);
#endif
    b_done = true;
end_b:
    skip
}

proctype check() {
    byte latest;

    (a_done && b_done);
    atomic {
        latest = rec[nrec - 1].rows;
        assert((latest & acked) == acked);         /* acked */
        if
        :: takeover_done ->
            assert((latest & B_INGEST) == B_INGEST); /* ingest */
            assert((latest & late) == 0)           /* late */
        :: else -> skip
        fi
    }
}

init {
    atomic {
        /* A leads epoch 1; its first checkpoint is empty. */
        rec[0].epoch = 1; rec[0].holder = 1; rec[0].rows = 0;
        run A(); run B(); run check()
    }
}
