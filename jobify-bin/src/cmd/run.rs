//! `jobify run`: the controller. Builds the clients, then runs side by side until shutdown:
//! the HTTP listener, leader election, the Kubernetes watchers, the queue-metrics reader, and
//! the scheduler that joins them.
//!
//! Shutdown happens in two steps. The signal stops the scheduler first, which stops polling
//! and gives launches in progress a grace period; only then are the watchers, the elector
//! (which releases the Lease) and the listener stopped.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use jobify_buildkite::report_queue_figures;
use jobify_core::{Decider, Dispatcher, Limits};
use jobify_k8s::{KubeJobifier, LeaderElector};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::health::{Leadership, Readiness, follow_leadership};
use crate::metrics::Metrics;
use crate::observer::Observer;
use crate::server::{AppState, serve};
use crate::source::JobSource;

/// The clients `run` talks through; built by [`execute`] from the config, or by a test or
/// the demo against simulators.
pub(crate) struct Clients {
    /// Buildkite (GraphQL, and `/v3/metrics` when it has an agent token).
    pub(crate) buildkite: buildkite_api::Client,
    /// Whether `buildkite` has an agent token, so the queue gauges can be read.
    pub(crate) has_agent_token: bool,
    /// The Stacks API, for `source = "stacks"`.
    pub(crate) stacks: Option<buildkite_api::stacks::StacksClient>,
    /// Kubernetes.
    pub(crate) kube: kube::Client,
}

/// Builds the clients from the config and the environment, then runs until `shutdown`.
pub(crate) async fn execute(
    config: &Config,
    shutdown: CancellationToken,
) -> anyhow::Result<ExitCode> {
    let (buildkite, has_agent_token) = crate::clients::buildkite(config)?;
    let stacks = stacks_client(config)?;
    let kube = crate::clients::kubernetes().await?;
    let listener = TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("cannot listen on {} (server.listen)", config.server.listen))?;
    let clients = Clients {
        buildkite,
        has_agent_token,
        stacks,
        kube,
    };
    run(config, clients, listener, shutdown).await?;
    Ok(ExitCode::SUCCESS)
}

/// The Stacks API client when the config's source is `stacks`.
pub(crate) fn stacks_client(
    config: &Config,
) -> anyhow::Result<Option<buildkite_api::stacks::StacksClient>> {
    match config.buildkite.source {
        jobify_buildkite::Source::Stacks => crate::clients::stacks(config).map(Some),
        jobify_buildkite::Source::Graphql => Ok(None),
    }
}

/// Runs the controller with `clients`, serving metrics and health on `listener`, until
/// `shutdown` is cancelled; then stops everything in order and returns `Ok`. Returns an error
/// when the scheduler or a task it depends on stops on its own.
pub(crate) async fn run(
    config: &Config,
    clients: Clients,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut registry = Registry::default();
    let metrics = Metrics::register(&mut registry);
    let readiness = Arc::new(Readiness::new(config.buildkite.poll_interval));
    tracing::info!(
        listen = %listener.local_addr().context("the listener has no address")?,
        organization = %config.organization,
        namespace = %config.kubernetes.namespace,
        controller = %config.controller_id(),
        "jobify starting"
    );

    // Everything but the scheduler stops on `rest`, once the scheduler has returned.
    let rest = CancellationToken::new();
    let mut tasks: JoinSet<anyhow::Result<()>> = JoinSet::new();

    let state = AppState {
        registry: Arc::new(registry),
        readiness: readiness.clone(),
    };
    let stop = rest.clone();
    tasks.spawn(async move {
        serve(listener, state, stop.cancelled_owned())
            .await
            .context("the HTTP listener failed")
    });

    let mut jobifier = KubeJobifier::new(
        clients.kube.clone(),
        config.kubernetes.clone(),
        config.controller_id(),
    );
    let leading = if config.leader_election.enabled {
        let identity = identity(config);
        tracing::info!(%identity, lease = %config.leader_election.lease_name, "leader election on");
        let elector = LeaderElector::new(
            clients.kube.clone(),
            &config.kubernetes.namespace,
            &config.leader_election,
            &identity,
        );
        let leading = elector.subscribe();
        jobifier = jobifier.with_leadership(leading.clone());
        let stop = rest.clone();
        tasks.spawn(async move {
            elector.run(stop.cancelled_owned()).await;
            Ok(())
        });
        tasks.spawn(
            follow_leadership(
                leading.clone(),
                readiness.clone(),
                config.leader_election.renew_interval,
                rest.clone(),
            )
            .then_ok(),
        );
        Some(leading)
    } else {
        readiness.set_leadership(Leadership::Leader);
        None
    };

    let watchers = jobifier.clone();
    let stop = rest.clone();
    tasks.spawn(async move {
        watchers
            .run(stop.cancelled_owned())
            .await
            .context("the Kubernetes watchers could not start")
    });

    if clients.has_agent_token {
        let client = clients.buildkite.clone();
        let metrics = metrics.buildkite().clone();
        tasks.spawn(report_queue_figures(client, metrics, rest.clone()).then_ok());
    } else {
        tracing::info!("no agent token: the jobify_buildkite_queue_* gauges stay empty");
    }

    let mut source = match JobSource::join(
        config,
        &clients.buildkite,
        clients.stacks.as_ref(),
        metrics.buildkite().clone(),
        rest.clone(),
        &shutdown,
    )
    .await
    {
        Ok(source) => source,
        Err(error) => {
            rest.cancel();
            while tasks.join_next().await.is_some() {}
            return Err(error);
        }
    };
    if let Some(task) = source.timeline_task.take() {
        tasks.spawn(task.then_ok());
    }
    let policy = Decider::from_config(&config.policy, &config.guard, &config.queues);
    let limits = Limits::new(&config.limits, &config.queues);
    let scheduler_config = config
        .scheduler
        .scheduler_config(config.buildkite.poll_interval);
    metrics.declare_queues(config.queues.iter().map(|queue| queue.name.as_str()));
    let mut dispatcher = Dispatcher::new(
        source.monitor.clone(),
        jobifier,
        source.feedback.clone(),
        policy,
        limits,
        scheduler_config,
    )
    .with_observer((Observer::new(metrics, readiness), source.timeline.clone()));
    if let Some(leading) = leading {
        dispatcher = dispatcher.with_leadership(leading);
    }

    // A task that fails while the scheduler runs (the listener cannot serve, the watchers
    // cannot start) stops the scheduler too: better a restart than a half-working controller.
    let stop_scheduler = shutdown.child_token();
    let scheduler = dispatcher.run(stop_scheduler.clone().cancelled_owned());
    tokio::pin!(scheduler);
    let mut first_error = None;
    let outcome = loop {
        tokio::select! {
            outcome = &mut scheduler => break outcome,
            Some(joined) = tasks.join_next() => {
                if let Err(error) = flatten(joined) {
                    tracing::error!("{}; stopping", crate::report::error_chain(&error));
                    first_error.get_or_insert(error);
                    stop_scheduler.cancel();
                }
            }
        }
    };
    if outcome.is_ok() {
        source.leave(config).await;
    }
    match outcome {
        Ok(()) => {
            tracing::info!("scheduler stopped; stopping the watchers, the elector and the listener")
        }
        Err(error) => {
            let error = anyhow::Error::new(error).context("the scheduler stopped");
            tracing::error!("{}", crate::report::error_chain(&error));
            first_error.get_or_insert(error);
        }
    }
    rest.cancel();
    while let Some(joined) = tasks.join_next().await {
        if let Err(error) = flatten(joined) {
            tracing::error!("{}", crate::report::error_chain(&error));
            first_error.get_or_insert(error);
        }
    }
    match first_error {
        Some(error) => Err(error),
        None => {
            tracing::info!("jobify stopped");
            Ok(())
        }
    }
}

fn flatten(joined: Result<anyhow::Result<()>, tokio::task::JoinError>) -> anyhow::Result<()> {
    joined.context("a task panicked").and_then(|result| result)
}

/// This replica's identity in the Lease: the configured one, else the pod name (unique per
/// pod), else the host name with this process's id, else a random one.
fn identity(config: &Config) -> String {
    let host = non_empty_env("HOSTNAME").or_else(|| {
        std::fs::read_to_string("/etc/hostname")
            .ok()
            .map(|name| name.trim().to_owned())
            .filter(|name| !name.is_empty())
    });
    choose_identity(
        config.leader_election.identity.clone(),
        non_empty_env("POD_NAME"),
        host,
        std::process::id(),
    )
}

/// Two replicas with the same identity would both take the Lease as their own and both lead,
/// so a host name, shared by every process on the host, gets the process id appended.
fn choose_identity(
    configured: Option<String>,
    pod_name: Option<String>,
    host: Option<String>,
    pid: u32,
) -> String {
    configured
        .or(pod_name)
        .or_else(|| host.map(|host| format!("{host}-{pid}")))
        .unwrap_or_else(|| format!("jobify-{}", uuid::Uuid::new_v4()))
}

fn non_empty_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

/// Lets a task that cannot fail join a `JoinSet` of results.
trait ThenOk: std::future::Future<Output = ()> + Sized {
    fn then_ok(self) -> impl std::future::Future<Output = anyhow::Result<()>> {
        async move {
            self.await;
            Ok(())
        }
    }
}

impl<F: std::future::Future<Output = ()>> ThenOk for F {}

#[cfg(test)]
mod tests {
    use super::choose_identity;

    #[test]
    fn two_processes_on_one_host_never_share_a_leader_identity() {
        let host = || Some("build-box".to_owned());
        let a = choose_identity(None, None, host(), 100);
        let b = choose_identity(None, None, host(), 101);
        assert_ne!(a, b);
        assert_eq!(a, "build-box-100");
    }

    #[test]
    fn the_configured_identity_then_the_pod_name_win() {
        let pod = || Some("jobify-7d9c-x2".to_owned());
        let host = || Some("node-1".to_owned());
        assert_eq!(
            choose_identity(Some("mine".to_owned()), pod(), host(), 1),
            "mine"
        );
        assert_eq!(choose_identity(None, pod(), host(), 1), "jobify-7d9c-x2");
        assert!(choose_identity(None, None, None, 1).starts_with("jobify-"));
    }
}
