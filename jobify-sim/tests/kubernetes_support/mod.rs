//! Shared fixtures of the Kubernetes simulator tests (included with `mod` by each file).
#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use jobify_sim::kubernetes::{KubeSim, KubeSimConfig};
use k8s_openapi::api::batch::v1::Job;
use kube::Client;
use serde_json::json;

pub const NS: &str = "ci";

/// A started simulator and a real `kube::Client` talking HTTP to it.
pub async fn start(config: KubeSimConfig) -> (KubeSim, Client) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sim = KubeSim::start(config).await.expect("sim starts");
    let url = sim.url().parse().expect("url parses");
    let client = Client::try_from(kube::Config::new(url)).expect("client builds");
    (sim, client)
}

/// A one-container Job running `image`, with `labels` on the pod template.
pub fn job(name: &str, image: &str) -> Job {
    serde_json::from_value(json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": {"app": "ci"}},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "agent", "image": image}]
                }
            }
        }
    }))
    .expect("job fixture decodes")
}

/// Polls `check` until it returns `Some`, for at most 10 seconds.
pub async fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(t) = check() {
            return t;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
