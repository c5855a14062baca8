//! `[policy]`: the declarative rules. First match wins; when none matches, `default` applies.
//!
//! A rule is a flat table: matchers (`queue`, `agent`, `pipeline`, `branch`, `step_key`,
//! `label`, `plugin`, `env`, `env_present`; all that are set must match) and an action
//! (`action` plus `template`, `fallback` or `message`, depending on the action).

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

use super::error::{ConfigProblem, Validate};
use super::patterns::{AgentPattern, Patterns};

/// The `[policy]` section.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// What happens to a job no rule matches. Defaults to `podspec` with fallback `default`:
    /// run the job in the pod spec it asks for, or in the default pod when it asks for none
    /// (what agent-stack-k8s does).
    #[serde(default = "ActionConfig::agent_stack_compatible")]
    pub default: ActionConfig,
    /// The rules, tried in order.
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            default: ActionConfig::agent_stack_compatible(),
            rules: Vec::new(),
        }
    }
}

impl Validate for PolicyConfig {
    /// Every error found, each naming its key.
    fn validate(&self) -> Vec<ConfigProblem> {
        let mut errors = Vec::new();
        let mut names: BTreeMap<&str, String> = BTreeMap::new();
        let last = self.rules.len().saturating_sub(1);
        for (index, rule) in self.rules.iter().enumerate() {
            let path = format!("policy.rules[{index}]");
            if rule.matcher.is_catch_all() && index < last {
                errors.push(ConfigProblem::new(
                    path.clone(),
                    format!(
                        "has no matchers, so it matches every job and the {} rule(s) after it \
                         can never match; move it last or give it a matcher",
                        last - index
                    ),
                ));
            }
            if let Some(name) = &rule.name {
                if name.trim().is_empty() {
                    errors.push(ConfigProblem::empty(format!("{path}.name")));
                } else if let Some(first) = names.get(name.as_str()) {
                    errors.push(ConfigProblem::new(
                        path.clone(),
                        format!(
                            "reuses the rule name `{name}` (first used by `{first}`); names must \
                             be unique"
                        ),
                    ));
                } else {
                    names.insert(name, path.clone());
                }
            }
            for key in rule.matcher.env.keys().chain(&rule.matcher.env_present) {
                if key.trim().is_empty() {
                    errors.push(ConfigProblem::empty(format!("{path}.env")));
                }
            }
        }
        errors
    }
}

impl PolicyConfig {
    /// Every template name the policy refers to, with the key it appears at, so the binary can
    /// check each names a template it knows.
    pub fn template_references(&self) -> Vec<(String, &str)> {
        let mut refs = Vec::new();
        if let Some(name) = self.default.template() {
            refs.push(("policy.default.template".to_owned(), name));
        }
        for (index, rule) in self.rules.iter().enumerate() {
            if let Some(name) = rule.action.template() {
                refs.push((format!("policy.rules[{index}].template"), name));
            }
        }
        refs
    }
}

/// One rule: when every matcher that is set matches, `action` decides.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawRule", into = "RawRule")]
pub struct RuleConfig {
    /// A name used in reasons and `explain` output.
    pub name: Option<String>,
    /// What the job must look like.
    pub matcher: MatchConfig,
    /// What to do with it.
    pub action: ActionConfig,
}

/// The matchers of a rule. Unset matchers match everything; set ones must all match.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MatchConfig {
    /// The job's `queue` agent query rule (a job without one is in queue `default`).
    pub queue: Patterns,
    /// Agent query rules the job must carry, `key=glob` each.
    pub agent: Vec<AgentPattern>,
    /// Pipeline slug.
    pub pipeline: Patterns,
    /// Build branch.
    pub branch: Patterns,
    /// Step key (a job without a key never matches a set `step_key`).
    pub step_key: Patterns,
    /// Step label (a job without a label never matches a set `label`).
    pub label: Patterns,
    /// Whether the job carries a `kubernetes` plugin configuration (valid or not).
    pub plugin: Option<bool>,
    /// Environment variables that must be set to a value a pattern matches.
    pub env: BTreeMap<String, Patterns>,
    /// Environment variables that must be set (to anything, even empty).
    pub env_present: Vec<String>,
}

impl MatchConfig {
    /// Whether no matcher is set: the rule matches every job.
    pub fn is_catch_all(&self) -> bool {
        self.matchers().next().is_none()
    }
}

/// What a rule (or the default) does with a job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(into = "RawAction")]
pub enum ActionConfig {
    /// Run the job in a default agent pod; `template` picks a named template or resource class.
    Default {
        /// The template, or `None` for the default one.
        template: Option<String>,
    },
    /// Run the job in the pod spec it carries (`kubernetes` plugin `podSpec`); when it carries
    /// none, `fallback` applies.
    PodSpec {
        /// What to do with a job that carries no pod spec.
        fallback: PodSpecFallback,
    },
    /// Not ours: leave the job for other agents.
    Skip,
    /// Refuse the job and tell its authors why.
    Reject {
        /// The sentence shown in Buildkite; a generic one when `None`.
        message: Option<String>,
    },
}

impl ActionConfig {
    /// `podspec` with fallback `default`: what agent-stack-k8s does, and the default policy.
    pub fn agent_stack_compatible() -> Self {
        ActionConfig::PodSpec {
            fallback: PodSpecFallback::Default { template: None },
        }
    }

    /// The template this action names, if any.
    pub fn template(&self) -> Option<&str> {
        match self {
            ActionConfig::Default { template }
            | ActionConfig::PodSpec {
                fallback: PodSpecFallback::Default { template },
            } => template.as_deref(),
            _ => None,
        }
    }

    /// The action's name as written in TOML.
    pub fn name(&self) -> &'static str {
        match self {
            ActionConfig::Default { .. } => "default",
            ActionConfig::PodSpec { .. } => "podspec",
            ActionConfig::Skip => "skip",
            ActionConfig::Reject { .. } => "reject",
        }
    }
}

/// What `podspec` does with a job that carries no pod spec.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum PodSpecFallback {
    /// Run it in a default pod (`fallback = "default"`, optional `template`).
    Default {
        /// The template, or `None` for the default one.
        template: Option<String>,
    },
    /// Refuse it (`fallback = "reject"`, optional `message`).
    Reject {
        /// The sentence shown in Buildkite.
        message: Option<String>,
    },
}

/// The action names accepted in `action = "..."`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum ActionName {
    Default,
    Podspec,
    Skip,
    Reject,
}

/// The fallback names accepted in `fallback = "..."`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum FallbackName {
    Default,
    Reject,
}

/// The action keys as written in TOML, before checking which go together.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAction {
    action: ActionName,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    template: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fallback: Option<FallbackName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    message: Option<String>,
}

impl TryFrom<RawAction> for ActionConfig {
    type Error = String;

    fn try_from(raw: RawAction) -> Result<Self, String> {
        let RawAction {
            action,
            template,
            fallback,
            message,
        } = raw;
        let refuse = |key: &str, hint: &str| {
            Err(format!(
                "`{key}` does not apply to action `{}`; {hint}",
                match action {
                    ActionName::Default => "default",
                    ActionName::Podspec => "podspec",
                    ActionName::Skip => "skip",
                    ActionName::Reject => "reject",
                }
            ))
        };
        match action {
            ActionName::Default => {
                if fallback.is_some() {
                    return refuse("fallback", "only `podspec` has a fallback");
                }
                if message.is_some() {
                    return refuse("message", "only `reject` carries a message");
                }
                Ok(ActionConfig::Default { template })
            }
            ActionName::Podspec => match fallback.unwrap_or(FallbackName::Default) {
                FallbackName::Default => {
                    if message.is_some() {
                        return refuse(
                            "message",
                            "a message applies with `fallback = \"reject\"` only",
                        );
                    }
                    Ok(ActionConfig::PodSpec {
                        fallback: PodSpecFallback::Default { template },
                    })
                }
                FallbackName::Reject => {
                    if template.is_some() {
                        return refuse(
                            "template",
                            "a template applies with `fallback = \"default\"` only",
                        );
                    }
                    Ok(ActionConfig::PodSpec {
                        fallback: PodSpecFallback::Reject { message },
                    })
                }
            },
            ActionName::Skip => {
                if template.is_some() || fallback.is_some() || message.is_some() {
                    return refuse("template/fallback/message", "`skip` takes no parameters");
                }
                Ok(ActionConfig::Skip)
            }
            ActionName::Reject => {
                if template.is_some() {
                    return refuse("template", "a rejected job runs in no pod");
                }
                if fallback.is_some() {
                    return refuse("fallback", "only `podspec` has a fallback");
                }
                Ok(ActionConfig::Reject { message })
            }
        }
    }
}

impl From<ActionConfig> for RawAction {
    fn from(action: ActionConfig) -> RawAction {
        let mut raw = RawAction {
            action: ActionName::Skip,
            template: None,
            fallback: None,
            message: None,
        };
        match action {
            ActionConfig::Default { template } => {
                raw.action = ActionName::Default;
                raw.template = template;
            }
            ActionConfig::PodSpec { fallback } => {
                raw.action = ActionName::Podspec;
                match fallback {
                    PodSpecFallback::Default { template } => {
                        raw.fallback = Some(FallbackName::Default);
                        raw.template = template;
                    }
                    PodSpecFallback::Reject { message } => {
                        raw.fallback = Some(FallbackName::Reject);
                        raw.message = message;
                    }
                }
            }
            ActionConfig::Skip => {}
            ActionConfig::Reject { message } => {
                raw.action = ActionName::Reject;
                raw.message = message;
            }
        }
        raw
    }
}

impl<'de> Deserialize<'de> for ActionConfig {
    /// `"skip"` or a table `{ action = "default", template = "gpu" }`.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ActionVisitor;

        impl<'de> Visitor<'de> for ActionVisitor {
            type Value = ActionConfig;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "an action name (\"default\", \"podspec\", \"skip\", \"reject\") or a table \
                     with `action` and its parameters",
                )
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<ActionConfig, E> {
                let action = ActionName::deserialize(de::value::StrDeserializer::<E>::new(value))?;
                RawAction {
                    action,
                    template: None,
                    fallback: None,
                    message: None,
                }
                .try_into()
                .map_err(E::custom)
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ActionConfig, A::Error> {
                let raw = RawAction::deserialize(de::value::MapAccessDeserializer::new(map))?;
                raw.try_into().map_err(de::Error::custom)
            }
        }

        deserializer.deserialize_any(ActionVisitor)
    }
}

/// A rule's keys as written in TOML.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default, skip_serializing_if = "Patterns::is_empty")]
    queue: Patterns,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    agent: Vec<AgentPattern>,
    #[serde(default, skip_serializing_if = "Patterns::is_empty")]
    pipeline: Patterns,
    #[serde(default, skip_serializing_if = "Patterns::is_empty")]
    branch: Patterns,
    #[serde(default, skip_serializing_if = "Patterns::is_empty")]
    step_key: Patterns,
    #[serde(default, skip_serializing_if = "Patterns::is_empty")]
    label: Patterns,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    plugin: Option<bool>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    env: BTreeMap<String, Patterns>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    env_present: Vec<String>,
    action: ActionName,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    template: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fallback: Option<FallbackName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    message: Option<String>,
}

impl TryFrom<RawRule> for RuleConfig {
    type Error = String;

    fn try_from(raw: RawRule) -> Result<Self, String> {
        let action = ActionConfig::try_from(RawAction {
            action: raw.action,
            template: raw.template,
            fallback: raw.fallback,
            message: raw.message,
        })
        .map_err(|err| match &raw.name {
            Some(name) => format!("rule `{name}`: {err}"),
            None => err,
        })?;
        Ok(RuleConfig {
            name: raw.name,
            matcher: MatchConfig {
                queue: raw.queue,
                agent: raw.agent,
                pipeline: raw.pipeline,
                branch: raw.branch,
                step_key: raw.step_key,
                label: raw.label,
                plugin: raw.plugin,
                env: raw.env,
                env_present: raw.env_present,
            },
            action,
        })
    }
}

impl From<RuleConfig> for RawRule {
    fn from(rule: RuleConfig) -> RawRule {
        let RawAction {
            action,
            template,
            fallback,
            message,
        } = rule.action.into();
        let m = rule.matcher;
        RawRule {
            name: rule.name,
            queue: m.queue,
            agent: m.agent,
            pipeline: m.pipeline,
            branch: m.branch,
            step_key: m.step_key,
            label: m.label,
            plugin: m.plugin,
            env: m.env,
            env_present: m.env_present,
            action,
            template,
            fallback,
            message,
        }
    }
}
