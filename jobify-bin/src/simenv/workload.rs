//! Batches of ordinary jobs to schedule in the simulated Buildkite, whichever job source
//! (GraphQL or the Stacks API) serves them.

use std::time::Duration;

use jobify_sim::buildkite::{BuildkiteSim, JobSpec};
use jobify_sim::stacks::{JobSpec as StacksJobSpec, StacksSim};
use uuid::Uuid;

/// What a batch of jobs looks like: spread round robin over pipelines and queues, each
/// running for `run_for` and passing.
#[derive(Clone, Debug)]
pub struct Workload {
    /// Pipeline slugs.
    pub pipelines: Vec<String>,
    /// Queue names (`queue=<name>` agent query rule).
    pub queues: Vec<String>,
    /// How long each job's command runs once its agent acquires it.
    pub run_for: Duration,
}

impl Workload {
    /// Jobs on queue `queue` of pipelines `app`, `api` and `web`, each running `run_for`.
    pub fn on_queue(queue: &str, run_for: Duration) -> Self {
        Workload {
            pipelines: ["app", "api", "web"].map(str::to_owned).to_vec(),
            queues: vec![queue.to_owned()],
            run_for,
        }
    }
}

/// A job scheduled from a [`Workload`].
#[derive(Clone, Debug)]
pub struct ScheduledSimJob {
    /// The job's uuid.
    pub uuid: Uuid,
    /// Its queue.
    pub queue: String,
    /// Its pipeline.
    pub pipeline: String,
}

/// Schedules `count` jobs of `workload` in the GraphQL simulator, numbering their labels from
/// `first`.
pub fn schedule(
    buildkite: &BuildkiteSim,
    workload: &Workload,
    first: usize,
    count: usize,
) -> Vec<ScheduledSimJob> {
    spread(workload, first, count, |n, pipeline, queue| {
        buildkite
            .schedule_job(
                JobSpec::command(format!("make test-{n}"))
                    .on_pipeline(pipeline)
                    .on_queue(queue)
                    .running(workload.run_for, 0),
            )
            .uuid
    })
}

/// Schedules `count` jobs of `workload` in the Stacks API simulator, numbering them from
/// `first`.
pub fn schedule_stacks(
    stacks: &StacksSim,
    workload: &Workload,
    first: usize,
    count: usize,
) -> Vec<ScheduledSimJob> {
    spread(workload, first, count, |n, pipeline, queue| {
        stacks.add_job(
            StacksJobSpec::command(format!("make test-{n}"))
                .on_pipeline(pipeline)
                .on_queue(queue)
                .running(workload.run_for, 0),
        )
    })
}

/// Jobs `first..first + count` of `workload`, round robin over pipelines then queues, each
/// added by `add(n, pipeline, queue)`.
fn spread(
    workload: &Workload,
    first: usize,
    count: usize,
    add: impl Fn(usize, &str, &str) -> Uuid,
) -> Vec<ScheduledSimJob> {
    (first..first + count)
        .map(|n| {
            let pipeline = pick(&workload.pipelines, n, "pipeline");
            let queue = pick(
                &workload.queues,
                n / workload.pipelines.len().max(1),
                "default",
            );
            ScheduledSimJob {
                uuid: add(n, &pipeline, &queue),
                queue,
                pipeline,
            }
        })
        .collect()
}

/// The same job for the Stacks API simulator: its queue from the `queue=` rule, the other
/// rules, command, env (the label as `BUILDKITE_LABEL`), plugins, priority, pipeline, build,
/// branch, step key and script.
pub fn to_stacks(spec: &JobSpec) -> StacksJobSpec {
    let mut stacks = StacksJobSpec::command(spec.command.clone())
        .on_pipeline(&spec.pipeline)
        .with_priority(spec.priority);
    for rule in &spec.agent_query_rules {
        stacks = match rule.strip_prefix("queue=") {
            Some(queue) => stacks.on_queue(queue),
            None => stacks.with_rule(rule),
        };
    }
    for (name, value) in &spec.env {
        stacks = stacks.with_env(name, value);
    }
    if !spec.label.is_empty() {
        stacks = stacks.with_env("BUILDKITE_LABEL", &spec.label);
    }
    if let Some(plugins) = &spec.plugins {
        stacks = stacks.with_plugins(plugins);
    }
    if let Some(key) = &spec.step_key {
        stacks = stacks.with_step_key(key);
    }
    StacksJobSpec {
        build_number: spec.build.unwrap_or(1),
        branch: spec.branch.clone(),
        script: spec.script,
        ..stacks
    }
}

fn pick(items: &[String], n: usize, fallback: &str) -> String {
    if items.is_empty() {
        fallback.to_owned()
    } else {
        items[n % items.len()].clone()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use jobify_sim::buildkite::BuildkiteSimConfig;

    use super::*;

    #[tokio::test]
    async fn jobs_cover_every_pipeline_and_queue_combination() {
        let sim = BuildkiteSim::start(BuildkiteSimConfig::new("acme", "t", "a"))
            .await
            .expect("simulator");
        let workload = Workload {
            pipelines: ["app", "api", "web"].map(str::to_owned).to_vec(),
            queues: ["linux", "arm", "macos"].map(str::to_owned).to_vec(),
            run_for: Duration::from_millis(10),
        };
        let jobs = schedule(&sim, &workload, 0, 9);
        let pairs: BTreeSet<(String, String)> = jobs
            .iter()
            .map(|j| (j.pipeline.clone(), j.queue.clone()))
            .collect();
        assert_eq!(pairs.len(), 9);
        for job in &jobs {
            let snapshot = sim.job(job.uuid).expect("scheduled");
            assert_eq!(snapshot.state, "SCHEDULED");
        }
        sim.shutdown().await;
    }
}
