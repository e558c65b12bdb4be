#!/usr/bin/env bash
# The project's test command: `make test` runs this, and so does .ci/run.
# It installs and starts every real service the tests need, then runs the
# workspace tests, and stops the services again.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/aurum/target}
# The toolchain rust-toolchain.toml pins, without a download.
toolchain_env=$(scripts/toolchain.sh)
eval "$toolchain_env"
if [ -n "${RUSTUP_TOOLCHAIN:-}" ]; then export RUSTUP_TOOLCHAIN; fi
state=${AURUM_TEST_STATE:-$HOME/.cache/aurum/test}
mkdir -p "$state"

cleanup() {
  testenv/ballista.sh stop "$state/ballista" >/dev/null 2>&1 || true
  testenv/metastore.sh stop "$state/metastore" >/dev/null 2>&1 || true
  testenv/kube.sh stop "$state/kube" >/dev/null 2>&1 || true
  testenv/hdfs.sh stop "$state/hdfs" >/dev/null 2>&1 || true
  testenv/postgres.sh stop "$state/postgres" || true
}
trap cleanup EXIT

started=$SECONDS
# Each service's settings go through a variable first: `eval "$(cmd)"` would go on
# silently when cmd fails, and every test would then fail for want of the service.
service_env=$(testenv/postgres.sh start "$state/postgres")
eval "$service_env"
export DATABASE_URL AURUM_PG_TLS_CA AURUM_PG_TLS_OTHER_CA AURUM_PG_TLS_ONLY_URL
echo "test.sh: PostgreSQL ready after $((SECONDS - started)) s" >&2

service_env=$(testenv/hdfs.sh start "$state/hdfs")
eval "$service_env"
export HADOOP_CONF_DIR AURUM_HDFS_URL
export AURUM_HDFS_DIR=$state/hdfs
echo "test.sh: HDFS ready after $((SECONDS - started)) s" >&2

# The Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager),
# built once from Go modules into ~/.cache/aurum/kube.
service_env=$(testenv/kube.sh start "$state/kube")
eval "$service_env"
export KUBECONFIG AURUM_KUBE_BIN
echo "test.sh: control plane ready after $((SECONDS - started)) s" >&2

# Chromium for the dashboard's end-to-end test (Debian's package, installed when absent).
service_env=$(testenv/chromium.sh)
eval "$service_env"
export AURUM_CHROMIUM_BIN
echo "test.sh: Chromium ready after $((SECONDS - started)) s" >&2

# A Hive Metastore for the operator's spec.catalog test (operator/tests/kube_catalog.rs);
# stopped after the workspace tests.
service_env=$(testenv/metastore.sh start "$state/metastore")
eval "$service_env"
export AURUM_METASTORE_URL
echo "test.sh: Hive Metastore ready after $((SECONDS - started)) s" >&2

cargo build --workspace --bins
# Tests of other crates run the real job-runner to load gold tables.
export AURUM_JOB_RUNNER_BIN=$CARGO_TARGET_DIR/debug/aurum-job-runner
export AURUM_API_BIN=$CARGO_TARGET_DIR/debug/aurum-api
# A Ballista scheduler and two executors of the job-runner just built, on
# loopback (job-runner/tests/ballista.rs; they reach the test HDFS too).
service_env=$(testenv/ballista.sh start "$state/ballista")
eval "$service_env"
export AURUM_BALLISTA_URL
export AURUM_BALLISTA_DIR=$state/ballista
echo "test.sh: Ballista ready after $((SECONDS - started)) s" >&2
# Where the dashboard's browser test saves its screenshots.
export AURUM_TEST_ARTIFACTS=${AURUM_TEST_ARTIFACTS:-$state/artifacts}

status=0
cargo test --workspace --no-fail-fast || status=$?
# job-runner/tests/metastore.sh below starts its own (a fresh catalog) only
# when AURUM_METASTORE_URL is unset.
testenv/metastore.sh stop "$state/metastore" >/dev/null 2>&1 || true
unset AURUM_METASTORE_URL

# The API against its own OpenAPI document, with schemathesis from PyPI.
api/tests/schemathesis.sh || status=$?

# Python's ADBC Flight SQL driver and pyarrow (from PyPI) against the real API.
api/tests/flight_python.sh || status=$?

# Apache Arrow's Flight SQL JDBC driver (DBeaver's; from Maven Central) against the real API.
api/tests/flight_jdbc.sh || status=$?

# Silver registered in a real Hive Metastore (4.0.1, from Maven Central; its own,
# stopped at the end) and read by name by Spark (pyspark) and DuckDB from PyPI,
# for a file:// lake and a lake on the HDFS above.
AURUM_METASTORE_TEST_STATE=$state/metastore-test job-runner/tests/metastore.sh || status=$?

# The Helm chart on the same control plane (helm built once into
# ~/.cache/aurum/helm): lint, schema, server-side apply, RBAC, the real
# operator, API and dashboard run with the chart's environment, the monitoring
# manifests and alert rules.
service_env=$(testenv/helm.sh)
eval "$service_env"
export AURUM_HELM_BIN
# promtool and the Prometheus operator's CRDs for the chart's monitoring checks
# (built and fetched once into ~/.cache/aurum/promtool).
service_env=$(testenv/promtool.sh)
eval "$service_env"
export AURUM_PROMTOOL_BIN AURUM_PROMETHEUS_CRDS
AURUM_OPERATOR_BIN=$CARGO_TARGET_DIR/debug/aurum-operator \
AURUM_DASHBOARD_BIN=$CARGO_TARGET_DIR/debug/aurum-dashboard \
  charts/tests/validate.sh || status=$?

# An upgrade from the chart of an earlier commit: CRDs first, then the release,
# server-side; the current operator takes over the existing objects.
AURUM_OPERATOR_BIN=$CARGO_TARGET_DIR/debug/aurum-operator charts/tests/upgrade.sh || status=$?

# The ingress controller (Traefik, built from its Go module) routes the chart's
# Ingresses, TLS and gRPC, on the control plane above.
testenv/ingress-check.sh "$state/ingress-check" || status=$?

# The Helm quickstart end to end as real pods on a real node (containerd, runc,
# CNI, kubelet, kube-proxy, CoreDNS; its own control plane): the images built
# here, helm install, Ready DataLake and Datamarts, gold against the reference,
# the API and the dashboard through the ingress, the failure paths, upgrade and
# uninstall. The kube.sh control plane is not needed any more.
testenv/kube.sh stop "$state/kube" >/dev/null 2>&1 || true
AURUM_QUICKSTART_STATE=$state/quickstart charts/tests/quickstart.sh || status=$?

# A file:// DataLake on a PersistentVolumeClaim, run by the operator's default
# job-runner image (the one the quickstart just built) with podOverrides.
operator/tests/node_pvc_lake.sh "$state/node-pvc-lake" || status=$?

# The chart's Ballista cluster on the real node: a scheduler and executors from
# the job-runner image, DataLake and Datamart runs sent there (spec.engine), gold
# equal to the reference and to in-process runs, an executor deleted mid-run,
# `kubectl scale`.
AURUM_BALLISTA_K8S_STATE=$state/ballista-k8s charts/tests/ballista.sh || status=$?

exit "$status"
