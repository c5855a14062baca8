//! `[buildkite]`: how to reach Buildkite, what to watch, and how hard to poll.
//!
//! The tokens are references the binary's loader resolves (an environment variable, a file):
//! the section is generic over their type `T`, so this crate never reads a secret, and
//! [`Validate::validate`] checks everything but the references.

mod stacks;

use std::time::Duration;

use jobify_core::config::{ConfigProblem, Validate};
use serde::Deserialize;
use url::Url;

pub use stacks::{DEFAULT_QUEUE, Source, StacksConfig};

/// The largest page Buildkite's GraphQL API serves.
pub const MAX_PAGE_SIZE: u32 = 500;

/// The shortest `poll_interval`. Even this is paced: requests never spend more than
/// `budget_share` of the organization's budget (at 0.5, idle polls stay 150 ms apart).
const MIN_POLL_INTERVAL: Duration = Duration::from_millis(100);

/// The shortest `poll_interval` of the Stacks source, as agent-stack-k8s floors its own.
const MIN_STACKS_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// How the loader refers to a token it reads later.
pub trait TokenRef {
    /// The reference to the environment variable `var`: how `api_token` defaults to
    /// `BUILDKITE_API_TOKEN`.
    fn env(var: &str) -> Self;
}

/// `[buildkite]`, with token references of type `T`.
#[derive(Clone, Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    default,
    bound(deserialize = "T: Deserialize<'de> + TokenRef")
)]
pub struct BuildkiteConfig<T> {
    /// Where scheduled jobs come from: `graphql` (a user API token) or `stacks` (only a
    /// cluster agent token).
    pub source: Source,
    /// API access token with GraphQL scope (polling, cancel, annotate); unused by the
    /// `stacks` source.
    pub api_token: T,
    /// Agent token: the Stacks source's only credential, and `/v3/metrics` (queue gauges).
    /// `None`: use `BUILDKITE_AGENT_TOKEN` when it is set, otherwise (GraphQL only) do
    /// without the queue gauges.
    pub agent_token: Option<T>,
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
    /// `[buildkite.stacks]`: the Stacks source's settings.
    pub stacks: StacksConfig,
}

impl<T: TokenRef> Default for BuildkiteConfig<T> {
    fn default() -> Self {
        BuildkiteConfig {
            source: Source::default(),
            api_token: T::env("BUILDKITE_API_TOKEN"),
            agent_token: None,
            graphql_url: default_url(buildkite_api::DEFAULT_GRAPHQL_URL),
            agent_url: default_url(buildkite_api::DEFAULT_AGENT_URL),
            pipelines: Vec::new(),
            cluster: None,
            poll_interval: Duration::from_secs(5),
            page_size: 100,
            budget_share: 0.5,
            request_timeout: Duration::from_secs(15),
            stacks: StacksConfig::default(),
        }
    }
}

fn default_url(url: &str) -> Url {
    match Url::parse(url) {
        Ok(url) => url,
        // The callers pass the client's URL constants; a typo there fails every test.
        Err(err) => panic!("built-in URL {url} is invalid: {err}"),
    }
}

/// Checks what serde cannot (ranges and consistency), but not the token references, which are
/// the loader's.
impl<T> Validate for BuildkiteConfig<T> {
    fn validate(&self) -> Vec<ConfigProblem> {
        let mut errors = Vec::new();
        if self.poll_interval < MIN_POLL_INTERVAL {
            errors.push(ConfigProblem::new(
                "buildkite.poll_interval",
                format!(
                    "must be at least {}: an idle poll costs 5 rate-limit points, and faster \
                     polling would spend the organization's budget on nothing",
                    humantime::format_duration(MIN_POLL_INTERVAL)
                ),
            ));
        }
        if !(1..=MAX_PAGE_SIZE).contains(&self.page_size) {
            errors.push(ConfigProblem::new(
                "buildkite.page_size",
                format!(
                    "must be between 1 and {MAX_PAGE_SIZE} (Buildkite's largest page), not {}",
                    self.page_size
                ),
            ));
        }
        if !(self.budget_share > 0.0 && self.budget_share <= 1.0) {
            errors.push(ConfigProblem::new(
                "buildkite.budget_share",
                format!(
                    "must be in (0, 1]: it is the share of the organization's rate-limit budget \
                     jobify may spend; got {}",
                    self.budget_share
                ),
            ));
        }
        if self.request_timeout.is_zero() {
            errors.push(ConfigProblem::new(
                "buildkite.request_timeout",
                "must be more than 0s",
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, pipeline) in self.pipelines.iter().enumerate() {
            let key = format!("buildkite.pipelines[{i}]");
            if pipeline.trim().is_empty() {
                errors.push(ConfigProblem::new(key, "pipeline slug is empty"));
            } else if !seen.insert(pipeline.as_str()) {
                errors.push(ConfigProblem::new(
                    key,
                    format!("pipeline `{pipeline}` is listed twice"),
                ));
            }
        }
        if self.source == Source::Stacks {
            if self.poll_interval < MIN_STACKS_POLL_INTERVAL {
                errors.push(ConfigProblem::new(
                    "buildkite.poll_interval",
                    format!(
                        "must be at least {} with `source = \"stacks\"`: the Stacks API \
                         allows each stack 10 listings a second, and a sweep may read several \
                         pages",
                        humantime::format_duration(MIN_STACKS_POLL_INTERVAL)
                    ),
                ));
            }
            if self.cluster.is_some() {
                errors.push(ConfigProblem::new(
                    "buildkite.cluster",
                    "is for the GraphQL source: with `source = \"stacks\"` jobify serves the \
                     cluster the agent token belongs to; remove `cluster`",
                ));
            }
            errors.extend(self.stacks.validate());
        }
        for (key, url) in [
            ("buildkite.graphql_url", &self.graphql_url),
            ("buildkite.agent_url", &self.agent_url),
        ] {
            if !matches!(url.scheme(), "http" | "https") {
                errors.push(ConfigProblem::new(
                    key,
                    format!("must be an http(s) URL, not `{url}`"),
                ));
            }
        }
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reference as a loader might spell it.
    #[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
    struct Env(String);

    impl TokenRef for Env {
        fn env(var: &str) -> Self {
            Env(var.to_owned())
        }
    }

    fn parse(text: &str) -> BuildkiteConfig<Env> {
        toml::from_str(text).expect("parses")
    }

    #[test]
    fn an_empty_section_polls_graphql_every_five_seconds_with_the_api_token_from_the_environment() {
        let config = parse("");
        assert_eq!(config.api_token, Env("BUILDKITE_API_TOKEN".into()));
        assert_eq!(
            config.graphql_url.as_str(),
            "https://graphql.buildkite.com/v1"
        );
        assert_eq!(config.agent_url.as_str(), "https://agent.buildkite.com/v3");
        assert_eq!(config.poll_interval, Duration::from_secs(5));
        assert_eq!(config.page_size, 100);
        assert!(config.validate().is_empty());
    }

    #[test]
    fn every_problem_is_reported_at_its_key() {
        let config = parse(
            r#"
            poll_interval = "10ms"
            page_size = 501
            budget_share = 1.5
            request_timeout = "0s"
            pipelines = ["app", " ", "app"]
            graphql_url = "ftp://example.com/"
            "#,
        );
        let keys: Vec<String> = config.validate().into_iter().map(|e| e.key).collect();
        assert_eq!(
            keys,
            [
                "buildkite.poll_interval",
                "buildkite.page_size",
                "buildkite.budget_share",
                "buildkite.request_timeout",
                "buildkite.pipelines[1]",
                "buildkite.pipelines[2]",
                "buildkite.graphql_url",
            ]
        );
    }

    #[test]
    fn the_stacks_source_has_its_own_section_and_checks() {
        let config = parse(
            r#"
            source = "stacks"
            poll_interval = "500ms"
            cluster = "c"
            [stacks]
            stack_key = "my stack"
            page_size = 1001
            reservation_expiry = "2h"
            token_lifetime = "0s"
            "#,
        );
        assert_eq!(config.source, Source::Stacks);
        let keys: Vec<String> = config.validate().into_iter().map(|e| e.key).collect();
        assert_eq!(
            keys,
            [
                "buildkite.poll_interval",
                "buildkite.cluster",
                "buildkite.stacks.stack_key",
                "buildkite.stacks.page_size",
                "buildkite.stacks.reservation_expiry",
                "buildkite.stacks.token_lifetime",
            ]
        );
        let defaults = parse("source = \"stacks\"");
        assert!(defaults.validate().is_empty());
        let settings = defaults.stacks.settings("jobify-prod", Vec::new(), &[]);
        assert_eq!(settings.stack_key, "jobify-prod");
        assert_eq!(settings.queues, ["_default"]);
        assert!(settings.job_tokens, "job tokens are on by default");
        assert_eq!(settings.page_size, 1000);
    }

    #[test]
    fn an_unknown_key_is_refused() {
        let error =
            toml::from_str::<BuildkiteConfig<Env>>("page_sise = 10").expect_err("unknown key");
        assert!(error.to_string().contains("page_sise"), "{error}");
    }
}
