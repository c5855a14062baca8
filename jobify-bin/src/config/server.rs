//! `[server]`: where `/metrics`, `/healthz` and `/readyz` listen.

use std::net::SocketAddr;

use serde::Deserialize;

/// `[server]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address of the HTTP listener for metrics and health, e.g. `0.0.0.0:8080`.
    pub listen: SocketAddr,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
        }
    }
}
