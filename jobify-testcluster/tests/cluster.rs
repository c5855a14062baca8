//! The harness against the real control plane: it starts, the simulated kubelet runs each
//! scenario, deletion works as a kubelet's, RBAC is enforced for other identities.
//!
//! `tools/k8s/test-real-cluster.sh` runs these (they are ignored by a plain `cargo test`).

use std::time::Duration;

use jobify_testcluster::{PodScript, Scenario, TestCluster};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::json;

const REAL: &str = "real-cluster tier: run tools/k8s/test-real-cluster.sh";
const PATIENCE: Duration = Duration::from_secs(60);

fn job(name: &str, pod_metadata: serde_json::Value) -> Job {
    serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name},
        "spec": {"backoffLimit": 0, "template": {"metadata": pod_metadata, "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "agent", "image": "busybox:1.36"}],
        }}},
    }))
    .expect("a Job")
}

/// Polls `get` until `done` holds for what it returns.
async fn until<T, F, Fut>(what: &str, get: F, done: impl Fn(&T) -> bool) -> T
where
    F: Fn() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let wait = async {
        loop {
            if let Some(v) = get().await
                && done(&v)
            {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(PATIENCE, wait)
        .await
        .unwrap_or_else(|_| panic!("{what} did not happen in time"))
}

async fn pod_of(pods: &Api<Pod>, job: &str) -> Option<Pod> {
    let lp = ListParams::default().labels(&format!("batch.kubernetes.io/job-name={job}"));
    pods.list(&lp).await.ok()?.items.into_iter().next()
}

fn waiting_reason(pod: &Pod) -> Option<String> {
    pod.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .iter()
        .find_map(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone())
}

fn phase(pod: &Pod) -> Option<&str> {
    pod.status.as_ref()?.phase.as_deref()
}

fn job_condition(job: &Job, kind: &str) -> bool {
    job.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == kind && c.status == "True"))
}

#[tokio::test]
#[ignore = "real-cluster tier: run tools/k8s/test-real-cluster.sh"]
async fn scenarios_drive_real_pods_and_jobs() {
    let _ = REAL;
    let cluster = TestCluster::shared();
    let client = cluster.client().await.expect("client");
    let ns = cluster
        .create_namespace("scenarios")
        .await
        .expect("namespace");
    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);

    let exit3 = job("exits-3", json!({}));
    cluster
        .scripts()
        .set_for_job(&ns, "exits-3", PodScript::new(Scenario::Normal).exiting(3));
    let pull = job(
        "pull",
        json!({"labels": {"sim.jobify.dev/scenario": "image-pull-failure"}}),
    );
    let oom = job(
        "oom",
        json!({"annotations": {"jobify-testcluster/scenario": "oom-killed"}}),
    );
    let evicted = job(
        "evicted",
        json!({"labels": {"sim.jobify.dev/scenario": "evicted"}}),
    );
    let init = job(
        "init",
        json!({"labels": {"sim.jobify.dev/scenario": "init-container-failure"}}),
    );
    let mut init = init;
    if let Some(spec) = init.spec.as_mut().and_then(|s| s.template.spec.as_mut()) {
        spec.init_containers = Some(vec![
            serde_json::from_value(json!({"name": "copy-agent", "image": "busybox:1.36"}))
                .expect("container"),
        ]);
    }
    let pending = job(
        "pending",
        json!({"labels": {"sim.jobify.dev/scenario": "unschedulable"}}),
    );
    for j in [&exit3, &pull, &oom, &evicted, &init, &pending] {
        jobs.create(&PostParams::default(), j)
            .await
            .expect("created");
    }

    let failed = |name: &'static str| {
        let jobs = jobs.clone();
        async move {
            until(
                &format!("Job {name} failed"),
                || async { jobs.get(name).await.ok() },
                |j| job_condition(j, "Failed"),
            )
            .await
        }
    };
    failed("exits-3").await;
    let p = pod_of(&pods, "exits-3").await.expect("pod");
    let terminated = p
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c[0].state.as_ref())
        .and_then(|s| s.terminated.clone())
        .expect("terminated");
    assert_eq!(terminated.exit_code, 3);
    assert_eq!(phase(&p), Some("Failed"));

    let pulled = until(
        "ImagePullBackOff",
        || pod_of(&pods, "pull"),
        |p| waiting_reason(p).as_deref() == Some("ImagePullBackOff"),
    )
    .await;
    assert_eq!(phase(&pulled), Some("Pending"));

    failed("oom").await;
    let p = pod_of(&pods, "oom").await.expect("pod");
    let reason = p
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c[0].state.as_ref())
        .and_then(|s| s.terminated.as_ref())
        .and_then(|t| t.reason.clone());
    assert_eq!(reason.as_deref(), Some("OOMKilled"));

    failed("evicted").await;
    let p = pod_of(&pods, "evicted").await.expect("pod");
    assert_eq!(
        p.status.as_ref().and_then(|s| s.reason.as_deref()),
        Some("Evicted")
    );

    failed("init").await;

    let unscheduled = until(
        "Unschedulable",
        || pod_of(&pods, "pending"),
        |p| {
            p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| {
                    cs.iter().any(|c| {
                        c.type_ == "PodScheduled" && c.reason.as_deref() == Some("Unschedulable")
                    })
                })
        },
    )
    .await;
    assert!(
        unscheduled
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_ref())
            .is_none()
    );

    // Deleting the Job (foreground) takes its running pods down through the kubelet.
    jobs.delete("pull", &DeleteParams::foreground())
        .await
        .expect("deleted");
    until(
        "the pull Job's pod is gone",
        || async { Some(pod_of(&pods, "pull").await.is_none()) },
        |gone| *gone,
    )
    .await;
}

#[tokio::test]
#[ignore = "real-cluster tier: run tools/k8s/test-real-cluster.sh"]
async fn a_service_account_without_a_role_is_forbidden() {
    let cluster = TestCluster::shared();
    let ns = cluster.create_namespace("rbac").await.expect("namespace");
    let client = cluster
        .service_account_client(&ns, "jobify")
        .await
        .expect("service account client");
    let jobs: Api<Job> = Api::namespaced(client, &ns);
    let err = jobs
        .list(&ListParams::default())
        .await
        .expect_err("no role, no list");
    let kube::Error::Api(status) = err else {
        panic!("an API error: {err:?}")
    };
    assert_eq!(status.code, 403, "{status:?}");
    assert!(
        status.message.contains("system:serviceaccount")
            && status.message.contains("cannot list resource \"jobs\""),
        "{}",
        status.message
    );
}
