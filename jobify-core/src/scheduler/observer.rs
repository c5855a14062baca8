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
    /// A poll of Buildkite finished: the number of scheduled jobs, or the error.
    fn on_poll(&self, result: Result<usize, &MonitorError>) {
        let _ = result;
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

    /// This replica became the leader (`true`) or a standby (`false`).
    fn on_leadership(&self, leader: bool) {
        let _ = leader;
    }
}

impl SchedulerObserver for () {}

impl<O: SchedulerObserver + ?Sized> SchedulerObserver for std::sync::Arc<O> {
    fn on_poll(&self, result: Result<usize, &MonitorError>) {
        (**self).on_poll(result);
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
    fn on_leadership(&self, leader: bool) {
        (**self).on_leadership(leader);
    }
}
