#!/usr/bin/env bash
# Preprocess and the datamarts in-process versus on Ballista (docs/ballista.md),
# at 5M transactions (or the sizes given as arguments): the raw layer fed once
# per size, one silver snapshot made in-process (`preprocess`), then the four
# datamarts, each its own `datamart` command, in-process; then on a loopback
# cluster of 1 executor (AURUM_BENCH_SLOTS slots, default 2) and of 2 executors
# (1 slot each, then 2 each): `preprocess --engine` (a new snapshot, its
# transactions made by the executors) and the four datamarts with --engine.
# Printed per configuration and stage: wall time, CPU seconds of every process
# involved (the job-runner, and the scheduler and executors: /proc's
# utime+stime before and after) and CPU per row (raw line for preprocess,
# silver row for the datamarts). The machine's load average is printed with
# each size: figures taken on a busy machine are not comparable.
#
# Environment: AURUM_BENCH_DIR (default ~/.cache/aurum/bench-ballista; sources
# are kept there, lakes deleted), AURUM_BENCH_SLOTS, AURUM_BENCH_PROFILE,
# AURUM_BENCH_SHAPES (the clusters, EXECUTORSxSLOTS, default "1x2 2x1 2x2").
# Each cluster's runs use --engine-partitions = its slots.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/aurum/target}
cache=${AURUM_BENCH_DIR:-$HOME/.cache/aurum/bench-ballista}
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(5000000)
slots=${AURUM_BENCH_SLOTS:-2}
mkdir -p "$cache"

# --workspace: the features the tests and images build with (no second DataFusion build).
# AURUM_BENCH_PROFILE=debug measures the debug build `make test` uses (no
# release build needed; its figures are not the release build's).
if [ "${AURUM_BENCH_PROFILE:-release}" = debug ]; then
  cargo build --workspace --bins
  runner=$CARGO_TARGET_DIR/debug/aurum-job-runner
else
  cargo build --release --workspace --bin aurum-job-runner
  runner=$CARGO_TARGET_DIR/release/aurum-job-runner
fi
echo "binary: $runner"
export AURUM_JOB_RUNNER_BIN=$runner
eval "$(testenv/postgres.sh start "$cache/postgres")"
export DATABASE_URL
cluster=$cache/ballista
trap 'testenv/ballista.sh stop "$cluster" >/dev/null 2>&1 || true; testenv/postgres.sh stop "$cache/postgres"' EXIT

ticks=$(getconf CLK_TCK)
# cpu_seconds PID...: user+system CPU so far of these processes
cpu_seconds() {
  local total=0 pid
  for pid in "$@"; do
    [ -r "/proc/$pid/stat" ] || continue
    # fields 14 and 15 after the ") " that ends the command name
    total=$((total + $(sed 's/.*) //' "/proc/$pid/stat" | awk '{print $12 + $13}')))
  done
  echo "$total"
}

# timed LABEL ROWS PIDS -- ARGS...: job-runner commands (ARGS, `;` between
# two) in a row, timed, with the CPU of the processes PIDS
timed() {
  local label=$1 rows=$2 pids=() before after start end own=0 t args=()
  shift 2
  while [ "$1" != -- ]; do pids+=("$1"); shift; done
  shift
  before=$(cpu_seconds "${pids[@]}")
  start=$(date +%s.%N)
  while [ $# -gt 0 ]; do
    args=()
    while [ $# -gt 0 ] && [ "$1" != ";" ]; do args+=("$1"); shift; done
    [ $# -gt 0 ] && shift
    /usr/bin/time -f "%U %S" -o "$cache/time" "$runner" "${args[@]}" \
      >/dev/null 2>"$cache/stderr" || { tail -5 "$cache/stderr"; return 1; }
    t=$(awk '{print int(($1 + $2) * 100)}' "$cache/time")
    own=$((own + t))
  done
  end=$(date +%s.%N)
  after=$(cpu_seconds "${pids[@]}")
  python3 - "$label" "$start" "$end" "$own" "$((after - before))" "$ticks" "$rows" <<'PY'
import sys
label, start, end = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
own, cluster, ticks, rows = int(sys.argv[4]) / 100, int(sys.argv[5]) / int(sys.argv[6]), int(sys.argv[6]), int(sys.argv[7])
cpu = own + cluster
print(f"  {label:<48} {end - start:7.2f} s wall  CPU {cpu:7.2f} s (job-runner {own:6.2f}, cluster {cluster:6.2f})"
      f"  {cpu / rows * 1e6:6.2f} us CPU/row  cores busy {cpu / (end - start):4.2f}")
PY
}

# datamarts LABEL LAKE ROWS ENGINE PIDS...: the four datamart commands, timed
datamarts() {
  local label=$1 lake=$2 rows=$3 engine=$4 d commands=()
  shift 4
  for d in sales-country-year top-products monthly-sales customer-lifetime-value; do
    commands+=(datamart "$d" --lake "$lake" --engine "$engine" ";")
  done
  timed "datamarts, $label" "$rows" "$@" -- "${commands[@]}"
}

# cluster N SLOTS: a fresh scheduler and N executors of SLOTS slots
start_cluster() {
  testenv/ballista.sh stop "$cluster" >/dev/null 2>&1 || true
  AURUM_BALLISTA_EXECUTORS=$1 AURUM_BALLISTA_CONCURRENT_TASKS=$2 \
    testenv/ballista.sh start "$cluster" > "$cache/ballista.env"
  # shellcheck disable=SC1091
  . "$cache/ballista.env"
}

bench() {
  local n=$1
  src=$cache/source-$n
  [ -f "$src/transactions.csv" ] || "$runner" generate --out "$src" --transactions "$n" >/dev/null
  lake=$cache/lake-$n
  rm -rf "$lake"
  /usr/bin/time -f "%e %U %S" -o "$cache/feed.time" "$runner" feed --source "$src" --lake "$lake" >/dev/null 2>&1
  /usr/bin/time -f "%e %U %S" -o "$cache/preprocess.time" "$runner" preprocess --lake "$lake" \
    > "$cache/preprocess.json" 2>/dev/null
  rows=$(python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(sum(s['rows_written'] for s in r['stages'] if s['table']=='transactions'))" "$cache/preprocess.json")
  raw=$(python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(sum(s['rows_read'] for s in r['stages'] if s['table']=='transactions'))" "$cache/preprocess.json")
  echo "== $n source transactions, $rows silver transactions ($(du -sh "$lake/silver" | cut -f1) of silver Parquet), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
  read -r wall user sys < "$cache/feed.time"
  echo "  feed (in-process, always): $wall s wall, CPU $(python3 -c "print(f'{$user + $sys:.2f}')") s"
  read -r wall user sys < "$cache/preprocess.time"
  echo "  preprocess, in-process: $wall s wall, CPU $(python3 -c "print(f'{$user + $sys:.2f}')") s, $(python3 -c "print(f'{($user + $sys) / $raw * 1e6:.2f}')") us CPU/raw line"
  datamarts "in-process" "$lake" "$rows" in-process
  for shape in ${AURUM_BENCH_SHAPES:-1x$slots 2x1 2x$slots}; do
    executors=${shape%x*} per=${shape#*x}
    [ "$executors" = 2 ] && [ "$per" = "$slots" ] && [ "$slots" = 1 ] && continue
    start_cluster "$executors" "$per"
    # Every slot of the cluster gets a task of each stage.
    export AURUM_ENGINE_PARTITIONS=$((executors * per))
    # shellcheck disable=SC2086
    timed "preprocess, ballista, $executors executor(s) x $per slot(s)" "$raw" $AURUM_BALLISTA_PIDS -- \
      preprocess --lake "$lake" --engine "$AURUM_BALLISTA_URL"
    # shellcheck disable=SC2086
    datamarts "ballista, $executors executor(s) x $per slot(s)" "$lake" "$rows" "$AURUM_BALLISTA_URL" $AURUM_BALLISTA_PIDS
    du -sh "$cluster"/executor* 2>/dev/null | sed 's/^/    shuffle files left: /' || true
  done
  unset AURUM_ENGINE_PARTITIONS
  testenv/ballista.sh stop "$cluster" >/dev/null 2>&1 || true
  rm -rf "$lake"
  echo "  load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
}

command -v /usr/bin/time >/dev/null || { apt-get update -qq && apt-get install -y -qq time; }
for n in "${sizes[@]}"; do bench "$n"; done
