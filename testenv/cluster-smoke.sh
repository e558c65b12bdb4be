#!/usr/bin/env bash
# Proves that the node of testenv/cluster.sh runs pods as a node does, with the
# busybox image cluster.sh builds (no registry):
#   - a Pod as uid 65532 with a read-only root, an emptyDir /tmp, a ConfigMap and a
#     Secret as volumes: its termination message is read back from the status, its
#     output through `kubectl logs`;
#   - a Deployment (2 replicas, readiness by HTTP) behind a Service, reached from
#     another pod by its full and its short DNS name, and the apiserver through
#     the `kubernetes` Service; `kubectl exec` (with stdin);
#   - a container over its 32Mi memory limit is reported OOMKilled;
#   - a failing liveness probe restarts a container;
#   - a PersistentVolumeClaim of the default StorageClass binds and is writable by
#     a non-root pod (uid 999, fsGroup 999), and its volume goes with the claim;
#   - from the host: a hostPort (on the node address and 127.0.0.1), a NodePort
#     and a ClusterIP reach a pod;
#   - a missing image is not pulled: containerd's pulls end at a closed loopback port;
#   - the safety net: a ClusterIP nobody serves is refused on this machine.
# All pods but the one with a hostPort run in a namespace that enforces Pod
# Security `restricted`.
#
#   testenv/cluster-smoke.sh DIR   against the cluster running in DIR; if none runs
#                                  there, start one and stop it at the end
# Exit status 0 only if every check passed; each check logs its time.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
log() { echo "cluster-smoke: $*" >&2; }
die() { echo "cluster-smoke: $*" >&2; exit 1; }

[ $# = 1 ] || die "usage: $0 DIR"
dir=$1
started=0
if ! settings=$("$here/cluster.sh" env "$dir" 2>/dev/null); then
  settings=$("$here/cluster.sh" start "$dir")
  started=1
fi
while IFS='=' read -r k v; do [ -n "$k" ] && export "$k=$v"; done <<< "$settings"
kc() { "$AURUM_KUBE_BIN/kubectl" "$@"; }
ns=aurum-smoke
img=$AURUM_BUSYBOX_IMAGE

cleanup() {
  kc delete namespace "$ns" "$ns-host" --ignore-not-found --wait=false > /dev/null 2>&1 || true
  if [ $started = 1 ]; then "$here/cluster.sh" stop "$dir" || true; fi
}
trap cleanup EXIT

failures=()
check() {
  local name=$1 t0=$SECONDS
  shift
  if "$@"; then
    log "ok   $name ($((SECONDS - t0))s)"
  else
    log "FAIL $name ($((SECONDS - t0))s)"
    failures+=("$name")
  fi
}

# wait_phase POD PHASE SECONDS: until the pod reaches PHASE (fails early on Failed).
wait_phase() {
  local pod=$1 want=$2 secs=$3 phase=
  for _ in $(seq 1 $((secs * 2))); do
    phase=$(kc -n "$ns" get pod "$pod" -o jsonpath='{.status.phase}' 2>/dev/null || true)
    [ "$phase" = "$want" ] && return 0
    [ "$phase" = Failed ] && [ "$want" != Failed ] && break
    sleep 0.5
  done
  log "pod $pod is ${phase:-missing}, not $want"
  kc -n "$ns" describe pod "$pod" | tail -25 >&2 || true
  return 1
}

# The securityContext every container needs under Pod Security `restricted`.
restricted='{"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}'
pod_restricted='{"runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532, "seccompProfile": {"type": "RuntimeDefault"}}'

setup() {
  kc delete namespace "$ns" "$ns-host" --ignore-not-found --wait=true --timeout=120s > /dev/null
  kc apply -f - > /dev/null <<EOF
apiVersion: v1
kind: Namespace
metadata:
  name: $ns
  labels: {pod-security.kubernetes.io/enforce: restricted}
---
apiVersion: v1
kind: Namespace
metadata: {name: $ns-host}
EOF
  # A namespace's default ServiceAccount comes from the controller-manager.
  local n
  for n in "$ns" "$ns-host"; do
    for _ in $(seq 1 60); do kc -n "$n" get serviceaccount default > /dev/null 2>&1 && break; sleep 0.5; done
    kc -n "$n" get serviceaccount default > /dev/null 2>&1 || die "no default ServiceAccount in $n"
  done
}

pod_with_volumes() {
  kc -n "$ns" apply -f - > /dev/null <<EOF
apiVersion: v1
kind: ConfigMap
metadata: {name: smoke-config}
data: {greeting: hello-from-configmap}
---
apiVersion: v1
kind: Secret
metadata: {name: smoke-secret}
stringData: {token: s3cret-token}
---
apiVersion: v1
kind: Pod
metadata: {name: shape}
spec:
  restartPolicy: Never
  securityContext: $pod_restricted
  containers:
  - name: main
    image: $img
    imagePullPolicy: Never
    command:
    - sh
    - -c
    - |
      set -e
      if touch /written 2>/dev/null; then echo "root filesystem is writable" >&2; exit 3; fi
      echo scratch > /tmp/scratch
      echo "\$(cat /config/greeting) \$(cat /secret/token) uid=\$(id -u) tmp=\$(cat /tmp/scratch)" > /dev/termination-log
      echo "a line for kubectl logs"
    securityContext:
      readOnlyRootFilesystem: true
      allowPrivilegeEscalation: false
      capabilities: {drop: [ALL]}
    volumeMounts:
    - {name: tmp, mountPath: /tmp}
    - {name: config, mountPath: /config, readOnly: true}
    - {name: secret, mountPath: /secret, readOnly: true}
  volumes:
  - {name: tmp, emptyDir: {}}
  - {name: config, configMap: {name: smoke-config}}
  - {name: secret, secret: {secretName: smoke-secret}}
EOF
  wait_phase shape Succeeded 120 || return 1
  local msg logs
  msg=$(kc -n "$ns" get pod shape -o jsonpath='{.status.containerStatuses[0].state.terminated.message}')
  logs=$(kc -n "$ns" logs shape)
  log "  termination message: $msg; logs: $logs"
  [ "$msg" = "hello-from-configmap s3cret-token uid=65532 tmp=scratch" ] &&
    [ "$logs" = "a line for kubectl logs" ]
}

service_by_dns() {
  kc -n "$ns" apply -f - > /dev/null <<EOF
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      securityContext: $pod_restricted
      containers:
      - name: httpd
        image: $img
        imagePullPolicy: Never
        command: [sh, -c, 'mkdir -p /tmp/www && hostname > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www']
        ports: [{containerPort: 8080, name: http}]
        readinessProbe:
          httpGet: {path: /index.html, port: http}
          periodSeconds: 1
        securityContext: $restricted
        volumeMounts: [{name: tmp, mountPath: /tmp}]
      volumes: [{name: tmp, emptyDir: {}}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: http}]
EOF
  kc -n "$ns" rollout status deployment/web --timeout=120s > /dev/null || return 1
  kc -n "$ns" apply -f - > /dev/null <<EOF
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  restartPolicy: Never
  securityContext: $pod_restricted
  containers:
  - name: main
    image: $img
    imagePullPolicy: Never
    command:
    - sh
    - -c
    - |
      # (Debian's busybox wget crashes with -T: timeout instead.) A few tries:
      # kube-proxy programs a new Service within a sync period.
      for i in 1 2 3 4 5 6 7 8 9 10; do
        full=\$(timeout 10 wget -qO- http://web.$ns.svc.cluster.local/index.html) && break
        sleep 1
      done
      short=\$(timeout 10 wget -qO- http://web/index.html)
      # The apiserver through the kubernetes Service, as the operator reaches it.
      api=no
      timeout 10 nc -w 5 kubernetes.default.svc 443 < /dev/null && api=yes
      echo "\$full \$short \$api" > /dev/termination-log
      cat /etc/resolv.conf
      [ -n "\$full" ] && [ -n "\$short" ]
    securityContext: $restricted
EOF
  wait_phase client Succeeded 120 || { kc -n "$ns" logs client >&2 || true; return 1; }
  local msg pods full short api
  msg=$(kc -n "$ns" get pod client -o jsonpath='{.status.containerStatuses[0].state.terminated.message}')
  pods=$(kc -n "$ns" get pods -l app=web -o jsonpath='{.items[*].metadata.name}')
  read -r full short api <<< "$msg"
  log "  web pods: $pods; by full name: $full; by short name: $short; apiserver via kubernetes.default.svc: $api"
  echo " $pods " | grep -q " $full " && echo " $pods " | grep -q " $short " && [ "$api" = yes ]
}

exec_and_logs() {
  local pod out
  pod=$(kc -n "$ns" get pods -l app=web -o jsonpath='{.items[0].metadata.name}')
  out=$(kc -n "$ns" exec "$pod" -- cat /etc/hostname)
  [ "$out" = "$pod" ] || { log "  exec: hostname $out, expected $pod"; return 1; }
  out=$(echo "through stdin" | kc -n "$ns" exec -i "$pod" -- sh -c 'cat; id -u')
  [ "$out" = "through stdin
65532" ] || { log "  exec -i gave: $out"; return 1; }
}

oom_killed() {
  kc -n "$ns" apply -f - > /dev/null <<EOF
apiVersion: v1
kind: Pod
metadata: {name: hungry}
spec:
  restartPolicy: Never
  securityContext: $pod_restricted
  containers:
  - name: main
    image: $img
    imagePullPolicy: Never
    # The shell keeps the whole 200 MB in memory, against a 32Mi limit.
    command: [sh, -c, 'x=\$(head -c 200000000 /dev/zero | tr "\\000" x); echo survived \${#x}']
    resources:
      limits: {memory: 32Mi}
      requests: {memory: 32Mi}
    securityContext: $restricted
EOF
  wait_phase hungry Failed 120 || return 1
  local reason code
  reason=$(kc -n "$ns" get pod hungry -o jsonpath='{.status.containerStatuses[0].state.terminated.reason}')
  code=$(kc -n "$ns" get pod hungry -o jsonpath='{.status.containerStatuses[0].state.terminated.exitCode}')
  log "  reason $reason, exit code $code"
  [ "$reason" = OOMKilled ] && [ "$code" = 137 ]
}

liveness_restart() {
  kc -n "$ns" apply -f - > /dev/null <<EOF
apiVersion: v1
kind: Pod
metadata: {name: unhealthy}
spec:
  # sleep, as PID 1, ignores SIGTERM: do not wait 30 s before the restart.
  terminationGracePeriodSeconds: 1
  securityContext: $pod_restricted
  containers:
  - name: main
    image: $img
    imagePullPolicy: Never
    command: [sh, -c, 'touch /tmp/healthy; sleep 4; rm /tmp/healthy; exec sleep 600']
    livenessProbe:
      exec: {command: [cat, /tmp/healthy]}
      initialDelaySeconds: 1
      periodSeconds: 1
      failureThreshold: 2
    securityContext: $restricted
    volumeMounts: [{name: tmp, mountPath: /tmp}]
  volumes: [{name: tmp, emptyDir: {}}]
EOF
  local n=0
  for _ in $(seq 1 120); do
    n=$(kc -n "$ns" get pod unhealthy -o jsonpath='{.status.containerStatuses[0].restartCount}' 2>/dev/null || echo 0)
    [ "${n:-0}" -ge 1 ] && break
    sleep 0.5
  done
  log "  restarts: $n; $(kc -n "$ns" get events --field-selector involvedObject.name=unhealthy,reason=Unhealthy -o jsonpath='{.items[0].message}' 2>/dev/null)"
  [ "${n:-0}" -ge 1 ]
}

pvc_writable() {
  kc -n "$ns" apply -f - > /dev/null <<EOF
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 64Mi}}
---
apiVersion: v1
kind: Pod
metadata: {name: writer}
spec:
  restartPolicy: Never
  securityContext:
    runAsNonRoot: true
    runAsUser: 999
    runAsGroup: 999
    fsGroup: 999
    seccompProfile: {type: RuntimeDefault}
  containers:
  - name: main
    image: $img
    imagePullPolicy: Never
    command: [sh, -c, 'echo kept > /data/file && mkdir /data/sub && echo "\$(id -u) \$(cat /data/file)" > /dev/termination-log']
    securityContext: $restricted
    volumeMounts: [{name: data, mountPath: /data}]
  volumes: [{name: data, persistentVolumeClaim: {claimName: data}}]
EOF
  wait_phase writer Succeeded 120 || return 1
  local msg pv sc path
  msg=$(kc -n "$ns" get pod writer -o jsonpath='{.status.containerStatuses[0].state.terminated.message}')
  pv=$(kc -n "$ns" get pvc data -o jsonpath='{.spec.volumeName}')
  sc=$(kc -n "$ns" get pvc data -o jsonpath='{.spec.storageClassName}')
  path=$(kc get pv "$pv" -o jsonpath='{.spec.hostPath.path}')
  log "  writer: $msg; claim bound to $pv of class $sc at $path"
  [ "$msg" = "999 kept" ] && [ "$sc" = standard ] && [ -f "$path/file" ] || return 1
  kc -n "$ns" delete pod writer --wait=true > /dev/null
  kc -n "$ns" delete pvc data --wait=true > /dev/null
  for _ in $(seq 1 120); do
    if ! kc get pv "$pv" > /dev/null 2>&1 && [ ! -e "$path" ]; then return 0; fi
    sleep 0.5
  done
  log "  PV $pv or $path still there after the claim was deleted"
  return 1
}

# In a namespace of its own: Pod Security `restricted` forbids hostPorts.
host_ports() {
  local hp=18080 ns=$ns-host used
  # Free on the machine, and no pod's hostPort (those are iptables rules, not listeners).
  used=" $(kc get pods -A -o jsonpath='{..hostPort}') "
  while [ -n "$(ss -Htuln "sport = :$hp")" ] || [[ $used == *" $hp "* ]]; do hp=$((hp + 1)); done
  kc -n "$ns" apply -f - > /dev/null <<EOF
apiVersion: v1
kind: Pod
metadata: {name: exposed, labels: {app: exposed}}
spec:
  securityContext: $pod_restricted
  terminationGracePeriodSeconds: 1
  containers:
  - name: httpd
    image: $img
    imagePullPolicy: Never
    command: [sh, -c, 'mkdir -p /tmp/www && echo exposed > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www']
    ports: [{containerPort: 8080, hostPort: $hp}]
    securityContext: $restricted
    volumeMounts: [{name: tmp, mountPath: /tmp}]
  volumes: [{name: tmp, emptyDir: {}}]
---
apiVersion: v1
kind: Service
metadata: {name: exposed}
spec:
  type: NodePort
  selector: {app: exposed}
  ports: [{port: 80, targetPort: 8080}]
EOF
  kc -n "$ns" wait --for=condition=Ready pod/exposed --timeout=120s > /dev/null || return 1
  local np cip a b c d
  np=$(kc -n "$ns" get service exposed -o jsonpath='{.spec.ports[0].nodePort}')
  cip=$(kc -n "$ns" get service exposed -o jsonpath='{.spec.clusterIP}')
  # kube-proxy programs the Service within a sync period of the endpoint's readiness.
  for _ in $(seq 1 30); do
    a=$(curl -s --max-time 5 "http://$AURUM_NODE_IP:$hp/index.html" || true)
    b=$(curl -s --max-time 5 "http://127.0.0.1:$hp/index.html" || true)
    c=$(curl -s --max-time 5 "http://$AURUM_NODE_IP:$np/index.html" || true)
    d=$(curl -s --max-time 5 "http://$cip/index.html" || true)
    [ "$a$b$c$d" = exposedexposedexposedexposed ] && break
    sleep 0.5
  done
  log "  hostPort $hp on $AURUM_NODE_IP: ${a:-nothing}, on 127.0.0.1: ${b:-nothing}; NodePort $np: ${c:-nothing}; ClusterIP from the host: ${d:-nothing}"
  [ "$a" = exposed ] && [ "$b" = exposed ] && [ "$c" = exposed ] && [ "$d" = exposed ]
}

no_pull() {
  kc -n "$ns" apply -f - > /dev/null <<EOF
apiVersion: v1
kind: Pod
metadata: {name: missing-image}
spec:
  securityContext: $pod_restricted
  containers:
  - name: main
    image: docker.io/library/busybox:1.36.1
    imagePullPolicy: IfNotPresent
    securityContext: $restricted
EOF
  local msg=
  for _ in $(seq 1 60); do
    msg=$(kc -n "$ns" get events --field-selector involvedObject.name=missing-image,reason=Failed \
      -o jsonpath='{.items[0].message}' 2>/dev/null || true)
    [ -n "$msg" ] && break
    sleep 0.5
  done
  log "  ${msg:-no pull failure reported}"
  [[ $msg == *"proxyconnect tcp: dial tcp 127.0.0.1:9: connect: connection refused"* ]]
}

safety_net() {
  local c first
  for c in OUTPUT FORWARD; do
    first=$(iptables -w -S "$c" | sed -n 2p)
    [ "$first" = "-A $c -j AURUM-GUARD" ] || { log "  $c starts with: $first"; return 1; }
  done
  # An address of the Service CIDR that no Service has: rejected here.
  local used ip=250 rc=0
  used=" $(kc get services -A -o jsonpath='{..clusterIP}') "
  while [[ $used == *" 10.0.0.$ip "* ]]; do ip=$((ip - 1)); done
  curl -s --max-time 3 "http://10.0.0.$ip/" > /dev/null 2>&1 || rc=$?
  log "  curl to the unserved ClusterIP 10.0.0.$ip: exit $rc (7: refused)"
  [ $rc = 7 ]
}

t0=$SECONDS
setup
check "pod: uid 65532, read-only root, emptyDir, ConfigMap, Secret, termination message, logs" pod_with_volumes
check "Deployment behind a Service, by DNS name from another pod" service_by_dns
check "kubectl exec (and stdin)" exec_and_logs
check "32Mi memory limit: OOMKilled" oom_killed
check "liveness probe failure restarts the container" liveness_restart
check "default StorageClass: PVC bound, writable by uid 999, removed with the claim" pvc_writable
check "hostPort, NodePort and ClusterIP reach a pod from the host" host_ports
check "a missing image is not pulled from anywhere" no_pull
check "safety net: unserved ClusterIP refused" safety_net
if [ ${#failures[@]} -gt 0 ]; then
  log "${#failures[@]} check(s) failed in $((SECONDS - t0))s: ${failures[*]}"
  exit 1
fi
log "all checks passed in $((SECONDS - t0))s"
