#!/usr/bin/env bash
# Helm, built once from the Go module proxy, for the chart's validation
# (charts/tests/validate.sh) and for anyone who has no helm of their own.
#
#   testenv/helm.sh          build if needed; prints AURUM_HELM_BIN=<dir> (eval it)
#   testenv/helm.sh build    the same, printing nothing on stdout
#   testenv/helm.sh bin      print the directory that holds (or will hold) helm
#
# testenv/helm/ is a module requiring helm.sh/helm/v4 (go.mod and go.sum pin
# every dependency); the binary goes to ~/.cache/aurum/helm/<version>/bin.
# Built with the local Go toolchain (GOTOOLCHAIN=local), like testenv/kube.sh.
set -euo pipefail

HELM_VERSION=v4.3.1

here=$(cd "$(dirname "$0")" && pwd)
cache=${AURUM_HELM_CACHE:-$HOME/.cache/aurum/helm}
bindir="$cache/$HELM_VERSION/bin"

log() { echo "helm.sh: $*" >&2; }
die() { echo "helm.sh: $*" >&2; exit 1; }

export GOTOOLCHAIN=local GOFLAGS=-mod=mod

build() {
  [ -x "$bindir/helm" ] && return 0
  command -v go >/dev/null || die "go not found; install Go >= 1.26 and retry"
  grep -q "helm.sh/helm/v4 $HELM_VERSION" "$here/helm/go.mod" ||
    die "testenv/helm/go.mod does not require helm.sh/helm/v4 $HELM_VERSION; update both together"
  mkdir -p "$bindir"
  local t0=$SECONDS v="helm.sh/helm/v4/internal/version"
  log "building helm $HELM_VERSION (once; a few minutes on 2 cores)"
  (cd "$here/helm" && CGO_ENABLED=0 nice -n 10 go build -trimpath \
    -ldflags "-s -w -X $v.version=$HELM_VERSION -X $v.gitTreeState=clean" \
    -o "$bindir/helm.tmp" helm.sh/helm/v4/cmd/helm) >&2
  mv "$bindir/helm.tmp" "$bindir/helm"
  log "built in $((SECONDS - t0))s into $bindir"
}

case "${1:-}" in
  "") build; echo "AURUM_HELM_BIN=$bindir" ;;
  build) build ;;
  bin) echo "$bindir" ;;
  *) echo "usage: $0 [build | bin]" >&2; exit 2 ;;
esac
