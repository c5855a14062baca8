//! The job source the config chose (`[buildkite] source`), joined and behind the core's
//! ports: the GraphQL monitor and feedback with the user API token, or the Stacks monitor
//! and feedback with only the cluster agent token (the stack registered first, and
//! deregistered on a clean stop).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use buildkite_api::Client;
use buildkite_api::stacks::StacksClient;
use futures::future::BoxFuture;
use jobify_buildkite::{
    BuildkiteFeedback, BuildkiteMetrics, BuildkiteMonitor, Source, StacksFeedback, StacksMonitor,
    StacksTimeline, register_stack,
};
use jobify_core::{Feedback, Monitor};
use tokio_util::sync::CancellationToken;

use crate::adapters::monitor_settings;
use crate::config::Config;

/// How long a clean stop waits for the stack's deregistration.
const DEREGISTER_TIMEOUT: Duration = Duration::from_secs(5);

/// The monitor and feedback of the configured source.
pub(crate) struct JobSource {
    /// Where scheduled jobs come from.
    pub(crate) monitor: Arc<dyn Monitor>,
    /// Where refusals and failures are told.
    pub(crate) feedback: Arc<dyn Feedback>,
    /// The job timeline (Stacks only): observes the scheduler's events.
    pub(crate) timeline: Option<Arc<StacksTimeline>>,
    /// The task that sends the timeline's notifications, to spawn.
    pub(crate) timeline_task: Option<BoxFuture<'static, ()>>,
    /// The Stacks monitor, to deregister its stack on a clean stop.
    stacks: Option<Arc<StacksMonitor>>,
}

/// Registers the stack, trying again with backoff while Buildkite's answers are transient
/// (a 5xx, a timeout, a 429), until `stop`.
async fn join_stack(
    client: &StacksClient,
    settings: &jobify_buildkite::StacksSettings,
    stop: &CancellationToken,
) -> anyhow::Result<Option<String>> {
    let backoff =
        jobify_core::scheduler::Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
    let mut attempt = 0;
    loop {
        attempt += 1;
        match register_stack(client, &settings.stack_key, &settings.queues[0]).await {
            Ok(cluster) => return Ok(cluster),
            Err(error) if error.is_transient() => {
                let wait = backoff.after(attempt);
                tracing::warn!(%error, attempt, ?wait, "could not join Buildkite as a stack yet; trying again");
                tokio::select! {
                    () = stop.cancelled() => {
                        return Err(anyhow::Error::new(error).context("stopped before the stack could join"));
                    }
                    () = tokio::time::sleep(wait) => {}
                }
            }
            Err(error) => return Err(error.into()),
        }
    }
}

impl JobSource {
    /// Joins the configured source: for `stacks`, checks the agent token and registers the
    /// stack (idempotent: replicas and `jobify plan` share the key), trying again while
    /// Buildkite's answers are transient, until `shutdown`. The timeline task, if any, runs
    /// until `stop`.
    pub(crate) async fn join(
        config: &Config,
        graphql: &Client,
        stacks: Option<&StacksClient>,
        metrics: BuildkiteMetrics,
        stop: CancellationToken,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<Self> {
        match config.buildkite.source {
            Source::Graphql => Ok(JobSource {
                monitor: Arc::new(
                    BuildkiteMonitor::new(graphql.clone(), monitor_settings(config))
                        .with_metrics(metrics),
                ),
                feedback: Arc::new(BuildkiteFeedback::new(graphql.clone())),
                timeline: None,
                timeline_task: None,
                stacks: None,
            }),
            Source::Stacks => {
                let client = stacks
                    .context("`source = \"stacks\"` but no Stacks API client was built")?
                    .clone();
                let settings = config.buildkite.stacks.settings(
                    &config.controller_id(),
                    config
                        .queues
                        .iter()
                        .map(|queue| queue.name.clone())
                        .collect(),
                    &config.buildkite.pipelines,
                );
                let cluster = join_stack(&client, &settings, shutdown)
                    .await
                    .with_context(|| {
                        format!(
                            "joining Buildkite as stack `{}` (buildkite.stacks.stack_key) at {}",
                            settings.stack_key, config.buildkite.agent_url
                        )
                    })?;
                tracing::info!(
                    stack = %settings.stack_key,
                    queues = ?settings.queues,
                    cluster = cluster.as_deref().unwrap_or("?"),
                    job_tokens = settings.job_tokens,
                    "registered with the Stacks API"
                );
                let feedback = StacksFeedback::new(client.clone(), settings.stack_key.clone());
                let (timeline, task) =
                    StacksTimeline::start(client.clone(), settings.stack_key.clone(), stop);
                let monitor = Arc::new(StacksMonitor::new(client, settings));
                Ok(JobSource {
                    monitor: monitor.clone(),
                    feedback: Arc::new(feedback),
                    timeline: Some(Arc::new(timeline)),
                    timeline_task: Some(Box::pin(task)),
                    stacks: Some(monitor),
                })
            }
        }
    }

    /// Leaves the source on a clean stop: deregisters the stack, best effort (Buildkite
    /// forgets a stack that stops polling too). Not with leader election: the replicas
    /// share the stack, and the others go on using it.
    pub(crate) async fn leave(self, config: &Config) {
        let Some(stacks) = self.stacks else {
            return;
        };
        if config.leader_election.enabled {
            tracing::info!("leaving the stack registered: other replicas share it");
            return;
        }
        match tokio::time::timeout(DEREGISTER_TIMEOUT, stacks.deregister()).await {
            Ok(Ok(())) => tracing::info!("deregistered the stack"),
            Ok(Err(error)) => {
                tracing::warn!(%error, "could not deregister the stack; Buildkite forgets it once it stops polling")
            }
            Err(_) => tracing::warn!(
                "deregistering the stack timed out; Buildkite forgets it once it stops polling"
            ),
        }
    }
}
