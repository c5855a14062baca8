//! What can be wrong with a valid-looking configuration: one [`ConfigProblem`] type for every
//! crate's sections, and one [`Validate`] signature, so a loader collects and locates every
//! section's problems the same way.

/// One semantic problem in a configuration section: the key it is about and what is wrong,
/// with what to do. Every crate's sections report these (`[policy]` here, `[kubernetes]` in
/// `jobify-k8s`, `[buildkite]` in `jobify-buildkite`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct ConfigProblem {
    /// Dotted key path from the file's root, e.g. `policy.rules[2]`,
    /// `queues[0].max_in_flight` or `kubernetes.job_name_prefix`.
    pub key: String,
    /// What is wrong and what to do, without the key.
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

    /// `key` holds an empty value where one is needed.
    pub fn empty(key: impl Into<String>) -> Self {
        Self::new(key, "must not be empty")
    }

    /// `key` is a limit of 0, which would never let a job run.
    pub fn zero_limit(key: impl Into<String>) -> Self {
        Self::new(
            key,
            "is 0, so no job could ever run; remove it for no limit or set at least 1",
        )
    }

    /// `key` holds `value`, which does not have the `expected` form.
    pub fn invalid(key: impl Into<String>, value: &str, expected: &str) -> Self {
        Self::new(key, format!("{value:?} is invalid: expected {expected}"))
    }

    /// The key the problem is about.
    pub fn key(&self) -> &str {
        &self.key
    }
}

/// A configuration section that checks what deserialising cannot (ranges, names that must be
/// unique, values that must agree).
pub trait Validate {
    /// Every problem found, in key order; empty when the section can be used.
    fn validate(&self) -> Vec<ConfigProblem>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_problem_names_its_key_first() {
        let problems = [
            ConfigProblem::empty("guard.allowed_registries[0]"),
            ConfigProblem::zero_limit("limits.max_in_flight"),
            ConfigProblem::invalid("queues[1].rules[0]", "os", "an agent tag `key=value`"),
            ConfigProblem::new("kubernetes.namespace", "is empty"),
        ];
        for problem in problems {
            assert!(
                problem
                    .to_string()
                    .starts_with(&format!("{}: ", problem.key())),
                "{problem}"
            );
        }
        assert_eq!(
            ConfigProblem::invalid("queues[1].rules[0]", "os", "an agent tag `key=value`")
                .to_string(),
            "queues[1].rules[0]: \"os\" is invalid: expected an agent tag `key=value`"
        );
    }
}
