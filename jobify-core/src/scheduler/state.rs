//! The scheduler loop's state ([`Run`]) and what it does on each thing that happens: a poll
//! returned, a launch finished, a workload event arrived, a slot freed, a report to Buildkite
//! failed. [`Dispatcher`](super::Dispatcher)'s `run` owns the `select!` that calls these.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use tokio::time::Instant;

use super::retry::{Message, Retries};
use super::sweep::Sweep;
use super::{
    FeedbackReport, FeedbackRetry, SchedulerConfig, SchedulerObserver, SweepEnd, deadline,
};
use crate::book::{Book, BookEvent, JobStatus};

/// How long Buildkite may go on listing a job as scheduled after its workload ended before
/// jobify concludes no agent acquired it (see `Run::never_acquired`).
pub(super) const NEVER_ACQUIRED_GRACE: Duration = Duration::from_secs(30);
use crate::decision::{Reason, ReasonCode, Template};
use crate::feedback::{Feedback, FeedbackError, JobRef};
use crate::job::{JobId, JobState, ScheduledJob};
use crate::jobifier::{CancelError, Jobifier, LaunchError, Launched};
use crate::limits::Limits;
use crate::monitor::{Monitor, MonitorError, ScheduledPage};
use crate::plan::{Plan, Waiting, plan_waiting};
use crate::policy::Policy;
use crate::workload::WorkloadEvent;

/// An operation in progress and what it came back with.
pub(super) enum Done {
    Polled(Result<ScheduledPage, MonitorError>),
    Launched {
        job: Box<ScheduledJob>,
        result: Result<Launched, LaunchError>,
        latency: Duration,
    },
    Told {
        result: Result<(), FeedbackError>,
        /// The message, to retry it if it failed.
        message: Message,
    },
    States(Result<Vec<(JobId, JobState)>, MonitorError>),
    Cancelled {
        job: JobId,
        result: Result<(), CancelError>,
    },
}

/// The loop's state, apart from the parts it borrows.
pub(super) struct Run<'a, M, J, F, P, O> {
    pub(super) monitor: &'a M,
    pub(super) jobifier: &'a J,
    pub(super) feedback: &'a F,
    pub(super) policy: &'a P,
    pub(super) limits: &'a Limits,
    pub(super) config: &'a SchedulerConfig,
    pub(super) observer: &'a O,
    pub(super) book: Book,
    pub(super) ops: FuturesUnordered<BoxFuture<'a, Done>>,
    pub(super) queued: VecDeque<(ScheduledJob, Template)>,
    pub(super) launching: usize,
    /// A page request is in flight.
    pub(super) polling: bool,
    /// The sweep in progress, if any.
    pub(super) sweep: Option<Sweep>,
    pub(super) checking: bool,
    pub(super) leader: bool,
    pub(super) next_poll: Instant,
    pub(super) next_check: Instant,
    pub(super) poll_failures: u32,
    /// GraphQL ids of jobs with a workload, for feedback about them.
    pub(super) graphql_ids: HashMap<JobId, String>,
    /// Jobs of the current sweep a limit held back, launched when a slot frees.
    pub(super) waiting: Vec<Waiting>,
    /// The ids the last sweep listed, to tell jobs seen for the first time.
    pub(super) listed: HashSet<JobId>,
    /// `FailedToStart` reports waiting to be tried again.
    pub(super) retries: Retries,
    /// When the workloads of jobs jobify launched ended (succeeded or failed), while Buildkite
    /// may still list them: a job listed as scheduled [`NEVER_ACQUIRED_GRACE`] after its
    /// workload ended was never acquired by an agent.
    pub(super) ended_at: HashMap<JobId, Instant>,
    /// The in-flight counts last reported to the observer.
    pub(super) reported_total: u32,
    pub(super) reported_by_queue: Vec<(String, u32)>,
}

impl<'a, M, J, F, P, O> Run<'a, M, J, F, P, O>
where
    M: Monitor,
    J: Jobifier,
    F: Feedback,
    P: Policy,
    O: SchedulerObserver,
{
    pub(super) fn start_launches(&mut self) {
        while self.leader && self.launching < self.config.launch_concurrency.max(1) {
            let Some((job, template)) = self.queued.pop_front() else {
                break;
            };
            self.launching += 1;
            let jobifier = self.jobifier;
            self.ops.push(Box::pin(async move {
                let started = Instant::now();
                let result = jobifier.launch(&job, &template).await;
                Done::Launched {
                    job: Box::new(job),
                    result,
                    latency: started.elapsed(),
                }
            }));
        }
    }

    /// A standby does not poll Buildkite, so nothing tells it when jobs stop being scheduled.
    /// It forgets ended jobs whose workload is gone at the poll interval instead, as if
    /// Buildkite listed nothing, so its memory stays bounded.
    pub(super) fn standby_tick(&mut self) {
        self.next_poll = deadline(Instant::now(), self.config.poll_interval);
        self.apply(BookEvent::Polled(Vec::new()));
    }

    pub(super) fn start_check(&mut self) {
        self.next_check = deadline(Instant::now(), self.config.cancel_check_interval);
        let jobs = self.book.not_started();
        if jobs.is_empty() {
            return;
        }
        self.checking = true;
        let monitor = self.monitor;
        self.ops.push(Box::pin(async move {
            Done::States(monitor.states(&jobs).await)
        }));
    }

    /// Rejects `job` in Buildkite. The book keeps it rejected, so polls do not decide it
    /// again; a failure is retried from `retries`.
    fn reject(&mut self, job: JobId, graphql_id: Option<String>, reason: Reason) {
        self.tell(Message {
            job,
            graphql_id,
            report: FeedbackReport::Rejected,
            reason,
            attempt: 1,
        });
    }

    /// Tells Buildkite why jobify will not run a job; a failure is retried from `retries`.
    /// Jobs Buildkite lists as scheduled although their workload ended: once that has lasted
    /// [`NEVER_ACQUIRED_GRACE`] (or three poll intervals, if longer: Buildkite's listing may
    /// lag a job's acquisition by a moment), no agent acquired the job and none will. Each is
    /// rejected and Buildkite told why, so the job does not stay scheduled with nothing
    /// running for it.
    pub(super) fn never_acquired(&mut self, listed: Vec<(JobId, String)>, now: Instant) {
        let grace = NEVER_ACQUIRED_GRACE.max(self.config.poll_interval.saturating_mul(3));
        for (job, graphql_id) in listed {
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
            self.observer.on_failed_to_start(job, &reason);
            self.apply(BookEvent::NeverAcquired(job));
            if self.leader {
                self.tell(Message {
                    job,
                    graphql_id: Some(graphql_id),
                    report: FeedbackReport::FailedToStart,
                    reason,
                    attempt: 1,
                });
            }
        }
        // A job no longer listed was acquired, or cancelled: forget it after a while.
        self.ended_at
            .retain(|_, ended| now.saturating_duration_since(*ended) < grace * 10);
    }

    fn tell(&mut self, message: Message) {
        let feedback = self.feedback;
        self.ops.push(Box::pin(async move {
            let target = JobRef {
                id: message.job,
                graphql_id: message.graphql_id.clone(),
            };
            let result = feedback.fail_job(&target, &message.reason).await;
            Done::Told { result, message }
        }));
    }

    pub(super) fn start_due_retries(&mut self) {
        for message in self.retries.take_due(Instant::now()) {
            // A rejected job Buildkite stopped listing meanwhile (cancelled by a person, say)
            // needs no more telling.
            if message.report == FeedbackReport::Rejected
                && self.book.status(message.job) != Some(JobStatus::Rejected)
            {
                tracing::debug!(job = %message.job, "a rejected job is no longer scheduled; not telling Buildkite again");
                continue;
            }
            tracing::info!(job = %message.job, report = message.report.kind(), attempt = message.attempt, "telling Buildkite again why jobify will not run the job");
            self.tell(message);
        }
    }

    pub(super) fn apply(&mut self, event: BookEvent) {
        self.book.apply(event);
        self.book_changed();
    }

    /// After the book changed: launches waiting jobs if a slot freed, and reports the
    /// in-flight counts if they changed.
    pub(super) fn book_changed(&mut self) {
        if self.leader && self.book.in_flight() < self.reported_total && !self.waiting.is_empty() {
            self.launch_waiting();
        }
        let total = self.book.in_flight();
        if total != self.reported_total {
            self.reported_total = total;
            self.observer.on_in_flight(total);
        }
        let by_queue = self.book.in_flight_by_queue();
        if by_queue != self.reported_by_queue {
            self.observer.on_in_flight_by_queue(&by_queue);
            self.reported_by_queue = by_queue;
        }
    }

    /// A slot freed: launches the jobs of the last poll a limit held back that fit now.
    fn launch_waiting(&mut self) {
        let observer = self.observer;
        let plan = plan_waiting(
            &mut self.book,
            self.limits,
            std::mem::take(&mut self.waiting),
            |job, decision| {
                tracing::debug!(job = %job.id, pipeline = %job.pipeline, decision = decision.kind(), code = %decision.reason().code, "a slot freed; decided");
                observer.on_decision(job, decision);
            },
        );
        self.carry_out(plan);
    }

    /// Queues the launches and rejections of `plan`, and keeps its waiting jobs.
    pub(super) fn carry_out(&mut self, plan: Plan) {
        for (job, reason) in plan.rejections {
            tracing::info!(job = %job.id, pipeline = %job.pipeline, code = %reason.code, reason = %reason.message, "rejecting job");
            self.reject(job.id, Some(job.graphql_id), reason);
        }
        self.queued.extend(plan.launches);
        self.waiting.extend(plan.waiting);
    }

    pub(super) fn set_leader(&mut self, leader: bool) {
        if leader == self.leader {
            return;
        }
        tracing::info!(leader, "leadership changed");
        self.leader = leader;
        self.observer.on_leadership(leader);
        if leader {
            self.next_poll = Instant::now();
            self.next_check = deadline(Instant::now(), self.config.cancel_check_interval);
        } else {
            // Launches not yet started are given back; the new leader decides them.
            self.end_sweep(SweepEnd::Abandoned);
            self.waiting.clear();
            self.listed.clear();
            while let Some((job, _)) = self.queued.pop_front() {
                self.apply(BookEvent::LaunchFailed {
                    job: job.id,
                    retry: true,
                });
            }
        }
    }

    pub(super) fn on_event(&mut self, event: WorkloadEvent) {
        match &event {
            WorkloadEvent::FailedToStart { job, reason } => {
                tracing::warn!(%job, code = %reason.code, reason = %reason.message, "workload can never start");
                self.observer.on_failed_to_start(*job, reason);
                let graphql_id = self.graphql_ids.remove(job);
                if self.leader {
                    self.tell(Message {
                        job: *job,
                        graphql_id,
                        report: FeedbackReport::FailedToStart,
                        reason: reason.clone(),
                        attempt: 1,
                    });
                }
            }
            WorkloadEvent::AgentLost { job, reason } => {
                tracing::warn!(%job, code = %reason.code, reason = %reason.message, "the agent of a running job was lost; Buildkite reports the job as lost, and jobify starts no second pod for it");
                self.observer.on_agent_lost(*job, reason);
                self.graphql_ids.remove(job);
            }
            WorkloadEvent::Stopped { job, reason } => {
                tracing::info!(%job, code = %reason.code, reason = %reason.message, "stopped a workload that outlived its agent");
                self.observer.on_workload_stopped(*job, reason);
                self.graphql_ids.remove(job);
            }
            WorkloadEvent::Succeeded(job) | WorkloadEvent::Failed(job) => {
                if self
                    .book
                    .status(*job)
                    .is_some_and(JobStatus::occupies_a_slot)
                {
                    self.ended_at.insert(*job, Instant::now());
                }
                self.graphql_ids.remove(job);
            }
            WorkloadEvent::Gone(job) => {
                self.graphql_ids.remove(job);
            }
            WorkloadEvent::Restored(workloads) => {
                tracing::info!(workloads = workloads.len(), "workloads restored");
            }
            WorkloadEvent::Observed(_) | WorkloadEvent::Started(_) => {}
        }
        let restored = matches!(event, WorkloadEvent::Restored(_));
        self.apply(BookEvent::Workload(event));
        if restored {
            let book = &self.book;
            self.graphql_ids
                .retain(|job, _| book.status(*job).is_some_and(JobStatus::occupies_a_slot));
        }
    }

    pub(super) fn on_done(&mut self, done: Done) {
        match done {
            Done::Polled(result) => self.on_page(result),
            Done::Launched {
                job,
                result,
                latency,
            } => self.on_launched(*job, result, latency),
            Done::Told { result, message } => {
                self.observer
                    .on_feedback(message.job, result.as_ref().map(|_| ()));
                if let Err(err) = result {
                    self.feedback_failed(message, &err);
                }
            }
            Done::States(result) => {
                self.checking = false;
                match result {
                    Ok(states) => self.on_states(states),
                    Err(err) => tracing::warn!(error = %err, "could not check for cancelled jobs"),
                }
            }
            Done::Cancelled { job, result } => {
                self.observer.on_cancel(job, &result);
                match result {
                    Ok(()) => tracing::info!(%job, "removed the workload of a cancelled job"),
                    Err(err) => {
                        tracing::warn!(%job, error = %err, "could not remove the workload; will retry");
                        self.apply(BookEvent::CancelFailed(job));
                    }
                }
            }
        }
    }

    /// A report failed: retry it later, or give up on it, and say so. A rejected job stays
    /// rejected in the book either way: jobify does not decide it again while Buildkite
    /// lists it (a restart does).
    fn feedback_failed(&mut self, message: Message, err: &FeedbackError) {
        let job = message.job;
        let attempt = message.attempt;
        let report = message.report;
        let what = match report {
            FeedbackReport::Rejected => "that jobify rejected the job",
            FeedbackReport::FailedToStart => "that the workload can never start",
        };
        let retry = self.retries.failed(message, Instant::now());
        self.observer.on_feedback_retry(job, report, retry);
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
    }

    fn on_launched(
        &mut self,
        job: ScheduledJob,
        result: Result<Launched, LaunchError>,
        latency: Duration,
    ) {
        self.launching = self.launching.saturating_sub(1);
        self.observer.on_launch(&job, &result, latency);
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
                    self.graphql_ids.insert(job.id, job.graphql_id.clone());
                }
            }
            Err(LaunchError::Invalid { message }) => {
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
                if self.leader {
                    self.reject(job.id, Some(job.graphql_id), reason);
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

    fn on_states(&mut self, states: Vec<(JobId, JobState)>) {
        if !self.leader {
            return;
        }
        for (job, state) in states {
            if !state.is_cancelled() || self.book.status(job) != Some(JobStatus::InFlight) {
                continue;
            }
            tracing::info!(%job, ?state, "job was cancelled in Buildkite; removing its workload");
            self.apply(BookEvent::CancelStarted(job));
            let jobifier = self.jobifier;
            self.ops.push(Box::pin(async move {
                let result = jobifier.cancel(job).await;
                Done::Cancelled { job, result }
            }));
        }
    }
}
