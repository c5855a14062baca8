//! What a kubelet reports for a pod: its whole `status` (phase, conditions, container
//! statuses) for the stage its containers are in.

use std::time::Duration;

use serde_json::{Value, json};

use super::meta;

/// Where a pod's containers are.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Stage {
    /// Scheduled, containers being created.
    Creating,
    /// Some containers cannot start (`reason`); the rest are still being created.
    Waiting {
        affected: Vec<String>,
        reason: String,
        message: String,
    },
    /// All containers running since `started_at`.
    Running { started_at: String },
    /// The main container failed and waits to restart (`restartPolicy: OnFailure`); the
    /// pod stays `Running`.
    CrashLoopBackOff { main: String, message: String },
    /// The main container exited; `killed` containers were stopped (SIGTERM, exit 143).
    Terminated {
        started_at: String,
        finished_at: String,
        main: String,
        exit_code: i32,
        reason: String,
        killed: Vec<String>,
    },
    /// The main container exited, but the `lingering` containers keep running: the pod
    /// stays `Running` until it is deleted.
    MainExited {
        started_at: String,
        finished_at: String,
        main: String,
        exit_code: i32,
        reason: String,
        lingering: Vec<String>,
    },
    /// The init container `container` exited with `exit_code` (`restartPolicy: Never`): the
    /// pod failed before its containers were created.
    InitFailed {
        container: String,
        exit_code: i32,
        message: String,
    },
}

/// Restarts of the main container (`restartPolicy: OnFailure`).
#[derive(Clone, Debug, Default)]
pub(crate) struct Restarts {
    pub(crate) container: String,
    pub(crate) count: i64,
    /// `lastState` of the restarted container.
    pub(crate) last: Value,
}

/// `busybox` -> `docker.io/library/busybox:latest`, as containerd names it in errors.
pub(crate) fn full_reference(image: &str) -> String {
    let first = image.split('/').next().unwrap_or_default();
    let has_domain =
        image.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let mut full = if has_domain {
        image.to_string()
    } else if image.contains('/') {
        format!("docker.io/{image}")
    } else {
        format!("docker.io/library/{image}")
    };
    let last = full.rsplit('/').next().unwrap_or_default();
    if !last.contains(':') && !full.contains('@') {
        full.push_str(":latest");
    }
    full
}

/// Go's `time.Duration` formatting for sub-minute durations (`1.5s`, `20ms`).
pub(crate) fn format_go_duration(d: Duration) -> String {
    if d.as_secs() >= 1 {
        format!("{}s", d.as_secs_f64())
    } else {
        format!("{}ms", d.as_millis())
    }
}

fn condition(
    kind: &str,
    ok: bool,
    reason: Option<&str>,
    message: Option<&str>,
    at: &Value,
) -> Value {
    let mut c = json!({
        "type": kind,
        "status": if ok { "True" } else { "False" },
        "lastProbeTime": null,
        "lastTransitionTime": at,
    });
    if let Some(r) = reason {
        c["reason"] = json!(r);
    }
    if let Some(m) = message {
        c["message"] = json!(m);
    }
    c
}

pub(crate) fn container_id(pod_uid: &str, container: &str) -> String {
    format!(
        "containerd://{}",
        meta::stable_hex(&format!("{pod_uid}/{container}"), 64)
    )
}

/// The whole pod status for `stage`, keeping transition times of unchanged conditions.
pub(crate) fn pod_status(
    pod: &Value,
    stage: &Stage,
    (host_ip, pod_ip): (&str, &str),
    restarts: &Restarts,
) -> Value {
    let now = json!(meta::now());
    let old_conditions = pod["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let keep_time = |kind: &str, status: &str| -> Value {
        old_conditions
            .iter()
            .find(|c| c["type"] == kind && c["status"] == status)
            .map_or_else(|| now.clone(), |c| c["lastTransitionTime"].clone())
    };
    let containers: Vec<&Value> = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    let names: Vec<&str> = containers
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    let unready = format!("containers with unready status: [{}]", names.join(" "));
    let (phase, sandbox, ready, ready_reason) = match stage {
        Stage::Creating | Stage::Waiting { .. } => {
            ("Pending", true, false, Some("ContainersNotReady"))
        }
        Stage::Running { .. } => ("Running", true, true, None),
        Stage::CrashLoopBackOff { .. } => ("Running", true, false, Some("ContainersNotReady")),
        Stage::Terminated {
            exit_code: 0,
            killed,
            ..
        } if killed.is_empty() => ("Succeeded", false, false, Some("PodCompleted")),
        Stage::Terminated { .. } | Stage::InitFailed { .. } => {
            ("Failed", false, false, Some("ContainersNotReady"))
        }
        Stage::MainExited { .. } => ("Running", true, false, Some("ContainersNotReady")),
    };
    let initialized = !matches!(stage, Stage::InitFailed { .. });
    let ready_msg = (ready_reason == Some("ContainersNotReady")).then_some(unready.as_str());
    let flag = |b: bool| if b { "True" } else { "False" };
    let conditions = vec![
        condition(
            "PodReadyToStartContainers",
            sandbox,
            None,
            None,
            &keep_time("PodReadyToStartContainers", flag(sandbox)),
        ),
        condition(
            "Initialized",
            initialized,
            (!initialized).then_some("ContainersNotInitialized"),
            None,
            &keep_time("Initialized", flag(initialized)),
        ),
        condition(
            "Ready",
            ready,
            ready_reason,
            ready_msg,
            &keep_time("Ready", flag(ready)),
        ),
        condition(
            "ContainersReady",
            ready,
            ready_reason,
            ready_msg,
            &keep_time("ContainersReady", flag(ready)),
        ),
        condition(
            "PodScheduled",
            true,
            None,
            None,
            &keep_time("PodScheduled", "True"),
        ),
    ];
    let statuses: Vec<Value> = containers
        .iter()
        .map(|c| {
            let name = c["name"].as_str().unwrap_or_default();
            let image = c["image"].as_str().unwrap_or_default();
            let (state, started, ready, runs) = match stage {
                Stage::Creating => (
                    json!({"waiting": {"reason": "ContainerCreating"}}),
                    false,
                    false,
                    false,
                ),
                Stage::Waiting {
                    affected,
                    reason,
                    message,
                } => {
                    if affected.iter().any(|a| a == name) {
                        (
                            json!({"waiting": {"reason": reason, "message": message}}),
                            false,
                            false,
                            false,
                        )
                    } else {
                        (
                            json!({"waiting": {"reason": "ContainerCreating"}}),
                            false,
                            false,
                            false,
                        )
                    }
                }
                Stage::CrashLoopBackOff { main, message } if main == name => (
                    json!({"waiting": {"reason": "CrashLoopBackOff", "message": message}}),
                    false,
                    false,
                    true,
                ),
                Stage::CrashLoopBackOff { .. } => (
                    json!({"running": {"startedAt": pod["status"]["startTime"]}}),
                    true,
                    true,
                    true,
                ),
                Stage::Running { started_at } => (
                    json!({"running": {"startedAt": started_at}}),
                    true,
                    true,
                    true,
                ),
                Stage::InitFailed { .. } => (
                    json!({"waiting": {"reason": "PodInitializing"}}),
                    false,
                    false,
                    false,
                ),
                Stage::MainExited { lingering, .. } if lingering.iter().any(|l| l == name) => (
                    json!({"running": {"startedAt": pod["status"]["startTime"]}}),
                    true,
                    true,
                    true,
                ),
                Stage::Terminated {
                    started_at,
                    finished_at,
                    main,
                    exit_code,
                    reason,
                    ..
                }
                | Stage::MainExited {
                    started_at,
                    finished_at,
                    main,
                    exit_code,
                    reason,
                    ..
                } => {
                    let killed = matches!(stage, Stage::Terminated { killed, .. } if killed.iter().any(|k| k == name));
                    let (code, why) = if main == name {
                        (*exit_code, reason.as_str())
                    } else if killed {
                        (143, "Error")
                    } else {
                        (0, "Completed")
                    };
                    (
                        json!({"terminated": {
                            "exitCode": code,
                            "reason": why,
                            "startedAt": started_at,
                            "finishedAt": finished_at,
                            "containerID": container_id(meta::uid(pod), name),
                        }}),
                        false,
                        false,
                        true,
                    )
                }
            };
            let mut s = json!({
                "name": name,
                "image": image,
                "imageID": "",
                "lastState": {},
                "ready": ready,
                "restartCount": 0,
                "started": started,
                "state": state,
            });
            if restarts.count > 0 && restarts.container == name {
                s["restartCount"] = json!(restarts.count);
                s["lastState"] = restarts.last.clone();
            }
            if runs {
                s["containerID"] = json!(container_id(meta::uid(pod), name));
                s["imageID"] = json!(format!(
                    "{}@sha256:{}",
                    full_reference(image),
                    "0".repeat(64)
                ));
            }
            s
        })
        .collect();
    // A pod the kubelet terminates for a disruption (eviction, preemption) keeps saying so,
    // whatever its containers do next, and ends `Failed`.
    let mut conditions = conditions;
    let disruption = old_conditions
        .iter()
        .find(|c| c["type"] == "DisruptionTarget" && c["status"] == "True")
        .cloned();
    let phase = match &disruption {
        Some(_) if matches!(stage, Stage::Terminated { .. }) => "Failed",
        _ => phase,
    };
    if let Some(condition) = disruption {
        conditions.push(condition);
    }
    let mut status = json!({
        "phase": phase,
        "conditions": conditions,
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "podIP": pod_ip,
        "podIPs": [{"ip": pod_ip}],
        "startTime": pod["status"]["startTime"].as_str().map_or_else(|| now.clone(), |s| json!(s)),
        "containerStatuses": statuses,
        "qosClass": pod["status"]["qosClass"].as_str().unwrap_or("BestEffort"),
    });
    for key in ["reason", "message"] {
        if pod["status"]["reason"] == "Evicted" {
            status[key] = pod["status"][key].clone();
        }
    }
    if let Some(inits) = pod["spec"]["initContainers"].as_array() {
        status["initContainerStatuses"] = json!(init_statuses(pod, inits, stage, &now));
    }
    status
}

/// The init containers' statuses: run-to-completion ones have completed (or, for
/// [`Stage::InitFailed`], one failed and those after it never ran); native sidecars
/// (`restartPolicy: Always`) run beside the containers until the pod ends, when the kubelet
/// stops them (SIGTERM: exit 143).
fn init_statuses(pod: &Value, inits: &[Value], stage: &Stage, now: &Value) -> Vec<Value> {
    let failed_at = match stage {
        Stage::InitFailed { container, .. } => inits.iter().position(|c| c["name"] == *container),
        _ => None,
    };
    let ended = matches!(stage, Stage::Terminated { .. } | Stage::InitFailed { .. });
    inits
        .iter()
        .enumerate()
        .map(|(index, c)| {
            let name = c["name"].as_str().unwrap_or_default();
            let sidecar = c["restartPolicy"] == "Always";
            let terminated = |code: i32, reason: &str, message: Option<&str>| {
                let mut t = json!({"exitCode": code, "reason": reason, "startedAt": now,
                    "finishedAt": now, "containerID": container_id(meta::uid(pod), name)});
                if let Some(m) = message {
                    t["message"] = json!(m);
                }
                json!({"terminated": t})
            };
            let (state, started, ready) = match (stage, failed_at) {
                (_, Some(at)) if index > at => (
                    json!({"waiting": {"reason": "PodInitializing"}}),
                    false,
                    false,
                ),
                (
                    Stage::InitFailed {
                        exit_code, message, ..
                    },
                    Some(at),
                ) if index == at => (terminated(*exit_code, "Error", Some(message)), false, false),
                _ if sidecar && ended => (terminated(143, "Error", None), false, false),
                _ if sidecar => (json!({"running": {"startedAt": now}}), true, true),
                _ => (terminated(0, "Completed", None), false, true),
            };
            json!({
                "name": name,
                "image": c["image"],
                "imageID": "",
                "lastState": {},
                "ready": ready,
                "restartCount": 0,
                "started": started,
                "state": state,
            })
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn full_reference_names_images_like_containerd() {
        assert_eq!(
            full_reference("busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(full_reference("org/img:1"), "docker.io/org/img:1");
        assert_eq!(full_reference("ghcr.io/o/i"), "ghcr.io/o/i:latest");
    }

    #[test]
    fn terminated_main_container_sets_phase_and_reason() {
        let pod = json!({"metadata": {"uid": "u"}, "spec": {"containers": [{"name": "agent", "image": "a"}, {"name": "side", "image": "b"}]}, "status": {}});
        let s = pod_status(
            &pod,
            &Stage::Terminated {
                started_at: "t".into(),
                finished_at: "t".into(),
                main: "agent".into(),
                exit_code: 137,
                reason: "OOMKilled".into(),
                killed: Vec::new(),
            },
            ("172.18.0.2", "10.0.0.1"),
            &Restarts::default(),
        );
        assert_eq!(s["phase"], "Failed");
        assert_eq!(
            s["containerStatuses"][0]["state"]["terminated"]["reason"],
            "OOMKilled"
        );
        assert_eq!(
            s["containerStatuses"][1]["state"]["terminated"]["exitCode"],
            0
        );
    }
}
