//! One measured session: fresh simulators, the files pointing at them, and a `jobify run`
//! child started against them. Every phase of the benchmark gets its own session so that no
//! phase inherits another's Jobs, pods or warm caches.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use jobify::simenv::{ConfigTemplate, SimEnv, SimEnvConfig, TokenSource, Workload};
use jobify_buildkite::Source;
use jobify_sim::buildkite::{Budget, BuildkiteStats};
use jobify_sim::kubernetes::{Scenarios, Timings};
use tokio::time::{Instant, sleep};

use crate::child::{Jobify, Memory};

/// The benchmark's `jobify.toml`.
const CONFIG: &str = include_str!("jobify.toml");

/// The queue jobs are scheduled on and jobify serves.
pub(crate) const QUEUE: &str = "kubernetes";

/// The namespace jobify creates its Jobs in.
pub(crate) const NAMESPACE: &str = "buildkite";

/// How often the waits below look at the simulators' counters. Tokio's timer has
/// millisecond resolution, so this is also the resolution of every time measured.
pub(crate) const TICK: Duration = Duration::from_millis(1);

/// What every session shares.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    /// The `jobify` binary.
    pub(crate) binary: std::path::PathBuf,
    /// `[buildkite] poll_interval`.
    pub(crate) poll_interval: Duration,
    /// `[buildkite] page_size`.
    pub(crate) page_size: u32,
    /// `[kubernetes.client] max_concurrent_creates`, and the raw loop's concurrency.
    pub(crate) concurrency: usize,
    /// Jobs in flight allowed (overall and for the queue).
    pub(crate) max_in_flight: usize,
    /// Where jobify reads jobs from.
    pub(crate) source: Source,
    /// Whether pods stay pending (their agent never starts) for the whole session, as pods
    /// pulling a large image do.
    pub(crate) slow_pods: bool,
}

impl Settings {
    /// The simulators' configuration: fault-free, with a complexity budget no run can
    /// exhaust, so that jobify's own pacing is what is measured (the real budget is a limit
    /// of its own, see docs/performance.md).
    pub(crate) fn sim_config(&self) -> SimEnvConfig {
        let mut config = SimEnvConfig {
            source: self.source,
            ..Settings::base_sim_config()
        };
        if self.slow_pods {
            // Every default agent pod (image ghcr.io/buildkite/agent) starts in an hour.
            config.scenarios = Scenarios {
                slow_image_marker: "buildkite/agent".to_owned(),
                ..Scenarios::default()
            };
            config.timings = Timings {
                slow_start_delay: Duration::from_secs(3600),
                ..Timings::default()
            };
        }
        config
    }

    /// Fault-free simulators serving GraphQL, with a budget no run exhausts.
    pub(crate) fn base_sim_config() -> SimEnvConfig {
        SimEnvConfig {
            budget: Budget {
                points: 1_000_000_000,
                window: Duration::from_secs(300),
            },
            ..SimEnvConfig::default()
        }
    }

    /// Jobs that keep their pods running for the whole benchmark, so that jobify tracks
    /// every one of them.
    pub(crate) fn workload() -> Workload {
        Workload::on_queue(QUEUE, Duration::from_secs(3600))
    }
}

/// Fresh simulators with a `jobify run` against them.
pub(crate) struct Session {
    pub(crate) env: SimEnv,
    pub(crate) jobify: Jobify,
    /// From spawning the child to the Buildkite simulator's first GraphQL request.
    pub(crate) first_poll: Duration,
    settings: Settings,
}

impl Session {
    /// Starts the simulators, writes the files into `dir`, spawns jobify and waits for its
    /// first poll.
    pub(crate) async fn start(settings: &Settings, dir: &Path) -> anyhow::Result<Session> {
        let env = SimEnv::start(settings.sim_config())
            .await
            .context("cannot start the simulators")?;
        let template = ConfigTemplate::new(CONFIG)
            .with(
                "poll_interval",
                humantime::format_duration(settings.poll_interval).to_string(),
            )
            .with("page_size", settings.page_size.to_string())
            .with("max_in_flight", settings.max_in_flight.to_string())
            .with("concurrency", settings.concurrency.to_string())
            .with("namespace", NAMESPACE)
            .with("job_tokens", settings.source_job_tokens());
        let files = env
            .write_files(dir, &template, TokenSource::Env)
            .context("cannot write the files for jobify")?;
        let started = Instant::now();
        let mut jobify = Jobify::spawn(&settings.binary, &files, &dir.join("jobify.log"))?;
        let deadline = started + Duration::from_secs(30);
        while requests_to(&env) == 0 {
            if Instant::now() > deadline {
                bail!(
                    "jobify sent no request to Buildkite within 30 s; its log ends with:\n{}",
                    jobify.log_tail()
                );
            }
            jobify.ensure_running()?;
            sleep(TICK).await;
        }
        let first_poll = started.elapsed();
        Ok(Session {
            env,
            jobify,
            first_poll,
            settings: settings.clone(),
        })
    }

    /// Requests Buildkite has answered so far, through the session's source.
    pub(crate) fn requests(&self) -> u64 {
        requests_to(&self.env)
    }

    /// The Buildkite simulator's counters now.
    pub(crate) fn api(&self) -> BuildkiteStats {
        self.env.buildkite().stats()
    }

    /// The child's memory now.
    pub(crate) fn memory(&self) -> anyhow::Result<Memory> {
        self.jobify.memory()
    }

    /// The poll interval jobify runs with.
    pub(crate) fn poll_interval(&self) -> Duration {
        self.settings.poll_interval
    }

    /// Waits `polls` poll intervals, failing early if jobify exits.
    pub(crate) async fn idle_for(&mut self, polls: u32) -> anyhow::Result<()> {
        let until = Instant::now() + self.settings.poll_interval * polls;
        while Instant::now() < until {
            self.jobify.ensure_running()?;
            sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    /// Waits until `done` holds, checking every [`TICK`]; the instant it was first seen to
    /// hold. Fails if jobify exits or `timeout` passes, saying `what` was awaited.
    pub(crate) async fn wait_for(
        &mut self,
        what: &str,
        timeout: Duration,
        mut done: impl FnMut(&SimEnv) -> bool,
    ) -> anyhow::Result<Instant> {
        let deadline = Instant::now() + timeout;
        let mut checked = 0u32;
        loop {
            if done(&self.env) {
                return Ok(Instant::now());
            }
            if Instant::now() > deadline {
                let api = self.api();
                bail!(
                    "timed out after {} waiting for {what} ({} Jobs created, {} GraphQL \
                     requests so far); jobify's log ends with:\n{}",
                    humantime::format_duration(timeout),
                    self.env.kubernetes().stats().job_creates,
                    api.graphql_requests,
                    self.jobify.log_tail()
                );
            }
            checked += 1;
            if checked.is_multiple_of(100) {
                self.jobify.ensure_running()?;
            }
            sleep(TICK).await;
        }
    }

    /// Stops jobify, then the simulators.
    pub(crate) async fn stop(self) -> anyhow::Result<()> {
        let stopped = self.jobify.stop();
        self.env.shutdown().await;
        stopped
    }
}

/// Requests to the job source's simulator: GraphQL requests, or every Stacks API request.
pub(crate) fn requests_to(env: &SimEnv) -> u64 {
    match env.stacks() {
        Some(stacks) => stacks.stats().total_requests(),
        None => env.buildkite().stats().graphql_requests,
    }
}

impl Settings {
    /// `[buildkite.stacks] job_tokens`: on, as by default.
    fn source_job_tokens(&self) -> &'static str {
        "true"
    }
}

/// The difference between two snapshots of the Buildkite simulator's counters.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ApiCost {
    /// GraphQL requests.
    pub(crate) requests: u64,
    /// Requested complexity.
    pub(crate) requested: u64,
    /// Actual complexity.
    pub(crate) actual: u64,
}

impl ApiCost {
    /// What was spent from `before` to `after`.
    pub(crate) fn between(before: &BuildkiteStats, after: &BuildkiteStats) -> ApiCost {
        ApiCost {
            requests: after.graphql_requests - before.graphql_requests,
            requested: after.requested_complexity - before.requested_complexity,
            actual: after.actual_complexity - before.actual_complexity,
        }
    }

    /// Each figure divided by `n` (per job, per poll).
    pub(crate) fn per(&self, n: f64) -> (f64, f64, f64) {
        if n <= 0.0 {
            return (0.0, 0.0, 0.0);
        }
        (
            self.requests as f64 / n,
            self.requested as f64 / n,
            self.actual as f64 / n,
        )
    }
}
