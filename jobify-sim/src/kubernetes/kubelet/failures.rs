//! The kubelet's (and scheduler's) failure scenarios: pods that never start. Each loops,
//! repeating its status and events the way the real components retry, until the pod is
//! deleted.

use serde_json::{Value, json};

use super::super::meta;
use super::super::pod_status::{Stage, full_reference};
use super::super::scenario;
use super::Kubelet;

impl Kubelet {
    pub(super) async fn unschedulable(&self) {
        let nodes = self.cluster.config.scenarios.nodes.max(1);
        let message = format!(
            "0/{nodes} nodes are available: {nodes} node(s) didn't match Pod's node affinity/selector. preemption: 0/{nodes} nodes are available: {nodes} Preemption is not helpful for scheduling."
        );
        let now = meta::now();
        let cond_msg = message.clone();
        self.update(|p| {
            p["status"] = json!({
                "phase": "Pending",
                "qosClass": p["status"]["qosClass"].as_str().unwrap_or("BestEffort"),
                "conditions": [{
                    "type": "PodScheduled",
                    "status": "False",
                    "lastProbeTime": null,
                    "lastTransitionTime": now,
                    "reason": "Unschedulable",
                    "message": cond_msg,
                }],
            });
        });
        loop {
            if let Some(pod) = self.current() {
                self.cluster.record_event(
                    &pod,
                    "Warning",
                    "FailedScheduling",
                    &message,
                    "default-scheduler",
                    None,
                    None,
                );
            }
            // The scheduler retries with backoff; each retry repeats the event.
            if !self.sleep(self.timings().image_pull_backoff * 10).await {
                return;
            }
        }
    }

    pub(super) async fn invalid_image(&self, containers: &[(String, String)]) {
        let bad: Vec<&(String, String)> = containers
            .iter()
            .filter(|(_, i)| !scenario::is_valid_reference(i))
            .collect();
        let bad = if bad.is_empty() {
            containers.iter().take(1).collect()
        } else {
            bad
        };
        let Some((_, image)) = bad.first() else {
            return;
        };
        let message = format!(
            "Failed to apply default image tag \"{image}\": couldn't parse image name \"{image}\": {}",
            scenario::reference_error(image)
        );
        self.set_stage(&Stage::Waiting {
            affected: bad.iter().map(|(c, _)| c.clone()).collect(),
            reason: "InvalidImageName".to_string(),
            message: message.clone(),
        });
        loop {
            for (c, _) in &bad {
                self.event("Warning", "InspectFailed", &message, Some(c));
                self.event("Warning", "Failed", "Error: InvalidImageName", Some(c));
            }
            if !self.sleep(self.timings().image_pull_backoff).await {
                return;
            }
        }
    }

    pub(super) async fn pull_failure(&self, containers: &[(String, String)]) {
        let marker = &self.cluster.config.scenarios.missing_image_marker;
        let mut bad: Vec<&(String, String)> = containers
            .iter()
            .filter(|(_, i)| i.contains(marker.as_str()))
            .collect();
        if bad.is_empty() {
            bad = containers.iter().take(1).collect();
        }
        let affected: Vec<String> = bad.iter().map(|(c, _)| c.clone()).collect();
        loop {
            for (c, image) in &bad {
                self.event(
                    "Normal",
                    "Pulling",
                    &format!("Pulling image \"{image}\""),
                    Some(c),
                );
            }
            if !self.sleep(self.timings().pull_delay).await {
                return;
            }
            let Some((_, image)) = bad.first() else {
                return;
            };
            let full = full_reference(image);
            let error = format!(
                "rpc error: code = NotFound desc = failed to pull and unpack image \"{full}\": failed to resolve reference \"{full}\": {full}: not found"
            );
            self.set_stage(&Stage::Waiting {
                affected: affected.clone(),
                reason: "ErrImagePull".to_string(),
                message: error.clone(),
            });
            for (c, image) in &bad {
                self.event(
                    "Warning",
                    "Failed",
                    &format!("Failed to pull image \"{image}\": {error}"),
                    Some(c),
                );
                self.event("Warning", "Failed", "Error: ErrImagePull", Some(c));
            }
            if !self.sleep(self.timings().image_pull_backoff).await {
                return;
            }
            self.set_stage(&Stage::Waiting {
                affected: affected.clone(),
                reason: "ImagePullBackOff".to_string(),
                // Since Kubernetes 1.32 the back-off message carries the last pull error.
                message: format!("Back-off pulling image \"{image}\": ErrImagePull: {error}"),
            });
            for (c, image) in &bad {
                self.event(
                    "Normal",
                    "BackOff",
                    &format!("Back-off pulling image \"{image}\""),
                    Some(c),
                );
                self.event("Warning", "Failed", "Error: ImagePullBackOff", Some(c));
            }
            if !self.sleep(self.timings().image_pull_backoff).await {
                return;
            }
        }
    }

    pub(super) async fn config_error(&self, pod: &Value, message: &str) {
        let affected: Vec<String> = pod["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| {
                let text = c.to_string();
                self.cluster
                    .config
                    .scenarios
                    .missing_secrets
                    .iter()
                    .chain(&self.cluster.config.scenarios.missing_config_maps)
                    .any(|name| text.contains(&format!("\"{name}\"")))
            })
            .filter_map(|c| c["name"].as_str().map(str::to_string))
            .collect();
        let affected = if affected.is_empty() {
            pod["spec"]["containers"][0]["name"]
                .as_str()
                .map(|c| vec![c.to_string()])
                .unwrap_or_default()
        } else {
            affected
        };
        self.set_stage(&Stage::Waiting {
            affected: affected.clone(),
            reason: "CreateContainerConfigError".to_string(),
            message: message.to_string(),
        });
        loop {
            for c in &affected {
                self.event("Warning", "Failed", &format!("Error: {message}"), Some(c));
            }
            if !self.sleep(self.timings().image_pull_backoff).await {
                return;
            }
        }
    }
}
