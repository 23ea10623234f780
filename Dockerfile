# syntax=docker/dockerfile:1
# Build: a full Rust toolchain; the result is one static-ish binary.
FROM rust:1.95-slim-bookworm AS build
# make: the MP3 encoder builds LAME from its bundled source with ./configure && make.
RUN apt-get update \
    && apt-get install -y --no-install-recommends make \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY rust-toolchain.toml Cargo.toml Cargo.lock ./
# Build settings (.cargo/config.toml: the flag that lets LAME use its SSE code).
COPY .cargo ./.cargo
COPY src ./src
COPY migrations ./migrations
# Cargo.toml declares the [[bench]] targets: cargo refuses the manifest when their files are missing.
COPY benches ./benches
# The workspace's other member (the load harness): cargo loads every member's manifest.
COPY bench ./bench
# Registry and target caches survive between builds; the binary is copied out of the cache mount.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
    && cp target/release/speechgate /usr/local/bin/speechgate

# Runtime: a small Debian with CA certificates (for HTTPS to providers) and a non-root user.
FROM debian:bookworm-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /var/lib/speechgate --create-home speechgate
COPY --from=build /usr/local/bin/speechgate /usr/local/bin/speechgate
USER 10001:10001
WORKDIR /var/lib/speechgate
ENV SPEECHGATE_LISTEN=0.0.0.0:8080 \
    SPEECHGATE_DATABASE_URL=sqlite:///var/lib/speechgate/speechgate.db
EXPOSE 8080
VOLUME ["/var/lib/speechgate"]
# SIGTERM starts a graceful shutdown: in-flight requests finish and usage is written.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/speechgate"]
CMD ["serve"]
