//! The executor: the few things only the async [`Dispatcher`] does (real time, concurrent
//! operations, the leadership signal, the event stream, shutdown), over small fakes of the
//! ports in paused tokio time.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures::stream::{self, BoxStream, StreamExt};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::sleep;

use super::*;
use crate::decision::Template;
use crate::jobifier::CancelError;

/// Lists `listed` on every poll, each poll taking `delay`; counts polls.
#[derive(Default)]
struct FakeMonitor {
    listed: Vec<ScheduledJob>,
    delay: Duration,
    polls: AtomicUsize,
}

#[async_trait::async_trait]
impl crate::Monitor for FakeMonitor {
    async fn scheduled(&self, _: Option<PageToken>) -> Result<ScheduledPage, MonitorError> {
        self.polls.fetch_add(1, Ordering::SeqCst);
        sleep(self.delay).await;
        Ok(ScheduledPage::last(self.listed.clone()))
    }

    async fn states(&self, jobs: &[JobId]) -> Result<Vec<(JobId, JobState)>, MonitorError> {
        Ok(jobs.iter().map(|j| (*j, JobState::Scheduled)).collect())
    }
}

/// Launches take five seconds, except those of pipeline `broken`, which fail at once.
struct SlowJobifier {
    events: Mutex<Option<BoxStream<'static, WorkloadEvent>>>,
    in_progress: AtomicUsize,
    most_at_once: AtomicUsize,
    created: Mutex<Vec<JobId>>,
}

impl SlowJobifier {
    /// Its event stream says the workloads are restored, then `ends` (or stays open).
    fn new(ends: bool) -> Self {
        let restored = stream::iter([WorkloadEvent::Restored(vec![])]);
        let events = if ends {
            restored.boxed()
        } else {
            restored.chain(stream::pending()).boxed()
        };
        SlowJobifier {
            events: Mutex::new(Some(events)),
            in_progress: AtomicUsize::new(0),
            most_at_once: AtomicUsize::new(0),
            created: Mutex::default(),
        }
    }

    fn created(&self) -> Vec<JobId> {
        self.created.lock().expect("lock").clone()
    }
}

#[async_trait::async_trait]
impl crate::Jobifier for SlowJobifier {
    async fn launch(&self, job: &ScheduledJob, _: &Template) -> Result<Launched, LaunchError> {
        if job.pipeline == "broken" {
            return Err(LaunchError::transient("connection reset"));
        }
        let now = self.in_progress.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_at_once.fetch_max(now, Ordering::SeqCst);
        sleep(Duration::from_secs(5)).await;
        self.in_progress.fetch_sub(1, Ordering::SeqCst);
        self.created.lock().expect("lock").push(job.id);
        Ok(Launched::Created)
    }

    async fn cancel(&self, _: JobId) -> Result<(), CancelError> {
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

struct NoFeedback;

#[async_trait::async_trait]
impl crate::Feedback for NoFeedback {
    async fn fail_job(&self, job: &crate::JobRef, _: &Reason) -> Result<(), FeedbackError> {
        panic!("no feedback expected, got one for {}", job.id)
    }
}

/// Records the leadership and decision events it is handed.
#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<String>>,
}

impl SchedulerObserver for Recorder {
    fn on_event(&self, event: &SchedulerEvent) {
        let line = match event {
            SchedulerEvent::Leadership(leader) => format!("leader {leader}"),
            SchedulerEvent::Decided { decision, .. } => format!("decided {}", decision.kind()),
            _ => return,
        };
        self.events.lock().expect("lock").push(line);
    }
}

type Running = (oneshot::Sender<()>, JoinHandle<Result<(), SchedulerError>>);

fn start<M, J, O>(dispatcher: Dispatcher<M, J, NoFeedback, TestPolicy, O>) -> Running
where
    M: crate::Monitor + 'static,
    J: crate::Jobifier + 'static,
    O: SchedulerObserver + 'static,
{
    let (stop, stopped) = oneshot::channel::<()>();
    let handle = tokio::spawn(dispatcher.run(async move {
        let _ = stopped.await;
    }));
    (stop, handle)
}

async fn stop((stop, handle): Running) {
    let _ = stop.send(());
    handle
        .await
        .expect("scheduler task")
        .expect("scheduler stops cleanly");
}

fn dispatcher<M: crate::Monitor, J: crate::Jobifier>(
    monitor: M,
    jobifier: J,
    config: SchedulerConfig,
) -> Dispatcher<M, J, NoFeedback, TestPolicy> {
    Dispatcher::new(
        monitor,
        jobifier,
        NoFeedback,
        run_all(),
        Limits::global(10),
        config,
    )
}

#[tokio::test(start_paused = true)]
async fn polls_at_the_interval_in_real_time_even_when_a_poll_is_slow_and_stops_on_shutdown() {
    let monitor = Arc::new(FakeMonitor {
        delay: secs(4),
        ..FakeMonitor::default()
    });
    let running = start(dispatcher(
        monitor.clone(),
        SlowJobifier::new(false),
        config(),
    ));
    sleep(secs(35)).await;
    assert_eq!(
        monitor.polls.load(Ordering::SeqCst),
        4,
        "polls start at 0, 10, 20 and 30 s (not 0, 14, 28)"
    );
    stop(running).await;
}

#[tokio::test(start_paused = true)]
async fn the_scheduler_stops_with_an_error_when_workload_events_end() {
    let result = dispatcher(FakeMonitor::default(), SlowJobifier::new(true), config())
        .run(std::future::pending())
        .await;
    assert!(
        matches!(result, Err(SchedulerError::EventsEnded)),
        "{result:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn launches_run_concurrently_up_to_the_bound_and_a_failing_one_blocks_none() {
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
    let jobifier = Arc::new(SlowJobifier::new(false));
    let running = start(dispatcher(
        FakeMonitor {
            listed,
            ..FakeMonitor::default()
        },
        jobifier.clone(),
        SchedulerConfig {
            launch_concurrency: 2,
            ..config()
        },
    ));
    sleep(secs(6)).await;
    assert_eq!(jobifier.created().len(), 2, "two at once");
    sleep(secs(10)).await;
    assert_eq!(jobifier.created().len(), 5);
    assert_eq!(jobifier.most_at_once.load(Ordering::SeqCst), 2);
    stop(running).await;
}

#[tokio::test(start_paused = true)]
async fn the_leadership_signal_starts_and_stops_polling_and_reaches_the_observer() {
    let job = ScheduledJob::fixture().build();
    let monitor = Arc::new(FakeMonitor {
        listed: vec![job],
        ..FakeMonitor::default()
    });
    let jobifier = Arc::new(SlowJobifier::new(false));
    let recorder = Arc::new(Recorder::default());
    let (lead, leadership) = watch::channel(false);
    let running = start(
        dispatcher(monitor.clone(), jobifier.clone(), config())
            .with_observer(recorder.clone())
            .with_leadership(leadership),
    );
    sleep(POLL * 3).await;
    assert_eq!(
        monitor.polls.load(Ordering::SeqCst),
        0,
        "a standby never polls"
    );
    lead.send(true).expect("send");
    sleep(secs(6)).await;
    assert_eq!(
        monitor.polls.load(Ordering::SeqCst),
        1,
        "the new leader polls at once"
    );
    assert_eq!(jobifier.created().len(), 1);
    drop(lead);
    sleep(POLL * 3).await;
    assert_eq!(
        monitor.polls.load(Ordering::SeqCst),
        1,
        "a dropped signal makes it a standby"
    );
    assert_eq!(
        *recorder.events.lock().expect("lock"),
        ["leader false", "leader true", "decided run", "leader false"]
    );
    stop(running).await;
}
