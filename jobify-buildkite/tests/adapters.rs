//! The monitor, the feedback and the queue figures against the Buildkite simulator over real
//! HTTP.

use std::collections::BTreeSet;
use std::time::Duration;

use buildkite_api::Client;
use jobify_buildkite::{
    ANNOTATION_CONTEXT, BuildkiteFeedback, BuildkiteMetrics, BuildkiteMonitor, MonitorSettings,
    queue_figures,
};
use jobify_core::{Feedback, JobRef, JobState, Monitor, MonitorError, Reason, ReasonCode, Sweep};
use jobify_sim::buildkite::{BuildkiteSim, BuildkiteSimConfig, JobSpec};
use prometheus_client::registry::Registry;
use secrecy::SecretString;

const TOKEN: &str = "bkua_test_token";

async fn sim() -> BuildkiteSim {
    BuildkiteSim::start(BuildkiteSimConfig::new("acme", TOKEN, "agent-token"))
        .await
        .expect("simulator starts")
}

fn client(sim: &BuildkiteSim, token: &str) -> Client {
    // The workspace's one TLS stack; Err means a test before this one installed it.
    let _already_installed = rustls::crypto::ring::default_provider().install_default();
    Client::builder()
        .graphql_token(SecretString::from(token.to_owned()))
        .agent_token(SecretString::from("agent-token".to_owned()))
        .graphql_url(sim.graphql_url().parse().expect("url"))
        .agent_url(sim.agent_url().parse().expect("url"))
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client")
}

struct Fixture {
    monitor: BuildkiteMonitor,
    registry: Registry,
}

/// A monitor with pages of two jobs.
fn monitor(sim: &BuildkiteSim, token: &str, queues: &[&str], pipelines: &[&str]) -> Fixture {
    let mut registry = Registry::default();
    let metrics = BuildkiteMetrics::register(&mut registry);
    let settings = MonitorSettings {
        organization: "acme".into(),
        queues: queues.iter().map(|q| (*q).to_owned()).collect(),
        pipelines: pipelines
            .iter()
            .map(|p| (*p).to_owned())
            .collect::<BTreeSet<_>>(),
        cluster: None,
        page_size: 2,
        budget_share: 0.5,
    };
    Fixture {
        monitor: BuildkiteMonitor::new(client(sim, token), settings).with_metrics(metrics),
        registry,
    }
}

#[tokio::test]
async fn monitor_lists_jobs_of_served_queues_and_watched_pipelines_across_pages() {
    let sim = sim().await;
    let mut expected = BTreeSet::new();
    for _ in 0..3 {
        expected.insert(
            sim.schedule_job(JobSpec::command("make").on_queue("k8s").on_pipeline("app"))
                .uuid,
        );
    }
    expected.insert(
        sim.schedule_job(
            JobSpec::command("nvidia-smi")
                .on_queue("gpu")
                .on_pipeline("app"),
        )
        .uuid,
    );
    sim.schedule_job(
        JobSpec::command("other queue")
            .on_queue("mac")
            .on_pipeline("app"),
    );
    sim.schedule_job(
        JobSpec::command("other pipeline")
            .on_queue("k8s")
            .on_pipeline("web"),
    );

    let fixture = monitor(&sim, TOKEN, &["k8s", "gpu"], &["app"]);
    let sweep = Sweep::read(&fixture.monitor, 10).await.expect("poll");
    assert!(sweep.complete);
    let jobs = sweep.jobs;
    let found: BTreeSet<_> = jobs.iter().map(|job| *job.id.as_uuid()).collect();
    assert_eq!(found, expected);
    let job = jobs
        .iter()
        .find(|job| job.queue() == Some("gpu"))
        .expect("gpu job");
    assert_eq!(job.organization, "acme");
    assert_eq!(job.pipeline, "app");
    assert_eq!(job.command.as_deref(), Some("nvidia-smi"));
    assert!(!job.source_key.is_empty());

    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &fixture.registry).expect("encodes");
    let remaining = text
        .lines()
        .find_map(|line| line.strip_prefix("jobify_monitor_rate_limit_remaining "))
        .expect("rate limit gauge");
    assert!(remaining.parse::<u32>().expect("number") > 0, "{text}");
    sim.shutdown().await;
}

#[tokio::test]
async fn every_page_of_a_queue_points_at_the_next_queue_so_a_sweep_can_skip_to_it() {
    let sim = sim().await;
    for _ in 0..5 {
        sim.schedule_job(JobSpec::command("make").on_queue("k8s"));
    }
    let gpu = sim
        .schedule_job(JobSpec::command("train").on_queue("gpu"))
        .uuid;
    let fixture = monitor(&sim, TOKEN, &["k8s", "gpu"], &[]);

    let first = fixture.monitor.scheduled(None).await.expect("page");
    assert!(
        first.next.is_some() && first.next != first.next_list,
        "k8s has more pages"
    );
    let gpu_page = fixture
        .monitor
        .scheduled(first.next_list)
        .await
        .expect("page");
    let uuids: Vec<_> = gpu_page.jobs.iter().map(|job| *job.id.as_uuid()).collect();
    assert_eq!(uuids, [gpu]);
    assert_eq!(gpu_page.next, None);
    assert_eq!(gpu_page.next_list, None, "gpu is the last queue");
    sim.shutdown().await;
}

#[tokio::test]
async fn monitor_serves_one_page_a_call_oldest_first() {
    let sim = sim().await;
    let scheduled: Vec<_> = (0..7)
        .map(|i| {
            sim.schedule_job(
                JobSpec::command(format!("step {i}"))
                    .on_queue("k8s")
                    .on_pipeline("app"),
            )
            .uuid
        })
        .collect();
    let fixture = monitor(&sim, TOKEN, &["k8s"], &[]);

    let first = fixture.monitor.scheduled(None).await.expect("poll");
    let uuids = |jobs: &[jobify_core::ScheduledJob]| -> Vec<_> {
        jobs.iter().map(|job| *job.id.as_uuid()).collect()
    };
    assert_eq!(uuids(&first.jobs), scheduled[..2], "the two oldest");
    assert!(first.next.is_some());
    assert_eq!(sim.stats().graphql_requests, 1, "one request a page");

    let sweep = Sweep::read(&fixture.monitor, 10).await.expect("sweep");
    assert!(sweep.complete);
    assert_eq!(sweep.pages, 6, "pages of two overlap by one");
    assert_eq!(uuids(&sweep.jobs), scheduled, "every job, oldest first");
    sim.shutdown().await;
}

#[tokio::test]
async fn a_job_scheduled_between_two_pages_does_not_make_the_sweep_skip_one() {
    let sim = sim().await;
    let mut older: Vec<_> = (0..4)
        .map(|_| {
            sim.schedule_job(JobSpec::command("make").on_queue("k8s"))
                .uuid
        })
        .collect();
    let fixture = monitor(&sim, TOKEN, &["k8s"], &[]);
    let first = fixture.monitor.scheduled(None).await.expect("page");
    // The simulator's cursors are offsets from the newest job, like graphql-ruby's: a new
    // job shifts every older one by one place.
    let newest = sim
        .schedule_job(JobSpec::command("make").on_queue("k8s"))
        .uuid;
    let mut seen: BTreeSet<_> = first.jobs.iter().map(|job| *job.id.as_uuid()).collect();
    let mut next = first.next;
    while let Some(from) = next {
        let page = fixture.monitor.scheduled(Some(from)).await.expect("page");
        seen.extend(page.jobs.iter().map(|job| *job.id.as_uuid()));
        next = page.next;
    }
    older.push(newest);
    assert_eq!(seen, older.into_iter().collect::<BTreeSet<_>>());
    sim.shutdown().await;
}

#[tokio::test]
async fn monitor_fetches_priorities_only_while_a_job_has_another_than_the_default() {
    let sim = sim().await;
    for _ in 0..2 {
        sim.schedule_job(JobSpec::command("make").on_queue("k8s"));
    }
    let fixture = monitor(&sim, TOKEN, &["k8s"], &[]);
    let cost_of_sweep = async || {
        let before = sim.stats().actual_complexity;
        let sweep = Sweep::read(&fixture.monitor, 10).await.expect("sweep");
        (sweep, sim.stats().actual_complexity - before)
    };

    let (sweep, cost) = cost_of_sweep().await;
    assert_eq!(sweep.jobs.len(), 2);
    assert_eq!(cost, 5 + 2 * 2, "the first sweep reads priorities");
    let (sweep, cost) = cost_of_sweep().await;
    assert_eq!(sweep.jobs.len(), 2);
    assert_eq!(
        cost,
        5 + 2,
        "no job had another priority: one point a job, without `priority`"
    );

    let urgent = sim.schedule_job(JobSpec::command("hotfix").on_queue("k8s").with_priority(5));
    let (sweep, _) = cost_of_sweep().await;
    assert_eq!(
        sweep.jobs.len(),
        2,
        "the cheap list holds priority-0 jobs only; it counts the other"
    );
    let (sweep, cost) = cost_of_sweep().await;
    assert_eq!(
        cost,
        2 * 5 + 2 * 4,
        "two pages of the full list, the second repeating one job"
    );
    let job = sweep
        .jobs
        .iter()
        .find(|job| *job.id.as_uuid() == urgent.uuid)
        .expect("the next sweep lists it");
    assert_eq!(job.priority, 5);
    sim.shutdown().await;
}

#[tokio::test]
async fn monitor_reports_a_refused_token_as_unauthorized() {
    let sim = sim().await;
    let fixture = monitor(&sim, "bkua_wrong", &["k8s"], &[]);
    let error = fixture.monitor.scheduled(None).await.expect_err("refused");
    assert!(matches!(error, MonitorError::Unauthorized(_)), "{error:?}");
    assert!(
        !error.to_string().contains("bkua_wrong"),
        "token leaked: {error}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn monitor_reads_back_states_and_leaves_out_unknown_jobs() {
    let sim = sim().await;
    let kept = sim.schedule_job(JobSpec::command("make").on_queue("k8s"));
    let cancelled = sim.schedule_job(JobSpec::command("make").on_queue("k8s"));
    assert!(sim.cancel_job(cancelled.uuid));
    let unknown = uuid::Uuid::new_v4();

    let fixture = monitor(&sim, TOKEN, &["k8s"], &[]);
    let states = fixture
        .monitor
        .states(&[kept.uuid.into(), cancelled.uuid.into(), unknown.into()])
        .await
        .expect("states");
    assert_eq!(
        states,
        vec![
            (kept.uuid.into(), JobState::Scheduled),
            (cancelled.uuid.into(), JobState::Canceled),
        ]
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn feedback_annotates_then_cancels_the_job() {
    let sim = sim().await;
    let job = sim.schedule_job(JobSpec::command("make").on_queue("k8s"));
    let feedback = BuildkiteFeedback::new(client(&sim, TOKEN));
    let reason = Reason::new(
        ReasonCode("guard_privileged"),
        "privileged containers are refused",
    );

    // Without the GraphQL id, as after a restart: the adapter looks it up.
    let reference = JobRef {
        id: job.uuid.into(),
        source_key: None,
    };
    feedback
        .fail_job(&reference, &reason)
        .await
        .expect("feedback");

    let snapshot = sim.job(job.uuid).expect("job");
    assert!(snapshot.canceled_by_api, "{snapshot:?}");
    assert!(
        matches!(snapshot.state.as_str(), "CANCELED" | "CANCELING"),
        "{snapshot:?}"
    );
    let [annotation] = snapshot.annotations.as_slice() else {
        panic!("one annotation expected: {snapshot:?}")
    };
    assert!(
        annotation.contains("privileged containers are refused"),
        "{annotation}"
    );
    assert!(annotation.contains("guard_privileged"), "{annotation}");
    assert!(format!("{:?}", snapshot.annotation_details).contains(ANNOTATION_CONTEXT));
    sim.shutdown().await;
}

#[tokio::test]
async fn feedback_for_an_unknown_job_is_an_error_naming_it() {
    let sim = sim().await;
    let feedback = BuildkiteFeedback::new(client(&sim, TOKEN));
    let id = uuid::Uuid::new_v4();
    let error = feedback
        .fail_job(
            &JobRef {
                id: id.into(),
                source_key: None,
            },
            &Reason::new(ReasonCode("rejected"), "no"),
        )
        .await
        .expect_err("unknown job");
    assert!(error.to_string().contains(&id.to_string()), "{error}");
    sim.shutdown().await;
}

#[tokio::test]
async fn queue_figures_come_from_agent_metrics() {
    let sim = sim().await;
    sim.schedule_job(JobSpec::command("make").on_queue("k8s"));
    sim.schedule_job(JobSpec::command("make").on_queue("k8s"));
    let reading = client(&sim, TOKEN).agent_metrics().await.expect("metrics");
    let figures = queue_figures(&reading);
    assert_eq!(figures["k8s"].scheduled_jobs, 2, "{figures:?}");
    sim.shutdown().await;
}
