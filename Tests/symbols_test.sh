#!/usr/bin/env bash
# liblayered.a must export only the public layered_* API and internal
# names with the reserved __layered_ prefix: anything else could clash with
# a symbol of the program that links it.
set -euo pipefail
lib=$1
header=$2
bad=$(nm -g --defined-only "$lib" | awk 'NF==3 {print $3}' | grep -v -E '^(layered_|__layered_)' || true)
if [ -n "$bad" ]; then
  echo "symbols outside the layered namespace:"; echo "$bad"; exit 1
fi
# Every exported layered_* function is declared in the public header.
for sym in $(nm -g --defined-only "$lib" | awk 'NF==3 && $3 ~ /^layered_/ {print $3}'); do
  grep -q "\\b$sym(" "$header" "$(dirname "$0")/../CLayered/layered_test.h" || { echo "$sym is exported but not in layered.h (or, for tests, CLayered/layered_test.h)"; exit 1; }
done
echo "symbols test: liblayered.a exports only layered_* and __layered_* names"
