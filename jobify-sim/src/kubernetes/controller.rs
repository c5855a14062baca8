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
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::cluster::Cluster;
use super::deletion::{DeleteOptions, Propagation};
use super::meta;
use super::reconcile::{Memory, reconcile};
use super::resource::Resource;

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
    // Fires when the Job or one of its pods changes; taken before the first look at the
    // store, so no change is missed.
    let changed = cluster.store.interest(&uid);
    while let Some(job) = cluster.store.get(Resource::Jobs, &namespace, &name) {
        if meta::uid(&job) != uid || stop.is_cancelled() {
            break;
        }
        let pods = cluster.store.owned_by(Resource::Pods, &namespace, &uid);
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
        // A pod changed, or the Job itself (suspend, parallelism, a user's edit).
        tokio::select! {
            () = stop.cancelled() => break,
            () = sleep => {}
            () = changed.notified() => {}
        }
    }
    cluster.store.forget_interest(&uid);
    cluster.forget(&uid);
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
