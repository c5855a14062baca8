//! `KubeJobifier` over real HTTP against the Kubernetes simulator: launch, watch, fail fast,
//! cancel, recover; launch with a job's own agent token.

mod support;

use std::time::Duration;

use jobify_core::{Jobifier, LaunchError, Launched, Template, WorkloadEvent};
use jobify_k8s::KubeJobifier;
use jobify_k8s::config::{ClientConfig, KubernetesConfig, SecretKeyRef};
use jobify_sim::kubernetes::{KubeSim, KubeSimConfig};
use jobify_sim::{FaultConfig, kubernetes::EndpointGroup};
use k8s_openapi::api::core::v1::{Container, PodTemplate, Secret};
use kube::api::{Api, PostParams};
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::json;
use support::cluster::{CONTROLLER, NAMESPACE, Running, client, eventually, fast_config, sim};
use support::fixtures::{JobExt, scheduled};
use support::logs::Logs;
use support::secrets::SecretsFront;

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
    let Err(LaunchError::Invalid { message, .. }) =
        jobifier.launch(&job, &default_template()).await
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
    let job = scheduled("queue=kubernetes")
        .with_plugin(json!({"commandParams": {"prependScript": "set -x"}}));
    let launched = jobifier.launch(&job, &default_template()).await;
    assert!(
        matches!(&launched, Err(LaunchError::Invalid { message, .. }) if message.contains("`commandParams.prependScript`")),
        "{launched:?}"
    );
    assert_eq!(sim.stats().job_creates, 0);
    sim.shutdown().await;
}

/// Creates the PodTemplate `name` (one container, `templated`) in the test namespace, as
/// the operator would.
async fn create_pod_template(client: kube::Client, name: &str) {
    let template: PodTemplate = serde_json::from_value(json!({
        "metadata": {"name": name},
        "template": {"spec": {"containers": [{"name": "templated", "image": "alpine:3",
            "env": [{"name": "FROM_TEMPLATE", "value": "yes"}]}]}}
    }))
    .expect("a PodTemplate");
    Api::<PodTemplate>::namespaced(client, NAMESPACE)
        .create(&PostParams::default(), &template)
        .await
        .expect("the PodTemplate is created");
}

#[tokio::test]
async fn a_job_naming_a_pod_template_is_created_from_it_and_a_missing_one_is_refused() {
    let sim = sim(KubeSimConfig::default()).await;
    create_pod_template(client(&sim), "builder").await;
    let jobifier = KubeJobifier::new(client(&sim), fast_config(), CONTROLLER);

    let templated = scheduled("queue=kubernetes").with_plugin(json!({"podTemplate": "builder"}));
    assert_eq!(
        jobifier.launch(&templated, &default_template()).await,
        Ok(Launched::Created)
    );
    let job = sim
        .jobs(NAMESPACE)
        .into_iter()
        .find(|j| j.metadata.name.as_deref() == Some(&format!("jobify-{}", templated.id)))
        .expect("the Job");
    let annotations = job.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(
        annotations
            .get("jobify.dev/pod-template")
            .map(String::as_str),
        Some("builder")
    );
    let spec = job.spec.and_then(|s| s.template.spec).expect("a pod spec");
    let container = spec
        .containers
        .iter()
        .find(|c| c.name == "templated")
        .expect("the PodTemplate's container runs the command");
    assert_eq!(container.image.as_deref(), Some("alpine:3"));
    assert!(
        container
            .env
            .iter()
            .flatten()
            .any(|e| e.name == "FROM_TEMPLATE"),
        "{container:?}"
    );
    assert_eq!(spec.restart_policy.as_deref(), Some("Never"));

    let mut missing = scheduled("queue=kubernetes").with_plugin(json!({"podTemplate": "nope"}));
    missing.step_key = Some("build".to_owned());
    let Err(LaunchError::Invalid { message, .. }) =
        jobifier.launch(&missing, &default_template()).await
    else {
        panic!("a missing PodTemplate refuses the job")
    };
    assert!(
        message.contains("no PodTemplate `nope` in namespace `")
            && message.contains(NAMESPACE)
            && message.contains("step `build`"),
        "{message}"
    );

    let plain = scheduled("queue=kubernetes");
    assert_eq!(
        jobifier.launch(&plain, &default_template()).await,
        Ok(Launched::Created)
    );
    assert_eq!(
        sim.stats().job_creates,
        2,
        "the refused job created nothing"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_pod_template_the_api_cannot_serve_now_is_retried_then_transient() {
    let sim = sim(KubeSimConfig {
        faults: FaultConfig {
            server_error: 1.0,
            ..FaultConfig::none()
        },
        fault_groups: vec![EndpointGroup::PodTemplates],
        ..KubeSimConfig::default()
    })
    .await;
    let config = KubernetesConfig {
        client: ClientConfig {
            create_attempts: 2,
            retry_backoff: Duration::from_millis(5),
            ..ClientConfig::default()
        },
        ..fast_config()
    };
    let jobifier = KubeJobifier::new(client(&sim), config, CONTROLLER);
    let job = scheduled("queue=kubernetes").with_plugin(json!({"podTemplate": "builder"}));
    let launched = jobifier.launch(&job, &default_template()).await;
    assert!(
        matches!(&launched, Err(LaunchError::Transient { message, .. })
            if message.contains("podTemplate `builder`") && message.contains("2 times")),
        "{launched:?}"
    );
    assert_eq!(sim.stats().faults_injected, 2);
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
        matches!(&launched, Err(LaunchError::Transient { message, .. }) if message.contains("3 times")),
        "{launched:?}"
    );
    // The last API error is kept as the source, for callers that want its status.
    let error = launched.expect_err("a transient error");
    let source = std::error::Error::source(&error).expect("the last API error is the source");
    let cause = error.cause().expect("a cause");
    assert_eq!(source.to_string(), cause.to_string());
    assert!(
        matches!(
            cause.downcast_ref::<kube::Error>(),
            Some(kube::Error::Api(status)) if status.code >= 500
        ),
        "{cause:?}"
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
        matches!(&launched, Err(LaunchError::Transient { message, .. }) if message.contains("no answer")),
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

// Jobs with an agent token of their own (Buildkite job acquisition tokens). The simulator
// serves no Secrets: a `SecretsFront` in front of it does, and runs no garbage collector,
// so these tests check the Secret's owner; `real_cluster.rs` shows the collector deleting it.

/// A token the job source issued for one job.
fn job_token() -> SecretString {
    SecretString::from(format!("bkjat_{}", uuid::Uuid::new_v4().simple()))
}

/// A job whose pod has every kind of container: agent, checkout, two command containers,
/// an init container and a sidecar.
fn busy_job() -> jobify_core::ScheduledJob {
    scheduled("queue=kubernetes").with_plugin(json!({
        "podSpec": {
            "initContainers": [{"name": "migrate", "image": "alpine", "command": ["true"]}],
            "containers": [{"image": "alpine", "command": ["make"]},
                           {"name": "lint", "image": "alpine", "command": ["make lint"]}]
        },
        "sidecars": [{"name": "redis", "image": "redis:7"}]
    }))
}

/// Every container of `job`'s pod template, init containers first, by name.
fn containers(job: &k8s_openapi::api::batch::v1::Job) -> Vec<Container> {
    let spec = job
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .expect("a pod spec");
    spec.init_containers
        .iter()
        .flatten()
        .chain(&spec.containers)
        .cloned()
        .collect()
}

/// The Secrets `container` reads, from `env` and `envFrom`.
fn secrets_read(container: &Container) -> Vec<String> {
    let env = container.env.iter().flatten().filter_map(|var| {
        let from = var.value_from.as_ref()?.secret_key_ref.as_ref()?;
        Some(from.name.clone())
    });
    let env_from = container
        .env_from
        .iter()
        .flatten()
        .filter_map(|source| Some(source.secret_ref.as_ref()?.name.clone()));
    env.chain(env_from).collect()
}

fn sim_job(sim: &KubeSim, name: &str) -> k8s_openapi::api::batch::v1::Job {
    sim.jobs(NAMESPACE)
        .into_iter()
        .find(|j| j.metadata.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("the Job {name} exists"))
}

fn secret_named(front: &SecretsFront, name: &str) -> Secret {
    front
        .secrets(NAMESPACE)
        .into_iter()
        .find(|s| s.metadata.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("the Secret {name} exists"))
}

#[tokio::test]
async fn a_token_launch_puts_the_token_in_a_secret_the_job_owns_and_only_the_agent_reads() {
    let (logs, _guard) = Logs::capture();
    let sim = sim(KubeSimConfig::default()).await;
    let front = SecretsFront::start(&sim).await;
    let mut running = Running::start(KubeJobifier::new(front.client(), fast_config(), CONTROLLER));
    assert_eq!(running.next().await, WorkloadEvent::Restored(Vec::new()));
    let job = busy_job();
    let token = job_token();
    let launched = running
        .jobifier
        .launch_with_token(&job, &Template::PodSpec, &token)
        .await;
    assert_eq!(launched, Ok(Launched::Created));

    let name = format!("jobify-{}", job.id);
    let secret_name = format!("{name}-token");
    let created = sim_job(&sim, &name);
    let secret = secret_named(&front, &secret_name);
    assert_eq!(front.secrets(NAMESPACE).len(), 1);
    let data = secret.data.clone().expect("data");
    assert_eq!(
        data.keys().collect::<Vec<_>>(),
        ["BUILDKITE_AGENT_TOKEN"],
        "one key"
    );
    assert_eq!(
        data["BUILDKITE_AGENT_TOKEN"].0,
        token.expose_secret().as_bytes()
    );
    assert_eq!(secret.immutable, Some(true));
    let labels = secret.metadata.labels.clone().expect("labels");
    assert_eq!(labels["jobify.dev/controller"], CONTROLLER);
    assert_eq!(labels["jobify.dev/job-uuid"], job.id.to_string());
    let owners = secret.metadata.owner_references.clone().expect("owned");
    assert_eq!(owners.len(), 1, "{owners:?}");
    assert_eq!(owners[0].kind, "Job");
    assert_eq!(owners[0].api_version, "batch/v1");
    assert_eq!(owners[0].name, name);
    assert_eq!(Some(&owners[0].uid), created.metadata.uid.as_ref());
    assert_eq!(owners[0].controller, Some(false));
    assert_eq!(owners[0].block_owner_deletion, Some(false));
    assert_eq!(
        created.metadata.annotations.as_ref().expect("annotations")["jobify.dev/agent-token-secret"],
        secret_name
    );

    // Only the agent reads it, and nothing reads the shared token Secret.
    let all = containers(&created);
    assert_eq!(
        all.len(),
        7,
        "copy-agent, migrate, redis, agent, checkout, two commands"
    );
    for container in &all {
        let read = secrets_read(container);
        if container.name == "agent" {
            assert_eq!(
                read,
                std::slice::from_ref(&secret_name),
                "the agent reads its own token"
            );
            let var = container
                .env
                .iter()
                .flatten()
                .find(|v| v.name == "BUILDKITE_AGENT_TOKEN")
                .expect("the agent's token variable");
            let from = var
                .value_from
                .as_ref()
                .and_then(|f| f.secret_key_ref.as_ref());
            assert_eq!(from.map(|s| s.key.as_str()), Some("BUILDKITE_AGENT_TOKEN"));
        } else {
            assert!(read.is_empty(), "{} reads {read:?}", container.name);
        }
    }
    let manifest = serde_json::to_string(&created).expect("json");
    assert!(!manifest.contains("buildkite-agent-token"), "{manifest}");
    assert!(
        !manifest.contains(token.expose_secret()),
        "the token is in the Job"
    );

    // The Secret before the Job (no pod can miss it), the owner after.
    let seen = front.seen();
    let at = |method: &str, tail: &str| {
        seen.iter()
            .position(|s| s.method == method && s.path.ends_with(tail))
            .unwrap_or_else(|| panic!("no {method} …{tail} in {seen:?}"))
    };
    let secret_create = at("POST", "/secrets");
    let job_create = at("POST", "/jobs");
    let owner_patch = at("PATCH", &format!("/secrets/{secret_name}"));
    assert!(
        secret_create < job_create && job_create < owner_patch,
        "{seen:?}"
    );

    running
        .until("Succeeded", |e| *e == WorkloadEvent::Succeeded(job.id))
        .await;
    drop(running.stop().await);
    let text = logs.lines().join("\n");
    assert!(
        !text.contains(token.expose_secret()),
        "the token was logged:\n{text}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn two_token_jobs_get_two_secrets_and_neither_pod_reads_the_others() {
    let sim = sim(KubeSimConfig::default()).await;
    let front = SecretsFront::start(&sim).await;
    let jobifier = KubeJobifier::new(front.client(), fast_config(), CONTROLLER);
    let jobs = [busy_job(), scheduled("queue=kubernetes")];
    let tokens = [job_token(), job_token()];
    for (job, token) in jobs.iter().zip(&tokens) {
        assert_eq!(
            jobifier
                .launch_with_token(job, &default_template(), token)
                .await,
            Ok(Launched::Created)
        );
    }
    assert_eq!(front.secrets(NAMESPACE).len(), 2);
    for (index, (job, token)) in jobs.iter().zip(&tokens).enumerate() {
        let name = format!("jobify-{}", job.id);
        let own = format!("{name}-token");
        let other = format!("jobify-{}-token", jobs[1 - index].id);
        let secret = secret_named(&front, &own);
        assert_eq!(
            secret.data.expect("data")["BUILDKITE_AGENT_TOKEN"].0,
            token.expose_secret().as_bytes()
        );
        let created = sim_job(&sim, &name);
        let manifest = serde_json::to_string(&created).expect("json");
        assert!(manifest.contains(&own), "{manifest}");
        assert!(
            !manifest.contains(&other),
            "{name} reads the other job's Secret"
        );
        for token in &tokens {
            assert!(!manifest.contains(token.expose_secret()));
        }
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn relaunching_a_token_job_is_already_exists_and_keeps_its_secret() {
    let sim = sim(KubeSimConfig::default()).await;
    let front = SecretsFront::start(&sim).await;
    let jobifier = KubeJobifier::new(front.client(), fast_config(), CONTROLLER);
    let job = scheduled("queue=kubernetes");
    let token = job_token();
    let template = default_template();
    assert_eq!(
        jobifier.launch_with_token(&job, &template, &token).await,
        Ok(Launched::Created)
    );
    let secret_name = format!("jobify-{}-token", job.id);
    let first = secret_named(&front, &secret_name);
    // The same token again (a retry), then another one (the job reserved again).
    for token in [token, job_token()] {
        assert_eq!(
            jobifier.launch_with_token(&job, &template, &token).await,
            Ok(Launched::AlreadyExists)
        );
    }
    let secrets = front.secrets(NAMESPACE);
    assert_eq!(secrets.len(), 1);
    assert_eq!(
        secrets[0].metadata.uid, first.metadata.uid,
        "the same Secret"
    );
    assert_eq!(secrets[0].data, first.data, "the token the Job's pod reads");
    assert_eq!(
        secrets[0].metadata.owner_references,
        first.metadata.owner_references
    );
    assert_eq!(sim.stats().job_creates, 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_secret_create_answered_too_late_is_retried_and_the_secret_reused() {
    let sim = sim(KubeSimConfig::default()).await;
    let front = SecretsFront::start(&sim).await;
    front.stall_creates(1, Duration::from_secs(2));
    let config = KubernetesConfig {
        client: ClientConfig {
            create_attempts: 3,
            request_timeout: Duration::from_millis(300),
            retry_backoff: Duration::from_millis(5),
            ..ClientConfig::default()
        },
        ..fast_config()
    };
    let jobifier = KubeJobifier::new(front.client(), config, CONTROLLER);
    let job = scheduled("queue=kubernetes");
    let token = job_token();
    assert_eq!(
        jobifier
            .launch_with_token(&job, &default_template(), &token)
            .await,
        Ok(Launched::Created)
    );
    let creates = front
        .seen()
        .iter()
        .filter(|s| s.method == "POST" && s.path.ends_with("/secrets"))
        .count();
    assert_eq!(creates, 2, "the create was sent again after the timeout");
    let secret = secret_named(&front, &format!("jobify-{}-token", job.id));
    assert!(secret.metadata.owner_references.is_some(), "owned");
    assert_eq!(
        secret.data.expect("data")["BUILDKITE_AGENT_TOKEN"].0,
        token.expose_secret().as_bytes()
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_token_job_the_api_server_refuses_leaves_no_secret_and_no_token_in_the_error() {
    let sim = sim(KubeSimConfig::default()).await;
    let front = SecretsFront::start(&sim).await;
    let jobifier = KubeJobifier::new(front.client(), fast_config(), CONTROLLER);
    let token = job_token();
    let refused = scheduled("queue=kubernetes")
        .with_plugin(json!({"metadata": {"labels": {"not a key!": "x"}}}));
    let Err(LaunchError::Invalid { message, .. }) = jobifier
        .launch_with_token(&refused, &default_template(), &token)
        .await
    else {
        panic!("422 is invalid")
    };
    assert!(message.contains("not a key!"), "{message}");
    assert!(!message.contains(token.expose_secret()), "{message}");
    assert!(
        front.secrets(NAMESPACE).is_empty(),
        "the Secret was deleted"
    );

    // A render error creates nothing at all.
    let unrenderable = scheduled("queue=kubernetes")
        .with_plugin(json!({"commandParams": {"prependScript": "set -x"}}));
    let Err(LaunchError::Invalid { message, .. }) = jobifier
        .launch_with_token(&unrenderable, &default_template(), &token)
        .await
    else {
        panic!("a render error is invalid")
    };
    assert!(!message.contains(token.expose_secret()), "{message}");
    let secret_creates = front
        .seen()
        .iter()
        .filter(|s| s.method == "POST" && s.path.ends_with("/secrets"))
        .count();
    assert_eq!(secret_creates, 1, "only the refused job's");
    sim.shutdown().await;
}

#[tokio::test]
async fn a_secret_of_that_name_that_is_not_jobifys_is_left_alone_and_the_job_refused() {
    let sim = sim(KubeSimConfig::default()).await;
    let front = SecretsFront::start(&sim).await;
    let jobifier = KubeJobifier::new(front.client(), fast_config(), CONTROLLER);
    let job = scheduled("queue=kubernetes");
    let name = format!("jobify-{}-token", job.id);
    front.insert(
        NAMESPACE,
        json!({"metadata": {"name": name}, "data": {"other": "eA=="}}),
    );
    let launched = jobifier
        .launch_with_token(&job, &default_template(), &job_token())
        .await;
    assert!(
        matches!(&launched, Err(LaunchError::Invalid { message, .. }) if message.contains("is not the agent token Secret")),
        "{launched:?}"
    );
    assert_eq!(secret_named(&front, &name).data.expect("data").len(), 1);
    assert_eq!(sim.stats().job_creates, 0);
    sim.shutdown().await;
}

#[tokio::test]
async fn orphaned_token_secrets_are_deleted_or_adopted_by_their_job_at_start() {
    let sim = sim(KubeSimConfig::default()).await;
    let front = SecretsFront::start(&sim).await;
    let jobifier = KubeJobifier::new(front.client(), fast_config(), CONTROLLER);
    // A Job launched, whose owner patch never happened (the controller crashed).
    let launched = scheduled("queue=kubernetes");
    assert_eq!(
        jobifier
            .launch_with_token(&launched, &default_template(), &job_token())
            .await,
        Ok(Launched::Created)
    );
    let adoptee = format!("jobify-{}-token", launched.id);
    let long_ago = "2026-01-01T00:00:00Z";
    front.update(NAMESPACE, &adoptee, |secret| {
        secret["metadata"]
            .as_object_mut()
            .expect("metadata")
            .remove("ownerReferences");
        secret["metadata"]["creationTimestamp"] = json!(long_ago);
    });
    let orphan = |name: &str, controller: &str, created: Option<&str>| {
        json!({"metadata": {"name": name, "creationTimestamp": created,
                            "labels": {"jobify.dev/controller": controller,
                                       "jobify.dev/job-uuid": uuid::Uuid::new_v4().to_string()}},
               "data": {"BUILDKITE_AGENT_TOKEN": "eA=="}, "immutable": true})
    };
    let gone = format!("jobify-{}-token", uuid::Uuid::new_v4());
    let young = format!("jobify-{}-token", uuid::Uuid::new_v4());
    let others = format!("jobify-{}-token", uuid::Uuid::new_v4());
    front.insert(NAMESPACE, orphan(&gone, CONTROLLER, Some(long_ago)));
    front.insert(NAMESPACE, orphan(&young, CONTROLLER, None));
    front.insert(NAMESPACE, orphan(&others, "someone-else", Some(long_ago)));

    let mut running = Running::start(jobifier);
    assert!(matches!(running.next().await, WorkloadEvent::Restored(_)));
    eventually("the orphan is deleted", || {
        front
            .secrets(NAMESPACE)
            .iter()
            .all(|s| s.metadata.name.as_ref() != Some(&gone))
    })
    .await;
    eventually("the Job's Secret is adopted", || {
        secret_named(&front, &adoptee)
            .metadata
            .owner_references
            .is_some()
    })
    .await;
    let job_uid = sim_job(&sim, &format!("jobify-{}", launched.id))
        .metadata
        .uid;
    let owners = secret_named(&front, &adoptee)
        .metadata
        .owner_references
        .expect("owned");
    assert_eq!(owners.len(), 1);
    assert_eq!(Some(&owners[0].uid), job_uid.as_ref());
    let mut kept: Vec<String> = front
        .secrets(NAMESPACE)
        .into_iter()
        .filter_map(|s| s.metadata.name)
        .collect();
    kept.sort();
    let mut expected = vec![adoptee, young, others];
    expected.sort();
    assert_eq!(
        kept, expected,
        "a young one and another controller's are kept"
    );
    drop(running.stop().await);
    sim.shutdown().await;
}
