#!/usr/bin/env bash
# Server-side render time of the dashboard's overview at about 10,000 customers.
#
#   scripts/bench-dashboard.sh     # TRANSACTIONS=260000 REQUESTS=40
#
# Loads the gold tables with the real job-runner (TRANSACTIONS generated lines give
# about TRANSACTIONS/25 customers), starts the real aurum-api and two dashboards in
# front of it, one with the response cache (default 10 s) and one without
# (--cache-ttl-secs 0, every page reads every row it needs from the API), logs in,
# and requests the overview REQUESTS times per filter combination. The time is the
# dashboard's own `Server-Timing: app;dur=...` (request in to response out, API
# calls included), summarised as p50 / p95 / max in milliseconds.
#
# Binaries: $AURUM_BIN_DIR (default $CARGO_TARGET_DIR/debug), built with
# `cargo build -p aurum-dashboard -p aurum-api -p aurum-job-runner --bins` unless
# AURUM_SKIP_BUILD=1. Uses DATABASE_URL when set (admin rights), otherwise starts
# testenv/postgres.sh under $AURUM_BENCH_STATE.
set -euo pipefail
cd "$(dirname "$0")/.."

TRANSACTIONS=${TRANSACTIONS:-260000}
REQUESTS=${REQUESTS:-40}
STATE=${AURUM_BENCH_STATE:-$HOME/.cache/aurum/bench-dashboard}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/aurum/target}
BIN=${AURUM_BIN_DIR:-$CARGO_TARGET_DIR/debug}
log() { echo "bench-dashboard: $*" >&2; }

if [ "${AURUM_SKIP_BUILD:-0}" != 1 ]; then
  cargo build -p aurum-dashboard -p aurum-api -p aurum-job-runner --bins >&2
fi
mkdir -p "$STATE"
if [ -z "${DATABASE_URL:-}" ]; then
  eval "$(testenv/postgres.sh start "$STATE/postgres")"
fi
admin_url=$DATABASE_URL
db=aurum_bench_dashboard
bench_url="${admin_url%/*}/$db"

# Load once per size: the marker names the size loaded.
if [ "$(cat "$STATE/loaded" 2>/dev/null)" != "$TRANSACTIONS" ] ||
   ! psql "$bench_url" -qXtAc "SELECT 1 FROM gold_customer_lifetime_value LIMIT 1" >/dev/null 2>&1; then
  log "loading gold tables with the job-runner ($TRANSACTIONS transactions)"
  testenv/postgres.sh fresh-db "$admin_url" "$db" >/dev/null
  rm -rf "$STATE/source" "$STATE/lake"
  "$BIN/aurum-job-runner" generate --out "$STATE/source" --transactions "$TRANSACTIONS" --seed 7 >/dev/null 2>"$STATE/generate.log"
  "$BIN/aurum-job-runner" run --source "$STATE/source" --lake "$STATE/lake" --database-url "$bench_url" >/dev/null 2>"$STATE/job-runner.log"
  echo "$TRANSACTIONS" > "$STATE/loaded"
fi
customers=$(psql "$bench_url" -qXtAc "SELECT count(*) FROM gold_customer_lifetime_value")
year=$(psql "$bench_url" -qXtAc "SELECT max(year) FROM gold_sales_country_year")
country=$(psql "$bench_url" -qXtAc "SELECT country FROM gold_sales_country_year GROUP BY country ORDER BY sum(total_sales) DESC LIMIT 1")
log "gold_customer_lifetime_value has $customers rows"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

password=bench-$RANDOM-$RANDOM
printf %s "$password" | "$BIN/aurum-api" hash-password --username bench --role viewer > "$STATE/users"
head -c 48 /dev/urandom | base64 > "$STATE/secret"
api_port=$(free_port)
AURUM_FLIGHT_DISABLED=true "$BIN/aurum-api" --listen "127.0.0.1:$api_port" --database-url "$bench_url" \
  --users-file "$STATE/users" --jwt-secret-file "$STATE/secret" 2>"$STATE/api.log" &
pids+=($!)
until curl -sf "http://127.0.0.1:$api_port/readyz" | python3 -c 'import json,sys; d=json.load(sys.stdin)["datamarts"]; sys.exit(0 if d and all(m["loaded"] for m in d.values()) else 1)' 2>/dev/null; do sleep 0.2; done

start_dashboard() { # port ttl
  "$BIN/aurum-dashboard" --listen "127.0.0.1:$1" --api-url "http://127.0.0.1:$api_port" \
    --cache-ttl-secs "$2" 2>"$STATE/dashboard-$2.log" &
  pids+=($!)
  until curl -sf "http://127.0.0.1:$1/healthz" >/dev/null; do sleep 0.1; done
}
cached_port=$(free_port); start_dashboard "$cached_port" 10
uncached_port=$(free_port); start_dashboard "$uncached_port" 0

# One summary line: p50 / p95 / max of the Server-Timing durations of REQUESTS pages.
measure() { # port query
  local jar="$STATE/cookies-$1"
  curl -sf -c "$jar" -o /dev/null -d "username=bench&password=$password" "http://127.0.0.1:$1/login"
  curl -sf -b "$jar" -o /dev/null "http://127.0.0.1:$1/?$2" # warm the connection pools
  for _ in $(seq "$REQUESTS"); do
    curl -sf -b "$jar" -o /dev/null -D - "http://127.0.0.1:$1/?$2" |
      tr -d '\r' | sed -n 's/^server-timing: app;dur=//Ip'
  done | sort -n | awk '{ v[NR] = $1 } END {
      p50 = v[int((NR + 1) * 0.50)]; p95 = v[int(NR * 0.95 + 0.5)];
      printf "%8.2f %8.2f %8.2f\n", p50, p95, v[NR] }'
}

q_country=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote_plus(sys.argv[1]))' "$country")
echo "overview render time, ms (p50 p95 max of $REQUESTS requests), $customers customers, binaries in $BIN"
printf '%-40s %-9s %8s %8s %8s\n' "filters" "cache" p50 p95 max
for q in "" "year=$year" "country=$q_country" "year=$year&country=$q_country"; do
  printf '%-40s %-9s %s\n' "${q:-(none)}" "10 s" "$(measure "$cached_port" "$q")"
  printf '%-40s %-9s %s\n' "${q:-(none)}" "off" "$(measure "$uncached_port" "$q")"
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
