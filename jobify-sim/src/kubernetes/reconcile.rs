//! The job controller's decision: a pure function of a Job, its pods and what the
//! controller loop remembers, returning the status to write and the pods to create or
//! delete. Conditions, counts and messages follow the real job controller.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::meta;
use super::pod_failure_policy::{self, Verdict};

/// What the loop remembers between reconciles.
#[derive(Debug, Default)]
pub(crate) struct Memory {
    /// Pods already counted as succeeded or failed.
    counted: HashSet<String>,
    /// Pods this loop created.
    created: HashSet<String>,
    /// No replacement pod before this instant.
    backoff_until: Option<Instant>,
    /// The last state seen of each pod not yet counted, to judge one that vanished by its
    /// pod failure policy.
    last_seen: HashMap<String, Arc<Value>>,
}

impl Memory {
    /// Remembers a pod the loop created, so that its vanishing counts as a failure.
    pub(crate) fn created(&mut self, uid: &str) {
        self.created.insert(uid.to_string());
    }
}

/// How a Job ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Finish {
    Complete,
    BackoffLimitExceeded,
    DeadlineExceeded,
    /// A `FailJob` rule of the pod failure policy matched a failed pod.
    PodFailurePolicy,
}

/// What to do after looking at a Job and its pods.
#[derive(Debug, Default)]
#[must_use]
pub(crate) struct Plan {
    pub(crate) status: Value,
    pub(crate) create_pods: usize,
    pub(crate) events: Vec<(&'static str, &'static str, &'static str)>,
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
    let mut fail_job: Option<String> = None;
    let mut judge =
        |pod: &Value, failed: &mut i64, memory: &mut Memory| match pod_failure_policy::verdict(
            job, pod,
        ) {
            Verdict::FailJob(message) => {
                *failed += 1;
                fail_job.get_or_insert(message);
            }
            Verdict::Ignore => {}
            Verdict::Count => {
                *failed += 1;
                memory.backoff_until = Some(instant + job_backoff);
            }
        };
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
                memory.last_seen.remove(uid);
            }
            Some("Failed") => {
                memory.counted.insert(uid.to_string());
                memory.last_seen.remove(uid);
                judge(pod, &mut failed, memory);
            }
            _ => {
                memory.last_seen.insert(uid.to_string(), pod.clone());
            }
        }
    }
    // A pod that vanished before it finished counts as failed, as with finalizer tracking,
    // judged by what it last showed.
    let vanished: Vec<String> = memory
        .created
        .iter()
        .filter(|uid| !present.contains(uid.as_str()) && !memory.counted.contains(*uid))
        .cloned()
        .collect();
    for uid in vanished {
        memory.counted.insert(uid.clone());
        let last = memory.last_seen.remove(&uid).unwrap_or_default();
        judge(&last, &mut failed, memory);
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

    let mut plan = Plan::default();
    let t = meta::format_time(now);
    let mut active_count = i64::try_from(active.len()).unwrap_or(i64::MAX);
    if job["spec"]["suspend"].as_bool().unwrap_or(false) {
        // A suspended Job runs no pods (their deletion counts as neither success nor
        // failure) and its deadline clock stops: startTime restarts on resume.
        plan.delete_pods = active.iter().map(|p| meta::name(p).to_string()).collect();
        for p in &active {
            memory.counted.insert(meta::uid(p).to_string());
        }
        if set_condition(
            &mut status,
            "Suspended",
            true,
            "JobSuspended",
            "Job suspended",
            &t,
        ) {
            plan.events.push(("Normal", "Suspended", "Job suspended"));
        }
        if let Some(m) = status.as_object_mut() {
            m.remove("startTime");
        }
        active_count = 0;
    } else {
        if has_condition(&status, "Suspended", "True") {
            set_condition(
                &mut status,
                "Suspended",
                false,
                "JobResumed",
                "Job resumed",
                &t,
            );
            plan.events.push(("Normal", "Resumed", "Job resumed"));
        }
        let start = status["startTime"].as_str().and_then(|s| s.parse().ok());
        let start: jiff::Timestamp = start.unwrap_or(now);
        status["startTime"] = json!(meta::format_time(start));
        let backoff_limit = job["spec"]["backoffLimit"].as_i64().unwrap_or(6);
        let deadline = job["spec"]["activeDeadlineSeconds"]
            .as_i64()
            .map(|s| start + jiff::SignedDuration::from_secs(s));
        let completions = job["spec"]["completions"].as_i64().unwrap_or(1);
        let parallelism = job["spec"]["parallelism"].as_i64().unwrap_or(1);
        let finish = if succeeded >= completions {
            Some(Finish::Complete)
        } else if fail_job.is_some() {
            Some(Finish::PodFailurePolicy)
        } else if failed + restarts > backoff_limit {
            Some(Finish::BackoffLimitExceeded)
        } else if deadline.is_some_and(|d| now >= d) {
            Some(Finish::DeadlineExceeded)
        } else {
            None
        };
        if let Some(finish) = finish {
            if finish != Finish::Complete {
                plan.delete_pods = active.iter().map(|p| meta::name(p).to_string()).collect();
                failed += active_count;
                for p in &active {
                    memory.counted.insert(meta::uid(p).to_string());
                }
                active_count = 0;
            }
            finish_status(&mut status, finish, fail_job.as_deref(), &t);
            plan.events.push(finish_event(finish));
            plan.finished = Some(finish);
        } else {
            let wanted = parallelism.min(completions - succeeded).max(0);
            // `Failed`: a replacement waits until a terminating pod has ended.
            let waits_for_terminating = job["spec"]["podReplacementPolicy"] == "Failed";
            let busy = active_count
                + if waits_for_terminating {
                    i64::try_from(terminating).unwrap_or(i64::MAX)
                } else {
                    0
                };
            let missing = wanted - busy;
            if missing > 0 {
                match memory.backoff_until {
                    Some(until) if until > instant => plan.wake_at = Some(until),
                    _ => {
                        plan.create_pods = usize::try_from(missing).unwrap_or_default();
                        active_count += missing;
                    }
                }
            }
            if let Some(d) = deadline {
                let wake = instant + d.duration_since(now).unsigned_abs();
                plan.wake_at = Some(plan.wake_at.map_or(wake, |w| w.min(wake)));
            }
        }
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

fn finish_event(finish: Finish) -> (&'static str, &'static str, &'static str) {
    match finish {
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
        Finish::PodFailurePolicy => (
            "Warning",
            "PodFailurePolicy",
            "Job failed by a pod failure policy rule",
        ),
    }
}

fn has_condition(status: &Value, kind: &str, value: &str) -> bool {
    status["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == kind && c["status"] == value)
}

/// Sets condition `kind`, keeping its transition time if its status did not change;
/// returns whether it changed.
fn set_condition(
    status: &mut Value,
    kind: &str,
    on: bool,
    reason: &str,
    message: &str,
    now: &str,
) -> bool {
    let value = if on { "True" } else { "False" };
    if !status["conditions"].is_array() {
        status["conditions"] = json!([]);
    }
    let Some(conditions) = status["conditions"].as_array_mut() else {
        return false;
    };
    let new = json!({
        "type": kind,
        "status": value,
        "lastProbeTime": now,
        "lastTransitionTime": now,
        "reason": reason,
        "message": message,
    });
    match conditions.iter_mut().find(|c| c["type"] == kind) {
        Some(c) if c["status"] == value => false,
        Some(c) => {
            *c = new;
            true
        }
        None => {
            conditions.push(new);
            true
        }
    }
}

/// Counts are `omitempty` in the real API: zero is absent.
fn set_count(status: &mut Value, key: &str, n: i64) {
    if n > 0 {
        status[key] = json!(n);
    } else if let Some(m) = status.as_object_mut() {
        m.remove(key);
    }
}

fn finish_status(status: &mut Value, finish: Finish, rule: Option<&str>, t: &str) {
    let (target, kind, reason, msg) = match finish {
        Finish::Complete => {
            status["completionTime"] = json!(t);
            (
                "SuccessCriteriaMet",
                "Complete",
                "CompletionsReached",
                "Reached expected number of succeeded pods",
            )
        }
        Finish::BackoffLimitExceeded => (
            "FailureTarget",
            "Failed",
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit",
        ),
        Finish::DeadlineExceeded => (
            "FailureTarget",
            "Failed",
            "DeadlineExceeded",
            "Job was active longer than specified deadline",
        ),
        Finish::PodFailurePolicy => (
            "FailureTarget",
            "Failed",
            "PodFailurePolicy",
            rule.unwrap_or("a pod failure policy rule matched"),
        ),
    };
    set_condition(status, target, true, reason, msg, t);
    set_condition(status, kind, true, reason, msg, t);
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
        assert_eq!(p.create_pods, 1);
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
        assert_eq!(p.create_pods, 0);
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
        assert_eq!(p.create_pods, 0);
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
        assert_eq!(p.create_pods, 1);
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
