//! `jobify demo`: both simulators and jobify in one process, over real HTTP, with a scenario
//! of about fifty jobs whose outcomes are read back from the simulators and checked.
//!
//! ```text
//!   scenario::jobs ──schedule──▶ BuildkiteSim ◀──GraphQL── jobify (the `run` code path) ──kube API──▶ KubeSim
//!                                    ▲                                                               │
//!                                    └──────────── simulated agents acquire / finish ◀── pods ───────┘
//!   observe::Watcher reads both simulators every 100 ms ─▶ progress lines ─▶ outcome::judge ─▶ summary
//! ```
//!
//! The config is embedded ([`CONFIG`]), filled in with the simulators' ports, written to a
//! temporary directory and loaded by the same code as `jobify run -c`. How jobify is started
//! is the caller's: `cmd::demo` hands in the `run` code path.

pub(crate) mod observe;
pub(crate) mod outcome;
pub(crate) mod scenario;
pub(crate) mod summary;

use std::future::Future;
use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use jobify_sim::kubernetes::{Scenarios, Timings};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::config::{self, Config};
use crate::simenv::{ConfigTemplate, SimEnv, SimEnvConfig, TokenSource};
use observe::{Observation, Watcher};
use outcome::{Verdict, judge};
use scenario::{DemoJob, Expected};
use summary::Row;

/// The demo's `jobify.toml`, with `{{...}}` placeholders for the simulators' addresses.
pub(crate) const CONFIG: &str = include_str!("jobify.toml");

/// How often the simulators are looked at.
const LOOK_EVERY: Duration = Duration::from_millis(100);
/// Longest event line shown (jobify's reasons quote Kubernetes events at length).
const EVENT_WIDTH: usize = 160;
/// How often at most the progress line is printed.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);

/// How to run the demo.
#[derive(Clone, Debug)]
pub(crate) struct DemoOptions {
    /// Give up after this long, reporting what is missing.
    pub(crate) deadline: Duration,
    /// The job source jobify reads.
    pub(crate) source: jobify_buildkite::Source,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            deadline: Duration::from_secs(60),
            source: jobify_buildkite::Source::Graphql,
        }
    }
}

/// How the demo ended.
#[derive(Debug)]
pub(crate) struct DemoReport {
    /// One row per job.
    pub(crate) rows: Vec<Row>,
    /// One line per expectation not met (empty when the demo passed).
    pub(crate) unexpected: Vec<String>,
    /// How long it took.
    pub(crate) elapsed: Duration,
}

impl DemoReport {
    /// Whether every expected outcome happened.
    pub(crate) fn passed(&self) -> bool {
        self.unexpected.is_empty()
    }
}

/// The running jobify, as the demo needs it: a task that ends when its stop token is
/// cancelled.
type Jobify = tokio::task::JoinHandle<anyhow::Result<()>>;

/// Runs the demo, printing progress to `out`, and returns the report (the summary table is
/// printed too). `start` starts jobify with the loaded config and a Kubernetes client for the
/// simulator, until the token is cancelled.
pub(crate) async fn run<S, F>(
    options: &DemoOptions,
    out: &mut impl Write,
    start: S,
) -> anyhow::Result<DemoReport>
where
    S: FnOnce(Config, kube::Client, CancellationToken) -> F,
    F: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let began = Instant::now();
    let env = SimEnv::start(SimEnvConfig {
        timings: Timings {
            // The cancelled job's pod must still be pending when jobify deletes it.
            slow_start_delay: options.deadline + Duration::from_secs(60),
            ..Timings::default()
        },
        scenarios: Scenarios {
            missing_image_marker: scenario::UNPULLABLE_MARKER.to_owned(),
            slow_image_marker: scenario::SLOW_MARKER.to_owned(),
            ..Scenarios::default()
        },
        source: options.source,
        ..SimEnvConfig::default()
    })
    .await
    .context("starting the simulators")?;
    let dir = tempfile::Builder::new()
        .prefix("jobify-demo-")
        .tempdir()
        .context("creating a temporary directory for the demo's config")?;
    let files = env
        .write_files(dir.path(), &ConfigTemplate::new(CONFIG), TokenSource::File)
        .context("writing the demo's config")?;
    let config = config::load(&files.config).context("loading the demo's embedded config")?;
    match env.stacks() {
        Some(stacks) => writeln!(
            out,
            "Buildkite Stacks API simulator at {} (jobify holds only an agent token), \
             Kubernetes simulator at {}",
            stacks.base_url(),
            env.kubernetes().url()
        )?,
        None => writeln!(
            out,
            "Buildkite simulator at {}, Kubernetes simulator at {}",
            env.buildkite().graphql_url(),
            env.kubernetes().url()
        )?,
    }
    writeln!(out, "config: {}", files.config.display())?;

    let jobs = scenario::jobs();
    let uuids: Vec<Uuid> = jobs.iter().map(|job| env.schedule_job(&job.spec)).collect();
    let pipelines: std::collections::BTreeSet<&str> =
        jobs.iter().map(|j| j.spec.pipeline.as_str()).collect();
    writeln!(
        out,
        "scheduled {} jobs on {} pipelines; starting jobify (its warnings go to stderr; \
         RUST_LOG=info shows all its logs)",
        jobs.len(),
        pipelines.len()
    )?;

    let stop = CancellationToken::new();
    let kube = env
        .kube_client()
        .context("connecting to the Kubernetes simulator")?;
    let agent_image = config.kubernetes.agent_image.clone();
    let namespace = config.kubernetes.namespace.clone();
    let jobify: Jobify = tokio::spawn(start(config, kube, stop.clone()));

    let mut watch = Watch {
        env: &env,
        watcher: Watcher::new(&namespace),
        jobs: &jobs,
        uuids: &uuids,
        previous: vec![Observation::default(); jobs.len()],
        cancelled_by_demo: false,
        began,
        last_progress: String::new(),
        progress_at: began,
    };
    let deadline = began + options.deadline;
    let mut unexpected = Vec::new();
    let mut jobify = Some(jobify);
    let observed = loop {
        let observed = watch.look(out)?;
        let verdicts: Vec<Verdict> = jobs
            .iter()
            .zip(&observed)
            .map(|(job, o)| judge(&job.expected, o))
            .collect();
        if verdicts.iter().all(Verdict::is_met) {
            break observed;
        }
        if verdicts.iter().any(|v| matches!(v, Verdict::Wrong(_))) {
            writeln!(out, "{:>6}  something went wrong; stopping", watch.clock())?;
            break observed;
        }
        if Instant::now() >= deadline {
            writeln!(
                out,
                "{:>6}  deadline of {} reached",
                watch.clock(),
                humantime::format_duration(options.deadline)
            )?;
            break observed;
        }
        if let Some(task) = jobify.take_if(|task| task.is_finished()) {
            let why = match join_result(task).await {
                Ok(()) => "it returned without an error".to_owned(),
                Err(e) => crate::report::error_chain(&e),
            };
            unexpected.push(format!("jobify stopped on its own: {why}"));
            break observed;
        }
        tokio::time::sleep(LOOK_EVERY).await;
    };
    stop.cancel();
    if let Some(task) = jobify
        && let Err(e) = join_result(task).await
    {
        unexpected.push(format!(
            "jobify did not stop cleanly: {}",
            crate::report::error_chain(&e)
        ));
    }

    let mut rows = Vec::with_capacity(jobs.len());
    for (job, o) in jobs.iter().zip(&observed) {
        let verdict = judge(&job.expected, o);
        match &verdict {
            Verdict::Met => {}
            Verdict::Waiting(missing) => unexpected.push(format!(
                "{}: expected it {}; still missing: {missing}",
                job.name(),
                job.expected
            )),
            Verdict::Wrong(what) => unexpected.push(format!(
                "{}: expected it {}; but {what}",
                job.name(),
                job.expected
            )),
        }
        rows.push(summary::row(job, o, &verdict, &agent_image));
    }
    let creates = env.kubernetes().stats().job_creates;
    let expected_creates = jobs.iter().filter(|j| j.expected.gets_a_job()).count();
    if usize::try_from(creates).ok() != Some(expected_creates) {
        unexpected.push(format!(
            "the Kubernetes simulator counted {creates} Job creates, expected exactly \
             {expected_creates} (one per job jobify runs)"
        ));
    }
    env.shutdown().await;
    Ok(DemoReport {
        rows,
        unexpected,
        elapsed: began.elapsed(),
    })
}

async fn join_result(task: Jobify) -> anyhow::Result<()> {
    match task.await {
        Ok(result) => result,
        Err(e) => Err(anyhow::anyhow!(
            "jobify's task panicked or was aborted: {e}"
        )),
    }
}

/// The demo's eyes: looks at the simulators, prints what changed, and plays the user who
/// cancels a pending job.
struct Watch<'a> {
    env: &'a SimEnv,
    watcher: Watcher,
    jobs: &'a [DemoJob],
    uuids: &'a [Uuid],
    previous: Vec<Observation>,
    cancelled_by_demo: bool,
    began: Instant,
    last_progress: String,
    progress_at: Instant,
}

impl Watch<'_> {
    fn clock(&self) -> String {
        format!("{:.1}s", self.began.elapsed().as_secs_f64())
    }

    /// Observes every job, prints the notable changes and the progress line, and cancels
    /// the slow job once its pod is pending.
    fn look(&mut self, out: &mut impl Write) -> std::io::Result<Vec<Observation>> {
        let observed = self.watcher.observe(self.env, self.uuids);
        for (i, (job, now)) in self.jobs.iter().zip(&observed).enumerate() {
            if job.expected != Expected::Passes {
                for event in changes(&self.previous[i], now) {
                    let event = summary::cut(&event, EVENT_WIDTH);
                    writeln!(out, "{:>6}  {:<28} {event}", self.clock(), job.name())?;
                }
            }
            if job.expected == Expected::CancelledWhilePending
                && !self.cancelled_by_demo
                && now.job_present
                && now.pod_phase.as_deref() == Some("Pending")
                && now.state == "SCHEDULED"
            {
                self.cancelled_by_demo = self.env.cancel_job(self.uuids[i]);
                writeln!(
                    out,
                    "{:>6}  {:<28} the demo cancels it in Buildkite while its pod is pending",
                    self.clock(),
                    job.name()
                )?;
            }
        }
        let line = progress(&observed, self.env.kubernetes().stats().job_creates);
        if line != self.last_progress && self.progress_at.elapsed() >= PROGRESS_EVERY {
            writeln!(out, "{:>6}  {line}", self.clock())?;
            self.last_progress = line;
            self.progress_at = Instant::now();
        }
        self.previous.clone_from(&observed);
        Ok(observed)
    }
}

/// What changed between two observations of one job, as short sentences.
fn changes(before: &Observation, now: &Observation) -> Vec<String> {
    let mut events = Vec::new();
    if now.job_seen && !before.job_seen {
        events.push("Job created".to_owned());
    }
    for note in now.notifications.iter().skip(before.notifications.len()) {
        events.push(format!("timeline: {note}"));
    }
    if now.pod_phase != before.pod_phase
        && let Some(phase) = &now.pod_phase
    {
        events.push(format!("pod {}", phase.to_lowercase()));
    }
    if now.state != before.state {
        match now.state.as_str() {
            "CANCELED" => match (now.reason_code(), now.reason_message()) {
                (Some(code), Some(message)) => {
                    events.push(format!("failed by jobify: {code}: {message}"));
                }
                _ => events.push("cancelled in Buildkite".to_owned()),
            },
            "FINISHED" => events.push(format!(
                "finished with exit {}",
                now.exit_status
                    .map_or_else(|| "?".to_owned(), |s| s.to_string())
            )),
            "RUNNING" => events.push("running".to_owned()),
            _ => {}
        }
    }
    if before.job_present && !now.job_present && now.job_seen {
        events.push("Job deleted".to_owned());
    }
    events
}

/// The compact progress line: jobs by state, Jobs created.
fn progress(observed: &[Observation], job_creates: u64) -> String {
    let count = |state: &str| observed.iter().filter(|o| o.state == state).count();
    let passed = observed
        .iter()
        .filter(|o| o.state == "FINISHED" && o.exit_status == Some(0))
        .count();
    let finished = count("FINISHED");
    format!(
        "progress: {} scheduled, {} running, {} passed, {} failed, {} cancelled | {} Jobs created",
        count("SCHEDULED"),
        count("RUNNING"),
        passed,
        finished - passed,
        count("CANCELED"),
        job_creates
    )
}

/// Writes the summary table and the verdict; the exit code follows
/// [`DemoReport::passed`].
pub(crate) fn write_summary(out: &mut impl Write, report: &DemoReport) -> std::io::Result<()> {
    writeln!(out)?;
    summary::write_table(out, &report.rows)?;
    writeln!(out)?;
    if report.passed() {
        writeln!(
            out,
            "demo passed: every expected outcome happened ({} jobs in {:.1}s)",
            report.rows.len(),
            report.elapsed.as_secs_f64()
        )?;
    } else {
        writeln!(
            out,
            "demo FAILED: {} unexpected outcome(s):",
            report.unexpected.len()
        )?;
        for line in &report.unexpected {
            writeln!(out, "  - {line}")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simenv::SimEnvConfig;

    #[tokio::test]
    async fn embedded_config_passes_check_once_written() {
        let env = SimEnv::start(SimEnvConfig::default()).await.expect("sims");
        let dir = tempfile::tempdir().expect("tempdir");
        let files = env
            .write_files(dir.path(), &ConfigTemplate::new(CONFIG), TokenSource::File)
            .expect("write");
        let config = config::load(&files.config).expect("the demo's config is valid");
        assert_eq!(config.queues[0].name, scenario::QUEUE);
        assert_eq!(
            crate::cmd::check::execute(&files.config),
            std::process::ExitCode::SUCCESS
        );
        env.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn demo_without_jobify_fails_at_the_deadline_naming_what_is_missing() {
        crate::tls::install_crypto_provider();
        let options = DemoOptions {
            deadline: Duration::from_millis(500),
            ..DemoOptions::default()
        };
        let mut out = Vec::new();
        let idle = |_: Config, _: kube::Client, stop: CancellationToken| async move {
            stop.cancelled().await;
            Ok(())
        };
        let report = run(&options, &mut out, idle).await.expect("demo runs");
        assert!(!report.passed());
        let missing = |needle: &str| report.unexpected.iter().any(|line| line.contains(needle));
        assert!(
            missing("still missing: no Job yet"),
            "{:?}",
            report.unexpected
        );
        assert!(missing("0 Job creates"), "{:?}", report.unexpected);
        let text = String::from_utf8(out).expect("utf8");
        assert!(text.contains("deadline of 500ms reached"), "{text}");
        let skipped = report
            .rows
            .iter()
            .find(|row| row.job.starts_with(scenario::SKIPPED_PIPELINE))
            .expect("a skipped job");
        assert_eq!(skipped.check, "ok");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn demo_fails_when_jobify_stops_on_its_own() {
        crate::tls::install_crypto_provider();
        let mut out = Vec::new();
        let broken = |_: Config, _: kube::Client, _: CancellationToken| async move {
            Err(anyhow::anyhow!("cannot reach Buildkite"))
        };
        let report = run(&DemoOptions::default(), &mut out, broken)
            .await
            .expect("demo runs");
        assert!(
            report
                .unexpected
                .iter()
                .any(|line| line.contains("jobify stopped on its own: cannot reach Buildkite")),
            "{:?}",
            report.unexpected
        );
    }

    #[test]
    fn changes_name_creation_failure_and_deletion() {
        let before = Observation {
            state: "SCHEDULED".into(),
            ..Observation::default()
        };
        let created = Observation {
            job_seen: true,
            job_present: true,
            pod_phase: Some("Pending".into()),
            ..before.clone()
        };
        assert_eq!(changes(&before, &created), ["Job created", "pod pending"]);
        let failed = Observation {
            state: "CANCELED".into(),
            job_present: false,
            pod_phase: None,
            annotation: Some(
                "**jobify did not run this job.** no image\n\n<sub>reason code `image_pull_failed`</sub>"
                    .into(),
            ),
            ..created.clone()
        };
        assert_eq!(
            changes(&created, &failed),
            [
                "failed by jobify: image_pull_failed: no image",
                "Job deleted"
            ]
        );
    }
}
