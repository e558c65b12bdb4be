#!/usr/bin/env bash
# Prometheus's promtool and the Prometheus operator's CRDs, for the chart's
# monitoring checks (charts/tests/validate.sh): `promtool check rules` and
# `promtool test rules` on the rendered PrometheusRule, and a server-side apply
# of the ServiceMonitors and the PrometheusRule against those CRDs.
#
#   testenv/promtool.sh        build (once) promtool into
#                              ~/.cache/aurum/promtool/v<version>/bin and copy the
#                              CRDs into ~/.cache/aurum/promtool/crds-<version>;
#                              prints AURUM_PROMTOOL_BIN=... (the binary) and
#                              AURUM_PROMETHEUS_CRDS=... (the CRD directory)
#
# promtool is built from the Go module proxy with the local Go toolchain:
# testenv/promtool/ is a module requiring github.com/prometheus/prometheus. The
# remove_all_sd build tag leaves out the cloud service discoveries, which rule
# checks never use (a smaller build). The CRDs are the YAML files the Prometheus
# operator's own Go module ships under example/prometheus-operator-crd/
# (`go mod download`, nothing else fetched).
set -euo pipefail

# github.com/prometheus/prometheus v0.316.0 is Prometheus 3.16.0.
PROMETHEUS_MODULE_VERSION=v0.316.0
PROMETHEUS_VERSION=3.16.0
# The newest prometheus-operator module version the proxy serves here (v0.95.x
# answers 403 "not available").
PROMETHEUS_OPERATOR_VERSION=v0.94.1

here=$(cd "$(dirname "$0")" && pwd)
cache=${AURUM_PROMTOOL_CACHE:-$HOME/.cache/aurum/promtool}
bindir="$cache/v$PROMETHEUS_VERSION/bin"
crddir="$cache/crds-$PROMETHEUS_OPERATOR_VERSION"

log() { echo "promtool.sh: $*" >&2; }
die() { echo "promtool.sh: $*" >&2; exit 1; }

export GOTOOLCHAIN=local GOFLAGS=-mod=mod

build() {
  [ -x "$bindir/promtool" ] && return 0
  command -v go >/dev/null || die "go not found; install Go >= 1.26 and retry"
  grep -q "github.com/prometheus/prometheus $PROMETHEUS_MODULE_VERSION" "$here/promtool/go.mod" ||
    die "testenv/promtool/go.mod does not require prometheus $PROMETHEUS_MODULE_VERSION; update both together"
  mkdir -p "$bindir"
  local t0=$SECONDS v="github.com/prometheus/common/version"
  log "building promtool $PROMETHEUS_VERSION (once; several minutes on 2 busy cores)"
  (cd "$here/promtool" && nice -n 10 go build -trimpath -tags remove_all_sd \
    -ldflags "-s -w -X $v.Version=$PROMETHEUS_VERSION -X $v.Branch=aurum-testenv" \
    -o "$bindir/promtool.tmp" github.com/prometheus/prometheus/cmd/promtool) >&2
  mv "$bindir/promtool.tmp" "$bindir/promtool"
  log "built in $((SECONDS - t0))s into $bindir"
}

crds() {
  [ -f "$crddir/monitoring.coreos.com_prometheusrules.yaml" ] && return 0
  command -v go >/dev/null || die "go not found; install Go >= 1.26 and retry"
  local json dir tmp
  # Outside any module, so that no go.mod is touched.
  tmp=$(mktemp -d)
  json=$(cd "$tmp" && go mod download -json \
    "github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION") ||
    { rm -rf "$tmp"; die "go mod download of the prometheus-operator module failed: $json"; }
  rm -rf "$tmp"
  dir=$(printf '%s\n' "$json" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [ -d "$dir/example/prometheus-operator-crd" ] || die "no example/prometheus-operator-crd in $dir"
  mkdir -p "$crddir.tmp"
  cp "$dir"/example/prometheus-operator-crd/monitoring.coreos.com_*.yaml "$crddir.tmp/"
  rm -rf "$crddir" && mv "$crddir.tmp" "$crddir"
  log "Prometheus operator $PROMETHEUS_OPERATOR_VERSION CRDs in $crddir"
}

build
crds
echo "AURUM_PROMTOOL_BIN=$bindir/promtool"
echo "AURUM_PROMETHEUS_CRDS=$crddir"
