# shellcheck shell=bash disable=SC2154,SC2034 # me, state, ns, release come from the sourcing script; helm, kubectl go to it
# Shared by the scripts that test the chart on the real node (quickstart.sh,
# ballista.sh); sourced, not run. Before sourcing, set `me` (the script's name,
# the prefix of its log lines) and `state` (its state folder); the current
# directory is the repository.
#
#   check NAME COMMAND...   one check: "ok   - NAME" or "FAIL - NAME"
#   figure NAME VALUE       a measured figure, logged and listed by `finish`
#   wait_for SECONDS WHAT COMMAND...  polls COMMAND every 2 s until it succeeds
#   node_start              testenv/cluster.sh in $state/cluster: KUBECONFIG,
#                           $kubectl, k (kubectl -n $ns)
#   helm_bin                $helm (AURUM_HELM_BIN, else testenv/helm.sh)
#   images_import           scripts/images.sh all, imported into the node
#   helm_install NAME ARGS... check NAME: `helm install $release ARGS --wait` into
#                           a fresh namespace $ns enforcing Pod Security restricted
#   finish                  the figures, "N passed, N failed", its status

passed=0
failed=0
log() { echo "$me: $*" >&2; }
pass() { passed=$((passed + 1)); echo "ok   - $*"; }
fail() { failed=$((failed + 1)); echo "FAIL - $*"; }
check() {
  local name=$1
  shift
  if "$@"; then pass "$name"; else fail "$name"; fi
}
declare -A figures=()
figure() { figures[$1]=$2; log "figure: $1 = $2"; }

wait_for() {
  local limit=$1 what=$2 deadline=$((SECONDS + $1))
  shift 2
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then
      log "timed out after ${limit}s waiting for $what"
      return 1
    fi
    sleep 2
  done
}

node_start() {
  local t=$SECONDS service_env
  service_env=$(testenv/cluster.sh start "$state/cluster")
  eval "$service_env"
  export KUBECONFIG
  figure "node start (s)" $((SECONDS - t))
  kubectl=$AURUM_KUBE_BIN/kubectl
}
k() { "$kubectl" -n "$ns" "$@"; }

helm_bin() {
  local service_env
  if [ -z "${AURUM_HELM_BIN:-}" ]; then
    service_env=$(testenv/helm.sh)
    eval "$service_env"
  fi
  helm=$AURUM_HELM_BIN/helm
}

images_import() {
  local t=$SECONDS service_env
  service_env=$(scripts/images.sh all)
  eval "$service_env"
  # shellcheck disable=SC2086
  testenv/cluster.sh import "$state/cluster" $AURUM_IMAGE_ARCHIVES >&2
  figure "images build and import (s)" $((SECONDS - t))
}

helm_install() {
  local name=$1
  shift
  "$helm" uninstall "$release" -n "$ns" --wait --timeout 2m >/dev/null 2>&1 || true
  "$kubectl" create namespace "$ns" --dry-run=client -o yaml | "$kubectl" apply -f - >/dev/null
  "$kubectl" label namespace "$ns" --overwrite \
    pod-security.kubernetes.io/enforce=restricted pod-security.kubernetes.io/warn=restricted >/dev/null
  check "$name" "$helm" install "$release" "$@" --wait --wait-for-jobs --timeout 15m
}

finish() {
  local f
  log "figures:"
  for f in "${!figures[@]}"; do echo "  $f: ${figures[$f]}"; done | sort >&2
  echo "$passed passed, $failed failed"
  [ "$failed" = 0 ]
}
