//! The command line (clap derive).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

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
    /// Validates the config file: exits 0, or 2 and prints every problem with its line.
    Check,
}
