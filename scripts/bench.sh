#!/usr/bin/env bash
# make bench: every benchmark in one run on this machine, written to
# docs/benchmarks.md with a chart of the copy results (docs/benchmarks-copy.png).
#
#   BENCH_DIR   where the databases live (default /tmp)
#   BENCH_RUNS  runs per figure; each figure is the median with min and max (5)
#   BENCH_REOPEN_ROWS  keys of the reopen benchmark's table (10000000)
#   BENCH_PEERS_ARGS  extra bench_peers options, e.g. "-n 100000 -t 1000" for a
#               quick look (the page then shows those sizes)
#
# Installs the peer engines' Debian packages if missing (liblmdb-dev,
# libwiredtiger-dev, librocksdb-dev, libsqlite3-dev), gnuplot for the chart and
# fio (and jq to read its report) for the device's sequential write limit.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

peer_packages=(liblmdb-dev libwiredtiger-dev librocksdb-dev libsqlite3-dev gnuplot-nox fio jq)
missing=()
for pkg in "${peer_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "bench: installing ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" -ne 0 ] && sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
fi

cmake -S . -B build/release -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build/release -j "$(nproc)" >/dev/null
bin=build/release
[ -x "$bin/bench/peers/bench_peers" ] || { echo "bench: bench_peers was not built" >&2; exit 1; }

runs=${BENCH_RUNS:-5}
base=${BENCH_DIR:-/tmp}
work=$(mktemp -d "$base/layered-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
out=$work/out
mkdir -p "$out"
# Many-table drains keep two files per table open: raise the soft limit.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

started=$(date +%s)
echo "== bench_filestore"
"$bin/bench_filestore" "${BENCH_FILESTORE_ROWS:-1000000}" "$runs" "$work" | tee "$out/filestore.txt"
echo "== bench_dhandle"
"$bin/bench_dhandle" "$runs" | tee "$out/dhandle.txt"
echo "== bench_drain"
BENCH_TABLES=${BENCH_DRAIN_TABLES:-1000} "$bin/bench_drain" "$runs" "$work" | tee "$out/drain.txt"
echo "== bench_run"
"$bin/bench_run" "${BENCH_FILESTORE_ROWS:-1000000}" "$runs" "$work" | tee "$out/run.txt"
echo "== bench_reopen"
"$bin/bench_reopen" "${BENCH_REOPEN_ROWS:-10000000}" "$runs" "$work" | tee "$out/reopen.txt"
echo "== bench_peers"
"$bin/bench/peers/bench_peers" -d "$work" -r "$runs" -s 0.5 -o "$out/data.tsv" ${BENCH_PEERS_ARGS:-} | tee "$out/peers.md"

# ---- the device's sequential write limit, measured with fio ----
# For each copy workload, the same bytes as its keys and values (rounded up to
# whole MiB) written sequentially in 1 MiB writes into a file under BENCH_DIR,
# twice per run: with O_DIRECT, and buffered with one sync after the last write
# (end_fsync: fio's fdatasync=N option issues no sync at the end of the job,
# checked with fio 3.33; for a file just written, fsync flushes what
# fdatasync would plus the timestamps).  fio's write runtime covers the writes
# and that final sync.  The better of the two medians is the limit each copy figure
# is set against.
echo "== fio (device limit)"
copy_rows=1000000
set -- ${BENCH_PEERS_ARGS:-}
while [ $# -gt 0 ]; do
  case "$1" in
    -n) copy_rows=$2; shift 2 ;;
    -n*) copy_rows=${1#-n}; shift ;;
    *) shift ;;
  esac
done
fio_mbs() {  # fio_mbs MIB DIRECT -> MB/s of one run
  local mib=$1 direct=$2 sync_opt=() ms
  [ "$direct" -eq 0 ] && sync_opt=(--end_fsync=1)
  ms=$(fio --name=limit --filename="$work/fio.dat" --rw=write --bs=1M --size="${mib}M" \
         --ioengine=psync --direct="$direct" "${sync_opt[@]}" --output-format=json \
       | jq '.jobs[0].write.runtime')
  rm -f "$work/fio.dat"
  awk -v b="$((mib * 1048576))" -v ms="$ms" 'BEGIN { printf "%.1f\n", b / 1e6 / (ms > 0 ? ms / 1000 : 0.001) }'
}
stats() {  # median min max of numbers on stdin
  sort -g | awk '{ v[++n] = $1 } END { printf "%.1f\t%.1f\t%.1f\n", (n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2), v[1], v[n] }'
}
: > "$out/limit.tsv"
for c in copy100:100 copy1k:1024; do
  label=${c%%:*} vlen=${c#*:}
  bytes=$((copy_rows * (16 + vlen)))
  mib=$(( (bytes + 1048575) / 1048576 ))
  d=() b=()
  for ((r = 1; r <= runs; r++)); do
    d+=("$(fio_mbs "$mib" 1)")
    b+=("$(fio_mbs "$mib" 0)")
    echo "$label: run $r: fio ${mib} MiB direct ${d[-1]} MB/s, buffered+sync ${b[-1]} MB/s" >&2
  done
  printf '%s\tdirect\t%s\n' "$label" "$(printf '%s\n' "${d[@]}" | stats)" >> "$out/limit.tsv"
  printf '%s\tbuffered\t%s\n' "$label" "$(printf '%s\n' "${b[@]}" | stats)" >> "$out/limit.tsv"
done
# copy label, engine, MB/s, fraction of the limit; the limit per copy is the
# better of the direct and buffered medians.
limit_table=$(awk -F'\t' '
  FNR == NR { if ($3 > lim[$1]) { lim[$1] = $3; how[$1] = $2 }; m[$1, $2] = $3 " (" $4 "–" $5 ")"; next }
  $1 ~ /^copy/ { if (!($1 in first)) { first[$1] = 1; order[++n] = $1 }; row[$1] = row[$1] sprintf("| %s | %s | %.0f | %.2f |\n", $1, $2, $3, $3 / lim[$1]) }
  END {
    print "| copy | fio direct=1 MB/s | fio buffered + final sync MB/s | limit |"
    print "|---|---:|---:|---|"
    for (i = 1; i <= n; i++) { c = order[i]; printf "| %s | %s | %s | %.0f MB/s (%s) |\n", c, m[c, "direct"], m[c, "buffered"], lim[c], how[c] }
    print ""
    print "| copy | engine | MB/s | of the limit |"
    print "|---|---|---:|---:|"
    for (i = 1; i <= n; i++) printf "%s", row[order[i]]
  }' "$out/limit.tsv" "$out/data.tsv")
echo "$limit_table"
elapsed=$(( $(date +%s) - started ))

mkdir -p docs
# ---- the chart: copy throughput, MB/s of keys and values, with min..max ----
awk -F'\t' '$1 == "copy100" || $1 == "copy1k" {
    key = $2; if (!(key in seen)) { seen[key] = 1; order[++n] = key }
    v[$1, key] = $3 "\t" $4 "\t" $5
  }
  END { for (i = 1; i <= n; i++) print order[i] "\t" v["copy100", order[i]] "\t" v["copy1k", order[i]] }' \
  "$out/data.tsv" > "$out/chart.dat"
gnuplot <<EOF
set terminal pngcairo size 1000,560 font "sans,11"
set output "docs/benchmarks-copy.png"
set title "Copy one table durably, 16-byte keys: MB/s of keys and values, median of $runs runs (bars: min..max)"
set style data histogram
set style histogram errorbars gap 2 lw 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set ylabel "MB/s"
set yrange [0:*]
set grid ytics
set key top left
set xtics rotate by -20
plot "$out/chart.dat" using 2:3:4:xtic(1) title "100-byte values" lc rgb "#4477aa", \
     "" using 5:6:7 title "1 KiB values" lc rgb "#ee7733"
EOF

# ---- where Layered stands against the goals ----
goals=$(awk -F'\t' '
  FNR == NR { if ($3 > dev[$1]) dev[$1] = $3; next }
  $1 ~ /^copy/ { if ($2 == "layered") lay[$1] = $3
                 else if ($2 == "write+sync") lim[$1] = $3
                 else if ($3 > best[$1]) { best[$1] = $3; who[$1] = $2 } }
  $1 == "many" && $2 == "layered" { us = $3; tables = $6 }
  END {
    split("copy100 copy1k", w, " ")
    for (i = 1; i <= 2; i++) {
      c = w[i]
      printf "- %s: Layered %.0f MB/s = %.2f× the fastest peer (%s, %.0f MB/s; goal ≥ 1.25×: %s), %.0f%% of the device limit (fio, %.0f MB/s; goal ≥ 90%%: %s) and %.0f%% of write+sync (%.0f MB/s).\n", \
        (c == "copy100" ? "Copy, 100-byte values" : "Copy, 1 KiB values"), lay[c], lay[c] / best[c], who[c], best[c], \
        (lay[c] / best[c] >= 1.25 ? "met" : "not met"), 100 * lay[c] / dev[c], dev[c], \
        (lay[c] / dev[c] >= 0.9 ? "met" : "not met"), 100 * lay[c] / lim[c], lim[c]
    }
    printf "- Many tables: %.1f µs per table over %d tables (goal < 50 µs: %s).\n", us, tables, (us < 50 ? "met" : "not met")
  }' "$out/limit.tsv" "$out/data.tsv")

# ---- docs/benchmarks.md ----
{
  cat <<EOF
# Benchmarks

Layered beside LMDB, WiredTiger, RocksDB and SQLite (Debian's packages) on identical workloads, measured in one
run on one machine, beside the machine's own limits: the device's sequential write limit measured with \`fio\`, a
sequential write plus one \`fdatasync\` of the same bytes, and \`memcpy\` of them.  Every figure is the median of
$runs runs with the min and max in parentheses; the engines run interleaved (run 1 of each, then run 2, ...), so
drift in the machine spreads over all of them.

Reproduce with:

\`\`\`
make bench                      # BENCH_DIR=/path to put the databases elsewhere (default /tmp)
\`\`\`

which runs \`scripts/bench.sh\`: it installs the peers' packages and fio if missing, builds in \`build/release\`, runs
\`bench_filestore\`, \`bench_dhandle\`, \`bench_drain\` and \`bench_peers\` (\`bench/peers/\`), and rewrites this page
and the chart.  This run took $((elapsed / 60)) min $((elapsed % 60)) s.

## Machine

- $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo) RAM
- $(uname -sr); databases on $(df -T "$base" | awk 'NR == 2 {print $2 " (" $1 ")"}')
- LMDB $(dpkg-query -W -f='${Version}' liblmdb-dev), WiredTiger $(dpkg-query -W -f='${Version}' libwiredtiger-dev), RocksDB $(dpkg-query -W -f='${Version}' librocksdb-dev), SQLite $(dpkg-query -W -f='${Version}' libsqlite3-dev)
- Layered $(git describe --always --dirty 2>/dev/null || echo "(no git)")

## Where Layered stands against its goals

$goals

## Side by side

![Copy throughput](benchmarks-copy.png)

### The device's sequential write limit (\`fio\`)

For each copy, \`fio\` writes the same bytes as its keys and values (rounded up to whole MiB) sequentially in
1 MiB writes into a file beside the databases, each run twice: with \`direct=1\`, and buffered with one sync
after the last write (\`end_fsync=1\`: fio's \`fdatasync=N\` issues no sync at the end of the job; for a file
just written, \`fsync\` flushes what \`fdatasync\` would plus the timestamps).  fio's write time (whole
milliseconds) covers the writes and that sync.  The limit is the better of the two medians, and every copy figure
below is shown as a fraction of it.

$limit_table

EOF
  sed '1d' "$out/peers.md"
  cat <<'EOF'

### How each engine runs the workloads

- **Rows**: 16-byte keys that look random, values of random (incompressible) bytes; every engine sorts keys by
  `memcmp`.  Sources are written in random key order (a drain's ingest receives writes in any order) and made
  durable before the clock starts; every copy ends with its data durable.  "MB/s" counts key and value bytes.
- **Layered**: copy and many tables are real step-up drains.  As follower the rows go into the ingest
  constituents (`LAYERED_SYNC_NONE`, then a checkpoint, untimed); the clock covers `layered_step_up`, which copies
  every ingest into its stable constituent with one sync per file and clears the ingest.  The copy uses a fresh
  home each run.  Many tables creates its tables once and drains new rows each run (step-up, then step-down), so
  from the second run on the drain writes into stable constituents that already hold rows.
- **LMDB**: one read transaction on the source environment, one write transaction on a fresh destination with
  `MDB_APPEND`; the commit syncs.  Many tables: one named database per table, one transaction.
- **WiredTiger**: a bulk cursor per freshly created table, then a checkpoint; the copy tables are not logged.
  Many tables runs with 500 tables: a table takes milliseconds to create and the bulk path needs fresh ones.
- **RocksDB** (`rocksdb`): ~1 MiB write batches through the write-ahead log, the last written with `sync`.
  **`rocksdb-sst`**: an `SstFileWriter` fed the sorted rows (its `Finish` syncs the file), then
  `IngestExternalFile` with `move_files`; honest here because every source hands out its rows sorted.
  Compression is off.  Tables are column families; many tables runs with 100 of them, because creating column
  families takes time quadratic in their number (1,000 took over four minutes).
- **SQLite**: `WITHOUT ROWID` tables with a `BLOB` primary key in 8 KiB pages; `INSERT INTO t SELECT * FROM
  src.t` with the source attached, in one transaction, rollback journal, `synchronous=FULL`.
- **Point operations**: random reads of existing keys and inserts of new keys for 0.5 s per run; every write
  reaches the operating system before it returns (it survives `kill -9`) but is not synced: Layered
  `LAYERED_SYNC_WRITE`, LMDB `MDB_NOSYNC` (one transaction per insert), WiredTiger a logged table with
  `transaction_sync=(enabled=true,method=none)`, RocksDB the write-ahead log without `sync`, SQLite WAL mode with
  `synchronous=OFF` (readers have a connection each, writers share one serialized connection).
- **Scan**: before any point operation, each engine reads every row of the point table in key order, once per run,
  checking that the keys ascend and that it read every row: Layered a cursor's `layered_cursor_next` from
  unpositioned, LMDB a cursor in one read transaction, WiredTiger a cursor's `next`, RocksDB an iterator from
  the first key, SQLite `SELECT k, v ... ORDER BY k` (the primary key's order).  LMDB is the bar.

## Layered's own benchmarks

### File store (`bench_filestore`)

```
EOF
  cat "$out/filestore.txt"
  printf '```\n\n### Handle lookups (`bench_dhandle`)\n\n```\n'
  cat "$out/dhandle.txt"
  printf '```\n\n### Step-up drain (`bench_drain`, %s tables for "many")\n\n```\n' "${BENCH_DRAIN_TABLES:-1000}"
  cat "$out/drain.txt"
  printf '```\n\n### Sorted runs alone (`bench_run`, see docs/storage.md)\n\n```\n'
  cat "$out/run.txt"
  printf '```\n\n### Reopen (`bench_reopen`, %s keys in one stable table; the goal is 100 ms)\n\n```\n' "${BENCH_REOPEN_ROWS:-10000000}"
  cat "$out/reopen.txt"
  printf '```\n'
} > docs/benchmarks.md
echo "bench: wrote docs/benchmarks.md and docs/benchmarks-copy.png (${elapsed} s)"
