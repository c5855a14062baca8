//! Latency under a steady arrival rate: jobs are scheduled into the Buildkite simulator at a
//! fixed rate, and the Kubernetes simulator notes the moment it stored each Job
//! ([`KubeSim::job_creations`](jobify_sim::kubernetes::KubeSim::job_creations)); the Job's
//! job uuid label ties it to the moment its job was scheduled. Latency is the difference,
//! taken inside this process on both ends, with no watch or HTTP hop added to it.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use jobify_k8s::labels::JOB_UUID;
use tokio::time::{Instant, MissedTickBehavior, interval};

use crate::dispatch::exactly_once;
use crate::session::{NAMESPACE, Session, Settings};

/// What the steady-arrival run saw.
#[derive(Clone, Debug)]
pub(crate) struct Latency {
    /// Jobs scheduled.
    pub(crate) jobs: usize,
    /// Arrival rate, jobs per second.
    pub(crate) rate: f64,
    /// Median latency.
    pub(crate) p50: Duration,
    /// 99th percentile latency.
    pub(crate) p99: Duration,
    /// Largest latency.
    pub(crate) max: Duration,
}

/// Starts a session in `dir` and schedules `rate` jobs per second for `duration`.
pub(crate) async fn measure(
    settings: &Settings,
    dir: &Path,
    rate: f64,
    duration: Duration,
) -> anyhow::Result<Latency> {
    if rate <= 0.0 {
        bail!("the arrival rate must be positive, not {rate}");
    }
    let mut session = Session::start(settings, dir).await?;
    let jobs = (rate * duration.as_secs_f64()).round().max(1.0) as usize;
    let mut ticks = interval(Duration::from_secs_f64(1.0 / rate));
    ticks.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let mut scheduled_at = HashMap::with_capacity(jobs);
    for n in 0..jobs {
        ticks.tick().await;
        for job in session.env.schedule(&Settings::workload(), n, 1) {
            scheduled_at.insert(job.uuid.to_string(), Instant::now());
        }
    }
    let timeout = session.poll_interval() * 10 + Duration::from_secs(30);
    let expected = scheduled_at.len() as u64;
    session
        .wait_for("every Job of the steady run", timeout, |env| {
            env.kubernetes().stats().job_creates >= expected
        })
        .await?;
    let kubernetes = session.env.kubernetes();
    let expected: BTreeSet<String> = scheduled_at.keys().cloned().collect();
    let created = kubernetes.jobs(NAMESPACE);
    exactly_once(&expected, &created, kubernetes.stats().job_creates)
        .context("the steady run's dispatch was wrong")?;
    let uuid_of: HashMap<String, String> = created
        .into_iter()
        .filter_map(|job| {
            let uuid = job.metadata.labels?.remove(JOB_UUID)?;
            Some((job.metadata.name?, uuid))
        })
        .collect();
    let created_at: HashMap<&str, Instant> = kubernetes
        .job_creations()
        .into_iter()
        .filter(|c| c.namespace == NAMESPACE)
        .filter_map(|c| Some((uuid_of.get(&c.name)?.as_str(), c.at)))
        .collect();
    let mut latencies: Vec<Duration> = scheduled_at
        .iter()
        .filter_map(|(uuid, at)| {
            Some(
                created_at
                    .get(uuid.as_str())?
                    .saturating_duration_since(*at),
            )
        })
        .collect();
    if latencies.len() != scheduled_at.len() {
        bail!(
            "{} of {} jobs have no recorded Job creation",
            scheduled_at.len() - latencies.len(),
            scheduled_at.len()
        );
    }
    session.stop().await?;
    latencies.sort_unstable();
    Ok(Latency {
        jobs,
        rate,
        p50: percentile(&latencies, 0.50),
        p99: percentile(&latencies, 0.99),
        max: latencies.last().copied().unwrap_or_default(),
    })
}

/// The `q` quantile of sorted `values` (nearest rank); zero for none.
pub(crate) fn percentile(values: &[Duration], q: f64) -> Duration {
    if values.is_empty() {
        return Duration::ZERO;
    }
    let rank = (q * values.len() as f64).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let values: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&values, 0.50), Duration::from_millis(50));
        assert_eq!(percentile(&values, 0.99), Duration::from_millis(99));
        assert_eq!(percentile(&values[..1], 0.99), Duration::from_millis(1));
        assert_eq!(percentile(&[], 0.5), Duration::ZERO);
    }
}
