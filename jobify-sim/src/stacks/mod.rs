//! Stacks API simulator: the agent API's `/v3/stacks/...` endpoints a custom stack uses to
//! find, reserve, fail and annotate jobs with only a cluster agent token, plus the token
//! identity (`GET /v3/token`), the agent's acquire (`PUT /v3/jobs/:id/acquire`) and the
//! queue metrics (`GET /v3/metrics`, which Buildkite serves on the same host to the same
//! token), served over real HTTP on loopback.
//!
//! Written from Buildkite's documentation (`../shared/buildkite/STACKS-API.md` sums it up),
//! not from any client, so it can catch a client's mistakes.
//!
//! Start with [`StacksSim::start`]; add jobs with [`StacksSim::add_job`]; read back with
//! [`StacksSim::job`]; let reservations run out with [`StacksSim::advance`].
//!
//! ```text
//!  request ─▶ server::serve ─▶ auth (cluster token) ─▶ faults ─▶ rate_limit (stack, scope)
//!                                 └─▶ State: registration, listing, reservation, feedback
//!  PUT /v3/jobs/:id/acquire, AgentApi ─▶ State::acquire (cluster token or this job's JAT)
//!  GET /v3/metrics ─▶ auth (cluster token) ─▶ faults ─▶ metrics::body (no rate limit)
//! ```
//!
//! Time is the simulator's own [clock](StacksSim::advance): tokio's time plus an offset.
//! Reservation expiry is not an event: a reservation whose `expires_at` has passed simply no
//! longer hides its job.

mod body;
mod clock;
mod config;
mod endpoints;
mod feedback;
mod handle;
mod job;
mod listing;
mod metrics;
mod rate_limit;
mod refusal;
mod registration;
mod reservation;
mod server;
mod state;
mod token;

pub use config::{OverMaximum, RateLimits, StacksSimConfig};
pub use handle::{Error, JobSnapshot, QueueSnapshot, StackSnapshot, StacksSim, StacksStats};
pub use job::{Credential, FinishRecord, JobSpec, JobState, Notification, Reservation};
pub use refusal::Refusal;
