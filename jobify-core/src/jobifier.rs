//! The port through which the scheduler runs jobs as workloads.

use async_trait::async_trait;
use futures::stream::BoxStream;
use secrecy::SecretString;

use crate::cause::Cause;
use crate::decision::Template;
use crate::job::{JobId, ScheduledJob};
use crate::workload::WorkloadEvent;

/// How a launch went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Launched {
    /// A new workload was created.
    Created,
    /// A workload for this job already existed (a restart, or another replica): success.
    AlreadyExists,
}

/// Why a launch failed, sorted by what the scheduler should do about it.
///
/// `message` says what happened in words an operator can act on; `source`, when there is
/// one, is the backend's own error (for `jobify-k8s`, the `kube::Error`), reachable through
/// [`std::error::Error::source`] or [`LaunchError::cause`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LaunchError {
    /// The workload is invalid and always will be (e.g. Kubernetes answered 422): reject
    /// the Buildkite job with this message.
    #[error("the workload for this job is invalid: {message}")]
    Invalid {
        /// What was wrong, as the backend said it.
        message: String,
        /// The backend's error.
        #[source]
        source: Option<Cause>,
    },
    /// The controller lacks a permission; retrying will not help until an operator acts.
    #[error("permission denied: {message}")]
    Forbidden {
        /// Which permission is missing.
        message: String,
        /// The backend's error.
        #[source]
        source: Option<Cause>,
    },
    /// A passing failure (server error, timeout, conflict): retry later.
    #[error("launch failed, will retry: {message}")]
    Transient {
        /// What happened.
        message: String,
        /// The backend's error (the last one, after retries).
        #[source]
        source: Option<Cause>,
    },
}

impl LaunchError {
    /// An invalid workload: the Buildkite job is rejected with `message`.
    pub fn invalid(message: impl Into<String>) -> Self {
        LaunchError::Invalid {
            message: message.into(),
            source: None,
        }
    }

    /// A missing permission.
    pub fn forbidden(message: impl Into<String>) -> Self {
        LaunchError::Forbidden {
            message: message.into(),
            source: None,
        }
    }

    /// A passing failure.
    pub fn transient(message: impl Into<String>) -> Self {
        LaunchError::Transient {
            message: message.into(),
            source: None,
        }
    }

    /// The same error, caused by `cause`.
    #[must_use]
    pub fn caused_by(mut self, cause: impl Into<Option<Cause>>) -> Self {
        let cause = cause.into();
        match &mut self {
            LaunchError::Invalid { source, .. }
            | LaunchError::Forbidden { source, .. }
            | LaunchError::Transient { source, .. } => *source = cause,
        }
        self
    }

    /// What happened, without the kind.
    pub fn message(&self) -> &str {
        match self {
            LaunchError::Invalid { message, .. }
            | LaunchError::Forbidden { message, .. }
            | LaunchError::Transient { message, .. } => message,
        }
    }

    /// The backend's error, if it gave one.
    pub fn cause(&self) -> Option<&Cause> {
        match self {
            LaunchError::Invalid { source, .. }
            | LaunchError::Forbidden { source, .. }
            | LaunchError::Transient { source, .. } => source.as_ref(),
        }
    }
}

/// Why cancelling a workload failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("could not remove the workload of job {job}: {message}")]
pub struct CancelError {
    /// The job.
    pub job: JobId,
    /// What happened.
    pub message: String,
    /// The backend's error, if it gave one.
    #[source]
    pub source: Option<Cause>,
}

impl CancelError {
    /// Cancelling `job` failed: `message`.
    pub fn new(job: JobId, message: impl Into<String>) -> Self {
        CancelError {
            job,
            message: message.into(),
            source: None,
        }
    }

    /// The same error, caused by `cause`.
    #[must_use]
    pub fn caused_by(mut self, cause: impl Into<Option<Cause>>) -> Self {
        self.source = cause.into();
        self
    }
}

/// Runs decided jobs as workloads and reports what happens to them.
#[cfg_attr(any(test, feature = "testing"), mockall::automock)]
#[async_trait]
pub trait Jobifier: Send + Sync {
    /// Creates the workload for `job` from `template`. Idempotent: launching a job whose
    /// workload exists answers [`Launched::AlreadyExists`].
    async fn launch(
        &self,
        job: &ScheduledJob,
        template: &Template,
    ) -> Result<Launched, LaunchError>;

    /// Creates the workload for `job` whose agent registers with `agent_token`, a token the
    /// job source issued for this job alone (see [`Claim`](crate::Claim)), instead of the
    /// controller's shared agent token. The scheduler calls it only for jobs that came with
    /// such a token. The default refuses: a backend that cannot keep a per-job credential
    /// must not fall back to the shared one.
    async fn launch_with_token(
        &self,
        job: &ScheduledJob,
        template: &Template,
        agent_token: &SecretString,
    ) -> Result<Launched, LaunchError> {
        let _ = (job, template, agent_token);
        Err(LaunchError::invalid(
            "this workload backend cannot give a job its own agent token; turn per-job agent \
             tokens off in the job source, or use a backend that supports them",
        ))
    }

    /// Removes the workload of a cancelled job. Removing one that does not exist succeeds.
    async fn cancel(&self, job: JobId) -> Result<(), CancelError>;

    /// Workload events, starting with [`WorkloadEvent::Restored`]. The stream ends only when
    /// the backend shuts down.
    fn events(&self) -> BoxStream<'static, WorkloadEvent>;
}

#[async_trait]
impl<T: Jobifier + ?Sized> Jobifier for std::sync::Arc<T> {
    async fn launch(
        &self,
        job: &ScheduledJob,
        template: &Template,
    ) -> Result<Launched, LaunchError> {
        (**self).launch(job, template).await
    }

    async fn launch_with_token(
        &self,
        job: &ScheduledJob,
        template: &Template,
        agent_token: &SecretString,
    ) -> Result<Launched, LaunchError> {
        (**self).launch_with_token(job, template, agent_token).await
    }

    async fn cancel(&self, job: JobId) -> Result<(), CancelError> {
        (**self).cancel(job).await
    }

    fn events(&self) -> BoxStream<'static, WorkloadEvent> {
        (**self).events()
    }
}
