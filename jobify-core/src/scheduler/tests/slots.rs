//! Limits, freed slots, and the in-flight and jobs-seen reports.

use super::*;

#[test]
fn defers_at_the_limit_and_launches_as_soon_as_a_slot_frees_between_polls() {
    let first = ScheduledJob::fixture().scheduled_at_second(1).build();
    let second = ScheduledJob::fixture().scheduled_at_second(2).build();
    let mut world = World::new(vec![second.clone(), first.clone()], 1);
    world.start();
    world.advance(secs(1));
    assert_eq!(world.created, vec![first.id]);
    assert!(
        world
            .decisions()
            .contains(&(second.id, ReasonCode::LIMIT_GLOBAL))
    );
    world.advance(POLL);
    assert_eq!(
        world.created,
        vec![first.id],
        "still full, and the first is not launched again"
    );
    // Polls ran at 0 and 10 s; the next is due at 20 s. The workload ends at 12 s.
    world.advance(secs(1));
    world.listed().retain(|j| j.id != first.id);
    let polls_before = world.requests.len();
    world.send(Input::Workload(WorkloadEvent::Succeeded(first.id)));
    world.advance(secs(1));
    assert_eq!(
        world.created,
        vec![first.id, second.id],
        "the deferred job takes the freed slot before the next poll"
    );
    assert_eq!(world.requests.len(), polls_before, "no poll ran");
    world.advance(POLL * 2);
    assert_eq!(
        world.created,
        vec![first.id, second.id],
        "later polls do not launch it again"
    );
    assert_eq!(
        world.in_flight(),
        vec![1],
        "the slot went straight from the first job to the second"
    );
}

#[test]
fn a_freed_slot_launches_the_deferred_job_in_the_same_step() {
    let first = ScheduledJob::fixture().scheduled_at_second(1).build();
    let second = ScheduledJob::fixture().scheduled_at_second(2).build();
    let mut machine = Machine::leading(Limits::global(1), config());
    table(
        &mut machine,
        vec![
            (secs(0), restored(), vec![fetch(None)]),
            (
                secs(0),
                page(&[second.clone(), first.clone()], None),
                vec![Did::Launch(first.id)],
            ),
            (secs(0), launched(&first), vec![]),
            (
                secs(3),
                Input::Workload(WorkloadEvent::Succeeded(first.id)),
                vec![Did::Launch(second.id)],
            ),
        ],
    );
}

#[test]
fn a_freed_slot_does_not_launch_a_job_the_last_poll_no_longer_listed() {
    let first = ScheduledJob::fixture().scheduled_at_second(1).build();
    let second = ScheduledJob::fixture().scheduled_at_second(2).build();
    let mut world = World::new(vec![first.clone(), second.clone()], 1);
    world.start();
    world.advance(secs(1));
    assert_eq!(world.created, vec![first.id]);
    // The second job is cancelled in Buildkite; the poll at 10 s no longer lists it.
    world.listed().retain(|j| j.id != second.id);
    world.advance(POLL);
    world.send(Input::Workload(WorkloadEvent::Succeeded(first.id)));
    world.advance(POLL * 2);
    assert_eq!(world.created, vec![first.id]);
}

#[test]
fn the_observer_gets_in_flight_per_queue_and_each_new_job_once() {
    let linux_a = ScheduledJob::fixture().queue("linux").build();
    let linux_b = ScheduledJob::fixture().queue("linux").build();
    let mac = ScheduledJob::fixture().queue("mac").build();
    let mut world = World::new(vec![linux_a.clone(), linux_b.clone(), mac.clone()], 5);
    world.start();
    world.advance(secs(1));
    assert_eq!(
        world.last_by_queue(),
        vec![("linux".to_owned(), 2), ("mac".to_owned(), 1)]
    );
    world.send(Input::Workload(WorkloadEvent::Succeeded(linux_a.id)));
    world.send(Input::Workload(WorkloadEvent::Gone(mac.id)));
    world.advance(secs(1));
    assert_eq!(world.last_by_queue(), vec![("linux".to_owned(), 1)]);
    let late = ScheduledJob::fixture().queue("mac").build();
    world.listed().push(late.clone());
    world.advance(POLL * 2);
    let mut seen = world.seen();
    seen.sort();
    let mut expected = vec![linux_a.id, linux_b.id, mac.id, late.id];
    expected.sort();
    assert_eq!(seen, expected, "three polls, each job seen once");
    assert_eq!(
        world.last_by_queue(),
        vec![("linux".to_owned(), 1), ("mac".to_owned(), 1)]
    );
}
