//! The one mapping from a Buildkite job, as `buildkite-api` reads it, to what `jobify-core`
//! takes in: a command job becomes a [`RawJob`], a job state a core [`JobState`].

use buildkite_api::CommandJob;
use jobify_core::{JobState, RawJob};

/// The job as `jobify-core` takes it in. When it became scheduled is Buildkite's
/// `scheduledAt`, else `runnableAt`; an empty web URL is none.
pub(crate) fn raw_job(job: CommandJob) -> RawJob {
    RawJob {
        uuid: job.uuid,
        graphql_id: job.id,
        label: job.label,
        command: job.command,
        agent_query_rules: job.agent_query_rules,
        env: job.env,
        priority: job.priority,
        scheduled_at: job.scheduled_at.or(job.runnable_at),
        url: Some(job.url).filter(|url| !url.is_empty()),
    }
}

/// The core's reading of a schema job state.
pub(crate) fn job_state(state: &buildkite_api::JobState) -> JobState {
    JobState::from_graphql(state.as_str())
}
