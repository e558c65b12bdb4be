# Aurum: the commands README.md documents.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/aurum/target

.PHONY: demo test lint bench crds chart images test-images

## Run the whole pipeline on source/ into a throwaway PostgreSQL under .aurum/
demo:
	scripts/demo.sh

## Start the real services the tests need, then run every test
test:
	testenv/test.sh

## Formatting, lints and dependency checks (licences, duplicates, sources), as CI expects them
lint:
	scripts/toolchain.sh
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	scripts/cargo-deny.sh check

## Benchmark the pipeline at 1M, 5M, 20M and 50M transactions under 1GiB (rows/s, CPU/wall per stage, peak RSS, spill)
bench:
	scripts/bench.sh

## Validate the Helm chart against a throwaway kube-apiserver (builds helm once)
chart:
	charts/tests/validate.sh
	charts/tests/upgrade.sh

## Regenerate the CRD manifests from the Rust types, in crds/ and in the chart
crds:
	cargo run -q -p aurum-operator -- crdgen > crds/aurum.dev.yaml
	cp crds/aurum.dev.yaml charts/aurum/crds/aurum.dev.yaml

## Build the four images without Docker (buildah) as OCI archives under ~/.cache/aurum/images
## (AURUM_IMAGE_PROFILE=debug packages the debug binaries `make test` built; see docs/images.md)
images:
	scripts/images.sh aurum

## Build the test-only PostgreSQL and Hadoop images of the Helm quickstart (testenv/images)
test-images:
	scripts/images.sh test
