//! The admission guard: checks the pod spec a job brings (`podSpec`, `podSpecPatch`,
//! `sidecars` of the `kubernetes` plugin, and the Secrets and volumes its `envFrom` keys and
//! `checkout` add) before it runs. Anyone who can push a pipeline can
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
use crate::decision::{Decision, Reason, ReasonCode};
use crate::job::ScheduledJob;
use crate::plugin::KubernetesPlugin;

/// The variable Buildkite sets from a step's `image:` attribute; the backend runs the step's
/// commands in that image.
const STEP_IMAGE_ENV: &str = "BUILDKITE_IMAGE";

/// Whether the plugin asks for anything in the pod the guard looks at.
fn shapes_the_pod(plugin: &KubernetesPlugin) -> bool {
    plugin.pod_spec.is_some()
        || plugin.pod_spec_patch.is_some()
        || !plugin.sidecars.is_empty()
        || !plugin.git_env_from.is_empty()
        || plugin.command_params.is_some()
        || plugin.sidecar_params.is_some()
        || plugin.checkout.is_some()
        || plugin.pod_template.is_some()
}

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
    /// is disabled, the decision is not `Run`, or the job brings nothing for its pod (no
    /// kubernetes plugin keys that shape the pod, no step `image:`).
    ///
    /// The `podSpec` is checked whatever the template: the backend runs a job that brings one
    /// in it.
    pub fn check(&self, job: &ScheduledJob, decision: &Decision) -> Option<GuardReport> {
        let Decision::Run { .. } = decision else {
            return None;
        };
        if !self.config.enabled {
            return None;
        }
        let image = job.env.non_empty(STEP_IMAGE_ENV);
        let plugin = job.plugin.present().filter(|p| shapes_the_pod(p));
        if plugin.is_none() && image.is_none() {
            return None;
        }
        let allowed = self.allowed_for(&job.pipeline);
        let mut walk = Walk {
            guard: &self.config,
            allowed: &allowed,
            violations: Vec::new(),
        };
        if let Some(plugin) = plugin {
            if let Some(spec) = &plugin.pod_spec {
                walk.pod_spec("podSpec", spec);
            }
            if let Some(patch) = &plugin.pod_spec_patch {
                walk.pod_spec("podSpecPatch", patch);
            }
            for (i, sidecar) in plugin.sidecars.iter().enumerate() {
                walk.container("sidecar", &format!("sidecars[{i}]"), i, sidecar);
            }
            walk.env_from("gitEnvFrom", plugin.git_env_from.iter());
            for (key, params) in [
                ("commandParams", &plugin.command_params),
                ("sidecarParams", &plugin.sidecar_params),
                ("checkout", &plugin.checkout),
            ] {
                if let Some(Value::Array(sources)) =
                    params.as_ref().and_then(|params| params.get("envFrom"))
                {
                    walk.env_from(&format!("{key}.envFrom"), sources.iter());
                }
            }
            if let Some(checkout) = &plugin.checkout {
                walk.checkout(checkout);
            }
            if let Some(template) = &plugin.pod_template {
                walk.pod_template(template);
            }
        }
        if let Some(image) = image {
            walk.image(&format!("the step's image ({STEP_IMAGE_ENV})"), image);
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
        for field in ["serviceAccountName", "serviceAccount"] {
            if let Some(account) = spec.get(field).and_then(Value::as_str) {
                self.service_account(&format!("{source}.{field}"), account);
            }
        }
        if let Some(secrets) = spec.get("imagePullSecrets").and_then(Value::as_array) {
            for (i, secret) in secrets.iter().enumerate() {
                if let Some(name) = secret.get("name").and_then(Value::as_str) {
                    self.secret(&format!("{source}.imagePullSecrets[{i}].name"), name);
                }
            }
        }
        if let Some(volumes) = spec.get("volumes").and_then(Value::as_array) {
            for (i, volume) in volumes.iter().enumerate() {
                self.volume(source, i, volume);
            }
        }
        for (field, kind) in [
            ("containers", "container"),
            ("initContainers", "init container"),
            ("ephemeralContainers", "ephemeral container"),
        ] {
            if let Some(containers) = spec.get(field).and_then(Value::as_array) {
                for (i, container) in containers.iter().enumerate() {
                    let path = format!("{source}.{field}[{i}]");
                    self.container(&format!("{source} {kind}"), &path, i, container);
                }
            }
        }
    }

    /// `kind` and `index` make the sentence ("podSpec container `build`"), `path` the field
    /// path of the container ("podSpec.containers[0]").
    fn container(&mut self, kind: &str, path: &str, index: usize, container: &Value) {
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
        if let Some(image) = container.get("image").and_then(Value::as_str) {
            self.image(&at, image);
        }
        if let Some(env) = container.get("env").and_then(Value::as_array) {
            for (i, var) in env.iter().enumerate() {
                if let Some(name) = var
                    .pointer("/valueFrom/secretKeyRef/name")
                    .and_then(Value::as_str)
                {
                    self.secret(
                        &format!("{path}.env[{i}].valueFrom.secretKeyRef.name"),
                        name,
                    );
                }
            }
        }
        if let Some(sources) = container.get("envFrom").and_then(Value::as_array) {
            self.env_from(&format!("{path}.envFrom"), sources.iter());
        }
    }

    /// `envFrom` sources at `path` (a container's, `gitEnvFrom`, `commandParams.envFrom`,
    /// `sidecarParams.envFrom`, `checkout.envFrom`).
    fn env_from<'v>(&mut self, path: &str, sources: impl Iterator<Item = &'v Value>) {
        for (i, source) in sources.enumerate() {
            if let Some(name) = source.pointer("/secretRef/name").and_then(Value::as_str) {
                self.secret(&format!("{path}[{i}].secretRef.name"), name);
            }
        }
    }

    fn image(&mut self, at: &str, image: &str) {
        if self.enforced(GuardRule::Registry)
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

    fn service_account(&mut self, path: &str, account: &str) {
        if !self.guard.allowed_service_accounts.matches(account) {
            self.deny(
                GuardRule::ServiceAccount,
                format!(
                    "{path} names ServiceAccount `{account}`, which \
                     guard.allowed_service_accounts does not allow ({})",
                    listed(self.guard.allowed_service_accounts.iter())
                ),
            );
        }
    }

    fn secret(&mut self, path: &str, name: &str) {
        if !self.guard.allowed_secrets.matches(name) {
            self.deny(
                GuardRule::Secret,
                format!(
                    "{path} names Secret `{name}`, which guard.allowed_secrets does not allow \
                     ({})",
                    listed(self.guard.allowed_secrets.iter())
                ),
            );
        }
    }

    /// A PodTemplate is operator configuration and its content is not checked; which ones a
    /// pipeline may name is.
    fn pod_template(&mut self, name: &str) {
        if !self.guard.allowed_pod_templates.matches(name) {
            self.deny(
                GuardRule::PodTemplate,
                format!(
                    "podTemplate names PodTemplate `{name}`, which guard.allowed_pod_templates \
                     does not allow ({}); list it there to let pipelines use it",
                    listed(self.guard.allowed_pod_templates.iter())
                ),
            );
        }
    }

    /// What the step's `checkout` adds to the pod: the `gitCredentialsSecret` volume's Secret
    /// and the `gitMirrors` volume (its type, node path and Secrets).
    fn checkout(&mut self, checkout: &Value) {
        if let Some(name) = checkout
            .pointer("/gitCredentialsSecret/secretName")
            .and_then(Value::as_str)
        {
            self.secret("checkout.gitCredentialsSecret.secretName", name);
        }
        if let Some(volume) = checkout.pointer("/gitMirrors/volume") {
            self.volume_at(
                "checkout.gitMirrors",
                "checkout.gitMirrors.volume",
                name_of(volume, 0),
                volume,
            );
        }
    }

    /// A volume: its type, the node paths and the Secrets it reaches.
    fn volume(&mut self, source: &str, index: usize, volume: &Value) {
        let path = format!("{source}.volumes[{index}]");
        self.volume_at(source, &path, name_of(volume, index), volume);
    }

    /// The volume at `path`, named `name` in messages, of `source` (`podSpec`,
    /// `checkout.gitMirrors`...).
    fn volume_at(&mut self, source: &str, path: &str, name: String, volume: &Value) {
        let Some(fields) = volume.as_object() else {
            return;
        };
        let host_path_listed = self.type_allowed("hostPath");
        for (field, value) in fields {
            if field == "name" || field.starts_with('$') || value.is_null() {
                continue;
            }
            if field == "hostPath" {
                if !host_path_listed {
                    let node_path = value.get("path").and_then(Value::as_str).unwrap_or("?");
                    self.deny(
                        GuardRule::HostPath,
                        format!("{source} volume {name} mounts hostPath {node_path}"),
                    );
                }
                continue;
            }
            if !self.type_allowed(field) {
                self.deny(
                    GuardRule::VolumeType,
                    format!(
                        "{path} ({name}) is a `{field}` volume, a type \
                         guard.allowed_volume_types does not allow ({})",
                        listed(self.guard.allowed_volume_types.iter().map(String::as_str))
                    ),
                );
            }
            self.volume_secrets(&format!("{path}.{field}"), value);
        }
    }

    fn type_allowed(&self, volume_type: &str) -> bool {
        self.guard
            .allowed_volume_types
            .iter()
            .any(|allowed| allowed == volume_type)
    }

    /// Secrets named anywhere in a volume source: `secret.secretName`, projected `secret`
    /// sources, and the `secretRef`s and `secretName`s of storage drivers.
    fn volume_secrets(&mut self, path: &str, value: &Value) {
        match value {
            Value::Object(fields) => {
                for (field, inner) in fields {
                    let here = format!("{path}.{field}");
                    if let (true, Some(secret)) = (field == "secretName", inner.as_str()) {
                        self.secret(&here, secret);
                    } else if let (true, Some(secret)) = (
                        field == "secret" || field.ends_with("ecretRef"),
                        inner.get("name").and_then(Value::as_str),
                    ) {
                        self.secret(&format!("{here}.name"), secret);
                    } else {
                        self.volume_secrets(&here, inner);
                    }
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    self.volume_secrets(&format!("{path}[{i}]"), item);
                }
            }
            _ => {}
        }
    }
}

fn listed<'a>(items: impl Iterator<Item = &'a str>) -> String {
    let items: Vec<&str> = items.collect();
    if items.is_empty() {
        "it lists none".to_owned()
    } else {
        format!("it lists {}", items.join(", "))
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
