//! The per-pipeline watch: `Pipeline` (lookup by slug), `PipelineBuilds` and `BuildJobs`.

use graphql_client::GraphQLQuery;

use super::{DateTime, NextPage, build_state, count, job_state, next_page, page_size, timestamp};
use crate::build::{Build, BuildJob, BuildState, Pipeline, PipelineBuilds, Skipped};
use crate::client::Client;
use crate::error::{Error, Result};
use crate::transport::{Fetched, Tally};

/// Types generated from the operation documents; private to this file.
mod gql {
    #![allow(unreachable_pub, clippy::all)]
    use super::*;

    #[derive(GraphQLQuery)]
    #[graphql(
        schema_path = "graphql/schema.graphql",
        query_path = "graphql/Pipeline.graphql",
        response_derives = "Debug"
    )]
    pub(super) struct Pipeline;

    #[derive(GraphQLQuery)]
    #[graphql(
        schema_path = "graphql/schema.graphql",
        query_path = "graphql/PipelineBuilds.graphql",
        response_derives = "Debug"
    )]
    pub(super) struct PipelineBuilds;

    #[derive(GraphQLQuery)]
    #[graphql(
        schema_path = "graphql/schema.graphql",
        query_path = "graphql/BuildJobs.graphql",
        response_derives = "Debug"
    )]
    pub(super) struct BuildJobs;
}

/// Which builds of a pipeline to fetch, and how far to page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PipelineBuildsRequest {
    /// The pipeline's GraphQL id ([`Pipeline::id`]).
    pub pipeline_id: String,
    /// Build states to include; the seed watches `RUNNING`, `FAILING` and `SCHEDULED`.
    pub states: Vec<BuildState>,
    /// Builds per request (1..=500).
    pub builds_page_size: u16,
    /// The most build pages one call fetches.
    pub max_build_pages: u16,
    /// Command jobs per request, per build (1..=500).
    pub jobs_page_size: u16,
    /// The most job pages one call fetches per build (the first comes with the build).
    pub max_job_pages: u16,
    /// Meta-data entries per build (1..=500; Buildkite offers no cursor for these).
    pub meta_data_page_size: u16,
}

impl PipelineBuildsRequest {
    /// The seed's watch: running, failing and scheduled builds, 5 builds of 50 jobs per
    /// page, up to 3 pages at each level, 10 meta-data entries (334 requested points a page).
    pub fn active(pipeline_id: &str) -> Self {
        PipelineBuildsRequest {
            pipeline_id: pipeline_id.to_owned(),
            states: vec![
                BuildState::Running,
                BuildState::Failing,
                BuildState::Scheduled,
            ],
            builds_page_size: 5,
            max_build_pages: 3,
            jobs_page_size: 50,
            max_job_pages: 3,
            meta_data_page_size: 10,
        }
    }
}

impl Client {
    /// Looks a pipeline up by `organization/slug`.
    pub async fn pipeline(&self, organization: &str, slug: &str) -> Result<Fetched<Pipeline>> {
        const OPERATION: &str = "Pipeline";
        let full_slug = format!("{organization}/{slug}");
        let variables = gql::pipeline::Variables {
            slug: full_slug.clone(),
        };
        let (data, exchange) = self.run::<gql::Pipeline>(OPERATION, variables).await?;
        let pipeline = data.pipeline.ok_or(Error::NotFound {
            what: format!("pipeline {full_slug:?}"),
        })?;
        Ok(Tally::single(
            exchange,
            Pipeline {
                id: pipeline.id,
                uuid: pipeline.uuid,
                slug: pipeline.slug,
                name: pipeline.name,
                url: pipeline.url,
            },
        ))
    }

    /// Builds of a pipeline in the requested states, with all their command jobs (following
    /// cursors at both levels, within the request's bounds) and meta-data.
    pub async fn pipeline_builds(
        &self,
        request: &PipelineBuildsRequest,
    ) -> Result<Fetched<PipelineBuilds>> {
        const OPERATION: &str = "PipelineBuilds";
        use gql::pipeline_builds as generated;
        let mut tally = Tally::default();
        let mut result = PipelineBuilds::default();
        let mut after = None;
        // Generated enums serialize `Other(name)` as `name`, which covers every state.
        let states = || -> Vec<generated::BuildStates> {
            request
                .states
                .iter()
                .map(|state| generated::BuildStates::Other(state.as_str().to_owned()))
                .collect()
        };
        for page in 0..request.max_build_pages.max(1) {
            let variables = generated::Variables {
                pipeline: request.pipeline_id.clone(),
                states: Some(states()),
                builds_first: page_size(request.builds_page_size),
                builds_after: after.take(),
                jobs_first: page_size(request.jobs_page_size),
                meta_data_first: page_size(request.meta_data_page_size),
            };
            let (data, exchange) = self
                .run::<gql::PipelineBuilds>(OPERATION, variables)
                .await?;
            tally.record(exchange);
            let not_found = || Error::NotFound {
                what: format!("pipeline {:?}", request.pipeline_id),
            };
            let pipeline = match data.node.ok_or_else(not_found)? {
                generated::PipelineBuildsNode::Pipeline(pipeline) => pipeline,
                _ => return Err(not_found()),
            };
            let builds = pipeline.builds.ok_or_else(|| Error::MissingField {
                operation: OPERATION,
                field: "node.builds".to_owned(),
            })?;
            result.total = count(builds.count);
            for node in builds.edges.into_iter().flatten() {
                let Some(node) = node.and_then(|edge| edge.node) else {
                    result.skipped.push(Skipped {
                        uuid: None,
                        reason: "node.builds.edges[].node is null".to_owned(),
                    });
                    continue;
                };
                if let Some(build) = self
                    .complete_build(node, request, &mut tally, &mut result.skipped)
                    .await?
                {
                    result.builds.push(build);
                }
            }
            let (has_next, cursor) = builds
                .page_info
                .map_or((false, None), |info| (info.has_next_page, info.end_cursor));
            match next_page(has_next, cursor, page + 1, request.max_build_pages) {
                NextPage::Fetch(cursor) => after = Some(cursor),
                NextPage::Truncated => {
                    result.truncated = true;
                    break;
                }
                NextPage::Done => break,
            }
        }
        Ok(tally.finish(result))
    }

    /// Maps one build of a `PipelineBuilds` page and fetches its further job pages. A build
    /// whose jobs cannot be read is reported in `skipped` (`None`), and one whose further job
    /// pages cannot be read (it was deleted meanwhile) keeps what was read and is marked
    /// `jobs_truncated`: one bad build never fails the poll of the others. Transport errors
    /// do, as they would for every build.
    async fn complete_build(
        &self,
        node: gql::pipeline_builds::PipelineBuildsNodeOnPipelineBuildsEdgesNode,
        request: &PipelineBuildsRequest,
        tally: &mut Tally,
        skipped: &mut Vec<Skipped>,
    ) -> Result<Option<Build>> {
        const OPERATION: &str = "PipelineBuilds";
        let meta_data = node.meta_data.map_or((Vec::new(), false), |meta| {
            let pairs: Vec<(String, String)> = meta
                .edges
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|edge| edge.node)
                .map(|entry| (entry.key, entry.value))
                .collect();
            let truncated = count(meta.count) > pairs.len() as u64;
            (pairs, truncated)
        });
        let mut build = Build {
            uuid: node.uuid,
            message: node.message,
            state: build_state(&node.state),
            commit: node.commit,
            meta_data: meta_data.0,
            meta_data_truncated: meta_data.1,
            jobs: Vec::new(),
            jobs_total: 0,
            jobs_truncated: false,
        };
        let Some(jobs) = node.jobs else {
            let error = Error::MissingField {
                operation: OPERATION,
                field: format!("node.builds.edges[uuid={}].node.jobs", build.uuid),
            };
            tracing::warn!(build = %build.uuid, %error, "skipping a build");
            skipped.push(Skipped {
                uuid: Some(build.uuid),
                reason: error.to_string(),
            });
            return Ok(None);
        };
        build.jobs_total = count(jobs.count);
        for job in jobs.edges.into_iter().flatten() {
            push_job(
                job.and_then(|edge| edge.node).map(BuildJob::try_from),
                &mut build.jobs,
                skipped,
            );
        }
        let mut pages: u16 = 1;
        let mut page_info = jobs.page_info.map(|p| (p.has_next_page, p.end_cursor));
        loop {
            let (has_next, cursor) = page_info.take().unwrap_or((false, None));
            // A next page without a cursor (the seed's recorded query did not ask for one)
            // is reported as truncated, never looped on.
            let after = match next_page(has_next, cursor, pages, request.max_job_pages) {
                NextPage::Fetch(after) => after,
                NextPage::Truncated => {
                    build.jobs_truncated = true;
                    break;
                }
                NextPage::Done => break,
            };
            pages = pages.saturating_add(1);
            let variables = gql::build_jobs::Variables {
                build: build.uuid.clone(),
                first: page_size(request.jobs_page_size),
                after: Some(after),
            };
            let (data, exchange) = self.run::<gql::BuildJobs>("BuildJobs", variables).await?;
            tally.record(exchange);
            let jobs = match data.build.map(|found| found.jobs) {
                Some(Some(jobs)) => jobs,
                missing => {
                    let error = match missing {
                        None => Error::NotFound {
                            what: format!("build {:?}", build.uuid),
                        },
                        Some(_) => Error::MissingField {
                            operation: "BuildJobs",
                            field: "build.jobs".to_owned(),
                        },
                    };
                    tracing::warn!(build = %build.uuid, %error, "cannot read a build's further jobs");
                    skipped.push(Skipped {
                        uuid: Some(build.uuid.clone()),
                        reason: error.to_string(),
                    });
                    build.jobs_truncated = true;
                    break;
                }
            };
            for job in jobs.edges.into_iter().flatten() {
                push_job(
                    job.and_then(|edge| edge.node).map(BuildJob::try_from),
                    &mut build.jobs,
                    skipped,
                );
            }
            page_info = jobs.page_info.map(|p| (p.has_next_page, p.end_cursor));
        }
        Ok(Some(build))
    }
}

fn push_job(
    job: Option<Result<BuildJob, Skipped>>,
    jobs: &mut Vec<BuildJob>,
    skipped: &mut Vec<Skipped>,
) {
    match job {
        Some(Ok(job)) => jobs.push(job),
        Some(Err(reason)) => {
            tracing::warn!(uuid = ?reason.uuid, reason = %reason.reason, "skipping a build job");
            skipped.push(reason);
        }
        None => skipped.push(Skipped {
            uuid: None,
            reason: "jobs.edges[].node is null".to_owned(),
        }),
    }
}

/// Both job selections are the same fields; one mapping serves both generated types.
macro_rules! build_job_from {
    ($node:ident, $operation:literal) => {
        impl TryFrom<$node> for BuildJob {
            type Error = Skipped;

            fn try_from(node: $node) -> Result<Self, Skipped> {
                let job = match node {
                    $node::JobTypeCommand(job) => job,
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
                let state = job_state(&job.state);
                Ok(BuildJob {
                    scheduled_at: timestamp($operation, "scheduledAt", job.scheduled_at)
                        .map_err(skipped)?,
                    runnable_at: timestamp($operation, "runnableAt", job.runnable_at)
                        .map_err(skipped)?,
                    uuid: job.uuid,
                    label: job.label,
                    state,
                    agent_query_rules: job.agent_query_rules.unwrap_or_default(),
                    command: job.command,
                    env: job.env.unwrap_or_default(),
                    exit_status: job.exit_status,
                })
            }
        }
    };
}

mod pipeline_builds_job {
    use super::*;
    use gql::pipeline_builds::PipelineBuildsNodeOnPipelineBuildsEdgesNodeJobsEdgesNode as Node;
    build_job_from!(Node, "PipelineBuilds");
}

mod build_jobs_job {
    use super::*;
    use gql::build_jobs::BuildJobsBuildJobsEdgesNode as Node;
    build_job_from!(Node, "BuildJobs");
}
