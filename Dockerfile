# syntax=docker/dockerfile:1
#
# Aurum's container images, one target per component:
#
#   docker build --target operator   -t aurum-operator:0.1.0   .
#   docker build --target job-runner -t aurum-job-runner:0.1.0 .
#   docker build --target api        -t aurum-api:0.1.0        .
#   docker build --target dashboard  -t aurum-dashboard:0.1.0  .
#
# Each builds only its own binary (release profile, Cargo.lock as is) and runs it
# on debian:trixie-slim as the non-root user 65532 (`aurum`). The chart
# (charts/aurum) expects these names, tagged with its appVersion. BuildKit (the
# default builder of current Docker) caches the cargo registry and target
# directory between builds.
#
# The same runtime stages also build without Docker (`make images`, i.e.
# scripts/images.sh, with buildah): it replaces each build-<component> stage
# with a directory holding out/aurum-<component> built by cargo on the host
# (`--build-context build-<component>=DIR`, so the build stages never run) and
# sets BASE_IMAGE to a Debian root made by mmdebstrap. Everything from the
# runtime stage on is the same for both paths; see docs/images.md.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=trixie
# The runtime base: Debian's slim image, or a local equivalent (scripts/images.sh).
ARG BASE_IMAGE=debian:${DEBIAN_RELEASE}-slim

# --- build ------------------------------------------------------------------
FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS build
# ring and zstd-sys compile C.
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev make \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY gold gold
COPY operator operator
COPY job-runner job-runner
COPY api api
COPY dashboard dashboard
# Dev-only (the API's and the dashboard's test fixtures), but a workspace member:
# cargo reads its manifest even for a release build.
COPY testkit testkit
ENV CARGO_TERM_COLOR=never CARGO_INCREMENTAL=0

FROM build AS build-operator
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked -p aurum-operator --bin aurum-operator \
 && install -D target/release/aurum-operator /out/aurum-operator

FROM build AS build-job-runner
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked -p aurum-job-runner --bin aurum-job-runner \
 && install -D target/release/aurum-job-runner /out/aurum-job-runner

FROM build AS build-api
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked -p aurum-api --bin aurum-api \
 && install -D target/release/aurum-api /out/aurum-api

FROM build AS build-dashboard
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked -p aurum-dashboard --bin aurum-dashboard \
 && install -D target/release/aurum-dashboard /out/aurum-dashboard

# --- runtime ----------------------------------------------------------------
FROM ${BASE_IMAGE} AS runtime
# A named user, so HDFS clients see a user name (not a bare uid).
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 65532 aurum \
 && useradd --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin aurum
USER 65532:65532
WORKDIR /tmp

FROM runtime AS operator
COPY --from=build-operator /out/aurum-operator /usr/local/bin/aurum-operator
EXPOSE 8080
ENTRYPOINT ["aurum-operator"]
CMD ["run"]

# The image the operator's Jobs run (the operator sets the command). It also
# carries the sample source CSVs, which the chart's quickstart loads into HDFS.
FROM runtime AS job-runner
COPY --from=build-job-runner /out/aurum-job-runner /usr/local/bin/aurum-job-runner
COPY source/ /usr/share/aurum/source/
ENTRYPOINT ["aurum-job-runner"]

FROM runtime AS api
COPY --from=build-api /out/aurum-api /usr/local/bin/aurum-api
EXPOSE 8000 50051
ENTRYPOINT ["aurum-api"]

FROM runtime AS dashboard
COPY --from=build-dashboard /out/aurum-dashboard /usr/local/bin/aurum-dashboard
EXPOSE 8050
ENTRYPOINT ["aurum-dashboard"]
