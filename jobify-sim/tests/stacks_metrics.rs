//! `GET /v3/metrics` on the Stacks API simulator: Buildkite serves it on the same host and to
//! the same cluster agent token as the Stacks endpoints, and jobify reads its queue gauges
//! from it. Read with jobify's own client (`buildkite-api`) to prove the shapes agree.
#![allow(clippy::unwrap_used, reason = "a failed unwrap fails the test")]

mod stacks_support;

use std::time::Duration;

use buildkite_api::{AgentCounts, Client, Error, JobCounts};
use jobify_sim::FaultConfig;
use jobify_sim::stacks::{JobSpec, StacksSim};
use secrecy::SecretString;
use serde_json::json;
use stacks_support::{QUEUE, STACK, TOKEN, config, registered, start};

const OTHER: &str = "other";

fn client(sim: &StacksSim, token: &str) -> Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Client::builder()
        .agent_token(SecretString::from(token))
        .agent_url(sim.base_url().parse().unwrap())
        .build()
        .unwrap()
}

fn jobs(scheduled: u64, running: u64) -> JobCounts {
    JobCounts {
        scheduled,
        running,
        waiting: 0,
        total: scheduled + running,
    }
}

fn agents(busy: u64) -> AgentCounts {
    AgentCounts {
        busy,
        idle: 0,
        total: busy,
    }
}

#[tokio::test]
async fn metrics_count_reserved_jobs_as_scheduled_and_acquired_jobs_as_running_per_queue() {
    let (sim, api) = registered().await;
    let reserved = sim.add_job(JobSpec::command("reserved").on_queue(QUEUE));
    let acquired = sim.add_job(JobSpec::command("acquired").on_queue(QUEUE));
    sim.add_job(JobSpec::command("waits").on_queue(QUEUE));
    sim.add_job(JobSpec::command("elsewhere").on_queue(OTHER));
    let finished = sim.add_job(JobSpec::command("done").on_queue(OTHER));
    let answer = api
        .reserve(STACK, json!({"job_uuids": [reserved.to_string()]}))
        .await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    assert_eq!(sim.job(reserved).unwrap().state, "reserved");
    sim.acquire(acquired, TOKEN).unwrap();
    sim.acquire(finished, TOKEN).unwrap();
    sim.agent_finished(finished, 0);

    let metrics = client(&sim, TOKEN).agent_metrics().await.unwrap();

    assert_eq!(metrics.organization, "acme");
    assert_eq!(metrics.job_queues[QUEUE], jobs(2, 1));
    assert_eq!(metrics.job_queues[OTHER], jobs(1, 0));
    assert_eq!(metrics.job_queues["default"], jobs(0, 0));
    assert_eq!(metrics.jobs, jobs(3, 1));
    assert_eq!(metrics.agent_queues[QUEUE], agents(1));
    assert_eq!(metrics.agent_queues[OTHER], agents(0));
    assert_eq!(metrics.agents, agents(1));
    assert_eq!(metrics.poll_duration, Some(Duration::from_secs(15)));
    assert_eq!(sim.stats().requests["metrics"], 1);
}

#[tokio::test]
async fn metrics_refuse_a_wrong_token_with_the_stacks_api_401() {
    let (sim, api) = start(config()).await;
    let error = client(&sim, "bkct_wrong")
        .agent_metrics()
        .await
        .unwrap_err();
    assert!(
        matches!(error, Error::Unauthorized { status: 401, .. }),
        "{error:?}"
    );
    let metrics = api.with_token("bkct_wrong").get("metrics").await;
    let stacks = api
        .with_token("bkct_wrong")
        .list(STACK, "queue_key=kubernetes")
        .await;
    assert_eq!(metrics.status, 401);
    assert_eq!(metrics.body, stacks.body, "the same error body");
    let stats = sim.stats();
    assert_eq!(stats.requests["metrics"], 2);
    assert_eq!(stats.unauthorized, 3);
}

#[tokio::test]
async fn metrics_are_not_rate_limited_but_take_injected_faults() {
    let (sim, api) = start(config()).await;
    for _ in 0..30 {
        let answer = api.get("metrics").await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.header("RateLimit-Scope"), None);
    }
    assert_eq!(sim.stats().rate_limited, 0);
    sim.shutdown().await;

    let mut cfg = config();
    cfg.faults = FaultConfig {
        seed: 1,
        server_error: 1.0,
        ..FaultConfig::none()
    };
    let (sim, api) = start(cfg).await;
    assert_eq!(api.get("metrics").await.status, 500);
    assert_eq!(sim.stats().faults_injected, 1);
}
