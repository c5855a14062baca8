//! The Kubernetes simulator under a paused tokio clock: its timers and timestamps follow
//! tokio time, so minutes of simulated cluster time pass in milliseconds.
#![allow(clippy::unwrap_used)]

mod kubernetes_support;

use std::time::Duration;

use jobify_sim::kubernetes::KubeSimConfig;
use k8s_openapi::api::batch::v1::Job;
use kube::Api;
use kube::api::PostParams;
use kubernetes_support::{NS, job, start};

#[tokio::test(start_paused = true)]
async fn active_deadline_of_minutes_passes_on_a_paused_clock() {
    let (sim, client) = start(KubeSimConfig::default()).await;
    let mut stuck = job("stuck", "busybox");
    let spec = stuck.spec.as_mut().unwrap();
    spec.active_deadline_seconds = Some(600);
    spec.template.spec.as_mut().unwrap().node_selector =
        Some([("pool".to_string(), "none".to_string())].into());
    let created = Api::<Job>::namespaced(client, NS)
        .create(&PostParams::default(), &stuck)
        .await
        .unwrap();
    let created_at = created.metadata.creation_timestamp.unwrap().0;
    let failed = loop {
        let failed = sim.jobs(NS).into_iter().find(|j| {
            j.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Failed"))
        });
        if let Some(failed) = failed {
            break failed;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let condition = failed.status.unwrap().conditions.unwrap();
    let failed_at = condition.iter().find(|c| c.type_ == "Failed").unwrap();
    assert_eq!(failed_at.reason.as_deref(), Some("DeadlineExceeded"));
    // Timestamps follow the paused clock: ten simulated minutes passed.
    let elapsed = failed_at
        .last_transition_time
        .as_ref()
        .unwrap()
        .0
        .duration_since(created_at);
    assert!(
        elapsed >= jiff::SignedDuration::from_secs(599),
        "{elapsed:?}"
    );
    sim.shutdown().await;
}
