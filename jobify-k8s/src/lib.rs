//! The Kubernetes backend of jobify: renders a decided Buildkite job as a `batch/v1` Job,
//! creates it, watches it, and reports what happens to it as `WorkloadEvent`s.
//!
//! Start with [`config::KubernetesConfig`] (the `[kubernetes]` section of `jobify.toml`).
#![warn(missing_docs)]

pub mod config;
pub mod labels;
pub mod render;
pub mod watch;
