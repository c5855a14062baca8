//! Shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

pub mod cluster;
pub mod fixtures;
pub mod proxy;
