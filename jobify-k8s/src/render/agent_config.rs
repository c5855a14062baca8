//! `[kubernetes.agent_config]` in the pod, as agent-stack-k8s' `agent-config` puts it there
//! (`internal/controller/config/agent_config.go`): every configured volume in the pod; the
//! hooks and plugins volumes mounted in the agent, checkout and command containers, the
//! signing keys in the agent and command containers (they run `pipeline upload`), the
//! verification keys in the agent only, additional hooks volumes in the agent, checkout and
//! command containers; the agent told where each is.

use jobify_core::config::ConfigProblem;
use k8s_openapi::api::core::v1::{EnvVar, PodSpec, Volume, VolumeMount};

use crate::config::{AgentConfig, KubernetesConfig};

/// Where the hooks volume is mounted when `hooks_path` is not set.
pub const DEFAULT_HOOKS_PATH: &str = "/workspace/hooks";
/// Where the plugins volume is mounted when `plugins_path` is not set.
pub const DEFAULT_PLUGINS_PATH: &str = "/workspace/plugins";
const SIGNING_JWKS_DIR: &str = "/buildkite/signing-jwks";
const VERIFICATION_JWKS_DIR: &str = "/buildkite/verification-jwks";
const DEFAULT_JWKS_FILE: &str = "key";

/// Which of jobify's containers a mount is for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// The `agent` container.
    Agent,
    /// The `checkout` container.
    Checkout,
    /// A command container.
    Command,
}

/// Adds every configured volume to the pod.
pub(crate) fn add_volumes(spec: &mut PodSpec, config: &AgentConfig) {
    let volumes: Vec<Volume> = config.volumes().map(|(_, v)| v.clone()).collect();
    if !volumes.is_empty() {
        spec.volumes.get_or_insert_with(Vec::new).extend(volumes);
    }
}

/// The mounts a container in `role` gets.
pub(crate) fn mounts(config: &AgentConfig, role: Role) -> Vec<VolumeMount> {
    let mut mounts = Vec::new();
    let mut mount = |volume: &Volume, path: String| {
        mounts.push(VolumeMount {
            name: volume.name.clone(),
            mount_path: path,
            ..VolumeMount::default()
        });
    };
    if let Some(volume) = &config.hooks_volume {
        mount(volume, hooks_path(config).to_owned());
    }
    for hooks in &config.additional_hooks {
        mount(&hooks.volume, hooks.path.clone());
    }
    if let Some(volume) = &config.plugins_volume {
        mount(volume, plugins_path(config).to_owned());
    }
    if role != Role::Checkout
        && let Some(volume) = &config.signing_jwks_volume
    {
        mount(volume, signing_jwks(config).0);
    }
    if role == Role::Agent
        && let Some(volume) = &config.verification_jwks_volume
    {
        mount(volume, verification_jwks(config).0);
    }
    mounts
}

/// The variables the agent container gets.
pub(crate) fn agent_env(config: &AgentConfig) -> Vec<EnvVar> {
    let mut env = Vec::new();
    let mut set = |name: &str, value: Option<String>| {
        if let Some(value) = value {
            env.push(EnvVar {
                name: name.to_owned(),
                value: Some(value),
                value_from: None,
            });
        }
    };
    let given = |path: &Option<String>, volume: &Option<Volume>| path.is_some() || volume.is_some();
    set(
        "BUILDKITE_HOOKS_PATH",
        given(&config.hooks_path, &config.hooks_volume).then(|| hooks_path(config).to_owned()),
    );
    let additional: Vec<&str> = config.additional_hooks_paths().collect();
    set(
        "BUILDKITE_ADDITIONAL_HOOKS_PATHS",
        (!additional.is_empty()).then(|| additional.join(",")),
    );
    set(
        "BUILDKITE_PLUGINS_PATH",
        given(&config.plugins_path, &config.plugins_volume)
            .then(|| plugins_path(config).to_owned()),
    );
    set(
        "BUILDKITE_AGENT_SIGNING_JWKS_FILE",
        given(&config.signing_jwks_file, &config.signing_jwks_volume)
            .then(|| signing_jwks(config).1),
    );
    set(
        "BUILDKITE_AGENT_SIGNING_JWKS_KEY_ID",
        config.signing_jwks_key_id.clone(),
    );
    set(
        "BUILDKITE_AGENT_VERIFICATION_JWKS_FILE",
        given(
            &config.verification_jwks_file,
            &config.verification_jwks_volume,
        )
        .then(|| verification_jwks(config).1),
    );
    set(
        "BUILDKITE_AGENT_JOB_VERIFICATION_NO_SIGNATURE_BEHAVIOR",
        config.verification_failure_behavior.clone(),
    );
    env
}

/// Reports variables of `kubernetes.env` that `[kubernetes.agent_config]` sets too: one of
/// the two would silently lose.
pub fn agent_config_env_conflicts(config: &KubernetesConfig, errors: &mut Vec<ConfigProblem>) {
    for var in agent_env(&config.agent_config) {
        if config.env.contains_key(&var.name) {
            errors.push(ConfigProblem::new(
                format!("kubernetes.env.{}", var.name),
                format!(
                    "is set by [kubernetes.agent_config] as well; keep it in one place (the \
                     agent gets {} from there)",
                    var.value.unwrap_or_default()
                ),
            ));
        }
    }
}

fn hooks_path(config: &AgentConfig) -> &str {
    config.hooks_path.as_deref().unwrap_or(DEFAULT_HOOKS_PATH)
}

fn plugins_path(config: &AgentConfig) -> &str {
    config
        .plugins_path
        .as_deref()
        .unwrap_or(DEFAULT_PLUGINS_PATH)
}

/// (mount directory, file path) of the signing JWKS.
fn signing_jwks(config: &AgentConfig) -> (String, String) {
    jwks(
        config.signing_jwks_file.as_deref(),
        config.signing_jwks_volume.is_some(),
        SIGNING_JWKS_DIR,
    )
}

/// (mount directory, file path) of the verification JWKS.
fn verification_jwks(config: &AgentConfig) -> (String, String) {
    jwks(
        config.verification_jwks_file.as_deref(),
        config.verification_jwks_volume.is_some(),
        VERIFICATION_JWKS_DIR,
    )
}

/// With a volume, a relative file (default `key`) lives in the volume mounted at
/// `default_dir`; an absolute one has the volume mounted at its directory. Without a volume
/// the file is the agent's to find, as given.
fn jwks(file: Option<&str>, volume: bool, default_dir: &str) -> (String, String) {
    let file = file.unwrap_or(DEFAULT_JWKS_FILE);
    if !volume {
        return (default_dir.to_owned(), file.to_owned());
    }
    match file.rsplit_once('/') {
        Some((dir, _)) if file.starts_with('/') => {
            let dir = if dir.is_empty() { "/" } else { dir };
            (dir.to_owned(), file.to_owned())
        }
        _ => (default_dir.to_owned(), format!("{default_dir}/{file}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn volume(name: &str) -> Option<Volume> {
        Some(Volume {
            name: name.to_owned(),
            ..Volume::default()
        })
    }

    fn paths(mounts: &[VolumeMount]) -> Vec<(&str, &str)> {
        mounts
            .iter()
            .map(|m| (m.name.as_str(), m.mount_path.as_str()))
            .collect()
    }

    #[test]
    fn each_container_mounts_what_it_uses() {
        let config = AgentConfig {
            hooks_volume: volume("hooks"),
            plugins_volume: volume("plugins"),
            signing_jwks_volume: volume("signing"),
            verification_jwks_volume: volume("verify"),
            ..AgentConfig::default()
        };
        assert_eq!(
            paths(&mounts(&config, Role::Agent)),
            [
                ("hooks", "/workspace/hooks"),
                ("plugins", "/workspace/plugins"),
                ("signing", "/buildkite/signing-jwks"),
                ("verify", "/buildkite/verification-jwks"),
            ]
        );
        assert_eq!(
            paths(&mounts(&config, Role::Command)),
            [
                ("hooks", "/workspace/hooks"),
                ("plugins", "/workspace/plugins"),
                ("signing", "/buildkite/signing-jwks"),
            ]
        );
        assert_eq!(
            paths(&mounts(&config, Role::Checkout)),
            [
                ("hooks", "/workspace/hooks"),
                ("plugins", "/workspace/plugins")
            ]
        );
    }

    #[test]
    fn jwks_files_resolve_against_their_volume() {
        assert_eq!(
            jwks(None, true, SIGNING_JWKS_DIR),
            (
                "/buildkite/signing-jwks".to_owned(),
                "/buildkite/signing-jwks/key".to_owned()
            )
        );
        assert_eq!(
            jwks(Some("/keys/sign.json"), true, SIGNING_JWKS_DIR),
            ("/keys".to_owned(), "/keys/sign.json".to_owned())
        );
        assert_eq!(
            jwks(Some("sign.json"), false, SIGNING_JWKS_DIR).1,
            "sign.json"
        );
    }

    #[test]
    fn the_agent_is_told_only_what_is_configured() {
        assert!(agent_env(&AgentConfig::default()).is_empty());
        let config = AgentConfig {
            hooks_path: Some("/etc/buildkite/hooks".to_owned()),
            verification_failure_behavior: Some("warn".to_owned()),
            ..AgentConfig::default()
        };
        let env: Vec<(String, Option<String>)> = agent_env(&config)
            .into_iter()
            .map(|v| (v.name, v.value))
            .collect();
        assert_eq!(
            env,
            [
                (
                    "BUILDKITE_HOOKS_PATH".to_owned(),
                    Some("/etc/buildkite/hooks".to_owned())
                ),
                (
                    "BUILDKITE_AGENT_JOB_VERIFICATION_NO_SIGNATURE_BEHAVIOR".to_owned(),
                    Some("warn".to_owned())
                ),
            ]
        );
    }

    #[test]
    fn a_variable_set_in_env_too_is_reported() {
        let config = KubernetesConfig {
            env: [("BUILDKITE_PLUGINS_PATH".to_owned(), "/p".to_owned())].into(),
            agent_config: AgentConfig {
                plugins_volume: volume("plugins"),
                ..AgentConfig::default()
            },
            ..KubernetesConfig::default()
        };
        let mut errors = Vec::new();
        agent_config_env_conflicts(&config, &mut errors);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].key, "kubernetes.env.BUILDKITE_PLUGINS_PATH");
        assert!(
            errors[0].message.contains("/workspace/plugins"),
            "{errors:?}"
        );
    }
}
