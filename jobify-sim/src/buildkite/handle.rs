//! [`BuildkiteSim`]: start the simulator, drive its organization like Buildkite's users and
//! agents would, and read back what jobify did to it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use apollo_compiler::Schema;
use apollo_compiler::validation::Valid;
use secrecy::SecretString;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::ids::{NodeKind, node_id};
use super::job::{Annotation, JobSpec};
use super::rate_limit::{Budget, Limits};
use super::schema;
use super::server::{lock, router};
use super::state::State;
use crate::agent::{AcquireError, AgentApi, JobScript};
use crate::fault::{FaultConfig, Faults};

/// Why the simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The shared subset schema (`buildkite-api/graphql/schema.graphql`) does not validate.
    #[error("the simulator's GraphQL schema buildkite-api/graphql/schema.graphql is invalid: {0}")]
    Schema(String),
    /// Could not listen on loopback.
    #[error("could not listen on 127.0.0.1 for the Buildkite simulator")]
    Bind(#[source] std::io::Error),
}

/// How to start a [`BuildkiteSim`].
#[derive(Clone, Debug)]
pub struct BuildkiteSimConfig {
    /// The organization's slug.
    pub organization: String,
    /// API access tokens accepted by `POST /v1` (`Authorization: Bearer ...`).
    pub api_tokens: Vec<SecretString>,
    /// The agent token accepted by `GET /v3/metrics` (`Authorization: Token ...`).
    pub agent_token: SecretString,
    /// Faults injected into GraphQL requests.
    pub faults: FaultConfig,
    /// Faults injected into metrics requests.
    pub metrics_faults: FaultConfig,
    /// The organization's complexity budget.
    pub budget: Budget,
    /// Each user's (API token's) complexity budget. Buildkite set it equal to the
    /// organization's for existing organizations.
    pub user_budget: Budget,
    /// What `Buildkite-Agent-Metrics-Poll-Duration` suggests.
    pub metrics_poll_duration: Duration,
}

impl BuildkiteSimConfig {
    /// Organization `organization` accepting one API token and one agent token, no faults,
    /// Buildkite's default budget, a 15 s metrics poll.
    pub fn new(organization: &str, api_token: &str, agent_token: &str) -> Self {
        BuildkiteSimConfig {
            organization: organization.to_owned(),
            api_tokens: vec![SecretString::from(api_token)],
            agent_token: SecretString::from(agent_token),
            faults: FaultConfig::none(),
            metrics_faults: FaultConfig::none(),
            budget: Budget::default(),
            user_budget: Budget::default(),
            metrics_poll_duration: Duration::from_secs(15),
        }
    }
}

/// A job as created by [`BuildkiteSim::schedule_job`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobHandle {
    /// The job's uuid.
    pub uuid: Uuid,
    /// Its GraphQL id (`JobTypeCommand---<uuid>` in base64).
    pub graphql_id: String,
    /// Its build's number.
    pub build_number: u64,
    /// Its pipeline's GraphQL id.
    pub pipeline_graphql_id: String,
}

/// What a job looks like now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobSnapshot {
    /// `JobStates` value (`SCHEDULED`, `RUNNING`, `FINISHED`, `CANCELED`, ...).
    pub state: String,
    /// The exit status, once finished.
    pub exit_status: Option<i32>,
    /// Bodies of the job's annotations (`jobAnnotate`).
    pub annotations: Vec<String>,
    /// The job's annotations in full.
    pub annotation_details: Vec<Annotation>,
    /// Cancelled through the `jobTypeCommandCancel` mutation.
    pub canceled_by_api: bool,
    /// How many times agents tried to acquire it.
    pub acquired_count: u32,
    /// The name of the agent that ran it.
    pub agent: Option<String>,
}

/// Running totals, for tests and benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BuildkiteStats {
    /// `POST /v1` requests (all of them, refused ones included).
    pub graphql_requests: u64,
    /// Sum of requested complexity over executed queries.
    pub requested_complexity: u64,
    /// Sum of actual complexity over executed queries.
    pub actual_complexity: u64,
    /// `GET /v3/metrics` requests.
    pub metrics_requests: u64,
    /// GraphQL answers (HTTP 200) that carried an `errors` array, injected faults aside.
    pub graphql_errors: u64,
    /// Requests answered 429.
    pub rate_limited: u64,
    /// Requests answered 401.
    pub unauthorized: u64,
    /// Requests that got an injected fault.
    pub faults_injected: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) graphql_requests: AtomicU64,
    pub(crate) requested_complexity: AtomicU64,
    pub(crate) actual_complexity: AtomicU64,
    pub(crate) metrics_requests: AtomicU64,
    pub(crate) graphql_errors: AtomicU64,
    pub(crate) rate_limited: AtomicU64,
    pub(crate) unauthorized: AtomicU64,
    pub(crate) faults_injected: AtomicU64,
}

/// Everything the handlers and the handle share.
pub(crate) struct Shared {
    pub(crate) schema: Arc<Valid<Schema>>,
    pub(crate) state: Mutex<State>,
    pub(crate) limits: Mutex<Limits>,
    pub(crate) graphql_faults: Faults,
    pub(crate) metrics_faults: Faults,
    pub(crate) api_tokens: Vec<SecretString>,
    pub(crate) agent_token: SecretString,
    pub(crate) metrics_poll_duration: Duration,
    pub(crate) stats: Counters,
    /// Cancelled when the simulator shuts down.
    pub(crate) stop: CancellationToken,
}

impl AgentApi for Shared {
    fn acquire(&self, job: Uuid, tags: &[String]) -> Result<JobScript, AcquireError> {
        lock(&self.state).acquire(job, tags)
    }

    fn finish(&self, job: Uuid, exit_status: i32) {
        lock(&self.state).finish(job, exit_status);
    }
}

/// A running Buildkite simulator on `127.0.0.1`.
///
/// ```no_run
/// # async fn demo() -> Result<(), jobify_sim::buildkite::Error> {
/// use jobify_sim::buildkite::{BuildkiteSim, BuildkiteSimConfig, JobSpec};
/// let bk = BuildkiteSim::start(BuildkiteSimConfig::new("acme", "api-token", "agent-token")).await?;
/// let job = bk.schedule_job(JobSpec::command("make test").on_queue("kubernetes"));
/// println!("GraphQL at {}, job {}", bk.graphql_url(), job.uuid);
/// bk.shutdown().await;
/// # Ok(())
/// # }
/// ```
pub struct BuildkiteSim {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: CancellationToken,
    server: JoinHandle<()>,
}

impl BuildkiteSim {
    /// Starts serving on a free loopback port.
    pub async fn start(config: BuildkiteSimConfig) -> Result<Self, Error> {
        let schema = schema::load().map_err(Error::Schema)?;
        let stop = CancellationToken::new();
        let shared = Arc::new(Shared {
            schema,
            state: Mutex::new(State::new(&config.organization)),
            limits: Mutex::new(Limits::new(
                config.budget,
                config.user_budget,
                config.api_tokens.len(),
            )),
            graphql_faults: Faults::new(config.faults),
            metrics_faults: Faults::new(config.metrics_faults),
            api_tokens: config.api_tokens,
            agent_token: config.agent_token,
            metrics_poll_duration: config.metrics_poll_duration,
            stats: Counters::default(),
            stop: stop.clone(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(Error::Bind)?;
        let addr = listener.local_addr().map_err(Error::Bind)?;
        let app = router(shared.clone());
        let until = stop.clone().cancelled_owned();
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(until)
                .await
            {
                tracing::error!(error = %e, "Buildkite simulator stopped serving");
            }
        });
        tracing::debug!(%addr, "Buildkite simulator listening");
        Ok(BuildkiteSim {
            shared,
            addr,
            stop,
            server,
        })
    }

    /// `http://127.0.0.1:PORT/v1`, the GraphQL endpoint.
    pub fn graphql_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// `http://127.0.0.1:PORT/v3`, the agent API's base (`/metrics` below it).
    pub fn agent_url(&self) -> String {
        format!("http://{}/v3", self.addr)
    }

    /// What the simulated agents call (hand it to the Kubernetes simulator).
    pub fn agent_api(&self) -> Arc<dyn AgentApi> {
        self.shared.clone()
    }

    /// The organization's slug.
    pub fn organization(&self) -> String {
        lock(&self.shared.state).org.slug.clone()
    }

    /// Creates pipeline `slug` with `uuid` (random if `None`) unless it exists; returns its
    /// GraphQL id. Jobs scheduled on `slug` land in it. Lets a test replay a recorded query
    /// that names a real pipeline id.
    pub fn create_pipeline(&self, slug: &str, uuid: Option<Uuid>) -> String {
        let uuid = lock(&self.shared.state).create_pipeline(slug, uuid);
        node_id(NodeKind::Pipeline, uuid)
    }

    /// Creates a `SCHEDULED` command job (its pipeline and build as needed).
    pub fn schedule_job(&self, spec: JobSpec) -> JobHandle {
        let mut state = lock(&self.shared.state);
        let (uuid, build_number) = state.schedule(spec);
        let pipeline = state.jobs.get(&uuid).map_or(Uuid::nil(), |j| j.pipeline);
        JobHandle {
            uuid,
            graphql_id: node_id(NodeKind::CommandJob, uuid),
            build_number,
            pipeline_graphql_id: node_id(NodeKind::Pipeline, pipeline),
        }
    }

    /// The job now, or `None` if there is no such job.
    pub fn job(&self, uuid: Uuid) -> Option<JobSnapshot> {
        let state = lock(&self.shared.state);
        let job = state.jobs.get(&uuid)?;
        Some(JobSnapshot {
            state: job.state.as_str().to_owned(),
            exit_status: job.exit_status,
            annotations: job.annotations.iter().map(|a| a.body.clone()).collect(),
            annotation_details: job.annotations.clone(),
            canceled_by_api: job.canceled_by_api,
            acquired_count: job.acquired_count,
            agent: job.agent.as_ref().map(|a| a.name.clone()),
        })
    }

    /// Moves a `WAITING` job to `SCHEDULED`, as Buildkite does when its dependency passes;
    /// `false` if it was not waiting.
    pub fn release_job(&self, uuid: Uuid) -> bool {
        lock(&self.shared.state).release(uuid)
    }

    /// Expires a `SCHEDULED` job, as Buildkite does when no agent takes it in time; `false`
    /// if it was not scheduled.
    pub fn expire_job(&self, uuid: Uuid) -> bool {
        lock(&self.shared.state).expire(uuid)
    }

    /// Switches on the schema-permitted answers in `answers` (and off the others), from the
    /// next request on.
    pub fn set_schema_answers(&self, answers: crate::buildkite::SchemaAnswers) {
        lock(&self.shared.state).answers = answers;
    }

    /// Cancels the job as a user pressing Cancel in the UI would; `false` if it was already
    /// finished, cancelled or unknown.
    pub fn cancel_job(&self, uuid: Uuid) -> bool {
        lock(&self.shared.state).cancel(uuid, false).is_ok()
    }

    /// Running totals.
    pub fn stats(&self) -> BuildkiteStats {
        let c = &self.shared.stats;
        BuildkiteStats {
            graphql_requests: c.graphql_requests.load(Ordering::Relaxed),
            requested_complexity: c.requested_complexity.load(Ordering::Relaxed),
            actual_complexity: c.actual_complexity.load(Ordering::Relaxed),
            metrics_requests: c.metrics_requests.load(Ordering::Relaxed),
            graphql_errors: c.graphql_errors.load(Ordering::Relaxed),
            rate_limited: c.rate_limited.load(Ordering::Relaxed),
            unauthorized: c.unauthorized.load(Ordering::Relaxed),
            faults_injected: c.faults_injected.load(Ordering::Relaxed),
        }
    }

    /// Stops serving and waits for the server task to end.
    pub async fn shutdown(self) {
        self.stop.cancel();
        if let Err(e) = self.server.await {
            tracing::warn!(error = %e, "Buildkite simulator task ended abnormally");
        }
    }
}
