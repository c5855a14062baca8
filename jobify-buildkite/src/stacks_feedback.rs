//! [`StacksFeedback`]: fails a job jobify will not run through the Stacks API, as a stack
//! error the pipeline's retry rules can match.

use async_trait::async_trait;
use buildkite_api::stacks::{FinishJob, StacksClient};
use jobify_core::{Feedback, FeedbackError, JobRef, Reason};

/// [`Feedback`] over the Stacks API: finishes the job with `exit_status: -1` and the reason as
/// its detail, which Buildkite shows on the job and records as a stack error (so a
/// `retry.automatic` rule on `exit_status: -1` or `signal_reason: stack_error` applies).
///
/// Buildkite takes a finish once per job. When a finish is refused (HTTP 422), the job's state
/// says why: a job no longer waiting for a stack (finished by an earlier attempt whose answer
/// was lost, cancelled, or acquired by an agent) needs nothing more and counts as told; a job
/// still waiting is an error, retried like any other.
pub struct StacksFeedback {
    client: StacksClient,
    stack_key: String,
}

impl StacksFeedback {
    /// Feedback through `client` as the registered stack `stack_key`.
    pub fn new(client: StacksClient, stack_key: impl Into<String>) -> Self {
        StacksFeedback {
            client,
            stack_key: stack_key.into(),
        }
    }
}

/// The finish detail: the reason, then its stable code.
fn detail(reason: &Reason) -> String {
    format!(
        "jobify did not run this job: {} (reason code `{}`)",
        reason.message, reason.code
    )
}

#[async_trait]
impl Feedback for StacksFeedback {
    #[tracing::instrument(name = "feedback", skip_all, fields(job = %job.id, code = %reason.code))]
    async fn fail_job(&self, job: &JobRef, reason: &Reason) -> Result<(), FeedbackError> {
        let uuid = job.id.to_string();
        let failed = |error: buildkite_api::Error| FeedbackError {
            job: job.id,
            source: Box::new(error),
        };
        let refused = match self
            .client
            .finish(&self.stack_key, &uuid, &FinishJob::failed(detail(reason)))
            .await
        {
            Ok(()) => {
                tracing::info!(job = %job.id, reason = %reason.code, "failed the job in Buildkite (stack error)");
                return Ok(());
            }
            Err(error) if error.status() == Some(422) => error,
            Err(error) => return Err(failed(error)),
        };
        let states = self
            .client
            .job_states(&self.stack_key, std::slice::from_ref(&uuid))
            .await
            .map_err(failed)?;
        match states.get(&uuid) {
            Some(state) if !state.is_waiting_for_a_stack() => {
                tracing::info!(job = %job.id, %state, "the job no longer waits for a stack; nothing to fail");
                Ok(())
            }
            // Still scheduled or reserved (refused for another reason, e.g. another stack's
            // reservation), or unknown to Buildkite: the refusal stands.
            _ => Err(failed(refused)),
        }
    }
}
