# syntax=docker/dockerfile:1
# jobify: a static-enough Rust binary on a distroless, non-root base.

FROM rust:1.95-bookworm AS builder
WORKDIR /src
COPY . .
RUN cargo build --release -p jobify --locked \
 && cp target/release/jobify /usr/local/bin/jobify

# glibc and CA certificates, no shell, uid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /usr/local/bin/jobify /usr/local/bin/jobify
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/jobify"]
CMD ["run"]
