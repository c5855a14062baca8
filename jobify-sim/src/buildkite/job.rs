//! A command job as the simulator keeps it: what a scenario asks for ([`JobSpec`]), its state
//! machine ([`JobState`]) and the record the GraphQL resolvers read ([`Job`]).

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use uuid::Uuid;

use crate::agent::JobScript;

/// A command job a scenario schedules with [`super::BuildkiteSim::schedule_job`].
///
/// Build one with [`JobSpec::command`] and the `on_*`/`with_*` methods:
///
/// ```no_run
/// use jobify_sim::buildkite::JobSpec;
/// let spec = JobSpec::command("make test").on_queue("kubernetes").on_pipeline("app");
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct JobSpec {
    /// Pipeline slug; the pipeline is created on first use.
    pub pipeline: String,
    /// Add the job to this existing build number of the pipeline; `None` creates a build.
    pub build: Option<u64>,
    /// Branch of the build.
    pub branch: String,
    /// Commit of the build.
    pub commit: String,
    /// Message of the build.
    pub message: String,
    /// The step's label.
    pub label: String,
    /// The step's command.
    pub command: String,
    /// The step's key, if it has one.
    pub step_key: Option<String>,
    /// Agent query rules (`key=value`, e.g. `queue=kubernetes`).
    pub agent_query_rules: Vec<String>,
    /// The step's `env:`; appended after the `BUILDKITE_*` variables.
    pub env: BTreeMap<String, String>,
    /// The step's plugins (a JSON array of one-key objects), exposed as `BUILDKITE_PLUGINS`.
    pub plugins: Option<serde_json::Value>,
    /// Job priority (`priority { number }`); Buildkite's default is 0.
    pub priority: i64,
    /// The cluster (by uuid) the job's queue belongs to; `None` for unclustered agents.
    pub cluster: Option<Uuid>,
    /// Create the job `WAITING` (on a dependency) instead of `SCHEDULED`; release it with
    /// [`super::BuildkiteSim::release_job`].
    pub waiting: bool,
    /// How the job runs once an agent acquires it.
    pub script: JobScript,
}

impl Default for JobSpec {
    fn default() -> Self {
        JobSpec {
            pipeline: "pipeline".to_owned(),
            build: None,
            branch: "main".to_owned(),
            commit: "HEAD".to_owned(),
            message: "Simulated build".to_owned(),
            label: String::new(),
            command: String::new(),
            step_key: None,
            agent_query_rules: vec!["queue=default".to_owned()],
            env: BTreeMap::new(),
            plugins: None,
            priority: 0,
            cluster: None,
            waiting: false,
            script: JobScript {
                run_for: Duration::from_secs(1),
                exit_status: 0,
            },
        }
    }
}

impl JobSpec {
    /// A job running `command` on the default queue of pipeline `pipeline`, labelled with
    /// the command.
    pub fn command(command: impl Into<String>) -> Self {
        let command = command.into();
        JobSpec {
            label: command.clone(),
            command,
            ..JobSpec::default()
        }
    }

    /// Targets `queue=<queue>` (replacing any other rules).
    #[must_use]
    pub fn on_queue(mut self, queue: &str) -> Self {
        self.agent_query_rules = vec![format!("queue={queue}")];
        self
    }

    /// Puts the job on pipeline `slug`.
    #[must_use]
    pub fn on_pipeline(mut self, slug: &str) -> Self {
        self.pipeline = slug.to_owned();
        self
    }

    /// Gives the job a priority (the step's `priority`; Buildkite's default is 0).
    #[must_use]
    pub fn with_priority(mut self, priority: i64) -> Self {
        self.priority = priority;
        self
    }

    /// Gives the step plugins (`BUILDKITE_PLUGINS`).
    #[must_use]
    pub fn with_plugins(mut self, plugins: serde_json::Value) -> Self {
        self.plugins = Some(plugins);
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

/// The states the simulator moves jobs through (a subset of the schema's `JobStates`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JobState {
    /// Waiting for a dependency (a `wait` step, `depends_on`) before it can be scheduled.
    Waiting,
    /// Waiting for an agent.
    Scheduled,
    /// An agent has it but has not started it.
    Assigned,
    /// The agent runs it.
    Running,
    /// Cancelled while running; the agent is stopping it.
    Canceling,
    /// Cancelled.
    Canceled,
    /// Ran to completion (passed or failed: see the exit status).
    Finished,
    /// No agent took it before it expired.
    Expired,
}

impl JobState {
    /// The `JobStates` enum value.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Waiting => "WAITING",
            JobState::Scheduled => "SCHEDULED",
            JobState::Assigned => "ASSIGNED",
            JobState::Running => "RUNNING",
            JobState::Canceling => "CANCELING",
            JobState::Canceled => "CANCELED",
            JobState::Finished => "FINISHED",
            JobState::Expired => "EXPIRED",
        }
    }

    /// The job holds an agent (it counts as busy in the agent metrics).
    pub(crate) fn is_active(self) -> bool {
        matches!(
            self,
            JobState::Assigned | JobState::Running | JobState::Canceling
        )
    }

    /// No further transitions.
    pub(crate) fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Canceled | JobState::Finished | JobState::Expired
        )
    }
}

/// An annotation created by `jobAnnotate` or `buildAnnotate`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Annotation {
    /// The annotation's uuid (`annotation { uuid }` in the mutation payloads).
    pub uuid: Uuid,
    /// The annotation's context (`default` unless given).
    pub context: String,
    /// `AnnotationStyle` value (`DEFAULT`, `INFO`, ...).
    pub style: String,
    /// Markdown body.
    pub body: String,
}

/// The agent running a job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AgentRecord {
    pub(crate) uuid: Uuid,
    pub(crate) name: String,
}

/// A command job in the simulator.
#[derive(Clone, Debug)]
pub(crate) struct Job {
    pub(crate) uuid: Uuid,
    pub(crate) build: Uuid,
    pub(crate) pipeline: Uuid,
    pub(crate) step_uuid: Uuid,
    pub(crate) label: String,
    pub(crate) command: String,
    pub(crate) step_key: Option<String>,
    pub(crate) agent_query_rules: Vec<String>,
    pub(crate) env: Vec<String>,
    pub(crate) priority: i64,
    pub(crate) cluster: Option<Uuid>,
    pub(crate) script: JobScript,
    pub(crate) state: JobState,
    pub(crate) exit_status: Option<i32>,
    pub(crate) agent: Option<AgentRecord>,
    pub(crate) created_at: Timestamp,
    pub(crate) started_at: Option<Timestamp>,
    pub(crate) finished_at: Option<Timestamp>,
    pub(crate) canceled_at: Option<Timestamp>,
    pub(crate) annotations: Vec<Annotation>,
    pub(crate) canceled_by_api: bool,
    pub(crate) acquired_count: u32,
}

impl Job {
    /// The `queue` tag the job targets (`default` without a `queue=` rule), as the agent
    /// metrics group jobs.
    pub(crate) fn queue(&self) -> &str {
        self.agent_query_rules
            .iter()
            .find_map(|rule| rule.strip_prefix("queue="))
            .unwrap_or("default")
    }

    /// Whether an agent with `tags` (`key=value`) may run the job: every rule's key must be
    /// among the tags with a value matching the rule's value (`*` globs).
    pub(crate) fn tags_match(&self, tags: &[String]) -> Result<(), String> {
        for rule in &self.agent_query_rules {
            let (key, pattern) = rule.split_once('=').unwrap_or((rule.as_str(), "*"));
            let matched = tags.iter().any(|tag| {
                tag.split_once('=')
                    .is_some_and(|(k, v)| k == key && glob_match(pattern, v))
            });
            if !matched {
                return Err(format!("rule {rule:?} is not satisfied by tags {tags:?}"));
            }
        }
        Ok(())
    }
}

/// Matches `value` against `pattern`, where `*` in the pattern matches any run of characters.
pub(crate) fn glob_match(pattern: &str, value: &str) -> bool {
    let Some((head, rest)) = pattern.split_once('*') else {
        return pattern == value;
    };
    let Some(mut remaining) = value.strip_prefix(head) else {
        return false;
    };
    let parts: Vec<&str> = rest.split('*').collect();
    let Some((last, middle)) = parts.split_last() else {
        return true;
    };
    for part in middle {
        match remaining.find(part) {
            Some(at) => remaining = &remaining[at + part.len()..],
            None => return false,
        }
    }
    remaining.len() >= last.len() && remaining.ends_with(last)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap fails the test")]
mod tests {
    use super::*;

    #[test]
    fn glob_values_match_like_agent_query_rules() {
        assert!(glob_match("*", "anything"));
        assert!(glob_match("kubernetes", "kubernetes"));
        assert!(!glob_match("kubernetes", "kube"));
        assert!(glob_match("linux-*", "linux-amd64"));
        assert!(!glob_match("linux-*", "darwin-arm64"));
        assert!(glob_match("*-amd64", "linux-amd64"));
        assert!(glob_match("a*c*e", "abcde"));
        assert!(!glob_match("a*c*e", "abcd"));
    }
}
