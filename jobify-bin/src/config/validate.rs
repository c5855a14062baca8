//! Semantic problems found after parsing, collected so that all are reported at once.

use jobify_core::config::ConfigProblem;

use super::source::KeyPath;

/// A problem with a value that parsed: where it is and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The key it is about.
    pub path: KeyPath,
    /// What is wrong and what to do, naming the key.
    pub message: String,
}

/// The problems found so far.
#[derive(Clone, Debug, Default)]
pub struct Problems(Vec<Problem>);

impl Problems {
    /// Records a problem at `path`; the message is prefixed with the key.
    pub fn push(&mut self, path: KeyPath, message: impl Into<String>) {
        let message = format!("{path}: {}", message.into());
        self.0.push(Problem { path, message });
    }

    /// Records a problem whose message already names its key (the library crates' errors).
    pub fn push_named(&mut self, path: KeyPath, message: impl Into<String>) {
        self.0.push(Problem {
            path,
            message: message.into(),
        });
    }

    /// Records the problems a section's [`Validate`](jobify_core::config::Validate) found,
    /// each located by its dotted key path.
    pub fn extend(&mut self, problems: impl IntoIterator<Item = ConfigProblem>) {
        for problem in problems {
            let path = KeyPath::parse(problem.key());
            self.push_named(path, problem.to_string());
        }
    }

    /// Whether nothing was found.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The problems in the order found.
    pub fn into_vec(self) -> Vec<Problem> {
        self.0
    }
}
