//! `[guard]`: the admission guard for pod specs that jobs bring along. Anyone who can push a
//! pipeline can ask for a pod, so by default the guard refuses what would give a job power
//! over the node.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::error::ConfigError;
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
}

impl GuardRule {
    /// Every rule, in a stable order.
    pub const ALL: [GuardRule; 9] = [
        GuardRule::Privileged,
        GuardRule::HostPath,
        GuardRule::HostNetwork,
        GuardRule::HostPid,
        GuardRule::HostIpc,
        GuardRule::AddedCapabilities,
        GuardRule::PrivilegeEscalation,
        GuardRule::RunAsRoot,
        GuardRule::Registry,
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
    /// Checks switched off for some pipelines.
    #[serde(default)]
    pub exceptions: Vec<GuardException>,
}

fn enabled_by_default() -> bool {
    true
}

impl Default for GuardConfig {
    fn default() -> Self {
        GuardConfig {
            enabled: true,
            allow: Vec::new(),
            deny_run_as_root: false,
            allowed_registries: Vec::new(),
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

impl GuardConfig {
    /// Checks what deserialising cannot.
    pub fn validate(&self) -> Result<(), Vec<ConfigError>> {
        let mut errors = Vec::new();
        for (index, registry) in self.allowed_registries.iter().enumerate() {
            let path = format!("guard.allowed_registries[{index}]");
            if registry.trim().is_empty() {
                errors.push(ConfigError::Empty { path });
            } else if registry.contains("://") || registry.contains('@') {
                errors.push(ConfigError::Invalid {
                    path,
                    value: registry.clone(),
                    expected: "a registry host with an optional repository prefix, such as \
                               `ghcr.io/acme`, without scheme or digest",
                });
            }
        }
        for (index, exception) in self.exceptions.iter().enumerate() {
            if exception.pipeline.is_empty() {
                errors.push(ConfigError::Empty {
                    path: format!("guard.exceptions[{index}].pipeline"),
                });
            }
            if exception.allow.is_empty() {
                errors.push(ConfigError::Empty {
                    path: format!("guard.exceptions[{index}].allow"),
                });
            }
        }
        super::collect(errors)
    }
}
