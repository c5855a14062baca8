//! Pods that die early or live too long, against a real kube-apiserver, Job controller and
//! garbage collector (`jobify-testcluster`), with its simulated kubelet running the pods
//! (issue #11): an init container that fails, native sidecars, eviction of a running pod
//! and of a starting one, and containers that outlive the agent (the completion watch).
//!
//! Ignored by a plain `cargo test`; `tools/k8s/test-real-cluster.sh` builds (or reuses) the
//! control-plane binaries and runs them.

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use jobify_core::{JobId, Jobifier, Launched, ScheduledJob, WorkloadEvent};
use jobify_k8s::KubeJobifier;
use jobify_k8s::config::KubernetesConfig;
use jobify_testcluster::{PodScript, Scenario, TestCluster};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ContainerStatus, Event, Pod};
use kube::api::{Api, ListParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;
use support::cluster::CONTROLLER;
use support::corpus::default_template;
use support::fixtures::{JobExt, scheduled};
use support::real::{PATIENCE, Recording, namespace_with_token};

/// The shared control plane, an admin client, and a fast configuration for a fresh
/// namespace whose pending timeout outlasts every scenario here (the Job controller's
/// back-off before a replacement pod is 10 s), so only the cause under test gives up.
async fn setup(hint: &str) -> (&'static TestCluster, kube::Client, KubernetesConfig) {
    let cluster = TestCluster::shared();
    let client = cluster.client().await.expect("admin client");
    let mut config = namespace_with_token(cluster, &client, hint).await;
    config.fail_fast.pending_timeout = Duration::from_secs(300);
    config.fail_fast.image_pull_grace = Duration::from_secs(300);
    (cluster, client, config)
}

fn job_name(job: &ScheduledJob) -> String {
    format!("jobify-{}", job.id)
}

/// Every version of every object of one kind in a namespace, as a watch delivered them, by
/// name: what the real control plane did, step by step.
struct History<K>(Arc<Mutex<BTreeMap<String, Vec<K>>>>);

impl<K> Clone for History<K> {
    fn clone(&self) -> Self {
        History(Arc::clone(&self.0))
    }
}

/// The versions of the namespace's pods.
type PodHistory = History<Pod>;

impl<K> History<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
    K::DynamicType: Default,
{
    /// Watches the objects of `namespace` until the task is aborted.
    fn record(client: &kube::Client, namespace: &str) -> (Self, tokio::task::JoinHandle<()>) {
        let history = History(Arc::new(Mutex::new(BTreeMap::new())));
        let api: Api<K> = Api::namespaced(client.clone(), namespace);
        let kept = history.clone();
        let task = tokio::spawn(async move {
            let mut stream = watcher(api, watcher::Config::default())
                .default_backoff()
                .boxed();
            while let Some(event) = stream.next().await {
                let object = match event {
                    Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => o,
                    _ => continue,
                };
                let name = object.meta().name.clone().unwrap_or_default();
                kept.0
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .entry(name)
                    .or_default()
                    .push(object);
            }
        });
        (history, task)
    }

    /// The objects seen, by name, each with its versions in order.
    fn all(&self) -> BTreeMap<String, Vec<K>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The pods seen, by name, each with its versions in order.
    fn pods(&self) -> BTreeMap<String, Vec<K>> {
        self.all()
    }

    /// The names of the objects seen.
    fn names(&self) -> Vec<String> {
        self.all().into_keys().collect()
    }
}

/// The events about `object` (a Job or pod), as `Type Reason: message` in order.
async fn events_about(client: &kube::Client, namespace: &str, object: &str) -> Vec<String> {
    let mut events: Vec<Event> = Api::<Event>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await
        .expect("list events")
        .items
        .into_iter()
        .filter(|e| e.involved_object.name.as_deref() == Some(object))
        .collect();
    events.sort_by_key(|e| e.last_timestamp.as_ref().map(|t| t.0));
    events
        .iter()
        .map(|e| {
            format!(
                "{} {}: {}",
                e.type_.as_deref().unwrap_or(""),
                e.reason.as_deref().unwrap_or(""),
                e.message.as_deref().unwrap_or("")
            )
        })
        .collect()
}

/// What the Job looked like at each step: its counts and the conditions that hold.
fn job_steps(history: &History<Job>) -> Vec<String> {
    history
        .all()
        .values()
        .flatten()
        .map(|job| {
            let status = job.status.clone().unwrap_or_default();
            format!(
                "active={:?} failed={:?} terminating={:?} deleting={} {:?}",
                status.active,
                status.failed,
                status.terminating,
                job.metadata.deletion_timestamp.is_some(),
                job_conditions(job)
            )
        })
        .collect()
}

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

fn condition<'a>(pod: &'a Pod, kind: &str) -> Option<&'a k8s_openapi::api::core::v1::PodCondition> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == kind)
}

fn init_status<'a>(pod: &'a Pod, name: &str) -> Option<&'a ContainerStatus> {
    pod.status
        .as_ref()?
        .init_container_statuses
        .as_ref()?
        .iter()
        .find(|c| c.name == name)
}

fn running(status: Option<&ContainerStatus>) -> bool {
    status
        .and_then(|s| s.state.as_ref())
        .is_some_and(|s| s.running.is_some())
}

fn terminated(status: Option<&ContainerStatus>) -> Option<i32> {
    status
        .and_then(|s| s.state.as_ref())
        .and_then(|s| s.terminated.as_ref())
        .map(|t| t.exit_code)
}

/// How many pods the Job controller says it created for Job `name` (its `SuccessfulCreate`
/// events, which outlive the Job).
async fn pods_created(client: &kube::Client, namespace: &str, name: &str) -> usize {
    Api::<Event>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await
        .expect("list events")
        .items
        .iter()
        .filter(|e| {
            e.reason.as_deref() == Some("SuccessfulCreate")
                && e.involved_object.kind.as_deref() == Some("Job")
                && e.involved_object.name.as_deref() == Some(name)
        })
        .count()
}

/// Polls `check` until it answers something.
async fn eventually<T, F, Fut>(what: &str, check: F) -> T
where
    F: Fn() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let wait = async {
        loop {
            if let Some(value) = check().await {
                return value;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(PATIENCE, wait)
        .await
        .unwrap_or_else(|_| panic!("{what} did not happen in time"))
}

async fn the_job(client: &kube::Client, namespace: &str, name: &str) -> Option<Job> {
    Api::<Job>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await
        .expect("get the Job")
}

async fn pod_count(client: &kube::Client, namespace: &str) -> usize {
    Api::<Pod>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await
        .expect("list pods")
        .items
        .len()
}

/// The Job and its pods are gone.
async fn all_gone(client: &kube::Client, namespace: &str, name: &str) {
    eventually("the Job is deleted", || async {
        the_job(client, namespace, name)
            .await
            .is_none()
            .then_some(())
    })
    .await;
    eventually("its pods are collected", || async {
        (pod_count(client, namespace).await == 0).then_some(())
    })
    .await;
}

/// The Job's conditions that hold, as `type reason: message`.
fn job_conditions(job: &Job) -> Vec<String> {
    job.status
        .iter()
        .flat_map(|s| s.conditions.iter().flatten())
        .filter(|c| c.status == "True")
        .map(|c| {
            format!(
                "{} {}: {}",
                c.type_,
                c.reason.as_deref().unwrap_or(""),
                c.message.as_deref().unwrap_or("")
            )
        })
        .collect()
}

/// Prints what the real control plane did (shown with `--nocapture` or a failing test's
/// output): the Job's steps, its events, and each pod's phases, conditions and events.
async fn show(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    jobs: &History<Job>,
    pods: &PodHistory,
) {
    eprintln!("{name}: Job steps:");
    for step in job_steps(jobs) {
        eprintln!("  {step}");
    }
    eprintln!(
        "{name}: Job events: {:#?}",
        events_about(client, namespace, name).await
    );
    for (pod, versions) in pods.all() {
        let steps: Vec<String> = versions
            .iter()
            .map(|p| {
                let status = p.status.clone().unwrap_or_default();
                let conditions: Vec<String> = status
                    .conditions
                    .iter()
                    .flatten()
                    .filter(|c| c.status == "True")
                    .map(|c| c.type_.clone())
                    .collect();
                format!(
                    "{} reason={:?} deleting={} finalizers={:?} {conditions:?}",
                    phase(p),
                    status.reason,
                    p.metadata.deletion_timestamp.is_some(),
                    p.metadata.finalizers
                )
            })
            .collect();
        eprintln!("{name}: pod {pod}: {steps:#?}");
        eprintln!(
            "{name}: pod {pod} events: {:#?}",
            events_about(client, namespace, &pod).await
        );
    }
}

/// The names of the events about `job`, the reason codes of those that carry one; the
/// informational `Waiting` left out (how many a pod gets depends on the kubelet's timing).
fn reported(events: &[WorkloadEvent], job: JobId) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.job() == Some(job) && !matches!(e, WorkloadEvent::Waiting { .. }))
        .map(|e| match e {
            WorkloadEvent::Observed(_) => "Observed".to_owned(),
            WorkloadEvent::Started(_) => "Started".to_owned(),
            WorkloadEvent::Succeeded(_) => "Succeeded".to_owned(),
            WorkloadEvent::Failed(_) => "Failed".to_owned(),
            WorkloadEvent::Gone(_) => "Gone".to_owned(),
            WorkloadEvent::FailedToStart { reason, .. } => format!("FailedToStart {}", reason.code),
            WorkloadEvent::AgentLost { reason, .. } => format!("AgentLost {}", reason.code),
            WorkloadEvent::Stopped { reason, .. } => format!("Stopped {}", reason.code),
            WorkloadEvent::Restored(_) => "Restored".to_owned(),
            WorkloadEvent::Waiting { .. } => "Waiting".to_owned(),
        })
        .collect()
}

/// Starts a jobifier on `config` and launches `job`.
async fn launch(client: &kube::Client, config: KubernetesConfig, job: &ScheduledJob) -> Recording {
    let mut recording = Recording::start(KubeJobifier::new(client.clone(), config, CONTROLLER));
    recording
        .until("Restored", |e| matches!(e, WorkloadEvent::Restored(_)))
        .await;
    assert_eq!(
        recording.jobifier.launch(job, &default_template()).await,
        Ok(Launched::Created)
    );
    recording
}

#[tokio::test]
#[ignore = "real-cluster tier: run tools/k8s/test-real-cluster.sh"]
async fn an_init_container_that_fails_fails_to_start_naming_it_and_the_job_is_deleted() {
    let (cluster, client, config) = setup("init-fails").await;
    let namespace = config.namespace.clone();
    let job = scheduled("queue=kubernetes").with_plugin(json!({ "podSpec": {
        "initContainers": [{ "name": "migrate", "image": "ghcr.io/acme/migrate:init-fails" }],
        "containers": [{ "image": "alpine:3", "command": ["make test"] }],
    }}));
    let name = job_name(&job);
    cluster.scripts().set_for_job(
        &namespace,
        &name,
        PodScript::new(Scenario::InitContainerFailure(3)),
    );
    let (history, watch) = PodHistory::record(&client, &namespace);
    let (jobs, jobs_watch) = History::<Job>::record(&client, &namespace);
    let mut recording = launch(&client, config, &job).await;
    let event = recording
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
    assert_eq!(
        reason.code.as_str(),
        "init_container_failed",
        "{}",
        reason.message
    );
    assert!(reason.message.contains("`migrate`"), "{}", reason.message);
    assert!(reason.message.contains("exit code 3"), "{}", reason.message);
    recording
        .until("Gone", |e| *e == WorkloadEvent::Gone(job.id))
        .await;
    all_gone(&client, &namespace, &name).await;
    let seen = recording.stop().await;
    watch.abort();
    jobs_watch.abort();
    show(&client, &namespace, &name, &jobs, &history).await;
    let reports = reported(&seen, job.id);
    assert!(!reports.contains(&"Started".to_owned()), "{reports:?}");
    // What the real API server kept of the failed pod.
    let pods = history.pods();
    assert_eq!(pods.len(), 1, "one pod: {:?}", history.names());
    let last = pods.values().next().and_then(|v| v.last()).expect("a pod");
    assert_eq!(terminated(init_status(last, "migrate")), Some(3));
    let initialized = condition(last, "Initialized").expect("Initialized");
    assert_eq!(initialized.status, "False");
    assert_eq!(pods_created(&client, &namespace, &name).await, 1);
}

#[tokio::test]
#[ignore = "real-cluster tier: run tools/k8s/test-real-cluster.sh"]
async fn a_job_with_a_native_sidecar_succeeds_and_the_sidecar_stops_with_the_pod() {
    let (cluster, client, config) = setup("sidecar").await;
    let namespace = config.namespace.clone();
    let job = scheduled("queue=kubernetes")
        .with_plugin(json!({ "sidecars": [{ "image": "postgres:17" }] }));
    let name = job_name(&job);
    cluster.scripts().set_for_job(
        &namespace,
        &name,
        PodScript::new(Scenario::Normal).running_for(Duration::from_secs(3)),
    );
    let (history, watch) = PodHistory::record(&client, &namespace);
    let (jobs, jobs_watch) = History::<Job>::record(&client, &namespace);
    let mut recording = launch(&client, config, &job).await;
    recording
        .until("Succeeded", |e| {
            matches!(
                e,
                WorkloadEvent::Succeeded(_)
                    | WorkloadEvent::Failed(_)
                    | WorkloadEvent::FailedToStart { .. }
                    | WorkloadEvent::Stopped { .. }
            )
        })
        .await;
    let done = the_job(&client, &namespace, &name).await.expect("the Job");
    assert_eq!(done.status.as_ref().and_then(|s| s.succeeded), Some(1));
    let seen = recording.stop().await;
    watch.abort();
    jobs_watch.abort();
    show(&client, &namespace, &name, &jobs, &history).await;
    assert_eq!(
        reported(&seen, job.id),
        ["Observed", "Started", "Succeeded"],
        "no FailedToStart, no Stopped"
    );

    let pods = history.pods();
    assert_eq!(pods.len(), 1, "one pod: {:?}", history.names());
    let versions = pods.values().next().expect("the pod");
    // The real API server kept the sidecar a native one, after jobify's own init containers.
    let spec = versions[0].spec.as_ref().expect("spec");
    let inits = spec.init_containers.as_deref().unwrap_or_default();
    let last_init = inits.last().expect("init containers");
    assert_eq!(last_init.name, "sidecar-0");
    assert_eq!(last_init.restart_policy.as_deref(), Some("Always"));
    // While the agent ran, so did the sidecar, started, with the pod initialized.
    let while_running = versions
        .iter()
        .find(|p| phase(p) == "Running" && running(init_status(p, "sidecar-0")))
        .unwrap_or_else(|| panic!("the sidecar ran beside the agent: {versions:#?}"));
    assert_eq!(
        init_status(while_running, "sidecar-0").and_then(|s| s.started),
        Some(true)
    );
    assert_eq!(
        condition(while_running, "Initialized").map(|c| c.status.as_str()),
        Some("True")
    );
    // Then the pod completed by the agent's exit code; the sidecar was stopped (SIGTERM).
    let last = versions.last().expect("a version");
    assert_eq!(phase(last), "Succeeded");
    assert_eq!(terminated(init_status(last, "sidecar-0")), Some(143));
    assert!(
        !versions
            .iter()
            .any(|p| phase(p) == "Succeeded" && running(init_status(p, "sidecar-0"))),
        "never terminal while the sidecar runs"
    );
}

#[tokio::test]
#[ignore = "real-cluster tier: run tools/k8s/test-real-cluster.sh"]
async fn a_native_sidecar_that_exits_non_zero_is_restarted_and_is_no_init_failure() {
    let (cluster, client, config) = setup("sidecar-crashes").await;
    let namespace = config.namespace.clone();
    let job = scheduled("queue=kubernetes")
        .with_plugin(json!({ "sidecars": [{ "name": "postgres", "image": "postgres:17" }] }));
    let name = job_name(&job);
    cluster.scripts().set_for_job(
        &namespace,
        &name,
        PodScript::new(Scenario::SidecarCrashes(2)).running_for(Duration::from_secs(3)),
    );
    let (history, watch) = PodHistory::record(&client, &namespace);
    let mut recording = launch(&client, config, &job).await;
    recording
        .until("the end of the Job", |e| {
            matches!(
                e,
                WorkloadEvent::Succeeded(_)
                    | WorkloadEvent::Failed(_)
                    | WorkloadEvent::FailedToStart { .. }
                    | WorkloadEvent::Stopped { .. }
            )
        })
        .await;
    let seen = recording.stop().await;
    watch.abort();
    assert_eq!(
        reported(&seen, job.id),
        ["Observed", "Started", "Succeeded"],
        "a sidecar's exit is neither an init failure nor the job's"
    );
    let pods = history.pods();
    let versions = pods.values().next().expect("the pod");
    let exited = versions
        .iter()
        .find(|p| terminated(init_status(p, "postgres")) == Some(2))
        .unwrap_or_else(|| panic!("the sidecar exited 2: {versions:#?}"));
    assert_eq!(phase(exited), "Running", "the pod runs on");
    let restarted = versions
        .iter()
        .find_map(|p| init_status(p, "postgres").filter(|s| s.restart_count == 1))
        .expect("the kubelet restarted the sidecar");
    let last = restarted
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .map(|t| t.exit_code);
    assert_eq!(last, Some(2));
    assert_eq!(phase(versions.last().expect("a version")), "Succeeded");
}

#[tokio::test]
#[ignore = "real-cluster tier: run tools/k8s/test-real-cluster.sh"]
async fn an_evicted_running_pod_loses_the_agent_and_no_second_pod_starts() {
    let (cluster, client, config) = setup("evicted-running").await;
    let namespace = config.namespace.clone();
    let job = scheduled("queue=kubernetes");
    let name = job_name(&job);
    cluster.scripts().set_for_job(
        &namespace,
        &name,
        PodScript::new(Scenario::Evicted).running_for(Duration::from_secs(3)),
    );
    let (history, watch) = PodHistory::record(&client, &namespace);
    let (jobs, jobs_watch) = History::<Job>::record(&client, &namespace);
    let mut recording = launch(&client, config, &job).await;
    let event = recording
        .until("AgentLost", |e| {
            matches!(e, WorkloadEvent::AgentLost { .. })
        })
        .await;
    let WorkloadEvent::AgentLost { job: lost, reason } = event else {
        unreachable!("matched above")
    };
    assert_eq!(lost, job.id);
    assert_eq!(reason.code.as_str(), "pod_disrupted", "{}", reason.message);
    assert!(
        reason.message.contains("TerminationByKubelet"),
        "{}",
        reason.message
    );
    recording
        .until("Gone", |e| *e == WorkloadEvent::Gone(job.id))
        .await;
    all_gone(&client, &namespace, &name).await;
    let seen = recording.stop().await;
    watch.abort();
    jobs_watch.abort();
    show(&client, &namespace, &name, &jobs, &history).await;
    let reports = reported(&seen, job.id);
    assert_eq!(
        reports,
        ["Observed", "Started", "AgentLost pod_disrupted", "Gone"],
        "the agent is lost once, nothing else"
    );
    let pods = history.pods();
    assert_eq!(
        pods.len(),
        1,
        "exactly one pod for the Job: {:?}",
        history.names()
    );
    assert_eq!(pods_created(&client, &namespace, &name).await, 1);
    // The kubelet wrote DisruptionTarget while the pod still ran.
    let versions = pods.values().next().expect("the pod");
    let first_disrupted = versions
        .iter()
        .find(|p| condition(p, "DisruptionTarget").is_some())
        .expect("DisruptionTarget");
    let disruption = condition(first_disrupted, "DisruptionTarget").expect("condition");
    assert_eq!(disruption.status, "True");
    assert_eq!(disruption.reason.as_deref(), Some("TerminationByKubelet"));
    assert_ne!(phase(first_disrupted), "Failed");
}

#[tokio::test]
#[ignore = "real-cluster tier: run tools/k8s/test-real-cluster.sh"]
async fn pods_evicted_before_start_are_replaced_then_the_job_fails_to_start() {
    let (cluster, client, config) = setup("evicted-pending").await;
    let namespace = config.namespace.clone();
    let config = KubernetesConfig {
        pod_attempts: 2,
        ..config
    };
    let job = scheduled("queue=kubernetes");
    let name = job_name(&job);
    cluster.scripts().set_for_job(
        &namespace,
        &name,
        PodScript::new(Scenario::EvictedBeforeStart),
    );
    let (history, watch) = PodHistory::record(&client, &namespace);
    let (jobs, jobs_watch) = History::<Job>::record(&client, &namespace);
    let mut recording = launch(&client, config, &job).await;
    let pods_then = Arc::new(Mutex::new(Vec::new()));
    let event = {
        let history = history.clone();
        let pods_then = Arc::clone(&pods_then);
        recording
            .until("FailedToStart", move |e| {
                let found = matches!(e, WorkloadEvent::FailedToStart { .. });
                if found {
                    *pods_then.lock().unwrap_or_else(|e| e.into_inner()) = history.names();
                }
                found
            })
            .await
    };
    let WorkloadEvent::FailedToStart {
        job: failed,
        reason,
    } = event
    else {
        unreachable!("matched above")
    };
    assert_eq!(failed, job.id);
    assert_eq!(
        reason.code.as_str(),
        "pod_failed_before_start",
        "{}",
        reason.message
    );
    assert!(reason.message.contains("Evicted"), "{}", reason.message);
    assert!(
        reason.message.contains("2 pods tried"),
        "{}",
        reason.message
    );
    let then = pods_then.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert_eq!(
        then.len(),
        2,
        "not given up on while a pod remained: {then:?}"
    );
    recording
        .until("Gone", |e| *e == WorkloadEvent::Gone(job.id))
        .await;
    all_gone(&client, &namespace, &name).await;
    let seen = recording.stop().await;
    watch.abort();
    jobs_watch.abort();
    show(&client, &namespace, &name, &jobs, &history).await;
    assert_eq!(
        reported(&seen, job.id),
        ["Observed", "FailedToStart pod_failed_before_start", "Gone"]
    );
    assert_eq!(history.names().len(), 2, "{:?}", history.names());
    assert_eq!(pods_created(&client, &namespace, &name).await, 2);
    for (pod, versions) in history.pods() {
        let last = versions.last().expect("a version");
        let status = last.status.as_ref().expect("status");
        assert_eq!(
            (phase(last), status.reason.as_deref()),
            ("Failed", Some("Evicted")),
            "{pod}"
        );
        assert!(
            versions
                .iter()
                .any(|p| phase(p) == "Pending" && condition(p, "DisruptionTarget").is_some()),
            "{pod}: DisruptionTarget while still pending"
        );
    }
}

#[tokio::test]
#[ignore = "real-cluster tier: run tools/k8s/test-real-cluster.sh"]
async fn containers_that_outlive_the_agent_are_stopped_by_the_jobs_deadline() {
    let (cluster, client, config) = setup("outlives-agent").await;
    let namespace = config.namespace.clone();
    let job = scheduled("queue=kubernetes").with_plugin(json!({ "podSpecPatch": {
        "containers": [{ "name": "dind", "image": "docker:27-dind-runs-forever" }],
    }}));
    let name = job_name(&job);
    cluster
        .scripts()
        .set_for_job(&namespace, &name, PodScript::new(Scenario::OutlivesAgent));
    let (history, watch) = PodHistory::record(&client, &namespace);
    let (jobs, jobs_watch) = History::<Job>::record(&client, &namespace);
    let mut recording = launch(&client, config, &job).await;
    let event = recording
        .until("Stopped", |e| matches!(e, WorkloadEvent::Stopped { .. }))
        .await;
    let WorkloadEvent::Stopped {
        job: stopped,
        reason,
    } = event
    else {
        unreachable!("matched above")
    };
    assert_eq!(stopped, job.id);
    assert_eq!(
        reason.code.as_str(),
        "containers_outlived_agent",
        "{}",
        reason.message
    );
    assert!(reason.message.contains("`dind`"), "{}", reason.message);
    // The real Job controller enforces the deadline jobify set: the Job fails, and its pod
    // is terminated and removed.
    let failed = eventually("the Job fails by its deadline", || async {
        let job = the_job(&client, &namespace, &name).await?;
        let conditions = job.status.as_ref()?.conditions.as_ref()?;
        conditions
            .iter()
            .any(|c| {
                c.type_ == "Failed"
                    && c.status == "True"
                    && c.reason.as_deref() == Some("DeadlineExceeded")
            })
            .then_some(job)
    })
    .await;
    eprintln!(
        "outlives-agent: Job conditions {:?}, status {:?}",
        job_conditions(&failed),
        failed.status
    );
    let spec = failed.spec.as_ref().expect("spec");
    assert_eq!(spec.active_deadline_seconds, Some(1));
    let why = failed
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(jobify_k8s::labels::STOPPED_ANNOTATION))
        .cloned()
        .unwrap_or_default();
    assert!(why.contains("`dind`"), "the annotation names it: {why:?}");
    eventually("its pod is removed", || async {
        (pod_count(&client, &namespace).await == 0).then_some(())
    })
    .await;
    assert!(
        the_job(&client, &namespace, &name).await.is_some(),
        "the stopped Job stays, marked"
    );
    let seen = recording.stop().await;
    watch.abort();
    jobs_watch.abort();
    show(&client, &namespace, &name, &jobs, &history).await;
    let reports = reported(&seen, job.id);
    eprintln!("outlives-agent: reports {reports:?}");
    assert_eq!(
        reports.iter().filter(|r| r.starts_with("Stopped")).count(),
        1,
        "Stopped once: {reports:?}"
    );
    assert!(
        !reports
            .iter()
            .any(|r| r.starts_with("FailedToStart") || r.starts_with("AgentLost")),
        "{reports:?}"
    );
    // The pod ran with the agent ended and dind running, then dind was stopped.
    let pods = history.pods();
    assert_eq!(pods.len(), 1, "one pod: {:?}", history.names());
    let versions = pods.values().next().expect("the pod");
    let main = |p: &Pod, c: &str| {
        p.status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|cs| cs.iter().find(|s| s.name == c))
            .cloned()
    };
    assert!(
        versions.iter().any(|p| phase(p) == "Running"
            && terminated(main(p, "agent").as_ref()) == Some(0)
            && running(main(p, "dind").as_ref())),
        "the agent exited while dind ran"
    );
    let last = versions.last().expect("a version");
    assert_eq!(
        terminated(main(last, "dind").as_ref()),
        Some(143),
        "SIGTERM"
    );
    eprintln!(
        "outlives-agent: last pod status phase {:?} reason {:?}",
        phase(last),
        last.status.as_ref().and_then(|s| s.reason.clone())
    );
}
