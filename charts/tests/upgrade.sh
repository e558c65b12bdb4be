#!/usr/bin/env bash
# Upgrades a release of the previous chart to the current one on a real
# kube-apiserver, the way docs/upgrades.md tells an operator of Aurum to:
#
#   1. the previous chart (git revision AURUM_UPGRADE_FROM, default 9d32a2b, the
#      last landed session) and its CRDs, applied server-side with the quickstart
#      values; its DataLake and Datamarts get the status that an operator of that
#      version leaves behind (Ready, a silver snapshot, a finished run each);
#   2. the current CRDs, applied server-side first (Helm never upgrades crds/),
#      then the current chart rendered with the same values and applied
#      server-side over the previous release (same field manager, as helm does);
#   3. the stored DataLake and Datamarts still pass the current CRDs' schema and
#      CEL rules (each sent again as a new object, server-side dry run);
#   4. with AURUM_OPERATOR_BIN (the current aurum-operator), the real operator,
#      configured from the upgraded Deployment and authenticated as its
#      ServiceAccount, takes over the existing objects: it reads their old
#      status (the finished runs stay in the history), starts a run-now Job
#      for the DataLake and for a Datamart, and none of its requests is
#      forbidden, none of the objects fails to deserialize.
#
# Uses KUBECONFIG and AURUM_KUBE_BIN (testenv/kube.sh) and AURUM_HELM_BIN
# (testenv/helm.sh); without them it starts and builds its own. Everything it
# creates is deleted at the end. Prints each check and `upgrade: N passed, N
# failed`; exits 1 if any failed.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
from=${AURUM_UPGRADE_FROM:-9d32a2b}

own_kube=
if [ -z "${AURUM_KUBE_BIN:-}" ] || [ -z "${KUBECONFIG:-}" ]; then
  own_kube=${AURUM_UPGRADE_KUBE_DIR:-$HOME/.cache/aurum/kube-upgrade}
  kube_env=$("$repo/testenv/kube.sh" start "$own_kube")
  eval "$kube_env"
fi
if [ -z "${AURUM_HELM_BIN:-}" ]; then
  helm_env=$("$repo/testenv/helm.sh")
  eval "$helm_env"
fi
export KUBECONFIG
helm=$AURUM_HELM_BIN/helm
kubectl=$AURUM_KUBE_BIN/kubectl

started=$SECONDS
work=$(mktemp -d)
ns=aurum-upgrade-$$-$RANDOM
passed=0
failed=0
operator_pid=
created_crds=0

pass() { passed=$((passed + 1)); echo "ok   $*"; }
fail() { failed=$((failed + 1)); echo "FAIL $*"; }
check() { # check DESCRIPTION COMMAND...: passes when the command succeeds
  local what=$1; shift
  if "$@" > "$work/out" 2>&1; then pass "$what"; else fail "$what"; sed 's/^/     /' "$work/out" | tail -20; fi
}
waits() { # waits DESCRIPTION SECONDS COMMAND...: polls until the command succeeds
  local what=$1 secs=$2 _; shift 2
  for _ in $(seq 1 $((secs * 2))); do
    if "$@" > "$work/out" 2>&1; then pass "$what"; return; fi
    sleep 0.5
  done
  fail "$what"; sed 's/^/     /' "$work/out" | tail -5
}
section() { echo; echo "== $* ($((SECONDS - started)) s)"; }
k() { "$kubectl" -n "$ns" "$@"; }

cleanup() {
  set +e
  [ -n "$operator_pid" ] && kill "$operator_pid" 2>/dev/null
  # Nothing runs the finalizers or the pvc-protection controller any more.
  for o in $(k get datamarts,pvc -o name 2>/dev/null); do
    k patch "$o" --type merge -p '{"metadata":{"finalizers":null}}' >/dev/null 2>&1
  done
  "$kubectl" delete ns "$ns" --ignore-not-found --wait=false >/dev/null 2>&1
  if [ "$created_crds" = 1 ]; then
    "$kubectl" delete crd datalakes.aurum.dev datamarts.aurum.dev --ignore-not-found --wait=false >/dev/null 2>&1
  fi
  rm -rf "$work"
  [ -n "$own_kube" ] && "$repo/testenv/kube.sh" stop "$own_kube"
}
trap cleanup EXIT

# ---------------------------------------------------------------------------
section "the previous chart ($from) and the current one"
mkdir -p "$work/previous"
if ! git -C "$repo" cat-file -e "$from^{commit}" 2>/dev/null; then
  fail "the earlier commit $from is not in this clone (a shallow clone? fetch its history)"
  echo "upgrade: $passed passed, $failed failed"
  exit 1
fi
git -C "$repo" archive "$from" charts/aurum | tar -x -C "$work/previous"
prev=$work/previous/charts/aurum
cur=$repo/charts/aurum
echo "     previous: $(git -C "$repo" log -1 --format='%h %cs %s' "$from" | cut -c1-100)"
echo "     chart versions: $(awk '/^version:/ {print $2}' "$prev/Chart.yaml") -> $(awk '/^version:/ {print $2}' "$cur/Chart.yaml")"
values=(-f "$cur/values-quickstart.yaml")
check "the previous chart renders (quickstart values)" \
  bash -c "'$helm' template aurum '$prev' -n '$ns' -f '$prev/values-quickstart.yaml' > '$work/previous.yaml'"
check "the current chart renders with the same values" \
  bash -c "'$helm' template aurum '$cur' -n '$ns' ${values[*]} > '$work/current.yaml'"
objects() { grep -E '^(kind|  name): ' "$1" | paste - - | awk '{print $2 "/" $4}' | sort; }
removed=$(comm -23 <(objects "$work/previous.yaml") <(objects "$work/current.yaml") | tr '\n' ' ')
added=$(comm -13 <(objects "$work/previous.yaml") <(objects "$work/current.yaml") | tr '\n' ' ')
echo "     objects only in the previous release (helm upgrade deletes them): ${removed:-none}"
echo "     objects new in the current release: ${added:-none}"
if cmp -s "$prev/crds/aurum.dev.yaml" "$cur/crds/aurum.dev.yaml"; then
  echo "     the CRDs are unchanged since $from"
else
  echo "     the CRDs changed since $from: $(diff "$prev/crds/aurum.dev.yaml" "$cur/crds/aurum.dev.yaml" | grep -c '^[<>]') lines"
fi

# ---------------------------------------------------------------------------
section "install the previous release"
if ! "$kubectl" get crd datalakes.aurum.dev >/dev/null 2>&1; then created_crds=1; fi
check "previous CRDs: server-side apply, established" bash -c "
  '$kubectl' apply --server-side --force-conflicts --field-manager=helm -f '$prev/crds/' &&
  '$kubectl' wait --for condition=established --timeout=60s crd/datalakes.aurum.dev crd/datamarts.aurum.dev"
"$kubectl" create namespace "$ns" >/dev/null
check "previous release: server-side apply of all $(grep -c '^kind: ' "$work/previous.yaml") objects" \
  "$kubectl" apply --server-side --field-manager=helm -f "$work/previous.yaml"

# The status an operator of the previous version leaves: the ingest and each
# Datamart's run finished, gold built from the lake's snapshot.
now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
earlier=$(date -u -d '-10 minutes' +%Y-%m-%dT%H:%M:%SZ)
snap=snap-previous-release
old_status() { # old_status GENERATION JOB EXTRA-JSON
  cat <<EOF
{"status": {"phase": "Ready", "observedGeneration": $1, "lastRunGeneration": $1,
  "lastRunTime": "$earlier", "lastSuccessfulTime": "$now", "consecutiveFailures": 0,
  "silverSnapshotId": "$snap", "rowsWritten": 1000,
  "runs": [{"jobName": "$2", "trigger": "SpecChange", "attempt": 0, "startTime": "$earlier",
            "completionTime": "$now", "outcome": "Succeeded", "rowsWritten": 1000,
            "silverSnapshotId": "$snap"}]$3}}
EOF
}
set_old_status() {
  local kind gen name
  for o in $(k get datalakes,datamarts -o name); do
    kind=${o%%.*}; name=${o#*/}
    gen=$(k get "$o" -o jsonpath='{.metadata.generation}')
    if [ "$kind" = datalake ]; then
      k patch "$o" --subresource=status --type merge -p "$(old_status "$gen" "$name-ingest-previous" '')"
    else
      k patch "$o" --subresource=status --type merge \
        -p "$(old_status "$gen" "$name-build-previous" ", \"attemptedSnapshotId\": \"$snap\"")"
    fi
  done
}
check "the previous release's DataLake and Datamarts carry a previous operator's status" set_old_status
check "  ... 1 DataLake and 4 Datamarts, Ready" bash -c "
  [ \"\$('$kubectl' -n '$ns' get datalakes,datamarts -o jsonpath='{range .items[*]}{.status.phase}{\"\\n\"}{end}' | grep -c '^Ready\$')\" = 5 ]"
k get datalakes,datamarts -o jsonpath='{range .items[*]}{.kind}/{.metadata.name}={.metadata.generation} {end}' > "$work/generations"

# ---------------------------------------------------------------------------
section "upgrade: the current CRDs first, then the current release"
check "current CRDs: server-side apply (Helm leaves crds/ alone on upgrade)" bash -c "
  '$kubectl' apply --server-side --force-conflicts --field-manager=helm -f '$cur/crds/' &&
  '$kubectl' wait --for condition=established --timeout=60s crd/datalakes.aurum.dev crd/datamarts.aurum.dev"
check "current release: server-side apply --dry-run=server over the previous one" \
  "$kubectl" apply --server-side --field-manager=helm --dry-run=server -f "$work/current.yaml"
check "current release: server-side apply of all $(grep -c '^kind: ' "$work/current.yaml") objects" \
  "$kubectl" apply --server-side --field-manager=helm -f "$work/current.yaml"
echo "     generations before: $(cat "$work/generations")"
echo "     generations after:  $(k get datalakes,datamarts -o jsonpath='{range .items[*]}{.kind}/{.metadata.name}={.metadata.generation} {end}')"
check "the existing status survived the upgrade (phase, snapshot, run history)" bash -c "
  [ \"\$('$kubectl' -n '$ns' get datalake lake -o jsonpath='{.status.phase}/{.status.silverSnapshotId}/{.status.runs[0].jobName}')\" = Ready/$snap/lake-ingest-previous ]"

# Every stored object, sent again as a new one, through the current CRDs'
# schema and CEL rules (an update of unchanged fields would be ratcheted).
revalidate() {
  k get datalakes,datamarts -o json | python3 -c '
import json, sys
items = json.load(sys.stdin)["items"]
out = []
for o in items:
    m = o["metadata"]
    out.append({"apiVersion": o["apiVersion"], "kind": o["kind"],
                "metadata": {"name": m["name"] + "-revalidated", "namespace": m["namespace"],
                             "labels": m.get("labels", {}), "annotations": m.get("annotations", {})},
                "spec": o["spec"]})
print(json.dumps({"apiVersion": "v1", "kind": "List", "items": out}))
' > "$work/revalidate.json" &&
    [ "$(grep -o '"kind": "Data' "$work/revalidate.json" | wc -l)" = 5 ] &&
    "$kubectl" create --dry-run=server -f "$work/revalidate.json"
}
check "the stored DataLake and Datamarts pass the current CRDs' schema and CEL rules (created anew, dry run)" revalidate

# ---------------------------------------------------------------------------
if [ -n "${AURUM_OPERATOR_BIN:-}" ] && [ -x "$AURUM_OPERATOR_BIN" ]; then
  section "the current operator takes over the existing objects"
  python3 - "$KUBECONFIG" "$work/operator.kubeconfig" "system:serviceaccount:$ns:aurum-operator" <<'PY'
import sys
src, dst, who = sys.argv[1:]
text = open(src).read()
users = text.index("users:")
ctx = text.index("contexts:")
block = text[users:ctx].replace("  user:\n", "  user:\n    as: " + who + "\n", 1)
open(dst, "w").write(text[:users] + block + text[ctx:])
PY
  port=18090
  while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
  operator_args=$(k get deploy aurum-operator -o jsonpath='{.spec.template.spec.containers[0].args[*]}')
  k get deploy aurum-operator \
    -o jsonpath='{range .spec.template.spec.containers[0].env[?(@.value)]}{.name}={.value}{"\n"}{end}' \
    > "$work/operator.env"
  (
    while IFS='=' read -r key v; do [ -n "$key" ] && export "$key=$v"; done < "$work/operator.env"
    export KUBECONFIG=$work/operator.kubeconfig AURUM_LISTEN=127.0.0.1:$port \
      POD_NAME=upgrade-operator POD_NAMESPACE=$ns AURUM_LOG_FORMAT=json
    # shellcheck disable=SC2086 # the Deployment's args, split as the kubelet would
    exec "$AURUM_OPERATOR_BIN" $operator_args
  ) > "$work/operator.log" 2>&1 &
  operator_pid=$!
  waits "the operator is ready on /readyz" 60 curl -sf "http://127.0.0.1:$port/readyz"
  waits "it holds the leader Lease" 60 bash -c "
    '$kubectl' -n '$ns' get lease aurum-operator -o jsonpath='{.spec.holderIdentity}' | grep -q '^upgrade-operator'"
  waits "it reconciles the existing objects (reconciles counted for DataLake and Datamart)" 60 bash -c "
    curl -sf http://127.0.0.1:$port/metrics > '$work/metrics' &&
    grep -qE '^aurum_operator_reconciles_total\\{kind=\"DataLake\"\\} [1-9]' '$work/metrics' &&
    grep -qE '^aurum_operator_reconciles_total\\{kind=\"Datamart\"\\} [1-9]' '$work/metrics'"
  k annotate datalake lake aurum.dev/run-now=after-upgrade --overwrite >/dev/null
  k annotate datamart top-products aurum.dev/run-now=after-upgrade --overwrite >/dev/null
  waits "run-now on the existing DataLake: an ingest Job, the old run still in its history" 60 bash -c "
    '$kubectl' -n '$ns' get jobs -l aurum.dev/datalake=lake,app.kubernetes.io/managed-by=aurum-operator -o name | grep -q ingest &&
    '$kubectl' -n '$ns' get datalake lake -o jsonpath='{.status.activeRun.trigger} {.status.runs[*].jobName}' |
      grep -q '^RunNow .*lake-ingest-previous'"
  waits "run-now on an existing Datamart: a Job for the previous release's snapshot" 60 bash -c "
    '$kubectl' -n '$ns' get datamart top-products -o jsonpath='{.status.activeRun.trigger}/{.status.activeRun.silverSnapshotId}' |
      grep -q '^RunNow/$snap\$' &&
    [ -n \"\$('$kubectl' -n '$ns' get datamart top-products -o jsonpath='{.status.activeRun.jobName}')\" ] &&
    '$kubectl' -n '$ns' get job \"\$('$kubectl' -n '$ns' get datamart top-products -o jsonpath='{.status.activeRun.jobName}')\""
  # A Datamart whose spec the upgrade changed runs again (SpecChange); the others
  # have nothing due, as their old status says.
  unchanged_marts() {
    local dm n=0
    for dm in sales-country-year monthly-sales customer-lifetime-value; do
      grep -q "Datamart/$dm=$(k get datamart "$dm" -o jsonpath='{.metadata.generation}') " "$work/generations" || continue
      n=$((n + 1))
      [ -z "$(k get datamart "$dm" -o jsonpath='{.status.activeRun.jobName}')" ] || { echo "$dm started a run"; return 1; }
    done
    echo "$n Datamarts with an unchanged spec, none started a run"
  }
  check "the other Datamarts with an unchanged spec start no run (their old status says nothing is due)" unchanged_marts
  kill "$operator_pid" 2>/dev/null || true
  wait "$operator_pid" 2>/dev/null || true
  operator_pid=
  check "no request of the operator was forbidden, no object failed to deserialize" bash -c "
    ! grep -iE 'forbidden|\\b403\\b|deserializ|unknown variant|missing field' '$work/operator.log'"
  if [ "$failed" != 0 ]; then tail -5 "$work/operator.log" | sed 's/^/     operator: /'; fi
else
  echo
  echo "     (AURUM_OPERATOR_BIN not set: the current operator is not run on the upgraded release)"
fi

echo
echo "upgrade.sh: took $((SECONDS - started)) s"
echo "upgrade: $passed passed, $failed failed"
[ "$failed" = 0 ]
