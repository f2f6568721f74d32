#!/usr/bin/env bash
# Fuzz the engine: builds the libFuzzer targets (build/fuzz, clang,
# -DLAYERED_FUZZ=ON) and runs fuzz_open, fuzz_api and fuzz_run for SECONDS
# each (default 600), all at once, from their seeds
# (Tests/fuzz/corpus/TARGET) and the corpus earlier runs grew
# (build/fuzz/corpus/TARGET).  A target that crashes is restarted for the
# time left; every crashing input is written to Tests/fuzz/crashes/ and
# the script exits 1.  Logs: build/fuzz/logs/TARGET.log.
#
#   scripts/fuzz.sh [SECONDS]
#
# Reproduce a crash: build/fuzz/Tests/fuzz/fuzz_TARGET FILE (FUZZ_TRACE=1
# prints fuzz_api's calls, FUZZ_VERBOSE=1 the engine's messages).  Once
# fixed, move the input to Tests/fuzz/regressions/TARGET/.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-600}
root=$(pwd)
build="$root/build/fuzz"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

Tests/fuzz/fuzz_test.sh --build
mkdir -p "$build/logs" Tests/fuzz/crashes

fuzz_one() { # target
  local t=$1 end=$(( $(date +%s) + secs )) left runs=0 crashes=0
  local log="$build/logs/$t.log" corpus="$build/corpus/$t"
  local opts=(-timeout=20 -print_final_stats=1
              -artifact_prefix="$root/Tests/fuzz/crashes/$t-")
  [ "$t" = open ] && opts+=(-max_len=8192 -dict="$root/Tests/fuzz/fuzz_open.dict")
  [ "$t" = api ] && opts+=(-max_len=1024 -len_control=10)
  [ "$t" = run ] && opts+=(-max_len=70000)
  mkdir -p "$corpus"
  : >"$log"
  while left=$(( end - $(date +%s) )); [ "$left" -gt 0 ] && [ $runs -lt 50 ]; do
    runs=$((runs + 1))
    if ! "$build/Tests/fuzz/fuzz_$t" "${opts[@]}" -max_total_time="$left" \
         "$corpus" "Tests/fuzz/corpus/$t" >>"$log" 2>&1; then
      crashes=$((crashes + 1))
    fi
  done
  echo "fuzz_$t: ${secs} s, $runs run(s), $crashes crash(es); last status:"
  grep -E '^#[0-9]+' "$log" | tail -1
  grep -E '^stat::(number_of_executed_units|average_exec_per_sec)' "$log" | tail -2
  echo "  corpus: $(find "$corpus" -type f | wc -l) inputs in $corpus"
  [ $crashes -eq 0 ]
}

status=0
pids=()
for t in open api run; do
  fuzz_one $t >"$build/logs/$t.summary" 2>&1 &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || status=1; done
cat "$build/logs/open.summary" "$build/logs/api.summary" "$build/logs/run.summary"
if [ $status -ne 0 ]; then
  echo "crashing inputs:"
  ls -l Tests/fuzz/crashes/ | grep -v '^total' || true
fi
exit $status
