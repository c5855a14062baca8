//! End to end, in-process jobify against both simulators over real HTTP: every job of a
//! served queue gets exactly one Kubernetes Job, jobs of other queues none, with and without
//! injected faults. `JOBIFY_E2E_SCALE=N` multiplies the job counts.

mod e2e_support;

use std::time::Duration;

use e2e_support::{Harness, all_ran_once, eventually, none_touched, nothing_in_flight, scaled};
use jobify::simenv::{ScheduledSimJob, SimEnvConfig, Workload, schedule};
use jobify_sim::FaultConfig;

const NAMESPACE: &str = "ci";

/// Two served queues of three; limits high enough that they are not what is tested here.
const TWO_OF_THREE_QUEUES: &str = r#"
[[queues]]
name = "linux"

[[queues]]
name = "arm"

[limits]
max_in_flight = 5000

[kubernetes]
namespace = "ci"
"#;

fn workload(queues: &[&str]) -> Workload {
    Workload {
        pipelines: ["app", "api", "web"].map(str::to_owned).to_vec(),
        queues: queues.iter().map(|q| (*q).to_owned()).collect(),
        run_for: Duration::from_millis(20),
    }
}

fn split(
    jobs: Vec<ScheduledSimJob>,
    unserved: &str,
) -> (Vec<ScheduledSimJob>, Vec<ScheduledSimJob>) {
    jobs.into_iter().partition(|job| job.queue != unserved)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_job_of_a_served_queue_gets_exactly_one_kubernetes_job_and_others_none() {
    let mut harness = Harness::start(SimEnvConfig::default()).await;
    let jobs = schedule(
        harness.env.buildkite(),
        &workload(&["linux", "arm", "macos"]),
        0,
        scaled(1000),
    );
    let (ours, others) = split(jobs, "macos");
    assert!(!ours.is_empty() && !others.is_empty());
    let (config, listen) = harness.config(TWO_OF_THREE_QUEUES, &[]);
    let jobify = harness.start_jobify(config, listen);

    eventually("every job of a served queue ran once", async || {
        all_ran_once(&harness, &ours)
    })
    .await;
    eventually("no workload is left in flight", async || {
        nothing_in_flight(&jobify).await
    })
    .await;

    let stats = harness.env.kubernetes().stats();
    assert_eq!(
        stats.job_creates,
        ours.len() as u64,
        "one Job create per job of a served queue ({} AlreadyExists conflicts)",
        stats.job_create_conflicts
    );
    assert_eq!(harness.kube_jobs(NAMESPACE).len(), ours.len());
    none_touched(&harness, &others, NAMESPACE);
    assert!(!jobify.has_stopped());
    jobify.stop().await;
    harness.shutdown().await;
}

/// One served queue and one not; short client timeouts (Buildkite's is set by the test) so
/// injected timeouts cost little.
const CHAOS: &str = r#"
[[queues]]
name = "linux"

[scheduler]
max_poll_backoff = "2s"

[limits]
max_in_flight = 50

[kubernetes]
namespace = "ci"

[kubernetes.client]
request_timeout = "1s"
create_attempts = 3
retry_backoff = "50ms"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_ten_percent_faults_on_both_simulators_every_job_still_runs_exactly_once() {
    // A held request outlasts the clients' 1 s timeouts, but not by much.
    let faults = |seed| FaultConfig {
        timeout_delay: Duration::from_millis(1500),
        ..FaultConfig::chaos(seed, 0.1)
    };
    let mut harness = Harness::start(SimEnvConfig {
        buildkite_faults: faults(7),
        kubernetes_faults: faults(11),
        ..SimEnvConfig::default()
    })
    .await;
    let jobs = schedule(
        harness.env.buildkite(),
        &workload(&["linux", "macos"]),
        0,
        scaled(120),
    );
    let (ours, others) = split(jobs, "macos");
    let (config, listen) = harness.config(CHAOS, &[("request_timeout", "1s")]);
    let mut jobify = harness.start_jobify(config, listen);

    eventually("every job ran once despite the faults", async || {
        if jobify.has_stopped() {
            return Ok(());
        }
        all_ran_once(&harness, &ours)
    })
    .await;
    jobify.assert_running("under faults").await;
    all_ran_once(&harness, &ours).expect("every job ran once");
    eventually("no workload is left in flight", async || {
        nothing_in_flight(&jobify).await
    })
    .await;

    let kube = harness.env.kubernetes().stats();
    let buildkite = harness.env.buildkite().stats();
    assert!(kube.faults_injected > 0 && buildkite.faults_injected > 0);
    assert_eq!(
        kube.job_creates,
        ours.len() as u64,
        "one Job create per job ({} AlreadyExists conflicts after retried creates)",
        kube.job_create_conflicts
    );
    none_touched(&harness, &others, NAMESPACE);
    jobify.stop().await;
    harness.shutdown().await;
}
