#!/usr/bin/env bash
# The structure of the C core, read from the objects of liblayered.a: file
# A uses file B when A's object leaves a symbol undefined that B's object
# defines.  The files must form layers -- each uses only files below it --
# with no circle, and at most three back arrows (a file using one above
# it), each listed below with its reason; the same reason stands in a
# comment at the call site (checked: the calling file holds it).
# Second, namespace.h (which renames every internal extern symbol to
# __layered_*) must hold exactly the mappings the objects need: none
# missing, none stale (a mapping for a name no file defines any more).
#   usage: structure_test.sh liblayered.a CLayered/
set -euo pipefail
lib=$1
src=$2

# The layers, bottom first.  A file may use only files listed before it.
layers=(
  os          # the one seam to the operating system: files and the clock
  fork        # the fork handlers that keep liburcu usable in a child
  crc32c      # checksums
  batch_rec   # the batch journal's record framing (the journal, verify)
  error       # layered_strerror
  failpoint   # named points where tests pause, sleep or inject errors
  panic       # the panic path and messages; releases paused failpoints
  rwlock      # the dhandle lock and the lock-order checker
  fs_rec      # the record codec: integers, record and file headers, CRC check
  fs_run      # immutable sorted runs: writer, checks, lookups, walks
  manifest    # the stable store's manifests and pointer records
  fs_io       # the file store's I/O: full writes and reads, append, sync
  fs_index    # the arena and the in-memory index of one file
  fs_group    # group commit: the write path of puts that reach the OS
  fs_open     # open, recovery, close of one file
  filestore   # point operations: put, delete, seek, read, sync, info
  fs_compact  # compaction and clear
  fs_copy     # the drain copy of one file into another
  table       # the table tree, table names and URIs, a table's two files
  meta        # the metadata snapshot and journal of the table tree
  verify      # a home's files read without a connection: layered_verify,
              # layered_salvage_scan
  dhandle     # the handle table: open constituents
  batch       # atomic write batches and their journal: commit, replay,
              # retire; the schema and drain code retire it
  drain       # the drain queue and the step-up that works it; drop and
              # offload claim its items, it knows nothing of them
  lifecycle   # archive, unarchive, offload, the arbiter, maintenance
  layered     # the schema API: create, drop, state, list
  checkpoint  # checkpoints and database_size
  cursor      # cursors
  session     # sessions own cursors
  conn        # open and close everything, statistics, step-down
  testapi     # what the library's own tests may ask (layered_test.h)
)
# Back arrows allowed, "FROM -> TO: reason".  The reason stands, word for
# word (case aside), in a comment of FROM's source where it makes the
# call.  None today: every file uses only files below it.
allowed=(
)
max_back=3

# analyse LAYERS ALLOWED... < "from to symbol" lines --
#     Print the files, the arrows, the circles and the back arrows; the
#     last line is "result CIRCLES BACK_ARROWS UNLISTED_BACK_ARROWS
#     STALE_ALLOWED".
analyse() {
  local order=$1
  shift
  awk -v order="$order" -v allowed="$(printf '%s\n' "$@")" '
    { if (!(($1, $2) in syms)) { nedge++; efrom[nedge] = $1; eto[nedge] = $2 }
      syms[$1, $2] = syms[$1, $2] " " $3; seen[$1]; seen[$2] }
    END {
      n = split(order, name, " ")
      for (i = 1; i <= n; i++) pos[name[i]] = i
      for (f in seen) if (!(f in pos)) name[++n] = f  # unplaced: on top
      for (i = 1; i <= n; i++) pos[name[i]] = i
      printf "files (%d, bottom first):", n
      for (i = 1; i <= n; i++) printf " %s", name[i]
      printf "\narrows (%d):\n", nedge
      for (i = 1; i <= n; i++) {
        line = ""
        for (j = 1; j <= n; j++)
          if ((name[i], name[j]) in syms) { line = line " " name[j]; reach[i, j] = 1 }
        if (line != "") printf "  %s ->%s\n", name[i], line
      }
      for (k = 1; k <= n; k++)
        for (i = 1; i <= n; i++)
          if ((i, k) in reach)
            for (j = 1; j <= n; j++)
              if ((k, j) in reach) reach[i, j] = 1
      circles = 0
      for (i = 1; i <= n; i++) {
        if (i in placed) continue
        members = name[i]; size = 1
        for (j = i + 1; j <= n; j++)
          if (((i, j) in reach) && ((j, i) in reach)) {
            members = members " " name[j]; size++; placed[j]
          }
        if (size > 1) printf "circle %d (%d files): %s\n", ++circles, size, members
      }
      if (circles == 0) print "circles: none"
      m = split(allowed, al, "\n")
      for (i = 1; i <= m; i++) {
        if (al[i] == "") continue
        split(al[i], w, " ")
        sub(/:$/, "", w[3])
        reason[w[1], w[3]] = substr(al[i], index(al[i], ":") + 2)
      }
      back = unlisted = 0
      for (i = 1; i <= n; i++)
        for (j = i + 1; j <= n; j++)
          if ((name[i], name[j]) in syms) {
            back++
            if ((name[i], name[j]) in reason) {
              printf "back arrow %s -> %s:%s\n    allowed: %s\n", name[i], name[j],
                syms[name[i], name[j]], reason[name[i], name[j]]
              used[name[i], name[j]]
            } else {
              unlisted++
              printf "back arrow %s -> %s:%s\n    NOT ALLOWED\n", name[i], name[j],
                syms[name[i], name[j]]
            }
          }
      if (back == 0) print "back arrows: none"
      stale = 0
      for (k in reason)
        if (!(k in used)) {
          split(k, w, SUBSEP)
          printf "allowed back arrow %s -> %s no longer exists: remove it\n", w[1], w[2]
          stale++
        }
      printf "result %d %d %d %d\n", circles, back, unlisted, stale
    }'
}

# The check must see a circle and a back arrow where there are, or it
# proves nothing.
selftest=$(printf 'low high up\nhigh low down\n' | analyse "low high")
case "$selftest" in
  *"circle 1 (2 files): low high"*"result 1 1 1 0") ;;
  *) echo "structure test: the analysis misses a circle:"; echo "$selftest"; exit 1 ;;
esac

# "object symbol" for every defined extern symbol, and "object symbol U"
# for every undefined one.
symbols=$(nm "$lib" | awk '
  /^[^ ]+:$/ { obj = substr($0, 1, length($0) - 1); sub(/\.c\.o$|\.o$/, "", obj); next }
  NF == 3 && $2 ~ /^[A-TV-Z]$/ { print obj, $3 }
  NF == 2 && $1 == "U" { print obj, $2, "U" }')
edges=$(echo "$symbols" | awk '
  NF == 2 { def[$2] = $1 }
  NF == 3 { n++; user[n] = $1; sym[n] = $2 }
  END { for (i = 1; i <= n; i++)
          if ((sym[i] in def) && def[sym[i]] != user[i]) {
            s = sym[i]; sub(/^__layered_/, "", s); print user[i], def[sym[i]], s } }' |
  sort -u)
objects=$(echo "$symbols" | awk '{ print $1 }' | sort -u)

failed=0
for f in "${layers[@]}"; do
  echo "$objects" | grep -qx "$f" || { echo "layer $f: no such object in $lib"; failed=1; }
done
for f in $objects; do
  printf ' %s ' "${layers[@]}" | grep -q " $f " ||
    { echo "$f is in no layer: give it its place in ${0##*/}"; failed=1; }
done

report=$(echo "$edges" | analyse "${layers[*]}" "${allowed[@]}")
echo "$report" | sed '$d'
read -r _ circles back unlisted stale <<<"$(echo "$report" | tail -n 1)"
[ "$circles" -eq 0 ] || { echo "FAIL: $circles circle(s) of files"; failed=1; }
[ "$unlisted" -eq 0 ] || { echo "FAIL: $unlisted back arrow(s) not allowed"; failed=1; }
[ "$back" -le "$max_back" ] || { echo "FAIL: $back back arrows, at most $max_back"; failed=1; }
[ "$stale" -eq 0 ] || failed=1

# Each allowed back arrow's reason stands in a comment of its caller.
flat() { tr '\n' ' ' <"$1" | sed -e 's#/\*# #g' -e 's#\*/# #g' -e 's# \* # #g' | tr -s ' \t' '  '; }
for a in "${allowed[@]}"; do
  from=${a%% *}
  reason=${a#*: }
  flat "$src/$from.c" | grep -qiF "$reason" ||
    { echo "$src/$from.c: no comment gives the reason of $a"; failed=1; }
done

# namespace.h: "#define NAME __layered_NAME" for every internal extern
# symbol; symbols the sources spell with the prefix themselves (the
# functions RB_GENERATE makes for a tree named __layered_*) need none.
ns=$src/namespace.h
bad=$(awk '$1 == "#define" && NF == 3 && $3 != "__layered_" $2 { print "  " $0 }' "$ns")
[ -z "$bad" ] || { echo "namespace.h: mappings to another name:"; echo "$bad"; failed=1; }
mapped=$(awk '$1 == "#define" && $3 ~ /^__layered_/ { print $3 }' "$ns" | sort)
trees=$(grep -ho 'RB_GENERATE(__layered_[A-Za-z0-9_]*' "$src"/*.c | sed 's/^RB_GENERATE(//' | sort -u)
defined=$(echo "$symbols" | awk 'NF == 2 { print $2 }' | sort -u)
# The lock-order checker is compiled in only with LAYERED_LOCK_ORDER (or
# without NDEBUG): its mappings stay when a build leaves it out.
unused=$(comm -23 <(echo "$mapped") <(echo "$defined") |
  grep -v -x -e __layered_lock_order_acquire -e __layered_lock_order_release || true)
[ -z "$unused" ] || { echo "namespace.h: mappings for symbols no object defines:"; echo "$unused"; failed=1; }
missing=$(comm -13 <(echo "$mapped") <(echo "$defined") | grep -v '^layered_' |
  while read -r s; do
    for t in $trees; do case $s in "${t}_RB_"*) continue 2 ;; esac; done
    echo "$s"
  done)
[ -z "$missing" ] || { echo "namespace.h: extern symbols with no mapping:"; echo "$missing"; failed=1; }

[ "$failed" -eq 0 ] || exit 1
echo "structure test: ${#layers[@]} files in layers, no circle, $back back arrow(s); namespace.h maps $(echo "$mapped" | wc -l) symbols, none stale"
