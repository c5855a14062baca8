//! [`Client`] and its builder: configuration, tokens, and the last rate-limit snapshot.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use secrecy::SecretString;
use tokio::time::Instant;
use url::Url;

use crate::error::{Error, Result};
use crate::rate_limit::RateLimit;

/// Buildkite's GraphQL endpoint.
pub const DEFAULT_GRAPHQL_URL: &str = "https://graphql.buildkite.com/v1";
/// Buildkite's agent API base.
pub const DEFAULT_AGENT_URL: &str = "https://agent.buildkite.com/v3";
/// The default per-request timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The default `User-Agent`: `buildkite-api/<version>`.
pub fn default_user_agent() -> String {
    format!("buildkite-api/{}", env!("CARGO_PKG_VERSION"))
}

/// A Buildkite API client. Cheap to clone; clones share the rate-limit state.
///
/// Build one with [`Client::builder`]. Its `Debug` output never shows a token.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) http: reqwest::Client,
    pub(crate) graphql_url: Url,
    pub(crate) metrics_url: Url,
    pub(crate) graphql_token: Option<SecretString>,
    pub(crate) agent_token: Option<SecretString>,
    pub(crate) timeout: Duration,
    pub(crate) rate_limit: Mutex<Option<RateLimit>>,
    /// Set from a 429's `Retry-After`: no GraphQL request is sent before this instant.
    pub(crate) not_before: Mutex<Option<Instant>>,
}

impl Client {
    /// Starts configuring a client.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// The rate-limit headers of the last GraphQL response that carried any.
    pub fn rate_limit(&self) -> Option<RateLimit> {
        *self
            .inner
            .rate_limit
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The GraphQL endpoint this client talks to.
    pub fn graphql_url(&self) -> &Url {
        &self.inner.graphql_url
    }

    /// The agent metrics URL this client polls.
    pub fn metrics_url(&self) -> &Url {
        &self.inner.metrics_url
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("graphql_url", &self.inner.graphql_url.as_str())
            .field("metrics_url", &self.inner.metrics_url.as_str())
            .field("graphql_token", &token_state(&self.inner.graphql_token))
            .field("agent_token", &token_state(&self.inner.agent_token))
            .field("timeout", &self.inner.timeout)
            .finish_non_exhaustive()
    }
}

fn token_state(token: &Option<SecretString>) -> &'static str {
    if token.is_some() { "[set]" } else { "[unset]" }
}

/// Configures a [`Client`]. Every setting has a default except the tokens.
pub struct ClientBuilder {
    graphql_token: Option<SecretString>,
    agent_token: Option<SecretString>,
    graphql_url: Option<Url>,
    agent_url: Option<Url>,
    timeout: Duration,
    user_agent: String,
}

impl Default for ClientBuilder {
    fn default() -> Self {
        ClientBuilder {
            graphql_token: None,
            agent_token: None,
            graphql_url: None,
            agent_url: None,
            timeout: DEFAULT_TIMEOUT,
            user_agent: default_user_agent(),
        }
    }
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("graphql_token", &token_state(&self.graphql_token))
            .field("agent_token", &token_state(&self.agent_token))
            .field("graphql_url", &self.graphql_url.as_ref().map(Url::as_str))
            .field("agent_url", &self.agent_url.as_ref().map(Url::as_str))
            .field("timeout", &self.timeout)
            .field("user_agent", &self.user_agent)
            .finish()
    }
}

impl ClientBuilder {
    /// The API access token for GraphQL (needs the GraphQL API scope). Sent as
    /// `Authorization: Bearer <token>`.
    pub fn graphql_token(mut self, token: SecretString) -> Self {
        self.graphql_token = Some(token);
        self
    }

    /// The agent token for `GET /metrics`. Sent as `Authorization: Token <token>`.
    pub fn agent_token(mut self, token: SecretString) -> Self {
        self.agent_token = Some(token);
        self
    }

    /// The GraphQL endpoint (default [`DEFAULT_GRAPHQL_URL`]).
    pub fn graphql_url(mut self, url: Url) -> Self {
        self.graphql_url = Some(url);
        self
    }

    /// The agent API base (default [`DEFAULT_AGENT_URL`]); metrics are read from
    /// `{agent_url}/metrics`.
    pub fn agent_url(mut self, url: Url) -> Self {
        self.agent_url = Some(url);
        self
    }

    /// The timeout of each HTTP request, connect to last byte (default 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The `User-Agent` header, e.g. `jobify/0.1.0` (default `buildkite-api/<version>`).
    pub fn user_agent(mut self, user_agent: &str) -> Self {
        self.user_agent = user_agent.to_owned();
        self
    }

    /// Builds the client.
    ///
    /// reqwest is compiled without a built-in TLS crypto provider, so a process-wide rustls
    /// provider must be installed first (`rustls::crypto::ring::default_provider()
    /// .install_default()`), even for plain-http URLs; without one this returns
    /// [`Error::NoCryptoProvider`] instead of panicking inside reqwest.
    pub fn build(self) -> Result<Client> {
        crypto_provider_installed()?;
        let graphql_url = match self.graphql_url {
            Some(url) => url,
            None => parse_default(DEFAULT_GRAPHQL_URL)?,
        };
        let agent_url = match self.agent_url {
            Some(url) => url,
            None => parse_default(DEFAULT_AGENT_URL)?,
        };
        let metrics_url = metrics_url(&agent_url)?;
        let http = http_client(&self.user_agent, self.timeout)?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                graphql_url,
                metrics_url,
                graphql_token: self.graphql_token,
                agent_token: self.agent_token,
                timeout: self.timeout,
                rate_limit: Mutex::new(None),
                not_before: Mutex::new(None),
            }),
        })
    }
}

/// Fails with [`Error::NoCryptoProvider`] unless a process-wide rustls provider is installed:
/// reqwest is built without one and would panic.
pub(crate) fn crypto_provider_installed() -> Result<()> {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        return Err(Error::NoCryptoProvider);
    }
    Ok(())
}

/// The HTTP client every Buildkite client of this crate sends through.
pub(crate) fn http_client(user_agent: &str, timeout: Duration) -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .user_agent(user_agent)
        .timeout(timeout)
        .build()
        .map_err(|source| Error::Build {
            reason: format!("reqwest rejected the settings (user agent {user_agent:?})"),
            source: Some(source),
        })
}

fn parse_default(url: &str) -> Result<Url> {
    Url::parse(url).map_err(|e| Error::Build {
        reason: format!("invalid default URL {url}: {e}"),
        source: None,
    })
}

/// `{agent_url}/metrics`, whether or not the base ends in a slash.
fn metrics_url(agent_url: &Url) -> Result<Url> {
    let base = agent_url.as_str().trim_end_matches('/');
    Url::parse(&format!("{base}/metrics")).map_err(|e| Error::Build {
        reason: format!("cannot derive the metrics URL from agent URL {agent_url}: {e}"),
        source: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_url_appends_to_the_agent_base() {
        let with_slash = Url::parse("http://127.0.0.1:9/v3/").expect("valid");
        let without = Url::parse("http://127.0.0.1:9/v3").expect("valid");
        assert_eq!(
            metrics_url(&with_slash).expect("joins").as_str(),
            "http://127.0.0.1:9/v3/metrics"
        );
        assert_eq!(
            metrics_url(&without).expect("joins").as_str(),
            "http://127.0.0.1:9/v3/metrics"
        );
    }
}
