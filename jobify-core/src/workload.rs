//! Workloads (Kubernetes Jobs, or whatever a [`crate::Jobifier`] runs) as the core sees them.

use serde::Serialize;

use crate::decision::Reason;
use crate::job::JobId;

/// A workload that exists for a Buildkite job, as found by listing (at start-up and after a
/// relist). Enough to rebuild the book-keeping: which job, and which limits it counts against.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Workload {
    /// The Buildkite job it runs.
    pub job: JobId,
    /// The queue it counts against, if known.
    pub queue: Option<String>,
    /// The pipeline slug it counts against, if known.
    pub pipeline: Option<String>,
    /// Whether it has ended (succeeded, failed, or was removed).
    pub finished: bool,
}

/// Something that happened to a workload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum WorkloadEvent {
    /// The complete set of workloads that exist now. Sent first, and again after the backend
    /// relisted: anything in flight that is not in the set is gone.
    Restored(Vec<Workload>),
    /// A workload was created or first observed (by this or another replica).
    Observed(Workload),
    /// Its pod started running.
    Started(JobId),
    /// It ended successfully.
    Succeeded(JobId),
    /// It ended in failure (the agent reports the job's own result to Buildkite).
    Failed(JobId),
    /// Its pod can never start; the backend has removed it. Buildkite should be told why.
    FailedToStart {
        /// The Buildkite job.
        job: JobId,
        /// The cause, e.g. code `image_pull_failed` with the image and the Kubernetes events.
        reason: Reason,
    },
    /// Its pod was disrupted (evicted, preempted, its node lost) after it started, while the
    /// workload had not ended: the agent was lost, and Buildkite reports the job as such. The
    /// backend stops the workload so that no second pod runs for the job.
    AgentLost {
        /// The Buildkite job.
        job: JobId,
        /// What happened, e.g. code `pod_disrupted` with the pod's reason.
        reason: Reason,
    },
    /// Its agent ended while other containers kept the workload running (a service declared
    /// as a regular container, a process that ignores the end of the job); the backend
    /// stopped them, so no pod outlives its job. The agent has reported the job's result.
    Stopped {
        /// The Buildkite job.
        job: JobId,
        /// Why, e.g. code `containers_outlived_agent`, naming the containers.
        reason: Reason,
    },
    /// Its pod has not started, and why it waits changed: `detail` says what it waits for
    /// (a node, its image, its init containers), for the job's timeline. Informational: it
    /// changes no state.
    Waiting {
        /// The Buildkite job.
        job: JobId,
        /// What the pod waits for, in a sentence.
        detail: String,
    },
    /// It no longer exists (deleted, or garbage collected after its TTL).
    Gone(JobId),
}

impl WorkloadEvent {
    /// The job this event is about, when it is about one job.
    pub fn job(&self) -> Option<JobId> {
        match self {
            WorkloadEvent::Restored(_) => None,
            WorkloadEvent::Observed(w) => Some(w.job),
            WorkloadEvent::Started(job)
            | WorkloadEvent::Succeeded(job)
            | WorkloadEvent::Failed(job)
            | WorkloadEvent::Gone(job) => Some(*job),
            WorkloadEvent::FailedToStart { job, .. }
            | WorkloadEvent::AgentLost { job, .. }
            | WorkloadEvent::Stopped { job, .. }
            | WorkloadEvent::Waiting { job, .. } => Some(*job),
        }
    }
}
