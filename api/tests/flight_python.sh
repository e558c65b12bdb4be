#!/usr/bin/env bash
# A real third-party Flight SQL client against the real aurum-api: Python's ADBC
# Flight SQL driver and pyarrow.flight (from PyPI, in a venv under
# ~/.cache/aurum/venv-flight) log in with a user name and password, list the
# tables, read gold_customer_lifetime_value into an Arrow table and compare every
# value with PostgreSQL (psycopg).
#
#   api/tests/flight_python.sh     # uses DATABASE_URL (admin) or starts testenv/postgres.sh
#
# Env: AURUM_API_BIN (a built aurum-api; default: cargo build), AURUM_JOB_RUNNER_BIN
# (default: cargo build), AURUM_FLIGHT_VENV.
set -euo pipefail
cd "$(dirname "$0")/../.."
. testenv/api-server.sh

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/aurum/target}
VENV=${AURUM_FLIGHT_VENV:-$HOME/.cache/aurum/venv-flight}
STATE=${AURUM_FLIGHT_STATE:-/var/tmp/aurum/flight-python}
log() { echo "flight_python.sh: $*" >&2; }
start=$(date +%s)

if ! "$VENV/bin/python" -c 'import adbc_driver_flightsql, pyarrow.flight, psycopg' 2>/dev/null; then
  log "installing ${FLIGHT_PYTHON_PACKAGES[*]} into $VENV"
  create_venv "$VENV" "${FLIGHT_PYTHON_PACKAGES[@]}"
fi
serve_sample_gold "$STATE" aurum_api_flight_python 11 18600 51051

set +e
FLIGHT_URI="grpc://127.0.0.1:$flight_port" FLIGHT_USER=analyst FLIGHT_PASSWORD="$password" \
  PG_URL="$url" "$VENV/bin/python" - <<'PY'
import os
import sys

import adbc_driver_flightsql.dbapi as flightsql
import psycopg
import pyarrow as pa
import pyarrow.flight as flight

uri, user, password = os.environ["FLIGHT_URI"], os.environ["FLIGHT_USER"], os.environ["FLIGHT_PASSWORD"]
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


# 1. ADBC: log in with user name and password.
conn = flightsql.connect(uri, db_kwargs={"username": user, "password": password})

# 2. List the tables (GetCatalogs/GetDbSchemas/GetTables), as BI tools do.
objects = conn.adbc_get_objects(depth="tables").read_all().to_pylist()
tables = sorted(
    t["table_name"]
    for cat in objects
    for sch in (cat["catalog_db_schemas"] or [])
    for t in (sch["db_schema_tables"] or [])
)
check(
    tables == ["gold_customer_lifetime_value", "gold_monthly_sales", "gold_sales_country_year", "gold_top_products"],
    f"a viewer lists the four gold tables: {tables}",
)
schema = conn.adbc_get_table_schema("gold_customer_lifetime_value", db_schema_filter="public")
check(schema.field("lifetime_value").type == pa.decimal128(18, 2), f"lifetime_value is decimal128(18, 2): {schema}")

# 3. Read the whole datamart into an Arrow table.
cur = conn.cursor()
cur.execute("SELECT * FROM gold_customer_lifetime_value ORDER BY customer_no")
table = cur.fetch_arrow_table()
types = {f.name: f.type for f in table.schema}
check(types["customer_no"] == pa.string(), "customer_no is utf8")
check(types["first_purchase"] == pa.date32(), "first_purchase is date32")
check(types["transactions"] == pa.int64(), "transactions is int64")
check(types["value_rank"] == pa.int32(), "value_rank is int32")
check(types["avg_transaction_value"] == pa.decimal128(18, 2), "avg_transaction_value is decimal128(18, 2)")

# 4. ...whose values match PostgreSQL exactly (Decimal, date, int, text).
with psycopg.connect(os.environ["PG_URL"]) as pg:
    cols = [f.name for f in table.schema]
    rows = pg.execute(
        f"SELECT {', '.join(cols)} FROM gold_customer_lifetime_value ORDER BY customer_no"
    ).fetchall()
got = [tuple(r[c] for c in cols) for r in table.to_pylist()]
check(len(got) == len(rows) and len(rows) > 50, f"{len(got)} rows from Flight, {len(rows)} in PostgreSQL")
mismatch = next((i for i, (a, b) in enumerate(zip(got, rows)) if a != tuple(b)), None)
check(mismatch is None, "every row equals PostgreSQL's" + ("" if mismatch is None else f": row {mismatch}: {got[mismatch]} != {rows[mismatch]}"))

# 5. Bound parameters (a prepared statement).
country = got[0][cols.index("country")]
cur.execute("SELECT count(*) AS n FROM gold_customer_lifetime_value WHERE country = ?", parameters=(country,))
n = cur.fetchone()[0]
check(n == sum(1 for r in got if r[cols.index("country")] == country), f"parameterised count for {country}: {n}")
cur.close()
conn.close()

# 6. Rejections reach the client with their message.
try:
    bad = flightsql.connect(uri, db_kwargs={"username": user, "password": password + "x"})
    c = bad.cursor()
    c.execute("SELECT 1 FROM gold_monthly_sales")
    check(False, "a wrong password is refused")
except Exception as e:  # noqa: BLE001 - any refusal counts, its text is checked
    check("nauthenticated" in str(e) or "UNAUTHENTICATED" in str(e), f"a wrong password is refused: {type(e).__name__}")
conn = flightsql.connect(uri, db_kwargs={"username": user, "password": password})
try:
    c = conn.cursor()
    c.execute("DELETE FROM gold_monthly_sales")
    check(False, "DELETE is refused")
except Exception as e:  # noqa: BLE001
    check("read-only SELECT" in str(e), f"DELETE is refused: {str(e).splitlines()[0]}")
conn.close()

# 7. pyarrow.flight: the basic-token handshake returns the bearer JWT.
client = flight.FlightClient(uri)
header = client.authenticate_basic_token(user, password)
check(header[0] == b"authorization" and header[1].startswith(b"Bearer ey"), "pyarrow.flight handshake returns a bearer JWT")

sys.exit(1 if failures else 0)
PY
rc=$?
set -e
exit_api_check "$rc" "$start"
