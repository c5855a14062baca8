//! Pipelines and builds: what the per-pipeline watch returns.

use jiff::Timestamp;

use crate::job::{JobState, env_var};
use crate::schema_enum::schema_enum;

/// A pipeline, as [`crate::Client::pipeline`] finds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pipeline {
    /// GraphQL node id: what [`crate::Client::pipeline_builds`] takes.
    pub id: String,
    /// The pipeline's uuid.
    pub uuid: String,
    /// The pipeline's slug.
    pub slug: String,
    /// The pipeline's name.
    pub name: String,
    /// The pipeline's web URL.
    pub url: String,
}

schema_enum! {
    /// A build's state (`BuildStates` in Buildkite's schema); unknown values are kept.
    BuildState ("BuildStates", from_graphql) {
        Creating => "CREATING", "Being created.";
        Scheduled => "SCHEDULED", "Scheduled, no job started yet.";
        Running => "RUNNING", "Running.";
        Failing => "FAILING", "Running, and a job has failed.";
        Blocked => "BLOCKED", "Stopped at a `block` step.";
        Passed => "PASSED", "Passed.";
        Failed => "FAILED", "Failed.";
        Canceling => "CANCELING", "Being cancelled.";
        Canceled => "CANCELED", "Cancelled.";
        Skipped => "SKIPPED", "Skipped.";
        NotRun => "NOT_RUN", "Not run.";
    }
}

/// A build with its command jobs and meta-data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Build {
    /// The build's uuid.
    pub uuid: String,
    /// The build message.
    pub message: Option<String>,
    /// The build's state.
    pub state: BuildState,
    /// The fully-qualified commit.
    pub commit: String,
    /// Meta-data key/value pairs, in Buildkite's order.
    pub meta_data: Vec<(String, String)>,
    /// Whether the build has more meta-data than the page size fetched.
    pub meta_data_truncated: bool,
    /// The command jobs fetched (all of them unless `jobs_truncated`).
    pub jobs: Vec<BuildJob>,
    /// How many command jobs Buildkite says the build has.
    pub jobs_total: u64,
    /// Whether pages were left unfetched because of the request's page bound.
    pub jobs_truncated: bool,
}

/// A command job of a build, as the per-pipeline watch returns it.
///
/// The watch's selection matches the seed's recorded query, which has no GraphQL `id`,
/// `priority` or `url`; [`crate::Client::job_states`] returns the id by uuid when a mutation
/// needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildJob {
    /// The job's uuid.
    pub uuid: String,
    /// The step's label.
    pub label: Option<String>,
    /// The job's state.
    pub state: JobState,
    /// Agent query rules (empty when Buildkite sent none).
    pub agent_query_rules: Vec<String>,
    /// The command the step runs.
    pub command: Option<String>,
    /// `KEY=VALUE` environment as Buildkite sends it (empty when none).
    pub env: Vec<String>,
    /// The exit status, once finished.
    pub exit_status: Option<String>,
    /// When the job became scheduled.
    pub scheduled_at: Option<Timestamp>,
    /// When the job became runnable.
    pub runnable_at: Option<Timestamp>,
}

impl BuildJob {
    /// The value of an environment variable of the job, if set.
    pub fn env_var(&self, key: &str) -> Option<&str> {
        env_var(&self.env, key)
    }
}

/// What [`crate::Client::pipeline_builds`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PipelineBuilds {
    /// Builds in the requested states, newest first.
    pub builds: Vec<Build>,
    /// How many builds Buildkite says match.
    pub total: u64,
    /// Whether build pages were left unfetched because of the page bound.
    pub truncated: bool,
    /// Entries that could not be mapped (reported, not dropped silently).
    pub skipped: Vec<Skipped>,
}

/// An entry of a response the client could not turn into a domain value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// The job or build uuid, when known.
    pub uuid: Option<String>,
    /// Why it was skipped.
    pub reason: String,
}
