//! The policy's vocabulary: each matcher a rule can set, defined once with what it matches
//! and how it says why a job missed it.
//!
//! A new matcher is a field of [`MatchConfig`] (and of its raw TOML form), a variant here
//! with its arms in [`Matcher::matches`] and [`Matcher::miss`], and a line in
//! [`MatchConfig::matchers`], whose destructuring makes the compiler ask for it.

use crate::config::{AgentPattern, MatchConfig, Patterns};
use crate::job::ScheduledJob;
use crate::plugin::PluginConfig;
use crate::rules::AgentQueryRules;

use super::rules::queue_of;

/// One set matcher of a rule, borrowed from its [`MatchConfig`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Matcher<'a> {
    /// The job's queue (`default` when it names none) matches a pattern.
    Queue(&'a Patterns),
    /// One of the job's agent query rules has the key and a value the glob matches.
    Agent(&'a AgentPattern),
    /// The pipeline slug matches a pattern.
    Pipeline(&'a Patterns),
    /// The build's branch matches a pattern.
    Branch(&'a Patterns),
    /// The step has a key, and it matches a pattern.
    StepKey(&'a Patterns),
    /// The step has a label, and it matches a pattern.
    Label(&'a Patterns),
    /// The job carries (`true`) or does not carry (`false`) a `kubernetes` plugin entry.
    Plugin(bool),
    /// The variable is set to a value a pattern matches.
    Env(&'a str, &'a Patterns),
    /// The variable is set, to anything.
    EnvPresent(&'a str),
}

impl MatchConfig {
    /// The matchers this rule sets, in the order reasons check them. Unset matchers (empty
    /// patterns, no plugin requirement) are left out: they match every job.
    pub(crate) fn matchers(&self) -> impl Iterator<Item = Matcher<'_>> {
        // Destructured so that a new field does not compile until it is listed here.
        let MatchConfig {
            queue,
            agent,
            pipeline,
            branch,
            step_key,
            label,
            plugin,
            env,
            env_present,
        } = self;
        fn patterns<'a>(
            set: &'a Patterns,
            matcher: fn(&'a Patterns) -> Matcher<'a>,
        ) -> Option<Matcher<'a>> {
            (!set.is_empty()).then(|| matcher(set))
        }
        patterns(queue, Matcher::Queue)
            .into_iter()
            .chain(agent.iter().map(Matcher::Agent))
            .chain(patterns(pipeline, Matcher::Pipeline))
            .chain(patterns(branch, Matcher::Branch))
            .chain(patterns(step_key, Matcher::StepKey))
            .chain(patterns(label, Matcher::Label))
            .chain(plugin.map(Matcher::Plugin))
            .chain(env.iter().map(|(key, set)| Matcher::Env(key, set)))
            .chain(env_present.iter().map(|key| Matcher::EnvPresent(key)))
    }
}

impl AgentPattern {
    /// Whether one of `rules` has this pattern's key and a value its glob matches.
    pub fn satisfied_by(&self, rules: &AgentQueryRules) -> bool {
        rules
            .iter()
            .any(|rule| rule.key == self.key && crate::rules::glob_match(&self.value, &rule.value))
    }
}

impl Matcher<'_> {
    /// Whether `job` satisfies this matcher. Allocation-free: it runs for every job and rule.
    pub(crate) fn matches(self, job: &ScheduledJob) -> bool {
        match self {
            Matcher::Queue(set) => set.matches(queue_of(job)),
            Matcher::Agent(pattern) => pattern.satisfied_by(&job.rules),
            Matcher::Pipeline(set) => set.matches(&job.pipeline),
            Matcher::Branch(set) => set.matches(&job.build.branch),
            Matcher::StepKey(set) => job.step_key.as_deref().is_some_and(|v| set.matches(v)),
            Matcher::Label(set) => job.label.as_deref().is_some_and(|v| set.matches(v)),
            Matcher::Plugin(wanted) => !matches!(job.plugin, PluginConfig::Absent) == wanted,
            Matcher::Env(key, set) => job.env.get(key).is_some_and(|v| set.matches(v)),
            Matcher::EnvPresent(key) => job.env.get(key).is_some(),
        }
    }

    /// A sentence saying why `job` does not satisfy this matcher.
    pub(crate) fn miss(self, job: &ScheduledJob) -> String {
        fn shown(value: Option<&str>) -> String {
            value.map_or_else(|| "none".to_owned(), |v| format!("{v:?}"))
        }
        match self {
            Matcher::Queue(set) => format!("queue {:?} does not match {set}", queue_of(job)),
            Matcher::Agent(pattern) => format!(
                "agent rule {pattern} is not satisfied by the job's rules [{}]",
                job.rules
            ),
            Matcher::Pipeline(set) => format!("pipeline {:?} does not match {set}", job.pipeline),
            Matcher::Branch(set) => {
                format!("branch {:?} does not match {set}", job.build.branch)
            }
            Matcher::StepKey(set) => format!(
                "step key {} does not match {set}",
                shown(job.step_key.as_deref())
            ),
            Matcher::Label(set) => {
                format!("label {} does not match {set}", shown(job.label.as_deref()))
            }
            Matcher::Plugin(true) => "the job carries no kubernetes plugin configuration".into(),
            Matcher::Plugin(false) => "the job carries a kubernetes plugin configuration".into(),
            Matcher::Env(key, set) => format!(
                "env {key} is {} which does not match {set}",
                shown(job.env.get(key))
            ),
            Matcher::EnvPresent(key) => format!("env {key} not set"),
        }
    }
}
