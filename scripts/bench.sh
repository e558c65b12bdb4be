#!/usr/bin/env bash
# `make bench`: the pipeline at 1M, 5M, 20M and 50M transactions (or the sizes
# given as arguments), each under a memory limit (AURUM_BENCH_LIMIT, default
# 1GiB; 20M also at 512MiB), per stage: rows/s, wall time, CPU/wall (cores kept
# busy) and bytes spilled, and the peak RSS of each command. The machine's load
# average is printed with each size: figures taken on a busy machine are not
# comparable. AURUM_BENCH_BASELINE=<a job-runner binary built from another
# commit> also times that binary's `run` on the same data, right after this
# one's (side by side, under the same load); AURUM_BENCH_SEPARATE=0 skips the
# six separate commands (only the one-process `run`); AURUM_BENCH_DIR is where
# the generated data goes (big: about 60 bytes per transaction line, plus the lake).
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/aurum/target}
cache=${AURUM_BENCH_DIR:-$HOME/.cache/aurum/bench}
sizes=("${@:-1000000 5000000 20000000 50000000}")
limit=${AURUM_BENCH_LIMIT:-1GiB}
mkdir -p "$cache"
command -v /usr/bin/time >/dev/null || { apt-get update -qq && apt-get install -y -qq time; }

# --workspace: the features the tests and images build with (no second DataFusion build).
# AURUM_BENCH_RUNNER: a binary already built (nothing is built then).
runner=${AURUM_BENCH_RUNNER:-}
if [ -z "$runner" ]; then
  cargo build --release --workspace --bin aurum-job-runner
  runner=$CARGO_TARGET_DIR/release/aurum-job-runner
fi
eval "$(testenv/postgres.sh start "$cache/postgres")"
export DATABASE_URL
trap 'testenv/postgres.sh stop "$cache/postgres"' EXIT

measure() { # label, then the command; prints the report's stages and peak RSS
  local label=$1; shift
  # A size that fails is reported and the benchmark goes on with the next.
  /usr/bin/time -f "%M %e %P %U %S" -o "$cache/time" "$@" --report "$cache/report.json" >/dev/null 2>"$cache/stderr" ||
    { echo "  $label: FAILED ($(tail -1 "$cache/time"))"; tail -5 "$cache/stderr"; return 0; }
  read -r rss_kb seconds cpu user system < "$cache/time"
  python3 - "$cache/report.json" "$label" "$rss_kb" "$seconds" "$cpu" "$user" "$system" <<'PY'
import json, sys
report, label = json.load(open(sys.argv[1])), sys.argv[2]
rss_kb, seconds = int(sys.argv[3]), float(sys.argv[4])
# CPU seconds as well as the share: on a loaded machine the wall time stretches,
# the CPU time much less.
cpu = f"{sys.argv[5]} = {float(sys.argv[6]) + float(sys.argv[7]):.1f} s"
for s in report["stages"]:
    # A baseline binary's report may lack the CPU and spill fields.
    # A datamart's PostgreSQL load is shown apart, with the cores its
    # computing part kept busy (the job-runner mostly waits during the load).
    load = s.get('load_ms')
    computing = ""
    if load is not None and s['duration_ms'] > load:
        computing = (f"  (load {load/1000:.2f} s; computing cpu/wall "
                     f"{s.get('cpu_ms', 0)/(s['duration_ms'] - load):.2f})")
    print(f"  {s['stage']:<11}{s['table']:<31}{s['rows_read']:>10} rows {s['duration_ms']/1000:>7.2f} s "
          f"{s['rows_per_sec']:>12,.0f} rows/s  cpu/wall {s.get('cpu_per_wall', 0):>4.2f}  "
          f"spilled {s.get('spilled_bytes', 0)/2**20:>7.0f} MiB{computing}")
r = report.get("resources") or {}
limit = r.get("memory_limit_bytes")
limit = f"{limit/2**20:.0f} MiB" if limit else "none"
print(f"  {label}: {seconds:.2f} s wall, CPU {cpu}, peak RSS {rss_kb/1024:.0f} MiB (limit {limit}), "
      f"spilled {r.get('spilled_bytes', 0)/2**20:.0f} MiB, {r.get('threads', '?')} threads")
PY
}

bench() { # size, memory limit
  local n=$1 limit=$2
  src=$cache/source-$n
  [ -f "$src/transactions.csv" ] || "$runner" generate --out "$src" --transactions "$n" >/dev/null
  lake=$cache/lake-$n
  rm -rf "$lake"
  echo "== $n transactions ($(du -sh "$src/" | cut -f1) of CSV), --memory-limit $limit, load average $(cut -d' ' -f1-3 /proc/loadavg)"
  export AURUM_MEMORY_LIMIT=$limit
  if [ "${AURUM_BENCH_SEPARATE:-1}" != 0 ]; then
    start=$(date +%s.%N)
    measure feed "$runner" feed --source "$src" --lake "$lake"
    measure preprocess "$runner" preprocess --lake "$lake"
    for d in sales-country-year top-products monthly-sales customer-lifetime-value; do
      measure "$d" "$runner" datamart "$d" --lake "$lake"
    done
    end=$(date +%s.%N)
    echo "  total (six commands, as separate processes): $(python3 -c "print(f'{$end - $start:.2f}')") s"
    rm -rf "$lake"
  fi
  measure "run (one process)" "$runner" run --source "$src" --lake "$lake"
  rm -rf "$lake"
  if [ -n "${AURUM_BENCH_BASELINE:-}" ]; then
    echo "  baseline $AURUM_BENCH_BASELINE, load average $(cut -d' ' -f1-3 /proc/loadavg)"
    measure "baseline run (one process)" "$AURUM_BENCH_BASELINE" run --source "$src" --lake "$lake"
    rm -rf "$lake"
  fi
  echo "  load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
}

for n in ${sizes[@]}; do
  bench "$n" "$limit"
  [ "$n" != 20000000 ] || bench "$n" 512MiB
done
