//! Building the clients from the config: tokens resolved from their references, endpoints and
//! timeouts from `[buildkite]`, Kubernetes from kube's standard discovery.

use anyhow::Context;
use buildkite_api::Client;

use crate::config::Config;

/// The Buildkite client for GraphQL and, when an agent token is configured or
/// `BUILDKITE_AGENT_TOKEN` is set, `/v3/metrics`. Returns whether the agent token is set.
pub(crate) fn buildkite(config: &Config) -> anyhow::Result<(Client, bool)> {
    let buildkite = &config.buildkite;
    let api_token = buildkite
        .api_token
        .resolve("buildkite.api_token")
        .context("the Buildkite API token is needed to poll for jobs")?;
    let mut builder = Client::builder()
        .graphql_token(api_token)
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

/// A Kubernetes client from kube's standard discovery: in-cluster service account, else
/// `KUBECONFIG` / `~/.kube/config`.
pub(crate) async fn kubernetes() -> anyhow::Result<kube::Client> {
    let config = kube::Config::infer()
        .await
        .context("no Kubernetes credentials: run in a cluster or set KUBECONFIG")?;
    kube::Client::try_from(config).context("building the Kubernetes client")
}
