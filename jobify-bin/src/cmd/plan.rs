//! `jobify plan`: one poll of Buildkite and what the policy would do with each job, without
//! touching the cluster. `-o table` prints one row per job with its decision and reason;
//! `-o yaml` / `-o json` print the Job manifests that would be created.
//!
//! Limits are not applied: they depend on what is in flight in the cluster, which `plan`
//! does not read. A job the running controller would defer shows here as `run`.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use jobify_core::policy::Explanation;
use jobify_core::{Decider, Decision, Policy, ScheduledJob, Sweep};
use jobify_k8s::RenderError;
use k8s_openapi::api::batch::v1::Job;

use crate::cli::PlanOutput;
use crate::config::Config;
use crate::source::JobSource;

/// What the controller would do with one scheduled job.
#[derive(Debug)]
pub(crate) struct PlannedJob {
    /// The job.
    pub(crate) job: ScheduledJob,
    /// The decision and how it was reached.
    pub(crate) explanation: Explanation,
    /// For `run` decisions, the Job manifest, or why it cannot be rendered (the controller
    /// would reject the job with that message).
    pub(crate) manifest: Option<Result<Job, RenderError>>,
}

/// Decides every job and renders the manifests of those that would run. Pure: no I/O.
pub(crate) fn plan_jobs(config: &Config, mut jobs: Vec<ScheduledJob>) -> Vec<PlannedJob> {
    let decider = Decider::from_config(&config.policy, &config.guard, &config.queues);
    jobs.sort_by(|a, b| {
        b.priority
            .cmp(&a.priority)
            .then_with(|| a.scheduled_at.cmp(&b.scheduled_at))
            .then_with(|| a.id.cmp(&b.id))
    });
    jobs.into_iter()
        .map(|job| {
            let explanation = decider.explain(&job);
            let manifest = match &explanation.decision {
                Decision::Run { template, .. } => Some(jobify_k8s::render_job(
                    &job,
                    template,
                    &config.kubernetes,
                    &config.controller_id(),
                )),
                _ => None,
            };
            PlannedJob {
                job,
                explanation,
                manifest,
            }
        })
        .collect()
}

/// One sweep of at most `max_pages` pages, then the plan printed to stdout as `output` asks.
pub(crate) async fn execute(
    config: &Config,
    output: PlanOutput,
    max_pages: usize,
) -> anyhow::Result<ExitCode> {
    let (client, _) = crate::clients::buildkite(config)?;
    let stacks = crate::cmd::run::stacks_client(config)?;
    // A one-off look: joining a Stacks API that keeps failing gives up after a while.
    let give_up = tokio_util::sync::CancellationToken::new();
    let timer = tokio::spawn({
        let give_up = give_up.clone();
        async move {
            tokio::time::sleep(std::time::Duration::from_secs(30)).await;
            give_up.cancel();
        }
    });
    let source = JobSource::join(
        config,
        &client,
        stacks.as_ref(),
        jobify_buildkite::BuildkiteMetrics::default(),
        tokio_util::sync::CancellationToken::new(),
        &give_up,
    )
    .await;
    timer.abort();
    let source = source?;
    let sweep = Sweep::read(source.monitor.as_ref(), max_pages)
        .await
        .context("polling Buildkite for scheduled jobs")?;
    if !sweep.complete {
        eprintln!(
            "read {} pages of scheduled jobs and more are scheduled; the newest are not shown \
             (pass --max-pages to read further)",
            sweep.pages
        );
    }
    let planned = plan_jobs(config, sweep.jobs);
    let mut stdout = std::io::stdout().lock();
    match output {
        PlanOutput::Table => write_table(&mut stdout, &planned)?,
        PlanOutput::Yaml => write_yaml(&mut stdout, &planned)?,
        PlanOutput::Json => write_json(&mut stdout, &planned)?,
    }
    for (job, error) in render_errors(&planned) {
        eprintln!("job {job}: the Job cannot be rendered, so it would be rejected: {error}");
    }
    Ok(ExitCode::SUCCESS)
}

fn render_errors(planned: &[PlannedJob]) -> impl Iterator<Item = (String, &RenderError)> {
    planned.iter().filter_map(|p| match &p.manifest {
        Some(Err(error)) => Some((p.job.id.to_string(), error)),
        _ => None,
    })
}

fn manifests(planned: &[PlannedJob]) -> impl Iterator<Item = &Job> {
    planned.iter().filter_map(|p| match &p.manifest {
        Some(Ok(job)) => Some(job),
        _ => None,
    })
}

/// One row per job: uuid, pipeline and build, queue, decision, reason code and message.
pub(crate) fn write_table(out: &mut impl Write, planned: &[PlannedJob]) -> std::io::Result<()> {
    let rows: Vec<[String; 5]> = planned
        .iter()
        .map(|p| {
            let decision = &p.explanation.decision;
            let (verdict, reason) = match &p.manifest {
                Some(Err(error)) => ("reject".to_owned(), format!("render_failed: {error}")),
                _ => (
                    verdict(decision),
                    format!("{}: {}", decision.reason().code, decision.reason().message),
                ),
            };
            [
                p.job.id.to_string(),
                format!("{}#{}", p.job.pipeline, p.job.build.number),
                p.job.queue().unwrap_or("default").to_owned(),
                verdict,
                reason,
            ]
        })
        .collect();
    let header = ["JOB", "BUILD", "QUEUE", "DECISION", "REASON"].map(str::to_owned);
    let mut widths = header.clone().map(|h| h.len());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    if rows.is_empty() {
        writeln!(out, "(no scheduled jobs)")?;
    }
    Ok(())
}

fn verdict(decision: &Decision) -> String {
    match decision {
        Decision::Run { template, .. } => match template {
            jobify_core::Template::PodSpec => "run (podspec)".to_owned(),
            jobify_core::Template::Default { name: Some(name) } => format!("run ({name})"),
            jobify_core::Template::Default { name: None } => "run".to_owned(),
        },
        other => other.kind().to_owned(),
    }
}

/// The manifests as a YAML stream, one document per Job.
pub(crate) fn write_yaml(out: &mut impl Write, planned: &[PlannedJob]) -> anyhow::Result<()> {
    for (i, job) in manifests(planned).enumerate() {
        if i > 0 {
            writeln!(out, "---")?;
        }
        // Quoted for YAML 1.1 readers too: kubectl reads `value: yes` as a boolean.
        let text = jobify_k8s::manifest::to_yaml(job).context("serialising a Job as YAML")?;
        out.write_all(text.as_bytes())?;
    }
    Ok(())
}

/// The manifests as a JSON `v1/List`, which `kubectl apply -f` accepts.
pub(crate) fn write_json(out: &mut impl Write, planned: &[PlannedJob]) -> anyhow::Result<()> {
    let items: Vec<&Job> = manifests(planned).collect();
    let list = serde_json::json!({ "apiVersion": "v1", "kind": "List", "items": items });
    serde_json::to_writer_pretty(&mut *out, &list).context("serialising Jobs as JSON")?;
    writeln!(out)?;
    Ok(())
}
