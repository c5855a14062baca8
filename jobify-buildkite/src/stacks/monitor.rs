//! [`StacksMonitor`]: what Buildkite has for this stack, by the Stacks API, with only an
//! agent token.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use buildkite_api::stacks::{
    MAX_BATCH, RegisterStack, ScheduledJobsQuery, StackJob, StacksClient, StacksJobState,
};
use futures::stream::{self, StreamExt};
use jobify_core::{
    Claim, JobId, JobState, Monitor, MonitorError, PageToken, ScheduledJob, ScheduledPage,
};
use secrecy::SecretString;
use tokio::time::Instant;

use super::intake::{job_state, raw_job};
use super::reservations::Reservations;
use super::settings::StacksSettings;

/// How many job details are fetched at once while a page is read.
const DETAIL_CONCURRENCY: usize = 16;

/// How many sweeps a job's details stay cached without the job being listed.
const DETAIL_SWEEPS: u64 = 3;

/// [`Monitor`] over the Stacks API.
///
/// A sweep lists each served queue's scheduled jobs in turn, oldest first, one page per
/// [`Monitor::scheduled`] call. The listing carries only what orders a job (priority, rules,
/// when it was scheduled); a job's command and environment, which the policy reads (the
/// `kubernetes` plugin), come from one more request per job, made once per job and cached
/// while the job is listed. A paused queue (`dispatch_paused`) lists no job.
///
/// Jobs are [reserved](Monitor::reserve) just before they launch, so no other stack
/// launches them, and each comes with a job acquisition token when
/// [`StacksSettings::job_tokens`] is on. What the monitor reserved is listed again at the
/// start of every sweep while Buildkite still says `reserved`, with the reservations
/// extended as they near their end (see `reservations.rs`).
pub struct StacksMonitor {
    client: StacksClient,
    settings: StacksSettings,
    memory: Mutex<Memory>,
}

/// What the monitor keeps between calls.
#[derive(Debug, Default)]
struct Memory {
    /// The details of listed jobs, with the sweep that last listed each.
    details: HashMap<JobId, (ScheduledJob, u64)>,
    /// Sweeps started.
    sweep: u64,
    /// What this stack reserved.
    reservations: Reservations,
    /// Per queue: whether its last listing said dispatch is paused.
    paused: Vec<bool>,
}

/// Where a page starts: the queue, and the cursor within its list.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Position {
    queue: usize,
    after: Option<String>,
}

impl Position {
    fn token(&self) -> PageToken {
        PageToken::new(format!(
            "{}:{}",
            self.queue,
            self.after.as_deref().unwrap_or_default()
        ))
    }

    fn from_token(token: &PageToken) -> Option<Self> {
        let (queue, after) = token.as_str().split_once(':')?;
        Some(Position {
            queue: queue.parse().ok()?,
            after: Some(after.to_owned()).filter(|after| !after.is_empty()),
        })
    }
}

/// Sorts a client error the way the scheduler acts on it.
pub(crate) fn monitor_error(error: buildkite_api::Error) -> MonitorError {
    match error {
        buildkite_api::Error::RateLimited { retry_after, .. } => MonitorError::RateLimited {
            retry_after: retry_after.unwrap_or(Duration::from_secs(1)),
        },
        buildkite_api::Error::Unauthorized { .. } => MonitorError::Unauthorized(Box::new(error)),
        other => MonitorError::Transient(Box::new(other)),
    }
}

impl StacksMonitor {
    /// A monitor for the stack `settings.stack_key`, which must be registered (see
    /// [`register_stack`](super::register_stack)).
    pub fn new(client: StacksClient, settings: StacksSettings) -> Self {
        let queues = settings.queues.len();
        StacksMonitor {
            client,
            memory: Mutex::new(Memory {
                paused: vec![false; queues],
                ..Memory::default()
            }),
            settings,
        }
    }

    fn memory(&self) -> MutexGuard<'_, Memory> {
        // Plain maps: still meaningful after a panic elsewhere.
        self.memory.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn key(&self) -> &str {
        &self.settings.stack_key
    }

    /// The jobs this stack holds that Buildkite still has reserved, listed again at the
    /// start of a sweep; their reservations are extended when due. A failed check lists
    /// none of them this sweep (and forgets nothing).
    async fn still_reserved(&self) -> Vec<ScheduledJob> {
        let held = self.memory().reservations.jobs();
        if held.is_empty() {
            return Vec::new();
        }
        let mut reserved = Vec::new();
        let mut ended = Vec::new();
        for batch in held.chunks(MAX_BATCH) {
            let uuids: Vec<String> = batch.iter().map(ToString::to_string).collect();
            match self.client.job_states(self.key(), &uuids).await {
                Ok(states) => {
                    for id in batch {
                        match states.get(&id.to_string()) {
                            Some(StacksJobState::Reserved) => reserved.push(*id),
                            _ => ended.push(*id),
                        }
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, jobs = batch.len(), "could not check the jobs this stack reserved; they are not listed this sweep");
                }
            }
        }
        let due = {
            let mut memory = self.memory();
            for id in &ended {
                memory.reservations.release(*id);
            }
            let expiry = self.settings.reservation_expiry;
            memory
                .reservations
                .due_for_extension(&reserved, Instant::now(), expiry)
        };
        for batch in due.chunks(MAX_BATCH) {
            let uuids: Vec<String> = batch.iter().map(ToString::to_string).collect();
            match self
                .client
                .reserve(self.key(), &uuids, Some(self.settings.reservation_expiry))
                .await
            {
                Ok(answer) => {
                    let expires = Instant::now() + self.settings.reservation_expiry;
                    let mut memory = self.memory();
                    for uuid in &answer.reserved {
                        if let Ok(id) = uuid.parse() {
                            memory.reservations.extend(id, expires);
                        }
                    }
                    tracing::debug!(
                        extended = answer.reserved.len(),
                        lost = answer.not_reserved.len(),
                        "extended reservations"
                    );
                }
                Err(error) => {
                    tracing::warn!(%error, jobs = batch.len(), "extending reservations failed; trying again next sweep");
                }
            }
        }
        let memory = self.memory();
        reserved
            .iter()
            .filter_map(|id| memory.reservations.get(*id).map(|held| held.job.clone()))
            .collect()
    }

    /// The listed jobs as the scheduler takes them: cached details where the job was listed
    /// before, else one request each (a few at a time). A job whose details cannot be read
    /// or make no sense is left out of this page and logged; the others go on.
    async fn with_details(&self, listed: Vec<StackJob>, sweep: u64) -> Vec<ScheduledJob> {
        let mut jobs = Vec::with_capacity(listed.len());
        let mut missing = Vec::new();
        {
            let mut memory = self.memory();
            for entry in listed {
                let cached = entry
                    .id
                    .parse::<JobId>()
                    .ok()
                    .and_then(|id| memory.details.get_mut(&id));
                match cached {
                    Some((job, seen)) => {
                        *seen = sweep;
                        jobs.push(job.clone());
                    }
                    None => missing.push(entry),
                }
            }
        }
        let fetched: Vec<Option<ScheduledJob>> = stream::iter(missing)
            .map(|entry| async move {
                let details = match self.client.job(self.key(), &entry.id).await {
                    Ok(details) => details,
                    Err(error) => {
                        tracing::warn!(job = %entry.id, %error, "could not read a scheduled job's details; it waits for the next sweep");
                        return None;
                    }
                };
                match ScheduledJob::from_raw(raw_job(&entry, details)) {
                    Ok(job) => Some(job),
                    Err(error) => {
                        tracing::warn!(job = %entry.id, %error, "ignoring a scheduled job");
                        None
                    }
                }
            })
            .buffered(DETAIL_CONCURRENCY)
            .collect()
            .await;
        let mut memory = self.memory();
        for job in fetched.into_iter().flatten() {
            memory.details.insert(job.id, (job.clone(), sweep));
            jobs.push(job);
        }
        jobs.sort_by_key(|job| job.scheduled_at);
        jobs
    }
}

#[async_trait]
impl Monitor for StacksMonitor {
    async fn scheduled(&self, from: Option<PageToken>) -> Result<ScheduledPage, MonitorError> {
        let at = match from.as_ref().map(Position::from_token) {
            None => Position {
                queue: 0,
                after: None,
            },
            Some(Some(at)) if at.queue < self.settings.queues.len() => at,
            Some(_) => {
                tracing::warn!(token = ?from, "a page token this monitor did not make; starting the sweep over");
                Position {
                    queue: 0,
                    after: None,
                }
            }
        };
        let starts_sweep = from.is_none();
        let sweep = {
            let mut memory = self.memory();
            if starts_sweep {
                memory.sweep += 1;
                let sweep = memory.sweep;
                memory
                    .details
                    .retain(|_, (_, seen)| sweep.saturating_sub(*seen) < DETAIL_SWEEPS);
            }
            memory.sweep
        };
        let mut jobs = if starts_sweep {
            self.still_reserved().await
        } else {
            Vec::new()
        };
        let queue = &self.settings.queues[at.queue];
        let mut query =
            ScheduledJobsQuery::first_page(queue.clone()).limit(self.settings.page_size);
        if let Some(after) = &at.after {
            query = query.after(after.clone());
        }
        let page = match self.client.scheduled_jobs(self.key(), &query).await {
            Ok(page) => page,
            // The stack is gone: another installation with the same key deregistered it, or
            // Buildkite forgot it. Registering is idempotent: join again and list once more.
            Err(error) if error.status() == Some(404) => {
                tracing::warn!(stack = %self.key(), %error, "Buildkite does not know this stack (deregistered by another process sharing its key?); registering it again");
                self.client
                    .register(&RegisterStack::custom(self.key(), &self.settings.queues[0]))
                    .await
                    .map_err(monitor_error)?;
                self.client
                    .scheduled_jobs(self.key(), &query)
                    .await
                    .map_err(monitor_error)?
            }
            Err(error) => return Err(monitor_error(error)),
        };
        let next_list = (at.queue + 1 < self.settings.queues.len()).then(|| Position {
            queue: at.queue + 1,
            after: None,
        });
        let paused = page.cluster_queue.dispatch_paused;
        {
            let mut memory = self.memory();
            if let Some(was) = memory.paused.get_mut(at.queue)
                && *was != paused
            {
                *was = paused;
                if paused {
                    tracing::info!(%queue, "dispatch is paused on the queue in Buildkite; starting none of its jobs");
                } else {
                    tracing::info!(%queue, "dispatch resumed on the queue");
                }
            }
        }
        let next = if paused {
            next_list.clone()
        } else {
            match page
                .page_info
                .end_cursor
                .filter(|_| page.page_info.has_next_page)
            {
                Some(cursor) => Some(Position {
                    queue: at.queue,
                    after: Some(cursor),
                }),
                None => next_list.clone(),
            }
        };
        if !paused {
            let pipelines = &self.settings.pipelines;
            let listed = page
                .jobs
                .into_iter()
                .filter(|job| {
                    pipelines.is_empty()
                        || job
                            .pipeline
                            .slug
                            .as_ref()
                            .is_some_and(|slug| pipelines.contains(slug))
                })
                .collect();
            jobs.extend(self.with_details(listed, sweep).await);
        }
        Ok(ScheduledPage {
            jobs,
            next: next.as_ref().map(Position::token),
            next_list: next_list.as_ref().map(Position::token),
        })
    }

    async fn states(&self, jobs: &[JobId]) -> Result<Vec<(JobId, JobState)>, MonitorError> {
        let mut states = Vec::with_capacity(jobs.len());
        for batch in jobs.chunks(MAX_BATCH) {
            let uuids: Vec<String> = batch.iter().map(ToString::to_string).collect();
            let answer = self
                .client
                .job_states(self.key(), &uuids)
                .await
                .map_err(monitor_error)?;
            states.extend(
                batch
                    .iter()
                    .filter_map(|id| answer.get(&id.to_string()).map(|s| (*id, job_state(s)))),
            );
        }
        Ok(states)
    }

    fn reserves(&self) -> bool {
        true
    }

    async fn reserve(&self, jobs: &[JobId]) -> Result<Vec<Claim>, MonitorError> {
        let mut claims = Vec::with_capacity(jobs.len());
        for batch in jobs.chunks(MAX_BATCH) {
            claims.extend(self.reserve_batch(batch).await?);
        }
        Ok(claims)
    }
}

impl StacksMonitor {
    async fn reserve_batch(&self, jobs: &[JobId]) -> Result<Vec<Claim>, MonitorError> {
        let uuids: Vec<String> = jobs.iter().map(ToString::to_string).collect();
        let expiry = self.settings.reservation_expiry;
        let answer = match self.client.reserve(self.key(), &uuids, Some(expiry)).await {
            Ok(answer) => answer,
            Err(error) => {
                // Buildkite may have reserved them before the answer was lost: remember them,
                // so the next sweep finds out and lists them if so.
                self.remember(jobs, Instant::now() + expiry);
                return Err(monitor_error(error));
            }
        };
        let reserved: Vec<JobId> = answer
            .reserved
            .iter()
            .filter_map(|uuid| uuid.parse().ok())
            .collect();
        self.remember(&reserved, Instant::now() + expiry);
        if !answer.not_reserved.is_empty() {
            tracing::debug!(
                jobs = answer.not_reserved.len(),
                "not reserved: another stack or an agent has them, or they are no longer scheduled"
            );
        }
        if !self.settings.job_tokens || reserved.is_empty() {
            return Ok(reserved.into_iter().map(Claim::without_token).collect());
        }
        let uuids: Vec<String> = reserved.iter().map(ToString::to_string).collect();
        // Reserved, but without a token no pod may start: the reservations stay, and the
        // next sweep lists these jobs again and tries once more.
        let issued = self
            .client
            .job_acquisition_tokens(self.key(), &uuids, self.settings.token_lifetime)
            .await
            .map_err(monitor_error)?;
        if !issued.not_issued.is_empty() {
            tracing::warn!(jobs = ?issued.not_issued, "Buildkite issued no job token for reserved jobs; they wait for the next sweep");
        }
        let mut tokens: HashMap<String, SecretString> = issued
            .tokens
            .into_iter()
            .map(|token| (token.job_uuid, token.token))
            .collect();
        Ok(reserved
            .into_iter()
            .filter_map(|job| {
                tokens.remove(&job.to_string()).map(|token| Claim {
                    job,
                    agent_token: Some(token),
                })
            })
            .collect())
    }

    /// Remembers `jobs` as reserved until `expires`, with the details the listing gave.
    fn remember(&self, jobs: &[JobId], expires: Instant) {
        let mut memory = self.memory();
        for id in jobs {
            if memory.reservations.get(*id).is_some() {
                memory.reservations.extend(*id, expires);
            } else if let Some((job, _)) = memory.details.get(id).cloned() {
                memory.reservations.hold(job, expires);
            }
        }
    }

    /// Deregisters the stack: call on a clean shutdown, so the organization's stack quota
    /// is not held by a stack that has gone. Best effort: Buildkite cleans up stacks that
    /// stop polling too.
    pub async fn deregister(&self) -> Result<(), buildkite_api::Error> {
        self.client.deregister(self.key()).await
    }
}
