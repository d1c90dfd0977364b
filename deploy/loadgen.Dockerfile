# loadgen as a container image, for agents and controllers on Kubernetes
# (deploy/k8s/, docs/DISTRIBUTED.md).
#
# Build:  docker build -f deploy/loadgen.Dockerfile -t wsbench/loadgen .
# Agent:  docker run --rm wsbench/loadgen agent --coordinator redis://10.0.0.5:6379

FROM rust:1-bookworm AS builder
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p loadgen --bin loadgen \
    && install -D -s -m 0755 target/release/loadgen /out/loadgen

# Debian slim keeps /bin/sh: the controller Job expands its options with it.
FROM debian:bookworm-slim
RUN groupadd --system --gid 10001 loadgen \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin loadgen
COPY --from=builder /out/loadgen /usr/local/bin/loadgen
USER 10001:10001
ENTRYPOINT ["loadgen"]
