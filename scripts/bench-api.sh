#!/usr/bin/env bash
# Load benchmark of the gold API (issue 5): wrk, 64 connections, against
# GET /gold/customer-lifetime?limit=50 with a valid token, on ~50,000 customers,
# for two workloads: offset 0 and offsets spread at random over the whole table.
#
#   scripts/bench-api.sh            # DURATION=20s CONNECTIONS=64 THREADS=2 CUSTOMERS=50000
#
# Gold data: the job-runner when AURUM_JOB_RUNNER_BIN is set and AURUM_BENCH_TRANSACTIONS
# is given (it must yield about 50,000 customers), otherwise the synthetic fixture of
# api/tests/fixtures/synthetic_gold.sql inserted directly. Uses DATABASE_URL when set
# (admin rights), otherwise starts testenv/postgres.sh. Installs wrk from apt if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
. testenv/api-server.sh

DURATION=${DURATION:-20s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
CUSTOMERS=${CUSTOMERS:-50000}
STATE=${AURUM_BENCH_STATE:-/var/tmp/aurum/bench-api}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/aurum/target-api}
log() { echo "bench-api: $*" >&2; }

if ! command -v wrk >/dev/null; then
  log "installing wrk"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 && apt-get install -y -qq wrk >&2
fi
use_postgres "$STATE"
admin_url=$DATABASE_URL
db=aurum_bench_api
bench_url=$(testenv/postgres.sh fresh-db "$admin_url" "$db")

if [ -n "${AURUM_JOB_RUNNER_BIN:-}" ] && [ -n "${AURUM_BENCH_TRANSACTIONS:-}" ]; then
  log "loading gold tables with the job-runner ($AURUM_BENCH_TRANSACTIONS transactions)"
  "$AURUM_JOB_RUNNER_BIN" generate --out "$STATE/source" --transactions "$AURUM_BENCH_TRANSACTIONS" --seed 7 >/dev/null
  rm -rf "$STATE/lake"
  "$AURUM_JOB_RUNNER_BIN" run --source "$STATE/source" --lake "$STATE/lake" --database-url "$bench_url" >/dev/null
else
  log "loading synthetic gold tables ($CUSTOMERS customers)"
  psql "$bench_url" -qX -v ON_ERROR_STOP=1 -f job-runner/migrations/0001_gold.sql >/dev/null
  sed "s/{{customers}}/$((CUSTOMERS - 4))/" api/tests/fixtures/synthetic_gold.sql | psql "$bench_url" -qX -v ON_ERROR_STOP=1 >/dev/null
fi
rows=$(psql "$bench_url" -qXtAc "SELECT count(*) FROM gold_customer_lifetime_value")
log "gold_customer_lifetime_value has $rows rows"

log "building aurum-api (release)"
cargo build -q --release -p aurum-api
bin=$CARGO_TARGET_DIR/release/aurum-api

make_api_workdir "$admin_url" "$db"

write_api_credentials "$bin" "$work" bench viewer
port=$(free_port 18000)
start_api "$bin" "$work" --listen "127.0.0.1:$port" --database-url "$bench_url" \
  --token-ttl-secs 3600
base="http://127.0.0.1:$port"
wait_api_ready "$base" "$work" 600 "$CUSTOMER_LIFETIME_LOADED"
token=$(api_token "$base" bench "$password")
curl -fsS -o /dev/null -H "Authorization: Bearer $token" "$base/gold/customer-lifetime?limit=50"

cat > "$work/report.lua" <<'LUA'
done = function(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
               + summary.errors.status + summary.errors.timeout
  io.write(string.format("RESULT requests=%d req_per_s=%.0f p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f max_ms=%.2f errors=%d\n",
    summary.requests, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000, errors))
end
LUA
cat > "$work/random.lua" <<LUA
math.randomseed(os.time())
local max_offset = $((rows > 50 ? rows - 50 : 0))
request = function()
  return wrk.format("GET", "/gold/customer-lifetime?limit=50&offset=" .. math.random(0, max_offset))
end
$(cat "$work/report.lua")
LUA

# CPU time (clock ticks) the API process has used so far.
api_ticks() { awk '{print $14 + $15}' "/proc/$api_pid/stat"; }
run() {
  local name=$1 script=$2
  log "workload $name: wrk -t$THREADS -c$CONNECTIONS -d$DURATION"
  local out before after requests
  before=$(api_ticks)
  out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s "$script" \
    -H "Authorization: Bearer $token" "$base/gold/customer-lifetime?limit=50&offset=0")
  after=$(api_ticks)
  echo "$out" >&2
  requests=$(echo "$out" | sed -nE 's/^RESULT requests=([0-9]+).*/\1/p')
  echo "$out" | grep '^RESULT' | sed "s/^RESULT/$name:/" | tr -d '\n'
  # Server CPU per request: how many requests one core of this machine would serve.
  awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" -v n="$requests" \
    'BEGIN { us = t / hz * 1e6 / n; printf " api_cpu_us_per_req=%.1f (%.0f req/s per core)\n", us, 1e6 / us }'
}
echo "rows=$rows connections=$CONNECTIONS threads=$THREADS duration=$DURATION cpus=$(nproc) load=$(cut -d" " -f1-3 /proc/loadavg)"
run offset0 "$work/report.lua"
run random "$work/random.lua"
