#!/usr/bin/env bash
# `make demo`: build Aurum, start a throwaway PostgreSQL under .aurum/, and run
# the whole pipeline on source/ with the lake under .aurum/lake.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/aurum/target}
state=$PWD/.aurum
mkdir -p "$state"

echo "==> building (release)"
cargo build --release -p aurum-job-runner
runner=$CARGO_TARGET_DIR/release/aurum-job-runner

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

cat <<MSG

Where to look:
  lake (raw, silver, rejects)   $state/lake
  run report                    $state/last-run.json
  gold tables                   psql "$DATABASE_URL" -c 'SELECT * FROM gold_top_products WHERE scope = '"'"'ALL'"'"''
  stop PostgreSQL               testenv/postgres.sh stop $state/postgres
MSG
