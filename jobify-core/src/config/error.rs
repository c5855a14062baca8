//! What can be wrong with a valid-looking configuration.

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
