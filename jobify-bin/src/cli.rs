//! The command line (clap derive).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::telemetry::LogFormat;

/// Runs Buildkite CI jobs as Kubernetes Jobs.
#[derive(Debug, Parser)]
#[command(name = "jobify", version, about, long_about = None)]
pub struct Cli {
    /// The config file.
    #[arg(
        short,
        long,
        env = "JOBIFY_CONFIG",
        global = true,
        default_value = "/etc/jobify/jobify.toml"
    )]
    pub config: PathBuf,

    /// Log line format (filter with RUST_LOG, e.g. `RUST_LOG=jobify=debug`).
    #[arg(long, value_enum, global = true, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Runs the controller: polls Buildkite, launches Kubernetes Jobs, serves metrics and
    /// health, until SIGTERM or SIGINT.
    Run,
    /// Polls Buildkite once and prints what the policy would do with each scheduled job,
    /// without touching the cluster.
    Plan(PlanArgs),
    /// Validates the config file: exits 0, or 2 and prints every problem with its line.
    Check,
    /// Starts the Buildkite and Kubernetes simulators, writes a kubeconfig and a jobify.toml
    /// pointing at them, prints how to `jobify run` against them, and serves until Ctrl-C.
    #[cfg(feature = "demo")]
    Sim(crate::cmd::SimArgs),
    /// Runs jobify against its embedded simulators with a scenario of about fifty jobs,
    /// shows progress and a summary, and exits 0 when every expected outcome happened.
    #[cfg(feature = "demo")]
    Demo(crate::cmd::DemoArgs),
}

impl Command {
    /// The log filter when `RUST_LOG` is unset: the service logs at `info`; `demo` and `sim`
    /// print their own progress, so jobify's and the simulators' logs would only bury it.
    pub fn default_log_filter(&self) -> &'static str {
        match self {
            #[cfg(feature = "demo")]
            Command::Demo(_) | Command::Sim(_) => "warn",
            Command::Run | Command::Plan(_) | Command::Check => "info",
        }
    }
}

/// `jobify plan` options.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// What to print: a table of decisions, or the Job manifests that would be created.
    #[arg(short, long, value_enum, default_value_t = PlanOutput::Table)]
    pub output: PlanOutput,
    /// The most pages of scheduled jobs to read (oldest first); the newest beyond are not
    /// shown.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_pages: u32,
}

/// `jobify plan -o`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PlanOutput {
    /// One row per scheduled job: decision and reason.
    Table,
    /// The Job manifests, as a YAML stream.
    Yaml,
    /// The Job manifests, as a JSON `v1/List`.
    Json,
}
