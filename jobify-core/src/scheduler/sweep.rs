//! Sweeps: a poll reads Buildkite's scheduled jobs page by page, oldest first, and plans each
//! page as it arrives ([`Scheduler::on_page`]); [`Scheduler::continue_sweep`] decides when to
//! fetch the next page and when to stop (see the [module docs](super)).

use std::collections::HashSet;
use std::time::Instant;

use super::backoff::Backoff;
use super::machine::Scheduler;
use super::{Effect, SchedulerEvent, SweepEnd, SweepSummary, deadline};
use crate::book::BookEvent;
use crate::job::JobId;
use crate::limits::Limits;
use crate::monitor::{MonitorError, PageToken, ScheduledPage};
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

impl<P: Policy> Scheduler<P> {
    /// Starts a sweep from the oldest page.
    pub(super) fn start_sweep(&mut self, now: Instant) {
        // Sweeps are due an interval after the previous one *started*: counting from its end
        // would stretch the period by the sweep's own duration (many pages, a paced request),
        // and a job's wait for the next sweep with it.
        self.polls.next = deadline(now, self.config.poll_interval);
        // What waited was decided against an older list; this sweep lists it again.
        self.waiting.clear();
        self.apply(BookEvent::SweepStarted);
        self.polls.sweep = Some(Sweep {
            next: None,
            next_list: None,
            pages: 0,
            list_pages: 0,
            cut: false,
            last_page: 0,
            held_back: false,
            listed: HashSet::new(),
            started: now,
        });
        self.fetch(None);
    }

    fn fetch(&mut self, from: Option<PageToken>) {
        self.polls.fetching = true;
        self.effects.push(Effect::FetchPage(from));
    }

    /// Fetches the next page of the sweep in progress if it should go on and the launch
    /// queue has room. Once it has read far enough past a job a limit held back, it skips
    /// to the next list, or ends the sweep early if there is none.
    pub(super) fn continue_sweep(&mut self, now: Instant) {
        if !self.is_leader() || self.polls.fetching {
            return;
        }
        let queued = self.queued_launches();
        let lookahead = self.config.lookahead_pages.max(1);
        let Some(sweep) = &mut self.polls.sweep else {
            return;
        };
        if sweep.held_back && sweep.list_pages >= lookahead {
            let Some(next_list) = sweep.next_list.take() else {
                tracing::debug!(
                    pages = sweep.pages,
                    waiting = self.waiting.len(),
                    "a limit holds jobs back; ending the sweep early"
                );
                self.end_sweep(SweepEnd::StoppedEarly, now);
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
        if queued >= sweep.last_page.max(1).saturating_mul(2) {
            return;
        }
        let next = sweep.next.take();
        self.fetch(next);
    }

    /// The sweep in progress ends at `now`; a completed one forgets the settled jobs it did
    /// not list.
    pub(super) fn end_sweep(&mut self, end: SweepEnd, now: Instant) {
        let Some(sweep) = self.polls.sweep.take() else {
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
            duration: now.saturating_duration_since(sweep.started),
        };
        self.polls.listed = sweep.listed;
        tracing::debug!(end = end.kind(), pages = summary.pages, jobs = summary.jobs, duration = ?summary.duration, "sweep ended");
        self.report(SchedulerEvent::SweepEnded(summary));
        if end == SweepEnd::Completed {
            self.apply(BookEvent::SweepCompleted);
        }
    }

    pub(super) fn on_page(&mut self, result: Result<ScheduledPage, MonitorError>, now: Instant) {
        self.polls.fetching = false;
        match result {
            Ok(page) => {
                self.report(SchedulerEvent::Polled(Ok(page.jobs.len())));
                self.polls.failures = 0;
                // A page of a sweep abandoned on losing leadership is stale.
                if !self.is_leader() || self.polls.sweep.is_none() {
                    return;
                }
                self.plan(page, now);
            }
            Err(err) => {
                self.polls.failures = self.polls.failures.saturating_add(1);
                let backoff = Backoff::new(
                    self.config.poll_interval.saturating_mul(2),
                    self.config.max_poll_backoff.max(self.config.poll_interval),
                )
                .after(self.polls.failures);
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
                self.report(SchedulerEvent::Polled(Err(err)));
                self.end_sweep(SweepEnd::Failed, now);
                // What waited is as old as the last sweep now: let the next sweep decide it.
                self.waiting.clear();
                self.polls.next = deadline(now, wait);
            }
        }
    }

    /// Plans a page of the sweep in progress.
    fn plan(&mut self, page: ScheduledPage, now: Instant) {
        let mut jobs = page.jobs;
        let page_len = jobs.len();
        if let Some(sweep) = &mut self.polls.sweep {
            // Pages may overlap: a job listed earlier in this sweep was planned then.
            jobs.retain(|job| sweep.listed.insert(job.id));
            for job in &jobs {
                if !self.polls.listed.contains(&job.id) && self.book.status(job.id).is_none() {
                    self.effects.push(Effect::Report(SchedulerEvent::JobSeen {
                        job: job.id,
                        queue: Limits::queue_key(job).to_owned(),
                    }));
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
            .map(|job| (job.id, job.source_key.clone()))
            .collect();
        let effects = &mut self.effects;
        let plan = plan_page(
            &mut self.book,
            &self.policy,
            &self.limits,
            jobs,
            |job, decision| {
                effects.push(Effect::Report(SchedulerEvent::Decided {
                    job: job.id,
                    pipeline: job.pipeline.clone(),
                    decision: decision.clone(),
                    slot_freed: false,
                }));
            },
        );
        let held_back = !plan.waiting.is_empty();
        let complete = self.polls.sweep.as_mut().is_some_and(|sweep| {
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
            self.end_sweep(SweepEnd::Completed, now);
        }
        self.book_changed();
    }
}
