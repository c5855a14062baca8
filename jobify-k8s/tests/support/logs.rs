//! jobify's own log, captured: where a test sees what jobify reports only by logging (a
//! watcher that retries on 403 or 410, an events listing that failed).

use std::io;
use std::sync::{Arc, Mutex};

use tracing::Level;
use tracing::subscriber::DefaultGuard;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;

/// The lines `jobify_k8s` logged (debug and above) since [`Logs::capture`].
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    /// Captures `jobify_k8s`'s log on this thread until the guard drops. A test's runtime
    /// must be the current-thread one (`#[tokio::test]`'s default): the tasks it spawns are
    /// then polled, and log, on this thread.
    pub fn capture() -> (Logs, DefaultGuard) {
        let logs = Logs::default();
        let sink = logs.clone();
        let layer = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_target(true)
            .with_writer(move || sink.clone());
        let subscriber = tracing_subscriber::registry()
            .with(layer)
            .with(Targets::new().with_target("jobify_k8s", Level::DEBUG));
        (logs, tracing::subscriber::set_default(subscriber))
    }

    /// Every line so far.
    pub fn lines(&self) -> Vec<String> {
        let bytes = self.0.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// The lines containing every one of `needles`.
    pub fn matching(&self, needles: &[&str]) -> Vec<String> {
        self.lines()
            .into_iter()
            .filter(|line| needles.iter().all(|n| line.contains(n)))
            .collect()
    }
}

impl io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
