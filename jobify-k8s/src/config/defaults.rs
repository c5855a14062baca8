//! Controller-wide defaults for what a pipeline's pod gets: `[kubernetes.default_metadata]`
//! (labels and annotations on every Job and pod), `[kubernetes.default_command_params]` (how
//! command containers get their script, and their `envFrom` and mounts) and
//! `[kubernetes.default_sidecar_params]` (the sidecars' `envFrom` and mounts),
//! agent-stack-k8s' `default-metadata`, `default-command-params` and `default-sidecar-params`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{EnvFromSource, VolumeMount};
use serde::Deserialize;

use crate::labels::{is_label_key, is_label_value};
use crate::render::Interposer;
use jobify_core::config::ConfigProblem;

/// Annotation the cluster autoscaler reads before it evicts a pod to scale a node down.
pub const SAFE_TO_EVICT: &str = "cluster-autoscaler.kubernetes.io/safe-to-evict";

/// `[kubernetes.default_metadata]`: labels and annotations on every Job and its pods.
///
/// Every Job and pod also gets `cluster-autoscaler.kubernetes.io/safe-to-evict: "false"`, as
/// agent-stack-k8s gives them, so the autoscaler does not kill a running build to save a
/// node; set it to `"true"` here (e.g. for spot nodes) to let it. A step's plugin `metadata`
/// wins over these, and jobify's own `jobify.dev/` keys win over both (they cannot be set
/// here).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "the [kubernetes.default_metadata] table, with labels and annotations"
)]
pub struct DefaultMetadata {
    /// Labels, e.g. `{ team = "ci" }`.
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
}

/// `[kubernetes.default_command_params]`: how command containers of a `podSpec` get their
/// script when the step's plugin does not say (`commandParams`), and what every command
/// container gets besides the step's own `commandParams`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "the [kubernetes.default_command_params] table"
)]
pub struct DefaultCommandParams {
    /// `buildkite` (default: each `command` entry is a line of the script, `args` are
    /// appended to the last line, quoted), `vector` (command and args are one quoted command
    /// line) or `legacy` (joined with spaces, unquoted).
    pub interposer: Interposer,
    /// `envFrom` sources of every command container, before the step's own.
    #[serde(deserialize_with = "crate::render::strict_k8s")]
    pub env_from: Vec<EnvFromSource>,
    /// Volume mounts of every command container; a mount the step's plugin makes at the same
    /// path wins.
    #[serde(deserialize_with = "crate::render::strict_k8s")]
    pub extra_volume_mounts: Vec<VolumeMount>,
}

/// `[kubernetes.default_sidecar_params]`: what every sidecar of a step's plugin gets besides
/// the step's own `sidecarParams`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "the [kubernetes.default_sidecar_params] table, with env_from and extra_volume_mounts"
)]
pub struct DefaultSidecarParams {
    /// `envFrom` sources of every sidecar, before the step's own.
    #[serde(deserialize_with = "crate::render::strict_k8s")]
    pub env_from: Vec<EnvFromSource>,
    /// Volume mounts of every sidecar; a mount the step's plugin makes at the same path wins.
    #[serde(deserialize_with = "crate::render::strict_k8s")]
    pub extra_volume_mounts: Vec<VolumeMount>,
}

impl DefaultMetadata {
    /// Checks the keys and values; every problem found.
    pub(crate) fn validate(&self, errors: &mut Vec<ConfigProblem>) {
        for (kind, map) in [("labels", &self.labels), ("annotations", &self.annotations)] {
            for (key, value) in map {
                let at = format!("kubernetes.default_metadata.{kind}.{key}");
                if key.starts_with("jobify.dev/") {
                    errors.push(ConfigProblem::new(
                        at,
                        "jobify.dev/ keys are jobify's own; use another prefix",
                    ));
                } else if !is_label_key(key) {
                    errors.push(ConfigProblem::new(
                        at,
                        format!(
                            "`{key}` is not a valid {kind} key: an optional DNS prefix and `/`, \
                             then at most 63 letters, digits, `-`, `_` or `.`"
                        ),
                    ));
                } else if kind == "labels" && !is_label_value(value) {
                    errors.push(ConfigProblem::new(
                        at,
                        format!(
                            "`{value}` is not a valid label value: at most 63 letters, digits, \
                             `-`, `_` or `.`, starting and ending with a letter or digit"
                        ),
                    ));
                }
            }
        }
    }
}
