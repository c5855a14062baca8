//! Command jobs as Buildkite reports them, and their states.

use jiff::Timestamp;

use crate::schema_enum::schema_enum;

schema_enum! {
    /// A job's state (`JobStates` in Buildkite's schema).
    ///
    /// Buildkite adds states over time: a value this version does not know is kept
    /// verbatim in [`JobState::Unknown`], never dropped and never a panic.
    JobState ("JobStates", from_graphql) {
        Pending => "PENDING", "Created, waiting for its dependencies.";
        Waiting => "WAITING", "Waiting on a `wait` step.";
        WaitingFailed => "WAITING_FAILED", "A `wait` step it depended on failed.";
        Blocked => "BLOCKED", "Behind a `block` step.";
        BlockedFailed => "BLOCKED_FAILED", "Behind a `block` step that failed.";
        Unblocked => "UNBLOCKED", "A `block` step was unblocked.";
        UnblockedFailed => "UNBLOCKED_FAILED", "A failed `block` step was unblocked.";
        Limiting => "LIMITING", "Being checked against concurrency limits.";
        Limited => "LIMITED", "Held back by a concurrency limit.";
        PlatformLimiting => "PLATFORM_LIMITING", "Being checked against platform limits.";
        PlatformLimited => "PLATFORM_LIMITED", "Held back by a platform limit.";
        Scheduled => "SCHEDULED", "Waiting for an agent to pick it up.";
        Reserved => "RESERVED", "Reserved for an agent.";
        Assigned => "ASSIGNED", "Assigned to an agent.";
        Accepted => "ACCEPTED", "Accepted by an agent.";
        Running => "RUNNING", "Running on an agent.";
        Finished => "FINISHED", "Finished (passed or failed).";
        Canceling => "CANCELING", "Being cancelled.";
        Canceled => "CANCELED", "Cancelled.";
        TimingOut => "TIMING_OUT", "Timing out.";
        TimedOut => "TIMED_OUT", "Timed out.";
        Skipped => "SKIPPED", "Skipped.";
        Broken => "BROKEN", "Broken: it can never run.";
        Expired => "EXPIRED", "Expired before an agent took it.";
    }
}

impl JobState {
    /// Whether the job will never start on an agent from this state on.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            JobState::Finished
                | JobState::Canceling
                | JobState::Canceled
                | JobState::TimingOut
                | JobState::TimedOut
                | JobState::Skipped
                | JobState::Broken
                | JobState::Expired
        )
    }
}

/// A command job waiting for an agent, as `ScheduledJobs` returns it.
///
/// Pipeline, build and step facts come from [`CommandJob::env`], where Buildkite puts them
/// (`BUILDKITE_PIPELINE_SLUG`, `BUILDKITE_BUILD_NUMBER`, ...); the accessors read them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandJob {
    /// GraphQL node id: what mutations such as [`crate::Client::cancel_job`] take.
    pub id: String,
    /// The job's uuid (what `buildkite-agent start --acquire-job` takes).
    pub uuid: String,
    /// The step's label, if it has one.
    pub label: Option<String>,
    /// The job's state when it was read.
    pub state: JobState,
    /// Agent query rules, e.g. `["queue=kubernetes"]` (empty when Buildkite sent none).
    pub agent_query_rules: Vec<String>,
    /// The command the step runs.
    pub command: Option<String>,
    /// The job's environment as Buildkite sends it: `KEY=VALUE` strings (empty when none).
    pub env: Vec<String>,
    /// Buildkite priority: higher runs first (0 when Buildkite sent none, its default).
    pub priority: i32,
    /// When the job became scheduled.
    pub scheduled_at: Option<Timestamp>,
    /// When the job became runnable.
    pub runnable_at: Option<Timestamp>,
    /// The job's web URL.
    pub url: String,
}

impl CommandJob {
    /// The value of an environment variable of the job, if set.
    pub fn env_var(&self, key: &str) -> Option<&str> {
        env_var(&self.env, key)
    }

    /// The organization slug (`BUILDKITE_ORGANIZATION_SLUG`).
    pub fn organization_slug(&self) -> Option<&str> {
        self.env_var("BUILDKITE_ORGANIZATION_SLUG")
    }

    /// The pipeline slug (`BUILDKITE_PIPELINE_SLUG`).
    pub fn pipeline_slug(&self) -> Option<&str> {
        self.env_var("BUILDKITE_PIPELINE_SLUG")
    }

    /// The build number (`BUILDKITE_BUILD_NUMBER`), if present and numeric.
    pub fn build_number(&self) -> Option<u64> {
        self.env_var("BUILDKITE_BUILD_NUMBER")?.parse().ok()
    }

    /// The build's uuid (`BUILDKITE_BUILD_ID`).
    pub fn build_uuid(&self) -> Option<&str> {
        self.env_var("BUILDKITE_BUILD_ID")
    }

    /// The branch (`BUILDKITE_BRANCH`).
    pub fn branch(&self) -> Option<&str> {
        self.env_var("BUILDKITE_BRANCH")
    }

    /// The commit (`BUILDKITE_COMMIT`).
    pub fn commit(&self) -> Option<&str> {
        self.env_var("BUILDKITE_COMMIT")
    }

    /// The step key (`BUILDKITE_STEP_KEY`), `None` when empty.
    pub fn step_key(&self) -> Option<&str> {
        self.env_var("BUILDKITE_STEP_KEY")
            .filter(|key| !key.is_empty())
    }

    /// The plugins JSON (`BUILDKITE_PLUGINS`), `None` when empty.
    pub fn plugins_json(&self) -> Option<&str> {
        self.env_var("BUILDKITE_PLUGINS")
            .filter(|json| !json.is_empty())
    }
}

/// Finds `key` in `KEY=VALUE` strings; the last occurrence wins, as in a shell and as
/// `jobify_core::Env` reads the same list, so a filter on these accessors and a policy on the
/// core's view cannot disagree about a repeated key.
pub(crate) fn env_var<'a>(env: &'a [String], key: &str) -> Option<&'a str> {
    env.iter().rev().find_map(|entry| {
        let (name, value) = entry.split_once('=')?;
        (name == key).then_some(value)
    })
}

/// A job's current state, as [`crate::Client::job_states`] found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobLookup {
    /// A command job.
    Command {
        /// GraphQL node id.
        id: String,
        /// The job's uuid.
        uuid: String,
        /// Its current state.
        state: JobState,
    },
    /// The uuid names a block, wait or trigger job (these never run on agents).
    NotCommand {
        /// The uuid that was looked up.
        uuid: String,
        /// The job's type, e.g. `JobTypeWait`.
        typename: String,
    },
    /// No job with that uuid exists, or the token cannot see it.
    NotFound {
        /// The uuid that was looked up.
        uuid: String,
    },
    /// Buildkite's answer about this job could not be read: it reported an error for it, or
    /// sent a shape the client does not know (a job type added to the schema later). The
    /// other jobs of the same request are unaffected; the state is unknown, not "gone".
    Unreadable {
        /// The uuid that was looked up.
        uuid: String,
        /// What was wrong, naming the response path.
        reason: String,
    },
}

impl JobLookup {
    /// The uuid this result is about.
    pub fn uuid(&self) -> &str {
        match self {
            JobLookup::Command { uuid, .. }
            | JobLookup::NotCommand { uuid, .. }
            | JobLookup::NotFound { uuid }
            | JobLookup::Unreadable { uuid, .. } => uuid,
        }
    }

    /// The state, for command jobs.
    pub fn state(&self) -> Option<&JobState> {
        match self {
            JobLookup::Command { state, .. } => Some(state),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_states_round_trip_through_their_schema_names() {
        for name in [
            "SCHEDULED",
            "RUNNING",
            "PLATFORM_LIMITED",
            "WAITING_FAILED",
            "EXPIRED",
        ] {
            assert_eq!(JobState::from_graphql(name).as_str(), name);
        }
        assert_eq!(JobState::from_graphql("SCHEDULED"), JobState::Scheduled);
    }

    #[test]
    fn unknown_states_are_kept_verbatim() {
        let state = JobState::from_graphql("QUANTUM_SUPERPOSED");
        assert_eq!(state, JobState::Unknown("QUANTUM_SUPERPOSED".to_owned()));
        assert_eq!(state.to_string(), "QUANTUM_SUPERPOSED");
        assert!(!state.is_terminal());
    }

    #[test]
    fn env_var_splits_on_the_first_equals_sign_and_the_last_repeat_wins() {
        let env = vec![
            "A=1".to_owned(),
            "B=x=y".to_owned(),
            "A=2".to_owned(),
            "C".to_owned(),
        ];
        assert_eq!(env_var(&env, "A"), Some("2"));
        assert_eq!(env_var(&env, "B"), Some("x=y"));
        assert_eq!(env_var(&env, "C"), None);
    }
}
