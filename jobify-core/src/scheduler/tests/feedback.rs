//! Rejections, workloads that can never start, and retrying what Buildkite did not take.

use super::*;

#[tokio::test(start_paused = true)]
async fn rejects_refused_and_invalid_jobs_through_feedback_once() {
    let refused = ScheduledJob::fixture().on_pipeline("refused").build();
    let invalid = ScheduledJob::fixture().on_pipeline("app").build();
    let listed: Listed = Arc::new(Mutex::new(vec![refused.clone(), invalid.clone()]));
    let polls = Arc::new(AtomicUsize::new(0));
    let (_events, stream) = events();
    let mut jobifier = MockJobifier::new();
    jobifier.expect_launch().times(1).returning(|_, _| {
        Err(LaunchError::Invalid {
            message: "spec.containers[0].image: Required value".into(),
        })
    });
    jobifier.expect_events().return_once(move || stream);
    let told: Arc<Mutex<Vec<Told>>> = Arc::default();
    let mut feedback = MockFeedback::new();
    let record = told.clone();
    feedback
        .expect_fail_job()
        .times(2)
        .returning(move |job, reason| {
            record
                .lock()
                .expect("lock")
                .push((job.id, job.graphql_id.clone(), reason.clone()));
            Ok(())
        });
    let dispatcher = dispatcher(monitor(&listed, &polls), jobifier, feedback, 5);
    let (stop_tx, handle) = start(dispatcher);
    sleep(POLL * 3).await;
    let told = told.lock().expect("lock").clone();
    assert_eq!(
        told[0],
        (
            refused.id,
            Some(refused.graphql_id.clone()),
            Reason::new(
                ReasonCode::RULE_MATCHED,
                "pipeline refused is not allowed here"
            )
        )
    );
    assert_eq!(told[1].0, invalid.id);
    assert_eq!(told[1].2.code, ReasonCode::LAUNCH_INVALID);
    assert_eq!(
        told[1].2.message,
        "jobify could not create a pod for this step: spec.containers[0].image: Required value. \
         Fix the step's kubernetes plugin configuration and retry the job"
    );
    stop(stop_tx, handle).await;
}

#[tokio::test(start_paused = true)]
async fn a_workload_that_cannot_start_is_reported_with_its_reason() {
    let job = ScheduledJob::fixture().build();
    let listed: Listed = Arc::new(Mutex::new(vec![job.clone()]));
    let polls = Arc::new(AtomicUsize::new(0));
    let launched = Arc::default();
    let (events_tx, stream) = events();
    let reason = Reason::new(
        ReasonCode("image_pull_failed"),
        "image rust:nope could not be pulled",
    );
    let mut feedback = MockFeedback::new();
    let (expected_id, expected_graphql, expected_reason) =
        (job.id, job.graphql_id.clone(), reason.clone());
    feedback
        .expect_fail_job()
        .withf(move |target, r| {
            target.id == expected_id
                && target.graphql_id.as_deref() == Some(expected_graphql.as_str())
                && *r == expected_reason
        })
        .times(1)
        .returning(|_, _| Ok(()));
    let dispatcher = dispatcher(
        monitor(&listed, &polls),
        jobifier(stream, &launched),
        feedback,
        5,
    );
    let (stop_tx, handle) = start(dispatcher);
    sleep(Duration::from_secs(1)).await;
    events_tx
        .send(WorkloadEvent::FailedToStart {
            job: job.id,
            reason,
        })
        .expect("send");
    sleep(Duration::from_secs(1)).await;
    stop(stop_tx, handle).await;
}

#[tokio::test(start_paused = true)]
async fn a_failed_to_start_report_buildkite_did_not_take_is_retried_after_a_backoff() {
    let job = ScheduledJob::fixture().build();
    let listed: Listed = Arc::new(Mutex::new(vec![job.clone()]));
    let polls = Arc::new(AtomicUsize::new(0));
    let launched = Arc::default();
    let (events_tx, stream) = events();
    let reason = Reason::new(ReasonCode("image_pull_failed"), "no such image");
    let attempts = Arc::new(AtomicUsize::new(0));
    let mut feedback = MockFeedback::new();
    let counter = attempts.clone();
    let expected = reason.clone();
    feedback
        .expect_fail_job()
        .withf(move |_, r| *r == expected)
        .returning(move |target, _| {
            if counter.fetch_add(1, Ordering::SeqCst) == 0 {
                Err(FeedbackError {
                    job: target.id,
                    source: "HTTP 502 from Buildkite".into(),
                })
            } else {
                Ok(())
            }
        });
    let recorder = Arc::new(Recorder::default());
    let dispatcher = dispatcher(
        monitor(&listed, &polls),
        jobifier(stream, &launched),
        feedback,
        5,
    )
    .with_observer(recorder.clone());
    let (stop_tx, handle) = start(dispatcher);
    sleep(Duration::from_secs(1)).await;
    events_tx
        .send(WorkloadEvent::FailedToStart {
            job: job.id,
            reason,
        })
        .expect("send");
    sleep(Duration::from_secs(1)).await;
    assert_eq!(attempts.load(Ordering::SeqCst), 1);
    assert_eq!(
        *recorder.retries.lock().expect("lock"),
        vec![(
            job.id,
            FeedbackReport::FailedToStart,
            FeedbackRetry::Scheduled {
                attempt: 2,
                after: Duration::from_secs(2)
            }
        )]
    );
    sleep(Duration::from_secs(2)).await;
    assert_eq!(attempts.load(Ordering::SeqCst), 2, "retried once");
    sleep(POLL * 3).await;
    assert_eq!(
        attempts.load(Ordering::SeqCst),
        2,
        "delivered, so never again"
    );
    stop(stop_tx, handle).await;
}

#[tokio::test(start_paused = true)]
async fn a_failed_to_start_report_is_given_up_after_its_last_attempt() {
    let job = ScheduledJob::fixture().build();
    let listed: Listed = Arc::new(Mutex::new(vec![job.clone()]));
    let polls = Arc::new(AtomicUsize::new(0));
    let launched = Arc::default();
    let (events_tx, stream) = events();
    let mut feedback = MockFeedback::new();
    feedback
        .expect_fail_job()
        .times(super::retry::MAX_ATTEMPTS as usize)
        .returning(|target, _| {
            Err(FeedbackError {
                job: target.id,
                source: "HTTP 502 from Buildkite".into(),
            })
        });
    let recorder = Arc::new(Recorder::default());
    let dispatcher = dispatcher(
        monitor(&listed, &polls),
        jobifier(stream, &launched),
        feedback,
        5,
    )
    .with_observer(recorder.clone());
    let (stop_tx, handle) = start(dispatcher);
    sleep(Duration::from_secs(1)).await;
    events_tx
        .send(WorkloadEvent::FailedToStart {
            job: job.id,
            reason: Reason::new(ReasonCode("image_pull_failed"), "no such image"),
        })
        .expect("send");
    sleep(Duration::from_secs(600)).await;
    let retries = recorder.retries.lock().expect("lock").clone();
    assert_eq!(retries.len(), super::retry::MAX_ATTEMPTS as usize);
    assert_eq!(
        retries.last(),
        Some(&(
            job.id,
            FeedbackReport::FailedToStart,
            FeedbackRetry::GivenUp {
                attempts: super::retry::MAX_ATTEMPTS
            }
        ))
    );
    stop(stop_tx, handle).await;
}

#[tokio::test(start_paused = true)]
async fn a_rejection_buildkite_never_takes_is_retried_a_bounded_number_of_times() {
    // Buildkite keeps listing the job, and every report fails (an answer that can never
    // succeed): the rejection is retried with backoff, not at every poll, and given up on.
    let refused = ScheduledJob::fixture().on_pipeline("refused").build();
    let listed: Listed = Arc::new(Mutex::new(vec![refused.clone()]));
    let polls = Arc::new(AtomicUsize::new(0));
    let (_events, stream) = events();
    let mut jobifier = MockJobifier::new();
    jobifier.expect_launch().never();
    jobifier.expect_events().return_once(move || stream);
    let attempts = Arc::new(AtomicUsize::new(0));
    let counter = attempts.clone();
    let mut feedback = MockFeedback::new();
    feedback.expect_fail_job().returning(move |target, _| {
        counter.fetch_add(1, Ordering::SeqCst);
        Err(FeedbackError {
            job: target.id,
            source: "jobAnnotate returned no annotation".into(),
        })
    });
    let recorder = Arc::new(Recorder::default());
    let dispatcher =
        dispatcher(monitor(&listed, &polls), jobifier, feedback, 5).with_observer(recorder.clone());
    let (stop_tx, handle) = start(dispatcher);
    sleep(Duration::from_secs(3)).await;
    assert_eq!(
        attempts.load(Ordering::SeqCst),
        2,
        "the first report, and one retry after 2 s: not one per poll"
    );
    sleep(Duration::from_secs(600)).await;
    assert!(
        polls.load(Ordering::SeqCst) > 50,
        "Buildkite was polled all along"
    );
    assert_eq!(
        attempts.load(Ordering::SeqCst),
        super::retry::MAX_ATTEMPTS as usize,
        "given up after the last attempt"
    );
    let retries = recorder.retries.lock().expect("lock").clone();
    assert_eq!(
        retries.last(),
        Some(&(
            refused.id,
            FeedbackReport::Rejected,
            FeedbackRetry::GivenUp {
                attempts: super::retry::MAX_ATTEMPTS
            }
        ))
    );
    stop(stop_tx, handle).await;
}

#[tokio::test(start_paused = true)]
async fn a_rejection_retry_is_not_sent_for_a_job_buildkite_stopped_listing() {
    let refused = ScheduledJob::fixture().on_pipeline("refused").build();
    let listed: Listed = Arc::new(Mutex::new(vec![refused.clone()]));
    let polls = Arc::new(AtomicUsize::new(0));
    let (_events, stream) = events();
    let mut jobifier = MockJobifier::new();
    jobifier.expect_events().return_once(move || stream);
    let attempts = Arc::new(AtomicUsize::new(0));
    let counter = attempts.clone();
    let mut feedback = MockFeedback::new();
    feedback.expect_fail_job().returning(move |target, _| {
        counter.fetch_add(1, Ordering::SeqCst);
        Err(FeedbackError {
            job: target.id,
            source: "HTTP 502 from Buildkite".into(),
        })
    });
    let dispatcher = dispatcher(monitor(&listed, &polls), jobifier, feedback, 5);
    let (stop_tx, handle) = start(dispatcher);
    sleep(Duration::from_secs(1)).await;
    assert_eq!(attempts.load(Ordering::SeqCst), 1);
    // Cancelled by a person: Buildkite no longer lists it, and the next complete sweep
    // forgets it.
    listed.lock().expect("lock").clear();
    sleep(POLL).await;
    let before = attempts.load(Ordering::SeqCst);
    sleep(Duration::from_secs(300)).await;
    assert_eq!(
        attempts.load(Ordering::SeqCst),
        before,
        "no retry for a job Buildkite no longer lists"
    );
    stop(stop_tx, handle).await;
}

#[tokio::test(start_paused = true)]
async fn a_job_still_scheduled_after_its_workload_ended_is_failed_once_after_the_grace() {
    let job = ScheduledJob::fixture().build();
    let listed: Listed = Arc::new(Mutex::new(vec![job.clone()]));
    let polls = Arc::new(AtomicUsize::new(0));
    let launched = Arc::default();
    let (events_tx, stream) = events();
    let told: Arc<Mutex<Vec<Told>>> = Arc::default();
    let record = told.clone();
    let mut feedback = MockFeedback::new();
    feedback.expect_fail_job().returning(move |target, reason| {
        record
            .lock()
            .expect("lock")
            .push((target.id, target.graphql_id.clone(), reason.clone()));
        Ok(())
    });
    let dispatcher = dispatcher(
        monitor(&listed, &polls),
        jobifier(stream, &launched),
        feedback,
        5,
    );
    let (stop_tx, handle) = start(dispatcher);
    sleep(Duration::from_secs(1)).await;
    // The pod ran and ended, but its agent never acquired the job: Buildkite lists it still.
    events_tx
        .send(WorkloadEvent::Started(job.id))
        .expect("send");
    events_tx.send(WorkloadEvent::Failed(job.id)).expect("send");
    sleep(POLL * 2).await;
    assert!(
        told.lock().expect("lock").is_empty(),
        "within the grace, Buildkite's listing may lag"
    );
    sleep(POLL * 3).await;
    sleep(POLL * 5).await;
    let told = told.lock().expect("lock").clone();
    assert_eq!(told.len(), 1, "told once: {told:?}");
    assert_eq!(told[0].0, job.id);
    assert_eq!(told[0].1.as_deref(), Some(job.graphql_id.as_str()));
    assert_eq!(told[0].2.code.as_str(), "agent_never_acquired");
    stop(stop_tx, handle).await;
}

#[tokio::test(start_paused = true)]
async fn a_job_whose_agent_acquired_it_is_not_failed_when_its_workload_ends() {
    let job = ScheduledJob::fixture().build();
    let listed: Listed = Arc::new(Mutex::new(vec![job.clone()]));
    let polls = Arc::new(AtomicUsize::new(0));
    let launched = Arc::default();
    let (events_tx, stream) = events();
    let mut feedback = MockFeedback::new();
    feedback.expect_fail_job().times(0);
    let dispatcher = dispatcher(
        monitor(&listed, &polls),
        jobifier(stream, &launched),
        feedback,
        5,
    );
    let (stop_tx, handle) = start(dispatcher);
    sleep(Duration::from_secs(1)).await;
    // The agent acquired it: Buildkite stops listing it as scheduled.
    listed.lock().expect("lock").clear();
    events_tx
        .send(WorkloadEvent::Started(job.id))
        .expect("send");
    events_tx
        .send(WorkloadEvent::Succeeded(job.id))
        .expect("send");
    sleep(POLL * 10).await;
    stop(stop_tx, handle).await;
}
