//! [`BuildkiteFeedback`]: tells a pipeline's authors why jobify refused their job.

use async_trait::async_trait;
use buildkite_api::{Annotation, Client, JobLookup};
use jobify_core::{Feedback, FeedbackError, JobRef, Reason};

/// The annotation context jobify writes under; a later message for the same job replaces
/// the earlier one.
pub const ANNOTATION_CONTEXT: &str = "jobify";

/// Why the job could not be addressed.
#[derive(Debug, thiserror::Error)]
enum LookupError {
    /// Buildkite does not know the job (or the token cannot see it).
    #[error("Buildkite does not know a command job with this uuid")]
    NotFound,
}

/// [`Feedback`] over the Buildkite GraphQL API: annotates the job with the reason, then
/// cancels it. Annotating first makes a retry safe: a failed cancel leaves the job scheduled,
/// the next poll decides again, and the annotation is replaced rather than repeated.
pub struct BuildkiteFeedback {
    client: Client,
}

impl BuildkiteFeedback {
    /// Feedback through `client`.
    pub fn new(client: Client) -> Self {
        BuildkiteFeedback { client }
    }

    /// The job's GraphQL node id: its source key, or looked up by uuid when the job is known
    /// only from its workload.
    async fn graphql_id(&self, job: &JobRef) -> Result<String, FeedbackError> {
        if let Some(id) = &job.source_key {
            return Ok(id.clone());
        }
        let failed = |source: Box<dyn std::error::Error + Send + Sync>| FeedbackError {
            job: job.id,
            source,
        };
        let lookups = self
            .client
            .job_states(&[job.id.to_string()])
            .await
            .map_err(|error| failed(Box::new(error)))?;
        match lookups.value.into_iter().next() {
            Some(JobLookup::Command { id, .. }) => Ok(id),
            _ => Err(failed(Box::new(LookupError::NotFound))),
        }
    }
}

/// The annotation's Markdown.
fn body(reason: &Reason) -> String {
    format!(
        "**jobify did not run this job.** {}\n\n<sub>reason code `{}`</sub>",
        reason.message, reason.code
    )
}

#[async_trait]
impl Feedback for BuildkiteFeedback {
    #[tracing::instrument(name = "feedback", skip_all, fields(job = %job.id, code = %reason.code))]
    async fn fail_job(&self, job: &JobRef, reason: &Reason) -> Result<(), FeedbackError> {
        let id = self.graphql_id(job).await?;
        let failed = |error: buildkite_api::Error| FeedbackError {
            job: job.id,
            source: Box::new(error),
        };
        self.client
            .annotate_job(&id, &Annotation::error(ANNOTATION_CONTEXT, &body(reason)))
            .await
            .map_err(failed)?;
        let state = self.client.cancel_job(&id).await.map_err(failed)?.value;
        let state = state.map_or_else(|| "not reported".to_owned(), |state| state.to_string());
        tracing::info!(job = %job.id, reason = %reason.code, %state, "failed the job in Buildkite");
        Ok(())
    }
}
