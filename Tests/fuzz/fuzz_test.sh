#!/usr/bin/env bash
# The fuzz targets' short run, for the test command: builds them with clang
# (build/fuzz, -DLAYERED_FUZZ=ON), replays every seed and every regression
# input (Tests/fuzz/corpus/TARGET, Tests/fuzz/regressions/TARGET), then
# fuzzes each target for SECONDS (default 30; both at once, one per core)
# from a scratch copy of its seeds.  Fails on any crash; a crashing input
# is kept in Tests/fuzz/crashes/.
#
#   Tests/fuzz/fuzz_test.sh [SECONDS]
#   Tests/fuzz/fuzz_test.sh --build            only build the targets
#   Tests/fuzz/fuzz_test.sh --replay BINARY DIR...
#                                              run every file in the DIRs
#                                              once (the ctest of each
#                                              target; missing DIRs are
#                                              skipped)
# CLANG overrides the compiler (default /opt/swift/usr/bin/clang, else
# clang on PATH).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build="$root/build/fuzz"
targets=(open api run)
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

build_targets() {
  local cc=${CLANG:-}
  if [ -z "$cc" ]; then
    if [ -x /opt/swift/usr/bin/clang ]; then cc=/opt/swift/usr/bin/clang
    else cc=$(command -v clang || true); fi
  fi
  [ -n "$cc" ] || { echo "fuzz: no clang found (set CLANG)" >&2; exit 1; }
  local ld=()
  if [ -x "$(dirname "$cc")/ld.lld" ] || command -v ld.lld >/dev/null; then
    ld=(-DCMAKE_EXE_LINKER_FLAGS=-fuse-ld=lld)
  fi
  mkdir -p "$build"
  if ! { cmake -S "$root" -B "$build" -DLAYERED_FUZZ=ON -DCMAKE_C_COMPILER="$cc" \
           -DLAYERED_BUILD_TESTS=OFF -DLAYERED_BUILD_BENCH=OFF \
           -DCMAKE_BUILD_TYPE=Debug "-DCMAKE_C_FLAGS_DEBUG=-g -O1" "${ld[@]}" &&
         cmake --build "$build" -j "$(nproc)" --target fuzz_open fuzz_api fuzz_run; } \
       >"$build/build.log" 2>&1; then
    tail -30 "$build/build.log" >&2
    echo "fuzz: the build failed (log: $build/build.log)" >&2
    exit 1
  fi
}

# replay BINARY DIR...: every regular file of the DIRs, once each.
replay() {
  local bin=$1; shift
  local files=() d f
  for d in "$@"; do
    [ -d "$d" ] || continue
    for f in "$d"/*; do
      [ -f "$f" ] && [ "$(basename "$f")" != README.md ] && files+=("$f")
    done
  done
  if [ ${#files[@]} -eq 0 ]; then
    echo "fuzz: $(basename "$bin"): nothing to replay"
    return 0
  fi
  local log
  log=$(mktemp)
  "$bin" "${files[@]}" >/dev/null 2>"$log" || {
    echo "fuzz: $(basename "$bin") crashed replaying an input:" >&2
    grep -v '^  layered' "$log" | tail -40 >&2
    rm -f "$log"
    return 1
  }
  rm -f "$log"
  echo "fuzz: $(basename "$bin"): ${#files[@]} inputs replayed, no crash"
}

case "${1:-}" in
--build)
  build_targets
  exit 0
  ;;
--replay)
  shift
  replay "$@"
  exit $?
  ;;
esac

secs=${1:-30}
start=$(date +%s)
echo "== fuzz targets: replay, then ${secs} s each"
build_targets
for t in "${targets[@]}"; do
  replay "$build/Tests/fuzz/fuzz_$t" "$here/corpus/$t" "$here/regressions/$t"
done

# The short run: every target at once, each from a scratch corpus.
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
pids=()
for t in "${targets[@]}"; do
  mkdir -p "$scratch/$t" "$scratch/crash-$t"
  opts=(-max_total_time="$secs" -timeout=20 -print_final_stats=1
        -artifact_prefix="$scratch/crash-$t/")
  [ "$t" = open ] && opts+=(-max_len=8192 -dict="$here/fuzz_open.dict")
  [ "$t" = api ] && opts+=(-max_len=1024 -len_control=10)
  [ "$t" = run ] && opts+=(-max_len=70000)
  "$build/Tests/fuzz/fuzz_$t" "${opts[@]}" "$scratch/$t" "$here/corpus/$t" \
    >"$scratch/$t.log" 2>&1 &
  pids+=($!)
done
status=0
for i in "${!targets[@]}"; do
  t=${targets[$i]}
  if ! wait "${pids[$i]}"; then
    status=1
    echo "fuzz: fuzz_$t crashed:" >&2
    grep -v '^  layered' "$scratch/$t.log" | grep -v '^#' | tail -40 >&2
    mkdir -p "$here/crashes"
    for f in "$scratch/crash-$t"/*; do
      [ -f "$f" ] || continue
      cp "$f" "$here/crashes/$t-$(basename "$f")"
      echo "fuzz: input kept as Tests/fuzz/crashes/$t-$(basename "$f")" >&2
    done
  else
    echo "fuzz: fuzz_$t: $(grep -E '^#[0-9]+.*DONE' "$scratch/$t.log" | tail -1)"
  fi
done
echo "fuzz: $(( $(date +%s) - start )) s in all"
exit $status
