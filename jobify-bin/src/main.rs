//! `jobify`: runs Buildkite CI jobs as Kubernetes Jobs. See the library crate for the parts.

use std::process::ExitCode;

use clap::Parser;
use jobify::cli::Cli;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(err) = jobify::telemetry::init(cli.log_format, cli.command.default_log_filter()) {
        eprintln!("error: cannot set up logging: {err}");
        return ExitCode::FAILURE;
    }
    jobify::tls::install_crypto_provider();
    match jobify::cmd::execute(cli).await {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {}", jobify::report::error_chain(&err));
            ExitCode::FAILURE
        }
    }
}
