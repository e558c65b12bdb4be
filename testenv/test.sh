#!/usr/bin/env bash
# The project's test command: `make test` runs this, and so does .ci/run.
# It starts every real service the tests need, then runs the workspace tests.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/aurum/target}
state=${AURUM_TEST_STATE:-$HOME/.cache/aurum/test}
mkdir -p "$state"

cleanup() { testenv/postgres.sh stop "$state/postgres" || true; }
trap cleanup EXIT

eval "$(testenv/postgres.sh start "$state/postgres")"
export DATABASE_URL

cargo build --workspace --bins
cargo test --workspace --no-fail-fast
