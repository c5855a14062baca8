//! The ceiling: the same Jobs created by a plain `kube::Api<Job>::create` loop with the same
//! concurrency limit, against fresh simulators of the same configuration. Whatever jobify's
//! rate falls short of this is jobify's own overhead (polling, policy, book-keeping,
//! rendering, its watchers); the rest is the Kubernetes simulator and the machine.

use std::time::Duration;

use anyhow::{Context, bail};
use futures::{StreamExt, TryStreamExt, stream};
use jobify::simenv::{SimEnv, schedule};
use jobify_k8s::labels::JOB_UUID;
use k8s_openapi::api::batch::v1::Job;
use kube::Api;
use kube::api::PostParams;
use tokio::time::Instant;

use crate::child::cpu_of;
use crate::session::{NAMESPACE, Settings};

/// The raw loop's run.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ceiling {
    /// Jobs created.
    pub(crate) jobs: usize,
    /// From the first create sent to the last answered.
    pub(crate) elapsed: Duration,
    /// CPU time of this process (simulators and the loop's client) over that time.
    pub(crate) cpu: Duration,
}

impl Ceiling {
    /// Jobs per second.
    pub(crate) fn rate(&self) -> f64 {
        crate::dispatch::rate(self.jobs, self.elapsed)
    }
}

/// Creates `manifests` (Jobs jobify created elsewhere) in fresh simulators, `concurrency`
/// at a time. Each manifest is re-pointed at a newly scheduled Buildkite job (its uuid
/// replaced throughout), so the simulated agents acquire real jobs exactly as they did for
/// jobify and the cluster does the same work.
pub(crate) async fn measure(manifests: &[Job], concurrency: usize) -> anyhow::Result<Ceiling> {
    let env = SimEnv::start(Settings::base_sim_config())
        .await
        .context("cannot start the simulators for the raw loop")?;
    let scheduled = schedule(env.buildkite(), &Settings::workload(), 0, manifests.len());
    let jobs = manifests
        .iter()
        .zip(&scheduled)
        .map(|(job, target)| repoint(job, &target.uuid.to_string()))
        .collect::<anyhow::Result<Vec<Job>>>()?;
    let client = env
        .kube_client()
        .context("cannot build a client for the simulator")?;
    let api: Api<Job> = Api::namespaced(client, NAMESPACE);
    let params = PostParams::default();

    let cpu_before = cpu_of("self")?;
    let started = Instant::now();
    stream::iter(jobs.iter().map(|job| api.create(&params, job)))
        .buffer_unordered(concurrency.max(1))
        .try_for_each(|_| async { Ok(()) })
        .await
        .context("the raw loop's create failed")?;
    let elapsed = started.elapsed();
    let cpu = cpu_of("self")?.saturating_sub(cpu_before);

    let creates = env.kubernetes().stats().job_creates;
    env.shutdown().await;
    if creates != jobs.len() as u64 {
        bail!(
            "the raw loop created {creates} Jobs instead of {}",
            jobs.len()
        );
    }
    Ok(Ceiling {
        jobs: jobs.len(),
        elapsed,
        cpu,
    })
}

/// `job` as a create request for Buildkite job `uuid`: what the API server set is cleared
/// and the old uuid is replaced everywhere (name, labels, the agent's environment).
fn repoint(job: &Job, uuid: &str) -> anyhow::Result<Job> {
    let old = job
        .metadata
        .labels
        .as_ref()
        .and_then(|labels| labels.get(JOB_UUID))
        .context("a Job jobify created has no job uuid label")?;
    let mut request = job.clone();
    request.status = None;
    let meta = &mut request.metadata;
    meta.uid = None;
    meta.resource_version = None;
    meta.creation_timestamp = None;
    meta.generation = None;
    meta.managed_fields = None;
    let text = serde_json::to_string(&request).context("cannot serialise a Job")?;
    serde_json::from_str(&text.replace(old.as_str(), uuid)).context("cannot re-read a Job")
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    #[test]
    fn repointed_job_names_the_new_uuid_everywhere_and_drops_server_fields() {
        let old = "0190e0a0-0000-7000-8000-000000000001";
        let new = "0190e0a0-0000-7000-8000-000000000002";
        let job = Job {
            metadata: ObjectMeta {
                name: Some(format!("jobify-{old}")),
                uid: Some("server-uid".to_owned()),
                resource_version: Some("42".to_owned()),
                labels: Some([(JOB_UUID.to_owned(), old.to_owned())].into()),
                ..ObjectMeta::default()
            },
            ..Job::default()
        };
        let request = repoint(&job, new).expect("has a uuid label");
        assert_eq!(request.metadata.name, Some(format!("jobify-{new}")));
        assert_eq!(
            request
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(JOB_UUID)),
            Some(&new.to_owned())
        );
        assert_eq!(request.metadata.uid, None);
        assert_eq!(request.metadata.resource_version, None);
    }
}
