//! [`BuildkiteMetrics`]: the families the Buildkite side updates, registered next to the
//! binary's under the same `jobify_` names.
//!
//! | family | from |
//! |--------|------|
//! | `jobify_monitor_rate_limit_remaining` | every GraphQL response's rate-limit figure |
//! | `jobify_buildkite_queue_jobs{queue,state}` | `/v3/metrics`: scheduled, running, waiting |
//! | `jobify_buildkite_queue_agents{queue,state}` | `/v3/metrics`: idle, busy |

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::queue_figures::QueueFigures;

/// Labels of the Buildkite queue gauges.
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
struct QueueStateLabels {
    queue: String,
    state: &'static str,
}

/// The metrics of the Buildkite side. Clone it freely: clones update the same series. A
/// `Default` one is registered nowhere: its updates are kept and never shown.
#[derive(Clone, Debug, Default)]
pub struct BuildkiteMetrics {
    rate_limit_remaining: Gauge,
    queue_jobs: Family<QueueStateLabels, Gauge>,
    queue_agents: Family<QueueStateLabels, Gauge>,
    /// The queues of the last reading, whose series the next one may have to remove.
    known_queues: Arc<Mutex<Vec<String>>>,
}

impl BuildkiteMetrics {
    /// Creates the metrics and registers them in `registry` (the root: the names carry their
    /// own `jobify_monitor_` and `jobify_buildkite_` prefixes).
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = BuildkiteMetrics::default();
        let jobify = registry.sub_registry_with_prefix("jobify");
        jobify.sub_registry_with_prefix("monitor").register(
            "rate_limit_remaining",
            "GraphQL rate-limit points left in the current window, as Buildkite last reported",
            metrics.rate_limit_remaining.clone(),
        );
        let buildkite = jobify.sub_registry_with_prefix("buildkite");
        buildkite.register(
            "queue_jobs",
            "Jobs per queue and state (scheduled, running, waiting), from Buildkite /v3/metrics",
            metrics.queue_jobs.clone(),
        );
        buildkite.register(
            "queue_agents",
            "Agents per queue and state (idle, busy), from Buildkite /v3/metrics",
            metrics.queue_agents.clone(),
        );
        metrics
    }

    /// The GraphQL rate-limit points left, as a response reported them.
    pub fn set_rate_limit_remaining(&self, remaining: u32) {
        self.rate_limit_remaining.set(i64::from(remaining));
    }

    /// Replaces the Buildkite queue gauges with a fresh `/v3/metrics` reading; queues that
    /// disappeared lose their series.
    pub fn set_queue_figures(&self, figures: &BTreeMap<String, QueueFigures>) {
        // Plain names: still meaningful after a panic elsewhere.
        let mut known = self
            .known_queues
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for gone in known.iter().filter(|q| !figures.contains_key(*q)) {
            for state in ["scheduled", "running", "waiting"] {
                self.queue_jobs.remove(&queue_state(gone, state));
            }
            for state in ["idle", "busy"] {
                self.queue_agents.remove(&queue_state(gone, state));
            }
        }
        for (queue, f) in figures {
            for (state, value) in [
                ("scheduled", f.scheduled_jobs),
                ("running", f.running_jobs),
                ("waiting", f.waiting_jobs),
            ] {
                self.queue_jobs
                    .get_or_create(&queue_state(queue, state))
                    .set(saturating_i64(value));
            }
            for (state, value) in [("idle", f.idle_agents), ("busy", f.busy_agents)] {
                self.queue_agents
                    .get_or_create(&queue_state(queue, state))
                    .set(saturating_i64(value));
            }
        }
        *known = figures.keys().cloned().collect();
    }
}

fn queue_state(queue: &str, state: &'static str) -> QueueStateLabels {
    QueueStateLabels {
        queue: queue.to_owned(),
        state,
    }
}

fn saturating_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(registry: &Registry) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, registry).expect("encodes");
        text
    }

    #[test]
    fn families_keep_their_jobify_names() {
        let mut registry = Registry::default();
        let metrics = BuildkiteMetrics::register(&mut registry);
        metrics.set_rate_limit_remaining(19_500);
        metrics.set_queue_figures(&BTreeMap::from([(
            "k8s".to_owned(),
            QueueFigures {
                scheduled_jobs: 7,
                busy_agents: 2,
                ..QueueFigures::default()
            },
        )]));
        let text = encode(&registry);
        for line in [
            "jobify_monitor_rate_limit_remaining 19500",
            "jobify_buildkite_queue_jobs{queue=\"k8s\",state=\"scheduled\"} 7",
            "jobify_buildkite_queue_agents{queue=\"k8s\",state=\"busy\"} 2",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }

    #[test]
    fn a_queue_that_disappears_from_buildkite_loses_its_series() {
        let mut registry = Registry::default();
        let metrics = BuildkiteMetrics::register(&mut registry);
        let figures = |queue: &str| {
            BTreeMap::from([(
                queue.to_owned(),
                QueueFigures {
                    idle_agents: 1,
                    ..QueueFigures::default()
                },
            )])
        };
        metrics.set_queue_figures(&figures("old"));
        metrics.set_queue_figures(&figures("new"));
        let text = encode(&registry);
        assert!(!text.contains("queue=\"old\""), "{text}");
        assert!(
            text.contains("jobify_buildkite_queue_agents{queue=\"new\",state=\"idle\"} 1"),
            "{text}"
        );
    }
}
