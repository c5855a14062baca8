//! `jobify-bench`: runs the real `jobify` binary against the Buildkite and Kubernetes
//! simulators over HTTP and prints dispatch throughput (with the raw create loop as the
//! ceiling), latency under a steady arrival rate, Buildkite API cost, memory and time to the
//! first poll, against the targets in docs/performance.md.
//!
//! ```text
//!   cargo run --release -p jobify-bench        # full run, by hand
//!   cargo run -p jobify-bench -- --smoke       # CI: completes, exactly once
//! ```
//!
//! Phases, each with fresh simulators ([`session`]): one `jobify run` per batch size measured
//! idle, then with the batch queued at once ([`dispatch`]); the same Jobs created by a plain
//! loop ([`ceiling`]); a steady arrival run ([`latency`]). [`report`] prints the table.

mod ceiling;
mod child;
mod dispatch;
mod latency;
mod report;
mod session;
mod sources;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;

use crate::session::Settings;

/// Benchmarks jobify against the simulators and prints the figures against their targets.
#[derive(Debug, Parser)]
#[command(name = "jobify-bench")]
struct Args {
    /// Batch sizes queued at once, comma-separated; the largest is the memory figure's.
    #[arg(long, value_delimiter = ',', default_values_t = [1000, 10000])]
    jobs: Vec<usize>,
    /// CI mode: 200 jobs, short idle and steady phases. Asserts only that every phase
    /// completed and every job was dispatched exactly once; the figures are printed, not judged.
    #[arg(long)]
    smoke: bool,
    /// jobify's poll interval (at least 100ms). A job waits up to this long to be seen, so it
    /// bounds the end-to-end figures; idle polls at 250ms cost 30% of Buildkite's default
    /// budget (docs/performance.md).
    #[arg(long, default_value = "250ms", value_parser = humantime::parse_duration)]
    poll_interval: Duration,
    /// jobify's GraphQL page size.
    #[arg(long, default_value_t = 100)]
    page_size: u32,
    /// Job creates in flight at once, for jobify and for the raw loop.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Idle polls measured.
    #[arg(long, default_value_t = 5)]
    idle_polls: u32,
    /// Jobs per second of the steady-arrival run.
    #[arg(long, default_value_t = 200.0)]
    rate: f64,
    /// How long the steady-arrival run schedules jobs.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    steady_for: Duration,
    /// The jobify binary; by default the one next to this executable.
    #[arg(long)]
    jobify: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let mut args = Args::parse();
    if args.smoke {
        args.jobs = vec![200];
        args.idle_polls = 2;
        args.rate = 50.0;
        args.steady_for = Duration::from_secs(2);
    }
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    jobify::tls::install_crypto_provider();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", jobify::report::error_chain(&err));
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let mut sizes = args.jobs.clone();
    sizes.sort_unstable();
    let settings = Settings {
        binary: child::locate(args.jobify.clone())?,
        poll_interval: args.poll_interval,
        page_size: args.page_size,
        concurrency: args.concurrency,
        max_in_flight: sizes.last().copied().unwrap_or(0).max(1) * 2,
        source: jobify_buildkite::Source::Graphql,
        slow_pods: false,
    };
    println!("{}", machine());
    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;

    let mut idle = None;
    let mut runs = Vec::new();
    for (i, &jobs) in sizes.iter().enumerate() {
        let session_dir = dir.path().join(format!("dispatch-{jobs}-{i}"));
        std::fs::create_dir(&session_dir).context("cannot create a session directory")?;
        eprintln!("dispatching {jobs} jobs through jobify ...");
        let (idle_now, dispatch) =
            dispatch::measure(&settings, &session_dir, args.idle_polls, jobs).await?;
        eprintln!("creating the same {jobs} Jobs with the raw loop ...");
        let ceiling = ceiling::measure(&dispatch.manifests, args.concurrency).await?;
        idle.get_or_insert(idle_now);
        runs.push((dispatch, ceiling));
    }
    let idle = idle.context("no batch size given (--jobs)")?;

    eprintln!(
        "steady arrivals: {:.0} jobs/s for {} ...",
        args.rate,
        humantime::format_duration(args.steady_for)
    );
    let steady_dir = dir.path().join("steady");
    std::fs::create_dir(&steady_dir).context("cannot create a session directory")?;
    let latency = latency::measure(&settings, &steady_dir, args.rate, args.steady_for).await?;

    let batch = sizes.first().copied().unwrap_or(200).min(1000);
    let mut sources = Vec::new();
    for source in [
        jobify_buildkite::Source::Graphql,
        jobify_buildkite::Source::Stacks,
    ] {
        eprintln!(
            "{batch} jobs through the {} source, pods kept starting ...",
            source.as_str()
        );
        let source_dir = dir.path().join(format!("source-{}", source.as_str()));
        std::fs::create_dir(&source_dir).context("cannot create a session directory")?;
        sources
            .push(sources::measure(&settings, &source_dir, source, batch, args.idle_polls).await?);
    }
    let stacks_settings = Settings {
        source: jobify_buildkite::Source::Stacks,
        poll_interval: settings.poll_interval.max(sources::STACKS_MIN_POLL),
        ..settings.clone()
    };
    eprintln!("steady arrivals through the stacks source ...");
    let stacks_dir = dir.path().join("steady-stacks");
    std::fs::create_dir(&stacks_dir).context("cannot create a session directory")?;
    let stacks_latency =
        latency::measure(&stacks_settings, &stacks_dir, args.rate, args.steady_for).await?;

    let figures = report::Figures {
        poll_interval: args.poll_interval,
        concurrency: args.concurrency,
        idle,
        runs,
        latency,
        sources,
        stacks_latency,
        judge: !args.smoke,
    };
    print!("{}", figures.render());
    Ok(())
}

/// What the figures were measured on: build profile, cores, CPU model, memory.
fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name")?.split(':').nth(1))
        .map_or("unknown CPU", str::trim);
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .map_or("unknown", str::trim);
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let profile = if cfg!(debug_assertions) {
        "debug build (figures are not representative)"
    } else {
        "release build"
    };
    format!("jobify-bench: {profile}; {cores} cores, {model}, {memory} memory")
}
