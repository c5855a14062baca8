//! The declarative policy: `[[policy.rules]]`, first match wins, then `default`.

use std::borrow::Cow;

use crate::config::{ActionConfig, MatchConfig, PodSpecFallback, PolicyConfig, RuleConfig};
use crate::decision::{Decision, Reason, ReasonCode, Template};
use crate::job::ScheduledJob;
use crate::plugin::PluginConfig;

use super::Policy;
use super::explain::{Explanation, RuleTrace};
use super::matcher::Matcher;

/// Buildkite's queue for a job that names none.
pub(crate) const DEFAULT_QUEUE: &str = "default";

/// The rules of `[policy]`, ready to decide.
#[derive(Clone, Debug)]
pub struct RulePolicy {
    rules: Vec<CompiledRule>,
    default: ActionConfig,
}

#[derive(Clone, Debug)]
struct CompiledRule {
    config: RuleConfig,
    /// "rule `gpu`" or "rule 3": how reasons name the rule.
    label: String,
    /// "rule `gpu` matched": how reasons start.
    matched: String,
}

impl RulePolicy {
    /// The policy `config` describes. Call [`Validate::validate`](crate::config::Validate::validate) first to catch rules
    /// that can never match.
    pub fn new(config: &PolicyConfig) -> Self {
        let rules = config
            .rules
            .iter()
            .enumerate()
            .map(|(index, rule)| {
                let label = match &rule.name {
                    Some(name) => format!("rule `{name}`"),
                    None => format!("rule {}", index + 1),
                };
                CompiledRule {
                    matched: format!("{label} matched"),
                    label,
                    config: rule.clone(),
                }
            })
            .collect();
        RulePolicy {
            rules,
            default: config.default.clone(),
        }
    }

    /// The index of the first rule `job` matches, if any.
    fn first_match(&self, job: &ScheduledJob) -> Option<usize> {
        self.rules
            .iter()
            .position(|rule| first_miss(&rule.config.matcher, job).is_none())
    }

    fn decide_by(&self, job: &ScheduledJob, index: Option<usize>) -> Decision {
        match index.and_then(|i| self.rules.get(i)) {
            Some(rule) => act(
                job,
                &rule.config.action,
                ReasonCode::RULE_MATCHED,
                Source {
                    matched: &rule.matched,
                    name: &rule.label,
                },
            ),
            None => act(
                job,
                &self.default,
                ReasonCode::DEFAULT_RULE,
                Source {
                    matched: "no rule matched, the default applies",
                    name: "default",
                },
            ),
        }
    }
}

impl Policy for RulePolicy {
    fn decide(&self, job: &ScheduledJob) -> Decision {
        self.decide_by(job, self.first_match(job))
    }

    fn explain(&self, job: &ScheduledJob) -> Explanation {
        let mut rules = Vec::new();
        let mut matched = None;
        for (index, rule) in self.rules.iter().enumerate() {
            let miss = first_miss(&rule.config.matcher, job);
            rules.push(RuleTrace {
                index,
                name: rule.config.name.clone(),
                action: rule.config.action.name(),
                matched: miss.is_none(),
                mismatch: miss.map(|m| m.miss(job)),
            });
            if miss.is_none() {
                matched = Some(index);
                break;
            }
        }
        let decision = self.decide_by(job, matched);
        let mut explanation = Explanation::of_decision(job, decision);
        explanation.rules = rules;
        explanation.default_applied = matched.is_none();
        explanation
    }
}

/// The queue Buildkite would put `job` in.
pub(crate) fn queue_of(job: &ScheduledJob) -> &str {
    job.queue().unwrap_or(DEFAULT_QUEUE)
}

/// The first matcher of `m` that `job` fails, or `None` when the rule matches.
fn first_miss<'a>(m: &'a MatchConfig, job: &ScheduledJob) -> Option<Matcher<'a>> {
    m.matchers().find(|matcher| !matcher.matches(job))
}

/// How reasons name what decided: "rule `gpu` matched" / "rule `gpu`".
#[derive(Clone, Copy)]
struct Source<'a> {
    matched: &'a str,
    name: &'a str,
}

/// Carries out `action` for `job`; `by` names the rule in the reason.
fn act(job: &ScheduledJob, action: &ActionConfig, code: ReasonCode, by: Source<'_>) -> Decision {
    if let PluginConfig::Invalid(err) = &job.plugin
        && !matches!(action, ActionConfig::Skip | ActionConfig::Reject { .. })
    {
        return Decision::Reject {
            reason: Reason::new(
                ReasonCode::INVALID_PLUGIN_CONFIG,
                format!(
                    "the kubernetes plugin configuration of this step is invalid: {err}. \
                     Fix the step's `plugins` entry and retry the job"
                ),
            ),
        };
    }
    match action {
        ActionConfig::Default { template } => run_default(code, by, template.as_deref(), ""),
        ActionConfig::PodSpec { fallback } => {
            if job.plugin.present().is_some_and(|p| p.pod_spec.is_some()) {
                return Decision::Run {
                    template: Template::PodSpec,
                    reason: Reason::new(
                        code,
                        format!("{}: run in the job's own pod spec", by.matched),
                    ),
                };
            }
            match fallback {
                PodSpecFallback::Default { template } => run_default(
                    ReasonCode::NO_PLUGIN_CONFIG,
                    by,
                    template.as_deref(),
                    " (the job carries no pod spec)",
                ),
                PodSpecFallback::Reject { message } => Decision::Reject {
                    reason: Reason::new(
                        ReasonCode::NO_PLUGIN_CONFIG,
                        match message {
                            Some(message) => format!("{message} (jobify policy: {})", by.name),
                            None => format!(
                                "this step must bring its own pod: add the kubernetes plugin \
                                 with a `podSpec` to it (jobify policy: {})",
                                by.name
                            ),
                        },
                    ),
                },
            }
        }
        ActionConfig::Skip => Decision::Skip {
            reason: Reason::new(code, format!("{}: left for other agents", by.matched)),
        },
        ActionConfig::Reject { message } => Decision::Reject {
            reason: Reason::new(
                code,
                match message {
                    Some(message) => format!("{message} (jobify policy: {})", by.name),
                    None => format!("jobify's policy refuses this job ({})", by.name),
                },
            ),
        },
    }
}

fn run_default(code: ReasonCode, by: Source<'_>, template: Option<&str>, why: &str) -> Decision {
    let pod: Cow<'_, str> = match template {
        Some(name) => format!("pod template `{name}`").into(),
        None => "the default pod".into(),
    };
    Decision::Run {
        template: Template::Default {
            name: template.map(str::to_owned),
        },
        reason: Reason::new(code, format!("{}: run in {pod}{why}", by.matched)),
    }
}
