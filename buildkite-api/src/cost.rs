//! Requested complexity of each operation, under Buildkite's documented counting rule.
//!
//! Object, interface and union fields cost 1; scalars and enums 0. Inside a connection
//! fetched with `first: N` or `last: N`, everything under `edges` counts N times (a
//! connection without `first`/`last` is assumed to hold 500). The connection field itself, its `pageInfo` and
//! its `edges` list count once. `tests/complexity.rs` walks each document in `graphql/`
//! with apollo-compiler and checks these formulas.
//!
//! The *actual* complexity Buildkite charges after execution follows the same rule over
//! what was returned, so for a page of `n` jobs it is the same formula with `n` for the
//! page size (e.g. `ScheduledJobs`: `5 + 2 × n` for [`Priorities::All`], `5 + n` for
//! [`Priorities::DefaultOnly`]).

use crate::Priorities;

/// An operation of this crate with the page sizes it is sent with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// A scheduled-jobs page with `last: page_size`: operation `ScheduledJobs` for
    /// [`Priorities::All`], `ScheduledDefaultPriorityJobs` for [`Priorities::DefaultOnly`].
    ScheduledJobs {
        /// Jobs per page.
        page_size: u16,
        /// Which jobs the page lists (and so what a job costs).
        priorities: Priorities,
    },
    /// `Pipeline` (lookup by slug).
    Pipeline,
    /// `PipelineBuilds` with builds, jobs per build and meta-data per build page sizes.
    PipelineBuilds {
        /// Builds per page.
        builds: u16,
        /// Command jobs per build.
        jobs: u16,
        /// Meta-data entries per build.
        meta_data: u16,
    },
    /// `BuildJobs`: a further page of one build's jobs.
    BuildJobs {
        /// Jobs per page.
        jobs: u16,
    },
    /// The batched `JobStates` query for this many jobs.
    JobStates {
        /// Jobs looked up in the request.
        jobs: u16,
    },
    /// `CancelJob`.
    CancelJob,
    /// `AnnotateJob`.
    AnnotateJob,
    /// `AnnotateBuild`.
    AnnotateBuild,
}

/// The requested complexity Buildkite computes for one request of `operation`.
pub fn requested_complexity(operation: Operation) -> u32 {
    match operation {
        // organization, jobs, pageInfo, edges, the second (counting) jobs connection
        // + per job: node, and priority when it is selected.
        Operation::ScheduledJobs {
            page_size,
            priorities,
        } => {
            let per_job = match priorities {
                Priorities::All => 2,
                Priorities::DefaultOnly => 1,
            };
            5 + per_job * u32::from(page_size)
        }
        // pipeline.
        Operation::Pipeline => 1,
        // node, builds, pageInfo, edges + per build: node, metaData, metaData.edges,
        // jobs, jobs.pageInfo, jobs.edges, one per meta-data node and one per job node.
        Operation::PipelineBuilds {
            builds,
            jobs,
            meta_data,
        } => 4 + u32::from(builds) * (6 + u32::from(meta_data) + u32::from(jobs)),
        // build, jobs, pageInfo, edges + per job: node.
        Operation::BuildJobs { jobs } => 4 + u32::from(jobs),
        // One `job` union field per alias.
        Operation::JobStates { jobs } => u32::from(jobs),
        // The payload and the job (or annotation) in it.
        Operation::CancelJob | Operation::AnnotateJob | Operation::AnnotateBuild => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scheduled_jobs_page_of_100_stays_under_500_points() {
        let page = |priorities| {
            requested_complexity(Operation::ScheduledJobs {
                page_size: 100,
                priorities,
            })
        };
        assert_eq!(page(Priorities::All), 205);
        assert_eq!(page(Priorities::DefaultOnly), 105);
    }

    #[test]
    fn default_watch_page_is_a_few_hundred_points() {
        let request = crate::PipelineBuildsRequest::active("id");
        let cost = requested_complexity(Operation::PipelineBuilds {
            builds: request.builds_page_size,
            jobs: request.jobs_page_size,
            meta_data: request.meta_data_page_size,
        });
        assert_eq!(cost, 334);
    }
}
