//! Which `kubernetes` plugin keys jobify supports, and reading them into typed values.
//!
//! A key jobify does not support is refused by name: a pipeline that relies on it would
//! otherwise run with a pod it did not ask for.

use jobify_core::{KubernetesPlugin, PluginConfig, PodMetadata};
use k8s_openapi::api::core::v1::{
    Container, EnvFromSource, SecretVolumeSource, Volume, VolumeMount,
};
use serde_json::Value;

use crate::config::{GitMirrors, check_volume};
use crate::labels::is_dns1123_subdomain;
use crate::render::RenderError;
use crate::render::command::Interposer;
use crate::render::typed::from_json;

/// The plugin keys jobify supports (see docs/kubernetes.md).
pub const SUPPORTED_KEYS: &[&str] = &[
    "podSpec",
    "podSpecPatch",
    "podTemplate",
    "metadata",
    "sidecars",
    "extraVolumeMounts",
    "gitEnvFrom",
    "checkout.skip",
    "checkout.checkoutFlags",
    "checkout.cleanFlags",
    "checkout.cloneFlags",
    "checkout.fetchFlags",
    "checkout.noSubmodules",
    "checkout.submoduleCloneConfig",
    "checkout.gitMirrors",
    "checkout.gitCredentialsSecret",
    "checkout.envFrom",
    "checkout.extraVolumeMounts",
    "commandParams.interposer",
    "commandParams.envFrom",
    "commandParams.extraVolumeMounts",
    "sidecarParams.envFrom",
    "sidecarParams.extraVolumeMounts",
    "jobActiveDeadlineSeconds",
];

/// What a job's plugin asks for, checked and typed.
#[derive(Debug, Default)]
pub(crate) struct PodRequest {
    /// `podSpec`, still JSON: it is merged with the generated layout before typing.
    pub(crate) pod_spec: Option<Value>,
    /// `podSpecPatch`.
    pub(crate) pod_spec_patch: Option<Value>,
    /// `podTemplate`, the name of a PodTemplate in jobify's namespace; `None` when `podSpec`
    /// is given, which wins over it as in agent-stack-k8s.
    pub(crate) pod_template: Option<String>,
    /// `metadata`.
    pub(crate) metadata: PodMetadata,
    /// `sidecars`.
    pub(crate) sidecars: Vec<Container>,
    /// `extraVolumeMounts`.
    pub(crate) extra_volume_mounts: Vec<VolumeMount>,
    /// `gitEnvFrom`.
    pub(crate) git_env_from: Vec<EnvFromSource>,
    /// `checkout`.
    pub(crate) checkout: CheckoutParams,
    /// `jobActiveDeadlineSeconds`.
    pub(crate) active_deadline_seconds: Option<i64>,
    /// `commandParams`.
    pub(crate) command_params: CommandParams,
    /// `sidecarParams`.
    pub(crate) sidecar_params: SidecarParams,
}

/// The plugin's `commandParams`: how command containers get their script, and what else
/// they get.
#[derive(Debug, Default)]
pub(crate) struct CommandParams {
    /// `interposer`; `None` leaves the controller's default.
    pub(crate) interposer: Option<Interposer>,
    /// `envFrom`, added to every command container.
    pub(crate) env_from: Vec<EnvFromSource>,
    /// `extraVolumeMounts`, added to every command container.
    pub(crate) extra_volume_mounts: Vec<VolumeMount>,
}

/// The plugin's `checkout`: whether there is a checkout container, the git options the
/// agent passes to the checkout, and what the checkout container gets. What the step leaves
/// unset, `[kubernetes.default_checkout_params]` may set (`render::checkout`).
#[derive(Debug, Default)]
pub(crate) struct CheckoutParams {
    /// `skip`.
    pub(crate) skip: Option<bool>,
    /// The agent's git variables the flags set (`cloneFlags` is `BUILDKITE_GIT_CLONE_FLAGS`),
    /// in the order of [`CHECKOUT_ENV`].
    pub(crate) agent_env: Vec<(&'static str, String)>,
    /// `envFrom`, added to the checkout container.
    pub(crate) env_from: Vec<EnvFromSource>,
    /// `extraVolumeMounts`, added to the checkout container.
    pub(crate) extra_volume_mounts: Vec<VolumeMount>,
    /// `gitMirrors`.
    pub(crate) git_mirrors: Option<GitMirrors>,
    /// `gitCredentialsSecret`, a `secret` volume source.
    pub(crate) git_credentials_secret: Option<SecretVolumeSource>,
}

/// How agent-stack-k8s passes `checkout` options: each is a variable of the agent container,
/// which the agent hands to the checkout (`buildkite-agent start` reads them).
const CHECKOUT_ENV: &[(&str, &str, EnvKind)] = &[
    (
        "checkoutFlags",
        "BUILDKITE_GIT_CHECKOUT_FLAGS",
        EnvKind::Text,
    ),
    ("cleanFlags", "BUILDKITE_GIT_CLEAN_FLAGS", EnvKind::Text),
    ("cloneFlags", "BUILDKITE_GIT_CLONE_FLAGS", EnvKind::Text),
    ("fetchFlags", "BUILDKITE_GIT_FETCH_FLAGS", EnvKind::Text),
    ("noSubmodules", "BUILDKITE_NO_GIT_SUBMODULES", EnvKind::Bool),
    (
        "submoduleCloneConfig",
        "BUILDKITE_GIT_SUBMODULE_CLONE_CONFIG",
        EnvKind::CommaList,
    ),
];

/// The shape of a `checkout` option, and how it becomes a variable's value.
#[derive(Clone, Copy)]
enum EnvKind {
    /// A string, as is.
    Text,
    /// `true` or `false`.
    Bool,
    /// A list of strings, joined by commas (an empty list sets nothing).
    CommaList,
}

impl EnvKind {
    /// The variable's value for `value`; `Ok(None)` when it sets nothing.
    fn value(self, value: &Value, path: &str) -> Result<Option<String>, RenderError> {
        let wrong = |expected: &str| RenderError::InvalidField {
            path: path.to_owned(),
            message: format!("expected {expected}, not {value}"),
        };
        match (self, value) {
            (_, Value::Null) => Ok(None),
            (EnvKind::Text, Value::String(text)) => Ok(Some(text.clone())),
            (EnvKind::Text, _) => Err(wrong("a string such as \"--depth=1\"")),
            (EnvKind::Bool, Value::Bool(b)) => Ok(Some(b.to_string())),
            (EnvKind::Bool, _) => Err(wrong("true or false")),
            (EnvKind::CommaList, Value::Array(items)) => {
                let words: Option<Vec<&str>> = items.iter().map(Value::as_str).collect();
                let words = words.ok_or_else(|| wrong("a list of strings"))?;
                Ok((!words.is_empty()).then(|| words.join(",")))
            }
            (EnvKind::CommaList, _) => Err(wrong("a list of strings")),
        }
    }
}

/// The plugin's `sidecarParams`: what every sidecar gets.
#[derive(Debug, Default)]
pub(crate) struct SidecarParams {
    /// `envFrom`, added to every sidecar.
    pub(crate) env_from: Vec<EnvFromSource>,
    /// `extraVolumeMounts`, added to every sidecar.
    pub(crate) extra_volume_mounts: Vec<VolumeMount>,
}

impl PodRequest {
    /// Reads the job's plugin configuration, refusing what jobify does not support.
    pub(crate) fn from_plugin(plugin: &PluginConfig) -> Result<Self, RenderError> {
        match plugin {
            PluginConfig::Absent => Ok(PodRequest::default()),
            PluginConfig::Invalid(err) => Err(RenderError::InvalidPlugin(err.message.clone())),
            PluginConfig::Present(plugin) => Self::from_present(plugin),
        }
    }

    fn from_present(plugin: &KubernetesPlugin) -> Result<Self, RenderError> {
        if let Some(key) = plugin.unknown.keys().next() {
            return Err(RenderError::UnsupportedKey {
                key: key.clone(),
                hint: "it is not a key of the kubernetes plugin",
            });
        }
        if let Some(name) = &plugin.pod_template
            && !is_dns1123_subdomain(name)
        {
            return Err(RenderError::InvalidField {
                path: "podTemplate".to_owned(),
                message: format!(
                    "`{name}` is not the name of a Kubernetes object (lowercase letters, digits, \
                     `-` and `.`, at most 253 characters)"
                ),
            });
        }
        if let Some(patch) = &plugin.pod_spec_patch
            && !patch.is_object()
        {
            return Err(RenderError::InvalidField {
                path: "podSpecPatch".to_owned(),
                message: "expected an object in the shape of a pod spec".to_owned(),
            });
        }
        if let Some(spec) = &plugin.pod_spec
            && !spec.is_object()
        {
            return Err(RenderError::InvalidField {
                path: "podSpec".to_owned(),
                message: "expected an object in the shape of a pod spec".to_owned(),
            });
        }
        if let Some(seconds) = plugin.job_active_deadline_seconds
            && seconds <= 0
        {
            return Err(RenderError::InvalidField {
                path: "jobActiveDeadlineSeconds".to_owned(),
                message: format!("{seconds} is not a positive number of seconds"),
            });
        }
        let sidecars: Vec<Container> = typed_list(&plugin.sidecars, "sidecars")?;
        if let Some(index) = sidecars
            .iter()
            .position(|c| c.image.as_deref().is_none_or(str::is_empty))
        {
            return Err(RenderError::MissingImage {
                path: format!("sidecars[{index}]"),
            });
        }
        Ok(PodRequest {
            pod_spec: plugin.pod_spec.clone(),
            pod_spec_patch: plugin.pod_spec_patch.clone(),
            pod_template: pod_template_name(plugin).map(str::to_owned),
            metadata: plugin.metadata.clone().unwrap_or_default(),
            sidecars,
            extra_volume_mounts: typed_list(&plugin.extra_volume_mounts, "extraVolumeMounts")?,
            git_env_from: typed_list(&plugin.git_env_from, "gitEnvFrom")?,
            checkout: checkout_params(plugin.checkout.as_ref())?,
            active_deadline_seconds: plugin.job_active_deadline_seconds,
            command_params: command_params(plugin.command_params.as_ref())?,
            sidecar_params: sidecar_params(plugin.sidecar_params.as_ref())?,
        })
    }
}

/// The PodTemplate `plugin` starts its pod from: `podTemplate`, unless `podSpec` is also
/// given (agent-stack-k8s uses the `podSpec` then, and so does jobify).
pub(crate) fn pod_template_name(plugin: &KubernetesPlugin) -> Option<&str> {
    match (&plugin.pod_spec, plugin.pod_template.as_deref()) {
        (None, Some(name)) if !name.is_empty() => Some(name),
        _ => None,
    }
}

fn typed_list<T>(items: &[Value], key: &str) -> Result<Vec<T>, RenderError>
where
    T: serde::de::DeserializeOwned + serde::Serialize,
{
    items
        .iter()
        .enumerate()
        .map(|(i, item)| from_json(item, &format!("{key}[{i}]")))
        .collect()
}

fn command_params(params: Option<&Value>) -> Result<CommandParams, RenderError> {
    let Some(params) = params else {
        return Ok(CommandParams::default());
    };
    let Value::Object(fields) = params else {
        return Err(RenderError::InvalidField {
            path: "commandParams".to_owned(),
            message: "expected an object such as {interposer: vector}".to_owned(),
        });
    };
    let mut read = CommandParams::default();
    for (key, value) in fields {
        match key.as_str() {
            "interposer" => {
                read.interposer = match value {
                    Value::Null => None,
                    Value::String(name) if name.is_empty() => None,
                    Value::String(name) => Some(Interposer::from_name(name).ok_or_else(|| {
                        RenderError::InvalidField {
                            path: "commandParams.interposer".to_owned(),
                            message: format!(
                                "`{name}` is not an interposer; use one of {} (buildkite, the \
                                 default, runs each command entry as a line of the script)",
                                Interposer::names()
                            ),
                        }
                    })?),
                    other => {
                        return Err(RenderError::InvalidField {
                            path: "commandParams.interposer".to_owned(),
                            message: format!(
                                "expected one of {} as a string, not {other}",
                                Interposer::names()
                            ),
                        });
                    }
                };
            }
            "envFrom" => read.env_from = typed_value_list(value, "commandParams.envFrom")?,
            "extraVolumeMounts" => {
                read.extra_volume_mounts =
                    typed_value_list(value, "commandParams.extraVolumeMounts")?;
            }
            other => {
                return Err(RenderError::UnsupportedKey {
                    key: format!("commandParams.{other}"),
                    hint: "commandParams takes interposer, envFrom and extraVolumeMounts",
                });
            }
        }
    }
    Ok(read)
}

fn sidecar_params(params: Option<&Value>) -> Result<SidecarParams, RenderError> {
    let Some(params) = params else {
        return Ok(SidecarParams::default());
    };
    let Value::Object(fields) = params else {
        return Err(RenderError::InvalidField {
            path: "sidecarParams".to_owned(),
            message: "expected an object such as {envFrom: [{secretRef: {name: db}}]}".to_owned(),
        });
    };
    let mut read = SidecarParams::default();
    for (key, value) in fields {
        match key.as_str() {
            "envFrom" => read.env_from = typed_value_list(value, "sidecarParams.envFrom")?,
            "extraVolumeMounts" => {
                read.extra_volume_mounts =
                    typed_value_list(value, "sidecarParams.extraVolumeMounts")?;
            }
            other => {
                return Err(RenderError::UnsupportedKey {
                    key: format!("sidecarParams.{other}"),
                    hint: "sidecarParams takes envFrom and extraVolumeMounts",
                });
            }
        }
    }
    Ok(read)
}

fn typed_value_list<T>(value: &Value, key: &str) -> Result<Vec<T>, RenderError>
where
    T: serde::de::DeserializeOwned + serde::Serialize,
{
    match value {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => typed_list(items, key),
        _ => Err(RenderError::InvalidField {
            path: key.to_owned(),
            message: "expected a list".to_owned(),
        }),
    }
}

fn checkout_params(checkout: Option<&Value>) -> Result<CheckoutParams, RenderError> {
    let Some(checkout) = checkout else {
        return Ok(CheckoutParams::default());
    };
    let Value::Object(fields) = checkout else {
        return Err(RenderError::InvalidField {
            path: "checkout".to_owned(),
            message: "expected an object such as {skip: true}".to_owned(),
        });
    };
    let mut read = CheckoutParams::default();
    for (name, var, kind) in CHECKOUT_ENV {
        if let Some(value) = fields.get(*name)
            && let Some(value) = kind.value(value, &format!("checkout.{name}"))?
        {
            read.agent_env.push((var, value));
        }
    }
    for (key, value) in fields {
        match (key.as_str(), value) {
            ("skip", Value::Null) => {}
            ("skip", Value::Bool(b)) => read.skip = Some(*b),
            ("skip", _) => {
                return Err(RenderError::InvalidField {
                    path: "checkout.skip".to_owned(),
                    message: "expected true or false".to_owned(),
                });
            }
            ("envFrom", _) => read.env_from = typed_value_list(value, "checkout.envFrom")?,
            ("extraVolumeMounts", _) => {
                read.extra_volume_mounts = typed_value_list(value, "checkout.extraVolumeMounts")?;
            }
            ("gitMirrors", _) => read.git_mirrors = git_mirrors(value)?,
            ("gitCredentialsSecret", _) => {
                read.git_credentials_secret = git_credentials_secret(value)?;
            }
            (other, _) if CHECKOUT_ENV.iter().any(|(name, ..)| *name == other) => {}
            (other, _) => {
                return Err(RenderError::UnsupportedKey {
                    key: format!("checkout.{other}"),
                    hint: "checkout takes skip, checkoutFlags, cleanFlags, cloneFlags, \
                           fetchFlags, noSubmodules, submoduleCloneConfig, gitMirrors, \
                           gitCredentialsSecret, envFrom and extraVolumeMounts",
                });
            }
        }
    }
    Ok(read)
}

/// `checkout.gitMirrors`: `{path, volume, cloneFlags, lockTimeout, skipUpdate}`, as
/// agent-stack-k8s reads it; `lockTimeout: 0` sets nothing, as there.
fn git_mirrors(value: &Value) -> Result<Option<GitMirrors>, RenderError> {
    const KEY: &str = "checkout.gitMirrors";
    let fields = match value {
        Value::Null => return Ok(None),
        Value::Object(fields) => fields,
        _ => {
            return Err(RenderError::InvalidField {
                path: KEY.to_owned(),
                message: "expected an object such as {volume: {name: git-mirrors, \
                          persistentVolumeClaim: {claimName: git-mirrors}}}"
                    .to_owned(),
            });
        }
    };
    let invalid = |field: &str, message: String| RenderError::InvalidField {
        path: format!("{KEY}.{field}"),
        message,
    };
    let text = |field: &str, value: &Value| match value {
        Value::Null => Ok(None),
        Value::String(text) => Ok(Some(text.clone())),
        other => Err(invalid(field, format!("expected a string, not {other}"))),
    };
    let mut mirrors = GitMirrors::default();
    for (field, value) in fields {
        match field.as_str() {
            "path" => {
                mirrors.path = text(field, value)?;
                if let Some(path) = mirrors.path.as_deref()
                    && !path.starts_with('/')
                {
                    return Err(invalid(
                        field,
                        format!("`{path}` is not an absolute path, e.g. /buildkite/git-mirrors"),
                    ));
                }
            }
            "cloneFlags" => mirrors.clone_flags = text(field, value)?,
            "lockTimeout" => {
                mirrors.lock_timeout = match value {
                    Value::Null => None,
                    Value::Number(n) => match n.as_u64().map(u32::try_from) {
                        Some(Ok(0)) => None,
                        Some(Ok(seconds)) => Some(seconds),
                        _ => {
                            return Err(invalid(field, format!("{n} is not a number of seconds")));
                        }
                    },
                    other => {
                        return Err(invalid(
                            field,
                            format!("expected a number of seconds, not {other}"),
                        ));
                    }
                };
            }
            "skipUpdate" => {
                mirrors.skip_update = match value {
                    Value::Null => None,
                    Value::Bool(b) => Some(*b),
                    other => {
                        return Err(invalid(
                            field,
                            format!("expected true or false, not {other}"),
                        ));
                    }
                };
            }
            "volume" => {
                if value.is_null() {
                    continue;
                }
                let path = format!("{KEY}.volume");
                let volume: Volume = from_json(value, &path)?;
                let mut problems = Vec::new();
                check_volume(&path, &volume, &mut problems);
                if let Some(problem) = problems.into_iter().next() {
                    return Err(RenderError::InvalidField {
                        path: problem.key,
                        message: problem.message,
                    });
                }
                mirrors.volume = Some(volume);
            }
            other => {
                return Err(RenderError::UnsupportedKey {
                    key: format!("{KEY}.{other}"),
                    hint: "gitMirrors takes path, volume, cloneFlags, lockTimeout and skipUpdate",
                });
            }
        }
    }
    Ok(Some(mirrors))
}

/// `checkout.gitCredentialsSecret`: a `secret` volume source naming the Secret that holds a
/// `.git-credentials` file.
fn git_credentials_secret(value: &Value) -> Result<Option<SecretVolumeSource>, RenderError> {
    const KEY: &str = "checkout.gitCredentialsSecret";
    if value.is_null() {
        return Ok(None);
    }
    if !value.is_object() {
        return Err(RenderError::InvalidField {
            path: KEY.to_owned(),
            message: "expected an object such as {secretName: git-credentials}".to_owned(),
        });
    }
    let secret: SecretVolumeSource = from_json(value, KEY)?;
    match secret.secret_name.as_deref() {
        Some(name) if is_dns1123_subdomain(name) => Ok(Some(secret)),
        name => Err(RenderError::InvalidField {
            path: format!("{KEY}.secretName"),
            message: match name {
                None | Some("") => "names no Secret: give the Secret that holds the \
                                    .git-credentials file"
                    .to_owned(),
                Some(name) => format!("`{name}` is not a Secret name"),
            },
        }),
    }
}
