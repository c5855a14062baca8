//! End to end: pods that die before their agent starts. The Job controller tries a new pod
//! (one at a time, `kubernetes.pod_attempts` in all); when every pod died first, jobify fails
//! the job in Buildkite with the cause instead of leaving it scheduled with nothing running
//! for it. Both hold across a restart of jobify: the pods tried are counted in the cluster.

mod e2e_support;

use std::time::Duration;

use e2e_support::{Harness, eventually, nothing_in_flight};
use jobify::simenv::SimEnvConfig;
use jobify_sim::buildkite::JobSpec;
use jobify_sim::kubernetes::{Scenarios, Timings};
use k8s_openapi::api::core::v1::Pod;
use uuid::Uuid;

const NAMESPACE: &str = "ci";

const CONFIG: &str = r#"
[[queues]]
name = "linux"

[kubernetes]
namespace = "ci"
pod_attempts = 3
"#;

/// The pods of `job`, pending ones first (by name), as (name, phase).
fn pods_of(harness: &Harness, job: Uuid) -> Vec<(String, String)> {
    let mut pods: Vec<(String, String)> = harness
        .env
        .kubernetes()
        .pods(NAMESPACE)
        .iter()
        .filter(|pod| {
            pod.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(jobify_k8s::labels::JOB_UUID))
                == Some(&job.to_string())
        })
        .map(|pod: &Pod| {
            (
                pod.metadata.name.clone().unwrap_or_default(),
                pod.status
                    .as_ref()
                    .and_then(|s| s.phase.clone())
                    .unwrap_or_default(),
            )
        })
        .collect();
    pods.sort();
    pods
}

/// How many Kubernetes Jobs were created for `job`.
fn jobs_created(harness: &Harness, job: Uuid) -> usize {
    let uuid = job.to_string();
    harness
        .env
        .kubernetes()
        .job_creations()
        .iter()
        .filter(|creation| creation.name.contains(&uuid))
        .count()
}

/// Waits for a pending pod of `job` that `evicted` does not hold yet, and evicts it.
async fn evict_next_pod(harness: &Harness, job: Uuid, evicted: &mut Vec<String>) {
    let mut target = None;
    eventually("a new pending pod", async || {
        match pods_of(harness, job)
            .into_iter()
            .find(|(name, phase)| phase == "Pending" && !evicted.contains(name))
        {
            Some((name, _)) => {
                target = Some(name);
                Ok(())
            }
            None => Err(format!("pods: {:?}", pods_of(harness, job))),
        }
    })
    .await;
    let name = target.expect("found");
    assert!(
        harness.env.kubernetes().evict_pod(
            NAMESPACE,
            &name,
            "The node was low on resource: memory."
        ),
        "evicted {name}"
    );
    evicted.push(name);
}

fn slow_starts() -> SimEnvConfig {
    SimEnvConfig {
        scenarios: Scenarios {
            slow_image_marker: "slow-toolchain".to_owned(),
            ..Scenarios::default()
        },
        timings: Timings {
            // Long enough to evict a pod before its agent starts, short enough for a test.
            slow_start_delay: Duration::from_secs(3),
            ..Timings::default()
        },
        ..SimEnvConfig::default()
    }
}

fn slow_job(label: &str) -> JobSpec {
    JobSpec::command(label)
        .on_queue("linux")
        .on_pipeline("app")
        .with_plugins(
            serde_json::json!([{ "kubernetes": { "podSpec": { "containers": [
            { "image": "ghcr.io/acme/slow-toolchain:2", "command": ["make"] }
        ] } } }]),
        )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_evicted_before_its_agent_starts_is_replaced_and_the_job_runs_once() {
    let mut harness = Harness::start(slow_starts()).await;
    let job = harness
        .env
        .buildkite()
        .schedule_job(slow_job("evicted once"));
    let (config, listen) = harness.config(CONFIG, &[]);
    let jobify = harness.start_jobify(config, listen);

    let mut evicted = Vec::new();
    evict_next_pod(&harness, job.uuid, &mut evicted).await;
    // jobify restarts while the Job controller waits to try the next pod: nothing it kept
    // in memory is needed.
    jobify.stop().await;
    let (config, listen) = harness.config(CONFIG, &[]);
    let jobify = harness.start_jobify(config, listen);

    eventually("the job runs in the second pod", async || {
        match harness.env.buildkite().job(job.uuid) {
            Some(state) if state.state == "FINISHED" => Ok(()),
            other => Err(format!("{other:?}; pods {:?}", pods_of(&harness, job.uuid))),
        }
    })
    .await;
    let state = harness.env.buildkite().job(job.uuid).expect("job");
    assert_eq!(state.acquired_count, 1, "acquired once");
    assert!(!state.canceled_by_api && state.annotations.is_empty());
    assert_eq!(jobs_created(&harness, job.uuid), 1, "one Kubernetes Job");
    assert_eq!(
        pods_of(&harness, job.uuid).len(),
        2,
        "two pods, one at a time"
    );
    eventually("the slot is freed", async || {
        nothing_in_flight(&jobify).await
    })
    .await;
    jobify.stop().await;
    harness.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_every_pod_dies_before_its_agent_is_failed_in_buildkite_with_the_cause() {
    let mut harness = Harness::start(slow_starts()).await;
    let job = harness
        .env
        .buildkite()
        .schedule_job(slow_job("evicted always"));
    let (config, listen) = harness.config(CONFIG, &[]);
    let jobify = harness.start_jobify(config, listen);

    let mut evicted = Vec::new();
    for _ in 0..3 {
        evict_next_pod(&harness, job.uuid, &mut evicted).await;
    }
    eventually(
        "the job is annotated with the cause and cancelled",
        async || {
            let state = harness.env.buildkite().job(job.uuid).ok_or("unknown job")?;
            let annotated = state.annotations.iter().any(|a| {
                a.contains("pod_failed_before_start")
                    && a.contains("3 pods tried")
                    && a.contains("Evicted")
            });
            if state.state == "CANCELED" && state.canceled_by_api && annotated {
                Ok(())
            } else {
                Err(format!(
                    "{} with annotations {:?}",
                    state.state, state.annotations
                ))
            }
        },
    )
    .await;
    assert_eq!(
        harness
            .env
            .buildkite()
            .job(job.uuid)
            .expect("job")
            .acquired_count,
        0,
        "no agent ever ran"
    );
    assert_eq!(jobs_created(&harness, job.uuid), 1, "one Kubernetes Job");
    assert!(
        pods_of(&harness, job.uuid)
            .iter()
            .all(|(name, _)| evicted.contains(name)),
        "no pod beyond the three evicted"
    );
    eventually("the slot is freed", async || {
        nothing_in_flight(&jobify).await
    })
    .await;
    jobify.stop().await;
    harness.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_job_whose_pod_is_evicted_loses_its_agent_and_gets_no_second_pod() {
    let mut harness = Harness::start(SimEnvConfig::default()).await;
    let job = harness.env.buildkite().schedule_job(
        JobSpec::command("long build")
            .on_queue("linux")
            .on_pipeline("app")
            .running(Duration::from_secs(600), 0),
    );
    let (config, listen) = harness.config(CONFIG, &[]);
    let jobify = harness.start_jobify(config, listen);
    let mut running = None;
    eventually("the agent runs the job", async || {
        let state = harness.env.buildkite().job(job.uuid).ok_or("unknown job")?;
        let pods = pods_of(&harness, job.uuid);
        match pods.iter().find(|(_, phase)| phase == "Running") {
            Some((name, _)) if state.state == "RUNNING" => {
                running = Some(name.clone());
                Ok(())
            }
            _ => Err(format!("{} with pods {pods:?}", state.state)),
        }
    })
    .await;
    let pod = running.expect("found");
    assert!(harness.env.kubernetes().evict_pod(
        NAMESPACE,
        &pod,
        "The node was low on resource: memory."
    ));
    eventually("the Job is deleted and the slot freed", async || {
        let jobs = harness.kube_jobs(NAMESPACE);
        if !jobs.is_empty() {
            return Err(format!(
                "Jobs left: {jobs:?}; agents lost {:?}; Job statuses {:?}",
                jobify.metric("jobify_workloads_agents_lost_total").await,
                harness
                    .env
                    .kubernetes()
                    .jobs(NAMESPACE)
                    .iter()
                    .map(|p| p.status.clone())
                    .collect::<Vec<_>>()
            ));
        }
        nothing_in_flight(&jobify).await
    })
    .await;
    assert_eq!(
        jobify.metric("jobify_workloads_agents_lost_total").await,
        Some(1.0)
    );
    let state = harness.env.buildkite().job(job.uuid).expect("job");
    assert_eq!(state.acquired_count, 1, "acquired once, never again");
    assert_ne!(state.state, "SCHEDULED", "the lost agent ended the job");
    assert!(
        !state.canceled_by_api,
        "Buildkite reports the lost agent; jobify cancels nothing"
    );
    assert_eq!(jobs_created(&harness, job.uuid), 1, "one Kubernetes Job");
    assert!(
        pods_of(&harness, job.uuid)
            .iter()
            .all(|(name, _)| *name == pod),
        "no second pod: {:?}",
        pods_of(&harness, job.uuid)
    );
    jobify.stop().await;
    harness.shutdown().await;
}
