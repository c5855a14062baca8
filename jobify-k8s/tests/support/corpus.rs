//! The manifest corpus: one job per interesting rendering. `tests/render.rs` writes it for
//! `kubernetes-validate` in CI, and `tests/real_cluster.rs` creates it on a real API server
//! with strict field validation, so both check the same manifests.

use std::collections::BTreeMap;

use jobify_core::{ScheduledJob, Template};
use jobify_k8s::config::{KubernetesConfig, ResourceClass};
use secrecy::SecretString;
use serde_json::json;
use uuid::Uuid;

use super::fixtures::{JobExt, scheduled};

/// The template of a job the policy sends to the default agent pod.
pub fn default_template() -> Template {
    Template::Default { name: None }
}

pub fn podspec_job() -> ScheduledJob {
    scheduled("queue=kubernetes").with_plugin(json!({
        "podSpec": {"containers": [
            {"image": "rust:1.95", "command": ["cargo"], "args": ["test", "--all"]},
            {"name": "lint", "image": "rust:1.95", "command": ["cargo clippy"]}
        ]}
    }))
}

pub fn config_with_classes() -> KubernetesConfig {
    let large = ResourceClass {
        requests: BTreeMap::from([
            ("cpu".to_owned(), "4".to_owned()),
            ("memory".to_owned(), "8Gi".to_owned()),
        ]),
        limits: BTreeMap::from([("memory".to_owned(), "8Gi".to_owned())]),
        node_selector: BTreeMap::from([("pool".to_owned(), "large".to_owned())]),
        ..ResourceClass::default()
    };
    KubernetesConfig {
        resource_classes: BTreeMap::from([("large".to_owned(), large)]),
        node_selector: BTreeMap::from([("kubernetes.io/os".to_owned(), "linux".to_owned())]),
        ..KubernetesConfig::default()
    }
}

/// A podSpec job with everything at once: the controller's patch, the job's podSpecPatch,
/// sidecars, and the default resource class.
pub fn everything_job() -> (ScheduledJob, KubernetesConfig) {
    let job = scheduled("queue=kubernetes").with_plugin(json!({
        "podSpec": {"containers": [{"name": "build", "image": "rust:1.95", "command": ["make"]}]},
        "podSpecPatch": {"containers": [{"name": "build",
            "resources": {"limits": {"cpu": "8"}},
            "env": [{"name": "LEVEL", "value": "job"}]}]},
        "sidecars": [{"name": "redis", "image": "redis:7"}]
    }));
    let config = KubernetesConfig {
        default_resource_class: Some("large".to_owned()),
        pod_spec_patch: Some(json!({"priorityClassName": "ci",
            "containers": [{"name": "build", "env": [{"name": "LEVEL", "value": "controller"}]}]})),
        ..config_with_classes()
    };
    (job, config)
}

/// Every case of the corpus: its name (the manifest's file name), the job, the template and
/// the configuration it is rendered with.
pub fn cases() -> Vec<(&'static str, ScheduledJob, Template, KubernetesConfig)> {
    let fixed = |n: u128| Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0000 + n);
    let classes = config_with_classes();
    let everything = everything_job();
    let patched_config = KubernetesConfig {
        pod_spec_patch: Some(json!({"priorityClassName": "ci",
            "tolerations": [{"key": "ci", "operator": "Exists", "effect": "NoSchedule"}]})),
        service_account_name: Some("builder".to_owned()),
        env: BTreeMap::from([("BUILDKITE_GIT_CLONE_FLAGS".to_owned(), "-v".to_owned())]),
        image_pull_policy: Some("IfNotPresent".to_owned()),
        ..KubernetesConfig::default()
    };
    vec![
        (
            "default",
            scheduled("queue=kubernetes").with_id(fixed(1)),
            default_template(),
            classes.clone(),
        ),
        (
            "podspec",
            podspec_job().with_id(fixed(2)),
            Template::PodSpec,
            classes.clone(),
        ),
        (
            "patched",
            scheduled("queue=kubernetes")
                .with_id(fixed(3))
                .with_plugin(json!({
                    "podSpecPatch": {"containers": [{"name": "agent",
                        "resources": {"requests": {"cpu": "2", "memory": "1Gi"}}}]}
                })),
            default_template(),
            patched_config,
        ),
        (
            "sidecars",
            scheduled("queue=kubernetes")
                .with_id(fixed(4))
                .with_plugin(json!({
                    "podSpec": {"containers": [{"image": "alpine", "command": ["make"]}],
                                "volumes": [{"name": "cache", "emptyDir": {}}]},
                    "sidecars": [{"name": "redis", "image": "redis:7"}],
                    "extraVolumeMounts": [{"name": "cache", "mountPath": "/cache"}],
                    "gitEnvFrom": [{"secretRef": {"name": "git-creds"}}],
                    "metadata": {"labels": {"team": "ci"}},
                    "jobActiveDeadlineSeconds": 900
                })),
            Template::PodSpec,
            classes.clone(),
        ),
        (
            "native-sidecars",
            scheduled("queue=kubernetes")
                .with_id(fixed(8))
                .with_plugin(json!({
                    "podSpec": {
                        "initContainers": [{"name": "migrate", "image": "alpine",
                                            "command": ["true"]}],
                        "containers": [{"image": "alpine", "command": ["make"]}]
                    },
                    "sidecars": [
                        {"name": "dind", "image": "docker:dind",
                         "securityContext": {"privileged": true}},
                        {"name": "postgres", "image": "postgres:17",
                         "env": [{"name": "POSTGRES_PASSWORD", "value": "ci"}],
                         "readinessProbe": {"exec": {"command": ["pg_isready"]}}}
                    ]
                })),
            Template::PodSpec,
            classes.clone(),
        ),
        (
            "default-sidecar",
            scheduled("queue=kubernetes")
                .with_id(fixed(9))
                .with_plugin(json!({"sidecars": [{"name": "redis", "image": "redis:7"}]})),
            default_template(),
            classes.clone(),
        ),
        (
            "resource-class",
            scheduled("queue=kubernetes").with_id(fixed(5)),
            Template::Default {
                name: Some("large".to_owned()),
            },
            classes.clone(),
        ),
        (
            "everything",
            everything.0.with_id(fixed(7)),
            Template::PodSpec,
            everything.1,
        ),
        (
            "label-unsafe",
            scheduled("queue=GPU large/fast,arch=*")
                .with_id(fixed(6))
                .on_pipeline(&format!("{}!", "p".repeat(80))),
            default_template(),
            classes.clone(),
        ),
    ]
}

/// The token the corpus's token Secrets hold (not a real one).
pub fn corpus_token() -> SecretString {
    SecretString::from("bkjat_corpus-not-a-real-token")
}

/// The cases rendered with an agent token of their own (`render_job_with_own_token`), each
/// written with its Secret (`<name>-secret.yaml`).
pub fn token_cases() -> Vec<(&'static str, ScheduledJob, Template, KubernetesConfig)> {
    let fixed = |n: u128| Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0100 + n);
    vec![
        (
            "own-token",
            scheduled("queue=kubernetes").with_id(fixed(1)),
            default_template(),
            config_with_classes(),
        ),
        (
            "own-token-podspec",
            podspec_job().with_id(fixed(2)),
            Template::PodSpec,
            config_with_classes(),
        ),
    ]
}
