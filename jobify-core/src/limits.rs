//! The in-flight limits: global, per queue, per pipeline. Applied after the policy, so the
//! policy stays pure: a `Run` over a limit becomes a `Defer`.

use std::collections::HashMap;

use crate::book::Book;
use crate::config::{LimitsConfig, QueueConfig};
use crate::decision::{Reason, ReasonCode};
use crate::job::ScheduledJob;
use crate::policy::queue_of;

/// The limits of `[limits]` and `[[queues]]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    global: u32,
    per_pipeline: Option<u32>,
    per_queue: HashMap<String, u32>,
}

impl Limits {
    /// The limits `limits` and `queues` configure.
    pub fn new(limits: &LimitsConfig, queues: &[QueueConfig]) -> Self {
        Limits {
            global: limits.max_in_flight,
            per_pipeline: limits.per_pipeline,
            per_queue: queues
                .iter()
                .filter_map(|q| q.max_in_flight.map(|max| (q.name.clone(), max)))
                .collect(),
        }
    }

    /// At most `global` in flight, nothing else limited.
    pub fn global(global: u32) -> Self {
        Limits {
            global,
            per_pipeline: None,
            per_queue: HashMap::new(),
        }
    }

    /// Adds a per-pipeline limit.
    #[must_use]
    pub fn with_per_pipeline(mut self, max: u32) -> Self {
        self.per_pipeline = Some(max);
        self
    }

    /// Adds a limit for `queue`.
    #[must_use]
    pub fn with_queue(mut self, queue: impl Into<String>, max: u32) -> Self {
        self.per_queue.insert(queue.into(), max);
        self
    }

    /// The queue a job counts against (`default` when it names none).
    pub fn queue_key(job: &ScheduledJob) -> &str {
        queue_of(job)
    }

    /// `None` when one more workload for `job` fits; otherwise why it must wait.
    pub fn check(&self, book: &Book, job: &ScheduledJob) -> Option<Reason> {
        let in_flight = book.in_flight();
        if in_flight >= self.global {
            return Some(Reason::new(
                ReasonCode::LIMIT_GLOBAL,
                format!(
                    "waiting for a free slot: {in_flight} jobs are in flight and jobify runs at \
                     most {} at once (limits.max_in_flight)",
                    self.global
                ),
            ));
        }
        let queue = queue_of(job);
        if let Some(&max) = self.per_queue.get(queue) {
            let n = book.in_flight_in_queue(queue);
            if n >= max {
                return Some(Reason::new(
                    ReasonCode::LIMIT_QUEUE,
                    format!(
                        "waiting for a free slot: queue `{queue}` has {n} jobs in flight, its \
                         limit ([[queues]] max_in_flight) is {max}"
                    ),
                ));
            }
        }
        if let Some(max) = self.per_pipeline {
            let n = book.in_flight_in_pipeline(&job.pipeline);
            if n >= max {
                return Some(Reason::new(
                    ReasonCode::LIMIT_PIPELINE,
                    format!(
                        "waiting for a free slot: pipeline `{}` has {n} jobs in flight, the \
                         limit per pipeline (limits.per_pipeline) is {max}",
                        job.pipeline
                    ),
                ));
            }
        }
        None
    }
}
