//! The two pod layouts a job runs in.
//!
//! - **Agent pod** (a job without a `podSpec`): one `agent` container that runs
//!   `buildkite-agent start --acquire-job <uuid>` and the job's command itself.
//! - **Kubernetes-exec pod** (a job with a `podSpec`, agent-stack-k8s' layout): an init
//!   container `copy-agent` prepares the shared workspace volume (an emptyDir unless
//!   `kubernetes.workspace_volume` names another) and copies `buildkite-agent` and
//!   `tini-static` into it ([`copy_agent`]); the
//!   `agent` container acquires the job with `BUILDKITE_KUBERNETES_EXEC=true` and drives the
//!   `checkout` container and one container per `podSpec` container, each running
//!   `buildkite-agent kubernetes-bootstrap` from the workspace, over a socket in it.
//!
//! In both layouts the plugin's `sidecars` are **native sidecars** (Kubernetes 1.29+), as
//! agent-stack-k8s renders them: init containers with `restartPolicy: Always`, after every
//! other init container, so they start before the agent, keep running beside it, and are
//! stopped by the kubelet once the agent and command containers have ended. The pod then
//! completes by the exit codes of its regular containers instead of staying Running.

use std::collections::BTreeMap;

use jobify_core::ScheduledJob;
use k8s_openapi::api::core::v1::{
    Container, EnvFromSource, EnvVar, EnvVarSource, ObjectFieldSelector, PodSpec,
    ResourceRequirements, SecretKeySelector, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::config::{KubernetesConfig, ResourceClass};
use crate::render::agent_config::{self, Role};
use crate::render::agent_env;
use crate::render::checkout::Checkout;
use crate::render::copy_agent;
use crate::render::plugin_keys::PodRequest;
use crate::render::typed::from_json;
use crate::render::workspace::{self, WORKSPACE_PATH};
use crate::render::{RenderError, agent_tags, step_image};

/// Name of the container that runs `buildkite-agent start`.
pub const AGENT_CONTAINER: &str = "agent";
/// Name of the container that checks the repository out (Kubernetes-exec pods).
pub const CHECKOUT_CONTAINER: &str = "checkout";

/// Everything the layouts read.
pub(crate) struct Inputs<'a> {
    pub(crate) job: &'a ScheduledJob,
    pub(crate) config: &'a KubernetesConfig,
    pub(crate) request: &'a PodRequest,
    /// The step's `checkout` over the controller's defaults.
    pub(crate) checkout: &'a Checkout,
    pub(crate) class: Option<&'a ResourceClass>,
    /// Where the agent container reads `BUILDKITE_AGENT_TOKEN` from: the shared Secret of
    /// `kubernetes.agent_token_secret`, or the job's own token Secret.
    pub(crate) agent_token: &'a SecretKeySelector,
}

/// The pod spec of a job without a `podSpec`: the agent runs the job itself.
pub(crate) fn agent_pod(inputs: &Inputs<'_>) -> PodSpec {
    let mut agent = agent_container(inputs, None);
    agent.resources = inputs.class.map(resources);
    let mut spec = PodSpec {
        containers: vec![agent],
        ..PodSpec::default()
    };
    add_sidecars(&mut spec, inputs, false);
    agent_config::add_volumes(&mut spec, &inputs.config.agent_config);
    add_extra_mounts(&mut spec, inputs);
    pod_settings(&mut spec, inputs);
    spec
}

/// The pod spec of a job with a `podSpec` (or the Kubernetes-exec layout chosen by the
/// scheduler): agent-stack-k8s' layout around the job's containers.
pub(crate) fn exec_pod(inputs: &Inputs<'_>) -> Result<PodSpec, RenderError> {
    let mut spec: PodSpec = match &inputs.request.pod_spec {
        Some(json) => from_json(json, "podSpec")?,
        None => PodSpec::default(),
    };
    if let Some(policy) = spec.restart_policy.as_deref()
        && policy != "Never"
    {
        return Err(RenderError::InvalidField {
            path: "podSpec.restartPolicy".to_owned(),
            message: format!("is `{policy}`, but a Buildkite job runs once: use Never"),
        });
    }
    // As in agent-stack-k8s, a pod without containers (`podSpec: {}`, or none at all) runs
    // the step's command in one container of the agent image (or of the step's `image:`).
    if spec.containers.is_empty() {
        spec.containers.push(Container {
            name: "container-0".to_owned(),
            image: Some(inputs.config.agent_image.clone()),
            ..Container::default()
        });
    }
    let user_containers = std::mem::take(&mut spec.containers);
    let checkout = !inputs.checkout.skip;
    let count = user_containers.len() + usize::from(checkout);

    let mut containers = vec![agent_container(inputs, Some(count))];
    let mut next_id = 0;
    if checkout {
        containers.push(checkout_container(inputs, next_id));
        next_id += 1;
    }
    for (index, container) in user_containers.into_iter().enumerate() {
        containers.push(command_container(inputs, container, index, next_id)?);
        next_id += 1;
    }
    spec.containers = containers;

    let mut init = vec![copy_agent::container(inputs.config)];
    init.extend(spec.init_containers.take().unwrap_or_default());
    spec.init_containers = Some(init);
    add_sidecars(&mut spec, inputs, true);
    spec.volumes
        .get_or_insert_with(Vec::new)
        .push(workspace::volume(inputs.config));
    agent_config::add_volumes(&mut spec, &inputs.config.agent_config);
    if checkout {
        inputs.checkout.add_volumes(&mut spec)?;
    }
    add_extra_mounts(&mut spec, inputs);
    pod_settings(&mut spec, inputs);
    Ok(spec)
}

/// The restart policy that makes an init container a native sidecar.
pub const SIDECAR_RESTART_POLICY: &str = "Always";

/// Appends the plugin's `sidecars` to the init containers as native sidecars (restart policy
/// `Always`), after the init containers already there, sharing the workspace when there is one.
/// An unnamed sidecar is named `sidecar-<index>`.
fn add_sidecars(spec: &mut PodSpec, inputs: &Inputs<'_>, workspace: bool) {
    if inputs.request.sidecars.is_empty() {
        return;
    }
    let init = spec.init_containers.get_or_insert_with(Vec::new);
    for (index, sidecar) in inputs.request.sidecars.iter().enumerate() {
        let mut sidecar = sidecar.clone();
        // Pipelines written for agent-stack-k8s often leave sidecars unnamed (Buildkite's
        // docs do); they are named by their place, as there.
        if sidecar.name.is_empty() {
            sidecar.name = format!("sidecar-{index}");
        }
        sidecar.restart_policy = Some(SIDECAR_RESTART_POLICY.to_owned());
        // The same order as command containers: the controller's sources, then the step's.
        let defaults = &inputs.config.default_sidecar_params;
        let params = &inputs.request.sidecar_params;
        add_env_from(&mut sidecar, &defaults.env_from);
        add_env_from(&mut sidecar, &params.env_from);
        add_env_from(&mut sidecar, &inputs.request.git_env_from);
        if workspace {
            add_mount(&mut sidecar, workspace::mount(inputs.config));
        }
        for mount in params
            .extra_volume_mounts
            .iter()
            .chain(&defaults.extra_volume_mounts)
        {
            add_mount(&mut sidecar, mount.clone());
        }
        init.push(sidecar);
    }
}

/// Whether `container`, an init container, is a native sidecar: it keeps running beside the
/// regular containers instead of running to completion before them.
pub fn is_native_sidecar(container: &Container) -> bool {
    container.restart_policy.as_deref() == Some(SIDECAR_RESTART_POLICY)
}

fn agent_container(inputs: &Inputs<'_>, exec_containers: Option<usize>) -> Container {
    let Inputs { job, config, .. } = inputs;
    let uuid = job.id.to_string();
    let token = inputs.agent_token.clone();
    let mut env = vec![
        EnvVar {
            name: "BUILDKITE_AGENT_TOKEN".to_owned(),
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(token),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        },
        EnvVar {
            name: "BUILDKITE_AGENT_NAME".to_owned(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: "metadata.name".to_owned(),
                    api_version: None,
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        },
        env_var("BUILDKITE_AGENT_ACQUIRE_JOB", &uuid),
        env_var(
            "BUILDKITE_AGENT_TAGS",
            &agent_tags(job, &config.agent_tags).join(","),
        ),
    ];
    if let Some(count) = exec_containers {
        env.push(env_var("BUILDKITE_KUBERNETES_EXEC", "true"));
        env.push(env_var("BUILDKITE_CONTAINER_COUNT", &count.to_string()));
        env.push(env_var("BUILDKITE_BUILD_PATH", "/workspace/build"));
        env.push(env_var(
            "BUILDKITE_SOCKETS_PATH",
            &copy_agent::sockets_path(AGENT_CONTAINER),
        ));
    }
    env.extend(agent_env::redacted_vars(config));
    env.extend(agent_config::agent_env(&config.agent_config));
    env.extend(config.env.iter().map(|(k, v)| env_var(k, v)));
    // The checkout's options (the step's over the controller's defaults) win over the
    // configuration's `env`, as in agent-stack-k8s.
    for (name, value) in &inputs.checkout.agent_env {
        match env.iter_mut().find(|var| var.name == *name) {
            Some(var) => var.value = Some(value.clone()),
            None => env.push(env_var(name, value)),
        }
    }
    let mut mounts: Vec<VolumeMount> = exec_containers
        .map(|_| workspace::mount(config))
        .into_iter()
        .collect();
    mounts.extend(agent_config::mounts(&config.agent_config, Role::Agent));
    Container {
        name: AGENT_CONTAINER.to_owned(),
        image: Some(config.agent_image.clone()),
        image_pull_policy: config.image_pull_policy.clone(),
        command: Some(vec!["buildkite-agent".to_owned()]),
        args: Some(vec!["start".to_owned(), "--acquire-job".to_owned(), uuid]),
        env: Some(env),
        volume_mounts: (!mounts.is_empty()).then_some(mounts),
        ..Container::default()
    }
}

fn checkout_container(inputs: &Inputs<'_>, id: usize) -> Container {
    let config = inputs.config;
    let mut container = Container {
        name: CHECKOUT_CONTAINER.to_owned(),
        image: Some(config.agent_image.clone()),
        image_pull_policy: config.image_pull_policy.clone(),
        command: Some(checkout_bootstrap()),
        working_dir: Some(WORKSPACE_PATH.to_owned()),
        env: Some(vec![
            env_var("BUILDKITE_CONTAINER_ID", &id.to_string()),
            env_var("BUILDKITE_BOOTSTRAP_PHASES", "plugin,checkout"),
            env_var(
                "BUILDKITE_SOCKETS_PATH",
                &copy_agent::sockets_path(CHECKOUT_CONTAINER),
            ),
        ]),
        volume_mounts: Some(vec![workspace::mount(config)]),
        ..Container::default()
    };
    add_env_from(&mut container, inputs.checkout.env_from());
    add_env_from(&mut container, &inputs.request.git_env_from);
    for mount in inputs
        .checkout
        .mounts()
        .into_iter()
        .chain(agent_config::mounts(&config.agent_config, Role::Checkout))
    {
        add_mount(&mut container, mount);
    }
    inputs
        .checkout
        .set_command(&mut container, &checkout_bootstrap());
    container
}

/// What the `checkout` container runs: the agent's bootstrap from the workspace, without
/// tini, as in agent-stack-k8s.
fn checkout_bootstrap() -> Vec<String> {
    [copy_agent::AGENT_IN_WORKSPACE, "kubernetes-bootstrap"]
        .map(str::to_owned)
        .to_vec()
}

fn command_container(
    inputs: &Inputs<'_>,
    mut container: Container,
    index: usize,
    id: usize,
) -> Result<Container, RenderError> {
    // The step's `image:` fills (and replaces) a command container's image.
    if container.image.as_deref().is_none_or(str::is_empty) && step_image(inputs.job).is_none() {
        return Err(RenderError::MissingImage {
            path: format!("podSpec.containers[{index}]"),
        });
    }
    if container.name.is_empty() {
        container.name = format!("container-{index}");
    }
    // As in agent-stack-k8s: a container without `command` runs the step's command (its
    // `args` alone say nothing), one with `command` runs the script its interposer makes.
    let command = match container.command.take().filter(|c| !c.is_empty()) {
        Some(lines) => {
            let args = container.args.take().unwrap_or_default();
            let interposer = inputs
                .request
                .command_params
                .interposer
                .unwrap_or(inputs.config.default_command_params.interposer);
            interposer.script(&lines, &args)
        }
        None => inputs.job.command.clone().unwrap_or_default(),
    };
    let (command_line, args) = copy_agent::bootstrap(inputs.config);
    container.command = Some(command_line);
    container.args = args;
    container
        .working_dir
        .get_or_insert_with(|| WORKSPACE_PATH.to_owned());
    let mut env: Vec<EnvVar> = container
        .env
        .take()
        .unwrap_or_default()
        .into_iter()
        .filter(|var| !OWN_COMMAND_ENV.contains(&var.name.as_str()))
        .collect();
    env.push(env_var("BUILDKITE_CONTAINER_ID", &id.to_string()));
    env.push(env_var("BUILDKITE_BOOTSTRAP_PHASES", "plugin,command"));
    env.push(env_var(COMMAND_ENV, &command));
    env.push(env_var(
        "BUILDKITE_SOCKETS_PATH",
        &copy_agent::sockets_path(&container.name),
    ));
    container.env = Some(env);
    // As in agent-stack-k8s, sources are added controller first, then the step's (a later
    // source wins a variable both define); a mount path is taken once, the step's first.
    let defaults = &inputs.config.default_command_params;
    let params = &inputs.request.command_params;
    add_env_from(&mut container, &defaults.env_from);
    add_env_from(&mut container, &params.env_from);
    add_env_from(&mut container, &inputs.request.git_env_from);
    if container.resources.is_none() {
        container.resources = inputs.class.map(resources);
    }
    add_mount(&mut container, workspace::mount(inputs.config));
    for mount in params
        .extra_volume_mounts
        .iter()
        .chain(&defaults.extra_volume_mounts)
        .cloned()
        .chain(agent_config::mounts(
            &inputs.config.agent_config,
            Role::Command,
        ))
    {
        add_mount(&mut container, mount);
    }
    Ok(container)
}

/// Whether `container` is one of the job's command containers: it runs the step's script.
pub(crate) fn is_command_container(container: &Container) -> bool {
    container
        .env
        .iter()
        .flatten()
        .any(|var| var.name == COMMAND_ENV)
}

const COMMAND_ENV: &str = "BUILDKITE_COMMAND";

fn add_env_from(container: &mut Container, sources: &[EnvFromSource]) {
    if !sources.is_empty() {
        container
            .env_from
            .get_or_insert_with(Vec::new)
            .extend(sources.iter().cloned());
    }
}

/// Variables jobify sets on command containers; the pipeline's own values are replaced.
const OWN_COMMAND_ENV: &[&str] = &[
    "BUILDKITE_CONTAINER_ID",
    "BUILDKITE_BOOTSTRAP_PHASES",
    "BUILDKITE_COMMAND",
    "BUILDKITE_SOCKETS_PATH",
];

fn add_mount(container: &mut Container, mount: VolumeMount) {
    let mounts = container.volume_mounts.get_or_insert_with(Vec::new);
    if !mounts.iter().any(|m| m.mount_path == mount.mount_path) {
        mounts.push(mount);
    }
}

fn add_extra_mounts(spec: &mut PodSpec, inputs: &Inputs<'_>) {
    let sidecars = spec
        .init_containers
        .iter_mut()
        .flatten()
        .filter(|c| is_native_sidecar(c));
    for container in spec.containers.iter_mut().chain(sidecars) {
        for mount in &inputs.request.extra_volume_mounts {
            add_mount(container, mount.clone());
        }
    }
}

/// Pod-level settings from the configuration and the resource class. The job's own
/// `podSpec` values win over the configuration's.
fn pod_settings(spec: &mut PodSpec, inputs: &Inputs<'_>) {
    let config = inputs.config;
    spec.restart_policy = Some("Never".to_owned());
    spec.termination_grace_period_seconds.get_or_insert(
        i64::try_from(config.termination_grace_period.as_secs()).unwrap_or(i64::MAX),
    );
    if spec.service_account_name.is_none() {
        spec.service_account_name = config.service_account_name.clone();
    }
    let mut node_selector: BTreeMap<String, String> = config.node_selector.clone();
    let mut tolerations = config.tolerations.clone();
    if let Some(class) = inputs.class {
        node_selector.extend(class.node_selector.clone());
        tolerations.extend(class.tolerations.iter().cloned());
        spec.resources = pod_resources(class, spec.resources.take());
    }
    if let Some(own) = spec.node_selector.take() {
        node_selector.extend(own);
    }
    if !node_selector.is_empty() {
        spec.node_selector = Some(node_selector);
    }
    if let Some(own) = spec.tolerations.take() {
        tolerations.extend(own);
    }
    if !tolerations.is_empty() {
        spec.tolerations = Some(tolerations);
    }
}

fn resources(class: &ResourceClass) -> ResourceRequirements {
    ResourceRequirements {
        requests: quantities(&class.requests),
        limits: quantities(&class.limits),
        ..ResourceRequirements::default()
    }
}

/// The pod's own resources: the class's `pod_requests` and `pod_limits`, under what the
/// `podSpec` sets itself (the step's value wins for a resource both name, as a container's
/// own `resources` win over the class's).
fn pod_resources(
    class: &ResourceClass,
    own: Option<ResourceRequirements>,
) -> Option<ResourceRequirements> {
    let own = own.unwrap_or_default();
    let merge = |class: &BTreeMap<String, String>, own: Option<BTreeMap<String, Quantity>>| {
        let mut merged = quantities(class).unwrap_or_default();
        merged.extend(own.unwrap_or_default());
        (!merged.is_empty()).then_some(merged)
    };
    let merged = ResourceRequirements {
        requests: merge(&class.pod_requests, own.requests),
        limits: merge(&class.pod_limits, own.limits),
        ..own
    };
    (merged != ResourceRequirements::default()).then_some(merged)
}

fn quantities(map: &BTreeMap<String, String>) -> Option<BTreeMap<String, Quantity>> {
    (!map.is_empty()).then(|| {
        map.iter()
            .map(|(k, v)| (k.clone(), Quantity(v.clone())))
            .collect()
    })
}

fn env_var(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: Some(value.to_owned()),
        value_from: None,
    }
}
