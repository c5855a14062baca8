//! A job source that reserves (the Stacks API): each launch is reserved first, in batches,
//! and only what was reserved for this controller launches.

use secrecy::{ExposeSecret, SecretString};

use super::*;

fn reserved(jobs: &[&ScheduledJob], asked: &[&ScheduledJob]) -> Input {
    Input::Reserved {
        jobs: asked.iter().map(|job| job.id).collect(),
        result: Ok(jobs
            .iter()
            .map(|job| Claim::without_token(job.id))
            .collect()),
    }
}

#[test]
fn only_the_jobs_reserved_for_this_controller_launch() {
    let jobs = jobs(3);
    let [a, b, c] = [&jobs[0], &jobs[1], &jobs[2]];
    let mut machine = Machine::leading_reserving(Limits::global(10), config(), true);
    table(
        &mut machine,
        vec![
            (secs(0), restored(), vec![fetch(None)]),
            (
                secs(0),
                page(&jobs, None),
                vec![Did::Reserve(vec![a.id, b.id, c.id])],
            ),
            // Another controller reserved b first.
            (
                secs(0),
                reserved(&[a, c], &[a, b, c]),
                vec![Did::Launch(a.id), Did::Launch(c.id)],
            ),
        ],
    );
    assert_eq!(
        machine.scheduler.book().status(b.id),
        None,
        "b is given back"
    );
    assert_eq!(
        machine.scheduler.book().in_flight(),
        2,
        "only the two launches hold slots"
    );
}

#[test]
fn a_job_comes_with_the_token_issued_for_it() {
    let jobs = jobs(1);
    let mut machine = Machine::leading_reserving(Limits::global(10), config(), true);
    let _ = machine.at(secs(0), restored());
    let _ = machine.at(secs(0), page(&jobs, None));
    let effects = machine.at(
        secs(0),
        Input::Reserved {
            jobs: vec![jobs[0].id],
            result: Ok(vec![Claim {
                job: jobs[0].id,
                agent_token: Some(SecretString::from("bkjat_for_this_job")),
            }]),
        },
    );
    let tokens: Vec<_> = effects
        .iter()
        .filter_map(|effect| match effect {
            Effect::Launch {
                job, agent_token, ..
            } => Some((
                job.id,
                agent_token.as_ref().map(|t| t.expose_secret().to_owned()),
            )),
            _ => None,
        })
        .collect();
    assert_eq!(
        tokens,
        vec![(jobs[0].id, Some("bkjat_for_this_job".to_owned()))]
    );
}

#[test]
fn reservations_are_asked_for_a_launch_round_at_a_time() {
    // Launch concurrency 4: two rounds (8) reserved at first, then one request per round.
    let listed = jobs(20);
    let mut world = World::reserving(vec![listed.clone()], Limits::global(100), config());
    world.launch_delay = Duration::from_millis(100);
    world.start();
    world.advance(secs(1));
    assert_eq!(world.created.len(), 20, "every job launched");
    let sizes: Vec<usize> = world.reservations.iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![8, 4, 4, 4], "no request per job");
    assert!(world.most_launching <= 4, "the launch concurrency holds");
    let launched: std::collections::HashSet<_> = world.created.iter().collect();
    assert!(listed.iter().all(|job| launched.contains(&job.id)));
}

#[test]
fn a_failed_reservation_launches_nothing_and_the_next_sweep_tries_again() {
    let listed = jobs(2);
    let mut world = World::reserving(vec![listed.clone()], Limits::global(10), config());
    let mut calls = 0;
    world.reserve = Box::new(move |jobs| {
        calls += 1;
        if calls == 1 {
            Err(MonitorError::Transient("connection reset".into()))
        } else {
            Ok(jobs.iter().copied().map(Claim::without_token).collect())
        }
    });
    world.start();
    world.advance(secs(1));
    assert!(world.created.is_empty(), "nothing launched unreserved");
    world.advance(POLL);
    assert_eq!(
        world.created.len(),
        2,
        "the next sweep reserved and launched both"
    );
    assert_eq!(world.reservations.len(), 2);
}

#[test]
fn a_reservation_answered_after_leadership_was_lost_launches_nothing() {
    let jobs = jobs(2);
    let mut machine = Machine::leading_reserving(Limits::global(10), config(), true);
    table(
        &mut machine,
        vec![
            (secs(0), restored(), vec![fetch(None)]),
            (
                secs(0),
                page(&jobs, None),
                vec![Did::Reserve(vec![jobs[0].id, jobs[1].id])],
            ),
            (secs(1), Input::Leadership(false), vec![]),
            (
                secs(1),
                reserved(&[&jobs[0], &jobs[1]], &[&jobs[0], &jobs[1]]),
                vec![],
            ),
        ],
    );
    assert_eq!(machine.scheduler.book().in_flight(), 0, "both given back");
}

#[test]
fn a_source_that_does_not_reserve_launches_at_once() {
    let jobs = jobs(1);
    let mut machine = Machine::leading(Limits::global(10), config());
    table(
        &mut machine,
        vec![
            (secs(0), restored(), vec![fetch(None)]),
            (secs(0), page(&jobs, None), vec![Did::Launch(jobs[0].id)]),
        ],
    );
}

#[test]
fn rate_limited_reservations_wait_in_the_launch_queue_until_buildkite_takes_them_again() {
    let jobs = jobs(2);
    let mut machine = Machine::leading_reserving(Limits::global(10), config(), true);
    let both = vec![jobs[0].id, jobs[1].id];
    table(
        &mut machine,
        vec![
            (secs(0), restored(), vec![fetch(None)]),
            (secs(0), page(&jobs, None), vec![Did::Reserve(both.clone())]),
            (
                secs(0),
                Input::Reserved {
                    jobs: both.clone(),
                    result: Err(MonitorError::RateLimited {
                        retry_after: secs(2),
                    }),
                },
                vec![],
            ),
            (secs(1), Input::Tick, vec![]),
        ],
    );
    assert_eq!(machine.wake(), Some(secs(2)), "it wakes when the hold ends");
    assert_eq!(
        machine.scheduler.book().in_flight(),
        2,
        "the jobs keep their slots"
    );
    table(
        &mut machine,
        vec![(secs(2), Input::Tick, vec![Did::Reserve(both)])],
    );
}

#[test]
fn one_reservation_request_at_a_time_and_what_is_decided_meanwhile_joins_the_next() {
    let first = jobs(1);
    let later = jobs(2);
    let mut machine = Machine::leading_reserving(Limits::global(10), config(), true);
    table(
        &mut machine,
        vec![
            (secs(0), restored(), vec![fetch(None)]),
            (
                secs(0),
                page(&first, Some("1")),
                vec![Did::Reserve(vec![first[0].id]), fetch(Some("1"))],
            ),
            (secs(0), page(&later, None), vec![]),
            (
                secs(0),
                reserved(&[&first[0]], &[&first[0]]),
                vec![
                    Did::Reserve(vec![later[0].id, later[1].id]),
                    Did::Launch(first[0].id),
                ],
            ),
        ],
    );
}
