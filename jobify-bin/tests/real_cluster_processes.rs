//! The real binary against the real control plane: `jobify run` processes, Buildkite simulated
//! by `jobify-sim` over HTTP, Kubernetes a real kube-apiserver, etcd and
//! kube-controller-manager (`jobify-testcluster`) whose pods a simulated kubelet runs. jobify
//! runs as the ServiceAccount of `examples/deploy/rbac.yaml`, bound to exactly its Role.
//!
//! The simulated kubelet runs no agent, so this test plays the agent of each pod: once the
//! pod runs it acquires the pod's Buildkite job (`BUILDKITE_AGENT_ACQUIRE_JOB`) from the
//! Buildkite simulator, and once the pod ends it finishes the job with the agent container's
//! exit code, as `buildkite-agent start --acquire-job` does.
//!
//! Ignored by a plain `cargo test`; `tools/k8s/test-real-cluster.sh` runs it.

mod process;
mod real_cluster_support;

use std::collections::BTreeSet;
use std::time::Duration;

use jobify_testcluster::TestCluster;
use k8s_openapi::api::batch::v1::Job;
use kube::ResourceExt;
use kube::api::Api;
use real_cluster_support::{
    Replica, Seen, agents, buildkite, eventually, job_uuid, log_tail, namespace_for_jobify,
    patience, step,
};
use serde_json::json;
use std::sync::{Arc, Mutex};
use uuid::Uuid;

/// How many jobs the exactly-once test runs: `JOBIFY_REAL_JOBS`, default 1,000.
fn job_count() -> usize {
    std::env::var("JOBIFY_REAL_JOBS")
        .ok()
        .and_then(|n| n.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(1000)
}

const LEADER_ELECTION: &str = r#"
[leader_election]
enabled = true
lease_duration = "6s"
renew_interval = "2s"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real control plane: tools/k8s/test-real-cluster.sh"]
async fn every_job_runs_exactly_once_with_faults_a_killed_leader_and_a_restart() {
    let cluster = TestCluster::shared();
    let (namespace, kubeconfig, admin) = namespace_for_jobify(cluster, "once").await;
    let buildkite = buildkite(0.10).await;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let watching = agents(
        admin.clone(),
        &namespace,
        buildkite.agent_api(),
        Arc::clone(&seen),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let total = job_count();
    let jobs: Vec<Uuid> = (0..total)
        .map(|i| buildkite.schedule_job(step(&format!("job {i}"))).uuid)
        .collect();

    let first = Replica::start(
        dir.path(),
        "first",
        &buildkite,
        &namespace,
        &kubeconfig,
        200,
        LEADER_ELECTION,
    );
    let second = Replica::start(
        dir.path(),
        "second",
        &buildkite,
        &namespace,
        &kubeconfig,
        200,
        LEADER_ELECTION,
    );
    let finished = || {
        jobs.iter()
            .filter(|j| buildkite.job(**j).is_some_and(|s| s.state == "FINISHED"))
            .count()
    };

    // A third of the jobs done, the leader is killed mid-dispatch.
    eventually("a third of the jobs finish", patience(total), async || {
        let done = finished();
        if done * 3 >= total {
            Ok(())
        } else {
            Err(format!(
                "{done} of {total} finished; first: {}\nsecond: {}",
                log_tail(dir.path(), "first"),
                log_tail(dir.path(), "second")
            ))
        }
    })
    .await;
    let (leader, standby) = if first.leads().await {
        (first, second)
    } else {
        (second, first)
    };
    assert!(!standby.leads().await, "one leader at a time");
    let killed = leader.name.clone();
    leader.kill();
    eventually(
        "the standby takes over",
        Duration::from_secs(60),
        async || {
            if standby.leads().await {
                Ok(())
            } else {
                Err(log_tail(dir.path(), &standby.name))
            }
        },
    )
    .await;

    // Two thirds done, the killed replica comes back (a restart) and the other stops.
    eventually(
        "two thirds of the jobs finish",
        patience(total),
        async || {
            let done = finished();
            if done * 3 >= total * 2 {
                Ok(())
            } else {
                Err(format!("{done} of {total} finished"))
            }
        },
    )
    .await;
    let restarted = Replica::start(
        dir.path(),
        &format!("{killed}-again"),
        &buildkite,
        &namespace,
        &kubeconfig,
        200,
        LEADER_ELECTION,
    );
    assert_eq!(standby.stop(), Some(0), "SIGTERM stops jobify cleanly");

    eventually("every job finishes", patience(total), async || {
        let done = finished();
        if done == total {
            Ok(())
        } else {
            Err(format!(
                "{done} of {total} finished; {}",
                log_tail(dir.path(), &restarted.name)
            ))
        }
    })
    .await;
    {
        let seen = seen.lock().expect("seen");
        for job in &jobs {
            let state = buildkite.job(*job).expect("job");
            assert_eq!(state.acquired_count, 1, "{job} acquired once: {state:?}");
            assert!(
                state.annotations.is_empty() && !state.canceled_by_api,
                "{job}: {state:?}"
            );
            assert_eq!(
                seen.jobs.get(job).map(BTreeSet::len),
                Some(1),
                "{job}: exactly one Kubernetes Job"
            );
            assert_eq!(
                seen.pods.get(job).map(BTreeSet::len),
                Some(1),
                "{job}: exactly one pod"
            );
        }
        assert_eq!(seen.jobs.len(), total, "no Job for a job never scheduled");
    }
    assert!(
        buildkite.stats().graphql_requests > 0,
        "Buildkite was polled through the faults"
    );
    assert_eq!(restarted.stop(), Some(0));
    watching.abort();
    buildkite.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real control plane: tools/k8s/test-real-cluster.sh"]
async fn a_cancelled_job_loses_its_job_and_a_pod_that_dies_before_its_agent_is_failed_in_buildkite()
{
    let cluster = TestCluster::shared();
    let (namespace, kubeconfig, admin) = namespace_for_jobify(cluster, "cancel").await;
    let buildkite = buildkite(0.0).await;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let watching = agents(
        admin.clone(),
        &namespace,
        buildkite.agent_api(),
        Arc::clone(&seen),
    );
    let scenario = |name: &str| json!([{ "kubernetes": { "metadata": { "labels": { "sim.jobify.dev/scenario": name } } } }]);
    let pending =
        buildkite.schedule_job(step("stays pending").with_plugins(scenario("stays-pending")));
    // The first init container fails: in the podSpec layout, `copy-agent`.
    let init = buildkite.schedule_job(step("init fails").with_plugins(json!([{ "kubernetes": {
        "metadata": { "labels": { "sim.jobify.dev/scenario": "init-container-failure" } },
        "podSpec": { "containers": [{ "image": "alpine:3", "command": ["make test"] }] },
    } }])));
    let normal = buildkite.schedule_job(step("runs"));
    // Its pod runs and ends, but no agent acquires the job.
    let unacquired = buildkite.schedule_job(step("agent absent").with_plugins(json!([{
        "kubernetes": { "metadata": { "labels": { "agent": "absent" } } }
    }])));
    let dir = tempfile::tempdir().expect("tempdir");
    let replica = Replica::start(
        dir.path(),
        "only",
        &buildkite,
        &namespace,
        &kubeconfig,
        200,
        "",
    );
    let kube_jobs: Api<Job> = Api::namespaced(admin.clone(), &namespace);
    let job_of = |uuid: Uuid| {
        let kube_jobs = kube_jobs.clone();
        async move {
            kube_jobs
                .list(&Default::default())
                .await
                .map(|l| {
                    l.items
                        .into_iter()
                        .any(|j| job_uuid(j.labels()) == Some(uuid))
                })
                .unwrap_or(false)
        }
    };

    eventually(
        "the pending job has its Kubernetes Job",
        Duration::from_secs(90),
        async || {
            if job_of(pending.uuid).await {
                Ok(())
            } else {
                Err(log_tail(dir.path(), "only"))
            }
        },
    )
    .await;
    assert!(buildkite.cancel_job(pending.uuid), "cancelled in Buildkite");
    eventually(
        "the cancelled job's Kubernetes Job is deleted",
        Duration::from_secs(90),
        async || {
            if job_of(pending.uuid).await {
                Err(log_tail(dir.path(), "only"))
            } else {
                Ok(())
            }
        },
    )
    .await;

    eventually(
        "the job whose init container failed is annotated and cancelled",
        Duration::from_secs(90),
        async || {
            let state = buildkite.job(init.uuid).ok_or("unknown")?;
            let annotated = state
                .annotations
                .iter()
                .any(|a| a.contains("init_container_failed") && a.contains("`copy-agent`"));
            if state.state == "CANCELED" && state.canceled_by_api && annotated {
                Ok(())
            } else {
                Err(format!("{state:?}"))
            }
        },
    )
    .await;
    eventually(
        "the job no agent acquired is failed in Buildkite after the grace",
        Duration::from_secs(120),
        async || {
            let state = buildkite.job(unacquired.uuid).ok_or("unknown")?;
            let annotated = state
                .annotations
                .iter()
                .any(|a| a.contains("agent_never_acquired"));
            if state.state == "CANCELED" && state.canceled_by_api && annotated {
                Ok(())
            } else {
                Err(format!("{state:?}"))
            }
        },
    )
    .await;
    eventually(
        "the normal job finishes",
        Duration::from_secs(90),
        async || match buildkite.job(normal.uuid) {
            Some(s) if s.state == "FINISHED" => Ok(()),
            other => Err(format!("{other:?}")),
        },
    )
    .await;
    {
        let seen = seen.lock().expect("seen");
        assert!(!seen.acquired.contains(&init.uuid), "no agent ran for it");
        assert!(
            !seen.acquired.contains(&pending.uuid),
            "no agent ran for it"
        );
        for uuid in [pending.uuid, init.uuid, normal.uuid] {
            assert_eq!(
                seen.jobs.get(&uuid).map(BTreeSet::len),
                Some(1),
                "{uuid}: one Kubernetes Job"
            );
        }
    }
    assert_eq!(
        replica.metric("jobify_workloads_cancellations_total").await,
        Some(1.0)
    );
    assert_eq!(
        replica
            .metric("jobify_workloads_failed_to_start_total")
            .await,
        Some(2.0),
        "the init failure and the job no agent acquired"
    );
    assert_eq!(replica.stop(), Some(0));
    watching.abort();
    buildkite.shutdown().await;
}
