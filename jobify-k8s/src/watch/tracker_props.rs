//! Property: whatever order a job's pod and Job events arrive in, and however often jobify
//! restarts meanwhile, a job is never left with nothing running for it and Buildkite not
//! told, and a job whose agent ran is never reported as one that could not start.
//!
//! The world is one Buildkite job's Kubernetes Job as the Job controller runs it under
//! jobify's pod failure policy: one pod at a time; a pod disrupted before it started is
//! replaced while pods remain; any other ending decides the Job. Its events reach the
//! tracker through two streams (Jobs and pods) that interleave at random, and jobify may
//! restart (a fresh tracker, a relist) between any two steps.

use std::time::Duration;

use jobify_core::JobId;
use proptest::prelude::*;
use tokio::time::Instant;
use uuid::Uuid;

use super::fail_fast::{ContainerTerminated, PodObservation};
use super::summary::{JobSummary, Outcome, PodSummary};
use super::tracker::{Action, FAILED_POD_WAIT, Tracker};
use crate::config::FailFastConfig;

/// How a pod of the world ends.
#[derive(Clone, Copy, Debug)]
enum PodEnd {
    /// It starts and its agent runs the job to an end (either way: Buildkite knows).
    Ran { succeeded: bool },
    /// Evicted (or its node lost) before it started: the Job controller may replace it.
    DisruptedPending,
    /// An init container exited non-zero: the Job fails at once.
    InitFailed,
}

/// Something that happens next.
#[derive(Clone, Copy, Debug)]
enum Step {
    /// The current pod moves on: it ends as given (or, the first time, is created).
    Advance(PodEnd),
    /// The Jobs stream delivers its next event.
    DeliverJob,
    /// The pods stream delivers its next event.
    DeliverPod,
    /// jobify restarts: a fresh tracker lists the world as it is now.
    Restart,
    /// Time passes and the tracker ticks.
    Tick,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => prop_oneof![
            Just(PodEnd::Ran { succeeded: true }),
            Just(PodEnd::Ran { succeeded: false }),
            Just(PodEnd::DisruptedPending),
            Just(PodEnd::InitFailed),
        ]
        .prop_map(Step::Advance),
        3 => Just(Step::DeliverJob),
        3 => Just(Step::DeliverPod),
        1 => Just(Step::Restart),
        2 => Just(Step::Tick),
    ]
}

/// The Job controller's world for one job, with `attempts` pods at most.
struct World {
    job: JobId,
    attempts: u32,
    pods: Vec<PodObservation>,
    outcome: Option<Outcome>,
    failed_pods: u32,
    /// jobify deleted the Job (gave up on it, or lost its agent).
    deleted: bool,
    /// Some pod's agent ran.
    agent_ran: bool,
}

impl World {
    fn summary(&self) -> JobSummary {
        JobSummary {
            job: self.job,
            name: "jobify-x".to_owned(),
            queue: None,
            pipeline: None,
            outcome: self.outcome,
            failed_pods: self.failed_pods,
            deleting: false,
            stopped: false,
        }
    }

    fn pod(&self) -> Option<PodSummary> {
        self.pods.last().map(|observation| PodSummary {
            job: self.job,
            lingering: Vec::new(),
            observation: observation.clone(),
        })
    }

    /// Applies `end` to the current pod, or creates the first one; returns whether the
    /// Job or the pod changed.
    fn advance(&mut self, end: PodEnd) -> (bool, bool) {
        if self.deleted || self.outcome.is_some() {
            return (false, false);
        }
        let Some(pod) = self.pods.last_mut() else {
            self.pods.push(pending(0));
            return (false, true);
        };
        match end {
            PodEnd::Ran { succeeded } => {
                pod.started = true;
                self.agent_ran = true;
                self.outcome = Some(if succeeded {
                    Outcome::Succeeded
                } else {
                    self.failed_pods += 1;
                    Outcome::Failed
                });
            }
            PodEnd::InitFailed => {
                pod.init_failures.push(ContainerTerminated {
                    container: "checkout".to_owned(),
                    exit_code: 1,
                    reason: "Error".to_owned(),
                    message: String::new(),
                });
                pod.failed_before_start = Some("Failed".to_owned());
                self.failed_pods += 1;
                self.outcome = Some(Outcome::Failed);
            }
            PodEnd::DisruptedPending => {
                pod.failed_before_start = Some("Evicted: low on memory".to_owned());
                pod.disrupted = Some("DisruptionTarget: TerminationByKubelet".to_owned());
                self.failed_pods += 1;
                if self.failed_pods >= self.attempts {
                    self.outcome = Some(Outcome::Failed);
                } else {
                    let next = self.pods.len();
                    self.pods.push(pending(next));
                }
            }
        }
        (true, true)
    }
}

fn pending(n: usize) -> PodObservation {
    PodObservation {
        name: format!("pod-{n}"),
        ..PodObservation::default()
    }
}

/// Runs `steps` and checks the properties; `Err` names the one that failed.
fn run(steps: &[Step], attempts: u32) -> Result<(), String> {
    let config = FailFastConfig::default();
    let mut world = World {
        job: JobId(Uuid::from_u128(7)),
        attempts,
        pods: Vec::new(),
        outcome: None,
        failed_pods: 0,
        deleted: false,
        agent_ran: false,
    };
    let mut now = Instant::now();
    let mut tracker = listed(&world, now);
    // What each stream has yet to deliver: the latest state (watches deliver the newest).
    let (mut job_pending, mut pod_pending) = (true, false);
    let mut gave_up = 0;
    // What the watcher does with the tracker's actions: a give-up read from a failed Job is
    // checked against the pods as the API has them now (`run::give_up`), so a pods watch
    // that lags cannot make a job whose agent ran look like one that never started.
    let handle = |actions: Vec<Action>, world: &mut World, gave_up: &mut u32| {
        for action in actions {
            match action {
                Action::GiveUp { cause, .. } => {
                    let ran = world.pods.iter().any(|pod| pod.started);
                    if !(cause.is_job_failure() && ran) {
                        *gave_up += 1;
                        world.deleted = true;
                    }
                }
                Action::Lose { .. } => world.deleted = true,
                Action::Emit(_) | Action::Delete { .. } | Action::Stop { .. } => {}
            }
        }
    };
    for step in steps {
        let actions = match *step {
            Step::Advance(end) => {
                let (job, pod) = world.advance(end);
                job_pending |= job;
                pod_pending |= pod;
                Vec::new()
            }
            Step::DeliverJob if job_pending => {
                job_pending = false;
                tracker.job_applied(world.summary(), now)
            }
            Step::DeliverPod if pod_pending => {
                pod_pending = false;
                match world.pod() {
                    Some(pod) => tracker.pod_applied(pod, now),
                    None => Vec::new(),
                }
            }
            Step::DeliverJob | Step::DeliverPod => Vec::new(),
            Step::Restart => {
                tracker = listed(&world, now);
                (job_pending, pod_pending) = (false, false);
                Vec::new()
            }
            Step::Tick => {
                now += Duration::from_secs(1);
                tracker.tick(&config, now)
            }
        };
        handle(actions, &mut world, &mut gave_up);
    }
    // Then the streams catch up and time passes.
    let mut actions = Vec::new();
    if job_pending {
        actions.extend(tracker.job_applied(world.summary(), now));
    }
    if pod_pending && let Some(pod) = world.pod() {
        actions.extend(tracker.pod_applied(pod, now));
    }
    now += FAILED_POD_WAIT;
    actions.extend(tracker.tick(&config, now));
    handle(actions, &mut world, &mut gave_up);

    let failed_unstarted = world.outcome == Some(Outcome::Failed) && !world.agent_ran;
    if failed_unstarted && gave_up == 0 && !world.deleted {
        return Err("the Job failed before any pod started and Buildkite was never told".into());
    }
    if world.agent_ran && gave_up > 0 {
        return Err("a job whose agent ran was reported as one that could not start".into());
    }
    Ok(())
}

/// A tracker that has just listed `world` (a start or restart of jobify).
fn listed(world: &World, now: Instant) -> Tracker {
    let mut tracker = Tracker::new();
    tracker.jobs_listing();
    if !world.deleted {
        tracker.job_listed(world.summary());
    }
    let _ = tracker.jobs_listed(now);
    tracker.pods_listing();
    if let Some(pod) = world.pod().filter(|_| !world.deleted) {
        let _ = tracker.pod_applied(pod, now);
    }
    tracker.pods_listed();
    tracker
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn no_job_is_left_hanging_or_wrongly_given_up(
        steps in proptest::collection::vec(step(), 0..40),
        attempts in 1u32..4,
    ) {
        prop_assert_eq!(run(&steps, attempts), Ok(()));
    }
}
