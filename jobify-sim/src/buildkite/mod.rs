//! Buildkite API simulator: GraphQL (`POST /v1`) and the agent API's metrics
//! (`GET /v3/metrics`), served over real HTTP on loopback.
//!
//! Start with [`BuildkiteSim::start`]; schedule jobs with [`BuildkiteSim::schedule_job`];
//! hand [`BuildkiteSim::agent_api`] to the Kubernetes simulator so its pods acquire and
//! finish those jobs; read back with [`BuildkiteSim::job`] and [`BuildkiteSim::stats`].
//!
//! ```text
//!  POST /v1 ─▶ server ─▶ auth ─▶ faults ─▶ rate_limit ─▶ graphql::run
//!                                                         ├─ schema   (validate, graphql-ruby errors)
//!                                                         ├─ cost     (requested / actual complexity)
//!                                                         └─ resolve + mutation (apollo executor over State)
//!  GET /v3/metrics ─▶ metrics (from State)
//!  AgentApi::acquire/finish ─▶ State (job lifecycle)
//! ```
//!
//! Documents are validated against the subset schema jobify uses
//! (`buildkite-api/graphql/schema.graphql`), so a field jobify may not rely on is rejected
//! as Buildkite would reject an unknown field.
//!
//! # Where the simulator is knowingly simpler than Buildkite
//!
//! - Only command jobs exist; a job is `WAITING` (if asked), `SCHEDULED`, `RUNNING`
//!   (`ASSIGNED` is passed through on acquire), `CANCELING`, `CANCELED`, `FINISHED` or
//!   `EXPIRED`. Agents exist only while they run a job (none idle), and a job cancelled while
//!   running stays `CANCELING` until its agent reports the exit.
//! - The texts of errors Buildkite does not document (401, 429, mutation refusals) and the
//!   body added by `Buildkite-Include-Query-Stats` are plausible, not recorded.
//! - A connection without `first`/`last` serves at most 500 items; `Build.jobs` lists jobs in
//!   step order; clusters exist only as ids on jobs (`JobSpec::cluster`).

mod answers;
mod connection;
mod cost;
mod env;
mod filter;
mod graphql;
mod handle;
mod ids;
mod job;
mod metrics;
mod mutation;
mod rate_limit;
mod resolve;
mod schema;
mod server;
mod state;
mod variables;

pub use answers::SchemaAnswers;
pub use handle::{BuildkiteSim, BuildkiteSimConfig, BuildkiteStats, Error, JobHandle, JobSnapshot};
pub use job::{Annotation, JobSpec, JobState};
pub use rate_limit::Budget;
