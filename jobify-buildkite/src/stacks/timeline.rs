//! [`StacksTimeline`]: what jobify does with a job, on the job's timeline in Buildkite
//! (stack notifications), so a pipeline's author sees why a job waits before any agent
//! starts: held back by a limit, its Kubernetes Job created, its pod waiting, jobify giving
//! up on it.
//!
//! Notifications are best effort. [`StacksTimeline::note`] never waits: it queues (a bounded
//! queue; a full one drops the message and counts it in the log), and one task sends what
//! is queued in batches of up to a thousand, at most ten times a second, without retries,
//! as Buildkite's own controller does.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use buildkite_api::stacks::{MAX_BATCH, Notification, StacksClient};
use jobify_core::{Decision, JobId, Launched, SchedulerEvent, SchedulerObserver};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Messages waiting to be sent, at most.
const QUEUE: usize = 100_000;

/// How long the sender gathers a batch.
const BATCH_WINDOW: Duration = Duration::from_millis(100);

/// How many jobs' first deferral is remembered, so each is noted once.
const DEFERRED_MEMORY: usize = 100_000;

/// Queues notifications for the timeline; see the [module docs](self).
pub struct StacksTimeline {
    queue: mpsc::Sender<Notification>,
    /// Jobs already noted as held back, so each is noted once while it waits.
    deferred: Mutex<HashSet<JobId>>,
}

/// What goes on a job's timeline for `event`, if anything.
pub fn timeline_note(event: &SchedulerEvent) -> Option<(JobId, String)> {
    match event {
        SchedulerEvent::Decided {
            job,
            decision: Decision::Defer { reason },
            ..
        } => Some((
            *job,
            format!("jobify: waiting for capacity: {}", reason.message),
        )),
        SchedulerEvent::Launched {
            job,
            result: Ok(Launched::Created),
            ..
        } => Some((
            *job,
            "jobify created the Kubernetes Job; waiting for its pod and agent to start".to_owned(),
        )),
        SchedulerEvent::PodWaiting { job, detail } => {
            Some((*job, format!("jobify: the pod is waiting: {detail}")))
        }
        SchedulerEvent::FailedToStart { job, reason } => Some((
            *job,
            // The code first: Buildkite keeps 255 bytes of a notification.
            format!("jobify gave up ({}): {}", reason.code, reason.message),
        )),
        SchedulerEvent::AgentLost { job, reason } => Some((
            *job,
            format!("jobify: the agent was lost: {}", reason.message),
        )),
        _ => None,
    }
}

impl StacksTimeline {
    /// A timeline for the stack `stack_key`, and the task that sends its notifications until
    /// `stop` (then it sends what is queued, once).
    pub fn start(
        client: StacksClient,
        stack_key: String,
        stop: CancellationToken,
    ) -> (
        StacksTimeline,
        impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        let (queue, receiver) = mpsc::channel(QUEUE);
        let timeline = StacksTimeline {
            queue,
            deferred: Mutex::new(HashSet::new()),
        };
        (timeline, send(client, stack_key, receiver, stop))
    }

    /// Notes `event` on its job's timeline, if it is worth a note (see [`timeline_note`]).
    /// A job held back by a limit is noted the first time only.
    pub fn observe(&self, event: &SchedulerEvent) {
        let Some((job, detail)) = timeline_note(event) else {
            return;
        };
        if matches!(
            event,
            SchedulerEvent::Decided {
                decision: Decision::Defer { .. },
                ..
            }
        ) {
            let mut deferred = self
                .deferred
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if deferred.len() >= DEFERRED_MEMORY {
                deferred.clear();
            }
            if !deferred.insert(job) {
                return;
            }
        }
        self.note(job, detail);
    }

    /// Queues `detail` for `job`'s timeline, stamped now.
    pub fn note(&self, job: JobId, detail: String) {
        let notification = Notification {
            job_uuid: job.to_string(),
            detail,
            timestamp: Some(jiff::Timestamp::now()),
        };
        if self.queue.try_send(notification).is_err() {
            tracing::debug!(%job, "the timeline queue is full; dropping a notification");
        }
    }
}

impl SchedulerObserver for StacksTimeline {
    fn on_event(&self, event: &SchedulerEvent) {
        self.observe(event);
    }
}

/// Sends queued notifications in batches until `stop`, then what is left.
async fn send(
    client: StacksClient,
    stack_key: String,
    mut receiver: mpsc::Receiver<Notification>,
    stop: CancellationToken,
) {
    loop {
        let first = tokio::select! {
            () = stop.cancelled() => break,
            first = receiver.recv() => match first {
                Some(first) => first,
                None => return,
            },
        };
        let mut batch = vec![first];
        let window = tokio::time::sleep(BATCH_WINDOW);
        tokio::pin!(window);
        while batch.len() < MAX_BATCH {
            tokio::select! {
                () = &mut window => break,
                next = receiver.recv() => match next {
                    Some(next) => batch.push(next),
                    None => break,
                },
            }
        }
        deliver(&client, &stack_key, &batch).await;
    }
    let mut rest = Vec::new();
    while let Ok(next) = receiver.try_recv() {
        rest.push(next);
    }
    for batch in rest.chunks(MAX_BATCH) {
        deliver(&client, &stack_key, batch).await;
    }
}

async fn deliver(client: &StacksClient, stack_key: &str, batch: &[Notification]) {
    match client.notify(stack_key, batch).await {
        Ok(errors) if errors.is_empty() => {}
        Ok(errors) => {
            for error in errors {
                tracing::debug!(error = %error.error, count = error.indexes.len(), "Buildkite refused some timeline notifications");
            }
        }
        Err(error) => {
            tracing::debug!(%error, count = batch.len(), "sending timeline notifications failed; they are dropped");
        }
    }
}

#[cfg(test)]
mod tests {
    use jobify_core::{Reason, ReasonCode};

    use super::*;

    #[test]
    fn a_launch_a_deferral_and_giving_up_are_noted_and_a_poll_is_not() {
        let job = JobId::from(uuid::Uuid::new_v4());
        let reason = Reason::new(
            ReasonCode("limit_global"),
            "100 jobs in flight (limits.max_in_flight)",
        );
        let deferred = SchedulerEvent::Decided {
            job,
            pipeline: "app".to_owned(),
            decision: Decision::Defer {
                reason: reason.clone(),
            },
            slot_freed: false,
        };
        assert_eq!(
            timeline_note(&deferred),
            Some((
                job,
                "jobify: waiting for capacity: 100 jobs in flight (limits.max_in_flight)"
                    .to_owned()
            ))
        );
        let gave_up = SchedulerEvent::FailedToStart {
            job,
            reason: Reason::new(ReasonCode("image_pull_failed"), "image `ruby:9` not found"),
        };
        assert!(timeline_note(&gave_up).is_some_and(|(_, d)| d.contains("ruby:9")));
        assert_eq!(timeline_note(&SchedulerEvent::Polled(Ok(3))), None);
    }
}
