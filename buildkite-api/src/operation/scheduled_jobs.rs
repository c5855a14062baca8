//! `ScheduledJobs`: command jobs waiting for an agent, by agent query rules, oldest first.
//!
//! Buildkite lists an organization's jobs newest first and has no oldest-first order, so the
//! call pages from the end of that list: `last: page_size` is the page of the oldest jobs,
//! and each `before: startCursor` the page of newer jobs above it. When more jobs are
//! scheduled than one call's bound, the newest wait for the next poll rather than the
//! oldest waiting forever.

use graphql_client::GraphQLQuery;

use super::{DateTime, NextPage, count, job_state, next_page, page_size, timestamp};
use crate::build::Skipped;
use crate::client::Client;
use crate::error::{Error, Result};
use crate::job::CommandJob;
use crate::transport::{Fetched, Tally};

// graphql_client names the module after the struct; the operation is `ScheduledJobs`.
use gql::scheduled_jobs as generated;

/// Types generated from the operation documents; private to this file.
mod gql {
    #![allow(unreachable_pub, clippy::all)]
    use super::*;

    #[derive(GraphQLQuery)]
    #[graphql(
        schema_path = "graphql/schema.graphql",
        query_path = "graphql/ScheduledJobs.graphql",
        response_derives = "Debug"
    )]
    pub(super) struct ScheduledJobs;
}

const OPERATION: &str = "ScheduledJobs";

/// What to list: one organization's scheduled command jobs matching some agent query rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScheduledJobsRequest {
    /// The organization slug.
    pub organization: String,
    /// Agent query rules the jobs must match, e.g. `["queue=kubernetes"]`.
    pub agent_query_rules: Vec<String>,
    /// A cluster's GraphQL id, to list only that cluster's jobs.
    pub cluster: Option<String>,
    /// Jobs per request (1..=500). The requested complexity of a page is `4 + 2 × page_size`.
    pub page_size: u16,
    /// The most requests one call makes. Of more jobs than `page_size × max_pages`, the
    /// oldest are returned and the newer ones left for the next poll, reported through
    /// [`ScheduledJobs::truncated`].
    pub max_pages: u16,
}

impl ScheduledJobsRequest {
    /// Jobs on `queue=<queue>` in `organization`, 100 per page, at most 5 pages.
    pub fn for_queue(organization: &str, queue: &str) -> Self {
        ScheduledJobsRequest {
            organization: organization.to_owned(),
            agent_query_rules: vec![format!("queue={queue}")],
            cluster: None,
            page_size: 100,
            max_pages: 5,
        }
    }
}

/// The scheduled command jobs one call found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScheduledJobs {
    /// The jobs, oldest first (the reverse of Buildkite's most-recently-created order).
    pub jobs: Vec<CommandJob>,
    /// How many matching jobs Buildkite counted.
    pub total: u64,
    /// Whether newer jobs were left for the next poll: more pages existed than `max_pages`
    /// allowed, or Buildkite said there were more without giving a cursor.
    pub truncated: bool,
    /// Entries that could not be mapped, with the reason (never silently dropped).
    pub skipped: Vec<Skipped>,
}

impl Client {
    /// Lists scheduled command jobs matching the request, oldest first, following cursors
    /// towards newer jobs for up to `max_pages` requests.
    pub async fn scheduled_jobs(
        &self,
        request: &ScheduledJobsRequest,
    ) -> Result<Fetched<ScheduledJobs>> {
        let mut tally = Tally::default();
        let mut result = ScheduledJobs::default();
        let mut before = None;
        for page in 0..request.max_pages.max(1) {
            let variables = generated::Variables {
                organization: request.organization.clone(),
                agent_query_rules: Some(request.agent_query_rules.clone()),
                cluster: request.cluster.clone(),
                last: page_size(request.page_size),
                before: before.take(),
            };
            let (data, exchange) = self.run::<gql::ScheduledJobs>(OPERATION, variables).await?;
            tally.record(exchange);
            let organization = data.organization.ok_or_else(|| Error::NotFound {
                what: format!("organization {:?}", request.organization),
            })?;
            let jobs = organization.jobs.ok_or_else(|| Error::MissingField {
                operation: OPERATION,
                field: "organization.jobs".to_owned(),
            })?;
            result.total = count(jobs.count);
            // A page lists its jobs newest first, like the whole list; reversed, it continues
            // the oldest-first result after the (older) pages before it.
            for edge in jobs.edges.unwrap_or_default().into_iter().rev() {
                match edge.and_then(|edge| edge.node).map(CommandJob::try_from) {
                    Some(Ok(job)) => result.jobs.push(job),
                    Some(Err(skipped)) => {
                        tracing::warn!(uuid = ?skipped.uuid, reason = %skipped.reason, "skipping a scheduled job");
                        result.skipped.push(skipped);
                    }
                    None => result.skipped.push(Skipped {
                        uuid: None,
                        reason: "organization.jobs.edges[].node is null".to_owned(),
                    }),
                }
            }
            let (has_newer, cursor) = jobs.page_info.map_or((false, None), |info| {
                (info.has_previous_page, info.start_cursor)
            });
            match next_page(has_newer, cursor, page + 1, request.max_pages) {
                NextPage::Fetch(cursor) => before = Some(cursor),
                NextPage::Truncated => {
                    result.truncated = true;
                    break;
                }
                NextPage::Done => break,
            }
        }
        Ok(tally.finish(result))
    }
}

impl TryFrom<generated::ScheduledJobsOrganizationJobsEdgesNode> for CommandJob {
    type Error = Skipped;

    fn try_from(node: generated::ScheduledJobsOrganizationJobsEdgesNode) -> Result<Self, Skipped> {
        use generated::ScheduledJobsOrganizationJobsEdgesNode as Node;
        let job = match node {
            Node::JobTypeCommand(job) => job,
            other => {
                return Err(Skipped {
                    uuid: None,
                    reason: format!("expected a JobTypeCommand, got {other:?}"),
                });
            }
        };
        let uuid = job.uuid.clone();
        let skipped = |error: Error| Skipped {
            uuid: Some(uuid.clone()),
            reason: error.to_string(),
        };
        Ok(CommandJob {
            scheduled_at: timestamp(OPERATION, "scheduledAt", job.scheduled_at).map_err(skipped)?,
            runnable_at: timestamp(OPERATION, "runnableAt", job.runnable_at).map_err(skipped)?,
            id: job.id,
            uuid: job.uuid,
            label: job.label,
            state: job_state(&job.state),
            agent_query_rules: job.agent_query_rules.unwrap_or_default(),
            command: job.command,
            env: job.env.unwrap_or_default(),
            priority: job
                .priority
                .number
                .and_then(|n| i32::try_from(n).ok())
                .unwrap_or(0),
            url: job.url,
        })
    }
}
