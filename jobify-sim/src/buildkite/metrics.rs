//! `GET /v3/metrics`: the agent API's queue metrics, derived from the jobs. The simulator's
//! agents live exactly as long as their job (as with agent-stack-k8s), so every agent is
//! busy: one per job holding an agent.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::job::JobState;
use super::state::State;

#[derive(Default)]
struct QueueJobs {
    scheduled: u64,
    running: u64,
    waiting: u64,
}

/// The response body, shaped like `examples/agent-metrics-response.json`.
pub(crate) fn body(state: &State) -> Value {
    let mut agents: BTreeMap<&str, u64> = BTreeMap::new();
    let mut jobs: BTreeMap<&str, QueueJobs> = BTreeMap::new();
    for job in state.jobs.values() {
        let queue = job.queue();
        match job.state {
            JobState::Scheduled => jobs.entry(queue).or_default().scheduled += 1,
            JobState::Waiting => jobs.entry(queue).or_default().waiting += 1,
            s if s.is_active() => {
                jobs.entry(queue).or_default().running += 1;
                *agents.entry(queue).or_default() += 1;
            }
            _ => {}
        }
    }
    let busy: u64 = agents.values().sum();
    let agent_queues: serde_json::Map<String, Value> = agents
        .iter()
        .map(|(q, n)| ((*q).to_owned(), json!({"busy": n, "idle": 0, "total": n})))
        .collect();
    let (mut scheduled, mut running, mut waiting) = (0, 0, 0);
    let job_queues: serde_json::Map<String, Value> = jobs
        .iter()
        .map(|(q, j)| {
            scheduled += j.scheduled;
            running += j.running;
            waiting += j.waiting;
            let total = j.scheduled + j.running + j.waiting;
            let counts = json!({"running": j.running, "scheduled": j.scheduled, "total": total, "waiting": j.waiting});
            ((*q).to_owned(), counts)
        })
        .collect();
    json!({
        "agents": {"busy": busy, "idle": 0, "queues": agent_queues, "total": busy},
        "jobs": {
            "queues": job_queues,
            "running": running,
            "scheduled": scheduled,
            "total": scheduled + running + waiting,
            "waiting": waiting,
        },
        "organization": {"slug": state.org.slug},
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap fails the test")]
mod tests {
    use super::*;
    use crate::buildkite::JobSpec;

    #[test]
    fn metrics_count_jobs_and_busy_agents_per_queue() {
        let mut state = State::new("acme");
        let (a, _) = state.schedule(JobSpec::command("a").on_queue("k8s"));
        state.schedule(JobSpec::command("b").on_queue("k8s"));
        state.schedule(JobSpec::command("c").on_queue("other"));
        state.schedule(JobSpec {
            waiting: true,
            ..JobSpec::command("d").on_queue("other")
        });
        state.acquire(a, &["queue=k8s".to_owned()]).unwrap();
        let body = body(&state);
        assert_eq!(body["agents"]["busy"], 1);
        assert_eq!(
            body["agents"]["queues"]["k8s"],
            json!({"busy": 1, "idle": 0, "total": 1})
        );
        assert_eq!(
            body["jobs"]["queues"]["k8s"],
            json!({"running": 1, "scheduled": 1, "total": 2, "waiting": 0})
        );
        assert_eq!(
            body["jobs"]["queues"]["other"],
            json!({"running": 0, "scheduled": 1, "total": 2, "waiting": 1})
        );
        assert_eq!(body["jobs"]["scheduled"], 2);
        assert_eq!(body["jobs"]["waiting"], 1);
        assert_eq!(body["jobs"]["total"], 4);
        assert_eq!(body["organization"]["slug"], "acme");
    }
}
