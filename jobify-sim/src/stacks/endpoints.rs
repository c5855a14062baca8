//! The routes: every documented Stacks endpoint under `/v3/stacks`, the token identity
//! (`GET /v3/token`), the agent's acquire (`PUT /v3/jobs/:id/acquire`) and the queue metrics
//! (`GET /v3/metrics`). Path segments arrive percent-decoded (the Go client writes `.` as
//! `%2E`).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State as AxumState};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::{get, post, put};
use secrecy::ExposeSecret as _;
use serde_json::json;
use uuid::Uuid;

use super::handle::Shared;
use super::refusal::Refusal;
use super::server::{Endpoint, json_response, lock, refused, serve, token};
use super::{body, metrics};

type Sim = AxumState<Arc<Shared>>;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v3/token", get(token_identity))
        .route("/v3/stacks/register", post(register))
        .route("/v3/stacks/{key}/deregister", post(deregister))
        .route("/v3/stacks/{key}/scheduled-jobs", get(list_scheduled))
        .route(
            "/v3/stacks/{key}/scheduled-jobs/batch-reserve",
            put(batch_reserve),
        )
        .route("/v3/stacks/{key}/jobs/get-states", post(get_states))
        .route("/v3/stacks/{key}/jobs/{id}", get(get_job))
        .route("/v3/stacks/{key}/jobs/{id}/finish", post(finish))
        .route("/v3/stacks/{key}/notifications", post(notifications))
        .route(
            "/v3/stacks/{key}/job-acquisition-tokens",
            post(job_acquisition_tokens),
        )
        .route("/v3/jobs/{id}/acquire", put(acquire))
        .route("/v3/metrics", get(agent_metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(shared)
}

async fn not_found() -> Response {
    refused(&Refusal::not_found("Not Found"))
}

async fn method_not_allowed() -> Response {
    json_response(
        StatusCode::METHOD_NOT_ALLOWED,
        &json!({"message": "Method Not Allowed"}),
    )
}

/// `GET /v3/token`: the identity of a cluster (or unclustered) agent token.
async fn token_identity(AxumState(shared): Sim, headers: HeaderMap) -> Response {
    shared.stats.request(Endpoint::Token);
    let given = token(&headers).unwrap_or_default();
    let clustered = given == shared.agent_token.expose_secret();
    let unclustered = shared
        .unclustered_agent_tokens
        .iter()
        .any(|t| t.expose_secret() == given);
    if !(clustered || unclustered) || given.is_empty() {
        shared.stats.unauthorized();
        return refused(&Refusal::unauthorized("Invalid or missing agent token"));
    }
    let state = lock(&shared.state);
    let (cluster_uuid, cluster_name) = if clustered {
        (state.cluster_uuid.to_string(), shared.cluster_name.clone())
    } else {
        (String::new(), String::new())
    };
    let body = json!({
        "uuid": if clustered { state.token_uuid } else { Uuid::nil() },
        "description": "Simulated agent token",
        "token_type": if clustered { "cluster" } else { "unclustered" },
        "organization_slug": shared.organization,
        "organization_uuid": state.organization_uuid,
        "cluster_uuid": cluster_uuid,
        "cluster_name": cluster_name,
        "organization_queue_uuid": "",
        "organization_queue_key": "",
    });
    json_response(StatusCode::OK, &body)
}

async fn register(AxumState(shared): Sim, headers: HeaderMap, raw: Bytes) -> Response {
    serve(&shared, &headers, Endpoint::Register, None, |state, now| {
        state.register(&body::object(&raw)?, now)
    })
    .await
}

async fn deregister(
    AxumState(shared): Sim,
    Path(key): Path<String>,
    headers: HeaderMap,
) -> Response {
    serve(
        &shared,
        &headers,
        Endpoint::Deregister,
        Some(&key),
        |state, _| state.deregister(&key),
    )
    .await
}

async fn list_scheduled(
    AxumState(shared): Sim,
    Path(key): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let endpoint = Endpoint::ListScheduledJobs;
    serve(&shared, &headers, endpoint, Some(&key), |state, now| {
        state.list_scheduled(&key, &query, now)
    })
    .await
}

async fn batch_reserve(
    AxumState(shared): Sim,
    Path(key): Path<String>,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    serve(
        &shared,
        &headers,
        Endpoint::BatchReserve,
        Some(&key),
        |state, now| state.reserve(&key, &body::object(&raw)?, now),
    )
    .await
}

async fn get_job(
    AxumState(shared): Sim,
    Path((key, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    serve(
        &shared,
        &headers,
        Endpoint::ShowJob,
        Some(&key),
        |state, _| state.get_job(&key, &id),
    )
    .await
}

async fn get_states(
    AxumState(shared): Sim,
    Path(key): Path<String>,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    serve(
        &shared,
        &headers,
        Endpoint::GetStates,
        Some(&key),
        |state, now| state.get_states(&key, &body::object(&raw)?, now),
    )
    .await
}

async fn finish(
    AxumState(shared): Sim,
    Path((key, id)): Path<(String, String)>,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    serve(
        &shared,
        &headers,
        Endpoint::Finish,
        Some(&key),
        |state, now| state.finish(&key, &id, &body::object(&raw)?, now),
    )
    .await
}

async fn notifications(
    AxumState(shared): Sim,
    Path(key): Path<String>,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    serve(
        &shared,
        &headers,
        Endpoint::Notifications,
        Some(&key),
        |state, now| state.notify(&key, &body::object(&raw)?, now),
    )
    .await
}

async fn job_acquisition_tokens(
    AxumState(shared): Sim,
    Path(key): Path<String>,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let endpoint = Endpoint::JobAcquisitionTokens;
    serve(&shared, &headers, endpoint, Some(&key), |state, now| {
        state.issue_tokens(&key, &body::object(&raw)?, now)
    })
    .await
}

/// `PUT /v3/jobs/:id/acquire`, as `buildkite-agent start --acquire-job` calls it: with the
/// cluster agent token, or with a job acquisition token for exactly this job.
async fn acquire(AxumState(shared): Sim, Path(id): Path<String>, headers: HeaderMap) -> Response {
    shared.stats.request(Endpoint::Acquire);
    let given = token(&headers).unwrap_or_default();
    let Ok(job) = Uuid::parse_str(&id) else {
        return refused(&Refusal::not_found("Job not found"));
    };
    match shared.acquire_with_token(job, given, None) {
        Ok(_) => {
            let state = lock(&shared.state);
            let now = shared.clock.now().timestamp;
            let body = state.jobs.get(&job).map_or(json!({"id": job}), |j| {
                json!({"id": j.uuid, "state": j.reported_state(now), "command": j.spec.command, "env": j.env})
            });
            json_response(StatusCode::OK, &body)
        }
        Err(refusal) => {
            if refusal.status == 401 {
                shared.stats.unauthorized();
            }
            refused(&refusal)
        }
    }
}

/// `GET /v3/metrics`: the queue metrics, served with the cluster agent token like the Stacks
/// endpoints (faults included) but with no rate-limit scope, as none is documented.
async fn agent_metrics(AxumState(shared): Sim, headers: HeaderMap) -> Response {
    let mut response = serve(&shared, &headers, Endpoint::Metrics, None, |state, _| {
        Ok((StatusCode::OK, metrics::body(state)))
    })
    .await;
    if response.status() == StatusCode::OK {
        response.headers_mut().insert(
            "Buildkite-Agent-Metrics-Poll-Duration",
            HeaderValue::from(shared.metrics_poll_duration.as_secs()),
        );
    }
    response
}
