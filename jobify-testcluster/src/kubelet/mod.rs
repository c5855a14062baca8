//! A simulated kubelet (and scheduler) for one fake Node, as a client of the real API server.
//!
//! It watches every pod; binds each unbound pod to the node through the `pods/binding`
//! subresource (as kube-scheduler does, with its `Scheduled` event in `events.k8s.io/v1`);
//! then drives the pod's status through the `status` subresource along the pod's
//! [`Scenario`], recording the `core/v1` Events a kubelet records; and honours deletion as a
//! kubelet does: a pod being deleted that is not terminal has its containers stopped and is
//! marked `Failed`, then it is deleted with grace period 0.
//!
//! What it models of a real kubelet, step by step:
//!
//! - Init containers run in order. A run-to-completion one runs to `Completed` (or, in
//!   [`Scenario::InitContainerFailure`], exits non-zero: the pod fails, the sidecars started
//!   so far are stopped, the containers stay `PodInitializing` and never start). A native
//!   sidecar (`restartPolicy: Always`) is started and keeps running (`started: true`) while
//!   the next init containers and then the regular containers run.
//! - A sidecar that exits while the pod runs ([`Scenario::SidecarCrashes`]) is restarted
//!   at once: `restartCount` 1, its exit code in `lastState`; the pod runs on.
//! - When the regular containers have ended, the sidecars are stopped (`Killing` events,
//!   SIGTERM: exit 143, reason `Error`); until then the pod stays `Running`. The phase then
//!   follows the regular containers' exit codes only, so a sidecar killed non-zero does not
//!   fail the pod.
//! - Eviction of a running pod ([`Scenario::Evicted`]): an `Evicted` event, then condition
//!   `DisruptionTarget` (reason `TerminationByKubelet`) written while the containers still
//!   run, then the containers killed (exit 137) and the pod `Failed` with reason `Evicted`.
//!   Eviction before the containers start ([`Scenario::EvictedBeforeStart`]) is the same on a
//!   pod still `Pending`, whose containers end `ContainerStatusUnknown` without `startedAt`.
//! - [`Scenario::OutlivesAgent`]: the agent exits, other regular containers keep the pod
//!   `Running` until it is deleted.
//! - Deletion of a pod that is not terminal: running containers (sidecars included) are
//!   stopped with exit 143, containers that never started end `ContainerStatusUnknown`
//!   (exit 137, no `startedAt`), the pod is marked `Failed`, then deleted with grace 0.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Pod, Secret};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::time::Instant;

pub mod scenario;
mod status;

use scenario::{PodScript, Scenario, Timings};
use status::{Shape, Snapshot, State, now};

/// The label the Job controller puts on a Job's pods.
const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";

/// Scripts the test chose for the pods of a Job, keyed by `(namespace, Job name)`.
#[derive(Clone, Debug, Default)]
pub struct Scripts(Arc<Mutex<HashMap<(String, String), PodScript>>>);

impl Scripts {
    /// The pods of Job `job` in `namespace` (created from now on) follow `script`; it takes
    /// precedence over the labels, annotations and images of the pod.
    pub fn set_for_job(&self, namespace: &str, job: &str, script: PodScript) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((namespace.to_owned(), job.to_owned()), script);
    }

    fn for_pod(&self, pod: &Pod) -> Option<PodScript> {
        let labels = pod.metadata.labels.as_ref()?;
        let job = labels
            .get(JOB_NAME_LABEL)
            .or_else(|| labels.get("job-name"))?;
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(namespace, job.clone()))
            .cloned()
    }
}

/// The simulated kubelet of one node.
#[derive(Clone)]
pub(crate) struct Kubelet {
    pub(crate) client: kube::Client,
    pub(crate) node: String,
    pub(crate) node_labels: BTreeMap<String, String>,
    pub(crate) scripts: Scripts,
    pub(crate) timings: Timings,
}

impl Kubelet {
    /// Watches pods and runs each one on the node, until the future is dropped.
    pub(crate) async fn run(self) {
        let kubelet = Arc::new(self);
        let api: Api<Pod> = Api::all(kubelet.client.clone());
        let mut stream = watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        let mut pods: HashMap<String, watch::Sender<Pod>> = HashMap::new();
        let mut listed: HashSet<String> = HashSet::new();
        let mut serial: u32 = 1;
        while let Some(event) = stream.next().await {
            let pod = match event {
                Ok(watcher::Event::Init) => {
                    listed.clear();
                    continue;
                }
                Ok(watcher::Event::InitDone) => {
                    pods.retain(|uid, _| listed.contains(uid));
                    continue;
                }
                Ok(watcher::Event::Delete(pod)) => {
                    if let Some(uid) = pod.metadata.uid.as_deref() {
                        pods.remove(uid);
                    }
                    continue;
                }
                Ok(watcher::Event::InitApply(pod)) => {
                    if let Some(uid) = &pod.metadata.uid {
                        listed.insert(uid.clone());
                    }
                    pod
                }
                Ok(watcher::Event::Apply(pod)) => pod,
                Err(e) => {
                    tracing::debug!(error = %e, "fake kubelet: pod watch error");
                    continue;
                }
            };
            let Some(uid) = pod.metadata.uid.clone() else {
                continue;
            };
            if let Some(tx) = pods.get(&uid) {
                tx.send_replace(pod);
                continue;
            }
            let node = pod.spec.as_ref().and_then(|s| s.node_name.clone());
            if node.as_ref().is_some_and(|n| *n != kubelet.node) {
                continue;
            }
            let (tx, rx) = watch::channel(pod);
            pods.insert(uid, tx);
            serial = serial % 250 + 1;
            let run = PodRun::new(kubelet.clone(), rx, serial);
            tokio::spawn(run.run());
        }
    }
}

/// One pod's life on the node.
struct PodRun {
    kubelet: Arc<Kubelet>,
    api: Api<Pod>,
    namespace: String,
    name: String,
    uid: String,
    rx: watch::Receiver<Pod>,
    /// The pod is gone from the API server.
    gone: bool,
    shape: Shape,
    snap: Snapshot,
    script: PodScript,
}

/// How long "forever" is for a pod that stays in one state.
const FOREVER: Duration = Duration::from_secs(365 * 24 * 3600);

impl PodRun {
    fn new(kubelet: Arc<Kubelet>, rx: watch::Receiver<Pod>, serial: u32) -> Self {
        let pod = rx.borrow().clone();
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let spec = pod.spec.clone().unwrap_or_default();
        let pairs = |cs: &[k8s_openapi::api::core::v1::Container]| -> Vec<(String, String)> {
            cs.iter()
                .map(|c| (c.name.clone(), c.image.clone().unwrap_or_default()))
                .collect()
        };
        let init = pairs(spec.init_containers.as_deref().unwrap_or_default());
        let sidecar = spec
            .init_containers
            .iter()
            .flatten()
            .map(scenario::is_sidecar)
            .collect();
        let main = pairs(&spec.containers);
        let primary = main
            .iter()
            .find(|(n, _)| n == "agent")
            .or(main.first())
            .map(|(n, _)| n.clone())
            .unwrap_or_default();
        let shape = Shape {
            init: init.clone(),
            sidecar,
            main: main.clone(),
            primary,
            uid: uid.clone(),
            pod_ip: format!("10.244.0.{serial}"),
            start_time: now(),
        };
        let snap = Snapshot {
            init: init
                .iter()
                .map(|_| State::Waiting("PodInitializing".to_owned(), None))
                .collect(),
            main: main
                .iter()
                .map(|_| {
                    let reason = if init.is_empty() {
                        "ContainerCreating"
                    } else {
                        "PodInitializing"
                    };
                    State::Waiting(reason.to_owned(), None)
                })
                .collect(),
            restarts: (0, None),
            init_restarts: Vec::new(),
            pod_reason: None,
            disruption: None,
            force_failed: false,
        };
        PodRun {
            api: Api::namespaced(kubelet.client.clone(), &namespace),
            kubelet,
            namespace,
            name,
            uid,
            rx,
            gone: false,
            shape,
            snap,
            script: PodScript::default(),
        }
    }

    fn pod(&self) -> Pod {
        self.rx.borrow().clone()
    }

    fn deleting(&self) -> bool {
        self.rx.borrow().metadata.deletion_timestamp.is_some()
    }

    fn terminal(pod: &Pod) -> bool {
        matches!(
            pod.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        )
    }

    /// Waits `d`; false if the pod is being deleted (or gone) meanwhile.
    async fn pause(&mut self, d: Duration) -> bool {
        let deadline = Instant::now() + d;
        loop {
            if self.gone || self.deleting() {
                return false;
            }
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => return !self.deleting(),
                changed = self.rx.changed() => if changed.is_err() {
                    self.gone = true;
                    return false;
                },
            }
        }
    }

    async fn run(mut self) {
        let pod = self.pod();
        if Self::terminal(&pod) {
            self.pause(FOREVER).await;
            self.finish_deletion().await;
            return;
        }
        let bound = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .is_some();
        self.script = match self.kubelet.scripts.for_pod(&pod) {
            Some(script) => script,
            None => {
                let missing = self.missing_reference(&pod).await;
                scenario::classify(&pod, &self.kubelet.node_labels, missing)
            }
        };
        if !bound {
            if self.script.scenario == Scenario::Unschedulable {
                self.unschedulable().await;
                self.pause(FOREVER).await;
                self.finish_deletion().await;
                return;
            }
            if !self.bind().await {
                return;
            }
        }
        if self.lifecycle().await {
            self.pause(FOREVER).await;
        }
        self.finish_deletion().await;
    }

    /// The first Secret or ConfigMap the pod needs that does not exist, in the kubelet's words.
    async fn missing_reference(&self, pod: &Pod) -> Option<String> {
        let client = &self.kubelet.client;
        for (is_secret, name) in scenario::required_references(pod) {
            let missing = if is_secret {
                let api: Api<Secret> = Api::namespaced(client.clone(), &self.namespace);
                matches!(api.get_opt(&name).await, Ok(None))
            } else {
                let api: Api<ConfigMap> = Api::namespaced(client.clone(), &self.namespace);
                matches!(api.get_opt(&name).await, Ok(None))
            };
            if missing {
                let kind = if is_secret { "secret" } else { "configmap" };
                return Some(format!("{kind} \"{name}\" not found"));
            }
        }
        None
    }

    async fn write(&mut self) -> bool {
        let status = self.shape.status(&self.snap);
        self.patch_status(status).await
    }

    async fn patch_status(&mut self, status: Value) -> bool {
        let patch = json!({"status": status});
        match self
            .api
            .patch_status(&self.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => true,
            Err(kube::Error::Api(e)) if e.code == 404 => {
                self.gone = true;
                false
            }
            Err(e) => {
                tracing::warn!(pod = %self.name, error = %e, "fake kubelet: status update failed");
                true
            }
        }
    }

    /// Records a `core/v1` Event about the pod from the kubelet.
    async fn event(&self, kind: &str, reason: &str, message: &str, container: Option<&str>) {
        let mut involved = json!({
            "apiVersion": "v1", "kind": "Pod", "namespace": self.namespace,
            "name": self.name, "uid": self.uid,
        });
        if let Some(c) = container {
            let list = if self.shape.init.iter().any(|(n, _)| n == c) {
                "initContainers"
            } else {
                "containers"
            };
            involved["fieldPath"] = json!(format!("spec.{list}{{{c}}}"));
        }
        let at = now();
        let event = json!({
            "metadata": {
                "name": format!("{}.{}", self.name, uuid::Uuid::new_v4().simple()),
                "namespace": self.namespace,
            },
            "involvedObject": involved,
            "reason": reason,
            "message": message,
            "type": kind,
            "source": {"component": "kubelet", "host": self.kubelet.node},
            "reportingComponent": "kubelet",
            "reportingInstance": self.kubelet.node,
            "firstTimestamp": at,
            "lastTimestamp": at,
            "count": 1,
        });
        let api: Api<Event> = Api::namespaced(self.kubelet.client.clone(), &self.namespace);
        match serde_json::from_value::<Event>(event) {
            Ok(event) => {
                if let Err(e) = api.create(&PostParams::default(), &event).await {
                    tracing::debug!(pod = %self.name, error = %e, "fake kubelet: event not recorded");
                }
            }
            Err(e) => tracing::warn!(error = %e, "fake kubelet: bad event"),
        }
    }

    /// Records an `events.k8s.io/v1` Event from the scheduler, as kube-scheduler does.
    async fn scheduler_event(&self, kind: &str, reason: &str, action: &str, note: &str) {
        let event = json!({
            "metadata": {
                "name": format!("{}.{}", self.name, uuid::Uuid::new_v4().simple()),
                "namespace": self.namespace,
            },
            "eventTime": jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
            "reportingController": "default-scheduler",
            "reportingInstance": format!("default-scheduler-{}", self.kubelet.node),
            "action": action,
            "reason": reason,
            "note": note,
            "type": kind,
            "regarding": {
                "apiVersion": "v1", "kind": "Pod", "namespace": self.namespace,
                "name": self.name, "uid": self.uid,
            },
        });
        let api: Api<k8s_openapi::api::events::v1::Event> =
            Api::namespaced(self.kubelet.client.clone(), &self.namespace);
        match serde_json::from_value(event) {
            Ok(event) => {
                if let Err(e) = api.create(&PostParams::default(), &event).await {
                    tracing::debug!(pod = %self.name, error = %e, "fake scheduler: event not recorded");
                }
            }
            Err(e) => tracing::warn!(error = %e, "fake scheduler: bad event"),
        }
    }

    async fn unschedulable(&mut self) {
        let message = "0/1 nodes are available: 1 node(s) didn't match Pod's node \
                       affinity/selector. preemption: 0/1 nodes are available: 1 Preemption \
                       is not helpful for scheduling.";
        let status = json!({
            "phase": "Pending",
            "conditions": [{
                "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                "message": message, "lastProbeTime": null, "lastTransitionTime": now(),
            }],
        });
        if self.patch_status(status).await {
            self.scheduler_event("Warning", "FailedScheduling", "Scheduling", message)
                .await;
        }
    }

    /// Binds the pod to the node through `pods/binding`; false if it is gone.
    async fn bind(&mut self) -> bool {
        let binding = json!({
            "apiVersion": "v1", "kind": "Binding",
            "metadata": {"name": self.name, "namespace": self.namespace, "uid": self.uid},
            "target": {"apiVersion": "v1", "kind": "Node", "name": self.kubelet.node},
        });
        let bound: Result<Value, _> = self
            .api
            .create_subresource("binding", &self.name, &PostParams::default(), &binding)
            .await;
        if let Err(e) = bound {
            tracing::warn!(pod = %self.name, error = %e, "fake scheduler: binding failed");
            self.gone = true;
            return false;
        }
        let note = format!(
            "Successfully assigned {}/{} to {}",
            self.namespace, self.name, self.kubelet.node
        );
        self.scheduler_event("Normal", "Scheduled", "Binding", &note)
            .await;
        true
    }

    /// Runs the scenario; false if the pod was deleted on the way.
    async fn lifecycle(&mut self) -> bool {
        if !self.write().await {
            return false;
        }
        let timings = self.kubelet.timings.clone();
        let main_images = self.shape.main.clone();
        match self.script.scenario.clone() {
            Scenario::ImagePullFailure => return self.pull_failure().await,
            Scenario::InvalidImageName => return self.invalid_image().await,
            Scenario::StaysPending => return true,
            _ => {}
        }
        if !self.pause(timings.start).await {
            return false;
        }
        // Init containers, in order; native sidecars start and keep running.
        let failing = match self.script.scenario {
            Scenario::InitContainerFailure(code) => self.failing_init().map(|i| (i, code)),
            _ => None,
        };
        for i in 0..self.shape.init.len() {
            let (name, image) = self.shape.init[i].clone();
            self.pulled(&name, &image).await;
            self.event(
                "Normal",
                "Created",
                &format!("Created container: {name}"),
                Some(&name),
            )
            .await;
            self.event(
                "Normal",
                "Started",
                &format!("Started container {name}"),
                Some(&name),
            )
            .await;
            let started_at = now();
            if self.shape.sidecar[i] {
                self.snap.init[i] = State::Running(started_at);
                if !self.write().await {
                    return false;
                }
                continue;
            }
            let (exit_code, reason) = match failing {
                Some((at, code)) if at == i => (code, "Error"),
                _ => (0, "Completed"),
            };
            self.snap.init[i] = State::Terminated {
                exit_code,
                reason: reason.to_owned(),
                started_at,
                finished_at: now(),
            };
            if exit_code != 0 {
                // The pod failed: the kubelet stops the sidecars it started.
                if self.any_sidecar_running() {
                    if !self.write().await {
                        return false;
                    }
                    self.stop_sidecars().await;
                }
                return self.write().await;
            }
        }
        if !self.shape.init.is_empty() {
            for s in &mut self.snap.main {
                *s = State::Waiting("ContainerCreating".to_owned(), None);
            }
            if !self.write().await {
                return false;
            }
        }
        for (name, image) in &main_images {
            self.pulled(name, image).await;
        }
        if let Scenario::CreateContainerConfigError(message) = self.script.scenario.clone() {
            let primary = self.primary_index();
            self.snap.main[primary] = State::Waiting(
                "CreateContainerConfigError".to_owned(),
                Some(message.clone()),
            );
            let name = self.shape.main[primary].0.clone();
            if !self.write().await {
                return false;
            }
            self.event(
                "Warning",
                "Failed",
                &format!("Error: {message}"),
                Some(&name),
            )
            .await;
            return true;
        }
        if self.script.scenario == Scenario::SlowStart && !self.pause(timings.slow_start).await {
            return false;
        }
        if self.script.scenario == Scenario::EvictedBeforeStart {
            if !self.pause(self.script.run_for).await {
                return false;
            }
            return self.evict().await;
        }
        loop {
            let started_at = now();
            for (i, (name, _)) in main_images.iter().enumerate() {
                if matches!(self.snap.main[i], State::Running(_)) {
                    continue;
                }
                self.event(
                    "Normal",
                    "Created",
                    &format!("Created container: {name}"),
                    Some(name),
                )
                .await;
                self.event(
                    "Normal",
                    "Started",
                    &format!("Started container {name}"),
                    Some(name),
                )
                .await;
                self.snap.main[i] = State::Running(started_at.clone());
            }
            if !self.write().await {
                return false;
            }
            if let Scenario::SidecarCrashes(code) = self.script.scenario
                && self.snap.restarts.0 == 0
                && !self.crash_sidecar(code).await
            {
                return false;
            }
            if !self.pause(self.script.run_for).await {
                return false;
            }
            let primary = self.primary_index();
            match self.script.scenario {
                Scenario::Evicted => return self.evict().await,
                Scenario::OomKilled => {
                    self.terminate_all(137, "OOMKilled");
                    return self.end().await;
                }
                Scenario::OutlivesAgent => return self.outlive_agent().await,
                _ => {}
            }
            let exit_code = self.script.exit_code;
            let policy = self
                .pod()
                .spec
                .and_then(|s| s.restart_policy)
                .unwrap_or_else(|| "Always".to_owned());
            let restarts = policy == "Always" || (policy == "OnFailure" && exit_code != 0);
            if !restarts {
                let reason = if exit_code == 0 { "Completed" } else { "Error" };
                self.terminate_all(exit_code, reason);
                return self.end().await;
            }
            // The kubelet restarts the container in place, with a back-off.
            let started = match &self.snap.main[primary] {
                State::Running(at) => at.clone(),
                _ => now(),
            };
            self.snap.restarts.0 += 1;
            self.snap.restarts.1 = Some(State::Terminated {
                exit_code,
                reason: if exit_code == 0 { "Completed" } else { "Error" }.to_owned(),
                started_at: started,
                finished_at: now(),
            });
            let name = self.shape.main[primary].0.clone();
            let message = format!(
                "back-off 10s restarting failed container={name} pod={}_{}({})",
                self.name, self.namespace, self.uid
            );
            self.snap.main[primary] = State::Waiting("CrashLoopBackOff".to_owned(), Some(message));
            if !self.write().await {
                return false;
            }
            let note = format!(
                "Back-off restarting failed container {name} in pod {}_{}({})",
                self.name, self.namespace, self.uid
            );
            self.event("Warning", "BackOff", &note, Some(&name)).await;
            if !self.pause(timings.restart_backoff).await {
                return false;
            }
        }
    }

    /// The init container [`Scenario::InitContainerFailure`] fails: the first
    /// run-to-completion one whose image has the marker, else the first run-to-completion one.
    fn failing_init(&self) -> Option<usize> {
        let candidates = || {
            self.shape
                .init
                .iter()
                .enumerate()
                .filter(|(i, _)| !self.shape.sidecar[*i])
        };
        candidates()
            .find(|(_, (_, image))| image.contains(scenario::FAILING_INIT_IMAGE_MARKER))
            .or_else(|| candidates().next())
            .map(|(i, _)| i)
    }

    fn any_sidecar_running(&self) -> bool {
        self.snap
            .init
            .iter()
            .zip(&self.shape.sidecar)
            .any(|(s, sidecar)| *sidecar && matches!(s, State::Running(_)))
    }

    /// The first native sidecar exits with `exit_code` while the containers run, and the
    /// kubelet restarts it at once (`restartPolicy: Always`): `restartCount` 1, its exit in
    /// `lastState`.
    async fn crash_sidecar(&mut self, exit_code: i32) -> bool {
        let Some(i) = (0..self.shape.init.len())
            .find(|i| self.shape.sidecar[*i] && matches!(self.snap.init[*i], State::Running(_)))
        else {
            return true;
        };
        let State::Running(started_at) = self.snap.init[i].clone() else {
            return true;
        };
        let exited = State::Terminated {
            exit_code,
            reason: "Error".to_owned(),
            started_at,
            finished_at: now(),
        };
        self.snap.init[i] = exited.clone();
        if !self.write().await {
            return false;
        }
        let name = self.shape.init[i].0.clone();
        self.event(
            "Normal",
            "Created",
            &format!("Created container: {name}"),
            Some(&name),
        )
        .await;
        self.event(
            "Normal",
            "Started",
            &format!("Started container {name}"),
            Some(&name),
        )
        .await;
        self.snap
            .init_restarts
            .resize(self.shape.init.len(), (0, None));
        self.snap.init_restarts[i] = (1, Some(exited));
        self.snap.init[i] = State::Running(now());
        self.write().await
    }

    /// Stops the running native sidecars, last first (SIGTERM: exit 143), as the kubelet does
    /// once the regular containers have ended.
    async fn stop_sidecars(&mut self) {
        let finished_at = now();
        for i in (0..self.shape.init.len()).rev() {
            let State::Running(started_at) = self.snap.init[i].clone() else {
                continue;
            };
            if !self.shape.sidecar[i] {
                continue;
            }
            let name = self.shape.init[i].0.clone();
            self.event(
                "Normal",
                "Killing",
                &format!("Stopping container {name}"),
                Some(&name),
            )
            .await;
            self.snap.init[i] = State::Terminated {
                exit_code: 143,
                reason: "Error".to_owned(),
                started_at,
                finished_at: finished_at.clone(),
            };
        }
    }

    /// The regular containers have ended: the status says so (the pod still `Running` while
    /// sidecars run), then the sidecars are stopped and the pod is terminal.
    async fn end(&mut self) -> bool {
        if !self.write().await {
            return false;
        }
        if !self.any_sidecar_running() {
            return true;
        }
        self.stop_sidecars().await;
        self.write().await
    }

    /// The indexes of the regular containers that keep running after the agent exited in
    /// [`Scenario::OutlivesAgent`].
    fn lingering(&self) -> Vec<usize> {
        let primary = self.primary_index();
        let others: Vec<usize> = (0..self.shape.main.len())
            .filter(|i| *i != primary)
            .collect();
        let marked: Vec<usize> = others
            .iter()
            .copied()
            .filter(|i| {
                self.shape.main[*i]
                    .1
                    .contains(scenario::LINGERING_IMAGE_MARKER)
            })
            .collect();
        if marked.is_empty() { others } else { marked }
    }

    /// The agent exits with the script's exit code; the lingering containers keep running
    /// until the pod is deleted, the others complete.
    async fn outlive_agent(&mut self) -> bool {
        let primary = self.primary_index();
        let lingering = self.lingering();
        let finished_at = now();
        let exit_code = self.script.exit_code;
        for (i, s) in self.snap.main.iter_mut().enumerate() {
            if lingering.contains(&i) {
                continue;
            }
            let started_at = match s {
                State::Running(at) => at.clone(),
                _ => finished_at.clone(),
            };
            let (code, why) = if i == primary && exit_code != 0 {
                (exit_code, "Error")
            } else {
                (if i == primary { exit_code } else { 0 }, "Completed")
            };
            *s = State::Terminated {
                exit_code: code,
                reason: why.to_owned(),
                started_at,
                finished_at: finished_at.clone(),
            };
        }
        self.write().await
    }

    fn primary_index(&self) -> usize {
        self.shape
            .main
            .iter()
            .position(|(n, _)| *n == self.shape.primary)
            .unwrap_or(0)
    }

    /// The primary container exits with `exit_code` (`reason`); the others complete.
    fn terminate_all(&mut self, exit_code: i32, reason: &str) {
        let primary = self.primary_index();
        let finished_at = now();
        for (i, s) in self.snap.main.iter_mut().enumerate() {
            let started_at = match s {
                State::Running(at) => at.clone(),
                _ => finished_at.clone(),
            };
            let (code, why) = if i == primary {
                (exit_code, reason)
            } else {
                (0, "Completed")
            };
            *s = State::Terminated {
                exit_code: code,
                reason: why.to_owned(),
                started_at,
                finished_at: finished_at.clone(),
            };
        }
    }

    async fn pulled(&self, name: &str, image: &str) {
        self.event(
            "Normal",
            "Pulling",
            &format!("Pulling image \"{image}\""),
            Some(name),
        )
        .await;
        let message = format!(
            "Successfully pulled image \"{image}\" in 1.2s (1.2s including waiting). Image \
             size: 4194304 bytes."
        );
        self.event("Normal", "Pulled", &message, Some(name)).await;
    }

    /// The container whose image matches `bad`, else the primary: `(in init, index)`.
    fn failing_container(&self, bad: impl Fn(&str) -> bool) -> (bool, usize) {
        if let Some(i) = self.shape.init.iter().position(|(_, img)| bad(img)) {
            return (true, i);
        }
        if let Some(i) = self.shape.main.iter().position(|(_, img)| bad(img)) {
            return (false, i);
        }
        (false, self.primary_index())
    }

    fn set_waiting(&mut self, at: (bool, usize), reason: &str, message: &str) {
        let state = State::Waiting(reason.to_owned(), Some(message.to_owned()));
        if at.0 {
            self.snap.init[at.1] = state;
        } else {
            let finished_at = now();
            for (s, sidecar) in self.snap.init.iter_mut().zip(&self.shape.sidecar) {
                *s = if *sidecar {
                    State::Running(finished_at.clone())
                } else {
                    State::Terminated {
                        exit_code: 0,
                        reason: "Completed".to_owned(),
                        started_at: finished_at.clone(),
                        finished_at: finished_at.clone(),
                    }
                };
            }
            self.snap.main[at.1] = state;
        }
    }

    fn container(&self, at: (bool, usize)) -> (String, String) {
        if at.0 {
            self.shape.init[at.1].clone()
        } else {
            self.shape.main[at.1].clone()
        }
    }

    async fn pull_failure(&mut self) -> bool {
        let at = self.failing_container(|i| i.contains(scenario::MISSING_IMAGE_MARKER));
        let (name, image) = self.container(at);
        let error = format!(
            "rpc error: code = NotFound desc = failed to pull and unpack image \"{image}\": \
             failed to resolve reference \"{image}\": {image}: not found"
        );
        let retry = self.kubelet.timings.pull_retry;
        if !self.pause(self.kubelet.timings.start).await {
            return false;
        }
        loop {
            self.event(
                "Normal",
                "Pulling",
                &format!("Pulling image \"{image}\""),
                Some(&name),
            )
            .await;
            self.set_waiting(at, "ErrImagePull", &error);
            if !self.write().await {
                return false;
            }
            self.event(
                "Warning",
                "Failed",
                &format!("Failed to pull image \"{image}\": {error}"),
                Some(&name),
            )
            .await;
            self.event("Warning", "Failed", "Error: ErrImagePull", Some(&name))
                .await;
            if !self.pause(retry).await {
                return false;
            }
            let message = format!("Back-off pulling image \"{image}\": ErrImagePull: {error}");
            self.set_waiting(at, "ImagePullBackOff", &message);
            if !self.write().await {
                return false;
            }
            self.event(
                "Normal",
                "BackOff",
                &format!("Back-off pulling image \"{image}\""),
                Some(&name),
            )
            .await;
            self.event("Warning", "Failed", "Error: ImagePullBackOff", Some(&name))
                .await;
            if !self.pause(retry).await {
                return false;
            }
        }
    }

    async fn invalid_image(&mut self) -> bool {
        let at = self.failing_container(|i| !scenario::is_valid_reference(i));
        let (name, image) = self.container(at);
        let message = format!(
            "Failed to apply default image tag \"{image}\": couldn't parse image name \
             \"{image}\": invalid reference format"
        );
        if !self.pause(self.kubelet.timings.start).await {
            return false;
        }
        self.set_waiting(at, "InvalidImageName", &message);
        if !self.write().await {
            return false;
        }
        self.event("Warning", "InspectFailed", &message, Some(&name))
            .await;
        self.event("Warning", "Failed", "Error: InvalidImageName", Some(&name))
            .await;
        true
    }

    /// The eviction manager evicts the pod: an `Evicted` event; condition `DisruptionTarget`
    /// written while the containers are as they were (a running pod stays `Running`, a
    /// starting one `Pending`); then its running containers killed (exit 137, sidecars too)
    /// and those that never started `ContainerStatusUnknown`; then `Failed`, reason
    /// `Evicted`.
    async fn evict(&mut self) -> bool {
        let message = "The node was low on resource: memory. Threshold quantity: 100Mi, \
                       available: 51200Ki. ";
        self.event("Warning", "Evicted", message, None).await;
        self.snap.disruption = Some(message.to_owned());
        if !self.write().await {
            return false;
        }
        let finished_at = now();
        for i in 0..self.shape.main.len() {
            let name = self.shape.main[i].0.clone();
            self.snap.main[i] = match self.snap.main[i].clone() {
                State::Running(started_at) => {
                    self.event(
                        "Normal",
                        "Killing",
                        &format!("Stopping container {name}"),
                        Some(&name),
                    )
                    .await;
                    State::Terminated {
                        exit_code: 137,
                        reason: "Error".to_owned(),
                        started_at,
                        finished_at: finished_at.clone(),
                    }
                }
                State::Waiting(..) => State::Unknown,
                done => done,
            };
        }
        for i in 0..self.shape.init.len() {
            if let State::Running(started_at) = self.snap.init[i].clone() {
                let name = self.shape.init[i].0.clone();
                self.event(
                    "Normal",
                    "Killing",
                    &format!("Stopping container {name}"),
                    Some(&name),
                )
                .await;
                self.snap.init[i] = State::Terminated {
                    exit_code: 137,
                    reason: "Error".to_owned(),
                    started_at,
                    finished_at: finished_at.clone(),
                };
            }
        }
        self.snap.pod_reason = Some(("Evicted".to_owned(), message.to_owned()));
        self.snap.force_failed = true;
        self.write().await
    }

    /// The pod is being deleted: stop what still runs, mark the pod terminal, and delete it
    /// with grace period 0, as the kubelet does.
    async fn finish_deletion(&mut self) {
        if self.gone || !self.deleting() {
            return;
        }
        let pod = self.pod();
        if !Self::terminal(&pod)
            && pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.as_ref())
                .is_some()
        {
            let containers = self.shape.main.iter().zip(&self.snap.main);
            let sidecars = self.shape.init.iter().zip(&self.snap.init).rev();
            let running: Vec<String> = containers
                .chain(sidecars)
                .filter(|(_, s)| matches!(s, State::Running(_)))
                .map(|((name, _), _)| name.clone())
                .collect();
            for name in &running {
                self.event(
                    "Normal",
                    "Killing",
                    &format!("Stopping container {name}"),
                    Some(name),
                )
                .await;
            }
            let finished_at = now();
            let stop = |s: &mut State, unstarted: State| {
                *s = match &*s {
                    State::Running(at) => State::Terminated {
                        exit_code: 143,
                        reason: "Error".to_owned(),
                        started_at: at.clone(),
                        finished_at: finished_at.clone(),
                    },
                    State::Waiting(..) => unstarted,
                    State::Terminated { .. } | State::Unknown => s.clone(),
                };
            };
            // A waiting init container stays waiting; a container that never started is
            // reported `ContainerStatusUnknown`, unless the init containers never finished.
            let initialized = self
                .snap
                .init
                .iter()
                .zip(&self.shape.sidecar)
                .all(|(s, sidecar)| *sidecar || matches!(s, State::Terminated { .. }));
            for s in &mut self.snap.init {
                let waiting = s.clone();
                stop(s, waiting);
            }
            for s in &mut self.snap.main {
                let unstarted = if initialized {
                    State::Unknown
                } else {
                    s.clone()
                };
                stop(s, unstarted);
            }
            self.snap.force_failed = true;
            if !self.write().await {
                return;
            }
        }
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(self.uid.clone()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        if let Err(e) = self.api.delete(&self.name, &params).await
            && !matches!(&e, kube::Error::Api(s) if s.code == 404 || s.code == 409)
        {
            tracing::warn!(pod = %self.name, error = %e, "fake kubelet: delete failed");
        }
    }
}
