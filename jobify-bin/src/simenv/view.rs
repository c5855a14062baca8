//! One view of a simulated job, whichever job source serves it, so the end-to-end tests, the
//! demo and the benchmark ask the same questions of both: what state is it in, how often did
//! an agent try to take it, what was Buildkite told.

use jobify_buildkite::Source;
use uuid::Uuid;

use super::{ScheduledSimJob, SimEnv, Workload, schedule, schedule_stacks};

/// A simulated job as Buildkite sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimJobView {
    /// Its state, in the GraphQL schema's spelling (`SCHEDULED`, `RUNNING`, `FINISHED`, ...;
    /// the Stacks API's `reserved` reads `SCHEDULED`: it still waits for an agent).
    pub state: String,
    /// The exit status, once finished.
    pub exit_status: Option<i64>,
    /// How many times agents took it (or, on the Stacks side, tried to with a valid
    /// credential): more than one means it was launched twice.
    pub acquired: u32,
    /// What jobify told Buildkite about it: annotations (GraphQL) or the finish detail
    /// (Stacks).
    pub told: Vec<String>,
    /// Its timeline's stack notifications (Stacks only).
    pub notifications: Vec<String>,
}

impl SimEnv {
    /// Which job source jobify is to read.
    pub fn source(&self) -> Source {
        if self.stacks.is_some() {
            Source::Stacks
        } else {
            Source::Graphql
        }
    }

    /// Schedules `count` jobs of `workload` with the job source's simulator.
    pub fn schedule(
        &self,
        workload: &Workload,
        first: usize,
        count: usize,
    ) -> Vec<ScheduledSimJob> {
        match &self.stacks {
            Some(stacks) => schedule_stacks(stacks, workload, first, count),
            None => schedule(&self.buildkite, workload, first, count),
        }
    }

    /// The job as Buildkite sees it; `None` for a job it does not know.
    pub fn job_view(&self, uuid: Uuid) -> Option<SimJobView> {
        match &self.stacks {
            Some(stacks) => stacks.job(uuid).map(|job| SimJobView {
                state: match job.state.as_str() {
                    "reserved" => "SCHEDULED".to_owned(),
                    other => other.to_ascii_uppercase(),
                },
                exit_status: job.exit_status,
                acquired: job.acquire_attempts,
                told: job.finish.into_iter().map(|finish| finish.detail).collect(),
                notifications: job
                    .notifications
                    .into_iter()
                    .map(|notification| notification.detail)
                    .collect(),
            }),
            None => self.buildkite.job(uuid).map(|job| SimJobView {
                state: job.state,
                exit_status: job.exit_status.map(i64::from),
                acquired: job.acquired_count,
                told: job.annotations,
                notifications: Vec::new(),
            }),
        }
    }

    /// Schedules one job described as for the GraphQL simulator with the job source's
    /// simulator ([`to_stacks`](super::to_stacks) translates it for the Stacks API's).
    pub fn schedule_job(&self, spec: &jobify_sim::buildkite::JobSpec) -> Uuid {
        match &self.stacks {
            Some(stacks) => stacks.add_job(super::to_stacks(spec)),
            None => self.buildkite.schedule_job(spec.clone()).uuid,
        }
    }

    /// Cancels the job, as a person would in Buildkite. `false` for a job it does not know
    /// or that has ended.
    pub fn cancel_job(&self, uuid: Uuid) -> bool {
        match &self.stacks {
            Some(stacks) => stacks.cancel_job(uuid),
            None => self.buildkite.cancel_job(uuid),
        }
    }
}
