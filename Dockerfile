# syntax=docker/dockerfile:1
# finance-server: build with the Rust toolchain, run on a slim Debian as a
# non-root user. Build from the checkout's root:
#   docker build -t finance-server .

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# The migrations are embedded into the binary at build time.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p finance-server \
    && cp target/release/finance-server /usr/local/bin/finance-server

FROM debian:bookworm-slim AS runtime
# curl for the container health check; nothing else is needed at run time.
RUN apt-get update \
    && apt-get install -y --no-install-recommends curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/finance --create-home finance
COPY --from=build /usr/local/bin/finance-server /usr/local/bin/finance-server
USER finance
ENV BIND=0.0.0.0:8080 \
    DATA_DIR=/var/lib/finance \
    LOG_FORMAT=json
VOLUME /var/lib/finance
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s \
    CMD curl -fsS http://127.0.0.1:8080/healthz >/dev/null || exit 1
ENTRYPOINT ["finance-server"]
CMD ["serve"]
