//! The simulated cluster's shared state and the API operations every component goes through:
//! the REST handlers, the job controller, the garbage collector and the kubelet all create,
//! update and delete objects here, so admission, validation and deletion semantics are the
//! same whoever asks.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::admission;
use super::config::{EndpointGroup, KubeSimConfig};
use super::events::EventIndex;
use super::meta;
use super::resource::Resource;
use super::stats::{Stats, bump};
use super::status::ApiError;
use super::store::Store;
use super::update;
use super::validate;
use crate::fault::{FaultConfig, Faults};

/// Shared state of one simulated cluster.
pub(crate) struct Cluster {
    pub(crate) store: Store,
    pub(crate) config: KubeSimConfig,
    pub(crate) stats: Stats,
    pub(crate) shutdown: CancellationToken,
    /// Bumped by `expire_watches`; every open watch ends with 410 when it changes.
    pub(crate) expiry: tokio::sync::watch::Sender<u64>,
    tasks: Mutex<JoinSet<()>>,
    pub(crate) stops: Mutex<HashMap<String, CancellationToken>>,
    pub(crate) events: Mutex<EventIndex>,
    faults: HashMap<EndpointGroupKey, Faults>,
    next_node: AtomicUsize,
    pub(crate) event_serial: AtomicU64,
}

type EndpointGroupKey = u8;

fn group_key(group: EndpointGroup) -> EndpointGroupKey {
    match group {
        EndpointGroup::Jobs => 1,
        EndpointGroup::Pods => 2,
        EndpointGroup::Events => 3,
        EndpointGroup::Leases => 4,
        EndpointGroup::Discovery => 5,
        EndpointGroup::Secrets => 6,
        EndpointGroup::PodTemplates => 7,
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section below leaves its data consistent before anything can panic.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Cluster {
    pub(crate) fn new(config: KubeSimConfig) -> Self {
        let window = if config.watch_window == 0 {
            1000
        } else {
            config.watch_window
        };
        let groups = [
            EndpointGroup::Jobs,
            EndpointGroup::Pods,
            EndpointGroup::Events,
            EndpointGroup::Leases,
            EndpointGroup::Secrets,
            EndpointGroup::PodTemplates,
            EndpointGroup::Discovery,
        ];
        let faults = groups
            .into_iter()
            .filter(|g| config.fault_groups.is_empty() || config.fault_groups.contains(g))
            .map(|g| {
                let key = group_key(g);
                // Each group draws from its own stream so that its faults do not depend on
                // how its requests interleave with other groups'.
                let seeded = FaultConfig {
                    seed: config
                        .faults
                        .seed
                        .wrapping_mul(31)
                        .wrapping_add(u64::from(key)),
                    ..config.faults.clone()
                };
                (key, Faults::new(seeded))
            })
            .collect();
        Cluster {
            store: Store::new(window),
            config,
            stats: Stats::default(),
            shutdown: CancellationToken::new(),
            expiry: tokio::sync::watch::Sender::new(0),
            tasks: Mutex::new(JoinSet::new()),
            stops: Mutex::new(HashMap::new()),
            events: Mutex::new(EventIndex::default()),
            faults,
            next_node: AtomicUsize::new(0),
            event_serial: AtomicU64::new(0),
        }
    }

    /// The fault source of an endpoint group, if faults apply to it.
    pub(crate) fn faults(&self, group: EndpointGroup) -> Option<&Faults> {
        self.faults.get(&group_key(group))
    }

    /// Runs `task` until it ends or the simulator shuts down.
    pub(crate) fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        let mut set = lock(&self.tasks);
        while set.try_join_next().is_some() {}
        set.spawn(task);
    }

    /// Ends every task (used by shutdown, after the token is cancelled).
    pub(crate) async fn join_tasks(&self) {
        let mut set = std::mem::take(&mut *lock(&self.tasks));
        set.abort_all();
        while set.join_next().await.is_some() {}
    }

    /// The token that stops the controller or kubelet loop of object `uid`.
    pub(crate) fn stop_token(&self, uid: &str) -> CancellationToken {
        lock(&self.stops)
            .entry(uid.to_string())
            .or_insert_with(|| self.shutdown.child_token())
            .clone()
    }

    /// Stops the loop of object `uid` (it was deleted).
    pub(crate) fn stop(&self, uid: &str) {
        if let Some(t) = lock(&self.stops).remove(uid) {
            t.cancel();
        }
    }

    /// Forgets the token of a loop that ended by itself.
    pub(crate) fn forget(&self, uid: &str) {
        lock(&self.stops).remove(uid);
    }

    /// Sleeps `d`, or less if `stop` fires; returns whether the full time passed.
    pub(crate) async fn sleep(d: Duration, stop: &CancellationToken) -> bool {
        tokio::select! {
            () = tokio::time::sleep(d) => true,
            () = stop.cancelled() => false,
        }
    }

    /// The next node to bind a pod to (round robin).
    pub(crate) fn next_node(&self) -> String {
        let n = self.config.scenarios.nodes.max(1);
        let i = self.next_node.fetch_add(1, Ordering::Relaxed) % n;
        format!("sim-node-{}", i + 1)
    }

    /// Creates an object as the API does: stamps metadata, defaults, validates, stores, and
    /// starts the controller (Jobs) or kubelet (Pods) loop.
    pub(crate) fn create(
        self: &Arc<Self>,
        resource: Resource,
        namespace: &str,
        mut object: Value,
        dry_run: bool,
    ) -> Result<Arc<Value>, ApiError> {
        if !object.is_object() {
            return Err(ApiError::BadRequest(
                "the body of the request is not a JSON object".to_string(),
            ));
        }
        update::check_body_type(resource, &object)?;
        if resource == Resource::Secrets {
            super::secret::decode(&mut object)?;
        }
        if let Some(msg) = validate::decode_error(resource, &object) {
            return Err(ApiError::BadRequest(msg));
        }
        let body_ns = meta::namespace(&object);
        if !body_ns.is_empty() && body_ns != namespace {
            return Err(ApiError::BadRequest(
                "the namespace of the provided object does not match the namespace sent on the request"
                    .to_string(),
            ));
        }
        meta::stamp_create(&mut object, namespace, resource == Resource::Jobs);
        admission::default_on_create(resource, &mut object);
        let causes = validate::validate(resource, &object);
        if !causes.is_empty() {
            return Err(ApiError::Invalid {
                resource,
                name: meta::name(&object).to_string(),
                causes,
            });
        }
        if dry_run {
            if self
                .store
                .get(resource, namespace, meta::name(&object))
                .is_some()
            {
                return Err(ApiError::AlreadyExists {
                    resource,
                    name: meta::name(&object).to_string(),
                });
            }
            return Ok(Arc::new(object));
        }
        let stored = self.store.create(resource, object)?;
        match resource {
            Resource::Jobs => {
                let cluster = self.clone();
                let job = stored.clone();
                // The token exists before the loop runs, so a delete that races the spawn
                // still stops it.
                let stop = self.stop_token(meta::uid(&job));
                self.spawn(super::controller::run(cluster, job, stop));
            }
            Resource::Pods => {
                bump(&self.stats.pod_creates);
                let cluster = self.clone();
                let pod = stored.clone();
                let stop = self.stop_token(meta::uid(&pod));
                self.spawn(super::kubelet::run(cluster, pod, stop));
            }
            Resource::Events | Resource::Leases | Resource::Secrets | Resource::PodTemplates => {}
        }
        Ok(stored)
    }

    /// Replaces an object (or, with `status_only`, its status) with `body`, with optimistic
    /// concurrency on `metadata.resourceVersion` and the API server's update rules.
    pub(crate) fn replace(
        &self,
        resource: Resource,
        namespace: &str,
        name: &str,
        body: Value,
        status_only: bool,
        dry_run: bool,
    ) -> Result<Arc<Value>, ApiError> {
        self.update_with(resource, namespace, name, dry_run, |old| {
            update::prepare_update(resource, old, body, status_only)
        })
    }

    /// Updates an object with `change` (which sees the current object), then applies the
    /// same rules as [`Cluster::replace`].
    pub(crate) fn update_with(
        &self,
        resource: Resource,
        namespace: &str,
        name: &str,
        dry_run: bool,
        change: impl FnOnce(&Value) -> Result<Value, ApiError>,
    ) -> Result<Arc<Value>, ApiError> {
        if dry_run {
            let old =
                self.store
                    .get(resource, namespace, name)
                    .ok_or_else(|| ApiError::NotFound {
                        resource,
                        name: name.to_string(),
                    })?;
            return change(&old).map(Arc::new);
        }
        let result = self
            .store
            .update(resource, namespace, name, change)
            .map(|(_, new)| new);
        if let Err(ApiError::Conflict { .. }) = result {
            bump(&self.stats.update_conflicts);
        }
        result
    }

    /// A controller's write to an object it owns the status of: no concurrency check.
    pub(crate) fn write_status(
        &self,
        resource: Resource,
        namespace: &str,
        name: &str,
        change: impl FnOnce(&mut Value),
    ) -> Option<Arc<Value>> {
        self.store
            .update(resource, namespace, name, |old| {
                let mut new = old.clone();
                change(&mut new);
                Ok(new)
            })
            .ok()
            .map(|(_, new)| new)
    }
}
