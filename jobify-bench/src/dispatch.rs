//! Idle cost and dispatch throughput of one `jobify run`: start it, let it poll an empty
//! queue, then queue a batch of jobs at once and time until every one has its Job.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use jobify_k8s::labels::JOB_UUID;
use k8s_openapi::api::batch::v1::Job;
use tokio::time::Instant;

use crate::child::{Memory, cpu_of};
use crate::session::{ApiCost, NAMESPACE, Session, Settings};

/// Poll intervals waited after the first poll before anything is measured.
const SETTLE_POLLS: u32 = 2;

/// jobify with nothing to do.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Idle {
    /// From spawn to the first GraphQL request.
    pub(crate) first_poll: Duration,
    /// Poll intervals measured.
    pub(crate) polls: u32,
    /// API cost over those polls.
    pub(crate) cost: ApiCost,
    /// Memory after settling.
    pub(crate) memory: Memory,
}

/// One batch dispatched.
#[derive(Clone, Debug)]
pub(crate) struct Dispatch {
    /// Jobs queued.
    pub(crate) jobs: usize,
    /// From the last job scheduled to the last Job created.
    pub(crate) end_to_end: Duration,
    /// From the first GraphQL request after scheduling to the last Job created.
    pub(crate) from_first_poll: Duration,
    /// From the first GraphQL request after scheduling to the first Job created: fetching
    /// every page of scheduled jobs and deciding them.
    pub(crate) poll_to_first_create: Duration,
    /// API cost from scheduling to the last Job created.
    pub(crate) cost: ApiCost,
    /// Memory while tracking the jobs (peak is the process's peak so far).
    pub(crate) memory: Memory,
    /// CPU time from scheduling to the last Job created: jobify's, and the simulators'
    /// (this process's).
    pub(crate) cpu: Cpu,
    /// The Jobs jobify created, for the raw loop to create again.
    pub(crate) manifests: Vec<Job>,
}

impl Dispatch {
    /// Jobs per second, end to end.
    pub(crate) fn rate(&self) -> f64 {
        rate(self.jobs, self.end_to_end)
    }

    /// Jobs per second from the first poll that saw them.
    pub(crate) fn rate_from_first_poll(&self) -> f64 {
        rate(self.jobs, self.from_first_poll)
    }
}

/// CPU time spent over a phase.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Cpu {
    /// By the jobify child.
    pub(crate) jobify: Duration,
    /// By this process: both simulators (and the benchmark's own waiting).
    pub(crate) simulators: Duration,
}

/// `jobs` per `elapsed`, per second.
pub(crate) fn rate(jobs: usize, elapsed: Duration) -> f64 {
    jobs as f64 / elapsed.as_secs_f64().max(f64::EPSILON)
}

/// Starts a session in `dir`, measures it idle over `idle_polls` polls, dispatches `jobs`
/// jobs and checks each got exactly one Job.
pub(crate) async fn measure(
    settings: &Settings,
    dir: &Path,
    idle_polls: u32,
    jobs: usize,
) -> anyhow::Result<(Idle, Dispatch)> {
    let mut session = Session::start(settings, dir).await?;
    let idle = idle(&mut session, idle_polls).await?;
    let dispatch = dispatch(&mut session, jobs).await?;
    session.stop().await?;
    Ok((idle, dispatch))
}

async fn idle(session: &mut Session, polls: u32) -> anyhow::Result<Idle> {
    session.idle_for(SETTLE_POLLS).await?;
    let before = session.api();
    session.idle_for(polls).await?;
    let cost = ApiCost::between(&before, &session.api());
    Ok(Idle {
        first_poll: session.first_poll,
        polls,
        cost,
        memory: session.memory()?,
    })
}

async fn dispatch(session: &mut Session, jobs: usize) -> anyhow::Result<Dispatch> {
    let before = session.api();
    let cpu_before = (session.jobify.cpu()?, cpu_of("self")?);
    let scheduled = session.env.schedule(&Settings::workload(), 0, jobs);
    let scheduled_at = Instant::now();
    let requests = session.requests();
    let timeout = Duration::from_secs(60) + Duration::from_millis(10) * jobs as u32;
    let polled_at = session
        .wait_for("jobify's first poll after scheduling", timeout, |env| {
            crate::session::requests_to(env) > requests
        })
        .await?;
    let first_create_at = session
        .wait_for("the first Job to be created", timeout, |env| {
            env.kubernetes().stats().job_creates > 0
        })
        .await?;
    let done_at = session
        .wait_for(&format!("{jobs} Jobs to be created"), timeout, |env| {
            env.kubernetes().stats().job_creates >= jobs as u64
        })
        .await?;
    let cost = ApiCost::between(&before, &session.api());
    let cpu = Cpu {
        jobify: session.jobify.cpu()?.saturating_sub(cpu_before.0),
        simulators: cpu_of("self")?.saturating_sub(cpu_before.1),
    };

    // Give a duplicate launch time to show before counting.
    session.idle_for(SETTLE_POLLS).await?;
    let manifests = session.env.kubernetes().jobs(NAMESPACE);
    let expected: BTreeSet<String> = scheduled.iter().map(|j| j.uuid.to_string()).collect();
    exactly_once(
        &expected,
        &manifests,
        session.env.kubernetes().stats().job_creates,
    )
    .context("the dispatch was wrong")?;
    Ok(Dispatch {
        jobs,
        end_to_end: done_at - scheduled_at,
        from_first_poll: done_at.saturating_duration_since(polled_at),
        poll_to_first_create: first_create_at.saturating_duration_since(polled_at),
        cost,
        memory: session.memory()?,
        cpu,
        manifests,
    })
}

/// Checks that every job in `expected` has exactly one Job among `jobs`, that there are no
/// others, and that the API saw exactly that many creates.
pub(crate) fn exactly_once(
    expected: &BTreeSet<String>,
    jobs: &[Job],
    creates: u64,
) -> anyhow::Result<()> {
    let mut per_uuid: BTreeMap<&str, usize> = BTreeMap::new();
    for job in jobs {
        let uuid = job
            .metadata
            .labels
            .as_ref()
            .and_then(|labels| labels.get(JOB_UUID))
            .map_or("", String::as_str);
        *per_uuid.entry(uuid).or_default() += 1;
    }
    let missing: Vec<&String> = expected
        .iter()
        .filter(|uuid| !per_uuid.contains_key(uuid.as_str()))
        .collect();
    let repeated: Vec<(&&str, &usize)> = per_uuid.iter().filter(|(_, n)| **n > 1).collect();
    let unexpected: Vec<&&str> = per_uuid
        .keys()
        .filter(|uuid| !expected.contains(**uuid))
        .collect();
    if !missing.is_empty() || !repeated.is_empty() || !unexpected.is_empty() {
        bail!(
            "{} job(s) without a Job (first: {:?}), {} with several (first: {:?}), {} Job(s) \
             for jobs never scheduled (first: {:?})",
            missing.len(),
            missing.first(),
            repeated.len(),
            repeated.first(),
            unexpected.len(),
            unexpected.first()
        );
    }
    if creates != expected.len() as u64 {
        bail!(
            "the Kubernetes API saw {creates} Job creates for {} jobs",
            expected.len()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn job_for(uuid: &str) -> Job {
        Job {
            metadata: ObjectMeta {
                labels: Some([(JOB_UUID.to_owned(), uuid.to_owned())].into()),
                ..ObjectMeta::default()
            },
            ..Job::default()
        }
    }

    fn set(uuids: &[&str]) -> BTreeSet<String> {
        uuids.iter().map(|u| (*u).to_owned()).collect()
    }

    #[test]
    fn one_job_per_scheduled_job_passes() {
        let jobs = [job_for("a"), job_for("b")];
        assert!(exactly_once(&set(&["a", "b"]), &jobs, 2).is_ok());
    }

    #[test]
    fn missing_repeated_or_foreign_jobs_and_extra_creates_fail() {
        let expected = set(&["a", "b"]);
        assert!(exactly_once(&expected, &[job_for("a")], 1).is_err());
        assert!(exactly_once(&expected, &[job_for("a"), job_for("b"), job_for("b")], 3).is_err());
        assert!(exactly_once(&expected, &[job_for("a"), job_for("b"), job_for("c")], 3).is_err());
        assert!(exactly_once(&expected, &[job_for("a"), job_for("b")], 3).is_err());
    }
}
