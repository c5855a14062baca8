//! End to end with the Stacks API as the job source: in-process jobify against the Stacks API
//! simulator and the Kubernetes simulator over real HTTP, with only a cluster agent token.
//! Every job of a served queue runs exactly once, with faults too; two controllers on one
//! queue never launch a job twice and both get work; a replica that stops with jobs reserved
//! but not launched leaves them to run once their reservations lapse; a pod that can never
//! start fails its job as a stack error with the cause.

mod e2e_support;

use std::collections::HashSet;
use std::time::Duration;

use e2e_support::{Harness, all_ran_once, eventually, none_touched, nothing_in_flight, scaled};
use jobify::simenv::{ScheduledSimJob, SimEnvConfig, Workload};
use jobify_buildkite::Source;
use jobify_sim::FaultConfig;

fn stacks() -> SimEnvConfig {
    SimEnvConfig {
        source: Source::Stacks,
        ..SimEnvConfig::default()
    }
}

fn workload(queues: &[&str]) -> Workload {
    Workload {
        pipelines: ["app", "api", "web"].map(str::to_owned).to_vec(),
        queues: queues.iter().map(|q| (*q).to_owned()).collect(),
        run_for: Duration::from_millis(20),
    }
}

/// One served queue, each job with its own agent token (the default).
fn served(namespace: &str, extra: &str) -> String {
    format!(
        r#"
[[queues]]
name = "linux"

[limits]
max_in_flight = 5000

[buildkite.stacks]

{extra}

[kubernetes]
namespace = "{namespace}"
"#
    )
}

fn split(
    jobs: Vec<ScheduledSimJob>,
    unserved: &str,
) -> (Vec<ScheduledSimJob>, Vec<ScheduledSimJob>) {
    jobs.into_iter().partition(|job| job.queue != unserved)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_only_an_agent_token_each_job_of_a_served_queue_runs_exactly_once() {
    let mut harness = Harness::start(stacks()).await;
    let jobs = harness
        .env
        .schedule(&workload(&["linux", "macos"]), 0, scaled(300));
    let (ours, others) = split(jobs, "macos");
    let (config, listen) = harness.config(&served("ci", ""), &[]);
    let jobify = harness.start_jobify(config, listen);

    eventually("every job of the served queue ran once", async || {
        all_ran_once(&harness, &ours)
    })
    .await;
    eventually("no workload is left in flight", async || {
        nothing_in_flight(&jobify).await
    })
    .await;
    let kube = harness.env.kubernetes().stats();
    assert_eq!(kube.job_creates, ours.len() as u64, "one Job per job");
    none_touched(&harness, &others, "ci");
    let stacks = harness.env.stacks().expect("stacks").stats();
    let reserves = stacks.requests.get("batch-reserve").copied().unwrap_or(0);
    assert!(
        reserves < ours.len() as u64 / 2,
        "reservations are batched: {reserves} requests for {} jobs",
        ours.len()
    );
    assert_eq!(stacks.unauthorized, 0);
    each_pod_holds_only_its_own_jobs_token(&harness, "ci");
    jobify.stop().await;
    let stack = harness.env.stacks().expect("stacks").stack("e2e");
    assert_eq!(
        stack.map(|s| s.state),
        Some("disconnected".to_owned()),
        "a clean stop deregisters the stack"
    );
    harness.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_ten_percent_faults_every_job_still_runs_exactly_once() {
    let faults = |seed| FaultConfig {
        timeout_delay: Duration::from_millis(1500),
        ..FaultConfig::chaos(seed, 0.1)
    };
    let mut harness = Harness::start(SimEnvConfig {
        buildkite_faults: faults(5),
        kubernetes_faults: faults(13),
        ..stacks()
    })
    .await;
    let jobs = harness.env.schedule(&workload(&["linux"]), 0, scaled(120));
    let extra = "reservation_expiry = \"3s\"";
    let sections = format!(
        "{}\n[scheduler]\nmax_poll_backoff = \"2s\"\n\n[kubernetes.client]\nrequest_timeout = \"1s\"\ncreate_attempts = 3\nretry_backoff = \"50ms\"\n",
        served("ci", extra)
    );
    let (config, listen) = harness.config(&sections, &[("request_timeout", "1s")]);
    let mut jobify = harness.start_jobify(config, listen);
    eventually("every job ran once despite the faults", async || {
        if jobify.has_stopped() {
            return Ok(());
        }
        all_ran_once(&harness, &jobs)
    })
    .await;
    jobify.assert_running("under faults").await;
    all_ran_once(&harness, &jobs).expect("every job ran once");
    let injected = harness
        .env
        .stacks()
        .expect("stacks")
        .stats()
        .faults_injected;
    assert!(injected > 0, "faults were injected");
    jobify.stop().await;
    harness.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_controllers_on_one_queue_never_launch_a_job_twice_and_both_get_work() {
    let mut harness = Harness::start(stacks()).await;
    let jobs = harness.env.schedule(
        &Workload {
            run_for: Duration::from_millis(300),
            ..workload(&["linux"])
        },
        0,
        scaled(200),
    );
    // Separate namespaces, so that only Buildkite's reservations keep them apart: each
    // controller is capped, so neither can take every job.
    let capped = |namespace: &str, stack: &str| {
        served(namespace, &format!("stack_key = \"{stack}\""))
            .replace("max_in_flight = 5000", "max_in_flight = 20")
    };
    let (a, listen_a) = harness.config(&capped("ci-a", "jobify-a"), &[]);
    let (b, listen_b) = harness.config(&capped("ci-b", "jobify-b"), &[]);
    let a = harness.start_jobify(a, listen_a);
    let b = harness.start_jobify(b, listen_b);
    eventually("every job ran once", async || all_ran_once(&harness, &jobs)).await;
    let in_a: HashSet<_> = harness.kube_jobs("ci-a").into_iter().collect();
    let in_b: HashSet<_> = harness.kube_jobs("ci-b").into_iter().collect();
    assert!(
        in_a.is_disjoint(&in_b),
        "a job launched by both controllers"
    );
    assert_eq!(in_a.len() + in_b.len(), jobs.len(), "one Job per job");
    assert!(
        !in_a.is_empty() && !in_b.is_empty(),
        "a: {}, b: {}",
        in_a.len(),
        in_b.len()
    );
    a.stop().await;
    b.stop().await;
    harness.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_that_can_never_start_fails_its_job_as_a_stack_error_with_the_cause_and_the_timeline_says_so()
 {
    let mut harness = Harness::start(stacks()).await;
    let stacks = harness.env.stacks().expect("stacks");
    let plugins = serde_json::json!([{ "kubernetes": { "podSpec": { "containers": [
        { "image": "ghcr.io/acme/does-not-exist:1", "command": ["make"] }
    ] } } }]);
    let unpullable = stacks.add_job(
        jobify_sim::stacks::JobSpec::command("e2e")
            .on_queue("linux")
            .with_plugins(&plugins),
    );
    let fine = stacks.add_job(
        jobify_sim::stacks::JobSpec::command("make")
            .on_queue("linux")
            .running(Duration::from_millis(20), 0),
    );
    let sections = format!(
        "{}\n[kubernetes.fail_fast]\nimage_pull_grace = \"1s\"\ncheck_interval = \"100ms\"\n",
        served("ci", "")
    );
    let (config, listen) = harness.config(&sections, &[]);
    let jobify = harness.start_jobify(config, listen);

    eventually(
        "the unpullable job is failed as a stack error",
        async || match harness.env.job_view(unpullable) {
            Some(view) if view.state == "FINISHED" => Ok(()),
            other => Err(format!("{other:?}")),
        },
    )
    .await;
    let view = harness.env.job_view(unpullable).expect("job");
    assert_eq!(
        view.exit_status,
        Some(-1),
        "a stack error, not a cancellation"
    );
    assert!(
        view.told.iter().any(|detail| detail.contains("image_pull_failed")
            && detail.contains("does-not-exist")),
        "{:?}",
        view.told
    );
    eventually("the timeline tells the story", async || {
        let notes = harness.env.job_view(unpullable).expect("job").notifications;
        let created = notes
            .iter()
            .any(|n| n.contains("created the Kubernetes Job"));
        let gave_up = notes
            .iter()
            .any(|n| n.contains("gave up") && n.contains("image_pull_failed"));
        if created && gave_up {
            Ok(())
        } else {
            Err(format!("{notes:?}"))
        }
    })
    .await;
    eventually("the other job ran", async || {
        all_ran_once(
            &harness,
            &[jobify::simenv::ScheduledSimJob {
                uuid: fine,
                queue: "linux".to_owned(),
                pipeline: "app".to_owned(),
            }],
        )
    })
    .await;
    jobify.stop().await;
    harness.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_loses_no_job_and_launches_none_twice() {
    let mut harness = Harness::start(stacks()).await;
    let jobs = harness.env.schedule(
        &Workload {
            run_for: Duration::from_millis(200),
            ..workload(&["linux"])
        },
        0,
        scaled(150),
    );
    // A short reservation, so that what the first process reserved and did not launch is
    // listed again soon after it stops.
    let sections = served("ci", "reservation_expiry = \"3s\"")
        .replace("max_in_flight = 5000", "max_in_flight = 30");
    let (config, listen) = harness.config(&sections, &[]);
    let first = harness.start_jobify(config, listen);
    eventually("some jobs ran", async || {
        let done = jobs
            .iter()
            .filter(|job| harness.state(job.uuid) == "FINISHED")
            .count();
        if done >= jobs.len() / 5 {
            Ok(())
        } else {
            Err(format!("{done} finished"))
        }
    })
    .await;
    first.stop().await;
    let (config, listen) = harness.config(&sections, &[]);
    let second = harness.start_jobify(config, listen);
    eventually("every job ran once across the restart", async || {
        all_ran_once(&harness, &jobs)
    })
    .await;
    assert_eq!(
        harness.env.kubernetes().stats().job_creates,
        jobs.len() as u64,
        "one Job per job"
    );
    second.stop().await;
    harness.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_replica_takes_over_the_stack_when_the_leader_stops_and_nothing_runs_twice() {
    let mut harness = Harness::start(stacks()).await;
    let jobs = harness.env.schedule(
        &Workload {
            run_for: Duration::from_millis(300),
            ..workload(&["linux"])
        },
        0,
        scaled(40),
    );
    let replica = format!(
        "{}\n[leader_election]\nenabled = true\nlease_name = \"jobify-e2e\"\nlease_duration = \"2s\"\nrenew_interval = \"200ms\"\nidentity = \"{{{{identity}}}}\"\n",
        served("ci", "reservation_expiry = \"3s\"")
            .replace("max_in_flight = 5000", "max_in_flight = 8")
    );
    let holder = |harness: &Harness| {
        harness
            .env
            .kubernetes()
            .lease("ci", "jobify-e2e")
            .and_then(|lease| lease.spec)
            .and_then(|spec| spec.holder_identity)
    };
    let (config_a, listen_a) = harness.config(&replica, &[("identity", "replica-a")]);
    let (config_b, listen_b) = harness.config(&replica, &[("identity", "replica-b")]);
    let a = harness.start_jobify(config_a, listen_a);
    eventually("replica-a leads", async || match holder(&harness) {
        Some(h) if h == "replica-a" => Ok(()),
        other => Err(format!("holder {other:?}")),
    })
    .await;
    let b = harness.start_jobify(config_b, listen_b);
    eventually("the leader finishes some jobs", async || {
        let done = jobs
            .iter()
            .filter(|job| harness.state(job.uuid) == "FINISHED")
            .count();
        if done >= 8 {
            Ok(())
        } else {
            Err(format!("{done} finished"))
        }
    })
    .await;
    a.stop().await;
    assert_eq!(
        harness
            .env
            .stacks()
            .expect("stacks")
            .stack("e2e")
            .map(|s| s.state),
        Some("connected".to_owned()),
        "a replica that stops leaves the shared stack registered"
    );
    eventually("replica-b takes over", async || match holder(&harness) {
        Some(h) if h == "replica-b" => Ok(()),
        other => Err(format!("holder {other:?}")),
    })
    .await;
    eventually("the remaining jobs run, each once", async || {
        all_ran_once(&harness, &jobs)
    })
    .await;
    assert_eq!(
        harness.env.kubernetes().stats().job_creates,
        jobs.len() as u64,
        "one Job create per job"
    );
    b.stop().await;
    harness.shutdown().await;
}

/// Every pod's agent reads its token from its own Job's Secret, which holds a job
/// acquisition token; no two jobs share one, no pod names another job's Secret or the
/// cluster token's, and a token cannot take another job.
fn each_pod_holds_only_its_own_jobs_token(harness: &Harness, namespace: &str) {
    use jobify_k8s::labels::{AGENT_TOKEN_SECRET, JOB_UUID};

    let kube = harness.env.kubernetes();
    let secrets: std::collections::HashMap<String, String> = kube
        .secrets(namespace)
        .into_iter()
        .filter_map(|secret| {
            let name = secret.metadata.name?;
            let token = secret.data?.remove("BUILDKITE_AGENT_TOKEN")?;
            Some((name, String::from_utf8(token.0).ok()?))
        })
        .collect();
    let mut tokens = HashSet::new();
    for job in kube.jobs(namespace) {
        let own = job
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(AGENT_TOKEN_SECRET))
            .cloned()
            .expect("a Job with its own token Secret");
        let token = secrets.get(&own).expect("the Job's Secret exists");
        assert!(token.starts_with("bkjat_"), "a job acquisition token");
        assert!(tokens.insert(token.clone()), "two jobs share a token");
        let uuid = job
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(JOB_UUID))
            .cloned();
        let pod_spec = serde_json::to_string(&job.spec.expect("spec").template).expect("json");
        for other in secrets.keys().filter(|name| **name != own) {
            assert!(
                !pod_spec.contains(&format!("\"{other}\"")),
                "the pod of {uuid:?} names {other}"
            );
        }
        assert!(
            !pod_spec.contains("buildkite-agent-token"),
            "the cluster token's Secret"
        );
    }
    assert!(!tokens.is_empty());
    let stacks = harness.env.stacks().expect("stacks");
    let other = stacks.add_job(jobify_sim::stacks::JobSpec::command("x").on_queue("linux"));
    for token in &tokens {
        assert!(
            stacks.acquire(other, token).is_err(),
            "a job's token took another job"
        );
    }
}
