//! Reservations, for a job source that [reserves](crate::Monitor::reserves) (the Stacks API):
//! a decided launch is reserved for this controller before it starts, so no other controller
//! on the queue launches it too, and only the jobs Buildkite reserved for us launch.
//!
//! Only what is about to launch is reserved. Reservations are asked for in batches of up to
//! the launch concurrency, so that at most two rounds of launches are reserved ahead of the
//! launch slots: one batch request per round of launches rather than one per job, and a job
//! another controller could have run waits for us at most one round.

use std::collections::HashMap;
use std::time::Instant;

use super::machine::Scheduler;
use super::{Effect, SchedulerEvent};
use crate::book::BookEvent;
use crate::job::JobId;
use crate::monitor::{Claim, MonitorError};
use crate::policy::Policy;

/// The most jobs one reservation request asks for (the Stacks API's limit).
pub(super) const MAX_RESERVE_BATCH: usize = 1000;

impl<P: Policy> Scheduler<P> {
    /// Moves queued launches into a reservation request when there is room for a batch:
    /// launches in flight, reservations asked for and jobs reserved but not yet launched
    /// stay within two launch rounds.
    pub(super) fn request_claims(&mut self, now: Instant) {
        // One request at a time: what is decided meanwhile joins the next batch. And none
        // while Buildkite holds reservations back after a 429.
        if !self.reserving.is_empty() || self.reserve_after.is_some_and(|after| now < after) {
            return;
        }
        self.reserve_after = None;
        let round = self.config.launch_concurrency.max(1);
        let held = self.launching + self.reserving.len() + self.claimed.len();
        let room = round.saturating_mul(2).saturating_sub(held);
        let queued = self.queued.len();
        // Wait for a whole round's room unless everything queued fits now.
        if room == 0 || queued == 0 || (queued > room && room < round) {
            return;
        }
        let take = room.min(queued).min(MAX_RESERVE_BATCH);
        let mut jobs = Vec::with_capacity(take);
        for (job, template) in self.queued.drain(..take) {
            jobs.push(job.id);
            self.reserving.insert(job.id, (job, template));
        }
        self.effects.push(Effect::Reserve(jobs));
    }

    /// A reservation request came back: the jobs reserved wait for a launch slot; the others
    /// are given back to the book (another controller has them, or they are no longer
    /// scheduled), and so are all of them when the request failed or this replica stopped
    /// leading meanwhile. Rate limited, they wait in the launch queue, first, until Buildkite
    /// takes reservations again.
    pub(super) fn on_reserved(
        &mut self,
        jobs: Vec<JobId>,
        result: Result<Vec<Claim>, MonitorError>,
        now: Instant,
    ) {
        if let Err(MonitorError::RateLimited { retry_after }) = &result
            && self.is_leader()
        {
            tracing::debug!(
                jobs = jobs.len(),
                ?retry_after,
                "reservations rate limited; the jobs wait in the launch queue"
            );
            self.reserve_after = Some(super::deadline(now, *retry_after));
            for id in jobs.iter().rev() {
                if let Some(queued) = self.reserving.remove(id) {
                    self.queued.push_front(queued);
                }
            }
            return;
        }
        let mut claims: HashMap<JobId, Claim> = match result {
            Ok(claims) => claims.into_iter().map(|claim| (claim.job, claim)).collect(),
            Err(error) => {
                tracing::warn!(jobs = jobs.len(), %error, "reserving jobs failed; the next sweep decides them again");
                HashMap::new()
            }
        };
        let leader = self.is_leader();
        let (mut reserved, mut taken) = (0, 0);
        for id in jobs {
            let Some((job, template)) = self.reserving.remove(&id) else {
                continue;
            };
            match claims.remove(&id) {
                Some(claim) if leader => {
                    reserved += 1;
                    self.claimed.push_back((job, template, claim.agent_token));
                }
                _ => {
                    taken += 1;
                    tracing::debug!(job = %id, "not reserved for this controller; not launching it");
                    self.apply(BookEvent::LaunchFailed {
                        job: id,
                        retry: true,
                    });
                }
            }
        }
        self.report(SchedulerEvent::Reserved { reserved, taken });
    }

    /// Gives back every launch not yet started: reservations asked for are given back when
    /// they answer; reserved jobs now. Their reservations run out in Buildkite.
    pub(super) fn give_back_claims(&mut self) {
        while let Some((job, _, _)) = self.claimed.pop_front() {
            self.apply(BookEvent::LaunchFailed {
                job: job.id,
                retry: true,
            });
        }
    }
}
