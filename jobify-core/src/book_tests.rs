//! Tests of the book-keeping, the launch order and one planning round.

use pretty_assertions::assert_eq;

use crate::book::{Book, BookEvent, JobStatus, Settled};
use crate::decision::{Decision, Reason, ReasonCode, Template};
use crate::job::{JobId, ScheduledJob};
use crate::limits::Limits;
use crate::order::launch_order;
use crate::plan::{plan_round, plan_waiting};
use crate::policy::{Policy, from_fn};
use crate::workload::{Workload, WorkloadEvent};

fn restored(book: &mut Book, workloads: Vec<Workload>) {
    book.apply(BookEvent::Workload(WorkloadEvent::Restored(workloads)));
}

fn launch(book: &mut Book, job: &ScheduledJob) {
    book.apply(BookEvent::LaunchStarted {
        job: job.id,
        queue: job.queue().map(str::to_owned),
        pipeline: job.pipeline.clone(),
    });
}

fn run_everything() -> impl Policy {
    from_fn(|_: &ScheduledJob| Decision::Run {
        template: Template::Default { name: None },
        reason: Reason::new(ReasonCode::RULE_MATCHED, "test"),
    })
}

#[test]
fn a_launch_counts_from_start_until_its_workload_is_gone() {
    let mut book = Book::new();
    restored(&mut book, vec![]);
    let job = ScheduledJob::fixture().build();
    launch(&mut book, &job);
    assert_eq!(book.in_flight(), 1);
    assert_eq!(book.in_flight_in_queue("kubernetes"), 1);
    assert_eq!(book.in_flight_in_pipeline("app"), 1);
    book.apply(BookEvent::LaunchSucceeded(job.id));
    assert_eq!(book.status(job.id), Some(JobStatus::InFlight));
    assert_eq!(book.not_started(), vec![job.id]);
    book.apply(BookEvent::Workload(WorkloadEvent::Started(job.id)));
    assert_eq!(book.not_started(), vec![]);
    assert_eq!(book.in_flight(), 1);
    book.apply(BookEvent::Workload(WorkloadEvent::Succeeded(job.id)));
    assert_eq!(book.in_flight(), 0);
    assert_eq!(book.in_flight_in_queue("kubernetes"), 0);
    assert!(
        !book.should_decide(job.id),
        "an ended job is never launched again"
    );
}

#[test]
fn a_job_is_never_launched_twice() {
    let mut book = Book::new();
    let job = ScheduledJob::fixture().build();
    launch(&mut book, &job);
    launch(&mut book, &job);
    assert_eq!(book.in_flight(), 1);
    book.apply(BookEvent::LaunchSucceeded(job.id));
    assert!(!book.should_decide(job.id));
}

#[test]
fn restore_rebuilds_in_flight_from_the_cluster_and_ends_what_vanished() {
    let mut book = Book::new();
    let vanished = ScheduledJob::fixture().build();
    launch(&mut book, &vanished);
    book.apply(BookEvent::LaunchSucceeded(vanished.id));
    let running = ScheduledJob::fixture().on_pipeline("web").workload();
    let finished = Workload {
        finished: true,
        ..ScheduledJob::fixture().workload()
    };
    restored(&mut book, vec![running.clone(), finished.clone()]);
    assert!(book.is_restored());
    assert_eq!(book.in_flight(), 1);
    assert_eq!(book.in_flight_in_pipeline("web"), 1);
    assert_eq!(book.status(vanished.id), Some(JobStatus::Ended));
    assert_eq!(book.status(finished.job), Some(JobStatus::Ended));
    assert_eq!(book.status(running.job), Some(JobStatus::InFlight));
}

#[test]
fn a_launch_in_progress_survives_a_relist_that_does_not_show_it_yet() {
    let mut book = Book::new();
    let job = ScheduledJob::fixture().build();
    launch(&mut book, &job);
    restored(&mut book, vec![]);
    assert_eq!(book.status(job.id), Some(JobStatus::Launching));
    assert_eq!(book.in_flight(), 1);
}

#[test]
fn workloads_of_other_replicas_count_against_the_limits() {
    let mut book = Book::new();
    let workload = ScheduledJob::fixture().workload();
    book.apply(BookEvent::Workload(WorkloadEvent::Observed(
        workload.clone(),
    )));
    assert_eq!(book.in_flight(), 1);
    assert!(!book.should_decide(workload.job));
}

#[test]
fn a_workload_for_a_job_this_replica_skipped_still_takes_a_slot() {
    let mut book = Book::new();
    let job = ScheduledJob::fixture().build();
    book.apply(BookEvent::Decided {
        job: job.id,
        pipeline: job.pipeline.clone(),
        settled: Settled::Skipped,
    });
    book.apply(BookEvent::Workload(WorkloadEvent::Observed(
        ScheduledJob::fixture().id(job.id).workload(),
    )));
    assert_eq!(book.status(job.id), Some(JobStatus::InFlight));
    assert_eq!(book.in_flight_in_queue("kubernetes"), 1);
}

#[test]
fn a_workload_without_a_queue_counts_against_the_default_queue() {
    let mut book = Book::new();
    let workload = Workload {
        queue: None,
        ..ScheduledJob::fixture().workload()
    };
    restored(&mut book, vec![workload]);
    assert_eq!(book.in_flight_in_queue("default"), 1);
}

#[test]
fn failed_launches_retry_or_reject() {
    let mut book = Book::new();
    let transient = ScheduledJob::fixture().build();
    launch(&mut book, &transient);
    book.apply(BookEvent::LaunchFailed {
        job: transient.id,
        retry: true,
    });
    assert_eq!(book.in_flight(), 0);
    assert!(book.should_decide(transient.id));
    let invalid = ScheduledJob::fixture().build();
    launch(&mut book, &invalid);
    book.apply(BookEvent::LaunchFailed {
        job: invalid.id,
        retry: false,
    });
    assert_eq!(book.status(invalid.id), Some(JobStatus::Rejected));
    assert_eq!(book.in_flight(), 0);
    assert!(
        !book.should_decide(invalid.id),
        "a rejected job is not decided again while it is listed"
    );
}

#[test]
fn cancelling_keeps_the_slot_until_the_workload_is_gone() {
    let mut book = Book::new();
    let job = ScheduledJob::fixture().build();
    launch(&mut book, &job);
    book.apply(BookEvent::LaunchSucceeded(job.id));
    book.apply(BookEvent::CancelStarted(job.id));
    assert_eq!(book.status(job.id), Some(JobStatus::Cancelling));
    assert_eq!(book.not_started(), vec![]);
    book.apply(BookEvent::CancelFailed(job.id));
    assert_eq!(book.not_started(), vec![job.id]);
    book.apply(BookEvent::CancelStarted(job.id));
    book.apply(BookEvent::Workload(WorkloadEvent::Gone(job.id)));
    assert_eq!(book.in_flight(), 0);
}

#[test]
fn settled_jobs_are_forgotten_once_buildkite_stops_listing_them() {
    let mut book = Book::new();
    let skipped = ScheduledJob::fixture().build();
    let ended = ScheduledJob::fixture().build();
    book.apply(BookEvent::Polled(vec![skipped.id, ended.id]));
    book.apply(BookEvent::Decided {
        job: skipped.id,
        pipeline: "app".into(),
        settled: Settled::Skipped,
    });
    launch(&mut book, &ended);
    book.apply(BookEvent::LaunchSucceeded(ended.id));
    book.apply(BookEvent::Workload(WorkloadEvent::Succeeded(ended.id)));
    book.apply(BookEvent::Polled(vec![skipped.id]));
    assert_eq!(book.len(), 2, "ended but its workload still exists");
    book.apply(BookEvent::Workload(WorkloadEvent::Gone(ended.id)));
    book.apply(BookEvent::Polled(vec![skipped.id]));
    assert_eq!(book.status(ended.id), None);
    assert_eq!(book.status(skipped.id), Some(JobStatus::Skipped));
    book.apply(BookEvent::Polled(vec![]));
    assert!(book.is_empty());
}

fn skip(book: &mut Book, job: &ScheduledJob) {
    book.apply(BookEvent::Decided {
        job: job.id,
        pipeline: job.pipeline.clone(),
        settled: Settled::Skipped,
    });
}

#[test]
fn a_sweep_keeps_the_settled_jobs_any_of_its_pages_listed() {
    let mut book = Book::new();
    let on_page_one = ScheduledJob::fixture().build();
    let on_page_two = ScheduledJob::fixture().build();
    let gone = ScheduledJob::fixture().build();
    book.apply(BookEvent::Polled(ids(&[
        on_page_one.clone(),
        on_page_two.clone(),
        gone.clone(),
    ])));
    for job in [&on_page_one, &on_page_two, &gone] {
        skip(&mut book, job);
    }
    book.apply(BookEvent::SweepStarted);
    book.apply(BookEvent::Listed(vec![on_page_one.id]));
    book.apply(BookEvent::Listed(vec![on_page_two.id]));
    assert_eq!(
        book.len(),
        3,
        "nothing is forgotten before the sweep completes"
    );
    book.apply(BookEvent::SweepCompleted);
    assert_eq!(book.status(on_page_one.id), Some(JobStatus::Skipped));
    assert_eq!(book.status(on_page_two.id), Some(JobStatus::Skipped));
    assert_eq!(book.status(gone.id), None);
}

#[test]
fn a_sweep_that_stops_early_forgets_nothing() {
    let mut book = Book::new();
    let first = ScheduledJob::fixture().build();
    let beyond = ScheduledJob::fixture().build();
    book.apply(BookEvent::Polled(ids(&[first.clone(), beyond.clone()])));
    skip(&mut book, &first);
    skip(&mut book, &beyond);
    // The sweep stopped after its first page: `beyond` may still be scheduled further on.
    book.apply(BookEvent::SweepStarted);
    book.apply(BookEvent::Listed(vec![first.id]));
    book.apply(BookEvent::SweepStarted);
    book.apply(BookEvent::Listed(vec![first.id]));
    assert_eq!(book.status(beyond.id), Some(JobStatus::Skipped));
    // The next complete sweep that does not list it forgets it.
    book.apply(BookEvent::SweepCompleted);
    assert_eq!(book.status(beyond.id), None);
    assert_eq!(book.status(first.id), Some(JobStatus::Skipped));
}

fn ids(jobs: &[ScheduledJob]) -> Vec<JobId> {
    jobs.iter().map(|j| j.id).collect()
}

#[test]
fn launch_order_is_priority_then_round_robin_then_oldest() {
    let f = ScheduledJob::fixture;
    let a_old = f().on_pipeline("a").scheduled_at_second(1).build();
    let a_new = f().on_pipeline("a").scheduled_at_second(5).build();
    let a_newer = f().on_pipeline("a").scheduled_at_second(6).build();
    let b = f().on_pipeline("b").scheduled_at_second(3).build();
    let urgent = f()
        .on_pipeline("c")
        .priority(5)
        .scheduled_at_second(9)
        .build();
    let book = Book::new();
    let ordered = launch_order(
        vec![
            a_new.clone(),
            b.clone(),
            a_newer.clone(),
            urgent.clone(),
            a_old.clone(),
        ],
        &book,
        |j| j,
    );
    assert_eq!(
        ids(&ordered),
        ids(&[urgent, a_old, b, a_new, a_newer]),
        "priority first, then pipelines take turns, oldest first within each"
    );
}

#[test]
fn the_pipeline_that_launched_last_waits_its_turn() {
    let mut book = Book::new();
    let f = ScheduledJob::fixture;
    let a_launched = f().on_pipeline("a").build();
    launch(&mut book, &a_launched);
    let a = f().on_pipeline("a").scheduled_at_second(1).build();
    let b = f().on_pipeline("b").scheduled_at_second(2).build();
    let ordered = launch_order(vec![a.clone(), b.clone()], &book, |j| j);
    assert_eq!(ids(&ordered), ids(&[b, a]));
}

#[test]
fn a_round_defers_at_the_limit_and_launches_when_a_slot_frees() {
    let mut book = Book::new();
    restored(&mut book, vec![]);
    let limits = Limits::global(1);
    let first = ScheduledJob::fixture().scheduled_at_second(1).build();
    let second = ScheduledJob::fixture().scheduled_at_second(2).build();
    let mut decisions = Vec::new();
    let plan = plan_round(
        &mut book,
        &run_everything(),
        &limits,
        vec![first.clone(), second.clone()],
        |job, d| decisions.push((job.id, d.reason().code)),
    );
    assert_eq!(
        ids(&plan
            .launches
            .iter()
            .map(|(j, _)| j.clone())
            .collect::<Vec<_>>()),
        vec![first.id]
    );
    assert_eq!(
        decisions,
        vec![
            (first.id, ReasonCode::RULE_MATCHED),
            (second.id, ReasonCode::LIMIT_GLOBAL)
        ]
    );
    book.apply(BookEvent::LaunchSucceeded(first.id));
    book.apply(BookEvent::Workload(WorkloadEvent::Succeeded(first.id)));
    let plan = plan_round(
        &mut book,
        &run_everything(),
        &limits,
        vec![second.clone()],
        |_, _| {},
    );
    assert_eq!(plan.launches.len(), 1);
    assert_eq!(plan.launches[0].0.id, second.id);
}

#[test]
fn waiting_jobs_launch_in_order_when_a_slot_frees_and_only_if_still_deferred() {
    let mut book = Book::new();
    restored(&mut book, vec![]);
    let limits = Limits::global(1);
    let first = ScheduledJob::fixture().scheduled_at_second(1).build();
    let second = ScheduledJob::fixture().scheduled_at_second(2).build();
    let third = ScheduledJob::fixture().scheduled_at_second(3).build();
    let plan = plan_round(
        &mut book,
        &run_everything(),
        &limits,
        vec![third.clone(), second.clone(), first.clone()],
        |_, _| {},
    );
    assert_eq!(plan.launches.len(), 1);
    let waiting_ids: Vec<JobId> = plan.waiting.iter().map(|w| w.job.id).collect();
    assert_eq!(waiting_ids, vec![second.id, third.id]);

    // Still full: nothing launches and nothing is reported.
    let mut decisions = Vec::new();
    let still = plan_waiting(&mut book, &limits, plan.waiting, |job, d| {
        decisions.push((job.id, d.kind()));
    });
    assert!(still.launches.is_empty());
    assert_eq!(still.waiting.len(), 2);
    assert!(decisions.is_empty());

    book.apply(BookEvent::LaunchSucceeded(first.id));
    book.apply(BookEvent::Workload(WorkloadEvent::Succeeded(first.id)));
    let freed = plan_waiting(&mut book, &limits, still.waiting, |job, d| {
        decisions.push((job.id, d.kind()));
    });
    let launched: Vec<JobId> = freed.launches.iter().map(|(j, _)| j.id).collect();
    assert_eq!(launched, vec![second.id], "oldest first, one slot");
    assert_eq!(decisions, vec![(second.id, "run")]);
    assert_eq!(book.status(second.id), Some(JobStatus::Launching));

    // A job whose launch failed is forgotten: the next poll decides it, not a freed slot.
    book.apply(BookEvent::LaunchFailed {
        job: second.id,
        retry: true,
    });
    let stale = crate::plan::Waiting {
        job: second.clone(),
        template: Template::Default { name: None },
        reason: Reason::new(ReasonCode::RULE_MATCHED, "test"),
    };
    // With room for all, a job listed twice launches once.
    let roomy = Limits::global(5);
    let relisted = plan_waiting(
        &mut book,
        &roomy,
        vec![stale, freed.waiting[0].clone(), freed.waiting[0].clone()],
        |_, _| {},
    );
    let launched: Vec<JobId> = relisted.launches.iter().map(|(j, _)| j.id).collect();
    assert_eq!(launched, vec![third.id]);
    assert!(relisted.waiting.is_empty());
}

#[test]
fn queue_and_pipeline_limits_defer_with_their_own_reasons() {
    let mut book = Book::new();
    let limits = Limits::global(10)
        .with_queue("kubernetes", 1)
        .with_per_pipeline(1);
    let q1 = ScheduledJob::fixture().on_pipeline("a").build();
    let q2 = ScheduledJob::fixture().on_pipeline("b").build();
    let other_queue = ScheduledJob::fixture()
        .queue("gpu")
        .on_pipeline("a")
        .build();
    let mut reasons = Vec::new();
    let plan = plan_round(
        &mut book,
        &run_everything(),
        &limits,
        vec![q1.clone(), q2.clone(), other_queue.clone()],
        |job, d| reasons.push((job.id, d.reason().clone())),
    );
    assert_eq!(plan.launches.len(), 1);
    let deferred: Vec<(JobId, ReasonCode)> = reasons
        .iter()
        .filter(|(_, r)| r.code != ReasonCode::RULE_MATCHED)
        .map(|(id, r)| (*id, r.code))
        .collect();
    assert_eq!(
        deferred,
        vec![
            (q2.id, ReasonCode::LIMIT_QUEUE),
            (other_queue.id, ReasonCode::LIMIT_PIPELINE)
        ]
    );
    let message = &reasons
        .iter()
        .find(|(id, _)| *id == q2.id)
        .expect("decided")
        .1
        .message;
    assert_eq!(
        message,
        "waiting for a free slot: queue `kubernetes` has 1 jobs in flight, its limit \
         ([[queues]] max_in_flight) is 1"
    );
}

#[test]
fn skipped_and_rejected_jobs_are_decided_once() {
    let mut book = Book::new();
    let calls = std::sync::atomic::AtomicUsize::new(0);
    let policy = from_fn(|job: &ScheduledJob| {
        calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let reason = Reason::new(ReasonCode::RULE_MATCHED, "no");
        if job.pipeline == "skip" {
            Decision::Skip { reason }
        } else {
            Decision::Reject { reason }
        }
    });
    let skip = ScheduledJob::fixture().on_pipeline("skip").build();
    let reject = ScheduledJob::fixture().build();
    let jobs = vec![skip, reject.clone()];
    let plan = plan_round(
        &mut book,
        &policy,
        &Limits::global(5),
        jobs.clone(),
        |_, _| {},
    );
    assert_eq!(plan.rejections.len(), 1);
    assert_eq!(plan.rejections[0].0.id, reject.id);
    let plan = plan_round(&mut book, &policy, &Limits::global(5), jobs, |_, _| {});
    assert!(plan.rejections.is_empty());
    assert_eq!(calls.load(std::sync::atomic::Ordering::Relaxed), 2);
}
