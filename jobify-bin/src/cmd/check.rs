//! `jobify check`: validates the config file and says what is wrong, all at once.

use std::path::Path;
use std::process::ExitCode;

use crate::config;

/// Loads and validates the config at `path`; prints the problems to stderr and returns
/// [`super::EXIT_CONFIG`] if there are any.
pub(crate) fn execute(path: &Path) -> ExitCode {
    match config::load(path) {
        Ok(config) => {
            println!(
                "{}: ok (organization `{}`)",
                path.display(),
                config.organization
            );
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("{err}");
            ExitCode::from(super::EXIT_CONFIG)
        }
    }
}
