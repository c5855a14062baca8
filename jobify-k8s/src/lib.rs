//! The Kubernetes backend of jobify: renders a decided Buildkite job as a `batch/v1` Job,
//! creates it, watches it, and reports what happens to it as `WorkloadEvent`s.
//!
//! ```text
//!  Scheduler ──launch/cancel──▶ KubeJobifier ──render──▶ Job ──create/delete──▶ API server
//!      ▲                              │                                          │
//!      └────── WorkloadEvent ◀── watch (Jobs, pods) + fail-fast ◀─── watchers ───┘
//!                       LeaderElector (Lease) ──is leader──▶ only the leader launches/deletes
//! ```
//!
//! Where to start:
//! - [`config::KubernetesConfig`]: the `[kubernetes]` section of `jobify.toml`.
//! - [`render::render_job`]: the pure function from a job to its Job manifest.
//! - [`KubeJobifier`]: the `jobify_core::Jobifier` implementation; spawn
//!   [`KubeJobifier::run`] with the shutdown signal.
//! - [`leader::LeaderElector`]: leader election for several replicas.
//! - [`watch::fail_fast`]: when a pod is declared unable to start.
//! - [`render::render_job_with_own_token`] and [`render::render_token_secret`]: a job with
//!   an agent token of its own (`Jobifier::launch_with_token`): its Job, and the Secret the
//!   Job owns, created first.
//!
//! docs/kubernetes.md describes the rendered layout, the supported plugin keys, the fail-fast
//! rules and the RBAC jobify needs.
#![warn(missing_docs)]

pub mod config;
mod jobifier;
pub mod labels;
mod launch;
pub mod leader;
pub mod manifest;
pub mod rbac;
pub mod render;
pub mod watch;

pub use jobifier::{KubeJobifier, RunError};
pub use leader::LeaderElector;
pub use render::{
    RenderError, RenderOptions, render_job, render_job_with, render_job_with_own_token,
    render_token_secret,
};
