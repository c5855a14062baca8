//! The scheduler's observer hook, fed into [`Metrics`], [`Readiness`] and the log: one line
//! per decision with its reason, counters and gauges for everything else.

use std::sync::Arc;
use std::time::Duration;

use jobify_core::scheduler::{FeedbackReport, FeedbackRetry, SchedulerObserver, SweepSummary};
use jobify_core::{
    CancelError, Decision, FeedbackError, JobId, LaunchError, Launched, Limits, MonitorError,
    Reason, ScheduledJob,
};
use tokio::time::Instant;

use crate::adapters::poll_error_kind;
use crate::health::Readiness;
use crate::metrics::Metrics;

/// Reports what the scheduler does to metrics, readiness and logs.
#[derive(Clone, Debug)]
pub struct Observer {
    metrics: Metrics,
    readiness: Arc<Readiness>,
}

impl Observer {
    /// An observer updating `metrics` and `readiness`.
    pub fn new(metrics: Metrics, readiness: Arc<Readiness>) -> Self {
        Observer { metrics, readiness }
    }
}

/// Time from the job becoming scheduled in Buildkite until now, when Buildkite said when.
fn since_scheduled(job: &ScheduledJob) -> Option<Duration> {
    let scheduled_at = job.scheduled_at?;
    let elapsed = jiff::Timestamp::now().duration_since(scheduled_at);
    Duration::try_from(elapsed).ok()
}

impl SchedulerObserver for Observer {
    fn on_poll(&self, result: Result<usize, &MonitorError>) {
        match result {
            Ok(_) => {
                self.metrics.poll_succeeded();
                self.readiness.poll_succeeded(Instant::now());
            }
            Err(error) => {
                self.metrics.poll_failed(poll_error_kind(error));
                self.readiness.poll_failed(error.to_string());
            }
        }
    }

    fn on_sweep(&self, sweep: &SweepSummary) {
        self.metrics.sweep_ended(sweep);
    }

    fn on_decision(&self, job: &ScheduledJob, decision: &Decision) {
        self.metrics.decided(decision);
        let reason = decision.reason();
        let span = tracing::info_span!("job", job = %job.id, pipeline = %job.pipeline);
        let _entered = span.enter();
        // A deferred job is decided again at every poll: keep those lines out of `info`.
        if matches!(decision, Decision::Defer { .. }) {
            tracing::debug!(decision = decision.kind(), code = %reason.code, reason = %reason.message, "decided");
        } else {
            tracing::info!(decision = decision.kind(), code = %reason.code, reason = %reason.message, "decided");
        }
    }

    fn on_launch(
        &self,
        job: &ScheduledJob,
        result: &Result<Launched, LaunchError>,
        _latency: Duration,
    ) {
        match result {
            Ok(launched) => self.metrics.launched(*launched, since_scheduled(job)),
            Err(error) => self.metrics.launch_failed(error),
        }
    }

    fn on_failed_to_start(&self, _job: JobId, reason: &Reason) {
        self.metrics.failed_to_start(reason);
    }

    fn on_agent_lost(&self, _job: JobId, reason: &Reason) {
        self.metrics.agent_lost(reason);
    }

    fn on_workload_stopped(&self, _job: JobId, reason: &Reason) {
        self.metrics.stopped(reason);
    }

    fn on_feedback(&self, _job: JobId, _result: Result<(), &FeedbackError>) {}

    fn on_cancel(&self, _job: JobId, result: &Result<(), CancelError>) {
        if result.is_ok() {
            self.metrics.cancelled();
        }
    }

    fn on_in_flight_by_queue(&self, by_queue: &[(String, u32)]) {
        self.metrics.set_in_flight_by_queue(by_queue);
    }

    fn on_job_seen(&self, job: &ScheduledJob) {
        self.metrics.job_seen(Limits::queue_key(job));
    }

    fn on_feedback_retry(&self, _job: JobId, report: FeedbackReport, retry: FeedbackRetry) {
        self.metrics.feedback_retry(report.kind(), retry.kind());
    }

    fn on_leadership(&self, leader: bool) {
        self.metrics.set_leader(leader);
    }
}

#[cfg(test)]
mod tests {
    use jobify_core::{Reason, ReasonCode, SweepEnd};
    use prometheus_client::registry::Registry;

    use super::*;
    use crate::health::{Leadership, NotReady};

    fn observer() -> (Observer, Registry, Arc<Readiness>) {
        let mut registry = Registry::default();
        let metrics = Metrics::register(&mut registry);
        let readiness = Arc::new(Readiness::new(Duration::from_secs(5)));
        readiness.set_leadership(Leadership::Leader);
        (
            Observer::new(metrics, readiness.clone()),
            registry,
            readiness,
        )
    }

    #[tokio::test(start_paused = true)]
    async fn polls_drive_metrics_and_readiness() {
        let (observer, registry, readiness) = observer();
        observer.on_poll(Err(&MonitorError::Unauthorized("HTTP 401".into())));
        assert!(matches!(
            readiness.check(Instant::now()),
            Err(NotReady::NeverPolled(Some(_)))
        ));
        observer.on_poll(Ok(4));
        assert_eq!(readiness.check(Instant::now()), Ok(()));
        observer.on_sweep(&SweepSummary {
            end: SweepEnd::Completed,
            pages: 1,
            jobs: 4,
            duration: Duration::from_millis(30),
        });
        let text = crate::metrics::encode(&registry);
        assert!(text.contains("jobify_monitor_polls_total 1"), "{text}");
        assert!(text.contains("jobify_monitor_scheduled_jobs 4"), "{text}");
        assert!(
            text.contains("jobify_scheduler_sweeps_total{end=\"completed\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("jobify_monitor_poll_errors_total{kind=\"unauthorized\"} 1"),
            "{text}"
        );
    }

    #[test]
    fn decisions_launches_and_cancellations_are_counted() {
        let (observer, registry, _) = observer();
        let job = ScheduledJob::fixture().build();
        let defer = Decision::Defer {
            reason: Reason::new(ReasonCode::LIMIT_GLOBAL, "25 in flight"),
        };
        observer.on_decision(&job, &defer);
        observer.on_decision(&job, &defer);
        observer.on_launch(&job, &Ok(Launched::Created), Duration::from_millis(20));
        observer.on_launch(
            &job,
            &Err(LaunchError::Forbidden {
                message: "jobs is forbidden".into(),
            }),
            Duration::from_millis(20),
        );
        observer.on_cancel(job.id, &Ok(()));
        observer.on_job_seen(&job);
        observer.on_in_flight_by_queue(&[("kubernetes".to_owned(), 7)]);
        observer.on_feedback_retry(
            job.id,
            FeedbackReport::Rejected,
            FeedbackRetry::Scheduled {
                attempt: 2,
                after: Duration::from_secs(2),
            },
        );
        observer.on_leadership(true);
        let text = crate::metrics::encode(&registry);
        for line in [
            "jobify_scheduler_decisions_total{decision=\"defer\",reason=\"limit_global\"} 2",
            "jobify_scheduler_launches_total{outcome=\"created\"} 1",
            "jobify_scheduler_launch_errors_total{reason=\"forbidden\"} 1",
            "jobify_workloads_cancellations_total 1",
            "jobify_scheduler_in_flight{queue=\"kubernetes\"} 7",
            "jobify_scheduler_jobs_seen_total{queue=\"kubernetes\"} 1",
            "jobify_scheduler_feedback_retries_total{report=\"rejected\",outcome=\"scheduled\"} 1",
            "jobify_scheduler_leader 1",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }
}
