# shellcheck shell=bash
# Sourced, not run (`. testenv/api-server.sh`): what the scripts that drive a real
# aurum-api share (api/tests/schemathesis.sh, api/tests/flight_python.sh,
# api/tests/flight_jdbc.sh, scripts/bench-api.sh, scripts/bench-flight.sh): their
# PostgreSQL, a generated user and JWT secret, the API started on a free port and
# stopped again, a token, and the Python venv of the Flight SQL clients. The
# caller runs from the repository root and defines `log`.

# The pinned Python packages of the Flight SQL client checks: the ADBC Flight SQL
# driver, pyarrow and psycopg (one venv, ~/.cache/aurum/venv-flight, serves both).
# shellcheck disable=SC2034 # read by the scripts that source this file
FLIGHT_PYTHON_PACKAGES=("adbc-driver-flightsql==1.13.0" "adbc-driver-manager==1.13.0" "pyarrow==26.0.1" "psycopg[binary]==3.3.9")

# What /readyz says once the customer-lifetime datamart is loaded (a grep pattern).
# shellcheck disable=SC2034 # read by the scripts that source this file
CUSTOMER_LIFETIME_LOADED='"customer-lifetime":{[^}]*"loaded":true'

# create_venv VENV PACKAGE...: creates (or updates) the Python venv VENV and
# installs the PACKAGEs into it.
create_venv() {
  python3 -m venv "$1"
  "$1/bin/pip" install -q "${@:2}"
}

# use_postgres STATE: creates the folder STATE and, unless DATABASE_URL is set,
# starts testenv/postgres.sh in STATE/postgres and sets DATABASE_URL to its admin URL.
use_postgres() {
  mkdir -p "$1"
  if [ -z "${DATABASE_URL:-}" ]; then
    eval "$(testenv/postgres.sh start "$1/postgres")"
  fi
}

# make_api_workdir [ADMIN_URL DB]: sets `work` to a new temporary folder (for
# write_api_credentials and start_api) and arranges that on exit the API is
# stopped, `work` removed and, when given, database DB on ADMIN_URL's server dropped.
make_api_workdir() {
  work=$(mktemp -d)
  api_pid=
  workdir_database=("$@")
  trap remove_api_workdir EXIT
}

# remove_api_workdir: the exit trap of make_api_workdir.
remove_api_workdir() {
  stop_api
  rm -rf "$work"
  if [ "${#workdir_database[@]}" = 2 ]; then
    testenv/postgres.sh drop-db "${workdir_database[@]}" 2>/dev/null || true
  fi
}

# free_port FIRST: prints the first free loopback TCP port from FIRST up.
free_port() {
  local p=$1
  while (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; do p=$((p + 1)); done
  echo "$p"
}

# write_api_credentials BIN DIR USER ROLE: writes DIR/users, USER with ROLE and a
# random password (hashed by `BIN hash-password`), and DIR/secret, a random JWT
# secret; sets `password` to USER's password.
write_api_credentials() {
  password=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
  printf '%s' "$password" | "$1" hash-password --username "$3" --role "$4" > "$2/users"
  head -c 48 /dev/urandom | base64 > "$2/secret"
}

# start_api BIN DIR ARG...: starts the API `BIN ARG...` in the background with the
# users and secret of write_api_credentials DIR, RUST_LOG=warn and its stderr in
# DIR/api.log; sets `api_pid`.
start_api() {
  local bin=$1 dir=$2
  shift 2
  RUST_LOG=warn "$bin" "$@" --users-file "$dir/users" --jwt-secret-file "$dir/secret" \
    2> "$dir/api.log" &
  api_pid=$!
}

# wait_api_ready BASE_URL DIR TRIES [PATTERN]: polls BASE_URL/readyz every 0.1 s,
# at most TRIES times, until it answers 200 with a body that matches the grep
# PATTERN (default: any body); when the API has died, prints DIR/api.log and exits 1.
wait_api_ready() {
  local base=$1 dir=$2 tries=$3 pattern=${4:-}
  for _ in $(seq 1 "$tries"); do
    if curl -fsS "$base/readyz" 2>/dev/null | grep -q "$pattern"; then break; fi
    if ! kill -0 "$api_pid" 2>/dev/null; then cat "$dir/api.log" >&2; exit 1; fi
    sleep 0.1
  done
}

# api_token BASE_URL USER PASSWORD: prints the access token that POST /login returns.
api_token() {
  curl -fsS -H 'Content-Type: application/json' \
    -d "{\"username\":\"$2\",\"password\":\"$3\"}" "$1/login" |
    sed -E 's/.*"access_token":"([^"]+)".*/\1/'
}

# stop_api: stops the API of start_api (SIGTERM) and waits for it; nothing when
# none was started.
stop_api() {
  if [ -n "${api_pid:-}" ]; then kill -TERM "$api_pid" 2>/dev/null || true; wait "$api_pid" 2>/dev/null || true; fi
}

# serve_sample_gold STATE DB SEED REST_PORT FLIGHT_PORT: the gold tables of 3,000
# generated transactions (seed SEED), built by the job-runner into a fresh database
# DB (on DATABASE_URL's server, or on testenv/postgres.sh started in STATE), and
# the API serving them (REST and Flight SQL on the first free ports from REST_PORT
# and FLIGHT_PORT) to user `analyst`, a viewer, until the script exits. Builds
# aurum-api and aurum-job-runner unless AURUM_API_BIN and AURUM_JOB_RUNNER_BIN are
# set. Sets url (DB's URL), work, password, port and flight_port.
serve_sample_gold() {
  local state=$1 db=$2 seed=$3
  use_postgres "$state"
  local admin_url=$DATABASE_URL
  url=$(testenv/postgres.sh fresh-db "$admin_url" "$db")
  if [ -z "${AURUM_API_BIN:-}" ] || [ -z "${AURUM_JOB_RUNNER_BIN:-}" ]; then
    cargo build -q -p aurum-api -p aurum-job-runner
  fi
  local bin=${AURUM_API_BIN:-$CARGO_TARGET_DIR/debug/aurum-api}
  local runner=${AURUM_JOB_RUNNER_BIN:-$CARGO_TARGET_DIR/debug/aurum-job-runner}
  make_api_workdir "$admin_url" "$db"
  "$runner" generate --out "$work/source" --transactions 3000 --seed "$seed" >/dev/null 2>"$work/runner.log"
  "$runner" run --source "$work/source" --lake "$work/lake" --database-url "$url" >/dev/null 2>>"$work/runner.log" ||
    { cat "$work/runner.log" >&2; exit 1; }
  write_api_credentials "$bin" "$work" analyst viewer
  port=$(free_port "$4")
  flight_port=$(free_port "$5")
  start_api "$bin" "$work" --listen "127.0.0.1:$port" --flight-listen "127.0.0.1:$flight_port" \
    --database-url "$url"
  wait_api_ready "http://127.0.0.1:$port" "$work" 600 "$CUSTOMER_LIFETIME_LOADED"
}

# exit_api_check RC START: ends a client check of the API started at START (epoch
# seconds) whose own result is RC: a panic in the API's log fails it too; on failure
# the log is printed. Exits with the result.
exit_api_check() {
  local rc=$1
  if grep -qi panic "$work/api.log"; then
    log "the API logged a panic:"; rc=1
  fi
  if [ "$rc" != 0 ]; then cat "$work/api.log" >&2; fi
  log "finished in $(( $(date +%s) - $2 )) s (exit $rc)"
  exit "$rc"
}

