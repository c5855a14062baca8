//! The one mapping from a Buildkite job, as `buildkite-api` reads it, to what `jobify-core`
//! takes in: a command job becomes a [`RawJob`], a job state a core [`JobState`].

use buildkite_api::{CommandJob, JobState as Buildkite};
use jobify_core::{JobState, RawJob};

/// The job as `jobify-core` takes it in. When it became scheduled is Buildkite's
/// `scheduledAt`, else `runnableAt`; an empty web URL is none.
pub(crate) fn raw_job(job: CommandJob) -> RawJob {
    RawJob {
        uuid: job.uuid,
        source_key: job.id,
        label: job.label,
        command: job.command,
        agent_query_rules: job.agent_query_rules,
        env: job.env,
        priority: job.priority,
        scheduled_at: job.scheduled_at.or(job.runnable_at),
        url: Some(job.url).filter(|url| !url.is_empty()),
    }
}

/// The core's reading of a schema job state: what jobify does about a job in it.
pub(crate) fn job_state(state: &Buildkite) -> JobState {
    match state {
        Buildkite::Pending
        | Buildkite::Waiting
        | Buildkite::WaitingFailed
        | Buildkite::Blocked
        | Buildkite::BlockedFailed
        | Buildkite::Unblocked
        | Buildkite::UnblockedFailed
        | Buildkite::Limiting
        | Buildkite::Limited
        | Buildkite::PlatformLimiting
        | Buildkite::PlatformLimited => JobState::Waiting,
        Buildkite::Scheduled => JobState::Scheduled,
        Buildkite::Reserved | Buildkite::Assigned | Buildkite::Accepted => JobState::Assigned,
        Buildkite::Running => JobState::Running,
        Buildkite::Finished => JobState::Finished,
        Buildkite::Canceling | Buildkite::Canceled => JobState::Canceled,
        Buildkite::TimingOut
        | Buildkite::TimedOut
        | Buildkite::Skipped
        | Buildkite::Broken
        | Buildkite::Expired => JobState::Abandoned,
        Buildkite::Unknown(other) => JobState::Unknown(other.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_map_by_what_jobify_does_about_them() {
        for (spelling, expected) in [
            ("BLOCKED", JobState::Waiting),
            ("LIMITED", JobState::Waiting),
            ("SCHEDULED", JobState::Scheduled),
            ("ACCEPTED", JobState::Assigned),
            ("RUNNING", JobState::Running),
            ("FINISHED", JobState::Finished),
            ("CANCELING", JobState::Canceled),
            ("EXPIRED", JobState::Abandoned),
            ("QUANTUM", JobState::Unknown("QUANTUM".into())),
        ] {
            assert_eq!(
                job_state(&Buildkite::from_graphql(spelling)),
                expected,
                "{spelling}"
            );
        }
        assert!(job_state(&Buildkite::Broken).is_cancelled());
        assert!(!job_state(&Buildkite::Scheduled).is_cancelled());
    }
}
