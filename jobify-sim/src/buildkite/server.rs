//! The HTTP face of the simulator: `POST /v1` (GraphQL) and `GET /v3/metrics` (agent API),
//! with Buildkite's authentication, rate-limit headers and the configured faults.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State as AxumState;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use secrecy::ExposeSecret as _;
use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::graphql::{self, Answer, Request};
use super::handle::Shared;
use super::metrics;
use super::rate_limit::Standings;
use crate::fault::Fault;

/// Locks `mutex`, riding over poisoning: a handler that panicked mid-request leaves the
/// simulator's state as consistent as any single transition leaves it.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1", post(graphql_endpoint))
        .route("/v3/metrics", get(metrics_endpoint))
        .with_state(shared)
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    response
}

fn credential<'h>(headers: &'h HeaderMap, scheme: &str) -> Option<&'h str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (given, token) = value.split_once(' ')?;
    given.eq_ignore_ascii_case(scheme).then_some(token.trim())
}

/// Applies an injected fault; `Some` is the response to send instead of the real one.
async fn injected(
    fault: Option<Fault>,
    graphql: bool,
    stop: &CancellationToken,
) -> Option<Response> {
    match fault? {
        Fault::ServerError => Some(
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "<html><body><h1>500 Internal Server Error</h1></body></html>",
            )
                .into_response(),
        ),
        Fault::Timeout(delay) => {
            // A held request must not hold up the simulator's shutdown.
            tokio::select! {
                () = tokio::time::sleep(delay) => None,
                () = stop.cancelled() => Some(StatusCode::SERVICE_UNAVAILABLE.into_response()),
            }
        }
        Fault::GraphqlError if graphql => Some(json_response(
            StatusCode::OK,
            &json!({"errors": [{"message": "Internal server error"}], "data": null}),
        )),
        Fault::GraphqlError | Fault::Malformed => {
            let mut response = (StatusCode::OK, "{\"data\": {\"organization\": ").into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            Some(response)
        }
    }
}

fn rate_limit_headers(response: &mut Response, standings: Standings) {
    let headers = response.headers_mut();
    let (org, user) = (standings.organization, standings.user);
    for (name, value) in [
        ("RateLimit-Remaining", org.remaining),
        ("RateLimit-Limit", org.limit),
        ("RateLimit-Reset", org.reset_secs),
        ("RateLimit-User-Remaining", user.remaining),
        ("RateLimit-User-Limit", user.limit),
        ("RateLimit-User-Reset", user.reset_secs),
    ] {
        headers.insert(name, HeaderValue::from(value));
    }
}

/// Buildkite's answer to a GraphQL request without a valid API token.
const UNAUTHORIZED: &str = "Authentication required. Please supply a valid API Access Token: \
                            https://buildkite.com/docs/apis/graphql-api#authentication";

/// Counts an injected fault and turns it into the response to send, if it replaces one.
async fn fault_response(shared: &Shared, graphql: bool) -> Option<Response> {
    let faults = if graphql {
        &shared.graphql_faults
    } else {
        &shared.metrics_faults
    };
    let fault = faults.next(graphql);
    if fault.is_some() {
        shared.stats.faults_injected.fetch_add(1, Ordering::Relaxed);
    }
    injected(fault, graphql, &shared.stop).await
}

/// The 429 for a request past a spent budget.
fn throttled(standings: Standings) -> Response {
    let retry_after = standings.retry_after();
    let whose = if standings.organization.remaining == 0 {
        "your organization's"
    } else {
        "your user's"
    };
    let message = format!(
        "You have exceeded {whose} GraphQL API rate limit. Try again in {retry_after} seconds."
    );
    let body = json!({"errors": [{"message": message}]});
    let mut response = json_response(StatusCode::TOO_MANY_REQUESTS, &body);
    rate_limit_headers(&mut response, standings);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    response
}

/// The 200 for an executed request, with its complexity headers and, on request, stats.
fn answered(mut answer: Answer, standings: Standings, with_stats: bool) -> Response {
    if with_stats && let Some(body) = answer.body.as_object_mut() {
        let org = standings.organization;
        body.insert(
            "stats".to_owned(),
            json!({
                "requestedComplexity": answer.requested,
                "actualComplexity": answer.actual,
                "rateLimit": {"limit": org.limit, "remaining": org.remaining, "reset": org.reset_secs},
            }),
        );
    }
    let mut response = json_response(StatusCode::OK, &answer.body);
    rate_limit_headers(&mut response, standings);
    let headers = response.headers_mut();
    headers.insert(
        "RateLimit-Complexity-Requested",
        HeaderValue::from(answer.requested),
    );
    headers.insert(
        "RateLimit-Complexity-Actual",
        HeaderValue::from(answer.actual),
    );
    response
}

/// `POST /v1`: authenticate, maybe inject a fault, admit by budget, execute, charge.
async fn graphql_endpoint(
    AxumState(shared): AxumState<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let stats = &shared.stats;
    stats.graphql_requests.fetch_add(1, Ordering::Relaxed);
    let user = credential(&headers, "Bearer").and_then(|token| {
        let mut tokens = shared.api_tokens.iter();
        tokens.position(|t| t.expose_secret() == token)
    });
    let Some(user) = user else {
        stats.unauthorized.fetch_add(1, Ordering::Relaxed);
        let body = json!({"errors": [{"message": UNAUTHORIZED}]});
        return json_response(StatusCode::UNAUTHORIZED, &body);
    };
    if let Some(response) = fault_response(&shared, true).await {
        return response;
    }
    let admitted = lock(&shared.limits).admit(user, Instant::now());
    let standings = match admitted {
        Ok(standings) => standings,
        Err(standings) => {
            stats.rate_limited.fetch_add(1, Ordering::Relaxed);
            return throttled(standings);
        }
    };
    let request: Request = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => {
            let body = json!({"errors": [{"message": format!("Unexpected request body: {e}")}]});
            let mut response = json_response(StatusCode::BAD_REQUEST, &body);
            rate_limit_headers(&mut response, standings);
            return response;
        }
    };
    let answer = graphql::run(&shared.schema, &mut lock(&shared.state), &request);
    if answer.body.get("errors").is_some() {
        stats.graphql_errors.fetch_add(1, Ordering::Relaxed);
    }
    let requested = &stats.requested_complexity;
    requested.fetch_add(answer.requested, Ordering::Relaxed);
    let actual = &stats.actual_complexity;
    actual.fetch_add(answer.actual, Ordering::Relaxed);
    let standings = lock(&shared.limits).charge(user, answer.actual, Instant::now());
    let with_stats = headers
        .get("Buildkite-Include-Query-Stats")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    answered(answer, standings, with_stats)
}

/// `GET /v3/metrics`: authenticate with the agent token, maybe inject a fault, count.
async fn metrics_endpoint(
    AxumState(shared): AxumState<Arc<Shared>>,
    headers: HeaderMap,
) -> Response {
    shared
        .stats
        .metrics_requests
        .fetch_add(1, Ordering::Relaxed);
    let authorized =
        credential(&headers, "Token").is_some_and(|t| t == shared.agent_token.expose_secret());
    if !authorized {
        shared.stats.unauthorized.fetch_add(1, Ordering::Relaxed);
        return json_response(
            StatusCode::UNAUTHORIZED,
            &json!({"message": "Unauthorized"}),
        );
    }
    if let Some(response) = fault_response(&shared, false).await {
        return response;
    }
    let body = metrics::body(&lock(&shared.state));
    let mut response = json_response(StatusCode::OK, &body);
    response.headers_mut().insert(
        "Buildkite-Agent-Metrics-Poll-Duration",
        HeaderValue::from(shared.metrics_poll_duration.as_secs()),
    );
    response
}
