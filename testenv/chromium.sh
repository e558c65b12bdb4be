#!/usr/bin/env bash
# Debian's headless-capable Chromium, for the dashboard's end-to-end test.
#
#   eval "$(testenv/chromium.sh)"   install (once, from apt, when absent) and print
#                                   AURUM_CHROMIUM_BIN=/usr/bin/chromium
#
# Idempotent: when a Chromium binary is already on the machine nothing is installed.
# AURUM_CHROMIUM_BIN set by the caller wins (a Chromium installed elsewhere).
set -euo pipefail

log() { echo "chromium.sh: $*" >&2; }

find_chromium() {
  local c
  if [ -n "${AURUM_CHROMIUM_BIN:-}" ] && [ -x "$AURUM_CHROMIUM_BIN" ]; then
    echo "$AURUM_CHROMIUM_BIN"; return 0
  fi
  for c in chromium chromium-browser; do
    if command -v "$c" >/dev/null; then command -v "$c"; return 0; fi
  done
  return 1
}

if ! bin=$(find_chromium); then
  log "installing chromium from apt"
  export DEBIAN_FRONTEND=noninteractive
  if [ "$(id -u)" = 0 ]; then sudo=(); else sudo=(sudo); fi
  "${sudo[@]}" apt-get update -qq >&2
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >&2
  bin=$(find_chromium) || { log "chromium is still not on PATH after apt-get install"; exit 1; }
fi
log "$("$bin" --version 2>/dev/null || echo "$bin")"
printf 'AURUM_CHROMIUM_BIN=%q\n' "$bin"
