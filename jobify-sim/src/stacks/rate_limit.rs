//! Per-stack, per-scope rate limits: a 1-second sliding window of admitted requests. A
//! request past the limit is refused (and not counted), so a client that waits out
//! `RateLimit-Reset` gets through.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use tokio::time::Instant;

use super::config::RateLimits;

const WINDOW: Duration = Duration::from_secs(1);

/// What the `RateLimit-*` headers (and a 429's body) say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Standing {
    pub(crate) scope: &'static str,
    pub(crate) limit: u32,
    pub(crate) remaining: u32,
    /// Requests in the window counting this one (the 429 body's `current`).
    pub(crate) current: u32,
    /// Whole seconds until the oldest request leaves the window (rounded up).
    pub(crate) reset_secs: u64,
}

/// The windows of every (stack key, scope).
#[derive(Debug)]
pub(crate) struct Limiter {
    limits: RateLimits,
    windows: HashMap<(String, &'static str), VecDeque<Instant>>,
}

impl Limiter {
    pub(crate) fn new(limits: RateLimits) -> Self {
        Limiter {
            limits,
            windows: HashMap::new(),
        }
    }

    /// Admits (`Ok`) or refuses (`Err`) a request of `stack` in `scope` at `now`; `None` when
    /// the scope is unlimited.
    pub(crate) fn admit(
        &mut self,
        stack: &str,
        scope: &'static str,
        now: Instant,
    ) -> Option<Result<Standing, Standing>> {
        let limit = self.limits.of(scope)?;
        let window = self.windows.entry((stack.to_owned(), scope)).or_default();
        while window
            .front()
            .is_some_and(|&t| now.duration_since(t) >= WINDOW)
        {
            window.pop_front();
        }
        let count = u32::try_from(window.len()).unwrap_or(u32::MAX);
        let admitted = count < limit;
        if admitted {
            window.push_back(now);
        }
        let reset = window.front().map_or(WINDOW, |&oldest| {
            WINDOW.saturating_sub(now.duration_since(oldest))
        });
        let standing = Standing {
            scope,
            limit,
            remaining: limit.saturating_sub(count + u32::from(admitted)),
            current: count.saturating_add(1),
            reset_secs: reset.as_secs() + u64::from(reset.subsec_nanos() > 0),
        };
        Some(if admitted {
            Ok(standing)
        } else {
            Err(standing)
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap fails the test")]
mod tests {
    use super::*;

    #[test]
    fn the_window_slides() {
        let mut limits = RateLimits::unlimited();
        limits.batch_reserve = Some(2);
        let mut limiter = Limiter::new(limits);
        let t0 = Instant::now();
        let admit = |l: &mut Limiter, stack, at| l.admit(stack, "batch-reserve", at).unwrap();
        assert_eq!(admit(&mut limiter, "a", t0).unwrap().remaining, 1);
        let half = t0 + Duration::from_millis(500);
        assert_eq!(admit(&mut limiter, "a", half).unwrap().remaining, 0);
        let refused = admit(&mut limiter, "a", half).unwrap_err();
        assert_eq!((refused.current, refused.reset_secs), (3, 1));
        assert!(admit(&mut limiter, "b", half).is_ok(), "per stack");
        assert!(
            admit(&mut limiter, "a", t0 + WINDOW).is_ok(),
            "t0 left the window"
        );
        assert!(
            admit(&mut limiter, "a", t0 + WINDOW).is_err(),
            "0.5 s still in it"
        );
        assert!(limiter.admit("a", "show-job", t0).is_none());
    }
}
