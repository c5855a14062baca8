//! The scheduler's events, fed into [`Metrics`], [`Readiness`] and the log: one line per
//! decision with its reason (the only place a decision is logged), counters and gauges for
//! everything else.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use jobify_core::{Decision, JobId, SchedulerEvent, SchedulerObserver};
use tokio::time::Instant;

use crate::adapters::poll_error_kind;
use crate::health::Readiness;
use crate::metrics::Metrics;

/// Reports what the scheduler does to metrics, readiness and logs.
#[derive(Clone, Debug)]
pub(crate) struct Observer {
    metrics: Metrics,
    readiness: Arc<Readiness>,
}

impl Observer {
    /// An observer updating `metrics` and `readiness`.
    pub(crate) fn new(metrics: Metrics, readiness: Arc<Readiness>) -> Self {
        Observer { metrics, readiness }
    }

    fn decided(&self, job: JobId, pipeline: &str, decision: &Decision, slot_freed: bool) {
        self.metrics.decided(decision);
        let reason = decision.reason();
        let span = tracing::info_span!("job", job = %job, pipeline = %pipeline);
        let _entered = span.enter();
        // A deferred job is decided again at every poll: keep those lines out of `info`.
        if matches!(decision, Decision::Defer { .. }) {
            tracing::debug!(decision = decision.kind(), code = %reason.code, reason = %reason.message, "decided");
        } else if slot_freed {
            tracing::info!(decision = decision.kind(), code = %reason.code, reason = %reason.message, slot_freed = true, "decided");
        } else {
            tracing::info!(decision = decision.kind(), code = %reason.code, reason = %reason.message, "decided");
        }
    }
}

/// Time from the job becoming scheduled in Buildkite until now, when Buildkite said when.
fn since_scheduled(scheduled_at: Option<Timestamp>) -> Option<Duration> {
    let elapsed = Timestamp::now().duration_since(scheduled_at?);
    Duration::try_from(elapsed).ok()
}

impl SchedulerObserver for Observer {
    fn on_event(&self, event: &SchedulerEvent) {
        match event {
            SchedulerEvent::Polled(Ok(_)) => {
                self.metrics.poll_succeeded();
                self.readiness.poll_succeeded(Instant::now());
            }
            SchedulerEvent::Polled(Err(error)) => {
                self.metrics.poll_failed(poll_error_kind(error));
                self.readiness.poll_failed(error.to_string());
            }
            SchedulerEvent::SweepEnded(sweep) => self.metrics.sweep_ended(sweep),
            SchedulerEvent::JobSeen { queue, .. } => self.metrics.job_seen(queue),
            SchedulerEvent::Decided {
                job,
                pipeline,
                decision,
                slot_freed,
            } => self.decided(*job, pipeline, decision, *slot_freed),
            SchedulerEvent::Launched {
                scheduled_at,
                result,
                ..
            } => match result {
                Ok(launched) => self
                    .metrics
                    .launched(*launched, since_scheduled(*scheduled_at)),
                Err(error) => self.metrics.launch_failed(error),
            },
            SchedulerEvent::FailedToStart { reason, .. } => self.metrics.failed_to_start(reason),
            SchedulerEvent::AgentLost { reason, .. } => self.metrics.agent_lost(reason),
            SchedulerEvent::WorkloadStopped { reason, .. } => self.metrics.stopped(reason),
            SchedulerEvent::Cancelled { result, .. } => {
                if result.is_ok() {
                    self.metrics.cancelled();
                }
            }
            SchedulerEvent::InFlightByQueue(by_queue) => {
                self.metrics.set_in_flight_by_queue(by_queue);
            }
            SchedulerEvent::FeedbackRetry { report, retry, .. } => {
                self.metrics.feedback_retry(report.kind(), retry.kind());
            }
            SchedulerEvent::Leadership(leader) => self.metrics.set_leader(*leader),
            // The total is the sum of the per-queue gauge; a report's outcome is logged by
            // the scheduler and counted through `FeedbackRetry` when it failed.
            SchedulerEvent::InFlight(_)
            | SchedulerEvent::Told { .. }
            | SchedulerEvent::Reserved { .. }
            | SchedulerEvent::PodWaiting { .. } => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use jobify_core::{
        FeedbackReport, FeedbackRetry, LaunchError, Launched, MonitorError, Reason, ReasonCode,
        ScheduledJob, SweepEnd, SweepSummary,
    };
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
        observer.on_event(&SchedulerEvent::Polled(Err(MonitorError::Unauthorized(
            "HTTP 401".into(),
        ))));
        assert!(matches!(
            readiness.check(Instant::now()),
            Err(NotReady::NeverPolled(Some(_)))
        ));
        observer.on_event(&SchedulerEvent::Polled(Ok(4)));
        assert_eq!(readiness.check(Instant::now()), Ok(()));
        observer.on_event(&SchedulerEvent::SweepEnded(SweepSummary {
            end: SweepEnd::Completed,
            pages: 1,
            jobs: 4,
            duration: Duration::from_millis(30),
        }));
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
        let decided = || SchedulerEvent::Decided {
            job: job.id,
            pipeline: job.pipeline.clone(),
            decision: defer.clone(),
            slot_freed: false,
        };
        observer.on_event(&decided());
        observer.on_event(&decided());
        let launched = |result| SchedulerEvent::Launched {
            job: job.id,
            scheduled_at: job.scheduled_at,
            result,
            latency: Duration::from_millis(20),
        };
        observer.on_event(&launched(Ok(Launched::Created)));
        observer.on_event(&launched(Err(LaunchError::forbidden("jobs is forbidden"))));
        observer.on_event(&SchedulerEvent::Cancelled {
            job: job.id,
            result: Ok(()),
        });
        observer.on_event(&SchedulerEvent::JobSeen {
            job: job.id,
            queue: jobify_core::Limits::queue_key(&job).to_owned(),
        });
        observer.on_event(&SchedulerEvent::InFlightByQueue(vec![(
            "kubernetes".to_owned(),
            7,
        )]));
        observer.on_event(&SchedulerEvent::FeedbackRetry {
            job: job.id,
            report: FeedbackReport::Rejected,
            retry: FeedbackRetry::Scheduled {
                attempt: 2,
                after: Duration::from_secs(2),
            },
        });
        observer.on_event(&SchedulerEvent::Leadership(true));
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
