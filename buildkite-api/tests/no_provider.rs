//! Building a client before any rustls crypto provider is installed is an error, not a
//! panic inside reqwest. (Its own test binary: nothing here installs a provider.)

use buildkite_api::{Client, Error};

#[test]
fn building_without_a_crypto_provider_returns_a_typed_error() {
    let result = Client::builder()
        .graphql_url("http://127.0.0.1:9/v1".parse().expect("url"))
        .build();

    match result {
        Err(Error::NoCryptoProvider) => {}
        other => panic!("expected NoCryptoProvider, got {other:?}"),
    }
    let message = Error::NoCryptoProvider.to_string();
    assert!(message.contains("install_default"), "{message}");
}
