//! What the Stacks API sends and receives, field for field as Buildkite documents it.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use crate::schema_enum::schema_enum;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

/// The queue key that names a cluster's default queue. The docs write `__default__`; the
/// published Go client and agent-stack-k8s send `_default`, which production proves.
pub const DEFAULT_QUEUE: &str = "_default";

/// The most job uuids one batch call (reserve, states, tokens) and the most notifications
/// one request may carry.
pub const MAX_BATCH: usize = 1000;

/// The most jobs one page of scheduled jobs may hold.
pub const MAX_PAGE_SIZE: u32 = 1000;

/// How long a reservation lasts when the request does not say.
pub const DEFAULT_RESERVATION_EXPIRY: Duration = Duration::from_secs(900);

/// The longest reservation (and job acquisition token) the API grants.
pub const MAX_RESERVATION_EXPIRY: Duration = Duration::from_secs(3600);

/// The longest `detail` of a failed (finished) job, in bytes.
pub const MAX_FINISH_DETAIL: usize = 4096;

/// The longest `detail` of a notification. Buildkite allows 256 characters; 255 bytes is
/// safe under either reading of the limit.
pub const MAX_NOTIFICATION_DETAIL: usize = 255;

/// What kind of stack registers. `kubernetes` and `elastic` are reserved for Buildkite's own
/// stacks; everyone else registers as `custom`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StackType {
    /// A third-party stack (jobify).
    Custom,
    /// Reserved for agent-stack-k8s.
    Kubernetes,
    /// Reserved for the Elastic CI Stack.
    Elastic,
}

/// `POST /stacks/register`: registers a stack, or updates the one with this key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RegisterStack {
    /// Unique within the organization: letters, digits, `_` and `-`, at most 80 bytes.
    pub key: String,
    /// What kind of stack this is.
    #[serde(rename = "type")]
    pub stack_type: StackType,
    /// The self-hosted queue the stack serves ([`DEFAULT_QUEUE`] for the default queue).
    pub queue_key: String,
    /// Flat string metadata: at most 100 keys of at most 64 characters, values of at most
    /// 256 characters.
    pub metadata: BTreeMap<String, String>,
}

impl RegisterStack {
    /// A `custom` stack with no metadata.
    pub fn custom(key: impl Into<String>, queue_key: impl Into<String>) -> Self {
        RegisterStack {
            key: key.into(),
            stack_type: StackType::Custom,
            queue_key: queue_key.into(),
            metadata: BTreeMap::new(),
        }
    }

    /// What Buildkite would refuse in this registration, said before sending it.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(problem) = stack_key_problem(&self.key) {
            problems.push(problem);
        }
        if self.queue_key.trim().is_empty() {
            problems.push(format!(
                "the queue key is empty; use {DEFAULT_QUEUE:?} for the cluster's default queue"
            ));
        }
        if self.metadata.len() > 100 {
            problems.push(format!(
                "{} metadata keys; at most 100 are allowed",
                self.metadata.len()
            ));
        }
        for (key, value) in &self.metadata {
            if key.chars().count() > 64 {
                problems.push(format!("metadata key {key:?} is longer than 64 characters"));
            }
            if value.chars().count() > 256 {
                problems.push(format!(
                    "the value of metadata key {key:?} is longer than 256 characters"
                ));
            }
        }
        problems
    }
}

/// Why `key` cannot be a stack key, if it cannot.
pub fn stack_key_problem(key: &str) -> Option<String> {
    if key.is_empty() {
        return Some("the stack key is empty".to_owned());
    }
    if key.len() > 80 {
        return Some(format!(
            "the stack key {key:?} is {} bytes long; at most 80 are allowed",
            key.len()
        ));
    }
    key.chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
        .map(|c| {
            format!(
                "the stack key {key:?} contains {c:?}; only letters, digits, `_` and `-` are allowed"
            )
        })
}

/// A registered stack, as Buildkite describes it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Stack {
    /// The stack's uuid.
    pub id: String,
    /// The organization's uuid.
    #[serde(default)]
    pub organization_uuid: String,
    /// The stack key every later call names.
    pub key: String,
    /// What kind of stack it is.
    #[serde(rename = "type")]
    pub stack_type: StackType,
    /// The queue it serves.
    pub cluster_queue_key: String,
    /// The metadata it registered with.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// When the stack last polled, if ever.
    #[serde(default)]
    pub last_connected_on: Option<jiff::Timestamp>,
    /// `connected`, `disconnected` or `lost`.
    pub state: StackState,
}

/// The answer to a registration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registered {
    /// The stack.
    pub stack: Stack,
    /// `true` when the key was new (HTTP 201), `false` when an existing stack was updated.
    pub created: bool,
}

schema_enum! {
    /// Whether a stack is polling.
    StackState ("stack state", from_api) {
        Connected => "connected", "It polled recently.";
        Disconnected => "disconnected", "It has not polled for minutes.";
        Lost => "lost", "It has not polled for long.";
    }
}

schema_enum! {
    /// A job's state as `get-states` reports it (lower case, unlike GraphQL's).
    StacksJobState ("job state", from_api) {
        Pending => "pending", "Not yet ready to run.";
        Waiting => "waiting", "Waiting on a dependency.";
        WaitingFailed => "waiting_failed", "A dependency failed.";
        Blocked => "blocked", "Behind a block step.";
        BlockedFailed => "blocked_failed", "Behind a failed block step.";
        Unblocked => "unblocked", "Its block step was released.";
        UnblockedFailed => "unblocked_failed", "Its failed block step was released.";
        Limiting => "limiting", "A concurrency limit is being applied.";
        Limited => "limited", "Held back by a concurrency limit.";
        Scheduled => "scheduled", "Waiting for an agent or a stack.";
        Reserved => "reserved", "Reserved by a stack.";
        Assigned => "assigned", "Given to an agent.";
        Accepted => "accepted", "Accepted by an agent.";
        Running => "running", "Running on an agent.";
        Finished => "finished", "Ran to an end.";
        Failed => "failed", "Failed.";
        Canceling => "canceling", "Being cancelled.";
        Canceled => "canceled", "Cancelled.";
        TimingOut => "timing_out", "Being timed out.";
        TimedOut => "timed_out", "Timed out.";
        Skipped => "skipped", "Skipped.";
        Broken => "broken", "Could not run.";
        Expired => "expired", "No agent took it in time.";
    }
}

impl StacksJobState {
    /// Whether an agent holds the job (from `assigned` until it ends), so the stack must
    /// leave it to the agent.
    pub fn agent_is_active(&self) -> bool {
        matches!(
            self,
            StacksJobState::Assigned
                | StacksJobState::Accepted
                | StacksJobState::Running
                | StacksJobState::Canceling
                | StacksJobState::TimingOut
        )
    }

    /// Whether the job is still waiting for a stack to start it (`scheduled` or `reserved`).
    pub fn is_waiting_for_a_stack(&self) -> bool {
        matches!(self, StacksJobState::Scheduled | StacksJobState::Reserved)
    }
}

/// `GET /stacks/:key/scheduled-jobs`: one page of a queue's scheduled jobs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScheduledJobsQuery {
    /// The queue to list.
    pub queue_key: String,
    /// Jobs per page (at most [`MAX_PAGE_SIZE`]); `None` lets Buildkite choose.
    pub limit: Option<u32>,
    /// The cursor: the previous page's [`PageInfo::end_cursor`].
    pub after: Option<String>,
}

impl ScheduledJobsQuery {
    /// The first page of `queue_key`, of Buildkite's default size.
    pub fn first_page(queue_key: impl Into<String>) -> Self {
        ScheduledJobsQuery {
            queue_key: queue_key.into(),
            limit: None,
            after: None,
        }
    }

    /// The same query with pages of `limit` jobs.
    #[must_use]
    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = Some(limit);
        self
    }

    /// The page after `cursor`.
    #[must_use]
    pub fn after(mut self, cursor: impl Into<String>) -> Self {
        self.after = Some(cursor.into());
        self
    }
}

/// A page of scheduled jobs: oldest first, reserved jobs left out. Not a snapshot: jobs can
/// appear behind the cursor, so the last page does not prove that nothing else waits.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct ScheduledJobsPage {
    /// The jobs.
    pub jobs: Vec<StackJob>,
    /// Where the page ends.
    pub page_info: PageInfo,
    /// The queue, and whether dispatch is paused on it.
    pub cluster_queue: ClusterQueue,
}

/// A scheduled job as the listing describes it: enough to decide and order, not to run (its
/// command and environment come from [`StacksClient::job`](super::StacksClient::job)).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct StackJob {
    /// The job's uuid.
    pub id: String,
    /// Higher runs first.
    #[serde(default)]
    pub priority: i64,
    /// The agent query rules, each `key=value`.
    #[serde(default)]
    pub agent_query_rules: Vec<String>,
    /// When the job became scheduled.
    pub scheduled_at: jiff::Timestamp,
    /// Its pipeline (fields may be null).
    #[serde(default)]
    pub pipeline: JobPipeline,
    /// Its build (fields may be null).
    #[serde(default)]
    pub build: JobBuild,
    /// Its step (fields may be null).
    #[serde(default)]
    pub step: JobStep,
}

/// A listed job's pipeline.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct JobPipeline {
    /// The pipeline slug.
    #[serde(default)]
    pub slug: Option<String>,
    /// The pipeline uuid.
    #[serde(default)]
    pub uuid: Option<String>,
}

/// A listed job's build.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct JobBuild {
    /// The build number.
    #[serde(default)]
    pub number: Option<u64>,
    /// The branch.
    #[serde(default)]
    pub branch: Option<String>,
    /// The build uuid.
    #[serde(default)]
    pub uuid: Option<String>,
}

/// A listed job's step.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct JobStep {
    /// The step key, when the pipeline gave one.
    #[serde(default)]
    pub key: Option<String>,
}

/// Where a page ends.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct PageInfo {
    /// Whether a next page existed when this one was read.
    #[serde(default)]
    pub has_next_page: bool,
    /// The cursor of the next page.
    #[serde(default)]
    pub end_cursor: Option<String>,
}

/// The listed queue.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct ClusterQueue {
    /// The queue's id.
    #[serde(default)]
    pub id: String,
    /// Whether dispatch is paused: a stack must then start no new job. (The published Go
    /// client reads this as `paused`; both spellings are accepted.)
    #[serde(default, alias = "paused")]
    pub dispatch_paused: bool,
}

/// What a reservation got: run only what is in `reserved`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct Reservation {
    /// Reserved (or extended) for this stack.
    #[serde(default)]
    pub reserved: Vec<String>,
    /// Not reserved: taken by another stack or an agent, or no longer scheduled.
    #[serde(default)]
    pub not_reserved: Vec<String>,
}

/// A job's command and environment, which only this call returns.
#[derive(Clone, PartialEq, Eq, Deserialize)]
pub struct JobDetails {
    /// The job's uuid.
    pub id: String,
    /// The job's environment (`BUILDKITE_PLUGINS` among it). It can hold secrets of the
    /// pipeline, so `Debug` prints only its keys.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The step's command.
    #[serde(default)]
    pub command: String,
}

impl fmt::Debug for JobDetails {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobDetails")
            .field("id", &self.id)
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .field("command", &format_args!("{} bytes", self.command.len()))
            .finish()
    }
}

/// `POST /stacks/:key/jobs/:id/finish`: ends a job that no agent will run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FinishJob {
    /// The exit status to record: `-1` (the default) for a job the stack could not run,
    /// which retry rules on `exit_status: -1` / `signal_reason: stack_error` match; `0` for
    /// success. Always sent.
    pub exit_status: i32,
    /// Why, shown on the job's page: at most [`MAX_FINISH_DETAIL`] bytes (longer text is
    /// cropped when the request is sent).
    pub detail: String,
}

impl FinishJob {
    /// A job the stack could not run (`exit_status: -1`), with why.
    pub fn failed(detail: impl Into<String>) -> Self {
        FinishJob {
            exit_status: -1,
            detail: detail.into(),
        }
    }
}

/// One message for a job's timeline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Notification {
    /// The job.
    pub job_uuid: String,
    /// The message: non-empty, at most [`MAX_NOTIFICATION_DETAIL`] bytes (cropped when sent).
    pub detail: String,
    /// When it happened (default: when Buildkite receives it); never in the future.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<jiff::Timestamp>,
}

/// A notification batch's partial failure: the entries at `indexes` were refused because of
/// `error`; every other entry was stored.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct NotificationError {
    /// Why, e.g. `job stack notification count exceeded`.
    pub error: String,
    /// The 0-based positions in the request.
    #[serde(default)]
    pub indexes: Vec<usize>,
}

/// Tokens that let an agent register for one job only.
#[derive(Clone, Debug, Default)]
pub struct JobAcquisitionTokens {
    /// The tokens, by job.
    pub tokens: Vec<JobAcquisitionToken>,
    /// Jobs no token was issued for (not reserved by this stack): start nothing for them.
    pub not_issued: Vec<String>,
}

/// A token valid for registering an agent for one job (`bkjat_…`).
#[derive(Clone, Debug, Deserialize)]
pub struct JobAcquisitionToken {
    /// The job it is valid for.
    pub job_uuid: String,
    /// The token. `Debug` prints it redacted.
    #[serde(rename = "job_acquisition_token")]
    pub token: SecretString,
    /// When it expires (no later than the job's reservation).
    pub expires_at: jiff::Timestamp,
}

/// What `GET /token` says about the agent token.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct TokenIdentity {
    /// The token's uuid.
    #[serde(default)]
    pub uuid: Option<String>,
    /// Its description.
    #[serde(default)]
    pub description: Option<String>,
    /// Its kind.
    #[serde(default)]
    pub token_type: Option<String>,
    /// The organization slug.
    #[serde(default)]
    pub organization_slug: Option<String>,
    /// The organization uuid.
    #[serde(default)]
    pub organization_uuid: Option<String>,
    /// The cluster the token belongs to; empty for an unclustered token, which the Stacks
    /// API refuses.
    #[serde(default)]
    pub cluster_uuid: Option<String>,
    /// The cluster's name.
    #[serde(default)]
    pub cluster_name: Option<String>,
}

impl TokenIdentity {
    /// Whether the token belongs to a cluster (the Stacks API accepts no other).
    pub fn is_clustered(&self) -> bool {
        self.cluster_uuid
            .as_deref()
            .is_some_and(|uuid| !uuid.trim().is_empty())
    }
}

/// `text` cut to at most `max` bytes at a character boundary, ending in `suffix` when cut.
pub(crate) fn crop(text: &str, max: usize, suffix: &str) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max.saturating_sub(suffix.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{suffix}", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crop_keeps_short_text_and_cuts_long_text_at_a_character_boundary() {
        assert_eq!(crop("short", 10, "…"), "short");
        let cut = crop(&"é".repeat(10), 9, "…");
        assert!(cut.len() <= 9, "{cut}");
        assert_eq!(cut, "ééé…");
    }

    #[test]
    fn stack_keys_are_checked_as_buildkite_documents_them() {
        assert_eq!(stack_key_problem("jobify-prod_1"), None);
        assert!(
            stack_key_problem("jobify.prod")
                .expect("refused")
                .contains("'.'")
        );
        assert!(
            stack_key_problem(&"k".repeat(81))
                .expect("refused")
                .contains("81 bytes")
        );
        assert!(stack_key_problem("").is_some());
    }

    #[test]
    fn registration_problems_name_each_limit() {
        let mut stack = RegisterStack::custom("jobify", " ");
        stack.metadata.insert("k".repeat(65), "v".into());
        let problems = stack.problems();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("_default"));
        assert!(problems[1].contains("longer than 64"));
    }

    #[test]
    fn unknown_states_are_kept_and_agent_states_are_recognised() {
        let state: StacksJobState = serde_json::from_str("\"parked\"").expect("decodes");
        assert_eq!(state, StacksJobState::Unknown("parked".into()));
        assert_eq!(state.to_string(), "parked");
        assert!(StacksJobState::from_api("timing_out").agent_is_active());
        assert!(StacksJobState::from_api("reserved").is_waiting_for_a_stack());
        assert!(!StacksJobState::from_api("canceled").agent_is_active());
    }
}
