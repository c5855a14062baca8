//! Latency under a steady arrival rate: jobs are scheduled into the Buildkite simulator at a
//! fixed rate while a watch on the Kubernetes simulator notes when each job's Job appears
//! (matched by the job uuid label). Latency is the difference.
//!
//! The watch is served by the simulator in this process, so it adds only the time to push one
//! event over loopback; the figures are an upper bound by that much.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context, bail};
use futures::StreamExt;
use jobify::simenv::schedule;
use jobify_k8s::labels::JOB_UUID;
use k8s_openapi::api::batch::v1::Job;
use kube::Api;
use kube::runtime::watcher::{self, Event, watcher};
use tokio::sync::oneshot;
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

/// When each job uuid's Job was first seen.
type Seen = Arc<Mutex<HashMap<String, Instant>>>;

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
    let seen: Seen = Arc::default();
    let client = session
        .env
        .kube_client()
        .context("cannot build a client for the simulator")?;
    let (ready_tx, ready_rx) = oneshot::channel();
    let observer = tokio::spawn(observe(
        Api::namespaced(client, NAMESPACE),
        seen.clone(),
        ready_tx,
    ));
    ready_rx
        .await
        .context("the watch on Jobs ended before it was ready")?;

    let jobs = (rate * duration.as_secs_f64()).round().max(1.0) as usize;
    let mut ticks = interval(Duration::from_secs_f64(1.0 / rate));
    ticks.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let mut scheduled_at = HashMap::with_capacity(jobs);
    for n in 0..jobs {
        ticks.tick().await;
        for job in schedule(session.env.buildkite(), &Settings::workload(), n, 1) {
            scheduled_at.insert(job.handle.uuid.to_string(), Instant::now());
        }
    }
    let timeout = session.poll_interval() * 10 + Duration::from_secs(30);
    let expected = scheduled_at.len();
    let all_seen = session
        .wait_for("every Job of the steady run", timeout, |_| {
            seen.lock().unwrap_or_else(PoisonError::into_inner).len() >= expected
        })
        .await;
    observer.abort();
    all_seen?;

    let expected: BTreeSet<String> = scheduled_at.keys().cloned().collect();
    exactly_once(
        &expected,
        &session.env.kubernetes().jobs(NAMESPACE),
        session.env.kubernetes().stats().job_creates,
    )
    .context("the steady run's dispatch was wrong")?;
    session.stop().await?;

    let seen = seen.lock().unwrap_or_else(PoisonError::into_inner);
    let mut latencies: Vec<Duration> = scheduled_at
        .iter()
        .filter_map(|(uuid, at)| Some(seen.get(uuid)?.saturating_duration_since(*at)))
        .collect();
    latencies.sort_unstable();
    Ok(Latency {
        jobs,
        rate,
        p50: percentile(&latencies, 0.50),
        p99: percentile(&latencies, 0.99),
        max: latencies.last().copied().unwrap_or_default(),
    })
}

/// Notes the first time each job uuid's Job is seen; signals `ready` once the initial list
/// is done, so nothing is scheduled before the watch could see it.
async fn observe(api: Api<Job>, seen: Seen, ready: oneshot::Sender<()>) {
    let mut ready = Some(ready);
    let mut events = std::pin::pin!(watcher(api, watcher::Config::default()));
    while let Some(event) = events.next().await {
        let job = match event {
            Ok(Event::Apply(job) | Event::InitApply(job)) => job,
            Ok(Event::InitDone) => {
                if let Some(ready) = ready.take() {
                    // The benchmark waits on the other end; if it is gone there is nobody to tell.
                    let _ = ready.send(());
                }
                continue;
            }
            Ok(Event::Init | Event::Delete(_)) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "the benchmark's watch on Jobs failed; it retries");
                continue;
            }
        };
        let now = Instant::now();
        if let Some(uuid) = job.metadata.labels.as_ref().and_then(|l| l.get(JOB_UUID)) {
            seen.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(uuid.clone())
                .or_insert(now);
        }
    }
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
