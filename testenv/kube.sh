#!/usr/bin/env bash
# A throwaway Kubernetes control plane, on loopback by default (etcd, kube-apiserver,
# kube-controller-manager; no kubelet), for the operator's integration tests.
#
#   testenv/kube.sh build [CMD..] build (once) etcd, kube-apiserver,
#                                 kube-controller-manager and kubectl (and the
#                                 named k8s.io/kubernetes/cmd commands) into
#                                 ~/.cache/aurum/kube/<version>/bin
#   testenv/kube.sh start DIR     build if needed, then start the control plane
#                                 with its state in DIR; prints KUBECONFIG=... and
#                                 AURUM_KUBE_BIN=... on stdout
#   testenv/kube.sh stop DIR      stop it (DIR stays, a new start wipes etcd)
#   testenv/kube.sh bin           print the directory holding the binaries
#   testenv/kube.sh pki DIR       create (once) the certificate authority and the
#                                 control plane's certificates in DIR/pki, so that a
#                                 caller can sign more with DIR/pki/ca.{crt,key}
#                                 before start (testenv/cluster.sh does)
#
# Environment, all optional; the defaults are the operator tests' control plane
# (testenv/cluster.sh sets them for a control plane with a real node):
#   AURUM_KUBE_ADDRESS            address the apiserver binds to and advertises
#                                 (default 127.0.0.1; pods need a non-loopback one)
#   AURUM_KUBE_AUTHORIZATION_MODE --authorization-mode (default RBAC)
#   AURUM_KUBE_DISABLE_ADMISSION  --disable-admission-plugins (default
#                                 ServiceAccount; empty: none disabled)
#   AURUM_KUBE_CONTROLLERS        kube-controller-manager --controllers (default:
#                                 all but the node, cloud and volume controllers)
#   AURUM_KUBE_APISERVER_ARGS, AURUM_KUBE_CONTROLLER_MANAGER_ARGS
#                                 extra flags, split on blanks
#
# Built from the Go module proxy with the local Go toolchain: testenv/kube/ is a
# module requiring k8s.io/kubernetes (with a replace line per staging module),
# testenv/kube/etcd/ one requiring go.etcd.io/etcd/server/v3. The version tag
# below must stay the one the operator's k8s-openapi feature (v1_35) targets.
set -euo pipefail

K8S_VERSION=v1.35.4
ETCD_VERSION=v3.6.16

here=$(cd "$(dirname "$0")" && pwd)
cache=${AURUM_KUBE_CACHE:-$HOME/.cache/aurum/kube}
bindir="$cache/$K8S_VERSION-etcd-$ETCD_VERSION/bin"
address=${AURUM_KUBE_ADDRESS:-127.0.0.1}
authz_mode=${AURUM_KUBE_AUTHORIZATION_MODE:-RBAC}
disable_admission=${AURUM_KUBE_DISABLE_ADMISSION-ServiceAccount}
controllers=${AURUM_KUBE_CONTROLLERS:-'*,-nodeipam,-nodelifecycle,-cloud-node-lifecycle,-service-lb-controller,-route,-persistentvolume-binder,-attachdetach,-persistentvolume-expander,-ephemeral-volume,-pv-protection,-pvc-protection'}
read -r -a apiserver_args <<< "${AURUM_KUBE_APISERVER_ARGS:-}"
read -r -a kcm_args <<< "${AURUM_KUBE_CONTROLLER_MANAGER_ARGS:-}"

log() { echo "kube.sh: $*" >&2; }
die() { echo "kube.sh: $*" >&2; exit 1; }

export GOTOOLCHAIN=local GOFLAGS=-mod=mod
export GONOSUMDB=${GONOSUMDB:-k8s.io,sigs.k8s.io}

# build [CMD...]: the control plane's binaries, plus the named commands of
# k8s.io/kubernetes/cmd (testenv/cluster.sh adds kubelet, kube-proxy, kube-scheduler).
build() {
  local want=(etcd kube-apiserver kube-controller-manager kubectl "$@") b missing=0
  for b in "${want[@]}"; do [ -x "$bindir/$b" ] || missing=1; done
  [ $missing = 0 ] && return 0
  command -v go >/dev/null || die "go not found; install Go >= 1.25 and retry"
  mkdir -p "$bindir"
  local t0=$SECONDS
  local ver="k8s.io/component-base/version"
  local minor
  minor=$(echo "$K8S_VERSION" | cut -d. -f2)
  local ldflags="-s -w -X $ver.gitVersion=$K8S_VERSION -X $ver.gitMajor=1 -X $ver.gitMinor=$minor"
  ldflags="$ldflags -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION"
  if [ ! -x "$bindir/etcd" ]; then
    log "building etcd $ETCD_VERSION (once)"
    (cd "$here/kube/etcd" && nice -n 10 go build -trimpath -ldflags "-s -w" -o "$bindir/etcd.tmp" .) >&2
    mv "$bindir/etcd.tmp" "$bindir/etcd"
  fi
  for b in kube-apiserver kube-controller-manager kubectl "$@"; do
    [ -x "$bindir/$b" ] && continue
    log "building $b $K8S_VERSION (once; several minutes on 2 cores)"
    (cd "$here/kube" && nice -n 10 go build -trimpath -ldflags "$ldflags" -o "$bindir/$b.tmp" "k8s.io/kubernetes/cmd/$b") >&2
    mv "$bindir/$b.tmp" "$bindir/$b"
  done
  log "built in $((SECONDS - t0))s into $bindir"
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_port() {
  local p=$1
  while ! port_free "$p"; do p=$((p + 1)); done
  echo "$p"
}

# gen_cert NAME CN ORG SAN: a key and a certificate signed by DIR/pki/ca.
gen_cert() {
  local pki=$1 name=$2 cn=$3 org=$4 san=${5:-} subj="/CN=$3"
  [ -n "$org" ] && subj="/O=$org/CN=$cn"
  openssl req -new -newkey rsa:2048 -nodes -keyout "$pki/$name.key" -subj "$subj" \
    -out "$pki/$name.csr" 2>/dev/null
  {
    echo "basicConstraints=CA:FALSE"
    echo "keyUsage=digitalSignature,keyEncipherment"
    if [ -n "$san" ]; then
      echo "extendedKeyUsage=serverAuth,clientAuth"
      echo "subjectAltName=$san"
    else
      echo "extendedKeyUsage=clientAuth"
    fi
  } > "$pki/$name.ext"
  openssl x509 -req -in "$pki/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" \
    -CAcreateserial -days 365 -sha256 -extfile "$pki/$name.ext" -out "$pki/$name.crt" 2>/dev/null
  rm -f "$pki/$name.csr" "$pki/$name.ext"
}

gen_pki() {
  local pki=$1
  local san="DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc"
  san="$san,DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:10.0.0.1"
  [ "$address" = 127.0.0.1 ] || san="$san,IP:$address"
  if [ -f "$pki/done-v2" ]; then
    # Made for another address: only the apiserver's certificate changes.
    [ "$(cat "$pki/apiserver.san" 2>/dev/null || echo "$san")" = "$san" ] && return 0
    gen_cert "$pki" apiserver kube-apiserver "" "$san"
    echo "$san" > "$pki/apiserver.san"
    return 0
  fi
  mkdir -p "$pki"
  openssl req -x509 -new -newkey rsa:2048 -nodes -keyout "$pki/ca.key" -days 365 \
    -subj "/CN=aurum-test-ca" -out "$pki/ca.crt" 2>/dev/null
  gen_cert "$pki" apiserver kube-apiserver "" "$san"
  echo "$san" > "$pki/apiserver.san"
  gen_cert "$pki" admin aurum-admin system:masters ""
  # Without kubelets and service-account credentials the controller-manager
  # acts for every controller: give it admin rights, as a throwaway cluster.
  gen_cert "$pki" controller-manager system:kube-controller-manager system:masters ""
  openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
  openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
  touch "$pki/done-v2"
}

kubeconfig() {
  local file=$1 server=$2 pki=$3 user=$4
  cat > "$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: aurum-test
  cluster:
    server: $server
    certificate-authority: $pki/ca.crt
users:
- name: $user
  user:
    client-certificate: $pki/$user.crt
    client-key: $pki/$user.key
contexts:
- name: aurum-test
  context:
    cluster: aurum-test
    user: $user
current-context: aurum-test
EOF
}

running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

print_env() {
  local dir=$1
  echo "KUBECONFIG=$dir/admin.kubeconfig"
  echo "AURUM_KUBE_BIN=$bindir"
}

start() {
  local dir=$1
  build
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  if running "$dir/apiserver.pid" && running "$dir/etcd.pid" && running "$dir/controller-manager.pid"; then
    log "already running in $dir"
    print_env "$dir"
    return 0
  fi
  stop "$dir" 2>/dev/null || true
  local t0=$SECONDS
  gen_pki "$dir/pki"
  local pki="$dir/pki"
  local etcd_port peer_port api_port kcm_port
  etcd_port=$(free_port 23790)
  peer_port=$(free_port $((etcd_port + 1)))
  api_port=$(free_port 16443)
  kcm_port=$(free_port 20257)
  rm -rf "$dir/etcd-data"
  mkdir -p "$dir/logs"

  "$bindir/etcd" --name aurum-test --data-dir "$dir/etcd-data" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" \
    --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-cluster "aurum-test=http://127.0.0.1:$peer_port" \
    --unsafe-no-fsync --quota-backend-bytes 4294967296 \
    > "$dir/logs/etcd.log" 2>&1 &
  echo $! > "$dir/etcd.pid"

  local admission=()
  [ -n "$disable_admission" ] && admission=(--disable-admission-plugins "$disable_admission")
  "$bindir/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$etcd_port" \
    --bind-address "$address" --advertise-address "$address" --secure-port "$api_port" \
    --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
    --client-ca-file "$pki/ca.crt" \
    --authorization-mode "$authz_mode" \
    --service-account-issuer https://kubernetes.default.svc \
    --service-account-key-file "$pki/sa.pub" \
    --service-account-signing-key-file "$pki/sa.key" \
    --service-cluster-ip-range 10.0.0.0/24 \
    "${admission[@]}" \
    --allow-privileged=true \
    "${apiserver_args[@]}" \
    > "$dir/logs/kube-apiserver.log" 2>&1 &
  echo $! > "$dir/apiserver.pid"

  local server="https://$address:$api_port"
  kubeconfig "$dir/admin.kubeconfig" "$server" "$pki" admin
  kubeconfig "$dir/controller-manager.kubeconfig" "$server" "$pki" controller-manager
  echo "$server" > "$dir/server"

  local i ok=0
  for i in $(seq 1 240); do
    if curl -sf --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" \
      "$server/readyz" >/dev/null 2>&1; then ok=1; break; fi
    running "$dir/apiserver.pid" || break
    sleep 0.25
  done
  if [ $ok = 0 ]; then
    tail -20 "$dir/logs/kube-apiserver.log" >&2 || true
    die "kube-apiserver did not become ready; logs in $dir/logs"
  fi

  "$bindir/kube-controller-manager" \
    --kubeconfig "$dir/controller-manager.kubeconfig" \
    --authentication-kubeconfig "$dir/controller-manager.kubeconfig" \
    --authorization-kubeconfig "$dir/controller-manager.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$kcm_port" \
    --leader-elect=false \
    --use-service-account-credentials=false \
    --service-account-private-key-file "$pki/sa.key" \
    --root-ca-file "$pki/ca.crt" \
    --cluster-signing-cert-file "$pki/ca.crt" --cluster-signing-key-file "$pki/ca.key" \
    --controllers "$controllers" \
    "${kcm_args[@]}" \
    > "$dir/logs/kube-controller-manager.log" 2>&1 &
  echo $! > "$dir/controller-manager.pid"

  ok=0
  for i in $(seq 1 120); do
    if curl -sfk "https://127.0.0.1:$kcm_port/healthz" >/dev/null 2>&1; then ok=1; break; fi
    running "$dir/controller-manager.pid" || break
    sleep 0.25
  done
  if [ $ok = 0 ]; then
    tail -20 "$dir/logs/kube-controller-manager.log" >&2 || true
    die "kube-controller-manager did not become healthy; logs in $dir/logs"
  fi
  log "control plane up at $server in $((SECONDS - t0))s (state and logs in $dir)"
  print_env "$dir"
}

stop_pid() {
  local f=$1 pid i
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

stop() {
  local dir=$1
  [ -d "$dir" ] || return 0
  stop_pid "$dir/controller-manager.pid"
  stop_pid "$dir/apiserver.pid"
  stop_pid "$dir/etcd.pid"
}

case "${1:-}" in
  build) shift; build "$@" ;;
  bin) echo "$bindir" ;;
  pki) [ $# = 2 ] || die "usage: $0 pki DIR"; mkdir -p "$2"; gen_pki "$2/pki" ;;
  # For cluster.sh: one more certificate signed by PKI/ca (kept when it exists),
  # and a kubeconfig for one of them.
  cert) [ $# -ge 5 ] || die "usage: $0 cert PKI NAME CN ORG [SAN]"; shift
    [ -f "$1/$2.crt" ] || gen_cert "$@" ;;
  kubeconfig) [ $# = 5 ] || die "usage: $0 kubeconfig FILE SERVER PKI USER"; shift; kubeconfig "$@" ;;
  start) [ $# = 2 ] || die "usage: $0 start DIR"; start "$2" ;;
  stop) [ $# = 2 ] || die "usage: $0 stop DIR"; stop "$2" ;;
  *) echo "usage: $0 build | bin | pki DIR | cert PKI NAME CN ORG [SAN] | kubeconfig FILE SERVER PKI USER | start DIR | stop DIR" >&2; exit 2 ;;
esac
