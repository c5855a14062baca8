//! The agent API's `GET /metrics`: agent and job counts per queue.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

/// Agent counts, overall or for one queue.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct AgentCounts {
    /// Agents running a job.
    pub busy: u64,
    /// Agents waiting for a job.
    pub idle: u64,
    /// All connected agents.
    pub total: u64,
}

/// Job counts, overall or for one queue.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct JobCounts {
    /// Jobs waiting for an agent (this also counts jobs held back by concurrency limits).
    pub scheduled: u64,
    /// Jobs running on an agent.
    pub running: u64,
    /// Jobs waiting on dependencies.
    pub waiting: u64,
    /// All unfinished jobs.
    pub total: u64,
}

/// What `GET {agent_url}/metrics` reports for the agent token's organization.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AgentMetrics {
    /// The organization slug.
    pub organization: String,
    /// Agents overall.
    pub agents: AgentCounts,
    /// Agents per queue name.
    pub agent_queues: BTreeMap<String, AgentCounts>,
    /// Jobs overall.
    pub jobs: JobCounts,
    /// Jobs per queue name.
    pub job_queues: BTreeMap<String, JobCounts>,
    /// How often Buildkite asks to be polled (`Buildkite-Agent-Metrics-Poll-Duration`).
    pub poll_duration: Option<Duration>,
}

/// The response body, as the agent API sends it.
#[derive(Deserialize)]
pub(crate) struct MetricsBody {
    agents: Counts<AgentCounts>,
    jobs: Counts<JobCounts>,
    organization: Organization,
}

#[derive(Deserialize)]
struct Counts<T> {
    #[serde(flatten)]
    totals: T,
    #[serde(default)]
    queues: BTreeMap<String, T>,
}

#[derive(Deserialize)]
struct Organization {
    slug: String,
}

impl MetricsBody {
    pub(crate) fn into_metrics(self, poll_duration: Option<Duration>) -> AgentMetrics {
        AgentMetrics {
            organization: self.organization.slug,
            agents: self.agents.totals,
            agent_queues: self.agents.queues,
            jobs: self.jobs.totals,
            job_queues: self.jobs.queues,
            poll_duration,
        }
    }
}

/// The response header naming the suggested poll interval, in whole seconds.
pub(crate) const POLL_DURATION_HEADER: &str = "buildkite-agent-metrics-poll-duration";

pub(crate) fn poll_duration(headers: &http::HeaderMap) -> Option<Duration> {
    let value = headers.get(POLL_DURATION_HEADER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}
