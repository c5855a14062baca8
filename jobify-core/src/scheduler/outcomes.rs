//! What the [`Scheduler`] does when an operation comes back or a workload event arrives:
//! launches, cancellations, state checks, feedback and its retries, workloads that end
//! without an agent acquiring their job.

use std::time::{Duration, Instant};

use super::machine::Scheduler;
use super::retry::FeedbackMessage;
use super::{Effect, FeedbackReport, FeedbackRetry, SchedulerEvent};
use crate::book::{BookEvent, JobStatus};
use crate::decision::{Reason, ReasonCode};
use crate::feedback::{FeedbackError, JobRef};
use crate::job::{JobId, JobState, ScheduledJob};
use crate::jobifier::{CancelError, LaunchError, Launched};
use crate::monitor::MonitorError;
use crate::policy::Policy;
use crate::workload::WorkloadEvent;

/// How long Buildkite may go on listing a job as scheduled after its workload ended before
/// jobify concludes no agent acquired it (see [`Scheduler::never_acquired`]).
pub(super) const NEVER_ACQUIRED_GRACE: Duration = Duration::from_secs(30);

impl<P: Policy> Scheduler<P> {
    /// Rejects `job` in Buildkite. The book keeps it rejected, so polls do not decide it
    /// again; a failure is retried from `retries`.
    pub(super) fn reject(&mut self, job: JobId, source_key: Option<String>, reason: Reason) {
        self.tell(job, source_key, FeedbackReport::Rejected, reason);
    }

    fn tell(
        &mut self,
        id: JobId,
        source_key: Option<String>,
        report: FeedbackReport,
        reason: Reason,
    ) {
        self.effects.push(Effect::Tell(FeedbackMessage {
            job: JobRef { id, source_key },
            report,
            reason,
            attempt: 1,
        }));
    }

    /// Jobs Buildkite lists as scheduled although their workload ended: once that has lasted
    /// [`NEVER_ACQUIRED_GRACE`] (or three poll intervals, if longer: Buildkite's listing may
    /// lag a job's acquisition by a moment), no agent acquired the job and none will. Each is
    /// rejected and Buildkite told why, so the job does not stay scheduled with nothing
    /// running for it.
    pub(super) fn never_acquired(&mut self, listed: Vec<(JobId, String)>, now: Instant) {
        let grace = NEVER_ACQUIRED_GRACE.max(self.config.poll_interval.saturating_mul(3));
        for (job, source_key) in listed {
            let Some(ended) = self.ended_at.get(&job).copied() else {
                continue;
            };
            if now.saturating_duration_since(ended) < grace
                || self.book.status(job) != Some(JobStatus::Ended)
            {
                continue;
            }
            self.ended_at.remove(&job);
            let reason = Reason::new(
                ReasonCode("agent_never_acquired"),
                format!(
                    "the job's pod ended {} s ago without an agent acquiring the job (the agent \
                     exited first or refused the job: check the agent container's log and its \
                     tags against the job's agent rules); Buildkite still lists it as \
                     scheduled, so jobify gives up on it",
                    now.saturating_duration_since(ended).as_secs()
                ),
            );
            tracing::warn!(%job, code = %reason.code, "the workload ended but no agent acquired the job; failing it in Buildkite");
            self.report(SchedulerEvent::FailedToStart {
                job,
                reason: reason.clone(),
            });
            self.apply(BookEvent::NeverAcquired(job));
            if self.is_leader() {
                self.tell(job, Some(source_key), FeedbackReport::FailedToStart, reason);
            }
        }
        // A job no longer listed was acquired, or cancelled: forget it after a while.
        self.ended_at
            .retain(|_, ended| now.saturating_duration_since(*ended) < grace * 10);
    }

    pub(super) fn start_due_retries(&mut self, now: Instant) {
        for message in self.retries.take_due(now) {
            // A rejected job Buildkite stopped listing meanwhile (cancelled by a person, say)
            // needs no more telling.
            if message.report == FeedbackReport::Rejected
                && self.book.status(message.job.id) != Some(JobStatus::Rejected)
            {
                tracing::debug!(job = %message.job.id, "a rejected job is no longer scheduled; not telling Buildkite again");
                continue;
            }
            tracing::info!(job = %message.job.id, report = message.report.kind(), attempt = message.attempt, "telling Buildkite again why jobify will not run the job");
            self.effects.push(Effect::Tell(message));
        }
    }

    pub(super) fn on_workload(&mut self, event: WorkloadEvent, now: Instant) {
        match &event {
            WorkloadEvent::FailedToStart { job, reason } => {
                tracing::warn!(%job, code = %reason.code, reason = %reason.message, "workload can never start");
                self.report(SchedulerEvent::FailedToStart {
                    job: *job,
                    reason: reason.clone(),
                });
                let source_key = self.source_keys.remove(job);
                if self.is_leader() {
                    self.tell(
                        *job,
                        source_key,
                        FeedbackReport::FailedToStart,
                        reason.clone(),
                    );
                }
            }
            WorkloadEvent::AgentLost { job, reason } => {
                tracing::warn!(%job, code = %reason.code, reason = %reason.message, "the agent of a running job was lost; Buildkite reports the job as lost, and jobify starts no second pod for it");
                self.report(SchedulerEvent::AgentLost {
                    job: *job,
                    reason: reason.clone(),
                });
                self.source_keys.remove(job);
            }
            WorkloadEvent::Stopped { job, reason } => {
                tracing::info!(%job, code = %reason.code, reason = %reason.message, "stopped a workload that outlived its agent");
                self.report(SchedulerEvent::WorkloadStopped {
                    job: *job,
                    reason: reason.clone(),
                });
                self.source_keys.remove(job);
            }
            WorkloadEvent::Succeeded(job) | WorkloadEvent::Failed(job) => {
                if self
                    .book
                    .status(*job)
                    .is_some_and(JobStatus::occupies_a_slot)
                {
                    self.ended_at.insert(*job, now);
                }
                self.source_keys.remove(job);
            }
            WorkloadEvent::Gone(job) => {
                self.source_keys.remove(job);
            }
            WorkloadEvent::Restored(workloads) => {
                tracing::info!(workloads = workloads.len(), "workloads restored");
            }
            WorkloadEvent::Waiting { job, detail } => {
                tracing::debug!(%job, %detail, "the pod waits");
                self.report(SchedulerEvent::PodWaiting {
                    job: *job,
                    detail: detail.clone(),
                });
            }
            WorkloadEvent::Observed(_) | WorkloadEvent::Started(_) => {}
        }
        let restored = matches!(event, WorkloadEvent::Restored(_));
        self.apply(BookEvent::Workload(event));
        if restored {
            let book = &self.book;
            self.source_keys
                .retain(|job, _| book.status(*job).is_some_and(JobStatus::occupies_a_slot));
        }
    }

    pub(super) fn on_told(
        &mut self,
        message: FeedbackMessage,
        result: Result<(), FeedbackError>,
        now: Instant,
    ) {
        let job = message.job.id;
        let Err(err) = result else {
            self.report(SchedulerEvent::Told {
                job,
                result: Ok(()),
            });
            return;
        };
        // A rejected job stays rejected in the book either way: jobify does not decide it
        // again while Buildkite lists it (a restart does).
        let attempt = message.attempt;
        let report = message.report;
        let what = match report {
            FeedbackReport::Rejected => "that jobify rejected the job",
            FeedbackReport::FailedToStart => "that the workload can never start",
        };
        let retry = self.retries.failed(message, now);
        match retry {
            FeedbackRetry::Scheduled {
                attempt: next,
                after,
            } => {
                tracing::warn!(%job, report = report.kind(), attempt, error = %err, next_attempt = next, retry_in = ?after, "could not tell Buildkite {what}; will retry");
            }
            FeedbackRetry::GivenUp { attempts } => {
                tracing::error!(%job, report = report.kind(), attempts, error = %err, "could not tell Buildkite {what}; giving up: the job stays scheduled in Buildkite until it is cancelled there or jobify restarts");
            }
            FeedbackRetry::Dropped => {
                tracing::error!(%job, report = report.kind(), attempt, error = %err, waiting = self.retries.len(), "could not tell Buildkite {what}, and too many reports wait for a retry; dropping this one: the job stays scheduled in Buildkite until it is cancelled there or jobify restarts");
            }
        }
        self.report(SchedulerEvent::Told {
            job,
            result: Err(err),
        });
        self.report(SchedulerEvent::FeedbackRetry { job, report, retry });
    }

    pub(super) fn on_launched(
        &mut self,
        job: ScheduledJob,
        result: Result<Launched, LaunchError>,
        latency: Duration,
    ) {
        self.launch_done();
        self.report(SchedulerEvent::Launched {
            job: job.id,
            scheduled_at: job.scheduled_at,
            result: result.clone(),
            latency,
        });
        match result {
            Ok(launched) => {
                tracing::info!(job = %job.id, pipeline = %job.pipeline, ?launched, "launched");
                self.apply(BookEvent::LaunchSucceeded(job.id));
                // The watch may have reported the workload ended before the create answered:
                // then there is nothing left to give feedback about.
                if self
                    .book
                    .status(job.id)
                    .is_some_and(JobStatus::occupies_a_slot)
                {
                    self.source_keys.insert(job.id, job.source_key);
                }
            }
            Err(LaunchError::Invalid { message, .. }) => {
                tracing::warn!(job = %job.id, pipeline = %job.pipeline, %message, "workload refused as invalid; rejecting the job");
                self.apply(BookEvent::LaunchFailed {
                    job: job.id,
                    retry: false,
                });
                let reason = Reason::new(
                    ReasonCode::LAUNCH_INVALID,
                    format!(
                        "jobify could not create a pod for this step: {message}. Fix the step's \
                         kubernetes plugin configuration and retry the job"
                    ),
                );
                if self.is_leader() {
                    self.reject(job.id, Some(job.source_key), reason);
                }
            }
            Err(err @ LaunchError::Forbidden { .. }) => {
                tracing::error!(job = %job.id, error = %err, "launch forbidden; an operator must grant the permission");
                self.apply(BookEvent::LaunchFailed {
                    job: job.id,
                    retry: true,
                });
            }
            Err(err @ LaunchError::Transient { .. }) => {
                tracing::warn!(job = %job.id, error = %err, "launch failed; retrying on a later poll");
                self.apply(BookEvent::LaunchFailed {
                    job: job.id,
                    retry: true,
                });
            }
        }
    }

    pub(super) fn on_states(&mut self, result: Result<Vec<(JobId, JobState)>, MonitorError>) {
        self.check_done();
        let states = match result {
            Ok(states) => states,
            Err(err) => {
                tracing::warn!(error = %err, "could not check for cancelled jobs");
                return;
            }
        };
        if !self.is_leader() {
            return;
        }
        for (job, state) in states {
            if !state.is_cancelled() || self.book.status(job) != Some(JobStatus::InFlight) {
                continue;
            }
            tracing::info!(%job, ?state, "job was cancelled in Buildkite; removing its workload");
            self.apply(BookEvent::CancelStarted(job));
            self.effects.push(Effect::Cancel(job));
        }
    }

    pub(super) fn on_cancelled(&mut self, job: JobId, result: Result<(), CancelError>) {
        self.report(SchedulerEvent::Cancelled {
            job,
            result: result.clone(),
        });
        match result {
            Ok(()) => tracing::info!(%job, "removed the workload of a cancelled job"),
            Err(err) => {
                tracing::warn!(%job, error = %err, "could not remove the workload; will retry");
                self.apply(BookEvent::CancelFailed(job));
            }
        }
    }
}
