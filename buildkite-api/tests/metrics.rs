//! `GET /metrics` on the agent API.

mod support;

use std::time::Duration;

use buildkite_api::{AgentCounts, Error, JobCounts};
use support::{AGENT_TOKEN, fake, fixture};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, ResponseTemplate};

#[tokio::test]
async fn metrics_decode_per_queue_counts_and_the_poll_duration() {
    let fake = fake().await;
    Mock::given(method("GET"))
        .and(path("/v3/metrics"))
        .and(header(
            "authorization",
            format!("Token {AGENT_TOKEN}").as_str(),
        ))
        .and(header("user-agent", "jobify/9.9.9"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(fixture("agent-metrics-response.json"), "application/json")
                .insert_header("Buildkite-Agent-Metrics-Poll-Duration", "15"),
        )
        .expect(1)
        .mount(&fake.server)
        .await;

    let metrics = fake.client.agent_metrics().await.expect("metrics decode");

    assert_eq!(metrics.organization, "superorbital");
    assert_eq!(
        metrics.agents,
        AgentCounts {
            busy: 1,
            idle: 0,
            total: 1
        }
    );
    assert_eq!(
        metrics.agent_queues["default"],
        AgentCounts {
            busy: 1,
            idle: 0,
            total: 1
        }
    );
    assert_eq!(
        metrics.jobs,
        JobCounts {
            scheduled: 0,
            running: 1,
            waiting: 0,
            total: 1
        }
    );
    assert_eq!(
        metrics.job_queues["3462916696"],
        JobCounts {
            scheduled: 0,
            running: 1,
            waiting: 0,
            total: 1
        }
    );
    assert_eq!(metrics.poll_duration, Some(Duration::from_secs(15)));
}

#[tokio::test]
async fn metrics_without_the_poll_header_have_no_poll_duration() {
    let fake = fake().await;
    Mock::given(path("/v3/metrics"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(fixture("agent-metrics-response.json"), "application/json"),
        )
        .mount(&fake.server)
        .await;

    let metrics = fake.client.agent_metrics().await.expect("metrics decode");

    assert_eq!(metrics.poll_duration, None);
}

#[tokio::test]
async fn metrics_with_a_wrong_shape_name_the_path() {
    let fake = fake().await;
    Mock::given(path("/v3/metrics"))
        .respond_with(ResponseTemplate::new(200).set_body_string(
            r#"{"agents":{"busy":1,"idle":0,"total":1},"jobs":{"scheduled":"x","running":0,"waiting":0,"total":0},"organization":{"slug":"a"}}"#,
        ))
        .mount(&fake.server)
        .await;

    let error = fake.client.agent_metrics().await.expect_err("bad shape");

    match &error {
        Error::Decode {
            operation, path, ..
        } => {
            assert_eq!(*operation, "agent metrics");
            assert!(path.starts_with("jobs"), "{path}");
        }
        other => panic!("expected Decode, got {other:?}"),
    }
}

#[tokio::test]
async fn rejected_agent_token_is_unauthorized_with_an_agent_hint() {
    let fake = fake().await;
    Mock::given(path("/v3/metrics"))
        .respond_with(ResponseTemplate::new(401))
        .mount(&fake.server)
        .await;

    let error = fake.client.agent_metrics().await.expect_err("rejected");

    match &error {
        Error::Unauthorized {
            status: 401, hint, ..
        } => assert!(hint.contains("agent token"), "{hint}"),
        other => panic!("expected Unauthorized, got {other:?}"),
    }
    assert!(!format!("{error} {error:?}").contains(AGENT_TOKEN));
}

#[tokio::test]
async fn agent_token_with_a_line_break_is_refused_before_sending_and_not_printed() {
    let fake = fake().await;
    let token = "bkat_line\nbreak_secret";
    let client = buildkite_api::Client::builder()
        .agent_token(secrecy::SecretString::from(token))
        .agent_url(
            format!("{}/v3", fake.server.uri())
                .parse()
                .expect("mock URL"),
        )
        .build()
        .expect("client builds");

    let error = client.agent_metrics().await.expect_err("refused");

    match &error {
        Error::Build { reason, .. } => assert!(reason.contains("agent token"), "{reason}"),
        other => panic!("expected Build, got {other:?}"),
    }
    assert!(!format!("{error} {error:?}").contains("break_secret"));
    let sent = fake.server.received_requests().await.unwrap_or_default();
    assert!(sent.is_empty(), "nothing may be sent: {sent:?}");
}
