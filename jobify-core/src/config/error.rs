//! What can be wrong with a valid-looking configuration: [`ConfigError`] for the sections of
//! this crate, [`ConfigProblem`] for every other crate's (`[kubernetes]`, `[buildkite]`), and
//! [`ConfigError::key`] / [`ConfigProblem::key`] so a loader locates each the same way.

/// A semantic problem in a configuration section. `path` names the key, e.g.
/// `policy.rules[2]` or `queues[0].max_in_flight`, so a user can find it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A rule without matchers matches every job, so the rules after it can never match.
    #[error(
        "`{path}` has no matchers, so it matches every job and the {hidden} rule(s) after it can \
         never match; move it last or give it a matcher"
    )]
    CatchAllNotLast {
        /// Where the rule is.
        path: String,
        /// How many rules it hides.
        hidden: usize,
    },
    /// Two rules have the same name, so reasons and `explain` output would be ambiguous.
    #[error(
        "`{path}` reuses the rule name `{name}` (first used by `{first}`); names must be unique"
    )]
    DuplicateRuleName {
        /// Where the second rule is.
        path: String,
        /// The name.
        name: String,
        /// Where the first rule is.
        first: String,
    },
    /// Two queues have the same name.
    #[error("`{path}` configures queue `{name}` a second time; merge the two entries")]
    DuplicateQueue {
        /// Where the second entry is.
        path: String,
        /// The queue.
        name: String,
    },
    /// A value must not be empty.
    #[error("`{path}` must not be empty")]
    Empty {
        /// Where.
        path: String,
    },
    /// A limit of zero would never let a job run.
    #[error("`{path}` is 0, so no job could ever run; remove it for no limit or set at least 1")]
    ZeroLimit {
        /// Where.
        path: String,
    },
    /// A value does not have the expected form.
    #[error("`{path}` = {value:?} is invalid: {expected}")]
    Invalid {
        /// Where.
        path: String,
        /// The value given.
        value: String,
        /// What was expected.
        expected: &'static str,
    },
}

impl ConfigError {
    /// The key the problem is about, e.g. `policy.rules[2]`.
    pub fn key(&self) -> &str {
        match self {
            ConfigError::CatchAllNotLast { path, .. }
            | ConfigError::DuplicateRuleName { path, .. }
            | ConfigError::DuplicateQueue { path, .. }
            | ConfigError::Empty { path }
            | ConfigError::ZeroLimit { path }
            | ConfigError::Invalid { path, .. } => path,
        }
    }
}

/// One semantic problem in a configuration section of an adapter crate: the key, and what is
/// wrong with what to do.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct ConfigProblem {
    /// Dotted key path, e.g. `kubernetes.job_name_prefix` or `buildkite.pipelines[1]`.
    pub key: String,
    /// What is wrong and what to do.
    pub message: String,
}

impl ConfigProblem {
    /// A problem with `key`.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigProblem {
            key: key.into(),
            message: message.into(),
        }
    }

    /// The key the problem is about.
    pub fn key(&self) -> &str {
        &self.key
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_names_its_key_first_in_its_message() {
        let errors = [
            ConfigError::CatchAllNotLast {
                path: "policy.rules[0]".into(),
                hidden: 2,
            },
            ConfigError::Empty {
                path: "guard.allowed_registries".into(),
            },
            ConfigError::Invalid {
                path: "queues[1].name".into(),
                value: "a b".into(),
                expected: "a queue name",
            },
        ];
        for error in errors {
            assert!(
                error.to_string().starts_with(&format!("`{}`", error.key())),
                "{error}"
            );
        }
        let problem = ConfigProblem::new("kubernetes.namespace", "is empty");
        assert_eq!(problem.key(), "kubernetes.namespace");
        assert_eq!(problem.to_string(), "kubernetes.namespace: is empty");
    }
}
