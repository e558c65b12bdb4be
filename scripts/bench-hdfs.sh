#!/usr/bin/env bash
# The pipeline's stages on a local-folder lake and on an hdfs:// lake, side by
# side: for 1M and 5M transactions (or the sizes given as arguments), per stage
# rows/s on file://, rows/s on hdfs://, and the time ratio hdfs/file; then wall
# time per command. The source CSVs are local in both cases; only the lake moves.
#
# Starts a throwaway PostgreSQL and a real HDFS (testenv/hdfs.sh: a NameNode and
# two DataNodes on loopback, replication 2) and stops them at the end. The JVMs
# run with their full JIT (AURUM_HDFS_JVM_OPTS empty) unless you set it.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/aurum/target}
cache=${AURUM_BENCH_DIR:-$HOME/.cache/aurum/bench}
sizes=("${@:-1000000 5000000}")
mkdir -p "$cache"
command -v /usr/bin/time >/dev/null || { apt-get update -qq && apt-get install -y -qq time; }

# AURUM_RUNNER: an already built binary (default: build and use the release one)
if [ -z "${AURUM_RUNNER:-}" ]; then
  cargo build --release -p aurum-job-runner
fi
runner=${AURUM_RUNNER:-$CARGO_TARGET_DIR/release/aurum-job-runner}
eval "$(testenv/postgres.sh start "$cache/postgres")"
export DATABASE_URL
export AURUM_HDFS_JVM_OPTS=${AURUM_HDFS_JVM_OPTS-}
eval "$(AURUM_HDFS_JVM_OPTS=$AURUM_HDFS_JVM_OPTS testenv/hdfs.sh start "$cache/hdfs")"
export HADOOP_CONF_DIR AURUM_HDFS_URL
trap 'testenv/hdfs.sh stop "$cache/hdfs" >&2 || true; testenv/postgres.sh stop "$cache/postgres"' EXIT
out=$cache/bench-hdfs
rm -rf "$out"; mkdir -p "$out"

measure() { # kind label, then the command; keeps the report and the wall time
  local kind=$1 label=$2; shift 2
  /usr/bin/time -f "%M %e" -o "$out/time" "$@" --report "$out/$kind-$label.json" >/dev/null 2>"$out/stderr" ||
    { tail -5 "$out/stderr"; exit 1; }
  read -r rss_kb seconds < "$out/time"
  echo "$seconds $rss_kb" > "$out/$kind-$label.time"
}

stages() { # kind lake
  local kind=$1 lake=$2
  measure "$kind" feed "$runner" feed --source "$src" --lake "$lake"
  measure "$kind" preprocess "$runner" preprocess --lake "$lake"
  for d in sales-country-year top-products monthly-sales customer-lifetime-value; do
    measure "$kind" "$d" "$runner" datamart "$d" --lake "$lake"
  done
}

hdfs_rm() { # removes an HDFS folder through WebHDFS (no Hadoop CLI needed)
  local web
  web=$(awk '{print $2}' "$cache/hdfs/ports" 2>/dev/null || true)
  if [ -n "$web" ]; then
    curl -sf -X DELETE "http://127.0.0.1:$web/webhdfs/v1$1?op=DELETE&recursive=true&user.name=$(id -un)" >/dev/null || true
  fi
}

for n in ${sizes[@]}; do
  src=$cache/source-$n
  [ -f "$src/transactions.csv" ] || "$runner" generate --out "$src" --transactions "$n" >/dev/null 2>&1
  echo "== $n transactions ($(du -sh "$src" | cut -f1) of CSV)"
  local_lake=$cache/lake-$n
  rm -rf "$local_lake"
  stages file "$local_lake"
  rm -rf "$local_lake"
  hdfs_path=/aurum/bench-$n
  hdfs_rm "$hdfs_path"
  stages hdfs "$AURUM_HDFS_URL$hdfs_path"
  hdfs_rm "$hdfs_path"
  python3 - "$out" <<'PY'
import json, os, sys
out = sys.argv[1]
labels = ["feed", "preprocess", "sales-country-year", "top-products", "monthly-sales", "customer-lifetime-value"]
def load(kind, label):
    report = json.load(open(f"{out}/{kind}-{label}.json"))
    seconds, rss = open(f"{out}/{kind}-{label}.time").read().split()
    return report, float(seconds), int(rss)
print(f"  {'stage':<11}{'table':<25}{'rows':>10} {'file:// rows/s':>15} {'hdfs:// rows/s':>15} {'time ratio':>11}")
totals = {"file": 0.0, "hdfs": 0.0}
for label in labels:
    (fr, fs, frss), (hr, hs, hrss) = load("file", label), load("hdfs", label)
    for f, h in zip(fr["stages"], hr["stages"]):
        ratio = h["duration_ms"] / f["duration_ms"] if f["duration_ms"] else float("nan")
        print(f"  {f['stage']:<11}{f['table']:<25}{f['rows_read']:>10} {f['rows_per_sec']:>15,.0f} {h['rows_per_sec']:>15,.0f} {ratio:>10.2f}x")
    totals["file"] += fs; totals["hdfs"] += hs
    print(f"  {'':<11}{label + ' (command)':<36}{fs:>14.2f} s {hs:>13.2f} s {hs / fs:>10.2f}x   peak RSS {frss // 1024} / {hrss // 1024} MiB")
print(f"  all six commands: file:// {totals['file']:.2f} s, hdfs:// {totals['hdfs']:.2f} s, ratio {totals['hdfs'] / totals['file']:.2f}x")
PY
done
