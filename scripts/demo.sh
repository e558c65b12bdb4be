#!/usr/bin/env bash
# `make demo`: build Aurum, start a throwaway PostgreSQL under .aurum/, run the
# whole pipeline on source/ with the lake under .aurum/lake, then start the gold
# API on 127.0.0.1:${AURUM_DEMO_API_PORT:-8000} with a demo user and the dashboard
# on 127.0.0.1:${AURUM_DEMO_DASHBOARD_PORT:-8050}.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/aurum/target}
state=$PWD/.aurum
mkdir -p "$state"

echo "==> building (release)"
cargo build --release -p aurum-job-runner -p aurum-api -p aurum-dashboard
runner=$CARGO_TARGET_DIR/release/aurum-job-runner
api=$CARGO_TARGET_DIR/release/aurum-api
dashboard=$CARGO_TARGET_DIR/release/aurum-dashboard

echo "==> starting PostgreSQL under .aurum/postgres"
eval "$(testenv/postgres.sh start "$state/postgres")"
export DATABASE_URL

echo "==> running the pipeline on source/ (progress on stderr)"
"$runner" run --source source --lake "$state/lake" --report "$state/last-run.json" >/dev/null

python3 - "$state/last-run.json" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
print(f"\nrun {report['run_id']}: {report['status']} in {report['duration_ms']} ms; silver snapshot {report['silver_snapshot_id']}")
print(f"{'stage':<11}{'table':<31}{'read':>9}{'written':>9}{'rejected':>9}  rejects")
for s in report["stages"]:
    rejects = ", ".join(f"{k}={v}" for k, v in s["rejects"].items())
    print(f"{s['stage']:<11}{s['table']:<31}{s['rows_read']:>9}{s['rows_written']:>9}{s['rows_rejected']:>9}  {rejects}")
PY

# run_service NAME HEALTH_URL COMMAND...: stops the previous demo's NAME, runs
# COMMAND in the background (log: $state/NAME.log, pid: $state/NAME.pid) and waits
# up to 10 s for HEALTH_URL to answer.
run_service() {
  local name=$1 health=$2
  shift 2
  if [ -f "$state/$name.pid" ] && kill -0 "$(cat "$state/$name.pid")" 2>/dev/null; then
    kill "$(cat "$state/$name.pid")"; sleep 1
  fi
  nohup "$@" > "$state/$name.log" 2>&1 &
  echo $! > "$state/$name.pid"
  for _ in $(seq 1 50); do
    curl -fsS "$health" >/dev/null 2>&1 && break
    sleep 0.2
  done
}

echo "==> starting the gold API"
api_port=${AURUM_DEMO_API_PORT:-8000}
umask 077
[ -s "$state/jwt-secret" ] || head -c 48 /dev/urandom | base64 | tr -d '\n' > "$state/jwt-secret"
password=$(head -c 12 /dev/urandom | base64 | tr -d '/+=')
printf %s "$password" | "$api" hash-password --username demo --role admin > "$state/users"
flight_port=${AURUM_DEMO_FLIGHT_PORT:-50051}
run_service api "http://127.0.0.1:$api_port/readyz" env AURUM_LISTEN="127.0.0.1:$api_port" \
  AURUM_FLIGHT_LISTEN="127.0.0.1:$flight_port" AURUM_JWT_SECRET_FILE="$state/jwt-secret" \
  AURUM_USERS_FILE="$state/users" "$api"

echo "==> starting the dashboard"
dashboard_port=${AURUM_DEMO_DASHBOARD_PORT:-8050}
run_service dashboard "http://127.0.0.1:$dashboard_port/healthz" env \
  AURUM_LISTEN="127.0.0.1:$dashboard_port" AURUM_API_URL="http://127.0.0.1:$api_port" "$dashboard"

cat <<MSG

Dashboard: http://127.0.0.1:$dashboard_port
Gold API:  http://127.0.0.1:$api_port  (Swagger UI: http://127.0.0.1:$api_port/docs)
Flight SQL: grpc://127.0.0.1:$flight_port  (docs/flight-sql.md: Python, DBeaver)
  login: demo / $password   (a password generated for this demo; the same for all three)
  curl -s -X POST http://127.0.0.1:$api_port/login -H 'content-type: application/json' \\
       -d '{"username":"demo","password":"$password"}'

Where to look:
  lake (raw, silver, rejects)   $state/lake
  run report                    $state/last-run.json
  gold tables                   psql "$DATABASE_URL" -c 'SELECT * FROM gold_top_products WHERE scope = '"'"'ALL'"'"''
  API and dashboard logs        $state/api.log, $state/dashboard.log
  stop everything               kill \$(cat $state/dashboard.pid) \$(cat $state/api.pid); testenv/postgres.sh stop $state/postgres
MSG
