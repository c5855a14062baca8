//! Batch-reserve (`PUT /v3/stacks/:key/scheduled-jobs/batch-reserve`) and job acquisition
//! tokens (`POST /v3/stacks/:key/job-acquisition-tokens`): both only for jobs this stack may
//! hold, both bounded by the reservation.

use std::time::Duration;

use axum::http::StatusCode;
use jiff::Timestamp;
use serde_json::{Map, Value, json};

use super::body;
use super::job::{JobState, Reservation};
use super::refusal::Refusal;
use super::state::{IssuedToken, State};
use super::token;

/// Reservation expiry (and token lifetime) when the request names none.
pub(crate) const DEFAULT_SECONDS: u64 = 900;
/// The documented maximum of both.
pub(crate) const MAX_SECONDS: u64 = 3600;
/// The most uuids one request may carry.
pub(crate) const MAX_UUIDS: usize = 1000;

impl State {
    /// Reserves each job that is `scheduled` and not under another stack's live reservation
    /// (this stack's own reservation is extended); the rest are `not_reserved`.
    pub(crate) fn reserve(
        &mut self,
        key: &str,
        body: &Map<String, Value>,
        now: Timestamp,
    ) -> Result<(StatusCode, Value), Refusal> {
        self.stack_mut(key)?;
        let uuids = body::strings(body, "job_uuids", MAX_UUIDS)?;
        let expiry = body::seconds(
            body,
            "reservation_expiry_seconds",
            DEFAULT_SECONDS,
            MAX_SECONDS,
            self.over_maximum,
        )?;
        let expires_at = now
            .checked_add(Duration::from_secs(expiry))
            .map_err(|_| Refusal::bad_request("reservation_expiry_seconds is out of range"))?;
        let (mut reserved, mut not_reserved) = (Vec::new(), Vec::new());
        for uuid in uuids {
            let Ok(job) = self.job_mut(&uuid) else {
                not_reserved.push(uuid);
                continue;
            };
            let held_by_other = job.live_reservation(now).is_some_and(|r| r.stack != key);
            if job.state != JobState::Scheduled || held_by_other {
                not_reserved.push(uuid);
                continue;
            }
            job.reservation = Some(Reservation {
                stack: key.to_owned(),
                expires_at,
            });
            reserved.push(uuid);
        }
        Ok((
            StatusCode::OK,
            json!({"reserved": reserved, "not_reserved": not_reserved}),
        ))
    }

    /// Issues a job acquisition token for each job this stack holds a live reservation on,
    /// expiring with the lifetime asked for or the reservation, whichever comes first.
    pub(crate) fn issue_tokens(
        &mut self,
        key: &str,
        body: &Map<String, Value>,
        now: Timestamp,
    ) -> Result<(StatusCode, Value), Refusal> {
        self.stack_mut(key)?;
        let uuids = body::strings(body, "job_uuids", MAX_UUIDS)?;
        let lifetime = body::seconds(
            body,
            "token_lifetime_seconds",
            DEFAULT_SECONDS,
            MAX_SECONDS,
            self.over_maximum,
        )?;
        let until = now
            .checked_add(Duration::from_secs(lifetime))
            .map_err(|_| Refusal::bad_request("token_lifetime_seconds is out of range"))?;
        let (mut issued, mut not_issued) = (Vec::new(), Vec::new());
        for uuid in uuids {
            let held = self.job(&uuid).ok().and_then(|job| {
                let r = job.live_reservation(now).filter(|r| r.stack == key)?;
                (job.state == JobState::Scheduled).then_some((job.uuid, r.expires_at))
            });
            let Some((job, reservation_ends)) = held else {
                not_issued.push(uuid);
                continue;
            };
            let expires_at = until.min(reservation_ends);
            let value = token::mint(job, key, now, expires_at);
            self.tokens.insert(
                value.clone(),
                IssuedToken {
                    job,
                    stack: key.to_owned(),
                    expires_at,
                },
            );
            issued.push(json!({
                "job_uuid": job,
                "job_acquisition_token": value,
                "expires_at": expires_at.to_string(),
            }));
        }
        Ok((
            StatusCode::CREATED,
            json!({"job_acquisition_tokens": issued, "not_issued": not_issued}),
        ))
    }
}
