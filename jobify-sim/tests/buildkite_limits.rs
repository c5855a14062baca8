//! The Buildkite simulator's limits and side channels over real HTTP: the complexity budget
//! (429), the agent metrics endpoint, and seeded fault injection.
#![allow(clippy::unwrap_used, reason = "a failed unwrap fails the test")]

use std::time::Duration;

use jobify_sim::FaultConfig;
use jobify_sim::buildkite::{Budget, BuildkiteSim, BuildkiteSimConfig, JobSpec};
use serde_json::{Value, json};

/// The smallest query (one point): an organization's id by slug.
const ORGANIZATION: &str = "query Org($slug: ID!) { organization(slug: $slug) { id } }";
const TOKEN: &str = "api-token";
const AGENT_TOKEN: &str = "agent-token";

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

async fn start(config: BuildkiteSimConfig) -> BuildkiteSim {
    BuildkiteSim::start(config).await.unwrap()
}

fn config() -> BuildkiteSimConfig {
    BuildkiteSimConfig::new("acme", TOKEN, AGENT_TOKEN)
}

async fn org_query(bk: &BuildkiteSim) -> reqwest::Response {
    org_query_as(bk, TOKEN).await
}

async fn org_query_as(bk: &BuildkiteSim, token: &str) -> reqwest::Response {
    org_query_with(&client(), bk, token).await
}

async fn org_query_with(
    client: &reqwest::Client,
    bk: &BuildkiteSim,
    token: &str,
) -> reqwest::Response {
    try_org_query(client, bk, token).await.unwrap()
}

async fn try_org_query(
    client: &reqwest::Client,
    bk: &BuildkiteSim,
    token: &str,
) -> reqwest::Result<reqwest::Response> {
    client
        .post(bk.graphql_url())
        .bearer_auth(token)
        .json(&json!({"query": ORGANIZATION, "variables": {"slug": "acme"}}))
        .send()
        .await
}

fn header<'r>(response: &'r reqwest::Response, name: &str) -> &'r str {
    response.headers()[name].to_str().unwrap()
}

#[tokio::test]
async fn spent_budget_answers_429_with_retry_after() {
    let bk = start(BuildkiteSimConfig {
        budget: Budget {
            points: 2,
            window: Duration::from_secs(300),
        },
        ..config()
    })
    .await;
    bk.schedule_job(JobSpec::command("a").on_pipeline("app"));
    // Each Pipeline query returns one pipeline: actual complexity 1.
    let first = org_query(&bk).await;
    assert_eq!(first.status(), 200);
    assert_eq!(header(&first, "RateLimit-Remaining"), "1");
    let second = org_query(&bk).await;
    assert_eq!(second.status(), 200);
    assert_eq!(header(&second, "RateLimit-Remaining"), "0");
    let refused = org_query(&bk).await;
    assert_eq!(refused.status(), 429);
    assert_eq!(header(&refused, "RateLimit-Remaining"), "0");
    assert_eq!(header(&refused, "RateLimit-Limit"), "2");
    let retry: u64 = header(&refused, "Retry-After").parse().unwrap();
    assert!((1..=300).contains(&retry), "{retry}");
    assert_eq!(header(&refused, "RateLimit-Reset"), retry.to_string());
    let body: Value = refused.json().await.unwrap();
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("rate limit")
    );
    assert_eq!(bk.stats().rate_limited, 1);
    bk.shutdown().await;
}

#[tokio::test]
async fn a_user_past_their_budget_is_refused_while_other_users_go_on() {
    let bk = start(BuildkiteSimConfig {
        api_tokens: vec![TOKEN.into(), "second-user".into()],
        user_budget: Budget {
            points: 1,
            window: Duration::from_secs(300),
        },
        ..config()
    })
    .await;
    bk.schedule_job(JobSpec::command("a").on_pipeline("app"));
    let first = org_query(&bk).await;
    assert_eq!(header(&first, "RateLimit-User-Remaining"), "0");
    assert_eq!(header(&first, "RateLimit-Remaining"), "19999");
    let refused = org_query(&bk).await;
    assert_eq!(refused.status(), 429);
    assert_eq!(header(&refused, "RateLimit-User-Limit"), "1");
    assert_eq!(
        header(&refused, "Retry-After"),
        header(&refused, "RateLimit-User-Reset")
    );
    let other = org_query_as(&bk, "second-user").await;
    assert_eq!(other.status(), 200);
    assert_eq!(header(&other, "RateLimit-Remaining"), "19998");
    bk.shutdown().await;
}

async fn metrics(bk: &BuildkiteSim, token: &str) -> reqwest::Response {
    client()
        .get(format!("{}/metrics", bk.agent_url()))
        .header("Authorization", format!("Token {token}"))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn metrics_follow_the_jobs_and_suggest_a_poll_interval() {
    let bk = start(BuildkiteSimConfig {
        metrics_poll_duration: Duration::from_secs(15),
        ..config()
    })
    .await;
    let running = bk.schedule_job(JobSpec::command("a").on_queue("kubernetes"));
    bk.schedule_job(JobSpec::command("b").on_queue("kubernetes"));
    let done = bk.schedule_job(JobSpec::command("c").on_queue("kubernetes"));
    let agent = bk.agent_api();
    let tags = ["queue=kubernetes".to_owned()];
    agent.acquire(running.uuid, &tags).unwrap();
    agent.acquire(done.uuid, &tags).unwrap();
    agent.finish(done.uuid, 0);

    let response = metrics(&bk, AGENT_TOKEN).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        header(&response, "Buildkite-Agent-Metrics-Poll-Duration"),
        "15"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({
            "agents": {"busy": 1, "idle": 0, "queues": {"kubernetes": {"busy": 1, "idle": 0, "total": 1}}, "total": 1},
            "jobs": {
                "queues": {"kubernetes": {"running": 1, "scheduled": 1, "total": 2, "waiting": 0}},
                "running": 1, "scheduled": 1, "total": 2, "waiting": 0,
            },
            "organization": {"slug": "acme"},
        })
    );
    assert_eq!(metrics(&bk, "wrong").await.status(), 401);
    assert_eq!(bk.stats().metrics_requests, 2);
    bk.shutdown().await;
}

/// What a client sees for each of `n` Pipeline queries: the status, and whether the body
/// parsed as JSON with errors.
async fn outcomes(bk: &BuildkiteSim, n: usize) -> Vec<(u16, &'static str)> {
    let client = client();
    let mut seen = Vec::new();
    for _ in 0..n {
        let response = org_query_with(&client, bk, TOKEN).await;
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let kind = match serde_json::from_str::<Value>(&text) {
            Err(_) => "not json",
            Ok(body) if body.get("errors").is_some() => "errors",
            Ok(_) => "data",
        };
        seen.push((status, kind));
    }
    seen
}

#[tokio::test]
async fn faults_are_deterministic_for_a_seed() {
    let faults = FaultConfig {
        seed: 42,
        server_error: 0.2,
        graphql_error: 0.2,
        malformed: 0.2,
        ..FaultConfig::none()
    };
    let a = start(BuildkiteSimConfig {
        faults: faults.clone(),
        ..config()
    })
    .await;
    let b = start(BuildkiteSimConfig { faults, ..config() }).await;
    let seen_a = outcomes(&a, 40).await;
    let seen_b = outcomes(&b, 40).await;
    assert_eq!(seen_a, seen_b);
    for kind in [
        (500, "not json"),
        (200, "errors"),
        (200, "not json"),
        (200, "data"),
    ] {
        assert!(
            seen_a.contains(&kind),
            "{kind:?} never happened in {seen_a:?}"
        );
    }
    assert_eq!(a.stats().faults_injected, b.stats().faults_injected);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn a_timeout_fault_holds_the_request_past_the_clients_deadline() {
    let bk = start(BuildkiteSimConfig {
        faults: FaultConfig {
            seed: 1,
            timeout: 1.0,
            timeout_delay: Duration::from_millis(300),
            ..FaultConfig::none()
        },
        ..config()
    })
    .await;
    let patient = client();
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(50))
        .build()
        .unwrap();
    let error = try_org_query(&impatient, &bk, TOKEN).await.unwrap_err();
    assert!(error.is_timeout(), "{error}");
    // A patient client gets the real answer once the delay is over.
    let answer = org_query_with(&patient, &bk, TOKEN).await;
    assert_eq!(answer.status(), 200);
    bk.shutdown().await;
}

#[tokio::test]
async fn shutdown_does_not_wait_for_a_held_request() {
    let bk = start(BuildkiteSimConfig {
        faults: FaultConfig {
            seed: 1,
            timeout: 1.0,
            timeout_delay: Duration::from_secs(3600),
            ..FaultConfig::none()
        },
        ..config()
    })
    .await;
    let client = client();
    let url = bk.graphql_url();
    let held = tokio::spawn(async move {
        let body = json!({"query": ORGANIZATION, "variables": {"slug": "acme"}});
        client.post(url).bearer_auth(TOKEN).json(&body).send().await
    });
    while bk.stats().graphql_requests == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::timeout(Duration::from_secs(10), bk.shutdown())
        .await
        .expect("shutdown waited for the held request");
    let answer = held.await.unwrap();
    assert!(answer.is_err() || answer.unwrap().status() == 503);
}
