#!/usr/bin/env bash
# Traefik as the test cluster's ingress controller: a host process that watches
# the cluster's Ingresses, IngressClasses, Services and EndpointSlices and serves
# them on loopback ports: HTTP, and HTTPS with the certificates of the Ingresses'
# `tls` sections (chosen by SNI; Traefik's own self-signed one for other hosts).
#
#   testenv/ingress.sh build       build (once) Traefik into
#                                  ~/.cache/aurum/ingress/traefik-<version>/bin
#   testenv/ingress.sh start DIR   (KUBECONFIG set: a cluster-admin kubeconfig)
#                                  build if needed; create the namespace
#                                  aurum-ingress, Traefik's ServiceAccount and RBAC,
#                                  and the default IngressClass `traefik`; start
#                                  Traefik with that ServiceAccount's token, state
#                                  and logs in DIR; prints AURUM_INGRESS_URL=...
#   testenv/ingress.sh stop DIR    stop it (the cluster objects stay; a new start
#                                  applies them again)
#   testenv/ingress.sh bin         print the directory holding the binary
#
# Built from the Go module proxy with the local Go toolchain: testenv/ingress/ is
# a module requiring github.com/traefik/traefik/v3 and repeating Traefik's own
# replace lines (the go command honours only the main module's). Traefik is pure
# Go and proxies to the endpoints of the EndpointSlices itself: nothing from apt.
#
# The Ingress status gets 127.0.0.1 (what a client on this machine dials). Ingresses
# without ingressClassName get `traefik` from the API server's DefaultIngressClass
# admission when they are created AFTER the class exists: start this before
# `helm install`. Traefik ignores Ingresses that have neither a class nor the
# `kubernetes.io/ingress.class: traefik` annotation.
set -euo pipefail

TRAEFIK_VERSION=v3.6.12
NAMESPACE=aurum-ingress
CLASS=traefik

here=$(cd "$(dirname "$0")" && pwd)
cache=${AURUM_INGRESS_CACHE:-$HOME/.cache/aurum/ingress}
bindir="$cache/traefik-$TRAEFIK_VERSION/bin"

log() { echo "ingress.sh: $*" >&2; }
die() { echo "ingress.sh: $*" >&2; exit 1; }

export GOTOOLCHAIN=local GOFLAGS=-mod=mod
export GONOSUMDB=${GONOSUMDB:-k8s.io,sigs.k8s.io}

build() {
  [ -x "$bindir/traefik" ] && return 0
  command -v go >/dev/null || die "go not found; install Go >= 1.25 and retry"
  grep -q "github.com/traefik/traefik/v3 $TRAEFIK_VERSION" "$here/ingress/go.mod" ||
    die "testenv/ingress/go.mod does not require traefik $TRAEFIK_VERSION; update both together"
  mkdir -p "$bindir"
  local t0=$SECONDS v="github.com/traefik/traefik/v3/pkg/version"
  log "building traefik $TRAEFIK_VERSION (once; 2.4 GB of modules, 10-20 minutes on 2 busy cores)"
  (cd "$here/ingress" && nice -n 10 go build -trimpath \
    -ldflags "-s -w -X $v.Version=$TRAEFIK_VERSION -X $v.Codename=aurum-testenv" \
    -o "$bindir/traefik.tmp" github.com/traefik/traefik/v3/cmd/traefik) >&2
  mv "$bindir/traefik.tmp" "$bindir/traefik"
  log "built in $((SECONDS - t0))s into $bindir"
}

kubectl_bin() {
  local d=${AURUM_KUBE_BIN:-$("$here/kube.sh" bin)}
  [ -x "$d/kubectl" ] || die "no kubectl in $d; run testenv/kube.sh build first"
  echo "$d/kubectl"
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_port() {
  local p=$1
  while ! port_free "$p"; do p=$((p + 1)); done
  echo "$p"
}

running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

print_env() {
  local dir=$1
  echo "AURUM_INGRESS_URL=http://127.0.0.1:$(cat "$dir/web.port")"
  echo "AURUM_INGRESS_HTTPS_URL=https://127.0.0.1:$(cat "$dir/websecure.port")"
  echo "AURUM_INGRESS_CLASS=$CLASS"
  # Traefik's own API (routers, services, errors) and /ping, for debugging.
  echo "AURUM_INGRESS_API_URL=http://127.0.0.1:$(cat "$dir/api.port")"
}

# What the upstream Helm chart grants Traefik for its Kubernetes Ingress provider.
manifests() {
  cat <<EOF
apiVersion: v1
kind: Namespace
metadata:
  name: $NAMESPACE
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: traefik
  namespace: $NAMESPACE
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: aurum-traefik
rules:
  - apiGroups: [""]
    resources: [services, secrets, nodes]
    verbs: [get, list, watch]
  - apiGroups: [discovery.k8s.io]
    resources: [endpointslices]
    verbs: [get, list, watch]
  - apiGroups: [networking.k8s.io]
    resources: [ingresses, ingressclasses]
    verbs: [get, list, watch]
  - apiGroups: [networking.k8s.io]
    resources: [ingresses/status]
    verbs: [update]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: aurum-traefik
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: aurum-traefik
subjects:
  - kind: ServiceAccount
    name: traefik
    namespace: $NAMESPACE
---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: $CLASS
  annotations:
    ingressclass.kubernetes.io/is-default-class: "true"
spec:
  controller: traefik.io/ingress-controller
EOF
}

# A kubeconfig for Traefik's ServiceAccount: the cluster of $KUBECONFIG, a token
# from the TokenRequest API (so the RBAC above is what Traefik really has).
sa_kubeconfig() {
  local dir=$1 kubectl=$2 server token
  server=$("$kubectl" config view --minify -o jsonpath='{.clusters[0].cluster.server}')
  "$kubectl" config view --minify --raw --flatten \
    -o jsonpath='{.clusters[0].cluster.certificate-authority-data}' | base64 -d > "$dir/ca.crt"
  [ -s "$dir/ca.crt" ] || die "no CA in $KUBECONFIG"
  token=$("$kubectl" -n "$NAMESPACE" create token traefik --duration 24h)
  (umask 077 && cat > "$dir/traefik.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: cluster
  cluster:
    server: $server
    certificate-authority: $dir/ca.crt
users:
- name: traefik
  user:
    token: $token
contexts:
- name: traefik
  context:
    cluster: cluster
    user: traefik
    namespace: $NAMESPACE
current-context: traefik
EOF
  )
}

start() {
  local dir=$1
  [ -n "${KUBECONFIG:-}" ] || die "KUBECONFIG is not set (eval the output of testenv/kube.sh start)"
  build
  local kubectl
  kubectl=$(kubectl_bin)
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  if running "$dir/traefik.pid"; then
    log "already running in $dir"
    print_env "$dir"
    return 0
  fi
  stop "$dir" 2>/dev/null || true
  local t0=$SECONDS
  manifests | "$kubectl" apply -f - >&2
  sa_kubeconfig "$dir" "$kubectl"

  local web_port websecure_port api_port
  web_port=$(free_port "${AURUM_INGRESS_PORT:-28080}")
  websecure_port=$(free_port $((web_port + 363)))
  api_port=$(free_port $((web_port + 100)))
  echo "$web_port" > "$dir/web.port"
  echo "$websecure_port" > "$dir/websecure.port"
  echo "$api_port" > "$dir/api.port"
  mkdir -p "$dir/logs"
  rm -f "$dir/logs/traefik.log"

  # cwd DIR: anything Traefik writes relative to it stays there. No version check
  # or usage report (no traffic off this machine). Routers without the
  # router.entrypoints annotation serve on every entry point, so each Ingress is
  # served over HTTP and HTTPS alike: Traefik makes a router TLS only through its
  # annotation or its entry point, the Ingress's `tls` section gives certificates.
  (cd "$dir" && KUBECONFIG="$dir/traefik.kubeconfig" exec "$bindir/traefik" \
    --global.checkNewVersion=false --global.sendAnonymousUsage=false \
    --entryPoints.web.address="127.0.0.1:$web_port" \
    --entryPoints.websecure.address="127.0.0.1:$websecure_port" \
    --entryPoints.websecure.http.tls=true \
    --entryPoints.traefik.address="127.0.0.1:$api_port" \
    --ping=true --ping.entryPoint=traefik \
    --api=true --api.dashboard=false --api.insecure=true \
    --providers.kubernetesIngress=true \
    --providers.kubernetesIngress.ingressEndpoint.ip=127.0.0.1 \
    --providers.kubernetesIngress.allowEmptyServices=true \
    --log.level="${AURUM_INGRESS_LOG_LEVEL:-INFO}" --log.filePath="$dir/logs/traefik.log" \
    --accessLog=true --accessLog.filePath="$dir/logs/access.log" \
    > "$dir/logs/traefik.out" 2>&1) &
  echo $! > "$dir/traefik.pid"

  # Up when /ping answers and the Kubernetes provider has sent its first
  # configuration (Traefik's API lists the internal routers before that).
  local ok=0
  for _ in $(seq 1 240); do
    if curl -sf "http://127.0.0.1:$api_port/ping" >/dev/null 2>&1 &&
      grep -q 'providerName=kubernetes' "$dir/logs/traefik.log" 2>/dev/null &&
      ! grep -q 'Error watching kubernetes events' "$dir/logs/traefik.log"; then
      ok=1
      break
    fi
    running "$dir/traefik.pid" || break
    sleep 0.25
  done
  if [ $ok = 0 ]; then
    tail -20 "$dir/logs/traefik.log" "$dir/logs/traefik.out" >&2 || true
    die "traefik did not come up; logs in $dir/logs"
  fi
  log "traefik $TRAEFIK_VERSION serving on 127.0.0.1:$web_port (HTTPS :$websecure_port) in $((SECONDS - t0))s (state and logs in $dir)"
  print_env "$dir"
}

stop_pid() {
  local f=$1 pid
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

stop() {
  local dir=$1
  [ -d "$dir" ] || return 0
  stop_pid "$dir/traefik.pid"
}

case "${1:-}" in
  build) build ;;
  bin) echo "$bindir" ;;
  start) [ $# = 2 ] || die "usage: $0 start DIR"; start "$2" ;;
  stop) [ $# = 2 ] || die "usage: $0 stop DIR"; stop "$2" ;;
  *) echo "usage: $0 build | bin | start DIR | stop DIR" >&2; exit 2 ;;
esac
