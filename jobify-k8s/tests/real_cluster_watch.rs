//! `KubeJobifier`'s watchers against a real kube-apiserver when the server ends a watch and
//! when a resourceVersion has become too old (410 Gone): a Job created afterwards is still
//! observed, and nothing is reported twice.
//!
//! kube-runtime's watcher asks every watch for `timeoutSeconds=290`; the client here asks
//! for 2 s instead (`support::requests`), so the API server ends the watches within the test.
//! The 410 needs a server that serves watches from etcd (`--watch-cache=false`; the watch
//! cache would answer from memory, with bookmarks keeping the resourceVersion fresh) and an
//! etcd compacted past the watchers' resourceVersion: that control plane is the test's own.
//!
//! Ignored by a plain `cargo test`; run with `tools/k8s/test-real-cluster.sh`.

mod support;

use std::time::Duration;

use jobify_core::{JobId, Jobifier, Launched, WorkloadEvent};
use jobify_k8s::KubeJobifier;
use jobify_k8s::config::KubernetesConfig;
use jobify_testcluster::{Options, TestCluster};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use serde_json::json;
use support::cluster::CONTROLLER;
use support::corpus::default_template;
use support::fixtures::scheduled;
use support::logs::Logs;
use support::real::{PATIENCE, Recording, namespace_with_token, reports_about};
use support::requests::{Requests, recording_client};

/// The watch timeout the client asks for.
const WATCH_SECONDS: u32 = 2;

/// Polls `check` until it holds, failing the test if it does not in time.
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let wait = async {
        while !check() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(PATIENCE, wait)
        .await
        .unwrap_or_else(|_| panic!("{what} did not happen in time"));
}

/// Waits until the server has ended, and the watchers have restarted, `n` more watches of
/// Jobs and of pods.
async fn watches_restart(requests: &Requests, n: usize) {
    let (jobs, pods) = (requests.watches("jobs"), requests.watches("pods"));
    eventually("the Jobs and pods watches end and restart", || {
        requests.watches("jobs") >= jobs + n && requests.watches("pods") >= pods + n
    })
    .await;
}

/// Launches `job` and waits until it is observed, started and has succeeded.
async fn runs_to_completion(running: &mut Recording, job: &jobify_core::ScheduledJob) {
    assert_eq!(
        running.jobifier.launch(job, &default_template()).await,
        Ok(Launched::Created)
    );
    running
        .until("Succeeded", |e| *e == WorkloadEvent::Succeeded(job.id))
        .await;
}

/// Each of `jobs` was reported observed, started and succeeded, once each and in that order.
fn reported_once(events: &[WorkloadEvent], jobs: &[JobId]) {
    for job in jobs {
        assert_eq!(
            reports_about(events, *job),
            ["Observed", "Started", "Succeeded"],
            "job {job}, all events: {events:?}"
        );
    }
}

async fn start(
    cluster: &TestCluster,
    hint: &str,
) -> (Recording, Requests, KubernetesConfig, kube::Client) {
    let admin = cluster.client().await.expect("admin client");
    let config = namespace_with_token(cluster, &admin, hint).await;
    let (client, requests) = recording_client(cluster.kubeconfig(), WATCH_SECONDS).await;
    let mut running = Recording::start(KubeJobifier::new(client, config.clone(), CONTROLLER));
    running
        .until("Restored", |e| matches!(e, WorkloadEvent::Restored(_)))
        .await;
    (running, requests, config, admin)
}

#[tokio::test]
#[ignore = "real-cluster tier: run tools/k8s/test-real-cluster.sh"]
async fn watches_the_server_ends_are_resumed_and_nothing_is_reported_twice() {
    let cluster = TestCluster::shared();
    let (mut running, requests, _config, _admin) = start(cluster, "watch-ends").await;
    let before = scheduled("queue=kubernetes");
    runs_to_completion(&mut running, &before).await;

    watches_restart(&requests, 2).await;
    let after = scheduled("queue=kubernetes");
    runs_to_completion(&mut running, &after).await;
    // Time for a late duplicate to show: more watches ended and resumed.
    watches_restart(&requests, 2).await;

    let events = running.stop().await;
    reported_once(&events, &[before.id, after.id]);
    let restored = events
        .iter()
        .filter(|e| matches!(e, WorkloadEvent::Restored(_)))
        .count();
    assert_eq!(
        (restored, requests.lists("jobs"), requests.lists("pods")),
        (1, 1, 1),
        "a watch the server ends resumes from its resourceVersion: no second listing, no \
         second Restored; events: {events:?}"
    );
}

#[tokio::test]
#[ignore = "real-cluster tier: run tools/k8s/test-real-cluster.sh"]
async fn after_410_gone_the_watchers_list_again_and_nothing_is_reported_twice() {
    let (logs, _guard) = Logs::capture();
    let cluster = TestCluster::start_with_options(&Options {
        apiserver_args: vec!["--watch-cache=false".to_owned()],
    })
    .await
    .expect("a control plane of this test's own");
    let (mut running, requests, config, admin) = start(&cluster, "watch-gone").await;
    let before = scheduled("queue=kubernetes");
    runs_to_completion(&mut running, &before).await;

    // Move etcd on past the watchers' resourceVersion and compact it, until a resumed watch
    // is told 410 Gone and the watchers list again.
    let (jobs, pods) = (requests.lists("jobs"), requests.lists("pods"));
    let config_maps: Api<ConfigMap> = Api::namespaced(admin.clone(), &config.namespace);
    let mut n = 0;
    let relisted = async {
        while requests.lists("jobs") == jobs || requests.lists("pods") == pods {
            n += 1;
            let filler: ConfigMap = serde_json::from_value(json!({
                "metadata": {"name": format!("filler-{n}")},
            }))
            .expect("ConfigMap");
            config_maps
                .create(&PostParams::default(), &filler)
                .await
                .expect("a write to etcd");
            cluster.compact_etcd().await.expect("etcd compacts");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    };
    tokio::time::timeout(PATIENCE, relisted)
        .await
        .expect("the watchers list again after etcd's compaction");
    // kube-runtime's watcher yields the 410 (an `ERROR` event, reason `Expired`) before it
    // lists again; jobify logs it.
    let gone = logs.matching(&["watch expired (410 Gone)", "too old", "Expired"]);
    assert!(
        !gone.is_empty(),
        "jobify logged the 410 it recovered from: {:#?}",
        logs.lines()
    );

    let after = scheduled("queue=kubernetes");
    runs_to_completion(&mut running, &after).await;
    watches_restart(&requests, 2).await;

    let events = running.stop().await;
    reported_once(&events, &[before.id, after.id]);
    // Each listing restores what it found: first nothing, then the finished Job.
    let restored: Vec<Vec<(JobId, bool)>> = events
        .iter()
        .filter_map(|e| match e {
            WorkloadEvent::Restored(workloads) => {
                Some(workloads.iter().map(|w| (w.job, w.finished)).collect())
            }
            _ => None,
        })
        .collect();
    assert!(
        restored.len() >= 2 && restored[0].is_empty(),
        "{restored:?}"
    );
    for later in &restored[1..] {
        assert_eq!(later, &[(before.id, true)], "{events:?}");
    }
}
