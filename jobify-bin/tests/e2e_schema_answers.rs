//! End to end against a Buildkite simulator that sends answers its schema allows and our own
//! client never expected: a null `annotation` from `jobAnnotate`, a null payload from
//! `jobTypeCommandCancel`, and a job whose node fails to resolve in every listing.

mod e2e_support;

use std::collections::BTreeSet;

use e2e_support::{Harness, eventually};
use jobify::simenv::SimEnvConfig;
use jobify_sim::buildkite::{JobSpec, SchemaAnswers};
use serde_json::json;

const NAMESPACE: &str = "ci";

const CONFIG: &str = r#"
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
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_jobs_are_cancelled_and_good_jobs_run_whatever_the_schema_lets_buildkite_answer() {
    let mut harness = Harness::start(SimEnvConfig::default()).await;
    let buildkite = harness.env.buildkite();
    let on_linux = |label: &str| JobSpec::command(label).on_queue("linux").on_pipeline("app");
    let deploy = buildkite.schedule_job(JobSpec {
        branch: "feature/login".to_owned(),
        step_key: Some("deploy".to_owned()),
        ..on_linux("deploy")
    });
    let privileged = buildkite.schedule_job(on_linux("docker build").with_plugins(json!([{
        "kubernetes": { "podSpec": { "containers": [
            { "image": "docker:27", "securityContext": { "privileged": true } }
        ] } }
    }])));
    let unreadable = buildkite.schedule_job(on_linux("unreadable"));
    let good = buildkite.schedule_job(on_linux("test"));
    buildkite.set_schema_answers(SchemaAnswers {
        null_annotations: true,
        null_cancel_payloads: true,
        failing_jobs: BTreeSet::from([unreadable.uuid]),
    });
    let (config, listen) = harness.config(CONFIG, &[]);
    let jobify = harness.start_jobify(config, listen);

    for (job, needle) in [
        (deploy.uuid, "deploy steps run from main only"),
        (privileged.uuid, "guard_denied"),
    ] {
        eventually(
            "the rejected job is annotated and cancelled, though both answers were null",
            async || {
                let job = harness.env.buildkite().job(job).ok_or("unknown job")?;
                let annotated = job.annotations.iter().any(|a| a.contains(needle));
                if job.state == "CANCELED" && job.canceled_by_api && annotated {
                    Ok(())
                } else {
                    Err(format!(
                        "{} with annotations {:?}",
                        job.state, job.annotations
                    ))
                }
            },
        )
        .await;
    }
    eventually(
        "the job beside the unreadable one runs to the end",
        async || match harness.env.buildkite().job(good.uuid) {
            Some(job) if job.state == "FINISHED" => Ok(()),
            other => Err(format!("{other:?}")),
        },
    )
    .await;
    let kube_jobs = harness.kube_jobs(NAMESPACE);
    assert!(
        !kube_jobs.contains(&unreadable.uuid),
        "no Job for a job jobify could not read"
    );
    assert!(!kube_jobs.contains(&deploy.uuid) && !kube_jobs.contains(&privileged.uuid));
    let state = harness.env.buildkite().job(unreadable.uuid).expect("job");
    assert_eq!(
        state.state, "SCHEDULED",
        "the unreadable job is left for a later poll, not lost or cancelled"
    );
    for rejected in [deploy.uuid, privileged.uuid] {
        let job = harness.env.buildkite().job(rejected).expect("job");
        assert_eq!(job.annotations.len(), 1, "told once: {:?}", job.annotations);
    }
    let retries = jobify
        .metric("jobify_scheduler_feedback_retries_total")
        .await
        .unwrap_or(0.0);
    assert_eq!(retries, 0.0, "no report needed a retry");

    jobify.stop().await;
    harness.shutdown().await;
}
