//! A job as the Stacks simulator keeps it: what a test asks for ([`JobSpec`]), its state
//! ([`JobState`]) and what stacks did to it ([`Reservation`], [`FinishRecord`],
//! [`Notification`]).

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use uuid::Uuid;

use crate::agent::JobScript;

/// A job a test adds with [`super::StacksSim::add_job`].
///
/// ```no_run
/// use jobify_sim::stacks::JobSpec;
/// let spec = JobSpec::command("make test").on_queue("kubernetes").with_priority(2);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobSpec {
    /// The self-hosted queue; `None` is the cluster's default queue.
    pub queue: Option<String>,
    /// The step's command (`command` of get-job).
    pub command: String,
    /// The step's env, added to the `BUILDKITE_*` variables of get-job's `env`.
    pub env: BTreeMap<String, String>,
    /// `BUILDKITE_PLUGINS`, when the step has plugins (a JSON array as a string).
    pub plugins: Option<String>,
    /// Agent query rules (`key=value`).
    pub agent_query_rules: Vec<String>,
    /// Priority; higher runs first. Buildkite's default is 0.
    pub priority: i64,
    /// Pipeline slug.
    pub pipeline: String,
    /// Build number.
    pub build_number: u64,
    /// Build branch.
    pub branch: String,
    /// The step's key, if any.
    pub step_key: Option<String>,
    /// How the job runs once an agent acquires it.
    pub script: JobScript,
}

impl JobSpec {
    /// A job running `command` on the default queue, priority 0.
    pub fn command(command: impl Into<String>) -> Self {
        JobSpec {
            queue: None,
            command: command.into(),
            env: BTreeMap::new(),
            plugins: None,
            agent_query_rules: Vec::new(),
            priority: 0,
            pipeline: "pipeline".to_owned(),
            build_number: 1,
            branch: "main".to_owned(),
            step_key: None,
            script: JobScript {
                run_for: Duration::from_secs(1),
                exit_status: 0,
            },
        }
    }

    /// On queue `key`, with the agent query rule `queue=<key>` (replacing any other
    /// `queue=` rule).
    #[must_use]
    pub fn on_queue(mut self, key: &str) -> Self {
        self.queue = Some(key.to_owned());
        self.agent_query_rules.retain(|r| !r.starts_with("queue="));
        self.agent_query_rules.insert(0, format!("queue={key}"));
        self
    }

    /// Adds an agent query rule (`key=value`).
    #[must_use]
    pub fn with_rule(mut self, rule: &str) -> Self {
        self.agent_query_rules.push(rule.to_owned());
        self
    }

    /// Sets an env var of the step.
    #[must_use]
    pub fn with_env(mut self, name: &str, value: &str) -> Self {
        self.env.insert(name.to_owned(), value.to_owned());
        self
    }

    /// Gives the step plugins (`BUILDKITE_PLUGINS`, a JSON array).
    #[must_use]
    pub fn with_plugins(mut self, plugins: &serde_json::Value) -> Self {
        self.plugins = Some(plugins.to_string());
        self
    }

    /// Sets the priority.
    #[must_use]
    pub fn with_priority(mut self, priority: i64) -> Self {
        self.priority = priority;
        self
    }

    /// Puts the job on pipeline `slug`.
    #[must_use]
    pub fn on_pipeline(mut self, slug: &str) -> Self {
        self.pipeline = slug.to_owned();
        self
    }

    /// Gives the step a key.
    #[must_use]
    pub fn with_step_key(mut self, key: &str) -> Self {
        self.step_key = Some(key.to_owned());
        self
    }

    /// How the job runs once acquired.
    #[must_use]
    pub fn running(mut self, run_for: Duration, exit_status: i32) -> Self {
        self.script = JobScript {
            run_for,
            exit_status,
        };
        self
    }
}

/// A job's state in Buildkite's lifecycle. `reserved` is not stored: a `Scheduled` job under
/// a live reservation reports `reserved`, and reports `scheduled` again once it expires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobState {
    /// Waiting for an agent (or a stack) to take it.
    Scheduled,
    /// An agent acquired it (`assigned` and `accepted` are passed through).
    Running,
    /// It ended: an agent reported its exit, or a stack finished it.
    Finished,
    /// Cancelled while an agent ran it; the agent has not stopped yet.
    Canceling,
    /// Cancelled.
    Canceled,
}

impl JobState {
    /// The state string get-states reports.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Scheduled => "scheduled",
            JobState::Running => "running",
            JobState::Finished => "finished",
            JobState::Canceling => "canceling",
            JobState::Canceled => "canceled",
        }
    }
}

/// A stack's reservation of a job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reservation {
    /// The reserving stack's key.
    pub stack: String,
    /// When it lapses and the job is listed again.
    pub expires_at: Timestamp,
}

/// What a stack's `finish` recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FinishRecord {
    /// The finishing stack's key.
    pub stack: String,
    /// The exit status (-1 when the request had none).
    pub exit_status: i64,
    /// The detail shown on the job page.
    pub detail: String,
    /// When.
    pub at: Timestamp,
}

/// One notification on a job's timeline, in the order the simulator received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notification {
    /// The notifying stack's key.
    pub stack: String,
    /// The text.
    pub detail: String,
    /// The notification's timestamp (the request's, or when it arrived).
    pub timestamp: Timestamp,
}

/// How an agent acquired the job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credential {
    /// The cluster agent token (or the in-process agent seam, which carries no token).
    ClusterToken,
    /// A job acquisition token issued by this stack.
    JobAcquisitionToken {
        /// The issuing stack's key.
        stack: String,
    },
}

/// The job record.
#[derive(Clone, Debug)]
pub(crate) struct Job {
    pub(crate) uuid: Uuid,
    /// Creation order, the listing's tie-break after `scheduled_at`.
    pub(crate) seq: u64,
    pub(crate) queue: String,
    pub(crate) state: JobState,
    pub(crate) spec: JobSpec,
    pub(crate) env: BTreeMap<String, String>,
    pub(crate) pipeline_uuid: Uuid,
    pub(crate) build_uuid: Uuid,
    pub(crate) created_at: Timestamp,
    pub(crate) scheduled_at: Timestamp,
    pub(crate) finished_at: Option<Timestamp>,
    pub(crate) reservation: Option<Reservation>,
    pub(crate) finish: Option<FinishRecord>,
    pub(crate) notifications: Vec<Notification>,
    pub(crate) acquired_with: Option<Credential>,
    /// Acquire attempts with a valid credential, successful or not.
    pub(crate) acquire_attempts: u32,
    pub(crate) exit_status: Option<i64>,
}

impl Job {
    /// The reservation, if it is still live at `now`.
    pub(crate) fn live_reservation(&self, now: Timestamp) -> Option<&Reservation> {
        self.reservation.as_ref().filter(|r| r.expires_at > now)
    }

    /// The state get-states reports at `now`.
    pub(crate) fn reported_state(&self, now: Timestamp) -> &'static str {
        if self.state == JobState::Scheduled && self.live_reservation(now).is_some() {
            "reserved"
        } else {
            self.state.as_str()
        }
    }

    /// Whether an agent with `tags` satisfies every agent query rule (`*` globs values).
    pub(crate) fn tags_match(&self, tags: &[String]) -> Result<(), String> {
        for rule in &self.spec.agent_query_rules {
            let (key, pattern) = rule.split_once('=').unwrap_or((rule.as_str(), "*"));
            let matched = tags.iter().any(|tag| {
                tag.split_once('=')
                    .is_some_and(|(k, v)| k == key && glob(pattern, v))
            });
            if !matched {
                return Err(format!("rule {rule:?} is not satisfied by tags {tags:?}"));
            }
        }
        Ok(())
    }
}

/// `*` in `pattern` matches any run of characters.
fn glob(pattern: &str, value: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == value,
        Some((head, rest)) => value.strip_prefix(head).is_some_and(|tail| {
            (0..=tail.len()).any(|i| tail.is_char_boundary(i) && glob(rest, &tail[i..]))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::glob;

    #[test]
    fn rule_values_glob() {
        assert!(glob("*", "x"));
        assert!(glob("linux-*", "linux-amd64"));
        assert!(!glob("linux-*", "darwin"));
        assert!(glob("a*c", "abbc"));
        assert!(!glob("kubernetes", "kube"));
    }
}
