//! Shared by the `e2e_*` tests: both simulators, jobify replicas running in this process
//! through the `run` code path over real HTTP, and waiting for outcomes by polling.
//!
//! Sizes are small by default so the suite stays quick in CI; `JOBIFY_E2E_SCALE=N` multiplies
//! the job counts.

#![allow(
    dead_code,
    reason = "each e2e test binary uses a different part of the harness"
)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use jobify::config::{self, Config};
use jobify::simenv::{
    ConfigTemplate, ScheduledSimJob, SimEnv, SimEnvConfig, TokenSource, run_jobify,
};
use jobify_sim::buildkite::Budget;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// How long "eventually" may take before a test fails, at scale 1. Generous: CI machines are
/// slow and shared; the tests poll, they never wait this long when things work.
pub(crate) const PATIENCE: Duration = Duration::from_secs(60);

/// [`PATIENCE`] times the scale: more jobs take longer.
pub(crate) fn patience() -> Duration {
    PATIENCE * u32::try_from(scaled(1)).unwrap_or(u32::MAX)
}

/// The base of every e2e config: the simulators' addresses, quick polling, short timeouts.
/// Tests append their own `[[queues]]`, `[limits]`, `[leader_election]` ... sections.
pub(crate) const BASE_CONFIG: &str = r#"
organization = "{{organization}}"
controller_id = "e2e"

[buildkite]
source = "{{source}}"
graphql_url = "{{graphql_url}}"
agent_url = "{{agent_url}}"
api_token = {{api_token}}
agent_token = {{agent_token}}
poll_interval = "1s"
request_timeout = "{{request_timeout}}"
page_size = 500

[server]
listen = "{{listen}}"
"#;

/// `n` scaled by `JOBIFY_E2E_SCALE` (default 1).
pub(crate) fn scaled(n: usize) -> usize {
    let scale = std::env::var("JOBIFY_E2E_SCALE")
        .ok()
        .and_then(|s| s.parse::<usize>().ok())
        .filter(|s| *s > 0)
        .unwrap_or(1);
    n * scale
}

/// A budget no e2e test exhausts: rate limiting has its own tests in `jobify-sim` and the
/// adapters; here it would only slow polls down.
pub(crate) fn ample_budget() -> Budget {
    Budget {
        points: 100_000_000,
        window: Duration::from_secs(300),
    }
}

/// Both simulators and a directory for configs.
pub(crate) struct Harness {
    pub(crate) env: SimEnv,
    dir: tempfile::TempDir,
    configs: usize,
}

impl Harness {
    pub(crate) async fn start(config: SimEnvConfig) -> Harness {
        jobify::tls::install_crypto_provider();
        // RUST_LOG=jobify=debug shows jobify's logs with a failing test's output.
        let _already_set = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let env = SimEnv::start(SimEnvConfig {
            budget: ample_budget(),
            ..config
        })
        .await
        .expect("simulators start");
        Harness {
            env,
            dir: tempfile::tempdir().expect("tempdir"),
            configs: 0,
        }
    }

    /// Writes `BASE_CONFIG` + `sections` (with `values` for extra placeholders, and for
    /// `request_timeout`, default `2s`) and loads it as `jobify run -c` would. Returns the
    /// config and the metrics address.
    pub(crate) fn config(
        &mut self,
        sections: &str,
        values: &[(&str, &str)],
    ) -> (Config, SocketAddr) {
        self.configs += 1;
        let dir: PathBuf = self.dir.path().join(format!("replica-{}", self.configs));
        std::fs::create_dir_all(&dir).expect("config dir");
        let listen = free_port();
        let mut template = ConfigTemplate::new(format!("{BASE_CONFIG}\n{sections}"))
            .with("listen", listen.to_string());
        for (name, value) in values {
            template = template.with(name, *value);
        }
        // Defaults, after the test's own values: a placeholder is replaced by its first value.
        template = template.with("request_timeout", "2s");
        let files = self
            .env
            .write_files(&dir, &template, TokenSource::File)
            .expect("write config");
        let config = config::load(&files.config).unwrap_or_else(|e| panic!("{e}"));
        (config, listen)
    }

    /// Starts a jobify replica with `config`.
    pub(crate) fn start_jobify(&self, config: Config, listen: SocketAddr) -> Replica {
        let stop = CancellationToken::new();
        let kube = self.env.kube_client().expect("kube client");
        let task = tokio::spawn(run_jobify(config, kube, stop.clone()));
        Replica { stop, task, listen }
    }

    /// The Buildkite state of `job` (`SCHEDULED`, `FINISHED`, ...).
    pub(crate) fn state(&self, job: Uuid) -> String {
        self.env.job_view(job).map(|j| j.state).unwrap_or_default()
    }

    /// Jobs (by Buildkite uuid) the Kubernetes simulator holds now, in namespace `ns`.
    pub(crate) fn kube_jobs(&self, ns: &str) -> Vec<Uuid> {
        self.env
            .kubernetes()
            .jobs(ns)
            .iter()
            .filter_map(|job| {
                let labels = job.metadata.labels.as_ref()?;
                Uuid::parse_str(labels.get(jobify_k8s::labels::JOB_UUID)?).ok()
            })
            .collect()
    }

    pub(crate) async fn shutdown(self) {
        self.env.shutdown().await;
    }
}

/// A jobify running in this process.
pub(crate) struct Replica {
    stop: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
    pub(crate) listen: SocketAddr,
}

impl Replica {
    /// Whether it stopped on its own (it must not).
    pub(crate) fn has_stopped(&self) -> bool {
        self.task.is_finished()
    }

    /// Panics, with the error it stopped with, if it stopped on its own.
    pub(crate) async fn assert_running(&mut self, why: &str) {
        if !self.task.is_finished() {
            return;
        }
        match (&mut self.task).await {
            Ok(Ok(())) => panic!("{why}: jobify stopped on its own, without an error"),
            Ok(Err(e)) => panic!("{why}: jobify stopped with an error: {e:#}"),
            Err(e) => panic!("{why}: jobify's task failed: {e}"),
        }
    }

    /// Stops it as SIGTERM would and waits; panics if it fails to stop cleanly.
    pub(crate) async fn stop(self) {
        self.stop.cancel();
        let result = tokio::time::timeout(PATIENCE, self.task)
            .await
            .expect("jobify stops within the patience")
            .expect("jobify's task does not panic");
        if let Err(e) = result {
            panic!("jobify stopped with an error: {e:#}");
        }
    }

    /// Its `/metrics` text.
    pub(crate) async fn metrics(&self) -> Option<String> {
        let response = reqwest::get(format!("http://{}/metrics", self.listen))
            .await
            .ok()?;
        response.text().await.ok()
    }

    /// The value of gauge or counter `name` (summed over label sets) in its `/metrics`.
    pub(crate) async fn metric(&self, name: &str) -> Option<f64> {
        let text = self.metrics().await?;
        let values: Vec<f64> = text
            .lines()
            .filter(|line| {
                line.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
            })
            .filter_map(|line| line.rsplit(' ').next()?.parse().ok())
            .collect();
        (!values.is_empty()).then(|| values.iter().sum())
    }
}

/// A loopback port nothing listens on now (released for jobify to bind).
pub(crate) fn free_port() -> SocketAddr {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("probe port");
    probe.local_addr().expect("probe address")
}

/// Polls `check` until it returns `Ok`, or panics with its last `Err` after [`patience`].
pub(crate) async fn eventually<F>(what: &str, mut check: F)
where
    F: AsyncFnMut() -> Result<(), String>,
{
    let patience = patience();
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        match check().await {
            Ok(()) => return,
            Err(why) if tokio::time::Instant::now() >= deadline => {
                panic!("{what}: not within {patience:?}: {why}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// The replica's in-flight gauge is 0 (no slot leaked); else its value.
pub(crate) async fn nothing_in_flight(replica: &Replica) -> Result<(), String> {
    match replica.metric("jobify_scheduler_in_flight").await {
        Some(0.0) => Ok(()),
        other => Err(format!("jobify_scheduler_in_flight is {other:?}")),
    }
}

/// Every job of `jobs` finished with exit 0, acquired exactly once; else which is not.
pub(crate) fn all_ran_once(harness: &Harness, jobs: &[ScheduledSimJob]) -> Result<(), String> {
    let mut pending = BTreeMap::new();
    for job in jobs {
        let view = harness
            .env
            .job_view(job.uuid)
            .ok_or_else(|| format!("job {} unknown", job.uuid))?;
        if view.acquired > 1 {
            return Err(format!(
                "job {} was acquired {} times",
                job.uuid, view.acquired
            ));
        }
        if !(view.state == "FINISHED" && view.exit_status == Some(0)) {
            *pending.entry(view.state).or_insert(0usize) += 1;
        }
    }
    if pending.is_empty() {
        Ok(())
    } else {
        Err(format!("not finished yet, by state: {pending:?}"))
    }
}

/// No job of `jobs` was touched: still scheduled, never acquired, no Job.
pub(crate) fn none_touched(harness: &Harness, jobs: &[ScheduledSimJob], ns: &str) {
    let with_jobs: std::collections::HashSet<Uuid> = harness.kube_jobs(ns).into_iter().collect();
    for job in jobs {
        let view = harness.env.job_view(job.uuid).expect("job");
        assert_eq!(
            view.state, "SCHEDULED",
            "job {} on queue {}",
            job.uuid, job.queue
        );
        assert_eq!(view.acquired, 0);
        assert!(view.told.is_empty(), "{:?}", view.told);
        assert!(!with_jobs.contains(&job.uuid));
    }
}
