#!/usr/bin/env bash
# End-to-end test of layered-stress: the protected policies pass (exit 0),
# the unprotected policy is caught (panics reported, exit 1), a seed replays
# the same schedule, and the kill -9 check catches lost acknowledged writes
# (under --sync none, where writes are durable only at checkpoint).
# Usage: Tests/stress/stress_test.sh [path/to/layered-stress]
set -uo pipefail
cd "$(dirname "$0")/../.."
if [ $# -ge 1 ]; then
  tool=$1
else
  source scripts/setup.sh
  swift build -c release --product layered-stress >/dev/null || exit 1
  tool="$(swift build -c release --show-bin-path)/layered-stress"
fi
out=$(mktemp)
trap 'rm -f "$out"' EXIT
failures=0

check() { # description, condition...
  local what=$1; shift
  if "$@"; then echo "ok    $what"; else echo "FAIL  $what"; failures=$((failures + 1)); tail -25 "$out"; fi
}
field() { # report label -> first number on its line
  grep -E "^$1 " "$out" | head -1 | grep -oE '[0-9]+' | head -1
}

for policy in skip-missing read-lock queue-scan; do
  "$tool" --cycles 8 --seed 42 --policy "$policy" --crash-rate 0.25 --reopen-rate 0.25 >"$out" 2>&1
  status=$?
  check "$policy: exit 0 after 8 cycles" test "$status" -eq 0
  check "$policy: no violations" test "$(field violations)" -eq 0
  check "$policy: drops overlapped the drain" test "$(grep -oE '[0-9]+ overlapped the drain' "$out" | grep -oE '^[0-9]+')" -gt 0
done

"$tool" --cycles 3 --seed 42 --policy unprotected >"$out" 2>&1
status=$?
check "unprotected: exit 1" test "$status" -eq 1
check "unprotected: panics reported" test "$(field panics)" -gt 0
check "unprotected: the panic names the drain" grep -q "step-up failed: draining layered:" "$out"

"$tool" --cycles 3 --seed 7 --crash-rate 0 >"$out" 2>&1
first=$(grep -oE 'digest [0-9a-f]+' "$out")
"$tool" --cycles 3 --seed 7 --crash-rate 0 >"$out" 2>&1
second=$(grep -oE 'digest [0-9a-f]+' "$out")
check "a seed replays its schedule ($first)" test -n "$first" -a "$first" = "$second"
check "the run prints its seed" grep -q "seed 7 (replay with --seed 7)" "$out"

"$tool" --cycles 3 --seed 5 --sync none --crash-rate 1 >"$out" 2>&1
status=$?
check "kill -9 under --sync none: lost writes detected, exit 1" test "$status" -eq 1 -a "$(field violations)" -gt 0

"$tool" --cycles 0 --bogus >"$out" 2>&1
check "a bad option is refused" test $? -ne 0

echo "$failures failure(s)"
exit $((failures > 0))
