# wsnode, the wsbench reference node, as a small container image.
#
# Build:  docker build -t wsbench/wsnode .
# Run:    docker run --rm -p 8081:8081 -e WSNODE_NODE_ID=node1 wsbench/wsnode
# Used by docker-compose.multi-node.yml for node1..node3 (docs/CLUSTER.md).
# Every wsnode option is also a WSNODE_* environment variable (`wsnode --help`).

# --- build stage: the whole workspace, release profile ----------------------
FROM rust:1-bookworm AS builder
WORKDIR /src
COPY . .
# The cache mounts keep the registry and target dir between builds (BuildKit);
# the binary is copied (and stripped) out of the cached target dir in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p server --bin wsnode \
    && install -D -s -m 0755 target/release/wsnode /out/wsnode

# --- runtime stage: Debian slim, no compiler, no shell tools needed ---------
FROM debian:bookworm-slim
RUN groupadd --system --gid 10001 wsnode \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin wsnode
COPY --from=builder /out/wsnode /usr/local/bin/wsnode

# Listen on all interfaces inside the container; compose gives node N port 808N.
ENV WSNODE_LISTEN=0.0.0.0:8081 \
    RUST_LOG=info
EXPOSE 8081 8082 8083

# Numeric ids, so runtimes that require a non-root user can verify it.
USER 10001:10001

# The image has no curl: wsnode probes its own /health (port from WSNODE_LISTEN).
HEALTHCHECK --interval=5s --timeout=3s --start-period=5s --retries=3 \
    CMD ["wsnode", "health"]

# SIGTERM closes every client with 1001 ("reconnect elsewhere") and exits 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["wsnode"]
