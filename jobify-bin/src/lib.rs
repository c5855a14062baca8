//! The `jobify` binary as a library, so that integration tests and the tools can call into it.
//!
//! `main.rs` parses the [`cli::Cli`], installs logging ([`telemetry`]) and the TLS provider
//! ([`tls`]), and hands over to [`cmd::execute`]. The config file is [`config`]; what runs
//! beside the scheduler is the HTTP listener ([`server`]) with its [`metrics`] and
//! [`health`]. The Buildkite and Kubernetes backends are the `jobify-buildkite` and
//! `jobify-k8s` crates; the binary builds their clients and wires them to `jobify-core`.
//!
//! The `demo` feature (off in the product) adds the `demo` and `sim` subcommands and
//! `simenv`, the simulators wired together that they, the end-to-end tests and
//! `jobify-bench` start from.
#![warn(missing_docs)]

mod adapters;
pub mod cli;
mod clients;
pub mod cmd;
pub mod config;
#[cfg(feature = "demo")]
mod demo;
pub mod health;
pub mod metrics;
mod observer;
pub mod report;
pub mod server;
mod shutdown;
#[cfg(feature = "demo")]
pub mod simenv;
mod source;
pub mod telemetry;
pub mod tls;
