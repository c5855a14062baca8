//! `jobify demo`: jobify against its embedded simulators, in one process, over real HTTP.
//! See [`crate::demo`] for the scenario and how outcomes are checked.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, ValueEnum};
use jobify_buildkite::Source;

use crate::demo::{self, DemoOptions};
use crate::simenv::run_jobify;

/// `jobify demo` options.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Give up after this long and report what is missing (exit 1).
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub deadline: Duration,
    /// Where jobify reads Buildkite's jobs: GraphQL (a user API token), or the Stacks API
    /// (only an agent token; the demo then shows the jobs' timeline notifications).
    #[arg(long, value_enum, default_value_t = SourceArg::Graphql)]
    pub source: SourceArg,
}

/// `--source`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SourceArg {
    /// Buildkite's GraphQL API.
    Graphql,
    /// The agent API's Stacks endpoints.
    Stacks,
}

impl From<SourceArg> for Source {
    fn from(source: SourceArg) -> Self {
        match source {
            SourceArg::Graphql => Source::Graphql,
            SourceArg::Stacks => Source::Stacks,
        }
    }
}

/// Runs the demo; exits 0 when every expected outcome happened, 1 otherwise.
pub(crate) async fn execute(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let options = DemoOptions {
        deadline: args.deadline,
        source: args.source.into(),
    };
    let mut out = std::io::stdout();
    let report = demo::run(&options, &mut out, run_jobify).await?;
    demo::write_summary(&mut out, &report)?;
    Ok(if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
