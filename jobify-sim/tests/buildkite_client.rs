//! The Buildkite simulator driven by jobify's own client (`buildkite-api`): every operation
//! the client has, over real HTTP, decoded by the client's generated types.

#![allow(clippy::unwrap_used, reason = "a failed unwrap fails the test")]

use buildkite_api::{Annotation, Client, JobLookup, JobState, ScheduledJobsRequest};
use jobify_sim::buildkite::{BuildkiteSim, BuildkiteSimConfig, JobSpec};
use secrecy::SecretString;

async fn sim_and_client() -> (BuildkiteSim, Client) {
    let bk = BuildkiteSim::start(BuildkiteSimConfig::new("acme", "api", "agent"))
        .await
        .unwrap();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = Client::builder()
        .graphql_token(SecretString::from("api"))
        .agent_token(SecretString::from("agent"))
        .graphql_url(bk.graphql_url().parse().unwrap())
        .agent_url(bk.agent_url().parse().unwrap())
        .build()
        .unwrap();
    (bk, client)
}

#[tokio::test]
async fn client_lists_scheduled_jobs_across_pages() {
    let (bk, client) = sim_and_client().await;
    let uuids: Vec<String> = (0..7)
        .map(|n| {
            bk.schedule_job(JobSpec::command(format!("step {n}")).on_queue("kubernetes"))
                .uuid
                .to_string()
        })
        .collect();
    bk.schedule_job(JobSpec::command("other").on_queue("elsewhere"));
    let request = ScheduledJobsRequest {
        page_size: 3,
        ..ScheduledJobsRequest::for_queue("acme", "kubernetes")
    };
    let fetched = client.scheduled_jobs(&request).await.unwrap();
    let page = &fetched.value;
    assert_eq!((page.jobs.len(), page.total, page.truncated), (7, 7, false));
    assert!(page.skipped.is_empty(), "{:?}", page.skipped);
    assert_eq!(fetched.requests, 3);
    let listed: Vec<&str> = page.jobs.iter().map(|job| job.uuid.as_str()).collect();
    assert_eq!(listed, uuids, "oldest first");
    let job = &page.jobs[0];
    assert_eq!(job.state, JobState::Scheduled);
    assert_eq!(job.pipeline_slug(), Some("pipeline"));
    assert_eq!(job.organization_slug(), Some("acme"));
    assert!(job.scheduled_at.is_some());
    let limit = fetched.rate_limit.unwrap();
    assert_eq!(limit.limit, Some(20_000));
    // Pages of 3, 3 and 1 jobs cost 5 + 2 × n each: 11 + 11 + 7.
    assert_eq!(fetched.complexity_actual, 29);
    bk.shutdown().await;
}

#[tokio::test]
async fn a_backlog_beyond_one_poll_returns_the_oldest_jobs_and_leaves_the_newest() {
    let (bk, client) = sim_and_client().await;
    let uuids: Vec<String> = (0..25)
        .map(|n| {
            bk.schedule_job(JobSpec::command(format!("step {n}")).on_queue("kubernetes"))
                .uuid
                .to_string()
        })
        .collect();
    let request = ScheduledJobsRequest {
        page_size: 5,
        max_pages: 2,
        ..ScheduledJobsRequest::for_queue("acme", "kubernetes")
    };
    let fetched = client.scheduled_jobs(&request).await.unwrap();
    let page = &fetched.value;
    let listed: Vec<&str> = page.jobs.iter().map(|job| job.uuid.as_str()).collect();
    assert_eq!(listed, uuids[..10], "the 10 oldest, oldest first");
    assert!(page.truncated, "15 newer jobs were left for the next poll");
    assert_eq!(page.total, 25);
    assert_eq!(fetched.requests, 2);

    // Once the oldest are taken, the next poll reaches the ones that were left.
    for uuid in &uuids[..10] {
        bk.agent_api()
            .acquire(uuid.parse().unwrap(), &["queue=kubernetes".to_owned()])
            .unwrap();
    }
    let next = client.scheduled_jobs(&request).await.unwrap().value;
    let listed: Vec<&str> = next.jobs.iter().map(|job| job.uuid.as_str()).collect();
    assert_eq!(listed, uuids[10..20]);
    assert!(next.truncated);
    bk.shutdown().await;
}

#[tokio::test]
async fn client_follows_job_states_cancels_and_annotates() {
    let (bk, client) = sim_and_client().await;
    let a = bk.schedule_job(JobSpec::command("a").on_queue("kubernetes"));
    let b = bk.schedule_job(JobSpec::command("b").on_queue("kubernetes"));
    bk.agent_api()
        .acquire(b.uuid, &["queue=kubernetes".to_owned()])
        .unwrap();
    let missing = "00000000-0000-0000-0000-000000000000".to_owned();
    let uuids = vec![a.uuid.to_string(), b.uuid.to_string(), missing.clone()];
    let states = client.job_states(&uuids).await.unwrap().value;
    assert_eq!(
        states[0],
        JobLookup::Command {
            id: a.graphql_id.clone(),
            uuid: a.uuid.to_string(),
            state: JobState::Scheduled
        }
    );
    assert!(matches!(
        &states[1],
        JobLookup::Command {
            state: JobState::Running,
            ..
        }
    ));
    assert!(
        matches!(&states[2], JobLookup::NotFound { .. }),
        "{:?}",
        states[2]
    );

    let state = client.cancel_job(&a.graphql_id).await.unwrap().value;
    assert_eq!(state, Some(JobState::Canceled));
    assert!(bk.job(a.uuid).unwrap().canceled_by_api);
    assert!(
        client.cancel_job(&a.graphql_id).await.is_err(),
        "cancelling twice"
    );

    let note = Annotation::error("jobify", "image not found");
    client.annotate_job(&b.graphql_id, &note).await.unwrap();
    assert_eq!(bk.job(b.uuid).unwrap().annotations, ["image not found"]);
    bk.shutdown().await;
}

#[tokio::test]
async fn client_reads_the_queue_metrics() {
    let (bk, client) = sim_and_client().await;
    let first = bk.schedule_job(JobSpec::command("a").on_pipeline("app").on_queue("k8s"));
    for step in ["b", "c"] {
        let spec = JobSpec {
            build: Some(first.build_number),
            ..JobSpec::command(step).on_pipeline("app").on_queue("k8s")
        };
        bk.schedule_job(spec);
    }
    bk.agent_api()
        .acquire(first.uuid, &["queue=k8s".to_owned()])
        .unwrap();
    let metrics = client.agent_metrics().await.unwrap();
    assert_eq!(metrics.organization, "acme");
    assert_eq!((metrics.jobs.running, metrics.jobs.scheduled), (1, 2));
    assert_eq!(metrics.agent_queues["k8s"].busy, 1);
    assert_eq!(
        metrics.poll_duration,
        Some(std::time::Duration::from_secs(15))
    );
    bk.shutdown().await;
}

#[tokio::test]
async fn schema_answers_switched_on_reach_the_client_as_the_schema_allows() {
    let (bk, client) = sim_and_client().await;
    let good = bk.schedule_job(JobSpec::command("good").on_queue("kubernetes"));
    let bad = bk.schedule_job(JobSpec::command("bad").on_queue("kubernetes"));
    bk.set_schema_answers(jobify_sim::buildkite::SchemaAnswers {
        null_annotations: true,
        null_cancel_payloads: true,
        failing_jobs: [bad.uuid].into(),
    });

    let page = client
        .scheduled_jobs(&ScheduledJobsRequest::for_queue("acme", "kubernetes"))
        .await
        .unwrap()
        .value;
    let listed: Vec<String> = page.jobs.iter().map(|job| job.uuid.clone()).collect();
    assert_eq!(listed, [good.uuid.to_string()]);
    assert_eq!(page.skipped.len(), 1, "{:?}", page.skipped);
    assert!(
        page.skipped[0].reason.contains("Internal server error"),
        "{:?}",
        page.skipped
    );

    let states = client
        .job_states(&[good.uuid.to_string(), bad.uuid.to_string()])
        .await
        .unwrap()
        .value;
    assert!(
        matches!(&states[0], JobLookup::Command { .. }),
        "{:?}",
        states[0]
    );
    assert!(
        matches!(&states[1], JobLookup::Unreadable { .. }),
        "{:?}",
        states[1]
    );

    let note = Annotation::error("jobify", "refused");
    let uuid = client
        .annotate_job(&good.graphql_id, &note)
        .await
        .unwrap()
        .value;
    assert_eq!(uuid, None, "annotation: null");
    assert_eq!(bk.job(good.uuid).unwrap().annotations, ["refused"]);
    let state = client.cancel_job(&good.graphql_id).await.unwrap().value;
    assert_eq!(state, None, "a null payload");
    assert_eq!(bk.job(good.uuid).unwrap().state, "CANCELED");
    bk.shutdown().await;
}
