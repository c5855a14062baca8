//! Each way Buildkite can fail maps to its typed error, and no error or Debug output
//! carries a token.

mod support;

use std::time::Duration;

use buildkite_api::{Error, ScheduledJobsRequest};
use serde_json::json;
use support::{AGENT_TOKEN, GRAPHQL_TOKEN, fake, fake_with_timeout, operation_named};
use wiremock::{Mock, ResponseTemplate};

fn request() -> ScheduledJobsRequest {
    ScheduledJobsRequest::for_queue("acme", "kubernetes")
}

async fn scheduled_jobs_error(response: ResponseTemplate) -> Error {
    let fake = fake().await;
    Mock::given(operation_named("ScheduledJobs"))
        .respond_with(response)
        .mount(&fake.server)
        .await;
    let error = fake
        .client
        .scheduled_jobs(&request())
        .await
        .expect_err("the call fails");
    assert_no_token(&error);
    error
}

fn assert_no_token(error: &Error) {
    for text in [error.to_string(), format!("{error:?}")] {
        assert!(
            !text.contains(GRAPHQL_TOKEN) && !text.contains(AGENT_TOKEN),
            "token leaked: {text}"
        );
    }
}

#[tokio::test]
async fn graphql_errors_in_a_200_keep_the_partial_data() {
    let error = scheduled_jobs_error(ResponseTemplate::new(200).set_body_json(json!({
        "data": { "organization": null },
        "errors": [{ "message": "Field 'jobz' doesn't exist on type 'Organization'", "path": ["organization"] }]
    })))
    .await;

    match &error {
        Error::GraphQl {
            operation,
            errors,
            partial_data,
        } => {
            assert_eq!(*operation, "ScheduledJobs");
            assert_eq!(
                errors[0].message,
                "Field 'jobz' doesn't exist on type 'Organization'"
            );
            assert_eq!(partial_data, &Some(json!({ "organization": null })));
        }
        other => panic!("expected GraphQl, got {other:?}"),
    }
    assert!(error.to_string().contains("jobz"));
    assert!(!error.is_transient());
}

#[tokio::test]
async fn unauthorized_names_the_token_problem() {
    let error = scheduled_jobs_error(
        ResponseTemplate::new(401).set_body_string("{\"message\":\"Unauthorized\"}"),
    )
    .await;

    match &error {
        Error::Unauthorized { status, hint, .. } => {
            assert_eq!(*status, 401);
            assert!(hint.contains("GraphQL API access"), "{hint}");
        }
        other => panic!("expected Unauthorized, got {other:?}"),
    }
}

#[tokio::test]
async fn forbidden_hints_at_the_graphql_scope() {
    let error = scheduled_jobs_error(ResponseTemplate::new(403)).await;

    match &error {
        Error::Unauthorized { status, hint, .. } => {
            assert_eq!(*status, 403);
            assert!(hint.contains("GraphQL API scope"), "{hint}");
        }
        other => panic!("expected Unauthorized, got {other:?}"),
    }
}

#[tokio::test]
async fn rate_limited_carries_retry_after_and_holds_further_requests() {
    let fake = fake().await;
    Mock::given(operation_named("ScheduledJobs"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "30")
                .insert_header("RateLimit-Remaining", "0")
                .insert_header("RateLimit-Limit", "20000")
                .insert_header("RateLimit-Reset", "120"),
        )
        .expect(1)
        .mount(&fake.server)
        .await;

    let error = fake
        .client
        .scheduled_jobs(&request())
        .await
        .expect_err("rate limited");

    match &error {
        Error::RateLimited {
            retry_after,
            rate_limit,
            ..
        } => {
            assert_eq!(*retry_after, Some(Duration::from_secs(30)));
            let limit = rate_limit.expect("headers were sent");
            assert_eq!(limit.remaining, Some(0));
            assert_eq!(limit.reset, Some(Duration::from_secs(120)));
        }
        other => panic!("expected RateLimited, got {other:?}"),
    }
    assert!(error.is_transient());
    assert_eq!(fake.client.rate_limit().and_then(|l| l.remaining), Some(0));

    // Retry-After is honoured: the next call fails without reaching Buildkite (expect(1)).
    let again = fake
        .client
        .scheduled_jobs(&request())
        .await
        .expect_err("still held");
    let wait = again.retry_after().expect("says how long");
    assert!(
        wait <= Duration::from_secs(30) && wait > Duration::from_secs(20),
        "{wait:?}"
    );
}

#[tokio::test]
async fn rate_limited_without_retry_after_falls_back_to_the_reset() {
    let error =
        scheduled_jobs_error(ResponseTemplate::new(429).insert_header("RateLimit-Reset", "45"))
            .await;

    assert_eq!(error.retry_after(), Some(Duration::from_secs(45)));
    assert!(
        error.to_string().ends_with("is rate limited; retry in 45s"),
        "{error}"
    );
}

#[tokio::test]
async fn rate_limited_without_any_hint_says_to_retry_later() {
    let error = scheduled_jobs_error(ResponseTemplate::new(429)).await;

    assert_eq!(error.retry_after(), None);
    assert!(
        error
            .to_string()
            .ends_with("is rate limited and did not say for how long; retry later"),
        "{error}"
    );
}

#[tokio::test]
async fn server_errors_carry_status_and_a_short_body_excerpt() {
    let error =
        scheduled_jobs_error(ResponseTemplate::new(500).set_body_string("x".repeat(5_000))).await;

    match &error {
        Error::Status { status, body, .. } => {
            assert_eq!(*status, 500);
            assert!(body.len() < 600, "excerpt is short: {} bytes", body.len());
            assert!(body.starts_with("xxxx"));
        }
        other => panic!("expected Status, got {other:?}"),
    }
    assert!(error.is_transient());
}

#[tokio::test]
async fn a_server_echoing_the_request_headers_does_not_leak_the_token_into_the_error() {
    // A misconfigured endpoint (an echo service, a debugging proxy) may answer with the
    // request it got, Authorization header included.
    let echo = format!("400 Bad Request\nAuthorization: Bearer {GRAPHQL_TOKEN}\n");
    let error = scheduled_jobs_error(ResponseTemplate::new(400).set_body_string(echo)).await;

    match &error {
        Error::Status { status, body, .. } => {
            assert_eq!(*status, 400);
            assert!(body.contains("Authorization: Bearer [redacted]"), "{body}");
        }
        other => panic!("expected Status, got {other:?}"),
    }
}

#[tokio::test]
async fn a_slow_server_is_a_timeout() {
    let fake = fake_with_timeout(Duration::from_millis(100)).await;
    Mock::given(operation_named("ScheduledJobs"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(10)))
        .mount(&fake.server)
        .await;

    let error = fake
        .client
        .scheduled_jobs(&request())
        .await
        .expect_err("times out");

    match &error {
        Error::Timeout {
            timeout, endpoint, ..
        } => {
            assert_eq!(*timeout, Duration::from_millis(100));
            assert!(endpoint.ends_with("/v1"), "{endpoint}");
        }
        other => panic!("expected Timeout, got {other:?}"),
    }
}

#[tokio::test]
async fn malformed_json_is_a_decode_error() {
    let error = scheduled_jobs_error(
        ResponseTemplate::new(200).set_body_string("{\"data\": {\"organization\": "),
    )
    .await;

    assert!(
        matches!(
            error,
            Error::Decode {
                operation: "ScheduledJobs",
                ..
            }
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn decode_errors_name_the_path_that_failed() {
    let error = scheduled_jobs_error(ResponseTemplate::new(200).set_body_json(json!({
        "data": { "organization": { "jobs": { "count": "many", "edges": [] } } }
    })))
    .await;

    match &error {
        Error::Decode { path, .. } => assert_eq!(path, "data.organization.jobs.count"),
        other => panic!("expected Decode, got {other:?}"),
    }
    assert!(error.to_string().contains("data.organization.jobs.count"));
}

#[tokio::test]
async fn client_debug_output_hides_tokens() {
    let fake = fake().await;

    let debug = format!("{:?}", fake.client);

    assert!(debug.contains("[set]"), "{debug}");
    assert!(
        !debug.contains(GRAPHQL_TOKEN) && !debug.contains(AGENT_TOKEN),
        "{debug}"
    );
}

#[tokio::test]
async fn operations_without_their_token_say_which_is_missing() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = buildkite_api::Client::builder()
        .graphql_url("http://127.0.0.1:9/v1".parse().expect("url"))
        .build()
        .expect("builds without tokens");

    let graphql = client
        .scheduled_jobs(&request())
        .await
        .expect_err("no token");
    let agent = client.agent_metrics().await.expect_err("no token");

    assert!(
        matches!(
            graphql,
            Error::MissingToken {
                which: "GraphQL API"
            }
        ),
        "{graphql:?}"
    );
    assert!(
        matches!(agent, Error::MissingToken { which: "agent" }),
        "{agent:?}"
    );
}

#[tokio::test]
async fn an_absurd_retry_after_is_capped_not_a_panic() {
    // Retry-After is untrusted input: u64::MAX seconds overflows `Instant + Duration`.
    let fake = fake().await;
    Mock::given(operation_named("ScheduledJobs"))
        .respond_with(
            ResponseTemplate::new(429).insert_header("Retry-After", "18446744073709551615"),
        )
        .expect(1)
        .mount(&fake.server)
        .await;

    let error = fake
        .client
        .scheduled_jobs(&request())
        .await
        .expect_err("rate limited");
    assert_eq!(
        error.retry_after(),
        Some(buildkite_api::MAX_RETRY_AFTER),
        "{error}"
    );

    let held = fake
        .client
        .scheduled_jobs(&request())
        .await
        .expect_err("still held");
    let wait = held.retry_after().expect("says how long");
    assert!(wait <= buildkite_api::MAX_RETRY_AFTER, "{wait:?}");
    assert!(
        wait > buildkite_api::MAX_RETRY_AFTER - Duration::from_secs(60),
        "{wait:?}"
    );
}
