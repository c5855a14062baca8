//! `[buildkite]`: how to reach Buildkite, what to watch, and how hard to poll.

use std::time::Duration;

use serde::Deserialize;
use url::Url;

use super::secret::SecretRef;
use super::source::KeyPath;
use super::validate::Problems;

/// The largest page Buildkite's GraphQL API serves.
pub const MAX_PAGE_SIZE: u32 = 500;

/// The shortest `poll_interval`. Even this is paced: requests never spend more than
/// `budget_share` of the organization's budget (at 0.5, idle polls stay 150 ms apart).
const MIN_POLL_INTERVAL: Duration = Duration::from_millis(100);

/// `[buildkite]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BuildkiteConfig {
    /// API access token with GraphQL scope (polling, cancel, annotate).
    pub api_token: SecretRef,
    /// Agent token for `/v3/metrics` (queue gauges). `None`: use `BUILDKITE_AGENT_TOKEN`
    /// when it is set, otherwise do without the queue gauges.
    pub agent_token: Option<SecretRef>,
    /// GraphQL endpoint.
    pub graphql_url: Url,
    /// Agent REST API base (`/v3`).
    pub agent_url: Url,
    /// Pipeline slugs to watch; empty watches every pipeline of the organization.
    pub pipelines: Vec<String>,
    /// Only jobs of this cluster (its GraphQL id or uuid); unset for unclustered agents.
    pub cluster: Option<String>,
    /// How often to poll for scheduled jobs.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// Jobs fetched per GraphQL page (1..=500).
    pub page_size: u32,
    /// Share of the organization's GraphQL rate-limit budget jobify may spend, in (0, 1].
    pub budget_share: f64,
    /// Timeout of one HTTP request to Buildkite.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
}

impl Default for BuildkiteConfig {
    fn default() -> Self {
        BuildkiteConfig {
            api_token: SecretRef::env("BUILDKITE_API_TOKEN"),
            agent_token: None,
            graphql_url: default_url("https://graphql.buildkite.com/v1"),
            agent_url: default_url("https://agent.buildkite.com/v3"),
            pipelines: Vec::new(),
            cluster: None,
            poll_interval: Duration::from_secs(5),
            page_size: 100,
            budget_share: 0.5,
            request_timeout: Duration::from_secs(15),
        }
    }
}

fn default_url(url: &str) -> Url {
    match Url::parse(url) {
        Ok(url) => url,
        // The callers pass literals that are valid URLs; a typo here fails every test.
        Err(err) => panic!("built-in URL {url} is invalid: {err}"),
    }
}

impl BuildkiteConfig {
    /// The agent token to use for `/v3/metrics`, if any: the configured one, or
    /// `BUILDKITE_AGENT_TOKEN` when set.
    pub fn agent_token_ref(&self) -> Option<SecretRef> {
        match &self.agent_token {
            Some(reference) => Some(reference.clone()),
            None => {
                let default = SecretRef::env("BUILDKITE_AGENT_TOKEN");
                default.is_available().then_some(default)
            }
        }
    }

    /// Checks what serde cannot: ranges and consistency.
    pub fn validate(&self, at: &KeyPath, problems: &mut Problems) {
        if self.poll_interval < MIN_POLL_INTERVAL {
            problems.push(
                at.key("poll_interval"),
                format!(
                    "must be at least {}: an idle poll costs 5 rate-limit points, and faster \
                     polling would spend the organization's budget on nothing",
                    humantime::format_duration(MIN_POLL_INTERVAL)
                ),
            );
        }
        if !(1..=MAX_PAGE_SIZE).contains(&self.page_size) {
            problems.push(
                at.key("page_size"),
                format!(
                    "must be between 1 and {MAX_PAGE_SIZE} (Buildkite's largest page), not {}",
                    self.page_size
                ),
            );
        }
        if !(self.budget_share > 0.0 && self.budget_share <= 1.0) {
            problems.push(
                at.key("budget_share"),
                format!(
                    "must be in (0, 1]: it is the share of the organization's rate-limit budget \
                     jobify may spend; got {}",
                    self.budget_share
                ),
            );
        }
        if self.request_timeout.is_zero() {
            problems.push(at.key("request_timeout"), "must be more than 0s");
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, pipeline) in self.pipelines.iter().enumerate() {
            if pipeline.trim().is_empty() {
                problems.push(at.key("pipelines").index(i), "pipeline slug is empty");
            } else if !seen.insert(pipeline.as_str()) {
                problems.push(
                    at.key("pipelines").index(i),
                    format!("pipeline `{pipeline}` is listed twice"),
                );
            }
        }
        for (key, url) in [
            ("graphql_url", &self.graphql_url),
            ("agent_url", &self.agent_url),
        ] {
            if !matches!(url.scheme(), "http" | "https") {
                problems.push(at.key(key), format!("must be an http(s) URL, not `{url}`"));
            }
        }
        for (key, reference) in [
            ("api_token", Some(&self.api_token)),
            ("agent_token", self.agent_token.as_ref()),
        ] {
            match reference {
                Some(SecretRef::Env(var)) if var.trim().is_empty() => {
                    problems.push(at.key(key), "the environment variable name is empty")
                }
                Some(SecretRef::File(path)) if path.as_os_str().is_empty() => {
                    problems.push(at.key(key), "the file path is empty")
                }
                _ => {}
            }
        }
    }
}
