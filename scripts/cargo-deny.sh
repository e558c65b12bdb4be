#!/usr/bin/env bash
# cargo-deny, installed once with `cargo install` into ~/.cache/aurum/cargo-deny, then
# run on the workspace with deny.toml: licences, banned and duplicate crates,
# crate sources. `make lint` runs it.
#
#   scripts/cargo-deny.sh install   install (once); prints AURUM_CARGO_DENY_BIN=...
#   scripts/cargo-deny.sh check     install if needed, then `cargo deny check`
#
# The advisories check is left out: it needs the RustSec advisory database, a
# git repository cloned from GitHub, which this machine and CI cannot reach
# (only package registries). Run `cargo deny check advisories` where GitHub is
# reachable.
set -euo pipefail

CARGO_DENY_VERSION=0.20.2 # rust-version 1.88: builds with the pinned toolchain

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
root=${AURUM_CARGO_DENY_ROOT:-$HOME/.cache/aurum/cargo-deny}/$CARGO_DENY_VERSION
bin=$root/bin/cargo-deny

log() { echo "cargo-deny.sh: $*" >&2; }

install() {
  if [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -q " $CARGO_DENY_VERSION\$"; then return 0; fi
  local t0=$SECONDS
  log "installing cargo-deny $CARGO_DENY_VERSION (once; several minutes)"
  # Its own target directory: not the workspace's, whose features it would disturb.
  # A debug build: 520 s instead of 685 s cold on a busy machine, and a check
  # takes 12 s instead of 8 s.
  nice -n 10 cargo install --debug --locked --quiet "cargo-deny@$CARGO_DENY_VERSION" --root "$root" \
    --target-dir "$root/target" >&2
  rm -rf "$root/target"
  log "installed in $((SECONDS - t0))s into $root/bin"
}

case ${1:-check} in
  install)
    install
    echo "AURUM_CARGO_DENY_BIN=$bin"
    ;;
  check)
    install
    cd "$repo"
    "$bin" --version >&2
    # cargo-deny reads every platform's crates (licences of Windows-only
    # dependencies too); a build downloads only this platform's, so fetch them
    # all first. cargo-deny itself then stays offline (no advisory database).
    cargo fetch --locked --quiet
    "$bin" --offline check --show-stats --hide-inclusion-graph licenses bans sources
    ;;
  *) echo "usage: $0 install|check" >&2; exit 2 ;;
esac
