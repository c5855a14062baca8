//! The scheduler as a state machine, in plain `#[test]`s: no mocks, channels, tasks or clock.
//!
//! Two ways to drive it. The tables (`Machine`, and `table` in each file) feed inputs one by
//! one at stated times and compare the I/O effects that come out with the expected ones. The
//! [`World`] is a synchronous stand-in for Buildkite and the cluster for the longer stories:
//! it answers each effect (at once, after a delay, or when the test releases it), moves time
//! to the next answer or to [`Scheduler::next_wake`], and records what was asked.
//!
//! `sweep` has pages and how far a sweep reads, `slots` limits and freed slots, `feedback`
//! what Buildkite is told, and `dispatcher` the few tests of the async executor.

mod dispatcher;
mod feedback;
mod slots;
mod sweep;

use std::time::{Duration, Instant};

use super::*;
use crate::decision::{Decision, Reason, ReasonCode};
use crate::feedback::FeedbackError;
use crate::job::{JobId, JobState, ScheduledJob};
use crate::jobifier::{LaunchError, Launched};
use crate::limits::Limits;
use crate::monitor::{MonitorError, PageToken, ScheduledPage};
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
        let start = Instant::now();
        let mut scheduler = Scheduler::new(run_all(), limits, config, start);
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

/// Whether a page request fails: (request number, page index) to the error.
type PageAnswer = Box<dyn FnMut(usize, usize) -> Option<MonitorError>>;
type LaunchAnswer = Box<dyn FnMut(&ScheduledJob) -> Result<Launched, LaunchError>>;
type FeedbackAnswer = Box<dyn FnMut(&FeedbackMessage) -> Result<(), FeedbackError>>;

/// Buildkite and the cluster, answering the scheduler's effects synchronously.
struct World {
    machine: Machine,
    now: Duration,
    /// Answers on their way: when each arrives (`None`: when the test releases it).
    pending: Vec<(Option<Duration>, Input)>,
    /// What Buildkite lists, page by page (the token is the next page's index).
    pages: Vec<Vec<ScheduledJob>>,
    /// The first page of each list after the first.
    list_starts: Vec<usize>,
    /// A page request fails when this says so: (request number, page index).
    fail_page: PageAnswer,
    page_delay: Duration,
    /// A page held back until [`World::release_page`].
    hold_page: Option<usize>,
    launch: LaunchAnswer,
    /// How long each successful launch takes; a failing one answers at once.
    launch_delay: Duration,
    tell: FeedbackAnswer,
    /// What a state check answers for every job.
    state: JobState,
    // What the scheduler asked for.
    requests: Vec<Option<usize>>,
    launches: Vec<JobId>,
    created: Vec<JobId>,
    launching: usize,
    most_launching: usize,
    told: Vec<(JobId, Option<String>, Reason)>,
    cancels: Vec<JobId>,
    events: Vec<SchedulerEvent>,
}

impl World {
    /// A world where Buildkite lists `listed` on one page, every launch and report succeeds,
    /// and the leading scheduler runs every job within `max_in_flight`.
    fn new(listed: Vec<ScheduledJob>, max_in_flight: u32) -> Self {
        World::with(vec![listed], Limits::global(max_in_flight), config())
    }

    fn with(pages: Vec<Vec<ScheduledJob>>, limits: Limits, config: SchedulerConfig) -> Self {
        World {
            machine: Machine::leading(limits, config),
            now: Duration::ZERO,
            pending: Vec::new(),
            pages,
            list_starts: Vec::new(),
            fail_page: Box::new(|_, _| None),
            page_delay: Duration::ZERO,
            hold_page: None,
            launch: Box::new(|_| Ok(Launched::Created)),
            launch_delay: Duration::ZERO,
            tell: Box::new(|_| Ok(())),
            state: JobState::Scheduled,
            requests: Vec::new(),
            launches: Vec::new(),
            created: Vec::new(),
            launching: 0,
            most_launching: 0,
            told: Vec::new(),
            cancels: Vec::new(),
            events: Vec::new(),
        }
    }

    /// The workloads are restored (the first workload event): the scheduler may start.
    fn start(&mut self) {
        self.send(restored());
    }

    /// What Buildkite lists (one page).
    fn listed(&mut self) -> &mut Vec<ScheduledJob> {
        &mut self.pages[0]
    }

    fn send(&mut self, input: Input) {
        let at = self.machine.start + self.now;
        let effects = self.machine.scheduler.handle(at, input);
        self.perform(effects);
    }

    fn perform(&mut self, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Report(event) => self.events.push(event),
                Effect::FetchPage(token) => {
                    let index = token.map(|token| token.as_str().parse::<usize>().expect("ours"));
                    self.requests.push(index);
                    let index = index.unwrap_or(0);
                    let answer = match (self.fail_page)(self.requests.len() - 1, index) {
                        Some(error) => Err(error),
                        None => {
                            let next = index + 1;
                            let next_list = self.list_starts.iter().find(|start| **start > index);
                            Ok(ScheduledPage {
                                jobs: self.pages[index].clone(),
                                next: (next < self.pages.len())
                                    .then(|| PageToken::new(next.to_string())),
                                next_list: next_list.map(|start| PageToken::new(start.to_string())),
                            })
                        }
                    };
                    let due = (self.hold_page != Some(index)).then_some(self.now + self.page_delay);
                    self.pending.push((due, Input::Page(answer)));
                }
                Effect::Launch { job, .. } => {
                    self.launches.push(job.id);
                    self.launching += 1;
                    self.most_launching = self.most_launching.max(self.launching);
                    let result = (self.launch)(&job);
                    // A failing launch answers at once; a successful one takes its time.
                    let latency = if result.is_err() {
                        Duration::ZERO
                    } else {
                        self.launch_delay
                    };
                    self.pending.push((
                        Some(self.now + latency),
                        Input::Launched {
                            job,
                            result,
                            latency,
                        },
                    ));
                }
                Effect::Cancel(job) => {
                    self.cancels.push(job);
                    self.pending.push((
                        Some(self.now),
                        Input::Cancelled {
                            job,
                            result: Ok(()),
                        },
                    ));
                }
                Effect::Tell(message) => {
                    self.told.push((
                        message.job.id,
                        message.job.source_key.clone(),
                        message.reason.clone(),
                    ));
                    let result = (self.tell)(&message);
                    self.pending
                        .push((Some(self.now), Input::Told { message, result }));
                }
                Effect::CheckStates(jobs) => {
                    let states = jobs.iter().map(|job| (*job, self.state.clone())).collect();
                    self.pending
                        .push((Some(self.now), Input::States(Ok(states))));
                }
            }
        }
    }

    /// Lets `by` pass: answers arrive when due (before a timer due at the same moment, as
    /// in the executor), and the scheduler is woken when it asked to be.
    fn advance(&mut self, by: Duration) {
        let until = self.now + by;
        for _ in 0..1_000_000 {
            let answer = self
                .pending
                .iter()
                .enumerate()
                .filter_map(|(i, (due, _))| due.map(|due| (due, i)))
                .min();
            let wake = self.machine.wake();
            match (answer, wake) {
                (Some((due, i)), wake) if due <= until && wake.is_none_or(|wake| due <= wake) => {
                    self.now = self.now.max(due);
                    let (_, input) = self.pending.remove(i);
                    if matches!(input, Input::Launched { .. }) {
                        self.launching -= 1;
                        if let Input::Launched {
                            job, result: Ok(_), ..
                        } = &input
                        {
                            self.created.push(job.id);
                        }
                    }
                    self.send(input);
                }
                (_, Some(wake)) if wake <= until => {
                    self.now = self.now.max(wake);
                    self.send(Input::Tick);
                }
                _ => {
                    self.now = until;
                    return;
                }
            }
        }
        panic!("the scheduler never settled");
    }

    /// The held page arrives now.
    fn release_page(&mut self) {
        self.hold_page = None;
        for (due, input) in &mut self.pending {
            if due.is_none() && matches!(input, Input::Page(_)) {
                *due = Some(self.now);
            }
        }
    }

    fn sweeps(&self) -> Vec<(SweepEnd, usize, usize)> {
        self.events
            .iter()
            .filter_map(|event| match event {
                SchedulerEvent::SweepEnded(sweep) => Some((sweep.end, sweep.pages, sweep.jobs)),
                _ => None,
            })
            .collect()
    }

    fn decisions(&self) -> Vec<(JobId, ReasonCode)> {
        self.events
            .iter()
            .filter_map(|event| match event {
                SchedulerEvent::Decided { job, decision, .. } => {
                    Some((*job, decision.reason().code))
                }
                _ => None,
            })
            .collect()
    }

    fn in_flight(&self) -> Vec<u32> {
        self.events
            .iter()
            .filter_map(|event| match event {
                SchedulerEvent::InFlight(total) => Some(*total),
                _ => None,
            })
            .collect()
    }

    fn last_by_queue(&self) -> Vec<(String, u32)> {
        self.events
            .iter()
            .rev()
            .find_map(|event| match event {
                SchedulerEvent::InFlightByQueue(by_queue) => Some(by_queue.clone()),
                _ => None,
            })
            .unwrap_or_default()
    }

    fn seen(&self) -> Vec<JobId> {
        self.events
            .iter()
            .filter_map(|event| match event {
                SchedulerEvent::JobSeen { job, .. } => Some(*job),
                _ => None,
            })
            .collect()
    }

    fn retries(&self) -> Vec<(JobId, FeedbackReport, FeedbackRetry)> {
        self.events
            .iter()
            .filter_map(|event| match event {
                SchedulerEvent::FeedbackRetry { job, report, retry } => {
                    Some((*job, *report, *retry))
                }
                _ => None,
            })
            .collect()
    }
}

#[test]
fn polls_at_the_interval() {
    let mut world = World::new(vec![], 5);
    world.start();
    world.advance(secs(35));
    assert_eq!(world.requests.len(), 4, "polls at 0, 10, 20 and 30 s");
}

#[test]
fn a_slow_poll_does_not_stretch_the_poll_period() {
    let mut world = World::new(vec![], 5);
    world.page_delay = secs(4);
    world.start();
    world.advance(secs(35));
    assert_eq!(
        world.requests.len(),
        4,
        "polls start at 0, 10, 20 and 30 s (not 0, 14, 28)"
    );
}

#[test]
fn the_first_poll_waits_for_the_workloads_then_polls_follow_the_interval() {
    let mut machine = Machine::leading(Limits::global(5), config());
    assert_eq!(
        machine.wake(),
        None,
        "nothing is due before the workloads are known"
    );
    table(
        &mut machine,
        vec![
            (secs(3), restored(), vec![fetch(None)]),
            (secs(3), page(&[], None), vec![]),
            (secs(12), Input::Tick, vec![]),
            (secs(13), Input::Tick, vec![fetch(None)]),
        ],
    );
    assert_eq!(
        machine.wake(),
        Some(secs(15)),
        "with a page on its way, the state check is what is due next"
    );
}

#[test]
fn a_transient_launch_failure_is_retried_on_the_next_poll() {
    let job = ScheduledJob::fixture().build();
    let mut machine = Machine::leading(Limits::global(5), config());
    let transient = Input::Launched {
        job: Box::new(job.clone()),
        result: Err(LaunchError::Transient {
            message: "etcd timeout".into(),
        }),
        latency: Duration::ZERO,
    };
    table(
        &mut machine,
        vec![
            (secs(0), restored(), vec![fetch(None)]),
            (
                secs(0),
                page(std::slice::from_ref(&job), None),
                vec![Did::Launch(job.id)],
            ),
            (secs(0), transient, vec![]),
            (POLL, Input::Tick, vec![fetch(None)]),
            (
                POLL,
                page(std::slice::from_ref(&job), None),
                vec![Did::Launch(job.id)],
            ),
            (POLL, launched(&job), vec![]),
            (
                POLL * 2,
                Input::Tick,
                vec![fetch(None), Did::Check(vec![job.id])],
            ),
            (POLL * 2, page(std::slice::from_ref(&job), None), vec![]),
        ],
    );
}

#[test]
fn the_workload_of_a_cancelled_job_is_removed_before_it_starts() {
    let job = ScheduledJob::fixture().build();
    let mut world = World::new(vec![job.clone()], 5);
    world.state = JobState::Canceled;
    world.start();
    world.advance(secs(40));
    assert_eq!(world.cancels, vec![job.id], "removed once");
}

#[test]
fn only_jobs_whose_workload_has_not_started_are_checked_and_only_cancelled_ones_removed() {
    let (waiting, running) = (
        ScheduledJob::fixture().build(),
        ScheduledJob::fixture().build(),
    );
    let mut machine = Machine::leading(Limits::global(5), config());
    let both = [waiting.clone(), running.clone()];
    table(
        &mut machine,
        vec![
            (secs(0), restored(), vec![fetch(None)]),
            (
                secs(0),
                page(&both, None),
                vec![Did::Launch(waiting.id), Did::Launch(running.id)],
            ),
            (secs(0), launched(&waiting), vec![]),
            (secs(0), launched(&running), vec![]),
            (
                secs(1),
                Input::Workload(WorkloadEvent::Started(running.id)),
                vec![],
            ),
            (
                secs(15),
                Input::Tick,
                vec![fetch(None), Did::Check(vec![waiting.id])],
            ),
            (
                secs(15),
                Input::States(Ok(vec![(waiting.id, JobState::Scheduled)])),
                vec![],
            ),
            (secs(30), Input::Tick, vec![Did::Check(vec![waiting.id])]),
            (
                secs(30),
                Input::States(Ok(vec![(waiting.id, JobState::Canceled)])),
                vec![Did::Cancel(waiting.id)],
            ),
        ],
    );
}

#[test]
fn a_standby_observes_but_never_polls_or_launches_until_it_leads() {
    let job = ScheduledJob::fixture().build();
    let other = ScheduledJob::fixture().on_pipeline("web").workload();
    let start = Instant::now();
    let mut scheduler = Scheduler::new(run_all(), Limits::global(1), config(), start);
    let at = |s: u64| start + secs(s);
    let mut steps = vec![
        (0, Input::Leadership(false), vec![]),
        (0, restored(), vec![]),
        (
            0,
            Input::Workload(WorkloadEvent::Observed(other.clone())),
            vec![],
        ),
        (30, Input::Tick, vec![]),
        (31, Input::Leadership(true), vec![fetch(None)]),
        (31, page(std::slice::from_ref(&job), None), vec![]),
        (
            32,
            Input::Workload(WorkloadEvent::Gone(other.job)),
            vec![Did::Launch(job.id)],
        ),
    ];
    let mut reported = Vec::new();
    for (i, (s, input, expected)) in steps.drain(..).enumerate() {
        let effects = scheduler.handle(at(s), input);
        assert_eq!(io(&effects), expected, "step {i}");
        reported.extend(reports(effects));
    }
    let leadership: Vec<bool> = reported
        .iter()
        .filter_map(|event| match event {
            SchedulerEvent::Leadership(leader) => Some(*leader),
            _ => None,
        })
        .collect();
    assert_eq!(leadership, [false, true], "the start, then the change");
    assert!(
        reported.iter().any(|event| matches!(
            event,
            SchedulerEvent::Decided { job: id, decision: Decision::Defer { .. }, .. } if *id == job.id
        )),
        "the standby's book counted the other replica's workload"
    );
}

#[test]
fn losing_the_lead_gives_back_launches_not_started_and_drops_the_sweep() {
    let jobs = jobs(3);
    let mut machine = Machine::leading(
        Limits::global(10),
        SchedulerConfig {
            launch_concurrency: 1,
            ..config()
        },
    );
    table(
        &mut machine,
        vec![
            (secs(0), restored(), vec![fetch(None)]),
            (
                secs(0),
                page(&jobs, Some("1")),
                vec![Did::Launch(jobs[0].id), fetch(Some("1"))],
            ),
            (secs(1), Input::Leadership(false), vec![]),
            (secs(1), page(&jobs[..1], None), vec![]),
            (secs(1), launched(&jobs[0]), vec![]),
            (secs(5), Input::Leadership(true), vec![fetch(None)]),
            (secs(5), page(&jobs, None), vec![Did::Launch(jobs[1].id)]),
        ],
    );
    assert_eq!(
        machine.scheduler.book().status(jobs[0].id),
        Some(crate::book::JobStatus::InFlight),
        "the launch that had started still counts"
    );
}

#[test]
fn polling_backs_off_when_rate_limited() {
    let mut world = World::new(vec![], 5);
    world.fail_page = Box::new(|request, _| {
        (request == 0).then(|| MonitorError::RateLimited {
            retry_after: secs(45),
        })
    });
    world.start();
    world.advance(secs(44));
    assert_eq!(world.requests.len(), 1, "no poll before retry_after");
    world.advance(secs(2));
    assert_eq!(world.requests.len(), 2);
    world.advance(POLL);
    assert_eq!(
        world.requests.len(),
        3,
        "back to the interval after a success"
    );
}

#[test]
fn failed_polls_back_off_exponentially_up_to_the_maximum() {
    let mut world = World::new(vec![], 5);
    world.fail_page = Box::new(|_, _| Some(MonitorError::Transient("connection reset".into())));
    world.start();
    world.advance(secs(200));
    // 0, then 20 s (2×), 40 s (4×), 60 s (the maximum) apart.
    assert_eq!(world.requests.len(), 5, "at 0, 20, 60, 120 and 180 s");
}

#[test]
fn huge_waits_from_a_monitor_or_the_config_do_not_overflow_the_clock() {
    let config = SchedulerConfig {
        poll_interval: Duration::MAX,
        cancel_check_interval: Duration::MAX,
        max_poll_backoff: Duration::MAX,
        ..config()
    };
    let mut world = World::with(vec![vec![]], Limits::global(5), config);
    world.fail_page = Box::new(|_, _| {
        Some(MonitorError::RateLimited {
            retry_after: Duration::MAX,
        })
    });
    world.start();
    world.advance(secs(3600));
    assert_eq!(
        world.requests.len(),
        1,
        "the first poll runs, the next waits (practically) forever"
    );
}

#[test]
fn nothing_is_polled_or_launched_before_the_workloads_are_restored() {
    let mut world = World::new(vec![ScheduledJob::fixture().build()], 5);
    world.advance(POLL * 3);
    assert!(world.requests.is_empty());
    assert!(world.launches.is_empty());
}

#[test]
fn launches_run_concurrently_up_to_the_bound_and_a_failing_one_blocks_none() {
    let broken = ScheduledJob::fixture()
        .on_pipeline("broken")
        .scheduled_at_second(0)
        .build();
    let mut listed = vec![broken];
    listed.extend((1..=5).map(|i| {
        ScheduledJob::fixture()
            .on_pipeline(&format!("p{i}"))
            .scheduled_at_second(i)
            .build()
    }));
    let mut world = World::with(
        vec![listed],
        Limits::global(10),
        SchedulerConfig {
            launch_concurrency: 2,
            ..config()
        },
    );
    world.launch = Box::new(|job| {
        if job.pipeline == "broken" {
            Err(LaunchError::Transient {
                message: "connection reset".into(),
            })
        } else {
            Ok(Launched::Created)
        }
    });
    world.launch_delay = secs(5);
    world.start();
    world.advance(secs(6));
    assert_eq!(world.created.len(), 2, "two at once");
    world.advance(secs(10));
    assert_eq!(world.created.len(), 5);
    assert_eq!(world.most_launching, 2);
}
