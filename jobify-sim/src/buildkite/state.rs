//! The simulated organization: pipelines, builds and command jobs, and every transition a
//! job can make (schedule, acquire, finish, cancel, annotate). Synchronous and lock-free by
//! itself; the server and the [`crate::AgentApi`] share it behind one mutex.

use std::collections::HashMap;

use jiff::Timestamp;
use uuid::Uuid;

use super::job::{AgentRecord, Annotation, Job, JobSpec, JobState};
use crate::agent::{AcquireError, JobScript};

/// Where the simulated web UI lives; `url` fields point here, like Buildkite's do.
pub(crate) const WEB_URL: &str = "https://buildkite.com";

/// The organization.
#[derive(Clone, Debug)]
pub(crate) struct Organization {
    pub(crate) uuid: Uuid,
    pub(crate) slug: String,
    pub(crate) name: String,
}

/// A pipeline.
#[derive(Clone, Debug)]
pub(crate) struct Pipeline {
    pub(crate) uuid: Uuid,
    pub(crate) slug: String,
    /// Builds, oldest first.
    pub(crate) builds: Vec<Uuid>,
}

/// A build.
#[derive(Clone, Debug)]
pub(crate) struct Build {
    pub(crate) uuid: Uuid,
    pub(crate) pipeline: Uuid,
    pub(crate) number: u64,
    pub(crate) branch: String,
    pub(crate) commit: String,
    pub(crate) message: String,
    pub(crate) created_at: Timestamp,
    /// Jobs, in step order.
    pub(crate) jobs: Vec<Uuid>,
}

/// Why a cancel was refused (the GraphQL mutation reports it in `errors`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum CancelError {
    /// No such job.
    #[error("No job found")]
    NotFound,
    /// The job already finished or was cancelled.
    #[error("Job can't be canceled because it's already {0}")]
    AlreadyDone(&'static str),
}

/// The whole organization.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) org: Organization,
    /// Pipelines, oldest first.
    pub(crate) pipelines: Vec<Pipeline>,
    pub(crate) builds: HashMap<Uuid, Build>,
    pub(crate) jobs: HashMap<Uuid, Job>,
    /// Job uuids in creation order.
    pub(crate) job_order: Vec<Uuid>,
    agents_started: u64,
    /// Schema-permitted answers switched on for this run.
    pub(crate) answers: super::answers::SchemaAnswers,
}

impl State {
    /// An organization `slug` with nothing in it.
    pub(crate) fn new(slug: &str) -> Self {
        State {
            org: Organization {
                uuid: Uuid::new_v4(),
                slug: slug.to_owned(),
                name: slug.to_owned(),
            },
            pipelines: Vec::new(),
            builds: HashMap::new(),
            jobs: HashMap::new(),
            job_order: Vec::new(),
            agents_started: 0,
            answers: super::answers::SchemaAnswers::default(),
        }
    }

    pub(crate) fn pipeline(&self, uuid: Uuid) -> Option<&Pipeline> {
        self.pipelines.iter().find(|p| p.uuid == uuid)
    }

    pub(crate) fn pipeline_by_slug(&self, slug: &str) -> Option<&Pipeline> {
        self.pipelines.iter().find(|p| p.slug == slug)
    }

    pub(crate) fn pipeline_url(&self, pipeline: &Pipeline) -> String {
        format!("{WEB_URL}/{}/{}", self.org.slug, pipeline.slug)
    }

    pub(crate) fn build_url(&self, build: &Build) -> String {
        let slug = self
            .pipeline(build.pipeline)
            .map_or("", |p| p.slug.as_str());
        format!("{WEB_URL}/{}/{slug}/builds/{}", self.org.slug, build.number)
    }

    pub(crate) fn job_url(&self, job: &Job) -> String {
        let build = self.builds.get(&job.build).map(|b| self.build_url(b));
        format!("{}#{}", build.unwrap_or_default(), job.uuid)
    }

    /// Creates the job (and its pipeline and build as needed) in state `SCHEDULED`.
    /// Returns the job's uuid and its build's number.
    pub(crate) fn schedule(&mut self, spec: JobSpec) -> (Uuid, u64) {
        let pipeline = self.pipeline_or_create(&spec.pipeline);
        let existing = spec.build.and_then(|number| {
            self.pipeline(pipeline)?
                .builds
                .iter()
                .copied()
                .find(|b| self.builds.get(b).is_some_and(|b| b.number == number))
        });
        let build = match existing {
            Some(build) => build,
            None => self.create_build(pipeline, &spec),
        };
        let uuid = Uuid::new_v4();
        let step_uuid = Uuid::new_v4();
        let env = self.job_env(uuid, step_uuid, build, &spec);
        let job = Job {
            uuid,
            build,
            pipeline,
            step_uuid,
            label: spec.label,
            command: spec.command,
            step_key: spec.step_key,
            agent_query_rules: spec.agent_query_rules,
            env,
            priority: spec.priority,
            cluster: spec.cluster,
            script: spec.script,
            state: if spec.waiting {
                JobState::Waiting
            } else {
                JobState::Scheduled
            },
            exit_status: None,
            agent: None,
            created_at: Timestamp::now(),
            started_at: None,
            finished_at: None,
            canceled_at: None,
            annotations: Vec::new(),
            canceled_by_api: false,
            acquired_count: 0,
        };
        self.jobs.insert(uuid, job);
        self.job_order.push(uuid);
        let number = match self.builds.get_mut(&build) {
            Some(b) => {
                b.jobs.push(uuid);
                b.number
            }
            None => 0,
        };
        (uuid, number)
    }

    fn pipeline_or_create(&mut self, slug: &str) -> Uuid {
        self.create_pipeline(slug, None)
    }

    /// The pipeline `slug`, created (with `uuid` if given) when it does not exist yet.
    pub(crate) fn create_pipeline(&mut self, slug: &str, uuid: Option<Uuid>) -> Uuid {
        if let Some(p) = self.pipeline_by_slug(slug) {
            return p.uuid;
        }
        let uuid = uuid.unwrap_or_else(Uuid::new_v4);
        self.pipelines.push(Pipeline {
            uuid,
            slug: slug.to_owned(),
            builds: Vec::new(),
        });
        uuid
    }

    fn create_build(&mut self, pipeline: Uuid, spec: &JobSpec) -> Uuid {
        let uuid = Uuid::new_v4();
        let Some(p) = self.pipelines.iter_mut().find(|p| p.uuid == pipeline) else {
            return uuid;
        };
        p.builds.push(uuid);
        let number = p.builds.len() as u64;
        self.builds.insert(
            uuid,
            Build {
                uuid,
                pipeline,
                number,
                branch: spec.branch.clone(),
                commit: spec.commit.clone(),
                message: spec.message.clone(),
                created_at: Timestamp::now(),
                jobs: Vec::new(),
            },
        );
        uuid
    }

    /// An agent with `tags` acquires exactly `uuid`: `SCHEDULED` -> `ASSIGNED` -> `RUNNING`.
    pub(crate) fn acquire(
        &mut self,
        uuid: Uuid,
        tags: &[String],
    ) -> Result<JobScript, AcquireError> {
        self.agents_started += 1;
        let agent_number = self.agents_started;
        let job = self
            .jobs
            .get_mut(&uuid)
            .ok_or(AcquireError::NotFound(uuid))?;
        job.acquired_count += 1;
        if job.state != JobState::Scheduled {
            return Err(AcquireError::NotScheduled {
                job: uuid,
                state: job.state.as_str().to_owned(),
            });
        }
        job.tags_match(tags).map_err(AcquireError::TagsMismatch)?;
        job.agent = Some(AgentRecord {
            uuid: Uuid::new_v4(),
            name: format!("sim-agent-{agent_number}"),
        });
        // ASSIGNED is passed through at once: the simulated agent starts the job as soon
        // as it holds it.
        job.state = JobState::Assigned;
        job.state = JobState::Running;
        job.started_at = Some(Timestamp::now());
        tracing::debug!(job = %uuid, "simulated agent acquired job");
        Ok(job.script)
    }

    /// The job's command exited: `RUNNING` -> `FINISHED`, or `CANCELING` -> `CANCELED`.
    pub(crate) fn finish(&mut self, uuid: Uuid, exit_status: i32) {
        let Some(job) = self.jobs.get_mut(&uuid) else {
            tracing::warn!(job = %uuid, "finish for an unknown job ignored");
            return;
        };
        let now = Timestamp::now();
        match job.state {
            JobState::Assigned | JobState::Running => job.state = JobState::Finished,
            JobState::Canceling => {
                job.state = JobState::Canceled;
                job.canceled_at = Some(now);
            }
            other => {
                tracing::warn!(job = %uuid, state = other.as_str(), "finish ignored");
                return;
            }
        }
        job.exit_status = Some(exit_status);
        job.finished_at = Some(now);
    }

    /// Cancels the job (`by_api`: through `jobTypeCommandCancel`, else as a UI user):
    /// a job without a running command is `CANCELED` at once, a running one `CANCELING`
    /// until its agent reports the exit.
    pub(crate) fn cancel(&mut self, uuid: Uuid, by_api: bool) -> Result<JobState, CancelError> {
        let job = self.jobs.get_mut(&uuid).ok_or(CancelError::NotFound)?;
        let now = Timestamp::now();
        match job.state {
            JobState::Waiting | JobState::Scheduled | JobState::Assigned => {
                job.state = JobState::Canceled;
                job.canceled_at = Some(now);
                job.finished_at = Some(now);
            }
            JobState::Running => job.state = JobState::Canceling,
            JobState::Canceling => {}
            done @ (JobState::Canceled | JobState::Finished | JobState::Expired) => {
                return Err(CancelError::AlreadyDone(done.as_str()));
            }
        }
        job.canceled_by_api |= by_api;
        Ok(job.state)
    }

    /// `WAITING` -> `SCHEDULED` (its dependency finished); `false` if it was not waiting.
    pub(crate) fn release(&mut self, uuid: Uuid) -> bool {
        self.transition(uuid, JobState::Waiting, JobState::Scheduled)
    }

    /// `SCHEDULED` -> `EXPIRED` (no agent took it in time); `false` if it was not scheduled.
    pub(crate) fn expire(&mut self, uuid: Uuid) -> bool {
        let expired = self.transition(uuid, JobState::Scheduled, JobState::Expired);
        if let Some(job) = self.jobs.get_mut(&uuid).filter(|_| expired) {
            job.finished_at = Some(Timestamp::now());
        }
        expired
    }

    fn transition(&mut self, uuid: Uuid, from: JobState, to: JobState) -> bool {
        match self.jobs.get_mut(&uuid) {
            Some(job) if job.state == from => {
                job.state = to;
                true
            }
            _ => false,
        }
    }

    /// The build's `BuildStates` value, derived from its jobs.
    pub(crate) fn build_state(&self, build: &Build) -> &'static str {
        let jobs: Vec<&Job> = build.jobs.iter().filter_map(|j| self.jobs.get(j)).collect();
        let failed = jobs
            .iter()
            .any(|j| j.state == JobState::Finished && j.exit_status != Some(0));
        let canceled = jobs.iter().any(|j| j.state == JobState::Canceled);
        if jobs.iter().all(|j| j.state.is_terminal()) {
            return if canceled {
                "CANCELED"
            } else if failed {
                "FAILED"
            } else {
                "PASSED"
            };
        }
        if jobs
            .iter()
            .all(|j| matches!(j.state, JobState::Scheduled | JobState::Waiting))
        {
            return "SCHEDULED";
        }
        if jobs.iter().any(|j| j.state == JobState::Canceling) {
            return "CANCELING";
        }
        if failed { "FAILING" } else { "RUNNING" }
    }

    /// Adds (or with `append`, extends) the annotation with `context` on the job; `None`
    /// when there is no such job.
    pub(crate) fn annotate_job(
        &mut self,
        uuid: Uuid,
        annotation: Annotation,
        append: bool,
    ) -> Option<Annotation> {
        let job = self.jobs.get_mut(&uuid)?;
        Some(upsert_annotation(&mut job.annotations, annotation, append))
    }
}

/// Buildkite keeps one annotation per context: a new body replaces the old one, `append`
/// adds to it; either way the annotation keeps its identity.
fn upsert_annotation(
    list: &mut Vec<Annotation>,
    annotation: Annotation,
    append: bool,
) -> Annotation {
    match list.iter_mut().find(|a| a.context == annotation.context) {
        Some(existing) => {
            if append {
                existing.body.push_str(&annotation.body);
            } else {
                existing.body = annotation.body;
            }
            existing.style = annotation.style;
            existing.clone()
        }
        None => {
            list.push(annotation.clone());
            annotation
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap fails the test")]
mod tests {
    use super::*;

    fn state_with_job() -> (State, Uuid) {
        let mut state = State::new("acme");
        let (job, _) = state.schedule(JobSpec::command("make").on_queue("kubernetes"));
        (state, job)
    }

    #[test]
    fn acquire_then_finish_moves_the_job_to_finished() {
        let (mut state, job) = state_with_job();
        let script = state
            .acquire(job, &["queue=kubernetes".to_owned()])
            .unwrap();
        assert_eq!(script.exit_status, 0);
        assert_eq!(state.jobs[&job].state, JobState::Running);
        state.finish(job, 3);
        assert_eq!(state.jobs[&job].state, JobState::Finished);
        assert_eq!(state.jobs[&job].exit_status, Some(3));
        let build = &state.builds[&state.jobs[&job].build];
        assert_eq!(state.build_state(build), "FAILED");
    }

    #[test]
    fn acquire_with_wrong_tags_leaves_the_job_scheduled() {
        let (mut state, job) = state_with_job();
        let err = state.acquire(job, &["queue=other".to_owned()]).unwrap_err();
        assert!(matches!(err, AcquireError::TagsMismatch(_)));
        assert_eq!(state.jobs[&job].state, JobState::Scheduled);
        assert_eq!(state.jobs[&job].acquired_count, 1);
    }

    #[test]
    fn cancelling_a_running_job_waits_for_the_agent() {
        let (mut state, job) = state_with_job();
        state
            .acquire(job, &["queue=kubernetes".to_owned()])
            .unwrap();
        assert_eq!(state.cancel(job, true), Ok(JobState::Canceling));
        state.finish(job, -1);
        assert_eq!(state.jobs[&job].state, JobState::Canceled);
        assert_eq!(
            state.cancel(job, true),
            Err(CancelError::AlreadyDone("CANCELED"))
        );
    }

    #[test]
    fn waiting_jobs_are_released_and_scheduled_jobs_expire() {
        let mut state = State::new("acme");
        let (job, _) = state.schedule(JobSpec {
            waiting: true,
            ..JobSpec::command("deploy")
        });
        let tags = ["queue=default".to_owned()];
        assert!(
            state.acquire(job, &tags).is_err(),
            "waiting jobs are not runnable"
        );
        assert!(!state.expire(job));
        assert!(state.release(job));
        assert_eq!(state.jobs[&job].state, JobState::Scheduled);
        assert!(state.expire(job));
        assert_eq!(state.jobs[&job].state, JobState::Expired);
        assert_eq!(
            state.cancel(job, true),
            Err(CancelError::AlreadyDone("EXPIRED"))
        );
    }

    #[test]
    fn jobs_of_one_build_share_its_number() {
        let mut state = State::new("acme");
        let (_, first) = state.schedule(JobSpec::command("a"));
        let (_, second) = state.schedule(JobSpec {
            build: Some(first),
            ..JobSpec::command("b")
        });
        let (_, third) = state.schedule(JobSpec::command("c"));
        assert_eq!((first, second, third), (1, 1, 2));
    }
}
