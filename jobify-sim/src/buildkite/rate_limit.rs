//! The per-organization complexity budget: a fixed window (5 minutes at Buildkite) in which
//! queries may spend a number of actual complexity points (20,000). Past it, requests get
//! HTTP 429 with `Retry-After` until the window resets. Time is tokio's, so tests can pause
//! and advance it.

use std::time::Duration;

use tokio::time::Instant;

/// The budget's settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// Actual complexity points per window.
    pub points: u64,
    /// The window's length.
    pub window: Duration,
}

impl Default for Budget {
    /// Buildkite's published organization limit: 20,000 points per 5 minutes.
    fn default() -> Self {
        Budget {
            points: 20_000,
            window: Duration::from_secs(300),
        }
    }
}

/// What the rate-limit headers say after a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Standing {
    pub(crate) limit: u64,
    pub(crate) remaining: u64,
    /// Whole seconds until the window resets (rounded up).
    pub(crate) reset_secs: u64,
}

/// The running window.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    budget: Budget,
    window_start: Option<Instant>,
    used: u64,
}

impl RateLimiter {
    pub(crate) fn new(budget: Budget) -> Self {
        RateLimiter {
            budget,
            window_start: None,
            used: 0,
        }
    }

    fn roll(&mut self, now: Instant) -> Instant {
        match self.window_start {
            Some(start) if now.duration_since(start) < self.budget.window => start,
            _ => {
                self.window_start = Some(now);
                self.used = 0;
                now
            }
        }
    }

    fn standing(&self, start: Instant, now: Instant) -> Standing {
        let left = self.budget.window.saturating_sub(now.duration_since(start));
        Standing {
            limit: self.budget.points,
            remaining: self.budget.points.saturating_sub(self.used),
            reset_secs: left.as_secs() + u64::from(left.subsec_nanos() > 0),
        }
    }

    /// Whether a request may run now; `Err` carries the standing to answer 429 with.
    pub(crate) fn admit(&mut self, now: Instant) -> Result<Standing, Standing> {
        let start = self.roll(now);
        let standing = self.standing(start, now);
        if standing.remaining == 0 {
            Err(standing)
        } else {
            Ok(standing)
        }
    }

    /// Charges a query's actual complexity.
    pub(crate) fn charge(&mut self, points: u64, now: Instant) -> Standing {
        let start = self.roll(now);
        self.used = self.used.saturating_add(points);
        self.standing(start, now)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap fails the test")]
mod tests {
    use super::*;

    #[test]
    fn budget_runs_out_then_resets_with_the_window() {
        let mut limiter = RateLimiter::new(Budget {
            points: 10,
            window: Duration::from_secs(60),
        });
        let t0 = Instant::now();
        assert_eq!(limiter.admit(t0).unwrap().remaining, 10);
        assert_eq!(limiter.charge(7, t0).remaining, 3);
        assert_eq!(limiter.charge(7, t0).remaining, 0);
        let refused = limiter
            .admit(t0 + Duration::from_millis(20_500))
            .unwrap_err();
        assert_eq!(refused.reset_secs, 40);
        let fresh = limiter.admit(t0 + Duration::from_secs(60)).unwrap();
        assert_eq!((fresh.remaining, fresh.reset_secs), (10, 60));
    }
}
