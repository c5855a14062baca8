//! The jobs Buildkite holds for this stack: what the monitor reserved and has not yet seen
//! an agent take.
//!
//! A reserved job disappears from every stack's listing, this one's too. Yet the scheduler
//! needs to go on seeing it while it waits: a launch that failed and is to be tried again, a
//! pod that died before its agent acquired the job (which jobify must fail in Buildkite), a
//! pod still pulling its image whose reservation must not lapse. So the monitor remembers
//! what it reserved and, at the start of each sweep, asks Buildkite for those jobs' states:
//! the ones still `reserved` are listed again, their reservations extended once half has
//! run out; any other state (an agent took the job, it was cancelled or failed) ends the
//! memory of it.

use std::collections::HashMap;
use std::time::Duration;

use jobify_core::{JobId, ScheduledJob};
use tokio::time::Instant;

/// A job reserved for this stack.
#[derive(Clone, Debug)]
pub(crate) struct Held {
    /// The job, as the scheduler saw it when it was reserved.
    pub(crate) job: ScheduledJob,
    /// When the reservation runs out unless extended.
    pub(crate) expires: Instant,
}

/// What the monitor reserved, by job.
#[derive(Debug, Default)]
pub(crate) struct Reservations {
    held: HashMap<JobId, Held>,
}

impl Reservations {
    /// `job` is reserved until `expires`.
    pub(crate) fn hold(&mut self, job: ScheduledJob, expires: Instant) {
        self.held.insert(job.id, Held { job, expires });
    }

    /// The reservation of `job` was extended to `expires`.
    pub(crate) fn extend(&mut self, job: JobId, expires: Instant) {
        if let Some(held) = self.held.get_mut(&job) {
            held.expires = expires;
        }
    }

    /// Forgets `job`: an agent has it, it ended, or another stack holds it.
    pub(crate) fn release(&mut self, job: JobId) {
        self.held.remove(&job);
    }

    /// The jobs held, to ask Buildkite about.
    pub(crate) fn jobs(&self) -> Vec<JobId> {
        self.held.keys().copied().collect()
    }

    /// The job held as `id`, if any.
    pub(crate) fn get(&self, id: JobId) -> Option<&Held> {
        self.held.get(&id)
    }

    /// Forgets reservations that ran out before `now` (their jobs are listed again, for any
    /// stack to reserve), and returns those of `still_reserved` due for an extension: less
    /// than half of `expiry` left.
    pub(crate) fn due_for_extension(
        &mut self,
        still_reserved: &[JobId],
        now: Instant,
        expiry: Duration,
    ) -> Vec<JobId> {
        self.held.retain(|_, held| held.expires > now);
        still_reserved
            .iter()
            .copied()
            .filter(|id| {
                self.held
                    .get(id)
                    .is_some_and(|held| held.expires.saturating_duration_since(now) < expiry / 2)
            })
            .collect()
    }

    /// How many jobs are held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.held.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reservation_is_extended_once_half_has_run_out_and_forgotten_when_it_lapsed() {
        let now = Instant::now();
        let expiry = Duration::from_secs(300);
        let (fresh, old, lapsed) = (
            ScheduledJob::fixture().build(),
            ScheduledJob::fixture().build(),
            ScheduledJob::fixture().build(),
        );
        let mut held = Reservations::default();
        held.hold(fresh.clone(), now + Duration::from_secs(290));
        held.hold(old.clone(), now + Duration::from_secs(100));
        held.hold(lapsed.clone(), now - Duration::from_secs(1));
        let due = held.due_for_extension(&[fresh.id, old.id, lapsed.id], now, expiry);
        assert_eq!(due, vec![old.id]);
        assert_eq!(held.len(), 2, "the lapsed reservation is forgotten");
        held.extend(old.id, now + expiry);
        assert!(held.due_for_extension(&[old.id], now, expiry).is_empty());
    }
}
