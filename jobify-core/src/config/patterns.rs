//! Glob patterns as they appear in matchers: one string or a list of strings.

use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::rules::glob_match;

/// One or more glob patterns (`*` matches any run of characters); a value matches when any
/// pattern matches it. Written `"app"` or `["app", "web-*"]` in TOML. Empty means "not set".
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Patterns(Vec<String>);

impl Patterns {
    /// Patterns from strings.
    pub fn new<I, S>(patterns: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Patterns(patterns.into_iter().map(Into::into).collect())
    }

    /// Whether no pattern is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether any pattern matches `text`.
    pub fn matches(&self, text: &str) -> bool {
        self.0.iter().any(|p| glob_match(p, text))
    }

    /// The patterns.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
}

impl fmt::Display for Patterns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.as_slice() {
            [one] => write!(f, "{one:?}"),
            many => {
                f.write_str("[")?;
                for (i, p) in many.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{p:?}")?;
                }
                f.write_str("]")
            }
        }
    }
}

impl<'de> Deserialize<'de> for Patterns {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PatternsVisitor;

        impl<'de> Visitor<'de> for PatternsVisitor {
            type Value = Patterns;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a glob pattern or a list of glob patterns")
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<Patterns, E> {
                Ok(Patterns(vec![value.to_owned()]))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Patterns, A::Error> {
                let mut patterns = Vec::new();
                while let Some(p) = seq.next_element::<String>()? {
                    patterns.push(p);
                }
                Ok(Patterns(patterns))
            }
        }

        deserializer.deserialize_any(PatternsVisitor)
    }
}

/// An agent query rule pattern, `key=glob`: matches a job whose rule for `key` has a value the
/// glob matches. Written `"os=linux"` or `"arch=*64"`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(into = "String")]
pub struct AgentPattern {
    /// The rule's key, e.g. `os`.
    pub key: String,
    /// A glob for the rule's value.
    pub value: String,
}

impl AgentPattern {
    /// Parses `key=glob`; `key` alone means `key=*`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (key, value) = text.split_once('=').unwrap_or((text, "*"));
        let key = key.trim();
        if key.is_empty() {
            return Err(format!(
                "agent rule pattern {text:?} has no key; write it as `key=value`, e.g. `os=linux`"
            ));
        }
        Ok(AgentPattern {
            key: key.to_owned(),
            value: value.trim().to_owned(),
        })
    }
}

impl fmt::Display for AgentPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.key, self.value)
    }
}

impl From<AgentPattern> for String {
    fn from(pattern: AgentPattern) -> String {
        pattern.to_string()
    }
}

impl<'de> Deserialize<'de> for AgentPattern {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        AgentPattern::parse(&text).map_err(de::Error::custom)
    }
}
