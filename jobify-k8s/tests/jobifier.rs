//! `KubeJobifier` over real HTTP against the Kubernetes simulator: launch, watch, fail fast,
//! cancel, recover.

mod support;

use std::time::Duration;

use jobify_core::{Jobifier, LaunchError, Launched, Template, WorkloadEvent};
use jobify_k8s::KubeJobifier;
use jobify_k8s::config::{ClientConfig, KubernetesConfig, SecretKeyRef};
use jobify_sim::kubernetes::{KubeSim, KubeSimConfig};
use jobify_sim::{FaultConfig, kubernetes::EndpointGroup};
use serde_json::json;
use support::cluster::{CONTROLLER, NAMESPACE, Running, client, eventually, fast_config, sim};
use support::fixtures::{JobExt, scheduled};

fn default_template() -> Template {
    Template::Default { name: None }
}

fn job_names(sim: &KubeSim) -> Vec<String> {
    sim.jobs(NAMESPACE)
        .into_iter()
        .filter_map(|j| j.metadata.name)
        .collect()
}

#[tokio::test]
async fn a_launched_job_is_observed_started_and_succeeds() {
    let sim = sim(KubeSimConfig::default()).await;
    let mut running = Running::start(KubeJobifier::new(client(&sim), fast_config(), CONTROLLER));
    assert_eq!(running.next().await, WorkloadEvent::Restored(Vec::new()));

    let job = scheduled("queue=kubernetes");
    let launched = running.jobifier.launch(&job, &default_template()).await;
    assert_eq!(launched, Ok(Launched::Created));
    assert_eq!(job_names(&sim), [format!("jobify-{}", job.id)]);

    let WorkloadEvent::Observed(workload) = running.next().await else {
        panic!("Observed first")
    };
    assert_eq!(workload.job, job.id);
    assert_eq!(workload.queue.as_deref(), Some("kubernetes"));
    assert_eq!(workload.pipeline.as_deref(), Some("app"));
    assert_eq!(running.next().await, WorkloadEvent::Started(job.id));
    assert_eq!(running.next().await, WorkloadEvent::Succeeded(job.id));

    let mut events = running.stop().await;
    assert_eq!(
        futures::StreamExt::next(&mut events).await,
        None,
        "stream ends on shutdown"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn launching_twice_answers_already_exists() {
    let sim = sim(KubeSimConfig::default()).await;
    let jobifier = KubeJobifier::new(client(&sim), fast_config(), CONTROLLER);
    let job = scheduled("queue=kubernetes");
    assert_eq!(
        jobifier.launch(&job, &default_template()).await,
        Ok(Launched::Created)
    );
    assert_eq!(
        jobifier.launch(&job, &default_template()).await,
        Ok(Launched::AlreadyExists)
    );
    assert_eq!(sim.stats().job_create_conflicts, 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_job_the_api_server_refuses_is_invalid_with_its_message() {
    let sim = sim(KubeSimConfig::default()).await;
    let jobifier = KubeJobifier::new(client(&sim), fast_config(), CONTROLLER);
    let job = scheduled("queue=kubernetes")
        .with_plugin(json!({"metadata": {"labels": {"not a key!": "x"}}}));
    let Err(LaunchError::Invalid { message }) = jobifier.launch(&job, &default_template()).await
    else {
        panic!("422 is invalid")
    };
    assert!(message.contains("not a key!"), "{message}");
    sim.shutdown().await;
}

#[tokio::test]
async fn a_render_error_is_invalid_and_creates_nothing() {
    let sim = sim(KubeSimConfig::default()).await;
    let jobifier = KubeJobifier::new(client(&sim), fast_config(), CONTROLLER);
    let job = scheduled("queue=kubernetes").with_plugin(json!({"podTemplate": "x"}));
    let launched = jobifier.launch(&job, &default_template()).await;
    assert!(
        matches!(&launched, Err(LaunchError::Invalid { message }) if message.contains("`podTemplate`")),
        "{launched:?}"
    );
    assert_eq!(sim.stats().job_creates, 0);
    sim.shutdown().await;
}

/// One launch against a simulator whose Jobs endpoints answer with `faults`, through a
/// client configured as `client`; the simulator, to read its statistics, and the outcome.
async fn launch_against_faulty_jobs(
    faults: FaultConfig,
    client_config: ClientConfig,
) -> (KubeSim, Result<Launched, LaunchError>) {
    let sim = sim(KubeSimConfig {
        faults,
        fault_groups: vec![EndpointGroup::Jobs],
        ..KubeSimConfig::default()
    })
    .await;
    let config = KubernetesConfig {
        client: client_config,
        ..fast_config()
    };
    let jobifier = KubeJobifier::new(client(&sim), config, CONTROLLER);
    let launched = jobifier
        .launch(&scheduled("queue=k"), &default_template())
        .await;
    (sim, launched)
}

#[tokio::test]
async fn server_errors_are_retried_then_reported_transient() {
    let (sim, launched) = launch_against_faulty_jobs(
        FaultConfig {
            server_error: 1.0,
            ..FaultConfig::none()
        },
        ClientConfig {
            create_attempts: 3,
            retry_backoff: Duration::from_millis(5),
            ..ClientConfig::default()
        },
    )
    .await;
    assert!(
        matches!(&launched, Err(LaunchError::Transient { message }) if message.contains("3 times")),
        "{launched:?}"
    );
    assert_eq!(sim.stats().faults_injected, 3);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_slow_api_times_out_and_is_transient() {
    let (sim, launched) = launch_against_faulty_jobs(
        FaultConfig {
            timeout: 1.0,
            timeout_delay: Duration::from_secs(5),
            ..FaultConfig::none()
        },
        ClientConfig {
            create_attempts: 2,
            request_timeout: Duration::from_millis(100),
            retry_backoff: Duration::from_millis(5),
            ..ClientConfig::default()
        },
    )
    .await;
    assert!(
        matches!(&launched, Err(LaunchError::Transient { message }) if message.contains("no answer")),
        "{launched:?}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn many_concurrent_launches_all_succeed() {
    let sim = sim(KubeSimConfig::default()).await;
    let jobifier = KubeJobifier::new(client(&sim), fast_config(), CONTROLLER);
    let jobs: Vec<_> = (0..100).map(|_| scheduled("queue=kubernetes")).collect();
    let template = default_template();
    let launches = jobs.iter().map(|job| jobifier.launch(job, &template));
    let results = futures::future::join_all(launches).await;
    assert!(
        results.iter().all(|r| *r == Ok(Launched::Created)),
        "{results:?}"
    );
    assert_eq!(sim.stats().job_creates, 100);
    sim.shutdown().await;
}

#[tokio::test]
async fn cancelling_never_waits_behind_paced_creates() {
    let sim = sim(KubeSimConfig::default()).await;
    let config = KubernetesConfig {
        client: ClientConfig {
            creates_per_second: 1,
            burst: 1,
            ..ClientConfig::default()
        },
        ..fast_config()
    };
    let jobifier = KubeJobifier::new(client(&sim), config, CONTROLLER);
    let first = scheduled("queue=kubernetes");
    assert_eq!(
        jobifier.launch(&first, &default_template()).await,
        Ok(Launched::Created)
    );
    // Five more creates queue behind the bucket (one a second): on this single-threaded
    // runtime, yielding once lets each reserve its turn, 1 to 5 seconds from now...
    let queued: Vec<_> = (0..5)
        .map(|_| {
            let jobifier = jobifier.clone();
            tokio::spawn(async move {
                jobifier
                    .launch(
                        &scheduled("queue=kubernetes"),
                        &Template::Default { name: None },
                    )
                    .await
            })
        })
        .collect();
    tokio::task::yield_now().await;
    // ...while the cancel goes straight through: a paced delete would wait 6 seconds.
    tokio::time::timeout(Duration::from_secs(3), jobifier.cancel(first.id))
        .await
        .expect("the cancel did not wait behind the queued creates")
        .expect("cancelled");
    assert_eq!(sim.stats().job_deletes, 1);
    assert_eq!(
        sim.stats().job_creates,
        1,
        "the queued creates are still waiting for the bucket"
    );
    for launch in queued {
        launch.abort();
    }
    sim.shutdown().await;
}

async fn fails_to_start(
    job: jobify_core::ScheduledJob,
    config: KubernetesConfig,
    code: &str,
) -> String {
    let sim = sim(KubeSimConfig::default()).await;
    let mut running = Running::start(KubeJobifier::new(client(&sim), config, CONTROLLER));
    assert_eq!(running.next().await, WorkloadEvent::Restored(Vec::new()));
    let launched = running.jobifier.launch(&job, &default_template()).await;
    assert_eq!(launched, Ok(Launched::Created));
    let event = running
        .until("FailedToStart", |e| {
            matches!(e, WorkloadEvent::FailedToStart { .. })
        })
        .await;
    let WorkloadEvent::FailedToStart {
        job: failed,
        reason,
    } = event
    else {
        unreachable!("matched above")
    };
    assert_eq!(failed, job.id);
    assert_eq!(reason.code.as_str(), code, "{}", reason.message);
    running
        .until("Gone", |e| *e == WorkloadEvent::Gone(job.id))
        .await;
    eventually("the Job is deleted", || sim.jobs(NAMESPACE).is_empty()).await;
    drop(running.stop().await);
    sim.shutdown().await;
    reason.message.into_owned()
}

#[tokio::test]
async fn an_image_that_cannot_be_pulled_fails_after_the_grace_with_events() {
    let job = scheduled("queue=kubernetes").with_plugin(json!({
        "podSpec": {"containers": [{"image": "registry.example/does-not-exist:1"}]}
    }));
    let message = fails_to_start(job, fast_config(), "image_pull_failed").await;
    assert!(message.contains("does-not-exist"), "{message}");
    assert!(message.contains("Kubernetes events:"), "{message}");
}

#[tokio::test]
async fn an_invalid_image_name_fails_at_once() {
    let job = scheduled("queue=kubernetes").with_plugin(json!({
        "podSpec": {"containers": [{"image": "Not A Valid::Image"}]}
    }));
    let message = fails_to_start(job, fast_config(), "invalid_image").await;
    assert!(message.contains("InvalidImageName"), "{message}");
}

#[tokio::test]
async fn a_missing_secret_fails_at_once() {
    let config = KubernetesConfig {
        agent_token_secret: SecretKeyRef {
            name: "missing-secret".to_owned(),
            key: "token".to_owned(),
        },
        ..fast_config()
    };
    let message = fails_to_start(
        scheduled("queue=kubernetes"),
        config,
        "container_config_error",
    )
    .await;
    assert!(message.contains("missing-secret"), "{message}");
}

#[tokio::test]
async fn an_unschedulable_pod_fails_after_the_pending_timeout() {
    let job = scheduled("queue=kubernetes").with_plugin(json!({
        "podSpecPatch": {"nodeSelector": {"gpu": "a100"}}
    }));
    let message = fails_to_start(job, fast_config(), "unschedulable").await;
    assert!(message.contains("FailedScheduling"), "{message}");
}

#[tokio::test]
async fn cancel_deletes_the_job_and_a_missing_job_is_fine() {
    let sim = sim(KubeSimConfig::default()).await;
    let mut running = Running::start(KubeJobifier::new(client(&sim), fast_config(), CONTROLLER));
    assert_eq!(running.next().await, WorkloadEvent::Restored(Vec::new()));
    // A slow image keeps the pod starting while we cancel.
    let job = scheduled("queue=kubernetes").with_plugin(json!({
        "podSpec": {"containers": [{"image": "registry.example/slow:1"}]}
    }));
    assert_eq!(
        running.jobifier.launch(&job, &default_template()).await,
        Ok(Launched::Created)
    );
    running
        .until(
            "Observed",
            |e| matches!(e, WorkloadEvent::Observed(w) if w.job == job.id),
        )
        .await;
    running.jobifier.cancel(job.id).await.expect("cancelled");
    running
        .until("Gone", |e| *e == WorkloadEvent::Gone(job.id))
        .await;
    assert!(sim.jobs(NAMESPACE).is_empty());
    eventually("its pod is collected", || sim.pods(NAMESPACE).is_empty()).await;
    running
        .jobifier
        .cancel(job.id)
        .await
        .expect("cancelling again is fine");
    drop(running.stop().await);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_restarted_jobifier_restores_existing_jobs_and_relists_after_expiry() {
    let sim = sim(KubeSimConfig::default()).await;
    let first = KubeJobifier::new(client(&sim), fast_config(), CONTROLLER);
    let jobs = [
        scheduled("queue=a"),
        scheduled("queue=b").on_pipeline("web"),
    ];
    for job in &jobs {
        assert_eq!(
            first.launch(job, &default_template()).await,
            Ok(Launched::Created)
        );
    }
    // Another controller's Job is not ours.
    let other = KubeJobifier::new(client(&sim), fast_config(), "someone-else");
    other
        .launch(&scheduled("queue=a"), &default_template())
        .await
        .expect("other controller launches");

    let mut running = Running::start(KubeJobifier::new(client(&sim), fast_config(), CONTROLLER));
    let WorkloadEvent::Restored(mut restored) = running.next().await else {
        panic!("Restored first")
    };
    restored.sort_by_key(|w| w.queue.clone());
    let ids: Vec<_> = restored.iter().map(|w| w.job).collect();
    assert_eq!(ids, [jobs[0].id, jobs[1].id]);
    assert_eq!(restored[1].pipeline.as_deref(), Some("web"));

    // Expire the watches once both watchers have one open.
    eventually("both watches open", || sim.stats().watches_opened >= 2).await;
    sim.expire_watches();
    let relisted = running
        .until("a second Restored", |e| {
            matches!(e, WorkloadEvent::Restored(_))
        })
        .await;
    let WorkloadEvent::Restored(relisted) = relisted else {
        unreachable!("matched above")
    };
    assert_eq!(relisted.len(), 2);
    drop(running.stop().await);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_standby_replica_neither_launches_nor_deletes() {
    let sim = sim(KubeSimConfig::default()).await;
    let (_leading, standby) = tokio::sync::watch::channel(false);
    let jobifier =
        KubeJobifier::new(client(&sim), fast_config(), CONTROLLER).with_leadership(standby);
    let launched = jobifier
        .launch(&scheduled("queue=k"), &default_template())
        .await;
    assert!(
        matches!(launched, Err(LaunchError::Transient { .. })),
        "{launched:?}"
    );
    assert!(jobifier.cancel(scheduled("queue=k").id).await.is_err());
    assert_eq!(sim.stats().job_creates, 0);
    sim.shutdown().await;
}
