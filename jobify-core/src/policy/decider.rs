//! The whole decision for one job: served queue, policy, guard.

use crate::config::{GuardConfig, PolicyConfig, QueueConfig};
use crate::decision::{Decision, Reason, ReasonCode};
use crate::guard::Guard;
use crate::job::ScheduledJob;
use crate::rules::AgentQueryRules;

use super::Policy;
use super::explain::{Explanation, QueueTrace};
use super::rules::{DEFAULT_QUEUE, RulePolicy, queue_of};

/// Puts a policy between a queue check and the admission guard. It is itself a [`Policy`],
/// the one the scheduler runs.
#[derive(Clone, Debug)]
pub struct Decider<P = RulePolicy> {
    queues: Vec<(String, AgentQueryRules)>,
    policy: P,
    guard: Guard,
}

impl Decider<RulePolicy> {
    /// The declarative policy of `jobify.toml`: `[policy]`, `[guard]` and `[[queues]]`.
    pub fn from_config(policy: &PolicyConfig, guard: &GuardConfig, queues: &[QueueConfig]) -> Self {
        Decider::new(RulePolicy::new(policy), Guard::new(guard.clone()), queues)
    }
}

impl<P: Policy> Decider<P> {
    /// `policy` guarded by `guard`, for jobs of `queues` (every job when `queues` is empty).
    pub fn new(policy: P, guard: Guard, queues: &[QueueConfig]) -> Self {
        Decider {
            queues: queues.iter().map(|q| (q.name.clone(), q.tags())).collect(),
            policy,
            guard,
        }
    }

    /// The policy inside.
    pub fn policy(&self) -> &P {
        &self.policy
    }

    /// The `[[queues]]` entry serving `job`: its tags satisfy all of the job's agent query
    /// rules (a job naming no queue asks for `queue=default`). `Some("")` when no queues
    /// are configured, since then every job is served.
    fn serving(&self, job: &ScheduledJob) -> Option<&str> {
        if self.queues.is_empty() {
            return Some("");
        }
        self.queues
            .iter()
            .find(|(_, tags)| {
                let tags: Vec<(&str, &str)> = tags
                    .iter()
                    .map(|t| (t.key.as_str(), t.value.as_str()))
                    .collect();
                job.rules.matched_by(tags.iter().copied())
                    && (job.queue().is_some()
                        || default_queue_rule().matched_by(tags.iter().copied()))
            })
            .map(|(name, _)| name.as_str())
    }

    fn not_served(job: &ScheduledJob) -> Decision {
        Decision::Skip {
            reason: Reason::new(
                ReasonCode::QUEUE_NOT_SERVED,
                format!(
                    "no configured queue serves agent query rules [{}]",
                    if job.rules.is_empty() {
                        format!("queue={DEFAULT_QUEUE}")
                    } else {
                        job.rules.to_string()
                    }
                ),
            ),
        }
    }
}

impl<P: Policy> Policy for Decider<P> {
    fn decide(&self, job: &ScheduledJob) -> Decision {
        if self.serving(job).is_none() {
            return Self::not_served(job);
        }
        self.guard.apply(job, self.policy.decide(job)).0
    }

    fn explain(&self, job: &ScheduledJob) -> Explanation {
        let served = self.serving(job).map(str::to_owned);
        let queue = (!self.queues.is_empty()).then(|| QueueTrace {
            queue: queue_of(job).to_owned(),
            served_by: served.clone(),
        });
        if served.is_none() {
            let mut explanation = Explanation::of_decision(job, Self::not_served(job));
            explanation.queue = queue;
            return explanation;
        }
        let mut explanation = self.policy.explain(job);
        let (decision, guard) = self.guard.apply(job, explanation.policy.clone());
        explanation.queue = queue;
        explanation.guard = guard;
        explanation.decision = decision;
        explanation
    }
}

/// The rule Buildkite gives a job that names no queue: `queue=default`.
fn default_queue_rule() -> crate::rules::AgentQueryRules {
    crate::rules::AgentQueryRules::parse(&[format!("queue={DEFAULT_QUEUE}")])
}
