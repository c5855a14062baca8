//! Rejections, workloads that can never start, and retrying what Buildkite did not take.

use super::retry::MAX_ATTEMPTS;
use super::*;

fn bad_gateway(message: &FeedbackMessage) -> Result<(), FeedbackError> {
    Err(FeedbackError {
        job: message.job.id,
        source: "HTTP 502 from Buildkite".into(),
    })
}

fn image_pull_failed() -> Reason {
    Reason::new(ReasonCode("image_pull_failed"), "no such image")
}

#[test]
fn rejects_refused_and_invalid_jobs_through_feedback_once() {
    let refused = ScheduledJob::fixture().on_pipeline("refused").build();
    let invalid = ScheduledJob::fixture().on_pipeline("app").build();
    let mut world = World::new(vec![refused.clone(), invalid.clone()], 5);
    world.launch = Box::new(|_| {
        Err(LaunchError::invalid(
            "spec.containers[0].image: Required value",
        ))
    });
    world.start();
    world.advance(POLL * 3);
    assert_eq!(world.launches, vec![invalid.id], "launched once");
    assert_eq!(world.told.len(), 2, "each told once: {:?}", world.told);
    assert_eq!(
        world.told[0],
        (
            refused.id,
            Some(refused.source_key.clone()),
            Reason::new(
                ReasonCode::RULE_MATCHED,
                "pipeline refused is not allowed here"
            )
        )
    );
    assert_eq!(world.told[1].0, invalid.id);
    assert_eq!(world.told[1].2.code, ReasonCode::LAUNCH_INVALID);
    assert_eq!(
        world.told[1].2.message,
        "jobify could not create a pod for this step: spec.containers[0].image: Required value. \
         Fix the step's kubernetes plugin configuration and retry the job"
    );
}

#[test]
fn a_workload_that_cannot_start_is_reported_with_its_reason() {
    let job = ScheduledJob::fixture().build();
    let reason = Reason::new(
        ReasonCode("image_pull_failed"),
        "image rust:nope could not be pulled",
    );
    let mut machine = Machine::leading(Limits::global(5), config());
    table(
        &mut machine,
        vec![
            (secs(0), restored(), vec![fetch(None)]),
            (
                secs(0),
                page(std::slice::from_ref(&job), None),
                vec![Did::Launch(job.id)],
            ),
            (secs(0), launched(&job), vec![]),
            (
                secs(1),
                Input::Workload(WorkloadEvent::FailedToStart {
                    job: job.id,
                    reason: reason.clone(),
                }),
                vec![Did::Tell(
                    job.id,
                    Some(job.source_key.clone()),
                    reason.code,
                    1,
                )],
            ),
        ],
    );
}

#[test]
fn a_standby_does_not_tell_buildkite_about_a_workload_that_cannot_start() {
    let job = ScheduledJob::fixture().workload();
    let start = Instant::now();
    let mut scheduler = Scheduler::new(run_all(), Limits::global(5), config(), start);
    let _ = scheduler.handle(start, Input::Leadership(false));
    let _ = scheduler.handle(
        start,
        Input::Workload(WorkloadEvent::Restored(vec![job.clone()])),
    );
    let effects = scheduler.handle(
        start + secs(1),
        Input::Workload(WorkloadEvent::FailedToStart {
            job: job.job,
            reason: image_pull_failed(),
        }),
    );
    assert_eq!(io(&effects), vec![], "the leader tells Buildkite");
    assert!(
        reports(effects)
            .iter()
            .any(|event| matches!(event, SchedulerEvent::FailedToStart { .. })),
        "but the standby counts it"
    );
}

#[test]
fn a_failed_to_start_report_buildkite_did_not_take_is_retried_after_a_backoff() {
    let job = ScheduledJob::fixture().build();
    let mut world = World::new(vec![job.clone()], 5);
    let mut attempts = 0;
    world.tell = Box::new(move |message| {
        attempts += 1;
        if attempts == 1 {
            bad_gateway(message)
        } else {
            Ok(())
        }
    });
    world.start();
    world.advance(secs(1));
    world.send(Input::Workload(WorkloadEvent::FailedToStart {
        job: job.id,
        reason: image_pull_failed(),
    }));
    world.advance(secs(1));
    assert_eq!(world.told.len(), 1);
    assert_eq!(
        world.retries(),
        vec![(
            job.id,
            FeedbackReport::FailedToStart,
            FeedbackRetry::Scheduled {
                attempt: 2,
                after: Duration::from_secs(2)
            }
        )]
    );
    world.advance(secs(2));
    assert_eq!(world.told.len(), 2, "retried once");
    assert_eq!(world.told[1].2, image_pull_failed(), "with the same reason");
    world.advance(POLL * 3);
    assert_eq!(world.told.len(), 2, "delivered, so never again");
}

#[test]
fn a_retry_is_due_exactly_after_its_backoff_and_carries_the_next_attempt() {
    let job = ScheduledJob::fixture().workload();
    let mut machine = Machine::leading(Limits::global(5), config());
    let _ = machine.at(
        secs(0),
        Input::Workload(WorkloadEvent::Restored(vec![job.clone()])),
    );
    let _ = machine.at(secs(0), page(&[], None));
    let effects = machine.at(
        secs(1),
        Input::Workload(WorkloadEvent::FailedToStart {
            job: job.job,
            reason: image_pull_failed(),
        }),
    );
    let message = effects
        .iter()
        .find_map(|effect| match effect {
            Effect::Tell(message) => Some(message.clone()),
            _ => None,
        })
        .expect("Buildkite is told");
    let told = Input::Told {
        result: bad_gateway(&message),
        message,
    };
    let code = image_pull_failed().code;
    table(
        &mut machine,
        vec![
            (secs(1), told, vec![]),
            (Duration::from_millis(2999), Input::Tick, vec![]),
            (
                secs(3),
                Input::Tick,
                vec![Did::Tell(job.job, None, code, 2)],
            ),
        ],
    );
}

#[test]
fn a_failed_to_start_report_is_given_up_after_its_last_attempt() {
    let job = ScheduledJob::fixture().build();
    let mut world = World::new(vec![job.clone()], 5);
    world.tell = Box::new(bad_gateway);
    world.start();
    world.advance(secs(1));
    world.send(Input::Workload(WorkloadEvent::FailedToStart {
        job: job.id,
        reason: image_pull_failed(),
    }));
    world.advance(secs(600));
    let retries = world.retries();
    assert_eq!(world.told.len(), MAX_ATTEMPTS as usize);
    assert_eq!(retries.len(), MAX_ATTEMPTS as usize);
    assert_eq!(
        retries.last(),
        Some(&(
            job.id,
            FeedbackReport::FailedToStart,
            FeedbackRetry::GivenUp {
                attempts: MAX_ATTEMPTS
            }
        ))
    );
}

#[test]
fn a_rejection_buildkite_never_takes_is_retried_a_bounded_number_of_times() {
    // Buildkite keeps listing the job, and every report fails (an answer that can never
    // succeed): the rejection is retried with backoff, not at every poll, and given up on.
    let refused = ScheduledJob::fixture().on_pipeline("refused").build();
    let mut world = World::new(vec![refused.clone()], 5);
    world.tell = Box::new(|message| {
        Err(FeedbackError {
            job: message.job.id,
            source: "jobAnnotate returned no annotation".into(),
        })
    });
    world.start();
    world.advance(secs(3));
    assert_eq!(
        world.told.len(),
        2,
        "the first report, and one retry after 2 s: not one per poll"
    );
    world.advance(secs(600));
    assert!(world.requests.len() > 50, "Buildkite was polled all along");
    assert!(world.launches.is_empty());
    assert_eq!(
        world.told.len(),
        MAX_ATTEMPTS as usize,
        "given up after the last attempt"
    );
    assert_eq!(
        world.retries().last(),
        Some(&(
            refused.id,
            FeedbackReport::Rejected,
            FeedbackRetry::GivenUp {
                attempts: MAX_ATTEMPTS
            }
        ))
    );
}

#[test]
fn a_rejection_retry_is_not_sent_for_a_job_buildkite_stopped_listing() {
    let refused = ScheduledJob::fixture().on_pipeline("refused").build();
    let mut world = World::new(vec![refused.clone()], 5);
    world.tell = Box::new(bad_gateway);
    world.start();
    world.advance(secs(1));
    assert_eq!(world.told.len(), 1);
    // Cancelled by a person: Buildkite no longer lists it, and the next complete sweep
    // forgets it.
    world.listed().clear();
    world.advance(POLL);
    let before = world.told.len();
    world.advance(secs(300));
    assert_eq!(
        world.told.len(),
        before,
        "no retry for a job Buildkite no longer lists"
    );
}

#[test]
fn a_job_still_scheduled_after_its_workload_ended_is_failed_once_after_the_grace() {
    let job = ScheduledJob::fixture().build();
    let mut world = World::new(vec![job.clone()], 5);
    world.start();
    world.advance(secs(1));
    // The pod ran and ended, but its agent never acquired the job: Buildkite lists it still.
    world.send(Input::Workload(WorkloadEvent::Started(job.id)));
    world.send(Input::Workload(WorkloadEvent::Failed(job.id)));
    world.advance(POLL * 2);
    assert!(
        world.told.is_empty(),
        "within the grace, Buildkite's listing may lag"
    );
    world.advance(POLL * 3);
    world.advance(POLL * 5);
    assert_eq!(world.told.len(), 1, "told once: {:?}", world.told);
    assert_eq!(world.told[0].0, job.id);
    assert_eq!(world.told[0].1.as_deref(), Some(job.source_key.as_str()));
    assert_eq!(world.told[0].2.code.as_str(), "agent_never_acquired");
}

#[test]
fn a_job_whose_agent_acquired_it_is_not_failed_when_its_workload_ends() {
    let job = ScheduledJob::fixture().build();
    let mut world = World::new(vec![job.clone()], 5);
    world.start();
    world.advance(secs(1));
    // The agent acquired it: Buildkite stops listing it as scheduled.
    world.listed().clear();
    world.send(Input::Workload(WorkloadEvent::Started(job.id)));
    world.send(Input::Workload(WorkloadEvent::Succeeded(job.id)));
    world.advance(POLL * 10);
    assert!(world.told.is_empty());
}
