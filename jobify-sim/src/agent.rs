//! The seam between the simulators: what a simulated pod's `buildkite-agent` does against
//! Buildkite.

use std::time::Duration;

use uuid::Uuid;

/// How an acquired job runs: the scenario's answer for that job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JobScript {
    /// How long the job's command runs.
    pub run_for: Duration,
    /// The command's exit status (0 passes the job).
    pub exit_status: i32,
}

/// Why an agent could not acquire its job (the real agent then exits non-zero).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AcquireError {
    /// No such job.
    #[error("job {0} not found")]
    NotFound(Uuid),
    /// The job is no longer scheduled (already acquired, cancelled, finished).
    #[error("job {job} is {state}, not SCHEDULED")]
    NotScheduled {
        /// The job.
        job: Uuid,
        /// Its state, as in the GraphQL schema (`CANCELED`, `RUNNING`, ...).
        state: String,
    },
    /// The agent's tags do not satisfy the job's agent query rules.
    #[error("agent tags do not match the job's agent query rules: {0}")]
    TagsMismatch(String),
}

/// What a simulated agent can do against Buildkite. Implemented by the Buildkite simulator;
/// called by the Kubernetes simulator's kubelet for each pod whose agent container runs
/// `buildkite-agent start --acquire-job <uuid>` (or sets `BUILDKITE_AGENT_ACQUIRE_JOB`).
pub trait AgentApi: Send + Sync + 'static {
    /// Acquires exactly `job` for an agent with `tags` (`key=value`): the job moves
    /// `SCHEDULED` -> `ASSIGNED` -> `RUNNING`.
    fn acquire(&self, job: Uuid, tags: &[String]) -> Result<JobScript, AcquireError>;

    /// The job's command ended with `exit_status`: the job moves to `FINISHED`.
    fn finish(&self, job: Uuid, exit_status: i32);
}
