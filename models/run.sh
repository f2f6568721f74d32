#!/usr/bin/env bash
# Model-check one configuration of a Promela model with spin: generate the
# verifier (spin -a), compile it (gcc -O2 -DSAFETY), run it bounded
# (./pan -m100000) and print one summary line.
#
# usage: models/run.sh [-d DIR] [-a] [-r] MODEL.pml [-DNAME[=VALUE] ...]
#   -d DIR  work in DIR (created, left in place); default: a new temporary
#           directory, removed afterwards unless a counterexample was found
#   -a      on a counterexample, search on past the first error
#           (./pan -c0) and list every assertion that can be violated
#   -r      on a counterexample, replay its trail (spin -t -p) into
#           DIR/replay.txt and print the end of it
# DIR/violations.txt lists the violated assertions, one a line, as pan
# prints them (the first only, without -a).
# MODEL is a path, or a file name in models/.  The -D flags go to spin
# (they select the policy, the options and the mutants the model defines).
#
# Exit status: 0 verified (no error, search complete); 1 counterexample
# (a trail was written); 2 the tools failed or the search was incomplete.
set -euo pipefail

usage() {
  sed -n '6,19p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

here=$(cd "$(dirname "$0")" && pwd)
workdir=
replay=0
all=0
while getopts "d:ar" opt; do
  case $opt in
    d) workdir=$OPTARG ;;
    a) all=1 ;;
    r) replay=1 ;;
    *) usage ;;
  esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] || usage
model=$1
shift
[ -f "$model" ] || model=$here/$model
[ -f "$model" ] || { echo "run.sh: no model $1" >&2; exit 2; }
for flag in "$@"; do
  case $flag in
    -D?*) ;;
    *) echo "run.sh: not a -D flag: $flag" >&2; exit 2 ;;
  esac
done
for tool in spin gcc; do
  command -v "$tool" >/dev/null 2>&1 ||
    { echo "run.sh: $tool not found (scripts/setup.sh installs it)" >&2; exit 2; }
done

temporary=0
if [ -z "$workdir" ]; then
  workdir=$(mktemp -d "${TMPDIR:-/tmp}/layered-model.XXXXXX")
  temporary=1
fi
mkdir -p "$workdir"
name=$(basename "$model")
cp "$model" "$workdir/$name"
cd "$workdir"
label="${name%.pml}${*:+ $*}"

if ! spin -a "$@" "$name" >spin.out 2>&1; then
  echo "$label: spin -a failed:" >&2
  cat spin.out >&2
  exit 2
fi
if ! gcc -O2 -DSAFETY -o pan pan.c >gcc.out 2>&1; then
  echo "$label: compiling pan failed:" >&2
  cat gcc.out >&2
  exit 2
fi
start=$(date +%s.%N)
./pan -m100000 >pan.out 2>&1 || true
seconds=$(echo "$start $(date +%s.%N)" | awk '{printf "%.1f", $2 - $1}')

errors=$(sed -n 's/.*, errors: \([0-9][0-9]*\).*/\1/p' pan.out | head -n 1)
states=$(awk '/states, stored/ {print $1; exit}' pan.out)
depth=$(sed -n 's/.*depth reached \([0-9][0-9]*\).*/\1/p' pan.out | head -n 1)
if [ -z "$errors" ] || [ -z "$states" ]; then
  echo "$label: pan did not finish:" >&2
  tail -n 20 pan.out >&2
  exit 2
fi

if [ "$errors" -eq 0 ]; then
  if grep -q -e "max search depth too small" -e "out of memory" pan.out; then
    echo "$label: INCOMPLETE search ($states states): $(grep -m 1 -e "max search depth too small" -e "out of memory" pan.out)"
    exit 2
  fi
  echo "$label: verified, $states states, depth $depth, ${seconds}s"
  [ "$temporary" -eq 1 ] && rm -rf "$workdir"
  exit 0
fi

trail=$(ls ./*.trail 2>/dev/null | head -n 1 || true)
# "pan:1: assertion violated EXPR (at depth N)" -> "assertion violated EXPR"
violations() {
  grep -E '^pan:[0-9]+: ' "$1" | sed -e 's/^pan:[0-9]*: //' -e 's/ (at depth [0-9]*)$//' |
    sort -u
}
violations pan.out >violations.txt
first=$(head -n 1 violations.txt)
if [ -z "$trail" ]; then
  echo "$label: $errors error(s) but no trail: $first" >&2
  exit 2
fi
summary="$label: counterexample, $states states, first: $first"
if [ "$all" -eq 1 ]; then
  ./pan -m100000 -c0 >pan-all.out 2>&1 || true
  violations pan-all.out >violations.txt
  total=$(sed -n 's/.*, errors: \([0-9][0-9]*\).*/\1/p' pan-all.out | head -n 1)
  summary="$summary; searched on: ${total:-?} errors, $(wc -l <violations.txt) distinct"
fi
echo "$summary; trail $workdir/${trail#./}"
if [ "$replay" -eq 1 ]; then
  spin -t -p "$@" "$name" >replay.txt 2>&1 || true
  tail -n 25 replay.txt
  echo "(the whole replay: $workdir/replay.txt)"
fi
exit 1
