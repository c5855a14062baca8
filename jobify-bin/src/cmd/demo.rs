//! `jobify demo`: jobify against its embedded simulators, in one process, over real HTTP.
//! See [`crate::demo`] for the scenario and how outcomes are checked.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::cmd::run::{Clients, run};
use crate::config::Config;
use crate::demo::{self, DemoOptions};

/// `jobify demo` options.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Give up after this long and report what is missing (exit 1).
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub deadline: Duration,
}

/// Runs the demo; exits 0 when every expected outcome happened, 1 otherwise.
pub async fn execute(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let options = DemoOptions {
        deadline: args.deadline,
    };
    let mut out = std::io::stdout();
    let report = demo::run(&options, &mut out, start_jobify).await?;
    demo::write_summary(&mut out, &report)?;
    Ok(if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// jobify's `run` code path, with the Kubernetes client the demo hands in and the Buildkite
/// client built from the config, as `jobify run` builds it.
pub async fn start_jobify(
    config: Config,
    kube: kube::Client,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let (buildkite, has_agent_token) = crate::clients::buildkite(&config)?;
    let listener = TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.server.listen))?;
    let clients = Clients {
        buildkite,
        has_agent_token,
        kube,
    };
    run(&config, clients, listener, shutdown).await
}
