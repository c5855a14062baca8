//! The `jobify` binary as a library, so that integration tests and the demo can call into it.
//!
//! `main.rs` parses the [`cli::Cli`], installs logging ([`telemetry`]) and the TLS provider
//! ([`tls`]), and hands over to [`cmd::execute`]. The config file is [`config`]; what runs
//! beside the scheduler is the HTTP listener ([`server`]) with its [`metrics`] and
//! [`health`], and [`shutdown`] turns signals into a cancellation token every loop watches.
#![warn(missing_docs)]

pub mod adapters;
pub mod cli;
pub mod clients;
pub mod cmd;
pub mod config;
pub mod demo;
pub mod health;
pub mod metrics;
pub mod observer;
pub mod report;
pub mod server;
pub mod shutdown;
pub mod simenv;
pub mod telemetry;
pub mod tls;
