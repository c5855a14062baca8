//! Polling, launches, cancellations and leadership.

use super::*;

#[test]
fn polls_at_the_interval() {
    let mut world = World::new(vec![], 5);
    world.start();
    world.advance(secs(35));
    assert_eq!(world.requests.len(), 4, "polls at 0, 10, 20 and 30 s");
}

#[test]
fn a_slow_poll_does_not_stretch_the_poll_period() {
    let mut world = World::new(vec![], 5);
    world.page_delay = secs(4);
    world.start();
    world.advance(secs(35));
    assert_eq!(
        world.requests.len(),
        4,
        "polls start at 0, 10, 20 and 30 s (not 0, 14, 28)"
    );
}

#[test]
fn the_first_poll_waits_for_the_workloads_then_polls_follow_the_interval() {
    let mut machine = Machine::leading(Limits::global(5), config());
    assert_eq!(
        machine.wake(),
        None,
        "nothing is due before the workloads are known"
    );
    table(
        &mut machine,
        vec![
            (secs(3), restored(), vec![fetch(None)]),
            (secs(3), page(&[], None), vec![]),
            (secs(12), Input::Tick, vec![]),
            (secs(13), Input::Tick, vec![fetch(None)]),
        ],
    );
    assert_eq!(
        machine.wake(),
        Some(secs(15)),
        "with a page on its way, the state check is what is due next"
    );
}

#[test]
fn a_transient_launch_failure_is_retried_on_the_next_poll() {
    let job = ScheduledJob::fixture().build();
    let mut machine = Machine::leading(Limits::global(5), config());
    let transient = Input::Launched {
        job: Box::new(job.clone()),
        result: Err(LaunchError::transient("etcd timeout")),
        latency: Duration::ZERO,
    };
    table(
        &mut machine,
        vec![
            (secs(0), restored(), vec![fetch(None)]),
            (
                secs(0),
                page(std::slice::from_ref(&job), None),
                vec![Did::Launch(job.id)],
            ),
            (secs(0), transient, vec![]),
            (POLL, Input::Tick, vec![fetch(None)]),
            (
                POLL,
                page(std::slice::from_ref(&job), None),
                vec![Did::Launch(job.id)],
            ),
            (POLL, launched(&job), vec![]),
            (
                POLL * 2,
                Input::Tick,
                vec![fetch(None), Did::Check(vec![job.id])],
            ),
            (POLL * 2, page(std::slice::from_ref(&job), None), vec![]),
        ],
    );
}

#[test]
fn the_workload_of_a_cancelled_job_is_removed_before_it_starts() {
    let job = ScheduledJob::fixture().build();
    let mut world = World::new(vec![job.clone()], 5);
    world.state = JobState::Canceled;
    world.start();
    world.advance(secs(40));
    assert_eq!(world.cancels, vec![job.id], "removed once");
}

#[test]
fn only_jobs_whose_workload_has_not_started_are_checked_and_only_cancelled_ones_removed() {
    let (waiting, running) = (
        ScheduledJob::fixture().build(),
        ScheduledJob::fixture().build(),
    );
    let mut machine = Machine::leading(Limits::global(5), config());
    let both = [waiting.clone(), running.clone()];
    table(
        &mut machine,
        vec![
            (secs(0), restored(), vec![fetch(None)]),
            (
                secs(0),
                page(&both, None),
                vec![Did::Launch(waiting.id), Did::Launch(running.id)],
            ),
            (secs(0), launched(&waiting), vec![]),
            (secs(0), launched(&running), vec![]),
            (
                secs(1),
                Input::Workload(WorkloadEvent::Started(running.id)),
                vec![],
            ),
            (
                secs(15),
                Input::Tick,
                vec![fetch(None), Did::Check(vec![waiting.id])],
            ),
            (
                secs(15),
                Input::States(Ok(vec![(waiting.id, JobState::Scheduled)])),
                vec![],
            ),
            (secs(30), Input::Tick, vec![Did::Check(vec![waiting.id])]),
            (
                secs(30),
                Input::States(Ok(vec![(waiting.id, JobState::Canceled)])),
                vec![Did::Cancel(waiting.id)],
            ),
        ],
    );
}

#[test]
fn a_standby_observes_but_never_polls_or_launches_until_it_leads() {
    let job = ScheduledJob::fixture().build();
    let other = ScheduledJob::fixture().on_pipeline("web").workload();
    let start = Instant::now();
    let mut scheduler = Scheduler::new(run_all(), Limits::global(1), config(), start);
    let at = |s: u64| start + secs(s);
    let mut steps = vec![
        (0, Input::Leadership(false), vec![]),
        (0, restored(), vec![]),
        (
            0,
            Input::Workload(WorkloadEvent::Observed(other.clone())),
            vec![],
        ),
        (30, Input::Tick, vec![]),
        (31, Input::Leadership(true), vec![fetch(None)]),
        (31, page(std::slice::from_ref(&job), None), vec![]),
        (
            32,
            Input::Workload(WorkloadEvent::Gone(other.job)),
            vec![Did::Launch(job.id)],
        ),
    ];
    let mut reported = Vec::new();
    for (i, (s, input, expected)) in steps.drain(..).enumerate() {
        let effects = scheduler.handle(at(s), input);
        assert_eq!(io(&effects), expected, "step {i}");
        reported.extend(reports(effects));
    }
    let leadership: Vec<bool> = reported
        .iter()
        .filter_map(|event| match event {
            SchedulerEvent::Leadership(leader) => Some(*leader),
            _ => None,
        })
        .collect();
    assert_eq!(leadership, [false, true], "the start, then the change");
    assert!(
        reported.iter().any(|event| matches!(
            event,
            SchedulerEvent::Decided { job: id, decision: Decision::Defer { .. }, .. } if *id == job.id
        )),
        "the standby's book counted the other replica's workload"
    );
}

#[test]
fn losing_the_lead_gives_back_launches_not_started_and_drops_the_sweep() {
    let jobs = jobs(3);
    let mut machine = Machine::leading(
        Limits::global(10),
        SchedulerConfig {
            launch_concurrency: 1,
            ..config()
        },
    );
    table(
        &mut machine,
        vec![
            (secs(0), restored(), vec![fetch(None)]),
            (
                secs(0),
                page(&jobs, Some("1")),
                vec![Did::Launch(jobs[0].id), fetch(Some("1"))],
            ),
            (secs(1), Input::Leadership(false), vec![]),
            (secs(1), page(&jobs[..1], None), vec![]),
            (secs(1), launched(&jobs[0]), vec![]),
            (secs(5), Input::Leadership(true), vec![fetch(None)]),
            (secs(5), page(&jobs, None), vec![Did::Launch(jobs[1].id)]),
        ],
    );
    assert_eq!(
        machine.scheduler.book().status(jobs[0].id),
        Some(crate::book::JobStatus::InFlight),
        "the launch that had started still counts"
    );
}

#[test]
fn polling_backs_off_when_rate_limited() {
    let mut world = World::new(vec![], 5);
    world.fail_page = Box::new(|request, _| {
        (request == 0).then(|| MonitorError::RateLimited {
            retry_after: secs(45),
        })
    });
    world.start();
    world.advance(secs(44));
    assert_eq!(world.requests.len(), 1, "no poll before retry_after");
    world.advance(secs(2));
    assert_eq!(world.requests.len(), 2);
    world.advance(POLL);
    assert_eq!(
        world.requests.len(),
        3,
        "back to the interval after a success"
    );
}

#[test]
fn failed_polls_back_off_exponentially_up_to_the_maximum() {
    let mut world = World::new(vec![], 5);
    world.fail_page = Box::new(|_, _| Some(MonitorError::Transient("connection reset".into())));
    world.start();
    world.advance(secs(200));
    // 0, then 20 s (2×), 40 s (4×), 60 s (the maximum) apart.
    assert_eq!(world.requests.len(), 5, "at 0, 20, 60, 120 and 180 s");
}

#[test]
fn huge_waits_from_a_monitor_or_the_config_do_not_overflow_the_clock() {
    let config = SchedulerConfig {
        poll_interval: Duration::MAX,
        cancel_check_interval: Duration::MAX,
        max_poll_backoff: Duration::MAX,
        ..config()
    };
    let mut world = World::with(vec![vec![]], Limits::global(5), config);
    world.fail_page = Box::new(|_, _| {
        Some(MonitorError::RateLimited {
            retry_after: Duration::MAX,
        })
    });
    world.start();
    world.advance(secs(3600));
    assert_eq!(
        world.requests.len(),
        1,
        "the first poll runs, the next waits (practically) forever"
    );
}

#[test]
fn nothing_is_polled_or_launched_before_the_workloads_are_restored() {
    let mut world = World::new(vec![ScheduledJob::fixture().build()], 5);
    world.advance(POLL * 3);
    assert!(world.requests.is_empty());
    assert!(world.launches.is_empty());
}

#[test]
fn launches_run_concurrently_up_to_the_bound_and_a_failing_one_blocks_none() {
    let broken = ScheduledJob::fixture()
        .on_pipeline("broken")
        .scheduled_at_second(0)
        .build();
    let mut listed = vec![broken];
    listed.extend((1..=5).map(|i| {
        ScheduledJob::fixture()
            .on_pipeline(&format!("p{i}"))
            .scheduled_at_second(i)
            .build()
    }));
    let mut world = World::with(
        vec![listed],
        Limits::global(10),
        SchedulerConfig {
            launch_concurrency: 2,
            ..config()
        },
    );
    world.launch = Box::new(|job| {
        if job.pipeline == "broken" {
            Err(LaunchError::transient("connection reset"))
        } else {
            Ok(Launched::Created)
        }
    });
    world.launch_delay = secs(5);
    world.start();
    world.advance(secs(6));
    assert_eq!(world.created.len(), 2, "two at once");
    world.advance(secs(10));
    assert_eq!(world.created.len(), 5);
    assert_eq!(world.most_launching, 2);
}
