//! The retry queue for feedback: a report Buildkite did not take (a rejection, or a workload
//! that can never start) is tried again with [`Backoff`], a bounded number of times, and only
//! so many wait at once. No report is retried forever: after the last attempt it is given up
//! on, counted and logged with the job's uuid.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::backoff::Backoff;
use super::{FeedbackReport, FeedbackRetry};
use crate::decision::Reason;
use crate::feedback::JobRef;
use crate::job::JobId;

/// Attempts per message, the first included.
pub(super) const MAX_ATTEMPTS: u32 = 6;
/// Messages waiting for a retry at most; more are dropped (and counted).
pub(super) const CAPACITY: usize = 256;
/// The waits between attempts: 2 s, doubling, at most a minute.
pub(super) const BACKOFF: Backoff = Backoff {
    first: Duration::from_secs(2),
    max: Duration::from_secs(60),
};

/// A message to deliver to Buildkite: which job, and why jobify will not run it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeedbackMessage {
    /// The job, and its key in the job source when known.
    pub job: JobRef,
    /// What the message reports.
    pub report: FeedbackReport,
    /// Why jobify will not run the job.
    pub reason: Reason,
    /// Which attempt this is (1 for the first).
    pub attempt: u32,
}

/// Messages waiting for their next attempt. See the module docs.
#[derive(Debug, Default)]
pub(super) struct Retries {
    pending: VecDeque<(Instant, FeedbackMessage)>,
}

impl Retries {
    /// Files `message`, whose attempt just failed at `now`, for another attempt if it has
    /// some left and there is room; says what became of it.
    pub(super) fn failed(&mut self, message: FeedbackMessage, now: Instant) -> FeedbackRetry {
        if message.attempt >= MAX_ATTEMPTS {
            return FeedbackRetry::GivenUp {
                attempts: message.attempt,
            };
        }
        if self.pending.len() >= CAPACITY {
            return FeedbackRetry::Dropped;
        }
        let after = BACKOFF.after(message.attempt);
        let attempt = message.attempt + 1;
        self.pending.push_back((
            super::deadline(now, after),
            FeedbackMessage { attempt, ..message },
        ));
        FeedbackRetry::Scheduled { attempt, after }
    }

    /// When the next message is due, if any waits.
    pub(super) fn next_due(&self) -> Option<Instant> {
        self.pending.iter().map(|(due, _)| *due).min()
    }

    /// Takes the messages due at `now`.
    pub(super) fn take_due(&mut self, now: Instant) -> Vec<FeedbackMessage> {
        let mut due = Vec::new();
        self.pending.retain(|(at, message)| {
            if *at <= now {
                due.push(message.clone());
                false
            } else {
                true
            }
        });
        due
    }

    /// How many messages wait.
    pub(super) fn len(&self) -> usize {
        self.pending.len()
    }

    /// The jobs whose messages wait, for the log at shutdown.
    pub(super) fn jobs(&self) -> impl Iterator<Item = JobId> + '_ {
        self.pending.iter().map(|(_, message)| message.job.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::ReasonCode;

    fn message(attempt: u32) -> FeedbackMessage {
        FeedbackMessage {
            job: JobRef {
                id: crate::testing::next_job_id(),
                source_key: None,
            },
            report: FeedbackReport::FailedToStart,
            reason: Reason::new(ReasonCode("image_pull_failed"), "no such image"),
            attempt,
        }
    }

    #[test]
    fn backoff_doubles_from_two_seconds_up_to_a_minute() {
        let waits: Vec<u64> = (1..=7).map(|a| BACKOFF.after(a).as_secs()).collect();
        assert_eq!(waits, [2, 4, 8, 16, 32, 60, 60]);
    }

    #[test]
    fn a_failed_message_is_due_after_its_backoff_with_the_next_attempt_number() {
        let mut retries = Retries::default();
        let now = Instant::now();
        let first = message(1);
        assert_eq!(
            retries.failed(first.clone(), now),
            FeedbackRetry::Scheduled {
                attempt: 2,
                after: Duration::from_secs(2)
            }
        );
        assert_eq!(retries.next_due(), Some(now + Duration::from_secs(2)));
        assert!(retries.take_due(now + Duration::from_secs(1)).is_empty());
        let due = retries.take_due(now + Duration::from_secs(2));
        assert_eq!(
            due,
            vec![FeedbackMessage {
                attempt: 2,
                ..first
            }]
        );
        assert_eq!(retries.len(), 0);
    }

    #[test]
    fn a_message_is_given_up_after_its_last_attempt() {
        let mut retries = Retries::default();
        assert_eq!(
            retries.failed(message(MAX_ATTEMPTS), Instant::now()),
            FeedbackRetry::GivenUp {
                attempts: MAX_ATTEMPTS
            }
        );
        assert_eq!(retries.len(), 0);
    }

    #[test]
    fn messages_beyond_the_capacity_are_dropped() {
        let mut retries = Retries::default();
        let now = Instant::now();
        for _ in 0..CAPACITY {
            assert!(matches!(
                retries.failed(message(1), now),
                FeedbackRetry::Scheduled { .. }
            ));
        }
        assert_eq!(retries.failed(message(1), now), FeedbackRetry::Dropped);
        assert_eq!(retries.len(), CAPACITY);
    }
}
