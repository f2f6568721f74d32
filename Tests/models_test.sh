#!/usr/bin/env bash
# The protocol models (models/, see models/README.md), model-checked with
# spin: every fixed configuration verifies with no error, and every broken
# one -- the unprotected drain policy and the mutants -- yields a
# counterexample on the properties it breaks.  A model that cannot fail
# would prove nothing.  MODELS_JOBS (default 2) configurations run at once.
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in spin gcc; do
  command -v "$tool" >/dev/null 2>&1 ||
    { echo "models test: $tool not found (scripts/setup.sh installs it)"; exit 1; }
done

# The properties, by the text of their assertion as pan prints it (a
# fixed string found in the line; spin 6.5).
declare -A property=(
  # drain_drop.pml
  [a]=' !(panicked)'                                   # no panic
  [b]='&&(item[0]!=4))'                                # a failed drop changed nothing
  [c]='||( !(ingest_rows[i])&&(stable_rows[i]|| !(had_rows[i]))))'  # after step-up: ingest empty, rows drained
  [d]='( !(files[0])&&listed[0])'                      # no half-done drop
  [e]='&& !(ingest_rows[0]))&& !(stable_rows[0]))'     # no lost row
  [f]='(stable_rows[bt[i]]|| !(ingest_rows[bt[i]]))'   # clear only after a durable copy
  [g]='+1)==qinc['                                     # only the incarnation queued
  # arbiter.pml
  [stopping]='(state!=2)'                              # no table left stopping
  [unarchived]='( !(unarchived_ok)||((state==0)&&ingest_file))'  # unarchive 0: usable
  [offloaded]='assertion violated (state==3)'          # offload 0: offloaded
  # lease.pml
  [acked]='((latest&acked)==acked)'                    # no acknowledged checkpoint lost
  [ingest]='((latest&24)==24)'                         # the new leader's ingest drained
  [late]='((latest&late)==0)'                          # nothing a deposed leader wrote is visible
  [epochs]='>=rec[((n+1)-1)].epoch))'                  # epochs never go back
)

echo "== protocol models (spin)"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/layered-models.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
start=$SECONDS
jobs=${MODELS_JOBS:-2}
n=0

# run_one N EXPECT MODEL [-D flags]: one configuration; prints "ok ..." or
# "FAIL ...".  EXPECT is "verified", or a comma-separated list of the
# properties its counterexamples must include.
run_one() {
  local n=$1 expect=$2 model=$3 dir out rc label found="" missing=""
  shift 3
  dir=$tmp/$n
  rc=0
  if [ "$expect" = verified ]; then
    out=$(models/run.sh -d "$dir" "$model" "$@" 2>&1) || rc=$?
    out=${out%; trail *}
    if [ "$rc" -eq 0 ]; then
      echo "ok    $out"
      return
    fi
    echo "FAIL  $out"
    echo "      expected: verified"
    return
  fi
  out=$(models/run.sh -a -d "$dir" "$model" "$@" 2>&1) || rc=$?
  out=${out%; trail *}
  if [ "$rc" -eq 1 ] && ls "$dir"/*.trail >/dev/null 2>&1; then
    for label in $(printf '%s\n' "${!property[@]}" | sort); do
      grep -q -F -e "${property[$label]}" "$dir/violations.txt" && found="$found${found:+,}$label"
    done
    for label in ${expect//,/ }; do
      [[ ",$found," == *",$label,"* ]] || missing="$missing $label"
    done
    if [ -z "$missing" ]; then
      echo "ok    ${out%%, first: *}, violates ($found) as expected ($expect), trail written"
      return
    fi
  fi
  echo "FAIL  $out"
  echo "      expected a trail and a counterexample on: $expect${missing:+ (missing:$missing)}"
}

# check EXPECT MODEL [-D flags]: queue one configuration.
check() {
  n=$((n + 1))
  run_one "$n" "$@" >"$tmp/$n.result" 2>&1 &
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do
    wait -n || true
  done
}

# The drain-vs-drop race: the three fixed policies never panic, lose no
# row, leave no half-done drop, and a failed drop changes nothing.
check verified drain_drop.pml -DPOLICY=SKIP_MISSING
check verified drain_drop.pml -DPOLICY=READ_LOCK
check verified drain_drop.pml -DPOLICY=QUEUE_SCAN
# The original bug: a drop between dequeue and open panics the step-up.
check a drain_drop.pml -DPOLICY=UNPROTECTED
# Mutants: queue-scan removing the item before its try-locks and its
# "dropping" record can fail (a failed drop loses the drain, the step-up
# leaves rows in the ingest); read-lock without the DEAD check; the clear
# before the copy's sync.
check b,c drain_drop.pml -DPOLICY=QUEUE_SCAN -DQUEUE_SCAN_EARLY_REMOVE
check a drain_drop.pml -DPOLICY=READ_LOCK -DNO_DEAD_CHECK
check e,f drain_drop.pml -DPOLICY=SKIP_MISSING -DCLEAR_BEFORE_SYNC
# A table dropped and created again under its name while its item waits:
# the drain skips the new incarnation; without the table_id check it
# would copy into and clear a table it was never asked to drain.
check verified drain_drop.pml -DPOLICY=SKIP_MISSING -DRECREATE -DNT=1
check verified drain_drop.pml -DPOLICY=READ_LOCK -DRECREATE -DNT=1
check verified drain_drop.pml -DPOLICY=QUEUE_SCAN -DRECREATE -DNT=1
check g drain_drop.pml -DPOLICY=SKIP_MISSING -DRECREATE -DNT=1 -DNO_INCARNATION_CHECK

# The offload-vs-unarchive arbiter.
check verified arbiter.pml
# Mutants: stopping before the ruling; unarchive ignoring shutting_down.
check stopping,unarchived arbiter.pml -DBROKEN_ARBITER
check unarchived arbiter.pml -DNO_SHUTDOWN_CHECK

# The leader lease and fencing of the shared store: a failover from a
# leader that may be paused at any step to a follower that takes over.
check verified lease.pml
# Mutants: records written over instead of created exclusively; the new
# leader draining into a stale pick-up; a checkpoint acknowledged before
# its record exists; a takeover without a new epoch.
check acked,ingest,late,epochs lease.pml -DNO_EXCL
check acked lease.pml -DSTALE_PICKUP
check acked lease.pml -DACK_BEFORE_CREATE
check ingest,late lease.pml -DSAME_EPOCH

wait
failed=0
for i in $(seq 1 "$n"); do
  cat "$tmp/$i.result"
  grep -q '^ok ' "$tmp/$i.result" || failed=$((failed + 1))
done
echo "models test: $n configurations, $failed unexpected, $((SECONDS - start))s"
[ "$failed" -eq 0 ]

