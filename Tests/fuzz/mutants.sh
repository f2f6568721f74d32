#!/usr/bin/env bash
# The fuzz targets must see bugs: build the engine with one deliberate bug
# at a time, replay the target's seeds (then fuzz it for up to 60 s), and
# require that the target reports it (a model mismatch, a failed check or
# a sanitizer report).  A mutant the target passes is a defect of the
# target.
#
#   Tests/fuzz/mutants.sh [SOURCE_DIR]
#
# Each mutant is an exact replacement in a copy of the sources; if the
# text to replace is not found (the code moved), the mutant fails loudly
# instead of silently testing nothing.  CLANG as for fuzz_test.sh.
set -euo pipefail
src=$(cd "${1:-$(dirname "$0")/../..}" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/layered-fuzz-mutants.XXXXXX")
trap 'rm -rf "$work"' EXIT

# name | file | target | old text | new text   (python literals)
mutants=(
  "tombstone-visible|CLayered/cursor.c|api|        if (best->tombstone)\n            continue;|        if (0)\n            continue;"
  "drain-drops-removes|CLayered/filestore.c|api|        if (h.type == REC_TOMB && (dn == NULL \|\| NODE_IS_TOMB(dn)))|        if (h.type == REC_TOMB)"
  "offload-ignores-ingest-rows|CLayered/lifecycle.c|api|    if (!fs_empty(ingest->fs)) {|    if (0) {"
  "search-near-wrong-side|CLayered/cursor.c|api|        *exactp = key_cmp(c->key, c->key_len, key, klen) == 0 ? 0 : 1;|        *exactp = key_cmp(c->key, c->key_len, key, klen) == 0 ? 0 : -1;"
  "stable-wins-ties|CLayered/cursor.c|open|            if ((forward && cmp < 0) \|\| (!forward && cmp > 0)) {|            if ((forward && cmp <= 0) \|\| (!forward && cmp >= 0)) {"
  "short-header-unchecked|CLayered/filestore.c|open|        if (size - off < REC_HDR_SIZE) {\n            why = \"incomplete record header\";\n            break;\n        }\n|"
)

failed=0
for m in "${mutants[@]}"; do
  IFS='|' read -r name file target old new <<<"${m//\\|/$'\x01'}"
  old=${old//$'\x01'/|}
  new=${new//$'\x01'/|}
  tree="$work/$name"
  mkdir -p "$tree"
  cp -r "$src/CLayered" "$src/include" "$src/Tests" "$src/scripts" \
    "$src/CMakeLists.txt" "$src/layered.pc.in" "$src/examples" "$tree/"
  python3 - "$tree/$file" "$old" "$new" <<'EOF'
import sys
path = sys.argv[1]
old, new = (a.encode().decode('unicode_escape') for a in sys.argv[2:4])
s = open(path).read()
if s.count(old) != 1:
    sys.exit("mutant: the text to replace is not in %s exactly once" % path)
open(path, 'w').write(s.replace(old, new))
EOF
  "$tree/Tests/fuzz/fuzz_test.sh" --build
  bin="$tree/build/fuzz/Tests/fuzz/fuzz_$target"
  out="$tree/out.txt"
  seeds=("$src/Tests/fuzz/corpus/$target"/*)
  if "$bin" "${seeds[@]}" >"$out" 2>&1; then
    mkdir -p "$tree/corpus"
    "$bin" -max_total_time=60 -timeout=20 -max_len=2048 \
      "$tree/corpus" "$src/Tests/fuzz/corpus/$target" >>"$out" 2>&1 || true
  fi
  if grep -q -E "FUZZ FAILURE|ERROR: (AddressSanitizer|UndefinedBehaviorSanitizer)|runtime error" "$out"; then
    echo "mutant $name: detected by fuzz_$target: $(grep -m1 -E "FUZZ FAILURE|ERROR: |runtime error" "$out" | cut -c1-150)"
  else
    echo "mutant $name: NOT detected by fuzz_$target"
    tail -5 "$out"
    failed=1
  fi
done
[ "$failed" -eq 0 ] && echo "mutants: every mutant was detected"
exit "$failed"
