//! Property tests: random sequences of what can happen to jobs and workloads, checked against
//! a model of Buildkite and the cluster after every step.

use std::collections::{HashMap, HashSet};

use proptest::prelude::*;

use crate::book::{Book, BookEvent};
use crate::decision::{Decision, Reason, ReasonCode, Template};
use crate::job::{JobId, ScheduledJob};
use crate::limits::Limits;
use crate::plan::{Waiting, plan_page, plan_round, plan_waiting};
use crate::policy::from_fn;
use crate::workload::{Workload, WorkloadEvent};

#[derive(Clone, Debug)]
enum Op {
    /// A job becomes scheduled in Buildkite.
    Appear {
        pipeline: u8,
        queue: u8,
        priority: i32,
    },
    /// jobify polls and carries out the plan's launches as pending.
    Poll,
    /// jobify sweeps page by page (`page_size` jobs a page) and stops after `pages` pages,
    /// completing the sweep only if it reached the end.
    Sweep { page_size: usize, pages: usize },
    /// Between polls, jobify launches what the last poll's limits held back, as after a
    /// slot freed.
    LaunchWaiting,
    /// A pending launch succeeds.
    LaunchOk(usize),
    /// A pending launch fails, transiently or for good.
    LaunchFails { index: usize, retry: bool },
    /// A workload's pod starts: the agent acquires the job.
    Start(usize),
    /// A workload ends.
    End(usize),
    /// An ended workload is garbage collected.
    Collect(usize),
    /// A scheduled job is cancelled in Buildkite.
    Cancel(usize),
    /// jobify restarts: pending launches are lost, the book is rebuilt from the cluster.
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u8..3, 0u8..2, 0i32..3).prop_map(|(pipeline, queue, priority)| Op::Appear { pipeline, queue, priority }),
        3 => Just(Op::Poll),
        2 => (1usize..4, 1usize..5).prop_map(|(page_size, pages)| Op::Sweep { page_size, pages }),
        2 => Just(Op::LaunchWaiting),
        3 => any::<usize>().prop_map(Op::LaunchOk),
        1 => (any::<usize>(), any::<bool>()).prop_map(|(index, retry)| Op::LaunchFails { index, retry }),
        2 => any::<usize>().prop_map(Op::Start),
        2 => any::<usize>().prop_map(Op::End),
        1 => any::<usize>().prop_map(Op::Collect),
        1 => any::<usize>().prop_map(Op::Cancel),
        1 => Just(Op::Restart),
    ]
}

/// Buildkite and the cluster as they really are.
#[derive(Default)]
struct World {
    scheduled: Vec<ScheduledJob>,
    /// Workloads in the cluster: job -> (finished, queue, pipeline).
    cluster: HashMap<JobId, (bool, String, String)>,
    /// Launches in progress, in the order they started.
    pending: Vec<ScheduledJob>,
    /// Jobs whose workload was ever created.
    created: HashSet<JobId>,
    /// What the last poll's limits held back.
    waiting: Vec<Waiting>,
    clock: i64,
}

fn pick<T>(items: &[T], index: usize) -> Option<&T> {
    (!items.is_empty()).then(|| &items[index % items.len()])
}

fn workloads_where(world: &World, finished: bool) -> Vec<JobId> {
    let mut jobs: Vec<JobId> = world
        .cluster
        .iter()
        .filter(|(_, (f, _, _))| *f == finished)
        .map(|(id, _)| *id)
        .collect();
    jobs.sort();
    jobs
}

fn check_invariants(book: &Book, world: &World, max: (u32, u32, u32)) -> Result<(), TestCaseError> {
    prop_assert_eq!(book.counts(), book.recount(), "maintained counts drifted");
    let running = world
        .cluster
        .values()
        .filter(|(finished, _, _)| !finished)
        .count();
    prop_assert_eq!(
        book.in_flight() as usize,
        world.pending.len() + running,
        "in flight must be launched-and-pending plus workloads not ended"
    );
    let (global, per_queue, per_pipeline) = max;
    prop_assert!(book.in_flight() <= global);
    for queue in ["q0", "q1"] {
        prop_assert!(
            book.in_flight_in_queue(queue) <= per_queue,
            "queue {queue} over its limit"
        );
    }
    for pipeline in ["p0", "p1", "p2"] {
        prop_assert!(book.in_flight_in_pipeline(pipeline) <= per_pipeline);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn book_never_exceeds_limits_never_launches_twice_and_counts_what_runs(
        ops in prop::collection::vec(op(), 1..80),
        global in 1u32..5,
        per_queue in 1u32..4,
        per_pipeline in 1u32..4,
    ) {
        let limits = Limits::global(global)
            .with_queue("q0", per_queue)
            .with_queue("q1", per_queue)
            .with_per_pipeline(per_pipeline);
        let policy = from_fn(|_: &ScheduledJob| Decision::Run {
            template: Template::Default { name: None },
            reason: Reason::new(ReasonCode::RULE_MATCHED, "run"),
        });
        let mut book = Book::new();
        book.apply(BookEvent::Workload(WorkloadEvent::Restored(vec![])));
        let mut world = World::default();
        for op in ops {
            match op {
                Op::Appear { pipeline, queue, priority } => {
                    world.clock += 1;
                    world.scheduled.push(
                        ScheduledJob::fixture()
                            .on_pipeline(&format!("p{pipeline}"))
                            .queue(&format!("q{queue}"))
                            .priority(priority)
                            .scheduled_at_second(world.clock)
                            .build(),
                    );
                }
                Op::Poll => {
                    let mut deferred_by_global: Option<i32> = None;
                    let mut priorities = Vec::new();
                    let mut plan = plan_round(&mut book, &policy, &limits, world.scheduled.clone(), |job, decision| {
                        if decision.reason().code == ReasonCode::LIMIT_GLOBAL {
                            deferred_by_global = Some(deferred_by_global.map_or(job.priority, |p: i32| p.max(job.priority)));
                        }
                        if let Decision::Run { .. } = decision {
                            priorities.push(job.priority);
                        }
                    });
                    prop_assert!(priorities.windows(2).all(|w| w[0] >= w[1]), "launch order respects priority: {:?}", priorities);
                    if let (Some(deferred), Some(lowest)) = (deferred_by_global, priorities.last()) {
                        prop_assert!(*lowest >= deferred, "a lower-priority job took the last slot");
                    }
                    world.waiting = std::mem::take(&mut plan.waiting);
                    for (job, _) in plan.launches {
                        prop_assert!(!world.created.contains(&job.id), "job {} launched after its workload was created", job.id);
                        prop_assert!(world.pending.iter().all(|p| p.id != job.id), "job {} launched twice at once", job.id);
                        world.pending.push(job);
                    }
                    prop_assert!(book.len() <= world.scheduled.len() + world.cluster.len() + world.pending.len(), "the book remembers more than exists");
                }
                Op::Sweep { page_size, pages } => {
                    book.apply(BookEvent::SweepStarted);
                    world.waiting.clear();
                    let chunks: Vec<Vec<ScheduledJob>> = world.scheduled.chunks(page_size).map(<[ScheduledJob]>::to_vec).collect();
                    let read = chunks.len().min(pages);
                    for chunk in chunks.into_iter().take(read) {
                        let plan = plan_page(&mut book, &policy, &limits, chunk, |_, _| {});
                        world.waiting.extend(plan.waiting);
                        for (job, _) in plan.launches {
                            prop_assert!(!world.created.contains(&job.id), "job {} launched after its workload was created", job.id);
                            prop_assert!(world.pending.iter().all(|p| p.id != job.id), "job {} launched twice at once", job.id);
                            world.pending.push(job);
                        }
                    }
                    if read * page_size >= world.scheduled.len() {
                        book.apply(BookEvent::SweepCompleted);
                    }
                }
                Op::LaunchWaiting => {
                    let held_back: HashSet<JobId> = world.waiting.iter().map(|w| w.job.id).collect();
                    let mut priorities = Vec::new();
                    let plan = plan_waiting(&mut book, &limits, std::mem::take(&mut world.waiting), |job, _| {
                        priorities.push(job.priority);
                    });
                    prop_assert!(priorities.windows(2).all(|w| w[0] >= w[1]), "launch order respects priority: {:?}", priorities);
                    world.waiting = plan.waiting;
                    for (job, _) in plan.launches {
                        prop_assert!(held_back.contains(&job.id), "job {} was not held back", job.id);
                        prop_assert!(!world.created.contains(&job.id), "job {} launched after its workload was created", job.id);
                        prop_assert!(world.pending.iter().all(|p| p.id != job.id), "job {} launched twice at once", job.id);
                        world.pending.push(job);
                    }
                }
                Op::LaunchOk(index) => {
                    if let Some(job) = pick(&world.pending, index).cloned() {
                        world.pending.retain(|p| p.id != job.id);
                        world.created.insert(job.id);
                        world.cluster.insert(job.id, (false, job.queue().unwrap_or("default").to_owned(), job.pipeline.clone()));
                        book.apply(BookEvent::LaunchSucceeded(job.id));
                        book.apply(BookEvent::Workload(WorkloadEvent::Observed(Workload {
                            job: job.id,
                            queue: job.queue().map(str::to_owned),
                            pipeline: Some(job.pipeline.clone()),
                            finished: false,
                        })));
                    }
                }
                Op::LaunchFails { index, retry } => {
                    if let Some(job) = pick(&world.pending, index).cloned() {
                        world.pending.retain(|p| p.id != job.id);
                        book.apply(BookEvent::LaunchFailed { job: job.id, retry });
                        if !retry {
                            // Rejected: jobify cancels it in Buildkite.
                            world.scheduled.retain(|s| s.id != job.id);
                        }
                    }
                }
                Op::Start(index) => {
                    if let Some(&job) = pick(&workloads_where(&world, false), index) {
                        world.scheduled.retain(|s| s.id != job);
                        book.apply(BookEvent::Workload(WorkloadEvent::Started(job)));
                    }
                }
                Op::End(index) => {
                    if let Some(&job) = pick(&workloads_where(&world, false), index) {
                        world.scheduled.retain(|s| s.id != job);
                        if let Some(w) = world.cluster.get_mut(&job) {
                            w.0 = true;
                        }
                        book.apply(BookEvent::Workload(WorkloadEvent::Failed(job)));
                    }
                }
                Op::Collect(index) => {
                    if let Some(&job) = pick(&workloads_where(&world, true), index) {
                        world.cluster.remove(&job);
                        book.apply(BookEvent::Workload(WorkloadEvent::Gone(job)));
                    }
                }
                Op::Cancel(index) => {
                    if let Some(job) = pick(&world.scheduled, index).cloned() {
                        world.scheduled.retain(|s| s.id != job.id);
                    }
                }
                Op::Restart => {
                    world.pending.clear();
                    world.waiting.clear();
                    book = Book::new();
                    let mut listed: Vec<Workload> = world
                        .cluster
                        .iter()
                        .map(|(job, (finished, queue, pipeline))| Workload {
                            job: *job,
                            queue: Some(queue.clone()),
                            pipeline: Some(pipeline.clone()),
                            finished: *finished,
                        })
                        .collect();
                    listed.sort_by_key(|w| w.job);
                    book.apply(BookEvent::Workload(WorkloadEvent::Restored(listed)));
                }
            }
            check_invariants(&book, &world, (global, per_queue, per_pipeline))?;
        }
    }
}
