//! Buildkite's GraphQL rate-limit headers, read from every response.
//!
//! Buildkite meters GraphQL use in complexity points per organization (20,000 actual points
//! per 5 minutes) and per user (5,000). Every response says where the caller stands:
//! `RateLimit-Remaining`, `RateLimit-Limit`, `RateLimit-Reset` (seconds until the window
//! resets), the `RateLimit-User-*` equivalents, and `RateLimit-Complexity-Requested/Actual`
//! for the request itself. [`RateLimit`] is one response's snapshot.

use std::time::Duration;

use http::HeaderMap;

/// The rate-limit headers of one GraphQL response. Absent headers are `None`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateLimit {
    /// Organization points left in the current window (`RateLimit-Remaining`).
    pub remaining: Option<u32>,
    /// Organization points per window (`RateLimit-Limit`).
    pub limit: Option<u32>,
    /// Time until the organization window resets (`RateLimit-Reset`).
    pub reset: Option<Duration>,
    /// The token's user points left (`RateLimit-User-Remaining`).
    pub user_remaining: Option<u32>,
    /// The token's user points per window (`RateLimit-User-Limit`).
    pub user_limit: Option<u32>,
    /// Time until the user window resets (`RateLimit-User-Reset`).
    pub user_reset: Option<Duration>,
    /// Complexity Buildkite computed for the request before running it.
    pub complexity_requested: Option<u32>,
    /// Complexity Buildkite charged for the request after running it.
    pub complexity_actual: Option<u32>,
}

impl RateLimit {
    /// Reads the rate-limit headers; `None` when the response carried none of them.
    pub fn from_headers(headers: &HeaderMap) -> Option<Self> {
        let number = |name: &str| -> Option<u32> {
            headers.get(name)?.to_str().ok()?.trim().parse::<u32>().ok()
        };
        let seconds = |name: &str| number(name).map(|s| Duration::from_secs(u64::from(s)));
        let snapshot = RateLimit {
            remaining: number("ratelimit-remaining"),
            limit: number("ratelimit-limit"),
            reset: seconds("ratelimit-reset"),
            user_remaining: number("ratelimit-user-remaining"),
            user_limit: number("ratelimit-user-limit"),
            user_reset: seconds("ratelimit-user-reset"),
            complexity_requested: number("ratelimit-complexity-requested"),
            complexity_actual: number("ratelimit-complexity-actual"),
        };
        (snapshot != RateLimit::default()).then_some(snapshot)
    }

    /// The fewest points left in either window (organization or user), if known.
    pub fn tightest_remaining(&self) -> Option<u32> {
        match (self.remaining, self.user_remaining) {
            (Some(org), Some(user)) => Some(org.min(user)),
            (org, user) => org.or(user),
        }
    }
}

/// The longest wait a `Retry-After` (or `RateLimit-Reset`) header is believed: longer values
/// are capped so an absurd header cannot overflow a deadline or park the client for years.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// Reads `Retry-After` given in seconds (the form Buildkite uses). An HTTP date is not
/// interpreted; callers fall back to `RateLimit-Reset`.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(http::header::RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn reads_organization_user_and_complexity_headers() {
        let map = headers(&[
            ("RateLimit-Remaining", "19800"),
            ("RateLimit-Limit", "20000"),
            ("RateLimit-Reset", "120"),
            ("RateLimit-User-Remaining", "4900"),
            ("RateLimit-User-Limit", "5000"),
            ("RateLimit-User-Reset", "60"),
            ("RateLimit-Complexity-Requested", "204"),
            ("RateLimit-Complexity-Actual", "12"),
        ]);
        let limit = RateLimit::from_headers(&map).expect("headers present");
        assert_eq!(limit.remaining, Some(19_800));
        assert_eq!(limit.limit, Some(20_000));
        assert_eq!(limit.reset, Some(Duration::from_secs(120)));
        assert_eq!(limit.user_remaining, Some(4_900));
        assert_eq!(limit.user_limit, Some(5_000));
        assert_eq!(limit.user_reset, Some(Duration::from_secs(60)));
        assert_eq!(limit.complexity_requested, Some(204));
        assert_eq!(limit.complexity_actual, Some(12));
        assert_eq!(limit.tightest_remaining(), Some(4_900));
    }

    #[test]
    fn no_rate_limit_headers_means_no_snapshot() {
        assert_eq!(
            RateLimit::from_headers(&headers(&[("Content-Type", "x")])),
            None
        );
    }

    #[test]
    fn unparsable_values_are_ignored_not_fatal() {
        let map = headers(&[
            ("RateLimit-Remaining", "lots"),
            ("RateLimit-Limit", "20000"),
        ]);
        let limit = RateLimit::from_headers(&map).expect("one header parses");
        assert_eq!(limit.remaining, None);
        assert_eq!(limit.limit, Some(20_000));
    }

    #[test]
    fn retry_after_reads_seconds() {
        assert_eq!(
            retry_after(&headers(&[("Retry-After", "17")])),
            Some(Duration::from_secs(17))
        );
        assert_eq!(
            retry_after(&headers(&[(
                "Retry-After",
                "Wed, 21 Oct 2015 07:28:00 GMT"
            )])),
            None
        );
    }
}
