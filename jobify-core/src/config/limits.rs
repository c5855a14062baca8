//! `[limits]` and `[[queues]]`: how many workloads may be in flight at once, and which
//! Buildkite queues this controller serves.

use serde::{Deserialize, Serialize};

use super::Patterns;
use super::error::{ConfigProblem, Validate};
use crate::rules::{AgentQueryRule, AgentQueryRules, RESOURCE_CLASS_TAG};

/// The `[limits]` section. In flight means launched and not yet observed ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Workloads in flight across all queues and pipelines. Default 25.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: u32,
    /// Workloads in flight per pipeline; no limit when unset.
    #[serde(default)]
    pub per_pipeline: Option<u32>,
}

fn default_max_in_flight() -> u32 {
    25
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_in_flight: default_max_in_flight(),
            per_pipeline: None,
        }
    }
}

impl Validate for LimitsConfig {
    fn validate(&self) -> Vec<ConfigProblem> {
        let mut errors = Vec::new();
        if self.max_in_flight == 0 {
            errors.push(ConfigProblem::zero_limit("limits.max_in_flight".to_owned()));
        }
        if self.per_pipeline == Some(0) {
            errors.push(ConfigProblem::zero_limit("limits.per_pipeline".to_owned()));
        }
        errors
    }
}

/// One `[[queues]]` entry: a Buildkite queue this controller serves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    /// The queue's name: the value of the `queue` agent query rule jobs use.
    pub name: String,
    /// The agent tags pods started for this queue carry, `key=value` each. A job is served
    /// when these tags satisfy all of its agent query rules but `resource_class`. Defaults to
    /// `queue=<name>`; when given without a `queue` tag, `queue=<name>` is added. May not
    /// set `resource_class`: that tag picks a resource class, see `resource_classes`.
    #[serde(default)]
    pub rules: Vec<String>,
    /// The values of the `resource_class` agent tag this queue serves (globs). Empty, the
    /// default, serves every class, as agent-stack-k8s leaves the tag out of matching; a job
    /// naming a class the cluster does not define is then rejected when its pod is rendered.
    #[serde(default)]
    pub resource_classes: Patterns,
    /// Workloads in flight for this queue; no limit when unset.
    #[serde(default)]
    pub max_in_flight: Option<u32>,
}

impl QueueConfig {
    /// A queue with default tags and no limit of its own.
    pub fn named(name: impl Into<String>) -> Self {
        QueueConfig {
            name: name.into(),
            rules: Vec::new(),
            resource_classes: Patterns::default(),
            max_in_flight: None,
        }
    }

    /// The agent tags of this queue, `queue=<name>` included.
    pub fn tags(&self) -> AgentQueryRules {
        let mut tags: Vec<String> = self.rules.clone();
        if !self
            .rules
            .iter()
            .any(|r| AgentQueryRule::parse(r).key == "queue")
        {
            tags.push(format!("queue={}", self.name));
        }
        AgentQueryRules::parse(tags)
    }
}

/// The `[[queues]]` entries, checked together (names must be unique).
impl Validate for [QueueConfig] {
    fn validate(&self) -> Vec<ConfigProblem> {
        let queues = self;
        let mut errors = Vec::new();
        for (index, queue) in queues.iter().enumerate() {
            let path = format!("queues[{index}]");
            if queue.name.trim().is_empty() {
                errors.push(ConfigProblem::empty(format!("{path}.name")));
            }
            if queues[..index].iter().any(|q| q.name == queue.name) {
                errors.push(ConfigProblem::new(
                    path.clone(),
                    format!(
                        "configures queue `{}` a second time; merge the two entries",
                        queue.name
                    ),
                ));
            }
            for (class_index, class) in queue.resource_classes.iter().enumerate() {
                if class.trim().is_empty() {
                    errors.push(ConfigProblem::empty(format!(
                        "{path}.resource_classes[{class_index}]"
                    )));
                }
            }
            if queue.max_in_flight == Some(0) {
                errors.push(ConfigProblem::zero_limit(format!("{path}.max_in_flight")));
            }
            for (rule_index, rule) in queue.rules.iter().enumerate() {
                let parsed = AgentQueryRule::parse(rule);
                let rule_path = format!("{path}.rules[{rule_index}]");
                if parsed.key.is_empty() || !rule.contains('=') {
                    errors.push(ConfigProblem::invalid(
                        rule_path,
                        rule,
                        "an agent tag `key=value`, e.g. `os=linux`",
                    ));
                } else if parsed.key == RESOURCE_CLASS_TAG {
                    errors.push(ConfigProblem::invalid(
                        rule_path,
                        rule,
                        "a tag other than `resource_class`, which picks a resource class and \
                         takes no part in matching; list the classes this queue serves in \
                         `resource_classes`",
                    ));
                } else if parsed.key == "queue" && parsed.value != queue.name {
                    errors.push(ConfigProblem::invalid(
                        rule_path,
                        rule,
                        "the queue's own name: `queue=` must repeat `name`",
                    ));
                }
            }
        }
        errors
    }
}
