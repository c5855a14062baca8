//! Sending requests: authorization, status mapping, rate-limit capture and decoding.

use std::time::Duration;

use graphql_client::GraphQLQuery;
use http::{HeaderMap, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tokio::time::Instant;

use crate::client::Client;
use crate::error::{Error, Result};
use crate::metrics::{self, AgentMetrics, MetricsBody};
use crate::rate_limit::{self, RateLimit};

const BODY_EXCERPT: usize = 512;

const GRAPHQL_401: &str = "the API access token is unknown, expired or revoked; \
     create one at https://buildkite.com/user/api-access-tokens with GraphQL API access";
const GRAPHQL_403: &str = "the API access token lacks the GraphQL API scope or access to \
     this organization; enable \"Enable GraphQL API access\" on the token and check its organization";
const AGENT_HINT: &str =
    "check the agent token: it must be an agent registration token of the organization";

/// What one GraphQL request returned besides its data.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Exchange {
    pub(crate) rate_limit: Option<RateLimit>,
}

/// A decoded result plus what it cost: the type every operation returns.
#[derive(Clone, Debug, PartialEq)]
pub struct Fetched<T> {
    /// The operation's result.
    pub value: T,
    /// The rate-limit headers of the last response, if Buildkite sent any.
    pub rate_limit: Option<RateLimit>,
    /// How many HTTP requests the operation made (pagination makes more than one).
    pub requests: u32,
    /// The actual complexity Buildkite charged, summed over the requests that reported it.
    pub complexity_actual: u32,
}

/// Accumulates the cost of a multi-request operation.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    rate_limit: Option<RateLimit>,
    requests: u32,
    complexity_actual: u32,
}

impl Tally {
    pub(crate) fn record(&mut self, exchange: Exchange) {
        self.requests = self.requests.saturating_add(1);
        if let Some(limit) = exchange.rate_limit {
            // The header is untrusted: a huge value must not overflow the sum.
            self.complexity_actual = self
                .complexity_actual
                .saturating_add(limit.complexity_actual.unwrap_or(0));
            self.rate_limit = Some(limit);
        }
    }

    /// The result of an operation that made one request.
    pub(crate) fn single<T>(exchange: Exchange, value: T) -> Fetched<T> {
        let mut tally = Tally::default();
        tally.record(exchange);
        tally.finish(value)
    }

    pub(crate) fn finish<T>(self, value: T) -> Fetched<T> {
        Fetched {
            value,
            rate_limit: self.rate_limit,
            requests: self.requests,
            complexity_actual: self.complexity_actual,
        }
    }
}

/// A GraphQL answer: its `data` (never null) and the `errors` beside it (often none).
#[derive(Debug)]
pub(crate) struct Partial {
    pub(crate) data: serde_json::Value,
    pub(crate) errors: Vec<graphql_client::Error>,
}

#[derive(Deserialize)]
struct Envelope {
    data: Option<serde_json::Value>,
    #[serde(default)]
    errors: Option<Vec<graphql_client::Error>>,
}

impl Client {
    /// Runs a generated operation and decodes its data.
    pub(crate) async fn run<Q: GraphQLQuery>(
        &self,
        operation: &'static str,
        variables: Q::Variables,
    ) -> Result<(Q::ResponseData, Exchange)> {
        let body = Q::build_query(variables);
        let (data, exchange) = self.post_graphql(operation, &body).await?;
        Ok((decode_value(operation, data)?, exchange))
    }

    /// POSTs a GraphQL request body and returns the `data` member; any GraphQL `errors`
    /// fail the call ([`Error::GraphQl`], with the partial data).
    pub(crate) async fn post_graphql(
        &self,
        operation: &'static str,
        body: &impl serde::Serialize,
    ) -> Result<(serde_json::Value, Exchange)> {
        let (answer, exchange) = self.post_graphql_partial(operation, body).await?;
        if answer.errors.is_empty() {
            Ok((answer.data, exchange))
        } else {
            Err(Error::GraphQl {
                operation,
                errors: answer.errors,
                partial_data: Some(answer.data),
            })
        }
    }

    /// POSTs a GraphQL request body and returns the `data` member with the `errors` that
    /// came beside it, for operations that can use the rest of a partial answer. Errors
    /// without data are [`Error::GraphQl`]; neither is [`Error::MissingField`] (`data`).
    pub(crate) async fn post_graphql_partial(
        &self,
        operation: &'static str,
        body: &impl serde::Serialize,
    ) -> Result<(Partial, Exchange)> {
        let inner = &self.inner;
        let endpoint = inner.graphql_url.as_str();
        let token = inner.graphql_token.as_ref().ok_or(Error::MissingToken {
            which: "GraphQL API",
        })?;
        self.check_not_before(endpoint)?;
        tracing::debug!(operation, endpoint, "sending GraphQL request");
        let response = inner
            .http
            .post(inner.graphql_url.clone())
            .bearer_auth(token.expose_secret())
            .json(body)
            .send()
            .await
            .map_err(|e| self.send_error(endpoint, e))?;
        let status = response.status();
        let headers = response.headers().clone();
        let rate_limit = RateLimit::from_headers(&headers);
        if let Some(limit) = rate_limit {
            *inner
                .rate_limit
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(limit);
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| self.send_error(endpoint, e))?;
        self.check_status(
            endpoint,
            status,
            &headers,
            rate_limit,
            &bytes,
            Sent::GraphQl(token),
        )?;
        let envelope: Envelope = decode_bytes(operation, &bytes)?;
        let exchange = Exchange { rate_limit };
        let errors = envelope.errors.unwrap_or_default();
        match envelope.data {
            Some(data) if !data.is_null() => Ok((Partial { data, errors }, exchange)),
            _ if !errors.is_empty() => Err(Error::GraphQl {
                operation,
                errors,
                partial_data: None,
            }),
            _ => Err(Error::MissingField {
                operation,
                field: "data".to_owned(),
            }),
        }
    }

    /// `GET {agent_url}/metrics` with the agent token.
    pub async fn agent_metrics(&self) -> Result<AgentMetrics> {
        let inner = &self.inner;
        let endpoint = inner.metrics_url.as_str();
        let token = inner
            .agent_token
            .as_ref()
            .ok_or(Error::MissingToken { which: "agent" })?;
        // Marked sensitive, as `bearer_auth` does for the GraphQL token: HTTP/2 never indexes
        // it and `Debug` of the request prints `Sensitive`.
        let mut authorization =
            http::HeaderValue::try_from(format!("Token {}", token.expose_secret())).map_err(
                |_| Error::Build {
                    reason: "the agent token has characters an HTTP header cannot carry \
                             (check the secret for stray whitespace or line breaks)"
                        .to_owned(),
                    source: None,
                },
            )?;
        authorization.set_sensitive(true);
        let response = inner
            .http
            .get(inner.metrics_url.clone())
            .header(http::header::AUTHORIZATION, authorization)
            .send()
            .await
            .map_err(|e| self.send_error(endpoint, e))?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| self.send_error(endpoint, e))?;
        self.check_status(endpoint, status, &headers, None, &bytes, Sent::Agent(token))?;
        let body: MetricsBody = decode_bytes("agent metrics", &bytes)?;
        Ok(body.into_metrics(metrics::poll_duration(&headers)))
    }

    fn check_not_before(&self, endpoint: &str) -> Result<()> {
        let not_before = *self
            .inner
            .not_before
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match not_before {
            Some(at) if Instant::now() < at => Err(Error::RateLimited {
                endpoint: endpoint.to_owned(),
                retry_after: Some(at.saturating_duration_since(Instant::now())),
                rate_limit: self.rate_limit(),
            }),
            _ => Ok(()),
        }
    }

    fn send_error(&self, endpoint: &str, source: reqwest::Error) -> Error {
        // reqwest's errors print the URL, never headers, so no token can leak through them.
        if source.is_timeout() {
            Error::Timeout {
                endpoint: endpoint.to_owned(),
                timeout: self.inner.timeout,
                source,
            }
        } else {
            Error::Transport {
                endpoint: endpoint.to_owned(),
                source,
            }
        }
    }

    fn check_status(
        &self,
        endpoint: &str,
        status: StatusCode,
        headers: &HeaderMap,
        rate_limit: Option<RateLimit>,
        body: &[u8],
        sent: Sent<'_>,
    ) -> Result<()> {
        if status.is_success() {
            return Ok(());
        }
        let endpoint = endpoint.to_owned();
        match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(Error::Unauthorized {
                endpoint,
                status: status.as_u16(),
                hint: match (sent, status) {
                    (Sent::GraphQl(_), StatusCode::UNAUTHORIZED) => GRAPHQL_401,
                    (Sent::GraphQl(_), _) => GRAPHQL_403,
                    (Sent::Agent(_), _) => AGENT_HINT,
                },
            }),
            StatusCode::TOO_MANY_REQUESTS => {
                let retry_after = rate_limit::retry_after(headers)
                    .or_else(|| rate_limit.and_then(|limit| limit.reset))
                    .map(|wait| wait.min(rate_limit::MAX_RETRY_AFTER));
                if let Some(wait) = retry_after {
                    self.hold_until(wait);
                }
                tracing::warn!(%endpoint, ?retry_after, "Buildkite rate limit reached");
                Err(Error::RateLimited {
                    endpoint,
                    retry_after,
                    rate_limit,
                })
            }
            _ => Err(Error::Status {
                endpoint,
                status: status.as_u16(),
                body: excerpt(body, sent.token()),
            }),
        }
    }

    fn hold_until(&self, wait: Duration) {
        let mut not_before = self
            .inner
            .not_before
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        *not_before = Some(now.checked_add(wait).unwrap_or(now));
    }
}

/// Which token a request carried: it picks the authorization hint and is redacted from
/// response excerpts.
#[derive(Clone, Copy)]
enum Sent<'a> {
    GraphQl(&'a SecretString),
    Agent(&'a SecretString),
}

impl<'a> Sent<'a> {
    fn token(self) -> &'a SecretString {
        match self {
            Sent::GraphQl(token) | Sent::Agent(token) => token,
        }
    }
}

/// The start of a body, cut at a character boundary, with the token that was sent replaced
/// by `[redacted]`: a misconfigured endpoint may echo the request's headers back.
pub(crate) fn excerpt(body: &[u8], token: &SecretString) -> String {
    let mut text = String::from_utf8_lossy(body).into_owned();
    let secret = token.expose_secret();
    if !secret.is_empty() {
        text = text.replace(secret, "[redacted]");
    }
    let mut end = text.len().min(BODY_EXCERPT);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut excerpt = text[..end].trim().to_owned();
    if end < text.len() {
        excerpt.push('…');
    }
    excerpt
}

pub(crate) fn decode_bytes<T: DeserializeOwned>(
    operation: &'static str,
    bytes: &[u8],
) -> Result<T> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| Error::Decode {
        operation,
        path: e.path().to_string(),
        source: e.into_inner(),
    })?;
    deserializer.end().map_err(|source| Error::Decode {
        operation,
        path: ".".to_owned(),
        source,
    })?;
    Ok(value)
}

/// Decodes the `data` member into a generated response type, naming the failing path.
pub(crate) fn decode_value<T: DeserializeOwned>(
    operation: &'static str,
    data: serde_json::Value,
) -> Result<T> {
    decode_value_at(operation, "data", data)
}

/// Decodes a value found at `at` (a path such as `data.j3`) into a generated type, naming
/// the failing path from the top of the response.
pub(crate) fn decode_value_at<T: DeserializeOwned>(
    operation: &'static str,
    at: &str,
    value: serde_json::Value,
) -> Result<T> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let inner = e.path().to_string();
        let path = if inner == "." {
            at.to_owned()
        } else if inner.starts_with('[') {
            format!("{at}{inner}")
        } else {
            format!("{at}.{inner}")
        };
        Error::Decode {
            operation,
            path,
            source: e.into_inner(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tally_saturates_when_untrusted_complexity_headers_would_overflow() {
        let huge = Exchange {
            rate_limit: Some(RateLimit {
                complexity_actual: Some(u32::MAX),
                ..RateLimit::default()
            }),
        };
        let mut tally = Tally::default();
        tally.record(huge);
        tally.record(huge);
        let fetched = tally.finish(());
        assert_eq!(fetched.complexity_actual, u32::MAX);
        assert_eq!(fetched.requests, 2);
    }

    #[test]
    fn excerpt_cuts_long_bodies_at_a_character_boundary() {
        let body = "é".repeat(400);
        let token = SecretString::from("bkua_secret");
        let cut = excerpt(body.as_bytes(), &token);
        assert!(cut.ends_with('…'));
        assert!(cut.len() <= BODY_EXCERPT + '…'.len_utf8());
        assert_eq!(excerpt(b"  short  ", &token), "short");
    }
}
