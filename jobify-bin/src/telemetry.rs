//! Logging: `tracing-subscriber` with `RUST_LOG` filtering, as text or JSON lines on stderr.

use std::io::IsTerminal;

use clap::ValueEnum;
use tracing_subscriber::EnvFilter;

/// The log line format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Where `kube::Client` logs each failed HTTP request, at ERROR, before jobify has decided
/// anything: a 500 it retries, a 404 it expects, a watch the server ended. jobify logs what
/// it does about each (WARN for a retried failure, with the attempt; ERROR only for what an
/// operator must act on), so this target is off unless the filter names `kube_client`.
const KUBE_CLIENT_REQUEST_LOG: &str = "kube_client::client::builder=off";

/// Installs the global subscriber. `RUST_LOG` filters; without it, `default_filter` does
/// (`info` for the service, `warn` for commands that print their own progress).
pub fn init(
    format: LogFormat,
    default_filter: &str,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let filter = filter(std::env::var("RUST_LOG").ok().as_deref(), default_filter)?;
    // Colour codes only for a person at a terminal: log collectors read a pipe or a file.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
    }
}

/// The filter of `rust_log` (the `RUST_LOG` value), or of `default_filter` when it is unset
/// or empty, with [`KUBE_CLIENT_REQUEST_LOG`] added unless the directives name `kube_client`
/// themselves.
fn filter(
    rust_log: Option<&str>,
    default_filter: &str,
) -> Result<EnvFilter, tracing_subscriber::filter::ParseError> {
    let directives = rust_log
        .map(str::trim)
        .filter(|value| !value.is_empty())
        .unwrap_or(default_filter);
    if directives.contains("kube_client") {
        EnvFilter::try_new(directives)
    } else {
        EnvFilter::try_new(format!("{directives},{KUBE_CLIENT_REQUEST_LOG}"))
    }
}

#[cfg(test)]
mod tests {
    use tracing::level_filters::LevelFilter;
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    /// Whether an event at `level` from `target` passes `filter`.
    fn passes(filter: EnvFilter, target: &'static str, level: tracing::Level) -> bool {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, Ordering};

        struct Seen(Arc<AtomicBool>);
        impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Seen {
            fn on_event(
                &self,
                _: &tracing::Event<'_>,
                _: tracing_subscriber::layer::Context<'_, S>,
            ) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let seen = Arc::new(AtomicBool::new(false));
        let subscriber = tracing_subscriber::registry()
            .with(filter)
            .with(Seen(seen.clone()));
        tracing::subscriber::with_default(subscriber, || match (target, level) {
            ("kube_client::client::builder", tracing::Level::ERROR) => {
                tracing::error!(target: "kube_client::client::builder", "failed with status 500")
            }
            ("jobify_k8s::launch", tracing::Level::WARN) => {
                tracing::warn!(target: "jobify_k8s::launch", "creating the Job failed; retrying")
            }
            ("jobify_k8s::launch", tracing::Level::INFO) => {
                tracing::info!(target: "jobify_k8s::launch", "created")
            }
            other => panic!("no event for {other:?} in this test"),
        });
        seen.load(Ordering::SeqCst)
    }

    #[test]
    fn kube_clients_request_errors_are_off_and_jobifys_own_lines_stay() {
        for rust_log in [None, Some(""), Some("info"), Some("debug,hyper=warn")] {
            let quiet = || filter(rust_log, "info").expect("valid filter");
            assert!(
                !passes(
                    quiet(),
                    "kube_client::client::builder",
                    tracing::Level::ERROR
                ),
                "{rust_log:?}"
            );
            assert!(
                passes(quiet(), "jobify_k8s::launch", tracing::Level::WARN),
                "{rust_log:?}"
            );
        }
        assert!(!passes(
            filter(None, "warn").expect("valid filter"),
            "jobify_k8s::launch",
            tracing::Level::INFO
        ));
    }

    #[test]
    fn a_filter_that_names_kube_client_gets_its_lines() {
        let filter = filter(Some("info,kube_client=debug"), "info").expect("valid filter");
        assert_eq!(filter.max_level_hint(), Some(LevelFilter::DEBUG));
        assert!(passes(
            filter,
            "kube_client::client::builder",
            tracing::Level::ERROR
        ));
    }

    #[test]
    fn a_malformed_filter_is_an_error() {
        assert!(filter(Some("info,jobify=loud"), "info").is_err());
    }
}
