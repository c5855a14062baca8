//! The `kubernetes` plugin's configuration, read from a job's `BUILDKITE_PLUGINS` as
//! Buildkite's agent-stack-k8s reads it.
//!
//! `BUILDKITE_PLUGINS` is a JSON array of one-key objects: the key is the plugin reference
//! (`kubernetes`, `kubernetes#v1.2.3` or
//! `github.com/buildkite-plugins/kubernetes-buildkite-plugin#v1.2.3`), the value its
//! configuration. Pod specs stay JSON here: `jobify-core` knows no Kubernetes types; the
//! backend turns them into typed objects and the admission guard reads them as JSON.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::job::Env;

/// The environment variable Buildkite passes plugin configuration in.
pub const PLUGINS_ENV: &str = "BUILDKITE_PLUGINS";

/// What a job says about the `kubernetes` plugin.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub enum PluginConfig {
    /// The job does not use the plugin.
    #[default]
    Absent,
    /// The job uses the plugin with this configuration.
    Present(Box<KubernetesPlugin>),
    /// The job uses the plugin (or its `BUILDKITE_PLUGINS` is unreadable), but the
    /// configuration is malformed. The policy rejects such a job with this message rather than
    /// guess.
    Invalid(PluginError),
}

impl PluginConfig {
    /// Reads the plugin from a job's environment.
    pub fn from_env(env: &Env) -> Self {
        match env.non_empty(PLUGINS_ENV) {
            None => PluginConfig::Absent,
            Some(json) => match KubernetesPlugin::from_plugins_json(json) {
                Ok(None) => PluginConfig::Absent,
                Ok(Some(plugin)) => PluginConfig::Present(Box::new(plugin)),
                Err(err) => PluginConfig::Invalid(err),
            },
        }
    }

    /// The configuration, when present and valid.
    pub fn present(&self) -> Option<&KubernetesPlugin> {
        match self {
            PluginConfig::Present(plugin) => Some(plugin),
            _ => None,
        }
    }
}

/// Why a job's plugin configuration could not be read. The message says where
/// (line and column in `BUILDKITE_PLUGINS`, or the key path) and what was expected.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct PluginError {
    /// A sentence a pipeline author can act on.
    pub message: String,
}

/// Labels and annotations the job asks to put on its pod (plugin key `metadata`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodMetadata {
    /// Extra labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Extra annotations.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// The `kubernetes` plugin's configuration (agent-stack-k8s' plugin keys).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KubernetesPlugin {
    /// A whole pod spec (`podSpec`): containers listed here run the step's commands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_spec: Option<Value>,
    /// A strategic-merge patch over the rendered pod spec (`podSpecPatch`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_spec_patch: Option<Value>,
    /// The name of a pod template to start from (`podTemplate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_template: Option<String>,
    /// Labels and annotations for the Job and pod (`metadata`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<PodMetadata>,
    /// `envFrom` sources for the checkout container (`gitEnvFrom`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub git_env_from: Vec<Value>,
    /// Extra containers that run beside the job (`sidecars`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sidecars: Vec<Value>,
    /// Volume mounts added to every container (`extraVolumeMounts`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_volume_mounts: Vec<Value>,
    /// Checkout settings (`checkout`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkout: Option<Value>,
    /// How commands are passed to containers (`commandParams`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_params: Option<Value>,
    /// What every sidecar gets (`sidecarParams`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sidecar_params: Option<Value>,
    /// Overrides the Job's `activeDeadlineSeconds` (`jobActiveDeadlineSeconds`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_active_deadline_seconds: Option<i64>,
    /// Keys this version does not know, kept so the backend can refuse them by name.
    #[serde(flatten, default, skip_serializing_if = "BTreeMap::is_empty")]
    pub unknown: BTreeMap<String, Value>,
}

impl KubernetesPlugin {
    /// Finds and parses the `kubernetes` plugin in a `BUILDKITE_PLUGINS` JSON document.
    /// `Ok(None)` when the job uses other plugins only.
    pub fn from_plugins_json(json: &str) -> Result<Option<Self>, PluginError> {
        let plugins: Vec<BTreeMap<String, Value>> =
            serde_json::from_str(json).map_err(|err| PluginError {
                message: format!(
                    "{PLUGINS_ENV} is not a JSON array of plugins (line {}, column {}): {err}",
                    err.line(),
                    err.column()
                ),
            })?;
        for (index, plugin) in plugins.iter().enumerate() {
            for (reference, config) in plugin {
                if !is_kubernetes_plugin(reference) {
                    continue;
                }
                let config = match config {
                    Value::Null => return Ok(Some(KubernetesPlugin::default())),
                    other => other.clone(),
                };
                return serde_path_to_error::deserialize::<_, KubernetesPlugin>(config)
                    .map(Some)
                    .map_err(|err| PluginError {
                        message: format!(
                            "plugin {index} (`{reference}`) has an invalid configuration at \
                             `{}`: {}; see the keys agent-stack-k8s documents for the \
                             kubernetes plugin",
                            err.path(),
                            err.inner()
                        ),
                    });
            }
        }
        Ok(None)
    }
}

/// Whether a plugin reference names the `kubernetes` plugin: `kubernetes`,
/// `kubernetes#v1.2.3`, `github.com/buildkite-plugins/kubernetes-buildkite-plugin` (with or
/// without scheme, `.git` or `#version`).
pub fn is_kubernetes_plugin(reference: &str) -> bool {
    let without_version = reference.split('#').next().unwrap_or(reference);
    let without_git = without_version
        .strip_suffix(".git")
        .unwrap_or(without_version);
    let name = without_git.rsplit('/').next().unwrap_or(without_git);
    let name = name.strip_suffix("-buildkite-plugin").unwrap_or(name);
    name == "kubernetes"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_every_form_of_the_plugin_reference() {
        for reference in [
            "kubernetes",
            "kubernetes#v1.2.3",
            "github.com/buildkite-plugins/kubernetes-buildkite-plugin",
            "github.com/buildkite-plugins/kubernetes-buildkite-plugin#v0.1.0",
            "https://github.com/buildkite-plugins/kubernetes-buildkite-plugin.git#main",
        ] {
            assert!(is_kubernetes_plugin(reference), "{reference}");
        }
        for reference in [
            "docker#v5.0.0",
            "github.com/acme/kubernetes-tools-buildkite-plugin",
        ] {
            assert!(!is_kubernetes_plugin(reference), "{reference}");
        }
    }

    #[test]
    fn parses_pod_spec_and_metadata() {
        let json = r#"[{"docker#v5.0.0":{"image":"x"}},
            {"github.com/buildkite-plugins/kubernetes-buildkite-plugin#v1.0.0":
              {"podSpec":{"containers":[{"image":"rust:1.95","command":["cargo test"]}]},
               "metadata":{"labels":{"team":"ci"}}}}]"#;
        let plugin = KubernetesPlugin::from_plugins_json(json)
            .expect("valid")
            .expect("present");
        assert_eq!(
            plugin.pod_spec.expect("podSpec")["containers"][0]["image"],
            "rust:1.95"
        );
        assert_eq!(plugin.metadata.expect("metadata").labels["team"], "ci");
    }

    #[test]
    fn malformed_plugins_json_names_line_and_column() {
        let config = PluginConfig::from_env(&Env::from_pairs(["BUILDKITE_PLUGINS=[{\"k\": }]"]));
        let PluginConfig::Invalid(err) = config else {
            panic!("expected invalid, got {config:?}")
        };
        assert!(err.message.contains("line 1, column 8"), "{}", err.message);
    }

    #[test]
    fn wrong_type_in_plugin_config_is_invalid_and_names_the_key() {
        let env = Env::from_pairs([
            r#"BUILDKITE_PLUGINS=[{"docker":{}},{"kubernetes#v1":{"sidecars":[],"jobActiveDeadlineSeconds":"x"}}]"#,
        ]);
        let config = PluginConfig::from_env(&env);
        let PluginConfig::Invalid(err) = config else {
            panic!("expected invalid, got {config:?}")
        };
        assert!(
            err.message
                .starts_with("plugin 1 (`kubernetes#v1`) has an invalid configuration at `jobActiveDeadlineSeconds`: invalid type: string \"x\""),
            "{}",
            err.message
        );
    }

    #[test]
    fn a_nested_wrong_type_names_its_path() {
        let env = Env::from_pairs([
            r#"BUILDKITE_PLUGINS=[{"kubernetes":{"metadata":{"labels":{"team":7}}}}]"#,
        ]);
        let PluginConfig::Invalid(err) = PluginConfig::from_env(&env) else {
            panic!("expected invalid")
        };
        assert!(
            err.message.contains("at `metadata.labels.team`"),
            "{}",
            err.message
        );
    }

    #[test]
    fn no_plugins_is_absent() {
        assert_eq!(
            PluginConfig::from_env(&Env::from_pairs(["BUILDKITE_PLUGINS="])),
            PluginConfig::Absent
        );
        assert_eq!(
            PluginConfig::from_env(&Env::default()),
            PluginConfig::Absent
        );
    }
}
