#!/usr/bin/env bash
# The ingress controller of testenv/ingress.sh (Traefik) against a real control
# plane: the chart's own api and dashboard Ingresses (rendered by helm from
# values-quickstart.yaml), routed by host and path to HTTP servers on this
# machine's own address through Services without selector and hand-written
# EndpointSlices (what the endpointslice controller writes for pods); the
# default IngressClass; the Ingress status; a wrong host; the API's Ingress
# leaving out /metrics and /docs unless api.ingress.exposeMetrics/exposeDocs;
# endpoint changes followed live; TLS from the chart's `tls` values; gRPC
# (Arrow Flight) over h2c.
#
#   testenv/ingress-check.sh [DIR]   state in DIR (default ~/.cache/aurum/test/ingress-check)
#
# Uses KUBECONFIG (and AURUM_KUBE_BIN) when set, else starts testenv/kube.sh in
# DIR/kube and stops it again. Ends with `N passed, N failed`; exits non-zero on
# any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

DIR=${1:-$HOME/.cache/aurum/test/ingress-check}
NS=aurum-ingress-check
VENV=${AURUM_FLIGHT_VENV:-$HOME/.cache/aurum/venv-flight}
PYARROW=pyarrow==26.0.1 # the version api/tests/flight_python.sh installs into the same venv

log() { echo "ingress-check.sh: $*" >&2; }
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)

started_kube=0
backend_pid=""
cleanup() {
  if [ -n "$backend_pid" ]; then kill "$backend_pid" 2>/dev/null || true; fi
  testenv/ingress.sh stop "$DIR/ingress" >&2 || true
  if [ $started_kube = 1 ]; then testenv/kube.sh stop "$DIR/kube" >&2 || true; fi
}
trap cleanup EXIT

if [ -z "${KUBECONFIG:-}" ]; then
  env_out=$(testenv/kube.sh start "$DIR/kube")
  eval "$env_out"
  export KUBECONFIG AURUM_KUBE_BIN
  started_kube=1
fi
kubectl="${AURUM_KUBE_BIN:-$(testenv/kube.sh bin)}/kubectl"
env_out=$(testenv/helm.sh)
eval "$env_out"
helm="$AURUM_HELM_BIN/helm"

# This machine's own address: EndpointSlices take no loopback addresses.
host_ip=$(ip -4 -o addr show scope global | awk '{sub(/\/.*/, "", $4); print $4; exit}')
[ -n "$host_ip" ] || { log "no global IPv4 address on this machine"; exit 1; }

if ! "$VENV/bin/python" -c 'import pyarrow.flight' 2>/dev/null; then
  log "installing $PYARROW into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "$PYARROW"
fi

t0=$(date +%s.%N)
env_out=$(testenv/ingress.sh start "$DIR/ingress")
t1=$(date +%s.%N)
eval "$env_out"
log "controller started in $(awk "BEGIN {printf \"%.1f\", $t1 - $t0}") s"

# Backends: two HTTP servers (api, dashboard) that answer with their name, the
# path and the Host they were asked for, a second api server for the endpoint
# change, and an Arrow Flight server (gRPC without TLS: h2c).
ports_file="$DIR/backend.ports"
rm -f "$ports_file"
"$VENV/bin/python" - "$host_ip" "$ports_file" > "$DIR/backend.log" 2>&1 <<'PY' &
import http.server, json, socketserver, sys, threading
import pyarrow as pa, pyarrow.flight as fl

host, ports_file = sys.argv[1], sys.argv[2]

def http_server(name):
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps({"backend": name, "path": self.path,
                               "host": self.headers.get("Host"),
                               "xfh": self.headers.get("X-Forwarded-Host")}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        def log_message(self, *a):
            pass
    s = socketserver.ThreadingTCPServer((host, 0), H)
    threading.Thread(target=s.serve_forever, daemon=True).start()
    return s.server_address[1]

class Flight(fl.FlightServerBase):
    def do_get(self, context, ticket):
        t = pa.table({"n": list(range(1000)), "ticket": [ticket.ticket.decode()] * 1000})
        return fl.RecordBatchStream(t)

ports = {n: http_server(n) for n in ("api", "api2", "dashboard")}
f = Flight(f"grpc://{host}:0")
ports["flight"] = f.port
with open(ports_file + ".tmp", "w") as out:
    out.write("\n".join(f"{k}={v}" for k, v in ports.items()) + "\n")
import os; os.rename(ports_file + ".tmp", ports_file)
f.serve()
PY
backend_pid=$!
for _ in $(seq 1 100); do [ -f "$ports_file" ] && break; sleep 0.1; done
[ -f "$ports_file" ] || { cat "$DIR/backend.log" >&2; log "backends did not start"; exit 1; }
port_of() { sed -n "s/^$1=//p" "$ports_file"; }
api=$(port_of api)
api2=$(port_of api2)
dashboard=$(port_of dashboard)
flight=$(port_of flight)

pass=0
fail=0
check() { # check WHAT COMMAND...
  local what=$1
  shift
  if "$@"; then
    echo "ok   $what"
    pass=$((pass + 1))
  else
    echo "FAIL $what"
    fail=$((fail + 1))
  fi
}

# service NAME PORT_NAME:PORT TARGET [ANNOTATION]: a Service without selector and
# its EndpointSlice pointing at TARGET (this machine's address).
service() {
  local name=$1 pname=${2%%:*} port=${2##*:} target=$3 ann=""
  [ -n "${4:-}" ] && ann="annotations: {$4}"
  cat <<EOF
---
apiVersion: v1
kind: Service
metadata:
  name: $name
  namespace: $NS
  $ann
spec:
  ports:
    - name: $pname
      port: $port
      targetPort: $target
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: $name-manual
  namespace: $NS
  labels:
    kubernetes.io/service-name: $name
    endpointslice.kubernetes.io/managed-by: aurum-ingress-check
addressType: IPv4
ports:
  - name: $pname
    port: $target
    protocol: TCP
endpoints:
  - addresses: ["$host_ip"]
    conditions: {ready: true}
EOF
}

"$kubectl" delete namespace "$NS" --ignore-not-found --wait=true >&2
"$kubectl" create namespace "$NS" >&2
{
  service aurum-api http:8080 "$api"
  service aurum-dashboard http:8080 "$dashboard"
  # Traefik speaks h2c to a Service with this annotation (gRPC without TLS).
  service aurum-flight flight-sql:50051 "$flight" '"traefik.ingress.kubernetes.io/service.serversscheme": h2c'
} | "$kubectl" apply -f - >&2

# The chart's own Ingresses, as the quickstart renders them (no className: the
# default IngressClass applies), plus one for Flight SQL on its own host.
"$helm" template aurum charts/aurum -n "$NS" -f charts/aurum/values-quickstart.yaml \
  --show-only templates/ingress.yaml > "$DIR/chart-ingress.yaml"
"$kubectl" apply -f "$DIR/chart-ingress.yaml" >&2
# flight_ingress [SECRET]: an Ingress for Flight SQL, with a `tls` section when
# SECRET is given.
flight_ingress() {
  local tls=""
  [ -n "${1:-}" ] && tls="tls: [{hosts: [flight.aurum.local], secretName: $1}]"
  cat <<EOF | "$kubectl" apply -f - >&2
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: aurum-flight
  namespace: $NS
spec:
  $tls
  rules:
    - host: flight.aurum.local
      http:
        paths:
          - path: /
            pathType: Prefix
            backend:
              service:
                name: aurum-flight
                port:
                  name: flight-sql
EOF
}
flight_ingress

check "the chart renders the api and dashboard Ingresses" \
  test "$(grep -c '^kind: Ingress' "$DIR/chart-ingress.yaml")" = 2
class=$("$kubectl" -n "$NS" get ingress aurum-api -o jsonpath='{.spec.ingressClassName}')
check "the default IngressClass is given to the chart's Ingress (got '$class')" test "$class" = "$AURUM_INGRESS_CLASS"

url=$AURUM_INGRESS_URL
# get HOST PATH: the body, or the status code when not 200.
get() {
  local out code
  out=$(curl -s -o "$DIR/body" -w '%{http_code}' -H "Host: $1" "$url$2" || true)
  if [ "$out" = 200 ]; then cat "$DIR/body"; else echo "$out"; fi
}
wait_for() { # wait_for HOST PATH PATTERN
  for _ in $(seq 1 80); do
    get "$1" "$2" | grep -q "$3" && return 0
    sleep 0.25
  done
  return 1
}
t2=$(date +%s.%N)
wait_for api.aurum.local /healthz '"backend": "api"' || true
log "first route ready $(awk "BEGIN {printf \"%.1f\", $(date +%s.%N) - $t2}") s after the Ingresses were applied"

check "api.aurum.local/ reaches the api backend" \
  wait_for api.aurum.local /gold/customer_lifetime_value?limit=5 '"backend": "api", "path": "/gold/customer_lifetime_value?limit=5"'
check "the backend sees the original Host header" \
  wait_for api.aurum.local /login '"host": "api.aurum.local"'
check "dashboard.aurum.local/ reaches the dashboard backend" \
  wait_for dashboard.aurum.local /datamarts '"backend": "dashboard", "path": "/datamarts"'

# The API's Ingress routes the API's own routes only: /metrics, /docs and
# /openapi.json get the controller's 404, not the API (api.ingress.exposeMetrics
# and exposeDocs off, the default).
for path in /healthz /readyz /gold/top-products; do
  check "api.aurum.local$path reaches the api backend" wait_for api.aurum.local "$path" "\"path\": \"$path\""
done
for path in /metrics /docs /docs/ /docs/index.html /openapi.json /metricsx /loginx /; do
  code=$(get api.aurum.local "$path" | head -c 3)
  check "api.aurum.local$path is not routed: 404 (got $code)" test "$code" = 404
done
"$helm" template aurum charts/aurum -n "$NS" -f charts/aurum/values-quickstart.yaml \
  --set api.ingress.exposeMetrics=true --set api.ingress.exposeDocs=true \
  --show-only templates/ingress.yaml | "$kubectl" apply -f - >&2
for path in /metrics /docs/ /openapi.json /anything; do
  check "with api.ingress.exposeMetrics and exposeDocs: api.aurum.local$path reaches the api backend" \
    wait_for api.aurum.local "$path" "\"path\": \"$path\""
done
"$helm" template aurum charts/aurum -n "$NS" -f charts/aurum/values-quickstart.yaml \
  --set api.ingress.exposeMetrics=true --show-only templates/ingress.yaml | "$kubectl" apply -f - >&2
check "with api.ingress.exposeMetrics only: /docs/ is 404 again" wait_for api.aurum.local /docs/ '^404$'
check "  ... and /metrics reaches the api backend" wait_for api.aurum.local /metrics '"path": "/metrics"'
"$kubectl" apply -f "$DIR/chart-ingress.yaml" >&2
check "the default Ingress again: /metrics is 404" wait_for api.aurum.local /metrics '^404$'
code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Host: wrong.aurum.local' "$url/")
check "a wrong host gets 404 (got $code)" test "$code" = 404
code=$(curl -s -o /dev/null -w '%{http_code}' "$url/")
check "no Host rule for 127.0.0.1 itself: 404 (got $code)" test "$code" = 404

status_ip() { "$kubectl" -n "$NS" get ingress "$1" -o jsonpath='{.status.loadBalancer.ingress[0].ip}'; }
for _ in $(seq 1 40); do [ "$(status_ip aurum-api)" = 127.0.0.1 ] && break; sleep 0.25; done
check "the Ingress status is published (api: '$(status_ip aurum-api)', dashboard: '$(status_ip aurum-dashboard)')" \
  test "$(status_ip aurum-api)/$(status_ip aurum-dashboard)" = 127.0.0.1/127.0.0.1

# The endpoint moves (a pod replaced): the controller follows the EndpointSlice.
"$kubectl" -n "$NS" patch endpointslice aurum-api-manual --type=json \
  -p "[{\"op\":\"replace\",\"path\":\"/ports/0/port\",\"value\":$api2}]" >&2
check "an EndpointSlice change is followed live" wait_for api.aurum.local /gold/x '"backend": "api2"'
# No serving endpoint: 503 (allowEmptyServices), not a stale backend.
"$kubectl" -n "$NS" patch endpointslice aurum-api-manual --type=json \
  -p '[{"op":"replace","path":"/endpoints/0/conditions","value":{"ready":false,"serving":false}}]' >&2
check "no serving endpoint gives 503" wait_for api.aurum.local /gold/x '^503$'

# TLS, as the chart renders it with api.ingress.tls.enabled and a certificate in
# the Secret it names.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=api.aurum.local \
  -addext subjectAltName=DNS:api.aurum.local,DNS:flight.aurum.local -keyout "$DIR/tls.key" -out "$DIR/tls.crt" 2>/dev/null
"$kubectl" -n "$NS" create secret tls aurum-api-tls --cert "$DIR/tls.crt" --key "$DIR/tls.key" >&2
"$kubectl" -n "$NS" patch endpointslice aurum-api-manual --type=json \
  -p '[{"op":"replace","path":"/endpoints/0/conditions","value":{"ready":true}}]' >&2
"$helm" template aurum charts/aurum -n "$NS" -f charts/aurum/values-quickstart.yaml \
  --set api.ingress.tls.enabled=true --set api.ingress.tls.secretName=aurum-api-tls \
  --show-only templates/ingress.yaml | "$kubectl" apply -f - >&2
flight_ingress aurum-api-tls
https_port=${AURUM_INGRESS_HTTPS_URL##*:}
https_get() {
  for _ in $(seq 1 80); do
    curl -s --cacert "$DIR/tls.crt" --resolve "api.aurum.local:$https_port:127.0.0.1" \
      "https://api.aurum.local:$https_port/gold/tls" | grep -q '"backend": "api2", "path": "/gold/tls"' && return 0
    sleep 0.25
  done
  return 1
}
check "TLS with the chart's tls values and the Secret's certificate" https_get

# gRPC: an Arrow Flight DoGet through the controller to the h2c backend: over
# h2c with the :authority naming the Ingress host, and over TLS (ALPN h2) on the
# HTTPS entry point with the Ingress's certificate.
flight_get() { # flight_get URI [CA]
  FLIGHT_URI=$1 FLIGHT_CA=${2:-} "$VENV/bin/python" - <<'PY'
import os, sys, time
import pyarrow.flight as fl
uri, ca = os.environ["FLIGHT_URI"], os.environ["FLIGHT_CA"]
if ca:
    c = fl.FlightClient(uri, tls_root_certs=open(ca, "rb").read(),
                        override_hostname="flight.aurum.local")
else:
    c = fl.FlightClient(uri, generic_options=[("grpc.default_authority", "flight.aurum.local")])
err = None
for attempt in range(40):
    try:
        t = c.do_get(fl.Ticket(b"through-the-ingress")).read_all()
        break
    except fl.FlightError as e:
        err = e
        time.sleep(0.25)
else:
    print(f"flight: {err}", file=sys.stderr)
    sys.exit(1)
ok = t.num_rows == 1000 and t.column("ticket")[0].as_py() == "through-the-ingress"
print(f"flight: {t.num_rows} rows", file=sys.stderr)
sys.exit(0 if ok else 1)
PY
}
check "gRPC (Arrow Flight DoGet) over h2c through the Ingress host flight.aurum.local" \
  flight_get "grpc://127.0.0.1:${url##*:}"
check "gRPC (Arrow Flight DoGet) over TLS through the Ingress host flight.aurum.local" \
  flight_get "grpc+tls://127.0.0.1:$https_port" "$DIR/tls.crt"

pid=$(cat "$DIR/ingress/traefik.pid")
rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
log "controller RSS ${rss} kB"
"$kubectl" delete namespace "$NS" --wait=false >&2 || true

echo "ingress-check: $pass passed, $fail failed"
[ "$fail" = 0 ]
