#!/usr/bin/env bash
# A real JDBC client against the real aurum-api: Apache Arrow's Flight SQL JDBC
# driver (the driver DBeaver uses; from Maven Central, cached in ~/.cache/aurum)
# logs in with a user name and password, reads the tables, columns and primary
# keys as DBeaver's navigator does, reads gold_customer_lifetime_value and a
# prepared statement's result, which must equal PostgreSQL's, and is refused a
# DELETE and a wrong password (api/tests/jdbc/FlightSqlJdbcProbe.java).
#
#   api/tests/flight_jdbc.sh     # uses DATABASE_URL (admin) or starts testenv/postgres.sh
#
# Needs java (17+) and mvn. Env: AURUM_API_BIN (default: cargo build),
# AURUM_JOB_RUNNER_BIN (default: cargo build).
set -euo pipefail
cd "$(dirname "$0")/../.."
. testenv/api-server.sh

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/aurum/target}
STATE=${AURUM_FLIGHT_STATE:-/var/tmp/aurum/flight-jdbc}
DRIVERS=$HOME/.cache/aurum/flight-jdbc
log() { echo "flight_jdbc.sh: $*" >&2; }
start=$(date +%s)

driver=$DRIVERS/flight-sql-jdbc-driver-$(sed -n 's:.*<version>\(.*\)</version>.*:\1:p' api/tests/jdbc/pom.xml | tail -1).jar
if [ ! -f "$driver" ]; then
  log "fetching the Flight SQL JDBC driver into $DRIVERS"
  mvn -B -q -f api/tests/jdbc/pom.xml -Dmaven.repo.local="$HOME/.cache/aurum/m2" \
    dependency:copy-dependencies -DoutputDirectory="$DRIVERS" >&2
fi

serve_sample_gold "$STATE" aurum_api_flight_jdbc 13 18650 51151

set +e
# Arrow's Java memory needs java.nio opened on JDK 17+; dates are read in UTC.
JDBC_URL="jdbc:arrow-flight-sql://127.0.0.1:$flight_port?useEncryption=false" \
  JDBC_USER=analyst JDBC_PASSWORD="$password" ROWS_OUT="$work/jdbc.tsv" \
  java --add-opens=java.base/java.nio=ALL-UNNAMED -Duser.timezone=UTC \
  -cp "$driver" api/tests/jdbc/FlightSqlJdbcProbe.java > "$work/probe.out" 2> "$work/probe.err"
rc=$?
set -e
grep -E '^(ok|FAIL) ' "$work/probe.out" || true
if [ "$rc" != 0 ]; then
  log "the JDBC probe failed (exit $rc):"; tail -20 "$work/probe.err" >&2
fi

# The rows and the count it read equal PostgreSQL's.
psql "$url" -qXAc "COPY (SELECT customer_no, country, first_purchase, transactions, lifetime_value \
  FROM gold_customer_lifetime_value ORDER BY customer_no) TO STDOUT" > "$work/postgres.tsv"
if [ -s "$work/jdbc.tsv" ] && cmp -s "$work/jdbc.tsv" "$work/postgres.tsv"; then
  echo "ok   every row read through JDBC equals PostgreSQL's ($(wc -l < "$work/postgres.tsv") rows)"
else
  echo "FAIL the rows read through JDBC differ from PostgreSQL's:"
  diff "$work/jdbc.tsv" "$work/postgres.tsv" | head -5
  rc=1
fi
IFS=$'\t' read -r _ country jdbc_count < <(grep '^count' "$work/probe.out" || printf 'count\t\t-1\n')
pg_count=$(psql "$url" -qXtAc "SELECT count(*) FROM gold_customer_lifetime_value WHERE country = \$\$$country\$\$")
if [ -n "$country" ] && [ "$jdbc_count" = "$pg_count" ]; then
  echo "ok   the prepared statement counts $jdbc_count customers in $country, as PostgreSQL does"
else
  echo "FAIL the prepared statement counted $jdbc_count customers in '$country'; PostgreSQL: $pg_count"
  rc=1
fi
exit_api_check "$rc" "$start"
