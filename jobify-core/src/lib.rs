//! The heart of jobify: domain types, the ports to Buildkite and to the workload backend, the
//! decision policy, limits and book-keeping. No transport lives here: no kube, no reqwest, no
//! HTTP. Other tools can use it with their own [`Monitor`] and [`Jobifier`].
//!
//! ```text
//!  Buildkite ──▶ Monitor ──ScheduledPage─▶ Dispatcher (Scheduler) ──launch──▶ Jobifier ──▶ Kubernetes
//!                                           │   plan_page, page by page:         │
//!                                           │   Decider (queues ▸ Policy ▸ Guard) │
//!                                           │   ▸ Limits ▸ order ▸ Book           │
//!                        Feedback ◀─reject──┘   ▲                                 │
//!                                               └────────── WorkloadEvent ────────┘
//! ```
//!
//! Where to start:
//! - the domain: [`ScheduledJob`] (built from Buildkite's parts by [`ScheduledJob::from_raw`]),
//!   [`Decision`] and its [`Reason`] codes;
//! - the seams a backend implements: [`Monitor`] (scheduled jobs a [`ScheduledPage`] at a
//!   time; [`Sweep::read`] reads them all), [`Jobifier`], [`Feedback`];
//! - deciding: the [`Policy`] trait, the declarative [`RulePolicy`] read from
//!   [`config::PolicyConfig`], the admission [`Guard`], and [`Decider`] which joins them with
//!   the served queues; [`Policy::explain`] says how a decision was reached;
//! - running: [`Book`] (book-keeping, a synchronous `apply(event)`), [`Limits`],
//!   [`plan_page`] (one page's decisions; [`plan_round`] for a whole poll at once), and the
//!   the [`Scheduler`], a synchronous state machine of [`Input`]s and [`Effect`]s that
//!   sweeps the pages of each poll, and the [`Dispatcher`], the async executor that carries
//!   its effects out through the ports;
//! - testing (feature `testing`): the `testing` module has fixtures
//!   (`ScheduledJob::fixture()`) and mockall mocks of the ports (`MockMonitor`,
//!   `MockJobifier`, `MockFeedback`).
//!
//! A policy of your own, tested with the fixtures (feature `testing`):
//!
//! ```
//! use jobify_core::policy::custom_reason;
//! use jobify_core::{Decision, Policy, ScheduledJob, Template};
//!
//! /// Release branches run in the large pod; everything else is left to other agents.
//! struct Releases;
//!
//! impl Policy for Releases {
//!     fn decide(&self, job: &ScheduledJob) -> Decision {
//!         if job.build.branch.starts_with("release/") {
//!             let template = Template::Default { name: Some("large".into()) };
//!             Decision::Run { template, reason: custom_reason("release builds run large") }
//!         } else {
//!             Decision::Skip { reason: custom_reason("only release builds run here") }
//!         }
//!     }
//! }
//!
//! let release = ScheduledJob::fixture().on_pipeline("app").branch("release/1.4").build();
//! assert!(matches!(Releases.decide(&release), Decision::Run { .. }));
//! let feature = ScheduledJob::fixture().on_pipeline("app").branch("feature/x").build();
//! assert_eq!(Releases.decide(&feature).reason().message, "only release builds run here");
//! ```
//!
//! Wiring a scheduler (here with the mocks; a binary passes its real ports):
//!
//! ```no_run
//! use jobify_core::config::{GuardConfig, LimitsConfig, PolicyConfig};
//! use jobify_core::testing::{MockFeedback, MockJobifier, MockMonitor};
//! use jobify_core::{Decider, Dispatcher, Limits, SchedulerConfig};
//!
//! # async fn run() -> Result<(), jobify_core::SchedulerError> {
//! let (policy, guard, limits) = (PolicyConfig::default(), GuardConfig::default(), LimitsConfig::default());
//! let queues = [jobify_core::config::QueueConfig::named("kubernetes")];
//! let (_lead, leadership) = tokio::sync::watch::channel(true);
//! Dispatcher::new(
//!     MockMonitor::new(),
//!     MockJobifier::new(),
//!     MockFeedback::new(),
//!     Decider::from_config(&policy, &guard, &queues),
//!     Limits::new(&limits, &queues),
//!     SchedulerConfig::default(),
//! )
//! .with_leadership(leadership)
//! .run(tokio::signal::ctrl_c().map(|_| ()))
//! .await
//! # }
//! # use futures::FutureExt;
//! ```
#![warn(missing_docs)]

pub mod book;
pub mod cause;
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
pub use cause::Cause;
pub use decision::{Decision, Reason, ReasonCode, Template};
pub use feedback::{Feedback, FeedbackError, JobRef};
pub use guard::{Guard, GuardReport, Violation};
pub use intake::{JobError, RawJob};
pub use job::{BuildInfo, Env, JobId, JobState, ScheduledJob};
pub use jobifier::{CancelError, Jobifier, LaunchError, Launched};
pub use limits::Limits;
pub use monitor::{Claim, Monitor, MonitorError, PageToken, ScheduledPage, Sweep};
pub use plan::{Plan, plan_page, plan_round};
pub use plugin::{KubernetesPlugin, PluginConfig, PluginError, PodMetadata};
pub use policy::{Decider, Explanation, Policy, RulePolicy};
pub use rules::{AgentQueryRule, AgentQueryRules};
pub use scheduler::{
    Backoff, Dispatcher, Effect, FeedbackMessage, FeedbackReport, FeedbackRetry, Input, Scheduler,
    SchedulerConfig, SchedulerError, SchedulerEvent, SchedulerObserver, SweepEnd, SweepSummary,
};
pub use workload::{Workload, WorkloadEvent};
