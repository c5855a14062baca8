//! [`StacksSim`]: start the Stacks API simulator, drive its cluster as Buildkite's users
//! would (add, cancel jobs; pause queues; let time pass), and read back what stacks did.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use secrecy::{ExposeSecret as _, SecretString};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::clock::Clock;
use super::config::StacksSimConfig;
use super::endpoints::router;
use super::job::{Credential, FinishRecord, JobSpec, Notification, Reservation};
use super::rate_limit::Limiter;
use super::refusal::Refusal;
use super::server::{Endpoint, lock};
use super::state::State;
use crate::agent::{AcquireError, AgentApi, JobScript};
use crate::fault::Faults;

/// Why the simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Could not listen on loopback.
    #[error("could not listen on 127.0.0.1 for the Stacks API simulator")]
    Bind(#[source] std::io::Error),
}

/// A job now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobSnapshot {
    /// The state get-states reports (`scheduled`, `reserved`, `running`, `finished`, ...).
    pub state: String,
    /// Its queue.
    pub queue: String,
    /// The live reservation, if any.
    pub reservation: Option<Reservation>,
    /// What a stack's finish recorded.
    pub finish: Option<FinishRecord>,
    /// Its timeline's stack notifications, in arrival order.
    pub notifications: Vec<Notification>,
    /// How an agent acquired it, if one did.
    pub acquired_with: Option<Credential>,
    /// How many times agents with a valid credential tried to acquire it (more than one
    /// means a job was launched twice).
    pub acquire_attempts: u32,
    /// The exit status, once finished (by a stack or by its agent).
    pub exit_status: Option<i64>,
}

/// A stack now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StackSnapshot {
    /// Its id.
    pub id: Uuid,
    /// `kubernetes`, `elastic` or `custom`.
    pub stack_type: String,
    /// The queue key it registered with.
    pub queue_key: String,
    /// Its metadata.
    pub metadata: BTreeMap<String, String>,
    /// `connected`, `lost` (silent past `disconnected_after`) or `disconnected`
    /// (deregistered).
    pub state: String,
    /// Its last register or scheduled-jobs poll.
    pub last_connected_on: Option<Timestamp>,
}

/// A queue now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueSnapshot {
    /// Its id (`cluster_queue.id`).
    pub id: Uuid,
    /// Whether dispatch is paused.
    pub dispatch_paused: bool,
    /// Whether some stack polled it within `disconnected_after` (the UI's "Connected").
    pub connected: bool,
}

/// Running totals.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StacksStats {
    /// Requests per endpoint: `token`, `register`, `deregister`, `list-scheduled-jobs`,
    /// `batch-reserve`, `show-job`, `batch-load-job-states`, `finish-job`,
    /// `stack-notification`, `job-acquisition-tokens`, `acquire`, `metrics`.
    pub requests: BTreeMap<&'static str, u64>,
    /// Requests answered 401.
    pub unauthorized: u64,
    /// Requests answered 429.
    pub rate_limited: u64,
    /// Requests that got an injected fault.
    pub faults_injected: u64,
}

impl StacksStats {
    /// All requests.
    pub fn total_requests(&self) -> u64 {
        self.requests.values().sum()
    }
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    requests: Mutex<BTreeMap<&'static str, u64>>,
    unauthorized: AtomicU64,
    rate_limited: AtomicU64,
    faults_injected: AtomicU64,
}

impl Counters {
    pub(crate) fn request(&self, endpoint: Endpoint) {
        *lock(&self.requests).entry(endpoint.name()).or_default() += 1;
    }
    pub(crate) fn unauthorized(&self) {
        self.unauthorized.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn rate_limited(&self) {
        self.rate_limited.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn fault(&self) {
        self.faults_injected.fetch_add(1, Ordering::Relaxed);
    }
}

/// Everything the handlers and the handle share.
pub(crate) struct Shared {
    pub(crate) state: Mutex<State>,
    pub(crate) limiter: Mutex<Limiter>,
    pub(crate) clock: Clock,
    pub(crate) faults: Faults,
    pub(crate) agent_token: SecretString,
    pub(crate) unclustered_agent_tokens: Vec<SecretString>,
    pub(crate) organization: String,
    pub(crate) cluster_name: String,
    pub(crate) metrics_poll_duration: Duration,
    pub(crate) stats: Counters,
    pub(crate) stop: CancellationToken,
}

impl Shared {
    pub(crate) fn acquire_with_token(
        &self,
        job: Uuid,
        token: &str,
        tags: Option<&[String]>,
    ) -> Result<JobScript, Refusal> {
        let now = self.clock.now().timestamp;
        let mut state = lock(&self.state);
        let credential = state.credential_for(token, self.agent_token.expose_secret(), job, now)?;
        state.acquire(job, credential, tags)
    }
}

/// The in-process seam the Kubernetes simulator's kubelet calls. It carries no token, so it
/// acquires as the cluster agent token would (checking the agent's tags); a test that needs
/// job acquisition tokens checked uses [`StacksSim::acquire`] or `PUT /v3/jobs/:id/acquire`.
impl AgentApi for Shared {
    fn acquire(&self, job: Uuid, tags: &[String]) -> Result<JobScript, AcquireError> {
        let mut state = lock(&self.state);
        let refusal = match state.acquire(job, Credential::ClusterToken, Some(tags)) {
            Ok(script) => return Ok(script),
            Err(refusal) => refusal,
        };
        Err(match state.jobs.get(&job) {
            None => AcquireError::NotFound(job),
            Some(j) if j.state != super::job::JobState::Scheduled => AcquireError::NotScheduled {
                job,
                state: j.state.as_str().to_owned(),
            },
            Some(_) => AcquireError::TagsMismatch(refusal.message),
        })
    }

    fn finish(&self, job: Uuid, exit_status: i32) {
        let now = self.clock.now().timestamp;
        lock(&self.state).agent_finished(job, exit_status, now);
    }
}

/// A running Stacks API simulator on `127.0.0.1`.
///
/// ```no_run
/// # async fn demo() -> Result<(), jobify_sim::stacks::Error> {
/// use jobify_sim::stacks::{JobSpec, StacksSim, StacksSimConfig};
/// let sim = StacksSim::start(StacksSimConfig::new("bkct_token").with_queue("kubernetes")).await?;
/// let job = sim.add_job(JobSpec::command("make test").on_queue("kubernetes"));
/// println!("Stacks API at {}, job {job}", sim.base_url());
/// sim.shutdown().await;
/// # Ok(())
/// # }
/// ```
pub struct StacksSim {
    shared: Arc<Shared>,
    addr: SocketAddr,
    server: JoinHandle<()>,
}

impl StacksSim {
    /// Starts serving on a free loopback port.
    pub async fn start(config: StacksSimConfig) -> Result<Self, Error> {
        let stop = CancellationToken::new();
        let shared = Arc::new(Shared {
            state: Mutex::new(State::new(&config)),
            limiter: Mutex::new(Limiter::new(config.rate_limits)),
            clock: Clock::new(),
            faults: Faults::new(config.faults),
            agent_token: config.agent_token,
            unclustered_agent_tokens: config.unclustered_agent_tokens,
            organization: config.organization,
            cluster_name: config.cluster_name,
            metrics_poll_duration: config.metrics_poll_duration,
            stats: Counters::default(),
            stop: stop.clone(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(Error::Bind)?;
        let addr = listener.local_addr().map_err(Error::Bind)?;
        let app = router(shared.clone());
        let until = stop.cancelled_owned();
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(until)
                .await
            {
                tracing::error!(error = %e, "Stacks API simulator stopped serving");
            }
        });
        tracing::debug!(%addr, "Stacks API simulator listening");
        Ok(StacksSim {
            shared,
            addr,
            server,
        })
    }

    /// `http://127.0.0.1:PORT/v3/`, the agent API's base (Stacks paths below `stacks/`).
    pub fn base_url(&self) -> String {
        format!("http://{}/v3/", self.addr)
    }

    /// What the Kubernetes simulator's agents call (acquire as the cluster token, finish).
    pub fn agent_api(&self) -> Arc<dyn AgentApi> {
        self.shared.clone()
    }

    /// The cluster's uuid (`GET /v3/token`'s `cluster_uuid`).
    pub fn cluster_uuid(&self) -> Uuid {
        lock(&self.shared.state).cluster_uuid
    }

    /// Moves the simulator's clock forward: reservations, tokens, liveness and rate-limit
    /// windows all see the new time.
    pub fn advance(&self, by: Duration) {
        self.shared.clock.advance(by);
    }

    /// Adds a `scheduled` job (its queue created as needed); returns its uuid.
    pub fn add_job(&self, spec: JobSpec) -> Uuid {
        let now = self.shared.clock.now().timestamp;
        lock(&self.shared.state).add_job(spec, now)
    }

    /// Creates self-hosted queue `key` unless it exists.
    pub fn add_queue(&self, key: &str) {
        lock(&self.shared.state).add_queue(key);
    }

    /// Pauses (or resumes) dispatch on queue `key`, as a user in the UI would; `false` if
    /// there is no such queue. `_default` and `__default__` name the default queue.
    pub fn pause_queue(&self, key: &str, paused: bool) -> bool {
        let mut state = lock(&self.shared.state);
        let key = state.queue_key(key).to_owned();
        match state.queues.get_mut(&key) {
            Some(q) => {
                q.dispatch_paused = paused;
                true
            }
            None => false,
        }
    }

    /// Cancels the job as a user would: `canceled` unless an agent runs it, then
    /// `canceling` (call again to make it `canceled`). `false` if it already ended.
    pub fn cancel_job(&self, job: Uuid) -> bool {
        let now = self.shared.clock.now().timestamp;
        lock(&self.shared.state).cancel(job, now)
    }

    /// An agent acquires `job` with `token` (the cluster token or a job acquisition token),
    /// as `PUT /v3/jobs/:id/acquire` does.
    pub fn acquire(&self, job: Uuid, token: &str) -> Result<JobScript, Refusal> {
        self.shared.acquire_with_token(job, token, None)
    }

    /// The job's agent reports its exit status: `running` -> `finished`.
    pub fn agent_finished(&self, job: Uuid, exit_status: i32) {
        AgentApi::finish(self.shared.as_ref(), job, exit_status);
    }

    /// The job now, or `None` if there is no such job.
    pub fn job(&self, job: Uuid) -> Option<JobSnapshot> {
        let now = self.shared.clock.now().timestamp;
        let state = lock(&self.shared.state);
        let j = state.jobs.get(&job)?;
        Some(JobSnapshot {
            state: j.reported_state(now).to_owned(),
            queue: j.queue.clone(),
            reservation: j.live_reservation(now).cloned(),
            finish: j.finish.clone(),
            notifications: j.notifications.clone(),
            acquired_with: j.acquired_with.clone(),
            acquire_attempts: j.acquire_attempts,
            exit_status: j.exit_status,
        })
    }

    /// The job's timeline notifications, in arrival order (empty for an unknown job).
    pub fn notifications(&self, job: Uuid) -> Vec<Notification> {
        self.job(job).map(|j| j.notifications).unwrap_or_default()
    }

    /// What a stack's finish recorded for the job.
    pub fn finish_record(&self, job: Uuid) -> Option<FinishRecord> {
        self.job(job)?.finish
    }

    /// The job's live reservation.
    pub fn reservation(&self, job: Uuid) -> Option<Reservation> {
        self.job(job)?.reservation
    }

    /// Every live reservation, by job uuid.
    pub fn reservations(&self) -> BTreeMap<Uuid, Reservation> {
        let now = self.shared.clock.now().timestamp;
        let state = lock(&self.shared.state);
        state
            .jobs
            .values()
            .filter_map(|j| Some((j.uuid, j.live_reservation(now)?.clone())))
            .collect()
    }

    /// Stack `key` now (registered or deregistered), or `None` if it never registered.
    pub fn stack(&self, key: &str) -> Option<StackSnapshot> {
        let now = self.shared.clock.now().timestamp;
        let state = lock(&self.shared.state);
        let s = state.stacks.get(key)?;
        Some(StackSnapshot {
            id: s.id,
            stack_type: s.stack_type.clone(),
            queue_key: s.queue_key.clone(),
            metadata: s.metadata.clone(),
            state: state.stack_state(s, now).to_owned(),
            last_connected_on: s.last_connected_on,
        })
    }

    /// Queue `key` now.
    pub fn queue(&self, key: &str) -> Option<QueueSnapshot> {
        let now = self.shared.clock.now().timestamp;
        let state = lock(&self.shared.state);
        let q = state.queue(key).ok()?;
        Some(QueueSnapshot {
            id: q.id,
            dispatch_paused: q.dispatch_paused,
            connected: q
                .last_polled
                .is_some_and(|t| now.duration_since(t) < state.disconnected_after),
        })
    }

    /// Running totals.
    pub fn stats(&self) -> StacksStats {
        let c = &self.shared.stats;
        StacksStats {
            requests: lock(&c.requests).clone(),
            unauthorized: c.unauthorized.load(Ordering::Relaxed),
            rate_limited: c.rate_limited.load(Ordering::Relaxed),
            faults_injected: c.faults_injected.load(Ordering::Relaxed),
        }
    }

    /// Stops serving and waits for the server task to end.
    pub async fn shutdown(self) {
        self.shared.stop.cancel();
        if let Err(e) = self.server.await {
            tracing::warn!(error = %e, "Stacks API simulator task ended abnormally");
        }
    }
}
