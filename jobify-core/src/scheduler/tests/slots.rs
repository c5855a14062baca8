//! Limits, freed slots, and the in-flight and jobs-seen reports.

use super::*;

#[tokio::test(start_paused = true)]
async fn defers_at_the_limit_and_launches_as_soon_as_a_slot_frees_between_polls() {
    let first = ScheduledJob::fixture().scheduled_at_second(1).build();
    let second = ScheduledJob::fixture().scheduled_at_second(2).build();
    let listed: Listed = Arc::new(Mutex::new(vec![second.clone(), first.clone()]));
    let polls = Arc::new(AtomicUsize::new(0));
    let launched = Arc::default();
    let (events_tx, stream) = events();
    let recorder = Arc::new(Recorder::default());
    let dispatcher = dispatcher(
        monitor(&listed, &polls),
        jobifier(stream, &launched),
        no_feedback(),
        1,
    )
    .with_observer(recorder.clone());
    let (stop_tx, handle) = start(dispatcher);
    sleep(Duration::from_secs(1)).await;
    assert_eq!(launched_ids(&launched), vec![first.id]);
    assert!(
        recorder
            .decisions
            .lock()
            .expect("lock")
            .contains(&(second.id, ReasonCode::LIMIT_GLOBAL))
    );
    sleep(POLL).await;
    assert_eq!(
        launched_ids(&launched),
        vec![first.id],
        "still full, and the first is not launched again"
    );
    // Polls ran at 0 and 10 s; the next is due at 20 s. The workload ends at 12 s.
    sleep(Duration::from_secs(1)).await;
    listed.lock().expect("lock").retain(|j| j.id != first.id);
    let polls_before = polls.load(Ordering::SeqCst);
    events_tx
        .send(WorkloadEvent::Succeeded(first.id))
        .expect("send");
    sleep(Duration::from_secs(1)).await;
    assert_eq!(
        launched_ids(&launched),
        vec![first.id, second.id],
        "the deferred job takes the freed slot before the next poll"
    );
    assert_eq!(polls.load(Ordering::SeqCst), polls_before, "no poll ran");
    sleep(POLL * 2).await;
    assert_eq!(
        launched_ids(&launched),
        vec![first.id, second.id],
        "later polls do not launch it again"
    );
    assert_eq!(
        *recorder.in_flight.lock().expect("lock"),
        vec![1],
        "the slot went straight from the first job to the second"
    );
    stop(stop_tx, handle).await;
}

#[tokio::test(start_paused = true)]
async fn a_freed_slot_does_not_launch_a_job_the_last_poll_no_longer_listed() {
    let first = ScheduledJob::fixture().scheduled_at_second(1).build();
    let second = ScheduledJob::fixture().scheduled_at_second(2).build();
    let listed: Listed = Arc::new(Mutex::new(vec![first.clone(), second.clone()]));
    let polls = Arc::new(AtomicUsize::new(0));
    let launched = Arc::default();
    let (events_tx, stream) = events();
    let dispatcher = dispatcher(
        monitor(&listed, &polls),
        jobifier(stream, &launched),
        no_feedback(),
        1,
    );
    let (stop_tx, handle) = start(dispatcher);
    sleep(Duration::from_secs(1)).await;
    assert_eq!(launched_ids(&launched), vec![first.id]);
    // The second job is cancelled in Buildkite; the poll at 10 s no longer lists it.
    listed.lock().expect("lock").retain(|j| j.id != second.id);
    sleep(POLL).await;
    events_tx
        .send(WorkloadEvent::Succeeded(first.id))
        .expect("send");
    sleep(POLL * 2).await;
    assert_eq!(launched_ids(&launched), vec![first.id]);
    stop(stop_tx, handle).await;
}

#[tokio::test(start_paused = true)]
async fn the_observer_gets_in_flight_per_queue_and_each_new_job_once() {
    let linux_a = ScheduledJob::fixture().queue("linux").build();
    let linux_b = ScheduledJob::fixture().queue("linux").build();
    let mac = ScheduledJob::fixture().queue("mac").build();
    let listed: Listed = Arc::new(Mutex::new(vec![
        linux_a.clone(),
        linux_b.clone(),
        mac.clone(),
    ]));
    let polls = Arc::new(AtomicUsize::new(0));
    let launched = Arc::default();
    let (events_tx, stream) = events();
    let recorder = Arc::new(Recorder::default());
    let dispatcher = dispatcher(
        monitor(&listed, &polls),
        jobifier(stream, &launched),
        no_feedback(),
        5,
    )
    .with_observer(recorder.clone());
    let (stop_tx, handle) = start(dispatcher);
    sleep(Duration::from_secs(1)).await;
    assert_eq!(
        recorder.last_by_queue(),
        vec![("linux".to_owned(), 2), ("mac".to_owned(), 1)]
    );
    events_tx
        .send(WorkloadEvent::Succeeded(linux_a.id))
        .expect("send");
    events_tx.send(WorkloadEvent::Gone(mac.id)).expect("send");
    sleep(Duration::from_secs(1)).await;
    assert_eq!(recorder.last_by_queue(), vec![("linux".to_owned(), 1)]);
    let late = ScheduledJob::fixture().queue("mac").build();
    listed.lock().expect("lock").push(late.clone());
    sleep(POLL * 2).await;
    let mut seen = recorder.seen.lock().expect("lock").clone();
    seen.sort();
    let mut expected = vec![linux_a.id, linux_b.id, mac.id, late.id];
    expected.sort();
    assert_eq!(seen, expected, "three polls, each job seen once");
    assert_eq!(
        recorder.last_by_queue(),
        vec![("linux".to_owned(), 1), ("mac".to_owned(), 1)]
    );
    stop(stop_tx, handle).await;
}
