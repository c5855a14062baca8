//! Shutdown as an input: a [`CancellationToken`] cancelled on SIGTERM or SIGINT, handed to
//! every loop, which stops what it is doing and returns.

use tokio_util::sync::CancellationToken;

/// A token cancelled on the first SIGTERM or SIGINT (Ctrl-C). A second signal is left to
/// the default handler, so a stuck shutdown can still be interrupted.
pub fn on_signal() -> std::io::Result<CancellationToken> {
    let token = CancellationToken::new();
    let terminate = terminate_signal()?;
    let cancel = token.clone();
    tokio::spawn(async move {
        tokio::select! {
            () = terminate => tracing::info!("SIGTERM received: shutting down"),
            result = tokio::signal::ctrl_c() => match result {
                Ok(()) => tracing::info!("SIGINT received: shutting down"),
                Err(err) => tracing::warn!(error = %err, "cannot listen for SIGINT"),
            },
        }
        cancel.cancel();
    });
    Ok(token)
}

#[cfg(unix)]
fn terminate_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    let mut signal = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    Ok(async move {
        signal.recv().await;
    })
}

#[cfg(not(unix))]
fn terminate_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    Ok(std::future::pending())
}
