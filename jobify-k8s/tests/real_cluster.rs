//! `KubeJobifier` and `LeaderElector` against a real kube-apiserver, Job controller and
//! garbage collector (`jobify-testcluster`), with its simulated kubelet running the pods.
//!
//! Ignored by a plain `cargo test`; `tools/k8s/test-real-cluster.sh` builds (or reuses) the
//! control-plane binaries and runs them.

mod support;

use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use jobify_core::{Jobifier, LaunchError, Launched, ScheduledJob, Template, WorkloadEvent};
use jobify_k8s::config::{KubernetesConfig, LeaderElectionConfig, SecretKeyRef};
use jobify_k8s::{
    KubeJobifier, LeaderElector, render_job, render_job_with_own_token, render_token_secret,
};
use jobify_testcluster::{PodScript, Scenario, TestCluster};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Pod, PodTemplate, Secret};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::json;
use support::cluster::{CONTROLLER, fast_config};
use support::compat;
use support::corpus::{self, default_template};
use support::fixtures::{JobExt, scheduled};
use tokio::sync::{oneshot, watch};

/// How long a test waits for the real control plane (slower than the simulator's 10 s on
/// two busy cores).
const PATIENCE: Duration = Duration::from_secs(60);

/// The shared control plane, an admin client, a fresh namespace holding the agent token
/// Secret, and a fast configuration for that namespace. Its pending timeout is 10 s: on two
/// cores shared with other real-cluster tests, a pod that runs can take longer than the
/// simulator's 500 ms to leave `Pending`, and would be given up on.
async fn setup(hint: &str) -> (&'static TestCluster, kube::Client, KubernetesConfig) {
    let cluster = TestCluster::shared();
    let client = cluster.client().await.expect("admin client");
    let namespace = cluster.create_namespace(hint).await.expect("namespace");
    let mut config = KubernetesConfig {
        namespace: namespace.clone(),
        ..fast_config()
    };
    config.fail_fast.pending_timeout = Duration::from_secs(10);
    let token = SecretKeyRef::default();
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": token.name},
        "stringData": {token.key: "agent-token"},
    }))
    .expect("secret");
    Api::<Secret>::namespaced(client.clone(), &namespace)
        .create(&PostParams::default(), &secret)
        .await
        .expect("agent token secret");
    (cluster, client, config)
}

/// A jobifier's watchers running, with its events.
struct Running {
    jobifier: KubeJobifier,
    events: BoxStream<'static, WorkloadEvent>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Running {
    fn start(jobifier: KubeJobifier) -> Self {
        let events = jobifier.events();
        let runner = jobifier.clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            runner
                .run(async move {
                    let _ = stopped.await;
                })
                .await
                .expect("runs once");
        });
        Running {
            jobifier,
            events,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// The next event, the informational `Waiting` skipped (how many a pod gets depends on
    /// the kubelet's timing).
    async fn next(&mut self) -> WorkloadEvent {
        loop {
            let event = tokio::time::timeout(PATIENCE, self.events.next())
                .await
                .expect("an event in time")
                .expect("the stream is open");
            if !matches!(event, WorkloadEvent::Waiting { .. }) {
                return event;
            }
        }
    }

    async fn until(
        &mut self,
        what: &str,
        wanted: impl Fn(&WorkloadEvent) -> bool,
    ) -> WorkloadEvent {
        let wait = async {
            loop {
                let event = self.events.next().await.expect("the stream is open");
                if wanted(&event) {
                    return event;
                }
            }
        };
        tokio::time::timeout(PATIENCE, wait)
            .await
            .unwrap_or_else(|_| panic!("no {what} in time"))
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(PATIENCE, task)
                .await
                .expect("watchers stop on shutdown")
                .expect("watch task did not panic");
        }
    }
}

/// Polls `check` until it holds.
async fn eventually<F, Fut>(what: &str, check: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = bool>,
{
    let wait = async {
        while !check().await {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(PATIENCE, wait)
        .await
        .unwrap_or_else(|_| panic!("{what} did not happen in time"));
}

async fn job_names(client: &kube::Client, namespace: &str) -> Vec<String> {
    Api::<Job>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await
        .expect("list Jobs")
        .items
        .into_iter()
        .filter_map(|j| j.metadata.name)
        .collect()
}

async fn pod_count(client: &kube::Client, namespace: &str) -> usize {
    Api::<Pod>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await
        .expect("list pods")
        .items
        .len()
}

#[tokio::test]
#[ignore = "real-cluster tier: run tools/k8s/test-real-cluster.sh"]
async fn launching_twice_is_success_the_second_time() {
    let (_cluster, client, config) = setup("idempotent").await;
    let namespace = config.namespace.clone();
    let jobifier = KubeJobifier::new(client.clone(), config, CONTROLLER);
    let job = scheduled("queue=kubernetes");
    assert_eq!(
        jobifier.launch(&job, &default_template()).await,
        Ok(Launched::Created)
    );
    assert_eq!(
        jobifier.launch(&job, &default_template()).await,
        Ok(Launched::AlreadyExists),
        "the API server's 409 AlreadyExists is success"
    );
    assert_eq!(
        job_names(&client, &namespace).await,
        [format!("jobify-{}", job.id)]
    );
}

/// `POST` of `body` to the namespace's Jobs with `fieldValidation=Strict`.
async fn create_strict(
    client: &kube::Client,
    namespace: &str,
    body: &serde_json::Value,
) -> Result<Job, kube::Error> {
    post_job(client, namespace, body, "fieldValidation=Strict").await
}

/// `POST` of `body` to the namespace's Jobs with this query.
async fn post_job(
    client: &kube::Client,
    namespace: &str,
    body: &serde_json::Value,
    query: &str,
) -> Result<Job, kube::Error> {
    let request = http::Request::post(format!(
        "/apis/batch/v1/namespaces/{namespace}/jobs?{query}"
    ))
    .header("content-type", "application/json")
    .body(serde_json::to_vec(body).expect("json"))
    .expect("request");
    client.request::<Job>(request).await
}

#[tokio::test]
#[ignore = "real-cluster tier: run tools/k8s/test-real-cluster.sh"]
async fn the_render_corpus_is_created_with_strict_field_validation() {
    let (_cluster, client, config) = setup("render-corpus").await;
    let namespace = config.namespace;
    for (name, job, template, config) in corpus::cases() {
        let rendered = render_job(&job, &template, &config, CONTROLLER)
            .unwrap_or_else(|err| panic!("{name}: {err}"));
        let mut body = serde_json::to_value(&rendered).expect("json");
        body["metadata"]["namespace"] = json!(namespace);
        let created = create_strict(&client, &namespace, &body)
            .await
            .unwrap_or_else(|err| panic!("{name}: the API server refused it: {err}"));
        assert_eq!(created.metadata.name, rendered.metadata.name, "{name}");
        assert_eq!(
            created.metadata.labels, rendered.metadata.labels,
            "{name}: labels kept as rendered"
        );
    }
    // The same request with a field the schema does not have is refused: Strict is on.
    let (_, job, template, config) = corpus::cases().remove(0);
    let mut body =
        serde_json::to_value(render_job(&job, &template, &config, CONTROLLER).expect("renders"))
            .expect("json");
    body["metadata"]["name"] = json!("strict-check");
    body["metadata"]["namespace"] = json!(namespace);
    body["spec"]["template"]["spec"]["containerz"] = json!([]);
    let refused = create_strict(&client, &namespace, &body)
        .await
        .expect_err("an unknown field is refused");
    let kube::Error::Api(status) = refused else {
        panic!("an API error: {refused:?}")
    };
    assert_eq!(status.code, 400, "{status:?}");
    assert!(
        status
            .message
            .contains("unknown field \"spec.template.spec.containerz\""),
        "{}",
        status.message
    );
}

/// Every row of the agent-stack-k8s compatibility corpus (`tests/compat.rs`) renders a Job
/// the API server accepts with strict field validation, through admission. A dry run: the
/// rows' pods would wait on images, Secrets and ConfigMaps that are not there.
#[tokio::test]
#[ignore = "real-cluster tier: run tools/k8s/test-real-cluster.sh"]
async fn the_compat_corpus_is_accepted_with_strict_field_validation() {
    let (_cluster, client, config) = setup("compat-corpus").await;
    let namespace = config.namespace;
    let rows = compat::rows();
    assert!(!rows.is_empty());
    for row in rows {
        let name = row.name;
        let rendered =
            compat::render(&row, CONTROLLER).unwrap_or_else(|err| panic!("{name}: {err}"));
        let mut body = serde_json::to_value(&rendered).expect("json");
        body["metadata"]["namespace"] = json!(namespace);
        let accepted = post_job(
            &client,
            &namespace,
            &body,
            "fieldValidation=Strict&dryRun=All",
        )
        .await
        .unwrap_or_else(|err| panic!("{name} ({}): the API server refused it: {err}", row.source));
        assert_eq!(accepted.metadata.name, rendered.metadata.name, "{name}");
        assert_eq!(
            accepted
                .spec
                .and_then(|s| s.template.spec)
                .map(|s| s.containers.len()),
            rendered
                .spec
                .and_then(|s| s.template.spec)
                .map(|s| s.containers.len()),
            "{name}: containers kept as rendered"
        );
    }
}

/// A step naming a PodTemplate the operator created in jobify's namespace (the corpus', as
/// the API server stores it: its pod spec defaulted, `restartPolicy: Always` included) gets a
/// Job with the template's containers, which the API server accepts; one naming a
/// PodTemplate that is not there is refused, naming it.
#[tokio::test]
#[ignore = "real-cluster tier: run tools/k8s/test-real-cluster.sh"]
async fn a_job_naming_a_pod_template_is_created_with_its_containers() {
    let (_cluster, client, config) = setup("pod-template").await;
    let namespace = config.namespace.clone();
    let templates: Api<PodTemplate> = Api::namespaced(client.clone(), &namespace);
    for template in compat::pod_templates() {
        templates
            .create(&PostParams::default(), &template)
            .await
            .expect("the operator's PodTemplate");
    }
    let jobifier = KubeJobifier::new(client.clone(), config, CONTROLLER);
    let job =
        scheduled("queue=kubernetes").with_plugin(json!({"podTemplate": compat::POD_TEMPLATE}));
    assert_eq!(
        jobifier.launch(&job, &default_template()).await,
        Ok(Launched::Created)
    );
    let created = Api::<Job>::namespaced(client.clone(), &namespace)
        .get(&format!("jobify-{}", job.id))
        .await
        .expect("the Job");
    let spec = created
        .spec
        .and_then(|s| s.template.spec)
        .expect("a pod spec");
    let names: Vec<&str> = spec.containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["agent", "checkout", "templated"]);
    let templated = &spec.containers[2];
    assert_eq!(templated.image.as_deref(), Some("alpine:latest"));
    assert!(
        templated
            .env
            .iter()
            .flatten()
            .any(|e| e.name == "TEST_POD_TEMPLATE" && e.value.as_deref() == Some("kunanyi")),
        "{templated:?}"
    );
    assert_eq!(spec.restart_policy.as_deref(), Some("Never"));

    let missing = scheduled("queue=kubernetes").with_plugin(json!({"podTemplate": "not-there"}));
    let launched = jobifier.launch(&missing, &default_template()).await;
    assert!(
        matches!(&launched, Err(LaunchError::Invalid { message, .. })
            if message.contains("no PodTemplate `not-there`") && message.contains(&namespace)),
        "{launched:?}"
    );
}

#[tokio::test]
#[ignore = "real-cluster tier: run tools/k8s/test-real-cluster.sh"]
async fn a_job_that_completes_is_observed_started_and_succeeds() {
    let (_cluster, client, config) = setup("completes").await;
    let namespace = config.namespace.clone();
    let mut running = Running::start(KubeJobifier::new(client.clone(), config, CONTROLLER));
    assert_eq!(running.next().await, WorkloadEvent::Restored(Vec::new()));
    let job = scheduled("queue=kubernetes");
    assert_eq!(
        running.jobifier.launch(&job, &default_template()).await,
        Ok(Launched::Created)
    );
    let WorkloadEvent::Observed(workload) = running.next().await else {
        panic!("Observed first")
    };
    assert_eq!(workload.job, job.id);
    assert_eq!(running.next().await, WorkloadEvent::Started(job.id));
    assert_eq!(
        running.next().await,
        WorkloadEvent::Succeeded(job.id),
        "the Job controller's Complete frees the slot"
    );
    let jobs: Api<Job> = Api::namespaced(client.clone(), &namespace);
    let done = jobs
        .get(&format!("jobify-{}", job.id))
        .await
        .expect("the Job");
    assert_eq!(done.status.and_then(|s| s.succeeded), Some(1));
    running.stop().await;
}

#[tokio::test]
#[ignore = "real-cluster tier: run tools/k8s/test-real-cluster.sh"]
async fn a_failing_job_is_observed_failed_with_its_exit_code() {
    let (cluster, client, config) = setup("fails").await;
    let namespace = config.namespace.clone();
    let mut running = Running::start(KubeJobifier::new(client.clone(), config, CONTROLLER));
    assert_eq!(running.next().await, WorkloadEvent::Restored(Vec::new()));
    let job = scheduled("queue=kubernetes");
    cluster.scripts().set_for_job(
        &namespace,
        &format!("jobify-{}", job.id),
        PodScript::new(Scenario::Normal).exiting(2),
    );
    assert_eq!(
        running.jobifier.launch(&job, &default_template()).await,
        Ok(Launched::Created)
    );
    let ended = running
        .until("the end of the Job", |e| {
            matches!(
                e,
                WorkloadEvent::Failed { .. } | WorkloadEvent::Succeeded(_)
            )
        })
        .await;
    assert!(ended == WorkloadEvent::Failed(job.id), "{ended:?}");
    running.stop().await;
}

/// Launches `job` under `config`, waits for `FailedToStart` with `code`, then for the Job to
/// be deleted; the reason's message.
async fn fails_to_start(
    client: kube::Client,
    config: KubernetesConfig,
    job: ScheduledJob,
    code: &str,
) -> String {
    let namespace = config.namespace.clone();
    let mut running = Running::start(KubeJobifier::new(client.clone(), config, CONTROLLER));
    assert_eq!(running.next().await, WorkloadEvent::Restored(Vec::new()));
    assert_eq!(
        running.jobifier.launch(&job, &default_template()).await,
        Ok(Launched::Created)
    );
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
    eventually("the Job is deleted", || async {
        job_names(&client, &namespace).await.is_empty()
    })
    .await;
    eventually("its pod is collected", || async {
        pod_count(&client, &namespace).await == 0
    })
    .await;
    running.stop().await;
    reason.message.into_owned()
}

#[tokio::test]
#[ignore = "real-cluster tier: run tools/k8s/test-real-cluster.sh"]
async fn an_image_that_cannot_be_pulled_fails_fast_and_the_job_is_deleted() {
    let (_cluster, client, config) = setup("image-pull").await;
    // On a real cluster the pull error comes a few hundred milliseconds after the pod: the
    // pending timeout must outlast it plus the pull grace, or it fires first.
    let mut config = config;
    config.fail_fast.pending_timeout = Duration::from_secs(10);
    let job = scheduled("queue=kubernetes").with_plugin(json!({
        "podSpec": {"containers": [{"image": "registry.example/does-not-exist:1"}]}
    }));
    let message = fails_to_start(client, config, job, "image_pull_failed").await;
    assert!(message.contains("does-not-exist"), "{message}");
    assert!(message.contains("Kubernetes events:"), "{message}");
}

#[tokio::test]
#[ignore = "real-cluster tier: run tools/k8s/test-real-cluster.sh"]
async fn an_invalid_image_name_fails_at_once() {
    let (_cluster, client, config) = setup("invalid-image").await;
    let job = scheduled("queue=kubernetes").with_plugin(json!({
        "podSpec": {"containers": [{"image": "Not A Valid::Image"}]}
    }));
    let message = fails_to_start(client, config, job, "invalid_image").await;
    assert!(message.contains("InvalidImageName"), "{message}");
}

#[tokio::test]
#[ignore = "real-cluster tier: run tools/k8s/test-real-cluster.sh"]
async fn a_missing_secret_fails_at_once() {
    let (_cluster, client, config) = setup("missing-secret").await;
    let config = KubernetesConfig {
        agent_token_secret: SecretKeyRef {
            name: "missing-secret".to_owned(),
            key: "token".to_owned(),
        },
        ..config
    };
    let message = fails_to_start(
        client,
        config,
        scheduled("queue=kubernetes"),
        "container_config_error",
    )
    .await;
    assert!(message.contains("missing-secret"), "{message}");
}

#[tokio::test]
#[ignore = "real-cluster tier: run tools/k8s/test-real-cluster.sh"]
async fn an_unschedulable_pod_fails_after_the_pending_timeout() {
    let (_cluster, client, mut config) = setup("unschedulable").await;
    // Never scheduled, so never started: the simulator's timeout does.
    config.fail_fast.pending_timeout = Duration::from_millis(500);
    let job = scheduled("queue=kubernetes").with_plugin(json!({
        "podSpecPatch": {"nodeSelector": {"gpu": "a100"}}
    }));
    let message = fails_to_start(client, config, job, "unschedulable").await;
    assert!(message.contains("FailedScheduling"), "{message}");
}

#[tokio::test]
#[ignore = "real-cluster tier: run tools/k8s/test-real-cluster.sh"]
async fn cancel_deletes_the_job_and_its_pod_is_collected() {
    let (_cluster, client, config) = setup("cancel").await;
    let namespace = config.namespace.clone();
    let mut running = Running::start(KubeJobifier::new(client.clone(), config, CONTROLLER));
    assert_eq!(running.next().await, WorkloadEvent::Restored(Vec::new()));
    // A slow image keeps the pod starting while we cancel.
    let job = scheduled("queue=kubernetes").with_plugin(json!({
        "podSpec": {"containers": [{"image": "registry.example/slow-start:1"}]}
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
    eventually("the Job's pod exists", || async {
        pod_count(&client, &namespace).await == 1
    })
    .await;
    running.jobifier.cancel(job.id).await.expect("cancelled");
    running
        .until("Gone", |e| *e == WorkloadEvent::Gone(job.id))
        .await;
    assert!(job_names(&client, &namespace).await.is_empty());
    eventually("its pod is collected", || async {
        pod_count(&client, &namespace).await == 0
    })
    .await;
    running
        .jobifier
        .cancel(job.id)
        .await
        .expect("cancelling again is fine");
    running.stop().await;
}

/// A dry-run `POST` of `body` to the namespace's Secrets with `fieldValidation=Strict`.
async fn dry_run_secret_strict(
    client: &kube::Client,
    namespace: &str,
    body: &serde_json::Value,
) -> Result<Secret, kube::Error> {
    let request = http::Request::post(format!(
        "/api/v1/namespaces/{namespace}/secrets?fieldValidation=Strict&dryRun=All"
    ))
    .header("content-type", "application/json")
    .body(serde_json::to_vec(body).expect("json"))
    .expect("request");
    client.request::<Secret>(request).await
}

#[tokio::test]
#[ignore = "real-cluster tier: run tools/k8s/test-real-cluster.sh"]
async fn a_job_with_its_own_token_runs_and_the_garbage_collector_deletes_its_secret_with_it() {
    let (_cluster, client, config) = setup("own-token").await;
    let namespace = config.namespace.clone();
    let token = SecretString::from(format!("bkjat_{}", uuid::Uuid::new_v4().simple()));
    let job = corpus::podspec_job();

    // What the launch sends passes strict field validation.
    let rendered =
        render_job_with_own_token(&job, &Template::PodSpec, &config, CONTROLLER).expect("renders");
    let secret = render_token_secret(&rendered, &token);
    dry_run_secret_strict(
        &client,
        &namespace,
        &serde_json::to_value(&secret).expect("json"),
    )
    .await
    .unwrap_or_else(|err| panic!("the API server refused the token Secret: {err}"));
    post_job(
        &client,
        &namespace,
        &serde_json::to_value(&rendered).expect("json"),
        "fieldValidation=Strict&dryRun=All",
    )
    .await
    .unwrap_or_else(|err| panic!("the API server refused the Job: {err}"));

    let mut running = Running::start(KubeJobifier::new(client.clone(), config, CONTROLLER));
    assert_eq!(running.next().await, WorkloadEvent::Restored(Vec::new()));
    assert_eq!(
        running
            .jobifier
            .launch_with_token(&job, &Template::PodSpec, &token)
            .await,
        Ok(Launched::Created)
    );
    // The kubelet resolves the agent's secretKeyRef: the pod starts only if the Secret was
    // there first (else CreateContainerConfigError, and fail fast).
    running
        .until("Started", |e| *e == WorkloadEvent::Started(job.id))
        .await;
    running
        .until("Succeeded", |e| *e == WorkloadEvent::Succeeded(job.id))
        .await;

    let name = format!("jobify-{}", job.id);
    let secret_name = format!("{name}-token");
    let jobs: Api<Job> = Api::namespaced(client.clone(), &namespace);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    let created = jobs.get(&name).await.expect("the Job");
    let stored = secrets.get(&secret_name).await.expect("the token Secret");
    assert_eq!(stored.immutable, Some(true));
    assert_eq!(
        stored.data.clone().expect("data")["BUILDKITE_AGENT_TOKEN"].0,
        token.expose_secret().as_bytes()
    );
    let owners = stored.metadata.owner_references.clone().expect("owned");
    assert_eq!(owners.len(), 1, "{owners:?}");
    assert_eq!(Some(&owners[0].uid), created.metadata.uid.as_ref());
    let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let pod_text =
        serde_json::to_string(&pods.list(&ListParams::default()).await.expect("pods").items)
            .expect("json");
    assert!(
        pod_text.contains(&secret_name),
        "the pod reads its token Secret"
    );
    assert!(!pod_text.contains("buildkite-agent-token"), "{pod_text}");

    // Deleting the Job (with background propagation, as cancel does) takes the Secret with
    // it: the garbage collector's doing, for jobify is stopped (its sweep of unowned token
    // Secrets cannot be the one deleting it).
    running.stop().await;
    jobs.delete(&name, &DeleteParams::background())
        .await
        .expect("deleting the Job");
    eventually("the garbage collector deletes the token Secret", || {
        let secrets = secrets.clone();
        let secret_name = secret_name.clone();
        async move { secrets.get_opt(&secret_name).await.expect("get").is_none() }
    })
    .await;
}

#[tokio::test]
#[ignore = "real-cluster tier: run tools/k8s/test-real-cluster.sh"]
async fn a_restarted_jobifier_restores_its_jobs_and_not_others() {
    let (cluster, client, config) = setup("restart").await;
    let namespace = config.namespace.clone();
    let first = KubeJobifier::new(client.clone(), config.clone(), CONTROLLER);
    let jobs = [
        scheduled("queue=a"),
        scheduled("queue=b").on_pipeline("web"),
    ];
    for job in &jobs {
        // Long-running, so they are still running when the next jobifier starts.
        cluster.scripts().set_for_job(
            &namespace,
            &format!("jobify-{}", job.id),
            PodScript::new(Scenario::Normal).running_for(Duration::from_secs(600)),
        );
        assert_eq!(
            first.launch(job, &default_template()).await,
            Ok(Launched::Created)
        );
    }
    let other = KubeJobifier::new(client.clone(), config.clone(), "someone-else");
    other
        .launch(&scheduled("queue=a"), &default_template())
        .await
        .expect("other controller launches");

    let mut running = Running::start(KubeJobifier::new(client.clone(), config, CONTROLLER));
    let WorkloadEvent::Restored(mut restored) = running.next().await else {
        panic!("Restored first")
    };
    restored.sort_by_key(|w| w.queue.clone());
    let ids: Vec<_> = restored.iter().map(|w| w.job).collect();
    assert_eq!(ids, [jobs[0].id, jobs[1].id]);
    assert_eq!(restored[1].pipeline.as_deref(), Some("web"));
    running.stop().await;
}

fn election() -> LeaderElectionConfig {
    LeaderElectionConfig {
        enabled: true,
        lease_name: "jobify-leader".to_owned(),
        lease_duration: Duration::from_secs(2),
        renew_interval: Duration::from_millis(200),
        identity: None,
    }
}

struct Replica {
    leading: watch::Receiver<bool>,
    task: tokio::task::JoinHandle<()>,
    _stop: oneshot::Sender<()>,
}

fn replica(client: kube::Client, namespace: &str, identity: &str) -> Replica {
    let elector = LeaderElector::new(client, namespace, &election(), identity);
    let leading = elector.subscribe();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(elector.run(async move {
        let _ = stopped.await;
    }));
    Replica {
        leading,
        task,
        _stop: stop,
    }
}

#[tokio::test]
#[ignore = "real-cluster tier: run tools/k8s/test-real-cluster.sh"]
async fn the_standby_takes_the_lease_when_the_leader_is_killed() {
    let (_cluster, client, config) = setup("leader").await;
    let namespace = config.namespace;
    let mut a = replica(client.clone(), &namespace, "replica-a");
    let mut b = replica(client.clone(), &namespace, "replica-b");
    let leader = tokio::time::timeout(PATIENCE, async {
        tokio::select! {
            _ = a.leading.wait_for(|l| *l) => "replica-a",
            _ = b.leading.wait_for(|l| *l) => "replica-b",
        }
    })
    .await
    .expect("a leader in time");
    let leases: Api<Lease> = Api::namespaced(client.clone(), &namespace);
    let holder = |lease: Lease| lease.spec.and_then(|s| s.holder_identity);
    assert_eq!(
        holder(leases.get("jobify-leader").await.expect("lease")).as_deref(),
        Some(leader)
    );
    let (killed, mut standby, standby_name) = if leader == "replica-a" {
        (a, b, "replica-b")
    } else {
        (b, a, "replica-a")
    };
    assert!(!*standby.leading.borrow(), "one leader at a time");
    // Killed: the task is aborted, it neither renews nor releases the Lease.
    killed.task.abort();
    tokio::time::timeout(PATIENCE, standby.leading.wait_for(|l| *l))
        .await
        .expect("the standby leads in time")
        .expect("elector alive");
    assert_eq!(
        holder(leases.get("jobify-leader").await.expect("lease")).as_deref(),
        Some(standby_name)
    );
    standby.task.abort();
}
