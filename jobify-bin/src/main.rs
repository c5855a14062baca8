//! `jobify`: runs Buildkite CI jobs as Kubernetes Jobs. See the library crate for the parts.

use std::process::ExitCode;

use clap::Parser;
use jobify::cli::Cli;

/// One runtime thread: jobify waits on Buildkite and the Kubernetes API and does little work
/// between answers (about 0.2 ms of CPU per dispatched job), so one thread keeps up with more
/// than the simulators can create; a thread pool only added cross-thread wake-ups (CPU per job
/// went from 0.29 to 0.18 ms) and per-thread allocator arenas (peak RSS tracking 10,000 jobs
/// from 69 to 48 MiB). See docs/performance.md.
#[tokio::main(flavor = "current_thread")]
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
