//! The scheduler loop against mocked ports, in paused tokio time. The helpers and the loop's
//! basics are here; `slots` has limits and freed slots, `feedback` what Buildkite is told.

mod feedback;
mod slots;
mod sweep;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::stream::{self, BoxStream, StreamExt};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::sleep;

use super::*;
use crate::decision::{Decision, Reason, ReasonCode, Template};
use crate::feedback::FeedbackError;
use crate::job::{JobId, JobState, ScheduledJob};
use crate::jobifier::{LaunchError, Launched};
use crate::limits::Limits;
use crate::monitor::{MonitorError, PageToken, ScheduledPage};
use crate::policy::{Policy, from_fn};
use crate::testing::{MockFeedback, MockJobifier, MockMonitor};
use crate::workload::WorkloadEvent;

const POLL: Duration = Duration::from_secs(10);

fn config() -> SchedulerConfig {
    SchedulerConfig {
        poll_interval: POLL,
        cancel_check_interval: Duration::from_secs(15),
        launch_concurrency: 4,
        lookahead_pages: 5,
        max_poll_backoff: Duration::from_secs(60),
        shutdown_grace: Duration::from_secs(1),
    }
}

fn run_all() -> impl Policy + 'static {
    from_fn(|job: &ScheduledJob| {
        if job.pipeline == "refused" {
            Decision::Reject {
                reason: Reason::new(
                    ReasonCode::RULE_MATCHED,
                    "pipeline refused is not allowed here",
                ),
            }
        } else {
            Decision::Run {
                template: Template::Default { name: None },
                reason: Reason::new(ReasonCode::RULE_MATCHED, "run"),
            }
        }
    })
}

/// Workload events the test sends; the stream starts with an empty `Restored`.
fn events() -> (
    mpsc::UnboundedSender<WorkloadEvent>,
    BoxStream<'static, WorkloadEvent>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let rest = stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|e| (e, rx)) });
    let stream = stream::iter([WorkloadEvent::Restored(vec![])])
        .chain(rest)
        .boxed();
    (tx, stream)
}

type Listed = Arc<Mutex<Vec<ScheduledJob>>>;

/// What feedback was given: job, GraphQL id, reason.
type Told = (JobId, Option<String>, Reason);

/// A monitor that lists `listed` on every poll and counts polls; states say "scheduled".
fn monitor(listed: &Listed, polls: &Arc<AtomicUsize>) -> MockMonitor {
    let mut monitor = MockMonitor::new();
    let (listed, polls) = (listed.clone(), polls.clone());
    monitor.expect_scheduled().returning(move |_| {
        polls.fetch_add(1, Ordering::SeqCst);
        Ok(ScheduledPage::last(listed.lock().expect("lock").clone()))
    });
    monitor
        .expect_states()
        .returning(|jobs| Ok(jobs.iter().map(|j| (*j, JobState::Scheduled)).collect()));
    monitor
}

/// A jobifier that creates every workload and records the launches.
fn jobifier(
    stream: BoxStream<'static, WorkloadEvent>,
    launched: &Arc<Mutex<Vec<JobId>>>,
) -> MockJobifier {
    let mut jobifier = MockJobifier::new();
    let launched = launched.clone();
    jobifier.expect_launch().returning(move |job, _| {
        launched.lock().expect("lock").push(job.id);
        Ok(Launched::Created)
    });
    jobifier.expect_events().return_once(move || stream);
    jobifier
}

fn no_feedback() -> MockFeedback {
    let mut feedback = MockFeedback::new();
    feedback.expect_fail_job().never();
    feedback
}

/// A dispatcher over the given ports that runs every job ([`run_all`]) with at most
/// `max_in_flight` workloads, paced by [`config`].
fn dispatcher<M: crate::Monitor, J: crate::Jobifier, F: crate::Feedback>(
    monitor: M,
    jobifier: J,
    feedback: F,
    max_in_flight: u32,
) -> Dispatcher<M, J, F, impl Policy + 'static> {
    Dispatcher::new(
        monitor,
        jobifier,
        feedback,
        run_all(),
        Limits::global(max_in_flight),
        config(),
    )
}

fn start<S: Scheduler + 'static>(
    scheduler: S,
) -> (oneshot::Sender<()>, JoinHandle<Result<(), SchedulerError>>) {
    let (stop, stopped) = oneshot::channel::<()>();
    let handle = tokio::spawn(scheduler.run(async move {
        let _ = stopped.await;
    }));
    (stop, handle)
}

async fn stop(stop: oneshot::Sender<()>, handle: JoinHandle<Result<(), SchedulerError>>) {
    let _ = stop.send(());
    handle
        .await
        .expect("scheduler task")
        .expect("scheduler stops cleanly");
}

fn launched_ids(launched: &Arc<Mutex<Vec<JobId>>>) -> Vec<JobId> {
    launched.lock().expect("lock").clone()
}

#[tokio::test(start_paused = true)]
async fn polls_at_the_interval_and_stops_cleanly_on_shutdown() {
    let listed = Listed::default();
    let polls = Arc::new(AtomicUsize::new(0));
    let launched = Arc::default();
    let (_events, stream) = events();
    let dispatcher = dispatcher(
        monitor(&listed, &polls),
        jobifier(stream, &launched),
        no_feedback(),
        5,
    );
    let (stop_tx, handle) = start(dispatcher);
    sleep(Duration::from_secs(35)).await;
    assert_eq!(
        polls.load(Ordering::SeqCst),
        4,
        "polls at 0, 10, 20 and 30 s"
    );
    stop(stop_tx, handle).await;
}

/// A monitor whose every poll takes 4 s and lists nothing.
struct SlowMonitor {
    polls: Arc<AtomicUsize>,
}

#[async_trait::async_trait]
impl crate::Monitor for SlowMonitor {
    async fn scheduled(&self, _: Option<PageToken>) -> Result<ScheduledPage, MonitorError> {
        self.polls.fetch_add(1, Ordering::SeqCst);
        sleep(Duration::from_secs(4)).await;
        Ok(ScheduledPage::default())
    }

    async fn states(&self, jobs: &[JobId]) -> Result<Vec<(JobId, JobState)>, MonitorError> {
        Ok(jobs.iter().map(|j| (*j, JobState::Scheduled)).collect())
    }
}

#[tokio::test(start_paused = true)]
async fn a_slow_poll_does_not_stretch_the_poll_period() {
    let polls = Arc::new(AtomicUsize::new(0));
    let launched = Arc::default();
    let (_events, stream) = events();
    let dispatcher = dispatcher(
        SlowMonitor {
            polls: polls.clone(),
        },
        jobifier(stream, &launched),
        no_feedback(),
        5,
    );
    let (stop_tx, handle) = start(dispatcher);
    sleep(Duration::from_secs(35)).await;
    assert_eq!(
        polls.load(Ordering::SeqCst),
        4,
        "polls start at 0, 10, 20 and 30 s (not 0, 14, 28)"
    );
    stop(stop_tx, handle).await;
}

#[derive(Default)]
struct Recorder {
    decisions: Mutex<Vec<(JobId, ReasonCode)>>,
    in_flight: Mutex<Vec<u32>>,
    by_queue: Mutex<Vec<Vec<(String, u32)>>>,
    seen: Mutex<Vec<JobId>>,
    retries: Mutex<Vec<(JobId, FeedbackReport, FeedbackRetry)>>,
    sweeps: Mutex<Vec<(SweepEnd, usize, usize)>>,
}

impl Recorder {
    fn last_by_queue(&self) -> Vec<(String, u32)> {
        self.by_queue
            .lock()
            .expect("lock")
            .last()
            .cloned()
            .unwrap_or_default()
    }
}

impl SchedulerObserver for Recorder {
    fn on_decision(&self, job: &ScheduledJob, decision: &Decision) {
        self.decisions
            .lock()
            .expect("lock")
            .push((job.id, decision.reason().code));
    }
    fn on_in_flight(&self, in_flight: u32) {
        self.in_flight.lock().expect("lock").push(in_flight);
    }
    fn on_in_flight_by_queue(&self, by_queue: &[(String, u32)]) {
        self.by_queue.lock().expect("lock").push(by_queue.to_vec());
    }
    fn on_job_seen(&self, job: &ScheduledJob) {
        self.seen.lock().expect("lock").push(job.id);
    }
    fn on_feedback_retry(&self, job: JobId, report: FeedbackReport, retry: FeedbackRetry) {
        self.retries
            .lock()
            .expect("lock")
            .push((job, report, retry));
    }
    fn on_sweep(&self, sweep: &SweepSummary) {
        self.sweeps
            .lock()
            .expect("lock")
            .push((sweep.end, sweep.pages, sweep.jobs));
    }
}

#[tokio::test(start_paused = true)]
async fn a_transient_launch_failure_is_retried_on_the_next_poll() {
    let job = ScheduledJob::fixture().build();
    let listed: Listed = Arc::new(Mutex::new(vec![job.clone()]));
    let polls = Arc::new(AtomicUsize::new(0));
    let (_events, stream) = events();
    let attempts = Arc::new(AtomicUsize::new(0));
    let mut jobifier = MockJobifier::new();
    let counter = attempts.clone();
    jobifier.expect_launch().returning(move |_, _| {
        if counter.fetch_add(1, Ordering::SeqCst) == 0 {
            Err(LaunchError::Transient {
                message: "etcd timeout".into(),
            })
        } else {
            Ok(Launched::Created)
        }
    });
    jobifier.expect_events().return_once(move || stream);
    let dispatcher = dispatcher(monitor(&listed, &polls), jobifier, no_feedback(), 5);
    let (stop_tx, handle) = start(dispatcher);
    sleep(Duration::from_secs(1)).await;
    assert_eq!(attempts.load(Ordering::SeqCst), 1);
    sleep(POLL * 3).await;
    assert_eq!(
        attempts.load(Ordering::SeqCst),
        2,
        "retried once, then launched for good"
    );
    stop(stop_tx, handle).await;
}

#[tokio::test(start_paused = true)]
async fn the_workload_of_a_cancelled_job_is_removed_before_it_starts() {
    let job = ScheduledJob::fixture().build();
    let launched = Arc::default();
    let (_events, stream) = events();
    let mut monitor = MockMonitor::new();
    let listed = vec![job.clone()];
    monitor
        .expect_scheduled()
        .returning(move |_| Ok(ScheduledPage::last(listed.clone())));
    let id = job.id;
    monitor
        .expect_states()
        .withf(move |jobs| jobs == [id])
        .returning(|jobs| Ok(jobs.iter().map(|j| (*j, JobState::Canceled)).collect()));
    let mut jobifier = jobifier(stream, &launched);
    jobifier
        .expect_cancel()
        .withf(move |j| *j == id)
        .times(1)
        .returning(|_| Ok(()));
    let dispatcher = dispatcher(monitor, jobifier, no_feedback(), 5);
    let (stop_tx, handle) = start(dispatcher);
    sleep(Duration::from_secs(40)).await;
    stop(stop_tx, handle).await;
}

#[tokio::test(start_paused = true)]
async fn a_standby_observes_but_never_polls_or_launches_until_it_leads() {
    let job = ScheduledJob::fixture().build();
    let listed: Listed = Arc::new(Mutex::new(vec![job.clone()]));
    let polls = Arc::new(AtomicUsize::new(0));
    let launched = Arc::default();
    let (events_tx, stream) = events();
    let (lead, leadership) = watch::channel(false);
    let dispatcher = dispatcher(
        monitor(&listed, &polls),
        jobifier(stream, &launched),
        no_feedback(),
        1,
    )
    .with_leadership(leadership);
    let (stop_tx, handle) = start(dispatcher);
    let other = ScheduledJob::fixture().on_pipeline("web").workload();
    events_tx
        .send(WorkloadEvent::Observed(other.clone()))
        .expect("send");
    sleep(POLL * 3).await;
    assert_eq!(polls.load(Ordering::SeqCst), 0);
    assert!(launched_ids(&launched).is_empty());
    lead.send(true).expect("send");
    sleep(Duration::from_secs(1)).await;
    assert_eq!(polls.load(Ordering::SeqCst), 1);
    assert!(
        launched_ids(&launched).is_empty(),
        "the standby's book counts the other replica's workload"
    );
    events_tx
        .send(WorkloadEvent::Gone(other.job))
        .expect("send");
    sleep(POLL).await;
    assert_eq!(launched_ids(&launched), vec![job.id]);
    stop(stop_tx, handle).await;
}

#[tokio::test(start_paused = true)]
async fn polling_backs_off_when_rate_limited() {
    let polls = Arc::new(AtomicUsize::new(0));
    let mut monitor = MockMonitor::new();
    let counter = polls.clone();
    monitor.expect_scheduled().returning(move |_| {
        if counter.fetch_add(1, Ordering::SeqCst) == 0 {
            Err(MonitorError::RateLimited {
                retry_after: Duration::from_secs(45),
            })
        } else {
            Ok(ScheduledPage::default())
        }
    });
    let launched = Arc::default();
    let (_events, stream) = events();
    let dispatcher = dispatcher(monitor, jobifier(stream, &launched), no_feedback(), 5);
    let (stop_tx, handle) = start(dispatcher);
    sleep(Duration::from_secs(44)).await;
    assert_eq!(
        polls.load(Ordering::SeqCst),
        1,
        "no poll before retry_after"
    );
    sleep(Duration::from_secs(2)).await;
    assert_eq!(polls.load(Ordering::SeqCst), 2);
    sleep(POLL).await;
    assert_eq!(
        polls.load(Ordering::SeqCst),
        3,
        "back to the interval after a success"
    );
    stop(stop_tx, handle).await;
}

#[tokio::test(start_paused = true)]
async fn huge_waits_from_a_monitor_or_the_config_do_not_overflow_the_clock() {
    let polls = Arc::new(AtomicUsize::new(0));
    let mut monitor = MockMonitor::new();
    let counter = polls.clone();
    monitor.expect_scheduled().returning(move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
        Err(MonitorError::RateLimited {
            retry_after: Duration::MAX,
        })
    });
    let launched = Arc::default();
    let (_events, stream) = events();
    let dispatcher = Dispatcher::new(
        monitor,
        jobifier(stream, &launched),
        no_feedback(),
        run_all(),
        Limits::global(5),
        SchedulerConfig {
            poll_interval: Duration::MAX,
            cancel_check_interval: Duration::MAX,
            max_poll_backoff: Duration::MAX,
            ..config()
        },
    );
    let (stop_tx, handle) = start(dispatcher);
    sleep(Duration::from_secs(3600)).await;
    assert_eq!(
        polls.load(Ordering::SeqCst),
        1,
        "the first poll runs, the next waits (practically) forever"
    );
    stop(stop_tx, handle).await;
}

#[tokio::test(start_paused = true)]
async fn nothing_is_launched_before_the_workloads_are_restored() {
    let polls = Arc::new(AtomicUsize::new(0));
    let listed: Listed = Arc::new(Mutex::new(vec![ScheduledJob::fixture().build()]));
    let mut jobifier = MockJobifier::new();
    jobifier.expect_launch().never();
    jobifier
        .expect_events()
        .return_once(|| stream::pending().boxed());
    let dispatcher = dispatcher(monitor(&listed, &polls), jobifier, no_feedback(), 5);
    let (stop_tx, handle) = start(dispatcher);
    sleep(POLL * 3).await;
    assert_eq!(polls.load(Ordering::SeqCst), 0);
    stop(stop_tx, handle).await;
}

#[tokio::test(start_paused = true)]
async fn the_scheduler_stops_with_an_error_when_workload_events_end() {
    let polls = Arc::new(AtomicUsize::new(0));
    let mut jobifier = MockJobifier::new();
    jobifier
        .expect_events()
        .return_once(|| stream::iter([WorkloadEvent::Restored(vec![])]).boxed());
    jobifier.expect_launch().never();
    let dispatcher = dispatcher(
        monitor(&Listed::default(), &polls),
        jobifier,
        no_feedback(),
        5,
    );
    let result = dispatcher.run(std::future::pending()).await;
    assert!(
        matches!(result, Err(SchedulerError::EventsEnded)),
        "{result:?}"
    );
}

/// A jobifier whose launches take five seconds; launches of pipeline `broken` fail at once.
struct SlowJobifier {
    events: Mutex<Option<BoxStream<'static, WorkloadEvent>>>,
    in_progress: AtomicUsize,
    most_at_once: AtomicUsize,
    created: Mutex<Vec<JobId>>,
}

#[async_trait::async_trait]
impl crate::jobifier::Jobifier for SlowJobifier {
    async fn launch(&self, job: &ScheduledJob, _: &Template) -> Result<Launched, LaunchError> {
        if job.pipeline == "broken" {
            return Err(LaunchError::Transient {
                message: "connection reset".into(),
            });
        }
        let now = self.in_progress.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_at_once.fetch_max(now, Ordering::SeqCst);
        sleep(Duration::from_secs(5)).await;
        self.in_progress.fetch_sub(1, Ordering::SeqCst);
        self.created.lock().expect("lock").push(job.id);
        Ok(Launched::Created)
    }

    async fn cancel(&self, _: JobId) -> Result<(), crate::jobifier::CancelError> {
        Ok(())
    }

    fn events(&self) -> BoxStream<'static, WorkloadEvent> {
        self.events
            .lock()
            .expect("lock")
            .take()
            .unwrap_or_else(|| stream::pending().boxed())
    }
}

#[tokio::test(start_paused = true)]
async fn launches_run_concurrently_up_to_the_bound_and_a_failing_one_blocks_none() {
    let broken = ScheduledJob::fixture()
        .on_pipeline("broken")
        .scheduled_at_second(0)
        .build();
    let mut jobs = vec![broken];
    jobs.extend((1..=5).map(|i| {
        ScheduledJob::fixture()
            .on_pipeline(&format!("p{i}"))
            .scheduled_at_second(i)
            .build()
    }));
    let listed: Listed = Arc::new(Mutex::new(jobs));
    let polls = Arc::new(AtomicUsize::new(0));
    let (_events, stream) = events();
    let jobifier = Arc::new(SlowJobifier {
        events: Mutex::new(Some(stream)),
        in_progress: AtomicUsize::new(0),
        most_at_once: AtomicUsize::new(0),
        created: Mutex::default(),
    });
    let dispatcher = Dispatcher::new(
        monitor(&listed, &polls),
        jobifier.clone(),
        no_feedback(),
        run_all(),
        Limits::global(10),
        SchedulerConfig {
            launch_concurrency: 2,
            ..config()
        },
    );
    let (stop_tx, handle) = start(dispatcher);
    sleep(Duration::from_secs(6)).await;
    assert_eq!(
        jobifier.created.lock().expect("lock").len(),
        2,
        "two at once"
    );
    sleep(Duration::from_secs(10)).await;
    assert_eq!(jobifier.created.lock().expect("lock").len(), 5);
    assert_eq!(jobifier.most_at_once.load(Ordering::SeqCst), 2);
    stop(stop_tx, handle).await;
}
