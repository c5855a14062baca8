//! [`Dispatcher`]: the default [`Scheduler`].

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use tokio::sync::watch;
use tokio::time::{Instant, sleep_until};

use super::retry::{Message, Retries};
use super::{FeedbackRetry, Scheduler, SchedulerConfig, SchedulerError, SchedulerObserver};
use crate::book::{Book, BookEvent, JobStatus};
use crate::decision::{Reason, ReasonCode, Template};
use crate::feedback::{Feedback, FeedbackError, JobRef};
use crate::job::{JobId, JobState, ScheduledJob};
use crate::jobifier::{CancelError, Jobifier, LaunchError, Launched};
use crate::limits::Limits;
use crate::monitor::{Monitor, MonitorError};
use crate::plan::{Plan, Waiting, plan_round, plan_waiting};
use crate::policy::Policy;
use crate::workload::WorkloadEvent;

/// The default scheduler: polls the monitor, decides with `P`, launches through `J`, reports
/// through `F`, and tells `O` about it. Build it with [`Dispatcher::new`], then optionally
/// [`with_observer`](Dispatcher::with_observer) and
/// [`with_leadership`](Dispatcher::with_leadership); start it with [`Scheduler::run`].
pub struct Dispatcher<M, J, F, P, O = ()> {
    monitor: M,
    jobifier: J,
    feedback: F,
    policy: P,
    limits: Limits,
    config: SchedulerConfig,
    observer: O,
    leader: Option<watch::Receiver<bool>>,
}

impl<M, J, F, P> Dispatcher<M, J, F, P, ()>
where
    M: Monitor,
    J: Jobifier,
    F: Feedback,
    P: Policy,
{
    /// A dispatcher that acts alone (always the leader) and observes nothing.
    pub fn new(
        monitor: M,
        jobifier: J,
        feedback: F,
        policy: P,
        limits: Limits,
        config: SchedulerConfig,
    ) -> Self {
        Dispatcher {
            monitor,
            jobifier,
            feedback,
            policy,
            limits,
            config,
            observer: (),
            leader: None,
        }
    }
}

impl<M, J, F, P, O> Dispatcher<M, J, F, P, O> {
    /// Reports to `observer` (e.g. Prometheus metrics).
    pub fn with_observer<O2: SchedulerObserver>(self, observer: O2) -> Dispatcher<M, J, F, P, O2> {
        Dispatcher {
            monitor: self.monitor,
            jobifier: self.jobifier,
            feedback: self.feedback,
            policy: self.policy,
            limits: self.limits,
            config: self.config,
            observer,
            leader: self.leader,
        }
    }

    /// Acts (polls, launches, cancels, gives feedback) only while `leader` holds `true`; a
    /// standby keeps the book current from workload events but never writes.
    #[must_use]
    pub fn with_leadership(mut self, leader: watch::Receiver<bool>) -> Self {
        self.leader = Some(leader);
        self
    }
}

/// An operation in progress and what it came back with.
enum Done {
    Polled(Result<Vec<ScheduledJob>, MonitorError>),
    Launched {
        job: Box<ScheduledJob>,
        result: Result<Launched, LaunchError>,
        latency: Duration,
    },
    Told {
        job: JobId,
        result: Result<(), FeedbackError>,
        /// For a `FailedToStart` report: the message, to retry it if it failed. Rejections
        /// have none (the book forgets them and the next poll rejects them again).
        retry: Option<Message>,
    },
    States(Result<Vec<(JobId, JobState)>, MonitorError>),
    Cancelled {
        job: JobId,
        result: Result<(), CancelError>,
    },
}

/// Waits until leadership changes; never, without a leadership signal.
async fn leadership_changed(leader: &mut Option<watch::Receiver<bool>>) -> Option<bool> {
    match leader {
        Some(rx) => match rx.changed().await {
            Ok(()) => Some(*rx.borrow_and_update()),
            Err(_) => None,
        },
        None => std::future::pending().await,
    }
}

/// The loop's state, apart from the parts it borrows.
struct Run<'a, M, J, F, P, O> {
    monitor: &'a M,
    jobifier: &'a J,
    feedback: &'a F,
    policy: &'a P,
    limits: &'a Limits,
    config: &'a SchedulerConfig,
    observer: &'a O,
    book: Book,
    ops: FuturesUnordered<BoxFuture<'a, Done>>,
    queued: VecDeque<(ScheduledJob, Template)>,
    launching: usize,
    polling: bool,
    checking: bool,
    leader: bool,
    next_poll: Instant,
    next_check: Instant,
    poll_failures: u32,
    /// GraphQL ids of jobs with a workload, for feedback about them.
    graphql_ids: HashMap<JobId, String>,
    /// Jobs of the last successful poll a limit held back, launched when a slot frees.
    waiting: Vec<Waiting>,
    /// The ids the last successful poll listed, to tell jobs seen for the first time.
    listed: HashSet<JobId>,
    /// `FailedToStart` reports waiting to be tried again.
    retries: Retries,
    /// The in-flight counts last reported to the observer.
    reported_total: u32,
    reported_by_queue: Vec<(String, u32)>,
}

impl<'a, M, J, F, P, O> Run<'a, M, J, F, P, O>
where
    M: Monitor,
    J: Jobifier,
    F: Feedback,
    P: Policy,
    O: SchedulerObserver,
{
    fn start_launches(&mut self) {
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

    fn start_poll(&mut self) {
        self.polling = true;
        let monitor = self.monitor;
        self.ops.push(Box::pin(
            async move { Done::Polled(monitor.scheduled().await) },
        ));
    }

    /// A standby does not poll Buildkite, so nothing tells it when jobs stop being scheduled.
    /// It forgets ended jobs whose workload is gone at the poll interval instead, as if
    /// Buildkite listed nothing, so its memory stays bounded.
    fn standby_tick(&mut self) {
        self.next_poll = Instant::now() + self.config.poll_interval;
        self.apply(BookEvent::Polled(Vec::new()));
    }

    fn start_check(&mut self) {
        self.next_check = Instant::now() + self.config.cancel_check_interval;
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

    /// Rejects `job` in Buildkite; a failure is handled by the book (the next poll rejects
    /// the job again).
    fn tell(&mut self, job: JobId, graphql_id: Option<String>, reason: Reason) {
        let feedback = self.feedback;
        self.ops.push(Box::pin(async move {
            let target = JobRef {
                id: job,
                graphql_id,
            };
            let result = feedback.fail_job(&target, &reason).await;
            Done::Told {
                job,
                result,
                retry: None,
            }
        }));
    }

    /// Tells Buildkite a workload can never start; a failure is retried from `retries`.
    fn tell_failed_to_start(&mut self, message: Message) {
        let feedback = self.feedback;
        self.ops.push(Box::pin(async move {
            let target = JobRef {
                id: message.job,
                graphql_id: message.graphql_id.clone(),
            };
            let result = feedback.fail_job(&target, &message.reason).await;
            Done::Told {
                job: message.job,
                result,
                retry: Some(message),
            }
        }));
    }

    fn start_due_retries(&mut self) {
        for message in self.retries.take_due(Instant::now()) {
            tracing::info!(job = %message.job, attempt = message.attempt, "telling Buildkite again that the workload can never start");
            self.tell_failed_to_start(message);
        }
    }

    fn apply(&mut self, event: BookEvent) {
        self.book.apply(event);
        self.book_changed();
    }

    /// After the book changed: launches waiting jobs if a slot freed, and reports the
    /// in-flight counts if they changed.
    fn book_changed(&mut self) {
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
    fn carry_out(&mut self, plan: Plan) {
        for (job, reason) in plan.rejections {
            tracing::info!(job = %job.id, pipeline = %job.pipeline, code = %reason.code, reason = %reason.message, "rejecting job");
            self.tell(job.id, Some(job.graphql_id), reason);
        }
        self.queued.extend(plan.launches);
        self.waiting = plan.waiting;
    }

    fn set_leader(&mut self, leader: bool) {
        if leader == self.leader {
            return;
        }
        tracing::info!(leader, "leadership changed");
        self.leader = leader;
        self.observer.on_leadership(leader);
        if leader {
            self.next_poll = Instant::now();
            self.next_check = Instant::now() + self.config.cancel_check_interval;
        } else {
            // Launches not yet started are given back; the new leader decides them.
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

    fn on_event(&mut self, event: WorkloadEvent) {
        match &event {
            WorkloadEvent::FailedToStart { job, reason } => {
                tracing::warn!(%job, code = %reason.code, reason = %reason.message, "workload can never start");
                self.observer.on_failed_to_start(*job, reason);
                let graphql_id = self.graphql_ids.remove(job);
                if self.leader {
                    self.tell_failed_to_start(Message {
                        job: *job,
                        graphql_id,
                        reason: reason.clone(),
                        attempt: 1,
                    });
                }
            }
            WorkloadEvent::Succeeded(job)
            | WorkloadEvent::Failed(job)
            | WorkloadEvent::Gone(job) => {
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

    fn on_done(&mut self, done: Done) {
        match done {
            Done::Polled(result) => self.on_polled(result),
            Done::Launched {
                job,
                result,
                latency,
            } => self.on_launched(*job, result, latency),
            Done::Told { job, result, retry } => {
                self.observer.on_feedback(job, result.as_ref().map(|_| ()));
                match (result, retry) {
                    (Ok(()), _) => {}
                    (Err(err), None) => {
                        tracing::warn!(%job, error = %err, "could not tell Buildkite; will retry");
                        self.apply(BookEvent::FeedbackFailed(job));
                    }
                    (Err(err), Some(message)) => self.feedback_failed(message, &err),
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

    /// A `FailedToStart` report failed: retry it later, or give up on it, and say so.
    fn feedback_failed(&mut self, message: Message, err: &FeedbackError) {
        let job = message.job;
        let attempt = message.attempt;
        let retry = self.retries.failed(message, Instant::now());
        self.observer.on_feedback_retry(job, retry);
        match retry {
            FeedbackRetry::Scheduled {
                attempt: next,
                after,
            } => {
                tracing::warn!(%job, attempt, error = %err, next_attempt = next, retry_in = ?after, "could not tell Buildkite the workload can never start; will retry");
            }
            FeedbackRetry::GivenUp { attempts } => {
                tracing::error!(%job, attempts, error = %err, "could not tell Buildkite the workload can never start; giving up, the job stays scheduled in Buildkite");
            }
            FeedbackRetry::Dropped => {
                tracing::error!(%job, attempt, error = %err, waiting = self.retries.len(), "could not tell Buildkite the workload can never start, and too many reports wait for a retry; dropping this one, the job stays scheduled in Buildkite");
            }
        }
    }

    fn on_polled(&mut self, result: Result<Vec<ScheduledJob>, MonitorError>) {
        self.polling = false;
        let now = Instant::now();
        match result {
            Ok(jobs) => {
                self.observer.on_poll(Ok(jobs.len()));
                self.poll_failures = 0;
                self.next_poll = now + self.config.poll_interval;
                if !self.leader {
                    return;
                }
                for job in &jobs {
                    if !self.listed.contains(&job.id) && self.book.status(job.id).is_none() {
                        self.observer.on_job_seen(job);
                    }
                }
                self.listed = jobs.iter().map(|job| job.id).collect();
                let observer = self.observer;
                let plan = plan_round(
                    &mut self.book,
                    self.policy,
                    self.limits,
                    jobs,
                    |job, decision| {
                        tracing::debug!(job = %job.id, pipeline = %job.pipeline, decision = decision.kind(), code = %decision.reason().code, "decided");
                        observer.on_decision(job, decision);
                    },
                );
                self.carry_out(plan);
                self.book_changed();
            }
            Err(err) => {
                self.observer.on_poll(Err(&err));
                // What waited is as old as the last poll now: let the next poll decide it.
                self.waiting.clear();
                self.poll_failures = self.poll_failures.saturating_add(1);
                let backoff = self
                    .config
                    .poll_interval
                    .saturating_mul(2u32.saturating_pow(self.poll_failures.min(16)))
                    .min(self.config.max_poll_backoff.max(self.config.poll_interval));
                let wait = match &err {
                    MonitorError::RateLimited { retry_after } => backoff.max(*retry_after),
                    MonitorError::Unauthorized(_) => {
                        tracing::error!(error = %err, "Buildkite refused the credentials");
                        backoff
                    }
                    MonitorError::Transient(_) => {
                        tracing::warn!(error = %err, "polling Buildkite failed");
                        backoff
                    }
                };
                self.next_poll = now + wait;
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
                self.graphql_ids.insert(job.id, job.graphql_id.clone());
                self.apply(BookEvent::LaunchSucceeded(job.id));
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
                    self.tell(job.id, Some(job.graphql_id), reason);
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

#[async_trait]
impl<M, J, F, P, O> Scheduler for Dispatcher<M, J, F, P, O>
where
    M: Monitor,
    J: Jobifier,
    F: Feedback,
    P: Policy,
    O: SchedulerObserver,
{
    async fn run<S>(self, shutdown: S) -> Result<(), SchedulerError>
    where
        S: Future<Output = ()> + Send,
    {
        let Dispatcher {
            monitor,
            jobifier,
            feedback,
            policy,
            limits,
            config,
            observer,
            mut leader,
        } = self;
        let is_leader = leader.as_mut().is_none_or(|rx| *rx.borrow_and_update());
        let now = Instant::now();
        let mut run = Run {
            monitor: &monitor,
            jobifier: &jobifier,
            feedback: &feedback,
            policy: &policy,
            limits: &limits,
            config: &config,
            observer: &observer,
            book: Book::new(),
            ops: FuturesUnordered::new(),
            queued: VecDeque::new(),
            launching: 0,
            polling: false,
            checking: false,
            leader: is_leader,
            next_poll: now,
            next_check: now + config.cancel_check_interval,
            poll_failures: 0,
            graphql_ids: HashMap::new(),
            waiting: Vec::new(),
            listed: HashSet::new(),
            retries: Retries::default(),
            reported_total: 0,
            reported_by_queue: Vec::new(),
        };
        observer.on_leadership(is_leader);
        let mut events = jobifier.events();
        let mut shutdown = std::pin::pin!(shutdown);
        let outcome = loop {
            run.start_launches();
            let may_poll = run.leader && !run.polling && run.book.is_restored();
            let may_check = run.leader && !run.checking && run.book.is_restored();
            let retry_due = run.retries.next_due().filter(|_| run.leader);
            tokio::select! {
                biased;
                () = &mut shutdown => break Ok(()),
                event = events.next() => match event {
                    Some(event) => run.on_event(event),
                    None => break Err(SchedulerError::EventsEnded),
                },
                Some(done) = run.ops.next(), if !run.ops.is_empty() => run.on_done(done),
                changed = leadership_changed(&mut leader) => match changed {
                    Some(now_leader) => run.set_leader(now_leader),
                    None => {
                        tracing::warn!("the leadership signal was dropped; acting as a standby");
                        leader = None;
                        run.set_leader(false);
                    }
                },
                () = sleep_until(run.next_poll), if may_poll => run.start_poll(),
                () = sleep_until(run.next_poll), if !run.leader => run.standby_tick(),
                () = sleep_until(run.next_check), if may_check => run.start_check(),
                () = sleep_until(retry_due.unwrap_or(run.next_poll)), if retry_due.is_some() => run.start_due_retries(),
            }
        };
        tracing::info!(in_progress = run.ops.len(), "scheduler stopping");
        for job in run.retries.jobs() {
            tracing::warn!(%job, "stopping before Buildkite was told that the workload of this job can never start; the job stays scheduled in Buildkite");
        }
        let drained = tokio::time::timeout(config.shutdown_grace, async {
            while let Some(done) = run.ops.next().await {
                if let Done::Launched { job, result, .. } = &done {
                    tracing::info!(job = %job.id, ok = result.is_ok(), "launch finished during shutdown");
                }
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!("shutdown grace elapsed; abandoning operations in progress");
        }
        outcome
    }
}
