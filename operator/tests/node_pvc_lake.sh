#!/usr/bin/env bash
# A file:// DataLake on a PersistentVolumeClaim, ingested by real pods on a real
# node (testenv/cluster.sh): the operator (this workspace's debug binary, run on
# the host against the node's control plane) starts the ingest Job with the
# job-runner image it defaults to (--job-runner-image) and the DataLake's
# podOverrides (the PVC mounted at /data in both containers, fsGroup); the
# DataLake must reach Ready with a silver snapshot, and the lake's files must be
# on the volume (local-path-provisioner keeps it as a directory on the host).
#
#   operator/tests/node_pvc_lake.sh [STATE_DIR]
#
# Env: CARGO_TARGET_DIR (the debug build with aurum-operator), AURUM_IMAGES_OCI
# (the folder of the OCI archives from scripts/images.sh, default
# ~/.cache/aurum/images/oci; needs aurum-job-runner-<version>.tar),
# AURUM_NODE_KEEP=1 (leave the node running). Prints "ok"/"FAIL" lines and
# timings; exits 1 on a failure.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cd "$repo"
state=${1:-$HOME/.cache/aurum/node-pvc-lake}
target=${CARGO_TARGET_DIR:-$HOME/.cache/aurum/target}
oci=${AURUM_IMAGES_OCI:-$HOME/.cache/aurum/images/oci}
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
archive=$oci/aurum-job-runner-$version.tar
ns=pvc-lake
mkdir -p "$state"

log() { echo "node_pvc_lake.sh: $*" >&2; }
[ -x "$target/debug/aurum-operator" ] || { log "no $target/debug/aurum-operator: cargo build --workspace --bins"; exit 1; }
[ -f "$archive" ] || { log "no $archive: scripts/images.sh builds it"; exit 1; }

op_pid=
cleanup() {
  local rc=$?
  [ -n "$op_pid" ] && kill "$op_pid" 2>/dev/null || true
  if [ "${AURUM_NODE_KEEP:-}" != 1 ]; then
    testenv/cluster.sh stop "$state/cluster" >/dev/null 2>&1 || true
  fi
  exit "$rc"
}
trap cleanup EXIT

t=$SECONDS
service_env=$(testenv/cluster.sh start "$state/cluster")
eval "$service_env"
export KUBECONFIG
log "node up after $((SECONDS - t)) s"
k() { "$AURUM_KUBE_BIN/kubectl" "$@"; }

t=$SECONDS
testenv/cluster.sh import "$state/cluster" "$archive" >&2
log "job-runner image imported after $((SECONDS - t)) s"

k apply --server-side --force-conflicts -f crds/aurum.dev.yaml >&2
k wait --for=condition=Established crd/datalakes.aurum.dev --timeout=60s >&2
k create namespace "$ns" --dry-run=client -o yaml | k apply -f - >&2

# A slice of the sample data (a ConfigMap holds at most 1 MiB).
src=$state/source
rm -rf "$src" && mkdir -p "$src"
for f in countries customers products; do cp "source/$f.csv" "$src/"; done
head -n 3000 source/transactions.csv >"$src/transactions.csv"
k -n "$ns" create configmap sample --from-file="$src" --dry-run=client -o yaml | k apply --server-side -f - >&2

k -n "$ns" apply -f - >&2 <<'EOF'
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: lake-data}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
EOF

# The operator on the host, as the chart would run it (no spec.image: its default).
image=localhost/aurum-job-runner:$version
AURUM_JOB_RUNNER_IMAGE=$image RUST_LOG=info \
  "$target/debug/aurum-operator" run --namespace "$ns" --leader-election false \
  --listen 127.0.0.1:0 >"$state/operator.log" 2>&1 &
op_pid=$!

t=$SECONDS
k -n "$ns" apply -f - >&2 <<'EOF'
apiVersion: aurum.dev/v1alpha1
kind: DataLake
metadata: {name: lake}
spec:
  lakeUri: file:///data/lake
  source: {configMap: sample}
  imagePullPolicy: Never
  podOverrides:
    metadata:
      labels: {storage: pvc}
    spec:
      securityContext: {fsGroup: 65532}
      volumes:
        - name: lake
          persistentVolumeClaim: {claimName: lake-data}
      initContainers:
        - name: feed
          volumeMounts: [{name: lake, mountPath: /data}]
      containers:
        - name: job-runner
          volumeMounts: [{name: lake, mountPath: /data}]
EOF

phase=
for _ in $(seq 1 180); do
  phase=$(k -n "$ns" get datalake lake -o jsonpath='{.status.phase}' 2>/dev/null || true)
  [ "$phase" = Ready ] || [ "$phase" = Failed ] && break
  sleep 2
done
secs=$((SECONDS - t))
failed=0
if [ "$phase" = Ready ]; then
  echo "ok   - the file:// DataLake on a PVC reached Ready in $secs s"
else
  echo "FAIL - the DataLake is $phase after $secs s"
  failed=1
  k -n "$ns" get datalake lake -o yaml >&2 || true
  k -n "$ns" get pods -o wide >&2 || true
  k -n "$ns" describe pods >&2 || true
  tail -n 40 "$state/operator.log" >&2 || true
fi

job_image=$(k -n "$ns" get jobs -l aurum.dev/datalake=lake -o jsonpath='{.items[0].spec.template.spec.containers[0].image}')
if [ "$job_image" = "$image" ]; then
  echo "ok   - the Job runs the operator's default job-runner image $job_image"
else
  echo "FAIL - the Job runs image '$job_image', not $image"
  failed=1
fi
snapshot=$(k -n "$ns" get datalake lake -o jsonpath='{.status.silverSnapshotId}')
rows=$(k -n "$ns" get datalake lake -o jsonpath='{.status.rowsWritten}')
volume=$(k -n "$ns" get pvc lake-data -o jsonpath='{.spec.volumeName}')
files=$(find "$state/cluster" -path "*${volume}*" -path '*lake*' -type f 2>/dev/null | wc -l)
if [ -n "$snapshot" ] && [ "${files:-0}" -gt 0 ]; then
  echo "ok   - silver snapshot $snapshot ($rows rows); $files lake files on the volume $volume"
else
  echo "FAIL - snapshot '$snapshot', $files files found for volume '$volume'"
  failed=1
fi
exit "$failed"
