//! The simulated job controller: one loop per Job that creates its pod, counts pods that
//! succeed or fail, replaces failed pods within `backoffLimit`, enforces
//! `activeDeadlineSeconds`, writes the Job's status and conditions like the real
//! controller, and deletes the Job `ttlSecondsAfterFinished` after it finished.
//!
//! The decision is [`reconcile`](super::reconcile::reconcile), a pure function of the Job, its pods and what the loop
//! remembers; [`run`] carries it out.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::broadcast;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::cluster::Cluster;
use super::deletion::{DeleteOptions, Propagation};
use super::meta;
use super::reconcile::{Memory, reconcile};
use super::resource::Resource;
use super::store::Change;

/// The pod the controller creates for `job`.
fn pod_for(job: &Value) -> Value {
    let name = meta::name(job);
    let template = &job["spec"]["template"];
    // As `generateName` does: the base is cut to 58 characters so the name fits 63.
    let mut base = format!("{name}-");
    base.truncate(58);
    let mut metadata = json!({
        "name": format!("{base}{}", meta::random_suffix()),
        "generateName": base,
        "labels": template["metadata"]["labels"],
        "ownerReferences": [{
            "apiVersion": "batch/v1",
            "kind": "Job",
            "name": name,
            "uid": meta::uid(job),
            "controller": true,
            "blockOwnerDeletion": true,
        }],
    });
    if template["metadata"]["annotations"].is_object() {
        metadata["annotations"] = template["metadata"]["annotations"].clone();
    }
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": template["spec"],
    })
}

/// The loop of one Job, until it is deleted, finishes (and its TTL passes), or the
/// simulator stops.
pub(crate) async fn run(cluster: Arc<Cluster>, job: Arc<Value>, stop: CancellationToken) {
    let namespace = meta::namespace(&job).to_string();
    let name = meta::name(&job).to_string();
    let uid = meta::uid(&job).to_string();
    let mut memory = Memory::default();
    let mut pods_feed = cluster.store.subscribe(Resource::Pods);
    let mut jobs_feed = cluster.store.subscribe(Resource::Jobs);
    while let Some(job) = cluster.store.get(Resource::Jobs, &namespace, &name) {
        if meta::uid(&job) != uid || stop.is_cancelled() {
            break;
        }
        let (pods, _) = cluster.store.list(Resource::Pods, Some(&namespace), None);
        let pods: Vec<Arc<Value>> = pods
            .into_iter()
            .filter(|p| meta::is_owned_by(p, &uid))
            .collect();
        let plan = reconcile(
            &job,
            &pods,
            &mut memory,
            meta::sim_now(),
            Instant::now(),
            cluster.config.timings.job_backoff,
        );
        let updated = cluster
            .write_status(Resource::Jobs, &namespace, &name, |j| {
                j["status"] = plan.status.clone();
            })
            .unwrap_or(job);
        for pod in &plan.delete_pods {
            if cluster
                .delete(Resource::Pods, &namespace, pod, &DeleteOptions::default())
                .is_ok()
            {
                let msg = format!("Deleted pod: {pod}");
                cluster.record_event(
                    &updated,
                    "Normal",
                    "SuccessfulDelete",
                    &msg,
                    "job-controller",
                    None,
                    None,
                );
            }
        }
        for _ in 0..plan.create_pods {
            create_pod(&cluster, &updated, &mut memory);
        }
        for (kind, reason, msg) in &plan.events {
            cluster.record_event(&updated, kind, reason, msg, "job-controller", None, None);
        }
        if plan.finished.is_some() {
            expire_after_ttl(&cluster, &updated, &stop).await;
            break;
        }
        let wake = plan.wake_at;
        let sleep = async {
            match wake {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let pod_changed = next_change(&mut pods_feed, |c| {
            meta::is_owned_by(&c.object, &uid)
                || c.previous
                    .as_ref()
                    .is_some_and(|p| meta::is_owned_by(p, &uid))
        });
        // The Job itself changed (suspend, parallelism, a user's edit).
        let job_changed = next_change(&mut jobs_feed, |c| meta::uid(&c.object) == uid);
        tokio::select! {
            () = stop.cancelled() => break,
            () = sleep => {}
            () = pod_changed => {}
            () = job_changed => {}
        }
    }
    cluster.forget(&uid);
}

/// Resolves at the next change on `feed` that is `relevant`, or when the feed fell behind
/// (the caller reconciles from the store, which is level-based anyway).
async fn next_change(feed: &mut broadcast::Receiver<Change>, relevant: impl Fn(&Change) -> bool) {
    loop {
        match feed.recv().await {
            Ok(change) if relevant(&change) => return,
            Ok(_) => {}
            Err(broadcast::error::RecvError::Lagged(_)) => return,
            Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
        }
    }
}

fn create_pod(cluster: &Arc<Cluster>, job: &Value, memory: &mut Memory) {
    let namespace = meta::namespace(job);
    // A generated name can collide; the real controller retries with a new one too.
    for _ in 0..5 {
        match cluster.create(Resource::Pods, namespace, pod_for(job), false) {
            Ok(pod) => {
                memory.created(meta::uid(&pod));
                let msg = format!("Created pod: {}", meta::name(&pod));
                cluster.record_event(
                    job,
                    "Normal",
                    "SuccessfulCreate",
                    &msg,
                    "job-controller",
                    None,
                    None,
                );
                return;
            }
            Err(super::status::ApiError::AlreadyExists { .. }) => continue,
            Err(e) => {
                let msg = format!("Error creating: {e}");
                cluster.record_event(
                    job,
                    "Warning",
                    "FailedCreate",
                    &msg,
                    "job-controller",
                    None,
                    None,
                );
                tracing::warn!(job = meta::name(job), error = %e, "simulated job controller could not create a pod");
                return;
            }
        }
    }
}

/// The TTL-after-finished controller: deletes a finished Job (its pods first, like the
/// real one, which deletes in the foreground) once `ttlSecondsAfterFinished` passed.
async fn expire_after_ttl(cluster: &Arc<Cluster>, job: &Value, stop: &CancellationToken) {
    let Some(ttl) = job["spec"]["ttlSecondsAfterFinished"].as_u64() else {
        return;
    };
    if !Cluster::sleep(Duration::from_secs(ttl), stop).await {
        return;
    }
    let options = DeleteOptions {
        // The TTL-after-finished controller deletes in the foreground: the Job shows a
        // deletionTimestamp until its pods are gone.
        propagation: Some(Propagation::Foreground),
        precondition_uid: Some(meta::uid(job).to_string()),
        ..DeleteOptions::default()
    };
    // NotFound or a changed uid: someone deleted it first.
    let _ = cluster.delete(
        Resource::Jobs,
        meta::namespace(job),
        meta::name(job),
        &options,
    );
}
