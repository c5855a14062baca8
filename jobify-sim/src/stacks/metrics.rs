//! `GET /v3/metrics`: the agent API's queue metrics, which Buildkite serves on the same host
//! and to the same cluster agent token as the Stacks endpoints. Derived from the jobs: a
//! stack's agents live exactly as long as their job (as with agent-stack-k8s), so every
//! agent is busy, one per job an agent holds.
//!
//! The GraphQL-side simulator's `buildkite::metrics` builds the same shape from its own
//! state; the two states share no job type, so each derives its own counts.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::job::JobState;
use super::state::State;

/// One queue's job counts. The Stacks simulator has no `waiting` jobs (no dependencies), so
/// `waiting` is always 0; it is in the body because Buildkite always sends it.
#[derive(Clone, Copy, Debug, Default)]
struct JobCounts {
    scheduled: u64,
    running: u64,
    waiting: u64,
}

impl JobCounts {
    fn total(self) -> u64 {
        self.scheduled + self.running + self.waiting
    }

    fn add(&mut self, other: JobCounts) {
        self.scheduled += other.scheduled;
        self.running += other.running;
        self.waiting += other.waiting;
    }

    fn json(self) -> Value {
        json!({
            "running": self.running,
            "scheduled": self.scheduled,
            "total": self.total(),
            "waiting": self.waiting,
        })
    }
}

/// Agent counts: every agent runs a job, so `busy` is `total` and `idle` is 0.
fn agents_json(busy: u64) -> Value {
    json!({"busy": busy, "idle": 0, "total": busy})
}

/// The response body, shaped like `examples/agent-metrics-response.json`, with every queue
/// the simulator knows (an idle queue reports zeros).
///
/// `scheduled` counts jobs waiting for an agent, reserved or not and on paused queues too
/// (Buildkite's `scheduled` also counts jobs held back, and a reservation keeps a job
/// `scheduled` until an agent acquires it). `running` counts jobs an agent holds: `running`
/// and `canceling` (Buildkite counts `assigned`, `accepted`, `running`, `canceling` and
/// `timing_out`, the states the simulator folds into these two).
pub(crate) fn body(state: &State) -> Value {
    let mut queues: BTreeMap<&str, JobCounts> = state
        .queues
        .keys()
        .map(|key| (key.as_str(), JobCounts::default()))
        .collect();
    for job in state.jobs.values() {
        let counts = queues.entry(job.queue.as_str()).or_default();
        match job.state {
            JobState::Scheduled => counts.scheduled += 1,
            JobState::Running | JobState::Canceling => counts.running += 1,
            JobState::Finished | JobState::Canceled => {}
        }
    }
    let mut totals = JobCounts::default();
    let mut job_queues = Map::new();
    let mut agent_queues = Map::new();
    for (key, counts) in &queues {
        totals.add(*counts);
        job_queues.insert((*key).to_owned(), counts.json());
        agent_queues.insert((*key).to_owned(), agents_json(counts.running));
    }
    let mut agents = agents_json(totals.running);
    agents["queues"] = Value::Object(agent_queues);
    let mut jobs = totals.json();
    jobs["queues"] = Value::Object(job_queues);
    json!({
        "agents": agents,
        "jobs": jobs,
        "organization": {"slug": state.organization},
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap fails the test")]
mod tests {
    use jiff::Timestamp;

    use super::*;
    use crate::stacks::config::StacksSimConfig;
    use crate::stacks::job::{Credential, JobSpec};

    #[test]
    fn metrics_count_scheduled_and_running_jobs_and_busy_agents_per_queue() {
        let mut state = State::new(&StacksSimConfig::new("bkct_t").with_queue("k8s"));
        let now = Timestamp::UNIX_EPOCH;
        let a = state.add_job(JobSpec::command("a").on_queue("k8s"), now);
        state.add_job(JobSpec::command("b").on_queue("k8s"), now);
        let c = state.add_job(JobSpec::command("c").on_queue("other"), now);
        let d = state.add_job(JobSpec::command("d").on_queue("other"), now);
        state.acquire(a, Credential::ClusterToken, None).unwrap();
        state.acquire(c, Credential::ClusterToken, None).unwrap();
        state.agent_finished(c, 0, now);
        state.cancel(d, now);

        let body = body(&state);
        assert_eq!(
            body["jobs"]["queues"]["k8s"],
            json!({"running": 1, "scheduled": 1, "total": 2, "waiting": 0})
        );
        assert_eq!(
            body["jobs"]["queues"]["other"],
            json!({"running": 0, "scheduled": 0, "total": 0, "waiting": 0}),
            "finished and canceled jobs are not counted"
        );
        assert_eq!(
            body["jobs"]["queues"]["default"]["total"], 0,
            "an idle queue reports zeros"
        );
        assert_eq!(
            body["agents"]["queues"]["k8s"],
            json!({"busy": 1, "idle": 0, "total": 1})
        );
        assert_eq!(body["agents"]["busy"], 1);
        assert_eq!(body["agents"]["total"], 1);
        assert_eq!(body["jobs"]["scheduled"], 1);
        assert_eq!(body["jobs"]["running"], 1);
        assert_eq!(body["jobs"]["total"], 2);
        assert_eq!(body["organization"]["slug"], "acme");
    }

    #[test]
    fn a_canceling_job_still_holds_its_agent() {
        let mut state = State::new(&StacksSimConfig::new("bkct_t"));
        let now = Timestamp::UNIX_EPOCH;
        let a = state.add_job(JobSpec::command("a"), now);
        state.acquire(a, Credential::ClusterToken, None).unwrap();
        state.cancel(a, now);
        let body = body(&state);
        assert_eq!(body["jobs"]["queues"]["default"]["running"], 1);
        assert_eq!(body["agents"]["queues"]["default"]["busy"], 1);
    }
}
