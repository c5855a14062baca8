//! The whole decision for one job: served queue, policy, guard.

use crate::config::{GuardConfig, Patterns, PolicyConfig, QueueConfig};
use crate::decision::{Decision, Reason, ReasonCode};
use crate::guard::Guard;
use crate::job::ScheduledJob;
use crate::rules::{AgentQueryRules, RESOURCE_CLASS_TAG};

use super::Policy;
use super::explain::{Explanation, QueueTrace};
use super::rules::{DEFAULT_QUEUE, RulePolicy, queue_of};

/// Puts a policy between a queue check and the admission guard. It is itself a [`Policy`],
/// the one the scheduler runs.
#[derive(Clone, Debug)]
pub struct Decider<P = RulePolicy> {
    queues: Vec<ServedQueue>,
    policy: P,
    guard: Guard,
}

/// A `[[queues]]` entry as the queue check needs it.
#[derive(Clone, Debug)]
struct ServedQueue {
    name: String,
    tags: AgentQueryRules,
    resource_classes: Patterns,
}

impl ServedQueue {
    /// Whether this queue serves `job`: its tags satisfy every rule of the job but
    /// `resource_class` (a job naming no queue asks for `queue=default`), and the job's
    /// `resource_class`, if any, is one the queue lists (any when it lists none).
    fn serves(&self, job: &ScheduledJob) -> bool {
        let tags: Vec<(&str, &str)> = self
            .tags
            .iter()
            .map(|t| (t.key.as_str(), t.value.as_str()))
            .collect();
        let class = job.rules.get(RESOURCE_CLASS_TAG);
        let rules = job.rules.without(RESOURCE_CLASS_TAG);
        rules.matched_by(tags.iter().copied())
            && (job.queue().is_some() || default_queue_rule().matched_by(tags.iter().copied()))
            && (self.resource_classes.is_empty()
                || class.is_some_and(|class| self.resource_classes.matches(class)))
    }
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
            queues: queues
                .iter()
                .map(|q| ServedQueue {
                    name: q.name.clone(),
                    tags: q.tags(),
                    resource_classes: q.resource_classes.clone(),
                })
                .collect(),
            policy,
            guard,
        }
    }

    /// The policy inside.
    pub fn policy(&self) -> &P {
        &self.policy
    }

    /// The first `[[queues]]` entry serving `job` ([`ServedQueue::serves`]). `Some("")` when
    /// no queues are configured, since then every job is served.
    fn serving(&self, job: &ScheduledJob) -> Option<&str> {
        if self.queues.is_empty() {
            return Some("");
        }
        self.queues
            .iter()
            .find(|queue| queue.serves(job))
            .map(|queue| queue.name.as_str())
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
