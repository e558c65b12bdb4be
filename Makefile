# Aurum: the commands README.md documents.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/aurum/target

.PHONY: demo test lint bench crds

## Run the whole pipeline on source/ into a throwaway PostgreSQL under .aurum/
demo:
	scripts/demo.sh

## Start the real services the tests need, then run every test
test:
	testenv/test.sh

## Formatting and lints, as CI expects them
lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings

## Benchmark the pipeline at 1M and 5M transactions (rows/s per stage, peak RSS)
bench:
	scripts/bench.sh
