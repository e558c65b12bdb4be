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
mkdir -p "$STATE"
if [ -z "${DATABASE_URL:-}" ]; then
  eval "$(testenv/postgres.sh start "$STATE/postgres")"
fi
admin_url=$DATABASE_URL
db=aurum_bench_api
bench_url="${admin_url%/*}/$db"
testenv/postgres.sh fresh-db "$admin_url" "$db" >/dev/null

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

work=$(mktemp -d)
api_pid=
cleanup() {
  if [ -n "$api_pid" ]; then kill -TERM "$api_pid" 2>/dev/null || true; wait "$api_pid" 2>/dev/null || true; fi
  rm -rf "$work"
  testenv/postgres.sh drop-db "$admin_url" "$db" 2>/dev/null || true
}
trap cleanup EXIT

password=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
printf '%s' "$password" | "$bin" hash-password --username bench --role viewer > "$work/users"
head -c 48 /dev/urandom | base64 > "$work/secret"
port=18000
while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
RUST_LOG=warn "$bin" --listen "127.0.0.1:$port" --database-url "$bench_url" \
  --users-file "$work/users" --jwt-secret-file "$work/secret" --token-ttl-secs 3600 \
  2> "$work/api.log" &
api_pid=$!
base="http://127.0.0.1:$port"
for _ in $(seq 1 600); do
  if curl -fsS "$base/readyz" 2>/dev/null | grep -q '"customer-lifetime":{[^}]*"loaded":true'; then break; fi
  if ! kill -0 "$api_pid" 2>/dev/null; then cat "$work/api.log" >&2; exit 1; fi
  sleep 0.1
done
token=$(curl -fsS -H 'Content-Type: application/json' \
  -d "{\"username\":\"bench\",\"password\":\"$password\"}" "$base/login" |
  sed -E 's/.*"access_token":"([^"]+)".*/\1/')
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
