//! What the policy decides for a job, and why.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A stable machine code for a reason: a metrics label and a log field. Codes are
/// `snake_case` and never change meaning once released.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReasonCode(pub &'static str);

impl ReasonCode {
    /// The code as a string.
    pub fn as_str(&self) -> &'static str {
        self.0
    }
}

impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl Serialize for ReasonCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.0)
    }
}

/// Why something was decided: a stable code and a sentence a pipeline author understands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Reason {
    /// Stable machine code, e.g. `rule_matched`.
    pub code: ReasonCode,
    /// A sentence for people, e.g. "rule 2 (`gpu-jobs`) matched: queue=gpu".
    pub message: Cow<'static, str>,
}

impl Reason {
    /// A reason with a code and a message.
    pub fn new(code: ReasonCode, message: impl Into<Cow<'static, str>>) -> Self {
        Reason {
            code,
            message: message.into(),
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

/// Which pod a job runs in.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Template {
    /// A default agent pod from the controller's config; `name` picks a named template or
    /// resource class, `None` the default one.
    Default {
        /// Name of the template / resource class.
        name: Option<String>,
    },
    /// The pod spec the job asks for through the `kubernetes` plugin.
    PodSpec,
}

/// The policy's verdict on one job. The runtime carries it out; the policy never calls out.
#[must_use = "a decision does nothing until the scheduler carries it out"]
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    /// Launch a workload for the job.
    Run {
        /// The pod to run it in.
        template: Template,
        /// Why.
        reason: Reason,
    },
    /// Not ours: leave the job for other agents.
    Skip {
        /// Why.
        reason: Reason,
    },
    /// Ours but refused: cancel it in Buildkite and tell the pipeline why.
    Reject {
        /// Why; the message is shown to the pipeline's authors.
        reason: Reason,
    },
    /// Ours, but not now (a limit is reached): decide again on a later poll.
    Defer {
        /// Why.
        reason: Reason,
    },
}

impl Decision {
    /// The reason, whatever the verdict.
    pub fn reason(&self) -> &Reason {
        match self {
            Decision::Run { reason, .. }
            | Decision::Skip { reason }
            | Decision::Reject { reason }
            | Decision::Defer { reason } => reason,
        }
    }

    /// The verdict's name: `run`, `skip`, `reject` or `defer` (a metrics label).
    pub fn kind(&self) -> &'static str {
        match self {
            Decision::Run { .. } => "run",
            Decision::Skip { .. } => "skip",
            Decision::Reject { .. } => "reject",
            Decision::Defer { .. } => "defer",
        }
    }
}

impl ReasonCode {
    /// A policy rule matched the job.
    pub const RULE_MATCHED: ReasonCode = ReasonCode("rule_matched");
    /// No rule matched; the policy's default applied.
    pub const DEFAULT_RULE: ReasonCode = ReasonCode("default_rule");
    /// The job was decided by a policy written in Rust (not the declarative rules).
    pub const CUSTOM_POLICY: ReasonCode = ReasonCode("custom_policy");
    /// The job's agent query rules ask for no queue this controller serves.
    pub const QUEUE_NOT_SERVED: ReasonCode = ReasonCode("queue_not_served");
    /// `podspec` applied but the job carries no pod spec; the fallback decided.
    pub const NO_PLUGIN_CONFIG: ReasonCode = ReasonCode("no_plugin_config");
    /// The job's `kubernetes` plugin configuration could not be read.
    pub const INVALID_PLUGIN_CONFIG: ReasonCode = ReasonCode("invalid_plugin_config");
    /// The admission guard refused the job's pod spec.
    pub const GUARD_DENIED: ReasonCode = ReasonCode("guard_denied");
    /// The global in-flight limit is reached.
    pub const LIMIT_GLOBAL: ReasonCode = ReasonCode("limit_global");
    /// The job's queue is at its in-flight limit.
    pub const LIMIT_QUEUE: ReasonCode = ReasonCode("limit_queue");
    /// The job's pipeline is at its in-flight limit.
    pub const LIMIT_PIPELINE: ReasonCode = ReasonCode("limit_pipeline");
    /// The backend refused the workload as invalid, for good.
    pub const LAUNCH_INVALID: ReasonCode = ReasonCode("launch_invalid");
}
