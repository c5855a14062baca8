//! Deciding what to do with a job: the [`Policy`] trait, the declarative [`RulePolicy`] read
//! from `[policy]`, and the [`Decider`] that puts queue membership, a policy and the admission
//! [`Guard`](crate::guard::Guard) together.
//!
//! ```text
//!  job ──▶ served queue? ──▶ Policy::decide ──▶ Guard (Run only) ──▶ Decision
//!              │ no                                  │ violation
//!              ▼                                     ▼
//!            Skip                                  Reject
//! ```
//!
//! Everything here is pure and synchronous; limits are applied afterwards by the scheduler,
//! which may turn `Run` into `Defer`.

mod decider;
mod explain;
mod matcher;
mod rules;

pub use decider::Decider;
pub use explain::{Explanation, QueueTrace, RuleTrace};
pub use rules::RulePolicy;
pub(crate) use rules::{DEFAULT_QUEUE, queue_of};

use crate::decision::{Decision, Reason, ReasonCode};
use crate::job::ScheduledJob;

/// Decides what to do with a job. Pure and synchronous: the same job always gets the same
/// decision, and deciding never calls out. Implement it to write a policy in Rust, or wrap a
/// function with [`from_fn`].
pub trait Policy: Send + Sync {
    /// The decision for `job`.
    fn decide(&self, job: &ScheduledJob) -> Decision;

    /// The decision for `job` and how it was reached. The default says only what was decided;
    /// [`RulePolicy`] lists every rule it tried.
    fn explain(&self, job: &ScheduledJob) -> Explanation {
        Explanation::of_decision(job, self.decide(job))
    }
}

/// A policy made of a function; see [`from_fn`].
#[derive(Clone, Copy, Debug)]
pub struct FnPolicy<F>(F);

/// A policy that calls `decide` for every job:
/// `from_fn(|job| if job.pipeline == "app" { run } else { skip })`.
pub fn from_fn<F>(decide: F) -> FnPolicy<F>
where
    F: Fn(&ScheduledJob) -> Decision + Send + Sync,
{
    FnPolicy(decide)
}

impl<F> Policy for FnPolicy<F>
where
    F: Fn(&ScheduledJob) -> Decision + Send + Sync,
{
    fn decide(&self, job: &ScheduledJob) -> Decision {
        (self.0)(job)
    }
}

impl<P: Policy + ?Sized> Policy for Box<P> {
    fn decide(&self, job: &ScheduledJob) -> Decision {
        (**self).decide(job)
    }

    fn explain(&self, job: &ScheduledJob) -> Explanation {
        (**self).explain(job)
    }
}

impl<P: Policy + ?Sized> Policy for std::sync::Arc<P> {
    fn decide(&self, job: &ScheduledJob) -> Decision {
        (**self).decide(job)
    }

    fn explain(&self, job: &ScheduledJob) -> Explanation {
        (**self).explain(job)
    }
}

/// A reason with code [`ReasonCode::CUSTOM_POLICY`], for policies written in Rust.
pub fn custom_reason(message: impl Into<std::borrow::Cow<'static, str>>) -> Reason {
    Reason::new(ReasonCode::CUSTOM_POLICY, message)
}

#[cfg(test)]
mod tests;
