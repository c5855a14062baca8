//! A Buildkite command job waiting for an agent, as the policy sees it.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::plugin::PluginConfig;
use crate::rules::AgentQueryRules;

/// The uuid of a Buildkite job: the identity jobify keys everything on.
///
/// Buildkite prints it in URLs and passes it to `buildkite-agent start --acquire-job`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(pub Uuid);

impl JobId {
    /// The uuid itself.
    pub fn as_uuid(&self) -> &Uuid {
        &self.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl FromStr for JobId {
    type Err = uuid::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(JobId)
    }
}

impl From<Uuid> for JobId {
    fn from(uuid: Uuid) -> Self {
        JobId(uuid)
    }
}

/// Where a job comes from: its build.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildInfo {
    /// Build number within the pipeline (`BUILDKITE_BUILD_NUMBER`).
    pub number: u64,
    /// Branch (`BUILDKITE_BRANCH`).
    pub branch: String,
    /// Commit (`BUILDKITE_COMMIT`).
    pub commit: String,
    /// Web URL of the build (`BUILDKITE_BUILD_URL`), when known.
    pub url: Option<String>,
}

/// The job's environment as Buildkite hands it to the agent (`KEY=VALUE` pairs).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Env(BTreeMap<String, String>);

impl Env {
    /// Parses Buildkite's `KEY=VALUE` strings. An entry without `=` is kept as a key with an
    /// empty value; the last of repeated keys wins, as in a shell.
    pub fn from_pairs<I, S>(pairs: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let map = pairs
            .into_iter()
            .map(|pair| {
                let pair = pair.as_ref();
                match pair.split_once('=') {
                    Some((key, value)) => (key.to_owned(), value.to_owned()),
                    None => (pair.to_owned(), String::new()),
                }
            })
            .collect();
        Env(map)
    }

    /// The value of `key`, if set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// The value of `key` when set and not empty (Buildkite sends unset variables as `KEY=`).
    pub fn non_empty(&self, key: &str) -> Option<&str> {
        self.get(key).filter(|v| !v.is_empty())
    }

    /// Sets `key` to `value`.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.0.insert(key.into(), value.into());
    }

    /// All variables, sorted by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Number of variables.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no variables.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A Buildkite command job in state `SCHEDULED`: everything a policy may look at.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScheduledJob {
    /// The job's uuid.
    pub id: JobId,
    /// What the job's source needs to address the job (cancel it, annotate it): opaque to
    /// the scheduler. The GraphQL source puts the job's node id here; a source that
    /// addresses jobs by uuid may repeat the uuid.
    pub source_key: String,
    /// Organization slug.
    pub organization: String,
    /// Pipeline slug.
    pub pipeline: String,
    /// The build the job belongs to.
    pub build: BuildInfo,
    /// The step's `key`, when the pipeline gave it one.
    pub step_key: Option<String>,
    /// The step's label.
    pub label: Option<String>,
    /// The command the step runs.
    pub command: Option<String>,
    /// Agent query rules the job was scheduled with, e.g. `queue=kubernetes`.
    pub rules: AgentQueryRules,
    /// The job's environment (`BUILDKITE_*` and the step's `env`).
    pub env: Env,
    /// The `kubernetes` plugin's configuration, parsed from `BUILDKITE_PLUGINS`.
    pub plugin: PluginConfig,
    /// Buildkite priority: higher runs first.
    pub priority: i32,
    /// When the job became scheduled (or runnable), if Buildkite said.
    pub scheduled_at: Option<Timestamp>,
    /// Web URL of the job, when known.
    pub url: Option<String>,
}

impl ScheduledJob {
    /// The `queue` this job asks for, if its rules name one.
    pub fn queue(&self) -> Option<&str> {
        self.rules.queue()
    }
}

/// A job's state in Buildkite, as far as jobify cares. The job source maps its own spelling
/// of states (GraphQL's `JobStates`, say) to these.
///
/// Buildkite adds states over time; a state this version does not know is kept verbatim in
/// [`JobState::Unknown`] rather than dropped.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum JobState {
    /// Not yet runnable (`PENDING`, `WAITING`, `BLOCKED`, `LIMITING`, ...).
    Waiting,
    /// Waiting for an agent (`SCHEDULED`).
    Scheduled,
    /// Reserved or assigned to an agent, not yet running (`RESERVED`, `ASSIGNED`, `ACCEPTED`).
    Assigned,
    /// Running on an agent.
    Running,
    /// Finished (passed or failed).
    Finished,
    /// Being cancelled or cancelled.
    Canceled,
    /// Timed out, expired, skipped or broken: it will never run.
    Abandoned,
    /// A state this version of jobify does not know.
    Unknown(String),
}

impl JobState {
    /// Whether a workload launched for a job in this state should be removed if it has not
    /// started: the job was cancelled or can never run.
    pub fn is_cancelled(&self) -> bool {
        matches!(self, JobState::Canceled | JobState::Abandoned)
    }
}
