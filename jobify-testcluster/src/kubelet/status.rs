//! The pod statuses a kubelet writes, as JSON merge patches of `status`.

use serde_json::{Value, json};

/// `metav1.Time` now, to the second.
pub(crate) fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// The containers of one pod and the addresses the fake node gives it.
#[derive(Clone, Debug)]
pub(crate) struct Shape {
    /// Init containers: `(name, image)`.
    pub(crate) init: Vec<(String, String)>,
    /// Containers: `(name, image)`.
    pub(crate) main: Vec<(String, String)>,
    /// The container whose exit decides the pod (the agent, else the first).
    pub(crate) primary: String,
    pub(crate) uid: String,
    pub(crate) pod_ip: String,
    pub(crate) start_time: String,
}

/// A container's state.
#[derive(Clone, Debug)]
pub(crate) enum State {
    Waiting(String, Option<String>),
    Running(String),
    Terminated {
        exit_code: i32,
        reason: String,
        started_at: String,
        finished_at: String,
    },
}

impl State {
    fn to_json(&self, container_id: &str) -> Value {
        match self {
            State::Waiting(reason, message) => match message {
                Some(m) => json!({"waiting": {"reason": reason, "message": m}}),
                None => json!({"waiting": {"reason": reason}}),
            },
            State::Running(at) => json!({"running": {"startedAt": at}}),
            State::Terminated {
                exit_code,
                reason,
                started_at,
                finished_at,
            } => json!({"terminated": {
                "exitCode": exit_code, "reason": reason, "startedAt": started_at,
                "finishedAt": finished_at, "containerID": container_id,
            }}),
        }
    }

    fn created(&self) -> bool {
        !matches!(self, State::Waiting(..))
    }

    fn is_terminated(&self) -> bool {
        matches!(self, State::Terminated { .. })
    }
}

/// A whole status: the states of the init containers and containers, and restarts.
#[derive(Clone, Debug)]
pub(crate) struct Snapshot {
    pub(crate) init: Vec<State>,
    pub(crate) main: Vec<State>,
    /// Restarts of the primary container and its last termination.
    pub(crate) restarts: (i32, Option<State>),
    /// The pod's `status.reason` and `status.message` (e.g. `Evicted`).
    pub(crate) pod_reason: Option<(String, String)>,
    /// Whether the pod is terminal although a container is not terminated (eviction).
    pub(crate) force_failed: bool,
}

impl Shape {
    fn container_id(&self, name: &str) -> String {
        let short: String = self.uid.chars().filter(|c| *c != '-').take(24).collect();
        format!("containerd://{short}{:0>40}", name.len())
    }

    fn statuses(
        &self,
        specs: &[(String, String)],
        states: &[State],
        restarts: &(i32, Option<State>),
    ) -> Value {
        let list: Vec<Value> = specs
            .iter()
            .zip(states)
            .map(|((name, image), state)| {
                let id = self.container_id(name);
                let mut s = json!({
                    "name": name,
                    "image": image,
                    "imageID": "",
                    "ready": matches!(state, State::Running(_)),
                    "started": matches!(state, State::Running(_)),
                    "restartCount": 0,
                    "state": state.to_json(&id),
                    "lastState": {},
                });
                if state.created() {
                    s["containerID"] = json!(id);
                    s["imageID"] = json!(format!("{image}@sha256:{:0>64}", name.len()));
                }
                if *name == self.primary {
                    s["restartCount"] = json!(restarts.0);
                    if let Some(last) = &restarts.1 {
                        s["lastState"] = last.to_json(&id);
                    }
                }
                s
            })
            .collect();
        Value::Array(list)
    }

    /// The status of `snapshot`: phase, conditions and container statuses as the kubelet
    /// computes them.
    pub(crate) fn status(&self, snap: &Snapshot) -> Value {
        let now = now();
        let init_done = snap
            .init
            .iter()
            .all(|s| matches!(s, State::Terminated { exit_code: 0, .. }));
        let init_failed = snap
            .init
            .iter()
            .any(|s| matches!(s, State::Terminated { exit_code, .. } if *exit_code != 0));
        let all_main_terminated = snap.main.iter().all(State::is_terminated);
        let main_failed = snap
            .main
            .iter()
            .any(|s| matches!(s, State::Terminated { exit_code, .. } if *exit_code != 0));
        let running = snap.main.iter().all(|s| matches!(s, State::Running(_)));
        // A container that has not started yet (waiting, never terminated) keeps the pod
        // pending, as the kubelet's getPhase counts it.
        let pending = snap
            .main
            .iter()
            .any(|s| matches!(s, State::Waiting(reason, _) if reason != "CrashLoopBackOff"));
        let phase = if snap.force_failed || init_failed || (all_main_terminated && main_failed) {
            "Failed"
        } else if all_main_terminated {
            "Succeeded"
        } else if !init_done || pending {
            "Pending"
        } else {
            "Running"
        };
        let terminal = matches!(phase, "Failed" | "Succeeded");
        let sandbox = !terminal || snap.main.iter().any(State::created);
        let condition = |kind: &str, ok: bool, reason: Option<&str>, message: Option<String>| {
            let mut c = json!({
                "type": kind, "status": if ok { "True" } else { "False" },
                "lastProbeTime": null, "lastTransitionTime": now,
            });
            if let Some(r) = reason {
                c["reason"] = json!(r);
            }
            if let Some(m) = message {
                c["message"] = json!(m);
            }
            c
        };
        let unready: Vec<&str> = self
            .main
            .iter()
            .zip(&snap.main)
            .filter(|(_, s)| !matches!(s, State::Running(_)))
            .map(|((n, _), _)| n.as_str())
            .collect();
        let incomplete: Vec<&str> = self
            .init
            .iter()
            .zip(&snap.init)
            .filter(|(_, s)| !matches!(s, State::Terminated { exit_code: 0, .. }))
            .map(|((n, _), _)| n.as_str())
            .collect();
        let (ready_reason, ready_message) = if terminal {
            (Some("PodCompleted"), None)
        } else if running {
            (None, None)
        } else {
            (
                Some("ContainersNotReady"),
                Some(format!(
                    "containers with unready status: [{}]",
                    unready.join(" ")
                )),
            )
        };
        let mut conditions = vec![
            condition(
                "PodReadyToStartContainers",
                sandbox && !terminal,
                None,
                None,
            ),
            if init_done {
                condition(
                    "Initialized",
                    true,
                    terminal
                        .then_some("PodCompleted")
                        .filter(|_| !self.init.is_empty()),
                    None,
                )
            } else {
                condition(
                    "Initialized",
                    false,
                    Some("ContainersNotInitialized"),
                    Some(format!(
                        "containers with incomplete status: [{}]",
                        incomplete.join(" ")
                    )),
                )
            },
            condition(
                "Ready",
                running && !terminal,
                ready_reason,
                ready_message.clone(),
            ),
            condition(
                "ContainersReady",
                running && !terminal,
                ready_reason,
                ready_message,
            ),
            condition("PodScheduled", true, None, None),
        ];
        if let Some((reason, message)) = &snap.pod_reason
            && reason == "Evicted"
        {
            conditions.insert(
                0,
                condition(
                    "DisruptionTarget",
                    true,
                    Some("TerminationByKubelet"),
                    Some(message.clone()),
                ),
            );
        }
        let mut status = json!({
            "phase": phase,
            "conditions": conditions,
            "hostIP": "127.0.0.1",
            "hostIPs": [{"ip": "127.0.0.1"}],
            "podIP": self.pod_ip,
            "podIPs": [{"ip": self.pod_ip}],
            "startTime": self.start_time,
            "containerStatuses": self.statuses(&self.main, &snap.main, &snap.restarts),
        });
        if !self.init.is_empty() {
            status["initContainerStatuses"] = self.statuses(&self.init, &snap.init, &(0, None));
        }
        if let Some((reason, message)) = &snap.pod_reason {
            status["reason"] = json!(reason);
            status["message"] = json!(message);
        }
        status
    }
}
