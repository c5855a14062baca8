//! List scheduled jobs (`GET /v3/stacks/:key/scheduled-jobs`): the queue's `scheduled` jobs
//! not under a live reservation, oldest first, paged by an opaque base64 cursor. The poll is
//! also the stack's heartbeat.

use std::collections::HashMap;

use axum::http::StatusCode;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use jiff::Timestamp;
use serde_json::{Value, json};

use super::job::{Job, JobState};
use super::refusal::Refusal;
use super::state::State;

/// The most jobs one page may hold.
pub(crate) const MAX_LIMIT: usize = 1000;

/// Where a job sits in the listing's order.
type Position = (i128, u64);

fn position(job: &Job) -> Position {
    (job.scheduled_at.as_nanosecond(), job.seq)
}

/// The cursor after `position`: base64 of `<scheduled_at ns>:<seq>`, opaque to clients.
fn cursor(position: Position) -> String {
    STANDARD.encode(format!("{}:{}", position.0, position.1))
}

fn parse_cursor(cursor: &str) -> Result<Position, Refusal> {
    let bad = || Refusal::bad_request("after is not a valid cursor");
    let bytes = STANDARD.decode(cursor).map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let (at, seq) = text.split_once(':').ok_or_else(bad)?;
    Ok((
        at.parse().map_err(|_| bad())?,
        seq.parse().map_err(|_| bad())?,
    ))
}

fn limit(query: &HashMap<String, String>, default: usize) -> Result<usize, Refusal> {
    let Some(raw) = query.get("limit") else {
        return Ok(default.min(MAX_LIMIT));
    };
    match raw.parse::<usize>() {
        Ok(0) | Err(_) => Err(Refusal::bad_request("limit must be a positive integer")),
        Ok(n) => Ok(n.min(MAX_LIMIT)),
    }
}

fn job_json(job: &Job) -> Value {
    json!({
        "id": job.uuid,
        "priority": job.spec.priority,
        "agent_query_rules": job.spec.agent_query_rules,
        "scheduled_at": job.scheduled_at.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        "pipeline": {"slug": job.spec.pipeline, "uuid": job.pipeline_uuid},
        "build": {"number": job.spec.build_number, "branch": job.spec.branch, "uuid": job.build_uuid},
        "step": {"key": job.spec.step_key},
    })
}

impl State {
    /// One page of stack `key`'s view of a queue, refreshing the stack's liveness.
    pub(crate) fn list_scheduled(
        &mut self,
        key: &str,
        query: &HashMap<String, String>,
        now: Timestamp,
    ) -> Result<(StatusCode, Value), Refusal> {
        self.stack_mut(key)?;
        let queue_key = query
            .get("queue_key")
            .filter(|q| !q.is_empty())
            .ok_or_else(|| Refusal::bad_request("queue_key is required"))?;
        let limit = limit(query, self.default_list_limit)?;
        let after = query.get("after").map(|c| parse_cursor(c)).transpose()?;
        let queue = self.queue(queue_key)?.clone();
        let mut listed: Vec<&Job> = self
            .jobs
            .values()
            .filter(|j| j.queue == queue.key && j.state == JobState::Scheduled)
            .filter(|j| j.live_reservation(now).is_none())
            .filter(|j| after.is_none_or(|a| position(j) > a))
            .collect();
        listed.sort_by_key(|j| position(j));
        let has_next_page = listed.len() > limit;
        listed.truncate(limit);
        let end_cursor = listed.last().map(|j| cursor(position(j)));
        let jobs: Vec<Value> = listed.into_iter().map(job_json).collect();
        if let Ok(stack) = self.stack_mut(key) {
            stack.last_connected_on = Some(now);
        }
        if let Some(q) = self.queues.get_mut(&queue.key) {
            q.last_polled = Some(now);
        }
        Ok((
            StatusCode::OK,
            json!({
                "jobs": jobs,
                "page_info": {"has_next_page": has_next_page, "end_cursor": end_cursor},
                "cluster_queue": {"id": queue.id, "dispatch_paused": queue.dispatch_paused},
            }),
        ))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap fails the test")]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let at = (1_700_000_000_123_456_789, 42);
        assert_eq!(parse_cursor(&cursor(at)).unwrap(), at);
        assert_eq!(parse_cursor("not base64!").unwrap_err().status, 400);
        assert_eq!(parse_cursor(&STANDARD.encode("x")).unwrap_err().status, 400);
    }
}
