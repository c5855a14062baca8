//! Deletion as the API server and garbage collector do it: propagation policies for a
//! Job's dependents (its pods, and any object whose owner references name it, such as a
//! Secret): Background, Foreground, Orphan; graceful termination of bound pods;
//! preconditions.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::cluster::{Cluster, lock};
use super::meta;
use super::resource::Resource;
use super::status::ApiError;

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

impl Cluster {
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
            Resource::Events | Resource::Leases | Resource::Secrets | Resource::PodTemplates => {
                self.store
                    .remove(resource, namespace, name)
                    .map(Deleted::Gone)
            }
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

    /// Deletes (in the background) every object owned by `owner_uid`, as the garbage
    /// collector does: with background propagation, so what they own goes too.
    pub(crate) fn delete_dependents(self: &Arc<Self>, namespace: &str, owner_uid: &str) {
        let options = DeleteOptions {
            propagation: Some(Propagation::Background),
            ..DeleteOptions::default()
        };
        for (resource, dependent) in self.store.dependents(namespace, owner_uid) {
            // NotFound: it went meanwhile.
            let _ = self.delete(resource, namespace, meta::name(&dependent), &options);
        }
    }

    /// Waits until no dependent blocks the owner's deletion: as in the garbage collector,
    /// only those whose reference to it sets `blockOwnerDeletion` (a Job's pods do).
    async fn await_no_dependents(&self, namespace: &str, owner_uid: &str) {
        let step = self
            .config
            .timings
            .termination_delay
            .max(Duration::from_millis(1));
        let blocks = |object: &Value| {
            object["metadata"]["ownerReferences"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|r| r["uid"] == owner_uid && r["blockOwnerDeletion"] == true)
        };
        loop {
            let dependents = self.store.dependents(namespace, owner_uid);
            if !dependents.iter().any(|(_, o)| blocks(o)) {
                return;
            }
            tokio::time::sleep(step).await;
        }
    }

    fn orphan_dependents(&self, namespace: &str, owner_uid: &str) {
        for (resource, dependent) in self.store.dependents(namespace, owner_uid) {
            self.write_status(resource, namespace, meta::name(&dependent), |o| {
                if let Some(refs) = o["metadata"]["ownerReferences"].as_array_mut() {
                    refs.retain(|r| r["uid"] != owner_uid);
                    if refs.is_empty()
                        && let Some(m) = o["metadata"].as_object_mut()
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
}

fn mark_deleting(object: &mut Value, grace: i64) {
    object["metadata"]["deletionTimestamp"] = json!(meta::format_time(
        meta::sim_now()
            .checked_add(jiff::SignedDuration::from_secs(grace))
            .unwrap_or_else(|_| meta::sim_now())
    ));
    object["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
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
