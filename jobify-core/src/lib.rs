//! The heart of jobify: domain types, the ports to Buildkite and to the workload backend, the
//! decision policy, limits and book-keeping. No transport lives here: no kube, no reqwest.
//!
//! ```text
//!  Buildkite ──▶ Monitor ──ScheduledJob──▶ Scheduler ──Decision──▶ Jobifier ──▶ Kubernetes
//!                                            │  ▲                      │
//!                          Feedback ◀────────┘  └──── WorkloadEvent ───┘
//! ```
//!
//! Start with [`ScheduledJob`] and [`Decision`]; the traits [`Monitor`], [`Jobifier`] and
//! [`Feedback`] are the seams a backend implements.
#![warn(missing_docs)]

pub mod config;
pub mod decision;
pub mod feedback;
pub mod job;
pub mod jobifier;
pub mod monitor;
pub mod plugin;
pub mod rules;
pub mod workload;

pub use decision::{Decision, Reason, ReasonCode, Template};
pub use feedback::{Feedback, FeedbackError, JobRef};
pub use job::{BuildInfo, Env, JobId, JobState, ScheduledJob};
pub use jobifier::{CancelError, Jobifier, LaunchError, Launched};
pub use monitor::{Monitor, MonitorError};
pub use plugin::{KubernetesPlugin, PluginConfig, PluginError, PodMetadata};
pub use rules::{AgentQueryRule, AgentQueryRules};
pub use workload::{Workload, WorkloadEvent};
