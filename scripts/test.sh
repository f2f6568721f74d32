#!/usr/bin/env bash
# Every test: the C tests (ctest) in a release build and under
# AddressSanitizer and ThreadSanitizer, then the Swift tests and the Swift documentation.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
jobs=$(nproc)

run_ctest() { # name, cmake options...
  local name=$1; shift
  echo "== C tests: $name"
  cmake -S . -B "build/$name" "$@" >/dev/null
  cmake --build "build/$name" -j "$jobs" >/dev/null
  ctest --test-dir "build/$name" --output-on-failure -j 2
}

# The release run is optimised (-O2 -DNDEBUG) with the lock-order checker
# compiled in, so the code as optimised is checked for lock-order inversions.
run_ctest release -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLAYERED_LOCK_ORDER_CHECK=ON
run_ctest asan -DCMAKE_BUILD_TYPE=Debug -DLAYERED_SANITIZE=address -DLAYERED_BUILD_BENCH=OFF
run_ctest tsan -DCMAKE_BUILD_TYPE=Debug -DLAYERED_SANITIZE=thread -DLAYERED_BUILD_BENCH=OFF

Tests/models_test.sh
Tests/fuzz/fuzz_test.sh
echo "== Swift tests"
swift build --build-tests
swift test

# The DocC catalog and the doc comments: a broken symbol link or article reference fails the run.
# The archive lands in .build/plugins/Swift-DocC/outputs/Layered.doccarchive (about 20 s).
echo "== Swift documentation"
swift package generate-documentation --target Layered --warnings-as-errors

echo "== layered-stress end to end"
Tests/stress/stress_test.sh
