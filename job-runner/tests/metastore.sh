#!/usr/bin/env bash
# Silver registered in a real Hive Metastore and read back by name by real
# readers: aurum-job-runner preprocesses a file:// lake and a lake on the test
# HDFS with --metastore; Spark (pyspark, with a Hive 4.0.1 metastore client)
# lists the databases and reads the silver transactions by table name, and its
# count and sum of amounts must equal what the snapshot manifest's Parquet files
# hold as DuckDB reads them, and the run report's row count. A second preprocess
# must repoint every table and partition at the new snapshot only (a table that
# read two snapshots' files would count twice), and a Metastore that is down
# must leave the run succeeded, its silver published, with catalog.status failed.
#
#   job-runner/tests/metastore.sh
#
# Starts what is not given: testenv/metastore.sh (AURUM_METASTORE_URL),
# testenv/hdfs.sh (AURUM_HDFS_URL and HADOOP_CONF_DIR), each in its own folder
# under $AURUM_METASTORE_TEST_STATE (default /var/tmp/aurum/metastore-test), and
# stops what it started. Env: AURUM_JOB_RUNNER_BIN (default: cargo build),
# AURUM_SPARK_VENV (default ~/.cache/aurum/venv-spark: pyspark and duckdb from
# PyPI, installed on first use). Spark talks to the Hive 4 Metastore through
# Hive 4.0.1 client jars (`testenv/metastore.sh spark-client-jars`, Maven, once).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)

STATE=${AURUM_METASTORE_TEST_STATE:-/var/tmp/aurum/metastore-test}
VENV=${AURUM_SPARK_VENV:-$HOME/.cache/aurum/venv-spark}
PYSPARK_VERSION=4.0.1
log() { echo "metastore.sh (test): $*" >&2; }
began=$SECONDS

if ! "$VENV/bin/python" -c 'import pyspark, duckdb' 2>/dev/null; then
  log "installing pyspark==$PYSPARK_VERSION and duckdb into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "pyspark==$PYSPARK_VERSION" duckdb
fi

if [ -z "${AURUM_JOB_RUNNER_BIN:-}" ]; then
  export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/aurum/target}
  cargo build -q --workspace --bins
  AURUM_JOB_RUNNER_BIN=$CARGO_TARGET_DIR/debug/aurum-job-runner
fi
bin=$AURUM_JOB_RUNNER_BIN

mkdir -p "$STATE"
started=()
cleanup() {
  local s
  for s in "${started[@]}"; do "$root/testenv/$s.sh" stop "$STATE/$s" >/dev/null 2>&1 || true; done
}
trap cleanup EXIT
if [ -z "${AURUM_METASTORE_URL:-}" ]; then
  eval "$(testenv/metastore.sh start "$STATE/metastore")"
  started+=(metastore)
fi
if [ -z "${AURUM_HDFS_URL:-}" ]; then
  eval "$(testenv/hdfs.sh start "$STATE/hdfs")"
  started+=(hdfs)
fi
export AURUM_METASTORE_URL AURUM_HDFS_URL HADOOP_CONF_DIR
eval "$(testenv/metastore.sh spark-client-jars)"

work=$(mktemp -d "$STATE/run.XXXXXX")
"$bin" generate --out "$work/source" --transactions 3000 --seed 17 >/dev/null 2>"$work/generate.log"

# A later ingest date whose one new transaction falls in a month of its own
# (February 2030): the second registration of a lake fed with it must add that
# partition to the existing ones, which it repoints. The other tables come
# again unchanged (their rows are then rejected as duplicates).
mkdir -p "$work/source2"
cp "$work/source"/{countries,customers,products}.csv "$work/source2/"
{
  head -n 1 "$work/source/transactions.csv"
  sed -n 2p "$work/source/transactions.csv" | awk -F, 'BEGIN { OFS = "," } { $1 = "990001"; $2 = "2/15/2030"; print }'
} > "$work/source2/transactions.csv"

# run_lake NAME LAKE DATABASE [SOURCE2]: feed, preprocess with --metastore, feed
# SOURCE2 when given, preprocess again
run_lake() {
  local name=$1 lake=$2 db=$3 source2=${4:-} n
  "$bin" feed --source "$work/source" --lake "$lake" --ingest-date 2026-01-05 \
    >"$work/$name.feed.json" 2>"$work/$name.feed.log"
  for n in 1 2; do
    if [ "$n" = 2 ] && [ -n "$source2" ]; then
      "$bin" feed --source "$source2" --lake "$lake" --ingest-date 2026-01-06 \
        >"$work/$name.feed2.json" 2>"$work/$name.feed2.log"
    fi
    if ! "$bin" preprocess --lake "$lake" --metastore "$AURUM_METASTORE_URL" \
        --metastore-database "$db" >"$work/$name.preprocess$n.json" 2>"$work/$name.preprocess$n.log"; then
      tail -n 20 "$work/$name.preprocess$n.log" >&2
      log "FAIL: preprocess $n of the $name lake"
      exit 1
    fi
  done
}

file_lake=$work/lake
hdfs_lake=$AURUM_HDFS_URL/aurum/metastore-test-$(basename "$work")
run_lake file "file://$file_lake" aurum "$work/source2"
run_lake hdfs "$hdfs_lake" aurum_hdfs

# A Metastore that is down (a port where nothing listens, picked free now), on
# a lake of its own
down_lake=$work/lake-down
down_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$bin" feed --source "$work/source" --lake "$down_lake" >/dev/null 2>"$work/down.feed.log"
down_rc=0
"$bin" preprocess --lake "$down_lake" --metastore "thrift://127.0.0.1:$down_port" \
  >"$work/down.json" 2>"$work/down.log" || down_rc=$?

# The NameNode's HTTP address, for DuckDB to read the HDFS lake's files (WebHDFS)
nn_http=$(sed -n 's|.*<name>dfs.namenode.http-address</name><value>\([^<]*\)</value>.*|\1|p' \
  "$HADOOP_CONF_DIR/hdfs-site.xml")

set +e
WORK=$work FILE_LAKE=$file_lake DOWN_LAKE=$down_lake HDFS_LAKE=$hdfs_lake NN_HTTP=$nn_http DOWN_RC=$down_rc \
  HMS=$AURUM_METASTORE_URL HIVE_JARS=$AURUM_SPARK_HIVE_JARS SPARK_LOCAL_IP=127.0.0.1 "$VENV/bin/python" - <<'PY'
import json
import os
import sys
import tempfile
import urllib.request
from decimal import Decimal

import duckdb
from pyspark.sql import SparkSession

work = os.environ["WORK"]
failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what, file=sys.stderr)
    if not ok:
        failures.append(what)


def report(name):
    with open(os.path.join(work, name)) as f:
        return json.load(f)


def webhdfs_reader(lake_url):
    # hdfs://host:port/path -> path; files fetched over WebHDFS into a temp dir
    root = "/" + lake_url.split("://", 1)[1].split("/", 1)[1]
    tmp = tempfile.mkdtemp(dir=work)

    def read(relative):
        url = f"http://{os.environ['NN_HTTP']}/webhdfs/v1{root}/{relative}?op=OPEN&user.name=root"
        local = os.path.join(tmp, relative.replace("/", "__"))
        with urllib.request.urlopen(url, timeout=60) as r, open(local, "wb") as out:
            out.write(r.read())
        return local

    return read


def expected(read):
    """Count and sum of amounts of the current snapshot's transactions, by DuckDB."""
    manifest = json.load(open(read("silver/_snapshot.json")))
    files = [read(f) for f in manifest["tables"]["transactions"]["files"]]
    count, total = duckdb.sql(
        f"SELECT count(*), sum(amount) FROM read_parquet({files!r})"
    ).fetchall()[0]
    return manifest, count, total


spark = (
    SparkSession.builder.master("local[1]")
    .appName("aurum-metastore-test")
    .config("spark.sql.catalogImplementation", "hive")
    .config("spark.hadoop.hive.metastore.uris", os.environ["HMS"])
    # Hive 4 dropped get_table, which Spark's built-in Hive 2.3 client calls:
    # a 4.0.1 client instead
    .config("spark.sql.hive.metastore.version", "4.0.1")
    .config("spark.sql.hive.metastore.jars", "path")
    .config("spark.sql.hive.metastore.jars.path", f"file://{os.environ['HIVE_JARS']}/*.jar")
    .config("spark.driver.host", "127.0.0.1")
    .config("spark.driver.bindAddress", "127.0.0.1")
    .config("spark.ui.enabled", "false")
    .config("spark.ui.showConsoleProgress", "false")
    .config("spark.sql.warehouse.dir", os.path.join(work, "spark-warehouse"))
    .getOrCreate()
)
spark.sparkContext.setLogLevel("ERROR")

databases = {r[0] for r in spark.sql("SHOW DATABASES").collect()}
check({"aurum", "aurum_hdfs"} <= databases, f"Spark lists the aurum databases ({sorted(databases)})")

lakes = [
    ("file", "aurum", lambda rel: os.path.join(os.environ["FILE_LAKE"], rel)),
    ("hdfs", "aurum_hdfs", webhdfs_reader(os.environ["HDFS_LAKE"])),
]
for name, db, read in lakes:
    manifest, count, total = expected(read)
    snapshot = manifest["snapshot_id"]
    second = report(f"{name}.preprocess2.json")
    first = report(f"{name}.preprocess1.json")
    check(second["catalog"]["status"] == "registered", f"{name}: second registration succeeded")
    check(first["catalog"]["status"] == "registered", f"{name}: first registration succeeded")
    check(second["silver_snapshot_id"] == snapshot, f"{name}: the manifest is the second run's snapshot")
    actions = {t["table"]: t["action"] for t in second["catalog"]["tables"]}
    check(set(actions.values()) == {"altered"}, f"{name}: the second run altered every table ({actions})")
    tables = {r.tableName for r in spark.sql(f"SHOW TABLES IN {db}").collect()}
    want = {"countries", "customers", "products", "transactions",
            "countries_rejects", "customers_rejects", "products_rejects", "transactions_rejects"}
    check(want <= tables, f"{name}: Spark lists the silver and rejects tables in {db} ({sorted(tables)})")

    row = spark.sql(f"SELECT count(*) AS n, sum(amount) AS total FROM {db}.transactions").collect()[0]
    reported = [s["rows_written"] for s in second["stages"] if s["table"] == "transactions"][0]
    check(row.n == count == reported,
          f"{name}: Spark counts {row.n} transactions, DuckDB {count}, the report {reported}")
    check(Decimal(row.total) == Decimal(total),
          f"{name}: Spark's sum of amounts {row.total} equals DuckDB's {total}")
    check(count > 0, f"{name}: there are transactions at all")

    props = {r[0]: r[1] for r in spark.sql(f"SHOW TBLPROPERTIES {db}.transactions").collect()}
    check(props.get("aurum.snapshot_id") == snapshot,
          f"{name}: table property aurum.snapshot_id is the current snapshot ({props.get('aurum.snapshot_id')})")
    check(props.get("aurum.run_id") == second["run_id"], f"{name}: aurum.run_id is the registering run")
    locations = [
        r[0] for r in spark.sql(
            f"SELECT input_file_name() FROM {db}.transactions").distinct().collect()
    ]
    stale = [l for l in locations if f"snapshot={snapshot}/" not in l]
    check(locations and not stale, f"{name}: Spark read only files of snapshot {snapshot} ({len(locations)} files; others: {stale[:3]})")
    partitions = {r[0] for r in spark.sql(f"SHOW PARTITIONS {db}.transactions").collect()}
    # A month may have several files (one per query partition), all in its folder.
    months = {"/".join(f.split("/")[2:4]) for f in manifest["tables"]["transactions"]["files"]}
    check(partitions == months,
          f"{name}: one partition per month ({len(partitions)} partitions, {len(months)} months)")
    parts = [[t.get("partitions", 0) for t in r["catalog"]["tables"] if t["table"] == "transactions"][0]
             for r in (first, second)]
    if name == "file":
        check(parts[1] == parts[0] + 1 and "year=2030/month=2" in partitions,
              f"{name}: the second registration added the new month year=2030/month=2 ({parts})")
    else:
        check(parts[1] == parts[0], f"{name}: the same months both times ({parts})")

    cols = [(f.name, f.dataType.simpleString()) for f in spark.table(f"{db}.transactions").schema.fields]
    check(cols[:7] == [("transaction_no", "string"), ("date", "date"), ("product_no", "string"),
                       ("customer_no", "string"), ("quantity", "int"), ("price", "decimal(12,2)"),
                       ("amount", "decimal(18,2)")] and [c for c, _ in cols[7:]] == ["year", "month"],
          f"{name}: columns and types as the Parquet schema ({cols})")

    rejects = spark.sql(f"SELECT reason, count(*) FROM {db}.transactions_rejects GROUP BY reason").collect()
    by_reason = {r[0]: r[1] for r in rejects}
    stage = [s for s in second["stages"] if s["table"] == "transactions"][0]
    check(by_reason == stage["rejects"], f"{name}: rejects by reason match the report ({by_reason})")
    countries = spark.table(f"{db}.countries").count()
    check(countries == manifest["tables"]["countries"]["rows"], f"{name}: countries count ({countries})")

down = report("down.json")
check(os.environ["DOWN_RC"] == "0" and down["status"] == "succeeded",
      f"Metastore down: the run still succeeds (exit {os.environ['DOWN_RC']}, status {down['status']})")
check(down.get("catalog", {}).get("status") == "failed" and "refused" in (down["catalog"].get("error") or "").lower(),
      f"Metastore down: catalog.status failed with the reason ({down.get('catalog')})")
manifest = json.load(open(os.path.join(os.environ["DOWN_LAKE"], "silver/_snapshot.json")))
check(manifest["snapshot_id"] == down["silver_snapshot_id"],
      "Metastore down: the silver snapshot is published all the same")
spark.stop()

if failures:
    print(f"{len(failures)} check(s) failed", file=sys.stderr)
    sys.exit(1)
PY
rc=$?
set -e
if [ "$rc" -ne 0 ]; then
  log "FAIL (logs and reports in $work)"
  exit 1
fi
rm -rf "$work"
log "PASS: Spark and DuckDB read Aurum's silver through the Hive Metastore, file:// and HDFS ($((SECONDS - began)) s)"
