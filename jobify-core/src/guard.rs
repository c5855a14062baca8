//! The admission guard: checks the pod spec a job brings (`podSpec`, `podSpecPatch`,
//! `sidecars` of the `kubernetes` plugin) before it runs. Anyone who can push a pipeline can
//! ask for a pod; by default the guard refuses what would give a job power over the node.
//!
//! The pod spec is JSON here (core knows no Kubernetes types). The guard walks `containers`,
//! `initContainers`, `ephemeralContainers` and `volumes`, and names every violation: which
//! container, which field.

use std::collections::BTreeSet;
use std::fmt;

use serde::Serialize;
use serde_json::Value;

use crate::config::{GuardConfig, GuardRule};
use crate::decision::{Decision, Reason, ReasonCode, Template};
use crate::job::ScheduledJob;

/// The admission guard configured by `[guard]`.
#[derive(Clone, Debug, Default)]
pub struct Guard {
    config: GuardConfig,
}

/// One thing a pod spec asks for that the guard refuses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// The check that failed.
    pub rule: GuardRule,
    /// A sentence naming where and what, e.g. "podSpec container `build` sets
    /// securityContext.privileged=true".
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} [{}]", self.message, self.rule)
    }
}

/// What the guard found for one job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GuardReport {
    /// Checks switched off for this job (globally or by an exception for its pipeline).
    pub allowed: Vec<GuardRule>,
    /// What it refused; empty when the job passed.
    pub violations: Vec<Violation>,
}

impl GuardReport {
    /// Whether the job passed.
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }
}

impl fmt::Display for GuardReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.passed() {
            f.write_str("passed")?;
        } else {
            f.write_str("denied: ")?;
            for (i, v) in self.violations.iter().enumerate() {
                if i > 0 {
                    f.write_str("; ")?;
                }
                v.fmt(f)?;
            }
        }
        if !self.allowed.is_empty() {
            let allowed: Vec<&str> = self.allowed.iter().map(GuardRule::as_str).collect();
            write!(f, " (allowed here: {})", allowed.join(", "))?;
        }
        Ok(())
    }
}

impl Guard {
    /// The guard `config` describes.
    pub fn new(config: GuardConfig) -> Self {
        Guard { config }
    }

    /// Checks what `job` would run with `decision`. `None` when the guard does not apply: it
    /// is disabled, the decision is not `Run`, or the job brings no pod configuration.
    pub fn check(&self, job: &ScheduledJob, decision: &Decision) -> Option<GuardReport> {
        let Decision::Run { template, .. } = decision else {
            return None;
        };
        if !self.config.enabled {
            return None;
        }
        let plugin = job.plugin.present()?;
        let pod_spec = match template {
            Template::PodSpec => plugin.pod_spec.as_ref(),
            Template::Default { .. } => None,
        };
        if pod_spec.is_none() && plugin.pod_spec_patch.is_none() && plugin.sidecars.is_empty() {
            return None;
        }
        let allowed = self.allowed_for(&job.pipeline);
        let mut walk = Walk {
            guard: &self.config,
            allowed: &allowed,
            violations: Vec::new(),
        };
        if let Some(spec) = pod_spec {
            walk.pod_spec("podSpec", spec);
        }
        if let Some(patch) = &plugin.pod_spec_patch {
            walk.pod_spec("podSpecPatch", patch);
        }
        for (i, sidecar) in plugin.sidecars.iter().enumerate() {
            walk.container("sidecar", i, sidecar);
        }
        let violations = walk.violations;
        Some(GuardReport {
            allowed: allowed.into_iter().collect(),
            violations,
        })
    }

    /// `decision`, or a rejection naming every violation when the guard refuses the job.
    pub fn apply(&self, job: &ScheduledJob, decision: Decision) -> (Decision, Option<GuardReport>) {
        let report = self.check(job, &decision);
        match &report {
            Some(found) if !found.passed() => {
                let list: Vec<&str> = found
                    .violations
                    .iter()
                    .map(|v| v.message.as_str())
                    .collect();
                let reason = Reason::new(
                    ReasonCode::GUARD_DENIED,
                    format!(
                        "this cluster does not allow what the step's kubernetes plugin asks for: \
                         {}. Remove it from the step, or ask the cluster's operators for a \
                         [[guard.exceptions]] entry for pipeline `{}`",
                        list.join("; "),
                        job.pipeline
                    ),
                );
                (Decision::Reject { reason }, report)
            }
            _ => (decision, report),
        }
    }

    fn allowed_for(&self, pipeline: &str) -> BTreeSet<GuardRule> {
        let mut allowed: BTreeSet<GuardRule> = self.config.allow.iter().copied().collect();
        for exception in &self.config.exceptions {
            if exception.pipeline.matches(pipeline) {
                allowed.extend(exception.allow.iter().copied());
            }
        }
        if !self.config.deny_run_as_root {
            allowed.remove(&GuardRule::RunAsRoot);
        }
        allowed
    }
}

struct Walk<'a> {
    guard: &'a GuardConfig,
    allowed: &'a BTreeSet<GuardRule>,
    violations: Vec<Violation>,
}

impl Walk<'_> {
    fn deny(&mut self, rule: GuardRule, message: String) {
        if !self.allowed.contains(&rule) && self.enforced(rule) {
            self.violations.push(Violation { rule, message });
        }
    }

    /// Checks that only run when configured.
    fn enforced(&self, rule: GuardRule) -> bool {
        match rule {
            GuardRule::RunAsRoot => self.guard.deny_run_as_root,
            GuardRule::Registry => !self.guard.allowed_registries.is_empty(),
            _ => true,
        }
    }

    fn pod_spec(&mut self, source: &str, spec: &Value) {
        for (field, rule) in [
            ("hostNetwork", GuardRule::HostNetwork),
            ("hostPID", GuardRule::HostPid),
            ("hostIPC", GuardRule::HostIpc),
        ] {
            if spec.get(field) == Some(&Value::Bool(true)) {
                self.deny(rule, format!("{source} sets {field}=true"));
            }
        }
        if is_root(spec.pointer("/securityContext/runAsUser")) {
            self.deny(
                GuardRule::RunAsRoot,
                format!("{source} sets securityContext.runAsUser=0"),
            );
        }
        if let Some(volumes) = spec.get("volumes").and_then(Value::as_array) {
            for (i, volume) in volumes.iter().enumerate() {
                if let Some(host_path) = volume.get("hostPath") {
                    let path = host_path.get("path").and_then(Value::as_str).unwrap_or("?");
                    self.deny(
                        GuardRule::HostPath,
                        format!(
                            "{source} volume {} mounts hostPath {path}",
                            name_of(volume, i)
                        ),
                    );
                }
            }
        }
        for (field, kind) in [
            ("containers", "container"),
            ("initContainers", "init container"),
            ("ephemeralContainers", "ephemeral container"),
        ] {
            if let Some(containers) = spec.get(field).and_then(Value::as_array) {
                for (i, container) in containers.iter().enumerate() {
                    self.container(&format!("{source} {kind}"), i, container);
                }
            }
        }
    }

    fn container(&mut self, kind: &str, index: usize, container: &Value) {
        let at = format!("{kind} {}", name_of(container, index));
        let security = container.get("securityContext");
        let flag = |field: &str| security.and_then(|s| s.get(field)) == Some(&Value::Bool(true));
        if flag("privileged") {
            self.deny(
                GuardRule::Privileged,
                format!("{at} sets securityContext.privileged=true"),
            );
        }
        if flag("allowPrivilegeEscalation") {
            self.deny(
                GuardRule::PrivilegeEscalation,
                format!("{at} sets securityContext.allowPrivilegeEscalation=true"),
            );
        }
        if let Some(added) = security
            .and_then(|s| s.pointer("/capabilities/add"))
            .and_then(Value::as_array)
            .filter(|a| !a.is_empty())
        {
            let names: Vec<String> = added
                .iter()
                .map(|c| c.as_str().map_or_else(|| c.to_string(), str::to_owned))
                .collect();
            self.deny(
                GuardRule::AddedCapabilities,
                format!("{at} adds capabilities {}", names.join(", ")),
            );
        }
        if is_root(security.and_then(|s| s.get("runAsUser"))) {
            self.deny(
                GuardRule::RunAsRoot,
                format!("{at} sets securityContext.runAsUser=0"),
            );
        }
        if let Some(image) = container.get("image").and_then(Value::as_str)
            && self.enforced(GuardRule::Registry)
            && !self
                .guard
                .allowed_registries
                .iter()
                .any(|r| registry_allows(r, image))
        {
            self.deny(
                GuardRule::Registry,
                format!(
                    "{at} uses image {image} from outside the allowed registries ({})",
                    self.guard.allowed_registries.join(", ")
                ),
            );
        }
    }
}

fn is_root(value: Option<&Value>) -> bool {
    value.and_then(Value::as_i64) == Some(0)
}

fn name_of(item: &Value, index: usize) -> String {
    match item.get("name").and_then(Value::as_str) {
        Some(name) => format!("`{name}`"),
        None => format!("#{index}"),
    }
}

/// The image's repository with its registry made explicit: `rust:1.95` is
/// `docker.io/library/rust`, `acme/tool` is `docker.io/acme/tool`.
pub fn image_repository(image: &str) -> String {
    let without_digest = image.split('@').next().unwrap_or(image);
    let last_slash = without_digest.rfind('/').map_or(0, |i| i + 1);
    let name = match without_digest[last_slash..].find(':') {
        Some(colon) => &without_digest[..last_slash + colon],
        None => without_digest,
    };
    match name.split_once('/') {
        None => format!("docker.io/library/{name}"),
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            name.to_owned()
        }
        Some(_) => format!("docker.io/{name}"),
    }
}

/// Whether `allowed` (a registry, or a registry and repository prefix) admits `image`.
fn registry_allows(allowed: &str, image: &str) -> bool {
    let repository = image_repository(image);
    let allowed = allowed.trim_end_matches('/');
    repository == allowed
        || repository
            .strip_prefix(allowed)
            .is_some_and(|rest| rest.starts_with('/'))
}

#[cfg(test)]
#[path = "guard_tests.rs"]
mod tests;
