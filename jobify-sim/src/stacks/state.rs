//! The simulated cluster as the Stacks API sees it: queues, registered stacks, jobs and the
//! job acquisition tokens issued for them. Synchronous; the server and the handle share it
//! behind one mutex and pass the clock's reading in, so every rule is a plain function of
//! (state, request, now).

use std::collections::{BTreeMap, HashMap};

use jiff::{SignedDuration, Timestamp};
use uuid::Uuid;

use super::config::{OverMaximum, StacksSimConfig};
use super::job::{Credential, Job, JobSpec, JobState};
use super::refusal::Refusal;
use crate::agent::JobScript;

/// A self-hosted queue.
#[derive(Clone, Debug)]
pub(crate) struct Queue {
    pub(crate) id: Uuid,
    pub(crate) key: String,
    pub(crate) dispatch_paused: bool,
    /// The last scheduled-jobs poll of this queue by any stack.
    pub(crate) last_polled: Option<Timestamp>,
}

/// A registered (or since deregistered) stack.
#[derive(Clone, Debug)]
pub(crate) struct Stack {
    pub(crate) id: Uuid,
    pub(crate) key: String,
    pub(crate) stack_type: String,
    /// The queue key as registered (a sentinel stays a sentinel).
    pub(crate) queue_key: String,
    pub(crate) metadata: BTreeMap<String, String>,
    pub(crate) last_connected_on: Option<Timestamp>,
    pub(crate) registered: bool,
}

/// A job acquisition token the simulator issued.
#[derive(Clone, Debug)]
pub(crate) struct IssuedToken {
    pub(crate) job: Uuid,
    pub(crate) stack: String,
    pub(crate) expires_at: Timestamp,
}

/// Everything the Stacks API serves.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) organization_uuid: Uuid,
    /// The organization's slug, in every job's env.
    pub(crate) organization: String,
    pub(crate) cluster_uuid: Uuid,
    /// The cluster agent token's own uuid (`GET /v3/token`).
    pub(crate) token_uuid: Uuid,
    pub(crate) default_queue: String,
    pub(crate) queues: BTreeMap<String, Queue>,
    pub(crate) stacks: BTreeMap<String, Stack>,
    pub(crate) jobs: HashMap<Uuid, Job>,
    pub(crate) tokens: HashMap<String, IssuedToken>,
    pub(crate) max_stacks: usize,
    pub(crate) disconnected_after: SignedDuration,
    pub(crate) default_list_limit: usize,
    pub(crate) over_maximum: OverMaximum,
    pub(crate) notification_clock_skew: SignedDuration,
    next_seq: u64,
}

impl State {
    pub(crate) fn new(config: &StacksSimConfig) -> Self {
        let mut state = State {
            organization_uuid: Uuid::new_v4(),
            organization: config.organization.clone(),
            cluster_uuid: Uuid::new_v4(),
            token_uuid: Uuid::new_v4(),
            default_queue: config.default_queue.clone(),
            queues: BTreeMap::new(),
            stacks: BTreeMap::new(),
            jobs: HashMap::new(),
            tokens: HashMap::new(),
            max_stacks: config.max_stacks,
            disconnected_after: signed(config.disconnected_after),
            default_list_limit: config.default_list_limit,
            over_maximum: config.over_maximum,
            notification_clock_skew: signed(config.notification_clock_skew),
            next_seq: 0,
        };
        state.add_queue(&config.default_queue);
        for key in &config.queues {
            state.add_queue(key);
        }
        state
    }

    /// Creates queue `key` unless it exists.
    pub(crate) fn add_queue(&mut self, key: &str) {
        self.queues.entry(key.to_owned()).or_insert_with(|| Queue {
            id: Uuid::new_v4(),
            key: key.to_owned(),
            dispatch_paused: false,
            last_polled: None,
        });
    }

    /// The queue `key` names: `_default` (what the Go client sends) and `__default__` (what
    /// the docs say) both mean the cluster's default queue.
    pub(crate) fn queue_key<'k>(&'k self, key: &'k str) -> &'k str {
        match key {
            "_default" | "__default__" => &self.default_queue,
            other => other,
        }
    }

    pub(crate) fn queue(&self, key: &str) -> Result<&Queue, Refusal> {
        let key = self.queue_key(key);
        self.queues.get(key).ok_or_else(|| {
            Refusal::not_found(format!("No self-hosted queue found with key {key:?}"))
        })
    }

    /// The registered stack `key`, or the 404 Buildkite answers once it is deregistered.
    pub(crate) fn stack_mut(&mut self, key: &str) -> Result<&mut Stack, Refusal> {
        self.stacks
            .get_mut(key)
            .filter(|s| s.registered)
            .ok_or_else(|| Refusal::not_found("Stack not found with the provided key"))
    }

    pub(crate) fn job(&self, uuid: &str) -> Result<&Job, Refusal> {
        Uuid::parse_str(uuid)
            .ok()
            .and_then(|u| self.jobs.get(&u))
            .ok_or_else(|| Refusal::not_found("Job not found"))
    }

    pub(crate) fn job_mut(&mut self, uuid: &str) -> Result<&mut Job, Refusal> {
        Uuid::parse_str(uuid)
            .ok()
            .and_then(|u| self.jobs.get_mut(&u))
            .ok_or_else(|| Refusal::not_found("Job not found"))
    }

    /// Adds a `scheduled` job (its queue created as needed).
    pub(crate) fn add_job(&mut self, spec: JobSpec, now: Timestamp) -> Uuid {
        let queue = spec
            .queue
            .clone()
            .unwrap_or_else(|| self.default_queue.clone());
        self.add_queue(&queue);
        let uuid = Uuid::new_v4();
        self.next_seq += 1;
        let build_uuid = Uuid::new_v4();
        let env = job_env(&self.organization, uuid, &spec);
        let job = Job {
            uuid,
            seq: self.next_seq,
            queue,
            state: JobState::Scheduled,
            env,
            pipeline_uuid: Uuid::new_v4(),
            build_uuid,
            created_at: now,
            scheduled_at: now,
            finished_at: None,
            reservation: None,
            finish: None,
            notifications: Vec::new(),
            acquired_with: None,
            acquire_attempts: 0,
            exit_status: None,
            spec,
        };
        self.jobs.insert(uuid, job);
        uuid
    }

    /// A user cancels the job: `canceled` at once unless an agent runs it (`canceling` until
    /// the agent stops). `false` when it already ended or does not exist.
    pub(crate) fn cancel(&mut self, uuid: Uuid, now: Timestamp) -> bool {
        let Some(job) = self.jobs.get_mut(&uuid) else {
            return false;
        };
        match job.state {
            JobState::Scheduled => {
                job.state = JobState::Canceled;
                job.reservation = None;
                job.finished_at = Some(now);
            }
            JobState::Running => job.state = JobState::Canceling,
            JobState::Canceling => {
                job.state = JobState::Canceled;
                job.finished_at = Some(now);
            }
            JobState::Finished | JobState::Canceled => return false,
        }
        true
    }

    /// Which credential `token` is, for acquiring `job` at `now`: the cluster token, or an
    /// unexpired job acquisition token whose subject is `job` (422 for another job's).
    pub(crate) fn credential_for(
        &self,
        token: &str,
        cluster_token: &str,
        job: Uuid,
        now: Timestamp,
    ) -> Result<Credential, Refusal> {
        if token == cluster_token {
            return Ok(Credential::ClusterToken);
        }
        let issued = self
            .tokens
            .get(token)
            .ok_or_else(|| Refusal::unauthorized("Invalid or missing agent token"))?;
        if issued.expires_at <= now {
            return Err(Refusal::unauthorized(
                "This job acquisition token has expired",
            ));
        }
        if issued.job != job {
            return Err(Refusal::unprocessable(
                "This job acquisition token can only acquire its own job",
            ));
        }
        Ok(Credential::JobAcquisitionToken {
            stack: issued.stack.clone(),
        })
    }

    /// An agent holding `credential` (with `tags`, when it has any to check) acquires `job`:
    /// `scheduled` (reserved or not) -> `running`; the reservation ends.
    pub(crate) fn acquire(
        &mut self,
        job: Uuid,
        credential: Credential,
        tags: Option<&[String]>,
    ) -> Result<JobScript, Refusal> {
        let record = self
            .jobs
            .get_mut(&job)
            .ok_or_else(|| Refusal::not_found("Job not found"))?;
        record.acquire_attempts += 1;
        if record.state != JobState::Scheduled {
            return Err(Refusal::unprocessable(format!(
                "Job is {} and can no longer be acquired",
                record.state.as_str()
            )));
        }
        if let Some(tags) = tags {
            record.tags_match(tags).map_err(Refusal::unprocessable)?;
        }
        record.state = JobState::Running;
        record.reservation = None;
        record.acquired_with = Some(credential);
        Ok(record.spec.script)
    }

    /// The agent's command exited: `running` -> `finished`, `canceling` -> `canceled`.
    pub(crate) fn agent_finished(&mut self, job: Uuid, exit_status: i32, now: Timestamp) {
        let Some(record) = self.jobs.get_mut(&job) else {
            tracing::warn!(%job, "finish for an unknown job ignored");
            return;
        };
        record.state = match record.state {
            JobState::Running => JobState::Finished,
            JobState::Canceling => JobState::Canceled,
            other => {
                tracing::warn!(%job, state = other.as_str(), "agent finish ignored");
                return;
            }
        };
        record.exit_status = Some(i64::from(exit_status));
        record.finished_at = Some(now);
    }
}

pub(crate) fn signed(d: std::time::Duration) -> SignedDuration {
    SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX)
}

/// The env get-job answers: the `BUILDKITE_*` variables a stack reads, then the step's.
fn job_env(organization: &str, uuid: Uuid, spec: &JobSpec) -> BTreeMap<String, String> {
    let build_url = format!(
        "https://buildkite.com/{organization}/{}/builds/{}",
        spec.pipeline, spec.build_number
    );
    let mut env: BTreeMap<String, String> = [
        ("BUILDKITE", "true".to_owned()),
        ("BUILDKITE_JOB_ID", uuid.to_string()),
        ("BUILDKITE_ORGANIZATION_SLUG", organization.to_owned()),
        ("BUILDKITE_COMMAND", spec.command.clone()),
        ("BUILDKITE_PIPELINE_SLUG", spec.pipeline.clone()),
        ("BUILDKITE_BUILD_NUMBER", spec.build_number.to_string()),
        ("BUILDKITE_BUILD_URL", build_url),
        ("BUILDKITE_BRANCH", spec.branch.clone()),
        (
            "BUILDKITE_REPO",
            format!("https://github.com/{organization}/{}.git", spec.pipeline),
        ),
        (
            "BUILDKITE_AGENT_META_DATA_QUEUE",
            spec.queue.clone().unwrap_or_default(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    if let Some(key) = &spec.step_key {
        env.insert("BUILDKITE_STEP_KEY".to_owned(), key.clone());
    }
    if let Some(plugins) = &spec.plugins {
        env.insert("BUILDKITE_PLUGINS".to_owned(), plugins.clone());
    }
    env.extend(spec.env.clone());
    env
}
