//! Shutdown as an input: a [`CancellationToken`] cancelled on SIGTERM or SIGINT, handed to
//! every loop, which stops what it is doing and returns.

use futures::stream::{BoxStream, StreamExt};
use tokio_util::sync::CancellationToken;

/// Exit status when a second signal cuts a shutdown short (128 + SIGINT, as shells report).
const EXIT_INTERRUPTED: i32 = 130;

/// A token cancelled on the first SIGTERM or SIGINT (Ctrl-C). A second signal, while the
/// shutdown is still under way, ends the process at once, so a stuck shutdown can always be
/// interrupted. (Once tokio listens for a signal, the default handler never runs again, so
/// this has to be done here.)
pub(crate) fn on_signal() -> std::io::Result<CancellationToken> {
    let token = CancellationToken::new();
    let signals = signals()?;
    tokio::spawn(follow(signals, token.clone(), || {
        std::process::exit(EXIT_INTERRUPTED)
    }));
    Ok(token)
}

/// The first of `signals` cancels `token`; a second one calls `exit`.
async fn follow(
    mut signals: BoxStream<'static, &'static str>,
    token: CancellationToken,
    exit: impl FnOnce(),
) {
    let Some(signal) = signals.next().await else {
        return;
    };
    tracing::info!("{signal} received: shutting down");
    token.cancel();
    if let Some(signal) = signals.next().await {
        tracing::warn!("{signal} received again: exiting without finishing the shutdown");
        exit();
    }
}

#[cfg(unix)]
fn signals() -> std::io::Result<BoxStream<'static, &'static str>> {
    use tokio::signal::unix::{SignalKind, signal};
    let named = |kind: SignalKind, name: &'static str| -> std::io::Result<_> {
        let listener = signal(kind)?;
        Ok(futures::stream::unfold(
            listener,
            move |mut listener| async move { listener.recv().await.map(|()| (name, listener)) },
        ))
    };
    let terminate = named(SignalKind::terminate(), "SIGTERM")?;
    let interrupt = named(SignalKind::interrupt(), "SIGINT")?;
    Ok(futures::stream::select(terminate, interrupt).boxed())
}

#[cfg(not(unix))]
fn signals() -> std::io::Result<BoxStream<'static, &'static str>> {
    Ok(futures::stream::unfold((), |()| async {
        tokio::signal::ctrl_c().await.ok().map(|()| ("Ctrl-C", ()))
    })
    .boxed())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use tokio::sync::mpsc;

    use super::*;

    fn channel() -> (
        mpsc::UnboundedSender<&'static str>,
        BoxStream<'static, &'static str>,
    ) {
        let (send, receive) = mpsc::unbounded_channel();
        let stream = futures::stream::unfold(receive, |mut receive| async move {
            receive.recv().await.map(|signal| (signal, receive))
        });
        (send, stream.boxed())
    }

    #[tokio::test]
    async fn the_first_signal_shuts_down_and_a_second_exits_at_once() {
        let (send, signals) = channel();
        let token = CancellationToken::new();
        let exited = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&exited);
        let task = tokio::spawn(follow(signals, token.clone(), move || {
            flag.store(true, Ordering::SeqCst);
        }));
        send.send("SIGTERM").expect("send");
        token.cancelled().await;
        assert!(!exited.load(Ordering::SeqCst), "one signal only shuts down");
        send.send("SIGINT").expect("send");
        task.await.expect("follow ends");
        assert!(exited.load(Ordering::SeqCst), "the second signal exits");
    }
}
