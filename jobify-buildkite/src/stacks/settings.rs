//! What the Stacks source needs to know: the stack, the queues, the reservation terms.

use std::collections::BTreeSet;
use std::time::Duration;

/// How [`StacksMonitor`](super::StacksMonitor) lists and reserves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StacksSettings {
    /// The stack's key, unique in the organization (letters, digits, `_`, `-`; at most 80).
    pub stack_key: String,
    /// The queues listed, one after the other in a sweep; the stack is registered for the
    /// first. At least one.
    pub queues: Vec<String>,
    /// Pipeline slugs to keep; empty keeps all.
    pub pipelines: BTreeSet<String>,
    /// Jobs per listing page (at most 1000).
    pub page_size: u32,
    /// How long a reservation lasts; extended while the job waits for its agent.
    pub reservation_expiry: Duration,
    /// Whether each launched job gets a job acquisition token, so that no job pod holds the
    /// cluster's agent token.
    pub job_tokens: bool,
    /// How long a job acquisition token is valid (Buildkite's default when `None`; never
    /// past the job's reservation).
    pub token_lifetime: Option<Duration>,
}
