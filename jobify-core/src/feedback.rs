//! The port through which jobify tells Buildkite (and so the pipeline's authors) why a job
//! was refused or could not start.

use async_trait::async_trait;

use crate::decision::Reason;
use crate::job::JobId;

/// A job to report on. `source_key` ([`ScheduledJob::source_key`](crate::ScheduledJob::source_key))
/// is known for jobs seen in this process; for jobs known only from their workload (after a
/// restart) the implementation looks it up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobRef {
    /// The job's uuid.
    pub id: JobId,
    /// The key the job's source addresses it by, when known.
    pub source_key: Option<String>,
}

/// Why feedback could not be delivered.
#[derive(Debug, thiserror::Error)]
#[error("could not tell Buildkite about job {job}: {source}")]
pub struct FeedbackError {
    /// The job.
    pub job: JobId,
    /// What went wrong.
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

/// Tells Buildkite about jobs jobify will not run.
#[cfg_attr(any(test, feature = "testing"), mockall::automock)]
#[async_trait]
pub trait Feedback: Send + Sync {
    /// Ends the job in Buildkite (cancels it) and attaches `reason.message` where the
    /// pipeline's authors will see it.
    async fn fail_job(&self, job: &JobRef, reason: &Reason) -> Result<(), FeedbackError>;
}

#[async_trait]
impl<T: Feedback + ?Sized> Feedback for std::sync::Arc<T> {
    async fn fail_job(&self, job: &JobRef, reason: &Reason) -> Result<(), FeedbackError> {
        (**self).fail_job(job, reason).await
    }
}
