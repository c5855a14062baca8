//! `[scheduler]`: how the scheduler paces its work. The poll interval lives in `[buildkite]`
//! (it is what Buildkite's rate limit bounds); everything else the scheduler loop needs is
//! here, with `jobify_core`'s defaults.

use std::time::Duration;

use jobify_core::SchedulerConfig;
use serde::Deserialize;

use super::source::KeyPath;
use super::validate::Problems;

/// The most launches `launch_concurrency` may allow at once.
pub const MAX_LAUNCH_CONCURRENCY: usize = 1000;

/// The most pages `lookahead_pages` may ask a poll to read past a held-back job.
pub(super) const MAX_LOOKAHEAD_PAGES: usize = 100;

/// `[scheduler]`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SchedulerSettings {
    /// How often to ask Buildkite whether jobs with a workload that has not started were
    /// cancelled (their workloads are then removed).
    #[serde(with = "humantime_serde")]
    pub cancel_check_interval: Duration,
    /// How many workload launches may be in progress at once.
    pub launch_concurrency: usize,
    /// Once a limit holds a job back, how many pages of that queue's scheduled jobs a poll
    /// reads before it goes on to the next queue (or stops): the window in which a job of
    /// higher priority can still claim the next free slot. While nothing is held back a poll
    /// reads on to the newest job.
    pub lookahead_pages: usize,
    /// The longest wait between polls while polling fails (polls back off exponentially from
    /// `buildkite.poll_interval`).
    #[serde(with = "humantime_serde")]
    pub max_poll_backoff: Duration,
    /// How long shutdown waits for launches and other calls in progress.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
}

impl Default for SchedulerSettings {
    fn default() -> Self {
        let core = SchedulerConfig::default();
        SchedulerSettings {
            cancel_check_interval: core.cancel_check_interval,
            launch_concurrency: core.launch_concurrency,
            lookahead_pages: core.lookahead_pages,
            max_poll_backoff: core.max_poll_backoff,
            shutdown_grace: core.shutdown_grace,
        }
    }
}

impl SchedulerSettings {
    /// The scheduler's config: these settings with `poll_interval` from `[buildkite]`.
    pub fn scheduler_config(&self, poll_interval: Duration) -> SchedulerConfig {
        SchedulerConfig {
            poll_interval,
            cancel_check_interval: self.cancel_check_interval,
            launch_concurrency: self.launch_concurrency,
            lookahead_pages: self.lookahead_pages,
            max_poll_backoff: self.max_poll_backoff,
            shutdown_grace: self.shutdown_grace,
        }
    }

    /// Checks the ranges; `poll_interval` is `buildkite.poll_interval`, which
    /// `max_poll_backoff` must not undercut.
    pub fn validate(&self, at: &KeyPath, poll_interval: Duration, problems: &mut Problems) {
        if self.cancel_check_interval < Duration::from_secs(1) {
            problems.push(
                at.key("cancel_check_interval"),
                "must be at least 1s: each check is a Buildkite API call counted against the \
                 rate limit",
            );
        }
        if !(1..=MAX_LAUNCH_CONCURRENCY).contains(&self.launch_concurrency) {
            problems.push(
                at.key("launch_concurrency"),
                format!(
                    "must be between 1 and {MAX_LAUNCH_CONCURRENCY}, not {}",
                    self.launch_concurrency
                ),
            );
        }
        if !(1..=MAX_LOOKAHEAD_PAGES).contains(&self.lookahead_pages) {
            problems.push(
                at.key("lookahead_pages"),
                format!(
                    "must be between 1 and {MAX_LOOKAHEAD_PAGES}, not {}: each page is a \
                     Buildkite API request, and the jobs of these pages wait in memory",
                    self.lookahead_pages
                ),
            );
        }
        if self.max_poll_backoff < poll_interval {
            problems.push(
                at.key("max_poll_backoff"),
                format!(
                    "must be at least buildkite.poll_interval ({}): backoff only lengthens the \
                     wait between polls",
                    humantime::format_duration(poll_interval)
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_cores() {
        let config = SchedulerSettings::default().scheduler_config(Duration::from_secs(5));
        assert_eq!(
            config,
            SchedulerConfig {
                poll_interval: Duration::from_secs(5),
                ..SchedulerConfig::default()
            }
        );
    }

    #[test]
    fn out_of_range_values_are_each_reported() {
        let settings = SchedulerSettings {
            cancel_check_interval: Duration::from_millis(200),
            launch_concurrency: 0,
            lookahead_pages: 0,
            max_poll_backoff: Duration::from_secs(2),
            shutdown_grace: Duration::ZERO,
        };
        let mut problems = Problems::default();
        settings.validate(
            &KeyPath::root().key("scheduler"),
            Duration::from_secs(5),
            &mut problems,
        );
        let paths: Vec<String> = problems
            .into_vec()
            .into_iter()
            .map(|p| p.path.to_string())
            .collect();
        assert_eq!(
            paths,
            [
                "scheduler.cancel_check_interval",
                "scheduler.launch_concurrency",
                "scheduler.lookahead_pages",
                "scheduler.max_poll_backoff"
            ]
        );
    }
}
