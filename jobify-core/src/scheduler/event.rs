//! What the scheduler reports: one [`SchedulerEvent`] per thing that happened, carried out of
//! the state machine as [`Effect::Report`](super::Effect::Report) and handed by the
//! [`Dispatcher`](super::Dispatcher) to a [`SchedulerObserver`] (metrics, readiness, the
//! decision log in the binary).

use std::time::Duration;

use jiff::Timestamp;

use crate::decision::{Decision, Reason};
use crate::feedback::FeedbackError;
use crate::job::JobId;
use crate::jobifier::{CancelError, LaunchError, Launched};
use crate::monitor::MonitorError;

/// Something the scheduler did or learnt.
#[derive(Debug)]
pub enum SchedulerEvent {
    /// A page request to Buildkite finished: the number of scheduled jobs on the page, or the
    /// error.
    Polled(Result<usize, MonitorError>),
    /// A sweep through Buildkite's scheduled jobs ended.
    SweepEnded(SweepSummary),
    /// A poll listed a job this replica had not seen before: once per job uuid while
    /// Buildkite keeps listing it (jobs already known from their workload, e.g. after a
    /// restart, are not new). Reported before the job is decided.
    JobSeen {
        /// The job.
        job: JobId,
        /// Its queue, as limits count it ([`Limits::queue_key`](crate::Limits::queue_key)).
        queue: String,
    },
    /// A job was decided (after limits: `Defer` when a limit held it back). Each decision is
    /// reported once, and logged once, by the observer.
    Decided {
        /// The job.
        job: JobId,
        /// Its pipeline.
        pipeline: String,
        /// What was decided, and why.
        decision: Decision,
        /// Whether a freed slot let the job run between two polls (then `decision` is a
        /// `Run` of a job an earlier page deferred).
        slot_freed: bool,
    },
    /// A reservation request ([`Effect::Reserve`](super::Effect::Reserve)) came back:
    /// `reserved` jobs go on to launch, `taken` were not reserved for this controller
    /// (another has them, they are no longer scheduled, or the request failed) and do not.
    Reserved {
        /// Jobs reserved for this controller.
        reserved: usize,
        /// Jobs not reserved.
        taken: usize,
    },
    /// A launch finished, after `latency`.
    Launched {
        /// The job.
        job: JobId,
        /// When Buildkite scheduled it, if it said.
        scheduled_at: Option<Timestamp>,
        /// How it went.
        result: Result<Launched, LaunchError>,
        /// How long the launch took.
        latency: Duration,
    },
    /// A workload can never start (or no agent acquired the job); Buildkite is being told
    /// `reason`.
    FailedToStart {
        /// The job.
        job: JobId,
        /// Why.
        reason: Reason,
    },
    /// The agent of a running job was lost: its pod was disrupted or vanished (see
    /// [`WorkloadEvent::AgentLost`](crate::WorkloadEvent::AgentLost)).
    AgentLost {
        /// The job.
        job: JobId,
        /// Why.
        reason: Reason,
    },
    /// A workload whose containers outlived its agent was stopped (see
    /// [`WorkloadEvent::Stopped`](crate::WorkloadEvent::Stopped)).
    WorkloadStopped {
        /// The job.
        job: JobId,
        /// Why.
        reason: Reason,
    },
    /// A workload's pod has not started, and what it waits for changed (see
    /// [`WorkloadEvent::Waiting`](crate::WorkloadEvent::Waiting)).
    PodWaiting {
        /// The job.
        job: JobId,
        /// What the pod waits for.
        detail: String,
    },
    /// Telling Buildkite about a rejected or failed job finished.
    Told {
        /// The job.
        job: JobId,
        /// How it went.
        result: Result<(), FeedbackError>,
    },
    /// Telling Buildkite about a job failed, and this is what happens to the message.
    FeedbackRetry {
        /// The job.
        job: JobId,
        /// What the message reports.
        report: FeedbackReport,
        /// What becomes of it.
        retry: FeedbackRetry,
    },
    /// Removing the workload of a cancelled job finished.
    Cancelled {
        /// The job.
        job: JobId,
        /// How it went.
        result: Result<(), CancelError>,
    },
    /// The number of jobs in flight changed.
    InFlight(u32),
    /// The jobs in flight per queue changed: every queue with at least one job in flight,
    /// sorted by name. A queue missing has none in flight.
    InFlightByQueue(Vec<(String, u32)>),
    /// This replica became the leader (`true`) or a standby (`false`); also reported once at
    /// the start.
    Leadership(bool),
}

/// Receives the scheduler's events. Synchronous and cheap: called on the scheduler's task,
/// between two steps of the state machine.
pub trait SchedulerObserver: Send + Sync {
    /// `event` happened.
    fn on_event(&self, event: &SchedulerEvent);
}

/// Observes nothing.
impl SchedulerObserver for () {
    fn on_event(&self, _: &SchedulerEvent) {}
}

/// Both observe, the first first.
impl<A: SchedulerObserver, B: SchedulerObserver> SchedulerObserver for (A, B) {
    fn on_event(&self, event: &SchedulerEvent) {
        self.0.on_event(event);
        self.1.on_event(event);
    }
}

/// Observes when there is one.
impl<O: SchedulerObserver> SchedulerObserver for Option<O> {
    fn on_event(&self, event: &SchedulerEvent) {
        if let Some(observer) = self {
            observer.on_event(event);
        }
    }
}

impl<O: SchedulerObserver + ?Sized> SchedulerObserver for std::sync::Arc<O> {
    fn on_event(&self, event: &SchedulerEvent) {
        (**self).on_event(event);
    }
}

/// How a sweep ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SweepEnd {
    /// It read every page, up to the newest scheduled job.
    Completed,
    /// A limit held jobs back and it read its lookahead pages
    /// ([`SchedulerConfig::lookahead_pages`](super::SchedulerConfig::lookahead_pages)).
    StoppedEarly,
    /// A page request failed.
    Failed,
    /// This replica stopped leading.
    Abandoned,
}

impl SweepEnd {
    /// A label for metrics and logs: `completed`, `stopped_early`, `failed` or `abandoned`.
    pub fn kind(self) -> &'static str {
        match self {
            SweepEnd::Completed => "completed",
            SweepEnd::StoppedEarly => "stopped_early",
            SweepEnd::Failed => "failed",
            SweepEnd::Abandoned => "abandoned",
        }
    }
}

/// A sweep that ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SweepSummary {
    /// How it ended.
    pub end: SweepEnd,
    /// Pages it planned.
    pub pages: usize,
    /// Jobs those pages listed (a job on two pages counts once).
    pub jobs: usize,
    /// From its first page request to its end.
    pub duration: Duration,
}

/// What a message to Buildkite reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FeedbackReport {
    /// jobify refused the job (the policy, or a workload the API server refused as invalid).
    Rejected,
    /// The job's workload can never start.
    FailedToStart,
}

impl FeedbackReport {
    /// A label for metrics and logs: `rejected` or `failed_to_start`.
    pub fn kind(self) -> &'static str {
        match self {
            FeedbackReport::Rejected => "rejected",
            FeedbackReport::FailedToStart => "failed_to_start",
        }
    }
}

/// What became of a failed attempt to tell Buildkite about a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeedbackRetry {
    /// Attempt number `attempt` (2 for the first retry) is due after `after`.
    Scheduled {
        /// The attempt that will be made.
        attempt: u32,
        /// How long until it is made.
        after: Duration,
    },
    /// `attempts` attempts failed; the message is given up on.
    GivenUp {
        /// How many attempts were made.
        attempts: u32,
    },
    /// Too many messages are waiting for a retry already; this one is dropped.
    Dropped,
}

impl FeedbackRetry {
    /// A label for metrics and logs: `scheduled`, `given_up` or `dropped`.
    pub fn kind(self) -> &'static str {
        match self {
            FeedbackRetry::Scheduled { .. } => "scheduled",
            FeedbackRetry::GivenUp { .. } => "given_up",
            FeedbackRetry::Dropped => "dropped",
        }
    }
}
