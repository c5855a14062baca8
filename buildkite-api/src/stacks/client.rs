//! [`StacksClient`]: the Stacks API's calls, with the agent token, per-scope rate limits and
//! typed errors.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http::{HeaderMap, StatusCode};
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::time::Instant;
use url::Url;

use super::endpoint::{StacksEndpoint, segment};
use super::model::{
    FinishJob, JobAcquisitionToken, JobAcquisitionTokens, JobDetails, MAX_BATCH, MAX_FINISH_DETAIL,
    MAX_NOTIFICATION_DETAIL, MAX_PAGE_SIZE, MAX_RESERVATION_EXPIRY, Notification,
    NotificationError, RegisterStack, Registered, Reservation, ScheduledJobsPage,
    ScheduledJobsQuery, Stack, StacksJobState, TokenIdentity, crop, stack_key_problem,
};
use crate::client::{
    DEFAULT_AGENT_URL, DEFAULT_TIMEOUT, crypto_provider_installed, default_user_agent, http_client,
};
use crate::error::{Error, Result};
use crate::rate_limit::{self, MAX_RETRY_AFTER, RateLimit};
use crate::transport::{decode_bytes, excerpt};

const STACKS_401: &str = "the Stacks API needs a cluster agent token (`bkct_…`) of the cluster \
     whose queue the stack serves; API access tokens and unclustered agent tokens are refused";

/// A client of Buildkite's Stacks API (`{agent_url}/stacks/…`), authenticated by a cluster
/// agent token. Cheap to clone; clones share the rate-limit state. `Debug` never shows the
/// token.
#[derive(Clone)]
pub struct StacksClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base: String,
    token: SecretString,
    timeout: Duration,
    /// Per rate-limit scope: the last headers seen, and a 429's hold.
    scopes: Mutex<HashMap<&'static str, Scope>>,
}

#[derive(Clone, Copy, Default)]
struct Scope {
    rate_limit: Option<RateLimit>,
    not_before: Option<Instant>,
}

impl fmt::Debug for StacksClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StacksClient")
            .field("base", &self.inner.base)
            .field("token", &"[set]")
            .finish_non_exhaustive()
    }
}

/// Configures a [`StacksClient`].
pub struct StacksClientBuilder {
    token: Option<SecretString>,
    agent_url: Option<Url>,
    timeout: Duration,
    user_agent: String,
}

impl fmt::Debug for StacksClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StacksClientBuilder")
            .field(
                "token",
                &if self.token.is_some() {
                    "[set]"
                } else {
                    "[unset]"
                },
            )
            .field("agent_url", &self.agent_url.as_ref().map(Url::as_str))
            .field("timeout", &self.timeout)
            .field("user_agent", &self.user_agent)
            .finish()
    }
}

impl StacksClient {
    /// Starts configuring a client.
    pub fn builder() -> StacksClientBuilder {
        StacksClientBuilder {
            token: None,
            agent_url: None,
            timeout: DEFAULT_TIMEOUT,
            user_agent: default_user_agent(),
        }
    }

    /// The rate-limit headers of the last response from `endpoint`'s scope that had any.
    pub fn rate_limit(&self, endpoint: StacksEndpoint) -> Option<RateLimit> {
        self.scopes()
            .get(endpoint.scope())
            .and_then(|scope| scope.rate_limit)
    }

    /// `GET /token`: what the agent token is. A token with no cluster cannot use the Stacks
    /// API; check [`TokenIdentity::is_clustered`] at start-up.
    pub async fn token_identity(&self) -> Result<TokenIdentity> {
        let url = format!("{}/token", self.inner.base);
        self.call(StacksEndpoint::Token, Method::GET, url, None::<&()>)
            .await
            .and_then(|reply| reply.json(StacksEndpoint::Token))
    }

    /// `POST /stacks/register`: registers the stack, or updates the one with its key. Call
    /// it before anything else, and again when a call answers that the stack is not found.
    pub async fn register(&self, stack: &RegisterStack) -> Result<Registered> {
        let problems = stack.problems();
        if !problems.is_empty() {
            return Err(Error::InvalidRequest {
                operation: StacksEndpoint::Register.name(),
                reason: problems.join("; "),
            });
        }
        let url = format!("{}/stacks/register", self.inner.base);
        let reply = self
            .call(StacksEndpoint::Register, Method::POST, url, Some(stack))
            .await?;
        let created = reply.status == StatusCode::CREATED;
        let stack: Stack = reply.json(StacksEndpoint::Register)?;
        Ok(Registered { stack, created })
    }

    /// `POST /stacks/:key/deregister`, for a clean exit: the stack stops counting against the
    /// organization's limit.
    pub async fn deregister(&self, stack_key: &str) -> Result<()> {
        let url = self.stack_url(StacksEndpoint::Deregister, stack_key, "deregister")?;
        self.call(StacksEndpoint::Deregister, Method::POST, url, None::<&()>)
            .await
            .map(drop)
    }

    /// `GET /stacks/:key/scheduled-jobs`: one page of the queue's scheduled, unreserved jobs,
    /// oldest first. Polling it is also what keeps the queue's stack "connected".
    pub async fn scheduled_jobs(
        &self,
        stack_key: &str,
        query: &ScheduledJobsQuery,
    ) -> Result<ScheduledJobsPage> {
        let endpoint = StacksEndpoint::ListScheduledJobs;
        if let Some(limit) = query.limit
            && !(1..=MAX_PAGE_SIZE).contains(&limit)
        {
            return Err(Error::InvalidRequest {
                operation: endpoint.name(),
                reason: format!("a page holds 1 to {MAX_PAGE_SIZE} jobs, not {limit}"),
            });
        }
        let base = self.stack_url(endpoint, stack_key, "scheduled-jobs")?;
        let mut url = Url::parse(&base).map_err(|e| invalid_url(endpoint, &base, &e))?;
        {
            let mut pairs = url.query_pairs_mut();
            pairs.append_pair("queue_key", &query.queue_key);
            if let Some(limit) = query.limit {
                pairs.append_pair("limit", &limit.to_string());
            }
            if let Some(after) = &query.after {
                pairs.append_pair("after", after);
            }
        }
        self.call(endpoint, Method::GET, url.to_string(), None::<&()>)
            .await?
            .json(endpoint)
    }

    /// `PUT /stacks/:key/scheduled-jobs/batch-reserve`: reserves (or extends) up to
    /// [`MAX_BATCH`] jobs for `expiry` (Buildkite's default of 15 minutes when `None`, at
    /// most an hour). Start only what comes back in [`Reservation::reserved`]; there is no
    /// way to release a reservation but to let it expire or to finish the job.
    pub async fn reserve(
        &self,
        stack_key: &str,
        job_uuids: &[String],
        expiry: Option<Duration>,
    ) -> Result<Reservation> {
        let endpoint = StacksEndpoint::Reserve;
        check_batch(endpoint, job_uuids.len())?;
        let reservation_expiry_seconds = expiry
            .map(|expiry| seconds_within(endpoint, "reservation expiry", expiry))
            .transpose()?;
        #[derive(Serialize)]
        struct Body<'a> {
            job_uuids: &'a [String],
            #[serde(skip_serializing_if = "Option::is_none")]
            reservation_expiry_seconds: Option<u64>,
        }
        let url = self.stack_url(endpoint, stack_key, "scheduled-jobs/batch-reserve")?;
        let body = Body {
            job_uuids,
            reservation_expiry_seconds,
        };
        self.call(endpoint, Method::PUT, url, Some(&body))
            .await?
            .json(endpoint)
    }

    /// `GET /stacks/:key/jobs/:id`: the job's command and environment, the only call that
    /// returns them.
    pub async fn job(&self, stack_key: &str, job_uuid: &str) -> Result<JobDetails> {
        let endpoint = StacksEndpoint::GetJob;
        let url = self.stack_url(endpoint, stack_key, &format!("jobs/{}", segment(job_uuid)))?;
        self.call(endpoint, Method::GET, url, None::<&()>)
            .await?
            .json(endpoint)
    }

    /// `POST /stacks/:key/jobs/get-states`: the states of up to [`MAX_BATCH`] jobs, by uuid.
    /// A uuid Buildkite does not know is absent from the answer.
    pub async fn job_states(
        &self,
        stack_key: &str,
        job_uuids: &[String],
    ) -> Result<HashMap<String, StacksJobState>> {
        let endpoint = StacksEndpoint::GetStates;
        check_batch(endpoint, job_uuids.len())?;
        #[derive(Serialize)]
        struct Body<'a> {
            job_uuids: &'a [String],
        }
        #[derive(serde::Deserialize)]
        struct States {
            #[serde(default)]
            states: HashMap<String, StacksJobState>,
        }
        let url = self.stack_url(endpoint, stack_key, "jobs/get-states")?;
        let states: States = self
            .call(endpoint, Method::POST, url, Some(&Body { job_uuids }))
            .await?
            .json(endpoint)?;
        Ok(states.states)
    }

    /// `POST /stacks/:key/jobs/:id/finish`: ends a job no agent will run, once. With
    /// `exit_status: -1` Buildkite records a stack error, which the pipeline's automatic
    /// retry rules can match. The detail is cropped to [`MAX_FINISH_DETAIL`] bytes.
    pub async fn finish(&self, stack_key: &str, job_uuid: &str, finish: &FinishJob) -> Result<()> {
        let endpoint = StacksEndpoint::Finish;
        let url = self.stack_url(
            endpoint,
            stack_key,
            &format!("jobs/{}/finish", segment(job_uuid)),
        )?;
        let body = FinishJob {
            exit_status: finish.exit_status,
            detail: crop(
                &finish.detail,
                MAX_FINISH_DETAIL,
                "… (cropped: the message exceeded 4 KB)",
            ),
        };
        self.call(endpoint, Method::POST, url, Some(&body))
            .await
            .map(drop)
    }

    /// `POST /stacks/:key/notifications`: up to [`MAX_BATCH`] messages for jobs' timelines,
    /// each cropped to [`MAX_NOTIFICATION_DETAIL`] bytes. Buildkite stores the valid ones
    /// even when others fail; the answer lists the failures (empty: all stored).
    pub async fn notify(
        &self,
        stack_key: &str,
        notifications: &[Notification],
    ) -> Result<Vec<NotificationError>> {
        let endpoint = StacksEndpoint::Notifications;
        check_batch(endpoint, notifications.len())?;
        if let Some(index) = notifications
            .iter()
            .position(|n| n.detail.trim().is_empty())
        {
            return Err(Error::InvalidRequest {
                operation: endpoint.name(),
                reason: format!("notification {index} has an empty detail"),
            });
        }
        #[derive(Serialize)]
        struct Body {
            notifications: Vec<Notification>,
        }
        #[derive(serde::Deserialize)]
        struct Answer {
            #[serde(default)]
            errors: Vec<NotificationError>,
        }
        let body = Body {
            notifications: notifications
                .iter()
                .map(|n| Notification {
                    detail: crop(&n.detail, MAX_NOTIFICATION_DETAIL, "…"),
                    ..n.clone()
                })
                .collect(),
        };
        let url = self.stack_url(endpoint, stack_key, "notifications")?;
        let answer: Answer = self
            .call(endpoint, Method::POST, url, Some(&body))
            .await?
            .json(endpoint)?;
        Ok(answer.errors)
    }

    /// `POST /stacks/:key/job-acquisition-tokens`: for jobs this stack reserved, tokens that
    /// let an agent register for that one job only, valid for `lifetime` (Buildkite's default
    /// of 15 minutes when `None`, never past the reservation). Match tokens to jobs by uuid
    /// and start nothing for a job in [`JobAcquisitionTokens::not_issued`].
    pub async fn job_acquisition_tokens(
        &self,
        stack_key: &str,
        job_uuids: &[String],
        lifetime: Option<Duration>,
    ) -> Result<JobAcquisitionTokens> {
        let endpoint = StacksEndpoint::JobAcquisitionTokens;
        check_batch(endpoint, job_uuids.len())?;
        let token_lifetime_seconds = lifetime
            .map(|lifetime| seconds_within(endpoint, "token lifetime", lifetime))
            .transpose()?;
        #[derive(Serialize)]
        struct Body<'a> {
            job_uuids: &'a [String],
            #[serde(skip_serializing_if = "Option::is_none")]
            token_lifetime_seconds: Option<u64>,
        }
        #[derive(serde::Deserialize)]
        struct Answer {
            #[serde(default)]
            job_acquisition_tokens: Vec<JobAcquisitionToken>,
            #[serde(default)]
            not_issued: Vec<String>,
        }
        let url = self.stack_url(endpoint, stack_key, "job-acquisition-tokens")?;
        let body = Body {
            job_uuids,
            token_lifetime_seconds,
        };
        let answer: Answer = self
            .call(endpoint, Method::POST, url, Some(&body))
            .await?
            .json(endpoint)?;
        Ok(JobAcquisitionTokens {
            tokens: answer.job_acquisition_tokens,
            not_issued: answer.not_issued,
        })
    }

    fn stack_url(&self, endpoint: StacksEndpoint, stack_key: &str, rest: &str) -> Result<String> {
        if let Some(reason) = stack_key_problem(stack_key) {
            return Err(Error::InvalidRequest {
                operation: endpoint.name(),
                reason,
            });
        }
        Ok(format!(
            "{}/stacks/{}/{rest}",
            self.inner.base,
            segment(stack_key)
        ))
    }

    fn scopes(&self) -> std::sync::MutexGuard<'_, HashMap<&'static str, Scope>> {
        self.inner
            .scopes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    async fn call<B: Serialize + ?Sized>(
        &self,
        endpoint: StacksEndpoint,
        method: Method,
        url: String,
        body: Option<&B>,
    ) -> Result<Reply> {
        let scope = endpoint.scope();
        let held = self.scopes().get(scope).copied().unwrap_or_default();
        if let Some(at) = held.not_before
            && Instant::now() < at
        {
            return Err(Error::RateLimited {
                endpoint: url,
                retry_after: Some(at.saturating_duration_since(Instant::now())),
                rate_limit: held.rate_limit,
            });
        }
        let mut authorization =
            http::HeaderValue::try_from(format!("Token {}", self.inner.token.expose_secret()))
                .map_err(|_| Error::Build {
                    reason: "the agent token has characters an HTTP header cannot carry \
                             (check the secret for stray whitespace or line breaks)"
                        .to_owned(),
                    source: None,
                })?;
        authorization.set_sensitive(true);
        let mut request = self
            .inner
            .http
            .request(method, &url)
            .header(http::header::AUTHORIZATION, authorization)
            .header(http::header::ACCEPT, "application/json");
        if let Some(body) = body {
            request = request.json(body);
        }
        tracing::debug!(endpoint = endpoint.name(), "sending Stacks API request");
        let timeout = self.inner.timeout;
        let response = request
            .send()
            .await
            .map_err(|e| send_error(&url, timeout, e))?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| send_error(&url, timeout, e))?;
        let rate_limit = RateLimit::from_headers(&headers);
        if rate_limit.is_some() {
            self.scopes().entry(scope).or_default().rate_limit = rate_limit;
        }
        self.check_status(endpoint, &url, status, &headers, rate_limit, &bytes)?;
        Ok(Reply {
            status,
            bytes: bytes.to_vec(),
        })
    }

    fn check_status(
        &self,
        endpoint: StacksEndpoint,
        url: &str,
        status: StatusCode,
        headers: &HeaderMap,
        rate_limit: Option<RateLimit>,
        body: &[u8],
    ) -> Result<()> {
        if status.is_success() {
            return Ok(());
        }
        let endpoint_url = url.to_owned();
        let message = || error_message(body, &self.inner.token);
        match status {
            StatusCode::UNAUTHORIZED => Err(Error::Unauthorized {
                endpoint: endpoint_url,
                status: status.as_u16(),
                hint: STACKS_401,
            }),
            StatusCode::TOO_MANY_REQUESTS => {
                let retry_after = rate_limit::retry_after(headers)
                    .or_else(|| rate_limit.and_then(|limit| limit.reset))
                    .map(|wait| wait.min(MAX_RETRY_AFTER));
                if let Some(wait) = retry_after {
                    let now = Instant::now();
                    self.scopes()
                        .entry(endpoint.scope())
                        .or_default()
                        .not_before = Some(now.checked_add(wait).unwrap_or(now));
                }
                tracing::warn!(
                    endpoint = endpoint.name(),
                    scope = endpoint.scope(),
                    ?retry_after,
                    "Buildkite Stacks API rate limit reached"
                );
                Err(Error::RateLimited {
                    endpoint: endpoint_url,
                    retry_after,
                    rate_limit,
                })
            }
            StatusCode::BAD_REQUEST
            | StatusCode::FORBIDDEN
            | StatusCode::NOT_FOUND
            | StatusCode::UNPROCESSABLE_ENTITY => Err(Error::Refused {
                endpoint: endpoint_url,
                status: status.as_u16(),
                message: message(),
                hint: refusal_hint(endpoint, status),
            }),
            _ => Err(Error::Status {
                endpoint: endpoint_url,
                status: status.as_u16(),
                body: message(),
            }),
        }
    }
}

impl StacksClientBuilder {
    /// The cluster agent token (`bkct_…`), sent as `Authorization: Token <token>`.
    pub fn agent_token(mut self, token: SecretString) -> Self {
        self.token = Some(token);
        self
    }

    /// The agent API base (default [`DEFAULT_AGENT_URL`]); Stacks calls go to
    /// `{agent_url}/stacks/…`.
    pub fn agent_url(mut self, url: Url) -> Self {
        self.agent_url = Some(url);
        self
    }

    /// The timeout of each HTTP request (default 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The `User-Agent` header (default `buildkite-api/<version>`).
    pub fn user_agent(mut self, user_agent: &str) -> Self {
        self.user_agent = user_agent.to_owned();
        self
    }

    /// Builds the client. As for [`Client`](crate::Client), a process-wide rustls crypto
    /// provider must be installed first.
    pub fn build(self) -> Result<StacksClient> {
        crypto_provider_installed()?;
        let token = self.token.ok_or(Error::MissingToken {
            which: "cluster agent",
        })?;
        let base = match &self.agent_url {
            Some(url) => url.as_str().trim_end_matches('/').to_owned(),
            None => DEFAULT_AGENT_URL.to_owned(),
        };
        let http = http_client(&self.user_agent, self.timeout)?;
        Ok(StacksClient {
            inner: Arc::new(Inner {
                http,
                base,
                token,
                timeout: self.timeout,
                scopes: Mutex::new(HashMap::new()),
            }),
        })
    }
}

/// A successful answer, not yet decoded.
struct Reply {
    status: StatusCode,
    bytes: Vec<u8>,
}

impl Reply {
    fn json<T: DeserializeOwned>(&self, endpoint: StacksEndpoint) -> Result<T> {
        decode_bytes(endpoint.name(), &self.bytes)
    }
}

fn check_batch(endpoint: StacksEndpoint, len: usize) -> Result<()> {
    if len > MAX_BATCH {
        return Err(Error::InvalidRequest {
            operation: endpoint.name(),
            reason: format!("{len} entries in one request; at most {MAX_BATCH} are allowed"),
        });
    }
    Ok(())
}

fn seconds_within(endpoint: StacksEndpoint, what: &str, value: Duration) -> Result<u64> {
    let seconds = value.as_secs();
    if seconds == 0 || value > MAX_RESERVATION_EXPIRY {
        return Err(Error::InvalidRequest {
            operation: endpoint.name(),
            reason: format!(
                "a {what} of {}s; it must be 1 to {} seconds",
                seconds,
                MAX_RESERVATION_EXPIRY.as_secs()
            ),
        });
    }
    Ok(seconds)
}

fn invalid_url(endpoint: StacksEndpoint, url: &str, error: &url::ParseError) -> Error {
    Error::InvalidRequest {
        operation: endpoint.name(),
        reason: format!("cannot form the URL {url}: {error}"),
    }
}

fn send_error(endpoint: &str, timeout: Duration, source: reqwest::Error) -> Error {
    // reqwest's errors print the URL, never headers, so no token can leak through them.
    if source.is_timeout() {
        Error::Timeout {
            endpoint: endpoint.to_owned(),
            timeout,
            source,
        }
    } else {
        Error::Transport {
            endpoint: endpoint.to_owned(),
            source,
        }
    }
}

/// The `message` of a Stacks error body, else the start of the body; the token redacted.
fn error_message(body: &[u8], token: &SecretString) -> String {
    #[derive(serde::Deserialize)]
    struct ErrorBody {
        message: String,
    }
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(parsed) => excerpt(parsed.message.as_bytes(), token),
        Err(_) => excerpt(body, token),
    }
}

fn refusal_hint(endpoint: StacksEndpoint, status: StatusCode) -> &'static str {
    match (status, endpoint) {
        (StatusCode::NOT_FOUND, StacksEndpoint::GetJob | StacksEndpoint::Finish) => {
            "the job does not exist for this stack (or the stack is not registered): look the \
             job up, and register the stack again if the message names the stack"
        }
        (StatusCode::NOT_FOUND, _) => {
            "the stack or queue was not found: register the stack again (another installation \
             with the same stack key may have deregistered it) and check the queue key"
        }
        (StatusCode::FORBIDDEN, _) => {
            "the organization's limit of active stacks is reached: deregister stacks that no \
             longer run, or ask Buildkite to raise the limit"
        }
        (StatusCode::UNPROCESSABLE_ENTITY, _) => {
            "a required field is missing or invalid (see the message)"
        }
        _ => "a parameter is invalid (see the message)",
    }
}
