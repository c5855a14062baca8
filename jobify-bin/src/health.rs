//! `/healthz` and `/readyz`: whether the process is alive, and whether it is doing its job.
//!
//! Ready means: leadership is known, and a leader has polled Buildkite successfully within the
//! last three poll intervals. A standby (follower) is ready as soon as it knows it is one, so
//! that rolling updates of a two-replica Deployment do not stall on the standby. Time is an
//! input: [`Readiness::check`] takes `now`, so tests drive it without waiting.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// How many poll intervals may pass without a successful poll before a leader is not ready.
pub const MISSED_POLLS_TOLERATED: u32 = 3;

/// This replica's role, as leader election last reported it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Leadership {
    /// Not known yet (the first Lease read has not completed).
    Unknown,
    /// This replica holds the Lease and launches jobs.
    Leader,
    /// Another replica leads; this one stands by.
    Follower,
}

/// Why the process is not ready (the body of a 503 from `/readyz`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NotReady {
    /// Leader election has not said yet whether this replica leads.
    #[error("leadership not known yet")]
    LeadershipUnknown,
    /// The leader has not polled Buildkite successfully yet.
    #[error("no successful poll of Buildkite yet{}", last_error(.0))]
    NeverPolled(Option<String>),
    /// The last successful poll is too old.
    #[error("last successful poll of Buildkite was {}s ago (limit {}s){}", .since.as_secs(), .limit.as_secs(), last_error(.error))]
    PollStale {
        /// Time since the last successful poll.
        since: Duration,
        /// The limit: three poll intervals.
        limit: Duration,
        /// The latest poll error, if any.
        error: Option<String>,
    },
}

fn last_error(error: &Option<String>) -> String {
    error
        .as_ref()
        .map(|e| format!("; last error: {e}"))
        .unwrap_or_default()
}

#[derive(Debug)]
struct State {
    leadership: Leadership,
    last_success: Option<Instant>,
    last_error: Option<String>,
}

/// Readiness as the monitor loop and leader election report it.
#[derive(Debug)]
pub struct Readiness {
    poll_interval: Duration,
    state: Mutex<State>,
}

impl Readiness {
    /// Readiness for a loop that polls every `poll_interval`.
    pub fn new(poll_interval: Duration) -> Self {
        Readiness {
            poll_interval,
            state: Mutex::new(State {
                leadership: Leadership::Unknown,
                last_success: None,
                last_error: None,
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock leaves plain data behind, still meaningful.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A poll succeeded at `at`.
    pub fn poll_succeeded(&self, at: Instant) {
        let mut state = self.state();
        state.last_success = Some(at);
        state.last_error = None;
    }

    /// A poll failed; the message shows on `/readyz` once readiness is lost.
    pub fn poll_failed(&self, error: impl Into<String>) {
        self.state().last_error = Some(error.into());
    }

    /// Leader election reported a role.
    pub fn set_leadership(&self, leadership: Leadership) {
        self.state().leadership = leadership;
    }

    /// The current role.
    pub fn leadership(&self) -> Leadership {
        self.state().leadership
    }

    /// Whether the process is ready at `now`.
    pub fn check(&self, now: Instant) -> Result<(), NotReady> {
        let state = self.state();
        match state.leadership {
            Leadership::Unknown => Err(NotReady::LeadershipUnknown),
            Leadership::Follower => Ok(()),
            Leadership::Leader => {
                let Some(last) = state.last_success else {
                    return Err(NotReady::NeverPolled(state.last_error.clone()));
                };
                let limit = self.poll_interval * MISSED_POLLS_TOLERATED;
                let since = now.saturating_duration_since(last);
                if since <= limit {
                    Ok(())
                } else {
                    Err(NotReady::PollStale {
                        since,
                        limit,
                        error: state.last_error.clone(),
                    })
                }
            }
        }
    }
}

/// Feeds leader election's signal into `readiness` until `shutdown`. The signal starts as
/// "not leading" before the elector's first round, so leadership counts as known only once
/// the signal changes or `first_round` (one renew interval) has passed.
pub async fn follow_leadership(
    mut leading: tokio::sync::watch::Receiver<bool>,
    readiness: std::sync::Arc<Readiness>,
    first_round: Duration,
    shutdown: tokio_util::sync::CancellationToken,
) {
    tokio::select! {
        () = shutdown.cancelled() => return,
        _ = leading.changed() => {}
        () = tokio::time::sleep(first_round) => {}
    }
    loop {
        let role = if *leading.borrow_and_update() {
            Leadership::Leader
        } else {
            Leadership::Follower
        };
        readiness.set_leadership(role);
        tokio::select! {
            () = shutdown.cancelled() => return,
            changed = leading.changed() => if changed.is_err() {
                // The elector is gone (it stops on shutdown): this replica no longer leads.
                readiness.set_leadership(Leadership::Follower);
                return;
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTERVAL: Duration = Duration::from_secs(5);

    #[test]
    fn not_ready_until_leadership_is_known() {
        let readiness = Readiness::new(INTERVAL);
        let now = Instant::now();
        readiness.poll_succeeded(now);
        assert_eq!(readiness.check(now), Err(NotReady::LeadershipUnknown));
        readiness.set_leadership(Leadership::Follower);
        assert_eq!(readiness.check(now), Ok(()));
    }

    #[test]
    fn leader_is_ready_after_its_first_successful_poll() {
        let readiness = Readiness::new(INTERVAL);
        let start = Instant::now();
        readiness.set_leadership(Leadership::Leader);
        readiness.poll_failed("connection refused");
        assert_eq!(
            readiness.check(start),
            Err(NotReady::NeverPolled(Some("connection refused".into())))
        );
        readiness.poll_succeeded(start);
        assert_eq!(readiness.check(start + INTERVAL), Ok(()));
    }

    #[test]
    fn readiness_flips_after_three_intervals_of_failed_polls_and_back() {
        let readiness = Readiness::new(INTERVAL);
        let start = Instant::now();
        readiness.set_leadership(Leadership::Leader);
        readiness.poll_succeeded(start);
        readiness.poll_failed("HTTP 502");
        assert_eq!(readiness.check(start + INTERVAL * 3), Ok(()));
        let late = start + INTERVAL * 3 + Duration::from_millis(1);
        let err = readiness.check(late).expect_err("stale");
        assert!(err.to_string().contains("last error: HTTP 502"), "{err}");
        readiness.poll_succeeded(late);
        assert_eq!(readiness.check(late), Ok(()));
    }

    #[tokio::test(start_paused = true)]
    async fn leadership_is_known_after_the_first_change_or_one_round() {
        let readiness = std::sync::Arc::new(Readiness::new(INTERVAL));
        let shutdown = tokio_util::sync::CancellationToken::new();
        let (tx, rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(follow_leadership(
            rx,
            readiness.clone(),
            INTERVAL,
            shutdown.clone(),
        ));
        tokio::task::yield_now().await;
        assert_eq!(readiness.leadership(), Leadership::Unknown);
        tokio::time::sleep(INTERVAL + Duration::from_millis(1)).await;
        assert_eq!(readiness.leadership(), Leadership::Follower);
        tx.send_replace(true);
        tokio::task::yield_now().await;
        assert_eq!(readiness.leadership(), Leadership::Leader);
        drop(tx);
        task.await.expect("join");
        assert_eq!(readiness.leadership(), Leadership::Follower);
    }

    #[test]
    fn a_follower_does_not_need_to_poll() {
        let readiness = Readiness::new(INTERVAL);
        readiness.set_leadership(Leadership::Follower);
        assert_eq!(readiness.check(Instant::now() + INTERVAL * 100), Ok(()));
    }
}
