//! The port through which the scheduler learns what Buildkite has for us.
//!
//! Buildkite may hold thousands of scheduled jobs, so the scheduler reads them a page at a
//! time, oldest first, and plans each page as it arrives: a *sweep* starts from the oldest
//! page (`from` is `None`) and follows each page's [`ScheduledPage::next`] until a page has
//! none. The scheduler may stop a sweep early (nothing more could launch) and start the next
//! from the oldest page again, so a token is never assumed to stay valid for long. A sweep
//! may be made of several lists (one per queue, say): each page says where the next list
//! starts, so the scheduler can skip the rest of a list whose jobs cannot launch.

use async_trait::async_trait;
use secrecy::SecretString;

use crate::job::{JobId, JobState, ScheduledJob};

/// Why a poll of Buildkite failed. The scheduler logs it, counts it and polls again later;
/// one failed poll loses nothing.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    /// Buildkite asked us to slow down; poll again no sooner than `retry_after`.
    #[error("rate limited by Buildkite; retry in {retry_after:?}")]
    RateLimited {
        /// How long to wait.
        retry_after: std::time::Duration,
    },
    /// The credentials were refused: nothing will work until the operator fixes them.
    #[error("Buildkite refused the credentials: {0}")]
    Unauthorized(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Anything else (network, server error, undecodable response): retry.
    #[error("polling Buildkite failed: {0}")]
    Transient(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Where the next page of a sweep starts. Opaque to the scheduler: the [`Monitor`] that
/// returned it makes and reads it (e.g. a queue and a GraphQL cursor).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PageToken(String);

impl PageToken {
    /// A token holding `raw`, for a [`Monitor`] implementation to read back.
    pub fn new(raw: impl Into<String>) -> Self {
        PageToken(raw.into())
    }

    /// What the monitor put in.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One page of the jobs currently scheduled, oldest first.
#[derive(Clone, Debug, Default)]
pub struct ScheduledPage {
    /// The jobs. Jobs for other queues may be included; the policy skips them. A job may
    /// appear on two pages of a sweep (new jobs shift the pages); it is decided once.
    pub jobs: Vec<ScheduledJob>,
    /// Where the next (newer) page starts; `None` when this page ends the sweep.
    pub next: Option<PageToken>,
    /// Where the sweep's next list starts (a monitor may sweep several lists one after the
    /// other, e.g. one per queue); `None` when this page's list is the last. When a limit
    /// holds this list's jobs back, the scheduler skips to it rather than end the sweep, so
    /// a full queue does not keep the next queue's jobs from being read. When `next` is the
    /// next list's first page, the two are equal.
    pub next_list: Option<PageToken>,
}

impl ScheduledPage {
    /// A page that ends its sweep: all of `jobs`, nothing after them.
    pub fn last(jobs: Vec<ScheduledJob>) -> Self {
        ScheduledPage {
            jobs,
            next: None,
            next_list: None,
        }
    }
}

/// A job the source reserved for this controller ([`Monitor::reserve`]): no other
/// controller is offered it while the reservation lasts.
#[derive(Debug)]
pub struct Claim {
    /// The job.
    pub job: JobId,
    /// An agent token valid for this job alone, when the source issues them (the Stacks
    /// API's job acquisition tokens): the job's agent registers with it instead of the
    /// cluster's agent token, so no job pod ever holds a credential for other jobs.
    pub agent_token: Option<SecretString>,
}

impl Claim {
    /// A claim of `job` that comes with no token of its own.
    pub fn without_token(job: JobId) -> Self {
        Claim {
            job,
            agent_token: None,
        }
    }
}

/// Produces what Buildkite currently has for us.
#[cfg_attr(any(test, feature = "testing"), mockall::automock)]
#[async_trait]
pub trait Monitor: Send + Sync {
    /// One page of the jobs currently `SCHEDULED` that this controller may be asked to run:
    /// the oldest page when `from` is `None`, else the page a previous page's
    /// [`next`](ScheduledPage::next) pointed at.
    async fn scheduled(&self, from: Option<PageToken>) -> Result<ScheduledPage, MonitorError>;

    /// The current Buildkite state of jobs we launched workloads for, so the scheduler can
    /// remove workloads whose job was cancelled. Jobs Buildkite no longer knows are left out.
    async fn states(&self, jobs: &[JobId]) -> Result<Vec<(JobId, JobState)>, MonitorError>;

    /// Whether jobs must be [reserved](Monitor::reserve) before they launch. A source that
    /// reserves (the Stacks API) hides a reserved job from every other controller; one that
    /// does not (GraphQL) leaves the agent's acquire as the only arbiter. Default `false`.
    fn reserves(&self) -> bool {
        false
    }

    /// Reserves `jobs`, which are about to launch, for this controller. Returns a claim for
    /// each job reserved; a job left out was taken by another controller or is no longer
    /// scheduled, and must not launch. Only called when [`Monitor::reserves`] says so; the
    /// default claims every job, without a token.
    async fn reserve(&self, jobs: &[JobId]) -> Result<Vec<Claim>, MonitorError> {
        Ok(jobs.iter().copied().map(Claim::without_token).collect())
    }
}

/// The jobs of one sweep read to the end, or to `max_pages` pages, whichever comes first;
/// what a one-off look (`jobify plan`, a test) wants rather than the scheduler's page-by-page
/// planning. Jobs listed on two pages are kept once.
#[derive(Clone, Debug, Default)]
pub struct Sweep {
    /// The jobs, oldest first.
    pub jobs: Vec<ScheduledJob>,
    /// Whether the sweep reached the newest job (`false`: `max_pages` cut it short).
    pub complete: bool,
    /// Pages read.
    pub pages: usize,
}

impl Sweep {
    /// Reads pages from `monitor`, oldest first, until a page ends the sweep or `max_pages`
    /// (at least 1) were read.
    pub async fn read<M: Monitor + ?Sized>(
        monitor: &M,
        max_pages: usize,
    ) -> Result<Sweep, MonitorError> {
        let mut sweep = Sweep::default();
        let mut seen = std::collections::HashSet::new();
        let mut from = None;
        while sweep.pages < max_pages.max(1) {
            let page = monitor.scheduled(from).await?;
            sweep.pages += 1;
            sweep
                .jobs
                .extend(page.jobs.into_iter().filter(|job| seen.insert(job.id)));
            match page.next {
                Some(next) => from = Some(next),
                None => {
                    sweep.complete = true;
                    break;
                }
            }
        }
        Ok(sweep)
    }
}

#[async_trait]
impl<T: Monitor + ?Sized> Monitor for std::sync::Arc<T> {
    async fn scheduled(&self, from: Option<PageToken>) -> Result<ScheduledPage, MonitorError> {
        (**self).scheduled(from).await
    }

    async fn states(&self, jobs: &[JobId]) -> Result<Vec<(JobId, JobState)>, MonitorError> {
        (**self).states(jobs).await
    }

    fn reserves(&self) -> bool {
        (**self).reserves()
    }

    async fn reserve(&self, jobs: &[JobId]) -> Result<Vec<Claim>, MonitorError> {
        (**self).reserve(jobs).await
    }
}
