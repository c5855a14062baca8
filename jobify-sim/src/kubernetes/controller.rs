//! The simulated job controller: one loop per Job that creates its pod, counts pods that
//! succeed or fail, replaces failed pods within `backoffLimit`, enforces
//! `activeDeadlineSeconds`, writes the Job's status and conditions like the real
//! controller, and deletes the Job `ttlSecondsAfterFinished` after it finished.
//!
//! The decision is [`reconcile`], a pure function of the Job, its pods and what the loop
//! remembers; [`run`] carries it out.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::cluster::{Cluster, DeleteOptions, Propagation};
use super::meta;
use super::resource::Resource;
use super::store::ChangeType;

/// What the loop remembers between reconciles.
#[derive(Debug, Default)]
pub(crate) struct Memory {
    /// Pods already counted as succeeded or failed.
    counted: HashSet<String>,
    /// Pods this loop created.
    created: HashSet<String>,
    /// No replacement pod before this instant.
    backoff_until: Option<Instant>,
}

/// How a Job ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Finish {
    Complete,
    BackoffLimitExceeded,
    DeadlineExceeded,
}

/// What to do after looking at a Job and its pods.
#[derive(Debug, Default)]
#[must_use]
pub(crate) struct Plan {
    pub(crate) status: Value,
    pub(crate) create_pod: bool,
    pub(crate) delete_pods: Vec<String>,
    pub(crate) finished: Option<Finish>,
    pub(crate) wake_at: Option<Instant>,
}

fn pod_restarts(pod: &Value) -> i64 {
    pod["status"]["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["restartCount"].as_i64())
        .sum()
}

/// Decides the next step of `job` given its `pods`, at `now` (wall clock for
/// `activeDeadlineSeconds`, `instant` for the replacement backoff).
pub(crate) fn reconcile(
    job: &Value,
    pods: &[Arc<Value>],
    memory: &mut Memory,
    now: jiff::Timestamp,
    instant: Instant,
    job_backoff: Duration,
) -> Plan {
    let mut status = job["status"].clone();
    if !status.is_object() {
        status = json!({});
    }
    if is_finished(job) {
        return Plan {
            status,
            ..Plan::default()
        };
    }
    let mut succeeded = status["succeeded"].as_i64().unwrap_or(0);
    let mut failed = status["failed"].as_i64().unwrap_or(0);
    let present: HashSet<&str> = pods.iter().map(|p| meta::uid(p)).collect();
    for pod in pods {
        let uid = meta::uid(pod);
        if memory.counted.contains(uid) {
            continue;
        }
        match pod["status"]["phase"].as_str() {
            Some("Succeeded") => {
                succeeded += 1;
                memory.counted.insert(uid.to_string());
            }
            Some("Failed") => {
                failed += 1;
                memory.counted.insert(uid.to_string());
                memory.backoff_until = Some(instant + job_backoff);
            }
            _ => {}
        }
    }
    // A pod that vanished before it finished counts as failed, as with finalizer tracking.
    let vanished: Vec<String> = memory
        .created
        .iter()
        .filter(|uid| !present.contains(uid.as_str()) && !memory.counted.contains(*uid))
        .cloned()
        .collect();
    for uid in vanished {
        failed += 1;
        memory.counted.insert(uid);
        memory.backoff_until = Some(instant + job_backoff);
    }
    let uncounted: Vec<&Arc<Value>> = pods
        .iter()
        .filter(|p| !memory.counted.contains(meta::uid(p)))
        .collect();
    let active: Vec<&Arc<Value>> = uncounted
        .iter()
        .copied()
        .filter(|p| !meta::is_deleting(p))
        .collect();
    let terminating = uncounted.len() - active.len();
    let ready = active.iter().filter(|p| is_ready(p)).count();
    let restarts: i64 = if job["spec"]["template"]["spec"]["restartPolicy"] == "OnFailure" {
        pods.iter().map(|p| pod_restarts(p)).sum()
    } else {
        0
    };

    let start = status["startTime"].as_str().and_then(|s| s.parse().ok());
    let start: jiff::Timestamp = start.unwrap_or(now);
    status["startTime"] = json!(meta::format_time(start));
    let backoff_limit = job["spec"]["backoffLimit"].as_i64().unwrap_or(6);
    let deadline = job["spec"]["activeDeadlineSeconds"]
        .as_i64()
        .map(|s| start + jiff::SignedDuration::from_secs(s));

    let mut plan = Plan::default();
    let finish = if succeeded >= job["spec"]["completions"].as_i64().unwrap_or(1) {
        Some(Finish::Complete)
    } else if failed + restarts > backoff_limit {
        Some(Finish::BackoffLimitExceeded)
    } else if deadline.is_some_and(|d| now >= d) {
        Some(Finish::DeadlineExceeded)
    } else {
        None
    };
    let mut active_count = i64::try_from(active.len()).unwrap_or(i64::MAX);
    if let Some(finish) = finish {
        if finish != Finish::Complete {
            plan.delete_pods = active.iter().map(|p| meta::name(p).to_string()).collect();
            failed += active_count;
            for p in &active {
                memory.counted.insert(meta::uid(p).to_string());
            }
            active_count = 0;
        }
        finish_status(&mut status, finish, now);
        plan.finished = Some(finish);
    } else if active.is_empty() {
        match memory.backoff_until {
            Some(until) if until > instant => plan.wake_at = Some(until),
            _ => {
                plan.create_pod = true;
                active_count = 1;
            }
        }
    }
    if let Some(d) = deadline
        && plan.finished.is_none()
    {
        let left = d.duration_since(now).unsigned_abs();
        let wake = instant + left;
        plan.wake_at = Some(plan.wake_at.map_or(wake, |w| w.min(wake)));
    }
    set_count(&mut status, "active", active_count);
    set_count(&mut status, "succeeded", succeeded);
    set_count(&mut status, "failed", failed);
    status["ready"] = json!(ready);
    status["terminating"] = json!(terminating);
    status["uncountedTerminatedPods"] = json!({});
    plan.status = status;
    plan
}

/// Counts are `omitempty` in the real API: zero is absent.
fn set_count(status: &mut Value, key: &str, n: i64) {
    if n > 0 {
        status[key] = json!(n);
    } else if let Some(m) = status.as_object_mut() {
        m.remove(key);
    }
}

fn condition(kind: &str, reason: &str, message: &str, now: &str) -> Value {
    json!({
        "type": kind,
        "status": "True",
        "lastProbeTime": now,
        "lastTransitionTime": now,
        "reason": reason,
        "message": message,
    })
}

fn finish_status(status: &mut Value, finish: Finish, now: jiff::Timestamp) {
    let t = meta::format_time(now);
    let conditions = match finish {
        Finish::Complete => {
            status["completionTime"] = json!(t);
            let msg = "Reached expected number of succeeded pods";
            vec![
                condition("SuccessCriteriaMet", "CompletionsReached", msg, &t),
                condition("Complete", "CompletionsReached", msg, &t),
            ]
        }
        Finish::BackoffLimitExceeded => {
            let msg = "Job has reached the specified backoff limit";
            vec![
                condition("FailureTarget", "BackoffLimitExceeded", msg, &t),
                condition("Failed", "BackoffLimitExceeded", msg, &t),
            ]
        }
        Finish::DeadlineExceeded => {
            let msg = "Job was active longer than specified deadline";
            vec![
                condition("FailureTarget", "DeadlineExceeded", msg, &t),
                condition("Failed", "DeadlineExceeded", msg, &t),
            ]
        }
    };
    status["conditions"] = json!(conditions);
}

/// Whether the Job has a `Complete` or `Failed` condition.
pub(crate) fn is_finished(job: &Value) -> bool {
    job["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| (c["type"] == "Complete" || c["type"] == "Failed") && c["status"] == "True")
}

fn is_ready(pod: &Value) -> bool {
    pod["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// The pod the controller creates for `job`.
fn pod_for(job: &Value) -> Value {
    let name = meta::name(job);
    let template = &job["spec"]["template"];
    let mut metadata = json!({
        "name": format!("{name}-{}", meta::random_suffix()),
        "generateName": format!("{name}-"),
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
pub(crate) async fn run(cluster: Arc<Cluster>, job: Arc<Value>) {
    let namespace = meta::namespace(&job).to_string();
    let name = meta::name(&job).to_string();
    let uid = meta::uid(&job).to_string();
    let stop = cluster.stop_token(&uid);
    let mut memory = Memory::default();
    let mut pods_feed = cluster.store.watch(Resource::Pods, None).map(|w| w.live);
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
            jiff::Timestamp::now(),
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
        if plan.create_pod {
            create_pod(&cluster, &updated, &mut memory);
        }
        if let Some(finish) = plan.finished {
            let (kind, reason, msg) = match finish {
                Finish::Complete => ("Normal", "Completed", "Job completed"),
                Finish::BackoffLimitExceeded => (
                    "Warning",
                    "BackoffLimitExceeded",
                    "Job has reached the specified backoff limit",
                ),
                Finish::DeadlineExceeded => (
                    "Warning",
                    "DeadlineExceeded",
                    "Job was active longer than specified deadline",
                ),
            };
            cluster.record_event(&updated, kind, reason, msg, "job-controller", None, None);
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
        let pod_changed = async {
            let Ok(feed) = pods_feed.as_mut() else {
                return std::future::pending().await;
            };
            loop {
                match feed.recv().await {
                    Ok(change) => {
                        let ours = meta::is_owned_by(&change.object, &uid)
                            || change.kind == ChangeType::Deleted
                                && change
                                    .previous
                                    .as_ref()
                                    .is_some_and(|p| meta::is_owned_by(p, &uid));
                        if ours {
                            return;
                        }
                    }
                    // Fell behind: reconcile from the store, which is level-based anyway.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => return,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                        return std::future::pending().await;
                    }
                }
            }
        };
        tokio::select! {
            () = stop.cancelled() => break,
            () = sleep => {}
            () = pod_changed => {}
        }
    }
    cluster.forget(&uid);
}

fn create_pod(cluster: &Arc<Cluster>, job: &Value, memory: &mut Memory) {
    let namespace = meta::namespace(job);
    // A generated name can collide; the real controller retries with a new one too.
    for _ in 0..5 {
        match cluster.create(Resource::Pods, namespace, pod_for(job), false) {
            Ok(pod) => {
                memory.created.insert(meta::uid(&pod).to_string());
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

/// The TTL-after-finished controller: deletes a finished Job (and, in the background, its
/// pods) once `ttlSecondsAfterFinished` passed.
async fn expire_after_ttl(
    cluster: &Arc<Cluster>,
    job: &Value,
    stop: &tokio_util::sync::CancellationToken,
) {
    let Some(ttl) = job["spec"]["ttlSecondsAfterFinished"].as_u64() else {
        return;
    };
    if !Cluster::sleep(Duration::from_secs(ttl), stop).await {
        return;
    }
    let options = DeleteOptions {
        propagation: Some(Propagation::Background),
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn job(spec: Value) -> Value {
        json!({"metadata": {"name": "j", "uid": "u"}, "spec": spec, "status": {}})
    }

    fn pod(uid: &str, phase: &str) -> Arc<Value> {
        Arc::new(json!({"metadata": {"name": uid, "uid": uid}, "status": {"phase": phase}}))
    }

    #[test]
    fn new_job_gets_a_pod_and_a_start_time() {
        let mut m = Memory::default();
        let p = reconcile(
            &job(json!({})),
            &[],
            &mut m,
            jiff::Timestamp::now(),
            Instant::now(),
            Duration::ZERO,
        );
        assert!(p.create_pod);
        assert_eq!(p.status["active"], 1);
        assert!(p.status["startTime"].is_string());
    }

    #[test]
    fn succeeded_pod_completes_the_job() {
        let mut m = Memory::default();
        let p = reconcile(
            &job(json!({"completions": 1})),
            &[pod("a", "Succeeded")],
            &mut m,
            jiff::Timestamp::now(),
            Instant::now(),
            Duration::ZERO,
        );
        assert_eq!(p.finished, Some(Finish::Complete));
        assert_eq!(p.status["succeeded"], 1);
        assert!(p.status.get("active").is_none());
        assert_eq!(p.status["conditions"][1]["type"], "Complete");
        assert!(p.status["completionTime"].is_string());
    }

    #[test]
    fn backoff_limit_zero_fails_on_first_failure() {
        let mut m = Memory::default();
        let p = reconcile(
            &job(json!({"backoffLimit": 0})),
            &[pod("a", "Failed")],
            &mut m,
            jiff::Timestamp::now(),
            Instant::now(),
            Duration::ZERO,
        );
        assert_eq!(p.finished, Some(Finish::BackoffLimitExceeded));
        assert_eq!(p.status["conditions"][1]["reason"], "BackoffLimitExceeded");
        assert!(!p.create_pod);
    }

    #[test]
    fn failure_within_backoff_limit_is_replaced_after_the_backoff() {
        let mut m = Memory::default();
        let t0 = Instant::now();
        let j = job(json!({"backoffLimit": 1}));
        let p = reconcile(
            &j,
            &[pod("a", "Failed")],
            &mut m,
            jiff::Timestamp::now(),
            t0,
            Duration::from_secs(10),
        );
        assert!(!p.create_pod);
        assert_eq!(p.wake_at, Some(t0 + Duration::from_secs(10)));
        let mut j2 = j.clone();
        j2["status"] = p.status;
        let p = reconcile(
            &j2,
            &[pod("a", "Failed")],
            &mut m,
            jiff::Timestamp::now(),
            t0 + Duration::from_secs(10),
            Duration::from_secs(10),
        );
        assert!(p.create_pod);
        assert_eq!(p.status["failed"], 1);
    }

    #[test]
    fn active_deadline_fails_the_job_and_deletes_running_pods() {
        let mut m = Memory::default();
        let mut j = job(json!({"activeDeadlineSeconds": 5}));
        let start = jiff::Timestamp::now();
        j["status"]["startTime"] = json!(meta::format_time(start));
        let later = start + jiff::SignedDuration::from_secs(6);
        let p = reconcile(
            &j,
            &[pod("a", "Running")],
            &mut m,
            later,
            Instant::now(),
            Duration::ZERO,
        );
        assert_eq!(p.finished, Some(Finish::DeadlineExceeded));
        assert_eq!(p.delete_pods, vec!["a".to_string()]);
        assert_eq!(p.status["failed"], 1);
    }
}
