//! Agent query rules (`queue=kubernetes`, `os=linux`, `arch=*`) and matching them to agent tags.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One `key=value` agent query rule. The value may contain `*`, which matches any run of
/// characters, as Buildkite's agent matching does.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AgentQueryRule {
    /// Tag name, e.g. `queue`.
    pub key: String,
    /// Tag value or glob, e.g. `kubernetes` or `linux-*`.
    pub value: String,
}

impl AgentQueryRule {
    /// Parses `key=value`. A rule without `=` means "the tag is set to anything" (`key=*`).
    pub fn parse(rule: &str) -> Self {
        match rule.split_once('=') {
            Some((key, value)) => AgentQueryRule {
                key: key.trim().to_owned(),
                value: value.trim().to_owned(),
            },
            None => AgentQueryRule {
                key: rule.trim().to_owned(),
                value: "*".to_owned(),
            },
        }
    }

    /// Whether an agent tag value satisfies this rule's value (glob `*` supported).
    pub fn value_matches(&self, tag_value: &str) -> bool {
        glob_match(&self.value, tag_value)
    }
}

impl fmt::Display for AgentQueryRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.key, self.value)
    }
}

/// The agent tag a step picks its resource class with (`agents: { resource_class: large }`),
/// as in agent-stack-k8s. It names a pod shape, not an agent, so it takes no part in
/// matching a job to a queue's tags.
pub const RESOURCE_CLASS_TAG: &str = "resource_class";

/// The agent query rules of a job.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AgentQueryRules(Vec<AgentQueryRule>);

impl AgentQueryRules {
    /// Parses each `key=value` string.
    pub fn parse<I, S>(rules: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        AgentQueryRules(
            rules
                .into_iter()
                .map(|r| AgentQueryRule::parse(r.as_ref()))
                .filter(|r| !r.key.is_empty())
                .collect(),
        )
    }

    /// The rules in the order Buildkite gave them.
    pub fn iter(&self) -> impl Iterator<Item = &AgentQueryRule> {
        self.0.iter()
    }

    /// The value of the rule for `key`, if any.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|r| r.key == key)
            .map(|r| r.value.as_str())
    }

    /// The `queue` rule's value. Buildkite treats a job without one as `queue=default`, but
    /// that is the caller's choice to make: this returns what the job said.
    pub fn queue(&self) -> Option<&str> {
        self.get("queue")
    }

    /// Whether an agent with these `key=value` tags may run the job: every rule must be
    /// satisfied by a tag of the same key.
    pub fn matched_by<'a, I>(&self, tags: I) -> bool
    where
        I: IntoIterator<Item = (&'a str, &'a str)> + Clone,
    {
        self.0.iter().all(|rule| {
            tags.clone()
                .into_iter()
                .any(|(k, v)| k == rule.key && rule.value_matches(v))
        })
    }

    /// These rules without the one(s) for `key`.
    pub fn without(&self, key: &str) -> AgentQueryRules {
        AgentQueryRules(self.0.iter().filter(|r| r.key != key).cloned().collect())
    }

    /// Whether there are no rules.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The rules as `key=value` strings, for agent tags and labels.
    pub fn to_strings(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).collect()
    }
}

impl fmt::Display for AgentQueryRules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, rule) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            rule.fmt(f)?;
        }
        Ok(())
    }
}

/// Matches `text` against `pattern`, where `*` matches any run of characters (including none)
/// and every other character matches itself. Linear in practice: the classic two-pointer
/// algorithm with one backtrack point.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p = pattern.as_bytes();
    let t = text.as_bytes();
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == b'*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches_literals_and_stars() {
        for (pattern, text, expected) in [
            ("kubernetes", "kubernetes", true),
            ("kubernetes", "kubernetes2", false),
            ("*", "", true),
            ("*", "anything", true),
            ("linux-*", "linux-arm64", true),
            ("linux-*", "darwin-arm64", false),
            ("*-arm64", "linux-arm64", true),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXbYY", false),
            ("release/*", "release/1.2", true),
            ("", "", true),
            ("", "x", false),
        ] {
            assert_eq!(glob_match(pattern, text), expected, "{pattern} vs {text}");
        }
    }

    #[test]
    fn rules_parse_and_name_the_queue() {
        let rules = AgentQueryRules::parse(["queue=kubernetes", "os=linux", "docker"]);
        assert_eq!(rules.queue(), Some("kubernetes"));
        assert_eq!(rules.get("docker"), Some("*"));
        assert_eq!(rules.to_string(), "queue=kubernetes,os=linux,docker=*");
    }

    #[test]
    fn every_rule_must_be_matched_by_a_tag() {
        let rules = AgentQueryRules::parse(["queue=k8s", "arch=*64"]);
        let tags = [("queue", "k8s"), ("arch", "arm64")];
        assert!(rules.matched_by(tags.iter().copied()));
        let wrong_queue = [("queue", "default"), ("arch", "arm64")];
        assert!(!rules.matched_by(wrong_queue.iter().copied()));
        let missing = [("queue", "k8s")];
        assert!(!rules.matched_by(missing.iter().copied()));
    }
}
