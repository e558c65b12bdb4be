#!/usr/bin/env bash
# Validates charts/aurum for real, without a container engine:
#
#   1. the chart's CRDs are byte-identical to crds/ (what `aurum-operator crdgen` prints);
#   2. `helm lint --strict` and `helm template` for the default values, the
#      quickstart values and the cluster-scoped operator;
#   3. values.schema.json and the chart's own checks reject bad values with
#      their message (wrong types, a missing JWT secret or users file, ...);
#   4. server-side apply of every rendered manifest to a real kube-apiserver,
#      `--dry-run=server` first and then for real, each release in a fresh
#      namespace (the CRs go through the CRDs' OpenAPI and CEL validation);
#   5. the operator's ServiceAccount can do exactly what docs/operator.md lists
#      (`kubectl auth can-i --list` compared with that list, then can-i probes of
#      what it must and must not do), and the other pods get no API token;
#   6. every Aurum container is non-root, with a read-only root filesystem, no
#      privilege escalation and no capabilities;
#   7. a real `helm install` then `helm upgrade`: the generated secrets (JWT key,
#      admin password, PostgreSQL password and URL) are made once and kept;
#   8. the quickstart Hadoop configuration parses and names only properties that
#      Hadoop's own *-default.xml know (jars from testenv/hdfs.sh's cache);
#   9. the Dockerfile, statically (check_images.py): a target per component
#      building a workspace binary with --locked, running it as user 65532, the
#      names and tag that the chart and docs/kubernetes.md use;
#  11. Ballista (off by default): the scheduler Deployment and Service and the
#      executor Deployment as the job-runner's entry points and the operator's
#      runs need them (check_ballista.py), for an HDFS lake and for a file://
#      lake on a claim; applied server-side, `kubectl scale` of the executors
#      makes the controller-manager create the pods; the example DataLake's
#      spec.engine names the scheduler, and the CRD's CEL rule refuses others;
#  10. monitoring (off by default): the ServiceMonitors and PrometheusRule
#      applied server-side against the Prometheus operator's own CRDs, the rules
#      through a real `promtool check rules` and `promtool test rules`
#      (prometheus-rules.test.yaml; the tests fail on rules with other
#      thresholds), the Grafana dashboard's JSON, and every metric that the rules
#      and the dashboard name is one the real operator and API export.
#
# With AURUM_API_BIN (and DATABASE_URL) and AURUM_DASHBOARD_BIN, runs those
# binaries with the environment, files and init command of their Deployments:
# the generated admin password logs in, the probe paths answer.
#
# With AURUM_OPERATOR_BIN (the aurum-operator binary), also runs the real
# operator as its ServiceAccount on the quickstart release: it takes its Lease,
# creates the ingest Job, writes status, finalizers and events, reads the
# database Secret, and none of its requests is forbidden.
#
# With AURUM_JOB_RUNNER_BIN (a job-runner with the `ballista-scheduler` and
# `ballista-executor` entry points), starts them with the arguments and
# environment of the chart's Ballista Deployments: the executor registers.
#
# Uses KUBECONFIG (an admin of a throwaway apiserver) with AURUM_KUBE_BIN (its
# kubectl), as `testenv/kube.sh start DIR` prints them, and AURUM_HELM_BIN
# (testenv/helm.sh); without them it starts and builds its own. Everything it
# creates is deleted at the end. Prints each check; exits 1 if any failed.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
chart=${AURUM_CHART:-$repo/charts/aurum}  # AURUM_CHART: validate another copy
quickstart=$chart/values-quickstart.yaml
# The check_*.py scripts import rendered.py: no __pycache__ in the tree.
export PYTHONDONTWRITEBYTECODE=1

# Without AURUM_KUBE_BIN (set by testenv/kube.sh only, so a KUBECONFIG of a real
# cluster alone is never used), start a throwaway control plane, and stop it at
# the end; without AURUM_HELM_BIN, build helm.
own_kube=
if [ -z "${AURUM_KUBE_BIN:-}" ] || [ -z "${KUBECONFIG:-}" ]; then
  own_kube=${AURUM_CHART_KUBE_DIR:-$HOME/.cache/aurum/kube-chart}
  eval "$("$repo/testenv/kube.sh" start "$own_kube")"
fi
if [ -z "${AURUM_HELM_BIN:-}" ]; then
  eval "$("$repo/testenv/helm.sh")"
fi
# promtool and the Prometheus operator's CRDs (testenv/promtool.sh builds and
# fetches them once).
if [ -z "${AURUM_PROMTOOL_BIN:-}" ] || [ -z "${AURUM_PROMETHEUS_CRDS:-}" ]; then
  promtool_env=$("$repo/testenv/promtool.sh")
  eval "$promtool_env"
fi
export KUBECONFIG
helm=$AURUM_HELM_BIN/helm
kubectl=$AURUM_KUBE_BIN/kubectl
[ -x "$helm" ] || { echo "validate.sh: no helm at $helm" >&2; exit 2; }
[ -x "$kubectl" ] || { echo "validate.sh: no kubectl at $kubectl" >&2; exit 2; }

started=$SECONDS
work=$(mktemp -d)
suffix=$$-$RANDOM
ns_default=aurum-chart-default-$suffix
ns_quick=aurum-chart-quick-$suffix
ns_cluster=aurum-chart-cluster-$suffix
ns_install=aurum-chart-install-$suffix
ns_ballista=aurum-chart-ballista-$suffix
created_crds=0
created_monitoring_crds=0
passed=0
failed=0

pass() { passed=$((passed + 1)); echo "ok   $*"; }
fail() { failed=$((failed + 1)); echo "FAIL $*"; }
# check DESCRIPTION COMMAND...: passes when the command succeeds.
check() {
  local what=$1; shift
  if "$@" > "$work/out" 2>&1; then pass "$what"; else fail "$what"; sed 's/^/     /' "$work/out" | tail -20; fi
}
section() { echo; echo "== $* ($((SECONDS - started)) s)"; }

operator_pid=
api_pid=
dashboard_pid=
ballista_pids=()
cleanup() {
  set +e
  for pid in "$operator_pid" "$api_pid" "$dashboard_pid" "${ballista_pids[@]}"; do
    [ -n "$pid" ] && kill "$pid" 2>/dev/null
  done
  "$helm" uninstall aurum -n "$ns_install" >/dev/null 2>&1
  # testenv/kube.sh runs no pvc-protection controller: nothing would ever
  # remove that finalizer from the StatefulSets' claims, and the namespaces
  # would stay Terminating.
  local ns pvc
  for ns in "$ns_quick" "$ns_install"; do
    for pvc in $("$kubectl" -n "$ns" get pvc -o name 2>/dev/null); do
      "$kubectl" -n "$ns" patch "$pvc" --type merge -p '{"metadata":{"finalizers":null}}' >/dev/null 2>&1
    done
  done
  "$kubectl" delete ns "$ns_default" "$ns_quick" "$ns_cluster" "$ns_install" "$ns_ballista" \
    --ignore-not-found --wait=false >/dev/null 2>&1
  "$kubectl" delete clusterrole,clusterrolebinding "aurum-operator-$ns_cluster" \
    --ignore-not-found >/dev/null 2>&1
  if [ "$created_crds" = 1 ]; then
    "$kubectl" delete -f "$chart/crds/" --ignore-not-found --wait=false >/dev/null 2>&1
  fi
  if [ "$created_monitoring_crds" = 1 ]; then
    "$kubectl" delete crd servicemonitors.monitoring.coreos.com prometheusrules.monitoring.coreos.com \
      --ignore-not-found --wait=false >/dev/null 2>&1
  fi
  rm -rf "$work"
  [ -n "$own_kube" ] && "$repo/testenv/kube.sh" stop "$own_kube"
}
trap cleanup EXIT

render() { # render FILE NAMESPACE HELM-ARGS...: helm template of release `aurum`
  local out=$1 ns=$2; shift 2
  "$helm" template aurum "$chart" -n "$ns" "$@" > "$out"
}

# ---------------------------------------------------------------------------
section "CRDs"
if cmp -s "$repo/crds/aurum.dev.yaml" "$chart/crds/aurum.dev.yaml"; then
  pass "charts/aurum/crds/aurum.dev.yaml is identical to crds/aurum.dev.yaml"
else
  fail "charts/aurum/crds/aurum.dev.yaml differs from crds/aurum.dev.yaml;" \
    "after \`aurum-operator crdgen > crds/aurum.dev.yaml\` run: cp crds/aurum.dev.yaml charts/aurum/crds/"
  diff "$repo/crds/aurum.dev.yaml" "$chart/crds/aurum.dev.yaml" | head -20 | sed 's/^/     /' || true
fi

# ---------------------------------------------------------------------------
section "helm lint and helm template"
"$helm" version --short
check "helm lint --strict (default values)" "$helm" lint --strict "$chart"
check "helm lint --strict (values-quickstart.yaml)" "$helm" lint --strict "$chart" -f "$quickstart"
check "helm lint --strict (operator.scope=cluster, autoscaling, TLS ingresses)" \
  "$helm" lint --strict "$chart" --set operator.scope=cluster --set api.autoscaling.enabled=true \
  --set api.ingress.enabled=true --set api.ingress.tls.enabled=true \
  --set dashboard.ingress.enabled=true --set dashboard.ingress.tls.enabled=true
check "helm template (default values)" render "$work/default.yaml" "$ns_default"
check "helm template (values-quickstart.yaml)" render "$work/quick.yaml" "$ns_quick" -f "$quickstart"
check "helm template (operator.scope=cluster)" \
  render "$work/cluster.yaml" "$ns_cluster" --set operator.scope=cluster \
  --set database.existingSecret=gold-db --set api.autoscaling.enabled=true
check "helm template --include-crds carries the CRDs unchanged" \
  bash -c "'$helm' template aurum '$chart' --include-crds | grep -q 'name: datalakes.aurum.dev'"

kinds() { grep -E '^kind: ' "$1" | sort | uniq -c | awk '{printf "%s=%s ", $3, $1}'; }
echo "     default:    $(kinds "$work/default.yaml")"
echo "     quickstart: $(kinds "$work/quick.yaml")"
expect_kinds() { # expect_kinds FILE KIND=COUNT...
  local file=$1 k n got; shift
  for kv in "$@"; do
    k=${kv%=*}; n=${kv#*=}
    got=$(grep -cE "^kind: $k\$" "$file" || true)
    [ "$got" = "$n" ] || { echo "$k: $got, expected $n"; return 1; }
  done
}
check "default values: operator, API, dashboard; no quickstart parts" expect_kinds "$work/default.yaml" \
  Deployment=3 Service=3 PodDisruptionBudget=3 Role=2 RoleBinding=2 ServiceAccount=2 Secret=2 \
  StatefulSet=0 Job=0 Ingress=0 DataLake=0 Datamart=0 ClusterRole=0 HorizontalPodAutoscaler=0
check "quickstart: PostgreSQL, HDFS, loader Job, ingresses, 1 DataLake and 4 Datamarts" \
  expect_kinds "$work/quick.yaml" \
  Deployment=3 StatefulSet=3 Job=1 Ingress=2 DataLake=1 Datamart=4 Secret=4 ConfigMap=2
check "cluster scope: a ClusterRole and binding, the Lease Role only, an HPA" expect_kinds "$work/cluster.yaml" \
  ClusterRole=1 ClusterRoleBinding=1 Role=1 RoleBinding=1 HorizontalPodAutoscaler=1 Secret=2
check "the longest release name (53 characters) gives valid object names" bash -c "
  '$helm' template aurum-a-release-name-of-the-longest-length-helm-allow '$chart' -f '$quickstart' \
    --set ballista.enabled=true |
    python3 -c '
import re, sys
bad = []
kind = None
for line in sys.stdin:
    m = re.match(r\"^kind: (\\S+)\", line)
    if m: kind = m.group(1)
    m = re.match(r\"^  name: (\\S+)\", line)
    if m:
        name, limit = m.group(1), 52 if kind == \"StatefulSet\" else 63
        if len(name) > limit: bad.append(f\"{kind} {name} ({len(name)} > {limit})\")
print(chr(10).join(bad)); sys.exit(1 if bad else 0)'"
check "PodDisruptionBudgets: maxUnavailable 0 and minAvailable are rendered as given" bash -c "
  '$helm' template aurum '$chart' --set operator.pdb.maxUnavailable=0 --set api.pdb.minAvailable=2 > '$work/pdb.yaml' &&
  grep -q '^  maxUnavailable: 0\$' '$work/pdb.yaml' && grep -q '^  minAvailable: 2\$' '$work/pdb.yaml'"
check "no secret value comes from values.yaml (the defaults hold none)" \
  bash -c "! grep -nE '(password|secret|url): *\"?[A-Za-z0-9+/]{8,}' '$chart/values.yaml'"
check "quickstart database URL carries the generated PostgreSQL password" bash -c "
  pw=\$(awk '/name: aurum-postgresql\$/{f=1} f&&/password:/{print \$2; exit}' '$work/quick.yaml' | tr -d '\"' | base64 -d)
  url=\$(awk '/name: aurum-database\$/{f=1} f&&/ url:/{print \$2; exit}' '$work/quick.yaml' | tr -d '\"' | base64 -d)
  [ -n \"\$pw\" ] && [ \"\$url\" = \"postgres://aurum:\$pw@aurum-postgresql:5432/aurum\" ]"

# Ballista: with the quickstart's HDFS (3 executors of 4 tasks), and with a
# file:// lake on a claim (scheduler on another port) for the server-side apply.
ballista_quick=(-f "$quickstart" --set ballista.enabled=true --set ballista.executors.replicas=3
  --set ballista.executors.concurrentTasks=4)
ballista_pvc=(--set ballista.enabled=true --set ballista.scheduler.port=7000
  --set ballista.lake.persistentVolumeClaim=aurum-lake --set database.existingSecret=gold-db
  --set examples.enabled=true --set examples.dataLake.lakeUri=file:///data/lake/aurum
  --set examples.dataLake.sourcePath=/data/lake/landing)
check "helm lint --strict (ballista.enabled, quickstart)" "$helm" lint --strict "$chart" "${ballista_quick[@]}"
check "helm template (ballista.enabled, quickstart HDFS)" render "$work/ballista-quick.yaml" "$ns_quick" "${ballista_quick[@]}"
check "helm template (ballista.enabled, file:// lake on a claim)" \
  render "$work/ballista.yaml" "$ns_ballista" "${ballista_pvc[@]}"
check "ballista off by default: no scheduler, no executors, no spec.engine" \
  bash -c "! grep -qi 'ballista\|engine:' '$work/default.yaml' '$work/quick.yaml'"
check "ballista: two more Deployments and the scheduler's Service" \
  expect_kinds "$work/ballista.yaml" Deployment=5 Service=4 DataLake=1 Datamart=4
check "ballista (HDFS): scheduler, Service and 3 executors of 4 tasks as the entry points expect; HDFS config mounted" \
  bash -c "'$kubectl' create --dry-run=client -o json -f '$work/ballista-quick.yaml' |
    python3 '$here/check_ballista.py' aurum 50050 3 4 hdfs:aurum-hadoop-conf"
check "ballista (file:// lake): the claim mounted at the lake's path, scheduler port 7000 in spec.engine" \
  bash -c "'$kubectl' create --dry-run=client -o json -f '$work/ballista.yaml' |
    python3 '$here/check_ballista.py' aurum 7000 2 2 pvc:aurum-lake:/data/lake"
check "ballista: examples.dataLake.engine wins over the chart's scheduler" bash -c "
  '$helm' template aurum '$chart' ${ballista_pvc[*]} --set examples.dataLake.engine=in-process \
    --show-only templates/examples.yaml | grep -c '^  engine: \"in-process\"\$' | grep -qx 1"

# ---------------------------------------------------------------------------
section "schema and chart checks reject bad values"
# rejects DESCRIPTION EXPECTED-MESSAGE HELM-ARGS...: helm template must fail and say it.
rejects() {
  local what=$1 msg=$2; shift 2
  if "$helm" template aurum "$chart" "$@" > "$work/neg" 2>&1; then
    fail "$what: rendered, expected an error"
  elif grep -qF -- "$msg" "$work/neg"; then
    pass "$what: \"$msg\""
  else
    fail "$what: error without \"$msg\""; sed 's/^/     /' "$work/neg" | tail -5
  fi
}
rejects "JWT generation off and no existingSecret" \
  "at '/api/jwt/existingSecret': minLength: got 0, want 1" --set api.jwt.generate=false
rejects "no admin and no users-file Secret" \
  "at '/api/users/existingSecret': minLength: got 0, want 1" --set api.users.admin.create=false
rejects "replicas of the wrong type" \
  "at '/api/replicas': got string, want integer" --set api.replicas=two
rejects "a boolean given as a string" \
  "at '/operator/enabled': got string, want boolean" --set-string operator.enabled=yes
rejects "an unknown operator scope" \
  "at '/operator/scope': value must be one of 'namespace', 'cluster'" --set operator.scope=everywhere
rejects "a misspelt top-level key" \
  "additional properties 'operater' not allowed" --set operater.enabled=true
rejects "a database URL that is not PostgreSQL" \
  "at '/database/url'" --set database.url=mysql://db/gold
rejects "an unknown datamart kind" \
  "at '/examples/datamarts/kinds/0': value must be one of" --set 'examples.datamarts.kinds={gold-everything}'
rejects "an example Metastore that is not thrift://HOST:PORT" \
  "at '/examples/dataLake/metastore'" --set examples.dataLake.metastore=http://hms:9083
rejects "a port out of range" \
  "at '/api/port': maximum: got 70,000, want 65,535" --set api.port=70000
rejects "an enabled ingress without a host" \
  "at '/dashboard/ingress/host': minLength: got 0, want 1" \
  --set dashboard.ingress.enabled=true --set dashboard.ingress.host=
rejects "an image pull policy that does not exist" \
  "at '/image/pullPolicy': value must be one of" --set image.pullPolicy=Sometimes
rejects "the source loader without the in-cluster HDFS" \
  "sourceLoader.enabled needs hdfs.enabled" --set sourceLoader.enabled=true
rejects "examples without HDFS and without a lake URI" \
  "examples.enabled without hdfs.enabled needs examples.dataLake.lakeUri" --set examples.enabled=true
rejects "HDFS replication above the DataNode count" \
  "hdfs.replication must not exceed hdfs.datanode.replicas" \
  --set hdfs.enabled=true --set hdfs.replication=3 --set hdfs.datanode.replicas=2
rejects "Ballista executors with no task slot" \
  "at '/ballista/executors/concurrentTasks': minimum: got 0, want 1" \
  --set ballista.enabled=true --set ballista.executors.concurrentTasks=0
rejects "Ballista executor Flight and gRPC on one port" \
  "ballista.executors.flightPort and grpcPort must differ" \
  --set ballista.enabled=true --set ballista.executors.grpcPort=50051
rejects "a Ballista lake mounted at a relative path" \
  "at '/ballista/lake/mountPath'" --set ballista.lake.mountPath=data/lake
rejects "a misspelt Ballista key" \
  "additional properties 'executor' not allowed" --set ballista.executor.replicas=3
rejects "an example engine that is neither in-process nor ballista://HOST:PORT" \
  "at '/examples/dataLake/engine'" --set examples.dataLake.engine=spark://master:7077
check "existing JWT and users Secrets: nothing generated, the Deployment mounts them" bash -c "
  '$helm' template aurum '$chart' --set api.jwt.generate=false --set api.jwt.existingSecret=my-jwt \
    --set api.users.existingSecret=my-users --set database.existingSecret=my-db > '$work/existing.yaml'
  ! grep -q '^kind: Secret' '$work/existing.yaml' &&
  grep -q 'secretName: my-jwt' '$work/existing.yaml' &&
  grep -q 'secretName: my-users' '$work/existing.yaml' &&
  grep -q 'name: my-db' '$work/existing.yaml' &&
  ! grep -q 'hash-password' '$work/existing.yaml'"

check "database.tls.caSecret: the API and the operator mount the database CA read-only" bash -c "
  '$helm' template aurum '$chart' --set database.tls.caSecret=gold-db-ca > '$work/db-ca.yaml'
  [ \$(grep -c 'secretName: gold-db-ca' '$work/db-ca.yaml') = 2 ] &&
  [ \$(grep -c 'mountPath: /etc/aurum/postgresql-ca' '$work/db-ca.yaml') = 2 ] &&
  ! '$helm' template aurum '$chart' | grep -q postgresql-ca"
rejects "a database CA Secret name that is not a Secret name" \
  "at '/database/tls/caSecret'" --set database.tls.caSecret=Not_A_Name

check "api.tls.existingSecret renders" render "$work/tls.yaml" "$ns_default" --set api.tls.existingSecret=api-tls
check "api.tls.existingSecret: the API serves TLS, probes use HTTPS, the dashboard trusts only the CA" \
  bash -c "'$kubectl' create --dry-run=client -o json -f '$work/tls.yaml' | python3 '$here/check_api_tls.py' api-tls"
check "api.tls.existingSecret with dashboard.apiUrl: the dashboard uses that URL and mounts no CA" bash -c "
  '$helm' template aurum '$chart' --set api.tls.existingSecret=api-tls --set dashboard.apiUrl=http://gold.example:8000 \
    --show-only templates/dashboard.yaml > '$work/tls-own-url.yaml' &&
  grep -q 'value: \"http://gold.example:8000\"' '$work/tls-own-url.yaml' &&
  ! grep -q 'AURUM_API_CA_FILE\\|api-tls' '$work/tls-own-url.yaml'"
check "without api.tls.existingSecret: no TLS files, no HTTPS probes, no CA" bash -c "
  ! grep -q 'AURUM_TLS_CERT_FILE\\|scheme: HTTPS\\|AURUM_API_CA_FILE' '$work/default.yaml'"

# ---------------------------------------------------------------------------
section "images (static checks: no container engine here)"
if command -v cargo >/dev/null && (cd "$repo" && cargo metadata --no-deps --format-version 1 \
    > "$work/cargo-metadata.json" 2>"$work/out"); then
  while IFS= read -r line; do
    case $line in
      ok*) passed=$((passed + 1)); echo "$line" ;;
      FAIL*) failed=$((failed + 1)); echo "$line" ;;
      *) echo "     $line" ;;
    esac
  done < <(python3 "$here/check_images.py" "$repo" "$work/cargo-metadata.json" 2>&1 || true)
else
  fail "cargo metadata (the workspace's packages and binaries)"; tail -3 "$work/out"
fi

# ---------------------------------------------------------------------------
section "server-side apply to the real kube-apiserver"
"$kubectl" version 2>/dev/null | sed 's/^/     /'
check "CRDs: server-side apply --dry-run=server" \
  "$kubectl" apply --server-side --field-manager=aurum-chart-validate --dry-run=server -f "$chart/crds/"
if ! "$kubectl" get crd datalakes.aurum.dev >/dev/null 2>&1; then created_crds=1; fi
check "CRDs: server-side apply" \
  "$kubectl" apply --server-side --force-conflicts --field-manager=aurum-chart-validate -f "$chart/crds/"
check "CRDs established" "$kubectl" wait --for condition=established --timeout=60s \
  crd/datalakes.aurum.dev crd/datamarts.aurum.dev

apply_release() { # apply_release NAME FILE NAMESPACE
  local name=$1 file=$2 ns=$3 count
  "$kubectl" create namespace "$ns" >/dev/null
  count=$(grep -cE '^kind: ' "$file")
  check "$name: server-side apply --dry-run=server accepts all $count objects" \
    "$kubectl" apply --server-side --field-manager=aurum-chart-validate --dry-run=server -f "$file"
  check "$name: server-side apply creates all $count objects" \
    "$kubectl" apply --server-side --field-manager=aurum-chart-validate -f "$file"
}
apply_release "default values" "$work/default.yaml" "$ns_default"
apply_release "quickstart values" "$work/quick.yaml" "$ns_quick"
apply_release "cluster scope" "$work/cluster.yaml" "$ns_cluster"
apply_release "ballista (file:// lake)" "$work/ballista.yaml" "$ns_ballista"
check "ballista: the example DataLake is stored with spec.engine naming the scheduler; its Datamarts set none" bash -c "
  [ \"\$('$kubectl' -n '$ns_ballista' get datalake lake -o jsonpath='{.spec.engine}')\" = ballista://aurum-ballista-scheduler:7000 ] &&
  [ -z \"\$('$kubectl' -n '$ns_ballista' get datamarts -o jsonpath='{.items[*].spec.engine}')\" ]"
check "the CRDs' CEL rules apply to spec.engine: spark://master:7077 is refused" bash -c "
  '$kubectl' -n '$ns_ballista' patch datalake lake --type merge -p '{\"spec\":{\"engine\":\"spark://master:7077\"}}' 2>&1 |
    grep -q 'engine must be in-process or ballista://HOST:PORT'"
check "ballista: the controller-manager creates the scheduler pod and 2 executor pods" bash -c "
  for i in \$(seq 1 60); do
    s=\$('$kubectl' -n '$ns_ballista' get pods -l app.kubernetes.io/component=ballista-scheduler -o name | wc -l)
    e=\$('$kubectl' -n '$ns_ballista' get pods -l app.kubernetes.io/component=ballista-executor -o name | wc -l)
    [ \"\$s\" = 1 ] && [ \"\$e\" = 2 ] && exit 0; sleep 0.5; done
  echo \"scheduler pods=\$s executor pods=\$e\"; exit 1"
check "ballista: kubectl scale deploy/aurum-ballista-executor --replicas 4 makes 4 executor pods" bash -c "
  '$kubectl' -n '$ns_ballista' scale deploy/aurum-ballista-executor --replicas 4 >/dev/null &&
  for i in \$(seq 1 60); do
    e=\$('$kubectl' -n '$ns_ballista' get pods -l app.kubernetes.io/component=ballista-executor -o name | wc -l)
    [ \"\$e\" = 4 ] && exit 0; sleep 0.5; done
  echo \"executor pods=\$e\"; exit 1"
check "quickstart: the example resources are stored with their defaults" bash -c "
  [ \"\$('$kubectl' -n '$ns_quick' get datamarts -o name | wc -l)\" = 4 ] &&
  [ \"\$('$kubectl' -n '$ns_quick' get datamart top-products -o jsonpath='{.spec.topN}/{.spec.concurrencyPolicy}')\" = 10/Forbid ] &&
  [ \"\$('$kubectl' -n '$ns_quick' get datalake lake -o jsonpath='{.spec.source.path}')\" = hdfs://aurum-hdfs-namenode:8020/landing ]"
check "the CRDs' CEL rules still apply: topN on a non-top-products Datamart is refused" bash -c "
  '$kubectl' -n '$ns_quick' patch datamart monthly-sales --type merge -p '{\"spec\":{\"topN\":3}}' 2>&1 |
    grep -q 'topN applies only to the top-products datamart'"
check "the controller-manager acts on the applied objects (ReplicaSets, StatefulSet PVCs, loader Job pods)" \
  bash -c "for i in \$(seq 1 60); do
    rs=\$('$kubectl' -n '$ns_quick' get replicasets -o name | wc -l)
    pvc=\$('$kubectl' -n '$ns_quick' get pvc -o name | wc -l)
    pods=\$('$kubectl' -n '$ns_quick' get pods -l app.kubernetes.io/component=source-loader -o name | wc -l)
    [ \"\$rs\" -ge 3 ] && [ \"\$pvc\" -ge 3 ] && [ \"\$pods\" -ge 1 ] && exit 0; sleep 0.5; done
    echo \"replicasets=\$rs pvcs=\$pvc loader pods=\$pods\"; exit 1"

# ---------------------------------------------------------------------------
section "monitoring: Prometheus operator CRDs, promtool, the Grafana dashboard"
promtool=$AURUM_PROMTOOL_BIN
"$promtool" --version 2>&1 | head -1 | sed 's/^/     /'
echo "     Prometheus operator CRDs: $AURUM_PROMETHEUS_CRDS"
monitoring_on=(--set monitoring.serviceMonitor.enabled=true --set monitoring.prometheusRule.enabled=true
  --set monitoring.grafanaDashboard.enabled=true)
check "monitoring off by default: no ServiceMonitor, PrometheusRule or dashboard ConfigMap" \
  expect_kinds "$work/default.yaml" ServiceMonitor=0 PodMonitor=0 PrometheusRule=0 ConfigMap=0
check "helm lint --strict (monitoring on, API TLS)" \
  "$helm" lint --strict "$chart" "${monitoring_on[@]}" --set api.tls.existingSecret=api-tls
check "monitoring on: a ServiceMonitor each for the operator and the API, a PrometheusRule, the dashboard" bash -c "
  '$helm' template aurum '$chart' -n '$ns_default' ${monitoring_on[*]} > '$work/monitoring.yaml' &&
  '$helm' template aurum '$chart' -n '$ns_default' ${monitoring_on[*]} --set api.tls.existingSecret=api-tls \
    --set monitoring.serviceMonitor.scrapeTimeout=10s --set monitoring.serviceMonitor.labels.release=prom \
    --show-only templates/monitoring.yaml > '$work/monitoring-tls.yaml'"
check "  ... exactly those" expect_kinds "$work/monitoring.yaml" ServiceMonitor=2 PrometheusRule=1 ConfigMap=1
check "the API's ServiceMonitor scrapes https with the CA of api.tls.existingSecret" bash -c "
  grep -q 'scheme: https' '$work/monitoring-tls.yaml' && grep -q 'name: api-tls' '$work/monitoring-tls.yaml' &&
  grep -q 'serverName: aurum-api.$ns_default.svc' '$work/monitoring-tls.yaml' && grep -q 'release: prom' '$work/monitoring-tls.yaml'"
check "with operator.service.enabled=false: no operator ServiceMonitor and no operator alerts" bash -c "
  '$helm' template aurum '$chart' ${monitoring_on[*]} --set operator.service.enabled=false \
    --show-only templates/monitoring.yaml > '$work/monitoring-noop.yaml' &&
  ! grep -q 'name: aurum-operator\$' '$work/monitoring-noop.yaml' && ! grep -q 'AurumOperator' '$work/monitoring-noop.yaml' &&
  grep -q 'AurumGoldStale' '$work/monitoring-noop.yaml'"

# The Prometheus operator's CRDs (from its Go module), then the objects through
# them on the real apiserver: schema and field validation are the server's.
if ! "$kubectl" get crd prometheusrules.monitoring.coreos.com >/dev/null 2>&1; then created_monitoring_crds=1; fi
check "Prometheus operator CRDs (ServiceMonitor, PrometheusRule): server-side apply, established" bash -c "
  '$kubectl' apply --server-side --force-conflicts --field-manager=aurum-chart-validate \
    -f '$AURUM_PROMETHEUS_CRDS/monitoring.coreos.com_servicemonitors.yaml' \
    -f '$AURUM_PROMETHEUS_CRDS/monitoring.coreos.com_prometheusrules.yaml' &&
  '$kubectl' wait --for condition=established --timeout=60s \
    crd/servicemonitors.monitoring.coreos.com crd/prometheusrules.monitoring.coreos.com"
check "ServiceMonitors and PrometheusRule: server-side apply --dry-run=server" \
  "$kubectl" apply --server-side --field-manager=aurum-chart-validate --dry-run=server \
  -f "$work/monitoring.yaml" -f "$work/monitoring-tls.yaml"
check "ServiceMonitors, PrometheusRule and the dashboard ConfigMap: server-side apply" \
  "$kubectl" apply --server-side --field-manager=aurum-chart-validate -f "$work/monitoring.yaml"
check "the CRDs' schema is enforced: a ServiceMonitor with scheme ftp is refused" bash -c "
  sed 's/scheme: https/scheme: ftp/' '$work/monitoring-tls.yaml' > '$work/monitoring-bad.yaml' &&
  ! '$kubectl' apply --server-side --field-manager=aurum-chart-validate --dry-run=server \
    -f '$work/monitoring-bad.yaml' > '$work/bad.out' 2>&1 && grep -q 'Unsupported value: \"ftp\"' '$work/bad.out'"

# rules_json HELM-ARGS...: the rendered PrometheusRule's spec (release aurum in
# namespace aurum, as prometheus-rules.test.yaml expects), as promtool's rule file.
rules_json() {
  "$helm" template aurum "$chart" -n aurum --set monitoring.prometheusRule.enabled=true \
    --set monitoring.prometheusRule.goldMaxAgeSecondsByDatamart.monthly-sales=2764800 "$@" \
    --show-only templates/monitoring.yaml |
    "$kubectl" create --dry-run=client -o json -f - |
    python3 -c 'import json, sys
o = json.load(sys.stdin)
items = o["items"] if o.get("kind") == "List" else [o]
rules = [i for i in items if i["kind"] == "PrometheusRule"]
assert len(rules) == 1, rules
print(json.dumps(rules[0]["spec"], indent=1))'
}
mkdir -p "$work/rules" "$work/rules-other"
cp "$here/prometheus-rules.test.yaml" "$work/rules/"
cp "$here/prometheus-rules.test.yaml" "$work/rules-other/"
if rules_json > "$work/rules/rules.json" 2> "$work/out" &&
  rules_json --set monitoring.prometheusRule.failedRuns=4 --set monitoring.prometheusRule.goldMaxAgeSeconds=96000 \
    > "$work/rules-other/rules.json" 2>> "$work/out"; then
  pass "the PrometheusRule's groups extracted for promtool"
else
  fail "the PrometheusRule's groups extracted for promtool"; tail -5 "$work/out" | sed 's/^/     /'
fi
alerts=$(grep -c '"alert":' "$work/rules/rules.json" || true)
echo "     alerts: $(grep -o '"alert": "[A-Za-z]*"' "$work/rules/rules.json" | cut -d'"' -f4 | tr '\n' ' ')"
check "promtool check rules --lint=all --lint-fatal: $alerts alerts, valid PromQL and templates" \
  "$promtool" check rules --lint=all --lint-fatal "$work/rules/rules.json"
check "promtool test rules charts/tests/prometheus-rules.test.yaml: every alert fires when it should, not otherwise" \
  bash -c "cd '$work/rules' && '$promtool' test rules prometheus-rules.test.yaml"
check "every alert of the PrometheusRule has a unit test" bash -c "
  for a in \$(grep -o '\"alert\": \"[A-Za-z]*\"' '$work/rules/rules.json' | cut -d'\"' -f4); do
    grep -q \"alertname: \$a\$\" '$here/prometheus-rules.test.yaml' || { echo \"no test for \$a\"; exit 1; }
  done"
check "the unit tests fail on rules with other thresholds (failedRuns 4, goldMaxAgeSeconds 96000)" bash -c "
  cd '$work/rules-other' && ! '$promtool' test rules prometheus-rules.test.yaml > out 2>&1 &&
  grep -q 'alertname: AurumRunsFailing' out && grep -q 'alertname: AurumGoldStale' out"

check "the Grafana dashboard is JSON with unique panel ids, every panel with a query, within 24 columns" bash -c "
  '$kubectl' -n '$ns_default' get configmap aurum-grafana-dashboard -o json | python3 -c '
import json, sys
cm = json.load(sys.stdin)
assert cm[\"metadata\"][\"labels\"].get(\"grafana_dashboard\") == \"1\", \"no sidecar label\"
d = json.loads(cm[\"data\"][\"aurum.json\"])
ids = [p[\"id\"] for p in d[\"panels\"]]
assert len(ids) == len(set(ids)), \"duplicate panel ids\"
for p in d[\"panels\"]:
    g = p[\"gridPos\"]
    assert g[\"x\"] + g[\"w\"] <= 24, p[\"title\"]
    if p[\"type\"] != \"row\":
        assert p[\"targets\"] and all(t[\"expr\"] for t in p[\"targets\"]), p[\"title\"]
print(d[\"title\"], d[\"uid\"], len(ids), \"panels\")'"
# The dashboard's queries as recording rules, Grafana's variables replaced:
# promtool parses every one as PromQL.
check "every query of the Grafana dashboard is valid PromQL (promtool check rules)" bash -c "
  python3 - '$chart/dashboards/aurum.json' > '$work/dashboard-rules.json' <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
rules = []
for p in d[\"panels\"]:
    for t in p.get(\"targets\", []):
        expr = t[\"expr\"].replace(\"\$__rate_interval\", \"5m\").replace(\"\$namespace\", \"aurum\")
        rules.append({\"record\": \"aurum_dashboard:panel_%d_%s\" % (p[\"id\"], t[\"refId\"].lower()), \"expr\": expr})
print(json.dumps({\"groups\": [{\"name\": \"dashboard\", \"rules\": rules}]}))
PY
  '$promtool' check rules '$work/dashboard-rules.json'"
# The metric names the rules and the dashboard use, checked against the real
# binaries' /metrics further down (where they run).
python3 - "$work/rules/rules.json" "$chart/dashboards/aurum.json" > "$work/metric-names" <<'PY'
import re, sys
names = set()
for f in sys.argv[1:]:
    names.update(re.findall(r"\b(?:aurum|kube)_[a-z0-9_]+\b|\bup(?=\{)", open(f).read()))
print("\n".join(sorted(names)))
PY
echo "     metrics used by the rules and the dashboard: $(wc -l < "$work/metric-names")"

# ---------------------------------------------------------------------------
section "the operator's RBAC: exactly what docs/operator.md lists"
sa_default=system:serviceaccount:$ns_default:aurum-operator
sa_cluster=system:serviceaccount:$ns_cluster:aurum-operator

# `kubectl auth can-i --list` as "RESOURCE NAMES VERBS" lines (NAMES `-` for
# any), sorted, without what every authenticated user may do (self reviews,
# discovery URLs).
can_list() { # can_list AS NAMESPACE
  "$kubectl" auth can-i --list --as="$1" -n "$2" --no-headers | python3 -c '
import re, sys
for line in sys.stdin:
    cols = re.split(r"\s{2,}", line.strip())
    if len(cols) != 4 or cols[0].startswith("[/") or cols[0].startswith("self"):
        continue
    names = cols[2].strip("[]") or "-"
    print(cols[0], names, cols[3].strip("[]"))' | sort
}
expected_ns_rules() { # the operator's rules in its namespace (the Lease by name)
  sort <<EOF
datalakes.aurum.dev - get list watch patch update
datalakes.aurum.dev/status - get patch
datamarts.aurum.dev - get list watch patch update
datamarts.aurum.dev/status - get patch
events.events.k8s.io - create patch
jobs.batch - get list watch create delete
leases.coordination.k8s.io - create
leases.coordination.k8s.io aurum-operator get update patch
pods - get list
secrets - get
EOF
}
export -f can_list expected_ns_rules
export kubectl
check "namespace scope: can-i --list in its namespace is exactly the documented rules" bash -c "
  diff <(expected_ns_rules) <(can_list '$sa_default' '$ns_default')"
check "namespace scope: can-i --list in another namespace is empty" bash -c "
  out=\$(can_list '$sa_default' default); [ -z \"\$out\" ] || { echo \"\$out\"; exit 1; }"
# can AS NS VERB RESOURCE[/NAME] [--subresource=S]: can-i must answer "yes";
# cannot: it must answer "no" (an error, e.g. a typo, counts as neither).
can_i() { local as=$1 ns=$2; shift 2
  local a; a=$("$kubectl" auth can-i --as="$as" -n "$ns" "$@" 2>"$work/can-i.err" | head -1) || true
  echo "${a:-error: $(tail -1 "$work/can-i.err")}"; }
can() { local as=$1 ns=$2 a; shift 2; a=$(can_i "$as" "$ns" "$@")
  if [ "$a" = yes ]; then pass "allowed: $* (in $ns)"
  else fail "not allowed but needed: $* (in $ns): $a"; fi; }
cannot() { local as=$1 ns=$2 a; shift 2; a=$(can_i "$as" "$ns" "$@")
  if [ "${a%% *}" = no ]; then pass "denied: $* (in $ns)"
  else fail "must be denied: $* (in $ns): $a"; fi; }

for v in get list watch patch update; do
  can "$sa_default" "$ns_default" "$v" datalakes.aurum.dev
  can "$sa_default" "$ns_default" "$v" datamarts.aurum.dev
done
for v in get patch; do
  can "$sa_default" "$ns_default" "$v" datalakes.aurum.dev --subresource=status
  can "$sa_default" "$ns_default" "$v" datamarts.aurum.dev --subresource=status
done
for v in get list watch create delete; do can "$sa_default" "$ns_default" "$v" jobs.batch; done
can "$sa_default" "$ns_default" get pods
can "$sa_default" "$ns_default" list pods
can "$sa_default" "$ns_default" get secrets/aurum-database
can "$sa_default" "$ns_default" create events.events.k8s.io
can "$sa_default" "$ns_default" patch events.events.k8s.io
can "$sa_default" "$ns_default" create leases.coordination.k8s.io
for v in get update patch; do can "$sa_default" "$ns_default" "$v" leases.coordination.k8s.io/aurum-operator; done

cannot "$sa_default" "$ns_default" list secrets
cannot "$sa_default" "$ns_default" watch secrets
cannot "$sa_default" "$ns_default" create secrets
cannot "$sa_default" "$ns_default" update secrets/aurum-database
cannot "$sa_default" "$ns_default" delete secrets/aurum-database
cannot "$sa_default" default get secrets
cannot "$sa_default" kube-system get secrets
cannot "$sa_default" "$ns_quick" get secrets/aurum-database
cannot "$sa_default" "$ns_default" create pods
cannot "$sa_default" "$ns_default" delete pods
cannot "$sa_default" "$ns_default" create pods --subresource=exec
cannot "$sa_default" "$ns_default" patch jobs.batch
cannot "$sa_default" "$ns_default" create cronjobs.batch
cannot "$sa_default" "$ns_default" create datalakes.aurum.dev
cannot "$sa_default" "$ns_default" delete datamarts.aurum.dev
cannot "$sa_default" "$ns_default" update datamarts.aurum.dev --subresource=status
cannot "$sa_default" "$ns_default" create deployments.apps
cannot "$sa_default" "$ns_default" get configmaps
cannot "$sa_default" "$ns_default" create serviceaccounts --subresource=token
cannot "$sa_default" "$ns_default" create rolebindings.rbac.authorization.k8s.io
cannot "$sa_default" "$ns_default" update roles.rbac.authorization.k8s.io
cannot "$sa_default" "$ns_default" delete leases.coordination.k8s.io/aurum-operator
cannot "$sa_default" "$ns_default" update leases.coordination.k8s.io/other-controller
cannot "$sa_default" default create leases.coordination.k8s.io
cannot "$sa_default" default create jobs.batch
cannot "$sa_default" default list datalakes.aurum.dev
cannot "$sa_default" "$ns_default" list datalakes.aurum.dev --all-namespaces
cannot "$sa_default" "$ns_default" delete nodes
cannot "$sa_default" "$ns_default" list namespaces
cannot "$sa_default" "$ns_default" create clusterroles.rbac.authorization.k8s.io
cannot "$sa_default" "$ns_default" create clusterrolebindings.rbac.authorization.k8s.io
cannot "$sa_default" "$ns_default" create customresourcedefinitions.apiextensions.k8s.io
cannot "$sa_default" "$ns_default" '*' '*'

echo "     cluster scope (operator.scope=cluster):"
check "cluster scope: can-i --list in its namespace is exactly the documented rules" bash -c "
  diff <(expected_ns_rules) <(can_list '$sa_cluster' '$ns_cluster')"
check "cluster scope: elsewhere, the documented rules less the Lease" bash -c "
  diff <(expected_ns_rules | grep -v '^leases') <(can_list '$sa_cluster' default)"
can "$sa_cluster" default list datalakes.aurum.dev --all-namespaces
can "$sa_cluster" default watch datamarts.aurum.dev --all-namespaces
can "$sa_cluster" default watch jobs.batch --all-namespaces
can "$sa_cluster" "$ns_quick" create jobs.batch
can "$sa_cluster" "$ns_quick" get secrets/aurum-database
cannot "$sa_cluster" default list secrets --all-namespaces
cannot "$sa_cluster" kube-system list secrets
cannot "$sa_cluster" default create leases.coordination.k8s.io
cannot "$sa_cluster" "$ns_cluster" delete nodes
cannot "$sa_cluster" "$ns_cluster" create clusterroles.rbac.authorization.k8s.io
cannot "$sa_cluster" "$ns_cluster" create pods

echo "     the job-runner's ServiceAccount has no rights and no token:"
sa_runner=system:serviceaccount:$ns_quick:aurum-job-runner
cannot "$sa_runner" "$ns_quick" get secrets
cannot "$sa_runner" "$ns_quick" list pods
cannot "$sa_runner" "$ns_quick" get datalakes.aurum.dev
check "job-runner ServiceAccount: automountServiceAccountToken false" bash -c "
  [ \"\$('$kubectl' -n '$ns_quick' get sa aurum-job-runner -o jsonpath='{.automountServiceAccountToken}')\" = false ]"
check "API, dashboard, PostgreSQL, HDFS and loader pods mount no API token" bash -c "
  '$kubectl' -n '$ns_quick' get deploy/aurum-api deploy/aurum-dashboard sts/aurum-postgresql \
    sts/aurum-hdfs-namenode sts/aurum-hdfs-datanode job/aurum-load-source-1 \
    -o jsonpath='{range .items[*]}{.metadata.name}={.spec.template.spec.automountServiceAccountToken}{\"\\n\"}{end}' |
    tee /dev/stderr | awk '/=false$/ {n++} END {exit n != 6 || NR != 6}'"

waits() { # waits DESCRIPTION SECONDS COMMAND...: polls until the command succeeds
  local what=$1 secs=$2 _; shift 2
  for _ in $(seq 1 $((secs * 2))); do
    if "$@" > "$work/out" 2>&1; then pass "$what"; return; fi
    sleep 0.5
  done
  fail "$what"; sed 's/^/     /' "$work/out" | tail -5
}

# ---------------------------------------------------------------------------
# The real operator binary, configured from the applied Deployment's environment
# and authenticated as its ServiceAccount (impersonated): what it does on the
# quickstart resources must all be allowed.
if [ -n "${AURUM_OPERATOR_BIN:-}" ] && [ -x "$AURUM_OPERATOR_BIN" ]; then
  section "the operator itself, as its ServiceAccount, on the quickstart release"
  python3 - "$KUBECONFIG" "$work/operator.kubeconfig" "system:serviceaccount:$ns_quick:aurum-operator" <<'PY'
import sys
src, dst, who = sys.argv[1:]
text = open(src).read()
users = text.index("users:")
ctx = text.index("contexts:")
block = text[users:ctx].replace("  user:\n", "  user:\n    as: " + who + "\n", 1)
open(dst, "w").write(text[:users] + block + text[ctx:])
PY
  port=18080
  while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
  "$kubectl" -n "$ns_quick" patch datamart monthly-sales --type merge \
    -p '{"spec":{"deletionPolicy":"Delete"}}' >/dev/null
  operator_args=$("$kubectl" -n "$ns_quick" get deploy aurum-operator \
    -o jsonpath='{.spec.template.spec.containers[0].args[*]}')
  "$kubectl" -n "$ns_quick" get deploy aurum-operator \
    -o jsonpath='{range .spec.template.spec.containers[0].env[?(@.value)]}{.name}={.value}{"\n"}{end}' \
    > "$work/operator.env"
  echo "     operator $operator_args, environment from the Deployment: $(cut -d= -f1 "$work/operator.env" | tr '\n' ' ')"
  (
    while IFS='=' read -r k v; do [ -n "$k" ] && export "$k=$v"; done < "$work/operator.env"
    export KUBECONFIG=$work/operator.kubeconfig AURUM_LISTEN=127.0.0.1:$port \
      POD_NAME=validate-operator POD_NAMESPACE=$ns_quick AURUM_LOG_FORMAT=json
    # shellcheck disable=SC2086 # the Deployment's args, split as the kubelet would
    exec "$AURUM_OPERATOR_BIN" $operator_args
  ) > "$work/operator.log" 2>&1 &
  operator_pid=$!

  waits "operator ready on /readyz" 60 curl -sf "http://127.0.0.1:$port/readyz"
  waits "it holds its leader Lease (aurum-operator, in the release namespace)" 60 bash -c "
    '$kubectl' -n '$ns_quick' get lease aurum-operator -o jsonpath='{.spec.holderIdentity}' | grep -q '^validate-operator'"
  waits "it created the DataLake's ingest Job" 60 bash -c "
    '$kubectl' -n '$ns_quick' get jobs -l aurum.dev/datalake=lake,app.kubernetes.io/managed-by=aurum-operator -o name | grep -q ingest"
  waits "it wrote the DataLake's status (phase Running)" 60 bash -c "
    [ \"\$('$kubectl' -n '$ns_quick' get datalake lake -o jsonpath='{.status.phase}')\" = Running ]"
  waits "it wrote the Datamarts' status, and the finalizer of the Delete-policy one only" 60 bash -c "
    [ \"\$('$kubectl' -n '$ns_quick' get datamart top-products -o jsonpath='{.status.phase}/{.metadata.finalizers}')\" = Pending/ ] &&
    [ \"\$('$kubectl' -n '$ns_quick' get datamart monthly-sales -o jsonpath='{.metadata.finalizers[0]}')\" = aurum.dev/gold-table ]"
  waits "it recorded a RunStarted event (events.k8s.io)" 60 bash -c "
    '$kubectl' -n '$ns_quick' get events.events.k8s.io -o jsonpath='{range .items[*]}{.reportingController}/{.reason}{\"\\n\"}{end}' | grep -q '^aurum-operator/RunStarted'"
  "$kubectl" -n "$ns_quick" delete datamart monthly-sales --wait=false >/dev/null
  # deletionPolicy Delete: it reads the database Secret, then fails to reach the
  # quickstart PostgreSQL (no pods run here); a missing permission would say forbidden.
  waits "deleting a Delete-policy Datamart: it read the database Secret and tried PostgreSQL" 60 bash -c "
    '$kubectl' -n '$ns_quick' get events.events.k8s.io -o jsonpath='{range .items[*]}{.reason}: {.note}{\"\\n\"}{end}' |
      grep '^GoldTableDrop' | grep -q 'PostgreSQL'"
  # A run that ends: a second DataLake whose Jobs may run 10 s. No pod starts
  # here, so kube-controller-manager's Job controller fails the Job
  # (DeadlineExceeded) and the operator records a failed run (what the
  # runs_finished and run_duration series count).
  "$kubectl" -n "$ns_quick" get datalake lake -o json | python3 -c '
import json, sys
o = json.load(sys.stdin)
spec = dict(o["spec"], runDeadlineSeconds=10, maxRetries=0)
print(json.dumps({"apiVersion": o["apiVersion"], "kind": o["kind"],
                  "metadata": {"name": "deadline", "namespace": o["metadata"]["namespace"]}, "spec": spec}))' |
    "$kubectl" apply -f - >/dev/null
  waits "a run whose Job the Job controller fails (runDeadlineSeconds 10) is recorded as Failed" 90 bash -c "
    '$kubectl' -n '$ns_quick' get datalake deadline -o jsonpath='{.status.runs[0].outcome}' | grep -qx Failed"
  # What it exports after that work, for the monitoring names check below.
  check "its /metrics answers" curl -sf -o "$work/metrics-operator.txt" "http://127.0.0.1:$port/metrics"
  kill "$operator_pid" 2>/dev/null || true
  wait "$operator_pid" 2>/dev/null || true
  check "no request of the operator was forbidden" bash -c "! grep -iE 'forbidden|\\b403\\b' '$work/operator.log'"
  # Nothing runs the finalizer any more: let the namespace go.
  for dm in $("$kubectl" -n "$ns_quick" get datamarts -o name 2>/dev/null); do
    "$kubectl" -n "$ns_quick" patch "$dm" --type merge -p '{"metadata":{"finalizers":null}}' >/dev/null 2>&1 || true
  done
else
  echo
  echo "     (AURUM_OPERATOR_BIN not set: the real operator is not run as its ServiceAccount)"
fi

# ---------------------------------------------------------------------------
# The real API and dashboard binaries, run with the environment, files and init
# command of the applied Deployments (paths moved under a scratch root): the
# generated admin password logs in, and the probes answer. The API needs a
# PostgreSQL (DATABASE_URL; the tests' own), the dashboard that API.
free_port() { local p=$1; while (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; do p=$((p + 1)); done; echo "$p"; }
deploy_env() { # deploy_env DEPLOYMENT: its container's plain NAME=VALUE environment
  "$kubectl" -n "$ns_quick" get deploy "$1" \
    -o jsonpath='{range .spec.template.spec.containers[0].env[?(@.value)]}{.name}={.value}{"\n"}{end}'
}
secret_value() { "$kubectl" -n "$ns_quick" get secret "$1" -o jsonpath="{.data.$2}" | base64 -d; }
# run_with_env ENVFILE LOG COMMAND...: in the background, the chart's absolute
# paths under $work/root.
run_with_env() {
  local envfile=$1 log=$2; shift 2
  (
    while IFS='=' read -r k v; do
      [ -n "$k" ] || continue
      case $v in /*) v=$work/root$v ;; esac
      export "$k=$v"
    done < "$envfile"
    exec "$@"
  ) > "$log" 2>&1 &
  echo $!
}
if [ -n "${AURUM_API_BIN:-}" ] && [ -x "$AURUM_API_BIN" ] && [ -n "${DATABASE_URL:-}" ]; then
  section "the API and dashboard binaries with the chart's configuration"
  root=$work/root
  mkdir -p "$root/etc/aurum/jwt" "$root/etc/aurum/admin" "$root/var/run/aurum/users" "$root/bin"
  ln -sf "$(cd "$(dirname "$AURUM_API_BIN")" && pwd)/$(basename "$AURUM_API_BIN")" "$root/bin/aurum-api"
  secret_value aurum-jwt jwt-secret > "$root/etc/aurum/jwt/jwt-secret"
  secret_value aurum-api-admin password > "$root/etc/aurum/admin/password"
  admin_user=$(secret_value aurum-api-admin username)
  # The users-file init container's own command, paths under the scratch root.
  init_script=$("$kubectl" -n "$ns_quick" get deploy aurum-api \
    -o jsonpath='{.spec.template.spec.initContainers[0].command[2]}')
  init_script=${init_script//\/etc\/aurum\//$root/etc/aurum/}
  init_script=${init_script//\/var\/run\/aurum\//$root/var/run/aurum/}
  check "users-file init container: hashes the generated admin password into a users line" bash -c "
    PATH='$root/bin':\$PATH ADMIN_USERNAME='$admin_user' /bin/sh -ec '$init_script' &&
    grep -qE '^$admin_user:\\\$argon2id\\\$[^:]+:admin\$' '$root/var/run/aurum/users/users'"
  api_port=$(free_port 18100)
  flight_port=$(free_port $((api_port + 1)))
  deploy_env aurum-api | grep -v '^AURUM_LISTEN=\|^AURUM_FLIGHT_LISTEN=' > "$work/api.env"
  echo "     aurum-api, environment from the Deployment: $(cut -d= -f1 "$work/api.env" | tr '\n' ' ')"
  # Gold of the sample in a database of its own, so that the API serves
  # datamarts and its per-datamart series exist for the monitoring section.
  api_database_url=$DATABASE_URL
  if [ -n "${AURUM_JOB_RUNNER_BIN:-}" ] && [ -x "$AURUM_JOB_RUNNER_BIN" ]; then
    api_database_url="${DATABASE_URL%/*}/aurum_validate"
    psql -q "$DATABASE_URL" -c 'DROP DATABASE IF EXISTS aurum_validate' -c 'CREATE DATABASE aurum_validate'
    check "the job-runner loads the sample's gold for the API" \
      "$AURUM_JOB_RUNNER_BIN" run --source "$repo/source" --lake "$work/lake" --database-url "$api_database_url" \
      > "$work/run-report.json" 2> "$work/run.log"
  fi
  printf '%s\n' "AURUM_LISTEN=127.0.0.1:$api_port" "AURUM_FLIGHT_LISTEN=127.0.0.1:$flight_port" \
    "DATABASE_URL=$api_database_url" >> "$work/api.env"
  api_pid=$(run_with_env "$work/api.env" "$work/api.log" "$AURUM_API_BIN")
  waits "API /healthz answers 200 (the liveness probe)" 60 curl -sf "http://127.0.0.1:$api_port/healthz"
  waits "API /readyz answers 200 (the readiness probe; PostgreSQL reachable)" 60 \
    curl -sf "http://127.0.0.1:$api_port/readyz"
  waits "API Flight SQL listens where AURUM_FLIGHT_LISTEN says (the flight-sql port)" 30 \
    bash -c "exec 3<>/dev/tcp/127.0.0.1/$flight_port"
  check "the generated admin logs in: POST /login gives a bearer token" bash -c "
    curl -sf 'http://127.0.0.1:$api_port/login' -H 'Content-Type: application/json' \
      -d \"{\\\"username\\\":\\\"$admin_user\\\",\\\"password\\\":\\\"\$(cat '$root/etc/aurum/admin/password')\\\"}\" |
      grep -q '\"token_type\":\"bearer\"'"
  check "a wrong password is refused (401)" bash -c "
    [ \"\$(curl -s -o /dev/null -w '%{http_code}' 'http://127.0.0.1:$api_port/login' -H 'Content-Type: application/json' \
      -d '{\"username\":\"$admin_user\",\"password\":\"not-the-password\"}')\" = 401 ]"
  if [ -n "${AURUM_DASHBOARD_BIN:-}" ] && [ -x "$AURUM_DASHBOARD_BIN" ]; then
    dash_port=$(free_port $((flight_port + 1)))
    deploy_env aurum-dashboard | grep -v '^AURUM_LISTEN=\|^AURUM_API_URL=' > "$work/dashboard.env"
    printf '%s\n' "AURUM_LISTEN=127.0.0.1:$dash_port" "AURUM_API_URL=http://127.0.0.1:$api_port" \
      >> "$work/dashboard.env"
    check "the dashboard's AURUM_API_URL is the API Service of the release" bash -c "
      '$kubectl' -n '$ns_quick' get deploy aurum-dashboard -o jsonpath='{.spec.template.spec.containers[0].env[?(@.name==\"AURUM_API_URL\")].value}' |
        grep -qx 'http://aurum-api:8000'"
    dashboard_pid=$(run_with_env "$work/dashboard.env" "$work/dashboard.log" "$AURUM_DASHBOARD_BIN")
    waits "dashboard /healthz answers 200" 60 curl -sf "http://127.0.0.1:$dash_port/healthz"
    waits "dashboard /readyz answers 200 (the API reachable)" 60 curl -sf "http://127.0.0.1:$dash_port/readyz"
    kill "$dashboard_pid" 2>/dev/null || true
  else
    echo "     (AURUM_DASHBOARD_BIN not set: the dashboard binary is not run)"
  fi
  check "API /metrics answers" curl -sf -o "$work/metrics-api.txt" "http://127.0.0.1:$api_port/metrics"
  # The API's Ingress names the API's routes one by one (to leave out /metrics
  # and /docs): every route of the running API's OpenAPI document must be
  # among them, and every one of them a route the API answers.
  ingress_covers_api() {
    curl -sf "http://127.0.0.1:$api_port/openapi.json" > "$work/openapi.json" &&
      "$kubectl" -n "$ns_quick" get ingress aurum-api -o json > "$work/api-ingress.json" &&
      python3 - "$work/openapi.json" "$work/api-ingress.json" "http://127.0.0.1:$api_port" <<'PY'
import json, sys, urllib.error, urllib.request
api = set(json.load(open(sys.argv[1]))["paths"])
rules = [(p["path"], p["pathType"]) for r in json.load(open(sys.argv[2]))["spec"]["rules"]
         for p in r["http"]["paths"]]
def routed(path):
    return any(path == rp or (t == "Prefix" and path.startswith(rp.rstrip("/") + "/")) for rp, t in rules)
def status(path):
    try:
        return urllib.request.urlopen(sys.argv[3] + path).status
    except urllib.error.HTTPError as e:
        return e.code
hidden = ("/metrics", "/docs/", "/openapi.json")  # routed only with exposeMetrics/exposeDocs
bad = [f"{p}: in the OpenAPI document, not routed" for p in sorted(api) if not routed(p) and p not in hidden]
for rp, t in rules:
    if t == "Prefix" and not any(p.startswith(rp + "/") for p in api):
        bad.append(f"{rp}: a Prefix rule without an API path under it")
    if t == "Exact" and rp not in api and status(rp) != 200:
        bad.append(f"{rp}: not in the OpenAPI document and GET gives {status(rp)}")
for p in hidden:
    if routed(p):
        bad.append(p + ": routed by default")
print(len(api), "API paths,", len(rules), "Ingress rules")
print("\n".join(bad))
sys.exit(1 if bad else 0)
PY
  }
  check "the API's Ingress routes every path of the API's OpenAPI document, and only routes the API has" \
    ingress_covers_api
  kill "$api_pid" 2>/dev/null || true
  if [ "$failed" != 0 ]; then tail -5 "$work/api.log" | sed 's/^/     api: /'; fi
else
  echo
  echo "     (AURUM_API_BIN or DATABASE_URL not set: the API and dashboard binaries are not run)"
fi

# ---------------------------------------------------------------------------
# The real job-runner's Ballista entry points (AURUM_JOB_RUNNER_BIN, when it has
# them), started with the arguments and plain environment of the chart's
# scheduler and executor Deployments: ports moved to free ones, the scheduler
# Service's name and $(POD_IP) to loopback, /tmp to a scratch folder. The
# executor must register with the scheduler (its /readyz count).
runner=${AURUM_JOB_RUNNER_BIN:-}
if [ -n "$runner" ] && [ -x "$runner" ] && "$runner" ballista-scheduler --help >/dev/null 2>&1; then
  section "the job-runner's Ballista scheduler and executor, as the chart starts them"
  bsp=$(free_port 29650); bfp=$(free_port $((bsp + 1))); bgp=$(free_port $((bfp + 1)))
  "$helm" template aurum "$chart" --set ballista.enabled=true --set ballista.scheduler.port="$bsp" \
    --set ballista.executors.flightPort="$bfp" --set ballista.executors.grpcPort="$bgp" \
    --set ballista.executors.concurrentTasks=1 --show-only templates/ballista.yaml |
    "$kubectl" create --dry-run=client -o json -f - > "$work/ballista.json"
  ballista_cmd() { # ballista_cmd DEPLOYMENT OUT: writes OUT.args and OUT.env
    python3 - "$work/ballista.json" "$1" "$2" "$work/root" "$here" <<'PY'
import sys
sys.path.insert(0, sys.argv[5])
from rendered import read_objects
objects, name, out, root = read_objects(open(sys.argv[1]).read()), sys.argv[2], sys.argv[3], sys.argv[4]
c = next(o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == name)["spec"]["template"]["spec"]["containers"][0]
def local(v):
    v = v.replace("$(POD_IP)", "127.0.0.1").replace("aurum-ballista-scheduler:", "127.0.0.1:")
    return root + v if v.startswith("/tmp") else v
open(out + ".args", "w").write("\n".join(local(a) for a in c["args"]) + "\n")
# run_with_env moves absolute paths of the environment under the scratch root itself.
open(out + ".env", "w").write("".join(f"{e['name']}={e['value']}\n" for e in c.get("env", []) if "value" in e))
PY
  }
  ballista_start() { # ballista_start DEPLOYMENT LOG: in the background
    local out=$work/$1 args=()
    ballista_cmd "$1" "$out"
    mapfile -t args < "$out.args"
    mkdir -p "$work/root/tmp"
    ballista_pids+=("$(run_with_env "$out.env" "$2" "$runner" "${args[@]}")")
  }
  ballista_start aurum-ballista-scheduler "$work/ballista-scheduler.log"
  waits "the scheduler listens on the chart's port ($bsp)" 30 bash -c "exec 3<>/dev/tcp/127.0.0.1/$bsp"
  ballista_start aurum-ballista-executor "$work/ballista-executor.log"
  waits "the executor, started with the chart's arguments, registers with the scheduler" 60 \
    bash -c "[ \"\$(curl -s --max-time 2 http://127.0.0.1:$bsp/readyz | sed -n 's/^[a-z ]*: \([0-9]*\)[/ ].*/\1/p')\" = 1 ]"
  check "the executor serves Flight and gRPC on the chart's ports ($bfp, $bgp): what its probes dial" \
    bash -c "exec 3<>/dev/tcp/127.0.0.1/$bfp && exec 4<>/dev/tcp/127.0.0.1/$bgp"
  kill "${ballista_pids[@]}" 2>/dev/null || true
  if [ "$failed" != 0 ]; then tail -5 "$work/ballista-scheduler.log" "$work/ballista-executor.log" | sed 's/^/     /'; fi
else
  echo
  echo "     (AURUM_JOB_RUNNER_BIN not set, or without ballista-scheduler: the chart's Ballista commands are not run)"
fi

# ---------------------------------------------------------------------------
# Every metric the PrometheusRule and the Grafana dashboard name is one the real
# binaries export (their /metrics after the runs above; a family counts even
# while it has no series yet), or one of Prometheus (up) or kube-state-metrics.
if [ -s "$work/metrics-operator.txt" ] && [ -s "$work/metrics-api.txt" ]; then
  section "monitoring: the rules and the dashboard name real metrics"
  check "every metric in the rules and the dashboard is exported by the operator or the API" \
    python3 - "$work/metric-names" "$work/metrics-operator.txt" "$work/metrics-api.txt" <<'PY'
import re, sys
used = open(sys.argv[1]).read().split()
suffixes = {"counter": ["_total", "_created"], "histogram": ["_bucket", "_sum", "_count", "_created"],
            "gauge": [""], "untyped": [""], "unknown": [""], "summary": ["", "_sum", "_count"]}
known = set()
for f in sys.argv[2:]:
    for line in open(f):
        m = re.match(r"# TYPE (\S+) (\S+)", line)
        if m:
            name, kind = m.groups()
            known.add(name)
            known.update(name + s for s in suffixes.get(kind, [""]))
        elif line and not line.startswith("#"):
            known.add(re.split(r"[{ ]", line, maxsplit=1)[0])
# Not Aurum's: Prometheus's own target health, kube-state-metrics' Deployment status.
external = {"up", "kube_deployment_status_replicas_unavailable"}
# The API's Flight SQL families have series only after a Flight call, which this
# script does not make; api/src/metrics.rs's keeps_the_series_names checks them.
external |= {"aurum_api_flight_calls_total", "aurum_api_flight_call_duration_seconds_bucket",
             "aurum_api_flight_call_duration_seconds_sum", "aurum_api_flight_call_duration_seconds_count",
             "aurum_api_flight_rows_total"}
missing = [n for n in used if n not in known and n not in external]
print(f"{len(used)} names used, {len(known)} exported names known")
if missing:
    print("not exported: " + " ".join(missing))
sys.exit(1 if missing or not used else 0)
PY
else
  echo
  echo "     (the operator or the API did not run: the metric names of the rules and dashboard are not checked)"
fi

# ---------------------------------------------------------------------------
section "pod security of the applied workloads"
for ns in "$ns_quick" "$ns_ballista"; do
check "every container (${ns%-$suffix}): non-root, read-only root filesystem, no privilege escalation, capabilities dropped" bash -c "
  '$kubectl' get deploy,sts,job -n '$ns' -l app.kubernetes.io/managed-by=Helm -o json | python3 -c '
import json, sys
bad = []
for obj in json.load(sys.stdin)[\"items\"]:
    pod = obj[\"spec\"][\"template\"][\"spec\"]
    psc = pod.get(\"securityContext\", {})
    for c in pod.get(\"initContainers\", []) + pod[\"containers\"]:
        sc = c.get(\"securityContext\", {})
        where = obj[\"kind\"] + \"/\" + obj[\"metadata\"][\"name\"] + \" \" + c[\"name\"]
        if not (sc.get(\"runAsNonRoot\", psc.get(\"runAsNonRoot\")) and psc.get(\"runAsUser\", sc.get(\"runAsUser\", 0)) != 0):
            bad.append(where + \": may run as root\")
        if sc.get(\"readOnlyRootFilesystem\") is not True: bad.append(where + \": writable root filesystem\")
        if sc.get(\"allowPrivilegeEscalation\") is not False: bad.append(where + \": privilege escalation\")
        if \"ALL\" not in sc.get(\"capabilities\", {}).get(\"drop\", []): bad.append(where + \": capabilities kept\")
    if psc.get(\"seccompProfile\", {}).get(\"type\") != \"RuntimeDefault\": bad.append(obj[\"metadata\"][\"name\"] + \": no RuntimeDefault seccomp\")
print(\"\\n\".join(bad)); sys.exit(1 if bad else 0)'"
done
check "probes on /healthz and /readyz for the operator, API and dashboard" bash -c "
  '$kubectl' -n '$ns_quick' get deploy -o jsonpath='{range .items[*]}{.metadata.name} {.spec.template.spec.containers[0].livenessProbe.httpGet.path} {.spec.template.spec.containers[0].readinessProbe.httpGet.path}{\"\\n\"}{end}' |
    tee /dev/stderr | awk '\$2 == \"/healthz\" && \$3 == \"/readyz\" {n++} END {exit n != 3 || NR != 3}'"
check "API Service exposes REST :8000 and Flight SQL :50051; dashboard :8050" bash -c "
  [ \"\$('$kubectl' -n '$ns_quick' get svc aurum-api -o jsonpath='{.spec.ports[*].port}')\" = '8000 50051' ] &&
  [ \"\$('$kubectl' -n '$ns_quick' get svc aurum-dashboard -o jsonpath='{.spec.ports[*].port}')\" = 8050 ]"

# ---------------------------------------------------------------------------
section "the quickstart HDFS configuration"
hadoop_lib=${AURUM_CACHE:-$HOME/.cache/aurum}/hdfs/lib
if compgen -G "$hadoop_lib/hadoop-hdfs-[0-9]*.jar" >/dev/null; then
  check "core-site.xml and hdfs-site.xml parse, and every property is one Hadoop knows" bash -c "
    '$kubectl' -n '$ns_quick' get configmap aurum-hadoop-conf -o json | python3 -c '
import glob, json, re, sys, zipfile
import xml.etree.ElementTree as ET
known = set()
for jar in glob.glob(sys.argv[1] + \"/hadoop-*.jar\"):
    with zipfile.ZipFile(jar) as z:
        for n in z.namelist():
            if n in (\"core-default.xml\", \"hdfs-default.xml\"):
                known.update(re.findall(r\"<name>([^<]+)</name>\", z.read(n).decode()))
data = json.load(sys.stdin)[\"data\"]
bad = []
for f in (\"core-site.xml\", \"hdfs-site.xml\"):
    for p in ET.fromstring(data[f]).iter(\"property\"):
        name = p.findtext(\"name\")
        if name not in known: bad.append(f + \": unknown property \" + name)
        else: print(\"     \" + f + \": \" + name + \" = \" + p.findtext(\"value\"))
print(chr(10).join(bad)); sys.exit(1 if bad or len(known) < 500 else 0)' '$hadoop_lib'"
  sed 's/^/ /' "$work/out" | grep '^      ' | head -20
else
  echo "     (no Hadoop jars in $hadoop_lib: run testenv/hdfs.sh once to check the property names)"
fi

# ---------------------------------------------------------------------------
section "helm install and upgrade: generated secrets are made once"
secret_digest() { # the data of the generated Secrets, hashed
  "$kubectl" -n "$ns_install" get secret aurum-jwt aurum-api-admin aurum-postgresql aurum-database \
    -o jsonpath='{range .items[*]}{.metadata.name}={.data}{"\n"}{end}' | sha256sum | cut -c1-16
}
check "helm install (quickstart values) into a fresh namespace" \
  "$helm" install aurum "$chart" -n "$ns_install" --create-namespace -f "$quickstart"
before=$(secret_digest 2>/dev/null || echo none)
check "helm upgrade (same values, then a changed one)" bash -c "
  '$helm' upgrade aurum '$chart' -n '$ns_install' -f '$quickstart' &&
  '$helm' upgrade aurum '$chart' -n '$ns_install' -f '$quickstart' --set api.replicas=2"
after=$(secret_digest 2>/dev/null || echo none)
if [ "$before" != none ] && [ "$before" = "$after" ]; then
  pass "JWT key, admin password, PostgreSQL password and URL unchanged by two upgrades ($after)"
else
  fail "generated secrets changed on upgrade ($before -> $after)"
fi
check "helm upgrade ran a new loader Job (revision 3) and removed the old ones" bash -c "
  [ \"\$('$kubectl' -n '$ns_install' get jobs -l app.kubernetes.io/component=source-loader -o name)\" = job.batch/aurum-load-source-3 ]"
check "NOTES.txt tells how to log in and where the dashboard is" bash -c "
  '$helm' status aurum -n '$ns_install' | tee '$work/notes' >/dev/null &&
  grep -q 'get secret aurum-api-admin' '$work/notes' && grep -q 'http://api.aurum.local/login' '$work/notes' &&
  grep -q 'http://dashboard.aurum.local/' '$work/notes'"
check "helm uninstall keeps the generated secrets (helm.sh/resource-policy: keep)" bash -c "
  '$helm' uninstall aurum -n '$ns_install' >/dev/null &&
  '$kubectl' -n '$ns_install' get secret aurum-jwt aurum-api-admin aurum-postgresql >/dev/null"

echo
echo "validate.sh: took $((SECONDS - started)) s"
echo "chart: $passed passed, $failed failed"
[ "$failed" = 0 ]
