//! Buildkite API simulator: GraphQL (`/v1`) and agent REST (`/v3/metrics`).
