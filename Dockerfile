# syntax=docker/dockerfile:1
#
# The operator's image: one static-ish Rust binary on distroless, run as a
# non-root user, no shell. Build (from the repository root):
#
#   docker build -t ecs-recycler:0.1.0 .
#   docker buildx build --platform linux/arm64 -t ecs-recycler:0.1.0-arm64 .
#
# ENTRYPOINT is the binary and CMD its `operator` subcommand, so
# `docker run IMAGE init --table NAME` or `IMAGE get` run the other verbs.
# The binary is built without the `simulator` feature: the image carries no
# simulator, so no `sim` or `sandbox` (they are for people and tests).
# The binary handles SIGTERM itself (finishes the step in flight, releases
# its leases, exits 0), so it runs as PID 1 with no init process.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src
# Symbols are of no use in the image and are most of the binary's size.
ENV CARGO_PROFILE_RELEASE_STRIP=symbols

# Dependencies in their own layer: compiled against stand-in sources, this
# layer depends on the manifests and Cargo.lock only, so a change to src/
# rebuilds the crate alone, not the few hundred crates under it. The
# workspace's other crates (the simulator, the benchmark, the fault
# campaign, test support) are never built here, but cargo reads every
# member's manifest, so theirs are copied, with empty stand-ins for their
# sources.
COPY Cargo.toml Cargo.lock ./
# The throttling table is the one workspace crate the operator links: it is
# small and data only, so it is copied whole here.
COPY crates/api-limits crates/api-limits/
COPY crates/ecs-sim/Cargo.toml crates/ecs-sim/
COPY crates/bench/Cargo.toml crates/bench/
COPY crates/campaign/Cargo.toml crates/campaign/
COPY crates/test-support/Cargo.toml crates/test-support/
RUN mkdir -p src crates/ecs-sim/src crates/bench/src crates/campaign/src crates/test-support/src \
    && echo 'fn main() {}' > src/main.rs \
    && echo 'fn main() {}' > crates/bench/src/main.rs \
    && echo 'fn main() {}' > crates/campaign/src/main.rs \
    && touch src/lib.rs crates/ecs-sim/src/lib.rs crates/test-support/src/lib.rs \
    && cargo build --release --locked -p ecs-recycler --no-default-features \
    && rm -rf src

COPY src ./src
# The copied sources can be older than the stand-ins' build; touching them
# makes cargo rebuild the crate instead of keeping the stand-in binary.
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked -p ecs-recycler --no-default-features

# glibc and CA certificates (for TLS to AWS), nothing else; the nonroot
# variant's default user is 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/ecs-recycler /usr/local/bin/ecs-recycler
USER 65532:65532
# The binary limits glibc to two malloc arenas itself (src/main.rs);
# MALLOC_ARENA_MAX in the task definition would override it.
# /healthz, /readyz and /metrics (--http-listen, default 0.0.0.0:8080).
EXPOSE 8080
# No HEALTHCHECK: ECS ignores an image's HEALTHCHECK and runs the task
# definition's (infra/operator.yaml: `ecs-recycler healthcheck`), and one here
# would mark a container running any other verb unhealthy.
ENTRYPOINT ["/usr/local/bin/ecs-recycler"]
CMD ["operator"]
