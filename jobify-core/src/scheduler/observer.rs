//! A hook for metrics: the scheduler tells an observer what it does. Synchronous and cheap:
//! implementations update counters and gauges, nothing more.

use std::time::Duration;

use crate::decision::{Decision, Reason};
use crate::feedback::FeedbackError;
use crate::job::{JobId, ScheduledJob};
use crate::jobifier::{CancelError, LaunchError, Launched};
use crate::monitor::MonitorError;

/// What the scheduler reports. Every method has a no-op default; `()` observes nothing.
pub trait SchedulerObserver: Send + Sync {
    /// A page request to Buildkite finished: the number of scheduled jobs on the page, or
    /// the error.
    fn on_poll(&self, result: Result<usize, &MonitorError>) {
        let _ = result;
    }

    /// A sweep through Buildkite's scheduled jobs ended.
    fn on_sweep(&self, sweep: &SweepSummary) {
        let _ = sweep;
    }

    /// A job was decided (after limits: `Defer` when a limit held it back).
    fn on_decision(&self, job: &ScheduledJob, decision: &Decision) {
        let _ = (job, decision);
    }

    /// A launch finished, after `latency`.
    fn on_launch(
        &self,
        job: &ScheduledJob,
        result: &Result<Launched, LaunchError>,
        latency: Duration,
    ) {
        let _ = (job, result, latency);
    }

    /// A workload can never start; Buildkite is being told `reason`.
    fn on_failed_to_start(&self, job: JobId, reason: &Reason) {
        let _ = (job, reason);
    }

    /// The agent of a running job was lost: its pod was disrupted or vanished (see
    /// [`WorkloadEvent::AgentLost`](crate::WorkloadEvent::AgentLost)).
    fn on_agent_lost(&self, job: JobId, reason: &Reason) {
        let _ = (job, reason);
    }

    /// A workload whose containers outlived its agent was stopped (see
    /// [`WorkloadEvent::Stopped`](crate::WorkloadEvent::Stopped)).
    fn on_workload_stopped(&self, job: JobId, reason: &Reason) {
        let _ = (job, reason);
    }

    /// Telling Buildkite about a rejected or failed job finished.
    fn on_feedback(&self, job: JobId, result: Result<(), &FeedbackError>) {
        let _ = (job, result);
    }

    /// Removing the workload of a cancelled job finished.
    fn on_cancel(&self, job: JobId, result: &Result<(), CancelError>) {
        let _ = (job, result);
    }

    /// The number of jobs in flight changed (or may have).
    fn on_in_flight(&self, in_flight: u32) {
        let _ = in_flight;
    }

    /// The jobs in flight per queue changed (or may have): every queue with at least one job
    /// in flight, sorted by name. A queue missing from `by_queue` has none in flight.
    fn on_in_flight_by_queue(&self, by_queue: &[(String, u32)]) {
        let _ = by_queue;
    }

    /// A poll listed a job this replica had not seen before: once per job uuid while Buildkite
    /// keeps listing it (jobs already known from their workload, e.g. after a restart, are not
    /// new). Called before the job is decided.
    fn on_job_seen(&self, job: &ScheduledJob) {
        let _ = job;
    }

    /// Telling Buildkite about `job` failed (a rejection, or a workload that can never
    /// start), and this is what happens to the message (see [`FeedbackRetry`]).
    fn on_feedback_retry(&self, job: JobId, report: FeedbackReport, retry: FeedbackRetry) {
        let _ = (job, report, retry);
    }

    /// This replica became the leader (`true`) or a standby (`false`).
    fn on_leadership(&self, leader: bool) {
        let _ = leader;
    }
}

/// How a sweep ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SweepEnd {
    /// It read every page, up to the newest scheduled job.
    Completed,
    /// A limit held jobs back and it read its lookahead pages
    /// ([`SchedulerConfig::lookahead_pages`](super::SchedulerConfig::lookahead_pages)).
    StoppedEarly,
    /// A page request failed.
    Failed,
    /// This replica stopped leading.
    Abandoned,
}

impl SweepEnd {
    /// A label for metrics and logs: `completed`, `stopped_early`, `failed` or `abandoned`.
    pub fn kind(self) -> &'static str {
        match self {
            SweepEnd::Completed => "completed",
            SweepEnd::StoppedEarly => "stopped_early",
            SweepEnd::Failed => "failed",
            SweepEnd::Abandoned => "abandoned",
        }
    }
}

/// A sweep that ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SweepSummary {
    /// How it ended.
    pub end: SweepEnd,
    /// Pages it planned.
    pub pages: usize,
    /// Jobs those pages listed (a job on two pages counts once).
    pub jobs: usize,
    /// From its first page request to its end.
    pub duration: Duration,
}

/// What a message to Buildkite reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FeedbackReport {
    /// jobify refused the job (the policy, or a workload the API server refused as invalid).
    Rejected,
    /// The job's workload can never start.
    FailedToStart,
}

impl FeedbackReport {
    /// A label for metrics and logs: `rejected` or `failed_to_start`.
    pub fn kind(self) -> &'static str {
        match self {
            FeedbackReport::Rejected => "rejected",
            FeedbackReport::FailedToStart => "failed_to_start",
        }
    }
}

/// What became of a failed attempt to tell Buildkite about a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeedbackRetry {
    /// Attempt number `attempt` (2 for the first retry) is due after `after`.
    Scheduled {
        /// The attempt that will be made.
        attempt: u32,
        /// How long until it is made.
        after: Duration,
    },
    /// `attempts` attempts failed; the message is given up on.
    GivenUp {
        /// How many attempts were made.
        attempts: u32,
    },
    /// Too many messages are waiting for a retry already; this one is dropped.
    Dropped,
}

impl FeedbackRetry {
    /// A label for metrics and logs: `scheduled`, `given_up` or `dropped`.
    pub fn kind(self) -> &'static str {
        match self {
            FeedbackRetry::Scheduled { .. } => "scheduled",
            FeedbackRetry::GivenUp { .. } => "given_up",
            FeedbackRetry::Dropped => "dropped",
        }
    }
}

impl SchedulerObserver for () {}

impl<O: SchedulerObserver + ?Sized> SchedulerObserver for std::sync::Arc<O> {
    fn on_poll(&self, result: Result<usize, &MonitorError>) {
        (**self).on_poll(result);
    }
    fn on_sweep(&self, sweep: &SweepSummary) {
        (**self).on_sweep(sweep);
    }
    fn on_decision(&self, job: &ScheduledJob, decision: &Decision) {
        (**self).on_decision(job, decision);
    }
    fn on_launch(
        &self,
        job: &ScheduledJob,
        result: &Result<Launched, LaunchError>,
        latency: Duration,
    ) {
        (**self).on_launch(job, result, latency);
    }
    fn on_failed_to_start(&self, job: JobId, reason: &Reason) {
        (**self).on_failed_to_start(job, reason);
    }
    fn on_feedback(&self, job: JobId, result: Result<(), &FeedbackError>) {
        (**self).on_feedback(job, result);
    }
    fn on_cancel(&self, job: JobId, result: &Result<(), CancelError>) {
        (**self).on_cancel(job, result);
    }
    fn on_in_flight(&self, in_flight: u32) {
        (**self).on_in_flight(in_flight);
    }
    fn on_in_flight_by_queue(&self, by_queue: &[(String, u32)]) {
        (**self).on_in_flight_by_queue(by_queue);
    }
    fn on_job_seen(&self, job: &ScheduledJob) {
        (**self).on_job_seen(job);
    }
    fn on_feedback_retry(&self, job: JobId, report: FeedbackReport, retry: FeedbackRetry) {
        (**self).on_feedback_retry(job, report, retry);
    }
    fn on_agent_lost(&self, job: JobId, reason: &Reason) {
        (**self).on_agent_lost(job, reason);
    }
    fn on_workload_stopped(&self, job: JobId, reason: &Reason) {
        (**self).on_workload_stopped(job, reason);
    }
    fn on_leadership(&self, leader: bool) {
        (**self).on_leadership(leader);
    }
}
