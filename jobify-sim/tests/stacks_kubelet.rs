//! The Stacks API simulator behind the Kubernetes simulator's kubelet: a pod whose agent
//! acquires a reserved job runs it, and the Stacks side sees the job run and finish.
#![allow(clippy::unwrap_used, reason = "a failed unwrap fails the test")]

#[path = "kubernetes_support/mod.rs"]
mod kubernetes_support;
mod stacks_support;

use std::time::Duration;

use jobify_sim::kubernetes::KubeSimConfig;
use jobify_sim::stacks::{Credential, JobSpec};
use k8s_openapi::api::batch::v1::Job;
use kube::Api as KubeApi;
use kube::api::PostParams;
use kubernetes_support::{NS, eventually};
use serde_json::json;
use stacks_support::{QUEUE, STACK, registered};

fn agent_job(name: &str, job: uuid::Uuid) -> Job {
    serde_json::from_value(json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"backoffLimit": 0, "template": {"spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "agent", "image": "buildkite/agent", "env": [
                {"name": "BUILDKITE_AGENT_ACQUIRE_JOB", "value": job.to_string()},
                {"name": "BUILDKITE_AGENT_TAGS", "value": format!("queue={QUEUE}")},
            ]}],
        }}},
    }))
    .unwrap()
}

#[tokio::test]
async fn a_pods_agent_runs_the_reserved_job_and_the_stack_sees_it_finish() {
    let (stacks, api) = registered().await;
    let job = stacks.add_job(
        JobSpec::command("make")
            .on_queue(QUEUE)
            .running(Duration::from_millis(20), 3),
    );
    api.reserve(STACK, json!({"job_uuids": [job.to_string()]}))
        .await;
    let config = KubeSimConfig {
        agent: Some(stacks.agent_api()),
        ..KubeSimConfig::default()
    };
    let (kube, client) = kubernetes_support::start(config).await;
    let jobs: KubeApi<Job> = KubeApi::namespaced(client, NS);
    jobs.create(&PostParams::default(), &agent_job("buildkite-a", job))
        .await
        .unwrap();
    let done = eventually("the job to finish", || {
        stacks.job(job).filter(|j| j.state == "finished")
    })
    .await;
    assert_eq!(done.exit_status, Some(3));
    assert_eq!(done.acquired_with, Some(Credential::ClusterToken));
    assert_eq!(done.finish, None, "its agent finished it, not a stack");
    let states = api.states(STACK, &[job.to_string()]).await;
    assert_eq!(states.body["states"][job.to_string()], "finished");
    drop(kube);
}
