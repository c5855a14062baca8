//! The `jobify.toml` sections `jobify-core` owns: `[policy]`, `[guard]`, `[limits]` and
//! `[[queues]]`. The binary owns the file and deserialises these sections straight into the
//! types here; every type rejects unknown keys and has sensible defaults.
//!
//! Deserialising checks the shape of each value; each section's [`Validate::validate`] checks
//! what only the whole section can tell (a catch-all rule that hides later rules, a
//! duplicate queue). Template names are checked by the binary, which knows the templates:
//! see [`PolicyConfig::template_references`].
//!
//! ```
//! use jobify_core::config::{PolicyConfig, Validate};
//!
//! let policy: PolicyConfig = toml::from_str(r#"
//!     default = "skip"
//!
//!     [[rules]]
//!     name = "gpu"
//!     queue = "gpu"
//!     action = "default"
//!     template = "gpu"
//! "#).expect("valid policy");
//! assert!(policy.validate().is_empty());
//! ```

mod error;
mod guard;
mod limits;
mod patterns;
mod policy;

pub use error::{ConfigProblem, Validate};
pub use guard::{DEFAULT_VOLUME_TYPES, GuardConfig, GuardException, GuardRule, VOLUME_TYPES};
pub use limits::{LimitsConfig, QueueConfig};
pub use patterns::{AgentPattern, Patterns};
pub use policy::{ActionConfig, MatchConfig, PodSpecFallback, PolicyConfig, RuleConfig};

#[cfg(test)]
mod tests;
