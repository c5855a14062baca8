//! `[kubernetes.default_checkout_params]`: the controller's default `checkout` options,
//! agent-stack-k8s' `default-checkout-params` (`config/checkout_params.go`), in snake_case.
//! Each field is the default of the step plugin's `checkout` key of the same name; how the
//! two combine is in `render::checkout`.
//!
//! Operator configuration, like `kubernetes.workspace_volume`: the `[guard]` does not apply
//! to the Secret and volume named here (it checks what pipelines bring), but their shape is
//! checked here, so `jobify check` reports a mistake instead of every Job failing.

use k8s_openapi::api::core::v1::{EnvFromSource, SecretVolumeSource, Volume, VolumeMount};
use serde::Deserialize;

use super::KubernetesConfig;
use super::agent_config::check_volume;
use crate::labels::is_dns1123_subdomain;
use crate::render::{WORKSPACE_VOLUME, checkout_env_conflicts};
use jobify_core::config::ConfigProblem;

const KEY: &str = "kubernetes.default_checkout_params";

/// `[kubernetes.default_checkout_params]`: what every checkout gets unless the step's plugin
/// `checkout` says otherwise.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "the [kubernetes.default_checkout_params] table"
)]
pub struct DefaultCheckoutParams {
    /// Leave the `checkout` container out of Kubernetes-exec pods; the step's `checkout.skip`
    /// wins.
    pub skip: Option<bool>,
    /// `BUILDKITE_GIT_CHECKOUT_FLAGS` of the agent.
    pub checkout_flags: Option<String>,
    /// `BUILDKITE_GIT_CLEAN_FLAGS` of the agent.
    pub clean_flags: Option<String>,
    /// `BUILDKITE_GIT_CLONE_FLAGS` of the agent.
    pub clone_flags: Option<String>,
    /// `BUILDKITE_GIT_FETCH_FLAGS` of the agent.
    pub fetch_flags: Option<String>,
    /// `BUILDKITE_NO_GIT_SUBMODULES` of the agent.
    pub no_submodules: Option<bool>,
    /// `BUILDKITE_GIT_SUBMODULE_CLONE_CONFIG` of the agent, joined by commas.
    pub submodule_clone_config: Vec<String>,
    /// Git mirrors: the agent's `BUILDKITE_GIT_MIRRORS_*` variables and the volume they live
    /// in.
    pub git_mirrors: Option<GitMirrors>,
    /// A Secret holding a `.git-credentials` file, in a `secret` volume's shape
    /// (`secretName`, `items`, `defaultMode`, `optional`); the step's
    /// `checkout.gitCredentialsSecret` replaces it.
    #[serde(deserialize_with = "crate::render::strict_k8s")]
    pub git_credentials_secret: Option<SecretVolumeSource>,
    /// `envFrom` sources of the `checkout` container, before the step's own.
    #[serde(deserialize_with = "crate::render::strict_k8s")]
    pub env_from: Vec<EnvFromSource>,
    /// Volume mounts of the `checkout` container; a mount the step's plugin makes at the same
    /// path wins.
    #[serde(deserialize_with = "crate::render::strict_k8s")]
    pub extra_volume_mounts: Vec<VolumeMount>,
}

/// Git mirrors (`gitMirrors` in the plugin, `git_mirrors` in the configuration): where the
/// agent keeps them and how it uses them.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "a git_mirrors table with path, volume, clone_flags, lock_timeout, skip_update"
)]
pub struct GitMirrors {
    /// `BUILDKITE_GIT_MIRRORS_PATH`, and where `volume` is mounted (`/buildkite/git-mirrors`
    /// when only the volume is given).
    pub path: Option<String>,
    /// The volume the mirrors live in, added to the pod and mounted in the `checkout`
    /// container.
    #[serde(deserialize_with = "crate::render::strict_k8s")]
    pub volume: Option<Volume>,
    /// `BUILDKITE_GIT_CLONE_MIRROR_FLAGS`.
    pub clone_flags: Option<String>,
    /// `BUILDKITE_GIT_MIRRORS_LOCK_TIMEOUT`, in seconds.
    pub lock_timeout: Option<u32>,
    /// `BUILDKITE_GIT_MIRRORS_SKIP_UPDATE`.
    pub skip_update: Option<bool>,
}

impl DefaultCheckoutParams {
    /// Checks the mirrors and the credentials Secret; every problem found.
    pub(super) fn validate(config: &KubernetesConfig, errors: &mut Vec<ConfigProblem>) {
        let params = &config.default_checkout_params;
        if let Some(mirrors) = &params.git_mirrors {
            let key = format!("{KEY}.git_mirrors");
            if let Some(path) = &mirrors.path
                && !path.starts_with('/')
            {
                errors.push(ConfigProblem::new(
                    format!("{key}.path"),
                    format!("`{path}` is not an absolute path, e.g. \"/buildkite/git-mirrors\""),
                ));
            }
            if mirrors.lock_timeout == Some(0) {
                errors.push(ConfigProblem::new(
                    format!("{key}.lock_timeout"),
                    "must be at least 1 (seconds); leave it out for the agent's default",
                ));
            }
            if let Some(volume) = &mirrors.volume {
                check_volume(&format!("{key}.volume"), volume, errors);
                check_volume_name(config, &volume.name, &format!("{key}.volume.name"), errors);
            }
        }
        if let Some(secret) = &params.git_credentials_secret {
            let name = secret.secret_name.as_deref().unwrap_or_default();
            if !is_dns1123_subdomain(name) {
                errors.push(ConfigProblem::new(
                    format!("{KEY}.git_credentials_secret.secretName"),
                    format!(
                        "`{name}` is not a Secret name: give the Secret holding the \
                         .git-credentials file, e.g. {{ secretName = \"git-credentials\" }}"
                    ),
                ));
            }
        }
        checkout_env_conflicts(config, errors);
    }
}

/// The mirrors volume shares the pod with the workspace, the `[kubernetes.agent_config]`
/// volumes and the two volumes of the git credentials: its name must differ from theirs.
fn check_volume_name(
    config: &KubernetesConfig,
    name: &str,
    key: &str,
    errors: &mut Vec<ConfigProblem>,
) {
    let workspace = config
        .workspace_volume
        .as_ref()
        .map_or(WORKSPACE_VOLUME, |v| v.name.as_str());
    let taken = if name == workspace {
        Some("the workspace volume".to_owned())
    } else if let Some((other, _)) = config.agent_config.volumes().find(|(_, v)| v.name == name) {
        Some(format!("kubernetes.agent_config.{other}"))
    } else if crate::render::GIT_CREDENTIALS_VOLUMES.contains(&name) {
        Some("a volume of the git credentials".to_owned())
    } else {
        None
    };
    if let Some(taken) = taken {
        errors.push(ConfigProblem::new(
            key,
            format!("`{name}` is the name of {taken}; give the mirrors volume another name"),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<String> {
        let config: KubernetesConfig = toml::from_str(text).expect("parses");
        let mut errors = Vec::new();
        DefaultCheckoutParams::validate(&config, &mut errors);
        errors.into_iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn every_key_of_agent_stack_k8s_is_read() {
        let config: KubernetesConfig = toml::from_str(
            "[default_checkout_params]\n\
             skip = false\ncheckout_flags = \"-f\"\nclean_flags = \"-ffxdq\"\n\
             clone_flags = \"--depth=1\"\nfetch_flags = \"--prune\"\nno_submodules = true\n\
             submodule_clone_config = [\"core.a=b\"]\n\
             git_credentials_secret = { secretName = \"git-creds\" }\n\
             env_from = [{ secretRef = { name = \"github\" } }]\n\
             extra_volume_mounts = [{ name = \"cache\", mountPath = \"/cache\" }]\n\
             [default_checkout_params.git_mirrors]\n\
             path = \"/mirrors\"\nclone_flags = \"--bare\"\nlock_timeout = 30\nskip_update = true\n\
             volume = { name = \"mirrors\", persistentVolumeClaim = { claimName = \"git-mirrors\" } }\n",
        )
        .expect("parses");
        let params = &config.default_checkout_params;
        let mirrors = params.git_mirrors.as_ref().expect("mirrors");
        assert_eq!(mirrors.lock_timeout, Some(30));
        assert_eq!(
            mirrors.volume.as_ref().map(|v| v.name.as_str()),
            Some("mirrors")
        );
        assert_eq!(
            params
                .git_credentials_secret
                .as_ref()
                .and_then(|s| s.secret_name.as_deref()),
            Some("git-creds")
        );
        let mut errors = Vec::new();
        DefaultCheckoutParams::validate(&config, &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
    }

    #[test]
    fn bad_values_are_reported_under_their_full_key() {
        let errors = problems(
            "[default_checkout_params]\n\
             git_credentials_secret = { secretName = \"Git Creds\" }\n\
             [default_checkout_params.git_mirrors]\n\
             path = \"mirrors\"\nlock_timeout = 0\n\
             volume = { name = \"workspace\" }\n",
        );
        let keys: Vec<&str> = errors
            .iter()
            .map(|e| e.split(':').next().unwrap_or_default())
            .collect();
        assert_eq!(
            keys,
            [
                "kubernetes.default_checkout_params.git_mirrors.path",
                "kubernetes.default_checkout_params.git_mirrors.lock_timeout",
                "kubernetes.default_checkout_params.git_mirrors.volume",
                "kubernetes.default_checkout_params.git_mirrors.volume.name",
                "kubernetes.default_checkout_params.git_credentials_secret.secretName",
            ],
            "{errors:?}"
        );
    }

    #[test]
    fn a_variable_also_in_env_is_reported() {
        let errors = problems(
            "env = { BUILDKITE_GIT_CLONE_FLAGS = \"-v\" }\n\
             [default_checkout_params]\nclone_flags = \"--depth=1\"\n",
        );
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].starts_with("kubernetes.env.BUILDKITE_GIT_CLONE_FLAGS"),
            "{errors:?}"
        );
    }

    #[test]
    fn misspelt_keys_are_refused() {
        for (text, typo) in [
            (
                "[default_checkout_params]\nclone_flag = \"x\"\n",
                "clone_flag",
            ),
            (
                "[default_checkout_params.git_mirrors]\nlockTimeout = 3\n",
                "lockTimeout",
            ),
            (
                "[default_checkout_params]\ngit_credentials_secret = { secret_name = \"x\" }\n",
                "secret_name",
            ),
        ] {
            let err = toml::from_str::<KubernetesConfig>(text).expect_err(text);
            assert!(err.to_string().contains(typo), "{text}: {err}");
        }
    }
}
