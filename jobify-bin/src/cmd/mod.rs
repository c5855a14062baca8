//! The subcommands, one module each.

pub(crate) mod check;
#[cfg(feature = "demo")]
mod demo;
pub(crate) mod plan;
pub(crate) mod run;
#[cfg(feature = "demo")]
mod sim;

use std::path::Path;
use std::process::ExitCode;

use crate::cli::{Cli, Command};

use crate::config::{self, Config};
#[cfg(feature = "demo")]
pub use demo::DemoArgs;
#[cfg(feature = "demo")]
pub use sim::SimArgs;

/// Exit code for a config that does not validate (`jobify check`, and every command that
/// loads the config).
pub const EXIT_CONFIG: u8 = 2;

/// Runs the subcommand `cli` names.
pub async fn execute(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Check => Ok(check::execute(&cli.config)),
        Command::Run => match load(&cli.config) {
            Ok(config) => {
                let shutdown = crate::shutdown::on_signal()
                    .map_err(|err| anyhow::anyhow!("cannot listen for SIGTERM: {err}"))?;
                run::execute(&config, shutdown).await
            }
            Err(code) => Ok(code),
        },
        Command::Plan(args) => match load(&cli.config) {
            Ok(config) => plan::execute(&config, args.output, args.max_pages as usize).await,
            Err(code) => Ok(code),
        },
        #[cfg(feature = "demo")]
        Command::Sim(args) => sim::execute(args).await,
        #[cfg(feature = "demo")]
        Command::Demo(args) => demo::execute(args).await,
    }
}

/// Loads the config for a command that needs it; on problems, prints them and returns the
/// exit code to end with.
fn load(path: &Path) -> Result<Config, ExitCode> {
    config::load(path).map_err(|err| {
        eprintln!("{err}");
        ExitCode::from(EXIT_CONFIG)
    })
}
