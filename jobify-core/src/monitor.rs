//! The port through which the scheduler learns what Buildkite has for us.

use async_trait::async_trait;

use crate::job::{JobId, JobState, ScheduledJob};

/// Why a poll of Buildkite failed. The scheduler logs it, counts it and polls again later;
/// one failed poll loses nothing.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    /// Buildkite asked us to slow down; poll again no sooner than `retry_after`.
    #[error("rate limited by Buildkite; retry in {retry_after:?}")]
    RateLimited {
        /// How long to wait.
        retry_after: std::time::Duration,
    },
    /// The credentials were refused: nothing will work until the operator fixes them.
    #[error("Buildkite refused the credentials: {0}")]
    Unauthorized(String),
    /// Anything else (network, server error, undecodable response): retry.
    #[error("polling Buildkite failed: {0}")]
    Transient(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Produces what Buildkite currently has for us.
#[cfg_attr(any(test, feature = "testing"), mockall::automock)]
#[async_trait]
pub trait Monitor: Send + Sync {
    /// One poll: every job currently `SCHEDULED` that this controller may be asked to run.
    /// Jobs for other queues may be included; the policy skips them.
    async fn scheduled(&self) -> Result<Vec<ScheduledJob>, MonitorError>;

    /// The current Buildkite state of jobs we launched workloads for, so the scheduler can
    /// remove workloads whose job was cancelled. Jobs Buildkite no longer knows are left out.
    async fn states(&self, jobs: &[JobId]) -> Result<Vec<(JobId, JobState)>, MonitorError>;
}

#[async_trait]
impl<T: Monitor + ?Sized> Monitor for std::sync::Arc<T> {
    async fn scheduled(&self) -> Result<Vec<ScheduledJob>, MonitorError> {
        (**self).scheduled().await
    }

    async fn states(&self, jobs: &[JobId]) -> Result<Vec<(JobId, JobState)>, MonitorError> {
        (**self).states(jobs).await
    }
}
