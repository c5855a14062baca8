//! How a simulated cluster behaves: timings, scenarios, faults, the agent seam.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::agent::AgentApi;
use crate::fault::FaultConfig;

/// Configuration of a [`KubeSim`](super::KubeSim). `Default` gives a fast, fault-free
/// cluster of three nodes whose pods succeed after [`Timings::default_run_for`].
#[derive(Clone, Default)]
pub struct KubeSimConfig {
    /// The Buildkite side of agent pods: when set, a pod whose agent container starts
    /// acquires its job here and runs it as the job's script says.
    pub agent: Option<Arc<dyn AgentApi>>,
    /// Injected faults, drawn per endpoint group (see [`EndpointGroup`]) from streams seeded
    /// by `faults.seed`, so a group's faults do not depend on the traffic of other groups.
    pub faults: FaultConfig,
    /// The endpoint groups faults apply to; empty means all of them.
    pub fault_groups: Vec<EndpointGroup>,
    /// How pods are sorted into scenarios.
    pub scenarios: Scenarios,
    /// How long things take.
    pub timings: Timings,
    /// Changes retained per resource for watches to resume from; older resourceVersions get
    /// `410 Expired`. `0` means the default (1000).
    pub watch_window: usize,
}

impl fmt::Debug for KubeSimConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KubeSimConfig")
            .field("agent", &self.agent.as_ref().map(|_| "AgentApi"))
            .field("faults", &self.faults)
            .field("fault_groups", &self.fault_groups)
            .field("scenarios", &self.scenarios)
            .field("timings", &self.timings)
            .field("watch_window", &self.watch_window)
            .finish()
    }
}

/// Groups of endpoints that draw faults from their own seeded stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EndpointGroup {
    /// `batch/v1` jobs.
    Jobs,
    /// `v1` pods.
    Pods,
    /// `v1` events.
    Events,
    /// `coordination.k8s.io/v1` leases.
    Leases,
    /// `v1` secrets.
    Secrets,
    /// `v1` podtemplates.
    PodTemplates,
    /// `/version`, `/api`, `/apis`.
    Discovery,
}

/// Timings of the simulated control plane and kubelet. Defaults are a few milliseconds so
/// that tests stay fast; `e2e`-style runs may want seconds.
#[derive(Clone, Debug, PartialEq)]
pub struct Timings {
    /// From pod creation to `PodScheduled=True`.
    pub schedule_delay: Duration,
    /// Pulling an image (and between pull retries' `ErrImagePull`).
    pub pull_delay: Duration,
    /// From image pulled to containers running.
    pub pod_start_delay: Duration,
    /// Extra container-creating time of the slow-start scenario.
    pub slow_start_delay: Duration,
    /// How long a pod's main container runs when no [`AgentApi`] script says otherwise.
    pub default_run_for: Duration,
    /// How long an agent that cannot acquire its job takes to exit 1.
    pub agent_failure_delay: Duration,
    /// Delay between `ErrImagePull` and `ImagePullBackOff`, and between pull retries.
    pub image_pull_backoff: Duration,
    /// How long the garbage collector takes to delete the dependents of a deleted owner.
    pub gc_delay: Duration,
    /// How long a deleted, running pod takes to terminate (its grace period in the sim).
    pub termination_delay: Duration,
    /// The job controller's delay before replacing a failed pod.
    pub job_backoff: Duration,
    /// Interval of watch `BOOKMARK` events.
    pub bookmark_interval: Duration,
}

impl Default for Timings {
    fn default() -> Self {
        Timings {
            schedule_delay: Duration::from_millis(5),
            pull_delay: Duration::from_millis(10),
            pod_start_delay: Duration::from_millis(5),
            slow_start_delay: Duration::from_secs(2),
            default_run_for: Duration::from_millis(50),
            agent_failure_delay: Duration::from_millis(10),
            image_pull_backoff: Duration::from_millis(100),
            gc_delay: Duration::from_millis(10),
            termination_delay: Duration::from_millis(10),
            job_backoff: Duration::from_millis(20),
            bookmark_interval: Duration::from_secs(5),
        }
    }
}

/// How pods are sorted into scenarios. The label [`Scenarios::label`] on a pod (from its
/// Job's template) names a scenario explicitly; otherwise the pod's spec decides, in this
/// order: an image that is not a valid reference → [`Scenario::InvalidImageName`]; an image
/// containing [`Scenarios::missing_image_marker`] → [`Scenario::ImagePullFailure`]; an env
/// `secretKeyRef`/`configMapKeyRef` or `envFrom` naming one of [`Scenarios::missing_secrets`]
/// / [`Scenarios::missing_config_maps`] → [`Scenario::CreateContainerConfigError`]; a
/// `nodeSelector` the nodes' labels do not satisfy → [`Scenario::Unschedulable`]; an image
/// containing [`Scenarios::oom_image_marker`] → [`Scenario::OomKilled`]; an image containing
/// [`Scenarios::slow_image_marker`] → [`Scenario::SlowStart`]; else [`Scenario::Normal`].
///
/// Two markers change a pod whatever its scenario: an init container (not a native sidecar)
/// whose image contains [`Scenarios::failing_init_image_marker`] exits 1 and fails the pod
/// before its containers are created; a container whose image contains
/// [`Scenarios::lingering_image_marker`] keeps running after the main container exited, so
/// the pod stays `Running` until it is deleted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scenarios {
    /// Label whose value names a scenario (`normal`, `image-pull-failure`,
    /// `invalid-image-name`, `create-container-config-error`, `unschedulable`, `slow-start`,
    /// `oom-killed`). Default `sim.jobify.dev/scenario`.
    pub label: String,
    /// Default `does-not-exist`.
    pub missing_image_marker: String,
    /// Default `oomkill` (e.g. `app:oomkill`).
    pub oom_image_marker: String,
    /// Default `slow-start` (e.g. `app:slow-start`).
    pub slow_image_marker: String,
    /// Default `init-fails` (e.g. `migrate:init-fails`).
    pub failing_init_image_marker: String,
    /// Default `runs-forever` (e.g. `postgres:runs-forever`).
    pub lingering_image_marker: String,
    /// Secrets that do not exist. Default `["missing-secret"]`.
    pub missing_secrets: Vec<String>,
    /// ConfigMaps that do not exist. Default `["missing-config"]`.
    pub missing_config_maps: Vec<String>,
    /// Labels every simulated node has. Default `kubernetes.io/os=linux`,
    /// `kubernetes.io/arch=amd64`.
    pub node_labels: BTreeMap<String, String>,
    /// Number of simulated nodes (named `sim-node-1`...). Default 3.
    pub nodes: usize,
}

impl Default for Scenarios {
    fn default() -> Self {
        Scenarios {
            label: "sim.jobify.dev/scenario".to_string(),
            missing_image_marker: "does-not-exist".to_string(),
            oom_image_marker: "oomkill".to_string(),
            slow_image_marker: "slow-start".to_string(),
            failing_init_image_marker: "init-fails".to_string(),
            lingering_image_marker: "runs-forever".to_string(),
            missing_secrets: vec!["missing-secret".to_string()],
            missing_config_maps: vec!["missing-config".to_string()],
            node_labels: [
                ("kubernetes.io/os", "linux"),
                ("kubernetes.io/arch", "amd64"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            nodes: 3,
        }
    }
}

/// What happens to a pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// Scheduled, pulled, runs, exits as its script (or the default) says.
    Normal,
    /// `ErrImagePull`, then `ImagePullBackOff`, repeating; stays `Pending`.
    ImagePullFailure,
    /// `InvalidImageName`; stays `Pending`.
    InvalidImageName,
    /// `CreateContainerConfigError` (the named secret or config map is missing); stays
    /// `Pending`.
    CreateContainerConfigError(String),
    /// `PodScheduled=False`, reason `Unschedulable`, a `FailedScheduling` event; stays
    /// `Pending`.
    Unschedulable,
    /// Like normal, after [`Timings::slow_start_delay`] more of `ContainerCreating`.
    SlowStart,
    /// Runs, then the main container is `OOMKilled` with exit code 137.
    OomKilled,
}
