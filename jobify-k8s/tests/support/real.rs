//! What the real-cluster test files share: a namespace of their own with the agent token
//! Secret, and a running jobifier that keeps every event it reported.

use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use jobify_core::{JobId, Jobifier, WorkloadEvent};
use jobify_k8s::KubeJobifier;
use jobify_k8s::config::{KubernetesConfig, SecretKeyRef};
use jobify_testcluster::TestCluster;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use serde_json::json;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::cluster::fast_config;

/// How long a test waits for the real control plane.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// A fresh namespace on `cluster` holding the agent token Secret (created with `admin`),
/// and a fast configuration for it.
pub async fn namespace_with_token(
    cluster: &TestCluster,
    admin: &kube::Client,
    hint: &str,
) -> KubernetesConfig {
    let namespace = cluster.create_namespace(hint).await.expect("namespace");
    let token = SecretKeyRef::default();
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": token.name},
        "stringData": {token.key: "agent-token"},
    }))
    .expect("secret");
    Api::<Secret>::namespaced(admin.clone(), &namespace)
        .create(&PostParams::default(), &secret)
        .await
        .expect("agent token secret");
    KubernetesConfig {
        namespace,
        ..fast_config()
    }
}

/// A jobifier's watchers running; every event it reported is kept in `seen`.
pub struct Recording {
    pub jobifier: KubeJobifier,
    events: BoxStream<'static, WorkloadEvent>,
    pub seen: Vec<WorkloadEvent>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Recording {
    /// Starts `jobifier`'s watchers.
    pub fn start(jobifier: KubeJobifier) -> Self {
        let events = jobifier.events();
        let runner = jobifier.clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            runner
                .run(async move {
                    let _ = stopped.await;
                })
                .await
                .expect("runs once");
        });
        Recording {
            jobifier,
            events,
            seen: Vec::new(),
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Waits for an event that `wanted` accepts, or until `abort` has something to say
    /// (checked between events and every 50 ms), or [`PATIENCE`].
    pub async fn until_or(
        &mut self,
        what: &str,
        wanted: impl Fn(&WorkloadEvent) -> bool,
        abort: impl Fn() -> Option<String>,
    ) -> Result<WorkloadEvent, String> {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            if let Some(why) = abort() {
                return Err(format!("waiting for {what}: {why}"));
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(format!(
                    "no {what} within {} s; events so far: {:?}",
                    PATIENCE.as_secs(),
                    self.seen
                ));
            }
            match tokio::time::timeout(Duration::from_millis(50), self.events.next()).await {
                Ok(Some(event)) => {
                    self.seen.push(event.clone());
                    if wanted(&event) {
                        return Ok(event);
                    }
                }
                Ok(None) => return Err(format!("the event stream ended before {what}")),
                Err(_) => {}
            }
        }
    }

    /// Waits for an event that `wanted` accepts, failing the test if none comes in time.
    pub async fn until(
        &mut self,
        what: &str,
        wanted: impl Fn(&WorkloadEvent) -> bool,
    ) -> WorkloadEvent {
        self.until_or(what, wanted, || None)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Stops the watchers, waits for them to end, and answers every event reported (those
    /// not yet read included).
    pub async fn stop(mut self) -> Vec<WorkloadEvent> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(PATIENCE, task)
                .await
                .expect("watchers stop on shutdown")
                .expect("watch task did not panic");
        }
        while let Some(event) = self.events.next().await {
            self.seen.push(event);
        }
        self.seen
    }
}

/// `Observed`, `Started`, `Succeeded`, `Failed`, `FailedToStart`, `Gone` about `job`, by name
/// (`Restored` and the rest are left out).
pub fn reports_about(events: &[WorkloadEvent], job: JobId) -> Vec<&'static str> {
    events
        .iter()
        .filter_map(|event| match event {
            WorkloadEvent::Observed(w) if w.job == job => Some("Observed"),
            WorkloadEvent::Started(j) if *j == job => Some("Started"),
            WorkloadEvent::Succeeded(j) if *j == job => Some("Succeeded"),
            WorkloadEvent::Failed(j) if *j == job => Some("Failed"),
            WorkloadEvent::FailedToStart { job: j, .. } if *j == job => Some("FailedToStart"),
            WorkloadEvent::Gone(j) if *j == job => Some("Gone"),
            _ => None,
        })
        .collect()
}
