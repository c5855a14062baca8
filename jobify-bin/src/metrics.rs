//! What jobify exports on `/metrics`: one [`Registry`], a sub-registry per component.
//!
//! | component   | families (prefix `jobify_`)                                               |
//! |-------------|---------------------------------------------------------------------------|
//! | `monitor`   | `polls_total`, `poll_errors_total{kind}`, `scheduled_jobs`, `rate_limit_remaining` |
//! | `scheduler` | `sweeps_total{end}`, `sweep_duration_seconds`, `jobs_seen_total{queue}`, `decisions_total{decision,reason}`, `launches_total{outcome}`, `launch_errors_total{reason}`, `in_flight{queue}`, `scheduled_to_created_seconds`, `feedback_retries_total{report,outcome}`, `leader` |
//! | `workloads` | `failed_to_start_total{cause}`, `agents_lost_total{cause}`, `stopped_total{cause}`, `cancellations_total` |
//! | `buildkite` | `queue_jobs{queue,state}`, `queue_agents{queue,state}` (from `/v3/metrics`) |
//!
//! `rate_limit_remaining` and the `buildkite` families are `jobify-buildkite`'s
//! [`BuildkiteMetrics`], registered here beside the others. [`Metrics`] is the one handle the
//! rest of the binary updates; it is cheap to clone.

use std::sync::Arc;
use std::time::Duration;

use jobify_buildkite::BuildkiteMetrics;
use jobify_core::{Decision, LaunchError, Launched, Reason, SweepEnd, SweepSummary};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of `sweeps_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndLabels {
    end: &'static str,
}

/// Labels of `poll_errors_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PollErrorLabels {
    kind: &'static str,
}

/// Labels of `decisions_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    decision: &'static str,
    reason: &'static str,
}

/// Labels of `launches_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

/// Labels of `feedback_retries_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RetryLabels {
    report: &'static str,
    outcome: &'static str,
}

/// Labels of counters keyed by a reason or cause code.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabels {
    reason: &'static str,
}

/// Labels of `failed_to_start_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CauseLabels {
    cause: &'static str,
}

/// Labels of series per queue jobify serves (`in_flight`, `jobs_seen_total`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabels {
    queue: String,
}

/// Why a poll failed, as a label value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PollErrorKind {
    /// Buildkite answered 429 or the budget was spent.
    RateLimited,
    /// The token was refused.
    Unauthorized,
    /// Network, server error, undecodable answer.
    Transient,
}

impl PollErrorKind {
    fn as_str(self) -> &'static str {
        match self {
            PollErrorKind::RateLimited => "rate_limited",
            PollErrorKind::Unauthorized => "unauthorized",
            PollErrorKind::Transient => "transient",
        }
    }
}

/// The metrics jobify exports. Clone it freely: clones update the same series.
#[derive(Clone, Debug)]
pub struct Metrics {
    polls: Counter,
    poll_errors: Family<PollErrorLabels, Counter>,
    scheduled_jobs: Gauge,
    sweeps: Family<EndLabels, Counter>,
    sweep_duration: Histogram,
    decisions: Family<DecisionLabels, Counter>,
    launches: Family<OutcomeLabels, Counter>,
    launch_errors: Family<CodeLabels, Counter>,
    jobs_seen: Family<QueueLabels, Counter>,
    in_flight: Family<QueueLabels, Gauge>,
    /// Queues with an `in_flight` series: a queue that empties keeps its series at 0.
    in_flight_queues: Arc<std::sync::Mutex<Vec<String>>>,
    feedback_retries: Family<RetryLabels, Counter>,
    scheduled_to_created: Histogram,
    leader: Gauge,
    failed_to_start: Family<CauseLabels, Counter>,
    agents_lost: Family<CauseLabels, Counter>,
    stopped: Family<CauseLabels, Counter>,
    cancellations: Counter,
    buildkite: BuildkiteMetrics,
}

impl Metrics {
    /// Creates the metrics and registers them in `registry` under `jobify_<component>_`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Metrics {
            polls: Counter::default(),
            poll_errors: Family::default(),
            scheduled_jobs: Gauge::default(),
            sweeps: Family::default(),
            // 10 ms .. ~80 s: one page of an idle queue to a backlog of thousands.
            sweep_duration: Histogram::new(exponential_buckets(0.01, 2.0, 14)),
            decisions: Family::default(),
            launches: Family::default(),
            launch_errors: Family::default(),
            jobs_seen: Family::default(),
            in_flight: Family::default(),
            in_flight_queues: Arc::default(),
            feedback_retries: Family::default(),
            // 50 ms .. ~7 min: from a warm cluster to a cold node pool.
            scheduled_to_created: Histogram::new(exponential_buckets(0.05, 2.0, 14)),
            leader: Gauge::default(),
            failed_to_start: Family::default(),
            agents_lost: Family::default(),
            stopped: Family::default(),
            cancellations: Counter::default(),
            buildkite: BuildkiteMetrics::default(),
        };
        let jobify = registry.sub_registry_with_prefix("jobify");

        let monitor = jobify.sub_registry_with_prefix("monitor");
        monitor.register(
            "polls",
            "Requests to Buildkite for a page of scheduled jobs that succeeded",
            metrics.polls.clone(),
        );
        monitor.register(
            "poll_errors",
            "Requests to Buildkite for a page of scheduled jobs that failed, by kind",
            metrics.poll_errors.clone(),
        );
        monitor.register(
            "scheduled_jobs",
            "Scheduled jobs Buildkite listed for the served queues in the last complete sweep",
            metrics.scheduled_jobs.clone(),
        );

        let scheduler = jobify.sub_registry_with_prefix("scheduler");
        scheduler.register(
            "sweeps",
            "Polls (sweeps through the scheduled jobs, page by page) that ended, by how: \
             completed, stopped_early (a limit held jobs back), failed, abandoned (leadership \
             lost)",
            metrics.sweeps.clone(),
        );
        scheduler.register(
            "sweep_duration_seconds",
            "From a sweep's first page request to its end",
            metrics.sweep_duration.clone(),
        );
        scheduler.register(
            "jobs_seen",
            "Scheduled jobs seen for the first time in a poll, by queue",
            metrics.jobs_seen.clone(),
        );
        scheduler.register(
            "decisions",
            "Policy decisions, by decision and reason code",
            metrics.decisions.clone(),
        );
        scheduler.register(
            "launches",
            "Workload launches that succeeded, by outcome (created, already_exists)",
            metrics.launches.clone(),
        );
        scheduler.register(
            "launch_errors",
            "Workload launches that failed, by reason (invalid, forbidden, transient)",
            metrics.launch_errors.clone(),
        );
        scheduler.register(
            "in_flight",
            "Workloads launched and not yet finished, by queue (sum for the total)",
            metrics.in_flight.clone(),
        );
        scheduler.register(
            "feedback_retries",
            "Failed reports to Buildkite (a rejection, or a workload that can never start), by \
             report and by what became of them (scheduled for a retry, given_up after the last \
             attempt, dropped when too many wait)",
            metrics.feedback_retries.clone(),
        );
        scheduler.register(
            "scheduled_to_created_seconds",
            "Time from a job becoming scheduled in Buildkite to its workload being created",
            metrics.scheduled_to_created.clone(),
        );
        scheduler.register(
            "leader",
            "1 while this replica holds the leader lease and launches jobs, else 0",
            metrics.leader.clone(),
        );

        let workloads = jobify.sub_registry_with_prefix("workloads");
        workloads.register(
            "failed_to_start",
            "Workloads given up on because their pod could never start, by cause",
            metrics.failed_to_start.clone(),
        );
        workloads.register(
            "agents_lost",
            "Running workloads whose pod was disrupted (evicted, preempted, its node lost) \
             before the Job ended: the agent was lost and jobify stopped the Job, by cause",
            metrics.agents_lost.clone(),
        );
        workloads.register(
            "stopped",
            "Workloads stopped by jobify because containers kept their pod running after the \
             agent had ended, by cause",
            metrics.stopped.clone(),
        );
        workloads.register(
            "cancellations",
            "Workloads removed because their Buildkite job was cancelled",
            metrics.cancellations.clone(),
        );
        Metrics {
            buildkite: BuildkiteMetrics::register(registry),
            ..metrics
        }
    }

    /// The Buildkite side's metrics, for the monitor and the queue-figures reader.
    pub fn buildkite(&self) -> &BuildkiteMetrics {
        &self.buildkite
    }

    /// A page request to Buildkite succeeded.
    pub fn poll_succeeded(&self) {
        self.polls.inc();
    }

    /// A sweep ended; a completed one listed `summary.jobs` scheduled jobs in all.
    pub fn sweep_ended(&self, summary: &SweepSummary) {
        self.sweeps
            .get_or_create(&EndLabels {
                end: summary.end.kind(),
            })
            .inc();
        self.sweep_duration.observe(summary.duration.as_secs_f64());
        if summary.end == SweepEnd::Completed {
            self.scheduled_jobs.set(saturating_i64(
                u64::try_from(summary.jobs).unwrap_or(u64::MAX),
            ));
        }
    }

    /// A poll of Buildkite failed.
    pub fn poll_failed(&self, kind: PollErrorKind) {
        self.poll_errors
            .get_or_create(&PollErrorLabels {
                kind: kind.as_str(),
            })
            .inc();
    }

    /// The policy decided on a job.
    pub fn decided(&self, decision: &Decision) {
        self.decisions
            .get_or_create(&DecisionLabels {
                decision: decision.kind(),
                reason: decision.reason().code.as_str(),
            })
            .inc();
    }

    /// A workload was launched; `latency` is the time since the job became scheduled, when
    /// Buildkite said when that was.
    pub fn launched(&self, outcome: Launched, latency: Option<Duration>) {
        let outcome = match outcome {
            Launched::Created => "created",
            Launched::AlreadyExists => "already_exists",
        };
        self.launches
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
        if let Some(latency) = latency {
            self.scheduled_to_created.observe(latency.as_secs_f64());
        }
    }

    /// A launch failed.
    pub fn launch_failed(&self, error: &LaunchError) {
        let reason = match error {
            LaunchError::Invalid { .. } => "invalid",
            LaunchError::Forbidden { .. } => "forbidden",
            LaunchError::Transient { .. } => "transient",
        };
        self.launch_errors
            .get_or_create(&CodeLabels { reason })
            .inc();
    }

    /// A poll listed a job for the first time; `queue` is the queue it counts against.
    pub fn job_seen(&self, queue: &str) {
        self.jobs_seen
            .get_or_create(&QueueLabels {
                queue: queue.to_owned(),
            })
            .inc();
    }

    /// Gives each of `queues` an `in_flight` series at 0 until workloads are counted in it,
    /// so the page shows the served queues (and a sum of 0) before the first launch.
    pub fn declare_queues<'q>(&self, queues: impl IntoIterator<Item = &'q str>) {
        let mut known = self
            .in_flight_queues
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for queue in queues {
            if !known.iter().any(|q| q == queue) {
                self.in_flight.get_or_create(&queue_labels(queue)).set(0);
                known.push(queue.to_owned());
            }
        }
    }

    /// The workloads in flight per queue: every queue with any, as the scheduler reports
    /// them. A queue seen before and missing now is set to 0.
    pub fn set_in_flight_by_queue(&self, by_queue: &[(String, u32)]) {
        let mut known = self
            .in_flight_queues
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for queue in known.iter() {
            if !by_queue.iter().any(|(q, _)| q == queue) {
                self.in_flight.get_or_create(&queue_labels(queue)).set(0);
            }
        }
        for (queue, count) in by_queue {
            self.in_flight
                .get_or_create(&queue_labels(queue))
                .set(i64::from(*count));
            if !known.contains(queue) {
                known.push(queue.clone());
            }
        }
    }

    /// A report to Buildkite failed: `report` is what it said (`rejected`,
    /// `failed_to_start`), `outcome` what became of it (`scheduled`, `given_up`, `dropped`).
    pub fn feedback_retry(&self, report: &'static str, outcome: &'static str) {
        self.feedback_retries
            .get_or_create(&RetryLabels { report, outcome })
            .inc();
    }

    /// Whether this replica leads.
    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// A workload's pod could never start.
    pub fn failed_to_start(&self, reason: &Reason) {
        self.failed_to_start
            .get_or_create(&CauseLabels {
                cause: reason.code.as_str(),
            })
            .inc();
    }

    /// The agent of a running workload was lost.
    pub fn agent_lost(&self, reason: &Reason) {
        self.agents_lost
            .get_or_create(&CauseLabels {
                cause: reason.code.as_str(),
            })
            .inc();
    }

    /// A workload whose containers outlived its agent was stopped.
    pub fn stopped(&self, reason: &Reason) {
        self.stopped
            .get_or_create(&CauseLabels {
                cause: reason.code.as_str(),
            })
            .inc();
    }

    /// A workload was removed because its job was cancelled.
    pub fn cancelled(&self) {
        self.cancellations.inc();
    }
}

fn queue_labels(queue: &str) -> QueueLabels {
    QueueLabels {
        queue: queue.to_owned(),
    }
}

fn saturating_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Encodes `registry` in the OpenMetrics text format Prometheus scrapes.
pub fn encode(registry: &Registry) -> String {
    let mut text = String::new();
    // Writing to a String cannot fail; an error here would come from a metric's own
    // encoder, and a partial page is still more useful than none.
    if let Err(err) = prometheus_client::encoding::text::encode(&mut text, registry) {
        tracing::warn!(error = %err, "encoding metrics failed");
    }
    text
}
