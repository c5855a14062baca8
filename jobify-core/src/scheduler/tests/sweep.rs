//! Sweeps: pages planned as they arrive, how far a sweep reads, and what ends it.

use super::*;

/// `count` pages of `per_page` jobs each, oldest first.
fn pages(count: usize, per_page: usize) -> Vec<Vec<ScheduledJob>> {
    (0..count).map(|_| jobs(per_page)).collect()
}

fn sweep_config(lookahead_pages: usize, launch_concurrency: usize) -> SchedulerConfig {
    SchedulerConfig {
        lookahead_pages,
        launch_concurrency,
        ..config()
    }
}

fn ids(pages: &[Vec<ScheduledJob>]) -> Vec<JobId> {
    pages.iter().flatten().map(|job| job.id).collect()
}

#[test]
fn a_sweep_launches_each_page_while_the_next_is_still_being_fetched() {
    let pages = pages(3, 2);
    let mut world = World::with(pages.clone(), Limits::global(100), config());
    world.hold_page = Some(2);
    world.start();
    world.advance(secs(1));
    assert_eq!(
        world.created,
        ids(&pages[..2]),
        "the first two pages are launched while the third is still on its way"
    );
    world.release_page();
    world.advance(secs(1));
    assert_eq!(world.created, ids(&pages));
    assert_eq!(world.requests, vec![None, Some(1), Some(2)]);
}

#[test]
fn a_sweep_reads_on_past_pages_of_jobs_already_in_flight() {
    let mut world = World::with(pages(8, 3), Limits::global(100), sweep_config(2, 4));
    world.start();
    world.advance(POLL + secs(1));
    let expected: Vec<Option<usize>> = [None]
        .into_iter()
        .chain((1..8).map(Some))
        .cycle()
        .take(16)
        .collect();
    assert_eq!(
        world.requests, expected,
        "both sweeps read all eight pages: nothing was held back, so the lookahead of 2 does not apply"
    );
    assert_eq!(world.created.len(), 24, "each job launched once");
    assert_eq!(world.sweeps(), vec![(SweepEnd::Completed, 8, 24); 2]);
}

#[test]
fn once_a_limit_holds_a_job_back_a_sweep_reads_only_the_lookahead_pages() {
    let pages = pages(10, 1);
    let mut world = World::with(pages.clone(), Limits::global(1), sweep_config(3, 4));
    world.start();
    world.advance(secs(1));
    assert_eq!(world.created, vec![pages[0][0].id]);
    assert_eq!(
        world.requests,
        vec![None, Some(1), Some(2)],
        "page 2 held a job back; the sweep stopped after 3 pages in all"
    );
    assert_eq!(world.sweeps(), vec![(SweepEnd::StoppedEarly, 3, 3)]);
    world.advance(POLL);
    assert_eq!(
        world.requests.len(),
        6,
        "the next sweep starts from the oldest page again"
    );
}

#[test]
fn the_next_page_waits_until_less_than_two_pages_of_launches_are_queued() {
    let pages = pages(4, 3);
    let mut machine = Machine::leading(Limits::global(100), sweep_config(5, 1));
    let launch = |page: usize, job: usize| Did::Launch(pages[page][job].id);
    table(
        &mut machine,
        vec![
            (secs(0), restored(), vec![fetch(None)]),
            // One launch starts, two queue (< 2 pages of 3): the next page is fetched.
            (
                secs(0),
                page(&pages[0], Some("1")),
                vec![launch(0, 0), fetch(Some("1"))],
            ),
            (secs(0), page(&pages[1], Some("2")), vec![fetch(Some("2"))]),
            // Eight queued: no more pages until fewer than six are.
            (secs(0), page(&pages[2], Some("3")), vec![]),
            (secs(1), launched(&pages[0][0]), vec![launch(0, 1)]),
            (secs(1), launched(&pages[0][1]), vec![launch(0, 2)]),
            (
                secs(1),
                launched(&pages[0][2]),
                vec![launch(1, 0), fetch(Some("3"))],
            ),
            (secs(1), page(&pages[3], None), vec![]),
        ],
    );
}

#[test]
fn a_failed_page_ends_the_sweep_and_the_next_starts_from_the_oldest_page() {
    let pages = pages(3, 1);
    let mut world = World::with(pages.clone(), Limits::global(100), config());
    world.fail_page = Box::new(|request, index| {
        (request == 1 && index == 1).then(|| MonitorError::Transient("connection reset".into()))
    });
    world.start();
    world.advance(secs(1));
    assert_eq!(world.requests, vec![None, Some(1)]);
    assert_eq!(world.created, vec![pages[0][0].id]);
    assert_eq!(world.sweeps(), vec![(SweepEnd::Failed, 1, 1)]);
    // One failure backs off to twice the interval.
    world.advance(POLL * 2);
    assert_eq!(world.requests, vec![None, Some(1), None, Some(1), Some(2)]);
    assert_eq!(world.created, ids(&pages), "each job launched once");
}

#[test]
fn a_job_on_two_overlapping_pages_of_a_sweep_is_decided_once() {
    let mut pages = pages(2, 2);
    let repeated = pages[0][1].clone();
    pages[1].insert(0, repeated.clone());
    // One slot: the first job runs, every other job is held back.
    let mut world = World::with(pages.clone(), Limits::global(1), config());
    world.start();
    world.advance(secs(1));
    assert_eq!(world.created, vec![pages[0][0].id]);
    let decisions = world.decisions();
    assert_eq!(
        decisions
            .iter()
            .filter(|(id, _)| *id == repeated.id)
            .count(),
        1,
        "held back once, not again for its second listing: {decisions:?}"
    );
    assert_eq!(decisions.len(), 4, "four distinct jobs");
    assert_eq!(world.sweeps(), vec![(SweepEnd::Completed, 2, 4)]);
}

#[test]
fn a_list_whose_jobs_are_held_back_is_skipped_for_the_next_list() {
    let queued = |queue: &str| vec![ScheduledJob::fixture().queue(queue).build()];
    // List A: four pages of queue `a`, whose limit is one; list B: queue `b`.
    let pages = vec![
        queued("a"),
        queued("a"),
        queued("a"),
        queued("a"),
        queued("b"),
    ];
    let mut world = World::with(
        pages.clone(),
        Limits::global(100).with_queue("a", 1),
        sweep_config(2, 4),
    );
    world.list_starts = vec![4];
    world.start();
    world.advance(secs(1));
    assert_eq!(
        world.requests,
        vec![None, Some(1), Some(4)],
        "after two pages of list A, one held back, the sweep goes on with list B"
    );
    assert_eq!(world.created, vec![pages[0][0].id, pages[4][0].id]);
    assert_eq!(
        world.sweeps(),
        vec![(SweepEnd::StoppedEarly, 3, 3)],
        "it skipped part of list A, so it is not complete"
    );
}

#[test]
fn a_sweep_is_timed_from_its_first_request_to_its_last_page() {
    let jobs = jobs(2);
    let mut machine = Machine::leading(Limits::global(100), config());
    let _ = machine.at(secs(0), restored());
    let _ = machine.at(Duration::from_millis(300), page(&jobs[..1], Some("1")));
    let effects = machine.at(Duration::from_millis(700), page(&jobs[1..], None));
    let sweeps: Vec<SweepSummary> = reports(effects)
        .into_iter()
        .filter_map(|event| match event {
            SchedulerEvent::SweepEnded(summary) => Some(summary),
            _ => None,
        })
        .collect();
    assert_eq!(
        sweeps,
        vec![SweepSummary {
            end: SweepEnd::Completed,
            pages: 2,
            jobs: 2,
            duration: Duration::from_millis(700),
        }]
    );
}
