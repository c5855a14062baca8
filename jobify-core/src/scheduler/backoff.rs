//! [`Backoff`]: the one rule for how long the scheduler waits after failures, shared by the
//! poll (a page request failed) and by feedback (Buildkite did not take a report).

use std::time::Duration;

/// Exponential backoff without jitter: the wait after `n` consecutive failures is `first`
/// doubled `n - 1` times, at most `max`. Deterministic on purpose, so that tests can state
/// the exact waits; jobify runs one scheduler per cluster, so there is no herd to spread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// The wait after the first failure.
    pub first: Duration,
    /// The longest wait.
    pub max: Duration,
}

impl Backoff {
    /// Waits from `first`, doubling, up to `max` (which caps `first` too).
    pub fn new(first: Duration, max: Duration) -> Self {
        Backoff { first, max }
    }

    /// The wait after `failures` consecutive failures (`0` waits nothing).
    pub fn after(&self, failures: u32) -> Duration {
        if failures == 0 {
            return Duration::ZERO;
        }
        // 2^16 doublings already exceed any sensible `max`; capping the exponent keeps the
        // multiplication from saturating into nonsense before the `min`.
        let doublings = (failures - 1).min(16);
        self.first
            .saturating_mul(2u32.saturating_pow(doublings))
            .min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_the_first_wait_up_to_the_longest() {
        let backoff = Backoff::new(Duration::from_secs(2), Duration::from_secs(60));
        let waits: Vec<u64> = (0..=7).map(|n| backoff.after(n).as_secs()).collect();
        assert_eq!(waits, [0, 2, 4, 8, 16, 32, 60, 60]);
    }

    #[test]
    fn the_longest_wait_caps_the_first_too() {
        let backoff = Backoff::new(Duration::from_secs(20), Duration::from_secs(15));
        assert_eq!(backoff.after(1), Duration::from_secs(15));
    }

    #[test]
    fn huge_waits_saturate_instead_of_overflowing() {
        let backoff = Backoff::new(Duration::MAX, Duration::MAX);
        assert_eq!(backoff.after(u32::MAX), Duration::MAX);
    }
}
