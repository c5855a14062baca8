//! The two job sources side by side: the same batch dispatched through GraphQL (a user API
//! token) and through the Stacks API (an agent token), each in a fresh session whose pods
//! stay pending, as pods pulling a large image do, so that what each source costs while
//! pods are still starting shows too.
//!
//! GraphQL lists a job whose pod is still starting as scheduled on every poll, and each
//! listing costs points; the Stacks API hides a reserved job from every listing, and jobify
//! asks only for the states of what it holds, in one request per sweep.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use jobify_buildkite::Source;
use tokio::time::Instant;

use crate::dispatch::{exactly_once, rate};
use crate::session::{NAMESPACE, Session, Settings};

/// The Stacks source's shortest poll interval (`jobify check` refuses less).
pub(crate) const STACKS_MIN_POLL: Duration = Duration::from_secs(1);

/// Poll intervals waited before anything is measured.
const SETTLE_POLLS: u32 = 2;

/// What one source cost.
#[derive(Clone, Debug)]
pub(crate) struct SourceRun {
    /// The source.
    pub(crate) source: Source,
    /// The poll interval it ran with.
    pub(crate) poll_interval: Duration,
    /// Jobs dispatched.
    pub(crate) jobs: usize,
    /// From the batch being scheduled to its last Job created.
    pub(crate) dispatch: Duration,
    /// API requests from scheduling to the last Job created, per job.
    pub(crate) requests_per_job: f64,
    /// API requests per poll with nothing scheduled.
    pub(crate) idle_requests_per_poll: f64,
    /// API requests per poll while every dispatched job's pod is still starting.
    pub(crate) starting_requests_per_poll: f64,
    /// GraphQL points per poll while the pods are starting (the re-reads of those jobs);
    /// `None` for the Stacks API, which has no points.
    pub(crate) starting_points_per_poll: Option<f64>,
    /// Stacks API requests by endpoint over the whole session.
    pub(crate) by_endpoint: Vec<(&'static str, u64)>,
}

impl SourceRun {
    /// Jobs per second, scheduled to Job created.
    pub(crate) fn rate(&self) -> f64 {
        rate(self.jobs, self.dispatch)
    }
}

/// Measures `source` with a batch of `jobs` over `polls` polls idle and starting.
pub(crate) async fn measure(
    settings: &Settings,
    dir: &Path,
    source: Source,
    jobs: usize,
    polls: u32,
) -> anyhow::Result<SourceRun> {
    // Both at the Stacks source's shortest poll interval, so that they compare.
    let settings = Settings {
        source,
        slow_pods: true,
        poll_interval: settings.poll_interval.max(STACKS_MIN_POLL),
        ..settings.clone()
    };
    let mut session = Session::start(&settings, dir).await?;
    session.idle_for(SETTLE_POLLS).await?;
    let before = session.requests();
    session.idle_for(polls).await?;
    let idle = session.requests() - before;

    let before = session.requests();
    let scheduled = session.env.schedule(&Settings::workload(), 0, jobs);
    let scheduled_at = Instant::now();
    let timeout = Duration::from_secs(60) + Duration::from_millis(10) * jobs as u32;
    let done_at = session
        .wait_for(&format!("{jobs} Jobs to be created"), timeout, |env| {
            env.kubernetes().stats().job_creates >= jobs as u64
        })
        .await?;
    let dispatch_requests = session.requests() - before;

    session.idle_for(SETTLE_POLLS).await?;
    let (before, points_before) = (session.requests(), session.api().actual_complexity);
    session.idle_for(polls).await?;
    let starting = session.requests() - before;
    let points = session.api().actual_complexity - points_before;

    let expected: BTreeSet<String> = scheduled.iter().map(|j| j.uuid.to_string()).collect();
    let kube = session.env.kubernetes();
    exactly_once(&expected, &kube.jobs(NAMESPACE), kube.stats().job_creates)
        .with_context(|| format!("the {} source's dispatch was wrong", source.as_str()))?;
    let by_endpoint = session
        .env
        .stacks()
        .map(|stacks| stacks.stats().requests.into_iter().collect())
        .unwrap_or_default();
    session.stop().await?;
    let per_poll = |n: u64| n as f64 / f64::from(polls.max(1));
    Ok(SourceRun {
        source,
        poll_interval: settings.poll_interval,
        jobs,
        dispatch: done_at - scheduled_at,
        requests_per_job: dispatch_requests as f64 / jobs.max(1) as f64,
        idle_requests_per_poll: per_poll(idle),
        starting_requests_per_poll: per_poll(starting),
        starting_points_per_poll: (source == Source::Graphql).then(|| per_poll(points)),
        by_endpoint,
    })
}
