//! The simulated cluster's shared state and the API operations every component goes through:
//! the REST handlers, the job controller, the garbage collector and the kubelet all create,
//! update and delete objects here, so admission, validation and deletion semantics are the
//! same whoever asks.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::admission;
use super::config::{EndpointGroup, KubeSimConfig};
use super::meta;
use super::resource::Resource;
use super::stats::{Stats, bump};
use super::status::{ApiError, FieldError};
use super::store::Store;
use super::validate;
use crate::fault::{FaultConfig, Faults};

/// Events kept at most; the oldest go first (a real cluster expires them after an hour).
const MAX_EVENTS: usize = 10_000;

/// How the garbage collector treats the dependents of a deleted object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Propagation {
    /// Delete the owner now, the dependents shortly after.
    Background,
    /// Delete the dependents first, then the owner (which shows a deletionTimestamp meanwhile).
    Foreground,
    /// Delete the owner, keep the dependents (their owner references are removed).
    Orphan,
}

/// `DeleteOptions`, from the query or the request body.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct DeleteOptions {
    pub(crate) propagation: Option<Propagation>,
    pub(crate) grace_period_seconds: Option<i64>,
    pub(crate) precondition_uid: Option<String>,
    pub(crate) precondition_rv: Option<String>,
    pub(crate) dry_run: bool,
}

/// What a delete did.
#[derive(Debug)]
pub(crate) enum Deleted {
    /// The object is gone; its last state.
    Gone(Arc<Value>),
    /// The object is being deleted (graceful termination or finalizers); its current state.
    Pending(Arc<Value>),
}

/// The warning a real API server attaches to a Job delete without a propagation policy.
pub(crate) const JOB_ORPHAN_WARNING: &str = "299 - \"child pods are preserved by default when jobs are deleted; set propagationPolicy=Background to remove them or set propagationPolicy=Orphan to suppress this warning\"";

struct EventIndex {
    by_key: HashMap<String, (String, String)>,
    order: VecDeque<String>,
}

/// Shared state of one simulated cluster.
pub(crate) struct Cluster {
    pub(crate) store: Store,
    pub(crate) config: KubeSimConfig,
    pub(crate) stats: Stats,
    pub(crate) shutdown: CancellationToken,
    /// Bumped by `expire_watches`; every open watch ends with 410 when it changes.
    pub(crate) expiry: tokio::sync::watch::Sender<u64>,
    tasks: Mutex<JoinSet<()>>,
    stops: Mutex<HashMap<String, CancellationToken>>,
    events: Mutex<EventIndex>,
    faults: HashMap<EndpointGroupKey, Faults>,
    next_node: AtomicUsize,
    event_serial: AtomicU64,
}

type EndpointGroupKey = u8;

fn group_key(group: EndpointGroup) -> EndpointGroupKey {
    match group {
        EndpointGroup::Jobs => 1,
        EndpointGroup::Pods => 2,
        EndpointGroup::Events => 3,
        EndpointGroup::Leases => 4,
        EndpointGroup::Discovery => 5,
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
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
            events: Mutex::new(EventIndex {
                by_key: HashMap::new(),
                order: VecDeque::new(),
            }),
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
        check_body_type(resource, &object)?;
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
            Resource::Events | Resource::Leases => {}
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
            prepare_update(resource, old, body, status_only)
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

    /// Deletes an object as the API does, including garbage collection of a Job's pods and a
    /// pod's graceful termination.
    pub(crate) fn delete(
        self: &Arc<Self>,
        resource: Resource,
        namespace: &str,
        name: &str,
        options: &DeleteOptions,
    ) -> Result<Deleted, ApiError> {
        let current =
            self.store
                .get(resource, namespace, name)
                .ok_or_else(|| ApiError::NotFound {
                    resource,
                    name: name.to_string(),
                })?;
        check_preconditions(resource, &current, options)?;
        if options.dry_run {
            return Ok(Deleted::Gone(current));
        }
        match resource {
            Resource::Jobs => self.delete_job(namespace, name, &current, options),
            Resource::Pods => self.delete_pod(namespace, name, &current, options),
            Resource::Events | Resource::Leases => self
                .store
                .remove(resource, namespace, name)
                .map(Deleted::Gone),
        }
    }

    fn delete_job(
        self: &Arc<Self>,
        namespace: &str,
        name: &str,
        job: &Arc<Value>,
        options: &DeleteOptions,
    ) -> Result<Deleted, ApiError> {
        if meta::is_deleting(job) {
            return Ok(Deleted::Pending(job.clone()));
        }
        let uid = meta::uid(job).to_string();
        self.stop(&uid);
        let policy = options.propagation.unwrap_or(Propagation::Orphan);
        let gc_delay = self.config.timings.gc_delay;
        let (ns, job_name) = (namespace.to_string(), name.to_string());
        let cluster = self.clone();
        match policy {
            Propagation::Background => {
                let last = self.store.remove(Resource::Jobs, namespace, name)?;
                self.spawn(async move {
                    tokio::time::sleep(gc_delay).await;
                    cluster.delete_dependents(&ns, &uid);
                });
                Ok(Deleted::Gone(last))
            }
            Propagation::Foreground | Propagation::Orphan => {
                let finalizer = if policy == Propagation::Foreground {
                    "foregroundDeletion"
                } else {
                    "orphan"
                };
                let pending = self
                    .write_status(Resource::Jobs, namespace, name, |j| {
                        mark_deleting(j, 0);
                        let fins = j["metadata"]["finalizers"]
                            .as_array_mut()
                            .map(std::mem::take)
                            .unwrap_or_default();
                        let mut fins: Vec<Value> =
                            fins.into_iter().filter(|f| f != finalizer).collect();
                        fins.push(json!(finalizer));
                        j["metadata"]["finalizers"] = json!(fins);
                    })
                    .unwrap_or_else(|| job.clone());
                self.spawn(async move {
                    tokio::time::sleep(gc_delay).await;
                    if policy == Propagation::Foreground {
                        cluster.delete_dependents(&ns, &uid);
                        cluster.await_no_dependents(&ns, &uid).await;
                    } else {
                        cluster.orphan_dependents(&ns, &uid);
                    }
                    // NotFound: someone removed it meanwhile; nothing left to do.
                    let _ = cluster.store.remove(Resource::Jobs, &ns, &job_name);
                });
                Ok(Deleted::Pending(pending))
            }
        }
    }

    /// Deletes (in the background) every pod owned by `owner_uid`.
    pub(crate) fn delete_dependents(self: &Arc<Self>, namespace: &str, owner_uid: &str) {
        let (pods, _) = self.store.list(Resource::Pods, Some(namespace), None);
        for pod in pods.iter().filter(|p| meta::is_owned_by(p, owner_uid)) {
            // NotFound: it went meanwhile.
            let _ = self.delete(
                Resource::Pods,
                namespace,
                meta::name(pod),
                &DeleteOptions::default(),
            );
        }
    }

    async fn await_no_dependents(&self, namespace: &str, owner_uid: &str) {
        let step = self
            .config
            .timings
            .termination_delay
            .max(Duration::from_millis(1));
        loop {
            let (pods, _) = self.store.list(Resource::Pods, Some(namespace), None);
            if !pods.iter().any(|p| meta::is_owned_by(p, owner_uid)) {
                return;
            }
            tokio::time::sleep(step).await;
        }
    }

    fn orphan_dependents(&self, namespace: &str, owner_uid: &str) {
        let (pods, _) = self.store.list(Resource::Pods, Some(namespace), None);
        for pod in pods.iter().filter(|p| meta::is_owned_by(p, owner_uid)) {
            self.write_status(Resource::Pods, namespace, meta::name(pod), |p| {
                if let Some(refs) = p["metadata"]["ownerReferences"].as_array_mut() {
                    refs.retain(|r| r["uid"] != owner_uid);
                    if refs.is_empty()
                        && let Some(m) = p["metadata"].as_object_mut()
                    {
                        m.remove("ownerReferences");
                    }
                }
            });
        }
    }

    fn delete_pod(
        self: &Arc<Self>,
        namespace: &str,
        name: &str,
        pod: &Arc<Value>,
        options: &DeleteOptions,
    ) -> Result<Deleted, ApiError> {
        let uid = meta::uid(pod).to_string();
        let grace = options.grace_period_seconds.unwrap_or_else(|| {
            pod["spec"]["terminationGracePeriodSeconds"]
                .as_i64()
                .unwrap_or(30)
        });
        // A pod never bound to a node has no kubelet to wait for: the API deletes it at once.
        let bound = pod["spec"]["nodeName"]
            .as_str()
            .is_some_and(|n| !n.is_empty());
        if grace <= 0 || !bound {
            self.stop(&uid);
            return self
                .store
                .remove(Resource::Pods, namespace, name)
                .map(Deleted::Gone);
        }
        if meta::is_deleting(pod) {
            return Ok(Deleted::Pending(pod.clone()));
        }
        let pending = self
            .write_status(Resource::Pods, namespace, name, |p| mark_deleting(p, grace))
            .unwrap_or_else(|| pod.clone());
        // The kubelet loop sees its token cancelled, terminates the containers and removes
        // the pod; a loop that already ended leaves that to us.
        let had_loop = lock(&self.stops).contains_key(&uid);
        self.stop(&uid);
        if !had_loop {
            let cluster = self.clone();
            let (ns, pod_name) = (namespace.to_string(), name.to_string());
            let delay = self.config.timings.termination_delay;
            self.spawn(async move {
                tokio::time::sleep(delay).await;
                // NotFound: it went meanwhile.
                let _ = cluster.store.remove(Resource::Pods, &ns, &pod_name);
            });
        }
        Ok(Deleted::Pending(pending))
    }

    /// Records an event about `involved`, aggregating repeats into `count` like the
    /// kubelet's event recorder.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn record_event(
        &self,
        involved: &Value,
        event_type: &str,
        reason: &str,
        message: &str,
        component: &str,
        host: Option<&str>,
        field_path: Option<&str>,
    ) {
        let namespace = meta::namespace(involved).to_string();
        let key = format!(
            "{}\u{0}{reason}\u{0}{message}\u{0}{}",
            meta::uid(involved),
            field_path.unwrap_or_default()
        );
        let now = meta::now();
        // The scheduler records through events.k8s.io/v1: its events have an eventTime, an
        // action and a series instead of first/last timestamps and a count.
        let scheduler = component == "default-scheduler";
        let existing = lock(&self.events).by_key.get(&key).cloned();
        if let Some((ns, name)) = existing
            && self
                .write_status(Resource::Events, &ns, &name, |e| {
                    if scheduler {
                        let count = e["series"]["count"].as_i64().unwrap_or(1);
                        e["series"] =
                            json!({"count": count + 1, "lastObservedTime": meta::now_micro()});
                    } else {
                        let count = e["count"].as_i64().unwrap_or(1);
                        e["count"] = json!(count + 1);
                        e["lastTimestamp"] = json!(now);
                    }
                })
                .is_some()
        {
            return;
        }
        let serial = self.event_serial.fetch_add(1, Ordering::Relaxed);
        let nanos = jiff::Timestamp::now().as_nanosecond();
        let name = format!(
            "{}.{:x}",
            meta::name(involved),
            u64::try_from(nanos)
                .unwrap_or_default()
                .wrapping_add(serial)
        );
        let mut involved_ref = json!({
            "kind": involved["kind"],
            "namespace": namespace,
            "name": meta::name(involved),
            "uid": meta::uid(involved),
            "apiVersion": involved["apiVersion"],
            "resourceVersion": involved["metadata"]["resourceVersion"],
        });
        if let Some(fp) = field_path {
            involved_ref["fieldPath"] = json!(fp);
        }
        let mut source = json!({"component": component});
        if let Some(h) = host {
            source["host"] = json!(h);
        }
        let mut event = json!({
            "metadata": {"name": name},
            "involvedObject": involved_ref,
            "reason": reason,
            "message": message,
            "source": source,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "type": event_type,
            "eventTime": null,
            "reportingComponent": component,
            "reportingInstance": host.unwrap_or_default(),
        });
        if scheduler {
            event["source"] = json!({});
            event["firstTimestamp"] = Value::Null;
            event["lastTimestamp"] = Value::Null;
            event["eventTime"] = json!(meta::now_micro());
            event["action"] = json!(if reason == "Scheduled" {
                "Binding"
            } else {
                "Scheduling"
            });
            event["reportingInstance"] = json!("default-scheduler-sim-control-plane");
            if let Some(m) = event.as_object_mut() {
                m.remove("count");
            }
        }
        meta::stamp_create(&mut event, &namespace, false);
        admission::default_on_create(Resource::Events, &mut event);
        if self.store.create(Resource::Events, event).is_err() {
            return;
        }
        let evicted = {
            let mut index = lock(&self.events);
            index.by_key.insert(key.clone(), (namespace.clone(), name));
            index.order.push_back(key);
            let mut evicted = Vec::new();
            while index.order.len() > MAX_EVENTS {
                if let Some(old) = index.order.pop_front()
                    && let Some(at) = index.by_key.remove(&old)
                {
                    evicted.push(at);
                }
            }
            evicted
        };
        for (ns, name) in evicted {
            // NotFound: a client deleted it already.
            let _ = self.store.remove(Resource::Events, &ns, &name);
        }
    }
}

fn mark_deleting(object: &mut Value, grace: i64) {
    object["metadata"]["deletionTimestamp"] = json!(meta::format_time(
        jiff::Timestamp::now()
            .checked_add(jiff::SignedDuration::from_secs(grace))
            .unwrap_or_else(|_| jiff::Timestamp::now())
    ));
    object["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
}

fn check_body_type(resource: Resource, object: &Value) -> Result<(), ApiError> {
    if let Some(v) = object["apiVersion"].as_str()
        && v != resource.api_version()
    {
        return Err(ApiError::BadRequest(format!(
            "the API version in the data ({v}) does not match the expected API version ({})",
            resource.api_version()
        )));
    }
    if let Some(k) = object["kind"].as_str()
        && k != resource.kind()
    {
        return Err(ApiError::BadRequest(format!(
            "Object '{}' from '{}' is not '{}'",
            k,
            object["apiVersion"].as_str().unwrap_or_default(),
            resource.kind()
        )));
    }
    Ok(())
}

fn check_preconditions(
    resource: Resource,
    current: &Value,
    options: &DeleteOptions,
) -> Result<(), ApiError> {
    let conflict = |detail: String| ApiError::Conflict {
        resource,
        name: meta::name(current).to_string(),
        detail,
    };
    if let Some(uid) = &options.precondition_uid
        && uid != meta::uid(current)
    {
        return Err(conflict(format!(
            "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
            meta::uid(current)
        )));
    }
    if let Some(rv) = &options.precondition_rv {
        let actual = current["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or_default();
        if rv != actual {
            return Err(conflict(format!(
                "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {actual}"
            )));
        }
    }
    Ok(())
}

/// The API server's rules for an update of `old` to `new`.
pub(crate) fn prepare_update(
    resource: Resource,
    old: &Value,
    mut new: Value,
    status_only: bool,
) -> Result<Value, ApiError> {
    let name = meta::name(old).to_string();
    if !new.is_object() {
        return Err(ApiError::BadRequest(
            "the body of the request is not a JSON object".to_string(),
        ));
    }
    check_body_type(resource, &new)?;
    let new_name = meta::name(&new);
    if !new_name.is_empty() && new_name != name {
        return Err(ApiError::BadRequest(format!(
            "the name of the object ({new_name}) does not match the name on the URL ({name})"
        )));
    }
    let rv = new["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let current_rv = old["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or_default();
    if !rv.is_empty() && rv != current_rv {
        return Err(ApiError::Conflict {
            resource,
            name,
            detail: "the object has been modified; please apply your changes to the latest version and try again".to_string(),
        });
    }
    if status_only {
        let mut updated = old.clone();
        updated["status"] = new["status"].take();
        return Ok(updated);
    }
    if !new["metadata"].is_object() {
        new["metadata"] = json!({});
    }
    for key in [
        "name",
        "namespace",
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
    ] {
        if old["metadata"][key].is_null() {
            if let Some(m) = new["metadata"].as_object_mut() {
                m.remove(key);
            }
        } else {
            new["metadata"][key] = old["metadata"][key].clone();
        }
    }
    new["kind"] = json!(resource.kind());
    new["apiVersion"] = json!(resource.api_version());
    if resource.has_status() {
        new["status"] = old["status"].clone();
    }
    if resource == Resource::Jobs {
        if new["spec"] != old["spec"] {
            let generation = old["metadata"]["generation"].as_i64().unwrap_or(1);
            new["metadata"]["generation"] = json!(generation + 1);
        }
        let mut causes = Vec::new();
        for field in [
            "template",
            "selector",
            "completions",
            "completionMode",
            "podFailurePolicy",
        ] {
            if new["spec"][field] != old["spec"][field]
                && !(field == "completions" && new["spec"][field].is_null())
            {
                causes.push(FieldError::immutable(
                    format!("spec.{field}"),
                    &compact(&new["spec"][field]),
                ));
            }
        }
        if !causes.is_empty() {
            return Err(ApiError::Invalid {
                resource,
                name,
                causes,
            });
        }
    }
    if resource == Resource::Pods {
        // Almost all of a pod's spec is immutable; the sim allows metadata changes only.
        new["spec"] = old["spec"].clone();
    }
    let causes = validate::validate(resource, &new);
    if !causes.is_empty() {
        return Err(ApiError::Invalid {
            resource,
            name,
            causes,
        });
    }
    Ok(new)
}

fn compact(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
