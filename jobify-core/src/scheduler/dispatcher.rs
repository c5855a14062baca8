//! [`Dispatcher`]: the default [`Scheduler`].

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;

use async_trait::async_trait;
use futures::stream::{FuturesUnordered, StreamExt};
use tokio::sync::watch;
use tokio::time::{Instant, sleep_until};

use super::retry::Retries;
use super::state::{Done, Run};
use super::{Scheduler, SchedulerConfig, SchedulerError, SchedulerObserver, deadline};
use crate::book::Book;
use crate::feedback::Feedback;
use crate::jobifier::Jobifier;
use crate::limits::Limits;
use crate::monitor::Monitor;
use crate::policy::Policy;

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
            sweep: None,
            checking: false,
            leader: is_leader,
            next_poll: now,
            next_check: deadline(now, config.cancel_check_interval),
            poll_failures: 0,
            graphql_ids: HashMap::new(),
            waiting: Vec::new(),
            listed: HashSet::new(),
            retries: Retries::default(),
            ended_at: HashMap::new(),
            reported_total: 0,
            reported_by_queue: Vec::new(),
        };
        observer.on_leadership(is_leader);
        let mut events = jobifier.events();
        let mut shutdown = std::pin::pin!(shutdown);
        let outcome = loop {
            run.start_launches();
            run.continue_sweep();
            let may_poll =
                run.leader && !run.polling && run.sweep.is_none() && run.book.is_restored();
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
