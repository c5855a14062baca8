//! The simulator's clock: tokio's time plus an offset a test can advance, so reservations,
//! token lifetimes, liveness and rate-limit windows can be moved past without sleeping.
//!
//! Tokio time works as well (`tokio::time::pause`/`advance` moves the same clock), but a
//! paused runtime also auto-advances while the test waits on loopback I/O, which can fire an
//! HTTP client's timeouts; [`Clock::advance`] moves only the simulator.

use std::sync::Mutex;
use std::time::Duration;

use jiff::Timestamp;
use tokio::time::Instant;

use super::server::lock;

/// Now, as an instant (for rate-limit windows) and as a wall-clock timestamp (for the API's
/// RFC 3339 fields and the job lifecycle).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Now {
    pub(crate) instant: Instant,
    pub(crate) timestamp: Timestamp,
}

/// The clock.
#[derive(Debug)]
pub(crate) struct Clock {
    origin: Instant,
    wall_origin: Timestamp,
    offset: Mutex<Duration>,
}

impl Clock {
    /// A clock reading the current wall-clock time.
    pub(crate) fn new() -> Self {
        Clock {
            origin: Instant::now(),
            wall_origin: Timestamp::now(),
            offset: Mutex::new(Duration::ZERO),
        }
    }

    /// Moves the simulator's time forward by `by`.
    pub(crate) fn advance(&self, by: Duration) {
        *lock(&self.offset) += by;
    }

    /// The current time.
    pub(crate) fn now(&self) -> Now {
        let instant = Instant::now() + *lock(&self.offset);
        let elapsed = instant.duration_since(self.origin);
        // Adding at most the simulator's lifetime to a current timestamp stays far inside
        // jiff's range; fall back to the origin rather than panic if it ever did not.
        let timestamp = self
            .wall_origin
            .checked_add(elapsed)
            .unwrap_or(self.wall_origin);
        Now { instant, timestamp }
    }
}
