//! What a pod that has not started waits for, in a sentence for the job's timeline: a node,
//! its containers (images being pulled), its init containers.

use super::fail_fast::PodObservation;

/// What `pod` waits for; `None` once it started, or when nothing says yet.
pub(crate) fn waiting_detail(pod: &PodObservation) -> Option<String> {
    if pod.started {
        return None;
    }
    if let Some(message) = &pod.unschedulable {
        return Some(format!("waiting for a node: {message}"));
    }
    let first = pod.waiting.first()?;
    let detail = match first.reason.as_str() {
        "ContainerCreating" => format!(
            "creating container `{}` (pulling image `{}` if the node does not have it)",
            first.container, first.image
        ),
        "PodInitializing" => "init containers are running".to_owned(),
        "ErrImagePull" | "ImagePullBackOff" => format!(
            "pulling image `{}` of container `{}` failed; the kubelet retries",
            first.image, first.container
        ),
        _ => format!("container `{}`: {first}", first.container),
    };
    Some(detail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watch::fail_fast::ContainerWaiting;

    fn pending(reason: &str) -> PodObservation {
        PodObservation {
            name: "p".to_owned(),
            started: false,
            unschedulable: None,
            waiting: vec![ContainerWaiting {
                container: "container-0".to_owned(),
                image: "rust:1.95".to_owned(),
                reason: reason.to_owned(),
                message: String::new(),
            }],
            init_failures: Vec::new(),
            failed_before_start: None,
            disrupted: None,
        }
    }

    #[test]
    fn each_kind_of_wait_reads_as_a_sentence() {
        assert_eq!(
            waiting_detail(&pending("ContainerCreating")).as_deref(),
            Some(
                "creating container `container-0` (pulling image `rust:1.95` if the node does not have it)"
            )
        );
        assert!(
            waiting_detail(&pending("ImagePullBackOff"))
                .is_some_and(|d| d.contains("pulling image `rust:1.95`") && d.contains("retries"))
        );
        let unschedulable = PodObservation {
            unschedulable: Some("0/3 nodes are available: 3 Insufficient cpu.".to_owned()),
            ..pending("ContainerCreating")
        };
        assert_eq!(
            waiting_detail(&unschedulable).as_deref(),
            Some("waiting for a node: 0/3 nodes are available: 3 Insufficient cpu.")
        );
        let started = PodObservation {
            started: true,
            ..pending("ContainerCreating")
        };
        assert_eq!(waiting_detail(&started), None);
        let nothing = PodObservation {
            waiting: Vec::new(),
            ..pending("x")
        };
        assert_eq!(waiting_detail(&nothing), None);
    }
}
