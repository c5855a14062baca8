//! How to start a [`super::StacksSim`]: the organization, its cluster, its tokens, the
//! documented limits (each adjustable) and the choices the documentation leaves open.

use std::time::Duration;

use secrecy::SecretString;

use crate::fault::FaultConfig;

/// Requests per second each rate-limit scope admits, per stack, in a 1-second sliding window.
/// `None` leaves a scope unlimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimits {
    /// `list-scheduled-jobs` (`GET .../scheduled-jobs`).
    pub list_scheduled_jobs: Option<u32>,
    /// `batch-reserve` (`PUT .../scheduled-jobs/batch-reserve`).
    pub batch_reserve: Option<u32>,
    /// `show-job` (`GET .../jobs/:id`).
    pub show_job: Option<u32>,
    /// `batch-load-job-states` (`POST .../jobs/get-states`).
    pub batch_load_job_states: Option<u32>,
    /// `finish-job` (`POST .../jobs/:id/finish`).
    pub finish_job: Option<u32>,
    /// `stack-notification` (`POST .../notifications`).
    pub stack_notification: Option<u32>,
    /// `default` (deregister).
    pub default: Option<u32>,
}

impl Default for RateLimits {
    /// The limits Buildkite documents.
    fn default() -> Self {
        RateLimits {
            list_scheduled_jobs: Some(10),
            batch_reserve: Some(10),
            show_job: Some(1000),
            batch_load_job_states: Some(20),
            finish_job: Some(100),
            stack_notification: Some(200),
            default: Some(10),
        }
    }
}

impl RateLimits {
    /// No scope limited.
    pub fn unlimited() -> Self {
        RateLimits {
            list_scheduled_jobs: None,
            batch_reserve: None,
            show_job: None,
            batch_load_job_states: None,
            finish_job: None,
            stack_notification: None,
            default: None,
        }
    }

    /// The limit of `scope` (a documented scope string).
    pub(crate) fn of(&self, scope: &str) -> Option<u32> {
        match scope {
            "list-scheduled-jobs" => self.list_scheduled_jobs,
            "batch-reserve" => self.batch_reserve,
            "show-job" => self.show_job,
            "batch-load-job-states" => self.batch_load_job_states,
            "finish-job" => self.finish_job,
            "stack-notification" => self.stack_notification,
            _ => self.default,
        }
    }
}

/// What to do with a reservation expiry or token lifetime above the documented maximum
/// (3600 s): the documentation states the maximum but not the answer past it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OverMaximum {
    /// Use the maximum instead.
    #[default]
    Clamp,
    /// Answer 400.
    Reject,
}

/// How to start a [`super::StacksSim`].
#[derive(Clone, Debug)]
pub struct StacksSimConfig {
    /// The organization's slug (`GET /v3/token`).
    pub organization: String,
    /// The cluster's name (`GET /v3/token`).
    pub cluster_name: String,
    /// The cluster agent token (`bkct_...`) the Stacks API accepts.
    pub agent_token: SecretString,
    /// Unclustered agent tokens: `GET /v3/token` answers them with an empty `cluster_uuid`,
    /// every Stacks endpoint with 401.
    pub unclustered_agent_tokens: Vec<SecretString>,
    /// The cluster's default queue; `_default` and `__default__` both name it.
    pub default_queue: String,
    /// Further self-hosted queues.
    pub queues: Vec<String>,
    /// Per-stack, per-scope limits.
    pub rate_limits: RateLimits,
    /// Faults injected into Stacks API requests (`POST /v3/stacks/...` and friends, and
    /// `GET /v3/metrics`).
    pub faults: FaultConfig,
    /// How many stacks may be registered at once before register answers 403.
    pub max_stacks: usize,
    /// How long a stack (and its queue) stays connected without a scheduled-jobs poll.
    pub disconnected_after: Duration,
    /// The page size of a scheduled-jobs list without `limit` (undocumented).
    pub default_list_limit: usize,
    /// Reservation expiry or token lifetime over 3600 s: clamp or 400.
    pub over_maximum: OverMaximum,
    /// How far in the future a notification's `timestamp` may be before it is refused, to
    /// absorb the skew between the client's clock and the simulator's.
    pub notification_clock_skew: Duration,
    /// What `GET /v3/metrics` suggests in `Buildkite-Agent-Metrics-Poll-Duration`.
    pub metrics_poll_duration: Duration,
}

impl StacksSimConfig {
    /// Organization `acme`, cluster `cluster`, the documented limits, default queue `default`,
    /// no faults, a 15 s metrics poll, accepting `agent_token` as the cluster agent token.
    pub fn new(agent_token: &str) -> Self {
        StacksSimConfig {
            organization: "acme".to_owned(),
            cluster_name: "cluster".to_owned(),
            agent_token: SecretString::from(agent_token),
            unclustered_agent_tokens: Vec::new(),
            default_queue: "default".to_owned(),
            queues: Vec::new(),
            rate_limits: RateLimits::default(),
            faults: FaultConfig::none(),
            max_stacks: 100,
            disconnected_after: Duration::from_secs(300),
            default_list_limit: 100,
            over_maximum: OverMaximum::Clamp,
            notification_clock_skew: Duration::from_secs(5),
            metrics_poll_duration: Duration::from_secs(15),
        }
    }

    /// Adds self-hosted queue `key`.
    #[must_use]
    pub fn with_queue(mut self, key: &str) -> Self {
        self.queues.push(key.to_owned());
        self
    }
}
