//! The agent-stack-k8s compatibility corpus: pipelines written for Buildkite's own controller,
//! one row per plugin example (agent-stack-k8s' `internal/integration/fixtures/*.yaml` and its
//! scheduler tests) or controller setting, with what the rendered pod must have there.
//! `tests/compat.rs` renders every row and checks its wants; `tests/real_cluster.rs` creates
//! every row's Job on a real API server with strict field validation.

use std::collections::BTreeMap;

use jobify_core::{ScheduledJob, Template};
use jobify_k8s::RenderError;
use jobify_k8s::config::{
    AgentConfig, DefaultCheckoutParams, DefaultCommandParams, DefaultMetadata,
    DefaultSidecarParams, GitMirrors, KubernetesConfig, ResourceClass,
};
use jobify_k8s::render::{Interposer, RenderOptions, pod_template_name, render_job_with};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::PodTemplate;
use serde_json::{Value, json};

use super::fixtures::{JobExt, scheduled};

pub const AGENT_IMAGE: &str = "ghcr.io/buildkite/agent:3";

/// A property the rendered Job must have.
#[derive(Debug)]
pub enum Want {
    /// The regular containers, in order.
    Containers(&'static [&'static str]),
    /// The native sidecars (init containers with `restartPolicy: Always`), in order.
    NativeSidecars(&'static [&'static str]),
    /// The script a command container runs (`BUILDKITE_COMMAND`).
    Script(&'static str, &'static str),
    /// A container's image.
    Image(&'static str, &'static str),
    /// A container (regular or init) gets `envFrom` this Secret.
    EnvFromSecret(&'static str, &'static str),
    /// A container gets `envFrom` this ConfigMap.
    EnvFromConfigMap(&'static str, &'static str),
    /// A container does not get `envFrom` at all.
    NoEnvFrom(&'static str),
    /// A container mounts something at this path, once.
    Mount(&'static str, &'static str),
    /// A container mounts this volume at this path.
    MountOf(&'static str, &'static str, &'static str),
    /// A container mounts nothing at this path.
    NoMount(&'static str, &'static str),
    /// A container has this variable.
    Env(&'static str, &'static str, &'static str),
    /// A container does not have this variable.
    NoEnv(&'static str, &'static str),
    /// The pod defines this volume.
    Volume(&'static str),
    /// The pod does not define this volume.
    NoVolume(&'static str),
    /// The pod defines this `secret` volume of this Secret.
    SecretVolume(&'static str, &'static str),
    /// A container runs `/bin/sh -c` with a script that has this line.
    ShellLine(&'static str, &'static str),
    /// The pod defines this volume with this source (`emptyDir`, `ephemeral`...).
    VolumeSource(&'static str, &'static str),
    /// A container mounts this path with this `subPathExpr`.
    SubPathExpr(&'static str, &'static str, &'static str),
    /// The Job and its pod have this label.
    Label(&'static str, &'static str),
    /// The Job and its pod have this annotation.
    Annotation(&'static str, &'static str),
    /// A container's `resources.limits` has this quantity.
    Limit(&'static str, &'static str, &'static str),
    /// A container's PID 1 is (`true`) or is not (`false`) `/workspace/tini-static`.
    UnderTini(&'static str, bool),
    /// A script a container runs (one of its arguments) has this line (trimmed).
    RunsLine(&'static str, &'static str),
    /// No script a container runs has this text.
    NoLineWith(&'static str, &'static str),
    /// A container runs as this user (its own `runAsUser`, else the pod's; `None`: unset).
    RunsAs(&'static str, Option<i64>),
    /// The pod's own `resources` (pod-level resources): `requests` or `limits`, a
    /// resource, its quantity.
    PodResource(&'static str, &'static str, &'static str),
    /// The pod's `nodeSelector` has this label.
    NodeSelector(&'static str, &'static str),
    /// The Job's `activeDeadlineSeconds`.
    ActiveDeadline(i64),
}

use Want::*;

/// One pipeline written for agent-stack-k8s.
pub struct Row {
    /// The row's name (and manifest file name).
    pub name: &'static str,
    /// Where agent-stack-k8s shows this behaviour.
    pub source: &'static str,
    pub job: ScheduledJob,
    pub config: KubernetesConfig,
    pub wants: Vec<Want>,
}

/// A step on `queue=kubernetes` running `command`.
pub fn step(command: &str) -> ScheduledJob {
    let mut job = scheduled("queue=kubernetes");
    job.command = Some(command.to_owned());
    job
}

pub trait StepExt {
    /// With the step's `image:` attribute (`BUILDKITE_IMAGE`).
    fn image(self, image: &str) -> Self;
}

impl StepExt for ScheduledJob {
    fn image(mut self, image: &str) -> Self {
        self.env.insert("BUILDKITE_IMAGE", image);
        self
    }
}

pub fn config() -> KubernetesConfig {
    KubernetesConfig::default()
}

pub fn with_interposer(interposer: Interposer) -> KubernetesConfig {
    KubernetesConfig {
        default_command_params: DefaultCommandParams {
            interposer,
            ..DefaultCommandParams::default()
        },
        ..config()
    }
}

pub fn with_metadata(labels: &[(&str, &str)], annotations: &[(&str, &str)]) -> KubernetesConfig {
    let map = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    KubernetesConfig {
        default_metadata: DefaultMetadata {
            labels: map(labels),
            annotations: map(annotations),
        },
        ..config()
    }
}

pub fn plugin(job: ScheduledJob, config: Value) -> ScheduledJob {
    job.with_plugin(config)
}

pub fn rows() -> Vec<Row> {
    let mut rows = interposer_rows();
    rows.extend(image_rows());
    rows.extend(metadata_rows());
    rows.extend(plugin_key_rows());
    rows.extend(resource_class_rows());
    rows.extend(params_rows());
    rows.extend(checkout_rows());
    rows.extend(git_rows());
    rows.extend(agent_env_rows());
    rows.extend(workspace_rows());
    rows.extend(agent_config_rows());
    rows.extend(workspace_setup_rows());
    rows.extend(controller_rows());
    rows.extend(pod_template_rows());
    rows
}

/// The PodTemplate the corpus' operator created in jobify's namespace: agent-stack-k8s'
/// `.buildkite/fixtures/podtemplates.yaml`, as the API server stores it (its `restartPolicy`
/// defaulted to `Always`), with labels on its metadata, which agent-stack-k8s ignores.
pub const POD_TEMPLATE: &str = "integration-tests-pod-template";

/// The PodTemplates of the corpus, by name.
pub fn pod_templates() -> Vec<PodTemplate> {
    let template = json!({
        "apiVersion": "v1",
        "kind": "PodTemplate",
        "metadata": {"name": POD_TEMPLATE, "labels": {"team": "platform"}},
        "template": {
            "metadata": {"labels": {"from-template": "yes"}},
            "spec": {
                "restartPolicy": "Always",
                "containers": [{"name": "templated", "image": "alpine:latest",
                                "env": [{"name": "TEST_POD_TEMPLATE", "value": "kunanyi"}]}]
            }
        }
    });
    vec![serde_json::from_value(template).expect("a PodTemplate")]
}

/// Renders `row` as the jobifier would: with the corpus PodTemplate its step names, if any.
pub fn render(row: &Row, controller_id: &str) -> Result<Job, RenderError> {
    let templates = pod_templates();
    let pod_template = pod_template_name(&row.job).and_then(|name| {
        templates
            .iter()
            .find(|t| t.metadata.name.as_deref() == Some(name))
    });
    let options = RenderOptions {
        own_token: false,
        pod_template,
    };
    render_job_with(
        &row.job,
        &template(&row.job),
        &row.config,
        controller_id,
        options,
    )
}

/// `podTemplate`: the PodTemplate's pod is the job's `podSpec`; with `podSpecPatch` over it;
/// a `podSpec` wins over it.
fn pod_template_rows() -> Vec<Row> {
    vec![
        Row {
            name: "pod-template",
            source: "fixtures/podtemplate.yaml, .buildkite/fixtures/podtemplates.yaml",
            job: plugin(
                step("echo \"${TEST_POD_TEMPLATE} is a mountain\""),
                json!({"podTemplate": POD_TEMPLATE}),
            ),
            config: config(),
            wants: vec![
                Containers(&["agent", "checkout", "templated"]),
                Script("templated", "echo \"${TEST_POD_TEMPLATE} is a mountain\""),
                Image("templated", "alpine:latest"),
                Env("templated", "TEST_POD_TEMPLATE", "kunanyi"),
                Annotation("jobify.dev/pod-template", POD_TEMPLATE),
            ],
        },
        Row {
            name: "pod-template-patch",
            source: "scheduler.go (podTemplate, then Build applies podSpecPatch)",
            job: plugin(
                step("echo hi"),
                json!({"podTemplate": POD_TEMPLATE,
                       "podSpecPatch": {"containers": [{"name": "templated",
                           "env": [{"name": "TEST_POD_TEMPLATE", "value": "kosciuszko"}]}]}}),
            ),
            config: config(),
            wants: vec![
                Containers(&["agent", "checkout", "templated"]),
                Script("templated", "echo hi"),
                Env("templated", "TEST_POD_TEMPLATE", "kosciuszko"),
            ],
        },
        Row {
            name: "pod-spec-over-pod-template",
            source: "scheduler.go (podSpec, when given, is used instead of podTemplate)",
            job: plugin(
                step("echo hi"),
                json!({"podTemplate": POD_TEMPLATE,
                       "podSpec": {"containers": [{"name": "mountains", "image": "alpine:3"}]}}),
            ),
            config: config(),
            wants: vec![
                Containers(&["agent", "checkout", "mountains"]),
                Script("mountains", "echo hi"),
            ],
        },
    ]
}

/// A configuration with agent-stack-k8s' integration-test resource classes.
pub fn with_classes(default: Option<&str>) -> KubernetesConfig {
    let class = |cpu: &str, memory: &str, pool: &str| ResourceClass {
        limits: BTreeMap::from([
            ("cpu".to_owned(), cpu.to_owned()),
            ("memory".to_owned(), memory.to_owned()),
        ]),
        node_selector: BTreeMap::from([("pool".to_owned(), pool.to_owned())]),
        ..ResourceClass::default()
    };
    KubernetesConfig {
        resource_classes: BTreeMap::from([
            ("test".to_owned(), class("500m", "512Mi", "test")),
            ("small".to_owned(), class("250m", "256Mi", "small")),
        ]),
        default_resource_class: default.map(str::to_owned),
        ..config()
    }
}

/// The `resource_class` agent tag and `default-resource-class-name` (scheduler/resource.go).
fn resource_class_rows() -> Vec<Row> {
    let mut tagged = step("make").image("alpine:latest");
    tagged.rules = jobify_core::AgentQueryRules::parse(["queue=kubernetes", "resource_class=test"]);
    vec![
        Row {
            name: "resource-class-tag",
            source: "fixtures/resource-class.yaml",
            job: tagged,
            config: with_classes(Some("small")),
            wants: vec![
                Limit("container-0", "cpu", "500m"),
                Limit("container-0", "memory", "512Mi"),
                NodeSelector("pool", "test"),
            ],
        },
        Row {
            name: "resource-class-pod-resources",
            source: "internal/controller/config/resource_class.go (podResource)",
            job: {
                let mut job = step("make").image("alpine:latest");
                job.rules = jobify_core::AgentQueryRules::parse([
                    "queue=kubernetes",
                    "resource_class=pod-level",
                ]);
                job
            },
            config: {
                let mut config = with_classes(None);
                config.resource_classes.insert(
                    "pod-level".to_owned(),
                    ResourceClass {
                        pod_requests: BTreeMap::from([("cpu".to_owned(), "2".to_owned())]),
                        pod_limits: BTreeMap::from([("memory".to_owned(), "4Gi".to_owned())]),
                        ..ResourceClass::default()
                    },
                );
                config
            },
            wants: vec![
                PodResource("requests", "cpu", "2"),
                PodResource("limits", "memory", "4Gi"),
            ],
        },
        Row {
            name: "default-resource-class",
            source: "fixtures/default-resource-class.yaml",
            job: step("make").image("alpine:latest"),
            config: with_classes(Some("small")),
            wants: vec![
                Limit("container-0", "cpu", "250m"),
                Limit("container-0", "memory", "256Mi"),
                NodeSelector("pool", "small"),
            ],
        },
    ]
}

/// `commandParams.interposer` and `default-command-params` (config/command_params.go).
fn interposer_rows() -> Vec<Row> {
    let hello = json!({"podSpec": {"containers": [{"image": "bash:latest", "command": [
        "set -euo pipefail", "echo Hello World!", "echo Goodbye World!"]}]}});
    let hello_script = "set -euo pipefail\necho Hello World!\necho Goodbye World!";
    let echo = |params: Value| {
        json!({"commandParams": params, "podSpec": {"containers": [
            {"image": "alpine:latest", "command": ["echo"], "args": ["hello world"]}]}})
    };
    vec![
        Row {
            name: "interposer-buildkite",
            source: "fixtures/interposer-buildkite.yaml",
            job: plugin(
                step("ignored"),
                json!({"commandParams": {"interposer": "buildkite"},
                       "podSpec": hello["podSpec"].clone()}),
            ),
            config: config(),
            wants: vec![
                Script("container-0", hello_script),
                Image("container-0", "bash:latest"),
            ],
        },
        Row {
            name: "interposer-default",
            source: "fixtures/interposer-buildkite.yaml (\"the default, can be omitted\")",
            job: plugin(step("ignored"), hello),
            config: config(),
            wants: vec![Script("container-0", hello_script)],
        },
        Row {
            name: "interposer-vector",
            source: "fixtures/interposer-vector.yaml",
            job: plugin(
                step("ignored"),
                json!({"commandParams": {"interposer": "vector"},
                       "podSpec": {"containers": [{"image": "alpine:latest", "command": ["ash"],
                           "args": ["-c", "set -euo pipefail\n\necho Hello World!\necho Goodbye World!"]}]}}),
            ),
            config: config(),
            wants: vec![Script(
                "container-0",
                "ash -c 'set -euo pipefail\n\necho Hello World!\necho Goodbye World!'",
            )],
        },
        Row {
            name: "interposer-legacy",
            source: "config/command_params.go InterposerLegacy",
            job: plugin(step("ignored"), echo(json!({"interposer": "legacy"}))),
            config: config(),
            wants: vec![Script("container-0", "echo hello world")],
        },
        Row {
            name: "interposer-buildkite-args",
            source: "config/command_params.go InterposerBuildkite (args onto the last line)",
            job: plugin(step("ignored"), echo(json!({}))),
            config: config(),
            wants: vec![Script("container-0", "echo 'hello world'")],
        },
        Row {
            name: "interposer-controller-default",
            source: "default-command-params.interposer",
            job: plugin(
                step("ignored"),
                json!({"podSpec": {"containers": [{"image": "alpine:latest",
                    "command": ["echo", "a b"], "args": ["c"]}]}}),
            ),
            config: with_interposer(Interposer::Vector),
            wants: vec![Script("container-0", "echo 'a b' c")],
        },
        Row {
            name: "interposer-plugin-over-controller",
            source: "scheduler.go: the plugin's interposer, when set, wins over the default",
            job: plugin(step("ignored"), echo(json!({"interposer": "legacy"}))),
            config: with_interposer(Interposer::Vector),
            wants: vec![Script("container-0", "echo hello world")],
        },
        Row {
            name: "args-without-command",
            source: "scheduler.go: a container without command runs the step's command",
            job: plugin(
                step("make test"),
                json!({"podSpec": {"containers": [{"image": "alpine:latest", "args": ["-x"]}]}}),
            ),
            config: config(),
            wants: vec![Script("container-0", "make test")],
        },
        Row {
            name: "env",
            source: "fixtures/env.yaml",
            job: plugin(
                step("ignored"),
                json!({"podSpec": {"containers": [{"image": "alpine:latest", "command": [
                    "echo \"Testing some env variables: ${BUILDKITE_JOB_ID+set}\""]}]}}),
            ),
            config: config(),
            wants: vec![Script(
                "container-0",
                "echo \"Testing some env variables: ${BUILDKITE_JOB_ID+set}\"",
            )],
        },
        Row {
            name: "helloworld",
            source: "fixtures/helloworld.yaml",
            job: plugin(
                step("ignored"),
                json!({"metadata": {"annotations": {"some-annotation": "cool"},
                                    "labels": {"some-label": "wow"}},
                       "podSpec": {"containers": [
                           {"image": "alpine:latest", "command": ["cat README.md"]},
                           {"image": "buildkite/agent:latest",
                            "command": ["buildkite-agent artifact upload \"README.md\""]}]}}),
            ),
            config: config(),
            wants: vec![
                Containers(&["agent", "checkout", "container-0", "container-1"]),
                Script("container-0", "cat README.md"),
                Script(
                    "container-1",
                    "buildkite-agent artifact upload \"README.md\"",
                ),
                Label("some-label", "wow"),
                Annotation("some-annotation", "cool"),
            ],
        },
        Row {
            name: "podspecpatch-command",
            source: "fixtures/podspecpatch-command-step.yaml",
            job: plugin(
                step("ignored"),
                json!({"podSpec": {"containers": [{"image": "alpine:latest", "name": "mountains",
                           "command": ["echo \"i love guyaquil\""]}]},
                       "podSpecPatch": {"containers": [{"name": "mountains",
                           "command": ["echo \"i love quito\""]}]}}),
            ),
            config: config(),
            wants: vec![Script("mountains", "echo \"i love quito\"")],
        },
        Row {
            name: "podspecpatch-env",
            source: "fixtures/podspecpatch-step.yaml",
            job: plugin(
                step("ignored"),
                json!({"podSpec": {"containers": [{"image": "alpine:latest", "name": "mountains",
                           "command": ["echo \"value of MOUNTAIN is \\$MOUNTAIN\""]}]},
                       "podSpecPatch": {"containers": [{"name": "mountains",
                           "env": [{"name": "MOUNTAIN", "value": "cotopaxi"}]}]}}),
            ),
            config: config(),
            wants: vec![
                Script("mountains", "echo \"value of MOUNTAIN is \\$MOUNTAIN\""),
                Env("mountains", "MOUNTAIN", "cotopaxi"),
            ],
        },
    ]
}

/// The step's `image:` attribute (scheduler/build_inputs.go, scheduler_test.go
/// `TestCustomImageSyntax_*`).
fn image_rows() -> Vec<Row> {
    vec![
        Row {
            name: "image-attribute",
            source: "fixtures/image-attribute.yaml",
            job: step("yarn --version").image("node:22-alpine"),
            config: config(),
            wants: vec![
                Containers(&["agent", "checkout", "container-0"]),
                Image("container-0", "node:22-alpine"),
                Image("agent", AGENT_IMAGE),
                Image("checkout", AGENT_IMAGE),
                Script("container-0", "yarn --version"),
            ],
        },
        Row {
            name: "image-over-podspec",
            source: "build_inputs.go applyCustomImageIfPresent: every command container",
            job: plugin(
                step("make").image("x-image:job"),
                json!({"podSpec": {"containers": [
                    {"image": "alpine:latest", "command": ["make"]},
                    {"name": "lint", "command": ["make lint"]}]}}),
            ),
            config: config(),
            wants: vec![
                Image("container-0", "x-image:job"),
                Image("lint", "x-image:job"),
            ],
        },
        Row {
            name: "image-over-controller-patch",
            source: "scheduler_test.go TestCustomImageSyntax_jobLevelImagePriority",
            job: step("echo hello").image("x-image:job"),
            config: KubernetesConfig {
                pod_spec_patch: Some(
                    json!({"containers": [{"name": "container-0", "image": "alpine:controller"}]}),
                ),
                ..config()
            },
            wants: vec![Image("container-0", "x-image:job")],
        },
        Row {
            name: "plugin-patch-over-image",
            source: "scheduler_test.go TestCustomImageSyntax_pluginTakesTopPriority",
            job: plugin(
                step("echo hello").image("x-image:job"),
                json!({"podSpecPatch": {"containers": [{"name": "container-0",
                                                        "image": "x-image:plugin"}]}}),
            ),
            config: config(),
            wants: vec![Image("container-0", "x-image:plugin")],
        },
        Row {
            name: "sidecars",
            source: "fixtures/sidecars.yaml",
            job: plugin(
                step("curl localhost:80").image("curlimages/curl:latest"),
                json!({"sidecars": [{"image": "nginx:latest"}]}),
            ),
            config: config(),
            wants: vec![
                Containers(&["agent", "checkout", "container-0"]),
                NativeSidecars(&["sidecar-0"]),
                Image("container-0", "curlimages/curl:latest"),
                Image("sidecar-0", "nginx:latest"),
                Mount("sidecar-0", "/workspace"),
            ],
        },
    ]
}

/// `default-metadata` and the `safe-to-evict` annotation (scheduler.go `Build`).
fn metadata_rows() -> Vec<Row> {
    vec![
        Row {
            name: "safe-to-evict",
            source: "scheduler.go Build: safe-to-evict \"false\" on every Job and pod",
            job: step("make"),
            config: config(),
            wants: vec![Annotation(
                "cluster-autoscaler.kubernetes.io/safe-to-evict",
                "false",
            )],
        },
        Row {
            name: "default-metadata",
            source: "default-metadata",
            job: step("make"),
            config: with_metadata(
                &[("team", "ci")],
                &[
                    ("example.com/owner", "platform"),
                    ("cluster-autoscaler.kubernetes.io/safe-to-evict", "true"),
                ],
            ),
            wants: vec![
                Label("team", "ci"),
                Label("jobify.dev/pipeline", "app"),
                Annotation("example.com/owner", "platform"),
                Annotation("cluster-autoscaler.kubernetes.io/safe-to-evict", "true"),
            ],
        },
        Row {
            name: "plugin-metadata-over-default",
            source: "scheduler.go Build: plugin metadata copied over default-metadata",
            job: plugin(
                step("make"),
                json!({"metadata": {"labels": {"team": "web"}, "annotations": {
                    "cluster-autoscaler.kubernetes.io/safe-to-evict": "true"}}}),
            ),
            config: with_metadata(&[("team", "ci"), ("tier", "build")], &[]),
            wants: vec![
                Label("team", "web"),
                Label("tier", "build"),
                Annotation("cluster-autoscaler.kubernetes.io/safe-to-evict", "true"),
            ],
        },
    ]
}

/// `gitEnvFrom`, `commandParams.envFrom`/`extraVolumeMounts`, `checkout.skip`.
fn plugin_key_rows() -> Vec<Row> {
    vec![
        Row {
            name: "git-env-from",
            source: "fixtures/secretref.yaml; scheduler.go: checkout, command and sidecars",
            job: plugin(
                step("ignored"),
                json!({"gitEnvFrom": [{"secretRef": {"name": "integration-test-ssh-key"}}],
                       "sidecars": [{"image": "nginx:latest"}],
                       "podSpec": {"containers": [{"image": "alpine:latest",
                                                   "command": ["echo hello world"]}]}}),
            ),
            config: config(),
            wants: vec![
                EnvFromSecret("checkout", "integration-test-ssh-key"),
                EnvFromSecret("container-0", "integration-test-ssh-key"),
                EnvFromSecret("sidecar-0", "integration-test-ssh-key"),
                NoEnvFrom("agent"),
            ],
        },
        Row {
            name: "command-params-env-from",
            source: "config/command_params.go ApplyTo: command containers only",
            job: plugin(
                step("make"),
                json!({"commandParams": {"envFrom": [{"configMapRef": {"name": "build-env"}}]},
                       "podSpec": {"containers": [{"image": "alpine:latest"}]}}),
            ),
            config: config(),
            wants: vec![
                EnvFromConfigMap("container-0", "build-env"),
                NoEnvFrom("checkout"),
                NoEnvFrom("agent"),
            ],
        },
        Row {
            name: "extra-volume-mounts-command",
            source: "fixtures/extra-volume-mounts-command.yaml (mounts deduplicated by path)",
            job: plugin(
                step("ignored"),
                json!({"podSpec": {
                    "containers": [{"image": "alpine:latest",
                        "volumeMounts": [{"name": "host-volume",
                            "mountPath": "/tmp/extra-volume-mount-command",
                            "subPath": "extra-volume-mount-command"}],
                        "command": ["sh"],
                        "args": ["-c", "touch /tmp/extra-volume-mount-command/foo-${BUILDKITE_JOB_ID}.txt"]},
                        {"image": "alpine:latest", "command": ["true"]}],
                    "volumes": [
                        {"name": "host-volume", "hostPath": {"path": "/tmp/volumes/q", "type": "DirectoryOrCreate"}},
                        {"name": "host-volume-duplicate", "hostPath": {"path": "/tmp/volumes/q", "type": "DirectoryOrCreate"}}]},
                 "commandParams": {"extraVolumeMounts": [
                     {"name": "host-volume", "mountPath": "/tmp/extra-volume-mount-command",
                      "subPath": "extra-volume-mount-command"},
                     {"name": "host-volume-duplicate", "mountPath": "/tmp/extra-volume-mount-command",
                      "subPath": "extra-volume-mount-command"}]}}),
            ),
            config: config(),
            wants: vec![
                Script(
                    "container-0",
                    "sh -c 'touch /tmp/extra-volume-mount-command/foo-${BUILDKITE_JOB_ID}.txt'",
                ),
                Mount("container-0", "/tmp/extra-volume-mount-command"),
                Mount("container-1", "/tmp/extra-volume-mount-command"),
                NoMount("checkout", "/tmp/extra-volume-mount-command"),
                Volume("host-volume"),
            ],
        },
        Row {
            name: "skip-checkout",
            source: "fixtures/skip-checkout.yaml (podSpec: {} runs the step's command)",
            job: plugin(
                step("echo hello-skip-checkout"),
                json!({"checkout": {"skip": true}, "podSpec": {}}),
            ),
            config: config(),
            wants: vec![
                Containers(&["agent", "container-0"]),
                Image("container-0", AGENT_IMAGE),
                Script("container-0", "echo hello-skip-checkout"),
                Volume("workspace"),
            ],
        },
    ]
}

/// `checkout` (config/checkout_params.go): git options become variables of the agent
/// container, which hands them to the checkout; `envFrom` and mounts go to the checkout
/// container.
fn checkout_rows() -> Vec<Row> {
    vec![
        Row {
            name: "checkout-flags",
            source: "config/checkout_params.go ApplyToAgentStart",
            job: plugin(
                step("make"),
                json!({"checkout": {"checkoutFlags": "-f", "cleanFlags": "-ffxdq",
                    "cloneFlags": "--depth=1", "fetchFlags": "--prune", "noSubmodules": true,
                    "submoduleCloneConfig": ["url.https://x/.insteadOf=git@x:", "core.a=b"]}}),
            ),
            config: config(),
            wants: vec![
                Env("agent", "BUILDKITE_GIT_CHECKOUT_FLAGS", "-f"),
                Env("agent", "BUILDKITE_GIT_CLEAN_FLAGS", "-ffxdq"),
                Env("agent", "BUILDKITE_GIT_CLONE_FLAGS", "--depth=1"),
                Env("agent", "BUILDKITE_GIT_FETCH_FLAGS", "--prune"),
                Env("agent", "BUILDKITE_NO_GIT_SUBMODULES", "true"),
                Env(
                    "agent",
                    "BUILDKITE_GIT_SUBMODULE_CLONE_CONFIG",
                    "url.https://x/.insteadOf=git@x:,core.a=b",
                ),
            ],
        },
        Row {
            name: "checkout-flags-over-env",
            source: "scheduler.go: the plugin's checkout options after the agent's env",
            job: plugin(
                step("ignored"),
                json!({"checkout": {"cloneFlags": "--depth=1"},
                       "podSpec": {"containers": [{"image": "alpine:latest", "command": ["make"]}]}}),
            ),
            config: KubernetesConfig {
                env: BTreeMap::from([("BUILDKITE_GIT_CLONE_FLAGS".to_owned(), "-v".to_owned())]),
                ..config()
            },
            wants: vec![
                Env("agent", "BUILDKITE_GIT_CLONE_FLAGS", "--depth=1"),
                Containers(&["agent", "checkout", "container-0"]),
            ],
        },
        Row {
            name: "checkout-env-from",
            source: "config/checkout_params.go ApplyToCheckout: the checkout container only",
            job: with_volumes(
                step("ignored"),
                json!({"checkout": {
                    "envFrom": [{"secretRef": {"name": "git-creds"}}],
                    "extraVolumeMounts": [{"name": "cache", "mountPath": "/git-cache"}]},
                    "gitEnvFrom": [{"configMapRef": {"name": "git-config"}}]}),
            ),
            config: config(),
            wants: vec![
                EnvFromSecret("checkout", "git-creds"),
                EnvFromConfigMap("checkout", "git-config"),
                MountOf("checkout", "/git-cache", "cache"),
                NoMount("container-0", "/git-cache"),
                NoEnvFrom("agent"),
            ],
        },
    ]
}

/// `checkout.gitCredentialsSecret`, `checkout.gitMirrors` and `default-checkout-params`
/// (config/checkout_params.go; scheduler.go `Build` and `createCheckoutContainer`).
fn git_rows() -> Vec<Row> {
    const HELPER: &str = "git config --global credential.helper 'store --file /buildkite/git-credentials/.git-credentials'";
    const COPY: &str = "cp /buildkite/git-credentials-ro/.git-credentials /buildkite/git-credentials/.git-credentials";
    const BOOTSTRAP: &str = "exec /workspace/buildkite-agent kubernetes-bootstrap";
    let defaults = DefaultCheckoutParams {
        clone_flags: Some("--depth=1".to_owned()),
        fetch_flags: Some("--prune".to_owned()),
        no_submodules: Some(true),
        git_mirrors: Some(GitMirrors {
            volume: Some(typed(json!({"name": "default-mirrors", "emptyDir": {}}))),
            lock_timeout: Some(30),
            skip_update: Some(true),
            ..GitMirrors::default()
        }),
        git_credentials_secret: Some(typed(json!({"secretName": "my-git-credentials"}))),
        env_from: typed(json!([{"prefix": "GITHUB_", "secretRef": {"name": "github-secrets"}}])),
        ..DefaultCheckoutParams::default()
    };
    let with_defaults = |defaults: DefaultCheckoutParams| KubernetesConfig {
        default_checkout_params: defaults,
        ..config()
    };
    vec![
        Row {
            name: "git-credentials-secret",
            source: "scheduler_test.go TestBuildCheckoutParams; scheduler.go createCheckoutContainer",
            job: plugin(
                step("make"),
                json!({"checkout": {"gitCredentialsSecret": {"secretName": "my-git-credentials"}}}),
            ),
            config: config(),
            wants: vec![
                Containers(&["agent", "checkout", "container-0"]),
                Script("container-0", "make"),
                SecretVolume("git-credentials-ro", "my-git-credentials"),
                VolumeSource("git-credentials", "emptyDir"),
                MountOf(
                    "checkout",
                    "/buildkite/git-credentials-ro",
                    "git-credentials-ro",
                ),
                MountOf("checkout", "/buildkite/git-credentials", "git-credentials"),
                NoMount("container-0", "/buildkite/git-credentials-ro"),
                NoMount("agent", "/buildkite/git-credentials"),
                ShellLine("checkout", COPY),
                ShellLine("checkout", HELPER),
                ShellLine("checkout", BOOTSTRAP),
            ],
        },
        Row {
            name: "git-mirrors",
            source: "config/checkout_params.go GitMirrorsParams: agent variables, checkout mount",
            job: plugin(
                step("make"),
                json!({"checkout": {"gitMirrors": {
                    "volume": {"name": "git-mirrors",
                               "persistentVolumeClaim": {"claimName": "git-mirrors"}},
                    "cloneFlags": "--dissociate", "lockTimeout": 60, "skipUpdate": false}}}),
            ),
            config: config(),
            wants: vec![
                Containers(&["agent", "checkout", "container-0"]),
                VolumeSource("git-mirrors", "persistentVolumeClaim"),
                MountOf("checkout", "/buildkite/git-mirrors", "git-mirrors"),
                NoMount("container-0", "/buildkite/git-mirrors"),
                NoMount("agent", "/buildkite/git-mirrors"),
                Env(
                    "agent",
                    "BUILDKITE_GIT_MIRRORS_PATH",
                    "/buildkite/git-mirrors",
                ),
                Env("agent", "BUILDKITE_GIT_CLONE_MIRROR_FLAGS", "--dissociate"),
                Env("agent", "BUILDKITE_GIT_MIRRORS_LOCK_TIMEOUT", "60"),
                Env("agent", "BUILDKITE_GIT_MIRRORS_SKIP_UPDATE", "false"),
                NoEnv("checkout", "BUILDKITE_GIT_MIRRORS_PATH"),
                NoVolume("git-credentials-ro"),
            ],
        },
        Row {
            name: "git-mirrors-path",
            source: "fixtures/extra-volume-mounts.yaml (gitMirrors.path, mounted by extraVolumeMounts)",
            job: with_volumes(
                step("ignored"),
                json!({"checkout": {"gitMirrors": {"path": "/tmp/buildkite-git-mirrors"}},
                       "extraVolumeMounts": [{"name": "host-volume",
                           "mountPath": "/tmp/buildkite-git-mirrors",
                           "subPath": "buildkite-git-mirrors"}]}),
            ),
            config: config(),
            wants: vec![
                Env(
                    "agent",
                    "BUILDKITE_GIT_MIRRORS_PATH",
                    "/tmp/buildkite-git-mirrors",
                ),
                NoEnv("agent", "BUILDKITE_GIT_MIRRORS_LOCK_TIMEOUT"),
                MountOf("checkout", "/tmp/buildkite-git-mirrors", "host-volume"),
                MountOf("container-0", "/tmp/buildkite-git-mirrors", "host-volume"),
            ],
        },
        Row {
            name: "git-mirrors-agent-pod",
            source: "gitMirrors without a volume: agent variables only (jobify's agent pod)",
            job: plugin(
                step("make"),
                json!({"checkout": {"gitMirrors": {"path": "/var/lib/git-mirrors",
                                                   "skipUpdate": true}}}),
            ),
            config: config(),
            wants: vec![
                Containers(&["agent"]),
                Env(
                    "agent",
                    "BUILDKITE_GIT_MIRRORS_PATH",
                    "/var/lib/git-mirrors",
                ),
                Env("agent", "BUILDKITE_GIT_MIRRORS_SKIP_UPDATE", "true"),
                NoMount("agent", "/var/lib/git-mirrors"),
            ],
        },
        Row {
            name: "default-checkout-params",
            source: "examples/config.yaml default-checkout-params; TestBuildDefaultCheckoutParams",
            job: step("make"),
            config: with_defaults(defaults.clone()),
            wants: vec![
                Containers(&["agent", "checkout", "container-0"]),
                Env("agent", "BUILDKITE_GIT_CLONE_FLAGS", "--depth=1"),
                Env("agent", "BUILDKITE_GIT_FETCH_FLAGS", "--prune"),
                Env("agent", "BUILDKITE_NO_GIT_SUBMODULES", "true"),
                Env(
                    "agent",
                    "BUILDKITE_GIT_MIRRORS_PATH",
                    "/buildkite/git-mirrors",
                ),
                Env("agent", "BUILDKITE_GIT_MIRRORS_LOCK_TIMEOUT", "30"),
                Env("agent", "BUILDKITE_GIT_MIRRORS_SKIP_UPDATE", "true"),
                MountOf("checkout", "/buildkite/git-mirrors", "default-mirrors"),
                SecretVolume("git-credentials-ro", "my-git-credentials"),
                MountOf(
                    "checkout",
                    "/buildkite/git-credentials-ro",
                    "git-credentials-ro",
                ),
                ShellLine("checkout", HELPER),
                EnvFromSecret("checkout", "github-secrets"),
                NoEnvFrom("container-0"),
                NoEnvFrom("agent"),
            ],
        },
        Row {
            name: "checkout-step-over-default",
            source: "scheduler.go: default-checkout-params, then the plugin's checkout",
            job: with_volumes(
                step("ignored"),
                json!({"checkout": {
                    "cloneFlags": "--depth=50",
                    "gitCredentialsSecret": {"secretName": "step-git-credentials"},
                    "gitMirrors": {"volume": {"name": "step-mirrors", "emptyDir": {}},
                                   "lockTimeout": 10},
                    "envFrom": [{"secretRef": {"name": "step-env"}}],
                    "extraVolumeMounts": [{"name": "host-volume", "mountPath": "/cache"}]}}),
            ),
            config: with_defaults(DefaultCheckoutParams {
                git_mirrors: Some(GitMirrors {
                    path: Some("/mirrors".to_owned()),
                    ..defaults.git_mirrors.clone().expect("mirrors")
                }),
                env_from: typed(json!([{"configMapRef": {"name": "checkout-defaults"}}])),
                extra_volume_mounts: typed(json!([{"name": "cache", "mountPath": "/cache"}])),
                ..defaults.clone()
            }),
            wants: vec![
                Env("agent", "BUILDKITE_GIT_CLONE_FLAGS", "--depth=50"),
                Env("agent", "BUILDKITE_GIT_FETCH_FLAGS", "--prune"),
                Env(
                    "agent",
                    "BUILDKITE_GIT_MIRRORS_PATH",
                    "/buildkite/git-mirrors",
                ),
                Env("agent", "BUILDKITE_GIT_MIRRORS_LOCK_TIMEOUT", "10"),
                Env("agent", "BUILDKITE_GIT_MIRRORS_SKIP_UPDATE", "true"),
                Volume("step-mirrors"),
                NoVolume("default-mirrors"),
                MountOf("checkout", "/buildkite/git-mirrors", "step-mirrors"),
                NoMount("checkout", "/mirrors"),
                SecretVolume("git-credentials-ro", "step-git-credentials"),
                EnvFromConfigMap("checkout", "checkout-defaults"),
                EnvFromSecret("checkout", "step-env"),
                MountOf("checkout", "/cache", "host-volume"),
            ],
        },
        Row {
            name: "checkout-skip-default",
            source: "scheduler.go Build: default-checkout-params.skip, the plugin's wins",
            job: with_volumes(step("ignored"), json!({})),
            config: with_defaults(DefaultCheckoutParams {
                skip: Some(true),
                ..defaults.clone()
            }),
            wants: vec![
                Containers(&["agent", "container-0"]),
                NoVolume("git-credentials-ro"),
                NoVolume("default-mirrors"),
                Env("agent", "BUILDKITE_GIT_CLONE_FLAGS", "--depth=1"),
            ],
        },
        Row {
            name: "checkout-skip-step-over-default",
            source: "scheduler.go Build: the plugin's checkout.skip over the default's",
            job: with_volumes(step("ignored"), json!({"checkout": {"skip": false}})),
            config: with_defaults(DefaultCheckoutParams {
                skip: Some(true),
                ..DefaultCheckoutParams::default()
            }),
            wants: vec![Containers(&["agent", "checkout", "container-0"])],
        },
    ]
}

fn typed<T: serde::de::DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).expect("a Kubernetes object")
}

/// A pod with one command container and the volumes `host-volume` and `cache`.
fn with_volumes(job: ScheduledJob, more: Value) -> ScheduledJob {
    let mut config = json!({"podSpec": {
        "containers": [{"image": "alpine:latest", "command": ["make"]}],
        "volumes": [
            {"name": "host-volume", "hostPath": {"path": "/tmp/volumes/q", "type": "DirectoryOrCreate"}},
            {"name": "cache", "emptyDir": {}}]}});
    if let (Some(config), Value::Object(more)) = (config.as_object_mut(), more) {
        config.extend(more);
    }
    plugin(job, config)
}

/// `sidecarParams`, `default-sidecar-params` and `default-command-params` `envFrom` and
/// `extraVolumeMounts` (config/sidecar_params.go, config/command_params.go `ApplyTo`).
fn params_rows() -> Vec<Row> {
    let env_from = |kind: &str, name: &str| -> Vec<k8s_openapi::api::core::v1::EnvFromSource> {
        typed(json!([{ kind: {"name": name} }]))
    };
    let mount = |volume: &str, path: &str| -> Vec<k8s_openapi::api::core::v1::VolumeMount> {
        typed(json!([{"name": volume, "mountPath": path}]))
    };
    let controller = KubernetesConfig {
        default_command_params: DefaultCommandParams {
            env_from: env_from("configMapRef", "ci-defaults"),
            extra_volume_mounts: mount("cache", "/cache"),
            ..DefaultCommandParams::default()
        },
        default_sidecar_params: DefaultSidecarParams {
            env_from: env_from("secretRef", "sidecar-defaults"),
            extra_volume_mounts: mount("cache", "/cache"),
        },
        ..config()
    };
    vec![
        Row {
            name: "extra-volume-mounts-sidecar",
            source: "fixtures/extra-volume-mounts-sidecar.yaml (sidecarParams, sidecars only)",
            job: with_volumes(
                step("ignored"),
                json!({"sidecars": [{"image": "alpine:latest", "command": ["sleep", "infinity"]}],
                       "sidecarParams": {"extraVolumeMounts": [
                           {"name": "host-volume", "mountPath": "/tmp/extra-volume-mount-sidecar",
                            "subPath": "extra-volume-mount-sidecar"},
                           {"name": "cache", "mountPath": "/tmp/extra-volume-mount-sidecar"}]}}),
            ),
            config: config(),
            wants: vec![
                NativeSidecars(&["sidecar-0"]),
                MountOf(
                    "sidecar-0",
                    "/tmp/extra-volume-mount-sidecar",
                    "host-volume",
                ),
                Mount("sidecar-0", "/workspace"),
                NoMount("container-0", "/tmp/extra-volume-mount-sidecar"),
            ],
        },
        Row {
            name: "sidecar-params-env-from",
            source: "config/sidecar_params.go ApplyTo: envFrom on every sidecar",
            job: with_volumes(
                step("ignored"),
                json!({"sidecars": [{"image": "postgres:17"}, {"image": "redis:7"}],
                       "sidecarParams": {"envFrom": [{"secretRef": {"name": "db-creds"}}]}}),
            ),
            config: config(),
            wants: vec![
                EnvFromSecret("sidecar-0", "db-creds"),
                EnvFromSecret("sidecar-1", "db-creds"),
                NoEnvFrom("container-0"),
                NoEnvFrom("checkout"),
            ],
        },
        Row {
            name: "default-command-params",
            source: "default-command-params.envFrom, .extraVolumeMounts: command containers only",
            job: with_volumes(step("ignored"), json!({"sidecars": [{"image": "redis:7"}]})),
            config: controller.clone(),
            wants: vec![
                EnvFromConfigMap("container-0", "ci-defaults"),
                MountOf("container-0", "/cache", "cache"),
                NoEnvFrom("checkout"),
                NoMount("checkout", "/cache"),
                NoEnvFrom("agent"),
            ],
        },
        Row {
            name: "default-sidecar-params",
            source: "default-sidecar-params.envFrom, .extraVolumeMounts: sidecars only",
            job: with_volumes(step("ignored"), json!({"sidecars": [{"image": "redis:7"}]})),
            config: controller.clone(),
            wants: vec![
                EnvFromSecret("sidecar-0", "sidecar-defaults"),
                MountOf("sidecar-0", "/cache", "cache"),
                NoMount("agent", "/cache"),
            ],
        },
        Row {
            name: "params-step-and-controller",
            source: "scheduler.go: the controller's params, then the step's",
            job: with_volumes(
                step("ignored"),
                json!({"sidecars": [{"image": "redis:7"}],
                       "commandParams": {
                           "envFrom": [{"secretRef": {"name": "step-env"}}],
                           "extraVolumeMounts": [{"name": "host-volume", "mountPath": "/cache"}]},
                       "sidecarParams": {
                           "envFrom": [{"secretRef": {"name": "step-sidecar-env"}}],
                           "extraVolumeMounts": [{"name": "host-volume", "mountPath": "/cache"}]}}),
            ),
            config: controller,
            wants: vec![
                EnvFromConfigMap("container-0", "ci-defaults"),
                EnvFromSecret("container-0", "step-env"),
                EnvFromSecret("sidecar-0", "sidecar-defaults"),
                EnvFromSecret("sidecar-0", "step-sidecar-env"),
                MountOf("container-0", "/cache", "host-volume"),
                MountOf("sidecar-0", "/cache", "host-volume"),
            ],
        },
    ]
}

/// `additional-redacted-vars` and the agent's grace periods (scheduler.go `Build`: the
/// `agent` container only).
fn agent_env_rows() -> Vec<Row> {
    let redacting = KubernetesConfig {
        additional_redacted_vars: vec!["ELEVEN_HERBS_AND_SPICES".to_owned()],
        ..config()
    };
    let bash_step = || {
        plugin(
            step("ignored"),
            json!({"podSpec": {"containers": [{"image": "bash:latest", "command": [
                "echo \"Redaction should work in the command container: ${ELEVEN_HERBS_AND_SPICES}\""]}]}}),
        )
    };
    vec![
        Row {
            name: "additional-redacted-vars",
            source: "fixtures/redacted-vars.yaml; scheduler.go Build: the agent's defaults, then these",
            job: bash_step(),
            config: redacting.clone(),
            wants: vec![
                Env(
                    "agent",
                    "BUILDKITE_REDACTED_VARS",
                    "*_PASSWORD,*_SECRET,*_TOKEN,*_PRIVATE_KEY,*_SSH_KEY,*_ACCESS_KEY,\
                     *_SECRET_KEY,*_CONNECTION_STRING,*_API_KEY,ELEVEN_HERBS_AND_SPICES",
                ),
                NoEnv("container-0", "BUILDKITE_REDACTED_VARS"),
                NoEnv("checkout", "BUILDKITE_REDACTED_VARS"),
            ],
        },
        Row {
            name: "additional-redacted-vars-agent-pod",
            source: "additional-redacted-vars (jobify's agent pod: the agent runs the command)",
            job: step("make"),
            config: redacting,
            wants: vec![Env(
                "agent",
                "BUILDKITE_REDACTED_VARS",
                "*_PASSWORD,*_SECRET,*_TOKEN,*_PRIVATE_KEY,*_SSH_KEY,*_ACCESS_KEY,\
                 *_SECRET_KEY,*_CONNECTION_STRING,*_API_KEY,ELEVEN_HERBS_AND_SPICES",
            )],
        },
        Row {
            name: "grace-periods-default",
            source: "scheduler.go Build (v0.33.1): cancel = grace, signal = grace - 10",
            job: bash_step(),
            config: config(),
            wants: vec![
                Env("agent", "BUILDKITE_CANCEL_GRACE_PERIOD", "60"),
                Env("agent", "BUILDKITE_SIGNAL_GRACE_PERIOD_SECONDS", "50"),
                NoEnv("container-0", "BUILDKITE_CANCEL_GRACE_PERIOD"),
                NoEnv("checkout", "BUILDKITE_SIGNAL_GRACE_PERIOD_SECONDS"),
            ],
        },
        Row {
            name: "grace-periods-controller",
            source: "default-termination-grace-period-seconds",
            job: step("make"),
            config: KubernetesConfig {
                termination_grace_period: std::time::Duration::from_secs(5),
                ..config()
            },
            wants: vec![
                Env("agent", "BUILDKITE_CANCEL_GRACE_PERIOD", "5"),
                Env("agent", "BUILDKITE_SIGNAL_GRACE_PERIOD_SECONDS", "0"),
            ],
        },
        Row {
            name: "grace-periods-pod-spec",
            source: "scheduler.go Build: the podSpec's terminationGracePeriodSeconds",
            job: plugin(
                step("make"),
                json!({"podSpec": {"terminationGracePeriodSeconds": 300,
                                   "containers": [{"image": "alpine:latest"}]}}),
            ),
            config: config(),
            wants: vec![
                Env("agent", "BUILDKITE_CANCEL_GRACE_PERIOD", "300"),
                Env("agent", "BUILDKITE_SIGNAL_GRACE_PERIOD_SECONDS", "290"),
            ],
        },
        Row {
            name: "grace-periods-patched",
            source: "deliberately different: from the grace after podSpecPatch (agent-stack-k8s \
                     reads it before)",
            job: plugin(
                step("make"),
                json!({"podSpecPatch": {"terminationGracePeriodSeconds": 120}}),
            ),
            config: config(),
            wants: vec![
                Env("agent", "BUILDKITE_CANCEL_GRACE_PERIOD", "120"),
                Env("agent", "BUILDKITE_SIGNAL_GRACE_PERIOD_SECONDS", "110"),
            ],
        },
        Row {
            name: "grace-periods-set-by-the-step",
            source: "scheduler.go Build: a podSpecPatch env of the agent container wins",
            job: plugin(
                step("make"),
                json!({"podSpecPatch": {"containers": [{"name": "agent", "env": [
                    {"name": "BUILDKITE_SIGNAL_GRACE_PERIOD_SECONDS", "value": "30"}]}]}}),
            ),
            config: config(),
            wants: vec![
                Env("agent", "BUILDKITE_CANCEL_GRACE_PERIOD", "60"),
                Env("agent", "BUILDKITE_SIGNAL_GRACE_PERIOD_SECONDS", "30"),
            ],
        },
    ]
}

/// `workspace-volume` and `workspace-mount-sub-path-expr` (scheduler.go `Build`,
/// `workspaceVolumeMount`: every /workspace mount the controller makes).
fn workspace_rows() -> Vec<Row> {
    let job = || {
        plugin(
            step("make"),
            json!({"podSpec": {"containers": [{"image": "alpine:latest"}]},
                   "sidecars": [{"image": "redis:7"}]}),
        )
    };
    let containers = [
        "copy-agent",
        "agent",
        "checkout",
        "container-0",
        "sidecar-0",
    ];
    let mut claim = vec![VolumeSource("build-workspace", "ephemeral")];
    claim.extend(
        containers
            .iter()
            .map(|name| MountOf(name, "/workspace", "build-workspace")),
    );
    let mut sliced = vec![VolumeSource("workspace", "emptyDir")];
    sliced.extend(
        containers
            .iter()
            .map(|name| SubPathExpr(name, "/workspace", "$(POD_NAME)")),
    );
    vec![
        Row {
            name: "workspace-volume",
            source: "workspace-volume (an ephemeral PVC), mounted by its name",
            job: job(),
            config: KubernetesConfig {
                workspace_volume: Some(typed(json!({"name": "build-workspace", "ephemeral": {
                    "volumeClaimTemplate": {"spec": {"accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "10Gi"}}}}}}))),
                ..config()
            },
            wants: claim,
        },
        Row {
            name: "workspace-mount-sub-path-expr",
            source: "scheduler_test.go TestBuildWorkspaceMountSubPathExpr",
            job: job(),
            config: KubernetesConfig {
                workspace_mount_sub_path_expr: Some("$(POD_NAME)".to_owned()),
                ..config()
            },
            wants: sliced,
        },
    ]
}

/// `agent-config` volumes (config/agent_config.go `ApplyVolumesTo`, `ApplyToAgentStart`,
/// `ApplyToCheckout`, `ApplyToCommand`).
fn agent_config_rows() -> Vec<Row> {
    let exec_step = || {
        plugin(
            step("make"),
            json!({"podSpec": {"containers": [{"image": "alpine:latest"}]},
                   "sidecars": [{"image": "redis:7"}]}),
        )
    };
    let volumes = AgentConfig {
        hooks_volume: Some(typed(
            json!({"name": "buildkite-hooks", "configMap": {"name": "agent-hooks", "defaultMode": 493}}),
        )),
        plugins_volume: Some(typed(json!({"name": "buildkite-plugins", "emptyDir": {}}))),
        signing_jwks_volume: Some(typed(
            json!({"name": "signing-jwks", "secret": {"secretName": "pipeline-signing-jwks"}}),
        )),
        signing_jwks_key_id: Some("key-1".to_owned()),
        verification_jwks_volume: Some(typed(
            json!({"name": "verification-jwks", "secret": {"secretName": "pipeline-verification-jwks"}}),
        )),
        verification_failure_behavior: Some("block".to_owned()),
        ..AgentConfig::default()
    };
    let with = |agent_config: AgentConfig| KubernetesConfig {
        agent_config,
        ..config()
    };
    let additional = AgentConfig {
        additional_hooks_paths: vec!["/opt/image-hooks".to_owned()],
        additional_hooks: vec![jobify_k8s::config::AdditionalHooks {
            path: "/buildkite/org-hooks".to_owned(),
            volume: typed(
                json!({"name": "org-hooks", "configMap": {"name": "org-hooks", "defaultMode": 493}}),
            ),
        }],
        ..AgentConfig::default()
    };
    vec![
        Row {
            name: "agent-config-additional-hooks",
            source: "config/agent_config.go additional-hooks-paths, additional-hooks: mounted \
                     in agent, checkout, command; their paths after the listed ones",
            job: exec_step(),
            config: with(additional),
            wants: vec![
                Volume("org-hooks"),
                MountOf("agent", "/buildkite/org-hooks", "org-hooks"),
                MountOf("checkout", "/buildkite/org-hooks", "org-hooks"),
                MountOf("container-0", "/buildkite/org-hooks", "org-hooks"),
                NoMount("sidecar-0", "/buildkite/org-hooks"),
                Env(
                    "agent",
                    "BUILDKITE_ADDITIONAL_HOOKS_PATHS",
                    "/opt/image-hooks,/buildkite/org-hooks",
                ),
                NoEnv("agent", "BUILDKITE_HOOKS_PATH"),
            ],
        },
        Row {
            name: "agent-config-volumes",
            source: "config/agent_config.go: hooks and plugins in agent, checkout, command; \
                     signing in agent, command; verification in agent",
            job: exec_step(),
            config: with(volumes.clone()),
            wants: vec![
                Volume("buildkite-hooks"),
                Volume("buildkite-plugins"),
                Volume("signing-jwks"),
                Volume("verification-jwks"),
                MountOf("agent", "/workspace/hooks", "buildkite-hooks"),
                MountOf("checkout", "/workspace/hooks", "buildkite-hooks"),
                MountOf("container-0", "/workspace/hooks", "buildkite-hooks"),
                MountOf("agent", "/workspace/plugins", "buildkite-plugins"),
                MountOf("checkout", "/workspace/plugins", "buildkite-plugins"),
                MountOf("container-0", "/workspace/plugins", "buildkite-plugins"),
                MountOf("agent", "/buildkite/signing-jwks", "signing-jwks"),
                MountOf("container-0", "/buildkite/signing-jwks", "signing-jwks"),
                NoMount("checkout", "/buildkite/signing-jwks"),
                MountOf("agent", "/buildkite/verification-jwks", "verification-jwks"),
                NoMount("container-0", "/buildkite/verification-jwks"),
                NoMount("checkout", "/buildkite/verification-jwks"),
                NoMount("sidecar-0", "/workspace/hooks"),
                Env("agent", "BUILDKITE_HOOKS_PATH", "/workspace/hooks"),
                Env("agent", "BUILDKITE_PLUGINS_PATH", "/workspace/plugins"),
                Env(
                    "agent",
                    "BUILDKITE_AGENT_SIGNING_JWKS_FILE",
                    "/buildkite/signing-jwks/key",
                ),
                Env("agent", "BUILDKITE_AGENT_SIGNING_JWKS_KEY_ID", "key-1"),
                Env(
                    "agent",
                    "BUILDKITE_AGENT_VERIFICATION_JWKS_FILE",
                    "/buildkite/verification-jwks/key",
                ),
                Env(
                    "agent",
                    "BUILDKITE_AGENT_JOB_VERIFICATION_NO_SIGNATURE_BEHAVIOR",
                    "block",
                ),
                NoEnv("container-0", "BUILDKITE_HOOKS_PATH"),
            ],
        },
        Row {
            name: "agent-config-paths",
            source: "config/agent_config.go: hooks-path, plugins-path, an absolute JWKS file",
            job: exec_step(),
            config: with(AgentConfig {
                hooks_path: Some("/etc/buildkite-agent/hooks".to_owned()),
                plugins_path: Some("/etc/buildkite-agent/plugins".to_owned()),
                signing_jwks_file: Some("/keys/signing.json".to_owned()),
                ..volumes.clone()
            }),
            wants: vec![
                MountOf("checkout", "/etc/buildkite-agent/hooks", "buildkite-hooks"),
                MountOf(
                    "container-0",
                    "/etc/buildkite-agent/plugins",
                    "buildkite-plugins",
                ),
                MountOf("container-0", "/keys", "signing-jwks"),
                Env(
                    "agent",
                    "BUILDKITE_HOOKS_PATH",
                    "/etc/buildkite-agent/hooks",
                ),
                Env(
                    "agent",
                    "BUILDKITE_PLUGINS_PATH",
                    "/etc/buildkite-agent/plugins",
                ),
                Env(
                    "agent",
                    "BUILDKITE_AGENT_SIGNING_JWKS_FILE",
                    "/keys/signing.json",
                ),
            ],
        },
        Row {
            name: "agent-config-agent-pod",
            source: "agent-config (jobify's agent pod: the agent runs hooks, plugins, uploads)",
            job: step("make"),
            config: with(volumes),
            wants: vec![
                Containers(&["agent"]),
                MountOf("agent", "/workspace/hooks", "buildkite-hooks"),
                MountOf("agent", "/buildkite/signing-jwks", "signing-jwks"),
                MountOf("agent", "/buildkite/verification-jwks", "verification-jwks"),
                Env("agent", "BUILDKITE_HOOKS_PATH", "/workspace/hooks"),
            ],
        },
    ]
}

pub fn template(job: &ScheduledJob) -> Template {
    if job.plugin.present().is_some_and(|p| p.pod_spec.is_some()) {
        Template::PodSpec
    } else {
        Template::Default { name: None }
    }
}

/// The workspace `copy-agent` prepares, tini as PID 1, a socket directory per container, and
/// the workspace of a non-root pod (scheduler.go `createWorkspaceSetupContainer`,
/// `commandContainerCommand`, `BUILDKITE_SOCKETS_PATH`).
fn workspace_setup_rows() -> Vec<Row> {
    // Two command containers; the pod's securityContext and the step's podSpecPatch if set.
    let job = |security: Option<Value>, patch: Option<Value>| {
        let mut config = json!({"podSpec": {"containers": [
            {"image": "alpine:latest", "command": ["make"]},
            {"name": "lint", "image": "alpine:latest", "command": ["make lint"]}]}});
        if let Some(security) = security {
            config["podSpec"]["securityContext"] = security;
        }
        if let Some(patch) = patch {
            config["podSpecPatch"] = patch;
        }
        plugin(step("make"), config)
    };
    vec![
        Row {
            name: "tini",
            source: "scheduler.go commandContainerCommand and the copy of tini-static",
            job: job(None, None),
            config: config(),
            wants: vec![
                UnderTini("container-0", true),
                UnderTini("lint", true),
                UnderTini("checkout", false),
                UnderTini("agent", false),
                Script("container-0", "make"),
                RunsLine(
                    "copy-agent",
                    "cp /usr/local/bin/buildkite-agent /workspace/buildkite-agent",
                ),
                NoLineWith("copy-agent", "chown"),
            ],
        },
        Row {
            name: "tini-off",
            source: "jobify's name for an agent image without tini-static: kubernetes.tini = false",
            job: job(None, None),
            config: KubernetesConfig {
                tini: false,
                ..config()
            },
            wants: vec![
                UnderTini("container-0", false),
                Script("container-0", "make"),
                NoLineWith("copy-agent", "tini"),
            ],
        },
        Row {
            name: "workspace-dirs-and-sockets",
            source: "scheduler.go: mkdir + chmod 777 of build, plugins, sockets; a socket \
                     directory per container",
            job: job(None, None),
            config: config(),
            wants: vec![
                RunsLine(
                    "copy-agent",
                    "mkdir -p /workspace/build /workspace/plugins /workspace/sockets",
                ),
                RunsLine(
                    "copy-agent",
                    "chmod 777 /workspace/build /workspace/plugins /workspace/sockets",
                ),
                Env(
                    "agent",
                    "BUILDKITE_SOCKETS_PATH",
                    "/workspace/sockets/agent",
                ),
                Env(
                    "checkout",
                    "BUILDKITE_SOCKETS_PATH",
                    "/workspace/sockets/checkout",
                ),
                Env(
                    "container-0",
                    "BUILDKITE_SOCKETS_PATH",
                    "/workspace/sockets/container-0",
                ),
                Env("lint", "BUILDKITE_SOCKETS_PATH", "/workspace/sockets/lint"),
            ],
        },
        Row {
            name: "non-root-workspace",
            source: "scheduler.go createWorkspaceSetupContainer: runAsUser and runAsGroup",
            job: job(Some(json!({"runAsUser": 1000, "runAsGroup": 1000})), None),
            config: config(),
            wants: vec![
                RunsLine("copy-agent", "chown -R 1000:1000 /workspace"),
                RunsLine(
                    "copy-agent",
                    "chmod 777 /workspace/build /workspace/plugins /workspace/sockets",
                ),
                RunsAs("copy-agent", Some(0)),
                RunsAs("container-0", Some(1000)),
                RunsAs("agent", Some(1000)),
                RunsAs("checkout", Some(0)),
                RunsLine(
                    "checkout",
                    "addgroup -g 1000 buildkite-agent 2>/dev/null || true",
                ),
                RunsLine(
                    "checkout",
                    "adduser -D -u 1000 -G buildkite-agent -h /workspace buildkite-agent",
                ),
                RunsLine(
                    "checkout",
                    "useradd -M -u 1000 -g buildkite-agent -d /workspace -s /bin/sh buildkite-agent",
                ),
                RunsLine("checkout", "exec su buildkite-agent -c \"$1\""),
                RunsLine(
                    "checkout",
                    "exec /workspace/buildkite-agent kubernetes-bootstrap",
                ),
            ],
        },
        Row {
            name: "non-root-user-only",
            source: "scheduler.go createWorkspaceSetupContainer: runAsUser without runAsGroup",
            job: job(Some(json!({"runAsUser": 1000})), None),
            config: config(),
            wants: vec![
                RunsLine("copy-agent", "chown -R 1000 /workspace"),
                RunsAs("copy-agent", Some(0)),
                RunsLine(
                    "checkout",
                    "adduser -D -u 1000 -G root -h /workspace buildkite-agent",
                ),
                NoLineWith("checkout", "addgroup"),
            ],
        },
        Row {
            name: "non-root-by-patch",
            source: "deliberately different: the user after podSpecPatch (agent-stack-k8s reads \
                     it before, its issue #326)",
            job: job(
                None,
                Some(json!({"securityContext": {"runAsUser": 1001, "runAsGroup": 1002}})),
            ),
            config: config(),
            wants: vec![
                RunsLine("copy-agent", "chown -R 1001:1002 /workspace"),
                RunsAs("copy-agent", Some(0)),
                RunsAs("container-0", Some(1001)),
            ],
        },
        Row {
            name: "non-root-own-copy-agent",
            source: "deliberately different: a copy-agent patched to run as non-root (a \
                     restricted namespace) is left without the chown",
            job: job(
                Some(json!({"runAsUser": 1000, "fsGroup": 1000})),
                Some(json!({"initContainers": [{"name": "copy-agent",
                    "securityContext": {"runAsUser": 1000, "runAsNonRoot": true}}]})),
            ),
            config: config(),
            wants: vec![
                NoLineWith("copy-agent", "chown"),
                RunsAs("copy-agent", Some(1000)),
                RunsLine(
                    "copy-agent",
                    "cp /usr/local/bin/buildkite-agent /workspace/buildkite-agent",
                ),
            ],
        },
        Row {
            name: "non-root-git-credentials",
            source: "scheduler.go createCheckoutContainer: su buildkite-agent -c with the git \
                     configuration, then the bootstrap",
            job: plugin(
                step("make"),
                json!({"podSpec": {"securityContext": {"runAsUser": 1000, "runAsGroup": 1000},
                    "containers": [{"image": "alpine:latest", "command": ["make"]}]},
                    "checkout": {"gitCredentialsSecret": {"secretName": "my-git-credentials"}}}),
            ),
            config: config(),
            wants: vec![
                RunsAs("checkout", Some(0)),
                RunsLine("checkout", "exec su buildkite-agent -c \"$1\""),
                RunsLine(
                    "checkout",
                    "git config --global credential.helper 'store --file \
                     /buildkite/git-credentials/.git-credentials'",
                ),
                RunsLine(
                    "checkout",
                    "exec /workspace/buildkite-agent kubernetes-bootstrap",
                ),
            ],
        },
        Row {
            name: "root-group-only",
            source: "scheduler.go: a non-root group with the root user needs nothing",
            job: job(Some(json!({"runAsGroup": 1000})), None),
            config: config(),
            wants: vec![
                NoLineWith("copy-agent", "chown"),
                RunsAs("copy-agent", None),
                RunsAs("checkout", None),
                NoLineWith("checkout", "adduser"),
            ],
        },
    ]
}

/// Controller-level settings and the Job around the pod (scheduler.go `Build`).
fn controller_rows() -> Vec<Row> {
    vec![
        Row {
            name: "job-active-deadline-seconds",
            source: "plugin jobActiveDeadlineSeconds (scheduler.go: the Job's activeDeadlineSeconds)",
            job: plugin(step("make"), json!({"jobActiveDeadlineSeconds": 600})),
            config: config(),
            wants: vec![ActiveDeadline(600)],
        },
        Row {
            name: "pod-spec-patch-controller",
            source: "pod-spec-patch (a strategic merge over every pod, before the step's)",
            job: plugin(
                step("make"),
                json!({"podSpec": {"containers": [{"image": "alpine:latest", "command": ["make"]}]},
                       "podSpecPatch": {"containers": [{"name": "container-0",
                           "env": [{"name": "LEVEL", "value": "step"}]}]}}),
            ),
            config: KubernetesConfig {
                pod_spec_patch: Some(json!({"containers": [{"name": "container-0", "env": [
                    {"name": "LEVEL", "value": "controller"},
                    {"name": "FROM_CONTROLLER", "value": "yes"}]}]})),
                ..config()
            },
            wants: vec![
                Env("container-0", "LEVEL", "step"),
                Env("container-0", "FROM_CONTROLLER", "yes"),
                Script("container-0", "make"),
            ],
        },
        Row {
            name: "job-labels",
            source: "deliberately different: jobify.dev/ labels instead of buildkite.com/ ones",
            job: step("make"),
            config: config(),
            wants: vec![
                Label("jobify.dev/pipeline", "app"),
                Label("jobify.dev/queue", "kubernetes"),
                Label("jobify.dev/controller", "compat"),
            ],
        },
    ]
}
