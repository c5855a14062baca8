//! The watch loop: kube-runtime watchers on the controller's Jobs and pods feed the
//! [`Tracker`]; its actions become `WorkloadEvent`s, give-ups (gather the pod's events,
//! delete the Job, report `FailedToStart`), or stops of Jobs whose containers outlived their
//! agent; and, while leading, sweeps of agent token Secrets left without an owner
//! ([`crate::launch::orphans`]), at start and every minute.

use std::future::Future;
use std::sync::Arc;

use futures::StreamExt;
use jobify_core::{JobId, Reason, WorkloadEvent};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::ListParams;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};

use crate::config::FailFastConfig;
use crate::launch::Launcher;
use crate::launch::orphans::SWEEP_INTERVAL;
use crate::watch::fail_fast::Cause;
use crate::watch::summary::{JobSummary, PodSummary};
use crate::watch::tracker::{Action, Tracker};

/// How many of a pod's Kubernetes events a `FailedToStart` message carries.
const EVENTS_IN_REASON: usize = 5;

/// What the watch loop needs.
pub(crate) struct WatchContext {
    pub(crate) client: Client,
    pub(crate) namespace: String,
    pub(crate) selector: String,
    pub(crate) fail_fast: FailFastConfig,
    pub(crate) launcher: Arc<Launcher>,
    pub(crate) leading: watch::Receiver<bool>,
}

/// Watches until `shutdown`, sending events to `events`.
pub(crate) async fn run(
    context: WatchContext,
    events: mpsc::Sender<WorkloadEvent>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let config = watcher::Config::default().labels(&context.selector);
    let jobs = watcher(
        Api::<Job>::namespaced(context.client.clone(), &context.namespace),
        config.clone(),
    )
    .default_backoff();
    let pods = watcher(
        Api::<Pod>::namespaced(context.client.clone(), &context.namespace),
        config,
    )
    .default_backoff();
    tokio::pin!(jobs, pods);
    let mut tick = tokio::time::interval(context.fail_fast.check_interval);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // The first tick is at once: a restart sweeps up what a crash left.
    let mut sweep = tokio::time::interval(SWEEP_INTERVAL);
    sweep.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut sweeping: JoinSet<()> = JoinSet::new();
    let mut tracker = Tracker::new();
    let mut give_ups: JoinSet<(JobId, String, GiveUp)> = JoinSet::new();
    let mut deletes: JoinSet<(JobId, bool)> = JoinSet::new();
    let mut stops: JoinSet<(JobId, Option<Reason>)> = JoinSet::new();

    loop {
        let actions = tokio::select! {
            biased;
            () = &mut shutdown => break,
            Some(event) = jobs.next() => match event {
                Ok(event) => on_job(&mut tracker, event),
                Err(err) => {
                    log_watch_error("jobs", &err);
                    Vec::new()
                }
            },
            Some(event) = pods.next() => match event {
                Ok(event) => on_pod(&mut tracker, event),
                Err(err) => {
                    log_watch_error("pods", &err);
                    Vec::new()
                }
            },
            Some(done) = give_ups.join_next() => match done {
                Ok((job, name, GiveUp::Reason(reason))) => {
                    // Reported before the deletion, so the core hears why before `Gone`.
                    deletes.spawn(delete(Arc::clone(&context.launcher), job, name));
                    vec![Action::Emit(WorkloadEvent::FailedToStart { job, reason })]
                }
                Ok((job, _, GiveUp::Failed)) => vec![Action::Emit(WorkloadEvent::Failed(job))],
                Ok((job, _, GiveUp::Started)) => {
                    tracker.give_up_cancelled(job);
                    Vec::new()
                }
                Err(err) => {
                    tracing::error!(error = %err, "a fail-fast task ended abnormally");
                    Vec::new()
                }
            },
            Some(done) = deletes.join_next() => {
                if let Ok((job, false)) = done {
                    tracker.delete_failed(job);
                }
                Vec::new()
            }
            Some(done) = stops.join_next() => match done {
                Ok((job, Some(reason))) => vec![Action::Emit(WorkloadEvent::Stopped { job, reason })],
                Ok((job, None)) => {
                    tracker.stop_failed(job);
                    Vec::new()
                }
                Err(err) => {
                    tracing::error!(error = %err, "a stop task ended abnormally");
                    Vec::new()
                }
            },
            _ = sweep.tick() => {
                // One sweep at a time, and only by the leader (it deletes).
                if *context.leading.borrow() && sweeping.is_empty() {
                    let launcher = Arc::clone(&context.launcher);
                    let selector = context.selector.clone();
                    sweeping.spawn(async move {
                        launcher.sweep_token_secrets(&selector).await;
                    });
                }
                Vec::new()
            }
            Some(_) = sweeping.join_next() => Vec::new(),
            _ = tick.tick() => {
                // Only the leader deletes; a standby's timers keep running and it acts on
                // them once it leads.
                if *context.leading.borrow() {
                    tracker.tick(&context.fail_fast, Instant::now())
                } else {
                    Vec::new()
                }
            }
        };
        for action in actions {
            match action {
                Action::Emit(event) => {
                    tokio::select! {
                        () = &mut shutdown => return,
                        sent = events.send(event) => if sent.is_err() {
                            tracing::debug!("nobody listens to workload events");
                        },
                    }
                }
                Action::GiveUp {
                    job,
                    name,
                    pod,
                    cause,
                } => {
                    let task = give_up(&context, job, name, pod, cause);
                    give_ups.spawn(task);
                }
                Action::Delete { job, name } => {
                    deletes.spawn(delete(Arc::clone(&context.launcher), job, name));
                }
                Action::Stop { job, name, reason } => {
                    stops.spawn(stop(Arc::clone(&context.launcher), job, name, reason));
                }
                Action::Lose { job, name, reason } => {
                    // Only the leader stops Jobs; every replica counts the loss.
                    if *context.leading.borrow() {
                        tracing::warn!(%job, job_name = %name, code = %reason.code, "the agent of a running job was lost; deleting its Job so that no second pod starts");
                        deletes.spawn(delete(Arc::clone(&context.launcher), job, name));
                    }
                    tokio::select! {
                        () = &mut shutdown => return,
                        sent = events.send(WorkloadEvent::AgentLost { job, reason }) => if sent.is_err() {
                            tracing::debug!("nobody listens to workload events");
                        },
                    }
                }
            }
        }
    }
    give_ups.shutdown().await;
    deletes.shutdown().await;
    stops.shutdown().await;
    sweeping.shutdown().await;
}

/// How a watcher error on `resource` reads in the log, by what an operator should do: a
/// watch the server expired (410) is routine, the watcher lists again; a refusal (403) needs
/// a grant; anything else is retried with backoff.
fn log_watch_error(resource: &str, err: &watcher::Error) {
    match watch_error_kind(err) {
        WatchErrorKind::Expired => tracing::info!(resource, error = %err,
            "the watch expired (410 Gone); listing again"),
        WatchErrorKind::Forbidden => tracing::error!(resource, error = %err,
            "jobify may not list or watch {resource}: grant verbs `list` and `watch` on \
             resource `{resource}` (docs/kubernetes.md, RBAC); retrying with backoff"),
        WatchErrorKind::Other => tracing::warn!(resource, error = %err,
            "watching {resource} failed; retrying with backoff"),
    }
}

#[derive(Debug, PartialEq, Eq)]
enum WatchErrorKind {
    Expired,
    Forbidden,
    Other,
}

fn watch_error_kind(err: &watcher::Error) -> WatchErrorKind {
    let code = match err {
        watcher::Error::WatchError(status) => Some(status.code),
        watcher::Error::InitialListFailed(kube::Error::Api(status))
        | watcher::Error::WatchStartFailed(kube::Error::Api(status))
        | watcher::Error::WatchFailed(kube::Error::Api(status)) => Some(status.code),
        _ => None,
    };
    match code {
        Some(410) => WatchErrorKind::Expired,
        Some(403) => WatchErrorKind::Forbidden,
        _ => WatchErrorKind::Other,
    }
}

fn on_job(tracker: &mut Tracker, event: watcher::Event<Job>) -> Vec<Action> {
    let now = Instant::now();
    match event {
        watcher::Event::Init => {
            tracker.jobs_listing();
            Vec::new()
        }
        watcher::Event::InitApply(job) => {
            if let Some(summary) = JobSummary::from_job(&job) {
                tracker.job_listed(summary);
            }
            Vec::new()
        }
        watcher::Event::InitDone => tracker.jobs_listed(now),
        watcher::Event::Apply(job) => match JobSummary::from_job(&job) {
            Some(summary) => tracker.job_applied(summary, now),
            None => Vec::new(),
        },
        watcher::Event::Delete(job) => match JobSummary::from_job(&job) {
            Some(summary) => tracker.job_deleted(summary.job),
            None => Vec::new(),
        },
    }
}

fn on_pod(tracker: &mut Tracker, event: watcher::Event<Pod>) -> Vec<Action> {
    let now = Instant::now();
    match event {
        watcher::Event::Init => {
            tracker.pods_listing();
            Vec::new()
        }
        watcher::Event::InitDone => {
            tracker.pods_listed();
            Vec::new()
        }
        watcher::Event::InitApply(pod) | watcher::Event::Apply(pod) => {
            match PodSummary::from_pod(&pod) {
                Some(summary) => tracker.pod_applied(summary, now),
                None => Vec::new(),
            }
        }
        watcher::Event::Delete(pod) => {
            if let Some(summary) = PodSummary::from_pod(&pod) {
                tracker.pod_deleted(summary.job);
            }
            Vec::new()
        }
    }
}

/// What giving up on a job came to.
enum GiveUp {
    /// Its pod cannot start: delete the Job and report this.
    Reason(Reason),
    /// The Job failed after all its pod started: its agent ran and Buildkite knows.
    Failed,
    /// Its pod started while the reason was gathered (a pod that starts just as its pending
    /// timeout passes): it runs, so nothing is given up on.
    Started,
}

/// Gathers the events that explain `cause` and answers the reason, unless a pod of the job
/// has started after all (read again from the API: the pods watch may lag the Jobs watch,
/// and a pod may start just as its timer fires).
fn give_up(
    context: &WatchContext,
    job: JobId,
    name: String,
    pod: Option<String>,
    cause: Cause,
) -> impl Future<Output = (JobId, String, GiveUp)> + Send + 'static {
    let events_api: Api<Event> = Api::namespaced(context.client.clone(), &context.namespace);
    let pods_api: Api<Pod> = Api::namespaced(context.client.clone(), &context.namespace);
    let fail_fast = context.fail_fast.clone();
    async move {
        if any_pod_started(&pods_api, job).await {
            if cause.is_job_failure() {
                tracing::info!(%job, job_name = %name, "the Job failed after its pod started; the agent reported the job");
                return (job, name, GiveUp::Failed);
            }
            tracing::info!(%job, job_name = %name, code = %cause.code(),
                "the pod started just as jobify was giving up on it; it runs");
            return (job, name, GiveUp::Started);
        }
        let object = pod.as_deref().unwrap_or(&name);
        let reason = match events_about(&events_api, object).await {
            Ok(events) => cause.into_reason(&fail_fast, &events),
            Err(err) => {
                tracing::warn!(%job, object, error = %err,
                    "could not read the Kubernetes events of a pod that cannot start; grant verb `list` on resource `events`");
                let mut reason = cause.into_reason(&fail_fast, &[]);
                reason.message =
                    format!("{} (its events could not be read: {err})", reason.message).into();
                reason
            }
        };
        tracing::info!(%job, job_name = %name, code = %reason.code, message = %reason.message,
            "pod cannot start; deleting its Job");
        (job, name, GiveUp::Reason(reason))
    }
}

/// Whether a pod of `job` started, read from the API now. A failed read answers `false`:
/// the watch saw none start.
async fn any_pod_started(api: &Api<Pod>, job: JobId) -> bool {
    let params = ListParams::default().labels(&format!("{}={job}", crate::labels::JOB_UUID));
    match api.list(&params).await {
        Ok(list) => list
            .items
            .iter()
            .filter_map(PodSummary::from_pod)
            .any(|pod| pod.observation.started),
        Err(err) => {
            tracing::warn!(%job, error = %err, "could not read the pods of a failed Job again");
            false
        }
    }
}

/// Deletes the Job of a pod that cannot start; whether it did.
async fn delete(launcher: Arc<Launcher>, job: JobId, name: String) -> (JobId, bool) {
    match launcher.delete(job, &name).await {
        Ok(()) => (job, true),
        Err(err) => {
            tracing::warn!(%job, error = %err,
                "could not delete the Job; trying again on the next check");
            (job, false)
        }
    }
}

/// Stops the Job of a pod whose containers outlived its agent; the reason when it did.
async fn stop(
    launcher: Arc<Launcher>,
    job: JobId,
    name: String,
    reason: Reason,
) -> (JobId, Option<Reason>) {
    tracing::info!(%job, job_name = %name, code = %reason.code, message = %reason.message,
        "stopping a Job whose containers outlived its agent");
    match launcher.stop(job, &name, &reason.message).await {
        Ok(()) => (job, Some(reason)),
        Err(err) => {
            tracing::warn!(%job, job_name = %name, error = %err,
                "could not stop the Job; trying again on the next check");
            (job, None)
        }
    }
}

/// The latest Kubernetes events about `object`, formatted `Type Reason: message`.
async fn events_about(api: &Api<Event>, object: &str) -> Result<Vec<String>, kube::Error> {
    let params = ListParams::default().fields(&format!("involvedObject.name={object}"));
    let list = api.list(&params).await?;
    let mut events: Vec<&Event> = list
        .items
        .iter()
        .filter(|e| e.involved_object.name.as_deref() == Some(object))
        .collect();
    events.sort_by_key(|e| e.last_timestamp.as_ref().map(|t| t.0));
    let skip = events.len().saturating_sub(EVENTS_IN_REASON);
    Ok(events
        .into_iter()
        .skip(skip)
        .map(|e| {
            format!(
                "{} {}: {}",
                e.type_.as_deref().unwrap_or("Normal"),
                e.reason.as_deref().unwrap_or(""),
                e.message.as_deref().unwrap_or("")
            )
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use kube::core::Status;

    use super::*;

    fn status(code: u16) -> Box<Status> {
        Box::new(Status {
            code,
            ..Status::default()
        })
    }

    #[test]
    fn watch_errors_are_sorted_by_what_an_operator_does() {
        assert_eq!(
            watch_error_kind(&watcher::Error::WatchError(status(410))),
            WatchErrorKind::Expired
        );
        assert_eq!(
            watch_error_kind(&watcher::Error::InitialListFailed(kube::Error::Api(
                status(403)
            ))),
            WatchErrorKind::Forbidden
        );
        assert_eq!(
            watch_error_kind(&watcher::Error::WatchStartFailed(kube::Error::Api(status(
                500
            )))),
            WatchErrorKind::Other
        );
        assert_eq!(
            watch_error_kind(&watcher::Error::NoResourceVersion),
            WatchErrorKind::Other
        );
    }
}
