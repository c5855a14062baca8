//! The book-keeping: what jobify knows about each job, and what is in flight. A synchronous
//! struct fed by [`Book::apply`]; the scheduler's async loop feeds it, tests feed it directly.
//!
//! In-flight counts are derived from the jobs' states (a job counts from the moment its
//! launch starts until its workload is observed ended or gone), so they cannot drift: every
//! count changes only with a state change of one job, and [`Book::apply`] with
//! [`WorkloadEvent::Restored`] rebuilds them from what the cluster holds.
//!
//! Memory stays bounded: a job is forgotten once it is settled (skipped, rejected, deferred or
//! ended with its workload gone) and a complete sweep of Buildkite's scheduled jobs no longer
//! lists it.

use std::collections::HashMap;

use serde::Serialize;

use crate::job::JobId;
use crate::workload::{Workload, WorkloadEvent};

/// Where a job stands, as far as jobify knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Ours, but held back (a limit, or the policy deferred it): decided again next poll.
    Deferred,
    /// Not ours.
    Skipped,
    /// Refused; Buildkite has been (or is being) told.
    Rejected,
    /// Its workload is being created.
    Launching,
    /// Its workload exists and has not started running.
    InFlight,
    /// Its workload's pod is running.
    Running,
    /// Its Buildkite job was cancelled; its workload is being removed.
    Cancelling,
    /// Its workload ended.
    Ended,
}

impl JobStatus {
    /// Whether a job in this state counts against the in-flight limits.
    pub fn occupies_a_slot(self) -> bool {
        matches!(
            self,
            JobStatus::Launching | JobStatus::InFlight | JobStatus::Running | JobStatus::Cancelling
        )
    }
}

/// How a job was settled without a launch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settled {
    /// Deferred: decide again on a later poll.
    Deferred,
    /// Skipped: not ours.
    Skipped,
    /// Rejected: Buildkite is being told.
    Rejected,
}

/// Something the book must know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BookEvent {
    /// A complete poll of Buildkite listed these jobs as scheduled: the same as
    /// [`SweepStarted`](BookEvent::SweepStarted), [`Listed`](BookEvent::Listed) with these
    /// jobs and [`SweepCompleted`](BookEvent::SweepCompleted).
    Polled(Vec<JobId>),
    /// A sweep through Buildkite's scheduled jobs, page by page, begins.
    SweepStarted,
    /// A page of the current sweep listed these jobs as scheduled.
    Listed(Vec<JobId>),
    /// The current sweep reached the newest scheduled job: settled jobs it did not list are
    /// no longer scheduled, and are forgotten. A sweep that stops early (nothing more could
    /// launch) never completes, so it forgets nothing.
    SweepCompleted,
    /// The job was decided without a launch.
    Decided {
        /// The job.
        job: JobId,
        /// Its pipeline.
        pipeline: String,
        /// How.
        settled: Settled,
    },
    /// A launch of the job's workload started; it counts against the limits from now on.
    LaunchStarted {
        /// The job.
        job: JobId,
        /// The queue it counts against.
        queue: Option<String>,
        /// The pipeline it counts against.
        pipeline: String,
    },
    /// The workload was created (or already existed).
    LaunchSucceeded(JobId),
    /// The launch failed. With `retry`, the job is forgotten so the next poll decides it again;
    /// without, it is rejected.
    LaunchFailed {
        /// The job.
        job: JobId,
        /// Whether to try again on a later poll.
        retry: bool,
    },
    /// The job's workload is being removed because its Buildkite job was cancelled.
    CancelStarted(JobId),
    /// Removing the workload failed; it is in flight again and will be retried.
    CancelFailed(JobId),
    /// The job's workload ended, yet Buildkite still lists the job as scheduled: no agent
    /// acquired it (the agent died first, or refused it). It is rejected: Buildkite is told.
    NeverAcquired(JobId),
    /// Something happened to a workload.
    Workload(WorkloadEvent),
}

#[derive(Clone, Debug)]
struct Entry {
    status: JobStatus,
    queue: Option<String>,
    pipeline: Option<String>,
    /// The sweep (generation) that last listed the job as scheduled.
    seen: u64,
    /// Whether its workload is known not to exist (any more).
    gone: bool,
}

/// Counts of jobs occupying a slot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Counts {
    total: u32,
    by_queue: HashMap<String, u32>,
    by_pipeline: HashMap<String, u32>,
}

impl Counts {
    fn add(&mut self, entry: &Entry, delta: i8) {
        fn bump(n: &mut u32, delta: i8) {
            *n = if delta > 0 {
                *n + 1
            } else {
                n.saturating_sub(1)
            };
        }
        bump(&mut self.total, delta);
        for (key, map) in [
            (&entry.queue, &mut self.by_queue),
            (&entry.pipeline, &mut self.by_pipeline),
        ] {
            if let Some(key) = key {
                let n = map.entry(key.clone()).or_default();
                bump(n, delta);
                if *n == 0 {
                    map.remove(key);
                }
            }
        }
    }
}

/// The book-keeping. See the module docs.
#[derive(Clone, Debug, Default)]
pub struct Book {
    entries: HashMap<JobId, Entry>,
    counts: Counts,
    generation: u64,
    restored: bool,
    /// When each pipeline last got a launch, for round robin between pipelines.
    turns: HashMap<String, u64>,
    turn: u64,
}

impl Book {
    /// An empty book, waiting for [`WorkloadEvent::Restored`].
    pub fn new() -> Self {
        Book::default()
    }

    /// Whether the workloads in the cluster have been listed: until then the book does not
    /// know what is in flight, and nothing should be launched.
    pub fn is_restored(&self) -> bool {
        self.restored
    }

    /// What the book knows about `job`.
    pub fn status(&self, job: JobId) -> Option<JobStatus> {
        self.entries.get(&job).map(|e| e.status)
    }

    /// Whether `job` should be put to the policy: unknown, or deferred.
    pub fn should_decide(&self, job: JobId) -> bool {
        matches!(self.status(job), None | Some(JobStatus::Deferred))
    }

    /// Jobs occupying a slot.
    pub fn in_flight(&self) -> u32 {
        self.counts.total
    }

    /// Jobs of `queue` occupying a slot.
    pub fn in_flight_in_queue(&self, queue: &str) -> u32 {
        self.counts.by_queue.get(queue).copied().unwrap_or(0)
    }

    /// Jobs occupying a slot per queue: every queue with at least one, sorted by name.
    pub fn in_flight_by_queue(&self) -> Vec<(String, u32)> {
        let mut by_queue: Vec<(String, u32)> = self
            .counts
            .by_queue
            .iter()
            .map(|(queue, n)| (queue.clone(), *n))
            .collect();
        by_queue.sort();
        by_queue
    }

    /// Jobs of `pipeline` occupying a slot.
    pub fn in_flight_in_pipeline(&self, pipeline: &str) -> u32 {
        self.counts.by_pipeline.get(pipeline).copied().unwrap_or(0)
    }

    /// Jobs whose workload exists but has not started: the ones to remove if their Buildkite
    /// job is cancelled.
    pub fn not_started(&self) -> Vec<JobId> {
        let mut jobs: Vec<JobId> = self
            .entries
            .iter()
            .filter(|(_, e)| e.status == JobStatus::InFlight)
            .map(|(id, _)| *id)
            .collect();
        jobs.sort();
        jobs
    }

    /// How many jobs the book remembers.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the book remembers no job.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// When `pipeline` last got a launch (0 = never): lower goes first in round robin.
    pub fn last_turn(&self, pipeline: &str) -> u64 {
        self.turns.get(pipeline).copied().unwrap_or(0)
    }

    /// Takes `event` into account.
    pub fn apply(&mut self, event: BookEvent) {
        match event {
            BookEvent::Polled(jobs) => {
                self.generation += 1;
                self.listed(&jobs);
                self.sweep_completed();
            }
            BookEvent::SweepStarted => self.generation += 1,
            BookEvent::Listed(jobs) => self.listed(&jobs),
            BookEvent::SweepCompleted => self.sweep_completed(),
            BookEvent::Decided {
                job,
                pipeline,
                settled,
            } => {
                let status = match settled {
                    Settled::Deferred => JobStatus::Deferred,
                    Settled::Skipped => JobStatus::Skipped,
                    Settled::Rejected => JobStatus::Rejected,
                };
                let seen = self.generation;
                match self.entries.get(&job).map(|e| e.status) {
                    None => self.insert(job, status, None, Some(pipeline), seen),
                    Some(JobStatus::Deferred) => self.set(job, status),
                    Some(_) => {}
                }
            }
            BookEvent::LaunchStarted {
                job,
                queue,
                pipeline,
            } => {
                if !self.should_decide(job) {
                    return;
                }
                self.turn += 1;
                self.turns.insert(pipeline.clone(), self.turn);
                self.entries.remove(&job);
                self.insert(
                    job,
                    JobStatus::Launching,
                    queue,
                    Some(pipeline),
                    self.generation,
                );
            }
            BookEvent::LaunchSucceeded(job) => {
                if self.status(job) == Some(JobStatus::Launching) {
                    self.set(job, JobStatus::InFlight);
                }
            }
            BookEvent::LaunchFailed { job, retry } => {
                if self.status(job) == Some(JobStatus::Launching) {
                    if retry {
                        self.forget(job);
                    } else {
                        self.set(job, JobStatus::Rejected);
                        self.mark_gone(job);
                    }
                }
            }
            BookEvent::NeverAcquired(job) => {
                if self.status(job) == Some(JobStatus::Ended) {
                    self.set(job, JobStatus::Rejected);
                }
            }
            BookEvent::CancelStarted(job) => {
                if self.status(job) == Some(JobStatus::InFlight) {
                    self.set(job, JobStatus::Cancelling);
                }
            }
            BookEvent::CancelFailed(job) => {
                if self.status(job) == Some(JobStatus::Cancelling) {
                    self.set(job, JobStatus::InFlight);
                }
            }
            BookEvent::Workload(event) => self.workload(event),
        }
    }

    fn workload(&mut self, event: WorkloadEvent) {
        match event {
            WorkloadEvent::Restored(workloads) => self.restore(workloads),
            WorkloadEvent::Observed(workload) => self.observed(workload),
            WorkloadEvent::Started(job) => {
                if matches!(
                    self.status(job),
                    Some(JobStatus::Launching | JobStatus::InFlight)
                ) {
                    self.set(job, JobStatus::Running);
                }
            }
            WorkloadEvent::Succeeded(job)
            | WorkloadEvent::Failed(job)
            | WorkloadEvent::FailedToStart { job, .. }
            | WorkloadEvent::AgentLost { job, .. }
            | WorkloadEvent::Stopped { job, .. } => {
                if self.entries.contains_key(&job) {
                    self.set(job, JobStatus::Ended);
                }
            }
            WorkloadEvent::Gone(job) => {
                if self.entries.contains_key(&job) {
                    self.set(job, JobStatus::Ended);
                    self.mark_gone(job);
                }
            }
            WorkloadEvent::Waiting { .. } => {}
        }
    }

    fn observed(&mut self, workload: Workload) {
        let status = if workload.finished {
            JobStatus::Ended
        } else {
            JobStatus::InFlight
        };
        match self.status(workload.job) {
            // Ours in progress, or a job this replica did not launch: a workload exists, so
            // it takes a slot whoever created it.
            Some(
                JobStatus::Launching
                | JobStatus::Deferred
                | JobStatus::Skipped
                | JobStatus::Rejected,
            )
            | None => {
                let known = self.entries.get(&workload.job);
                let seen = known.map_or(self.generation, |e| e.seen);
                // What the launch recorded wins over what the workload's labels say.
                // A workload without a queue belongs to a job that named none: Buildkite's
                // `default` queue, which is what launches count it against.
                let queue = known
                    .and_then(|e| e.queue.clone())
                    .or(workload.queue)
                    .or_else(|| Some(crate::policy::DEFAULT_QUEUE.to_owned()));
                let pipeline = known.and_then(|e| e.pipeline.clone()).or(workload.pipeline);
                self.forget(workload.job);
                self.insert(workload.job, status, queue, pipeline, seen);
            }
            Some(_) if workload.finished => self.set(workload.job, JobStatus::Ended),
            Some(_) => {}
        }
    }

    fn restore(&mut self, workloads: Vec<Workload>) {
        self.restored = true;
        let present: HashMap<JobId, bool> = workloads.iter().map(|w| (w.job, w.finished)).collect();
        let listed_before: Vec<JobId> = self.entries.keys().copied().collect();
        for job in listed_before {
            if present.contains_key(&job) {
                continue;
            }
            let Some(status) = self.status(job) else {
                continue;
            };
            // Launches still in progress may not be listed yet; everything else that
            // needed a workload has lost it.
            if matches!(
                status,
                JobStatus::InFlight | JobStatus::Running | JobStatus::Cancelling | JobStatus::Ended
            ) {
                self.set(job, JobStatus::Ended);
                self.mark_gone(job);
            }
        }
        for workload in workloads {
            if let Some(entry) = self.entries.get_mut(&workload.job) {
                entry.gone = false;
            }
            match (self.status(workload.job), workload.finished) {
                (Some(JobStatus::Running | JobStatus::Cancelling), false) => {}
                (Some(JobStatus::Ended), false) => {
                    // Listed as not finished after we saw it end: trust the fresh list.
                    self.set(workload.job, JobStatus::InFlight);
                }
                _ => self.observed(workload),
            }
        }
    }

    fn listed(&mut self, jobs: &[JobId]) {
        let generation = self.generation;
        for job in jobs {
            if let Some(entry) = self.entries.get_mut(job) {
                entry.seen = generation;
            }
        }
    }

    fn sweep_completed(&mut self) {
        let generation = self.generation;
        self.entries.retain(|_, entry| {
            let settled = match entry.status {
                JobStatus::Deferred | JobStatus::Skipped | JobStatus::Rejected => true,
                JobStatus::Ended => entry.gone,
                _ => false,
            };
            !(settled && entry.seen < generation)
        });
        let pipelines: std::collections::HashSet<&str> = self
            .entries
            .values()
            .filter_map(|e| e.pipeline.as_deref())
            .collect();
        self.turns
            .retain(|pipeline, _| pipelines.contains(pipeline.as_str()));
    }

    fn insert(
        &mut self,
        job: JobId,
        status: JobStatus,
        queue: Option<String>,
        pipeline: Option<String>,
        seen: u64,
    ) {
        let entry = Entry {
            status,
            queue,
            pipeline,
            seen,
            gone: false,
        };
        if status.occupies_a_slot() {
            self.counts.add(&entry, 1);
        }
        self.entries.insert(job, entry);
    }

    fn set(&mut self, job: JobId, status: JobStatus) {
        let Some(entry) = self.entries.get_mut(&job) else {
            return;
        };
        let was = entry.status.occupies_a_slot();
        let will = status.occupies_a_slot();
        entry.status = status;
        if was != will {
            let entry = entry.clone();
            self.counts.add(&entry, if will { 1 } else { -1 });
        }
    }

    fn mark_gone(&mut self, job: JobId) {
        if let Some(entry) = self.entries.get_mut(&job) {
            entry.gone = true;
        }
    }

    fn forget(&mut self, job: JobId) {
        if let Some(entry) = self.entries.remove(&job)
            && entry.status.occupies_a_slot()
        {
            self.counts.add(&entry, -1);
        }
    }

    /// The counts recomputed from scratch; equal to the maintained ones (checked by tests).
    #[cfg(test)]
    pub(crate) fn recount(&self) -> (u32, HashMap<String, u32>, HashMap<String, u32>) {
        let mut counts = Counts::default();
        for entry in self.entries.values() {
            if entry.status.occupies_a_slot() {
                counts.add(entry, 1);
            }
        }
        (counts.total, counts.by_queue, counts.by_pipeline)
    }

    /// The maintained counts, to compare with [`Book::recount`].
    #[cfg(test)]
    pub(crate) fn counts(&self) -> (u32, HashMap<String, u32>, HashMap<String, u32>) {
        (
            self.counts.total,
            self.counts.by_queue.clone(),
            self.counts.by_pipeline.clone(),
        )
    }
}

#[cfg(test)]
#[path = "book_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "book_props.rs"]
mod props;
