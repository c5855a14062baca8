//! The one mapping from the Stacks API's view of a job to what `jobify-core` takes in: the
//! listing's metadata and the job's details become a [`RawJob`]; a Stacks job state a core
//! [`JobState`].

use buildkite_api::stacks::{JobDetails, StackJob, StacksJobState as Stacks};
use jobify_core::{JobState, RawJob};

/// The job as `jobify-core` takes it in: order and rules from the listing, command and
/// environment (plugins, pipeline, build) from the details. The Stacks API addresses a job by
/// its uuid, so the uuid is its source key too.
pub(crate) fn raw_job(listed: &StackJob, details: JobDetails) -> RawJob {
    let env_value = |key: &str| details.env.get(key).filter(|v| !v.is_empty()).cloned();
    let label = env_value("BUILDKITE_LABEL");
    // A job's page is its build's page anchored at the job.
    let url = env_value("BUILDKITE_BUILD_URL").map(|build| format!("{build}#{}", listed.id));
    RawJob {
        uuid: listed.id.clone(),
        source_key: listed.id.clone(),
        label,
        command: Some(details.command).filter(|command| !command.is_empty()),
        agent_query_rules: listed.agent_query_rules.clone(),
        env: details
            .env
            .into_iter()
            .map(|(key, value)| format!("{key}={value}"))
            .collect(),
        priority: i32::try_from(listed.priority).unwrap_or(if listed.priority < 0 {
            i32::MIN
        } else {
            i32::MAX
        }),
        scheduled_at: Some(listed.scheduled_at),
        url,
    }
}

/// The core's reading of a Stacks job state. `reserved` is a job a stack holds for an agent
/// it is starting: still waiting, as `scheduled` is.
pub(crate) fn job_state(state: &Stacks) -> JobState {
    match state {
        Stacks::Pending
        | Stacks::Waiting
        | Stacks::WaitingFailed
        | Stacks::Blocked
        | Stacks::BlockedFailed
        | Stacks::Unblocked
        | Stacks::UnblockedFailed
        | Stacks::Limiting
        | Stacks::Limited => JobState::Waiting,
        Stacks::Scheduled | Stacks::Reserved => JobState::Scheduled,
        Stacks::Assigned | Stacks::Accepted => JobState::Assigned,
        Stacks::Running => JobState::Running,
        Stacks::Finished | Stacks::Failed => JobState::Finished,
        Stacks::Canceling | Stacks::Canceled => JobState::Canceled,
        Stacks::TimingOut
        | Stacks::TimedOut
        | Stacks::Skipped
        | Stacks::Broken
        | Stacks::Expired => JobState::Abandoned,
        Stacks::Unknown(other) => JobState::Unknown(other.clone()),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn listed() -> StackJob {
        serde_json::from_value(serde_json::json!({
            "id": "0190b5d0-6b6e-4c8a-9c53-1a2b3c4d5e6f",
            "priority": 5,
            "agent_query_rules": ["queue=kubernetes"],
            "scheduled_at": "2026-12-03T10:00:00Z",
            "pipeline": {"slug": "web", "uuid": null},
            "build": {"number": 7, "branch": "main", "uuid": null},
            "step": {"key": null}
        }))
        .expect("a listing entry")
    }

    #[test]
    fn a_listed_job_and_its_details_become_one_raw_job() {
        let details = JobDetails {
            id: listed().id,
            env: BTreeMap::from([
                ("BUILDKITE_LABEL".to_owned(), ":rust: test".to_owned()),
                (
                    "BUILDKITE_BUILD_URL".to_owned(),
                    "https://buildkite.com/acme/web/builds/7".to_owned(),
                ),
                ("BUILDKITE_PIPELINE_SLUG".to_owned(), "web".to_owned()),
            ]),
            command: "make test".to_owned(),
        };
        let raw = raw_job(&listed(), details);
        assert_eq!(
            raw.uuid, raw.source_key,
            "the Stacks API addresses jobs by uuid"
        );
        assert_eq!(raw.label.as_deref(), Some(":rust: test"));
        assert_eq!(raw.command.as_deref(), Some("make test"));
        assert_eq!(raw.priority, 5);
        assert_eq!(raw.agent_query_rules, vec!["queue=kubernetes"]);
        assert!(raw.env.contains(&"BUILDKITE_PIPELINE_SLUG=web".to_owned()));
        assert_eq!(
            raw.url.as_deref(),
            Some("https://buildkite.com/acme/web/builds/7#0190b5d0-6b6e-4c8a-9c53-1a2b3c4d5e6f")
        );
    }

    #[test]
    fn a_reserved_job_still_waits_and_a_cancelled_one_is_cancelled() {
        for (spelling, expected) in [
            ("scheduled", JobState::Scheduled),
            ("reserved", JobState::Scheduled),
            ("assigned", JobState::Assigned),
            ("running", JobState::Running),
            ("failed", JobState::Finished),
            ("canceling", JobState::Canceled),
            ("expired", JobState::Abandoned),
            ("limited", JobState::Waiting),
        ] {
            let state: Stacks =
                serde_json::from_value(serde_json::json!(spelling)).expect("a state");
            assert_eq!(job_state(&state), expected, "{spelling}");
        }
    }
}
