//! The Buildkite backend of jobify: `buildkite-api`'s GraphQL client behind `jobify-core`'s
//! ports, the twin of `jobify-k8s` on the other side of the scheduler.
//!
//! ```text
//!              scheduled jobs, states                    ScheduledJob, JobState
//!  Buildkite ──────────────────────▶ BuildkiteMonitor ─────────────────────────▶ Scheduler
//!  (GraphQL, ◀──── annotate, cancel ─ BuildkiteFeedback ◀── a job it refused ─── (jobify-core)
//!  /v3/metrics) ── queue figures ───▶ report_queue_figures ──▶ BuildkiteMetrics ──▶ /metrics
//! ```
//!
//! Where to start:
//! - [`BuildkiteConfig`]: the `[buildkite]` section of `jobify.toml` (the binary's loader
//!   resolves its token references; this crate never reads a secret).
//! - [`BuildkiteMonitor`]: [`jobify_core::Monitor`]; one GraphQL page per call, a sweep going
//!   through the served queues in turn, each request paced to a share of the budget. Each
//!   Buildkite job becomes the core's [`jobify_core::RawJob`] in one place (`intake.rs`).
//! - [`BuildkiteFeedback`]: [`jobify_core::Feedback`]; annotates a refused job, then
//!   cancels it.
//! - [`StacksFeedback`]: [`jobify_core::Feedback`] over the Stacks API (agent token only);
//!   finishes a refused job as a stack error (`exit_status: -1`) with the reason.
//! - [`StacksMonitor`]: [`jobify_core::Monitor`] over the Stacks API: lists a stack's queues,
//!   reserves each job just before it launches (with a job acquisition token of its own),
//!   and keeps listing and extending what it reserved until an agent takes it. Join first
//!   with [`register_stack`].
//! - [`StacksTimeline`]: what jobify does with a job (held back, Job created, pod waiting,
//!   given up), as stack notifications on the job's timeline.
//! - [`report_queue_figures`]: Buildkite's `/v3/metrics` into the queue gauges.
//! - [`BuildkiteMetrics`]: the families this crate updates; register them once with
//!   [`BuildkiteMetrics::register`], or leave them unregistered (`Default`) where nothing
//!   is served, as `jobify plan` does.
#![warn(missing_docs)]

mod config;
mod feedback;
mod intake;
mod metrics;
mod monitor;
mod queue_figures;
mod stacks;
mod stacks_feedback;

pub use config::{BuildkiteConfig, DEFAULT_QUEUE, MAX_PAGE_SIZE, Source, StacksConfig, TokenRef};
pub use feedback::{ANNOTATION_CONTEXT, BuildkiteFeedback};
pub use metrics::BuildkiteMetrics;
pub use monitor::{BuildkiteMonitor, MonitorSettings};
pub use queue_figures::{QueueFigures, queue_figures, report_queue_figures};
pub use stacks::{
    StackError, StacksMonitor, StacksSettings, StacksTimeline, register_stack, timeline_note,
};
pub use stacks_feedback::StacksFeedback;
