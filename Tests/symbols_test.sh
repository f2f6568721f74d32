#!/usr/bin/env bash
# liblayered.a must export only the public layered_* API and internal
# names with the reserved __layered_ prefix: anything else could clash with
# a symbol of the program that links it.
set -euo pipefail
lib=$1
header=$2
# Entry points for the library's own tests (layered_open_os) are declared in
# a test-only header that is not installed; they keep the layered_ prefix.
test_header=${3:-}
bad=$(nm -g --defined-only "$lib" | awk 'NF==3 {print $3}' | grep -v -E '^(layered_|__layered_)' || true)
if [ -n "$bad" ]; then
  echo "symbols outside the layered namespace:"; echo "$bad"; exit 1
fi
# Every exported layered_* function is declared in the public header (or,
# for a test entry point, in the test-only header).
for sym in $(nm -g --defined-only "$lib" | awk 'NF==3 && $3 ~ /^layered_/ {print $3}'); do
  grep -q "\\b$sym(" "$header" ${test_header:+"$test_header"} ||
    { echo "$sym is exported but not in layered.h"; exit 1; }
done
echo "symbols test: liblayered.a exports only layered_* and __layered_* names"
