//! The subcommands, one module each.

pub mod check;

use std::process::ExitCode;

use crate::cli::{Cli, Command};

/// Exit code for a config that does not validate (`jobify check`, and every command that
/// loads the config).
pub const EXIT_CONFIG: u8 = 2;

/// Runs the subcommand `cli` names.
pub async fn execute(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Check => Ok(check::execute(&cli.config)),
    }
}
