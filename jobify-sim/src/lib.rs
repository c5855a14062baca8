//! In-process simulators of the Buildkite and Kubernetes APIs, served over real HTTP on
//! loopback, so that jobify's real `reqwest` and `kube::Client` stacks can be exercised end to
//! end without an organization or a cluster: by the tests, the benchmarks and `jobify demo`.
//!
//! ```text
//!   jobify ──GraphQL/REST──▶ buildkite::BuildkiteSim ◀──acquire/finish──┐
//!      │                                                               │ (AgentApi)
//!      └──────kube API─────▶ kubernetes::KubeSim ── simulated kubelet ──┘
//! ```
//!
//! The two simulators meet at [`AgentApi`]: a simulated pod's `buildkite-agent start
//! --acquire-job <uuid>` acquires its job in the Buildkite simulator, runs it, and reports
//! the exit status, so both sides stay consistent.
//!
//! Fidelity matters more than breadth: where a simulator and the real API would differ, the
//! simulator is wrong.
#![warn(missing_docs)]

pub mod agent;
pub mod buildkite;
pub mod fault;
pub mod kubernetes;
pub mod stacks;

pub use agent::{AcquireError, AgentApi, JobScript};
pub use fault::{Fault, FaultConfig, Faults};
pub use kubernetes::{KubeSim, KubeSimConfig};
