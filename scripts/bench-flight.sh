#!/usr/bin/env bash
# Flight SQL versus REST (issue 7): the time to pull the whole
# gold_customer_lifetime_value (50,000+ customers, built by the real job-runner)
# through Arrow Flight SQL (ADBC + pyarrow) and by paging through
# GET /gold/customer-lifetime?limit=1000 (keep-alive, JSON parsed), in one Python
# process, best of RUNS each. Prints both times and their ratio, and PostgreSQL's
# own time to send the table (COPY ... TO STDOUT (FORMAT BINARY), bytes not
# decoded): the floor of any Flight server that streams from PostgreSQL.
#
#   scripts/bench-flight.sh        # TRANSACTIONS=1400000 RUNS=5
#
# Env: AURUM_API_BIN, AURUM_JOB_RUNNER_BIN (default: cargo build --release of both;
# set them to debug builds to skip that), DATABASE_URL (admin; default: start
# testenv/postgres.sh), AURUM_BENCH_STATE (generated source and lake are kept
# there and reused), AURUM_FLIGHT_VENV.
set -euo pipefail
cd "$(dirname "$0")/.."
. testenv/api-server.sh

# generate makes one customer per 25 transactions, and nearly all of them buy.
TRANSACTIONS=${TRANSACTIONS:-1400000}
RUNS=${RUNS:-5}
STATE=${AURUM_BENCH_STATE:-/var/tmp/aurum/bench-flight}
VENV=${AURUM_FLIGHT_VENV:-$HOME/.cache/aurum/venv-flight}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/aurum/target}
log() { echo "bench-flight: $*" >&2; }

if ! "$VENV/bin/python" -c 'import adbc_driver_flightsql, pyarrow' 2>/dev/null; then
  log "installing the ADBC Flight SQL driver and pyarrow into $VENV"
  create_venv "$VENV" "${FLIGHT_PYTHON_PACKAGES[@]}"
fi
if [ -z "${AURUM_API_BIN:-}" ] || [ -z "${AURUM_JOB_RUNNER_BIN:-}" ]; then
  log "building aurum-api and aurum-job-runner (release)"
  cargo build -q --release -p aurum-api -p aurum-job-runner
fi
bin=${AURUM_API_BIN:-$CARGO_TARGET_DIR/release/aurum-api}
runner=${AURUM_JOB_RUNNER_BIN:-$CARGO_TARGET_DIR/release/aurum-job-runner}

use_postgres "$STATE"
admin_url=$DATABASE_URL
db=aurum_bench_flight
url="${admin_url%/*}/$db"
exists=$(psql "$admin_url" -qXtAc "SELECT 1 FROM pg_database WHERE datname = '$db'")
rows=0
if [ "$exists" = 1 ]; then
  rows=$(psql "$url" -qXtAc "SELECT count(*) FROM gold_customer_lifetime_value" 2>/dev/null || echo 0)
fi
if [ "$rows" -lt 50000 ]; then
  testenv/postgres.sh fresh-db "$admin_url" "$db" >/dev/null
  src=$STATE/source-$TRANSACTIONS
  if [ ! -f "$src/transactions.csv" ]; then
    log "generating $TRANSACTIONS transactions"
    "$runner" generate --out "$src" --transactions "$TRANSACTIONS" --seed 7 >/dev/null
  fi
  log "running the pipeline (feed, preprocess, four datamarts)"
  rm -rf "$STATE/lake"
  "$runner" run --source "$src" --lake "$STATE/lake" --database-url "$url" >/dev/null
  rows=$(psql "$url" -qXtAc "SELECT count(*) FROM gold_customer_lifetime_value")
fi
log "gold_customer_lifetime_value has $rows rows"
if [ "$rows" -lt 50000 ]; then
  log "fewer than 50,000 customers: raise TRANSACTIONS"; exit 1
fi

# shellcheck disable=SC2119 # no database to drop: the next run reuses the gold tables
make_api_workdir
write_api_credentials "$bin" "$work" bench viewer
port=$(free_port 18700)
flight_port=$(free_port 52051)
start_api "$bin" "$work" --listen "127.0.0.1:$port" --flight-listen "127.0.0.1:$flight_port" \
  --database-url "$url" --token-ttl-secs 3600
wait_api_ready "http://127.0.0.1:$port" "$work" 1200 "$CUSTOMER_LIFETIME_LOADED"

log "API: $bin; $RUNS runs each"
REST_PORT=$port FLIGHT_PORT=$flight_port BENCH_PASSWORD=$password RUNS=$RUNS ROWS=$rows \
  "$VENV/bin/python" - <<'PY'
import http.client
import json
import os
import time

import adbc_driver_flightsql.dbapi as flightsql

port, fport, pw = int(os.environ["REST_PORT"]), os.environ["FLIGHT_PORT"], os.environ["BENCH_PASSWORD"]
runs, rows = int(os.environ["RUNS"]), int(os.environ["ROWS"])

rest = http.client.HTTPConnection("127.0.0.1", port)
rest.request("POST", "/login", json.dumps({"username": "bench", "password": pw}), {"Content-Type": "application/json"})
token = json.loads(rest.getresponse().read())["access_token"]
headers = {"Authorization": f"Bearer {token}"}


def pull_rest():
    # A fresh keep-alive connection per pull: the API closes idle ones after
    # --header-read-timeout-secs.
    rest = http.client.HTTPConnection("127.0.0.1", port)
    got, offset = 0, 0
    while True:
        rest.request("GET", f"/gold/customer-lifetime?limit=1000&offset={offset}", headers=headers)
        resp = rest.getresponse()
        page = json.loads(resp.read())
        assert resp.status == 200, page
        got += len(page["items"])
        offset += 1000
        if offset >= page["total"]:
            return got


conn = flightsql.connect(f"grpc://127.0.0.1:{fport}", db_kwargs={"username": "bench", "password": pw})


def pull_flight():
    cur = conn.cursor()
    cur.execute("SELECT * FROM gold_customer_lifetime_value")
    n = cur.fetch_arrow_table().num_rows
    cur.close()
    return n


def timed(f):
    t = time.perf_counter()
    n = f()
    assert n == rows, (n, rows)
    return time.perf_counter() - t


# The two pulls alternate, so a noisy moment on the machine hits both alike.
flight_times, rest_times = [], []
for _ in range(runs):
    flight_times.append(timed(pull_flight))
    rest_times.append(timed(pull_rest))


def best_median(times):
    return min(times), sorted(times)[len(times) // 2]


f_best, f_med = best_median(flight_times)
r_best, r_med = best_median(rest_times)
print(f"rows: {rows}")
print(f"Flight SQL (ADBC, whole table):       best {f_best * 1000:8.1f} ms   median {f_med * 1000:8.1f} ms")
print(f"REST (limit=1000, {(rows + 999) // 1000} pages, JSON parsed): best {r_best * 1000:8.1f} ms   median {r_med * 1000:8.1f} ms")
print(f"ratio REST/Flight: best {r_best / f_best:.1f}x   median {r_med / f_med:.1f}x")
PY

# psql writes the bytes to /dev/null without decoding them: what is left is
# PostgreSQL producing and sending the rows.
copy_ms=$(for _ in $(seq 1 "$RUNS"); do
  psql "$url" -qX -o /dev/null -c '\timing on' \
    -c "\\copy (SELECT * FROM gold_customer_lifetime_value) TO '/dev/null' (FORMAT binary)" |
    sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p'
done | sort -n)
echo "PostgreSQL alone (COPY BINARY to /dev/null via psql): best $(echo "$copy_ms" | head -1) ms   median $(echo "$copy_ms" | sed -n "$(( (RUNS + 1) / 2 ))p") ms"
