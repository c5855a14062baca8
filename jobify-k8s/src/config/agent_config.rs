//! `[kubernetes.agent_config]`: the hooks, plugins and pipeline-signing volumes of
//! agent-stack-k8s' `agent-config` (`hooks-path` + `hooksVolume`, `plugins-path` +
//! `pluginsVolume`, `signing-jwks-file`/`-key-id` + `signingJWKSVolume`,
//! `verification-jwks-file` + `verificationJWKSVolume`, `verification-failure-behavior`,
//! `additional-hooks-paths` and `additional-hooks`).
//! What each container mounts and which variables the agent gets is in
//! `render::agent_config`.

use jobify_core::config::ConfigProblem;
use k8s_openapi::api::core::v1::Volume;
use serde::Deserialize;

use crate::labels::is_dns1123_label;

/// `[kubernetes.agent_config]`: volumes of agent hooks, plugins and signing keys, and where
/// the agent finds them.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "the [kubernetes.agent_config] table"
)]
pub struct AgentConfig {
    /// The agent's hooks directory (`BUILDKITE_HOOKS_PATH`); where `hooks_volume` is mounted,
    /// `/workspace/hooks` when only the volume is given.
    pub hooks_path: Option<String>,
    /// A volume of agent hooks (e.g. a ConfigMap), mounted at `hooks_path` in the agent,
    /// checkout and command containers.
    #[serde(deserialize_with = "crate::render::strict_k8s")]
    pub hooks_volume: Option<Volume>,
    /// More hooks directories the agent runs hooks from after `hooks_path`'s
    /// (`BUILDKITE_ADDITIONAL_HOOKS_PATHS`), e.g. directories an image or a volume below
    /// provides.
    pub additional_hooks_paths: Vec<String>,
    /// More hooks volumes, each mounted at its `path` in the agent, checkout and command
    /// containers; their paths follow `additional_hooks_paths` in
    /// `BUILDKITE_ADDITIONAL_HOOKS_PATHS`.
    pub additional_hooks: Vec<AdditionalHooks>,
    /// The agent's plugins directory (`BUILDKITE_PLUGINS_PATH`); where `plugins_volume` is
    /// mounted, `/workspace/plugins` when only the volume is given.
    pub plugins_path: Option<String>,
    /// A volume of plugins, mounted at `plugins_path` in the agent, checkout and command
    /// containers.
    #[serde(deserialize_with = "crate::render::strict_k8s")]
    pub plugins_volume: Option<Volume>,
    /// The JWKS file the agent signs uploaded pipelines with
    /// (`BUILDKITE_AGENT_SIGNING_JWKS_FILE`): a file name in `signing_jwks_volume` (default
    /// `key`, mounted at `/buildkite/signing-jwks`), or an absolute path whose directory the
    /// volume is mounted at.
    pub signing_jwks_file: Option<String>,
    /// The key of the signing JWKS to sign with (`BUILDKITE_AGENT_SIGNING_JWKS_KEY_ID`).
    pub signing_jwks_key_id: Option<String>,
    /// The volume (usually a Secret) holding the signing JWKS, mounted in the agent and
    /// command containers (which run `pipeline upload`).
    #[serde(deserialize_with = "crate::render::strict_k8s")]
    pub signing_jwks_volume: Option<Volume>,
    /// The JWKS file the agent verifies jobs with (`BUILDKITE_AGENT_VERIFICATION_JWKS_FILE`),
    /// as `signing_jwks_file` but under `/buildkite/verification-jwks`.
    pub verification_jwks_file: Option<String>,
    /// The volume holding the verification JWKS, mounted in the agent container only.
    #[serde(deserialize_with = "crate::render::strict_k8s")]
    pub verification_jwks_volume: Option<Volume>,
    /// What the verifying agent does with a job that carries no signature (`block` or `warn`,
    /// `BUILDKITE_AGENT_JOB_VERIFICATION_NO_SIGNATURE_BEHAVIOR`); unset, the agent's default.
    pub verification_failure_behavior: Option<String>,
}

/// One `[[kubernetes.agent_config.additional_hooks]]` entry: a volume of hooks and where it
/// is mounted (agent-stack-k8s' `additional-hooks`).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a table with path and volume, e.g. { path = \"/buildkite/org-hooks\", volume = { name = \"org-hooks\", configMap = { name = \"org-hooks\" } } }"
)]
pub struct AdditionalHooks {
    /// Where the volume is mounted, and the hooks directory the agent is told about.
    pub path: String,
    /// The volume of hooks (e.g. a ConfigMap with `defaultMode = 493`, so they run).
    #[serde(deserialize_with = "crate::render::strict_k8s")]
    pub volume: Volume,
}

impl AgentConfig {
    /// The volumes the pod gets, with their keys under `kubernetes.agent_config`.
    pub fn volumes(&self) -> impl Iterator<Item = (String, &Volume)> {
        [
            ("hooks_volume", self.hooks_volume.as_ref()),
            ("plugins_volume", self.plugins_volume.as_ref()),
            ("signing_jwks_volume", self.signing_jwks_volume.as_ref()),
            (
                "verification_jwks_volume",
                self.verification_jwks_volume.as_ref(),
            ),
        ]
        .into_iter()
        .filter_map(|(key, volume)| volume.map(|v| (key.to_owned(), v)))
        .chain(
            self.additional_hooks
                .iter()
                .enumerate()
                .map(|(index, hooks)| (format!("additional_hooks[{index}].volume"), &hooks.volume)),
        )
    }

    /// Every additional hooks directory, `additional_hooks_paths` then the volumes' paths.
    pub fn additional_hooks_paths(&self) -> impl Iterator<Item = &str> {
        self.additional_hooks_paths
            .iter()
            .map(String::as_str)
            .chain(self.additional_hooks.iter().map(|h| h.path.as_str()))
    }

    /// Checks paths, the failure behaviour and the volumes; every problem found.
    pub(crate) fn validate(&self, errors: &mut Vec<ConfigProblem>) {
        const KEY: &str = "kubernetes.agent_config";
        let additional = self
            .additional_hooks_paths
            .iter()
            .enumerate()
            .map(|(index, path)| (format!("additional_hooks_paths[{index}]"), Some(path)))
            .chain(
                self.additional_hooks
                    .iter()
                    .enumerate()
                    .map(|(index, hooks)| {
                        (format!("additional_hooks[{index}].path"), Some(&hooks.path))
                    }),
            );
        for (key, path) in [
            ("hooks_path".to_owned(), self.hooks_path.as_ref()),
            ("plugins_path".to_owned(), self.plugins_path.as_ref()),
        ]
        .into_iter()
        .chain(additional)
        {
            if let Some(path) = path
                && !path.starts_with('/')
            {
                errors.push(ConfigProblem::new(
                    format!("{KEY}.{key}"),
                    format!("`{path}` is not an absolute path, e.g. \"/workspace/hooks\""),
                ));
            }
        }
        for (key, file) in [
            ("signing_jwks_file", &self.signing_jwks_file),
            ("verification_jwks_file", &self.verification_jwks_file),
        ] {
            if let Some(file) = file
                && (file.trim().is_empty() || file.ends_with('/'))
            {
                errors.push(ConfigProblem::new(
                    format!("{KEY}.{key}"),
                    format!(
                        "`{file}` names no file: give a file name in the volume (e.g. \"key\") \
                         or an absolute path to the file"
                    ),
                ));
            }
        }
        if let Some(behavior) = &self.verification_failure_behavior
            && !matches!(behavior.as_str(), "block" | "warn")
        {
            errors.push(ConfigProblem::new(
                format!("{KEY}.verification_failure_behavior"),
                format!("`{behavior}` is not one of block, warn"),
            ));
        }
        let mut names = std::collections::BTreeSet::new();
        for (key, volume) in self.volumes() {
            check_volume(&format!("{KEY}.{key}"), volume, errors);
            if !names.insert(volume.name.as_str()) {
                errors.push(ConfigProblem::new(
                    format!("{KEY}.{key}.name"),
                    format!(
                        "`{}` names another volume of [kubernetes.agent_config] too; give each \
                         its own name",
                        volume.name
                    ),
                ));
            }
        }
    }
}

/// Reports a volume without a valid name, or with other than exactly one volume source.
pub(crate) fn check_volume(key: &str, volume: &Volume, errors: &mut Vec<ConfigProblem>) {
    if !is_dns1123_label(&volume.name) {
        errors.push(ConfigProblem::new(
            format!("{key}.name"),
            format!(
                "`{}` is not a volume name: use at most 63 lower-case letters, digits and '-'",
                volume.name
            ),
        ));
    }
    let sources: Vec<String> = match serde_json::to_value(volume) {
        Ok(serde_json::Value::Object(fields)) => fields
            .into_iter()
            .map(|(k, _)| k)
            .filter(|k| k != "name")
            .collect(),
        _ => Vec::new(),
    };
    if sources.len() != 1 {
        let found = if sources.is_empty() {
            "none".to_owned()
        } else {
            sources.join(", ")
        };
        errors.push(ConfigProblem::new(
            key,
            format!(
                "needs exactly one volume source (found: {found}), e.g. {{ name = \"keys\", \
                 secret = {{ secretName = \"pipeline-signing\" }} }}"
            ),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<String> {
        let config: AgentConfig = toml::from_str(text).expect("parses");
        let mut errors = Vec::new();
        config.validate(&mut errors);
        errors.into_iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn volumes_of_hooks_plugins_and_keys_are_accepted() {
        let errors = problems(
            "hooks_volume = { name = \"hooks\", configMap = { name = \"agent-hooks\", defaultMode = 493 } }\n\
             plugins_path = \"/plugins\"\n\
             plugins_volume = { name = \"plugins\", emptyDir = {} }\n\
             signing_jwks_key_id = \"key-1\"\n\
             signing_jwks_volume = { name = \"signing\", secret = { secretName = \"signing-jwks\" } }\n\
             verification_jwks_file = \"/keys/verify.json\"\n\
             verification_jwks_volume = { name = \"verify\", secret = { secretName = \"verify-jwks\" } }\n\
             verification_failure_behavior = \"warn\"\n",
        );
        assert!(errors.is_empty(), "{errors:?}");
    }

    #[test]
    fn bad_values_are_reported_where_they_are() {
        let errors = problems(
            "hooks_path = \"hooks\"\n\
             signing_jwks_file = \"\"\n\
             verification_failure_behavior = \"fail\"\n\
             hooks_volume = { name = \"keys\", emptyDir = {} }\n\
             plugins_volume = { name = \"keys\" }\n",
        );
        let keys: Vec<&str> = errors
            .iter()
            .map(|e| e.split(':').next().unwrap_or_default())
            .collect();
        assert_eq!(
            keys,
            [
                "kubernetes.agent_config.hooks_path",
                "kubernetes.agent_config.signing_jwks_file",
                "kubernetes.agent_config.verification_failure_behavior",
                "kubernetes.agent_config.plugins_volume",
                "kubernetes.agent_config.plugins_volume.name",
            ],
            "{errors:?}"
        );
    }

    #[test]
    fn additional_hooks_need_absolute_paths_and_a_volume_each() {
        let errors = problems(
            "additional_hooks_paths = [\"/opt/hooks\", \"relative\"]\n\
             [[additional_hooks]]\n\
             path = \"org-hooks\"\n\
             volume = { name = \"hooks\", configMap = { name = \"org-hooks\" } }\n\
             [[additional_hooks]]\n\
             path = \"/more\"\n\
             volume = { name = \"hooks\", emptyDir = {} }\n",
        );
        let keys: Vec<&str> = errors
            .iter()
            .map(|e| e.split(':').next().unwrap_or_default())
            .collect();
        assert_eq!(
            keys,
            [
                "kubernetes.agent_config.additional_hooks_paths[1]",
                "kubernetes.agent_config.additional_hooks[0].path",
                "kubernetes.agent_config.additional_hooks[1].volume.name",
            ],
            "{errors:?}"
        );
        let missing = toml::from_str::<AgentConfig>("[[additional_hooks]]\npath = \"/h\"\n")
            .expect_err("no volume");
        assert!(missing.to_string().contains("volume"), "{missing}");
    }

    #[test]
    fn a_misspelt_volume_field_is_refused() {
        let err = toml::from_str::<AgentConfig>(
            "hooks_volume = { name = \"h\", configmap = { name = \"x\" } }\n",
        )
        .expect_err("a typo");
        assert!(err.to_string().contains("configmap"), "{err}");
    }
}
