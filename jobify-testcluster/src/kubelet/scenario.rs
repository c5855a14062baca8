//! What the simulated kubelet does with a pod: its scenario, chosen by the test.
//!
//! The vocabulary is `jobify-sim`'s (`Scenarios`): the same label values and image markers
//! select the same behaviour here, so a test written against the simulator reads the same
//! against the real control plane.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;

/// The label (or annotation) naming a pod's scenario, as in `jobify-sim`.
pub const SCENARIO_LABEL: &str = "sim.jobify.dev/scenario";
/// The annotation naming a pod's scenario (the same values as [`SCENARIO_LABEL`]).
pub const SCENARIO_ANNOTATION: &str = "jobify-testcluster/scenario";
/// The annotation setting how long a pod's containers run (`1500ms`, `2s`, `1m`).
pub const RUN_FOR_ANNOTATION: &str = "jobify-testcluster/run-for";
/// The annotation setting the exit code of a pod's main container.
pub const EXIT_CODE_ANNOTATION: &str = "jobify-testcluster/exit-code";

/// An image containing this cannot be pulled (`ErrImagePull`, then `ImagePullBackOff`).
pub const MISSING_IMAGE_MARKER: &str = "does-not-exist";
/// An image containing this is OOM-killed after it ran.
pub const OOM_IMAGE_MARKER: &str = "oomkill";
/// An image containing this takes [`Timings::slow_start`] longer to start.
pub const SLOW_IMAGE_MARKER: &str = "slow-start";
/// A run-to-completion init container whose image contains this exits 1
/// ([`Scenario::InitContainerFailure`]), as in `jobify-sim`.
pub const FAILING_INIT_IMAGE_MARKER: &str = "init-fails";
/// A regular container whose image contains this keeps running after the agent exited
/// ([`Scenario::OutlivesAgent`]), as in `jobify-sim`.
pub const LINGERING_IMAGE_MARKER: &str = "runs-forever";

/// What happens to a pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// Bound, started, runs for the script's `run_for`, exits with its `exit_code`
    /// (`Succeeded` for 0, else `Failed`).
    Normal,
    /// An image cannot be pulled: `ErrImagePull` and `ImagePullBackOff` in turn, forever.
    ImagePullFailure,
    /// An image reference does not parse: `InvalidImageName`, forever.
    InvalidImageName,
    /// A container cannot be created (missing Secret or ConfigMap): the message.
    CreateContainerConfigError(String),
    /// Never bound: `PodScheduled=False`, reason `Unschedulable`, a `FailedScheduling` event.
    Unschedulable,
    /// Bound, but its containers stay `ContainerCreating` until it is deleted.
    StaysPending,
    /// Like [`Scenario::Normal`] after a long `ContainerCreating` ([`Timings::slow_start`]).
    SlowStart,
    /// A run-to-completion init container exits with this code (the first whose image has
    /// [`FAILING_INIT_IMAGE_MARKER`], else the first): the pod fails (`restartPolicy:
    /// Never`), the sidecars started before it are stopped, its containers never start.
    InitContainerFailure(i32),
    /// The main container runs, then is OOM-killed (exit 137, reason `OOMKilled`).
    OomKilled,
    /// The pod runs for the script's `run_for`, then the kubelet evicts it: condition
    /// `DisruptionTarget` first, then its containers are killed (exit 137) and it is
    /// `Failed` with reason `Evicted`.
    Evicted,
    /// The pod is evicted before its containers start: its containers stay
    /// `ContainerCreating` for the script's `run_for`, then `DisruptionTarget`, then `Failed`
    /// with reason `Evicted` and the containers `ContainerStatusUnknown` (never started).
    EvictedBeforeStart,
    /// Like [`Scenario::Normal`], but the first native sidecar exits with this code once
    /// the containers run, and the kubelet restarts it (`restartCount` 1, `lastState`
    /// terminated with this code): no init container failure.
    SidecarCrashes(i32),
    /// The primary (agent) container exits with the script's `exit_code` after `run_for`,
    /// but the other regular containers (those whose image has [`LINGERING_IMAGE_MARKER`],
    /// else all the others) keep running, so the pod stays `Running` until it is deleted.
    OutlivesAgent,
}

impl Scenario {
    /// The scenario a label value names (`jobify-sim`'s values plus this crate's own).
    pub fn from_name(name: &str) -> Option<Scenario> {
        Some(match name {
            "normal" => Scenario::Normal,
            "image-pull-failure" | "image-pull-error" => Scenario::ImagePullFailure,
            "invalid-image-name" => Scenario::InvalidImageName,
            "create-container-config-error" => Scenario::CreateContainerConfigError(
                "secret \"missing-secret\" not found".to_owned(),
            ),
            "unschedulable" => Scenario::Unschedulable,
            "stays-pending" | "pending" => Scenario::StaysPending,
            "slow-start" => Scenario::SlowStart,
            "init-container-failure" => Scenario::InitContainerFailure(1),
            "oom-killed" => Scenario::OomKilled,
            "evicted" => Scenario::Evicted,
            "evicted-before-start" | "evicted-pending" => Scenario::EvictedBeforeStart,
            "outlives-agent" | "runs-forever" => Scenario::OutlivesAgent,
            "sidecar-crashes" => Scenario::SidecarCrashes(1),
            _ => return None,
        })
    }
}

/// A scenario with its parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodScript {
    /// What happens.
    pub scenario: Scenario,
    /// How long the containers run before they exit (or are OOM-killed or evicted).
    pub run_for: Duration,
    /// The main container's exit code ([`Scenario::Normal`] and [`Scenario::SlowStart`]).
    pub exit_code: i32,
}

impl PodScript {
    /// The default script of this scenario: runs for [`DEFAULT_RUN_FOR`], exits 0.
    pub fn new(scenario: Scenario) -> Self {
        PodScript {
            scenario,
            run_for: DEFAULT_RUN_FOR,
            exit_code: 0,
        }
    }

    /// Runs for `run_for`.
    pub fn running_for(mut self, run_for: Duration) -> Self {
        self.run_for = run_for;
        self
    }

    /// Exits with `exit_code`.
    pub fn exiting(mut self, exit_code: i32) -> Self {
        self.exit_code = exit_code;
        self
    }
}

impl Default for PodScript {
    fn default() -> Self {
        PodScript::new(Scenario::Normal)
    }
}

/// How long a pod's containers run unless told otherwise.
pub const DEFAULT_RUN_FOR: Duration = Duration::from_secs(1);

/// How long each step of the simulated kubelet takes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timings {
    /// From binding to the containers being created (`ContainerCreating`, image pulls).
    pub start: Duration,
    /// The extra `ContainerCreating` time of [`Scenario::SlowStart`].
    pub slow_start: Duration,
    /// Between `ErrImagePull` and `ImagePullBackOff` and back.
    pub pull_retry: Duration,
    /// The back-off before a container is restarted (`restartPolicy: OnFailure`).
    pub restart_backoff: Duration,
}

impl Default for Timings {
    fn default() -> Self {
        Timings {
            start: Duration::from_millis(200),
            slow_start: Duration::from_secs(5),
            pull_retry: Duration::from_secs(1),
            restart_backoff: Duration::from_secs(1),
        }
    }
}

/// The scenario a pod's own metadata and spec select, with what it needs checked against
/// the API server (`missing`: the first Secret or ConfigMap its env refers to that does not
/// exist, as the kubelet's message words it).
///
/// In order: a scenario label or annotation; an invalid image reference; an image with
/// [`MISSING_IMAGE_MARKER`]; `missing`; a `nodeSelector` the node's labels do not satisfy;
/// [`FAILING_INIT_IMAGE_MARKER`] on a run-to-completion init container;
/// [`LINGERING_IMAGE_MARKER`] on a regular container; [`OOM_IMAGE_MARKER`];
/// [`SLOW_IMAGE_MARKER`]; else normal. The run time and exit code come
/// from [`RUN_FOR_ANNOTATION`] and [`EXIT_CODE_ANNOTATION`].
pub(crate) fn classify(
    pod: &Pod,
    node_labels: &std::collections::BTreeMap<String, String>,
    missing: Option<String>,
) -> PodScript {
    let meta = &pod.metadata;
    let annotations = meta.annotations.clone().unwrap_or_default();
    let labels = meta.labels.clone().unwrap_or_default();
    let mut script = PodScript::default();
    if let Some(run_for) = annotations
        .get(RUN_FOR_ANNOTATION)
        .and_then(|v| parse_duration(v))
    {
        script.run_for = run_for;
    }
    if let Some(code) = annotations
        .get(EXIT_CODE_ANNOTATION)
        .and_then(|v| v.trim().parse().ok())
    {
        script.exit_code = code;
    }
    let named = [
        labels.get(SCENARIO_LABEL),
        annotations.get(SCENARIO_ANNOTATION),
        annotations.get(SCENARIO_LABEL),
    ]
    .into_iter()
    .flatten()
    .find_map(|n| Scenario::from_name(n));
    if let Some(scenario) = named {
        script.scenario = scenario;
        return script;
    }
    let images: Vec<String> = all_containers(pod)
        .iter()
        .map(|c| c.image.clone().unwrap_or_default())
        .collect();
    let selector = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_selector.clone())
        .unwrap_or_default();
    script.scenario = if images.iter().any(|i| !is_valid_reference(i)) {
        Scenario::InvalidImageName
    } else if images.iter().any(|i| i.contains(MISSING_IMAGE_MARKER)) {
        Scenario::ImagePullFailure
    } else if let Some(message) = missing {
        Scenario::CreateContainerConfigError(message)
    } else if selector.iter().any(|(k, v)| node_labels.get(k) != Some(v)) {
        Scenario::Unschedulable
    } else if init_images(pod, false)
        .iter()
        .any(|i| i.contains(FAILING_INIT_IMAGE_MARKER))
    {
        Scenario::InitContainerFailure(1)
    } else if pod.spec.iter().flat_map(|s| &s.containers).any(|c| {
        c.image
            .as_deref()
            .is_some_and(|i| i.contains(LINGERING_IMAGE_MARKER))
    }) {
        Scenario::OutlivesAgent
    } else if images.iter().any(|i| i.contains(OOM_IMAGE_MARKER)) {
        Scenario::OomKilled
    } else if images.iter().any(|i| i.contains(SLOW_IMAGE_MARKER)) {
        Scenario::SlowStart
    } else {
        Scenario::Normal
    };
    script
}

/// The images of the pod's init containers: the native sidecars (`restartPolicy: Always`)
/// when `sidecars`, else the run-to-completion ones.
pub(crate) fn init_images(pod: &Pod, sidecars: bool) -> Vec<String> {
    pod.spec
        .iter()
        .flat_map(|s| s.init_containers.iter().flatten())
        .filter(|c| is_sidecar(c) == sidecars)
        .map(|c| c.image.clone().unwrap_or_default())
        .collect()
}

/// Whether an init container is a native sidecar: `restartPolicy: Always`.
pub(crate) fn is_sidecar(container: &k8s_openapi::api::core::v1::Container) -> bool {
    container.restart_policy.as_deref() == Some("Always")
}

/// Init containers, then containers.
pub(crate) fn all_containers(pod: &Pod) -> Vec<&k8s_openapi::api::core::v1::Container> {
    let Some(spec) = pod.spec.as_ref() else {
        return Vec::new();
    };
    spec.init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter())
        .collect()
}

/// The Secrets and ConfigMaps the pod's containers need (env `valueFrom` and `envFrom`,
/// not marked optional): `(is_secret, name)`.
pub(crate) fn required_references(pod: &Pod) -> Vec<(bool, String)> {
    let mut refs = Vec::new();
    for c in all_containers(pod) {
        for e in c.env.iter().flatten() {
            let Some(from) = &e.value_from else { continue };
            if let Some(s) = &from.secret_key_ref
                && s.optional != Some(true)
            {
                refs.push((true, s.name.clone()));
            }
            if let Some(m) = &from.config_map_key_ref
                && m.optional != Some(true)
            {
                refs.push((false, m.name.clone()));
            }
        }
        for e in c.env_from.iter().flatten() {
            if let Some(s) = &e.secret_ref
                && s.optional != Some(true)
            {
                refs.push((true, s.name.clone()));
            }
            if let Some(m) = &e.config_map_ref
                && m.optional != Some(true)
            {
                refs.push((false, m.name.clone()));
            }
        }
    }
    refs
}

/// `1500ms`, `2s`, `1m`; a bare number is seconds.
fn parse_duration(value: &str) -> Option<Duration> {
    let value = value.trim();
    let (number, unit) = value
        .find(|c: char| !c.is_ascii_digit())
        .map_or((value, "s"), |i| value.split_at(i));
    let n: u64 = number.parse().ok()?;
    match unit {
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        "m" => Some(Duration::from_secs(n * 60)),
        _ => None,
    }
}

/// Whether `image` parses as a container image reference: the simulator's rule, so both
/// kubelets sort the same images into `InvalidImageName`.
pub(crate) use jobify_sim::kubernetes::is_valid_image_reference as is_valid_reference;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;

    fn pod(value: serde_json::Value) -> Pod {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn scenarios_follow_labels_images_and_selectors() {
        let node: BTreeMap<String, String> =
            [("kubernetes.io/os".to_owned(), "linux".to_owned())].into();
        let c = |image: &str| {
            pod(
                json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a", "image": image}]}}),
            )
        };
        assert_eq!(
            classify(&c("busybox"), &node, None).scenario,
            Scenario::Normal
        );
        assert_eq!(
            classify(&c("Not A Valid::Image"), &node, None).scenario,
            Scenario::InvalidImageName
        );
        assert_eq!(
            classify(&c("registry.example/does-not-exist:1"), &node, None).scenario,
            Scenario::ImagePullFailure
        );
        assert_eq!(
            classify(&c("app:oomkill"), &node, None).scenario,
            Scenario::OomKilled
        );
        assert_eq!(
            classify(&c("busybox"), &node, Some("secret \"s\" not found".into())).scenario,
            Scenario::CreateContainerConfigError("secret \"s\" not found".into())
        );
        let labelled = pod(json!({
            "metadata": {"name": "p", "labels": {SCENARIO_LABEL: "evicted"},
                         "annotations": {RUN_FOR_ANNOTATION: "250ms", EXIT_CODE_ANNOTATION: "3"}},
            "spec": {"containers": [{"name": "a", "image": "busybox"}], "nodeSelector": {"gpu": "x"}}
        }));
        assert_eq!(
            classify(&labelled, &node, None),
            PodScript {
                scenario: Scenario::Evicted,
                run_for: Duration::from_millis(250),
                exit_code: 3
            }
        );
        let unschedulable = pod(json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "a", "image": "busybox"}], "nodeSelector": {"gpu": "x"}}
        }));
        assert_eq!(
            classify(&unschedulable, &node, None).scenario,
            Scenario::Unschedulable
        );
    }

    #[test]
    fn image_markers_select_an_init_failure_and_containers_that_outlive_the_agent() {
        let node = BTreeMap::new();
        let init = |image: &str, policy: Option<&str>| {
            pod(json!({"metadata": {"name": "p"}, "spec": {
                "initContainers": [{"name": "i", "image": image, "restartPolicy": policy}],
                "containers": [{"name": "agent", "image": "agent:3"}]}}))
        };
        assert_eq!(
            classify(&init("migrate:init-fails", None), &node, None).scenario,
            Scenario::InitContainerFailure(1)
        );
        assert_eq!(
            classify(&init("sidecar:init-fails", Some("Always")), &node, None).scenario,
            Scenario::Normal,
            "a native sidecar is no init container that fails"
        );
        let lingering = pod(json!({"metadata": {"name": "p"}, "spec": {"containers": [
            {"name": "agent", "image": "agent:3"},
            {"name": "dind", "image": "docker:27-dind-runs-forever"}]}}));
        assert_eq!(
            classify(&lingering, &node, None).scenario,
            Scenario::OutlivesAgent
        );
        assert_eq!(
            Scenario::from_name("evicted-before-start"),
            Some(Scenario::EvictedBeforeStart)
        );
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("1500ms"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1m"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("x"), None);
    }
}
