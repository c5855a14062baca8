//! The book-keeping of watched Jobs and pods: a synchronous struct fed watcher events and
//! clock ticks, answering with the `WorkloadEvent`s to emit and the Jobs to give up on.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use jobify_core::{JobId, Reason, ReasonCode, WorkloadEvent};
use tokio::time::Instant;

use crate::config::FailFastConfig;
use crate::watch::fail_fast::{Cause, StartWatch};
use crate::watch::summary::{JobSummary, Outcome, PodSummary};

/// What the tracker asks the watch loop to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Emit this event to the core.
    Emit(WorkloadEvent),
    /// The job's pod can never start: gather its events, delete the Job, report the cause.
    GiveUp {
        /// The Buildkite job.
        job: JobId,
        /// The Kubernetes Job's name.
        name: String,
        /// The pod whose events explain it, when there is one.
        pod: Option<String>,
        /// Why.
        cause: Cause,
    },
    /// The agent of a running job was lost (its pod disrupted or vanished while the Job ran):
    /// report it, and delete the Job so that the Job controller starts no second pod.
    Lose {
        /// The Buildkite job.
        job: JobId,
        /// The Kubernetes Job's name.
        name: String,
        /// What happened.
        reason: Reason,
    },
    /// The agent has ended while other containers keep the pod running: stop the Job (its
    /// pods are terminated; the Job object stays, marked), so no pod outlives its job.
    Stop {
        /// The Buildkite job.
        job: JobId,
        /// The Kubernetes Job's name.
        name: String,
        /// Why, naming the containers still running.
        reason: Reason,
    },
    /// Delete the Job of a job given up on again: the last attempt failed.
    Delete {
        /// The Buildkite job.
        job: JobId,
        /// The Kubernetes Job's name.
        name: String,
    },
}

/// How long a Job that failed while its pod had not started waits for the pod's last state
/// before it is given up on without it.
pub const FAILED_POD_WAIT: Duration = Duration::from_secs(2);

#[derive(Debug)]
struct Tracked {
    summary: JobSummary,
    start: StartWatch,
    announced_start: bool,
    gave_up: bool,
    /// Given up on, and deleting its Job failed: delete again on the next tick.
    delete_failed: bool,
    /// When its Job failed while its pod had not started, until it is given up on: the
    /// pod's last state may still be on its way (Jobs and pods are separate watches).
    failed_unstarted: Option<Instant>,
    /// Its agent was reported lost.
    lost: bool,
    /// Stopping it because containers outlived its agent.
    stop: Stop,
    /// What its pod was last reported waiting for.
    waiting: Option<String>,
}

/// Where stopping a Job whose containers outlived its agent stands.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Stop {
    /// Nothing to stop.
    Idle,
    /// To stop on the leader's next tick: these containers outlived the agent.
    Wanted(Vec<String>),
    /// The stop was sent.
    Sent(Vec<String>),
}

impl Tracked {
    fn new(summary: JobSummary, now: Instant) -> Self {
        Tracked {
            summary,
            start: StartWatch::new(now),
            announced_start: false,
            gave_up: false,
            delete_failed: false,
            failed_unstarted: None,
            lost: false,
            stop: Stop::Idle,
            waiting: None,
        }
    }

    /// `Waiting`, when what the pod of a live Job waits for changed.
    fn announce_waiting(&mut self, pod: &PodSummary) -> Option<Action> {
        let detail = super::waiting::waiting_detail(&pod.observation)?;
        if !self.live() || self.waiting.as_ref() == Some(&detail) {
            return None;
        }
        self.waiting = Some(detail.clone());
        Some(Action::Emit(WorkloadEvent::Waiting {
            job: self.summary.job,
            detail,
        }))
    }

    /// Whether the Job still runs as far as jobify is concerned: not ended, not being
    /// deleted, not stopped, given up on or lost.
    fn live(&self) -> bool {
        self.summary.outcome.is_none()
            && !self.summary.deleting
            && !self.summary.stopped
            && !self.gave_up
            && !self.lost
    }

    /// Notes the containers of `pod` that outlived its agent: the Job is to be stopped.
    fn outlived(&mut self, pod: &PodSummary) {
        if self.stop == Stop::Idle && self.live() && !pod.lingering.is_empty() {
            self.stop = Stop::Wanted(pod.lingering.clone());
        }
    }

    /// `Stop`, on a tick, for a Job whose containers outlived its agent, once.
    fn stop(&mut self) -> Option<Action> {
        let Stop::Wanted(containers) = &self.stop else {
            return None;
        };
        let containers = containers.clone();
        if !self.live() {
            self.stop = Stop::Idle;
            return None;
        }
        let reason = Reason::new(
            ReasonCode("containers_outlived_agent"),
            format!(
                "the agent has ended, but container{} {} kept the pod running: jobify stopped the Job",
                if containers.len() == 1 { "" } else { "s" },
                containers
                    .iter()
                    .map(|c| format!("`{c}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
        self.stop = Stop::Sent(containers);
        Some(Action::Stop {
            job: self.summary.job,
            name: self.summary.name.clone(),
            reason,
        })
    }

    /// `Lose`, the first time the pod of a started, running Job is disrupted (evicted,
    /// preempted, its node lost): its agent cannot finish the job, and the Job controller
    /// would start a second pod. A pod deleted otherwise ends with its containers' exit codes,
    /// which fail the Job (`podFailurePolicy`), so no second pod starts.
    fn lose(&mut self, disrupted: Option<&str>) -> Option<Action> {
        let running = self.announced_start
            && self.summary.outcome.is_none()
            && !self.summary.deleting
            && !self.gave_up;
        let how = disrupted.filter(|_| running && !self.lost)?;
        self.lost = true;
        let reason = Reason::new(
            ReasonCode("pod_disrupted"),
            format!("the pod of the running job was disrupted ({how}); its agent was lost"),
        );
        Some(Action::Lose {
            job: self.summary.job,
            name: self.summary.name.clone(),
            reason,
        })
    }

    /// Gives up on a Job that failed while its pod had not started, once the pod's last
    /// state explains why, or `wait` after the Job failed when it does not.
    fn give_up_failed(&mut self, now: Instant, wait: Duration, pods_known: bool) -> Option<Action> {
        let since = self.failed_unstarted?;
        // Until the pods have been listed, a pod that ran may simply not be known yet.
        if !pods_known {
            return None;
        }
        if self.start.started() {
            self.failed_unstarted = None;
            return None;
        }
        let cause = self.start.cause_of_failure(self.summary.failed_pods);
        let explained = !matches!(cause, Cause::JobFailedBeforeStart { .. });
        if self.gave_up || !(explained || now.duration_since(since) >= wait) {
            return None;
        }
        self.gave_up = true;
        self.failed_unstarted = None;
        Some(Action::GiveUp {
            job: self.summary.job,
            name: self.summary.name.clone(),
            pod: self.start.pod_name().map(str::to_owned),
            cause,
        })
    }

    /// `Started`, the first time the pod is seen started while the Job has not `ended`.
    fn announce_start(&mut self, ended: bool) -> Option<Action> {
        if !self.start.started() || self.announced_start || ended {
            return None;
        }
        self.announced_start = true;
        Some(Action::Emit(WorkloadEvent::Started(self.summary.job)))
    }
}

/// Watched Jobs and their pods, keyed by Buildkite job.
#[derive(Debug, Default)]
pub struct Tracker {
    jobs: HashMap<JobId, Tracked>,
    /// Pods seen before (or without) their Job, and the latest of each job's pod.
    pods: HashMap<JobId, PodSummary>,
    listing_jobs: Option<Vec<JobSummary>>,
    listing_pods: Option<HashSet<JobId>>,
    /// A pods listing has completed, and none is in progress: every pod is known.
    pods_listed: bool,
}

impl Tracker {
    /// An empty tracker.
    pub fn new() -> Self {
        Tracker::default()
    }

    /// How many Jobs are tracked.
    pub fn len(&self) -> usize {
        self.jobs.len()
    }

    /// Whether no Job is tracked.
    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }

    /// The Jobs watcher (re)started listing.
    pub fn jobs_listing(&mut self) {
        self.listing_jobs = Some(Vec::new());
    }

    /// A Job from the listing.
    pub fn job_listed(&mut self, job: JobSummary) {
        match &mut self.listing_jobs {
            Some(listed) => listed.push(job),
            None => self.listing_jobs = Some(vec![job]),
        }
    }

    /// The listing is complete: it replaces what was tracked. Emits `Restored`, then
    /// `Started` for listed jobs whose pods already run.
    pub fn jobs_listed(&mut self, now: Instant) -> Vec<Action> {
        let listed = self.listing_jobs.take().unwrap_or_default();
        let mut previous = std::mem::take(&mut self.jobs);
        let workloads = listed.iter().map(JobSummary::workload).collect();
        let mut actions = vec![Action::Emit(WorkloadEvent::Restored(workloads))];
        for summary in listed {
            let id = summary.job;
            let mut tracked = previous
                .remove(&id)
                .unwrap_or_else(|| Tracked::new(summary.clone(), now));
            // A Job that failed while jobify was not watching (a restart, a watch gap) may
            // not have been reported: once the pods are known, it is, unless its pod started.
            let newly_failed = summary.outcome == Some(Outcome::Failed)
                && (tracked.summary.outcome.is_none() || !tracked.announced_start)
                && !tracked.gave_up;
            if newly_failed {
                tracked.failed_unstarted.get_or_insert(now);
            }
            tracked.summary = summary;
            if let Some(pod) = self.pods.get(&id) {
                tracked.start.observe(pod.observation.clone(), now);
                tracked.outlived(pod);
            }
            actions.extend(tracked.announce_start(tracked.summary.outcome.is_some()));
            self.jobs.insert(id, tracked);
        }
        actions
    }

    /// A Job was created or changed.
    pub fn job_applied(&mut self, summary: JobSummary, now: Instant) -> Vec<Action> {
        let id = summary.job;
        let pods_known = self.pods_known();
        let mut actions = Vec::new();
        let tracked = self.jobs.entry(id).or_insert_with(|| {
            actions.push(Action::Emit(WorkloadEvent::Observed(summary.workload())));
            Tracked::new(summary.clone(), now)
        });
        if let Some(pod) = self.pods.get(&id) {
            if !tracked.start.started() {
                tracked.start.observe(pod.observation.clone(), now);
            }
            tracked.outlived(pod);
        }
        actions.extend(tracked.announce_start(summary.outcome.is_some()));
        if tracked.summary.outcome.is_none() {
            match summary.outcome {
                Some(Outcome::Succeeded) => {
                    actions.push(Action::Emit(WorkloadEvent::Succeeded(id)));
                }
                // Its pod never started, so no agent acquired the job: Buildkite must be told,
                // or the job stays scheduled with nothing running for it.
                Some(Outcome::Failed) if !tracked.gave_up && !tracked.start.started() => {
                    tracked.failed_unstarted = Some(now);
                }
                Some(Outcome::Failed) if !tracked.gave_up => {
                    actions.push(Action::Emit(WorkloadEvent::Failed(id)));
                }
                _ => {}
            }
        }
        tracked.summary = summary;
        actions.extend(tracked.give_up_failed(now, FAILED_POD_WAIT, pods_known));
        actions
    }

    /// A Job was deleted.
    pub fn job_deleted(&mut self, job: JobId) -> Vec<Action> {
        self.pods.remove(&job);
        match self.jobs.remove(&job) {
            Some(_) => vec![Action::Emit(WorkloadEvent::Gone(job))],
            None => Vec::new(),
        }
    }

    /// The pods watcher (re)started listing.
    pub fn pods_listing(&mut self) {
        self.listing_pods = Some(HashSet::new());
    }

    /// The pods listing is complete: pods not in it are gone.
    pub fn pods_listed(&mut self) {
        if let Some(listed) = self.listing_pods.take() {
            self.pods.retain(|job, _| listed.contains(job));
        }
        self.pods_listed = true;
    }

    /// Whether every pod is known: a listing completed and none is in progress.
    fn pods_known(&self) -> bool {
        self.pods_listed && self.listing_pods.is_none()
    }

    /// A pod was created or changed (or listed).
    pub fn pod_applied(&mut self, pod: PodSummary, now: Instant) -> Vec<Action> {
        let id = pod.job;
        let pods_known = self.pods_known();
        if let Some(listed) = &mut self.listing_pods {
            listed.insert(id);
        }
        let mut actions = Vec::new();
        if let Some(tracked) = self.jobs.get_mut(&id) {
            tracked.start.observe(pod.observation.clone(), now);
            actions.extend(tracked.announce_start(tracked.summary.outcome.is_some()));
            actions.extend(tracked.lose(pod.observation.disrupted.as_deref()));
            actions.extend(tracked.give_up_failed(now, FAILED_POD_WAIT, pods_known));
            actions.extend(tracked.announce_waiting(&pod));
            tracked.outlived(&pod);
        }
        self.pods.insert(id, pod);
        actions
    }

    /// A pod was deleted.
    pub fn pod_deleted(&mut self, job: JobId) {
        self.pods.remove(&job);
        if let Some(tracked) = self.jobs.get_mut(&job) {
            tracked.start.pod_gone();
        }
    }

    /// Giving up on `job` was called off: its pod started while the reason was gathered, so
    /// the job is tracked as running again (and given up on anew if it should be).
    pub fn give_up_cancelled(&mut self, job: JobId) {
        if let Some(tracked) = self.jobs.get_mut(&job) {
            tracked.gave_up = false;
        }
    }

    /// Deleting the Job of `job`, given up on, failed: the next tick deletes it again, until
    /// it is gone or has ended.
    pub fn delete_failed(&mut self, job: JobId) {
        if let Some(tracked) = self.jobs.get_mut(&job) {
            tracked.delete_failed = tracked.gave_up || tracked.lost;
        }
    }

    /// Stopping the Job of `job` failed: the next tick stops it again, while it still runs.
    pub fn stop_failed(&mut self, job: JobId) {
        if let Some(tracked) = self.jobs.get_mut(&job)
            && let Stop::Sent(containers) = &tracked.stop
        {
            tracked.stop = Stop::Wanted(containers.clone());
        }
    }

    /// Checks every unstarted job's fail-fast timers at `now`, and stops the Jobs whose
    /// containers outlived their agent. A job is given up on once;
    /// its Job is deleted again while deleting it fails.
    pub fn tick(&mut self, config: &FailFastConfig, now: Instant) -> Vec<Action> {
        let pods_known = self.pods_known();
        let mut actions = Vec::new();
        for (id, tracked) in &mut self.jobs {
            actions.extend(tracked.give_up_failed(now, FAILED_POD_WAIT, pods_known));
            actions.extend(tracked.stop());
            if tracked.summary.outcome.is_some() {
                continue;
            }
            if tracked.delete_failed {
                tracked.delete_failed = false;
                actions.push(Action::Delete {
                    job: *id,
                    name: tracked.summary.name.clone(),
                });
                continue;
            }
            if tracked.gave_up {
                continue;
            }
            if let Some(cause) = tracked.start.check(config, now) {
                tracked.gave_up = true;
                actions.push(Action::GiveUp {
                    job: *id,
                    name: tracked.summary.name.clone(),
                    pod: tracked.start.pod_name().map(str::to_owned),
                    cause,
                });
            }
        }
        actions.sort_by_key(|a| match a {
            Action::GiveUp { job, .. }
            | Action::Delete { job, .. }
            | Action::Lose { job, .. }
            | Action::Stop { job, .. } => Some(*job),
            Action::Emit(e) => e.job(),
        });
        actions
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use uuid::Uuid;

    use super::*;
    use crate::watch::fail_fast::{ContainerWaiting, PodObservation};

    fn id(n: u128) -> JobId {
        JobId(Uuid::from_u128(n))
    }

    fn job(n: u128, outcome: Option<Outcome>) -> JobSummary {
        JobSummary {
            job: id(n),
            name: format!("jobify-{n}"),
            queue: Some("k8s".to_owned()),
            pipeline: Some("app".to_owned()),
            outcome,
            failed_pods: 0,
            deleting: false,
            stopped: false,
        }
    }

    fn pod(n: u128, started: bool, reason: Option<&str>) -> PodSummary {
        PodSummary {
            job: id(n),
            lingering: Vec::new(),
            observation: PodObservation {
                name: format!("pod-{n}"),
                started,
                unschedulable: None,
                waiting: reason
                    .map(|r| ContainerWaiting {
                        container: "agent".to_owned(),
                        image: "x".to_owned(),
                        reason: r.to_owned(),
                        message: String::new(),
                    })
                    .into_iter()
                    .collect(),
                init_failures: Vec::new(),
                failed_before_start: None,
                disrupted: None,
            },
        }
    }

    /// The events emitted, the informational `Waiting` left out (see
    /// `a_pending_pod_is_reported_waiting_once_per_reason`).
    fn emitted(actions: Vec<Action>) -> Vec<WorkloadEvent> {
        actions
            .into_iter()
            .filter_map(|a| match a {
                Action::Emit(WorkloadEvent::Waiting { .. }) => None,
                Action::Emit(e) => Some(e),
                Action::GiveUp { .. }
                | Action::Delete { .. }
                | Action::Lose { .. }
                | Action::Stop { .. } => None,
            })
            .collect()
    }

    #[test]
    fn a_pending_pod_is_reported_waiting_once_per_reason() {
        let now = Instant::now();
        let mut tracker = Tracker::new();
        let _ = tracker.job_applied(job(1, None), now);
        let waiting = |actions: Vec<Action>| -> Vec<String> {
            actions
                .into_iter()
                .filter_map(|a| match a {
                    Action::Emit(WorkloadEvent::Waiting { detail, .. }) => Some(detail),
                    _ => None,
                })
                .collect()
        };
        let creating = waiting(tracker.pod_applied(pod(1, false, Some("ContainerCreating")), now));
        assert_eq!(creating.len(), 1);
        assert!(
            creating[0].contains("creating container `agent`"),
            "{creating:?}"
        );
        assert!(
            waiting(tracker.pod_applied(pod(1, false, Some("ContainerCreating")), now)).is_empty(),
            "the same wait is reported once"
        );
        let pulling = waiting(tracker.pod_applied(pod(1, false, Some("ErrImagePull")), now));
        assert!(pulling[0].contains("pulling image `x`"), "{pulling:?}");
        assert!(
            waiting(tracker.pod_applied(pod(1, true, None), now)).is_empty(),
            "a started pod waits for nothing"
        );
    }

    #[test]
    fn the_initial_listing_restores_and_announces_running_pods() {
        let now = Instant::now();
        let mut tracker = Tracker::new();
        tracker.pods_listing();
        tracker.pod_applied(pod(1, true, None), now);
        tracker.pods_listed();
        tracker.jobs_listing();
        tracker.job_listed(job(1, None));
        tracker.job_listed(job(2, Some(Outcome::Succeeded)));
        let events = emitted(tracker.jobs_listed(now));
        let WorkloadEvent::Restored(workloads) = &events[0] else {
            panic!("Restored first, got {events:?}")
        };
        assert_eq!(workloads.len(), 2);
        assert!(workloads[1].finished);
        assert_eq!(events[1], WorkloadEvent::Started(id(1)));
        assert_eq!(events.len(), 2);
    }

    #[test]
    fn a_job_goes_observed_started_succeeded_gone() {
        let now = Instant::now();
        let mut tracker = Tracker::new();
        tracker.jobs_listing();
        tracker.jobs_listed(now);
        let mut events = emitted(tracker.job_applied(job(1, None), now));
        events.extend(emitted(tracker.pod_applied(pod(1, false, None), now)));
        events.extend(emitted(tracker.pod_applied(pod(1, true, None), now)));
        events.extend(emitted(tracker.pod_applied(pod(1, true, None), now)));
        events.extend(emitted(
            tracker.job_applied(job(1, Some(Outcome::Succeeded)), now),
        ));
        events.extend(emitted(
            tracker.job_applied(job(1, Some(Outcome::Succeeded)), now),
        ));
        tracker.pod_deleted(id(1));
        events.extend(emitted(tracker.job_deleted(id(1))));
        assert_eq!(
            events,
            [
                WorkloadEvent::Observed(job(1, None).workload()),
                WorkloadEvent::Started(id(1)),
                WorkloadEvent::Succeeded(id(1)),
                WorkloadEvent::Gone(id(1)),
            ]
        );
        assert!(tracker.is_empty());
    }

    #[test]
    fn a_relist_drops_jobs_that_vanished_meanwhile() {
        let now = Instant::now();
        let mut tracker = Tracker::new();
        tracker.jobs_listing();
        tracker.job_listed(job(1, None));
        tracker.job_listed(job(2, None));
        tracker.jobs_listed(now);
        tracker.jobs_listing();
        tracker.job_listed(job(2, None));
        let events = emitted(tracker.jobs_listed(now));
        assert_eq!(
            events,
            [WorkloadEvent::Restored(vec![job(2, None).workload()])]
        );
        assert_eq!(tracker.len(), 1);
    }

    #[test]
    fn a_pod_that_cannot_start_is_given_up_once_and_its_failure_not_reported_twice() {
        let now = Instant::now();
        let config = FailFastConfig::default();
        let mut tracker = Tracker::new();
        tracker.job_applied(job(1, None), now);
        tracker.pod_applied(pod(1, false, Some("InvalidImageName")), now);
        let actions = tracker.tick(&config, now);
        assert!(matches!(
            &actions[..],
            [Action::GiveUp { job, pod: Some(pod), .. }] if *job == id(1) && pod == "pod-1"
        ));
        assert!(
            tracker
                .tick(&config, now + Duration::from_secs(60))
                .is_empty()
        );
        // The Job may fail before the deletion lands: FailedToStart already said so.
        assert!(emitted(tracker.job_applied(job(1, Some(Outcome::Failed)), now)).is_empty());
    }

    #[test]
    fn a_pod_that_starts_as_it_is_given_up_on_runs_on_as_any_other() {
        let now = Instant::now();
        let config = FailFastConfig::default();
        let late = now + config.pending_timeout;
        let mut tracker = Tracker::new();
        tracker.job_applied(job(1, None), now);
        tracker.pod_applied(pod(1, false, None), now);
        assert!(matches!(
            &tracker.tick(&config, late)[..],
            [Action::GiveUp { job, .. }] if *job == id(1)
        ));
        // The pod starts while the reason is gathered: the give-up finds it started.
        assert_eq!(
            emitted(tracker.pod_applied(pod(1, true, None), late)),
            [WorkloadEvent::Started(id(1))]
        );
        tracker.give_up_cancelled(id(1));
        assert!(
            tracker.tick(&config, late).is_empty(),
            "started: no new give-up"
        );
        let mut disrupted = pod(1, true, None);
        disrupted.observation.disrupted = Some("DisruptionTarget: TerminationByKubelet".into());
        assert!(
            matches!(
                &tracker.pod_applied(disrupted, late)[..],
                [Action::Lose { .. }]
            ),
            "tracked as running again"
        );
    }

    #[test]
    fn a_job_that_fails_before_its_pod_starts_is_given_up_not_just_failed() {
        let now = Instant::now();
        let mut tracker = Tracker::new();
        tracker.pods_listing();
        tracker.pods_listed();
        tracker.job_applied(job(1, None), now);
        let mut evicted = pod(1, false, None);
        evicted.observation.failed_before_start =
            Some("Evicted: The node was low on resource: memory".to_owned());
        tracker.pod_applied(evicted, now);
        assert!(
            tracker.tick(&FailFastConfig::default(), now).is_empty(),
            "the Job controller may replace the pod"
        );
        let failed = JobSummary {
            failed_pods: 3,
            ..job(1, Some(Outcome::Failed))
        };
        let actions = tracker.job_applied(failed, now);
        assert!(
            matches!(
                actions.as_slice(),
                [Action::GiveUp { cause: Cause::PodFailed { detail, pods: 3 }, pod: Some(pod), .. }]
                    if detail.starts_with("Evicted") && pod == "pod-1"
            ),
            "{actions:?}"
        );
        assert!(
            tracker.tick(&FailFastConfig::default(), now).is_empty(),
            "given up once"
        );

        // No pod at all: the Job failed first (its deadline, say). Its pod's last state may
        // still come; without it, the job is given up on after a short wait.
        tracker.job_applied(job(2, None), now);
        assert!(emitted(tracker.job_applied(job(2, Some(Outcome::Failed)), now)).is_empty());
        assert!(tracker.tick(&FailFastConfig::default(), now).is_empty());
        let actions = tracker.tick(&FailFastConfig::default(), now + FAILED_POD_WAIT);
        assert!(
            matches!(
                actions.as_slice(),
                [Action::GiveUp {
                    cause: Cause::JobFailedBeforeStart { pods: 0 },
                    ..
                }]
            ),
            "{actions:?}"
        );
    }

    #[test]
    fn after_a_restart_a_job_that_failed_unstarted_is_reported_once_the_pods_are_listed() {
        let now = Instant::now();
        let mut tracker = Tracker::new();
        tracker.jobs_listing();
        tracker.job_listed(job(1, Some(Outcome::Failed)));
        tracker.job_listed(job(2, Some(Outcome::Failed)));
        tracker.jobs_listed(now);
        let later = now + FAILED_POD_WAIT * 3;
        assert!(
            tracker.tick(&FailFastConfig::default(), later).is_empty(),
            "the pods are not known yet: job 2's pod may have run"
        );
        tracker.pods_listing();
        tracker.pod_applied(pod(2, true, None), later);
        tracker.pods_listed();
        let actions = tracker.tick(&FailFastConfig::default(), later);
        assert!(
            matches!(actions.as_slice(), [Action::GiveUp { job, .. }] if *job == id(1)),
            "only the job whose pod never ran: {actions:?}"
        );
        assert!(
            tracker.tick(&FailFastConfig::default(), later).is_empty(),
            "once"
        );
    }

    #[test]
    fn a_running_pod_that_is_disrupted_loses_its_agent_once_and_its_job_is_stopped() {
        let now = Instant::now();
        let mut tracker = Tracker::new();
        tracker.job_applied(job(1, None), now);
        tracker.pod_applied(pod(1, true, None), now);
        let mut evicted = pod(1, true, None);
        evicted.observation.disrupted = Some("DisruptionTarget: EvictionByEvictionAPI".to_owned());
        let actions = tracker.pod_applied(evicted.clone(), now);
        assert!(
            matches!(
                actions.as_slice(),
                [Action::Lose { job, name, reason }]
                    if *job == id(1) && name == "jobify-1"
                        && reason.code.as_str() == "pod_disrupted"
                        && reason.message.contains("EvictionByEvictionAPI")
            ),
            "{actions:?}"
        );
        assert!(tracker.pod_applied(evicted, now).is_empty(), "once");
        tracker.delete_failed(id(1));
        assert!(
            matches!(
                tracker.tick(&FailFastConfig::default(), now).as_slice(),
                [Action::Delete { .. }]
            ),
            "a failed delete is tried again"
        );
    }

    #[test]
    fn a_disrupted_pod_that_never_started_is_the_job_controllers_to_replace() {
        let now = Instant::now();
        let mut tracker = Tracker::new();
        tracker.job_applied(job(1, None), now);
        let mut evicted = pod(1, false, None);
        evicted.observation.disrupted = Some("DisruptionTarget: TerminationByKubelet".to_owned());
        assert!(tracker.pod_applied(evicted, now).is_empty());
    }

    #[test]
    fn a_job_whose_pod_ran_fails_as_before() {
        let now = Instant::now();
        let mut tracker = Tracker::new();
        tracker.job_applied(job(1, None), now);
        tracker.pod_applied(pod(1, true, None), now);
        let events = emitted(tracker.job_applied(job(1, Some(Outcome::Failed)), now));
        assert!(events.contains(&WorkloadEvent::Failed(id(1))), "{events:?}");
    }

    #[test]
    fn a_given_up_job_whose_delete_failed_is_deleted_again_until_it_is_gone() {
        let now = Instant::now();
        let config = FailFastConfig::default();
        let mut tracker = Tracker::new();
        tracker.job_applied(job(1, None), now);
        tracker.pod_applied(pod(1, false, Some("InvalidImageName")), now);
        assert!(matches!(
            &tracker.tick(&config, now)[..],
            [Action::GiveUp { .. }]
        ));
        tracker.delete_failed(id(1));
        let later = now + config.check_interval;
        assert_eq!(
            tracker.tick(&config, later),
            [Action::Delete {
                job: id(1),
                name: "jobify-1".to_owned()
            }]
        );
        // Once per failure, not on every tick.
        assert!(tracker.tick(&config, later).is_empty());
        tracker.delete_failed(id(1));
        tracker.job_deleted(id(1));
        assert!(tracker.tick(&config, later).is_empty());
    }

    #[test]
    fn a_job_not_given_up_is_never_deleted() {
        let now = Instant::now();
        let config = FailFastConfig::default();
        let mut tracker = Tracker::new();
        tracker.job_applied(job(1, None), now);
        tracker.pod_applied(pod(1, true, None), now);
        tracker.delete_failed(id(1));
        assert!(
            tracker
                .tick(&config, now + config.pending_timeout)
                .is_empty()
        );
    }

    #[test]
    fn a_job_without_pod_is_given_up_after_the_grace() {
        let now = Instant::now();
        let config = FailFastConfig::default();
        let mut tracker = Tracker::new();
        tracker.job_applied(job(1, None), now);
        assert!(
            tracker
                .tick(&config, now + config.no_pod_grace / 2)
                .is_empty()
        );
        let actions = tracker.tick(&config, now + config.no_pod_grace);
        assert!(matches!(
            &actions[..],
            [Action::GiveUp {
                cause: Cause::NoPod,
                pod: None,
                ..
            }]
        ));
    }

    #[test]
    fn a_pod_seen_before_its_job_still_counts() {
        let now = Instant::now();
        let mut tracker = Tracker::new();
        assert!(tracker.pod_applied(pod(1, true, None), now).is_empty());
        let events = emitted(tracker.job_applied(job(1, None), now));
        assert_eq!(events[1], WorkloadEvent::Started(id(1)));
    }

    fn lingering(n: u128, containers: &[&str]) -> PodSummary {
        PodSummary {
            lingering: containers.iter().map(|c| (*c).to_owned()).collect(),
            ..pod(n, true, None)
        }
    }

    fn stops(actions: &[Action]) -> Vec<(JobId, String)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Stop { job, reason, .. } => Some((*job, reason.message.to_string())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_pod_whose_containers_outlive_its_agent_is_stopped_once_on_a_tick() {
        let now = Instant::now();
        let config = FailFastConfig::default();
        let mut tracker = Tracker::new();
        tracker.job_applied(job(1, None), now);
        tracker.pod_applied(pod(1, true, None), now);
        assert!(
            stops(&tracker.tick(&config, now)).is_empty(),
            "the agent runs"
        );
        let seen = tracker.pod_applied(lingering(1, &["dind", "postgres"]), now);
        assert!(stops(&seen).is_empty(), "only the leader's tick stops Jobs");
        let stopped = stops(&tracker.tick(&config, now));
        assert_eq!(stopped.len(), 1);
        assert_eq!(stopped[0].0, id(1));
        assert!(
            stopped[0].1.contains("`dind`, `postgres`"),
            "names the containers: {}",
            stopped[0].1
        );
        tracker.pod_applied(lingering(1, &["dind", "postgres"]), now);
        assert!(stops(&tracker.tick(&config, now)).is_empty(), "once");
    }

    #[test]
    fn a_failed_stop_is_sent_again_until_the_job_ends() {
        let now = Instant::now();
        let config = FailFastConfig::default();
        let mut tracker = Tracker::new();
        tracker.job_applied(job(1, None), now);
        tracker.pod_applied(lingering(1, &["dind"]), now);
        assert_eq!(stops(&tracker.tick(&config, now)).len(), 1);
        tracker.stop_failed(id(1));
        assert_eq!(stops(&tracker.tick(&config, now)).len(), 1, "again");
        tracker.stop_failed(id(1));
        tracker.job_applied(job(1, Some(Outcome::Failed)), now);
        assert!(
            stops(&tracker.tick(&config, now)).is_empty(),
            "a Job that ended needs no stop"
        );
    }

    #[test]
    fn a_job_already_stopped_ending_or_lost_is_not_stopped() {
        let now = Instant::now();
        let config = FailFastConfig::default();
        let variants = [
            JobSummary {
                stopped: true,
                ..job(1, None)
            },
            JobSummary {
                deleting: true,
                ..job(1, None)
            },
            job(1, Some(Outcome::Succeeded)),
        ];
        for summary in variants {
            let mut tracker = Tracker::new();
            tracker.job_applied(summary.clone(), now);
            tracker.pod_applied(lingering(1, &["dind"]), now);
            assert!(stops(&tracker.tick(&config, now)).is_empty(), "{summary:?}");
        }
    }

    #[test]
    fn after_a_restart_a_pod_that_outlived_its_agent_is_stopped_from_the_listing() {
        let now = Instant::now();
        let config = FailFastConfig::default();
        let mut tracker = Tracker::new();
        tracker.pods_listing();
        tracker.pod_applied(lingering(1, &["dind"]), now);
        tracker.pods_listed();
        tracker.jobs_listing();
        tracker.job_listed(job(1, None));
        tracker.job_listed(job(2, None));
        tracker.jobs_listed(now);
        let stopped = stops(&tracker.tick(&config, now));
        assert_eq!(stopped.iter().map(|s| s.0).collect::<Vec<_>>(), [id(1)]);
    }
}
