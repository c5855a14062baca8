//! One round of deciding: the synchronous heart of the scheduler. Given the jobs a poll
//! returned, it asks the policy about each new one, applies limits in launch order, updates
//! the book, and returns what the scheduler must carry out.
//!
//! The scheduler runs [`plan_page`] on each page of a sweep as it arrives; [`plan_round`]
//! decides one complete poll at once (`jobify plan`, tests). [`plan_waiting`] runs when a slot
//! frees between pages and sweeps: it re-checks the jobs a limit held back, without asking the
//! policy again.

use crate::book::{Book, BookEvent, JobStatus, Settled};
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
    /// Jobs the policy would run that a limit held back (deferred in the book): the ones
    /// [`plan_waiting`] may launch when a slot frees before the next poll.
    pub waiting: Vec<Waiting>,
}

/// A job the policy decided to run that waits for a free slot.
#[derive(Clone, Debug)]
pub struct Waiting {
    /// The job, as the poll listed it.
    pub job: ScheduledJob,
    /// The pod template the policy chose.
    pub template: Template,
    /// Why the policy runs it.
    pub reason: Reason,
}

/// Decides the jobs of one complete poll: `scheduled` is everything Buildkite listed, so
/// settled jobs it does not list are forgotten ([`BookEvent::Polled`]). Jobs the book already
/// settled are not decided again. `on_decision` sees every decision made, after limits.
pub fn plan_round<P: Policy + ?Sized>(
    book: &mut Book,
    policy: &P,
    limits: &Limits,
    scheduled: Vec<ScheduledJob>,
    on_decision: impl FnMut(&ScheduledJob, &Decision),
) -> Plan {
    book.apply(BookEvent::SweepStarted);
    let plan = plan_page(book, policy, limits, scheduled, on_decision);
    book.apply(BookEvent::SweepCompleted);
    plan
}

/// Decides the jobs of one page of a sweep ([`BookEvent::Listed`]); the caller starts and
/// completes the sweep ([`BookEvent::SweepStarted`], [`BookEvent::SweepCompleted`]). Launch
/// order and limits apply within the page: jobs of earlier pages were admitted already.
pub fn plan_page<P: Policy + ?Sized>(
    book: &mut Book,
    policy: &P,
    limits: &Limits,
    scheduled: Vec<ScheduledJob>,
    mut on_decision: impl FnMut(&ScheduledJob, &Decision),
) -> Plan {
    book.apply(BookEvent::Listed(
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
                runnable.push(Waiting {
                    job,
                    template,
                    reason,
                });
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
    admit(book, limits, runnable, &mut plan, |job, decision| {
        on_decision(job, decision);
    });
    plan
}

/// Re-plans `waiting` (the [`Plan::waiting`] of the last round) after a slot freed: each job
/// the book still holds as deferred is checked against the limits again, in launch order, and
/// launched if it fits. The policy is not asked again and jobs the book no longer holds as
/// deferred (launched, or forgotten by a later poll) are dropped, so no job launches twice.
///
/// `on_decision` sees the `Run` decisions only: a job that still does not fit was reported
/// deferred by its round already. The returned plan has no rejections; its `waiting` holds
/// the jobs that still wait.
pub fn plan_waiting(
    book: &mut Book,
    limits: &Limits,
    waiting: Vec<Waiting>,
    mut on_decision: impl FnMut(&ScheduledJob, &Decision),
) -> Plan {
    let still_deferred = waiting
        .into_iter()
        .filter(|w| book.status(w.job.id) == Some(JobStatus::Deferred))
        .collect();
    let mut plan = Plan::default();
    admit(book, limits, still_deferred, &mut plan, |job, decision| {
        if matches!(decision, Decision::Run { .. }) {
            on_decision(job, decision);
        }
    });
    plan
}

/// Launches the runnable jobs that fit the limits, in launch order; defers the rest.
fn admit(
    book: &mut Book,
    limits: &Limits,
    runnable: Vec<Waiting>,
    plan: &mut Plan,
    mut on_decision: impl FnMut(&ScheduledJob, &Decision),
) {
    for waiting in launch_order(runnable, book, |w| &w.job) {
        let job = &waiting.job;
        // A job listed twice (pages overlapping, a stale waiting list) launches once.
        if !book.should_decide(job.id) {
            continue;
        }
        if let Some(wait) = limits.check(book, job) {
            on_decision(job, &Decision::Defer { reason: wait });
            book.apply(BookEvent::Decided {
                job: job.id,
                pipeline: job.pipeline.clone(),
                settled: Settled::Deferred,
            });
            plan.waiting.push(waiting);
            continue;
        }
        on_decision(
            job,
            &Decision::Run {
                template: waiting.template.clone(),
                reason: waiting.reason.clone(),
            },
        );
        book.apply(BookEvent::LaunchStarted {
            job: job.id,
            queue: Some(Limits::queue_key(job).to_owned()),
            pipeline: job.pipeline.clone(),
        });
        plan.launches.push((waiting.job, waiting.template));
    }
}
