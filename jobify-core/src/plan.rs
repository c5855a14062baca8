//! One round of deciding: the synchronous heart of the scheduler. Given the jobs a poll
//! returned, it asks the policy about each new one, applies limits in launch order, updates
//! the book, and returns what the scheduler must carry out.

use crate::book::{Book, BookEvent, Settled};
use crate::decision::{Decision, Reason, Template};
use crate::job::{JobId, ScheduledJob};
use crate::limits::Limits;
use crate::order::launch_order;
use crate::policy::Policy;

/// What a round asks the scheduler to do.
#[derive(Debug, Default)]
#[must_use = "a plan does nothing until the scheduler carries it out"]
pub struct Plan {
    /// Workloads to create, in launch order. Each already counts against the limits.
    pub launches: Vec<(ScheduledJob, Template)>,
    /// Jobs to fail in Buildkite with a reason.
    pub rejections: Vec<(ScheduledJob, Reason)>,
}

/// Decides the jobs of one poll. `scheduled` is everything Buildkite listed; jobs the book
/// already settled are not decided again. `on_decision` sees every decision made, after limits.
pub fn plan_round<P: Policy + ?Sized>(
    book: &mut Book,
    policy: &P,
    limits: &Limits,
    scheduled: Vec<ScheduledJob>,
    mut on_decision: impl FnMut(&ScheduledJob, &Decision),
) -> Plan {
    book.apply(BookEvent::Polled(
        scheduled.iter().map(|j| j.id).collect::<Vec<JobId>>(),
    ));
    let mut plan = Plan::default();
    let mut runnable = Vec::new();
    for job in scheduled {
        if !book.should_decide(job.id) {
            continue;
        }
        let decision = policy.decide(&job);
        let settled = match decision {
            Decision::Run { template, reason } => {
                runnable.push((job, template, reason));
                continue;
            }
            Decision::Skip { .. } => Settled::Skipped,
            Decision::Defer { .. } => Settled::Deferred,
            Decision::Reject { .. } => Settled::Rejected,
        };
        on_decision(&job, &decision);
        book.apply(BookEvent::Decided {
            job: job.id,
            pipeline: job.pipeline.clone(),
            settled,
        });
        if let Decision::Reject { reason } = decision {
            plan.rejections.push((job, reason));
        }
    }
    for (job, template, reason) in launch_order(runnable, book, |(job, _, _)| job) {
        if let Some(wait) = limits.check(book, &job) {
            on_decision(&job, &Decision::Defer { reason: wait });
            book.apply(BookEvent::Decided {
                job: job.id,
                pipeline: job.pipeline.clone(),
                settled: Settled::Deferred,
            });
            continue;
        }
        on_decision(
            &job,
            &Decision::Run {
                template: template.clone(),
                reason,
            },
        );
        book.apply(BookEvent::LaunchStarted {
            job: job.id,
            queue: Some(Limits::queue_key(&job).to_owned()),
            pipeline: job.pipeline.clone(),
        });
        plan.launches.push((job, template));
    }
    plan
}
