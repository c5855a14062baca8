//! The checkout: the step plugin's `checkout` over the controller's
//! `[kubernetes.default_checkout_params]`, as agent-stack-k8s combines `checkout` with
//! `default-checkout-params` (`config/checkout_params.go`, `scheduler.go`
//! `createCheckoutContainer`):
//!
//! - `skip` and each git option: the step's when it sets one, else the default's. The git
//!   options and the mirrors' settings are variables of the `agent` container, which hands
//!   them to the checkout.
//! - `gitMirrors`: field by field the same; the volume is added to the pod and mounted in the
//!   `checkout` container at the mirrors' path (`/buildkite/git-mirrors` unless set).
//! - `gitCredentialsSecret`: the step's replaces the default's. The Secret is a volume
//!   mounted read-only in the `checkout` container and copied into a memory-backed emptyDir,
//!   and git's `store` credential helper reads the copy (it writes back to the file it reads,
//!   which a Secret volume refuses).
//! - `envFrom`: the default's, then the step's; `extraVolumeMounts`: the step's, then the
//!   default's (one mount per path, the first kept).

use jobify_core::config::ConfigProblem;
use k8s_openapi::api::core::v1::{
    Container, EmptyDirVolumeSource, EnvFromSource, PodSpec, SecretVolumeSource, Volume,
    VolumeMount,
};

use crate::config::{DefaultCheckoutParams, GitMirrors, KubernetesConfig};
use crate::render::RenderError;
use crate::render::plugin_keys::CheckoutParams;

/// Where the mirrors volume is mounted, and what the agent is told, when no path is set.
pub const DEFAULT_GIT_MIRRORS_PATH: &str = "/buildkite/git-mirrors";
/// The volume of the credentials Secret, mounted read-only.
const CREDENTIALS_SECRET_VOLUME: &str = "git-credentials-ro";
/// The memory-backed emptyDir the credentials are copied into.
const CREDENTIALS_VOLUME: &str = "git-credentials";
const CREDENTIALS_SECRET_PATH: &str = "/buildkite/git-credentials-ro";
const CREDENTIALS_PATH: &str = "/buildkite/git-credentials";
/// The file the Secret must hold (map another key to it with the volume's `items`).
const CREDENTIALS_FILE: &str = ".git-credentials";

/// The names of the two volumes a git credentials Secret adds to the pod.
pub const GIT_CREDENTIALS_VOLUMES: [&str; 2] = [CREDENTIALS_SECRET_VOLUME, CREDENTIALS_VOLUME];

/// Where the configuration's defaults are written, for messages.
const DEFAULTS_KEY: &str = "kubernetes.default_checkout_params";

/// The git mirrors volume of a checkout.
#[derive(Debug)]
struct MirrorsVolume {
    volume: Volume,
    /// Where it is mounted: the path the agent is told.
    path: String,
    /// The key it came from, for messages.
    key: String,
}

/// The checkout of one job: the step's `checkout` over the controller's defaults.
#[derive(Debug)]
pub(crate) struct Checkout {
    /// Whether the `checkout` container is left out.
    pub(crate) skip: bool,
    /// Variables of the `agent` container (git options and mirrors), each set once.
    pub(crate) agent_env: Vec<(&'static str, String)>,
    /// The mirrors volume.
    mirrors: Option<MirrorsVolume>,
    /// The credentials Secret and the key it came from.
    credentials: Option<(SecretVolumeSource, String)>,
    /// `envFrom` of the `checkout` container: the default's, then the step's.
    env_from: Vec<EnvFromSource>,
    /// Extra mounts of the `checkout` container: the step's, then the default's.
    extra_volume_mounts: Vec<VolumeMount>,
}

impl Checkout {
    /// The step's `checkout` over `config`'s defaults.
    pub(crate) fn new(config: &KubernetesConfig, step: &CheckoutParams) -> Self {
        let defaults = &config.default_checkout_params;
        let mut agent_env = default_flags(defaults);
        for (name, value) in &step.agent_env {
            set(&mut agent_env, name, value.clone());
        }
        let (mirrors_env, mirrors) =
            mirrors(defaults.git_mirrors.as_ref(), step.git_mirrors.as_ref());
        for (name, value) in mirrors_env {
            set(&mut agent_env, name, value);
        }
        let credentials = match (
            &step.git_credentials_secret,
            &defaults.git_credentials_secret,
        ) {
            (Some(secret), _) => Some((secret.clone(), "checkout.gitCredentialsSecret".to_owned())),
            (None, Some(secret)) => Some((
                secret.clone(),
                format!("{DEFAULTS_KEY}.git_credentials_secret"),
            )),
            (None, None) => None,
        };
        Checkout {
            skip: step.skip.or(defaults.skip).unwrap_or(false),
            agent_env,
            mirrors,
            credentials,
            env_from: defaults
                .env_from
                .iter()
                .chain(&step.env_from)
                .cloned()
                .collect(),
            extra_volume_mounts: step
                .extra_volume_mounts
                .iter()
                .chain(&defaults.extra_volume_mounts)
                .cloned()
                .collect(),
        }
    }

    /// Whether the checkout needs the `checkout` container of the Kubernetes-exec layout: a
    /// mirrors volume or a credentials Secret is set up there, and the agent pod has none.
    pub(crate) fn needs_container(&self) -> bool {
        !self.skip && (self.mirrors.is_some() || self.credentials.is_some())
    }

    /// `envFrom` sources of the `checkout` container, before `gitEnvFrom`.
    pub(crate) fn env_from(&self) -> &[EnvFromSource] {
        &self.env_from
    }

    /// The mounts of the `checkout` container besides the workspace and the agent's volumes,
    /// in the order they are taken (one per path).
    pub(crate) fn mounts(&self) -> Vec<VolumeMount> {
        let mut mounts = Vec::new();
        if self.credentials.is_some() {
            mounts.push(mount(CREDENTIALS_SECRET_VOLUME, CREDENTIALS_SECRET_PATH));
            mounts.push(mount(CREDENTIALS_VOLUME, CREDENTIALS_PATH));
        }
        if let Some(mirrors) = &self.mirrors {
            mounts.push(mount(&mirrors.volume.name, &mirrors.path));
        }
        mounts.extend(self.extra_volume_mounts.iter().cloned());
        mounts
    }

    /// Makes `container` install the credentials before it runs the bootstrap, when there are
    /// any.
    pub(crate) fn set_command(&self, container: &mut Container, bootstrap: &[String]) {
        if self.credentials.is_none() {
            return;
        }
        let copy = format!("{CREDENTIALS_PATH}/{CREDENTIALS_FILE}");
        let script = [
            "set -eu".to_owned(),
            format!("cp {CREDENTIALS_SECRET_PATH}/{CREDENTIALS_FILE} {copy}"),
            format!("git config --global credential.helper 'store --file {copy}'"),
            format!("exec {}", bootstrap.join(" ")),
        ]
        .join("\n");
        container.command = Some(vec!["/bin/sh".to_owned(), "-c".to_owned()]);
        container.args = Some(vec![script]);
    }

    /// Adds the mirrors volume and the credentials volumes to the pod, refusing a name the
    /// pod already uses.
    pub(crate) fn add_volumes(&self, spec: &mut PodSpec) -> Result<(), RenderError> {
        if let Some((secret, key)) = &self.credentials {
            let volumes = [
                Volume {
                    name: CREDENTIALS_SECRET_VOLUME.to_owned(),
                    secret: Some(secret.clone()),
                    ..Volume::default()
                },
                Volume {
                    name: CREDENTIALS_VOLUME.to_owned(),
                    empty_dir: Some(EmptyDirVolumeSource {
                        medium: Some("Memory".to_owned()),
                        ..EmptyDirVolumeSource::default()
                    }),
                    ..Volume::default()
                },
            ];
            for volume in volumes {
                add_volume(spec, volume, || RenderError::InvalidField {
                    path: key.clone(),
                    message: format!(
                        "adds the volumes {} and {}, but the pod already has a volume of one of \
                         those names; rename it",
                        CREDENTIALS_SECRET_VOLUME, CREDENTIALS_VOLUME
                    ),
                })?;
            }
        }
        if let Some(MirrorsVolume { volume, key, .. }) = &self.mirrors {
            add_volume(spec, volume.clone(), || RenderError::InvalidField {
                path: format!("{key}.name"),
                message: format!(
                    "`{}` names a volume the pod already has; give the mirrors volume another \
                     name",
                    volume.name
                ),
            })?;
        }
        Ok(())
    }
}

fn add_volume(
    spec: &mut PodSpec,
    volume: Volume,
    taken: impl FnOnce() -> RenderError,
) -> Result<(), RenderError> {
    let volumes = spec.volumes.get_or_insert_with(Vec::new);
    if volumes.iter().any(|v| v.name == volume.name) {
        return Err(taken());
    }
    volumes.push(volume);
    Ok(())
}

fn mount(volume: &str, path: &str) -> VolumeMount {
    VolumeMount {
        name: volume.to_owned(),
        mount_path: path.to_owned(),
        ..VolumeMount::default()
    }
}

/// Sets `name` to `value`, in its place when it is there already.
fn set(env: &mut Vec<(&'static str, String)>, name: &'static str, value: String) {
    match env.iter_mut().find(|(n, _)| *n == name) {
        Some((_, old)) => *old = value,
        None => env.push((name, value)),
    }
}

/// The agent's git variables of the configuration's defaults.
fn default_flags(defaults: &DefaultCheckoutParams) -> Vec<(&'static str, String)> {
    let text = [
        ("BUILDKITE_GIT_CHECKOUT_FLAGS", &defaults.checkout_flags),
        ("BUILDKITE_GIT_CLEAN_FLAGS", &defaults.clean_flags),
        ("BUILDKITE_GIT_CLONE_FLAGS", &defaults.clone_flags),
        ("BUILDKITE_GIT_FETCH_FLAGS", &defaults.fetch_flags),
    ];
    let mut env: Vec<(&'static str, String)> = text
        .into_iter()
        .filter_map(|(name, value)| value.clone().map(|v| (name, v)))
        .collect();
    if let Some(no) = defaults.no_submodules {
        env.push(("BUILDKITE_NO_GIT_SUBMODULES", no.to_string()));
    }
    if !defaults.submodule_clone_config.is_empty() {
        env.push((
            "BUILDKITE_GIT_SUBMODULE_CLONE_CONFIG",
            defaults.submodule_clone_config.join(","),
        ));
    }
    env
}

/// The mirrors' variables and volume, field by field the step's over the default's. The path
/// is the one the agent-stack-k8s agent is told: the step's, else `/buildkite/git-mirrors`
/// when the step brings a volume, else the default's, else `/buildkite/git-mirrors` when the
/// default brings a volume.
fn mirrors(
    defaults: Option<&GitMirrors>,
    step: Option<&GitMirrors>,
) -> (Vec<(&'static str, String)>, Option<MirrorsVolume>) {
    let pick = |field: fn(&GitMirrors) -> Option<String>| {
        step.and_then(field).or_else(|| defaults.and_then(field))
    };
    let with_volume_default = |mirrors: Option<&GitMirrors>| {
        mirrors.and_then(|m| {
            m.path.clone().or_else(|| {
                m.volume
                    .as_ref()
                    .map(|_| DEFAULT_GIT_MIRRORS_PATH.to_owned())
            })
        })
    };
    let path = with_volume_default(step).or_else(|| with_volume_default(defaults));
    let mut env = Vec::new();
    if let Some(path) = &path {
        env.push(("BUILDKITE_GIT_MIRRORS_PATH", path.clone()));
    }
    if let Some(flags) = pick(|m| m.clone_flags.clone()) {
        env.push(("BUILDKITE_GIT_CLONE_MIRROR_FLAGS", flags));
    }
    if let Some(timeout) = pick(|m| m.lock_timeout.filter(|t| *t > 0).map(|t| t.to_string())) {
        env.push(("BUILDKITE_GIT_MIRRORS_LOCK_TIMEOUT", timeout));
    }
    if let Some(skip) = pick(|m| m.skip_update.map(|s| s.to_string())) {
        env.push(("BUILDKITE_GIT_MIRRORS_SKIP_UPDATE", skip));
    }
    let volume = match (
        step.and_then(|m| m.volume.as_ref()),
        defaults.and_then(|m| m.volume.as_ref()),
    ) {
        (Some(volume), _) => Some((volume.clone(), "checkout.gitMirrors.volume".to_owned())),
        (None, Some(volume)) => {
            Some((volume.clone(), format!("{DEFAULTS_KEY}.git_mirrors.volume")))
        }
        (None, None) => None,
    };
    let volume = volume.map(|(volume, key)| MirrorsVolume {
        volume,
        path: path
            .clone()
            .unwrap_or_else(|| DEFAULT_GIT_MIRRORS_PATH.to_owned()),
        key,
    });
    (env, volume)
}

/// The `kubernetes.env` variables that `[kubernetes.default_checkout_params]` sets too: one
/// of the two would silently lose.
pub fn checkout_env_conflicts(config: &KubernetesConfig, errors: &mut Vec<ConfigProblem>) {
    let checkout = Checkout::new(config, &CheckoutParams::default());
    for (name, _) in &checkout.agent_env {
        if config.env.contains_key(*name) {
            errors.push(ConfigProblem::new(
                format!("kubernetes.env.{name}"),
                "is set by [kubernetes.default_checkout_params] too; set it in one place \
                 (the step's checkout options win over both)",
            ));
        }
    }
}
