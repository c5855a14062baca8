//! Lists the scheduled command jobs of a Buildkite organization on one queue, as a table.
//!
//! ```text
//! BUILDKITE_API_TOKEN=... cargo run -p examples --example list_scheduled_jobs -- ORG QUEUE [GRAPHQL_URL]
//! ```
//!
//! The token needs GraphQL API access. `GRAPHQL_URL` defaults to Buildkite's endpoint;
//! point it at `jobify-sim` (e.g. `http://127.0.0.1:8081/v1`) to try it offline.

use anyhow::{Context, bail};
use buildkite_api::{Client, CommandJob, ScheduledJobsRequest};
use secrecy::SecretString;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(organization), Some(queue)) = (args.next(), args.next()) else {
        bail!(
            "usage: list_scheduled_jobs ORGANIZATION QUEUE [GRAPHQL_URL] (token in BUILDKITE_API_TOKEN)"
        );
    };
    let endpoint = args.next();
    let token = std::env::var("BUILDKITE_API_TOKEN")
        .context("set BUILDKITE_API_TOKEN to an API access token with GraphQL access")?;

    // reqwest is built without a crypto provider; the application picks ring once.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut builder = Client::builder()
        .graphql_token(SecretString::from(token))
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
        .scheduled_jobs(&ScheduledJobsRequest::for_queue(&organization, &queue))
        .await
        .with_context(|| format!("listing scheduled jobs of {organization} on queue={queue}"))?;

    print_table(&fetched.value.jobs);
    let page = &fetched.value;
    println!(
        "\n{} shown of {} scheduled{}; {} request(s), {} actual complexity points",
        page.jobs.len(),
        page.total,
        if page.truncated { " (truncated)" } else { "" },
        fetched.requests,
        fetched.complexity_actual,
    );
    for skipped in &page.skipped {
        eprintln!("skipped {:?}: {}", skipped.uuid, skipped.reason);
    }
    if let Some(limit) = fetched.rate_limit {
        println!(
            "rate limit: {:?} of {:?} points left, window resets in {:?}",
            limit.remaining, limit.limit, limit.reset
        );
    }
    Ok(())
}

fn print_table(jobs: &[CommandJob]) {
    println!(
        "{:<36}  {:<24}  {:>6}  {:<24}  {:<24}  {:>8}  {:<20}",
        "UUID", "PIPELINE", "BUILD", "LABEL", "RULES", "PRIORITY", "SCHEDULED AT"
    );
    for job in jobs {
        let build = job
            .build_number()
            .map_or_else(|| "-".to_owned(), |n| n.to_string());
        let scheduled = job
            .scheduled_at
            .map_or_else(|| "-".to_owned(), |at| at.to_string());
        println!(
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
