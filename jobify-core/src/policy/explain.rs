//! `explain`: how a decision was reached, for `jobify plan` and for logs. Serialises to JSON
//! and prints as a short report.

use std::fmt;

use serde::Serialize;

use crate::decision::{Decision, Template};
use crate::guard::GuardReport;
use crate::job::{JobId, ScheduledJob};

/// How a job's decision was reached.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Explanation {
    /// The job.
    pub job: JobId,
    /// Its pipeline.
    pub pipeline: String,
    /// Whether a configured queue serves the job; `None` when no queues are configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue: Option<QueueTrace>,
    /// The rules tried, in order, up to and including the one that matched.
    pub rules: Vec<RuleTrace>,
    /// Whether no rule matched and the policy's default applied.
    pub default_applied: bool,
    /// What the policy decided, before the guard.
    pub policy: Decision,
    /// The guard's findings, when it looked at the job.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guard: Option<GuardReport>,
    /// The final decision (before limits, which depend on what is in flight).
    pub decision: Decision,
}

/// Whether the job's queue is served.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct QueueTrace {
    /// The queue the job asks for (`default` when it names none).
    pub queue: String,
    /// The `[[queues]]` entry that serves it, if any.
    pub served_by: Option<String>,
}

/// One rule tried.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RuleTrace {
    /// Position in `policy.rules`, from 0.
    pub index: usize,
    /// The rule's name, if it has one.
    pub name: Option<String>,
    /// The rule's action.
    pub action: &'static str,
    /// Whether it matched.
    pub matched: bool,
    /// Why it did not match.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mismatch: Option<String>,
}

impl Explanation {
    /// An explanation that knows only the decision (policies other than the rules).
    pub fn of_decision(job: &ScheduledJob, decision: Decision) -> Self {
        Explanation {
            job: job.id,
            pipeline: job.pipeline.clone(),
            queue: None,
            rules: Vec::new(),
            default_applied: false,
            policy: decision.clone(),
            guard: None,
            decision,
        }
    }
}

fn verdict(decision: &Decision) -> String {
    match decision {
        Decision::Run {
            template: Template::PodSpec,
            ..
        } => "run in the job's pod spec".to_owned(),
        Decision::Run {
            template: Template::Default { name: Some(name) },
            ..
        } => format!("run in template `{name}`"),
        Decision::Run {
            template: Template::Default { name: None },
            ..
        } => "run in the default pod".to_owned(),
        other => other.kind().to_owned(),
    }
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "job {} (pipeline {})", self.job, self.pipeline)?;
        if let Some(queue) = &self.queue {
            match &queue.served_by {
                Some(by) => writeln!(f, "  queue {:?}: served by [[queues]] {by:?}", queue.queue)?,
                None => writeln!(
                    f,
                    "  queue {:?}: not served by any [[queues]] entry",
                    queue.queue
                )?,
            }
        }
        for rule in &self.rules {
            let name = rule
                .name
                .as_ref()
                .map_or_else(String::new, |n| format!(" `{n}`"));
            match &rule.mismatch {
                None => writeln!(
                    f,
                    "  rule {}{name} ({}): matched",
                    rule.index + 1,
                    rule.action
                )?,
                Some(why) => writeln!(
                    f,
                    "  rule {}{name} ({}): no match: {why}",
                    rule.index + 1,
                    rule.action
                )?,
            }
        }
        if self.default_applied {
            writeln!(f, "  default: applied")?;
        }
        if let Some(guard) = &self.guard {
            writeln!(f, "  guard: {guard}")?;
        }
        write!(
            f,
            "  decision: {}: {}",
            verdict(&self.decision),
            self.decision.reason()
        )
    }
}
