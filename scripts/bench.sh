#!/usr/bin/env bash
# `make bench`: the pipeline at 1M and 5M transactions (or the sizes given as
# arguments), per stage: rows/s and wall time, and the peak RSS of each command.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/aurum/target}
cache=${AURUM_BENCH_DIR:-$HOME/.cache/aurum/bench}
sizes=("${@:-1000000 5000000}")
mkdir -p "$cache"
command -v /usr/bin/time >/dev/null || { apt-get update -qq && apt-get install -y -qq time; }

cargo build --release -p aurum-job-runner
runner=$CARGO_TARGET_DIR/release/aurum-job-runner
eval "$(testenv/postgres.sh start "$cache/postgres")"
export DATABASE_URL
trap 'testenv/postgres.sh stop "$cache/postgres"' EXIT

measure() { # label, then the command; prints the report's stages and peak RSS
  local label=$1; shift
  /usr/bin/time -f "%M %e" -o "$cache/time" "$@" --report "$cache/report.json" >/dev/null 2>"$cache/stderr" ||
    { tail -5 "$cache/stderr"; exit 1; }
  read -r rss_kb seconds < "$cache/time"
  python3 - "$cache/report.json" "$label" "$rss_kb" "$seconds" <<'PY'
import json, sys
report, label, rss_kb, seconds = json.load(open(sys.argv[1])), sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
for s in report["stages"]:
    print(f"  {s['stage']:<11}{s['table']:<31}{s['rows_read']:>10} rows {s['duration_ms']/1000:>7.2f} s {s['rows_per_sec']:>12,.0f} rows/s")
print(f"  {label}: {seconds:.2f} s wall, peak RSS {rss_kb/1024:.0f} MiB")
PY
}

for n in ${sizes[@]}; do
  src=$cache/source-$n
  [ -f "$src/transactions.csv" ] || "$runner" generate --out "$src" --transactions "$n" >/dev/null
  lake=$cache/lake-$n
  rm -rf "$lake"
  echo "== $n transactions ($(du -sh "$src" | cut -f1) of CSV)"
  start=$(date +%s.%N)
  measure feed "$runner" feed --source "$src" --lake "$lake"
  measure preprocess "$runner" preprocess --lake "$lake"
  measure datamarts "$runner" datamart sales-country-year --lake "$lake"
  for d in top-products monthly-sales customer-lifetime-value; do
    measure "$d" "$runner" datamart "$d" --lake "$lake"
  done
  end=$(date +%s.%N)
  echo "  total (four commands, as separate processes): $(python3 -c "print(f'{$end - $start:.2f}')") s"
  rm -rf "$lake"
  start=$(date +%s.%N)
  measure "run (one process)" "$runner" run --source "$src" --lake "$lake"
  rm -rf "$lake"
done
