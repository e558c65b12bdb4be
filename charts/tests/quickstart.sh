#!/usr/bin/env bash
# The Helm quickstart end to end, as real pods on a real node: what a user does
# first, proved on this machine.
#
#   1. a real node (testenv/cluster.sh: control plane, containerd, runc, CNI,
#      kubelet, kube-proxy, CoreDNS) and a real ingress controller
#      (testenv/ingress.sh) serving Ingresses on a loopback port;
#   2. the four Aurum images and the quickstart's PostgreSQL and Hadoop images
#      built as OCI archives (scripts/images.sh) and imported into containerd;
#   3. `helm install -f values-quickstart.yaml` with only the image overrides this
#      machine needs; the DataLake and the four Datamarts reach Ready with their
#      run reports in status, and gold equals the reference for source/;
#   4. through the ingress: POST /login and every /gold/* endpoint with a JWT, and
#      the dashboard in headless Chromium (log in, overview, CSV download,
#      screenshot kept under AURUM_TEST_ARTIFACTS);
#   5. the failure paths: a Datamart with a bad database URL goes Degraded with
#      the job-runner's message and recovers once the URL is fixed; a job-runner
#      killed at its memory limit is reported as OOMKilled; the operator pod
#      deleted mid-run is replaced by one that adopts the running Job (no second
#      Job, one gold run); `helm upgrade` keeps the generated secrets and the
#      data; `helm uninstall` leaves no Jobs or pods behind;
#   6. figures: node start, image build, helm install to all Ready, a new
#      Datamart to its gold table, the pods' memory.
#
# The two Rust tests it runs (--ignored in a plain cargo test) are built with the
# workspace's features, as `cargo test --workspace` in make test built them.
# Env: CARGO_TARGET_DIR (the workspace's debug build, packaged into the images:
# AURUM_IMAGE_PROFILE, default debug), AURUM_HELM_BIN (else testenv/helm.sh),
# AURUM_TEST_ARTIFACTS, AURUM_QUICKSTART_STATE (default ~/.cache/aurum/quickstart).
# Prints each check and ends with "N passed, N failed"; exits 1 if any failed.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cd "$repo"
state=${AURUM_QUICKSTART_STATE:-$HOME/.cache/aurum/quickstart}
artifacts=${AURUM_TEST_ARTIFACTS:-$state/artifacts}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/aurum/target}
export AURUM_IMAGE_PROFILE=${AURUM_IMAGE_PROFILE:-debug}
ns=aurum
release=aurum
mkdir -p "$state" "$artifacts"

me=quickstart.sh
# check, figure, wait_for, node_start, helm_bin, images_import, helm_install, finish
# shellcheck source=charts/tests/node-lib.sh
. "$here/node-lib.sh"

cleanup() {
  local rc=$?
  [ -n "${pf_pid:-}" ] && kill "$pf_pid" 2>/dev/null || true
  if [ "${AURUM_QUICKSTART_KEEP:-}" != 1 ]; then
    testenv/ingress.sh stop "$state/ingress" >/dev/null 2>&1 || true
    testenv/cluster.sh stop "$state/cluster" >/dev/null 2>&1 || true
  fi
  exit "$rc"
}
trap cleanup EXIT

# --- 1. the node and the ingress controller -----------------------------------
node_start

# What any node must do (pods, probes, DNS, volumes, OOM kills, exec, logs).
check "the node's smoke test (testenv/cluster-smoke.sh)" testenv/cluster-smoke.sh "$state/cluster"

t=$SECONDS
service_env=$(testenv/ingress.sh start "$state/ingress")
eval "$service_env"
figure "ingress controller start (s)" $((SECONDS - t))
ingress_hostport=${AURUM_INGRESS_URL#http://}

helm_bin

# --- 2. images -----------------------------------------------------------------
images_import

# --- 3. helm install -----------------------------------------------------------
# Only image overrides: the Aurum images under localhost/, and the quickstart's
# PostgreSQL and Hadoop built here from Debian's packages and Maven Central.
overrides=(
  --set image.registry=localhost
  --set postgresql.image.repository=localhost/aurum-test-postgres
  --set postgresql.image.tag=17
  --set hdfs.image.repository=localhost/aurum-test-hadoop
  --set hdfs.image.tag=3.4.2
)
install_args=(charts/aurum -n "$ns" -f charts/aurum/values-quickstart.yaml "${overrides[@]}")

t=$SECONDS
helm_install "helm install of the quickstart" "${install_args[@]}"
figure "helm install --wait (s)" $((SECONDS - t))

ready() { # ready KIND NAME: phase Ready (its last run succeeded and none is due)
  [ "$(k get "$1" "$2" -o jsonpath='{.status.phase}')" = Ready ]
}
datamarts=(sales-country-year top-products monthly-sales customer-lifetime-value)
check "DataLake lake Ready" wait_for 900 "DataLake lake Ready" ready datalake lake
for d in "${datamarts[@]}"; do
  check "Datamart $d Ready" wait_for 600 "Datamart $d Ready" ready datamart "$d"
done
figure "helm install to all Ready (s)" $((SECONDS - t))
k get datalakes,datamarts,jobs,pods -o wide >&2 || true

silver=$(k get datalake lake -o jsonpath='{.status.silverSnapshotId}' 2>/dev/null || true)
check "the DataLake's status names its silver snapshot" test -n "$silver"
for d in "${datamarts[@]}"; do
  rows=$(k get datamart "$d" -o jsonpath='{.status.rowsWritten}' 2>/dev/null || true)
  check "Datamart $d's status reports its run ($rows rows)" test -n "$rows"
done

# Every pod of the release, the job-runner's included, was admitted by a
# namespace that enforces Pod Security "restricted" (made so before the install).
runner_pods() { [ -n "$(k get pods -l app.kubernetes.io/managed-by=aurum-operator -o name)" ]; }
check "job-runner pods ran in a namespace enforcing Pod Security restricted" runner_pods

# --- gold equals the reference -------------------------------------------------
pg_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
k port-forward svc/aurum-postgresql "$pg_port:5432" >"$state/port-forward.log" 2>&1 &
pf_pid=$!
pg_password=$(k get secret aurum-postgresql -o jsonpath='{.data.password}' | base64 -d)
pg_user=$("$helm" get values "$release" -n "$ns" --all -o json | python3 -c 'import json,sys; v=json.load(sys.stdin)["postgresql"]; print(v["username"], v["database"])')
read -r pg_name pg_db <<<"$pg_user"
export AURUM_QUICKSTART_DATABASE_URL="postgres://$pg_name:$pg_password@127.0.0.1:$pg_port/$pg_db"
wait_for 30 "the port-forward to PostgreSQL" psql "$AURUM_QUICKSTART_DATABASE_URL" -c 'SELECT 1' || true
check "gold equals the reference for source/" \
  cargo test -q --workspace --test quickstart -- --ignored the_quickstart_gold

# --- 4. through the ingress -----------------------------------------------------
api() { # api METHOD PATH [curl args...]: through the ingress, by the API's host name
  local method=$1 path=$2
  shift 2
  curl -sS -X "$method" -H 'Host: api.aurum.local' "$AURUM_INGRESS_URL$path" "$@"
}
admin_password=$(k get secret aurum-api-admin -o jsonpath='{.data.password}' | base64 -d)
token=$(api POST /login -H 'Content-Type: application/json' \
  -d "{\"username\":\"admin\",\"password\":\"$admin_password\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])' || true)
check "POST /login through the ingress returns a JWT" test -n "$token"
gold_total() { # gold_total PATH TABLE: the endpoint's total equals the table's row count
  local total rows
  total=$(api GET "$1?limit=0" -H "Authorization: Bearer $token" | python3 -c 'import json,sys; print(json.load(sys.stdin)["total"])')
  rows=$(psql -Atq "$AURUM_QUICKSTART_DATABASE_URL" -c "SELECT count(*) FROM $2 ${3:-}")
  [ -n "$total" ] && [ "$total" = "$rows" ] || { log "$1: total $total, table $rows"; return 1; }
}
check "GET /gold/sales-country-year through the ingress" gold_total /gold/sales-country-year gold_sales_country_year
check "GET /gold/top-products through the ingress" gold_total /gold/top-products gold_top_products "WHERE scope = 'ALL'"
check "GET /gold/monthly-sales through the ingress" gold_total /gold/monthly-sales gold_monthly_sales
check "GET /gold/customer-lifetime through the ingress" gold_total /gold/customer-lifetime gold_customer_lifetime_value
check "GET /gold/runs through the ingress (admin)" \
  test "$(api GET /gold/runs -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token")" = 200
check "a gold endpoint without a JWT is refused (401)" \
  test "$(api GET /gold/top-products -o /dev/null -w '%{http_code}')" = 401
check "a wrong password is refused (401)" \
  test "$(api POST /login -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' -d '{"username":"admin","password":"wrong"}')" = 401

# Least privilege: the API logs in as the chart's read-only role, which the
# job-runner granted SELECT on the gold tables and nothing else.
reader_password=$(k get secret aurum-postgresql -o jsonpath='{.data.reader-password}' | base64 -d)
reader_url="postgres://aurum_reader:$reader_password@127.0.0.1:$pg_port/$pg_db"
api_roles() {
  psql -Atq "$AURUM_QUICKSTART_DATABASE_URL" \
    -c "SELECT string_agg(DISTINCT usename, ',') FROM pg_stat_activity WHERE application_name = 'aurum-api'"
}
check "the API connects to PostgreSQL as aurum_reader only" test "$(api_roles)" = aurum_reader
refused() { ! psql -Atq -v ON_ERROR_STOP=1 "$reader_url" -c "$1" >/dev/null 2>&1; }
reader_is_read_only() {
  psql -Atq -v ON_ERROR_STOP=1 "$reader_url" -c 'SELECT count(*) FROM gold_runs' >/dev/null &&
    refused "DELETE FROM gold_top_products" &&
    refused "INSERT INTO gold_runs (datamart, run_id, started_at, finished_at, rows_written, status) VALUES ('x', 'x', now(), now(), 0, 'failed')" &&
    refused "CREATE TABLE reader_probe (x int)" &&
    refused "SELECT count(*) FROM aurum_schema_migrations"
}
check "aurum_reader reads gold but cannot write it or read other tables" reader_is_read_only

export AURUM_QUICKSTART_DASHBOARD_URL=http://dashboard.aurum.local
export AURUM_QUICKSTART_RESOLVE="dashboard.aurum.local:80 $ingress_hostport"
export AURUM_QUICKSTART_USER=admin AURUM_QUICKSTART_PASSWORD=$admin_password
export AURUM_TEST_ARTIFACTS=$artifacts
check "the dashboard through the ingress in Chromium (login, overview, CSV)" \
  cargo test -q --workspace --test quickstart -- --ignored --nocapture the_quickstart_dashboard

# --- serving while PostgreSQL is away -------------------------------------------
# Readiness means "can serve": with PostgreSQL stopped, the API pods stay Ready
# (and the dashboard with them) and serve the snapshot they hold; /readyz says
# the database is unreachable.
deployment_ready() { [ "$(k get deployment "$1" -o jsonpath='{.status.readyReplicas}')" -ge 1 ]; }
readyz_says() { [[ "$(api GET /readyz)" == *"\"database\":\"$1\""* ]]; }
k scale statefulset aurum-postgresql --replicas=0 >/dev/null
k wait --for=delete pod/aurum-postgresql-0 --timeout=120s >/dev/null 2>&1 || true
check "without PostgreSQL, /readyz through the ingress says the database is unreachable" \
  wait_for 60 "/readyz: database unreachable" readyz_says unreachable
# Longer than the API's readiness probe takes to fail (3 x 5 s).
sleep 25
check "without PostgreSQL, the API pods stay Ready" deployment_ready aurum-api
check "without PostgreSQL, the dashboard pods stay Ready" deployment_ready aurum-dashboard
check "without PostgreSQL, the API serves its last snapshot" \
  test "$(api GET /gold/top-products -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token")" = 200
k scale statefulset aurum-postgresql --replicas=1 >/dev/null
k rollout status statefulset aurum-postgresql --timeout=180s >/dev/null 2>&1 || true
kill "$pf_pid" 2>/dev/null || true
k port-forward svc/aurum-postgresql "$pg_port:5432" >"$state/port-forward.log" 2>&1 &
pf_pid=$!
wait_for 60 "PostgreSQL back" psql "$AURUM_QUICKSTART_DATABASE_URL" -c 'SELECT 1' || true
check "PostgreSQL back: /readyz says the database is reachable" \
  wait_for 60 "/readyz: database reachable" readyz_says reachable

# --- 5. failure paths ----------------------------------------------------------
condition() { # condition KIND NAME TYPE: "status|reason|message"
  k get "$1" "$2" -o jsonpath="{.status.conditions[?(@.type==\"$3\")].status}|{.status.conditions[?(@.type==\"$3\")].reason}|{.status.conditions[?(@.type==\"$3\")].message}"
}
degraded_with() { # degraded_with KIND NAME TEXT: Degraded=True and its message holds TEXT
  local c
  c=$(condition "$1" "$2" Degraded)
  [[ $c == True\|* ]] && [[ $c == *"$3"* ]]
}
runner_image=$(k get datamart monthly-sales -o jsonpath='{.spec.image}')
datamart_manifest() { # datamart_manifest NAME KIND SCHEMA SECRET [MEMORY]
  cat <<EOF
apiVersion: aurum.dev/v1alpha1
kind: Datamart
metadata:
  name: $1
  namespace: $ns
spec:
  dataLakeRef: {name: lake}
  datamart: $2
  database:
    secretRef: {name: $4, key: url}
    schema: $3
  maxRetries: 0
  image: $runner_image
  imagePullPolicy: IfNotPresent
  serviceAccountName: aurum-job-runner
  resources:
    requests: {cpu: 100m, memory: ${5:-256Mi}}
    limits: {memory: ${5:-1536Mi}}
EOF
}
good_url=$(k get secret aurum-database -o jsonpath='{.data.url}' | base64 -d)
bad_url=$(python3 -c 'import sys, urllib.parse as u; p=u.urlsplit(sys.argv[1]); print(p._replace(netloc=f"{p.username}:not-the-password@{p.hostname}:{p.port}").geturl())' "$good_url")

# A bad database URL: Degraded with the job-runner's message, then fixed.
k create secret generic e2e-db --from-literal=url="$bad_url" --dry-run=client -o yaml | k apply -f - >/dev/null
datamart_manifest e2e-bad-url monthly-sales e2e_bad_url e2e-db | k apply -f - >/dev/null
check "a bad database URL: Degraded with the job-runner's message" \
  wait_for 300 "e2e-bad-url Degraded" degraded_with datamart e2e-bad-url "password authentication failed"
log "Degraded: $(condition datamart e2e-bad-url Degraded)"
k create secret generic e2e-db --from-literal=url="$good_url" --dry-run=client -o yaml | k apply -f - >/dev/null
k annotate datamart e2e-bad-url aurum.dev/run-now="$(date +%s)" --overwrite >/dev/null
check "the fixed URL: the Datamart recovers to Ready" wait_for 300 "e2e-bad-url Ready" ready datamart e2e-bad-url
check "... and Degraded is cleared" bash -c "[[ \"\$(\"$kubectl\" -n $ns get datamart e2e-bad-url -o jsonpath='{.status.conditions[?(@.type==\"Degraded\")].status}')\" == False ]]"

# A new Datamart to its gold table (a figure): the time from apply to Ready.
t=$SECONDS
datamart_manifest e2e-new top-products e2e_new aurum-database | k apply -f - >/dev/null
check "a new Datamart reaches Ready" wait_for 300 "e2e-new Ready" ready datamart e2e-new
figure "new Datamart apply to gold table (s)" $((SECONDS - t))

# A job-runner killed at its memory limit: an ingest of the sample data into a
# lake of its own (feed and preprocess of the 50,000 sample lines stream in
# under 24Mi, but not in 10Mi).
k get datalake lake -o json | python3 -c '
import json, sys
lake = json.load(sys.stdin)
spec = lake["spec"]
spec["lakeUri"] = spec["lakeUri"].rstrip("/") + "-e2e-oom"
spec["maxRetries"] = 0
spec["resources"] = {"requests": {"cpu": "100m", "memory": "10Mi"}, "limits": {"memory": "10Mi"}}
print(json.dumps({"apiVersion": lake["apiVersion"], "kind": "DataLake",
                  "metadata": {"name": "e2e-oom", "namespace": lake["metadata"]["namespace"]},
                  "spec": spec}))' | k apply -f - >/dev/null
check "a job-runner killed at its memory limit is reported as OOMKilled" \
  wait_for 300 "e2e-oom OOMKilled" degraded_with datalake e2e-oom OOMKilled
log "OOM: $(condition datalake e2e-oom Degraded)"

# The operator pod deleted mid-run: its successor adopts the running Job.
jobs_of() { k get jobs -l aurum.dev/datamart="$1" -o name | wc -l; }
runs_of() { psql -Atq "$AURUM_QUICKSTART_DATABASE_URL" -c "SELECT count(*) FROM gold_runs WHERE datamart = '$1'"; }
jobs_before=$(jobs_of top-products)
runs_before=$(runs_of top-products)
k annotate datamart top-products aurum.dev/run-now="e2e-$(date +%s)" --overwrite >/dev/null
active_job() { [ -n "$(k get datamart top-products -o jsonpath='{.status.activeRun.jobName}')" ]; }
if wait_for 120 "top-products' run to start" active_job; then
  k delete pod -l app.kubernetes.io/component=operator --wait=false >/dev/null
  pass "the operator pod deleted while top-products runs"
else
  fail "top-products' run did not start"
fi
finished() { ! active_job && ready datamart top-products; }
check "the new operator pod finishes the run" wait_for 300 "top-products finished" finished
check "one Job for the run, no duplicate" test "$(jobs_of top-products)" -le "$((jobs_before + 1))"
check "one gold run recorded for it" test "$(runs_of top-products)" = "$((runs_before + 1))"

# helm upgrade keeps the generated secrets and the data.
secrets_digest() {
  k get secret aurum-jwt aurum-api-admin aurum-postgresql aurum-database -o json |
    python3 -c 'import json,sys,hashlib; print(hashlib.sha256(json.dumps([s["data"] for s in json.load(sys.stdin)["items"]], sort_keys=True).encode()).hexdigest())'
}
before=$(secrets_digest)
rows_before=$(psql -Atq "$AURUM_QUICKSTART_DATABASE_URL" -c 'SELECT count(*) FROM gold_customer_lifetime_value')
check "helm upgrade" "$helm" upgrade "$release" "${install_args[@]}" --wait --timeout 10m
check "helm upgrade keeps the generated secrets" test "$(secrets_digest)" = "$before"
kill "$pf_pid" 2>/dev/null || true
k port-forward svc/aurum-postgresql "$pg_port:5432" >"$state/port-forward.log" 2>&1 &
pf_pid=$!
wait_for 60 "PostgreSQL after the upgrade" psql "$AURUM_QUICKSTART_DATABASE_URL" -c 'SELECT 1' || true
check "helm upgrade keeps the gold data" \
  test "$(psql -Atq "$AURUM_QUICKSTART_DATABASE_URL" -c 'SELECT count(*) FROM gold_customer_lifetime_value')" = "$rows_before"
check "the same admin password logs in after the upgrade" \
  test "$(api POST /login -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' -d "{\"username\":\"admin\",\"password\":\"$admin_password\"}")" = 200

# --- 6. the pods' memory, from the kubelet's summary ---------------------------
node=$("$kubectl" get nodes -o jsonpath='{.items[0].metadata.name}')
"$kubectl" get --raw "/api/v1/nodes/$node/proxy/stats/summary" 2>/dev/null | python3 -c '
import json, sys
for p in json.load(sys.stdin).get("pods", []):
    if p["podRef"]["namespace"] != "aurum":
        continue
    ws = sum(c.get("memory", {}).get("workingSetBytes", 0) for c in p.get("containers", []))
    name = p["podRef"]["name"]
    print("quickstart.sh: memory %s: %.0f MiB working set" % (name, ws / 2**20), file=sys.stderr)
' || log "no kubelet stats summary"

# --- helm uninstall leaves no Jobs or pods ------------------------------------
kill "$pf_pid" 2>/dev/null || true
pf_pid=
k delete datamart e2e-bad-url e2e-new --wait=false >/dev/null 2>&1 || true
k delete datalake e2e-oom --wait=false >/dev/null 2>&1 || true
check "helm uninstall" "$helm" uninstall "$release" -n "$ns" --wait --timeout 5m
nothing_left() { [ -z "$(k get jobs,pods -o name 2>/dev/null)" ]; }
check "no Jobs or pods left after helm uninstall" wait_for 180 "an empty namespace" nothing_left
k get all >&2 || true

finish
