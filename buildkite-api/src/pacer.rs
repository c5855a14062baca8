//! Spacing polls so jobify uses at most a chosen share of the organization's GraphQL budget.
//!
//! Buildkite grants each organization 20,000 *actual* complexity points per 5-minute window,
//! shared by every integration of that organization. A poller that spends `cost` points per
//! poll and may use `share` of the budget must wait at least
//! `window × cost / (budget × share)` between polls. [`Pacer`] computes that, and waits for
//! the window to reset when the last response says fewer points remain than a poll costs.
//! It is a pure value: the caller measures, sleeps and feeds it the numbers.

use std::time::Duration;

use crate::rate_limit::RateLimit;

/// Buildkite's documented organization budget: actual points per window.
pub const ORGANIZATION_BUDGET: u32 = 20_000;
/// Buildkite's documented rate-limit window.
pub const BUDGET_WINDOW: Duration = Duration::from_secs(300);

/// Computes the delay before the next poll.
///
/// A poller that spends `cost` points per poll and may use `share` of the budget waits at
/// least `window × cost / (budget × share)` between polls, and waits for the window to reset
/// when the last response says fewer points remain than a poll costs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pacer {
    budget: u32,
    window: Duration,
    share: f64,
    min_interval: Duration,
    max_interval: Duration,
}

impl Pacer {
    /// A pacer that lets the caller use `share` (clamped to `0.001..=1.0`) of Buildkite's
    /// organization budget, polling at most once a second and at least every 5 minutes.
    pub fn new(share: f64) -> Self {
        let share = if share.is_finite() {
            share.clamp(0.001, 1.0)
        } else {
            1.0
        };
        Pacer {
            budget: ORGANIZATION_BUDGET,
            window: BUDGET_WINDOW,
            share,
            min_interval: Duration::from_secs(1),
            max_interval: BUDGET_WINDOW,
        }
    }

    /// Overrides the budget (points per `window`), e.g. for an organization with a raised limit.
    /// A `RateLimit-Limit` header seen in a response takes precedence over this figure.
    pub fn with_budget(mut self, points: u32, window: Duration) -> Self {
        self.budget = points.max(1);
        self.window = window;
        self
    }

    /// Sets the shortest and longest delay [`Pacer::delay_after`] returns (apart from waiting
    /// for a window reset, which may exceed `max`).
    pub fn with_interval_bounds(mut self, min: Duration, max: Duration) -> Self {
        self.min_interval = min;
        self.max_interval = max.max(min);
        self
    }

    /// The share of the budget this pacer allows.
    pub fn share(&self) -> f64 {
        self.share
    }

    /// The steady-state delay between polls that each cost `cost` points, ignoring what the
    /// server last reported.
    pub fn interval_for(&self, cost: u32, budget: u32) -> Duration {
        let allowance = f64::from(budget.max(1)) * self.share;
        let spacing = self.window.as_secs_f64() * f64::from(cost) / allowance;
        // A spacing too large for a Duration (a huge window or cost) is the longest delay.
        Duration::try_from_secs_f64(spacing)
            .unwrap_or(Duration::MAX)
            .clamp(self.min_interval, self.max_interval)
    }

    /// The delay before the next poll, given what the last poll cost (actual complexity,
    /// summed over its requests) and the last rate-limit snapshot.
    pub fn delay_after(&self, cost: u32, last: Option<&RateLimit>) -> Duration {
        let budget = last.and_then(|l| l.limit).unwrap_or(self.budget);
        let spacing = self.interval_for(cost, budget);
        let exhausted = last.and_then(|l| {
            let remaining = l.remaining?;
            (remaining < cost.max(1)).then_some(l.reset.unwrap_or(self.window))
        });
        match exhausted {
            Some(reset) => spacing.max(reset),
            None => spacing,
        }
    }

    /// The delay after a 429: `Retry-After` when Buildkite sent it, else the whole window.
    pub fn delay_after_rate_limited(&self, retry_after: Option<Duration>) -> Duration {
        retry_after.unwrap_or(self.window).max(self.min_interval)
    }
}

impl Default for Pacer {
    /// Half of the organization budget.
    fn default() -> Self {
        Pacer::new(0.5)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(remaining: u32, reset_secs: u64) -> RateLimit {
        RateLimit {
            remaining: Some(remaining),
            limit: Some(ORGANIZATION_BUDGET),
            reset: Some(Duration::from_secs(reset_secs)),
            ..RateLimit::default()
        }
    }

    #[test]
    fn spacing_keeps_usage_within_the_share_of_the_window() {
        let pacer = Pacer::new(0.25);
        // 5,000 points per 300 s may be spent; a 50-point poll may run 100 times: every 3 s.
        assert_eq!(pacer.delay_after(50, None), Duration::from_secs(3));
        let polls_per_window =
            BUDGET_WINDOW.as_secs_f64() / pacer.delay_after(50, None).as_secs_f64();
        assert!(polls_per_window * 50.0 <= f64::from(ORGANIZATION_BUDGET) * 0.25);
    }

    #[test]
    fn cheap_polls_are_held_to_the_minimum_interval() {
        let pacer = Pacer::new(1.0);
        assert_eq!(pacer.delay_after(0, None), Duration::from_secs(1));
        assert_eq!(pacer.delay_after(5, None), Duration::from_secs(1));
    }

    #[test]
    fn expensive_polls_are_capped_at_the_maximum_interval() {
        let pacer =
            Pacer::new(0.01).with_interval_bounds(Duration::from_secs(2), Duration::from_secs(60));
        assert_eq!(pacer.delay_after(10_000, None), Duration::from_secs(60));
    }

    #[test]
    fn waits_for_the_reset_when_remaining_points_cannot_pay_for_a_poll() {
        let pacer = Pacer::new(0.5);
        let last = snapshot(30, 200);
        assert_eq!(pacer.delay_after(50, Some(&last)), Duration::from_secs(200));
        // 10,000 usable points per 300 s: a 50-point poll every 1.5 s.
        let plenty = snapshot(10_000, 200);
        assert_eq!(
            pacer.delay_after(50, Some(&plenty)),
            Duration::from_millis(1_500)
        );
    }

    #[test]
    fn server_reported_limit_replaces_the_configured_budget() {
        let pacer = Pacer::new(0.5);
        let raised = RateLimit {
            limit: Some(40_000),
            ..RateLimit::default()
        };
        // 20,000 usable points per 300 s: a 100-point poll every 1.5 s.
        assert_eq!(
            pacer.delay_after(100, Some(&raised)),
            Duration::from_millis(1_500)
        );
    }

    #[test]
    fn rate_limited_delay_honours_retry_after_or_waits_a_window() {
        let pacer = Pacer::new(0.5);
        assert_eq!(
            pacer.delay_after_rate_limited(Some(Duration::from_secs(7))),
            Duration::from_secs(7)
        );
        assert_eq!(pacer.delay_after_rate_limited(None), BUDGET_WINDOW);
    }

    #[test]
    fn a_spacing_too_large_for_a_duration_is_the_maximum_not_a_panic() {
        let pacer = Pacer::new(0.001).with_budget(1, Duration::MAX);
        assert_eq!(pacer.interval_for(u32::MAX, 1), BUDGET_WINDOW);
        assert_eq!(pacer.delay_after(u32::MAX, None), BUDGET_WINDOW);
    }

    #[test]
    fn share_is_clamped_to_a_sane_range() {
        assert_eq!(Pacer::new(7.0).share(), 1.0);
        assert_eq!(Pacer::new(f64::NAN).share(), 1.0);
        assert_eq!(Pacer::new(0.0).share(), 0.001);
    }
}
