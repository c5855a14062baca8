//! `StacksMonitor` against the Stacks API simulator, written from Buildkite's documentation
//! (not from our client): listing with details, reservations that hide a job from other
//! stacks, what this stack reserved listed again until an agent takes it, job acquisition
//! tokens valid for their job only, paused queues.
#![allow(clippy::unwrap_used, reason = "a failed unwrap fails the test")]

use std::time::Duration;

use buildkite_api::stacks::StacksClient;
use jobify_buildkite::{StacksMonitor, StacksSettings, register_stack};
use jobify_core::{JobId, JobState, Monitor, ScheduledPage};
use jobify_sim::stacks::{JobSpec, StacksSim, StacksSimConfig};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use uuid::Uuid;

const TOKEN: &str = "bkct_cluster-token";
const QUEUE: &str = "kubernetes";

async fn sim() -> StacksSim {
    let _ = rustls::crypto::ring::default_provider().install_default();
    StacksSim::start(
        StacksSimConfig::new(TOKEN)
            .with_queue(QUEUE)
            .with_queue("gpu"),
    )
    .await
    .unwrap()
}

fn settings(stack_key: &str) -> StacksSettings {
    StacksSettings {
        stack_key: stack_key.to_owned(),
        queues: vec![QUEUE.to_owned()],
        pipelines: std::collections::BTreeSet::new(),
        page_size: 100,
        reservation_expiry: Duration::from_secs(300),
        job_tokens: false,
        token_lifetime: None,
    }
}

async fn monitor(sim: &StacksSim, settings: StacksSettings) -> StacksMonitor {
    let client = StacksClient::builder()
        .agent_token(SecretString::from(TOKEN))
        .agent_url(sim.base_url().parse().unwrap())
        .build()
        .unwrap();
    register_stack(&client, &settings.stack_key, &settings.queues[0])
        .await
        .unwrap();
    StacksMonitor::new(client, settings)
}

fn ids(page: &ScheduledPage) -> Vec<Uuid> {
    page.jobs.iter().map(|job| *job.id.as_uuid()).collect()
}

fn id(uuid: Uuid) -> JobId {
    JobId::from(uuid)
}

#[tokio::test]
async fn a_sweep_lists_each_queue_oldest_first_with_each_jobs_command_and_plugins() {
    let sim = sim().await;
    let plugins = json!([{"github.com/buildkite-plugins/kubernetes-buildkite-plugin": {
        "podSpec": {"containers": [{"image": "rust:1", "command": ["cargo test"]}]}
    }}]);
    let first = sim.add_job(
        JobSpec::command("cargo test")
            .on_queue(QUEUE)
            .with_plugins(&plugins)
            .on_pipeline("web")
            .with_priority(3),
    );
    let second = sim.add_job(JobSpec::command("make").on_queue(QUEUE));
    let third = sim.add_job(JobSpec::command("make").on_queue(QUEUE));
    let gpu = sim.add_job(JobSpec::command("train").on_queue("gpu"));
    let monitor = monitor(
        &sim,
        StacksSettings {
            queues: vec![QUEUE.to_owned(), "gpu".to_owned()],
            page_size: 2,
            ..settings("jobify")
        },
    )
    .await;

    let page = monitor.scheduled(None).await.unwrap();
    assert_eq!(ids(&page), vec![first, second]);
    let job = &page.jobs[0];
    assert_eq!(job.command.as_deref(), Some("cargo test"));
    assert_eq!(job.priority, 3);
    assert_eq!(job.pipeline, "web");
    assert_eq!(job.queue(), Some(QUEUE));
    assert!(
        job.plugin.present().is_some_and(|p| p.pod_spec.is_some()),
        "the kubernetes plugin was read"
    );
    assert_ne!(page.next, page.next_list, "more of this queue first");

    let page = monitor.scheduled(page.next).await.unwrap();
    assert_eq!(ids(&page), vec![third]);
    assert_eq!(page.next, page.next_list, "then the next queue");
    let page = monitor.scheduled(page.next).await.unwrap();
    assert_eq!(ids(&page), vec![gpu]);
    assert!(page.next.is_none() && page.next_list.is_none());

    // A second sweep reads no job's details again.
    let before = sim.stats().requests.get("show-job").copied();
    let page = monitor.scheduled(None).await.unwrap();
    assert_eq!(ids(&page), vec![first, second]);
    assert_eq!(sim.stats().requests.get("show-job").copied(), before);
}

#[tokio::test]
async fn a_reserved_job_is_hidden_from_other_stacks_and_listed_again_by_this_one_until_an_agent_takes_it()
 {
    let sim = sim().await;
    let job = sim.add_job(JobSpec::command("make").on_queue(QUEUE));
    let ours = monitor(&sim, settings("jobify-a")).await;
    let theirs = monitor(&sim, settings("jobify-b")).await;
    assert_eq!(ids(&ours.scheduled(None).await.unwrap()), vec![job]);
    assert_eq!(ids(&theirs.scheduled(None).await.unwrap()), vec![job]);

    let claims = ours.reserve(&[id(job)]).await.unwrap();
    assert_eq!(claims.len(), 1);
    assert!(claims[0].agent_token.is_none(), "job tokens are off");
    assert_eq!(sim.reservation(job).unwrap().stack, "jobify-a");
    let lost = theirs.reserve(&[id(job)]).await.unwrap();
    assert!(lost.is_empty(), "one stack wins a job");

    assert!(ids(&theirs.scheduled(None).await.unwrap()).is_empty());
    assert_eq!(
        ids(&ours.scheduled(None).await.unwrap()),
        vec![job],
        "this stack still sees what it holds"
    );

    sim.acquire(job, TOKEN).unwrap();
    assert!(
        ids(&ours.scheduled(None).await.unwrap()).is_empty(),
        "an agent has it"
    );
    assert_eq!(
        ours.states(&[id(job)]).await.unwrap(),
        vec![(id(job), JobState::Running)]
    );
}

#[tokio::test]
async fn each_claim_carries_a_token_valid_for_its_own_job_only() {
    let sim = sim().await;
    let a = sim.add_job(JobSpec::command("make").on_queue(QUEUE));
    let b = sim.add_job(JobSpec::command("make").on_queue(QUEUE));
    let monitor = monitor(
        &sim,
        StacksSettings {
            job_tokens: true,
            ..settings("jobify")
        },
    )
    .await;
    let _ = monitor.scheduled(None).await.unwrap();
    let claims = monitor.reserve(&[id(a), id(b)]).await.unwrap();
    let token = |job: Uuid| {
        claims
            .iter()
            .find(|claim| claim.job == id(job))
            .and_then(|claim| claim.agent_token.as_ref())
            .map(|token| token.expose_secret().to_owned())
            .unwrap()
    };
    let (token_a, token_b) = (token(a), token(b));
    assert_ne!(token_a, token_b);
    assert!(token_a.starts_with("bkjat_"));
    assert!(sim.acquire(b, &token_a).is_err(), "a's token cannot take b");
    sim.acquire(a, &token_a).unwrap();
    sim.acquire(b, &token_b).unwrap();
}

#[tokio::test]
async fn a_paused_queue_lists_nothing_until_dispatch_resumes() {
    let sim = sim().await;
    let job = sim.add_job(JobSpec::command("make").on_queue(QUEUE));
    let monitor = monitor(&sim, settings("jobify")).await;
    assert!(sim.pause_queue(QUEUE, true));
    let page = monitor.scheduled(None).await.unwrap();
    assert!(page.jobs.is_empty(), "start nothing new on a paused queue");
    assert!(sim.pause_queue(QUEUE, false));
    assert_eq!(ids(&monitor.scheduled(None).await.unwrap()), vec![job]);
}

#[tokio::test]
async fn a_cancelled_job_reads_as_cancelled() {
    let sim = sim().await;
    let job = sim.add_job(JobSpec::command("make").on_queue(QUEUE));
    let monitor = monitor(&sim, settings("jobify")).await;
    let _ = monitor.scheduled(None).await.unwrap();
    let _ = monitor.reserve(&[id(job)]).await.unwrap();
    assert!(sim.cancel_job(job));
    let states = monitor.states(&[id(job)]).await.unwrap();
    assert!(states[0].1.is_cancelled(), "{states:?}");
    assert!(
        ids(&monitor.scheduled(None).await.unwrap()).is_empty(),
        "a cancelled job is no longer listed as held"
    );
}

#[tokio::test]
async fn a_held_reservation_is_extended_before_it_runs_out() {
    let sim = sim().await;
    let job = sim.add_job(JobSpec::command("make").on_queue(QUEUE));
    let monitor = monitor(
        &sim,
        StacksSettings {
            reservation_expiry: Duration::from_secs(2),
            ..settings("jobify")
        },
    )
    .await;
    let _ = monitor.scheduled(None).await.unwrap();
    let _ = monitor.reserve(&[id(job)]).await.unwrap();
    let first = sim.reservation(job).unwrap().expires_at;
    // More than half of the reservation has run out by the next sweep.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(ids(&monitor.scheduled(None).await.unwrap()), vec![job]);
    let extended = sim.reservation(job).unwrap().expires_at;
    assert!(extended > first, "{extended} > {first}");
}

#[tokio::test]
async fn a_stack_another_process_deregistered_is_registered_again() {
    let sim = sim().await;
    let job = sim.add_job(JobSpec::command("make").on_queue(QUEUE));
    let ours = monitor(&sim, settings("shared-key")).await;
    let theirs = monitor(&sim, settings("shared-key")).await;
    theirs.deregister().await.unwrap();
    assert_eq!(
        sim.stack("shared-key").map(|s| s.state),
        Some("disconnected".to_owned())
    );
    assert_eq!(ids(&ours.scheduled(None).await.unwrap()), vec![job]);
    assert_eq!(
        sim.stack("shared-key").map(|s| s.state),
        Some("connected".to_owned())
    );
}
