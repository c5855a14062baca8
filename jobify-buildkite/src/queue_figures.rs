//! Buildkite's own queue figures (`GET /v3/metrics` with the agent token) as gauges: what
//! buildscaler exposed for autoscaling.

use std::collections::BTreeMap;
use std::time::Duration;

use buildkite_api::{AgentMetrics, Client};
use tokio_util::sync::CancellationToken;

use crate::metrics::BuildkiteMetrics;

/// The shortest pause between two reads, whatever Buildkite suggests.
const MIN_INTERVAL: Duration = Duration::from_secs(5);
/// The pause when Buildkite suggests none, and after an error.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(15);

/// Buildkite's own figures for one queue, from the agent API's `/v3/metrics`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueFigures {
    /// Jobs waiting for an agent (includes jobs held by concurrency limits).
    pub scheduled_jobs: u64,
    /// Jobs running.
    pub running_jobs: u64,
    /// Jobs waiting on dependencies.
    pub waiting_jobs: u64,
    /// Connected agents without a job.
    pub idle_agents: u64,
    /// Connected agents running a job.
    pub busy_agents: u64,
}

/// Per-queue figures from one `/v3/metrics` reading. Job queues and agent queues are keyed
/// separately by Buildkite; a queue appears when either side has it.
pub fn queue_figures(reading: &AgentMetrics) -> BTreeMap<String, QueueFigures> {
    let mut figures: BTreeMap<String, QueueFigures> = BTreeMap::new();
    for (queue, jobs) in &reading.job_queues {
        let entry = figures.entry(queue.clone()).or_default();
        entry.scheduled_jobs = jobs.scheduled;
        entry.running_jobs = jobs.running;
        entry.waiting_jobs = jobs.waiting;
    }
    for (queue, agents) in &reading.agent_queues {
        let entry = figures.entry(queue.clone()).or_default();
        entry.idle_agents = agents.idle;
        entry.busy_agents = agents.busy;
    }
    figures
}

/// Reads `/v3/metrics` until `shutdown`, at the pace Buildkite suggests
/// (`Buildkite-Agent-Metrics-Poll-Duration`), and updates the gauges.
pub async fn report_queue_figures(
    client: Client,
    metrics: BuildkiteMetrics,
    shutdown: CancellationToken,
) {
    loop {
        let pause = match client.agent_metrics().await {
            Ok(reading) => {
                metrics.set_queue_figures(&queue_figures(&reading));
                reading
                    .poll_duration
                    .unwrap_or(DEFAULT_INTERVAL)
                    .max(MIN_INTERVAL)
            }
            Err(error) => {
                tracing::warn!(%error, "reading Buildkite's queue metrics failed");
                DEFAULT_INTERVAL
            }
        };
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(pause) => {}
        }
    }
}
