//! The pod statuses a kubelet writes, as JSON merge patches of `status`.
//!
//! What it models of the kubelet's status computation (`generateAPIPodStatus` and the status
//! manager's merge):
//!
//! - The phase comes from the regular containers only: `Pending` until each has been
//!   created, `Succeeded` when all exited 0, `Failed` when all ended and one did not exit 0
//!   (or the pod was killed: eviction, deletion), else `Running`. A run-to-completion init
//!   container that exited non-zero fails the pod (`restartPolicy: Never`).
//! - Native sidecars (init containers with `restartPolicy: Always`) run beside the regular
//!   containers (`running`, `started: true`, `ready: true`) and never decide the phase nor
//!   fail the pod; `Initialized` is `True` once every run-to-completion init container
//!   completed and every sidecar started.
//! - A pod is never reported terminal while one of its containers (a sidecar included) still
//!   runs: the kubelet holds the old phase until it has stopped them.
//! - A disrupted pod (eviction) carries condition `DisruptionTarget` (`True`, reason
//!   `TerminationByKubelet`), written first, with its containers still as they were.
//! - A container that never started when its pod was terminated is reported `terminated`
//!   with exit code 137, reason `ContainerStatusUnknown` and no `startedAt` (the status
//!   manager's `TerminatePod`); a waiting init container stays waiting.

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
    /// Whether each init container is a native sidecar (`restartPolicy: Always`).
    pub(crate) sidecar: Vec<bool>,
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
    /// Never started, and its pod was terminated: exit code 137, `ContainerStatusUnknown`,
    /// no `startedAt`.
    Unknown,
}

/// The message of a container the status manager marks [`State::Unknown`].
const UNKNOWN_MESSAGE: &str = "The container could not be located when the pod was terminated";

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
            State::Unknown => json!({"terminated": {
                "exitCode": 137, "reason": "ContainerStatusUnknown", "message": UNKNOWN_MESSAGE,
            }}),
        }
    }

    fn created(&self) -> bool {
        !matches!(self, State::Waiting(..) | State::Unknown)
    }

    fn is_terminated(&self) -> bool {
        matches!(self, State::Terminated { .. } | State::Unknown)
    }

    fn is_running(&self) -> bool {
        matches!(self, State::Running(_))
    }

    fn failed(&self) -> bool {
        match self {
            State::Terminated { exit_code, .. } => *exit_code != 0,
            State::Unknown => true,
            State::Waiting(..) | State::Running(_) => false,
        }
    }

    fn completed(&self) -> bool {
        matches!(self, State::Terminated { exit_code: 0, .. })
    }
}

/// A whole status: the states of the init containers and containers, and restarts.
#[derive(Clone, Debug)]
pub(crate) struct Snapshot {
    pub(crate) init: Vec<State>,
    pub(crate) main: Vec<State>,
    /// Restarts of the primary container and its last termination.
    pub(crate) restarts: (i32, Option<State>),
    /// Restarts of each init container (a native sidecar the kubelet restarted) and its last
    /// termination, by index; missing: never restarted.
    pub(crate) init_restarts: Vec<(i32, Option<State>)>,
    /// The pod's `status.reason` and `status.message` (e.g. `Evicted`), once it is terminal.
    pub(crate) pod_reason: Option<(String, String)>,
    /// The message of condition `DisruptionTarget` (reason `TerminationByKubelet`), when the
    /// kubelet is terminating the pod for a disruption (eviction).
    pub(crate) disruption: Option<String>,
    /// Whether the pod is terminal although a container is not terminated (eviction).
    pub(crate) force_failed: bool,
}

impl Shape {
    fn container_id(&self, name: &str) -> String {
        let short: String = self.uid.chars().filter(|c| *c != '-').take(24).collect();
        format!("containerd://{short}{:0>40}", name.len())
    }

    /// `restarts`: each container's restart count and last termination, by index (none:
    /// never restarted); `init`: these are init container statuses, where one that completed
    /// is `ready`.
    fn statuses(
        &self,
        specs: &[(String, String)],
        states: &[State],
        restarts: &[(i32, Option<State>)],
        init: bool,
    ) -> Value {
        let list: Vec<Value> = specs
            .iter()
            .zip(states)
            .enumerate()
            .map(|(i, ((name, image), state))| {
                let id = self.container_id(name);
                let mut s = json!({
                    "name": name,
                    "image": image,
                    "imageID": "",
                    "ready": state.is_running() || (init && state.completed()),
                    "started": state.is_running(),
                    "restartCount": 0,
                    "state": state.to_json(&id),
                    "lastState": {},
                });
                if state.created() {
                    s["containerID"] = json!(id);
                    s["imageID"] = json!(format!("{image}@sha256:{:0>64}", name.len()));
                }
                if let Some((count, last)) = restarts.get(i) {
                    s["restartCount"] = json!(count);
                    if let Some(last) = last {
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
        let inits = || self.sidecar.iter().copied().zip(&snap.init);
        // Run-to-completion init containers have completed; sidecars have started.
        let init_ok = |(sidecar, s): (bool, &State)| {
            if sidecar { s.created() } else { s.completed() }
        };
        let init_done = inits().all(init_ok);
        let init_failed = inits().any(|(sidecar, s)| !sidecar && s.failed());
        let all_main_terminated = snap.main.iter().all(State::is_terminated);
        let main_failed = snap.main.iter().any(State::failed);
        let running = snap.main.iter().all(State::is_running);
        let anything_runs =
            snap.main.iter().any(State::is_running) || snap.init.iter().any(State::is_running);
        // A container that has not started yet (waiting, never terminated) keeps the pod
        // pending, as the kubelet's getPhase counts it.
        let pending = snap
            .main
            .iter()
            .any(|s| matches!(s, State::Waiting(reason, _) if reason != "CrashLoopBackOff"));
        let ended = snap.force_failed || init_failed || all_main_terminated;
        // The status manager holds a terminal phase back while a container still runs.
        let phase = if ended && !anything_runs {
            if snap.force_failed || init_failed || main_failed {
                "Failed"
            } else {
                "Succeeded"
            }
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
            .zip(inits())
            .filter(|(_, i)| !init_ok(*i))
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
        if let Some(message) = &snap.disruption {
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
        let main_restarts: Vec<(i32, Option<State>)> = self
            .main
            .iter()
            .map(|(name, _)| {
                if *name == self.primary {
                    snap.restarts.clone()
                } else {
                    (0, None)
                }
            })
            .collect();
        let mut status = json!({
            "phase": phase,
            "conditions": conditions,
            "hostIP": "127.0.0.1",
            "hostIPs": [{"ip": "127.0.0.1"}],
            "podIP": self.pod_ip,
            "podIPs": [{"ip": self.pod_ip}],
            "startTime": self.start_time,
            "containerStatuses": self.statuses(&self.main, &snap.main, &main_restarts, false),
        });
        if !self.init.is_empty() {
            status["initContainerStatuses"] =
                self.statuses(&self.init, &snap.init, &snap.init_restarts, true);
        }
        if let Some((reason, message)) = snap.pod_reason.as_ref().filter(|_| terminal) {
            status["reason"] = json!(reason);
            status["message"] = json!(message);
        }
        status
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape() -> Shape {
        Shape {
            init: vec![
                ("copy-agent".into(), "agent:3".into()),
                ("postgres".into(), "postgres:17".into()),
            ],
            sidecar: vec![false, true],
            main: vec![("agent".into(), "agent:3".into())],
            primary: "agent".into(),
            uid: "u".into(),
            pod_ip: "10.244.0.1".into(),
            start_time: now(),
        }
    }

    fn done(exit_code: i32) -> State {
        State::Terminated {
            exit_code,
            reason: "x".into(),
            started_at: now(),
            finished_at: now(),
        }
    }

    fn snap(init: Vec<State>, main: Vec<State>) -> Snapshot {
        Snapshot {
            init,
            main,
            restarts: (0, None),
            init_restarts: Vec::new(),
            pod_reason: None,
            disruption: None,
            force_failed: false,
        }
    }

    fn condition(status: &Value, kind: &str) -> Value {
        status["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == kind)
            .cloned()
            .unwrap_or(Value::Null)
    }

    #[test]
    fn a_native_sidecar_runs_beside_the_agent_and_never_decides_the_phase() {
        let shape = shape();
        let running = shape.status(&snap(
            vec![done(0), State::Running(now())],
            vec![State::Running(now())],
        ));
        assert_eq!(running["phase"], "Running");
        assert_eq!(condition(&running, "Initialized")["status"], "True");
        let sidecar = &running["initContainerStatuses"][1];
        assert_eq!(
            (&sidecar["started"], &sidecar["ready"]),
            (&json!(true), &json!(true))
        );
        assert!(sidecar["state"]["running"].is_object());
        assert_eq!(running["initContainerStatuses"][0]["ready"], true);

        let agent_done = shape.status(&snap(vec![done(0), State::Running(now())], vec![done(0)]));
        assert_eq!(
            agent_done["phase"], "Running",
            "not terminal while the sidecar runs"
        );

        let init_failed = shape.status(&snap(
            vec![done(1), State::Running(now())],
            vec![State::Waiting("PodInitializing".into(), None)],
        ));
        assert_eq!(
            init_failed["phase"], "Pending",
            "until the sidecar is stopped"
        );

        let ended = shape.status(&snap(vec![done(0), done(143)], vec![done(0)]));
        assert_eq!(
            ended["phase"], "Succeeded",
            "a sidecar killed non-zero fails nothing"
        );

        let starting = shape.status(&snap(
            vec![done(0), State::Waiting("PodInitializing".into(), None)],
            vec![State::Waiting("PodInitializing".into(), None)],
        ));
        assert_eq!(starting["phase"], "Pending");
        let initialized = condition(&starting, "Initialized");
        assert_eq!(initialized["status"], "False");
        assert_eq!(
            initialized["message"],
            "containers with incomplete status: [postgres]"
        );
    }

    #[test]
    fn a_container_that_never_started_ends_without_a_start_time() {
        let mut snapshot = snap(vec![done(0), done(143)], vec![State::Unknown]);
        snapshot.force_failed = true;
        snapshot.pod_reason = Some(("Evicted".into(), "low on memory".into()));
        snapshot.disruption = Some("low on memory".into());
        let status = shape().status(&snapshot);
        assert_eq!(status["phase"], "Failed");
        assert_eq!(status["reason"], "Evicted");
        let terminated = &status["containerStatuses"][0]["state"]["terminated"];
        assert_eq!(terminated["reason"], "ContainerStatusUnknown");
        assert_eq!(terminated["exitCode"], 137);
        assert!(terminated.get("startedAt").is_none());
        let disruption = condition(&status, "DisruptionTarget");
        assert_eq!(disruption["reason"], "TerminationByKubelet");
    }

    #[test]
    fn the_disruption_is_written_before_the_pod_is_terminal() {
        let mut snapshot = snap(
            vec![done(0), State::Running(now())],
            vec![State::Running(now())],
        );
        snapshot.disruption = Some("low on memory".into());
        snapshot.pod_reason = Some(("Evicted".into(), "low on memory".into()));
        let status = shape().status(&snapshot);
        assert_eq!(status["phase"], "Running");
        assert!(
            status.get("reason").is_none(),
            "the reason comes with the phase"
        );
        assert_eq!(condition(&status, "DisruptionTarget")["status"], "True");
    }
}
