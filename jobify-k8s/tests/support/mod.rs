//! Shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

pub mod cluster;
pub mod compat;
pub mod corpus;
pub mod fixtures;
pub mod logs;
pub mod proxy;
pub mod real;
pub mod requests;
pub mod secrets;
