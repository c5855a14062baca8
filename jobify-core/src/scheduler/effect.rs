//! What goes into the state machine ([`Input`]) and what comes out ([`Effect`]). The
//! [`Scheduler`](super::Scheduler) never calls out: the [`Dispatcher`](super::Dispatcher)
//! performs each effect through the ports and feeds the result back as an input.

use std::time::Duration;

use secrecy::SecretString;

use super::SchedulerEvent;
use super::retry::FeedbackMessage;
use crate::decision::Template;
use crate::feedback::FeedbackError;
use crate::job::{JobId, JobState, ScheduledJob};
use crate::jobifier::{CancelError, LaunchError, Launched};
use crate::monitor::{Claim, MonitorError, PageToken, ScheduledPage};
use crate::workload::WorkloadEvent;

/// Something that happened, for [`Scheduler::handle`](super::Scheduler::handle).
#[derive(Debug)]
pub enum Input {
    /// Time passed: whatever is due by now (a sweep, a check, a retry) starts. See
    /// [`Scheduler::next_wake`](super::Scheduler::next_wake).
    Tick,
    /// This replica became the leader (`true`) or a standby (`false`). The first one tells
    /// the scheduler where it starts.
    Leadership(bool),
    /// The page asked for by [`Effect::FetchPage`] arrived, or could not be fetched.
    Page(Result<ScheduledPage, MonitorError>),
    /// An [`Effect::Reserve`] finished.
    Reserved {
        /// The jobs asked for, as the effect carried them.
        jobs: Vec<JobId>,
        /// The claims of those reserved, or why none could be.
        result: Result<Vec<Claim>, MonitorError>,
    },
    /// An [`Effect::Launch`] finished after `latency`.
    Launched {
        /// The job, as the effect carried it.
        job: Box<ScheduledJob>,
        /// How it went.
        result: Result<Launched, LaunchError>,
        /// How long it took.
        latency: Duration,
    },
    /// The workload backend reported an event.
    Workload(WorkloadEvent),
    /// An [`Effect::Tell`] finished.
    Told {
        /// The message, as the effect carried it.
        message: FeedbackMessage,
        /// How it went.
        result: Result<(), FeedbackError>,
    },
    /// An [`Effect::CheckStates`] finished.
    States(Result<Vec<(JobId, JobState)>, MonitorError>),
    /// An [`Effect::Cancel`] finished.
    Cancelled {
        /// The job.
        job: JobId,
        /// How it went.
        result: Result<(), CancelError>,
    },
}

/// Something the scheduler wants done. I/O effects answer with the input named on each.
#[derive(Debug)]
#[must_use = "an effect does nothing until the executor carries it out"]
pub enum Effect {
    /// Ask Buildkite for a page of scheduled jobs (the oldest when `None`); answer with
    /// [`Input::Page`].
    FetchPage(Option<PageToken>),
    /// Reserve these jobs, which are about to launch, for this controller (only for a
    /// source that [reserves](crate::Monitor::reserves)); answer with [`Input::Reserved`].
    Reserve(Vec<JobId>),
    /// Create the workload of `job` from `template`; answer with [`Input::Launched`].
    Launch {
        /// The job.
        job: Box<ScheduledJob>,
        /// The pod template the policy chose.
        template: Template,
        /// The token the source issued for this job alone, when it issues them: the
        /// workload's agent registers with it.
        agent_token: Option<SecretString>,
    },
    /// Remove the workload of a job cancelled in Buildkite; answer with
    /// [`Input::Cancelled`].
    Cancel(JobId),
    /// Tell Buildkite why jobify will not run a job; answer with [`Input::Told`].
    Tell(FeedbackMessage),
    /// Ask Buildkite for the states of these jobs; answer with [`Input::States`].
    CheckStates(Vec<JobId>),
    /// Hand an event to the observer; nothing to answer.
    Report(SchedulerEvent),
}
