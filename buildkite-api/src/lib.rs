//! A typed async client for the parts of Buildkite that jobify needs; it knows nothing
//! of jobify and can serve any Rust tool.
//!
//! Start with [`Client::builder`]: give it a GraphQL API token (and an agent token for
//! [`Client::agent_metrics`]), then call an operation.
//!
//! ```text
//!  Client ──POST graphql_url (Bearer)──▶ ScheduledJobs · Pipeline · PipelineBuilds/BuildJobs
//!    │                                  JobStates · CancelJob · AnnotateJob · AnnotateBuild
//!    └────GET {agent_url}/metrics (Token)──▶ AgentMetrics
//!  StacksClient ──{agent_url}/stacks/… (Token)──▶ the Stacks API (module [`stacks`])
//!  every GraphQL response ─▶ RateLimit snapshot ─▶ Pacer (spaces the next poll)
//! ```
//!
//! - The operations are documents in `graphql/` (one per file) against a hand-written
//!   subset of Buildkite's schema (`graphql/schema.graphql`); `graphql_client` generates
//!   private types and each operation maps them into this crate's types ([`CommandJob`],
//!   [`Build`], [`JobLookup`], ...). Unknown enum values are kept ([`JobState::Unknown`]).
//! - Every call returns [`Fetched`]: the value, the last [`RateLimit`] snapshot, and how many
//!   requests and actual complexity points it took. [`Pacer`] turns that into a delay.
//! - [`cost::requested_complexity`] gives each operation's requested complexity.
//! - Errors are one [`Error`] enum; none of them, and no `Debug` output, prints a token.
//!
//! reqwest is built without a TLS crypto provider: install
//! `rustls::crypto::ring::default_provider()` once before [`ClientBuilder::build`].
//!
//! ```no_run
//! # async fn run() -> buildkite_api::Result<()> {
//! use buildkite_api::{Client, ScheduledJobsRequest};
//! use secrecy::SecretString;
//!
//! let _ = rustls::crypto::ring::default_provider().install_default();
//! let client = Client::builder()
//!     .graphql_token(SecretString::from(std::env::var("BUILDKITE_API_TOKEN").unwrap_or_default()))
//!     .user_agent("jobify/0.1.0")
//!     .build()?;
//! let page = client
//!     .scheduled_jobs(&ScheduledJobsRequest::for_queue("acme", "kubernetes"))
//!     .await?;
//! for job in &page.value.jobs {
//!     println!("{} {:?} {}", job.uuid, job.pipeline_slug(), job.state);
//! }
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

mod build;
mod client;
pub mod cost;
mod error;
mod job;
mod metrics;
mod operation;
mod pacer;
mod rate_limit;
mod schema_enum;
pub mod stacks;
mod transport;

pub use build::{Build, BuildJob, BuildState, Pipeline, PipelineBuilds, Skipped};
pub use client::{
    Client, ClientBuilder, DEFAULT_AGENT_URL, DEFAULT_GRAPHQL_URL, DEFAULT_TIMEOUT,
    default_user_agent,
};
pub use error::{Error, Result};
pub use job::{CommandJob, JobLookup, JobState};
pub use metrics::{AgentCounts, AgentMetrics, JobCounts};
pub use operation::{
    Annotation, AnnotationStyle, JOB_STATES_BATCH, PipelineBuildsRequest, Priorities,
    ScheduledJobs, ScheduledJobsPage, ScheduledJobsRequest, job_states_document,
};
pub use pacer::{BUDGET_WINDOW, ORGANIZATION_BUDGET, Pacer};
pub use rate_limit::{MAX_RETRY_AFTER, RateLimit};
pub use transport::Fetched;
