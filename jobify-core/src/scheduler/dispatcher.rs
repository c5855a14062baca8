//! [`Dispatcher`]: the thin async executor around the [`Scheduler`] state machine. It
//! performs each [`Effect`] through the ports, feeds every answer, workload event,
//! leadership change and wake-up back as an [`Input`], and hands events to the observer.

use std::future::Future;

use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use tokio::sync::watch;
use tokio::time::{Instant, sleep_until};

use super::{Effect, Input, Scheduler, SchedulerConfig, SchedulerError, SchedulerObserver};
use crate::feedback::Feedback;
use crate::jobifier::Jobifier;
use crate::limits::Limits;
use crate::monitor::Monitor;
use crate::policy::Policy;

/// The scheduler with its ports: polls the monitor, decides with `P`, launches through `J`,
/// reports through `F`, and tells `O` about it. Build it with [`Dispatcher::new`], then
/// optionally [`with_observer`](Dispatcher::with_observer) and
/// [`with_leadership`](Dispatcher::with_leadership); start it with [`Dispatcher::run`].
pub struct Dispatcher<M, J, F, P, O = ()> {
    ports: Ports<M, J, F, O>,
    policy: P,
    limits: Limits,
    config: SchedulerConfig,
    leader: Option<watch::Receiver<bool>>,
}

/// What the effects are carried out through.
struct Ports<M, J, F, O> {
    monitor: M,
    jobifier: J,
    feedback: F,
    observer: O,
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
            ports: Ports {
                monitor,
                jobifier,
                feedback,
                observer: (),
            },
            policy,
            limits,
            config,
            leader: None,
        }
    }
}

impl<M, J, F, P, O> Dispatcher<M, J, F, P, O> {
    /// Reports every [`SchedulerEvent`](super::SchedulerEvent) to `observer` (metrics, logs).
    pub fn with_observer<O2: SchedulerObserver>(self, observer: O2) -> Dispatcher<M, J, F, P, O2> {
        let Ports {
            monitor,
            jobifier,
            feedback,
            observer: _,
        } = self.ports;
        Dispatcher {
            ports: Ports {
                monitor,
                jobifier,
                feedback,
                observer,
            },
            policy: self.policy,
            limits: self.limits,
            config: self.config,
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

/// The clock the state machine is fed: tokio's, so that tests can pause it.
fn now() -> std::time::Instant {
    Instant::now().into_std()
}

impl<M, J, F, P, O> Dispatcher<M, J, F, P, O>
where
    M: Monitor,
    J: Jobifier,
    F: Feedback,
    P: Policy,
    O: SchedulerObserver,
{
    /// Runs until `shutdown` completes (then gives operations in progress up to
    /// [`SchedulerConfig::shutdown_grace`] to finish), or stops with an error when it cannot
    /// go on.
    pub async fn run<S>(self, shutdown: S) -> Result<(), SchedulerError>
    where
        S: Future<Output = ()> + Send,
    {
        let Dispatcher {
            ports,
            policy,
            limits,
            config,
            mut leader,
        } = self;
        let grace = config.shutdown_grace;
        let is_leader = leader.as_mut().is_none_or(|rx| *rx.borrow_and_update());
        let mut scheduler =
            Scheduler::new(policy, limits, config, now()).reserving(ports.monitor.reserves());
        let mut ops = FuturesUnordered::new();
        let mut effects = scheduler.handle(now(), Input::Leadership(is_leader));
        let mut events = ports.jobifier.events();
        let mut shutdown = std::pin::pin!(shutdown);
        let outcome = loop {
            for effect in effects {
                if let Some(op) = ports.perform(effect) {
                    ops.push(op);
                }
            }
            let wake = scheduler.next_wake();
            let input = tokio::select! {
                biased;
                () = &mut shutdown => break Ok(()),
                event = events.next() => match event {
                    Some(event) => Input::Workload(event),
                    None => break Err(SchedulerError::EventsEnded),
                },
                Some(input) = ops.next(), if !ops.is_empty() => input,
                changed = leadership_changed(&mut leader) => match changed {
                    Some(leader) => Input::Leadership(leader),
                    None => {
                        tracing::warn!("the leadership signal was dropped; acting as a standby");
                        leader = None;
                        Input::Leadership(false)
                    }
                },
                () = sleep_until(wake.map_or_else(Instant::now, Instant::from_std)), if wake.is_some() => Input::Tick,
            };
            effects = scheduler.handle(now(), input);
        };
        tracing::info!(in_progress = ops.len(), "scheduler stopping");
        for job in scheduler.pending_feedback() {
            tracing::warn!(%job, "stopping before Buildkite was told that the workload of this job can never start; the job stays scheduled in Buildkite");
        }
        let drained = tokio::time::timeout(grace, async {
            while let Some(input) = ops.next().await {
                if let Input::Launched { job, result, .. } = &input {
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

impl<M, J, F, O> Ports<M, J, F, O>
where
    M: Monitor,
    J: Jobifier,
    F: Feedback,
    O: SchedulerObserver,
{
    /// Carries out `effect`: reports at once, or returns the operation that answers it.
    fn perform(&self, effect: Effect) -> Option<BoxFuture<'_, Input>> {
        let op: BoxFuture<'_, Input> = match effect {
            Effect::Report(event) => {
                self.observer.on_event(&event);
                return None;
            }
            Effect::FetchPage(from) => {
                Box::pin(async move { Input::Page(self.monitor.scheduled(from).await) })
            }
            Effect::Reserve(jobs) => Box::pin(async move {
                let result = self.monitor.reserve(&jobs).await;
                Input::Reserved { jobs, result }
            }),
            Effect::Launch {
                job,
                template,
                agent_token,
            } => Box::pin(async move {
                let started = Instant::now();
                let result = match &agent_token {
                    Some(token) => {
                        self.jobifier
                            .launch_with_token(&job, &template, token)
                            .await
                    }
                    None => self.jobifier.launch(&job, &template).await,
                };
                Input::Launched {
                    job,
                    result,
                    latency: started.elapsed(),
                }
            }),
            Effect::Cancel(job) => Box::pin(async move {
                let result = self.jobifier.cancel(job).await;
                Input::Cancelled { job, result }
            }),
            Effect::Tell(message) => Box::pin(async move {
                let result = self.feedback.fail_job(&message.job, &message.reason).await;
                Input::Told { message, result }
            }),
            Effect::CheckStates(jobs) => {
                Box::pin(async move { Input::States(self.monitor.states(&jobs).await) })
            }
        };
        Some(op)
    }
}
