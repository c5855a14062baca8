//! `jobify sim`: both simulators on loopback ports, the files that point `jobify run` at them,
//! optionally a batch of jobs, served until SIGINT or SIGTERM.
//!
//! The point is to drive the real binary over the network exactly as in production, from a
//! second terminal or an external test:
//!
//! ```text
//!   terminal 1: jobify sim --dir /tmp/sim --jobs 20
//!   terminal 2: KUBECONFIG=/tmp/sim/kubeconfig BUILDKITE_API_TOKEN=... jobify run -c /tmp/sim/jobify.toml
//! ```

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use jobify_sim::FaultConfig;

use crate::simenv::{
    ConfigTemplate, SIM_CONFIG, ScheduledSimJob, SimEnv, SimEnvConfig, TokenSource, Workload,
};

/// How often the status line is refreshed (printed only when it changed).
const STATUS_EVERY: Duration = Duration::from_secs(2);

/// `jobify sim` options.
#[derive(Debug, Args)]
pub struct SimArgs {
    /// Directory for kubeconfig, token files and jobify.toml (created if missing). Default: a
    /// new temporary directory, removed on exit.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Schedule this many jobs on queue `kubernetes` (pipelines app, api, web) at start.
    #[arg(long, default_value_t = 0)]
    pub jobs: usize,
    /// How long each scheduled job runs once its pod's agent acquires it.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub run_for: Duration,
    /// Inject faults into this share of requests on both simulators (0.0 to 1.0; each of
    /// server errors, timeouts, GraphQL errors and malformed bodies at this rate).
    #[arg(long, default_value_t = 0.0)]
    pub fault_rate: f64,
    /// Seed of the injected faults.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// How long an injected timeout holds a request.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    pub fault_timeout: Duration,
    /// The metrics and health listener written into jobify.toml's [server]. Default: a free
    /// loopback port.
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Which Buildkite API the written jobify.toml reads: GraphQL (a user API token) or the
    /// Stacks API (only an agent token).
    #[arg(long, value_enum, default_value_t = crate::cmd::demo::SourceArg::Graphql)]
    pub source: crate::cmd::demo::SourceArg,
}

/// Runs the simulators until a signal; the exit code is 0 after a clean shutdown.
pub(crate) async fn execute(args: SimArgs) -> anyhow::Result<ExitCode> {
    if !(0.0..=1.0).contains(&args.fault_rate) {
        anyhow::bail!(
            "--fault-rate must be between 0.0 and 1.0, not {}",
            args.fault_rate
        );
    }
    let shutdown = crate::shutdown::on_signal().context("listening for SIGINT and SIGTERM")?;
    let faults = FaultConfig {
        timeout_delay: args.fault_timeout,
        ..FaultConfig::chaos(args.seed, args.fault_rate)
    };
    let env = SimEnv::start(SimEnvConfig {
        buildkite_faults: faults.clone(),
        kubernetes_faults: FaultConfig {
            seed: args.seed.wrapping_add(1),
            ..faults
        },
        source: args.source.into(),
        ..SimEnvConfig::default()
    })
    .await
    .context("starting the simulators")?;

    let (dir, _temporary) = match &args.dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating the directory {}", dir.display()))?;
            (dir.clone(), None)
        }
        None => {
            let temporary = tempfile::Builder::new()
                .prefix("jobify-sim-")
                .tempdir()
                .context("creating a temporary directory for the simulator's files")?;
            (temporary.path().to_owned(), Some(temporary))
        }
    };
    let listen = match args.listen {
        Some(listen) => listen,
        None => free_loopback_port().context("finding a free port for jobify's listener")?,
    };
    let template = ConfigTemplate::new(SIM_CONFIG).with("listen", listen.to_string());
    let files = env
        .write_files(&dir, &template, TokenSource::Env)
        .context("writing the simulator's files")?;

    match env.stacks() {
        Some(stacks) => println!("Stacks API simulator: {}", stacks.base_url()),
        None => println!("Buildkite simulator:  {}", env.buildkite().graphql_url()),
    }
    println!("Kubernetes simulator: {}", env.kubernetes().url());
    println!("Files in {}:", dir.display());
    println!("  kubeconfig   {}", files.kubeconfig.display());
    println!("  jobify.toml  {}", files.config.display());
    println!();
    println!("Run jobify against the simulators from another terminal:");
    println!();
    println!("  {}", files.run_command("jobify"));
    println!();
    println!("or, from the source tree:");
    println!();
    println!("  {}", files.run_command("cargo run -p jobify --"));
    println!();
    println!("jobify will serve metrics on http://{listen}/metrics. Ctrl-C stops the simulators.");

    let jobs = env.schedule(
        &Workload::on_queue("kubernetes", args.run_for),
        0,
        args.jobs,
    );
    if !jobs.is_empty() {
        println!("Scheduled {} jobs on queue `kubernetes`.", jobs.len());
    }

    let mut last = String::new();
    let mut ticks = tokio::time::interval(STATUS_EVERY);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = ticks.tick() => {
                let line = status(&env, &jobs);
                if line != last {
                    println!("{line}");
                    last = line;
                }
            }
        }
    }
    println!("Stopping the simulators.");
    env.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// One line: the scheduled jobs by Buildkite state, and the Jobs in the cluster.
fn status(env: &SimEnv, jobs: &[ScheduledSimJob]) -> String {
    let mut states: BTreeMap<String, usize> = BTreeMap::new();
    for job in jobs {
        if let Some(view) = env.job_view(job.uuid) {
            *states.entry(view.state.to_lowercase()).or_default() += 1;
        }
    }
    let states = if states.is_empty() {
        "none scheduled by the simulator".to_owned()
    } else {
        states
            .iter()
            .map(|(state, count)| format!("{count} {state}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let stats = env.kubernetes().stats();
    format!(
        "[sim] jobs: {states} | Kubernetes: {} Job creates, {} conflicts, {} deletes, {} pods",
        stats.job_creates, stats.job_create_conflicts, stats.job_deletes, stats.pod_creates
    )
}

/// A loopback port nothing listens on right now.
fn free_loopback_port() -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    listener.local_addr()
}
