//! Sweeps: pages planned as they arrive, how far a sweep reads, and what ends it.

use tokio::sync::{Notify, Semaphore};

use super::*;

/// Serves `pages` in order (the token is the next page's index) and records what each
/// request asked for. A page can be held back until the test releases it, and one request
/// can fail once.
struct PagedMonitor {
    pages: Vec<Vec<ScheduledJob>>,
    /// The first page of each list after the first.
    list_starts: Vec<usize>,
    requests: Mutex<Vec<Option<usize>>>,
    hold: Option<(usize, Arc<Notify>)>,
    fail_once: Mutex<Option<usize>>,
}

impl PagedMonitor {
    fn new(pages: Vec<Vec<ScheduledJob>>) -> Arc<Self> {
        Arc::new(PagedMonitor {
            pages,
            list_starts: Vec::new(),
            requests: Mutex::default(),
            hold: None,
            fail_once: Mutex::default(),
        })
    }

    fn requests(&self) -> Vec<Option<usize>> {
        self.requests.lock().expect("lock").clone()
    }
}

#[async_trait::async_trait]
impl crate::Monitor for PagedMonitor {
    async fn scheduled(&self, from: Option<PageToken>) -> Result<ScheduledPage, MonitorError> {
        let index = from.map(|token| token.as_str().parse::<usize>().expect("our token"));
        self.requests.lock().expect("lock").push(index);
        let index = index.unwrap_or(0);
        if let Some((held, release)) = &self.hold
            && *held == index
        {
            release.notified().await;
        }
        if self
            .fail_once
            .lock()
            .expect("lock")
            .take_if(|i| *i == index)
            .is_some()
        {
            return Err(MonitorError::Transient("connection reset".into()));
        }
        let next = index + 1;
        let next_list = self.list_starts.iter().find(|start| **start > index);
        Ok(ScheduledPage {
            jobs: self.pages[index].clone(),
            next: (next < self.pages.len()).then(|| PageToken::new(next.to_string())),
            next_list: next_list.map(|start| PageToken::new(start.to_string())),
        })
    }

    async fn states(&self, jobs: &[JobId]) -> Result<Vec<(JobId, JobState)>, MonitorError> {
        Ok(jobs.iter().map(|j| (*j, JobState::Scheduled)).collect())
    }
}

/// `count` pages of `per_page` jobs each, oldest first.
fn pages(count: usize, per_page: usize) -> Vec<Vec<ScheduledJob>> {
    (0..count)
        .map(|_| {
            (0..per_page)
                .map(|_| ScheduledJob::fixture().build())
                .collect()
        })
        .collect()
}

fn sweep_config(lookahead_pages: usize, launch_concurrency: usize) -> SchedulerConfig {
    SchedulerConfig {
        lookahead_pages,
        launch_concurrency,
        ..config()
    }
}

/// A running dispatcher over `monitor` that runs every job within `limits`.
struct Sweeping {
    launched: Arc<Mutex<Vec<JobId>>>,
    recorder: Arc<Recorder>,
    /// Kept so that the workload event stream stays open.
    _events: mpsc::UnboundedSender<WorkloadEvent>,
    stop: oneshot::Sender<()>,
    handle: JoinHandle<Result<(), SchedulerError>>,
}

impl Sweeping {
    fn start(monitor: &Arc<PagedMonitor>, limits: Limits, config: SchedulerConfig) -> Self {
        let launched = Arc::default();
        let (events_tx, stream) = events();
        let recorder = Arc::new(Recorder::default());
        let dispatcher = Dispatcher::new(
            monitor.clone(),
            jobifier(stream, &launched),
            no_feedback(),
            run_all(),
            limits,
            config,
        )
        .with_observer(recorder.clone());
        let (stop, handle) = start(dispatcher);
        Sweeping {
            launched,
            recorder,
            _events: events_tx,
            stop,
            handle,
        }
    }

    fn launched(&self) -> Vec<JobId> {
        launched_ids(&self.launched)
    }

    fn sweeps(&self) -> Vec<(SweepEnd, usize, usize)> {
        self.recorder.sweeps.lock().expect("lock").clone()
    }

    async fn stop(self) {
        stop(self.stop, self.handle).await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_sweep_launches_each_page_while_the_next_is_still_being_fetched() {
    let pages = pages(3, 2);
    let release = Arc::new(Notify::new());
    let monitor = Arc::new(PagedMonitor {
        hold: Some((2, release.clone())),
        ..Arc::into_inner(PagedMonitor::new(pages.clone())).expect("sole owner")
    });
    let launched = Arc::default();
    let (_events, stream) = events();
    let dispatcher = dispatcher(
        monitor.clone(),
        jobifier(stream, &launched),
        no_feedback(),
        100,
    );
    let (stop_tx, handle) = start(dispatcher);
    sleep(Duration::from_secs(1)).await;
    let first_two: Vec<JobId> = pages[..2].iter().flatten().map(|j| j.id).collect();
    assert_eq!(
        launched_ids(&launched),
        first_two,
        "the first two pages are launched while the third is still on its way"
    );
    release.notify_one();
    sleep(Duration::from_secs(1)).await;
    let all: Vec<JobId> = pages.iter().flatten().map(|j| j.id).collect();
    assert_eq!(launched_ids(&launched), all);
    assert_eq!(monitor.requests(), vec![None, Some(1), Some(2)]);
    stop(stop_tx, handle).await;
}

#[tokio::test(start_paused = true)]
async fn a_sweep_reads_on_past_pages_of_jobs_already_in_flight() {
    let monitor = PagedMonitor::new(pages(8, 3));
    let running = Sweeping::start(&monitor, Limits::global(100), sweep_config(2, 4));
    sleep(POLL + Duration::from_secs(1)).await;
    let expected: Vec<Option<usize>> = [None]
        .into_iter()
        .chain((1..8).map(Some))
        .cycle()
        .take(16)
        .collect();
    assert_eq!(
        monitor.requests(),
        expected,
        "both sweeps read all eight pages: nothing was held back, so the lookahead of 2 does not apply"
    );
    assert_eq!(running.launched().len(), 24, "each job launched once");
    assert_eq!(running.sweeps(), vec![(SweepEnd::Completed, 8, 24); 2]);
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn once_a_limit_holds_a_job_back_a_sweep_reads_only_the_lookahead_pages() {
    let pages = pages(10, 1);
    let monitor = PagedMonitor::new(pages.clone());
    let running = Sweeping::start(&monitor, Limits::global(1), sweep_config(3, 4));
    sleep(Duration::from_secs(1)).await;
    assert_eq!(running.launched(), vec![pages[0][0].id]);
    assert_eq!(
        monitor.requests(),
        vec![None, Some(1), Some(2)],
        "page 2 held a job back; the sweep stopped after 3 pages in all"
    );
    assert_eq!(running.sweeps(), vec![(SweepEnd::StoppedEarly, 3, 3)]);
    sleep(POLL).await;
    assert_eq!(
        monitor.requests().len(),
        6,
        "the next sweep starts from the oldest page again"
    );
    running.stop().await;
}

/// A jobifier whose launches each wait for a permit the test hands out.
struct GatedJobifier {
    launched: Arc<Mutex<Vec<JobId>>>,
    permits: Arc<Semaphore>,
    events: Mutex<Option<BoxStream<'static, WorkloadEvent>>>,
}

#[async_trait::async_trait]
impl crate::Jobifier for GatedJobifier {
    async fn launch(&self, job: &ScheduledJob, _: &Template) -> Result<Launched, LaunchError> {
        self.permits.acquire().await.expect("open").forget();
        self.launched.lock().expect("lock").push(job.id);
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
            .expect("events taken once")
    }
}

#[tokio::test(start_paused = true)]
async fn the_next_page_waits_until_less_than_two_pages_of_launches_are_queued() {
    let monitor = PagedMonitor::new(pages(4, 3));
    let launched: Arc<Mutex<Vec<JobId>>> = Arc::default();
    let permits = Arc::new(Semaphore::new(0));
    let (_events, stream) = events();
    let dispatcher = Dispatcher::new(
        monitor.clone(),
        GatedJobifier {
            launched: Arc::clone(&launched),
            permits: Arc::clone(&permits),
            events: Mutex::new(Some(stream)),
        },
        no_feedback(),
        run_all(),
        Limits::global(100),
        sweep_config(5, 1),
    );
    let (stop_tx, handle) = start(dispatcher);
    sleep(Duration::from_secs(1)).await;
    // Page 0: one launch starts, two queue; page 1 makes five (< 6), page 2 eight.
    assert_eq!(monitor.requests(), vec![None, Some(1), Some(2)]);
    permits.add_permits(12);
    sleep(Duration::from_secs(1)).await;
    assert_eq!(monitor.requests(), vec![None, Some(1), Some(2), Some(3)]);
    assert_eq!(launched_ids(&launched).len(), 12);
    stop(stop_tx, handle).await;
}

#[tokio::test(start_paused = true)]
async fn a_failed_page_ends_the_sweep_and_the_next_starts_from_the_oldest_page() {
    let pages = pages(3, 1);
    let monitor = PagedMonitor::new(pages.clone());
    *monitor.fail_once.lock().expect("lock") = Some(1);
    let running = Sweeping::start(&monitor, Limits::global(100), config());
    sleep(Duration::from_secs(1)).await;
    assert_eq!(monitor.requests(), vec![None, Some(1)]);
    assert_eq!(running.launched(), vec![pages[0][0].id]);
    assert_eq!(running.sweeps(), vec![(SweepEnd::Failed, 1, 1)]);
    // One failure backs off to twice the interval.
    sleep(POLL * 2).await;
    assert_eq!(
        monitor.requests(),
        vec![None, Some(1), None, Some(1), Some(2)]
    );
    let all: Vec<JobId> = pages.iter().flatten().map(|j| j.id).collect();
    assert_eq!(running.launched(), all, "each job launched once");
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_job_on_two_overlapping_pages_of_a_sweep_is_decided_once() {
    let mut pages = pages(2, 2);
    let repeated = pages[0][1].clone();
    pages[1].insert(0, repeated.clone());
    let monitor = PagedMonitor::new(pages.clone());
    // One slot: the first job runs, every other job is held back.
    let running = Sweeping::start(&monitor, Limits::global(1), config());
    sleep(Duration::from_secs(1)).await;
    assert_eq!(running.launched(), vec![pages[0][0].id]);
    let decisions = running.recorder.decisions.lock().expect("lock").clone();
    assert_eq!(
        decisions
            .iter()
            .filter(|(id, _)| *id == repeated.id)
            .count(),
        1,
        "held back once, not again for its second listing: {decisions:?}"
    );
    assert_eq!(decisions.len(), 4, "four distinct jobs");
    assert_eq!(running.sweeps(), vec![(SweepEnd::Completed, 2, 4)]);
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_list_whose_jobs_are_held_back_is_skipped_for_the_next_list() {
    let queued = |queue: &str| vec![ScheduledJob::fixture().queue(queue).build()];
    // List A: four pages of queue `a`, whose limit is one; list B: queue `b`.
    let pages = vec![
        queued("a"),
        queued("a"),
        queued("a"),
        queued("a"),
        queued("b"),
    ];
    let monitor = Arc::new(PagedMonitor {
        list_starts: vec![4],
        ..Arc::into_inner(PagedMonitor::new(pages.clone())).expect("sole owner")
    });
    let running = Sweeping::start(
        &monitor,
        Limits::global(100).with_queue("a", 1),
        sweep_config(2, 4),
    );
    sleep(Duration::from_secs(1)).await;
    assert_eq!(
        monitor.requests(),
        vec![None, Some(1), Some(4)],
        "after two pages of list A, one held back, the sweep goes on with list B"
    );
    assert_eq!(running.launched(), vec![pages[0][0].id, pages[4][0].id]);
    assert_eq!(
        running.sweeps(),
        vec![(SweepEnd::StoppedEarly, 3, 3)],
        "it skipped part of list A, so it is not complete"
    );
    running.stop().await;
}
