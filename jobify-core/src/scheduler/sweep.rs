//! Sweeps: a poll reads Buildkite's scheduled jobs page by page, oldest first, and plans each
//! page as it arrives ([`Run::on_page`]); [`Run::continue_sweep`] decides when to fetch the
//! next page and when to stop (see the [module docs](super)).

use std::collections::HashSet;

use tokio::time::Instant;

use super::state::{Done, Run};
use super::{SchedulerObserver, SweepEnd, SweepSummary, deadline};
use crate::book::BookEvent;
use crate::feedback::Feedback;
use crate::job::JobId;
use crate::jobifier::Jobifier;
use crate::monitor::{Monitor, MonitorError, PageToken, ScheduledPage};
use crate::plan::plan_page;
use crate::policy::Policy;

/// The sweep in progress: how far it got and whether it should go on.
#[derive(Debug)]
pub(super) struct Sweep {
    /// Where the next page starts.
    next: Option<PageToken>,
    /// Where the next list starts, to skip to when this one's jobs cannot launch.
    next_list: Option<PageToken>,
    /// Pages planned so far.
    pages: usize,
    /// Pages planned of the current list.
    list_pages: usize,
    /// Whether the rest of a list was skipped: the sweep cannot complete then.
    cut: bool,
    /// Jobs the last page listed: the launch queue must drain below twice this before the
    /// next page is fetched, so at most about three pages of jobs wait in memory.
    last_page: usize,
    /// Whether a limit held a job of the current list back.
    held_back: bool,
    /// The ids this sweep listed so far, to tell jobs seen for the first time.
    listed: HashSet<JobId>,
    /// When its first page was asked for.
    started: Instant,
}

impl<M, J, F, P, O> Run<'_, M, J, F, P, O>
where
    M: Monitor,
    J: Jobifier,
    F: Feedback,
    P: Policy,
    O: SchedulerObserver,
{
    /// Starts a sweep from the oldest page.
    pub(super) fn start_poll(&mut self) {
        // Sweeps are due an interval after the previous one *started*: counting from its end
        // would stretch the period by the sweep's own duration (many pages, a paced request),
        // and a job's wait for the next sweep with it.
        self.next_poll = deadline(Instant::now(), self.config.poll_interval);
        // What waited was decided against an older list; this sweep lists it again.
        self.waiting.clear();
        self.apply(BookEvent::SweepStarted);
        self.sweep = Some(Sweep {
            next: None,
            next_list: None,
            pages: 0,
            list_pages: 0,
            cut: false,
            last_page: 0,
            held_back: false,
            listed: HashSet::new(),
            started: Instant::now(),
        });
        self.fetch(None);
    }

    fn fetch(&mut self, from: Option<PageToken>) {
        self.polling = true;
        let monitor = self.monitor;
        self.ops.push(Box::pin(async move {
            Done::Polled(monitor.scheduled(from).await)
        }));
    }

    /// Fetches the next page of the sweep in progress if it should go on and the launch
    /// queue has room. Once it has read far enough past a job a limit held back, it skips
    /// to the next list, or ends the sweep early if there is none.
    pub(super) fn continue_sweep(&mut self) {
        if !self.leader || self.polling {
            return;
        }
        let Some(sweep) = &mut self.sweep else {
            return;
        };
        if sweep.held_back && sweep.list_pages >= self.config.lookahead_pages.max(1) {
            let Some(next_list) = sweep.next_list.take() else {
                tracing::debug!(
                    pages = sweep.pages,
                    waiting = self.waiting.len(),
                    "a limit holds jobs back; ending the sweep early"
                );
                self.end_sweep(SweepEnd::StoppedEarly);
                return;
            };
            tracing::debug!(
                pages = sweep.list_pages,
                "a limit holds this list's jobs back; skipping to the next list"
            );
            sweep.cut = true;
            sweep.next = Some(next_list);
            sweep.list_pages = 0;
            sweep.held_back = false;
        }
        // Two pages of headroom: the next page is fetched while the launches of the last two
        // drain, so a slow page answer does not leave the launch slots idle.
        if self.queued.len() >= sweep.last_page.max(1).saturating_mul(2) {
            return;
        }
        let next = sweep.next.take();
        self.fetch(next);
    }

    /// The sweep in progress ends; a completed one forgets the settled jobs it did not list.
    pub(super) fn end_sweep(&mut self, end: SweepEnd) {
        let Some(sweep) = self.sweep.take() else {
            return;
        };
        // A sweep that skipped part of a list did not list everything: it forgets nothing.
        let end = match end {
            SweepEnd::Completed if sweep.cut => SweepEnd::StoppedEarly,
            end => end,
        };
        let summary = SweepSummary {
            end,
            pages: sweep.pages,
            jobs: sweep.listed.len(),
            duration: sweep.started.elapsed(),
        };
        self.listed = sweep.listed;
        tracing::debug!(end = end.kind(), pages = summary.pages, jobs = summary.jobs, duration = ?summary.duration, "sweep ended");
        self.observer.on_sweep(&summary);
        if end == SweepEnd::Completed {
            self.apply(BookEvent::SweepCompleted);
        }
    }

    pub(super) fn on_page(&mut self, result: Result<ScheduledPage, MonitorError>) {
        self.polling = false;
        let now = Instant::now();
        match result {
            Ok(page) => {
                self.observer.on_poll(Ok(page.jobs.len()));
                self.poll_failures = 0;
                // A page of a sweep abandoned on losing leadership is stale.
                if !self.leader || self.sweep.is_none() {
                    return;
                }
                let listed_before = &self.listed;
                let book = &self.book;
                let observer = self.observer;
                let mut jobs = page.jobs;
                let page_len = jobs.len();
                if let Some(sweep) = &mut self.sweep {
                    // Pages may overlap: a job listed earlier in this sweep was planned then.
                    jobs.retain(|job| sweep.listed.insert(job.id));
                    for job in &jobs {
                        if !listed_before.contains(&job.id) && book.status(job.id).is_none() {
                            observer.on_job_seen(job);
                        }
                    }
                    sweep.pages += 1;
                    sweep.list_pages += 1;
                    sweep.last_page = page_len;
                    sweep.next = page.next;
                    sweep.next_list = page.next_list;
                }
                let ended: Vec<(JobId, String)> = jobs
                    .iter()
                    .filter(|job| self.ended_at.contains_key(&job.id))
                    .map(|job| (job.id, job.graphql_id.clone()))
                    .collect();
                let plan = plan_page(
                    &mut self.book,
                    self.policy,
                    self.limits,
                    jobs,
                    |job, decision| {
                        tracing::debug!(job = %job.id, pipeline = %job.pipeline, decision = decision.kind(), code = %decision.reason().code, "decided");
                        observer.on_decision(job, decision);
                    },
                );
                let held_back = !plan.waiting.is_empty();
                let complete = self.sweep.as_mut().is_some_and(|sweep| {
                    sweep.held_back |= held_back;
                    // This list is done and the next begins: its lookahead starts afresh.
                    if sweep.next.is_some() && sweep.next == sweep.next_list {
                        sweep.list_pages = 0;
                        sweep.held_back = false;
                    }
                    sweep.next.is_none()
                });
                self.carry_out(plan);
                self.never_acquired(ended, now);
                if complete {
                    self.end_sweep(SweepEnd::Completed);
                }
                self.book_changed();
            }
            Err(err) => {
                self.observer.on_poll(Err(&err));
                self.end_sweep(SweepEnd::Failed);
                // What waited is as old as the last sweep now: let the next sweep decide it.
                self.waiting.clear();
                self.poll_failures = self.poll_failures.saturating_add(1);
                let backoff = self
                    .config
                    .poll_interval
                    .saturating_mul(2u32.saturating_pow(self.poll_failures.min(16)))
                    .min(self.config.max_poll_backoff.max(self.config.poll_interval));
                let wait = match &err {
                    MonitorError::RateLimited { retry_after } => backoff.max(*retry_after),
                    MonitorError::Unauthorized(_) => {
                        tracing::error!(error = %err, "Buildkite refused the credentials");
                        backoff
                    }
                    MonitorError::Transient(_) => {
                        tracing::warn!(error = %err, "polling Buildkite failed");
                        backoff
                    }
                };
                self.next_poll = deadline(now, wait);
            }
        }
    }
}
