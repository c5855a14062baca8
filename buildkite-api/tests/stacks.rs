//! The Stacks API client against a fake that answers as Buildkite documents: paths, methods,
//! the agent token, request bodies, decoding, refusals and per-scope rate limits.

use std::time::Duration;

use buildkite_api::Error;
use buildkite_api::stacks::{
    FinishJob, Notification, RegisterStack, ScheduledJobsQuery, StackState, StacksClient,
    StacksEndpoint, StacksJobState,
};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use wiremock::matchers::{body_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const TOKEN: &str = "bkct_cluster_secret_0123456789";

async fn fake() -> (MockServer, StacksClient) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let server = MockServer::start().await;
    let client = StacksClient::builder()
        .agent_token(SecretString::from(TOKEN))
        .agent_url(format!("{}/v3/", server.uri()).parse().expect("mock URL"))
        .timeout(Duration::from_secs(5))
        .user_agent("jobify/9.9.9")
        .build()
        .expect("client builds");
    (server, client)
}

fn authorized() -> wiremock::matchers::HeaderExactMatcher {
    header("authorization", format!("Token {TOKEN}").as_str())
}

fn body(request: &Request) -> Value {
    serde_json::from_slice(&request.body).unwrap_or(Value::Null)
}

fn stack_json(state: &str) -> Value {
    json!({
        "id": "0199b7b4-7e0c-7c1c-8d1c-6a1f0e6e7a11",
        "organization_uuid": "0199b7b4-0000-7000-8000-000000000001",
        "key": "jobify-prod",
        "type": "custom",
        "cluster_queue_key": "kubernetes",
        "metadata": {"cluster": "eu-1"},
        "last_connected_on": null,
        "state": state,
    })
}

#[tokio::test]
async fn register_sends_the_documented_body_and_tells_created_from_updated() {
    let (server, client) = fake().await;
    let mut stack = RegisterStack::custom("jobify-prod", "kubernetes");
    stack.metadata.insert("cluster".into(), "eu-1".into());
    Mock::given(method("POST"))
        .and(path("/v3/stacks/register"))
        .and(authorized())
        .and(header("user-agent", "jobify/9.9.9"))
        .and(body_json(json!({
            "key": "jobify-prod", "type": "custom", "queue_key": "kubernetes",
            "metadata": {"cluster": "eu-1"},
        })))
        .respond_with(ResponseTemplate::new(201).set_body_json(stack_json("connected")))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v3/stacks/register"))
        .respond_with(ResponseTemplate::new(200).set_body_json(stack_json("lost")))
        .mount(&server)
        .await;

    let first = client.register(&stack).await.expect("registers");
    assert!(first.created);
    assert_eq!(first.stack.key, "jobify-prod");
    assert_eq!(first.stack.cluster_queue_key, "kubernetes");
    assert_eq!(first.stack.state, StackState::Connected);
    assert_eq!(first.stack.last_connected_on, None);
    let again = client.register(&stack).await.expect("updates");
    assert!(!again.created);
    assert_eq!(again.stack.state, StackState::Lost);
}

#[tokio::test]
async fn a_stack_key_buildkite_would_refuse_is_refused_before_sending() {
    let (server, client) = fake().await;
    let error = client
        .register(&RegisterStack::custom("jobify.prod", "kubernetes"))
        .await
        .expect_err("refused");
    assert!(matches!(error, Error::InvalidRequest { .. }), "{error:?}");
    assert!(error.to_string().contains("'.'"), "{error}");
    let error = client
        .reserve("jobify prod", &["a".into()], None)
        .await
        .expect_err("refused");
    assert!(error.to_string().contains("' '"), "{error}");
    assert!(
        server
            .received_requests()
            .await
            .unwrap_or_default()
            .is_empty()
    );
}

#[tokio::test]
async fn scheduled_jobs_pass_queue_limit_and_cursor_and_decode_the_nested_page() {
    let (server, client) = fake().await;
    Mock::given(method("GET"))
        .and(path("/v3/stacks/jobify-prod/scheduled-jobs"))
        .and(authorized())
        .and(query_param("queue_key", "kubernetes"))
        .and(query_param("limit", "100"))
        .and(query_param("after", "Y3Vyc29yOjE="))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "jobs": [
                {
                    "id": "0199b7b4-aaaa-7000-8000-000000000001",
                    "priority": 5,
                    "agent_query_rules": ["queue=kubernetes", "resource_class=large"],
                    "scheduled_at": "2023-10-01T12:00:00.000Z",
                    "pipeline": {"slug": "app", "uuid": "p-1"},
                    "build": {"number": 123, "branch": "main", "uuid": "b-1"},
                    "step": {"key": "test"}
                },
                {
                    "id": "0199b7b4-aaaa-7000-8000-000000000002",
                    "priority": 0,
                    "agent_query_rules": [],
                    "scheduled_at": "2023-10-01T12:00:01Z",
                    "pipeline": {"slug": null, "uuid": null},
                    "build": {"number": null, "branch": null, "uuid": null},
                    "step": {"key": null}
                }
            ],
            "page_info": {"has_next_page": false, "end_cursor": null},
            "cluster_queue": {"id": "queue-id", "dispatch_paused": true}
        })))
        .expect(1)
        .mount(&server)
        .await;

    let page = client
        .scheduled_jobs(
            "jobify-prod",
            &ScheduledJobsQuery::first_page("kubernetes")
                .limit(100)
                .after("Y3Vyc29yOjE="),
        )
        .await
        .expect("page decodes");
    assert_eq!(page.jobs.len(), 2);
    let first = &page.jobs[0];
    assert_eq!(first.priority, 5);
    assert_eq!(
        first.agent_query_rules,
        ["queue=kubernetes", "resource_class=large"]
    );
    assert_eq!(first.pipeline.slug.as_deref(), Some("app"));
    assert_eq!(first.build.number, Some(123));
    assert_eq!(first.step.key.as_deref(), Some("test"));
    assert_eq!(page.jobs[1].pipeline.slug, None);
    assert!(!page.page_info.has_next_page);
    assert_eq!(page.page_info.end_cursor, None);
    assert!(page.cluster_queue.dispatch_paused);
}

#[tokio::test]
async fn the_go_clients_spelling_of_the_pause_flag_is_read_too() {
    let (server, client) = fake().await;
    Mock::given(method("GET"))
        .and(path("/v3/stacks/jobify-prod/scheduled-jobs"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "jobs": [],
            "page_info": {"has_next_page": false, "end_cursor": null},
            "cluster_queue": {"id": "queue-id", "paused": true}
        })))
        .mount(&server)
        .await;
    let page = client
        .scheduled_jobs("jobify-prod", &ScheduledJobsQuery::first_page("_default"))
        .await
        .expect("page decodes");
    assert!(page.cluster_queue.dispatch_paused);
}

#[tokio::test]
async fn reserve_sends_uuids_and_expiry_and_reports_what_it_got() {
    let (server, client) = fake().await;
    Mock::given(method("PUT"))
        .and(path("/v3/stacks/jobify-prod/scheduled-jobs/batch-reserve"))
        .and(authorized())
        .and(body_json(json!({
            "job_uuids": ["j-1", "j-2"], "reservation_expiry_seconds": 600,
        })))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"reserved": ["j-1"], "not_reserved": ["j-2"]})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let reservation = client
        .reserve(
            "jobify-prod",
            &["j-1".into(), "j-2".into()],
            Some(Duration::from_secs(600)),
        )
        .await
        .expect("reserves");
    assert_eq!(reservation.reserved, ["j-1"]);
    assert_eq!(reservation.not_reserved, ["j-2"]);
}

#[tokio::test]
async fn without_an_expiry_the_field_is_left_to_buildkites_default() {
    let (server, client) = fake().await;
    Mock::given(method("PUT"))
        .and(path("/v3/stacks/jobify-prod/scheduled-jobs/batch-reserve"))
        .and(body_json(json!({"job_uuids": ["j-1"]})))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"reserved": ["j-1"], "not_reserved": []})),
        )
        .expect(1)
        .mount(&server)
        .await;
    client
        .reserve("jobify-prod", &["j-1".into()], None)
        .await
        .expect("reserves");
}

#[tokio::test]
async fn batches_past_the_documented_limits_are_refused_before_sending() {
    let (server, client) = fake().await;
    let many: Vec<String> = (0..1001).map(|n| format!("j-{n}")).collect();
    for error in [
        client
            .reserve("jobify-prod", &many, None)
            .await
            .expect_err("too many"),
        client
            .job_states("jobify-prod", &many)
            .await
            .expect_err("too many"),
        client
            .reserve("jobify-prod", &many[..1], Some(Duration::from_secs(7200)))
            .await
            .expect_err("too long"),
        client
            .scheduled_jobs(
                "jobify-prod",
                &ScheduledJobsQuery::first_page("kubernetes").limit(0),
            )
            .await
            .expect_err("empty page"),
    ] {
        assert!(matches!(error, Error::InvalidRequest { .. }), "{error:?}");
    }
    assert!(
        server
            .received_requests()
            .await
            .unwrap_or_default()
            .is_empty()
    );
}

#[tokio::test]
async fn a_job_brings_its_command_and_env_and_hides_the_env_from_debug() {
    let (server, client) = fake().await;
    Mock::given(method("GET"))
        .and(path(
            "/v3/stacks/jobify-prod/jobs/0199b7b4-aaaa-7000-8000-000000000001",
        ))
        .and(authorized())
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "0199b7b4-aaaa-7000-8000-000000000001",
            "env": {"BUILDKITE_PLUGINS": "[]", "DEPLOY_KEY": "hunter2"},
            "command": "make test"
        })))
        .mount(&server)
        .await;
    let job = client
        .job("jobify-prod", "0199b7b4-aaaa-7000-8000-000000000001")
        .await
        .expect("job decodes");
    assert_eq!(job.command, "make test");
    assert_eq!(job.env["BUILDKITE_PLUGINS"], "[]");
    let debug = format!("{job:?}");
    assert!(debug.contains("DEPLOY_KEY"), "{debug}");
    assert!(!debug.contains("hunter2"), "{debug}");
}

#[tokio::test]
async fn job_states_decode_known_and_unknown_states() {
    let (server, client) = fake().await;
    Mock::given(method("POST"))
        .and(path("/v3/stacks/jobify-prod/jobs/get-states"))
        .and(body_json(json!({"job_uuids": ["j-1", "j-2", "j-3"]})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "states": {"j-1": "reserved", "j-2": "canceled", "j-3": "parked"}
        })))
        .mount(&server)
        .await;
    let states = client
        .job_states("jobify-prod", &["j-1".into(), "j-2".into(), "j-3".into()])
        .await
        .expect("states decode");
    assert_eq!(states["j-1"], StacksJobState::Reserved);
    assert_eq!(states["j-2"], StacksJobState::Canceled);
    assert_eq!(states["j-3"], StacksJobState::Unknown("parked".into()));
}

#[tokio::test]
async fn finish_always_sends_the_exit_status_and_crops_the_detail_to_4_kb() {
    let (server, client) = fake().await;
    Mock::given(method("POST"))
        .and(path("/v3/stacks/jobify-prod/jobs/j-1/finish"))
        .and(authorized())
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;
    client
        .finish(
            "jobify-prod",
            "j-1",
            &FinishJob {
                exit_status: 0,
                detail: "done without an agent".into(),
            },
        )
        .await
        .expect("finished");
    client
        .finish("jobify-prod", "j-1", &FinishJob::failed("é".repeat(3000)))
        .await
        .expect("finished");
    let requests = server.received_requests().await.unwrap_or_default();
    assert_eq!(body(&requests[0])["exit_status"], 0);
    assert_eq!(body(&requests[1])["exit_status"], -1);
    let detail = body(&requests[1])["detail"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(detail.len() <= 4096, "{} bytes", detail.len());
    assert!(detail.ends_with("exceeded 4 KB)"), "{detail}");
}

#[tokio::test]
async fn notifications_are_cropped_and_partial_failures_come_back() {
    let (server, client) = fake().await;
    Mock::given(method("POST"))
        .and(path("/v3/stacks/jobify-prod/notifications"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "errors": [{"error": "job stack notification count exceeded", "indexes": [1]}]
        })))
        .mount(&server)
        .await;
    let at: jiff::Timestamp = "2026-12-03T10:00:00Z".parse().expect("timestamp");
    let errors = client
        .notify(
            "jobify-prod",
            &[
                Notification {
                    job_uuid: "j-1".into(),
                    detail: "Pod pending: pulling image ruby:3.3".into(),
                    timestamp: Some(at),
                },
                Notification {
                    job_uuid: "j-2".into(),
                    detail: "x".repeat(400),
                    timestamp: None,
                },
            ],
        )
        .await
        .expect("sent");
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].indexes, [1]);
    let requests = server.received_requests().await.unwrap_or_default();
    let sent = body(&requests[0]);
    assert_eq!(
        sent["notifications"][0]["timestamp"],
        "2026-12-03T10:00:00Z"
    );
    assert!(sent["notifications"][1].get("timestamp").is_none());
    let cropped = sent["notifications"][1]["detail"]
        .as_str()
        .unwrap_or_default();
    assert!(cropped.len() <= 255, "{} bytes", cropped.len());

    let empty = client
        .notify(
            "jobify-prod",
            &[Notification {
                job_uuid: "j-1".into(),
                detail: " ".into(),
                timestamp: None,
            }],
        )
        .await
        .expect_err("empty detail");
    assert!(matches!(empty, Error::InvalidRequest { .. }), "{empty:?}");
}

#[tokio::test]
async fn job_acquisition_tokens_match_jobs_and_never_print() {
    let (server, client) = fake().await;
    Mock::given(method("POST"))
        .and(path("/v3/stacks/jobify-prod/job-acquisition-tokens"))
        .and(body_json(
            json!({"job_uuids": ["j-1", "j-2"], "token_lifetime_seconds": 300}),
        ))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "job_acquisition_tokens": [{
                "job_uuid": "j-1",
                "job_acquisition_token": "bkjat_eyJhbGciOi.payload.signature",
                "expires_at": "2026-12-03T10:15:00Z"
            }],
            "not_issued": ["j-2"]
        })))
        .mount(&server)
        .await;
    let issued = client
        .job_acquisition_tokens(
            "jobify-prod",
            &["j-1".into(), "j-2".into()],
            Some(Duration::from_secs(300)),
        )
        .await
        .expect("issued");
    assert_eq!(issued.tokens.len(), 1);
    assert_eq!(issued.tokens[0].job_uuid, "j-1");
    assert!(issued.tokens[0].token.expose_secret().starts_with("bkjat_"));
    assert_eq!(issued.not_issued, ["j-2"]);
    let debug = format!("{issued:?}");
    assert!(!debug.contains("bkjat_"), "{debug}");
}

#[tokio::test]
async fn the_token_identity_says_whether_the_token_is_clustered() {
    let (server, client) = fake().await;
    Mock::given(method("GET"))
        .and(path("/v3/token"))
        .and(authorized())
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "uuid": "t-1", "description": "jobify", "token_type": "cluster",
            "organization_slug": "acme", "organization_uuid": "o-1",
            "cluster_uuid": "", "cluster_name": null
        })))
        .mount(&server)
        .await;
    let identity = client.token_identity().await.expect("decodes");
    assert_eq!(identity.organization_slug.as_deref(), Some("acme"));
    assert!(!identity.is_clustered());
}

#[tokio::test]
async fn refusals_carry_buildkites_message_and_what_to_do_and_never_the_token() {
    let (server, client) = fake().await;
    Mock::given(method("GET"))
        .and(path("/v3/stacks/jobify-prod/scheduled-jobs"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({
            "message": format!("Stack not found with the provided key (token {TOKEN})")
        })))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v3/stacks/register"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"message": "Unauthorized"})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v3/stacks/jobify-prod/jobs/get-states"))
        .respond_with(ResponseTemplate::new(503).set_body_string("unavailable"))
        .mount(&server)
        .await;

    let missing = client
        .scheduled_jobs("jobify-prod", &ScheduledJobsQuery::first_page("kubernetes"))
        .await
        .expect_err("refused");
    assert_eq!(missing.status(), Some(404));
    assert!(!missing.is_transient());
    let text = missing.to_string();
    assert!(text.contains("Stack not found"), "{text}");
    assert!(text.contains("register the stack again"), "{text}");
    assert!(
        !text.contains(TOKEN) && !format!("{missing:?}").contains(TOKEN),
        "{text}"
    );

    let unauthorized = client
        .register(&RegisterStack::custom("jobify-prod", "kubernetes"))
        .await
        .expect_err("unauthorized");
    assert!(matches!(
        unauthorized,
        Error::Unauthorized { status: 401, .. }
    ));
    assert!(
        unauthorized.to_string().contains("cluster agent token"),
        "{unauthorized}"
    );

    let unavailable = client
        .job_states("jobify-prod", &["j-1".into()])
        .await
        .expect_err("unavailable");
    assert!(unavailable.is_transient(), "{unavailable:?}");
}

#[tokio::test]
async fn a_429_holds_only_its_own_scope_and_reports_the_wait() {
    let (server, client) = fake().await;
    Mock::given(method("GET"))
        .and(path("/v3/stacks/jobify-prod/scheduled-jobs"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("RateLimit-Scope", "list-scheduled-jobs")
                .insert_header("RateLimit-Limit", "10")
                .insert_header("RateLimit-Remaining", "0")
                .insert_header("RateLimit-Reset", "1")
                .insert_header("Retry-After", "30")
                .set_body_json(json!({
                    "message": "You have exceeded your API rate limit. Please wait 1 seconds before making more requests.",
                    "scope": "list-scheduled-jobs", "limit": 10, "current": 11, "reset": 1
                })),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path("/v3/stacks/jobify-prod/scheduled-jobs/batch-reserve"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("RateLimit-Scope", "batch-reserve")
                .insert_header("RateLimit-Limit", "10")
                .insert_header("RateLimit-Remaining", "9")
                .insert_header("RateLimit-Reset", "1")
                .set_body_json(json!({"reserved": [], "not_reserved": []})),
        )
        .expect(1)
        .mount(&server)
        .await;

    let query = ScheduledJobsQuery::first_page("kubernetes");
    let limited = client
        .scheduled_jobs("jobify-prod", &query)
        .await
        .expect_err("rate limited");
    assert_eq!(limited.retry_after(), Some(Duration::from_secs(30)));
    // Held: the second list is answered without a request (the mock expects exactly one).
    let held = client
        .scheduled_jobs("jobify-prod", &query)
        .await
        .expect_err("held");
    assert!(matches!(held, Error::RateLimited { .. }), "{held:?}");
    assert!(
        held.retry_after()
            .is_some_and(|wait| wait <= Duration::from_secs(30))
    );
    // Another scope is not held.
    client
        .reserve("jobify-prod", &["j-1".into()], None)
        .await
        .expect("reserve is not held");
    let reserve = client
        .rate_limit(StacksEndpoint::Reserve)
        .expect("headers seen");
    assert_eq!(reserve.remaining, Some(9));
    assert_eq!(
        client
            .rate_limit(StacksEndpoint::ListScheduledJobs)
            .and_then(|limit| limit.remaining),
        Some(0)
    );
}

#[tokio::test]
async fn path_segments_are_escaped_as_buildkites_router_needs() {
    let (server, client) = fake().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "a.b", "env": {}, "command": ""
        })))
        .mount(&server)
        .await;
    client.job("jobify-prod", "a.b/c").await.expect("job");
    let requests = server.received_requests().await.unwrap_or_default();
    assert_eq!(
        requests[0].url.path(),
        "/v3/stacks/jobify-prod/jobs/a%2Eb%2Fc"
    );
}

#[test]
fn a_client_without_a_token_does_not_build() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let error = StacksClient::builder().build().expect_err("no token");
    assert!(matches!(error, Error::MissingToken { .. }), "{error:?}");
    let debug = format!(
        "{:?}",
        StacksClient::builder().agent_token(SecretString::from(TOKEN))
    );
    assert!(!debug.contains(TOKEN), "{debug}");
}
