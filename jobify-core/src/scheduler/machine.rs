//! [`Scheduler`]: the state machine. [`Scheduler::handle`] takes an [`Input`] and the time it
//! happened and returns the [`Effect`]s it asks for; [`Scheduler::next_wake`] says when it
//! next wants an [`Input::Tick`]. It reads no clock and calls no port.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Instant;

use secrecy::SecretString;

use super::retry::Retries;
use super::sweep::Sweep;
use super::{Effect, Input, SchedulerConfig, SchedulerEvent, SweepEnd, deadline};
use crate::book::{Book, BookEvent};
use crate::decision::Template;
use crate::job::{JobId, ScheduledJob};
use crate::limits::Limits;
use crate::plan::{Plan, Waiting, plan_waiting};
use crate::policy::Policy;

/// The scheduler's decisions and book-keeping, free of I/O: sweeps and their lookahead,
/// freed slots, leadership hand-over, the never-acquired check, cancellation checks and
/// feedback retries. Driven by the [`Dispatcher`](super::Dispatcher), or by a test, one
/// [`Input`] at a time.
pub struct Scheduler<P> {
    pub(super) policy: P,
    pub(super) limits: Limits,
    pub(super) config: SchedulerConfig,
    pub(super) book: Book,
    /// `None` until the first [`Input::Leadership`].
    leader: Option<bool>,
    /// Launches decided and not yet handed out, for the launch concurrency.
    pub(super) queued: VecDeque<(ScheduledJob, Template)>,
    /// Whether launches are [reserved](crate::Monitor::reserve) first.
    reserves: bool,
    /// Launches whose reservation was asked for and has not answered.
    pub(super) reserving: HashMap<JobId, (ScheduledJob, Template)>,
    /// No reservation request before this (Buildkite answered 429).
    pub(super) reserve_after: Option<Instant>,
    /// Launches reserved for this controller, waiting for a launch slot, with the token
    /// the source issued for each, if any.
    pub(super) claimed: VecDeque<(ScheduledJob, Template, Option<SecretString>)>,
    /// Launches handed out whose result has not come back.
    pub(super) launching: usize,
    /// Polling Buildkite: the sweep in progress, when the next is due, the failures since
    /// the last success.
    pub(super) polls: Polls,
    /// Jobs of the current sweep a limit held back, launched when a slot frees.
    pub(super) waiting: Vec<Waiting>,
    /// A state check is in flight.
    checking: bool,
    next_check: Instant,
    /// The job-source keys of jobs with a workload, for feedback about them.
    pub(super) source_keys: HashMap<JobId, String>,
    /// Reports waiting to be tried again.
    pub(super) retries: Retries,
    /// When the workloads of jobs jobify launched ended (succeeded or failed), while
    /// Buildkite may still list them: see [`Scheduler::never_acquired`].
    pub(super) ended_at: HashMap<JobId, Instant>,
    /// The in-flight counts last reported.
    reported_total: u32,
    reported_by_queue: Vec<(String, u32)>,
    /// What this step asks for so far.
    pub(super) effects: Vec<Effect>,
}

/// The polling side of the state.
#[derive(Debug)]
pub(super) struct Polls {
    /// The sweep in progress, if any.
    pub(super) sweep: Option<Sweep>,
    /// A page request is in flight.
    pub(super) fetching: bool,
    /// When the next sweep is due.
    pub(super) next: Instant,
    /// Page requests failed in a row.
    pub(super) failures: u32,
    /// The ids the last sweep listed, to tell jobs seen for the first time.
    pub(super) listed: HashSet<JobId>,
}

impl<P: Policy> Scheduler<P> {
    /// A scheduler starting at `now`: its first sweep is due once it leads and the
    /// workloads are restored. Feed it [`Input::Leadership`] first.
    pub fn new(policy: P, limits: Limits, config: SchedulerConfig, now: Instant) -> Self {
        let next_check = deadline(now, config.cancel_check_interval);
        Scheduler {
            policy,
            limits,
            config,
            book: Book::new(),
            leader: None,
            queued: VecDeque::new(),
            reserves: false,
            reserving: HashMap::new(),
            reserve_after: None,
            claimed: VecDeque::new(),
            launching: 0,
            polls: Polls {
                sweep: None,
                fetching: false,
                next: now,
                failures: 0,
                listed: HashSet::new(),
            },
            waiting: Vec::new(),
            checking: false,
            next_check,
            source_keys: HashMap::new(),
            retries: Retries::default(),
            ended_at: HashMap::new(),
            reported_total: 0,
            reported_by_queue: Vec::new(),
            effects: Vec::new(),
        }
    }

    /// The scheduler, [reserving](Effect::Reserve) each launch before it starts when
    /// `reserves` (the job source says so: [`Monitor::reserves`](crate::Monitor::reserves)).
    #[must_use]
    pub fn reserving(mut self, reserves: bool) -> Self {
        self.reserves = reserves;
        self
    }

    /// Takes in what happened at `now`; returns what to do about it, in order.
    #[must_use = "the effects are what the scheduler decided to do"]
    pub fn handle(&mut self, now: Instant, input: Input) -> Vec<Effect> {
        match input {
            Input::Tick => {}
            Input::Leadership(leader) => self.set_leader(leader, now),
            Input::Page(result) => self.on_page(result, now),
            Input::Reserved { jobs, result } => self.on_reserved(jobs, result, now),
            Input::Launched {
                job,
                result,
                latency,
            } => self.on_launched(*job, result, latency),
            Input::Workload(event) => self.on_workload(event, now),
            Input::Told { message, result } => self.on_told(message, result, now),
            Input::States(result) => self.on_states(result),
            Input::Cancelled { job, result } => self.on_cancelled(job, result),
        }
        self.start_due(now);
        self.start_launches(now);
        self.continue_sweep(now);
        std::mem::take(&mut self.effects)
    }

    /// When the scheduler next has something to do on its own (a sweep, a check, a retry):
    /// send [`Input::Tick`] then. `None` while it only waits for answers or events.
    pub fn next_wake(&self) -> Option<Instant> {
        let leader = self.is_leader();
        let poll = (!leader || self.may_poll()).then_some(self.polls.next);
        let check = self.may_check().then_some(self.next_check);
        let retry = self.retries.next_due().filter(|_| leader);
        let reserve = self
            .reserve_after
            .filter(|_| leader && !self.queued.is_empty() && self.reserving.is_empty());
        [poll, check, retry, reserve].into_iter().flatten().min()
    }

    /// The jobs whose feedback waits for a retry, for the log at shutdown.
    pub fn pending_feedback(&self) -> impl Iterator<Item = JobId> + '_ {
        self.retries.jobs()
    }

    /// The book: what the scheduler knows of each job.
    pub fn book(&self) -> &Book {
        &self.book
    }

    pub(super) fn is_leader(&self) -> bool {
        self.leader == Some(true)
    }

    fn may_poll(&self) -> bool {
        self.is_leader()
            && !self.polls.fetching
            && self.polls.sweep.is_none()
            && self.book.is_restored()
    }

    fn may_check(&self) -> bool {
        self.is_leader() && !self.checking && self.book.is_restored()
    }

    pub(super) fn report(&mut self, event: SchedulerEvent) {
        self.effects.push(Effect::Report(event));
    }

    /// Starts what is due at `now`: a sweep (or a standby's tick), a state check, retries.
    fn start_due(&mut self, now: Instant) {
        if now >= self.polls.next {
            if self.may_poll() {
                self.start_sweep(now);
            } else if !self.is_leader() {
                self.standby_tick(now);
            }
        }
        if self.may_check() && now >= self.next_check {
            self.start_check(now);
        }
        if self.is_leader() && self.retries.next_due().is_some_and(|due| due <= now) {
            self.start_due_retries(now);
        }
    }

    fn start_launches(&mut self, now: Instant) {
        if !self.is_leader() {
            return;
        }
        if self.reserves {
            self.request_claims(now);
        }
        while self.launching < self.config.launch_concurrency.max(1) {
            let next = if self.reserves {
                self.claimed.pop_front()
            } else {
                self.queued
                    .pop_front()
                    .map(|(job, template)| (job, template, None))
            };
            let Some((job, template, agent_token)) = next else {
                break;
            };
            self.launching += 1;
            self.effects.push(Effect::Launch {
                job: Box::new(job),
                template,
                agent_token,
            });
        }
    }

    /// A launch came back.
    pub(super) fn launch_done(&mut self) {
        self.launching = self.launching.saturating_sub(1);
    }

    /// How many launches wait for a launch slot, for the sweep's headroom.
    pub(super) fn queued_launches(&self) -> usize {
        self.queued.len() + self.reserving.len() + self.claimed.len()
    }

    /// A standby does not poll Buildkite, so nothing tells it when jobs stop being scheduled.
    /// It forgets ended jobs whose workload is gone at the poll interval instead, as if
    /// Buildkite listed nothing, so its memory stays bounded.
    fn standby_tick(&mut self, now: Instant) {
        self.polls.next = deadline(now, self.config.poll_interval);
        self.apply(BookEvent::Polled(Vec::new()));
    }

    fn start_check(&mut self, now: Instant) {
        self.next_check = deadline(now, self.config.cancel_check_interval);
        let jobs = self.book.not_started();
        if jobs.is_empty() {
            return;
        }
        self.checking = true;
        self.effects.push(Effect::CheckStates(jobs));
    }

    /// A state check came back.
    pub(super) fn check_done(&mut self) {
        self.checking = false;
    }

    pub(super) fn apply(&mut self, event: BookEvent) {
        self.book.apply(event);
        self.book_changed();
    }

    /// After the book changed: launches waiting jobs if a slot freed, and reports the
    /// in-flight counts if they changed.
    pub(super) fn book_changed(&mut self) {
        if self.is_leader()
            && self.book.in_flight() < self.reported_total
            && !self.waiting.is_empty()
        {
            self.launch_waiting();
        }
        let total = self.book.in_flight();
        if total != self.reported_total {
            self.reported_total = total;
            self.report(SchedulerEvent::InFlight(total));
        }
        let by_queue = self.book.in_flight_by_queue();
        if by_queue != self.reported_by_queue {
            self.reported_by_queue = by_queue.clone();
            self.report(SchedulerEvent::InFlightByQueue(by_queue));
        }
    }

    /// A slot freed: launches the jobs of the last poll a limit held back that fit now.
    fn launch_waiting(&mut self) {
        let effects = &mut self.effects;
        let plan = plan_waiting(
            &mut self.book,
            &self.limits,
            std::mem::take(&mut self.waiting),
            |job, decision| {
                effects.push(Effect::Report(SchedulerEvent::Decided {
                    job: job.id,
                    pipeline: job.pipeline.clone(),
                    decision: decision.clone(),
                    slot_freed: true,
                }));
            },
        );
        self.carry_out(plan);
    }

    /// Queues the launches and rejections of `plan`, and keeps its waiting jobs.
    pub(super) fn carry_out(&mut self, plan: Plan) {
        for (job, reason) in plan.rejections {
            tracing::info!(job = %job.id, pipeline = %job.pipeline, code = %reason.code, reason = %reason.message, "rejecting job");
            self.reject(job.id, Some(job.source_key), reason);
        }
        self.queued.extend(plan.launches);
        self.waiting.extend(plan.waiting);
    }

    fn set_leader(&mut self, leader: bool, now: Instant) {
        let was = self.leader.replace(leader);
        if was == Some(leader) {
            return;
        }
        if was.is_some() {
            tracing::info!(leader, "leadership changed");
        }
        self.report(SchedulerEvent::Leadership(leader));
        if leader {
            self.polls.next = now;
            self.next_check = deadline(now, self.config.cancel_check_interval);
        } else {
            // Launches not yet started are given back; the new leader decides them.
            self.end_sweep(SweepEnd::Abandoned, now);
            self.waiting.clear();
            self.polls.listed.clear();
            self.reserve_after = None;
            while let Some((job, _)) = self.queued.pop_front() {
                self.apply(BookEvent::LaunchFailed {
                    job: job.id,
                    retry: true,
                });
            }
            self.give_back_claims();
        }
    }
}
