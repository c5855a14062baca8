# syntax=docker/dockerfile:1
# jobify for users with Docker: a Rust binary on an empty base, non-root, no shell.
# Without a Docker engine, deploy/image/build.sh builds the same image with buildah (CI does).
# Both lay the root filesystem out with deploy/image/rootfs.sh: the binary, the glibc and
# libgcc_s it links, the CA certificates, passwd/group for uid 65532, /tmp.

FROM rust:1.95-bookworm AS builder
WORKDIR /src
COPY . .
RUN cargo build --release -p jobify --locked \
 && deploy/image/rootfs.sh target/release/jobify /rootfs

# From here on, deploy/image/Containerfile but for the COPY source (.ci/deploy-checks compares).
FROM scratch
COPY --from=builder /rootfs/ /
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/jobify"]
CMD ["run"]
