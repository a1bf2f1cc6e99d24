# syntax=docker/dockerfile:1
#
# One image for the three workers (cdc-reader, analyzer, asset-worker); the
# compose file picks the binary per service with `command`.

ARG RUST_VERSION=1
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS builder
WORKDIR /src
# libheif is built from source for the asset worker, against Debian's libde265 and dav1d, and
# libjpeg-turbo 3 with its SIMD code (nasm).
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends cmake nasm libde265-dev libdav1d-dev libjpeg-dev pkg-config; \
    rm -rf /var/lib/apt/lists/*
# Compile-time checked queries (if any) read the committed .sqlx data: no database at build time.
ENV SQLX_OFFLINE=true
COPY . .
# The registry, git checkouts and target directory live in cache mounts, so
# rebuilds only recompile what changed. Binaries are copied out of the cache
# mount within the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    set -eux; \
    cargo build --release --locked --workspace --bins; \
    mkdir -p /out; \
    for bin in cdc-reader analyzer asset-worker; do \
        cp "target/release/${bin}" /out/; \
    done

FROM debian:${DEBIAN_RELEASE}-slim AS runtime
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends ca-certificates tzdata libde265-0 libdav1d6 libjpeg62-turbo; \
    rm -rf /var/lib/apt/lists/*; \
    useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin pipeline
COPY --from=builder /out/ /usr/local/bin/
USER pipeline
ENV LOG_FORMAT=json \
    METRICS_ADDR=0.0.0.0:9000
EXPOSE 9000
# Liveness probe without extra packages: bash's /dev/tcp speaks enough HTTP.
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${METRICS_ADDR##*:} && printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n' >&3 && head -n1 <&3 | grep -q ' 200 '"]
CMD ["cdc-reader", "--help"]
