//! Buildkite's Stacks API: the agent-side API a controller uses to find, reserve, fail and
//! annotate jobs of a self-hosted queue, with a cluster agent token only.
//!
//! ```text
//!  StacksClient ──Token <cluster agent token>──▶ {agent_url}
//!    token_identity ........ GET  /token                           (is the token clustered?)
//!    register/deregister ... POST /stacks/register, /stacks/:key/deregister
//!    scheduled_jobs ........ GET  /stacks/:key/scheduled-jobs      (metadata; the heartbeat)
//!    reserve ............... PUT  /stacks/:key/scheduled-jobs/batch-reserve
//!    job ................... GET  /stacks/:key/jobs/:id            (command and env)
//!    job_states ............ POST /stacks/:key/jobs/get-states
//!    finish ................ POST /stacks/:key/jobs/:id/finish     (exit -1: a stack error)
//!    notify ................ POST /stacks/:key/notifications       (the job's timeline)
//!    job_acquisition_tokens  POST /stacks/:key/job-acquisition-tokens
//! ```
//!
//! Each endpoint has a rate limit of its own ([`StacksEndpoint::scope`]): a 429 holds only
//! its scope, and further calls to it fail fast with [`Error::RateLimited`](crate::Error)
//! until the wait it named has passed. Refusals (400, 403, 404, 422) are
//! [`Error::Refused`](crate::Error) with Buildkite's message and what to do.
//!
//! ```no_run
//! # async fn run() -> buildkite_api::Result<()> {
//! use buildkite_api::stacks::{RegisterStack, ScheduledJobsQuery, StacksClient};
//! use secrecy::SecretString;
//!
//! let _ = rustls::crypto::ring::default_provider().install_default();
//! let client = StacksClient::builder()
//!     .agent_token(SecretString::from(std::env::var("BUILDKITE_AGENT_TOKEN").unwrap_or_default()))
//!     .build()?;
//! let stack = client.register(&RegisterStack::custom("jobify", "kubernetes")).await?.stack;
//! let page = client
//!     .scheduled_jobs(&stack.key, &ScheduledJobsQuery::first_page(&stack.cluster_queue_key))
//!     .await?;
//! let ids: Vec<String> = page.jobs.iter().map(|job| job.id.clone()).collect();
//! let reservation = client.reserve(&stack.key, &ids, None).await?;
//! println!("reserved {:?}", reservation.reserved);
//! # Ok(())
//! # }
//! ```

mod client;
mod endpoint;
mod model;

pub use client::{StacksClient, StacksClientBuilder};
pub use endpoint::StacksEndpoint;
pub use model::{
    ClusterQueue, DEFAULT_QUEUE, DEFAULT_RESERVATION_EXPIRY, FinishJob, JobAcquisitionToken,
    JobAcquisitionTokens, JobBuild, JobDetails, JobPipeline, JobStep, MAX_BATCH, MAX_FINISH_DETAIL,
    MAX_NOTIFICATION_DETAIL, MAX_PAGE_SIZE, MAX_RESERVATION_EXPIRY, Notification,
    NotificationError, PageInfo, RegisterStack, Registered, Reservation, ScheduledJobsPage,
    ScheduledJobsQuery, Stack, StackJob, StackState, StackType, StacksJobState, TokenIdentity,
    stack_key_problem,
};
