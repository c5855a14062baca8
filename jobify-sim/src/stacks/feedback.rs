//! What a stack reads of and writes to a job before an agent owns it: get job (env and
//! command), get-states, finish (fail it with an exit status and a detail) and the
//! notifications on its timeline.

use axum::http::StatusCode;
use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value, json};

use super::body;
use super::job::{FinishRecord, JobState, Notification};
use super::refusal::Refusal;
use super::reservation::MAX_UUIDS;
use super::state::State;

/// The longest finish `detail`, in bytes.
pub(crate) const MAX_DETAIL_BYTES: usize = 4096;
/// The longest notification `detail`, in characters.
pub(crate) const MAX_NOTIFICATION_CHARS: usize = 256;
/// The most notifications a job keeps.
pub(crate) const MAX_NOTIFICATIONS_PER_JOB: usize = 100;
/// The most notifications one request carries.
pub(crate) const MAX_NOTIFICATIONS_PER_REQUEST: usize = 1000;
/// How long after it finished a job still takes notifications.
const NOTIFY_AFTER_FINISH: SignedDuration = SignedDuration::from_secs(300);

impl State {
    /// The job's env and command.
    pub(crate) fn get_job(&mut self, key: &str, id: &str) -> Result<(StatusCode, Value), Refusal> {
        self.stack_mut(key)?;
        let job = self.job(id)?;
        Ok((
            StatusCode::OK,
            json!({"id": job.uuid, "env": job.env, "command": job.spec.command}),
        ))
    }

    /// The state of each known job; unknown uuids are left out.
    pub(crate) fn get_states(
        &mut self,
        key: &str,
        body: &Map<String, Value>,
        now: Timestamp,
    ) -> Result<(StatusCode, Value), Refusal> {
        self.stack_mut(key)?;
        let uuids = body::strings(body, "job_uuids", MAX_UUIDS)?;
        let states: Map<String, Value> = uuids
            .into_iter()
            .filter_map(|u| {
                let state = self.job(&u).ok()?.reported_state(now);
                Some((u, Value::from(state)))
            })
            .collect();
        Ok((StatusCode::OK, json!({"states": states})))
    }

    /// Finishes a job no agent took: at most once, only while `scheduled` and not reserved
    /// by another stack; its reservation ends.
    pub(crate) fn finish(
        &mut self,
        key: &str,
        id: &str,
        body: &Map<String, Value>,
        now: Timestamp,
    ) -> Result<(StatusCode, Value), Refusal> {
        self.stack_mut(key)?;
        let exit_status = match body.get("exit_status") {
            None | Some(Value::Null) => -1,
            Some(v) => v
                .as_i64()
                .ok_or_else(|| Refusal::bad_request("exit_status must be an integer"))?,
        };
        let detail = match body.get("detail") {
            Some(Value::String(d)) if !d.is_empty() => d.clone(),
            Some(Value::String(_)) | None | Some(Value::Null) => {
                return Err(Refusal::unprocessable("detail is required"));
            }
            Some(_) => return Err(Refusal::bad_request("detail must be a string")),
        };
        if detail.len() > MAX_DETAIL_BYTES {
            return Err(Refusal::unprocessable(format!(
                "detail exceeds its length limit of {MAX_DETAIL_BYTES} bytes"
            )));
        }
        let job = self.job_mut(id)?;
        if job.finish.is_some() {
            return Err(Refusal::unprocessable(
                "Job has already been finished by a stack",
            ));
        }
        if job.state != JobState::Scheduled {
            return Err(Refusal::unprocessable(format!(
                "Job is {} and can no longer be finished by a stack",
                job.state.as_str()
            )));
        }
        if let Some(r) = job.live_reservation(now).filter(|r| r.stack != key) {
            return Err(Refusal::unprocessable(format!(
                "Job is reserved by another stack ({})",
                r.stack
            )));
        }
        job.state = JobState::Finished;
        job.reservation = None;
        job.exit_status = Some(exit_status);
        job.finished_at = Some(now);
        job.finish = Some(FinishRecord {
            stack: key.to_owned(),
            exit_status,
            detail,
            at: now,
        });
        Ok((StatusCode::OK, json!({})))
    }

    /// Stores each valid notification in order; the invalid ones are reported by index,
    /// grouped by error.
    pub(crate) fn notify(
        &mut self,
        key: &str,
        body: &Map<String, Value>,
        now: Timestamp,
    ) -> Result<(StatusCode, Value), Refusal> {
        self.stack_mut(key)?;
        let Some(Value::Array(items)) = body.get("notifications") else {
            return Err(Refusal::bad_request("notifications must be an array"));
        };
        if items.len() > MAX_NOTIFICATIONS_PER_REQUEST {
            return Err(Refusal::bad_request(format!(
                "notifications must contain at most {MAX_NOTIFICATIONS_PER_REQUEST} items"
            )));
        }
        let mut errors: Vec<(String, Vec<usize>)> = Vec::new();
        for (index, item) in items.iter().enumerate() {
            if let Err(error) = self.notify_one(key, item, now) {
                match errors.iter_mut().find(|(e, _)| *e == error) {
                    Some((_, indexes)) => indexes.push(index),
                    None => errors.push((error, vec![index])),
                }
            }
        }
        let errors: Vec<Value> = errors
            .into_iter()
            .map(|(error, indexes)| json!({"error": error, "indexes": indexes}))
            .collect();
        Ok((StatusCode::OK, json!({"errors": errors})))
    }

    fn notify_one(&mut self, key: &str, item: &Value, now: Timestamp) -> Result<(), String> {
        let uuid = item["job_uuid"].as_str().unwrap_or_default();
        let detail = item["detail"].as_str().unwrap_or_default();
        if detail.is_empty() {
            return Err("detail is required".to_owned());
        }
        if detail.chars().count() > MAX_NOTIFICATION_CHARS {
            return Err(format!(
                "detail exceeds its length limit of {MAX_NOTIFICATION_CHARS}"
            ));
        }
        let skew = self.notification_clock_skew;
        let job = self.job_mut(uuid).map_err(|_| "job not found".to_owned())?;
        let timestamp = match &item["timestamp"] {
            Value::Null => now,
            Value::String(t) => t
                .parse::<Timestamp>()
                .map_err(|_| "timestamp is not an ISO 8601 time".to_owned())?,
            _ => return Err("timestamp is not an ISO 8601 time".to_owned()),
        };
        if timestamp.duration_since(now) > skew {
            return Err("timestamp can't be in the future".to_owned());
        }
        if timestamp < job.created_at {
            return Err("timestamp can't be before the job was created".to_owned());
        }
        if job
            .finished_at
            .is_some_and(|f| now.duration_since(f) > NOTIFY_AFTER_FINISH)
        {
            return Err("job finished too long ago for stack notifications".to_owned());
        }
        if job.notifications.len() >= MAX_NOTIFICATIONS_PER_JOB {
            return Err("job stack notification count exceeded".to_owned());
        }
        job.notifications.push(Notification {
            stack: key.to_owned(),
            detail: detail.to_owned(),
            timestamp,
        });
        Ok(())
    }
}
