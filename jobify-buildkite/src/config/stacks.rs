//! `[buildkite.stacks]`: the Stacks API source's own settings.

use std::time::Duration;

use buildkite_api::stacks::{MAX_PAGE_SIZE, MAX_RESERVATION_EXPIRY, stack_key_problem};
use serde::Deserialize;

use crate::stacks::StacksSettings;
use jobify_core::config::{ConfigProblem, Validate};

/// Where jobify reads scheduled jobs from: `[buildkite] source`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Buildkite's GraphQL API, with a user API token (`buildkite.api_token`).
    #[default]
    Graphql,
    /// The agent API's Stacks endpoints, with only a cluster agent token
    /// (`buildkite.agent_token`).
    Stacks,
}

impl Source {
    /// The spelling in `jobify.toml`.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Graphql => "graphql",
            Source::Stacks => "stacks",
        }
    }
}

/// `[buildkite.stacks]`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StacksConfig {
    /// The stack's key, unique in the organization; default: the controller id.
    pub stack_key: Option<String>,
    /// Jobs per listing page (1..=1000).
    pub page_size: u32,
    /// How long a reservation lasts before it is extended (1 s to 1 h). A job jobify has
    /// reserved is hidden from every other stack for this long if jobify stops without
    /// launching it.
    #[serde(with = "humantime_serde")]
    pub reservation_expiry: Duration,
    /// Whether each job's pod gets a job acquisition token valid for that job alone instead
    /// of the cluster's agent token.
    pub job_tokens: bool,
    /// How long a job acquisition token is valid (Buildkite's default of 15 minutes when
    /// unset; never past the job's reservation).
    #[serde(default, with = "humantime_serde")]
    pub token_lifetime: Option<Duration>,
}

impl Default for StacksConfig {
    fn default() -> Self {
        StacksConfig {
            stack_key: None,
            page_size: MAX_PAGE_SIZE,
            reservation_expiry: Duration::from_secs(300),
            job_tokens: true,
            token_lifetime: None,
        }
    }
}

/// The queue the Stacks API calls the cluster's default queue.
pub const DEFAULT_QUEUE: &str = "_default";

impl Validate for StacksConfig {
    fn validate(&self) -> Vec<ConfigProblem> {
        let mut errors = Vec::new();
        if let Some(problem) = self.stack_key.as_deref().and_then(stack_key_problem) {
            errors.push(ConfigProblem::new("buildkite.stacks.stack_key", problem));
        }
        if !(1..=MAX_PAGE_SIZE).contains(&self.page_size) {
            errors.push(ConfigProblem::new(
                "buildkite.stacks.page_size",
                format!(
                    "must be between 1 and {MAX_PAGE_SIZE} (the Stacks API's largest page), not {}",
                    self.page_size
                ),
            ));
        }
        let within = |d: Duration| d >= Duration::from_secs(1) && d <= MAX_RESERVATION_EXPIRY;
        if !within(self.reservation_expiry) {
            errors.push(ConfigProblem::new(
                "buildkite.stacks.reservation_expiry",
                format!(
                    "must be between 1s and 1h (the Stacks API's longest reservation), not {}",
                    humantime::format_duration(self.reservation_expiry)
                ),
            ));
        }
        if let Some(lifetime) = self.token_lifetime
            && !within(lifetime)
        {
            errors.push(ConfigProblem::new(
                "buildkite.stacks.token_lifetime",
                format!(
                    "must be between 1s and 1h, not {}",
                    humantime::format_duration(lifetime)
                ),
            ));
        }
        errors
    }
}

impl StacksConfig {
    /// What the monitor needs: the stack key (`controller_id` unless set), the served
    /// `queues` (the cluster's default queue when none is named) and the watched
    /// `pipelines` (all when empty).
    pub fn settings(
        &self,
        controller_id: &str,
        queues: Vec<String>,
        pipelines: &[String],
    ) -> StacksSettings {
        StacksSettings {
            stack_key: self
                .stack_key
                .clone()
                .unwrap_or_else(|| controller_id.to_owned()),
            queues: if queues.is_empty() {
                vec![DEFAULT_QUEUE.to_owned()]
            } else {
                queues
            },
            pipelines: pipelines.iter().cloned().collect(),
            page_size: self.page_size,
            reservation_expiry: self.reservation_expiry,
            job_tokens: self.job_tokens,
            token_lifetime: self.token_lifetime,
        }
    }
}
