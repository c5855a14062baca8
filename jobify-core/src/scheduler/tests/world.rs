//! [`World`]: Buildkite and the cluster as a synchronous stand-in that answers the
//! scheduler's effects, for the tests that tell a longer story than a table.

use super::*;

/// Whether a page request fails: (request number, page index) to the error.
pub(super) type PageAnswer = Box<dyn FnMut(usize, usize) -> Option<MonitorError>>;
pub(super) type LaunchAnswer = Box<dyn FnMut(&ScheduledJob) -> Result<Launched, LaunchError>>;
/// What a reservation request answers: the claims, or the error.
pub(super) type ReserveAnswer = Box<dyn FnMut(&[JobId]) -> Result<Vec<Claim>, MonitorError>>;
pub(super) type FeedbackAnswer = Box<dyn FnMut(&FeedbackMessage) -> Result<(), FeedbackError>>;

/// Buildkite and the cluster, answering the scheduler's effects synchronously.
pub(super) struct World {
    machine: Machine,
    now: Duration,
    /// Answers on their way: when each arrives (`None`: when the test releases it).
    pending: Vec<(Option<Duration>, Input)>,
    /// What Buildkite lists, page by page (the token is the next page's index).
    pub(super) pages: Vec<Vec<ScheduledJob>>,
    /// The first page of each list after the first.
    pub(super) list_starts: Vec<usize>,
    /// A page request fails when this says so: (request number, page index).
    pub(super) fail_page: PageAnswer,
    pub(super) page_delay: Duration,
    /// A page held back until [`World::release_page`].
    pub(super) hold_page: Option<usize>,
    pub(super) launch: LaunchAnswer,
    /// How long each successful launch takes; a failing one answers at once.
    pub(super) launch_delay: Duration,
    pub(super) tell: FeedbackAnswer,
    /// How reservation requests are answered (only a reserving scheduler asks).
    pub(super) reserve: ReserveAnswer,
    /// The reservation requests, in order.
    pub(super) reservations: Vec<Vec<JobId>>,
    /// What a state check answers for every job.
    pub(super) state: JobState,
    // What the scheduler asked for.
    pub(super) requests: Vec<Option<usize>>,
    pub(super) launches: Vec<JobId>,
    pub(super) created: Vec<JobId>,
    launching: usize,
    pub(super) most_launching: usize,
    pub(super) told: Vec<(JobId, Option<String>, Reason)>,
    pub(super) cancels: Vec<JobId>,
    pub(super) events: Vec<SchedulerEvent>,
}

impl World {
    /// A world where Buildkite lists `listed` on one page, every launch and report succeeds,
    /// and the leading scheduler runs every job within `max_in_flight`.
    pub(super) fn new(listed: Vec<ScheduledJob>, max_in_flight: u32) -> Self {
        World::with(vec![listed], Limits::global(max_in_flight), config())
    }

    pub(super) fn with(
        pages: Vec<Vec<ScheduledJob>>,
        limits: Limits,
        config: SchedulerConfig,
    ) -> Self {
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
            reserve: Box::new(|jobs| Ok(jobs.iter().copied().map(Claim::without_token).collect())),
            reservations: Vec::new(),
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

    /// A world like [`World::with`] whose scheduler reserves each launch first.
    pub(super) fn reserving(
        pages: Vec<Vec<ScheduledJob>>,
        limits: Limits,
        config: SchedulerConfig,
    ) -> Self {
        World {
            machine: Machine::leading_reserving(limits, config, true),
            ..World::with(pages, Limits::global(0), SchedulerConfig::default())
        }
    }

    /// The workloads are restored (the first workload event): the scheduler may start.
    pub(super) fn start(&mut self) {
        self.send(restored());
    }

    /// What Buildkite lists (one page).
    pub(super) fn listed(&mut self) -> &mut Vec<ScheduledJob> {
        &mut self.pages[0]
    }

    pub(super) fn send(&mut self, input: Input) {
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
                Effect::Reserve(jobs) => {
                    self.reservations.push(jobs.clone());
                    let result = (self.reserve)(&jobs);
                    self.pending
                        .push((Some(self.now), Input::Reserved { jobs, result }));
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
    pub(super) fn advance(&mut self, by: Duration) {
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
    pub(super) fn release_page(&mut self) {
        self.hold_page = None;
        for (due, input) in &mut self.pending {
            if due.is_none() && matches!(input, Input::Page(_)) {
                *due = Some(self.now);
            }
        }
    }

    pub(super) fn sweeps(&self) -> Vec<(SweepEnd, usize, usize)> {
        self.events
            .iter()
            .filter_map(|event| match event {
                SchedulerEvent::SweepEnded(sweep) => Some((sweep.end, sweep.pages, sweep.jobs)),
                _ => None,
            })
            .collect()
    }

    pub(super) fn decisions(&self) -> Vec<(JobId, ReasonCode)> {
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

    pub(super) fn in_flight(&self) -> Vec<u32> {
        self.events
            .iter()
            .filter_map(|event| match event {
                SchedulerEvent::InFlight(total) => Some(*total),
                _ => None,
            })
            .collect()
    }

    pub(super) fn last_by_queue(&self) -> Vec<(String, u32)> {
        self.events
            .iter()
            .rev()
            .find_map(|event| match event {
                SchedulerEvent::InFlightByQueue(by_queue) => Some(by_queue.clone()),
                _ => None,
            })
            .unwrap_or_default()
    }

    pub(super) fn seen(&self) -> Vec<JobId> {
        self.events
            .iter()
            .filter_map(|event| match event {
                SchedulerEvent::JobSeen { job, .. } => Some(*job),
                _ => None,
            })
            .collect()
    }

    pub(super) fn retries(&self) -> Vec<(JobId, FeedbackReport, FeedbackRetry)> {
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
