//! The small adapters between the crates: `buildkite-api`'s client behind `jobify-core`'s
//! ports. The libraries know nothing of each other; only the binary joins them.
//!
//! - [`BuildkiteMonitor`]: [`jobify_core::Monitor`] over [`buildkite_api::Client`]
//!   (scheduled jobs per served queue, job states), paced to the configured budget share.
//! - [`BuildkiteFeedback`]: [`jobify_core::Feedback`] by annotating and cancelling the job.
//! - [`QueueFigures`](queue_figures): Buildkite's `/v3/metrics` into the queue gauges.

mod feedback;
mod monitor;
pub mod queue_figures;

pub use feedback::{ANNOTATION_CONTEXT, BuildkiteFeedback};
pub use monitor::{BuildkiteMonitor, MonitorSettings};

use buildkite_api::Error as ApiError;
use jobify_core::MonitorError;

use crate::metrics::PollErrorKind;

/// Sorts a client error the way the scheduler acts on it.
pub(crate) fn monitor_error(error: ApiError) -> MonitorError {
    match error {
        ApiError::RateLimited { retry_after, .. } => MonitorError::RateLimited {
            // Without a hint, wait out the shortest sensible window rather than hammering.
            retry_after: retry_after.unwrap_or(std::time::Duration::from_secs(10)),
        },
        ApiError::Unauthorized { .. } => MonitorError::Unauthorized(error.to_string()),
        other => MonitorError::Transient(Box::new(other)),
    }
}

/// The metrics label of a monitor error.
pub fn poll_error_kind(error: &MonitorError) -> PollErrorKind {
    match error {
        MonitorError::RateLimited { .. } => PollErrorKind::RateLimited,
        MonitorError::Unauthorized(_) => PollErrorKind::Unauthorized,
        MonitorError::Transient(_) => PollErrorKind::Transient,
    }
}
