//! The scheduler as a state machine, in plain `#[test]`s: no mocks, channels, tasks or clock.
//!
//! Two ways to drive it. The tables (`Machine`, and `table` in each file) feed inputs one by
//! one at stated times and compare the I/O effects that come out with the expected ones. The
//! [`World`] is a synchronous stand-in for Buildkite and the cluster for the longer stories:
//! it answers each effect (at once, after a delay, or when the test releases it), moves time
//! to the next answer or to [`Scheduler::next_wake`], and records what was asked.
//!
//! `basics` has polling, launches, cancellations and leadership, `sweep` pages and how far a
//! sweep reads, `slots` limits and freed slots, `feedback` what Buildkite is told, and
//! `dispatcher` the few tests of the async executor.

mod basics;
mod claims;
mod dispatcher;
mod feedback;
mod slots;
mod sweep;
mod world;

use std::time::{Duration, Instant};

use super::*;
use crate::decision::{Decision, Reason, ReasonCode};
use crate::feedback::FeedbackError;
use crate::job::{JobId, JobState, ScheduledJob};
use crate::jobifier::{LaunchError, Launched};
use crate::limits::Limits;
use crate::monitor::{Claim, MonitorError, PageToken, ScheduledPage};
use crate::policy::{FnPolicy, from_fn};
use crate::workload::WorkloadEvent;

const POLL: Duration = Duration::from_secs(10);

fn secs(seconds: u64) -> Duration {
    Duration::from_secs(seconds)
}

fn config() -> SchedulerConfig {
    SchedulerConfig {
        poll_interval: POLL,
        cancel_check_interval: Duration::from_secs(15),
        launch_concurrency: 4,
        lookahead_pages: 5,
        max_poll_backoff: Duration::from_secs(60),
        shutdown_grace: Duration::from_secs(1),
    }
}

type TestPolicy = FnPolicy<fn(&ScheduledJob) -> Decision>;

/// Runs every job, except those of pipeline `refused`, which it rejects.
fn run_all() -> TestPolicy {
    fn decide(job: &ScheduledJob) -> Decision {
        if job.pipeline == "refused" {
            Decision::Reject {
                reason: Reason::new(
                    ReasonCode::RULE_MATCHED,
                    "pipeline refused is not allowed here",
                ),
            }
        } else {
            Decision::Run {
                template: crate::decision::Template::Default { name: None },
                reason: Reason::new(ReasonCode::RULE_MATCHED, "run"),
            }
        }
    }
    from_fn(decide as fn(&ScheduledJob) -> Decision)
}

/// The comparable part of an I/O effect.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Did {
    /// A page request, by token.
    Fetch(Option<String>),
    Launch(JobId),
    Cancel(JobId),
    /// Feedback: the job, its source key, the reason code, the attempt.
    Tell(JobId, Option<String>, ReasonCode, u32),
    Check(Vec<JobId>),
    Reserve(Vec<JobId>),
}

fn fetch(token: Option<&str>) -> Did {
    Did::Fetch(token.map(str::to_owned))
}

/// The I/O effects, in order (reports left out).
fn io(effects: &[Effect]) -> Vec<Did> {
    effects
        .iter()
        .filter_map(|effect| match effect {
            Effect::FetchPage(token) => Some(Did::Fetch(
                token.as_ref().map(|token| token.as_str().to_owned()),
            )),
            Effect::Launch { job, .. } => Some(Did::Launch(job.id)),
            Effect::Cancel(job) => Some(Did::Cancel(*job)),
            Effect::Tell(message) => Some(Did::Tell(
                message.job.id,
                message.job.source_key.clone(),
                message.reason.code,
                message.attempt,
            )),
            Effect::CheckStates(jobs) => Some(Did::Check(jobs.clone())),
            Effect::Reserve(jobs) => Some(Did::Reserve(jobs.clone())),
            Effect::Report(_) => None,
        })
        .collect()
}

/// The reported events, in order.
fn reports(effects: Vec<Effect>) -> Vec<SchedulerEvent> {
    effects
        .into_iter()
        .filter_map(|effect| match effect {
            Effect::Report(event) => Some(event),
            _ => None,
        })
        .collect()
}

/// The state machine with a clock of its own: inputs are fed at `start + offset`.
struct Machine {
    scheduler: Scheduler<TestPolicy>,
    start: Instant,
}

impl Machine {
    /// A leading scheduler whose workloads are not yet restored.
    fn leading(limits: Limits, config: SchedulerConfig) -> Self {
        Machine::leading_reserving(limits, config, false)
    }

    /// A leading scheduler that reserves launches first when `reserves`.
    fn leading_reserving(limits: Limits, config: SchedulerConfig, reserves: bool) -> Self {
        let start = Instant::now();
        let mut scheduler = Scheduler::new(run_all(), limits, config, start).reserving(reserves);
        let effects = scheduler.handle(start, Input::Leadership(true));
        assert!(io(&effects).is_empty(), "a leader waits for the workloads");
        Machine { scheduler, start }
    }

    fn at(&mut self, offset: Duration, input: Input) -> Vec<Effect> {
        self.scheduler.handle(self.start + offset, input)
    }

    fn wake(&self) -> Option<Duration> {
        self.scheduler
            .next_wake()
            .map(|at| at.saturating_duration_since(self.start))
    }
}

/// A table: at each offset, an input and the I/O effects it must cause.
fn table(machine: &mut Machine, steps: Vec<(Duration, Input, Vec<Did>)>) {
    for (i, (offset, input, expected)) in steps.into_iter().enumerate() {
        let described = format!("{input:?}");
        let effects = machine.at(offset, input);
        assert_eq!(
            io(&effects),
            expected,
            "step {i} at {offset:?}: {described}"
        );
    }
}

fn restored() -> Input {
    Input::Workload(WorkloadEvent::Restored(vec![]))
}

/// A page of `jobs`, followed by the page at `next`.
fn page(jobs: &[ScheduledJob], next: Option<&str>) -> Input {
    Input::Page(Ok(ScheduledPage {
        jobs: jobs.to_vec(),
        next: next.map(PageToken::new),
        next_list: None,
    }))
}

fn launched(job: &ScheduledJob) -> Input {
    Input::Launched {
        job: Box::new(job.clone()),
        result: Ok(Launched::Created),
        latency: Duration::ZERO,
    }
}

fn jobs(count: usize) -> Vec<ScheduledJob> {
    (0..count)
        .map(|_| ScheduledJob::fixture().build())
        .collect()
}

use world::World;
