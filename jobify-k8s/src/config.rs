//! The `[kubernetes]`, `[kubernetes.fail_fast]` and `[leader_election]` sections of
//! `jobify.toml`.
//!
//! Every type here deserialises straight from TOML (`deny_unknown_fields`, durations as
//! `"2s"`/`"15m"`) and has defaults that work in a cluster with a `buildkite` namespace and an
//! agent token Secret. Their [`Validate::validate`] checks what serde cannot (name lengths, DNS-1123 names, durations that contradict each
//! other) and return every problem at once.

use std::collections::BTreeMap;
use std::time::Duration;

use jobify_core::config::{ConfigProblem, Validate};
use k8s_openapi::api::core::v1::{Toleration, Volume};
use serde::Deserialize;

use crate::labels::is_dns1123_label;

mod agent_config;
mod checkout;
mod defaults;
mod redaction;
mod workspace;

pub(crate) use agent_config::check_volume;
pub use agent_config::{AdditionalHooks, AgentConfig};
pub use checkout::{DefaultCheckoutParams, GitMirrors};
pub use defaults::{DefaultCommandParams, DefaultMetadata, DefaultSidecarParams, SAFE_TO_EVICT};

/// Length of a hyphenated uuid, the part of a Job name after the prefix.
const UUID_LEN: usize = 36;
/// Pods a Job tries by default ([`KubernetesConfig::pod_attempts`]).
pub const DEFAULT_POD_ATTEMPTS: u8 = 3;
/// The most pods a Job may try.
pub const MAX_POD_ATTEMPTS: u8 = 10;

/// Longest DNS-1123 label: a Job's name becomes its pods' `job-name` label.
const MAX_JOB_NAME_LEN: usize = 63;

/// The `[kubernetes]` section: where and how Jobs are created.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields, expecting = "the [kubernetes] table")]
pub struct KubernetesConfig {
    /// Namespace the Jobs (and the leader Lease) live in.
    pub namespace: String,
    /// Prefix of every Job name: the name is `<prefix><job uuid>`, at most 63 characters, so
    /// the prefix has at most 27.
    pub job_name_prefix: String,
    /// Image of the `agent` container (and of the command containers of a `podSpec` job that
    /// names no image).
    pub agent_image: String,
    /// `imagePullPolicy` of the containers jobify adds (`Always`, `IfNotPresent`, `Never`).
    pub image_pull_policy: Option<String>,
    /// Run the command containers of Kubernetes-exec pods under `tini-static` as PID 1, copied
    /// from the agent image by `copy-agent`, as agent-stack-k8s does: the step's processes
    /// are reaped and get the signals sent to the container. Default `true`; `false` for an
    /// agent image without `tini-static` (`/sbin/` or `/usr/bin/`), whose `copy-agent`
    /// would otherwise fail saying so.
    pub tini: bool,
    /// The Secret holding the agent token; it is referenced, never copied into a manifest.
    pub agent_token_secret: SecretKeyRef,
    /// Tags every agent gets besides those derived from the job's agent query rules
    /// (`key=value`).
    pub agent_tags: Vec<String>,
    /// How long a finished Job is kept (`ttlSecondsAfterFinished`).
    #[serde(with = "humantime_serde")]
    pub ttl_after_finished: Duration,
    /// How long a Job may run before Kubernetes stops it (`activeDeadlineSeconds`); the
    /// plugin's `jobActiveDeadlineSeconds` overrides it per job.
    #[serde(with = "humantime_serde")]
    pub active_deadline: Duration,
    /// Pods a Job may try, the first included (`backoffLimit` is one less), when a pod dies
    /// before its agent runs: evicted, its node lost, deleted while pending. A pod in which
    /// any container exited non-zero (the agent ran, or an init container failed) is never
    /// tried again (`podFailurePolicy`), and only one pod exists at a time
    /// (`podReplacementPolicy: Failed`). `1..=10`.
    pub pod_attempts: u8,
    /// `terminationGracePeriodSeconds` of the pod: time the agent gets to report a
    /// cancelled job before it is killed.
    #[serde(with = "humantime_serde")]
    pub termination_grace_period: Duration,
    /// `serviceAccountName` of the pod.
    pub service_account_name: Option<String>,
    /// `nodeSelector` of the pod.
    pub node_selector: BTreeMap<String, String>,
    /// `tolerations` of the pod.
    #[serde(deserialize_with = "crate::render::strict_k8s")]
    pub tolerations: Vec<Toleration>,
    /// Extra environment variables of the agent container.
    pub env: BTreeMap<String, String>,
    /// Name patterns (`*` matches anything) of variables whose values the agent redacts from
    /// job logs, besides the agent's defaults (`*_TOKEN`, `*_SECRET`...): agent-stack-k8s'
    /// `additional-redacted-vars`. The agent container's `BUILDKITE_REDACTED_VARS` becomes the
    /// defaults and these; empty leaves it unset.
    pub additional_redacted_vars: Vec<String>,
    /// Resource class used when the scheduler names none.
    pub default_resource_class: Option<String>,
    /// Named resource classes (`Template::Default { name }` picks one).
    pub resource_classes: BTreeMap<String, ResourceClass>,
    /// A strategic-merge patch over every rendered pod spec, applied before the job's own
    /// `podSpecPatch` (a TOML table in pod spec shape, camelCase keys).
    pub pod_spec_patch: Option<serde_json::Value>,
    /// The volume mounted at `/workspace` in Kubernetes-exec pods instead of the default
    /// emptyDir named `workspace` (agent-stack-k8s' `workspace-volume`), in a Pod's `volumes`
    /// shape: e.g. an `ephemeral` PersistentVolumeClaim. Mounted by its own name.
    #[serde(deserialize_with = "crate::render::strict_k8s")]
    pub workspace_volume: Option<Volume>,
    /// `subPathExpr` of every `/workspace` mount jobify makes (agent-stack-k8s'
    /// `workspace-mount-sub-path-expr`), e.g. `$(POD_NAME)`: one volume sliced per pod.
    pub workspace_mount_sub_path_expr: Option<String>,
    /// Volumes of agent hooks, plugins and signing keys (`[kubernetes.agent_config]`).
    pub agent_config: AgentConfig,
    /// Labels and annotations on every Job and pod.
    pub default_metadata: DefaultMetadata,
    /// How command containers get their script when the step does not say, and what else
    /// every command container gets.
    pub default_command_params: DefaultCommandParams,
    /// What every sidecar gets.
    pub default_sidecar_params: DefaultSidecarParams,
    /// The checkout's defaults: git options, mirrors, a credentials Secret, and what the
    /// `checkout` container gets (`[kubernetes.default_checkout_params]`).
    pub default_checkout_params: DefaultCheckoutParams,
    /// How fast Jobs are created.
    pub client: ClientConfig,
    /// When a pod that cannot start is given up on.
    pub fail_fast: FailFastConfig,
}

impl Default for KubernetesConfig {
    fn default() -> Self {
        KubernetesConfig {
            namespace: "buildkite".to_owned(),
            job_name_prefix: "jobify-".to_owned(),
            agent_image: "ghcr.io/buildkite/agent:3".to_owned(),
            image_pull_policy: None,
            tini: true,
            agent_token_secret: SecretKeyRef::default(),
            agent_tags: Vec::new(),
            ttl_after_finished: Duration::from_secs(10 * 60),
            active_deadline: Duration::from_secs(6 * 60 * 60),
            pod_attempts: DEFAULT_POD_ATTEMPTS,
            termination_grace_period: Duration::from_secs(60),
            service_account_name: None,
            node_selector: BTreeMap::new(),
            tolerations: Vec::new(),
            env: BTreeMap::new(),
            additional_redacted_vars: Vec::new(),
            default_resource_class: None,
            resource_classes: BTreeMap::new(),
            pod_spec_patch: None,
            workspace_volume: None,
            workspace_mount_sub_path_expr: None,
            agent_config: AgentConfig::default(),
            default_metadata: DefaultMetadata::default(),
            default_command_params: DefaultCommandParams::default(),
            default_sidecar_params: DefaultSidecarParams::default(),
            default_checkout_params: DefaultCheckoutParams::default(),
            client: ClientConfig::default(),
            fail_fast: FailFastConfig::default(),
        }
    }
}

/// A key in a Secret (`{ name = "buildkite-agent-token", key = "token" }`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "a table such as { name = \"buildkite-agent-token\", key = \"token\" }"
)]
pub struct SecretKeyRef {
    /// Secret name.
    pub name: String,
    /// Key within the Secret.
    pub key: String,
}

impl Default for SecretKeyRef {
    fn default() -> Self {
        SecretKeyRef {
            name: "buildkite-agent-token".to_owned(),
            key: "token".to_owned(),
        }
    }
}

/// A named set of resources for the containers a job runs in.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "a resource class table with requests, limits, pod_requests, pod_limits, \
                 node_selector, tolerations"
)]
pub struct ResourceClass {
    /// `resources.requests` of the command containers (of the `agent` container in a
    /// default agent pod), e.g. `{ cpu = "2", memory = "4Gi" }`.
    pub requests: BTreeMap<String, String>,
    /// `resources.limits` of the same containers.
    pub limits: BTreeMap<String, String>,
    /// The pod's own `resources.requests` (pod-level resources, agent-stack-k8s'
    /// `podResource`): `cpu`, `memory` and `hugepages-*` only. Kubernetes honours them where
    /// the `PodLevelResources` feature is on (beta, on by default, from 1.34).
    pub pod_requests: BTreeMap<String, String>,
    /// The pod's own `resources.limits`.
    pub pod_limits: BTreeMap<String, String>,
    /// Added to the pod's `nodeSelector`.
    pub node_selector: BTreeMap<String, String>,
    /// Added to the pod's `tolerations`.
    #[serde(deserialize_with = "crate::render::strict_k8s")]
    pub tolerations: Vec<Toleration>,
}

/// `[kubernetes.client]`: the pace of API requests.
///
/// Creates pass a semaphore (`max_concurrent_creates`) and, when `creates_per_second` is set,
/// a token bucket; deletes pass neither so cancellation never waits behind a burst of creates.
/// The defaults are set so the client is not what limits launch throughput.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "the [kubernetes.client] table"
)]
pub struct ClientConfig {
    /// Job creates in flight at once.
    pub max_concurrent_creates: usize,
    /// Sustained Job creates per second; `0` disables the token bucket.
    pub creates_per_second: u32,
    /// Creates allowed in a burst above the sustained rate.
    pub burst: u32,
    /// Timeout of one API request.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Attempts of a create that fails with a server error or a timeout before the launch is
    /// reported as transient.
    pub create_attempts: u32,
    /// Wait before the second attempt; doubled for each further one.
    #[serde(with = "humantime_serde")]
    pub retry_backoff: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            max_concurrent_creates: 64,
            creates_per_second: 500,
            burst: 500,
            request_timeout: Duration::from_secs(10),
            create_attempts: 4,
            retry_backoff: Duration::from_millis(200),
        }
    }
}

/// `[kubernetes.fail_fast]`: when a pod that cannot start is given up on and its Job deleted.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "the [kubernetes.fail_fast] table"
)]
pub struct FailFastConfig {
    /// Whether jobify gives up on pods that cannot start at all.
    pub enabled: bool,
    /// How long an image may fail to pull (`ErrImagePull`, `ImagePullBackOff`) before the job
    /// fails: registries have passing outages.
    #[serde(with = "humantime_serde")]
    pub image_pull_grace: Duration,
    /// How long a pod may stay pending (including unschedulable) before the job fails.
    #[serde(with = "humantime_serde")]
    pub pending_timeout: Duration,
    /// How long a Job may exist without any pod before the job fails (quota, admission
    /// webhooks).
    #[serde(with = "humantime_serde")]
    pub no_pod_grace: Duration,
    /// How often the timers above are checked.
    #[serde(with = "humantime_serde")]
    pub check_interval: Duration,
}

impl Default for FailFastConfig {
    fn default() -> Self {
        FailFastConfig {
            enabled: true,
            image_pull_grace: Duration::from_secs(2 * 60),
            pending_timeout: Duration::from_secs(15 * 60),
            no_pod_grace: Duration::from_secs(2 * 60),
            check_interval: Duration::from_secs(5),
        }
    }
}

/// The `[leader_election]` section: which replica launches and deletes Jobs.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "the [leader_election] table"
)]
pub struct LeaderElectionConfig {
    /// Off: this replica always leads (a single replica).
    pub enabled: bool,
    /// Name of the `coordination.k8s.io/v1` Lease, in the `[kubernetes]` namespace.
    pub lease_name: String,
    /// How long a lease holds without renewal: a standby takes over within this after the
    /// leader dies. Whole seconds (the Lease stores seconds).
    #[serde(with = "humantime_serde")]
    pub lease_duration: Duration,
    /// How often the leader renews, and a standby retries.
    #[serde(with = "humantime_serde")]
    pub renew_interval: Duration,
    /// This replica's identity in the Lease; the binary defaults it to the pod name. Give
    /// each replica its own: two processes sharing one never both lead (each also writes a
    /// per-process token on the Lease), but the second stays a standby and logs an error.
    pub identity: Option<String>,
}

impl Default for LeaderElectionConfig {
    fn default() -> Self {
        LeaderElectionConfig {
            enabled: false,
            lease_name: "jobify-leader".to_owned(),
            lease_duration: Duration::from_secs(15),
            renew_interval: Duration::from_secs(5),
            identity: None,
        }
    }
}

impl Validate for KubernetesConfig {
    fn validate(&self) -> Vec<ConfigProblem> {
        let mut errors = Vec::new();
        if !is_dns1123_label(&self.namespace) {
            errors.push(ConfigProblem::new(
                "kubernetes.namespace",
                format!(
                    "`{}` is not a valid namespace: use lower-case letters, digits and '-', \
                     at most 63 characters",
                    self.namespace
                ),
            ));
        }
        let longest = format!("{}{}", self.job_name_prefix, "0".repeat(UUID_LEN));
        if self.job_name_prefix.len() + UUID_LEN > MAX_JOB_NAME_LEN || !is_dns1123_label(&longest) {
            errors.push(ConfigProblem::new(
                "kubernetes.job_name_prefix",
                format!(
                    "`{}` does not make valid Job names: a Job is named `<prefix><uuid>`, which \
                     must be a DNS-1123 label of at most {MAX_JOB_NAME_LEN} characters, so the \
                     prefix needs at most {} lower-case letters, digits or '-', starting with \
                     a letter or digit",
                    self.job_name_prefix,
                    MAX_JOB_NAME_LEN - UUID_LEN
                ),
            ));
        }
        if self.agent_image.trim().is_empty() {
            errors.push(ConfigProblem::new(
                "kubernetes.agent_image",
                "must name an image that contains buildkite-agent",
            ));
        }
        if let Some(policy) = &self.image_pull_policy
            && !matches!(policy.as_str(), "Always" | "IfNotPresent" | "Never")
        {
            errors.push(ConfigProblem::new(
                "kubernetes.image_pull_policy",
                format!("`{policy}` is not one of Always, IfNotPresent, Never"),
            ));
        }
        if self.agent_token_secret.name.is_empty() || self.agent_token_secret.key.is_empty() {
            errors.push(ConfigProblem::new(
                "kubernetes.agent_token_secret",
                "needs both `name` and `key` of the Secret holding the agent token",
            ));
        }
        for name in self.env.keys() {
            if let Some(problem) = crate::render::own_agent_env(name) {
                errors.push(ConfigProblem::new(
                    format!("kubernetes.env.{name}"),
                    problem,
                ));
            }
        }
        redaction::check(self, &mut errors);
        for (index, tag) in self.agent_tags.iter().enumerate() {
            if !tag.contains('=') {
                errors.push(ConfigProblem::new(
                    format!("kubernetes.agent_tags[{index}]"),
                    format!("`{tag}` is not a `key=value` agent tag"),
                ));
            }
        }
        for (key, duration) in [
            ("kubernetes.ttl_after_finished", self.ttl_after_finished),
            ("kubernetes.active_deadline", self.active_deadline),
        ] {
            if duration.as_secs() == 0 {
                errors.push(ConfigProblem::new(key, "must be at least 1s"));
            }
        }
        if !(1..=MAX_POD_ATTEMPTS).contains(&self.pod_attempts) {
            errors.push(ConfigProblem::new(
                "kubernetes.pod_attempts",
                format!(
                    "must be 1 to {MAX_POD_ATTEMPTS} (the first pod included), not {}",
                    self.pod_attempts
                ),
            ));
        }
        if let Some(name) = &self.default_resource_class
            && !self.resource_classes.contains_key(name)
        {
            errors.push(ConfigProblem::new(
                "kubernetes.default_resource_class",
                format!(
                    "`{name}` is not defined under [kubernetes.resource_classes] (defined: {})",
                    names(self.resource_classes.keys())
                ),
            ));
        }
        if let Some(patch) = &self.pod_spec_patch {
            if !patch.is_object() {
                errors.push(ConfigProblem::new(
                    "kubernetes.pod_spec_patch",
                    "must be a table in the shape of a pod spec",
                ));
            } else if let Err(err) = crate::render::check_config_patch(patch) {
                errors.push(ConfigProblem::new(
                    "kubernetes.pod_spec_patch",
                    format!(
                        "does not make a valid pod spec (camelCase keys, as in a Pod's spec): \
                         {err}"
                    ),
                ));
            }
        }
        self.default_metadata.validate(&mut errors);
        workspace::check(self, &mut errors);
        self.agent_config.validate(&mut errors);
        crate::render::agent_config_env_conflicts(self, &mut errors);
        DefaultCheckoutParams::validate(self, &mut errors);
        check_node_selector("kubernetes.node_selector", &self.node_selector, &mut errors);
        for (class, resources) in &self.resource_classes {
            check_node_selector(
                &format!("kubernetes.resource_classes.{class}.node_selector"),
                &resources.node_selector,
                &mut errors,
            );
            for (kind, quantities) in [
                ("requests", &resources.requests),
                ("limits", &resources.limits),
                ("pod_requests", &resources.pod_requests),
                ("pod_limits", &resources.pod_limits),
            ] {
                for (resource, quantity) in quantities {
                    if kind.starts_with("pod_") && !is_pod_level_resource(resource) {
                        errors.push(ConfigProblem::new(
                            format!("kubernetes.resource_classes.{class}.{kind}.{resource}"),
                            "Kubernetes sets pod-level resources for cpu, memory and \
                             hugepages-<size> only; give other resources to the containers \
                             in `requests` and `limits`",
                        ));
                    }
                    if !is_quantity(quantity) {
                        errors.push(ConfigProblem::new(
                            format!("kubernetes.resource_classes.{class}.{kind}.{resource}"),
                            format!(
                                "`{quantity}` is not a Kubernetes quantity: write e.g. \"500m\", \
                                 \"2\", \"4Gi\" or \"1e3\""
                            ),
                        ));
                    }
                }
            }
        }
        if self.client.max_concurrent_creates == 0 {
            errors.push(ConfigProblem::new(
                "kubernetes.client.max_concurrent_creates",
                "must be at least 1",
            ));
        }
        if self.client.creates_per_second > 0 && self.client.burst == 0 {
            errors.push(ConfigProblem::new(
                "kubernetes.client.burst",
                "must be at least 1 when creates_per_second is set",
            ));
        }
        if self.client.create_attempts == 0 {
            errors.push(ConfigProblem::new(
                "kubernetes.client.create_attempts",
                "must be at least 1",
            ));
        }
        if self.fail_fast.check_interval.is_zero() {
            errors.push(ConfigProblem::new(
                "kubernetes.fail_fast.check_interval",
                "must be more than 0s",
            ));
        }
        errors
    }
}

impl Validate for LeaderElectionConfig {
    fn validate(&self) -> Vec<ConfigProblem> {
        let mut errors = Vec::new();
        if !self.enabled {
            return errors;
        }
        if !crate::labels::is_dns1123_subdomain(&self.lease_name) {
            errors.push(ConfigProblem::new(
                "leader_election.lease_name",
                format!("`{}` is not a valid object name", self.lease_name),
            ));
        }
        if self.lease_duration.as_secs() == 0 || self.lease_duration.subsec_nanos() != 0 {
            errors.push(ConfigProblem::new(
                "leader_election.lease_duration",
                "must be a whole number of seconds, at least 1s",
            ));
        }
        // The leader's term ends one renew interval before the lease expires
        // (`leader::term_end`); at most a third leaves it a second try within its term.
        if self.renew_interval.is_zero() || self.renew_interval * 3 > self.lease_duration {
            errors.push(ConfigProblem::new(
                "leader_election.renew_interval",
                "must be more than 0s and at most a third of lease_duration: the leader stops \
                 leading one renew_interval before its lease expires, and needs time to retry \
                 a failed renewal before that",
            ));
        }
        if let Some(identity) = &self.identity
            && identity.trim().is_empty()
        {
            errors.push(ConfigProblem::new(
                "leader_election.identity",
                "must not be empty; leave it out to use the pod name",
            ));
        }
        errors
    }
}

/// A nodeSelector is labels to match: keys and values must be valid, or every Job is refused.
fn check_node_selector(
    key: &str,
    selector: &BTreeMap<String, String>,
    errors: &mut Vec<ConfigProblem>,
) {
    for (label, value) in selector {
        if !crate::labels::is_label_key(label) {
            errors.push(ConfigProblem::new(
                format!("{key}.{label}"),
                format!(
                    "`{label}` is not a valid label key: an optional DNS prefix and `/`, then \
                     at most 63 letters, digits, `-`, `_` or `.`"
                ),
            ));
        } else if !crate::labels::is_label_value(value) {
            errors.push(ConfigProblem::new(
                format!("{key}.{label}"),
                format!(
                    "`{value}` is not a valid label value: at most 63 letters, digits, `-`, `_` \
                     or `.`, starting and ending with a letter or digit"
                ),
            ));
        }
    }
}

/// Whether Kubernetes accepts `resource` in a pod's own `resources` (the `PodLevelResources`
/// validation: `cpu`, `memory` and hugepages).
fn is_pod_level_resource(resource: &str) -> bool {
    matches!(resource, "cpu" | "memory") || resource.starts_with("hugepages-")
}

/// Whether `text` is a Kubernetes resource quantity: a signed decimal number and a suffix
/// (`Ki`..`Ei`, `n`, `u`, `m`, `k`, `M`..`E`, or an exponent `e3`/`E-2`), as apimachinery's
/// `resource.Quantity` parses it.
fn is_quantity(text: &str) -> bool {
    fn number(text: &str) -> Option<&str> {
        let text = text.strip_prefix(['+', '-']).unwrap_or(text);
        let digits = |t: &str| t.len() - t.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let whole = digits(text);
        let rest = &text[whole..];
        let (fraction, rest) = match rest.strip_prefix('.') {
            Some(after) => (digits(after), &after[digits(after)..]),
            None => (0, rest),
        };
        (whole + fraction > 0).then_some(rest)
    }
    let Some(suffix) = number(text) else {
        return false;
    };
    if let Some(exponent) = suffix.strip_prefix(['e', 'E'])
        && !exponent.is_empty()
    {
        let exponent = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
        return !exponent.is_empty() && exponent.bytes().all(|b| b.is_ascii_digit());
    }
    matches!(
        suffix,
        "" | "Ki"
            | "Mi"
            | "Gi"
            | "Ti"
            | "Pi"
            | "Ei"
            | "n"
            | "u"
            | "m"
            | "k"
            | "M"
            | "G"
            | "T"
            | "P"
            | "E"
    )
}

fn names<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let list: Vec<&str> = names.map(String::as_str).collect();
    if list.is_empty() {
        "none".to_owned()
    } else {
        list.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        kubernetes: KubernetesConfig,
        #[serde(default)]
        leader_election: LeaderElectionConfig,
    }

    fn parse(text: &str) -> File {
        toml::from_str(text).expect("valid config")
    }

    #[test]
    fn empty_sections_take_the_defaults_and_validate() {
        let file = parse("[kubernetes]\n");
        assert_eq!(file.kubernetes, KubernetesConfig::default());
        assert!(file.kubernetes.validate().is_empty());
        assert!(file.leader_election.validate().is_empty());
    }

    #[test]
    fn a_full_section_parses_durations_and_nested_tables() {
        let file = parse(
            r#"
            [kubernetes]
            namespace = "ci"
            job_name_prefix = "bk-"
            agent_image = "buildkite/agent:3.90"
            image_pull_policy = "Always"
            agent_token_secret = { name = "agent", key = "tok" }
            agent_tags = ["cluster=prod"]
            ttl_after_finished = "5m"
            active_deadline = "2h"
            termination_grace_period = "30s"
            service_account_name = "builder"
            node_selector = { pool = "ci" }
            tolerations = [{ key = "ci", operator = "Exists", effect = "NoSchedule" }]
            env = { FOO = "bar" }
            default_resource_class = "small"
            pod_spec_patch = { priorityClassName = "ci" }
            [kubernetes.resource_classes.small]
            requests = { cpu = "1", memory = "2Gi" }
            [kubernetes.client]
            creates_per_second = 0
            [kubernetes.fail_fast]
            image_pull_grace = "30s"
            pending_timeout = "5m"
            no_pod_grace = "1m"
            [leader_election]
            enabled = true
            lease_name = "jobify"
            lease_duration = "15s"
            renew_interval = "5s"
            identity = "pod-a"
            "#,
        );
        let k = &file.kubernetes;
        assert!(k.validate().is_empty(), "{:?}", k.validate());
        assert_eq!(k.ttl_after_finished, Duration::from_secs(300));
        assert_eq!(k.fail_fast.image_pull_grace, Duration::from_secs(30));
        assert_eq!(k.resource_classes["small"].requests["memory"], "2Gi");
        assert_eq!(k.tolerations[0].operator.as_deref(), Some("Exists"));
        assert_eq!(k.client.creates_per_second, 0);
        assert!(file.leader_election.validate().is_empty());
        assert_eq!(file.leader_election.identity.as_deref(), Some("pod-a"));
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = toml::from_str::<File>("[kubernetes]\nnamespac = \"x\"\n")
            .err()
            .expect("unknown key refused");
        assert!(err.to_string().contains("namespac"), "{err}");
    }

    #[test]
    fn pod_attempts_must_be_one_to_ten() {
        for (attempts, valid) in [(0, false), (1, true), (3, true), (10, true), (11, false)] {
            let config = KubernetesConfig {
                pod_attempts: attempts,
                ..KubernetesConfig::default()
            };
            let errors = config.validate();
            assert_eq!(errors.is_empty(), valid, "{attempts}: {errors:?}");
            if !valid {
                assert_eq!(errors[0].key, "kubernetes.pod_attempts");
                assert!(errors[0].to_string().contains("1 to 10"), "{}", errors[0]);
            }
        }
    }

    #[test]
    fn a_prefix_that_makes_names_too_long_or_invalid_is_reported() {
        for prefix in ["a-very-long-prefix-for-jobs-x-", "Jobify-", "-x", "a_b"] {
            let config = KubernetesConfig {
                job_name_prefix: prefix.to_owned(),
                ..KubernetesConfig::default()
            };
            let errors = config.validate();
            assert_eq!(errors.len(), 1, "{prefix}: {errors:?}");
            assert_eq!(errors[0].key, "kubernetes.job_name_prefix");
        }
        let longest_valid = KubernetesConfig {
            job_name_prefix: "a".repeat(27),
            ..KubernetesConfig::default()
        };
        assert!(longest_valid.validate().is_empty());
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let config = KubernetesConfig {
            namespace: "Bad_NS".to_owned(),
            image_pull_policy: Some("Sometimes".to_owned()),
            agent_tags: vec!["novalue".to_owned()],
            default_resource_class: Some("huge".to_owned()),
            ..KubernetesConfig::default()
        };
        let keys: Vec<String> = config.validate().into_iter().map(|e| e.key).collect();
        assert_eq!(
            keys,
            [
                "kubernetes.namespace",
                "kubernetes.image_pull_policy",
                "kubernetes.agent_tags[0]",
                "kubernetes.default_resource_class",
            ]
        );
    }

    #[test]
    fn extra_env_may_not_carry_the_agent_token_or_what_jobify_sets() {
        let config = KubernetesConfig {
            env: BTreeMap::from([
                (
                    "BUILDKITE_AGENT_TOKEN".to_owned(),
                    "s3cr3t-value".to_owned(),
                ),
                ("BUILDKITE_AGENT_ACQUIRE_JOB".to_owned(), "x".to_owned()),
                ("BUILDKITE_GIT_CLONE_FLAGS".to_owned(), "-v".to_owned()),
            ]),
            ..KubernetesConfig::default()
        };
        let errors = config.validate();
        let keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "kubernetes.env.BUILDKITE_AGENT_ACQUIRE_JOB",
                "kubernetes.env.BUILDKITE_AGENT_TOKEN"
            ]
        );
        assert!(
            errors[1].message.contains("agent_token_secret"),
            "{errors:?}"
        );
        assert!(!format!("{errors:?}").contains("s3cr3t"), "{errors:?}");
    }

    #[test]
    fn node_selectors_must_be_valid_labels_or_every_job_would_be_refused() {
        let config: KubernetesConfig = toml::from_str(
            "node_selector = { pool = \"a b\", \"kubernetes.io/os\" = \"linux\" }\n\
             [resource_classes.gpu]\nnode_selector = { \"bad key\" = \"x\" }\n",
        )
        .expect("parses");
        let keys: Vec<String> = config.validate().into_iter().map(|e| e.key).collect();
        assert_eq!(
            keys,
            [
                "kubernetes.node_selector.pool",
                "kubernetes.resource_classes.gpu.node_selector.bad key"
            ]
        );
    }

    #[test]
    fn a_secret_reference_written_as_a_string_says_what_to_write() {
        let err = toml::from_str::<KubernetesConfig>("agent_token_secret = \"my-secret\"\n")
            .expect_err("a string");
        assert!(
            err.to_string()
                .contains("expected a table such as { name = \"buildkite-agent-token\""),
            "{err}"
        );
    }

    #[test]
    fn quantities_are_read_as_kubernetes_reads_them() {
        for good in [
            "1", "500m", "4Gi", "1.5", ".5", "2.", "+1", "1e3", "1E-2", "100Ki", "3n",
        ] {
            assert!(is_quantity(good), "{good}");
        }
        for bad in [
            "", "lots", "4GB", "1.2.3", "e3", "1e", "Gi", "4 Gi", "1ki", ".",
        ] {
            assert!(!is_quantity(bad), "{bad}");
        }
    }

    #[test]
    fn a_resource_class_with_a_bad_quantity_is_reported_where_it_is() {
        let config: KubernetesConfig = toml::from_str(
            "[resource_classes.big]\nrequests = { cpu = \"lots\", memory = \"4Gi\" }\n",
        )
        .expect("parses");
        let errors = config.validate();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(
            errors[0].key,
            "kubernetes.resource_classes.big.requests.cpu"
        );
        assert!(errors[0].message.contains("`lots`"), "{errors:?}");
    }

    #[test]
    fn pod_level_resources_are_cpu_memory_and_hugepages_only() {
        let config: KubernetesConfig = toml::from_str(
            "[resource_classes.gpu]\npod_requests = { cpu = \"2\", \"hugepages-2Mi\" = \"1Gi\", \
             \"nvidia.com/gpu\" = \"1\" }\npod_limits = { memory = \"much\" }\n",
        )
        .expect("parses");
        let errors = config.validate();
        let keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "kubernetes.resource_classes.gpu.pod_requests.nvidia.com/gpu",
                "kubernetes.resource_classes.gpu.pod_limits.memory",
            ],
            "{errors:?}"
        );
        assert!(errors[0].message.contains("cpu, memory and"), "{errors:?}");
    }

    #[test]
    fn a_pod_spec_patch_that_cannot_make_a_pod_is_reported() {
        let config: KubernetesConfig = toml::from_str(
            "[pod_spec_patch]\ncontainers = [{ name = \"agent\", imagePullPolicyy = \"Always\" }]\n",
        )
        .expect("parses");
        let errors = config.validate();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].key, "kubernetes.pod_spec_patch");
        assert!(
            errors[0].message.contains("containers[0].imagePullPolicyy"),
            "{errors:?}"
        );
        let config: KubernetesConfig =
            toml::from_str("pod_spec_patch = { containers = \"x\" }\n").expect("parses");
        assert_eq!(config.validate().len(), 1);
    }

    #[test]
    fn a_misspelt_toleration_field_is_refused() {
        let err = toml::from_str::<KubernetesConfig>(
            "tolerations = [{ key = \"a\", operater = \"Exists\" }]\n",
        )
        .expect_err("typo");
        assert!(err.to_string().contains("operater"), "{err}");
        let class = toml::from_str::<KubernetesConfig>(
            "[resource_classes.gpu]\ntolerations = [{ key = \"gpu\", efect = \"NoSchedule\" }]\n",
        )
        .expect_err("typo in a class");
        assert!(class.to_string().contains("efect"), "{class}");
    }

    #[test]
    fn default_metadata_must_be_valid_and_leave_jobify_keys_alone() {
        let config: KubernetesConfig = toml::from_str(
            "[default_metadata]\n\
             labels = { team = \"ci\", \"jobify.dev/queue\" = \"x\", tier = \"not a value\" }\n\
             annotations = { \"cluster-autoscaler.kubernetes.io/safe-to-evict\" = \"true\", \"bad key\" = \"x\" }\n",
        )
        .expect("parses");
        let keys: Vec<String> = config.validate().into_iter().map(|e| e.key).collect();
        assert_eq!(
            keys,
            [
                "kubernetes.default_metadata.labels.jobify.dev/queue",
                "kubernetes.default_metadata.labels.tier",
                "kubernetes.default_metadata.annotations.bad key",
            ]
        );
    }

    #[test]
    fn renew_interval_must_be_at_most_a_third_of_the_lease() {
        let config = |renew: u64| LeaderElectionConfig {
            enabled: true,
            lease_duration: Duration::from_secs(15),
            renew_interval: Duration::from_secs(renew),
            ..LeaderElectionConfig::default()
        };
        assert!(config(5).validate().is_empty());
        // With 8 s of 15, the term (7 s) would end before the next renewal: the leader would
        // step down and come back every round.
        for renew in [6, 8, 15] {
            let errors = config(renew).validate();
            assert_eq!(errors.len(), 1, "{renew}");
            assert_eq!(errors[0].key, "leader_election.renew_interval");
        }
    }
}
