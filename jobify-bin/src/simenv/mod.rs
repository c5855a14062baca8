//! Both simulators, wired together, and the files that point jobify at them.
//!
//! [`SimEnv::start`] starts the Buildkite simulator and the Kubernetes simulator on loopback
//! ports and hands the Kubernetes side the Buildkite side's [`jobify_sim::AgentApi`], so a
//! simulated pod's agent acquires, runs and finishes its Buildkite job. [`SimEnv::write_files`]
//! then writes what a `jobify run` needs to talk to them over the network exactly as it would
//! in production: a kubeconfig, the token files and a `jobify.toml` rendered from a
//! [`ConfigTemplate`].
//!
//! ```text
//!   SimEnv ── BuildkiteSim (GraphQL /v1, /v3/metrics) ◀── AgentApi ── KubeSim (API server,
//!      │                                                              job controller, kubelet)
//!      └─ write_files(dir) ─▶ kubeconfig, buildkite-api-token, buildkite-agent-token, jobify.toml
//! ```
//!
//! [`run_jobify`] then runs jobify itself in this process, through the same `run` code path
//! as `jobify run`, with a `kube::Client` for the simulator ([`SimEnv::kube_client`]).
//!
//! `jobify sim`, `jobify demo`, the end-to-end tests and the benchmark all start here.

mod files;
mod view;
mod workload;

use jobify_buildkite::Source;
use jobify_sim::buildkite::{Budget, BuildkiteSim, BuildkiteSimConfig};
use jobify_sim::kubernetes::{Scenarios, Timings};
use jobify_sim::stacks::{StacksSim, StacksSimConfig};
use jobify_sim::{FaultConfig, KubeSim, KubeSimConfig};
use secrecy::SecretString;

pub use files::{API_TOKEN_ENV, ConfigTemplate, FilesError, SimFiles, TokenSource};
pub use view::SimJobView;
pub use workload::{ScheduledSimJob, Workload, schedule, schedule_stacks, to_stacks};

/// The `jobify.toml` `jobify sim` writes: queue `kubernetes`, the default policy, short
/// timings. Its `{{listen}}` placeholder is jobify's own metrics and health listener.
pub const SIM_CONFIG: &str = include_str!("jobify.toml");

/// The Buildkite API token the simulator accepts. Not a secret: it only opens the simulator.
pub const API_TOKEN: &str = "bkua_jobify_simulator_token";
/// The agent token the simulator's `/v3/metrics` accepts.
pub const AGENT_TOKEN: &str = "jobify-simulator-agent-token";
/// The cluster agent token the Stacks API simulator accepts (Stacks endpoints, `/v3/token`,
/// `/v3/metrics`, an agent's acquire).
pub const CLUSTER_AGENT_TOKEN: &str = "bkct_jobify_simulator_cluster_token";

/// Why the simulators could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimEnvError {
    /// The Buildkite simulator did not start.
    #[error("the Buildkite simulator did not start")]
    Buildkite(#[source] jobify_sim::buildkite::Error),
    /// The Stacks API simulator did not start.
    #[error("the Stacks API simulator did not start")]
    Stacks(#[source] jobify_sim::stacks::Error),
    /// The Kubernetes simulator could not listen on loopback.
    #[error("the Kubernetes simulator could not listen on 127.0.0.1")]
    Kubernetes(#[source] std::io::Error),
    /// No `kube::Client` could be built for the Kubernetes simulator's URL.
    #[error("cannot build a Kubernetes client for the simulator")]
    KubeClient(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// How to start a [`SimEnv`]. `Default` is fault-free, with the simulators' own timings.
#[derive(Clone, Debug)]
pub struct SimEnvConfig {
    /// The organization's slug.
    pub organization: String,
    /// The job source jobify reads: with `Stacks`, the Stacks API simulator serves the jobs
    /// (and its agents acquire from it); the GraphQL simulator still runs, unused.
    pub source: Source,
    /// The self-hosted queues the Stacks simulator's cluster has from the start (a stack
    /// registers for one); scheduling a job on another queue creates it.
    pub queues: Vec<String>,
    /// Faults injected into Buildkite's GraphQL and metrics requests.
    pub buildkite_faults: FaultConfig,
    /// Faults injected into Kubernetes API requests.
    pub kubernetes_faults: FaultConfig,
    /// The organization's GraphQL complexity budget (Buildkite's published one by default).
    pub budget: Budget,
    /// How long the simulated control plane and kubelet take.
    pub timings: Timings,
    /// How pods are sorted into scenarios (image pull failure, slow start, ...).
    pub scenarios: Scenarios,
}

impl Default for SimEnvConfig {
    fn default() -> Self {
        SimEnvConfig {
            organization: "acme".to_owned(),
            source: Source::Graphql,
            queues: vec!["kubernetes".to_owned()],
            buildkite_faults: FaultConfig::none(),
            kubernetes_faults: FaultConfig::none(),
            budget: Budget::default(),
            timings: Timings::default(),
            scenarios: Scenarios::default(),
        }
    }
}

/// The Buildkite and Kubernetes simulators, serving on loopback and wired together.
pub struct SimEnv {
    buildkite: BuildkiteSim,
    stacks: Option<StacksSim>,
    kubernetes: KubeSim,
    organization: String,
}

impl SimEnv {
    /// Starts both simulators on free loopback ports.
    pub async fn start(config: SimEnvConfig) -> Result<SimEnv, SimEnvError> {
        let buildkite = BuildkiteSim::start(BuildkiteSimConfig {
            faults: config.buildkite_faults.clone(),
            metrics_faults: config.buildkite_faults.clone(),
            budget: config.budget,
            user_budget: config.budget,
            ..BuildkiteSimConfig::new(&config.organization, API_TOKEN, AGENT_TOKEN)
        })
        .await
        .map_err(SimEnvError::Buildkite)?;
        let stacks = match config.source {
            Source::Graphql => None,
            Source::Stacks => Some(
                StacksSim::start(StacksSimConfig {
                    organization: config.organization.clone(),
                    faults: config.buildkite_faults.clone(),
                    queues: config.queues.clone(),
                    ..StacksSimConfig::new(CLUSTER_AGENT_TOKEN)
                })
                .await
                .map_err(SimEnvError::Stacks)?,
            ),
        };
        let agent = match &stacks {
            Some(stacks) => stacks.agent_api(),
            None => buildkite.agent_api(),
        };
        let kubernetes = KubeSim::start(KubeSimConfig {
            agent: Some(agent),
            faults: config.kubernetes_faults,
            scenarios: config.scenarios,
            timings: config.timings,
            ..KubeSimConfig::default()
        })
        .await
        .map_err(SimEnvError::Kubernetes)?;
        Ok(SimEnv {
            buildkite,
            stacks,
            kubernetes,
            organization: config.organization,
        })
    }

    /// The Buildkite simulator: schedule jobs, read their state and annotations.
    pub fn buildkite(&self) -> &BuildkiteSim {
        &self.buildkite
    }

    /// The Stacks API simulator, when it is the job source.
    pub fn stacks(&self) -> Option<&StacksSim> {
        self.stacks.as_ref()
    }

    /// The Kubernetes simulator: read Jobs, pods, Leases and counters.
    pub fn kubernetes(&self) -> &KubeSim {
        &self.kubernetes
    }

    /// The organization's slug.
    pub fn organization(&self) -> &str {
        &self.organization
    }

    /// The API token the Buildkite simulator accepts.
    pub fn api_token(&self) -> SecretString {
        SecretString::from(API_TOKEN)
    }

    /// A `kube::Client` for the Kubernetes simulator, the one a kubeconfig from
    /// [`SimEnv::write_files`] gives.
    pub fn kube_client(&self) -> Result<kube::Client, SimEnvError> {
        let url = self.kubernetes.url();
        let uri = url
            .parse()
            .map_err(|e| SimEnvError::KubeClient(Box::new(e)))?;
        kube::Client::try_from(kube::Config::new(uri))
            .map_err(|e| SimEnvError::KubeClient(Box::new(e)))
    }

    /// Stops both simulators: the Kubernetes one first, so no simulated agent calls into a
    /// Buildkite simulator that has gone.
    pub async fn shutdown(self) {
        self.kubernetes.shutdown().await;
        if let Some(stacks) = self.stacks {
            stacks.shutdown().await;
        }
        self.buildkite.shutdown().await;
    }
}

/// Runs jobify in this process with `config` until `shutdown` is cancelled: the Buildkite
/// client built from the config as `jobify run` builds it, `kube` for Kubernetes (the
/// process's environment is not consulted), the listener bound to `[server] listen`, then
/// [`crate::cmd::run::run`].
///
/// # Errors
/// A token reference that cannot be resolved, a listen address that cannot be bound, or
/// whatever makes `run` stop on its own.
pub async fn run_jobify(
    config: crate::config::Config,
    kube: kube::Client,
    shutdown: tokio_util::sync::CancellationToken,
) -> anyhow::Result<()> {
    use anyhow::Context as _;

    let (buildkite, has_agent_token) = crate::clients::buildkite(&config)?;
    let stacks = crate::cmd::run::stacks_client(&config)?;
    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("cannot listen on {} (server.listen)", config.server.listen))?;
    let clients = crate::cmd::run::Clients {
        buildkite,
        has_agent_token,
        stacks,
        kube,
    };
    crate::cmd::run::run(&config, clients, listener, shutdown).await
}
