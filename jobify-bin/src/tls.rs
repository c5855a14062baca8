//! The one TLS stack: rustls with the `ring` provider, installed before any client exists
//! (kube and reqwest both build rustls configs from the process-wide default).

/// Installs `ring` as the process-wide rustls provider. Calling it again is harmless.
pub fn install_crypto_provider() {
    // Err means a provider is already installed (a second call, or a test harness): the
    // workspace only ever enables ring, so that provider is ring too.
    let _already_installed = rustls::crypto::ring::default_provider().install_default();
}
