//! `ScheduledJobs` and `ScheduledDefaultPriorityJobs`: command jobs waiting for an agent, by
//! agent query rules, oldest first.
//!
//! Buildkite lists an organization's jobs newest first and has no oldest-first order, so a
//! call pages from the end of that list: `last: page_size` is the page of the oldest jobs,
//! and each `before: startCursor` the page of newer jobs above it. When more jobs are
//! scheduled than one call's bound, the newest wait for the next poll rather than the
//! oldest waiting forever.
//!
//! [`Priorities`] picks the operation. Both live in `graphql/ScheduledJobs.graphql` and
//! share the `ScheduledCommandJob` fragment; each also counts the jobs the other would list,
//! so a page always knows how many jobs have a priority other than 0.

use graphql_client::GraphQLQuery;

use super::partial::{self, ItemErrors};
use super::{DateTime, NextPage, count, job_state, next_page, page_size, timestamp};
use crate::build::Skipped;
use crate::client::Client;
use crate::error::{Error, Result};
use crate::job::CommandJob;
use crate::transport::{Exchange, Fetched, Partial, Tally, decode_value, decode_value_at};

// graphql_client names each module after its struct, and picks the operation of the same
// name from the document.
use gql::scheduled_default_priority_jobs as default_only;
use gql::scheduled_jobs as all;

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

    #[derive(GraphQLQuery)]
    #[graphql(
        schema_path = "graphql/schema.graphql",
        query_path = "graphql/ScheduledJobs.graphql",
        response_derives = "Debug"
    )]
    pub(super) struct ScheduledDefaultPriorityJobs;
}

const ALL: &str = "ScheduledJobs";
const DEFAULT_ONLY: &str = "ScheduledDefaultPriorityJobs";

/// Which scheduled jobs a request lists, and so what each listed job costs.
///
/// Buildkite charges 1 actual point per object returned: a page costs 5 (organization, the
/// jobs connection, its `pageInfo` and `edges`, and the second connection that counts the
/// jobs the page does not list) plus the per-job figure below. Most organizations never
/// set step priorities, and Buildkite's default priority is 0: for them `DefaultOnly`
/// lists the same jobs for half the points.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Priorities {
    /// Every scheduled job with its priority (operation `ScheduledJobs`): 2 points a job,
    /// its node and its `priority` object. Actual complexity `5 + 2 × jobs`.
    #[default]
    All,
    /// Only jobs of priority 0, without fetching the priority (operation
    /// `ScheduledDefaultPriorityJobs`; Buildkite filters them, so every job returned has
    /// priority 0): 1 point a job. Actual complexity `5 + jobs`. Jobs of other priorities
    /// are not listed but counted in `other_priorities`, so a caller can switch to
    /// [`Priorities::All`] when some appear.
    DefaultOnly,
}

impl Priorities {
    /// The operation name sent for this mode.
    pub fn operation(self) -> &'static str {
        match self {
            Priorities::All => ALL,
            Priorities::DefaultOnly => DEFAULT_ONLY,
        }
    }
}

/// What to list: one organization's scheduled command jobs matching some agent query rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScheduledJobsRequest {
    /// The organization slug.
    pub organization: String,
    /// Agent query rules the jobs must match, e.g. `["queue=kubernetes"]`.
    pub agent_query_rules: Vec<String>,
    /// A cluster's GraphQL id, to list only that cluster's jobs.
    pub cluster: Option<String>,
    /// Jobs per request (1..=500). The requested complexity of a page is
    /// `5 + 2 × page_size` for [`Priorities::All`] and `5 + page_size` for
    /// [`Priorities::DefaultOnly`].
    pub page_size: u16,
    /// The most requests [`Client::scheduled_jobs`] makes. Of more jobs than
    /// `page_size × max_pages`, the oldest are returned and the newer ones left for the next
    /// poll, reported through [`ScheduledJobs::truncated`]. [`Client::scheduled_jobs_page`]
    /// ignores it.
    pub max_pages: u16,
    /// Which jobs to list: every job with its priority, or only priority-0 jobs at half the
    /// points a job.
    pub priorities: Priorities,
    /// How many of a page's newest jobs the next page lists again (at most `page_size - 1`).
    /// Buildkite's cursors may stand for offsets in its newest-first list (graphql-ruby's
    /// default): jobs scheduled between two requests then shift the list, and the next page
    /// would skip as many jobs as arrived. An overlap of `n` absorbs `n` arrivals between two
    /// requests, for `n` more points a page. Callers drop the jobs they saw twice.
    pub overlap: u16,
}

impl ScheduledJobsRequest {
    /// Jobs on `queue=<queue>` in `organization`, 100 per page, at most 5 pages, every
    /// priority ([`Priorities::All`]), pages not overlapping.
    pub fn for_queue(organization: &str, queue: &str) -> Self {
        ScheduledJobsRequest {
            organization: organization.to_owned(),
            agent_query_rules: vec![format!("queue={queue}")],
            cluster: None,
            page_size: 100,
            max_pages: 5,
            priorities: Priorities::All,
            overlap: 0,
        }
    }
}

/// One page of scheduled command jobs: one request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScheduledJobsPage {
    /// The jobs, oldest first (the reverse of Buildkite's most-recently-created order).
    pub jobs: Vec<CommandJob>,
    /// How many jobs match the request (for [`Priorities::DefaultOnly`], the priority-0
    /// ones), on every page, not just this one.
    pub total: u64,
    /// How many scheduled jobs match the filters but have a priority other than 0, from the
    /// two counts the request makes. For [`Priorities::DefaultOnly`] these are jobs the
    /// request does not list.
    pub other_priorities: u64,
    /// The `before` cursor of the next page, of newer jobs (starting
    /// [`ScheduledJobsRequest::overlap`] jobs back); `None` when this page was the newest (or
    /// Buildkite gave no cursor, see `truncated`).
    pub newer: Option<String>,
    /// Buildkite said newer jobs exist but gave no cursor to fetch them.
    pub truncated: bool,
    /// Entries that could not be mapped, with the reason (never silently dropped).
    pub skipped: Vec<Skipped>,
}

/// The scheduled command jobs one [`Client::scheduled_jobs`] call found over its pages.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScheduledJobs {
    /// The jobs, oldest first (the reverse of Buildkite's most-recently-created order).
    pub jobs: Vec<CommandJob>,
    /// How many jobs match the request (for [`Priorities::DefaultOnly`], the priority-0
    /// ones), as Buildkite counted them on the last page fetched.
    pub total: u64,
    /// How many scheduled jobs match the filters but have a priority other than 0, as
    /// counted on the last page fetched (see [`ScheduledJobsPage::other_priorities`]).
    pub other_priorities: u64,
    /// Whether newer jobs were left for the next poll: more pages existed than `max_pages`
    /// allowed, or Buildkite said there were more without giving a cursor.
    pub truncated: bool,
    /// Entries that could not be mapped, with the reason (never silently dropped).
    pub skipped: Vec<Skipped>,
}

impl Client {
    /// Lists scheduled command jobs matching the request, oldest first, following cursors
    /// towards newer jobs for up to `max_pages` requests. Each request costs what
    /// [`Client::scheduled_jobs_page`] says.
    pub async fn scheduled_jobs(
        &self,
        request: &ScheduledJobsRequest,
    ) -> Result<Fetched<ScheduledJobs>> {
        let mut tally = Tally::default();
        let mut result = ScheduledJobs::default();
        let mut before = None;
        for fetched in 1..=request.max_pages.max(1) {
            let (page, exchange) = self.page(request, before.take()).await?;
            tally.record(exchange);
            result.total = page.total;
            result.other_priorities = page.other_priorities;
            result.jobs.extend(page.jobs);
            result.skipped.extend(page.skipped);
            let has_newer = page.newer.is_some() || page.truncated;
            match next_page(has_newer, page.newer, fetched, request.max_pages) {
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

    /// Fetches one page of scheduled command jobs matching the request, oldest first:
    /// without `before` the page of the oldest jobs, with `before` the page of jobs newer
    /// than that cursor (a previous page's [`ScheduledJobsPage::newer`]). One request; its
    /// actual complexity is `5 + 2 × jobs` for [`Priorities::All`] and `5 + jobs` for
    /// [`Priorities::DefaultOnly`].
    pub async fn scheduled_jobs_page(
        &self,
        request: &ScheduledJobsRequest,
        before: Option<&str>,
    ) -> Result<Fetched<ScheduledJobsPage>> {
        let (page, exchange) = self.page(request, before.map(str::to_owned)).await?;
        Ok(Tally::single(exchange, page))
    }

    async fn page(
        &self,
        request: &ScheduledJobsRequest,
        before: Option<String>,
    ) -> Result<(ScheduledJobsPage, Exchange)> {
        match request.priorities {
            Priorities::All => self.all_priorities_page(request, before).await,
            Priorities::DefaultOnly => self.default_priority_page(request, before).await,
        }
    }

    async fn all_priorities_page(
        &self,
        request: &ScheduledJobsRequest,
        before: Option<String>,
    ) -> Result<(ScheduledJobsPage, Exchange)> {
        let variables = all::Variables {
            organization: request.organization.clone(),
            agent_query_rules: Some(request.agent_query_rules.clone()),
            cluster: request.cluster.clone(),
            last: page_size(request.page_size),
            before,
        };
        let body = gql::ScheduledJobs::build_query(variables);
        let (answer, exchange) = self.post_graphql_partial(ALL, &body).await?;
        let (data, edges): (all::ResponseData, _) = split_page(ALL, answer)?;
        let organization = data
            .organization
            .ok_or_else(|| organization_not_found(request))?;
        let jobs = organization
            .jobs
            .ok_or_else(|| missing(ALL, "organization.jobs"))?;
        let total = count(jobs.count);
        let page = Listing {
            total,
            // Unknown without the second count: assume every job may have a priority, so a
            // caller keeps listing them with theirs.
            other_priorities: organization
                .default_priority
                .map_or(total, |zero| total.saturating_sub(count(zero.count))),
            page_info: jobs
                .page_info
                .map(|info| (info.has_previous_page, info.start_cursor)),
            overlap: request.overlap,
            edges: edges.map(|edge| {
                edge.map(|e: all::ScheduledJobsOrganizationJobsEdges| {
                    edge_of(e.cursor, e.node, |node| match node {
                        all::ScheduledJobsOrganizationJobsEdgesNode::JobTypeCommand(job) => {
                            let priority = job.priority.number.and_then(|n| i32::try_from(n).ok());
                            job.scheduled_command_job
                                .into_command_job(priority.unwrap_or(0))
                        }
                        other => Err(not_a_command_job(&other)),
                    })
                })
            }),
        };
        Ok((page.into_page(), exchange))
    }

    async fn default_priority_page(
        &self,
        request: &ScheduledJobsRequest,
        before: Option<String>,
    ) -> Result<(ScheduledJobsPage, Exchange)> {
        let variables = default_only::Variables {
            organization: request.organization.clone(),
            agent_query_rules: Some(request.agent_query_rules.clone()),
            cluster: request.cluster.clone(),
            last: page_size(request.page_size),
            before,
        };
        let body = gql::ScheduledDefaultPriorityJobs::build_query(variables);
        let (answer, exchange) = self.post_graphql_partial(DEFAULT_ONLY, &body).await?;
        let (data, edges): (default_only::ResponseData, _) = split_page(DEFAULT_ONLY, answer)?;
        let organization = data
            .organization
            .ok_or_else(|| organization_not_found(request))?;
        let jobs = organization
            .jobs
            .ok_or_else(|| missing(DEFAULT_ONLY, "organization.jobs"))?;
        let total = count(jobs.count);
        let page = Listing {
            total,
            // Unknown without the count of every job: say at least one has another priority,
            // so a caller switches to listing priorities rather than missing such jobs.
            other_priorities: organization
                .all
                .map_or(1, |every| count(every.count).saturating_sub(total)),
            page_info: jobs
                .page_info
                .map(|info| (info.has_previous_page, info.start_cursor)),
            overlap: request.overlap,
            edges: edges.map(|edge| {
                edge.map(|e: default_only::ScheduledDefaultPriorityJobsOrganizationJobsEdges| {
                    edge_of(e.cursor, e.node, |node| match node {
                        // The request filters on priority 0: that is every job's priority.
                        default_only::ScheduledDefaultPriorityJobsOrganizationJobsEdgesNode::JobTypeCommand(job) => {
                            job.into_command_job(0)
                        }
                        other => Err(not_a_command_job(&other)),
                    })
                })
            }),
        };
        Ok((page.into_page(), exchange))
    }
}

/// Where a page's edges are in its answer.
const EDGES: [&str; 3] = ["organization", "jobs", "edges"];

/// A page's edges, each decoded on its own: an edge Buildkite reported an error for, or one
/// this client cannot decode (a job type added to the schema later), is skipped with the
/// reason and costs only its job.
struct Edges {
    operation: &'static str,
    raw: std::vec::IntoIter<serde_json::Value>,
    index: usize,
    errors: ItemErrors,
}

/// An edge as [`Edges`] yields it: decoded (`None` for a null edge), or skipped.
type RawEdge<E> = std::result::Result<Option<E>, (Option<String>, Skipped)>;

impl Edges {
    fn map<E, F>(self, mut mapped: F) -> impl Iterator<Item = Option<Edge>>
    where
        E: serde::de::DeserializeOwned,
        F: FnMut(Option<E>) -> Option<Edge>,
    {
        self.decoded::<E>().map(move |edge| match edge {
            Ok(edge) => mapped(edge),
            Err((cursor, skipped)) => Some((cursor, Some(Err(skipped)))),
        })
    }

    fn decoded<E: serde::de::DeserializeOwned>(mut self) -> impl Iterator<Item = RawEdge<E>> {
        std::iter::from_fn(move || {
            let raw = self.raw.next()?;
            let index = self.index;
            self.index += 1;
            let cursor = raw["cursor"].as_str().map(str::to_owned);
            let uuid = raw["node"]["uuid"].as_str().map(str::to_owned);
            if let Some(reason) = self.errors.take(&index.to_string()) {
                return Some(Err((cursor, Skipped { uuid, reason })));
            }
            let at = format!("data.{}[{index}]", EDGES.join("."));
            Some(
                decode_value_at::<Option<E>>(self.operation, &at, raw).map_err(|error| {
                    (
                        cursor,
                        Skipped {
                            uuid,
                            reason: error.to_string(),
                        },
                    )
                }),
            )
        })
    }
}

/// Splits an answer into its data (without the edges) and its edges. GraphQL errors about
/// one edge are kept with that edge; any other error fails the page. A null edge list is
/// [`Error::MissingField`]: the page says nothing about its jobs.
fn split_page<D: serde::de::DeserializeOwned>(
    operation: &'static str,
    answer: Partial,
) -> Result<(D, Edges)> {
    let errors = ItemErrors::split(
        operation,
        answer.errors,
        &answer.data,
        &EDGES,
        partial::index,
    )?;
    let mut data = answer.data;
    let jobs_listed = !data["organization"]["jobs"].is_null();
    let raw = match data
        .pointer_mut("/organization/jobs/edges")
        .map(serde_json::Value::take)
    {
        Some(serde_json::Value::Array(raw)) => raw,
        _ if jobs_listed => return Err(missing(operation, "organization.jobs.edges")),
        _ => Vec::new(),
    };
    let data = decode_value(operation, data)?;
    Ok((
        data,
        Edges {
            operation,
            raw: raw.into_iter(),
            index: 0,
            errors,
        },
    ))
}

/// A page as either operation returned it, nodes mapped.
struct Listing<I> {
    total: u64,
    other_priorities: u64,
    /// `hasPreviousPage` and `startCursor`: whether newer jobs exist, and where (`None`
    /// when Buildkite did not say: the page reports itself truncated).
    page_info: Option<(bool, Option<String>)>,
    /// How many of the page's newest jobs the next page repeats.
    overlap: u16,
    /// The page's edges (cursor and mapped node), newest first as Buildkite lists them;
    /// `None` for a null edge, a `None` node for a null node.
    edges: I,
}

/// An edge as [`Listing`] holds it: its cursor and its mapped node.
type Edge = (Option<String>, Option<Result<CommandJob, Skipped>>);

/// An edge of either operation: its cursor, and its node (if not null) mapped by `map`.
fn edge_of<N>(
    cursor: String,
    node: Option<N>,
    map: impl FnOnce(N) -> Result<CommandJob, Skipped>,
) -> Edge {
    (Some(cursor), node.map(map))
}

impl<I> Listing<I>
where
    I: Iterator<Item = Option<Edge>>,
{
    fn into_page(self) -> ScheduledJobsPage {
        let mut page = ScheduledJobsPage {
            total: self.total,
            other_priorities: self.other_priorities,
            ..ScheduledJobsPage::default()
        };
        let edges: Vec<Edge> = self
            .edges
            .map(|edge| edge.unwrap_or((None, None)))
            .collect();
        // The next page ends just before the edge `overlap` back from the newest, so it
        // starts with the `overlap` newest jobs of this one; `startCursor` without overlap.
        let overlap_cursor = edges
            .get(usize::from(self.overlap).min(edges.len().saturating_sub(1)))
            .and_then(|(cursor, _)| cursor.clone())
            .filter(|_| self.overlap > 0);
        // Reversed, the page continues an oldest-first result after the (older) pages
        // before it.
        for (_, node) in edges.into_iter().rev() {
            match node {
                Some(Ok(job)) => page.jobs.push(job),
                Some(Err(skipped)) => {
                    tracing::warn!(uuid = ?skipped.uuid, reason = %skipped.reason, "skipping a scheduled job");
                    page.skipped.push(skipped);
                }
                None => page.skipped.push(Skipped {
                    uuid: None,
                    reason: "organization.jobs.edges[].node is null".to_owned(),
                }),
            }
        }
        match self.page_info {
            Some((true, start)) => match overlap_cursor.or(start) {
                Some(cursor) => page.newer = Some(cursor),
                None => page.truncated = true,
            },
            Some((false, _)) => {}
            // Whether newer jobs exist is unknown: they wait for the next poll.
            None => page.truncated = true,
        }
        page
    }
}

fn organization_not_found(request: &ScheduledJobsRequest) -> Error {
    Error::NotFound {
        what: format!("organization {:?}", request.organization),
    }
}

fn missing(operation: &'static str, field: &str) -> Error {
    Error::MissingField {
        operation,
        field: field.to_owned(),
    }
}

fn not_a_command_job(node: &impl std::fmt::Debug) -> Skipped {
    Skipped {
        uuid: None,
        reason: format!("expected a JobTypeCommand, got {node:?}"),
    }
}

/// The `ScheduledCommandJob` fragment mapped to a [`CommandJob`] of the given priority.
trait IntoCommandJob {
    fn into_command_job(self, priority: i32) -> Result<CommandJob, Skipped>;
}

/// graphql_client generates the fragment's struct once per operation module; the mapping
/// is written once, here, for both.
macro_rules! command_job_from_fragment {
    ($($operation:ident),+) => {$(
        impl IntoCommandJob for $operation::ScheduledCommandJob {
            fn into_command_job(self, priority: i32) -> Result<CommandJob, Skipped> {
                let operation = $operation::OPERATION_NAME;
                let uuid = self.uuid.clone();
                let skipped = |error: Error| Skipped {
                    uuid: Some(uuid.clone()),
                    reason: error.to_string(),
                };
                Ok(CommandJob {
                    scheduled_at: timestamp(operation, "scheduledAt", self.scheduled_at)
                        .map_err(skipped)?,
                    runnable_at: timestamp(operation, "runnableAt", self.runnable_at)
                        .map_err(skipped)?,
                    id: self.id,
                    uuid: self.uuid,
                    label: self.label,
                    state: job_state(&self.state),
                    agent_query_rules: self.agent_query_rules.unwrap_or_default(),
                    command: self.command,
                    env: self.env.unwrap_or_default(),
                    priority,
                    url: self.url,
                })
            }
        }
    )+};
}

command_job_from_fragment!(all, default_only);
