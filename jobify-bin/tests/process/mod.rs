//! The real `jobify` binary as a child process, started as the tests need it: nothing
//! inherited from the developer's shell decides what it reads (no `JOBIFY_CONFIG`,
//! `KUBECONFIG` or Buildkite tokens unless a test sets them).
#![allow(dead_code)]

use std::process::{Child, Command};

/// `jobify`, with `JOBIFY_CONFIG`, `KUBECONFIG` and both Buildkite tokens removed from its
/// environment and `RUST_LOG=warn`; a test sets what it needs on top.
pub(crate) fn jobify() -> Command {
    let mut command = Command::new(assert_cmd::cargo::cargo_bin!("jobify"));
    command
        .env("RUST_LOG", "warn")
        .env_remove("JOBIFY_CONFIG")
        .env_remove("KUBECONFIG")
        .env_remove("BUILDKITE_API_TOKEN")
        .env_remove("BUILDKITE_AGENT_TOKEN");
    command
}

/// Sends SIGTERM, as Kubernetes does to stop a pod.
pub(crate) fn terminate(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill -TERM {}", child.id());
}
