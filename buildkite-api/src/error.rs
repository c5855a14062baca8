//! The one error type of this crate: what went wrong talking to Buildkite.

use std::time::Duration;

use crate::rate_limit::RateLimit;

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A failure talking to Buildkite. No variant carries or prints a token.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The client could not be built (bad URL, invalid user agent, TLS setup).
    #[error("cannot build the Buildkite client: {reason}")]
    Build {
        /// What was wrong.
        reason: String,
        /// The underlying error, when there is one.
        #[source]
        source: Option<reqwest::Error>,
    },

    /// No rustls crypto provider is installed; reqwest needs one to build any client.
    #[error(
        "no rustls crypto provider is installed: call \
         `rustls::crypto::ring::default_provider().install_default()` once at start-up, \
         before building the Buildkite client"
    )]
    NoCryptoProvider,

    /// An operation needs a token the client was built without.
    #[error("the Buildkite {which} token is not configured; pass it to the client builder")]
    MissingToken {
        /// Which token: `GraphQL API` or `agent`.
        which: &'static str,
    },

    /// The request did not complete within the configured timeout.
    #[error("{endpoint} did not answer within {timeout:?}")]
    Timeout {
        /// The URL that was called.
        endpoint: String,
        /// The configured timeout.
        timeout: Duration,
        /// The underlying error.
        #[source]
        source: reqwest::Error,
    },

    /// The request could not be sent or the response could not be read.
    #[error("request to {endpoint} failed: {source}")]
    Transport {
        /// The URL that was called.
        endpoint: String,
        /// The underlying error.
        #[source]
        source: reqwest::Error,
    },

    /// Buildkite rejected the token (HTTP 401 or 403).
    #[error("{endpoint} rejected the token (HTTP {status}): {hint}")]
    Unauthorized {
        /// The URL that was called.
        endpoint: String,
        /// 401 (unknown or revoked token) or 403 (token lacks a scope or access).
        status: u16,
        /// What to check, e.g. the token's GraphQL scope.
        hint: &'static str,
    },

    /// Buildkite rate-limited the request (HTTP 429), or a previous 429 asked us to wait.
    #[error("{endpoint} is rate limited{}", wait_hint(*retry_after))]
    RateLimited {
        /// The URL that was called.
        endpoint: String,
        /// How long to wait before the next request (`Retry-After`, else `RateLimit-Reset`).
        retry_after: Option<Duration>,
        /// The rate-limit headers of the 429 response, if any.
        rate_limit: Option<RateLimit>,
    },

    /// Buildkite answered with an unexpected HTTP status.
    #[error("{endpoint} answered HTTP {status}: {body}")]
    Status {
        /// The URL that was called.
        endpoint: String,
        /// The HTTP status code.
        status: u16,
        /// The start of the response body (at most 512 bytes).
        body: String,
    },

    /// Buildkite answered HTTP 200 with GraphQL `errors`.
    #[error("{operation} returned GraphQL errors: {}", summary(errors))]
    GraphQl {
        /// The operation name, e.g. `ScheduledJobs`.
        operation: &'static str,
        /// The errors as Buildkite sent them.
        errors: Vec<graphql_client::Error>,
        /// The partial `data` that came with the errors, when present.
        partial_data: Option<serde_json::Value>,
    },

    /// The response body did not have the expected shape.
    #[error("cannot decode the {operation} response at `{path}`: {source}")]
    Decode {
        /// The operation name, or `agent metrics`.
        operation: &'static str,
        /// Where in the JSON document decoding failed, e.g. `data.organization.jobs.count`.
        path: String,
        /// The underlying error.
        #[source]
        source: serde_json::Error,
    },

    /// A field the client needs was null or absent in an otherwise valid response.
    #[error("{operation} response lacks `{field}`")]
    MissingField {
        /// The operation name.
        operation: &'static str,
        /// The field, as a path from the operation root, e.g. `organization.jobs`.
        field: String,
    },

    /// A field had a value the client cannot interpret.
    #[error("{operation} response has an invalid `{field}` ({value:?}): {reason}")]
    InvalidField {
        /// The operation name.
        operation: &'static str,
        /// The field, as a path from the operation root.
        field: String,
        /// The value Buildkite sent.
        value: String,
        /// Why it is invalid.
        reason: String,
    },

    /// The Stacks API refused the request (HTTP 400, 403, 404 or 422) and said why.
    #[error("{endpoint} refused the request (HTTP {status}): {message}; {hint}")]
    Refused {
        /// The URL that was called.
        endpoint: String,
        /// The HTTP status.
        status: u16,
        /// Buildkite's `message` (at most 512 bytes).
        message: String,
        /// What to do about it.
        hint: &'static str,
    },

    /// The client refused to send a request Buildkite would refuse (too many entries, a
    /// stack key with characters Buildkite does not allow, an expiry out of range).
    #[error("{operation}: {reason}")]
    InvalidRequest {
        /// The operation, e.g. `reserve jobs`.
        operation: &'static str,
        /// What is wrong with it.
        reason: String,
    },

    /// The looked-up organization, pipeline or build does not exist or is not visible
    /// to the token.
    #[error(
        "{what} was not found, or the token cannot see it: check the slug, and that the \
         token's user belongs to the organization and the token was granted access to it"
    )]
    NotFound {
        /// What was looked up, e.g. `organization "acme"`.
        what: String,
    },
}

fn wait_hint(retry_after: Option<Duration>) -> String {
    match retry_after {
        // Whole seconds, rounded up: retrying a fraction early would be refused again.
        Some(wait) => {
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            format!("; retry in {seconds}s")
        }
        None => " and did not say for how long; retry later".to_owned(),
    }
}

fn summary(errors: &[graphql_client::Error]) -> String {
    let messages: Vec<&str> = errors.iter().map(|e| e.message.as_str()).collect();
    messages.join("; ")
}

impl Error {
    /// How long to wait before retrying, when Buildkite said so.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The HTTP status Buildkite answered with, for errors that carry one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Unauthorized { status, .. }
            | Error::Refused { status, .. }
            | Error::Status { status, .. } => Some(*status),
            Error::RateLimited { .. } => Some(429),
            _ => None,
        }
    }

    /// Whether retrying the same request later may succeed (timeouts, transport errors,
    /// rate limits, 5xx). Authorization, GraphQL and decoding errors will not fix themselves.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Timeout { .. } | Error::Transport { .. } | Error::RateLimited { .. } => true,
            Error::Status { status, .. } => *status >= 500,
            _ => false,
        }
    }
}
