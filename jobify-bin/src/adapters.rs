//! The small adapters the binary holds between the crates: its config into the Buildkite
//! adapter's settings, and a core monitor error into a metrics label. The Buildkite backend
//! itself is the `jobify-buildkite` crate.

use jobify_buildkite::MonitorSettings;
use jobify_core::MonitorError;

use crate::config::Config;
use crate::metrics::PollErrorKind;

/// What the monitor polls: the config's `organization`, served `[[queues]]` and `[buildkite]`.
pub(crate) fn monitor_settings(config: &Config) -> MonitorSettings {
    let queues = config.queues.iter().map(|q| q.name.clone()).collect();
    MonitorSettings::new(&config.organization, queues, &config.buildkite)
}

/// The metrics label of a monitor error.
pub(crate) fn poll_error_kind(error: &MonitorError) -> PollErrorKind {
    match error {
        MonitorError::RateLimited { .. } => PollErrorKind::RateLimited,
        MonitorError::Unauthorized(_) => PollErrorKind::Unauthorized,
        MonitorError::Transient(_) => PollErrorKind::Transient,
    }
}
