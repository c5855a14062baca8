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

pub mod book;
pub mod config;
pub mod decision;
pub mod feedback;
pub mod guard;
pub mod intake;
pub mod job;
pub mod jobifier;
pub mod limits;
pub mod monitor;
pub mod order;
pub mod plan;
pub mod plugin;
pub mod policy;
pub mod rules;
pub mod scheduler;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod workload;

pub use book::{Book, BookEvent, JobStatus, Settled};
pub use decision::{Decision, Reason, ReasonCode, Template};
pub use feedback::{Feedback, FeedbackError, JobRef};
pub use guard::{Guard, GuardReport, Violation};
pub use intake::{JobError, RawJob};
pub use job::{BuildInfo, Env, JobId, JobState, ScheduledJob};
pub use jobifier::{CancelError, Jobifier, LaunchError, Launched};
pub use limits::Limits;
pub use monitor::{Monitor, MonitorError};
pub use plan::{Plan, plan_round};
pub use plugin::{KubernetesPlugin, PluginConfig, PluginError, PodMetadata};
pub use policy::{Decider, Explanation, Policy, RulePolicy};
pub use rules::{AgentQueryRule, AgentQueryRules};
pub use scheduler::{Dispatcher, Scheduler, SchedulerConfig, SchedulerError, SchedulerObserver};
pub use workload::{Workload, WorkloadEvent};
