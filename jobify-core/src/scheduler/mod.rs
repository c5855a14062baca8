//! The scheduler: the loop that joins the [`Monitor`](crate::Monitor), the policy, the
//! [`Book`](crate::Book), the [`Jobifier`](crate::Jobifier) and the
//! [`Feedback`](crate::Feedback) port.
//!
//! ```text
//!   every poll_interval (leader only), page by page   Jobifier::events()
//!   Monitor::scheduled ──▶ plan_page ───launch──▶ Jobifier::launch      │
//!                            │  (policy, limits,    │ Invalid            ▼
//!                            │   order, book)       ▼               Book::apply ──FailedToStart──▶ Feedback
//!                            └──reject──────────▶ Feedback::fail_job
//!   every cancel_check_interval: Monitor::states(not started) ──cancelled──▶ Jobifier::cancel
//! ```
//!
//! Each poll is a *sweep* through Buildkite's scheduled jobs, oldest first, one page at a
//! time: a page is planned and its launches start as soon as it arrives, while the next page
//! is fetched. The sweep reads on while the launch queue holds less than two pages and nothing
//! was held back by a limit; once something was, it reads at most
//! [`SchedulerConfig::lookahead_pages`] pages of that list (one queue's jobs, say), then
//! skips to the next list, or stops when there is none. A sweep is due one
//! `poll_interval` after the previous one started, or as soon as it ends if it took longer.
//!
//! Jobs a limit held back in the current sweep wait in memory: when a slot frees (a workload
//! ends, a launch fails) they are re-planned at once against the limits and the launch order
//! instead of waiting for the next sweep. A report Buildkite did not take (a rejection, or a
//! workload that can never start) is retried with backoff from a small bounded queue, a
//! bounded number of times (see [`FeedbackRetry`]), with the same [`Backoff`] rule as failed
//! polls; a rejected job stays rejected meanwhile, so polls do not decide it again.
//!
//! The scheduler is a synchronous state machine, [`Scheduler`], in the manner of the
//! book-keeping it drives: [`Scheduler::handle`] takes an [`Input`] (a page arrived or could
//! not be fetched, a launch or a cancellation finished, a workload event, a feedback or
//! state-check answer, a tick, a leadership change) together with the current time, and
//! returns [`Effect`]s as values (fetch a page, launch, cancel, tell Buildkite, check job
//! states, report a [`SchedulerEvent`]); [`Scheduler::next_wake`] says when it next wants a
//! tick. It reads no clock and calls no port, so its tests are tables of inputs and
//! effects. [`Dispatcher`] is the thin async executor that carries the effects out through
//! the [`Monitor`](crate::Monitor), [`Jobifier`](crate::Jobifier) and
//! [`Feedback`](crate::Feedback) ports, feeds the answers back, and hands the events to a
//! [`SchedulerObserver`]. Its time comes from tokio (tests pause it) and shutdown is an
//! input future.
//!
//! ```text
//!   ports ──answers, WorkloadEvents──▶ Input ──▶ Scheduler::handle(now, input) ──▶ [Effect]
//!     ▲          leadership, Tick ──────┘          (sync: policy, limits,          │
//!     │                                             book, sweep, retries)          │
//!     └──────────── Dispatcher performs FetchPage / Launch / Cancel / Tell / ──────┘
//!                   CheckStates; Report(SchedulerEvent) ──▶ SchedulerObserver
//! ```

mod backoff;
mod claims;
mod dispatcher;
mod effect;
mod event;
mod machine;
mod outcomes;
mod retry;
mod sweep;

#[cfg(test)]
mod tests;

use std::time::{Duration, Instant};

pub use backoff::Backoff;
pub use dispatcher::Dispatcher;
pub use effect::{Effect, Input};
pub use event::{
    FeedbackReport, FeedbackRetry, SchedulerEvent, SchedulerObserver, SweepEnd, SweepSummary,
};
pub use machine::Scheduler;
pub use retry::FeedbackMessage;

/// Why the scheduler stopped on its own.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    /// The backend's workload event stream ended, so the book can no longer know what is in
    /// flight. The backend has shut down; restart the process.
    #[error("the workload event stream ended; the backend has stopped")]
    EventsEnded,
}

/// How the scheduler paces itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchedulerConfig {
    /// How often to ask Buildkite for scheduled jobs. Default 2 s.
    pub poll_interval: Duration,
    /// How often to check whether jobs with a workload that has not started were cancelled.
    /// Default 15 s.
    pub cancel_check_interval: Duration,
    /// How many launches may be in progress at once. Default 10.
    pub launch_concurrency: usize,
    /// Once a limit holds a job back, how many pages of that list (see
    /// [`ScheduledPage::next_list`](crate::ScheduledPage::next_list)) a sweep reads before
    /// it skips to the next list, or stops after the last: the window in which a job of
    /// higher priority can still claim the next free slot. While nothing is held back a
    /// sweep reads on to the newest scheduled job. Default 5.
    pub lookahead_pages: usize,
    /// How long a failing poll waits at most before the next one (polls back off
    /// exponentially from `poll_interval` on errors). Default 60 s.
    pub max_poll_backoff: Duration,
    /// How long shutdown waits for operations in progress. Default 10 s.
    pub shutdown_grace: Duration,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            poll_interval: Duration::from_secs(2),
            cancel_check_interval: Duration::from_secs(15),
            launch_concurrency: 10,
            lookahead_pages: 5,
            max_poll_backoff: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// `now + wait`, or about thirty years from now when that overflows: waits come from the
/// configuration and from a [`Monitor`]'s rate-limit answers, and a huge one must mean "not
/// soon", never a panic.
fn deadline(now: Instant, wait: Duration) -> Instant {
    const FAR_FUTURE: Duration = Duration::from_secs(86_400 * 365 * 30);
    now.checked_add(wait)
        .or_else(|| now.checked_add(FAR_FUTURE))
        .unwrap_or(now)
}
