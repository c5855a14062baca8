//! End to end, in-process jobify against both simulators over real HTTP: a restart loses and
//! duplicates nothing, a standby replica takes over when the leader stops, and refused,
//! unstartable and cancelled jobs show the right state and message in Buildkite.

mod e2e_support;

use std::time::Duration;

use e2e_support::{Harness, all_ran_once, eventually, nothing_in_flight, scaled};
use jobify::simenv::{SimEnvConfig, Workload, schedule};
use jobify_sim::buildkite::JobSpec;
use jobify_sim::kubernetes::{Scenarios, Timings};
use serde_json::json;

const NAMESPACE: &str = "ci";

/// A small in-flight limit, so the work spans several polls and a stop lands mid-stream.
const PACED: &str = r#"
[[queues]]
name = "linux"
max_in_flight = 8

[kubernetes]
namespace = "ci"
"#;

fn linux_jobs(run_for_ms: u64) -> Workload {
    Workload {
        pipelines: ["app", "api"].map(str::to_owned).to_vec(),
        queues: vec!["linux".to_owned()],
        run_for: Duration::from_millis(run_for_ms),
    }
}

fn finished(harness: &Harness, jobs: &[jobify::simenv::ScheduledSimJob]) -> usize {
    jobs.iter()
        .filter(|job| harness.state(job.uuid) == "FINISHED")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_jobify_runs_the_rest_without_duplicating_or_forgetting_jobs() {
    let mut harness = Harness::start(SimEnvConfig::default()).await;
    let jobs = schedule(harness.env.buildkite(), &linux_jobs(300), 0, scaled(40));
    let (config, listen) = harness.config(PACED, &[]);
    let first = harness.start_jobify(config.clone(), listen);
    eventually(
        "the first jobify finishes some jobs",
        async || match finished(&harness, &jobs) {
            n if n >= 8 => Ok(()),
            n => Err(format!("{n} finished")),
        },
    )
    .await;
    first.stop().await;
    let done_before = finished(&harness, &jobs);
    assert!(
        done_before < jobs.len(),
        "stopped mid-stream: {done_before} of {}",
        jobs.len()
    );

    let (config, listen) = harness.config(PACED, &[]);
    let second = harness.start_jobify(config, listen);
    eventually("every job ran once across the restart", async || {
        all_ran_once(&harness, &jobs)
    })
    .await;
    eventually("no workload is left in flight", async || {
        nothing_in_flight(&second).await
    })
    .await;
    let stats = harness.env.kubernetes().stats();
    assert_eq!(
        stats.job_creates,
        jobs.len() as u64,
        "one Job create per job ({} AlreadyExists conflicts)",
        stats.job_create_conflicts
    );
    second.stop().await;
    harness.shutdown().await;
}

const REPLICA: &str = r#"
[[queues]]
name = "linux"
max_in_flight = 8

[kubernetes]
namespace = "ci"

[leader_election]
enabled = true
lease_name = "jobify-e2e"
lease_duration = "2s"
renew_interval = "200ms"
identity = "{{identity}}"
"#;

fn holder(harness: &Harness) -> Option<String> {
    harness
        .env
        .kubernetes()
        .lease(NAMESPACE, "jobify-e2e")
        .and_then(|lease| lease.spec)
        .and_then(|spec| spec.holder_identity)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standby_replica_takes_over_when_the_leader_stops_and_nothing_runs_twice() {
    let mut harness = Harness::start(SimEnvConfig::default()).await;
    let jobs = schedule(harness.env.buildkite(), &linux_jobs(300), 0, scaled(40));
    let (config_a, listen_a) = harness.config(REPLICA, &[("identity", "replica-a")]);
    let (config_b, listen_b) = harness.config(REPLICA, &[("identity", "replica-b")]);
    let a = harness.start_jobify(config_a, listen_a);
    eventually("replica-a holds the lease", async || {
        match holder(&harness) {
            Some(h) if h == "replica-a" => Ok(()),
            other => Err(format!("holder {other:?}")),
        }
    })
    .await;
    let b = harness.start_jobify(config_b, listen_b);
    eventually("the leader finishes some jobs", async || {
        match finished(&harness, &jobs) {
            n if n >= 8 => Ok(()),
            n => Err(format!("{n} finished")),
        }
    })
    .await;
    assert_eq!(holder(&harness).as_deref(), Some("replica-a"));
    assert_eq!(b.metric("jobify_scheduler_leader").await, Some(0.0));

    a.stop().await;
    assert!(
        finished(&harness, &jobs) < jobs.len(),
        "the leader stopped mid-stream"
    );
    eventually("replica-b takes the lease", async || {
        match holder(&harness) {
            Some(h) if h == "replica-b" => Ok(()),
            other => Err(format!("holder {other:?}")),
        }
    })
    .await;
    eventually("the remaining jobs run, each once", async || {
        all_ran_once(&harness, &jobs)
    })
    .await;
    let stats = harness.env.kubernetes().stats();
    assert_eq!(
        stats.job_creates,
        jobs.len() as u64,
        "one Job create per job ({} AlreadyExists conflicts)",
        stats.job_create_conflicts
    );
    assert!(!b.has_stopped());
    b.stop().await;
    harness.shutdown().await;
}

const FEEDBACK: &str = r#"
[[queues]]
name = "linux"

[scheduler]
cancel_check_interval = "1s"

[[policy.rules]]
name = "no-deploys-from-branches"
step_key = "deploy"
branch = "feature/*"
action = "reject"
message = "deploy steps run from main only"

[kubernetes]
namespace = "ci"

[kubernetes.fail_fast]
image_pull_grace = "1s"
check_interval = "100ms"
"#;

fn pod_spec(container: serde_json::Value) -> serde_json::Value {
    json!([{ "kubernetes": { "podSpec": { "containers": [container] } } }])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_unstartable_and_cancelled_jobs_show_the_right_state_and_message_in_buildkite() {
    let mut harness = Harness::start(SimEnvConfig {
        scenarios: Scenarios {
            missing_image_marker: "does-not-exist".to_owned(),
            slow_image_marker: "slow-toolchain".to_owned(),
            ..Scenarios::default()
        },
        timings: Timings {
            slow_start_delay: Duration::from_secs(600),
            ..Timings::default()
        },
        ..SimEnvConfig::default()
    })
    .await;
    let buildkite = harness.env.buildkite();
    let on_linux = |label: &str| JobSpec::command(label).on_queue("linux").on_pipeline("app");
    let privileged = buildkite.schedule_job(on_linux("docker build").with_plugins(pod_spec(
        json!({ "image": "docker:27", "securityContext": { "privileged": true } }),
    )));
    let deploy = buildkite.schedule_job(JobSpec {
        branch: "feature/login".to_owned(),
        step_key: Some("deploy".to_owned()),
        ..on_linux("deploy")
    });
    let unpullable = buildkite.schedule_job(on_linux("e2e").with_plugins(pod_spec(
        json!({ "image": "ghcr.io/acme/does-not-exist:1" }),
    )));
    let slow = buildkite.schedule_job(on_linux("slow").with_plugins(pod_spec(
        json!({ "image": "ghcr.io/acme/slow-toolchain:2" }),
    )));
    let (config, listen) = harness.config(FEEDBACK, &[]);
    let jobify = harness.start_jobify(config, listen);

    let annotated = |uuid, needle: &'static str| {
        let harness = &harness;
        async move || {
            let job = harness.env.buildkite().job(uuid).ok_or("unknown job")?;
            let found = job.annotations.iter().any(|a| a.contains(needle));
            if job.state == "CANCELED" && job.canceled_by_api && found {
                Ok(())
            } else {
                Err(format!(
                    "{} with annotations {:?}",
                    job.state, job.annotations
                ))
            }
        }
    };
    eventually(
        "the privileged job is refused by the guard",
        annotated(privileged.uuid, "guard_denied"),
    )
    .await;
    eventually(
        "the deploy from a branch is refused with the rule's message",
        annotated(deploy.uuid, "deploy steps run from main only"),
    )
    .await;
    eventually(
        "the job whose image cannot be pulled is failed",
        annotated(unpullable.uuid, "image_pull_failed"),
    )
    .await;
    let has_job = |uuid| harness.kube_jobs(NAMESPACE).contains(&uuid);
    for refused in [privileged.uuid, deploy.uuid] {
        assert!(!has_job(refused), "no Job for a refused job");
    }
    eventually("the unstartable job's Job is deleted", async || {
        if has_job(unpullable.uuid) {
            Err("still there".to_owned())
        } else {
            Ok(())
        }
    })
    .await;

    eventually("the slow job's pod is pending", async || {
        let pending = harness.env.kubernetes().pods(NAMESPACE).iter().any(|pod| {
            pod.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(jobify_k8s::labels::JOB_UUID))
                == Some(&slow.uuid.to_string())
                && pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Pending")
        });
        if pending {
            Ok(())
        } else {
            Err("no pending pod".to_owned())
        }
    })
    .await;
    assert!(harness.env.buildkite().cancel_job(slow.uuid));
    eventually("jobify deletes the cancelled job's Job", async || {
        if has_job(slow.uuid) {
            Err("Job still there".to_owned())
        } else {
            Ok(())
        }
    })
    .await;
    let slow_job = harness.env.buildkite().job(slow.uuid).expect("job");
    assert_eq!(slow_job.state, "CANCELED");
    assert_eq!(slow_job.acquired_count, 0, "no agent ever acquired it");
    assert!(!slow_job.canceled_by_api && slow_job.annotations.is_empty());

    eventually("no workload is left in flight", async || {
        nothing_in_flight(&jobify).await
    })
    .await;
    jobify.stop().await;
    harness.shutdown().await;
}
