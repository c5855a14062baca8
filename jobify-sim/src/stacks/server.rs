//! The request pipeline every Stacks API request passes: authentication by cluster agent
//! token, injected faults, the per-stack rate limit, the rule itself, and the response with
//! its `RateLimit-*` headers and `{"message"}` errors.

use std::sync::{Mutex, MutexGuard};

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use secrecy::ExposeSecret as _;
use serde_json::{Value, json};

use super::handle::Shared;
use super::rate_limit::Standing;
use super::refusal::Refusal;
use super::state::State;
use crate::fault::Fault;

/// Locks `mutex`, riding over poisoning: a handler that panicked mid-request leaves the
/// state as consistent as any single transition leaves it.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// The endpoints, for rate-limit scopes and request counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Token,
    Register,
    Deregister,
    ListScheduledJobs,
    BatchReserve,
    ShowJob,
    GetStates,
    Finish,
    Notifications,
    JobAcquisitionTokens,
    Acquire,
    Metrics,
}

impl Endpoint {
    /// The name requests are counted under (see [`super::StacksStats::requests`]).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Endpoint::Token => "token",
            Endpoint::Register => "register",
            Endpoint::Deregister => "deregister",
            Endpoint::ListScheduledJobs => "list-scheduled-jobs",
            Endpoint::BatchReserve => "batch-reserve",
            Endpoint::ShowJob => "show-job",
            Endpoint::GetStates => "batch-load-job-states",
            Endpoint::Finish => "finish-job",
            Endpoint::Notifications => "stack-notification",
            Endpoint::JobAcquisitionTokens => "job-acquisition-tokens",
            Endpoint::Acquire => "acquire",
            Endpoint::Metrics => "metrics",
        }
    }

    /// The documented rate-limit scope; register, token issuance and metrics have none.
    fn scope(self) -> Option<&'static str> {
        match self {
            Endpoint::Token
            | Endpoint::Register
            | Endpoint::JobAcquisitionTokens
            | Endpoint::Acquire
            | Endpoint::Metrics => None,
            Endpoint::Deregister => Some("default"),
            other => Some(other.name()),
        }
    }
}

pub(crate) fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    response
}

pub(crate) fn refused(refusal: &Refusal) -> Response {
    json_response(refusal.status_code(), &json!({"message": refusal.message}))
}

/// The token of an `Authorization: Token <token>` header.
pub(crate) fn token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("Token").then_some(token.trim())
}

const UNAUTHORIZED: &str = "Invalid or missing agent token: the Stacks API takes a cluster \
                            agent token (Authorization: Token bkct_...)";

fn standing_headers(response: &mut Response, s: &Standing) {
    let headers = response.headers_mut();
    headers.insert("RateLimit-Scope", HeaderValue::from_static(s.scope));
    headers.insert("RateLimit-Limit", HeaderValue::from(s.limit));
    headers.insert("RateLimit-Remaining", HeaderValue::from(s.remaining));
    headers.insert("RateLimit-Reset", HeaderValue::from(s.reset_secs));
}

fn throttled(s: &Standing) -> Response {
    let message = format!(
        "You have exceeded your API rate limit. Please wait {} seconds before making more requests.",
        s.reset_secs
    );
    let body = json!({
        "message": message,
        "scope": s.scope,
        "limit": s.limit,
        "current": s.current,
        "reset": s.reset_secs,
    });
    let mut response = json_response(StatusCode::TOO_MANY_REQUESTS, &body);
    standing_headers(&mut response, s);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(s.reset_secs));
    response
}

/// Draws a fault; `Some` is the response to send instead of the real one.
async fn injected(shared: &Shared) -> Option<Response> {
    let fault = shared.faults.next(false)?;
    shared.stats.fault();
    match fault {
        Fault::ServerError => Some(json_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            &json!({"message": "Internal server error"}),
        )),
        Fault::Timeout(delay) => {
            // A held request must not hold up the simulator's shutdown.
            tokio::select! {
                () = tokio::time::sleep(delay) => None,
                () = shared.stop.cancelled() => Some(StatusCode::SERVICE_UNAVAILABLE.into_response()),
            }
        }
        Fault::GraphqlError | Fault::Malformed => {
            let mut response = (StatusCode::OK, "{\"jobs\": [").into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            Some(response)
        }
    }
}

/// Runs a Stacks API request: `stack` is the path's stack key (the rate limit's scope).
pub(crate) async fn serve(
    shared: &Shared,
    headers: &HeaderMap,
    endpoint: Endpoint,
    stack: Option<&str>,
    run: impl FnOnce(&mut State, Timestamp) -> Result<(StatusCode, Value), Refusal>,
) -> Response {
    shared.stats.request(endpoint);
    let authorized = token(headers).is_some_and(|t| t == shared.agent_token.expose_secret());
    if !authorized {
        shared.stats.unauthorized();
        return refused(&Refusal::unauthorized(UNAUTHORIZED));
    }
    if let Some(response) = injected(shared).await {
        return response;
    }
    let now = shared.clock.now();
    let standing = match (endpoint.scope(), stack) {
        (Some(scope), Some(stack)) => lock(&shared.limiter).admit(stack, scope, now.instant),
        _ => None,
    };
    let standing = match standing {
        Some(Err(s)) => {
            shared.stats.rate_limited();
            return throttled(&s);
        }
        Some(Ok(s)) => Some(s),
        None => None,
    };
    let result = run(&mut lock(&shared.state), now.timestamp);
    let mut response = match result {
        Ok((StatusCode::NO_CONTENT, _)) => StatusCode::NO_CONTENT.into_response(),
        Ok((status, body)) => json_response(status, &body),
        Err(refusal) => refused(&refusal),
    };
    if let Some(s) = standing {
        standing_headers(&mut response, &s);
    }
    response
}
