//! Lists the scheduled command jobs of a Buildkite organization on one queue, as a table.
//!
//! ```text
//! BUILDKITE_API_TOKEN=... cargo run -p examples --example list_scheduled_jobs -- ORG QUEUE [GRAPHQL_URL]
//! ```
//!
//! The token needs GraphQL API access. `GRAPHQL_URL` defaults to Buildkite's endpoint;
//! point it at `jobify-sim` (e.g. `http://127.0.0.1:8081/v1`) to try it offline.

use std::fmt::Write as _;

use anyhow::{Context, bail};
use buildkite_api::{Client, CommandJob, ScheduledJobsRequest};
use secrecy::SecretString;

#[cfg_attr(test, allow(dead_code))] // `tests/list_scheduled_jobs.rs` calls `run` directly
#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let token = std::env::var("BUILDKITE_API_TOKEN")
        .context("set BUILDKITE_API_TOKEN to an API access token with GraphQL access")?;
    print!("{}", run(&args, SecretString::from(token)).await?);
    Ok(())
}

/// Lists the jobs `args` (`ORGANIZATION QUEUE [GRAPHQL_URL]`) name and renders the table and
/// a summary.
pub(crate) async fn run(args: &[String], token: SecretString) -> anyhow::Result<String> {
    let (organization, queue, endpoint) = match args {
        [organization, queue] => (organization, queue, None),
        [organization, queue, endpoint] => (organization, queue, Some(endpoint)),
        _ => bail!(
            "usage: list_scheduled_jobs ORGANIZATION QUEUE [GRAPHQL_URL] (token in BUILDKITE_API_TOKEN)"
        ),
    };

    // reqwest is built without a crypto provider; the application picks ring once.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut builder = Client::builder()
        .graphql_token(token)
        .user_agent(concat!("jobify-example/", env!("CARGO_PKG_VERSION")));
    if let Some(endpoint) = endpoint {
        builder = builder.graphql_url(
            endpoint
                .parse()
                .with_context(|| format!("GRAPHQL_URL {endpoint:?} is not a URL"))?,
        );
    }
    let client = builder.build()?;

    let fetched = client
        .scheduled_jobs(&ScheduledJobsRequest::for_queue(organization, queue))
        .await
        .with_context(|| format!("listing scheduled jobs of {organization} on queue={queue}"))?;

    let page = &fetched.value;
    let mut out = table(&page.jobs);
    // Writing to a String cannot fail.
    let _ = writeln!(
        out,
        "\n{} shown of {} scheduled{}; {} request(s), {} actual complexity points",
        page.jobs.len(),
        page.total,
        if page.truncated { " (truncated)" } else { "" },
        fetched.requests,
        fetched.complexity_actual,
    );
    for skipped in &page.skipped {
        let _ = writeln!(out, "skipped {:?}: {}", skipped.uuid, skipped.reason);
    }
    if let Some(limit) = fetched.rate_limit {
        let _ = writeln!(
            out,
            "rate limit: {:?} of {:?} points left, window resets in {:?}",
            limit.remaining, limit.limit, limit.reset
        );
    }
    Ok(out)
}

fn table(jobs: &[CommandJob]) -> String {
    let mut out = format!(
        "{:<36}  {:<24}  {:>6}  {:<24}  {:<24}  {:>8}  {:<20}\n",
        "UUID", "PIPELINE", "BUILD", "LABEL", "RULES", "PRIORITY", "SCHEDULED AT"
    );
    for job in jobs {
        let build = job
            .build_number()
            .map_or_else(|| "-".to_owned(), |n| n.to_string());
        let scheduled = job
            .scheduled_at
            .map_or_else(|| "-".to_owned(), |at| at.to_string());
        let _ = writeln!(
            out,
            "{:<36}  {:<24}  {:>6}  {:<24}  {:<24}  {:>8}  {:<20}",
            job.uuid,
            cell(job.pipeline_slug().unwrap_or("-")),
            build,
            cell(job.label.as_deref().unwrap_or("-")),
            cell(&job.agent_query_rules.join(",")),
            job.priority,
            scheduled,
        );
    }
    out
}

/// Cuts a value to the column width, by characters.
fn cell(value: &str) -> String {
    const WIDTH: usize = 24;
    if value.chars().count() <= WIDTH {
        value.to_owned()
    } else {
        let cut: String = value.chars().take(WIDTH - 1).collect();
        format!("{cut}…")
    }
}
