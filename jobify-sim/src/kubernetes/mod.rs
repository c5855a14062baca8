//! Kubernetes API simulator: `batch/v1` Jobs, `v1` Pods, Events, Secrets and PodTemplates and
//! `coordination.k8s.io/v1` Leases served over real HTTP, with a simulated job controller,
//! scheduler and kubelet, so that jobify's real `kube::Client` and `kube_runtime` watchers
//! run against it unchanged.
//!
//! Start with [`KubeSim::start`]; point a client at [`KubeSim::url`] (or a kubeconfig from
//! [`KubeSim::write_kubeconfig`]); inspect the cluster with [`KubeSim::jobs`],
//! [`KubeSim::pods`], [`KubeSim::events`], [`KubeSim::secrets`], [`KubeSim::stats`].
//!
//! ```text
//!  kube::Client ──HTTP──▶ server (routes, faults) ──▶ cluster (admission, validation,
//!                              │ watch                    deletion, garbage collection)
//!                              ▼                              │
//!                        store (objects, resourceVersion, ◀───┤
//!                               change window)                 ├── controller (one loop per Job)
//!                                                             └── kubelet (one loop per Pod)
//!                                                                   └─▶ AgentApi (Buildkite side)
//! ```
//!
//! What a pod does is its [`Scenario`], chosen by a label or by its spec (see
//! [`Scenarios`]). How long things take is [`Timings`]; defaults are milliseconds. Timers
//! and timestamps follow tokio time, so a paused clock runs minutes of cluster time at once.
//!
//! # Where the simulator differs from a real API server
//!
//! - Only `batch/v1` Jobs, `v1` Pods, Events, Secrets and PodTemplates and `coordination.k8s.io/v1`
//!   Leases exist (plus implicit, always-`Active` namespaces and minimal discovery); no
//!   RBAC, admission webhooks, quotas, LimitRanges or Pod Security admission. Any of them
//!   is also served as metadata only (`PartialObjectMetadata[List]` in `Accept`, as
//!   `Api::list_metadata` asks).
//! - Secrets are stored as sent (no encryption at rest); pods do not check that the Secrets
//!   they read exist. `stringData`, base64 `data`, `type` defaulting and required keys,
//!   and `immutable` behave as on a real server.
//! - The garbage collector deletes (or, with `Orphan`, un-owns) the dependents of a deleted
//!   Job: any object whose owner references name its uid. It does not collect objects whose
//!   owners were already gone when the reference was written (dangling references), and
//!   foreground deletion only waits for dependents with `blockOwnerDeletion`.
//! - Validation covers names, labels, restart policy, containers (name, image, env names,
//!   ports, pull policy, requests ≤ limits, malformed quantities), volumes and mounts,
//!   nodeSelector and a few Job fields; everything else a real server checks is accepted.
//! - No `managedFields`; server-side apply and strategic merge patch are applied as JSON
//!   merge patches (lists are replaced, not merged by key; no field ownership or conflicts).
//! - A continued list serves the current objects after the token's key (not a snapshot
//!   at its resourceVersion), but reports the token's resourceVersion so a watch started
//!   from it replays whatever changed meanwhile. `resourceVersionMatch=Exact` is not
//!   honoured: such a list gets the current state, not a snapshot at that version.
//! - Finalizers are not a general mechanism: only the garbage collector's
//!   `foregroundDeletion`/`orphan` on Jobs, handled internally; pods carry no
//!   `batch.kubernetes.io/job-tracking` finalizer.
//! - The job controller supports `completions`/`parallelism` (non-indexed), `backoffLimit`,
//!   `activeDeadlineSeconds`, `suspend`, `ttlSecondsAfterFinished`, `podFailurePolicy`
//!   (`FailJob`, `Ignore`, `Count` on exit codes and pod conditions; not `FailIndex`) and
//!   `podReplacementPolicy`; not indexed jobs, `successPolicy`, `backoffLimitPerIndex` or
//!   `managedBy`. Its replacement back-off is [`Timings::job_backoff`], not 10s doubling.
//!   [`KubeSim::evict_pod`] evicts a pod as the Eviction API does (a `DisruptionTarget`
//!   condition, then a graceful deletion).
//! - The kubelet runs no processes: a pod's main container (the agent) runs for the agent
//!   script's duration; other containers run alongside and exit 0; init containers
//!   complete at once. No pod logs (no jobify path reads them), exec, attach, probes or
//!   resource accounting.
//! - Events are core/v1 only (no `events.k8s.io` endpoint); at most 10 000 are kept instead
//!   of expiring after an hour.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use jobify_sim::kubernetes::{KubeSim, KubeSimConfig};
//! let sim = KubeSim::start(KubeSimConfig::default()).await?;
//! let url = sim.url(); // "http://127.0.0.1:PORT"
//! # let _ = url;
//! let jobs = sim.jobs("default");
//! # let _ = jobs;
//! sim.shutdown().await;
//! # Ok(())
//! # }
//! ```

mod admission;
mod cluster;
mod config;
mod controller;
mod deletion;
mod discovery;
mod events;
mod kubeconfig;
mod kubelet;
mod list;
mod meta;
mod partial;
mod patch;
mod pod_failure_policy;
mod pod_status;
mod quantity;
mod reconcile;
mod resource;
mod scenario;
mod secret;
mod selector;
mod server;
mod stats;
mod status;
mod store;
mod update;
mod validate;
mod watch;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Pod, Secret};
use serde::de::DeserializeOwned;
use tokio::task::JoinHandle;

pub use config::{EndpointGroup, KubeSimConfig, Scenario, Scenarios, Timings};
pub use scenario::is_valid_reference as is_valid_image_reference;
pub use stats::{JobCreation, KubeStats};

use cluster::Cluster;
use resource::Resource;

/// A running Kubernetes API simulator. Dropping it without [`KubeSim::shutdown`] leaves it
/// serving until the runtime ends.
pub struct KubeSim {
    cluster: Arc<Cluster>,
    addr: SocketAddr,
    server: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for KubeSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeSim")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl KubeSim {
    /// Binds `127.0.0.1:0` and serves the simulated API in a spawned task.
    pub async fn start(config: KubeSimConfig) -> std::io::Result<KubeSim> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let cluster = Arc::new(Cluster::new(config));
        let app = server::router(cluster.clone());
        let token = cluster.shutdown.clone();
        let server = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move { token.cancelled().await })
                .await;
            if let Err(e) = served {
                tracing::warn!(error = %e, "kubernetes simulator stopped serving");
            }
        });
        tracing::debug!(%addr, "kubernetes simulator listening");
        Ok(KubeSim {
            cluster,
            addr,
            server: Mutex::new(Some(server)),
        })
    }

    /// The base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Writes a kubeconfig whose cluster server is [`KubeSim::url`] and whose current
    /// context is `jobify-sim` (namespace `default`).
    pub fn write_kubeconfig(&self, path: &Path) -> std::io::Result<()> {
        std::fs::write(path, kubeconfig::render(&self.url()))
    }

    fn snapshot<T: DeserializeOwned>(&self, resource: Resource, namespace: &str) -> Vec<T> {
        let (objects, _) = self.cluster.store.list(resource, Some(namespace), None);
        objects
            .iter()
            .filter_map(|o| match serde_json::from_value((**o).clone()) {
                Ok(t) => Some(t),
                Err(e) => {
                    tracing::warn!(error = %e, "stored object does not decode as its k8s-openapi type");
                    None
                }
            })
            .collect()
    }

    /// The Jobs in `namespace` now.
    pub fn jobs(&self, namespace: &str) -> Vec<Job> {
        self.snapshot(Resource::Jobs, namespace)
    }

    /// The Pods in `namespace` now.
    pub fn pods(&self, namespace: &str) -> Vec<Pod> {
        self.snapshot(Resource::Pods, namespace)
    }

    /// The Events in `namespace` now.
    pub fn events(&self, namespace: &str) -> Vec<Event> {
        self.snapshot(Resource::Events, namespace)
    }

    /// The Secrets in `namespace` now.
    pub fn secrets(&self, namespace: &str) -> Vec<Secret> {
        self.snapshot(Resource::Secrets, namespace)
    }

    /// The Lease `name` in `namespace`, if it exists.
    pub fn lease(&self, namespace: &str, name: &str) -> Option<Lease> {
        let lease = self.cluster.store.get(Resource::Leases, namespace, name)?;
        serde_json::from_value((*lease).clone()).ok()
    }

    /// The counters so far.
    pub fn stats(&self) -> KubeStats {
        self.cluster.stats.snapshot()
    }

    /// The Jobs created through the API, oldest first, with the moment each was stored: what
    /// a benchmark measures dispatch latency against (the last 100,000 are kept).
    pub fn job_creations(&self) -> Vec<JobCreation> {
        self.cluster
            .stats
            .job_creations
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .cloned()
            .collect()
    }

    /// Evicts pod `name` as a kubelet under node pressure does: its containers stop (none
    /// ran, if it had not started), it gets the `DisruptionTarget` condition and ends
    /// `Failed` with reason `Evicted` and `message`, and stays until someone deletes it.
    /// `false` if there is no such pod or it had already ended.
    pub fn evict_pod(&self, namespace: &str, name: &str, message: &str) -> bool {
        let Some(pod) = self.cluster.store.get(Resource::Pods, namespace, name) else {
            return false;
        };
        if matches!(
            pod["status"]["phase"].as_str(),
            Some("Succeeded" | "Failed")
        ) {
            return false;
        }
        let now = meta::now();
        // As a kubelet does: the pod says why first, then its containers are stopped, so the
        // Job controller never sees the failed pod without its `DisruptionTarget` condition.
        let written = self
            .cluster
            .write_status(Resource::Pods, namespace, name, |pod| {
                let status = &mut pod["status"];
                status["phase"] = serde_json::json!("Failed");
                status["reason"] = serde_json::json!("Evicted");
                status["message"] = serde_json::json!(message);
                let mut conditions = status["conditions"].as_array().cloned().unwrap_or_default();
                conditions.retain(|c| c["type"] != "DisruptionTarget");
                conditions.push(serde_json::json!({
                    "type": "DisruptionTarget", "status": "True",
                    "reason": "TerminationByKubelet", "message": message,
                    "lastTransitionTime": now,
                }));
                status["conditions"] = serde_json::Value::Array(conditions);
                for key in ["initContainerStatuses", "containerStatuses"] {
                    for c in status[key].as_array_mut().into_iter().flatten() {
                        if c["state"]["running"].is_object() {
                            c["state"] = serde_json::json!({"terminated": {
                                "exitCode": 137, "reason": "Error",
                                "startedAt": c["state"]["running"]["startedAt"].clone(),
                                "finishedAt": now,
                            }});
                        }
                        c["ready"] = serde_json::json!(false);
                    }
                }
            })
            .is_some();
        self.cluster.stop(meta::uid(&pod));
        written
    }

    /// Ends every open watch with a `410 Expired` `ERROR` event, so clients relist.
    pub fn expire_watches(&self) {
        self.cluster
            .expiry
            .send_modify(|generation| *generation += 1);
    }

    /// Stops serving: open watches end, controller and kubelet loops stop, the listener
    /// closes once in-flight requests are answered.
    pub async fn shutdown(&self) {
        self.cluster.shutdown.cancel();
        // Ending the loops first also ends watch streams whose client stopped reading, which
        // the graceful server shutdown would otherwise wait for.
        self.cluster.join_tasks().await;
        let server = self.server.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(server) = server {
            // A panicked server task has nothing left to stop.
            let _ = server.await;
        }
        self.cluster.join_tasks().await;
    }
}
