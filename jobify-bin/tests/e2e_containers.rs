//! End to end: the containers around the agent. Native sidecars run beside it and end with
//! the pod; an init container that fails is failed fast in Buildkite with its name and exit
//! code; a container that keeps the pod running after the agent ended is stopped by the
//! completion watch, so no pod outlives its job.

mod e2e_support;

use e2e_support::{Harness, eventually, nothing_in_flight};
use jobify::simenv::SimEnvConfig;
use jobify_sim::buildkite::JobSpec;
use k8s_openapi::api::batch::v1::Job;
use serde_json::json;
use uuid::Uuid;

const NAMESPACE: &str = "ci";

const CONFIG: &str = r#"
[[queues]]
name = "linux"

[kubernetes]
namespace = "ci"

[kubernetes.fail_fast]
check_interval = "200ms"
"#;

fn step(label: &str, plugin: serde_json::Value) -> JobSpec {
    JobSpec::command(label)
        .on_queue("linux")
        .on_pipeline("app")
        .with_plugins(json!([{ "kubernetes": plugin }]))
}

/// The Kubernetes Jobs of `job` now.
fn kube_jobs_of(harness: &Harness, job: Uuid) -> Vec<Job> {
    let uuid = job.to_string();
    harness
        .env
        .kubernetes()
        .jobs(NAMESPACE)
        .into_iter()
        .filter(|j| {
            j.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(jobify_k8s::labels::JOB_UUID))
                == Some(&uuid)
        })
        .collect()
}

fn condition(job: &Job, kind: &str) -> Option<String> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == kind && c.status == "True")
        .map(|c| c.reason.clone().unwrap_or_default())
}

fn creations(harness: &Harness, job: Uuid) -> usize {
    let uuid = job.to_string();
    harness
        .env
        .kubernetes()
        .job_creations()
        .iter()
        .filter(|c| c.name.contains(&uuid))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_with_a_sidecar_finishes_and_its_pod_completes() {
    let mut harness = Harness::start(SimEnvConfig::default()).await;
    let job = harness.env.buildkite().schedule_job(step(
        "with postgres",
        json!({ "sidecars": [{ "image": "postgres:17" }] }),
    ));
    let (config, listen) = harness.config(CONFIG, &[]);
    let jobify = harness.start_jobify(config, listen);
    eventually("the Job completes", async || {
        match kube_jobs_of(&harness, job.uuid).first() {
            Some(j) if condition(j, "Complete").is_some() => Ok(()),
            other => Err(format!(
                "{:?}; buildkite: {:?}",
                other.map(|j| &j.status),
                harness.env.buildkite().job(job.uuid)
            )),
        }
    })
    .await;
    let state = harness.env.buildkite().job(job.uuid).expect("job");
    assert_eq!(state.state, "FINISHED");
    assert!(state.annotations.is_empty(), "{:?}", state.annotations);
    let pods = harness.env.kubernetes().pods(NAMESPACE);
    let pod = pods.first().expect("its pod");
    let status = pod.status.as_ref().expect("status");
    assert_eq!(status.phase.as_deref(), Some("Succeeded"));
    let sidecar = status
        .init_container_statuses
        .iter()
        .flatten()
        .find(|s| s.name.starts_with("sidecar") || s.image == "postgres:17")
        .expect("the sidecar's status");
    assert!(
        sidecar
            .state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .is_some(),
        "the sidecar ended with the pod: {sidecar:?}"
    );
    assert_eq!(jobify.metric("jobify_workloads_stopped_total").await, None);
    eventually("the slot is freed", async || {
        nothing_in_flight(&jobify).await
    })
    .await;
    jobify.stop().await;
    harness.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_init_container_that_fails_fails_the_job_fast_with_its_name_and_exit_code() {
    let mut harness = Harness::start(SimEnvConfig::default()).await;
    let job = harness.env.buildkite().schedule_job(step(
        "migrations fail",
        json!({ "podSpec": {
            "initContainers": [{ "name": "migrate", "image": "ghcr.io/acme/migrate:init-fails" }],
            "containers": [{ "image": "alpine:3", "command": ["make test"] }],
        } }),
    ));
    let (config, listen) = harness.config(CONFIG, &[]);
    let jobify = harness.start_jobify(config, listen);
    eventually("the job is annotated and cancelled", async || {
        let state = harness.env.buildkite().job(job.uuid).ok_or("unknown job")?;
        let annotated = state.annotations.iter().any(|a| {
            a.contains("init_container_failed")
                && a.contains("`migrate`")
                && a.contains("exit code 1")
        });
        if state.state == "CANCELED" && state.canceled_by_api && annotated {
            Ok(())
        } else {
            Err(format!("{} {:?}", state.state, state.annotations))
        }
    })
    .await;
    let state = harness.env.buildkite().job(job.uuid).expect("job");
    assert_eq!(state.acquired_count, 0, "no agent ran");
    assert_eq!(creations(&harness, job.uuid), 1, "one Kubernetes Job");
    eventually("the Job is deleted", async || {
        if kube_jobs_of(&harness, job.uuid).is_empty() {
            Ok(())
        } else {
            Err("still there".to_owned())
        }
    })
    .await;
    eventually("the slot is freed", async || {
        nothing_in_flight(&jobify).await
    })
    .await;
    assert_eq!(
        jobify
            .metric("jobify_workloads_failed_to_start_total")
            .await,
        Some(1.0)
    );
    jobify.stop().await;
    harness.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_that_outlives_its_agent_is_stopped_and_the_slot_freed() {
    let mut harness = Harness::start(SimEnvConfig::default()).await;
    let job = harness.env.buildkite().schedule_job(step(
        "dind as a container",
        json!({ "podSpecPatch": {
            "containers": [{ "name": "dind", "image": "docker:27-dind-runs-forever" }],
        } }),
    ));
    let (config, listen) = harness.config(CONFIG, &[]);
    let jobify = harness.start_jobify(config, listen);
    eventually(
        "the Job is stopped by its deadline",
        async || match kube_jobs_of(&harness, job.uuid).first() {
            Some(j) if condition(j, "Failed").as_deref() == Some("DeadlineExceeded") => Ok(()),
            other => Err(format!("{:?}", other.map(|j| &j.status))),
        },
    )
    .await;
    let kube_job = kube_jobs_of(&harness, job.uuid).remove(0);
    let why = kube_job
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(jobify_k8s::labels::STOPPED_ANNOTATION))
        .cloned()
        .unwrap_or_default();
    assert!(why.contains("`dind`"), "the annotation names it: {why:?}");
    let state = harness.env.buildkite().job(job.uuid).expect("job");
    assert_eq!(state.state, "FINISHED", "the agent finished the job first");
    assert_eq!(state.acquired_count, 1);
    assert!(state.annotations.is_empty() && !state.canceled_by_api);
    assert_eq!(creations(&harness, job.uuid), 1, "one Kubernetes Job");
    eventually("its pod is gone", async || {
        let left = harness.env.kubernetes().pods(NAMESPACE).len();
        if left == 0 {
            Ok(())
        } else {
            Err(format!("{left} pods"))
        }
    })
    .await;
    eventually("the slot is freed", async || {
        nothing_in_flight(&jobify).await
    })
    .await;
    assert_eq!(
        jobify.metric("jobify_workloads_stopped_total").await,
        Some(1.0)
    );
    jobify.stop().await;
    harness.shutdown().await;
}
