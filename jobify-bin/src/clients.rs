//! Building the clients from the config: tokens resolved from their references, endpoints and
//! timeouts from `[buildkite]`, Kubernetes from kube's standard discovery.

use anyhow::Context;
use buildkite_api::Client;
use buildkite_api::stacks::StacksClient;
use jobify_buildkite::Source;

use crate::config::Config;

/// The Buildkite client for GraphQL (the `graphql` source only) and, when an agent token is
/// configured or `BUILDKITE_AGENT_TOKEN` is set, `/v3/metrics`. Returns whether the agent
/// token is set.
pub(crate) fn buildkite(config: &Config) -> anyhow::Result<(Client, bool)> {
    let buildkite = &config.buildkite;
    let mut builder = Client::builder();
    if buildkite.source == Source::Graphql {
        let api_token = buildkite
            .api_token
            .resolve("buildkite.api_token")
            .context("the Buildkite API token is needed to poll for jobs")?;
        builder = builder.graphql_token(api_token);
    }
    let mut builder = builder
        .graphql_url(buildkite.graphql_url.clone())
        .agent_url(buildkite.agent_url.clone())
        .timeout(buildkite.request_timeout)
        .user_agent(&format!("jobify/{}", env!("CARGO_PKG_VERSION")));
    let agent_token = match crate::config::agent_token_ref(buildkite) {
        Some(reference) => Some(
            reference
                .resolve("buildkite.agent_token")
                .context("the agent token is configured for Buildkite's queue metrics")?,
        ),
        None => None,
    };
    let has_agent_token = agent_token.is_some();
    if let Some(token) = agent_token {
        builder = builder.agent_token(token);
    }
    let client = builder.build().context("building the Buildkite client")?;
    Ok((client, has_agent_token))
}

/// The Stacks API client, for `source = "stacks"`: the agent token is its only credential.
pub(crate) fn stacks(config: &Config) -> anyhow::Result<StacksClient> {
    let buildkite = &config.buildkite;
    let reference = crate::config::agent_token_ref(buildkite).context(
        "`source = \"stacks\"` needs a cluster agent token: set buildkite.agent_token, or \
         BUILDKITE_AGENT_TOKEN",
    )?;
    let token = reference
        .resolve("buildkite.agent_token")
        .context("the cluster agent token is the Stacks source's credential")?;
    StacksClient::builder()
        .agent_token(token)
        .agent_url(buildkite.agent_url.clone())
        .timeout(buildkite.request_timeout)
        .user_agent(&format!("jobify/{}", env!("CARGO_PKG_VERSION")))
        .build()
        .context("building the Stacks API client")
}

/// A Kubernetes client from kube's standard discovery: in-cluster service account, else
/// `KUBECONFIG` / `~/.kube/config`.
pub(crate) async fn kubernetes() -> anyhow::Result<kube::Client> {
    let config = kube::Config::infer()
        .await
        .context("no Kubernetes credentials: run in a cluster or set KUBECONFIG")?;
    kube::Client::try_from(config).context("building the Kubernetes client")
}
