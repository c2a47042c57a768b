# syntax=docker/dockerfile:1
# The relman controller image: a release build of the `relman` binary on a slim Debian base,
# running as an unprivileged user. Build from the repository root:
#   docker build -t relman:0.1.0 .
# The chart's pod security context (runAsNonRoot, read-only root filesystem, no capabilities)
# fits this image as is: relman writes nothing to disk.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=trixie

FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS builder
# A stripped binary keeps the image small.
ENV CARGO_PROFILE_RELEASE_STRIP=symbols
WORKDIR /src
# The whole workspace (see .dockerignore): Cargo needs every member's manifest and sources.
COPY . .
# Cache mounts keep the registry and build artifacts between builds; the binary is copied out
# of the cached target directory because cache mounts are not part of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin relman \
 && install -D -m 0755 target/release/relman /out/relman

FROM debian:${DEBIAN_RELEASE}-slim
# CA roots for HTTPS notification receivers; the Kubernetes API's CA comes with the
# ServiceAccount token.
COPY --from=builder /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=builder /out/relman /usr/local/bin/relman
# A numeric user, so that the kubelet can verify runAsNonRoot without a passwd entry.
USER 65532:65532
EXPOSE 8080
ENV RELMAN_HTTP_ADDR=0.0.0.0:8080 \
    RELMAN_LOG_FORMAT=json
ENTRYPOINT ["/usr/local/bin/relman"]
