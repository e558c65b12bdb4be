#!/usr/bin/env bash
# Makes the toolchain that rust-toolchain.toml pins usable without a download
# (the machines reach package registries only, not rustup's servers):
#
#   - pinned version installed: nothing to do;
#   - rustup's stable is that very version (the machines' preinstalled Rust):
#     the pinned name becomes an alias of it (a symlink in rustup's toolchains
#     directory, as `rustup toolchain link` would make), so rustup finds it;
#   - otherwise: a warning, and RUSTUP_TOOLCHAIN=stable on stdout for the
#     caller to export, so that CI still runs (update the pin).
#
# Prints KEY=VALUE settings (none when the pin is usable); logs to stderr.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
log() { echo "toolchain.sh: $*" >&2; }

want=$(sed -n 's/^channel = "\(.*\)"$/\1/p' "$repo/rust-toolchain.toml")
[ -n "$want" ] || { log "no channel in rust-toolchain.toml"; exit 1; }
if ! command -v rustup >/dev/null; then
  log "no rustup: using $(rustc --version 2>/dev/null || echo 'no rustc'), not the pinned $want"
  exit 0
fi
# Outside the repository, so that the pin itself does not choose the toolchain.
cd /
host=$(rustup show 2>/dev/null | sed -n 's/^Default host: //p')
# The list first: `grep -q` would end the pipe early (SIGPIPE under pipefail).
toolchains_list=$(rustup toolchain list)
if grep -q "^$want-$host\b" <<< "$toolchains_list"; then
  exit 0
fi
stable=$(rustup run stable rustc --version 2>/dev/null | awk '{print $2}') || stable=
if [ "$stable" = "$want" ]; then
  toolchains=$(rustup show home)/toolchains
  # Not listed, so nothing of that name is there; -n replaces a dangling link.
  [ -d "$toolchains/$want-$host" ] && [ ! -L "$toolchains/$want-$host" ] &&
    { log "$toolchains/$want-$host exists but rustup does not list it"; exit 1; }
  ln -sfn "$toolchains/stable-$host" "$toolchains/$want-$host"
  log "rustup's stable is $want: $want-$host now names it"
  exit 0
fi
log "WARNING: the pinned toolchain $want is not installed and rustup's stable is ${stable:-missing};" \
  "using stable. Install $want (rustup toolchain install $want) or update rust-toolchain.toml."
echo "RUSTUP_TOOLCHAIN=stable"
