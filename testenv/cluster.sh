#!/usr/bin/env bash
# A throwaway Kubernetes cluster with one real worker node on this machine: the
# control plane of testenv/kube.sh, plus kube-scheduler, containerd and runc, the
# CNI bridge, kubelet, kube-proxy (iptables), CoreDNS and Rancher's
# local-path-provisioner (the default StorageClass `standard`, as on kind).
#
#   testenv/cluster.sh build               build/install (once) what the node needs
#   testenv/cluster.sh start DIR           start it all with its state in DIR (a no-op
#                                          that prints the settings if it runs); prints
#                                          KUBECONFIG=..., AURUM_KUBE_BIN=... (kubectl),
#                                          AURUM_NODE_NAME=... and more on stdout
#   testenv/cluster.sh env DIR             print the settings again (fails if any
#                                          of its processes is gone)
#   testenv/cluster.sh import DIR ARCHIVE.. import OCI archives into containerd's k8s.io
#                                          namespace (names from the archives, e.g.
#                                          localhost/aurum-api:0.1.0)
#   testenv/cluster.sh stop DIR            stop it and undo what it did to the machine
#   testenv/cluster.sh image-busybox       print the path of the busybox OCI archive
#
# Needs root, cgroups and iptables: it changes the machine while it runs. One
# cluster per machine (the bridge, the iptables chains and the kubepods cgroups
# are global); a start with another DIR while one runs fails.
#
# testenv/cluster-smoke.sh DIR proves that the node runs pods as a node does.
#
# Built from the Go module proxy like kube.sh (GOTOOLCHAIN=local): kubelet,
# kube-proxy and kube-scheduler from testenv/kube (next to kube.sh's binaries),
# CoreDNS (only the plugins it uses), local-path-provisioner and crictl from the
# wrapper modules in testenv/cluster/ (into $AURUM_CACHE/cluster/bin, named after
# their sources; the OCI archives into $AURUM_CACHE/cluster/images). Debian
# packages (containerd, runc, containernetworking-plugins, iptables, conntrack,
# gcc, busybox-static...) are installed with apt-get when absent. Nothing is
# pulled from a registry: the sandbox (pause) image is a static C program
# (testenv/cluster/pause.c) and the helper image is Debian's busybox-static, both
# written here as OCI archives.
#
# What the node looks like (the facts behind it: ../shared/STACK_NOTES.md, "A real
# node on this machine"):
# - apiserver on this machine's own address (the first global IPv4 address of the
#   default route's interface, e.g. 192.0.2.2), since pods reach it through the
#   `kubernetes` Service; Node,RBAC authorization and NodeRestriction; it calls
#   kubelets with a client certificate, and kubelet authenticates it by x509 and
#   authorizes by Webhook (no anonymous access).
# - containerd 1.6 with root, state, socket and runc root under DIR/containerd;
#   restrict_oom_score_adj (no CAP_SYS_RESOURCE here); overlayfs, or native where
#   overlay mounts fail. CNI: bridge `aurum0` + host-local (10.244.0.0/24, state in
#   DIR) + portmap; no masquerade, pods have nowhere else to go.
# - Cluster DNS: CoreDNS runs as a host process on the node address (a free port),
#   behind the conventional `kube-system/kube-dns` Service 10.0.0.10 (a Service
#   without selector and an EndpointSlice of ours), and kubelet's clusterDNS is
#   10.0.0.10. A host process needs no image, starts before kubelet and does not
#   depend on the pod network it serves; the Service keeps the address pods and
#   charts expect. It has no `forward`: names outside cluster.local are NXDOMAIN,
#   so no query leaves the machine.
# - Storage: kube-controller-manager's hostpath provisioner does not fit (it makes
#   0750 root-owned directories under /tmp and hostPath ignores fsGroup, so non-root
#   pods cannot write); local-path-provisioner (what kind uses) runs as a host
#   process and makes each volume 0777 under DIR/local-path through a busybox helper
#   pod. StorageClass `standard` (default, WaitForFirstConsumer, Delete).
# - Nothing is pulled: containerd's registry requests go to a proxy on a closed
#   loopback port (127.0.0.1:9) and fail at once; Go never proxies localhost, so a
#   missing localhost/... image fails on 127.0.0.1:80/443 instead. Import images.
# - Safety net: chain AURUM-GUARD, first in filter OUTPUT and FORWARD, REJECTs
#   packets still addressed to the Service CIDR (not translated by kube-proxy),
#   service traffic translated to an address that is neither ours nor a pod's,
#   and pod traffic to anything but pods and this machine.
# - stop removes processes, mounts under DIR, the bridge and veths, AURUM-GUARD,
#   the KUBE-* and CNI-* chains (kube-proxy --cleanup first), the kubepods cgroups,
#   kubelet's files outside DIR, and restores the sysctls kubelet changes.
#
# Environment: AURUM_CACHE (default ~/.cache/aurum), AURUM_NODE_NAME (default
# aurum-node), AURUM_NODE_IP (default: computed as above), AURUM_CLUSTER_KEEP=1
# (a failed start leaves what it started, to be looked at; default: stopped).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${AURUM_CACHE:-$HOME/.cache/aurum}
kube_sh=$here/kube.sh
toolbin=$cache/cluster/bin
imgdir=$cache/cluster/images

# The versions the wrapper modules in testenv/cluster/ require (for the names of
# the cached binaries; the go.mod files decide).
COREDNS_VERSION=v1.15.0
LPP_VERSION=v0.0.30
CRICTL_VERSION=v1.34.0
SERVICE_CIDR=10.0.0.0/24
DNS_IP=10.0.0.10
CLUSTER_CIDR=10.244.0.0/16
POD_CIDR=10.244.0.0/24
BRIDGE=aurum0
CNI_NET=aurum-pods
GUARD=AURUM-GUARD
PAUSE_IMAGE=localhost/aurum-pause:1.0
node_name=${AURUM_NODE_NAME:-aurum-node}
marker=/run/aurum-cluster.dir
# kubelet changes the first six (protectKernelDefaults: false), the CNI bridge
# plugin the next; kube-proxy is told to leave conntrack and route_localnet alone,
# they are recorded anyway.
SYSCTLS="vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops
kernel.keys.root_maxkeys kernel.keys.root_maxbytes net.ipv4.ip_forward
net.ipv4.conf.all.route_localnet net.netfilter.nf_conntrack_max
net.netfilter.nf_conntrack_tcp_timeout_established
net.netfilter.nf_conntrack_tcp_timeout_close_wait"
# Paths outside DIR that kubelet or the CNI plugins create.
OUTSIDE="/var/lib/kubelet /var/log/containers /var/log/pods /var/lib/cni /run/containerd"

log() { echo "cluster.sh: $*" >&2; }
die() { echo "cluster.sh: $*" >&2; exit 1; }

export GOTOOLCHAIN=local GOFLAGS=-mod=mod
export GONOSUMDB=${GONOSUMDB:-k8s.io,sigs.k8s.io}

bindir=$("$kube_sh" bin)

# --- build -------------------------------------------------------------------------

ensure_packages() {
  local want=(containerd runc containernetworking-plugins iptables conntrack gcc libc6-dev
    busybox-static iproute2 openssl curl procps util-linux) p missing=()
  for p in "${want[@]}"; do
    dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} = 0 ] && return 0
  log "installing ${missing[*]} (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y --no-install-recommends "${missing[@]}" >&2 ||
    { apt-get update >&2 && apt-get install -y --no-install-recommends "${missing[@]}" >&2; }
}

# tool NAME VERSION: the cached binary of a wrapper module (testenv/cluster/NAME),
# named after the module's files, so that a change to them builds it anew.
tool() {
  local sum
  sum=$(cat "$here/cluster/$1"/go.mod "$here/cluster/$1"/go.sum "$here/cluster/$1"/*.go |
    sha256sum | cut -c1-12)
  echo "$toolbin/$1-$2-$sum"
}

# go_tool NAME VERSION PACKAGE: build a command from the wrapper module NAME.
go_tool() {
  local name=$1 version=$2 moddir=$here/cluster/$1 pkg=$3 out t0=$SECONDS
  out=$(tool "$1" "$2")
  [ -x "$out" ] && return 0
  command -v go >/dev/null || die "go not found; install Go >= 1.26 and retry"
  mkdir -p "$toolbin"
  log "building $name $version (once)"
  (cd "$moddir" && nice -n 10 go build -trimpath -ldflags "-s -w" -o "$out.tmp" "$pkg") >&2
  mv "$out.tmp" "$out"
  log "built $name in $((SECONDS - t0))s"
}

# oci_archive OUT NAME ROOTFS CONFIG_JSON: write a one-layer OCI image archive that
# `ctr images import` names NAME. CONFIG_JSON is the image config's "config" object.
oci_archive() {
  local out=$1 name=$2 rootfs=$3 cfg=$4 lay
  lay=$(mktemp -d)
  mkdir -p "$lay/blobs/sha256"
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --format=gnu \
    -C "$rootfs" -cf "$lay/layer.tar" .
  local ldig lsize cdig csize mdig msize
  ldig=$(sha256sum "$lay/layer.tar" | cut -d' ' -f1)
  lsize=$(stat -c %s "$lay/layer.tar")
  mv "$lay/layer.tar" "$lay/blobs/sha256/$ldig"
  printf '{"architecture":"amd64","os":"linux","config":%s,"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created_by":"testenv/cluster.sh"}]}' \
    "$cfg" "$ldig" > "$lay/config.json"
  cdig=$(sha256sum "$lay/config.json" | cut -d' ' -f1)
  csize=$(stat -c %s "$lay/config.json")
  mv "$lay/config.json" "$lay/blobs/sha256/$cdig"
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%s}]}' \
    "$cdig" "$csize" "$ldig" "$lsize" > "$lay/manifest.json"
  mdig=$(sha256sum "$lay/manifest.json" | cut -d' ' -f1)
  msize=$(stat -c %s "$lay/manifest.json")
  mv "$lay/manifest.json" "$lay/blobs/sha256/$mdig"
  printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"platform":{"architecture":"amd64","os":"linux"},"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"%s"}}]}' \
    "$mdig" "$msize" "$name" "$name" > "$lay/index.json"
  echo '{"imageLayoutVersion":"1.0.0"}' > "$lay/oci-layout"
  mkdir -p "$(dirname "$out")"
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$lay" \
    -cf "$out.tmp" oci-layout index.json blobs
  mv "$out.tmp" "$out"
  rm -rf "$lay"
}

busybox_version() { dpkg-query -W -f '${Version}' busybox-static | sed 's/^[0-9]*://; s/-.*//'; }
busybox_image() { echo "localhost/aurum-busybox:$(busybox_version)"; }
busybox_archive() { echo "$imgdir/aurum-busybox-$(busybox_version).tar"; }
pause_archive() { echo "$imgdir/aurum-pause-1.0-$(cat "$here/cluster/pause.c" | sha256sum | cut -c1-12).tar"; }

build_images() {
  local r
  if [ ! -f "$(pause_archive)" ]; then
    r=$(mktemp -d)
    gcc -static -Os -s -o "$r/pause" "$here/cluster/pause.c"
    oci_archive "$(pause_archive)" "$PAUSE_IMAGE" "$r" \
      '{"Entrypoint":["/pause"],"User":"65535:65535","WorkingDir":"/"}'
    rm -rf "$r"
    log "built $PAUSE_IMAGE ($(stat -c %s "$(pause_archive)") bytes)"
  fi
  if [ ! -f "$(busybox_archive)" ]; then
    r=$(mktemp -d)
    mkdir -p "$r/bin" "$r/etc" "$r/tmp" "$r/root" "$r/home/nonroot" "$r/usr"
    cp /bin/busybox "$r/bin/busybox"
    local a
    for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox "$r/bin/$a"; done
    ln -s bin "$r/sbin"
    ln -s ../bin "$r/usr/bin"
    ln -s ../bin "$r/usr/sbin"
    chmod 1777 "$r/tmp"
    chown 65532:65532 "$r/home/nonroot"
    printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' 'nobody:x:65534:65534:nobody:/nonexistent:/bin/false' \
      'nonroot:x:65532:65532:nonroot:/home/nonroot:/bin/sh' > "$r/etc/passwd"
    printf '%s\n' 'root:x:0:' 'nobody:x:65534:' 'nonroot:x:65532:' > "$r/etc/group"
    oci_archive "$(busybox_archive)" "$(busybox_image)" "$r" \
      '{"Cmd":["/bin/sh"],"Env":["PATH=/bin"],"WorkingDir":"/"}'
    rm -rf "$r"
    log "built $(busybox_image) ($(stat -c %s "$(busybox_archive)") bytes)"
  fi
}

build() {
  ensure_packages
  "$kube_sh" build kubelet kube-proxy kube-scheduler
  go_tool coredns "$COREDNS_VERSION" .
  go_tool local-path-provisioner "$LPP_VERSION" github.com/rancher/local-path-provisioner
  go_tool crictl "$CRICTL_VERSION" sigs.k8s.io/cri-tools/cmd/crictl
  build_images
}

# --- helpers -----------------------------------------------------------------------

# A port with no TCP or UDP listener on any address.
free_port() {
  local p=$1
  while [ -n "$(ss -Htuln "sport = :$p" 2>/dev/null)" ]; do p=$((p + 1)); done
  echo "$p"
}

node_ip() {
  if [ -n "${AURUM_NODE_IP:-}" ]; then echo "$AURUM_NODE_IP"; return; fi
  local dev ip
  dev=$(ip -4 route show default 2>/dev/null | awk '{for (i = 1; i < NF; i++) if ($i == "dev") { print $(i + 1); exit }}')
  if [ -n "$dev" ]; then
    ip=$(ip -4 -o addr show dev "$dev" scope global | awk '{print $4; exit}' | cut -d/ -f1)
  fi
  [ -n "${ip:-}" ] || ip=$(ip -4 -o addr show scope global | grep -v " $BRIDGE " |
    awk '{print $4; exit}' | cut -d/ -f1)
  [ -n "$ip" ] || die "no global IPv4 address on this machine; set AURUM_NODE_IP"
  echo "$ip"
}

# The control plane's certificates and kubeconfigs come from kube.sh.
gen_cert() { "$kube_sh" cert "$@"; }   # PKI NAME CN ORG [SAN]
kubeconfig() { "$kube_sh" kubeconfig "$@"; }   # FILE SERVER PKI USER

# PID 1 here is no init that reaps orphans: a killed daemon can stay a zombie,
# which kill -0 takes for alive.
alive() { [ -r "/proc/$1/stat" ] && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]; }
running() { [ -f "$1" ] && alive "$(cat "$1")"; }

# Whether anything is mounted below $1 (an rm -rf must never cross a mount: a bind
# mount of the same file system would take the machine's files with it).
mounts_under() { findmnt -rn -o TARGET | awk -v r="$1" 'index($0, r "/") == 1' | grep -q .; }

# wipe DIR...: rm -rf, refused while anything is mounted below.
wipe() {
  local d
  for d in "$@"; do
    mounts_under "$d" && die "mounts remain below $d: not removing it (run stop)"
    rm -rf --one-file-system "$d"
  done
}

# wait_for WHAT SECONDS PIDFILE CMD...: poll CMD every 0.25 s (WHAT: for the reader).
wait_for() {
  local secs=$2 pidfile=$3
  shift 3
  for _ in $(seq 1 $((secs * 4))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    if [ -n "$pidfile" ] && ! running "$pidfile"; then break; fi
    sleep 0.25
  done
  return 1
}

fail() {
  local what=$1 logf=$2
  [ -f "$logf" ] && tail -25 "$logf" >&2
  die "$what; logs in $(dirname "$logf")"
}

ctr_() { ctr --address "$dir/containerd/containerd.sock" -n k8s.io "$@"; }
kc() { "$bindir/kubectl" --kubeconfig "$dir/cp/admin.kubeconfig" "$@"; }

step() { log "$1 (+$((SECONDS - t0))s)"; }

print_env() {
  cat "$1/env"
}

all_running() {
  local d=$1 p
  for p in cp/etcd cp/apiserver cp/controller-manager run/kube-scheduler run/containerd \
    run/kube-proxy run/coredns run/kubelet run/local-path-provisioner; do
    running "$d/$p.pid" || return 1
  done
}

# --- start -------------------------------------------------------------------------

start_control_plane() {
  local pki=$dir/cp/pki
  AURUM_KUBE_ADDRESS=$ip "$kube_sh" pki "$dir/cp"
  gen_cert "$pki" apiserver-kubelet-client kube-apiserver-kubelet-client ""
  gen_cert "$pki" node "system:node:$node_name" system:nodes ""
  gen_cert "$pki" kubelet-serving "system:node:$node_name" system:nodes "DNS:$node_name,IP:$ip"
  gen_cert "$pki" kube-proxy system:kube-proxy ""
  gen_cert "$pki" kube-scheduler system:kube-scheduler ""
  gen_cert "$pki" coredns aurum:coredns ""
  gen_cert "$pki" local-path-provisioner aurum:local-path-provisioner ""
  # The controllers a node needs are on (node lifecycle removes the not-ready taint,
  # the PV binder and protection controllers, attach/detach, ephemeral volumes);
  # only those that need a cloud or allocate node CIDRs (the CNI config has the
  # node's range) stay off.
  AURUM_KUBE_ADDRESS=$ip \
    AURUM_KUBE_AUTHORIZATION_MODE=Node,RBAC \
    AURUM_KUBE_DISABLE_ADMISSION='' \
    AURUM_KUBE_CONTROLLERS='*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller,-route' \
    AURUM_KUBE_APISERVER_ARGS="--enable-admission-plugins NodeRestriction --kubelet-client-certificate $pki/apiserver-kubelet-client.crt --kubelet-client-key $pki/apiserver-kubelet-client.key --kubelet-certificate-authority $pki/ca.crt --kubelet-preferred-address-types InternalIP" \
    "$kube_sh" start "$dir/cp" > /dev/null
  server=$(cat "$dir/cp/server")
  local u
  for u in node kube-proxy kube-scheduler coredns local-path-provisioner; do
    kubeconfig "$dir/$u.kubeconfig" "$server" "$pki" "$u"
  done

  kc apply -f - > /dev/null <<EOF
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "aurum:kube-apiserver-kubelet-client"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:kubelet-api-admin"}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: kube-apiserver-kubelet-client}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "aurum:coredns"}
rules:
- apiGroups: [""]
  resources: [endpoints, services, pods, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "aurum:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "aurum:coredns"}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: "aurum:coredns"}]
EOF

  "$bindir/kube-scheduler" \
    --kubeconfig "$dir/kube-scheduler.kubeconfig" \
    --authentication-kubeconfig "$dir/kube-scheduler.kubeconfig" \
    --authorization-kubeconfig "$dir/kube-scheduler.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$(free_port 20259)" \
    --leader-elect=false \
    > "$dir/logs/kube-scheduler.log" 2>&1 &
  echo $! > "$dir/run/kube-scheduler.pid"
}

save_machine_state() {
  # Recorded once: a start after a failed start must not take the changed values
  # for the machine's own.
  if [ ! -f "$dir/sysctl.saved" ]; then
    local k v
    for k in $SYSCTLS; do
      v=$(sysctl -n "$k" 2>/dev/null) || continue
      printf '%s=%s\n' "$k" "$v"
    done > "$dir/sysctl.saved.tmp"
    mv "$dir/sysctl.saved.tmp" "$dir/sysctl.saved"
  fi
  if [ ! -f "$dir/outside.saved" ]; then
    local p
    for p in $OUTSIDE; do [ -e "$p" ] && echo "$p"; done > "$dir/outside.saved.tmp" || true
    mv "$dir/outside.saved.tmp" "$dir/outside.saved"
  fi
}

guard_rules() {
  iptables -w -N "$GUARD" 2>/dev/null || iptables -w -F "$GUARD"
  iptables -w -A "$GUARD" -d "$SERVICE_CIDR" -m comment --comment "aurum: ClusterIP not translated" -j REJECT
  iptables -w -A "$GUARD" -m addrtype --dst-type LOCAL -j RETURN
  iptables -w -A "$GUARD" -d "$CLUSTER_CIDR" -j RETURN
  iptables -w -A "$GUARD" -s "$CLUSTER_CIDR" -m comment --comment "aurum: pod traffic leaving the machine" -j REJECT
  iptables -w -A "$GUARD" -m conntrack --ctstate DNAT -m comment --comment "aurum: service translated to a foreign address" -j REJECT
  guard_first
}

# Put the jump to AURUM-GUARD first in OUTPUT and FORWARD (again after kube-proxy
# has prepended its own jumps, which it never reorders later).
guard_first() {
  local c
  for c in OUTPUT FORWARD; do
    while iptables -w -D "$c" -j "$GUARD" 2>/dev/null; do :; done
    iptables -w -I "$c" 1 -j "$GUARD"
  done
}

start_containerd() {
  local c=$dir/containerd snapshotter=overlayfs
  wipe "$c"
  mkdir -p "$c/root" "$c/state" "$c/opt" "$c/runc" "$dir/cni/net.d" "$dir/cni/ipam"
  # overlayfs where this disk takes it, else the (slower, copying) native snapshotter.
  local t=$dir/overlay-test
  mkdir -p "$t/l" "$t/u" "$t/w" "$t/m"
  if mount -t overlay overlay -o "lowerdir=$t/l,upperdir=$t/u,workdir=$t/w" "$t/m" 2>/dev/null; then
    umount "$t/m"
  else
    snapshotter=native
    log "overlay mounts fail under $dir: containerd uses the native snapshotter"
  fi
  rm -rf "$t"
  echo "$snapshotter" > "$dir/snapshotter"
  cat > "$c/config.toml" <<EOF
version = 2
root = "$c/root"
state = "$c/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "$c/containerd.sock"
[ttrpc]
  address = "$c/containerd.sock.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "$c/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # runc cannot lower oom_score_adj without CAP_SYS_RESOURCE, absent here.
  restrict_oom_score_adj = true
  disable_apparmor = true
  enable_selinux = false
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "$snapshotter"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "$(command -v runc)"
        Root = "$c/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$dir/cni/net.d"
    max_conf_num = 1
EOF
  cat > "$dir/cni/net.d/10-aurum.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "$CNI_NET",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$dir/cni/ipam",
        "ranges": [[{"subnet": "$POD_CIDR"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
  # Nothing may be pulled: a pull of a missing image goes to a proxy on a closed
  # loopback port and fails at once, with no name lookup or connection elsewhere.
  HTTP_PROXY=http://127.0.0.1:9 HTTPS_PROXY=http://127.0.0.1:9 NO_PROXY='' \
    http_proxy=http://127.0.0.1:9 https_proxy=http://127.0.0.1:9 no_proxy='' \
    containerd --config "$c/config.toml" > "$dir/logs/containerd.log" 2>&1 &
  echo $! > "$dir/run/containerd.pid"
  wait_for containerd 30 "$dir/run/containerd.pid" ctr_ version ||
    fail "containerd did not start" "$dir/logs/containerd.log"
  ctr_ images import --snapshotter "$snapshotter" "$(pause_archive)" > /dev/null
  ctr_ images import --snapshotter "$snapshotter" "$(busybox_archive)" > /dev/null
}

start_kube_proxy() {
  local hp mp
  hp=$(free_port 20256)
  mp=$(free_port $((hp + 1)))
  mkdir -p "$dir/kube-proxy"
  cat > "$dir/kube-proxy/config.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: $dir/kube-proxy.kubeconfig
mode: iptables
hostnameOverride: $node_name
bindAddress: $ip
healthzBindAddress: 127.0.0.1:$hp
metricsBindAddress: 127.0.0.1:$mp
clusterCIDR: $CLUSTER_CIDR
detectLocalMode: ClusterCIDR
nodePortAddresses: ["$ip/32"]
# No CAP_SYS_RESOURCE for the default -999; and leave the conntrack sysctls and
# route_localnet (NodePorts on 127.0.0.1) alone.
oomScoreAdj: 0
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
iptables:
  localhostNodePorts: false
EOF
  "$bindir/kube-proxy" --config "$dir/kube-proxy/config.yaml" \
    > "$dir/logs/kube-proxy.log" 2>&1 &
  echo $! > "$dir/run/kube-proxy.pid"
  # Ready when the kubernetes Service is translated.
  wait_for kube-proxy 60 "$dir/run/kube-proxy.pid" \
    sh -c "iptables-save -t nat | grep -q -- '-A KUBE-SERVICES .*default/kubernetes:https'" ||
    fail "kube-proxy did not program the kubernetes Service" "$dir/logs/kube-proxy.log"
  guard_first
}

start_coredns() {
  local port hp rp
  port=$(free_port 10053)
  hp=$(free_port 20180)
  rp=$(free_port $((hp + 1)))
  mkdir -p "$dir/coredns"
  # No upstream: the kubernetes plugin answers for cluster.local and the reverse
  # zones (NXDOMAIN for what it does not know), every other name is NXDOMAIN.
  cat > "$dir/coredns/Corefile" <<EOF
cluster.local:$port in-addr.arpa:$port ip6.arpa:$port {
    bind $ip
    errors
    health 127.0.0.1:$hp
    ready 127.0.0.1:$rp
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig $dir/coredns.kubeconfig aurum-test
        pods insecure
        ttl 5
    }
    cache 5
    loadbalance
}
.:$port {
    bind $ip
    errors
    template ANY ANY {
        rcode NXDOMAIN
    }
}
EOF
  (cd "$dir/coredns" && exec "$(tool coredns "$COREDNS_VERSION")" -conf "$dir/coredns/Corefile") \
    > "$dir/logs/coredns.log" 2>&1 &
  echo $! > "$dir/run/coredns.pid"
  kc apply -f - > /dev/null <<EOF
apiVersion: v1
kind: Service
metadata:
  name: kube-dns
  namespace: kube-system
  labels: {k8s-app: kube-dns, kubernetes.io/name: CoreDNS}
spec:
  clusterIP: $DNS_IP
  ports:
  - {name: dns, port: 53, protocol: UDP, targetPort: $port}
  - {name: dns-tcp, port: 53, protocol: TCP, targetPort: $port}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: kube-dns-host
  namespace: kube-system
  labels:
    kubernetes.io/service-name: kube-dns
    endpointslice.kubernetes.io/managed-by: cluster.sh.aurum.dev
addressType: IPv4
endpoints:
- addresses: ["$ip"]
  conditions: {ready: true}
  nodeName: $node_name
ports:
- {name: dns, port: $port, protocol: UDP}
- {name: dns-tcp, port: $port, protocol: TCP}
EOF
  wait_for coredns 60 "$dir/run/coredns.pid" curl -sf "http://127.0.0.1:$rp/ready" ||
    fail "CoreDNS did not become ready" "$dir/logs/coredns.log"
}

start_kubelet() {
  local k=$dir/kubelet port hp
  wipe "$k"
  mkdir -p "$k/root" "$k/pki" "$k/pod-logs" "$k/volume-plugins"
  port=$(free_port 10250)
  hp=$(free_port 20248)
  echo "nameserver $DNS_IP" > "$k/resolv.conf"
  cat > "$k/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $ip
port: $port
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $hp
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $dir/cp/pki/ca.crt}
authorization:
  mode: Webhook
tlsCertFile: $dir/cp/pki/kubelet-serving.crt
tlsPrivateKeyFile: $dir/cp/pki/kubelet-serving.key
containerRuntimeEndpoint: unix://$dir/containerd/containerd.sock
imageServiceEndpoint: unix://$dir/containerd/containerd.sock
# cgroups are v1 (hybrid) here; no systemd.
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
# kubelet then sets vm.overcommit_memory, kernel.panic... (restored by stop).
protectKernelDefaults: false
makeIPTablesUtilChains: false
oomScoreAdj: 0
clusterDNS: [$DNS_IP]
clusterDomain: cluster.local
resolvConf: $k/resolv.conf
podLogsDir: $k/pod-logs
volumePluginDir: $k/volume-plugins
# Nothing can be pulled again: never collect images (containerd 1.6 pins none).
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: 100Mi
  nodefs.available: 1%
  nodefs.inodesFree: 1%
  imagefs.available: 1%
  imagefs.inodesFree: 1%
serializeImagePulls: false
registerNode: true
EOF
  "$bindir/kubelet" --config "$k/config.yaml" --kubeconfig "$dir/node.kubeconfig" \
    --root-dir "$k/root" --cert-dir "$k/pki" \
    --hostname-override "$node_name" --node-ip "$ip" \
    > "$dir/logs/kubelet.log" 2>&1 &
  echo $! > "$dir/run/kubelet.pid"
  wait_for "node registered" 120 "$dir/run/kubelet.pid" kc get node "$node_name" ||
    fail "node $node_name did not register" "$dir/logs/kubelet.log"
}

node_ready() {
  [ "$(kc get node "$node_name" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" = True ] &&
    ! kc get node "$node_name" -o jsonpath='{.spec.taints[*].key}' | grep -q not-ready
}

start_local_path() {
  local l=$dir/local-path
  mkdir -p "$l/volumes"
  cat > "$l/config.json" <<EOF
{"nodePathMap": [{"node": "DEFAULT_PATH_FOR_NON_LISTED_NODES", "paths": ["$l/volumes"]}]}
EOF
  kc apply -f - > /dev/null <<EOF
apiVersion: v1
kind: Namespace
metadata: {name: local-path-storage}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: local-path-provisioner-service-account, namespace: local-path-storage}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "aurum:local-path-provisioner"}
rules:
- apiGroups: [""]
  resources: [nodes, persistentvolumeclaims, configmaps, pods, pods/log]
  verbs: [get, list, watch]
- apiGroups: [""]
  resources: [persistentvolumes]
  verbs: [get, list, watch, create, patch, update, delete]
- apiGroups: [""]
  resources: [events]
  verbs: [create, patch]
- apiGroups: [storage.k8s.io]
  resources: [storageclasses]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "aurum:local-path-provisioner"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "aurum:local-path-provisioner"}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: "aurum:local-path-provisioner"}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: "aurum:local-path-provisioner", namespace: local-path-storage}
rules:
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch, create, patch, update, delete]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: "aurum:local-path-provisioner", namespace: local-path-storage}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: "aurum:local-path-provisioner"}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: "aurum:local-path-provisioner"}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: local-path-config, namespace: local-path-storage}
data:
  setup: |-
    #!/bin/sh
    set -eu
    mkdir -m 0777 -p "\$VOL_DIR"
  teardown: |-
    #!/bin/sh
    set -eu
    rm -rf "\$VOL_DIR"
  helperPod.yaml: |-
    apiVersion: v1
    kind: Pod
    metadata:
      name: helper-pod
    spec:
      priorityClassName: system-node-critical
      tolerations:
        - key: node.kubernetes.io/disk-pressure
          operator: Exists
          effect: NoSchedule
      containers:
      - name: helper-pod
        image: $(busybox_image)
        imagePullPolicy: Never
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: standard
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: rancher.io/local-path
volumeBindingMode: WaitForFirstConsumer
reclaimPolicy: Delete
EOF
  "$(tool local-path-provisioner "$LPP_VERSION")" --debug start \
    --config "$l/config.json" --kubeconfig "$dir/local-path-provisioner.kubeconfig" \
    --namespace local-path-storage --configmap-name local-path-config \
    --service-account-name local-path-provisioner-service-account \
    --helper-image "$(busybox_image)" --provisioner-name rancher.io/local-path \
    > "$dir/logs/local-path-provisioner.log" 2>&1 &
  echo $! > "$dir/run/local-path-provisioner.pid"
  sleep 1
  running "$dir/run/local-path-provisioner.pid" ||
    fail "local-path-provisioner exited" "$dir/logs/local-path-provisioner.log"
}

start() {
  dir=$1
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  [ "$(id -u)" = 0 ] || die "needs root (mounts, cgroups, iptables)"
  if all_running "$dir" && [ -f "$dir/env" ]; then
    log "already running in $dir"
    print_env "$dir"
    return 0
  fi
  if [ -f "$marker" ] && [ "$(cat "$marker")" != "$dir" ] && all_running "$(cat "$marker")"; then
    die "a cluster already runs in $(cat "$marker"); stop it first"
  fi
  build
  stop "$dir" 2>/dev/null || true
  mounts_under "$dir" && die "mounts remain below $dir after cleaning up: $(findmnt -rn -o TARGET | grep -F "$dir/" | tr '\n' ' ')"
  t0=$SECONDS
  # A failed start takes down what it started (the logs stay in DIR/logs), unless
  # AURUM_CLUSTER_KEEP=1 (to look at it; stop it afterwards).
  if [ "${AURUM_CLUSTER_KEEP:-}" != 1 ]; then
    # shellcheck disable=SC2154 # rc is assigned in the trap itself
    trap 'rc=$?; if [ $rc != 0 ]; then log "start failed; stopping what it started"; stop "$dir" || true; fi' EXIT
  fi
  echo "$dir" > "$marker"
  mkdir -p "$dir/run" "$dir/logs"
  rm -f "$dir/env"
  ip=$(node_ip)
  save_machine_state
  start_control_plane
  step "control plane up at $server"
  guard_rules
  start_containerd
  step "containerd up ($(cat "$dir/snapshotter"))"
  start_coredns
  step "CoreDNS ready"
  # kubelet registers the node first: kube-proxy takes the node's addresses from
  # it (and waits 30 s for it otherwise). Nothing can use a ClusterIP meanwhile:
  # the cluster is new, and nothing is scheduled on a node until it is Ready.
  start_kubelet
  step "node $node_name registered"
  start_kube_proxy
  step "kube-proxy has programmed the Services (kube-dns $DNS_IP)"
  wait_for kube-scheduler 30 "$dir/run/kube-scheduler.pid" \
    grep -q "Serving securely" "$dir/logs/kube-scheduler.log" ||
    fail "kube-scheduler did not start" "$dir/logs/kube-scheduler.log"
  wait_for "node Ready" 120 "$dir/run/kubelet.pid" node_ready ||
    fail "node $node_name did not become Ready" "$dir/logs/kubelet.log"
  step "node $node_name Ready"
  start_local_path
  step "StorageClass standard (local-path-provisioner) up"
  cat > "$dir/env" <<EOF
KUBECONFIG=$dir/cp/admin.kubeconfig
AURUM_KUBE_BIN=$bindir
AURUM_NODE_NAME=$node_name
AURUM_NODE_IP=$ip
AURUM_CONTAINERD_SOCK=$dir/containerd/containerd.sock
AURUM_CRICTL=$(tool crictl "$CRICTL_VERSION")
AURUM_BUSYBOX_IMAGE=$(busybox_image)
AURUM_STORAGE_CLASS=standard
AURUM_CLUSTER_DNS=$DNS_IP
AURUM_POD_CIDR=$POD_CIDR
EOF
  trap - EXIT
  log "cluster up in $((SECONDS - t0))s (state and logs in $dir)"
  print_env "$dir"
}

# --- import ------------------------------------------------------------------------

import_images() {
  dir=$(cd "$1" && pwd)
  shift
  running "$dir/run/containerd.pid" || die "containerd does not run in $dir"
  local a snap
  snap=$(cat "$dir/snapshotter")
  for a in "$@"; do
    [ -f "$a" ] || die "no such archive: $a"
    # Named by the archive's io.containerd.image.name or full
    # org.opencontainers.image.ref.name annotation (buildah writes the latter).
    ctr_ images import --snapshotter "$snap" "$a" >&2
  done
  ctr_ images ls -q | grep -v '^sha256:' >&2
}

# --- stop --------------------------------------------------------------------------

# stop_pids PIDFILE...: SIGTERM to all at once, SIGKILL to those alive after 10 s.
stop_pids() {
  local f pids=() pid some
  for f in "$@"; do
    [ -f "$f" ] || continue
    pid=$(cat "$f")
    kill "$pid" 2>/dev/null && pids+=("$pid")
  done
  for _ in $(seq 1 100); do
    some=0
    for pid in "${pids[@]}"; do alive "$pid" && some=1; done
    [ $some = 0 ] && break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  rm -f "$@"
}

# Unmount everything below $1, deepest first (kubelet bind-mounts its root
# onto itself; pod volumes, sandbox shm, overlay rootfs and netns are mounts too).
unmount_under() {
  local root=$1 m ms
  for _ in 1 2 3 4 5 6; do
    ms=$(findmnt -rn -o TARGET | awk -v r="$root" 'index($0, r "/") == 1' | sort -r)
    [ -z "$ms" ] && return 0
    for m in $ms; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
  done
  ! findmnt -rn -o TARGET | awk -v r="$root" 'index($0, r "/") == 1' | grep -q .
}

# Delete chains named like $2 (a regex) from table $1 of $3 (iptables/ip6tables),
# with every rule that jumps to them.
drop_chains() {
  local t=$1 re=$2 ipt=$3 save rule c chains
  save=$("$ipt-save" -t "$t" 2>/dev/null) || return 0
  chains=$(echo "$save" | sed -n "s/^:\\(${re}[^ ]*\\) .*/\\1/p")
  [ -z "$chains" ] && return 0
  { echo "$save" | grep -E "^-A .* -j $re" | grep -vE "^-A $re" || true; } | while read -r rule; do
    eval "$ipt -w -t $t -D ${rule#-A }" 2>/dev/null || true
  done
  for c in $chains; do "$ipt" -w -t "$t" -F "$c" 2>/dev/null || true; done
  for c in $chains; do "$ipt" -w -t "$t" -X "$c" 2>/dev/null || true; done
}

stop() {
  dir=$1
  [ -d "$dir" ] || return 0
  dir=$(cd "$dir" && pwd)
  t0=$SECONDS
  # The bridge, iptables chains, cgroups and sysctls belong to the machine's one
  # cluster: when that runs from another DIR, leave them alone.
  local other=
  if [ -f "$marker" ] && [ "$(cat "$marker")" != "$dir" ] && all_running "$(cat "$marker")"; then
    other=$(cat "$marker")
    log "the machine's cluster runs from $other: stopping only what runs from $dir"
  fi
  stop_pids "$dir/run/local-path-provisioner.pid" "$dir/run/kubelet.pid"
  step "kubelet stopped"
  # Pods down through the CRI, so that the CNI plugins undo their work.
  if running "$dir/run/containerd.pid"; then
    local crictl=("$(tool crictl "$CRICTL_VERSION")" --runtime-endpoint "unix://$dir/containerd/containerd.sock" --timeout 20s)
    if [ -x "${crictl[0]}" ]; then
      local pods
      pods=$("${crictl[@]}" pods -q 2>/dev/null || true)
      # shellcheck disable=SC2086 # one argument per pod
      [ -n "$pods" ] && "${crictl[@]}" stopp $pods > /dev/null 2>&1 || true
      "${crictl[@]}" rmp -a -f > /dev/null 2>&1 || true
    fi
  fi
  step "pods stopped and removed"
  stop_pids "$dir/run/coredns.pid" "$dir/run/kube-proxy.pid" "$dir/run/kube-scheduler.pid" \
    "$dir/run/containerd.pid" "$dir/cp/controller-manager.pid"
  # Shims (and their containers) that outlived containerd.
  local pid
  for pid in $(pgrep -f "containerd-shim-runc-v2 .*-address $dir/containerd/containerd.sock" || true); do
    kill -9 "$pid" 2>/dev/null || true
  done
  if [ -n "$other" ]; then
    "$kube_sh" stop "$dir/cp"
    unmount_under "$dir" || { log "mounts remain under $dir"; return 1; }
    rm -f "$dir/env"
    log "stopped in $((SECONDS - t0))s"
    return 0
  fi
  # Processes left in the pods' cgroups, then the cgroups, depth first.
  local h pids
  for h in /sys/fs/cgroup/*/kubepods; do
    [ -d "$h" ] || continue
    pids=$(find "$h" -name cgroup.procs -exec cat {} + 2>/dev/null || true)
    # shellcheck disable=SC2086 # one argument per process
    if [ -n "$pids" ]; then kill -9 $pids 2>/dev/null || true; fi
  done
  sleep 0.2
  for h in /sys/fs/cgroup/*/kubepods; do
    if [ -d "$h" ]; then find "$h" -depth -type d -exec rmdir {} + 2>/dev/null || true; fi
  done
  "$kube_sh" stop "$dir/cp"
  step "processes stopped"

  unmount_under "$dir" || log "some mounts under $dir remain: $(findmnt -rn -o TARGET | grep -F "$dir/" | tr '\n' ' ')"

  # Network: veths on the bridge (their peers went with the pods' netns), the bridge.
  local l
  for l in $(ip -o link show master "$BRIDGE" 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1); do
    ip link del "$l" 2>/dev/null || true
  done
  ip link del "$BRIDGE" 2>/dev/null || true

  # iptables: ours, then kube-proxy's and kubelet's KUBE-* and the CNI plugins' CNI-*.
  local c
  for c in OUTPUT FORWARD; do
    while iptables -w -D "$c" -j "$GUARD" 2>/dev/null; do :; done
  done
  iptables -w -F "$GUARD" 2>/dev/null && iptables -w -X "$GUARD" 2>/dev/null || true
  if [ -x "$bindir/kube-proxy" ] && iptables-save 2>/dev/null | grep -q '^:KUBE-'; then
    "$bindir/kube-proxy" --cleanup >> "$dir/logs/kube-proxy-cleanup.log" 2>&1 || true
  fi
  local ipt t
  for ipt in iptables ip6tables; do
    command -v "$ipt" >/dev/null || continue
    for t in filter nat mangle raw; do
      drop_chains "$t" 'KUBE-' "$ipt"
      drop_chains "$t" 'CNI-' "$ipt"
    done
  done

  # sysctls kubelet (and the bridge plugin) changed.
  if [ -f "$dir/sysctl.saved" ]; then
    local kv
    while read -r kv; do sysctl -q -w "$kv" > /dev/null 2>&1 || log "could not restore $kv"; done < "$dir/sysctl.saved"
    rm -f "$dir/sysctl.saved"
  fi
  # Files kubelet and CNI wrote outside DIR.
  if [ -d /var/log/containers ]; then
    find /var/log/containers -maxdepth 1 -type l -lname "$dir/*" -delete 2>/dev/null || true
  fi
  rm -f /var/lib/cni/results/"$CNI_NET"-* 2>/dev/null || true
  if [ -f "$dir/outside.saved" ]; then
    local p
    for p in $OUTSIDE; do
      grep -qx "$p" "$dir/outside.saved" && continue
      [ -e "$p" ] || continue
      if mounts_under "$p"; then log "$p has mounts: left in place"; continue; fi
      rm -rf --one-file-system "$p"
    done
    rm -f "$dir/outside.saved"
  fi
  # Shim sockets nobody listens on any more.
  if [ -d /run/containerd/s ]; then
    local s live
    live=$(ss -Hxl 2>/dev/null | awk '{print $5}')
    for s in /run/containerd/s/*; do
      [ -S "$s" ] || continue
      echo "$live" | grep -qxF "$s" || rm -f "$s"
    done
  fi
  # Volumes and pod state (root-owned files of pods), never through a mount.
  if ! mounts_under "$dir"; then
    rm -rf --one-file-system "$dir/containerd" "$dir/kubelet" "$dir/cni" "$dir/local-path"
  fi
  rm -f "$dir/env"
  if [ -f "$marker" ] && [ "$(cat "$marker")" = "$dir" ]; then rm -f "$marker"; fi
  # What must not be left behind.
  local left=()
  mounts_under "$dir" && left+=("mounts under $dir")
  ip link show "$BRIDGE" > /dev/null 2>&1 && left+=("bridge $BRIDGE")
  iptables-save 2>/dev/null | grep -qE "^:($GUARD|KUBE-|CNI-)" && left+=("iptables chains")
  ls -d /sys/fs/cgroup/*/kubepods > /dev/null 2>&1 && left+=("kubepods cgroups")
  if [ ${#left[@]} -gt 0 ]; then
    log "stopped in $((SECONDS - t0))s, but left: ${left[*]}"
    return 1
  fi
  log "stopped in $((SECONDS - t0))s"
}

case "${1:-}" in
  build) build ;;
  start) [ $# = 2 ] || die "usage: $0 start DIR"; start "$2" ;;
  env) [ $# = 2 ] || die "usage: $0 env DIR"
    { [ -f "$2/env" ] && all_running "$2"; } || die "not running in $2"
    print_env "$2" ;;
  import) [ $# -ge 3 ] || die "usage: $0 import DIR ARCHIVE..."; shift; import_images "$@" ;;
  # (Called in a condition, stop goes on past a failing step; it checks at the end.)
  stop) [ $# = 2 ] || die "usage: $0 stop DIR"; stop "$2" || exit 1 ;;
  image-busybox) echo "$(busybox_archive)" ;;
  *) echo "usage: $0 build | start DIR | env DIR | import DIR ARCHIVE... | stop DIR | image-busybox" >&2; exit 2 ;;
esac
