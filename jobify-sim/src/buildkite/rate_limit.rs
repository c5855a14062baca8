//! The complexity budgets: a fixed window (5 minutes at Buildkite) in which queries may
//! spend a number of actual complexity points (20,000), once for the organization and once
//! per user (API token). A request is refused with HTTP 429 and `Retry-After` when either
//! budget is spent, until its window resets. Time is tokio's, so tests can pause and advance
//! it.

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

/// Where the organization and the requesting user stand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Standings {
    pub(crate) organization: Standing,
    pub(crate) user: Standing,
}

impl Standings {
    /// Seconds until every spent budget has reset (what `Retry-After` says).
    pub(crate) fn retry_after(&self) -> u64 {
        [self.organization, self.user]
            .iter()
            .filter(|s| s.remaining == 0)
            .map(|s| s.reset_secs)
            .max()
            .unwrap_or(0)
    }
}

/// The organization's window and one per user.
#[derive(Debug)]
pub(crate) struct Limits {
    organization: RateLimiter,
    users: Vec<RateLimiter>,
}

impl Limits {
    /// Budgets for an organization with `users` API tokens.
    pub(crate) fn new(organization: Budget, user: Budget, users: usize) -> Self {
        Limits {
            organization: RateLimiter::new(organization),
            users: (0..users).map(|_| RateLimiter::new(user)).collect(),
        }
    }

    fn user(&mut self, user: usize) -> &mut RateLimiter {
        if user >= self.users.len() {
            let budget = self.users.first().map_or(Budget::default(), |u| u.budget);
            self.users
                .resize_with(user + 1, || RateLimiter::new(budget));
        }
        &mut self.users[user]
    }

    /// Whether `user` may run a query now; `Err` when either budget is spent.
    pub(crate) fn admit(&mut self, user: usize, now: Instant) -> Result<Standings, Standings> {
        let organization = self.organization.admit(now);
        let for_user = self.user(user).admit(now);
        let standings = Standings {
            organization: organization.unwrap_or_else(|s| s),
            user: for_user.unwrap_or_else(|s| s),
        };
        if organization.is_ok() && for_user.is_ok() {
            Ok(standings)
        } else {
            Err(standings)
        }
    }

    /// Charges `user`'s query of `points` actual complexity to both budgets.
    pub(crate) fn charge(&mut self, user: usize, points: u64, now: Instant) -> Standings {
        Standings {
            organization: self.organization.charge(points, now),
            user: self.user(user).charge(points, now),
        }
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

    #[test]
    fn a_user_out_of_budget_is_refused_while_others_go_on() {
        let minute = Duration::from_secs(60);
        let mut limits = Limits::new(
            Budget {
                points: 100,
                window: minute,
            },
            Budget {
                points: 5,
                window: minute,
            },
            2,
        );
        let t0 = Instant::now();
        limits.admit(0, t0).unwrap();
        let charged = limits.charge(0, 5, t0);
        assert_eq!(
            (charged.organization.remaining, charged.user.remaining),
            (95, 0)
        );
        let refused = limits.admit(0, t0).unwrap_err();
        assert_eq!(refused.retry_after(), 60);
        assert_eq!(limits.admit(1, t0).unwrap().user.remaining, 5);
    }
}
