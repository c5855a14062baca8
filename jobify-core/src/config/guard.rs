//! `[guard]`: the admission guard for pod specs that jobs bring along. Anyone who can push a
//! pipeline can ask for a pod, so by default the guard refuses what would give a job power
//! over the node.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::error::{ConfigProblem, Validate};
use super::patterns::Patterns;

/// One check of the admission guard, by the name used in `allow` lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GuardRule {
    /// A container sets `securityContext.privileged: true`.
    Privileged,
    /// A volume mounts a path of the node (`hostPath`).
    HostPath,
    /// The pod shares the node's network (`hostNetwork: true`).
    HostNetwork,
    /// The pod shares the node's process namespace (`hostPID: true`).
    HostPid,
    /// The pod shares the node's IPC namespace (`hostIPC: true`).
    HostIpc,
    /// A container adds Linux capabilities (`securityContext.capabilities.add`).
    AddedCapabilities,
    /// A container sets `securityContext.allowPrivilegeEscalation: true`.
    PrivilegeEscalation,
    /// The pod or a container sets `runAsUser: 0`; checked only with `deny_run_as_root`.
    RunAsRoot,
    /// A container's image comes from a registry outside `allowed_registries`; checked only
    /// when `allowed_registries` is set.
    Registry,
    /// The pod names a ServiceAccount outside `allowed_service_accounts`
    /// (`serviceAccountName`, `serviceAccount`).
    ServiceAccount,
    /// The pod refers to a Secret outside `allowed_secrets` (a `secret` volume, a projected
    /// secret source, `envFrom[].secretRef`, `env[].valueFrom.secretKeyRef`,
    /// `imagePullSecrets`, `gitEnvFrom`, `commandParams.envFrom`, `sidecarParams.envFrom`,
    /// `checkout.envFrom`, `checkout.gitCredentialsSecret`, the `checkout.gitMirrors` volume).
    Secret,
    /// A volume of a type outside `allowed_volume_types` (`persistentVolumeClaim`, `nfs`,
    /// `csi`...; `hostPath` is the `host_path` check), the `checkout.gitMirrors` volume
    /// included.
    VolumeType,
    /// The step names a PodTemplate (`podTemplate`) outside `allowed_pod_templates`.
    PodTemplate,
}

impl GuardRule {
    /// Every rule, in a stable order.
    pub const ALL: [GuardRule; 13] = [
        GuardRule::Privileged,
        GuardRule::HostPath,
        GuardRule::HostNetwork,
        GuardRule::HostPid,
        GuardRule::HostIpc,
        GuardRule::AddedCapabilities,
        GuardRule::PrivilegeEscalation,
        GuardRule::RunAsRoot,
        GuardRule::Registry,
        GuardRule::ServiceAccount,
        GuardRule::Secret,
        GuardRule::VolumeType,
        GuardRule::PodTemplate,
    ];

    /// The name used in `allow` lists.
    pub fn as_str(&self) -> &'static str {
        match self {
            GuardRule::Privileged => "privileged",
            GuardRule::HostPath => "host_path",
            GuardRule::HostNetwork => "host_network",
            GuardRule::HostPid => "host_pid",
            GuardRule::HostIpc => "host_ipc",
            GuardRule::AddedCapabilities => "added_capabilities",
            GuardRule::PrivilegeEscalation => "privilege_escalation",
            GuardRule::RunAsRoot => "run_as_root",
            GuardRule::Registry => "registry",
            GuardRule::ServiceAccount => "service_account",
            GuardRule::Secret => "secret",
            GuardRule::VolumeType => "volume_type",
            GuardRule::PodTemplate => "pod_template",
        }
    }
}

impl fmt::Display for GuardRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `[guard]` section.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuardConfig {
    /// Whether the guard checks pod specs at all. Default `true`.
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
    /// Checks switched off for every pipeline.
    #[serde(default)]
    pub allow: Vec<GuardRule>,
    /// Also refuse `runAsUser: 0` (pod or container). Default `false`: many CI images run
    /// as root.
    #[serde(default)]
    pub deny_run_as_root: bool,
    /// When set, every image must come from one of these registries or repository prefixes,
    /// e.g. `"ghcr.io/acme"`, `"docker.io/library"`. Images without a registry are Docker
    /// Hub images (`rust:1.95` is `docker.io/library/rust:1.95`).
    #[serde(default)]
    pub allowed_registries: Vec<String>,
    /// ServiceAccounts a pipeline's pod may name (globs, e.g. `"ci-*"`). Default none: a
    /// pipeline runs as `kubernetes.service_account_name` and may not choose another.
    #[serde(default)]
    pub allowed_service_accounts: Patterns,
    /// Secrets a pipeline's pod may refer to, by name (globs, e.g. `"ci-*"`). Default none:
    /// a pipeline may not mount or read a Secret the operators did not list, whatever the
    /// namespace holds.
    #[serde(default)]
    pub allowed_secrets: Patterns,
    /// Volume types a pipeline's pod may define, by their field in a Volume (`emptyDir`,
    /// `persistentVolumeClaim`...). Default `emptyDir`, `configMap`, `secret` (names checked
    /// by `allowed_secrets`), `projected` (its secret sources too), `downwardAPI` and
    /// `ephemeral`. `hostPath` is the `host_path` check: listing it here allows it too.
    #[serde(default = "default_volume_types")]
    pub allowed_volume_types: Vec<String>,
    /// PodTemplates (in jobify's namespace) a pipeline may name with `podTemplate` (globs,
    /// e.g. `"ci-*"`). Default none: what a PodTemplate holds (Secrets, ServiceAccounts,
    /// volumes) is not checked, so the operators say which ones pipelines may use.
    #[serde(default)]
    pub allowed_pod_templates: Patterns,
    /// Checks switched off for some pipelines.
    #[serde(default)]
    pub exceptions: Vec<GuardException>,
}

fn enabled_by_default() -> bool {
    true
}

/// The volume types a pipeline may use unless `allowed_volume_types` says otherwise: none
/// reaches the node or storage the pod does not own.
pub const DEFAULT_VOLUME_TYPES: [&str; 6] = [
    "emptyDir",
    "configMap",
    "secret",
    "projected",
    "downwardAPI",
    "ephemeral",
];

fn default_volume_types() -> Vec<String> {
    DEFAULT_VOLUME_TYPES
        .iter()
        .map(|t| (*t).to_owned())
        .collect()
}

/// Every volume type of a Kubernetes `Volume` (core/v1), by its field name.
pub const VOLUME_TYPES: [&str; 30] = [
    "awsElasticBlockStore",
    "azureDisk",
    "azureFile",
    "cephfs",
    "cinder",
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "fc",
    "flexVolume",
    "flocker",
    "gcePersistentDisk",
    "gitRepo",
    "glusterfs",
    "hostPath",
    "image",
    "iscsi",
    "nfs",
    "persistentVolumeClaim",
    "photonPersistentDisk",
    "portworxVolume",
    "projected",
    "quobyte",
    "rbd",
    "scaleIO",
    "secret",
    "storageos",
    "vsphereVolume",
];

impl Default for GuardConfig {
    fn default() -> Self {
        GuardConfig {
            enabled: true,
            allow: Vec::new(),
            deny_run_as_root: false,
            allowed_registries: Vec::new(),
            allowed_service_accounts: Patterns::default(),
            allowed_secrets: Patterns::default(),
            allowed_pod_templates: Patterns::default(),
            allowed_volume_types: default_volume_types(),
            exceptions: Vec::new(),
        }
    }
}

/// Checks switched off for the pipelines a pattern matches.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuardException {
    /// Pipeline slug glob(s), e.g. `"infra-*"`.
    pub pipeline: Patterns,
    /// The checks not applied to those pipelines.
    pub allow: Vec<GuardRule>,
}

impl Validate for GuardConfig {
    fn validate(&self) -> Vec<ConfigProblem> {
        let mut errors = Vec::new();
        for (index, registry) in self.allowed_registries.iter().enumerate() {
            let path = format!("guard.allowed_registries[{index}]");
            if registry.trim().is_empty() {
                errors.push(ConfigProblem::empty(path));
            } else if registry.contains("://") || registry.contains('@') {
                errors.push(ConfigProblem::invalid(
                    path,
                    registry,
                    "a registry host with an optional repository prefix, such as \
                     `ghcr.io/acme`, without scheme or digest",
                ));
            }
        }
        for (index, volume_type) in self.allowed_volume_types.iter().enumerate() {
            if !VOLUME_TYPES.contains(&volume_type.as_str()) {
                errors.push(ConfigProblem::invalid(
                    format!("guard.allowed_volume_types[{index}]"),
                    volume_type,
                    "a volume type as a pod spec names it: emptyDir, configMap, secret, \
                     projected, downwardAPI, ephemeral, persistentVolumeClaim, hostPath, csi, \
                     nfs, image...",
                ));
            }
        }
        for (field, patterns) in [
            ("allowed_service_accounts", &self.allowed_service_accounts),
            ("allowed_secrets", &self.allowed_secrets),
        ] {
            for (index, pattern) in patterns.iter().enumerate() {
                if pattern.trim().is_empty() {
                    errors.push(ConfigProblem::empty(format!("guard.{field}[{index}]")));
                }
            }
        }
        for (index, exception) in self.exceptions.iter().enumerate() {
            if exception.pipeline.is_empty() {
                errors.push(ConfigProblem::empty(format!(
                    "guard.exceptions[{index}].pipeline"
                )));
            }
            if exception.allow.is_empty() {
                errors.push(ConfigProblem::empty(format!(
                    "guard.exceptions[{index}].allow"
                )));
            }
        }
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_allow_no_service_account_or_secret_and_only_pod_owned_volumes() {
        let config: GuardConfig = toml::from_str("").expect("empty section");
        assert_eq!(config, GuardConfig::default());
        assert!(config.allowed_service_accounts.is_empty());
        assert!(config.allowed_secrets.is_empty());
        assert_eq!(config.allowed_volume_types, DEFAULT_VOLUME_TYPES);
        assert!(!config.allowed_volume_types.iter().any(|t| t == "hostPath"));
        assert!(config.validate().is_empty());
    }

    #[test]
    fn a_misspelt_volume_type_or_an_empty_glob_is_reported_where_it_is() {
        let config: GuardConfig = toml::from_str(
            "allowed_volume_types = [\"emptyDir\", \"empty_dir\"]\n\
             allowed_secrets = [\"ci-*\", \" \"]\n\
             allowed_service_accounts = \"ci-builder\"\n\
             allow = [\"secret\", \"volume_type\", \"service_account\"]\n",
        )
        .expect("parses");
        let paths: Vec<String> = config.validate().iter().map(|e| e.to_string()).collect();
        assert_eq!(paths.len(), 2, "{paths:?}");
        assert!(
            paths[0].starts_with("guard.allowed_volume_types[1]: \"empty_dir\" is invalid"),
            "{paths:?}"
        );
        assert!(paths[1].contains("guard.allowed_secrets[1]"), "{paths:?}");
        assert!(config.allowed_service_accounts.matches("ci-builder"));
    }
}
