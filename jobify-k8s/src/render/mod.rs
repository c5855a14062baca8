//! Rendering a decided job as a `batch/v1` Job: a pure function of the job, the template the
//! scheduler chose, the configuration and the controller id.
//!
//! ```text
//!  ScheduledJob ─┬─ plugin keys (plugin_keys) ─┐
//!  Template ─────┤                             ├─▶ pod layout (pod) ─▶ config patch ─▶ job's
//!  config ───────┘                             │     podSpecPatch (patch) ─▶ checks ─▶ Job
//! ```
//!
//! The step's `checkout` is combined with `[kubernetes.default_checkout_params]` (checkout)
//! before the layout is chosen: git mirrors or credentials need the `checkout` container.
//! The agent's grace periods (agent_env) are derived after the patches, from the pod's final
//! `terminationGracePeriodSeconds`.
//!
//! Errors are [`RenderError`]s phrased in the pipeline's terms; the scheduler rejects the job
//! with the message.

mod agent_config;
mod agent_env;
mod checkout;
mod command;
mod copy_agent;
mod error;
mod patch;
mod plugin_keys;
mod pod;
mod pod_user;
mod token;
mod typed;
mod workspace;

use std::collections::{BTreeMap, BTreeSet};

use jobify_core::{JobId, ScheduledJob, Template};
use k8s_openapi::api::batch::v1::{
    Job, JobSpec, PodFailurePolicy, PodFailurePolicyOnExitCodesRequirement,
    PodFailurePolicyOnPodConditionsPattern, PodFailurePolicyRule,
};
use k8s_openapi::api::core::v1::{PodSpec, PodTemplate, PodTemplateSpec, SecretKeySelector};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::config::{KubernetesConfig, ResourceClass, SAFE_TO_EVICT};
use crate::labels;

pub use agent_config::{DEFAULT_HOOKS_PATH, DEFAULT_PLUGINS_PATH, agent_config_env_conflicts};
pub use agent_env::{
    AGENT_DEFAULT_REDACTED_VARS, CANCEL_GRACE_PERIOD_ENV, REDACTED_VARS_ENV,
    SIGNAL_GRACE_PERIOD_ENV, grace_periods,
};
pub use checkout::{DEFAULT_GIT_MIRRORS_PATH, GIT_CREDENTIALS_VOLUMES, checkout_env_conflicts};
pub use command::{Interposer, quote_words};
pub use copy_agent::COPY_AGENT_CONTAINER;
pub use error::RenderError;
pub use plugin_keys::SUPPORTED_KEYS;
pub use pod::{AGENT_CONTAINER, CHECKOUT_CONTAINER, SIDECAR_RESTART_POLICY, is_native_sidecar};
pub use pod_user::CHECKOUT_USER;
pub use workspace::{WORKSPACE_PATH, WORKSPACE_VOLUME, sub_path_expr_problem};

pub use token::{
    AGENT_TOKEN_SECRET_KEY, TOKEN_SECRET_SUFFIX, render_token_secret, token_secret_name,
};

use plugin_keys::PodRequest;

/// The name of the Job that runs `job`: `<prefix><uuid>`.
pub fn job_name(config: &KubernetesConfig, job: JobId) -> String {
    format!("{}{job}", config.job_name_prefix)
}

/// The name of the PodTemplate `job`'s `kubernetes` plugin starts its pod from
/// (`podTemplate`), which must be fetched from jobify's namespace and passed to
/// [`render_job_with`]; `None` when the step names none, or also gives a `podSpec`, which
/// wins as in agent-stack-k8s.
pub fn pod_template_name(job: &ScheduledJob) -> Option<&str> {
    match &job.plugin {
        jobify_core::PluginConfig::Present(plugin) => plugin_keys::pod_template_name(plugin),
        _ => None,
    }
}

/// How [`render_job_with`] renders a job, beyond the job, its template and the configuration.
#[derive(Clone, Copy, Debug, Default)]
pub struct RenderOptions<'a> {
    /// Give the job an agent token of its own, as [`render_job_with_own_token`] does.
    pub own_token: bool,
    /// The PodTemplate [`pod_template_name`] names, as fetched from jobify's namespace. Only
    /// its `template.spec` is used, as the job's `podSpec` (agent-stack-k8s ignores the
    /// template's metadata too).
    pub pod_template: Option<&'a PodTemplate>,
}

/// Renders the Job that runs `job` in the pod `template` asks for.
///
/// A job naming a PodTemplate (see [`pod_template_name`]) needs [`render_job_with`].
///
/// # Errors
/// A [`RenderError`] naming what in the job's `kubernetes` plugin (or the requested resource
/// class) is wrong.
pub fn render_job(
    job: &ScheduledJob,
    template: &Template,
    config: &KubernetesConfig,
    controller_id: &str,
) -> Result<Job, RenderError> {
    render_job_with(
        job,
        template,
        config,
        controller_id,
        RenderOptions::default(),
    )
}

/// Renders the Job that runs `job` as [`render_job`] does, with `options`: the PodTemplate
/// the job's `podTemplate` names, and whether the job has an agent token of its own.
///
/// # Errors
/// As [`render_job`] and [`render_job_with_own_token`]; also
/// [`RenderError::PodTemplateNotGiven`] when the job names a PodTemplate that `options` does
/// not hold.
pub fn render_job_with(
    job: &ScheduledJob,
    template: &Template,
    config: &KubernetesConfig,
    controller_id: &str,
    options: RenderOptions<'_>,
) -> Result<Job, RenderError> {
    render(job, template, config, controller_id, options)
}

/// Renders the Job that runs `job` with an agent token of its own: the same Job as
/// [`render_job`], except that the `agent` container reads `BUILDKITE_AGENT_TOKEN` from the
/// Secret [`token_secret_name`] of the Job's name (key [`AGENT_TOKEN_SECRET_KEY`]), which
/// [`render_token_secret`] renders, and the Job's annotation
/// [`AGENT_TOKEN_SECRET`](labels::AGENT_TOKEN_SECRET) names it. No container other than the
/// agent reads that Secret, and nothing in the pod refers to `kubernetes.agent_token_secret`.
///
/// # Errors
/// As [`render_job`]; also when a patch points the agent's token elsewhere or makes a
/// container read either token Secret.
pub fn render_job_with_own_token(
    job: &ScheduledJob,
    template: &Template,
    config: &KubernetesConfig,
    controller_id: &str,
) -> Result<Job, RenderError> {
    let options = RenderOptions {
        own_token: true,
        pod_template: None,
    };
    render(job, template, config, controller_id, options)
}

fn render(
    job: &ScheduledJob,
    template: &Template,
    config: &KubernetesConfig,
    controller_id: &str,
    options: RenderOptions<'_>,
) -> Result<Job, RenderError> {
    let own_token = options.own_token;
    let mut request = PodRequest::from_plugin(&job.plugin)?;
    if let Some(name) = &request.pod_template {
        request.pod_spec = Some(pod_template_spec(name, options.pod_template)?);
    }
    let class = resource_class(job, template, config)?;
    let name = job_name(config, job.id);
    let agent_token = if own_token {
        token::token_selector(&name)
    } else {
        SecretKeySelector {
            name: config.agent_token_secret.name.clone(),
            key: config.agent_token_secret.key.clone(),
            optional: None,
        }
    };
    let checkout = checkout::Checkout::new(config, &request.checkout);
    let inputs = pod::Inputs {
        job,
        config,
        request: &request,
        checkout: &checkout,
        class,
        agent_token: &agent_token,
    };
    let image = step_image(job);
    // A checkout with git mirrors or credentials is set up in the `checkout` container, which
    // only the Kubernetes-exec layout has (agent-stack-k8s always renders that layout).
    let exec_layout = request.pod_spec.is_some()
        || *template == Template::PodSpec
        || image.is_some()
        || checkout.needs_container();
    let spec = if exec_layout {
        pod::exec_pod(&inputs)?
    } else {
        pod::agent_pod(&inputs)
    };
    let (mut spec, patched) = apply_patches(spec, config, &request, image)?;
    // From the grace the pod ends up with: agent-stack-k8s reads it before the patches, so a
    // patched grace there leaves the agent timed for the unpatched one.
    agent_env::add_grace_periods(&mut spec);
    // From the user the pod ends up with, for the same reason (agent-stack-k8s issue #326).
    pod_user::apply(&mut spec);
    check_pod(&spec, patched, job.id)?;
    if own_token {
        let after = if patched { " after podSpecPatch" } else { "" };
        token::check_token_refs(&spec, after, &agent_token, &config.agent_token_secret.name)?;
    }

    let (labels, mut annotations) = metadata(job, &request, config, controller_id)?;
    if let Some(name) = &request.pod_template {
        annotations.insert(labels::POD_TEMPLATE.to_owned(), name.clone());
    }
    let mut job_annotations = annotations.clone();
    if own_token {
        job_annotations.insert(
            labels::AGENT_TOKEN_SECRET.to_owned(),
            agent_token.name.clone(),
        );
    }
    let active_deadline = request
        .active_deadline_seconds
        .unwrap_or_else(|| seconds(config.active_deadline));
    Ok(Job {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(config.namespace.clone()),
            labels: Some(labels.clone()),
            annotations: Some(job_annotations),
            ..ObjectMeta::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(i32::from(config.pod_attempts.max(1)) - 1),
            pod_failure_policy: Some(pod_failure_policy()),
            pod_replacement_policy: Some("Failed".to_owned()),
            ttl_seconds_after_finished: Some(
                i32::try_from(config.ttl_after_finished.as_secs()).unwrap_or(i32::MAX),
            ),
            active_deadline_seconds: Some(active_deadline),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    annotations: Some(annotations),
                    ..ObjectMeta::default()
                }),
                spec: Some(spec),
            },
            ..JobSpec::default()
        }),
        status: None,
    })
}

/// The `template.spec` of the PodTemplate `name`, as a `podSpec`; an error when `fetched` is
/// not that PodTemplate.
fn pod_template_spec(
    name: &str,
    fetched: Option<&PodTemplate>,
) -> Result<serde_json::Value, RenderError> {
    let fetched = fetched
        .filter(|t| t.metadata.name.as_deref() == Some(name))
        .ok_or_else(|| RenderError::PodTemplateNotGiven {
            name: name.to_owned(),
        })?;
    let mut spec = fetched
        .template
        .as_ref()
        .and_then(|t| t.spec.clone())
        .unwrap_or_default();
    // The API server defaults a PodTemplate's `restartPolicy` to `Always`; a Job's pod runs
    // once, and agent-stack-k8s sets `Never` over the template's.
    spec.restart_policy = None;
    serde_json::to_value(spec).map_err(|err| RenderError::InvalidField {
        path: format!("podTemplate `{name}`"),
        message: err.to_string(),
    })
}

/// Which failed pods the Job controller replaces, by the first rule that matches. A pod
/// disrupted (evicted, preempted, its node lost: condition `DisruptionTarget`) counts towards
/// `backoffLimit` and is replaced after the Job controller's back-off (10 s, doubling), even
/// though the kubelet reports its killed containers with exit code 137; jobify stops a Job
/// whose pod was disrupted after it started, and Buildkite refuses a second agent for a job
/// already acquired. Any other pod in which a container exited non-zero (the agent ran and
/// Buildkite knows the job's fate, or an init container failed and would fail again) fails
/// the Job at once. A pod that ended with no container exit code (deleted while pending)
/// counts and is replaced.
fn pod_failure_policy() -> PodFailurePolicy {
    PodFailurePolicy {
        rules: vec![
            PodFailurePolicyRule {
                action: "Count".to_owned(),
                on_exit_codes: None,
                on_pod_conditions: Some(vec![PodFailurePolicyOnPodConditionsPattern {
                    type_: "DisruptionTarget".to_owned(),
                    status: "True".to_owned(),
                }]),
            },
            PodFailurePolicyRule {
                action: "FailJob".to_owned(),
                on_exit_codes: Some(PodFailurePolicyOnExitCodesRequirement {
                    operator: "NotIn".to_owned(),
                    values: vec![0],
                    container_name: None,
                }),
                on_pod_conditions: None,
            },
        ],
    }
}

/// The agent tags for `job`: one per agent query rule, so the agent is sure to match the job
/// it acquires, then the configured extra tags whose key the rules do not use.
///
/// A tag is a value, not a pattern: a rule value with `*` becomes a concrete value that
/// matches it (the stars dropped: `linux-*` -> `linux-`), and `*` alone becomes `true`.
pub fn agent_tags(job: &ScheduledJob, extra: &[String]) -> Vec<String> {
    let mut tags: Vec<String> = job
        .rules
        .iter()
        .map(|rule| {
            let concrete = rule.value.replace('*', "");
            let value = if concrete.is_empty() {
                "true"
            } else {
                &concrete
            };
            format!("{}={value}", rule.key)
        })
        .collect();
    for tag in extra {
        let key = tag.split_once('=').map_or(tag.as_str(), |(k, _)| k);
        if job.rules.get(key).is_none() {
            tags.push(tag.clone());
        }
    }
    tags
}

/// The agent tag a step picks its resource class with, as in agent-stack-k8s
/// (`agents: { resource_class: large }`).
pub use jobify_core::rules::RESOURCE_CLASS_TAG;

/// The job's resource class: the one the policy's template names, else the one its
/// `resource_class` agent tag names, else `default_resource_class`. The operator's policy
/// wins over the pipeline's tag; the tag over the default, as in agent-stack-k8s.
fn resource_class<'a>(
    job: &ScheduledJob,
    template: &Template,
    config: &'a KubernetesConfig,
) -> Result<Option<&'a ResourceClass>, RenderError> {
    let (name, from_tag) = match template {
        Template::Default { name: Some(name) } => (Some(name.as_str()), false),
        Template::Default { name: None } | Template::PodSpec => {
            match job.rules.get(RESOURCE_CLASS_TAG).filter(|v| !v.is_empty()) {
                Some(tag) => (Some(tag), true),
                None => (config.default_resource_class.as_deref(), false),
            }
        }
    };
    name.map(|name| {
        config.resource_classes.get(name).ok_or_else(|| {
            if from_tag {
                RenderError::UnknownResourceClassTag {
                    name: name.to_owned(),
                    defined: config.resource_classes.keys().cloned().collect(),
                }
            } else {
                RenderError::UnknownResourceClass {
                    name: name.to_owned(),
                }
            }
        })
    })
    .transpose()
}

/// The variable Buildkite sets from a step's `image:` attribute.
pub const STEP_IMAGE_ENV: &str = "BUILDKITE_IMAGE";

/// The image the step's `image:` attribute asks for, if any.
pub fn step_image(job: &ScheduledJob) -> Option<&str> {
    job.env.non_empty(STEP_IMAGE_ENV)
}

/// The controller's patch, then the step's `image:` on every command container, then the
/// job's `podSpecPatch`, in agent-stack-k8s' order: the step's image wins over the
/// controller's patch and the `podSpec`, and the job's own patch wins over the image. Says
/// whether anything was patched.
fn apply_patches(
    mut spec: PodSpec,
    config: &KubernetesConfig,
    request: &PodRequest,
    image: Option<&str>,
) -> Result<(PodSpec, bool), RenderError> {
    let mut patched = false;
    let interposer = request
        .command_params
        .interposer
        .unwrap_or(config.default_command_params.interposer);
    if let Some(patch) = &config.pod_spec_patch {
        spec = patch_spec(&spec, patch, interposer)?;
        patched = true;
    }
    if let Some(image) = image {
        for container in &mut spec.containers {
            if pod::is_command_container(container) {
                container.image = Some(image.to_owned());
            }
        }
    }
    if let Some(patch) = &request.pod_spec_patch {
        spec = patch_spec(&spec, patch, interposer)?;
        patched = true;
    }
    Ok((spec, patched))
}

/// Applies `patch` to `spec`. A patch that gives a command container a `command` or `args`
/// changes the script it runs, made by `interposer` as for the `podSpec` (agent-stack-k8s
/// does the same): the container itself keeps running the agent's bootstrap.
fn patch_spec(
    spec: &PodSpec,
    patch: &serde_json::Value,
    interposer: Interposer,
) -> Result<PodSpec, RenderError> {
    let mut json = serde_json::to_value(spec).map_err(|err| RenderError::InvalidField {
        path: "podSpec".to_owned(),
        message: err.to_string(),
    })?;
    let patch = command_as_script(spec, patch, interposer)?;
    patch::strategic_merge(&mut json, &patch);
    typed::from_json(&json, "podSpecPatch")
}

/// `patch` with every `command`/`args` it gives a command container turned into that
/// container's `BUILDKITE_COMMAND`.
fn command_as_script(
    spec: &PodSpec,
    patch: &serde_json::Value,
    interposer: Interposer,
) -> Result<serde_json::Value, RenderError> {
    let mut patch = patch.clone();
    let Some(containers) = patch
        .get_mut("containers")
        .and_then(serde_json::Value::as_array_mut)
    else {
        return Ok(patch);
    };
    for (index, container) in containers.iter_mut().enumerate() {
        let Some(fields) = container.as_object_mut() else {
            continue;
        };
        let is_command = fields
            .get("name")
            .and_then(serde_json::Value::as_str)
            .and_then(|name| spec.containers.iter().find(|c| c.name == name))
            .is_some_and(pod::is_command_container);
        if !is_command {
            continue;
        }
        let mut words = |field: &str| -> Result<Vec<String>, RenderError> {
            match fields.remove(field) {
                None | Some(serde_json::Value::Null) => Ok(Vec::new()),
                Some(value) => {
                    typed::from_json(&value, &format!("podSpecPatch.containers[{index}].{field}"))
                }
            }
        };
        let command = words("command")?;
        let args = words("args")?;
        if command.is_empty() && args.is_empty() {
            continue;
        }
        let script = serde_json::json!({"name": "BUILDKITE_COMMAND",
                                        "value": interposer.script(&command, &args)});
        match fields
            .get_mut("env")
            .and_then(serde_json::Value::as_array_mut)
        {
            Some(env) => env.push(script),
            None => {
                fields.insert("env".to_owned(), serde_json::Value::Array(vec![script]));
            }
        }
    }
    Ok(patch)
}

/// Checks the controller's own `pod_spec_patch` once, at configuration time, by applying it
/// to the agent pod: a patch that cannot make a pod spec would otherwise fail every job.
pub(crate) fn check_config_patch(patch: &serde_json::Value) -> Result<(), RenderError> {
    let probe = PodSpec {
        containers: vec![k8s_openapi::api::core::v1::Container {
            name: AGENT_CONTAINER.to_owned(),
            image: Some("probe".to_owned()),
            ..Default::default()
        }],
        restart_policy: Some("Never".to_owned()),
        ..PodSpec::default()
    };
    let mut json = serde_json::to_value(&probe).map_err(|err| RenderError::InvalidField {
        path: String::new(),
        message: err.to_string(),
    })?;
    patch::strategic_merge(&mut json, patch);
    typed::from_json::<PodSpec>(&json, "").map(drop)
}

/// Reads Kubernetes objects (tolerations, `envFrom` sources, volume mounts) from
/// configuration, refusing fields Kubernetes does not know (serde alone would drop a misspelt
/// `operater`, and the object would silently mean something else).
pub(crate) fn strict_k8s<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned + serde::Serialize,
{
    use serde::Deserialize as _;
    let value = serde_json::Value::deserialize(deserializer)?;
    typed::from_json(&value, "").map_err(serde::de::Error::custom)
}

/// Checks the final pod for what Kubernetes would refuse at create time with a less helpful
/// message, or accept and never run.
fn check_pod(spec: &PodSpec, patched: bool, job: JobId) -> Result<(), RenderError> {
    let after = if patched { " after podSpecPatch" } else { "" };
    check_agent(spec, after, job)?;
    let mut names = BTreeSet::new();
    let volumes: BTreeSet<&str> = spec
        .volumes
        .iter()
        .flatten()
        .map(|v| v.name.as_str())
        .collect();
    let init = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| ("initContainers", c));
    let main = spec.containers.iter().map(|c| ("containers", c));
    let mut index_of: BTreeMap<&str, usize> = BTreeMap::new();
    for (list, container) in init.chain(main) {
        let index = index_of.entry(list).or_insert(0);
        let here = format!("{list}[{index}] (`{}`){after}", container.name);
        *index += 1;
        if container.name.is_empty() {
            return Err(RenderError::InvalidField {
                path: here,
                message: "a container needs a name".to_owned(),
            });
        }
        if !names.insert(container.name.as_str()) {
            return Err(RenderError::DuplicateContainer {
                name: container.name.clone(),
            });
        }
        if container.image.as_deref().is_none_or(str::is_empty) {
            return Err(RenderError::MissingImage { path: here });
        }
        for (i, var) in container.env.iter().flatten().enumerate() {
            if var.name == AGENT_TOKEN_ENV && var.value.is_some() {
                // The value itself is never repeated: it would reach the pipeline's log.
                return Err(RenderError::InvalidField {
                    path: format!("{here}.env[{i}]"),
                    message: format!(
                        "sets {AGENT_TOKEN_ENV} to a literal value, which would write the \
                         token into the Job manifest; jobify gives the agent its token from \
                         the Secret in kubernetes.agent_token_secret"
                    ),
                });
            }
        }
        for (i, mount) in container.volume_mounts.iter().flatten().enumerate() {
            if !volumes.contains(mount.name.as_str()) {
                return Err(RenderError::MissingVolume {
                    path: format!("{here}.volumeMounts[{i}]"),
                    volume: mount.name.clone(),
                });
            }
        }
    }
    if spec.restart_policy.as_deref() != Some("Never") {
        return Err(RenderError::InvalidField {
            path: format!("restartPolicy{after}"),
            message: "must be Never: a Buildkite job runs once per pod".to_owned(),
        });
    }
    Ok(())
}

/// The agent token's variable: only ever a `secretKeyRef`, never a literal value.
pub(crate) const AGENT_TOKEN_ENV: &str = "BUILDKITE_AGENT_TOKEN";

/// Variables jobify sets on the agent container of every Job.
const AGENT_ENV: &[&str] = &[
    "BUILDKITE_AGENT_NAME",
    "BUILDKITE_AGENT_ACQUIRE_JOB",
    "BUILDKITE_AGENT_TAGS",
    "BUILDKITE_KUBERNETES_EXEC",
    "BUILDKITE_CONTAINER_COUNT",
];

/// Why `name` cannot be an extra environment variable of the agent container (config
/// `kubernetes.env`), if it cannot: the token would land in every manifest, or jobify sets it.
pub fn own_agent_env(name: &str) -> Option<String> {
    if name == AGENT_TOKEN_ENV {
        return Some(format!(
            "would write the agent token into every Job manifest: put it in a Secret and name \
             it in kubernetes.agent_token_secret, and remove {AGENT_TOKEN_ENV} from \
             kubernetes.env"
        ));
    }
    AGENT_ENV
        .contains(&name)
        .then(|| format!("{name} is set by jobify for each Job; remove it from kubernetes.env"))
}

/// The `agent` container must survive the patches, still acquiring exactly this job: without
/// it the pod would run until its deadline while the job is never acquired.
fn check_agent(spec: &PodSpec, after: &str, job: JobId) -> Result<(), RenderError> {
    let Some((index, agent)) = spec
        .containers
        .iter()
        .enumerate()
        .find(|(_, c)| c.name == AGENT_CONTAINER)
    else {
        return Err(RenderError::InvalidField {
            path: format!("containers{after}"),
            message: format!(
                "has no `{AGENT_CONTAINER}` container; it acquires and runs the job, so patch \
                 its fields but do not remove it"
            ),
        });
    };
    let command = ["buildkite-agent"];
    let args = [
        "start".to_owned(),
        "--acquire-job".to_owned(),
        job.to_string(),
    ];
    if agent.command.as_deref() != Some(&command.map(str::to_owned)[..])
        || agent.args.as_deref() != Some(&args[..])
    {
        return Err(RenderError::InvalidField {
            path: format!("containers[{index}] (`{AGENT_CONTAINER}`){after}"),
            message: "changes the command or args of the agent container, which must run \
                      `buildkite-agent start --acquire-job <job uuid>`; give the step its \
                      command in the pipeline instead"
                .to_owned(),
        });
    }
    Ok(())
}

type Metadata = (BTreeMap<String, String>, BTreeMap<String, String>);

/// Labels and annotations of the Job and its pods, by increasing precedence: the
/// `safe-to-evict: "false"` annotation, the configuration's `default_metadata`, the step's
/// plugin `metadata`, then jobify's own `jobify.dev/` keys (which neither may set).
fn metadata(
    job: &ScheduledJob,
    request: &PodRequest,
    config: &KubernetesConfig,
    controller_id: &str,
) -> Result<Metadata, RenderError> {
    let mut labels = config.default_metadata.labels.clone();
    let mut annotations = BTreeMap::from([(SAFE_TO_EVICT.to_owned(), "false".to_owned())]);
    annotations.extend(config.default_metadata.annotations.clone());
    for (key, value) in &request.metadata.labels {
        if is_reserved(key) {
            return Err(RenderError::ReservedMetadata {
                kind: "labels",
                key: key.clone(),
            });
        }
        if !labels::is_label_value(value) {
            return Err(RenderError::InvalidLabel {
                key: key.clone(),
                value: value.clone(),
            });
        }
        labels.insert(key.clone(), value.clone());
    }
    for (key, value) in &request.metadata.annotations {
        if is_reserved(key) {
            return Err(RenderError::ReservedMetadata {
                kind: "annotations",
                key: key.clone(),
            });
        }
        annotations.insert(key.clone(), value.clone());
    }

    labels.insert(
        labels::CONTROLLER.to_owned(),
        labels::label_value(controller_id),
    );
    labels.insert(labels::JOB_UUID.to_owned(), job.id.to_string());
    labels.insert(
        labels::PIPELINE.to_owned(),
        labels::label_value(&job.pipeline),
    );
    annotations.insert(labels::PIPELINE_ANNOTATION.to_owned(), job.pipeline.clone());
    if let Some(queue) = job.queue() {
        labels.insert(labels::QUEUE.to_owned(), labels::label_value(queue));
        annotations.insert(labels::QUEUE_ANNOTATION.to_owned(), queue.to_owned());
    }
    annotations.insert(labels::ORGANIZATION.to_owned(), job.organization.clone());
    annotations.insert(labels::BRANCH.to_owned(), job.build.branch.clone());
    annotations.insert(labels::PRIORITY.to_owned(), job.priority.to_string());
    if let Some(url) = &job.build.url {
        annotations.insert(labels::BUILD_URL.to_owned(), url.clone());
    }
    if let Some(url) = &job.url {
        annotations.insert(labels::JOB_URL.to_owned(), url.clone());
    }
    Ok((labels, annotations))
}

fn is_reserved(key: &str) -> bool {
    key.starts_with("jobify.dev/")
}

fn seconds(duration: std::time::Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
}
