//! Shared by the real-cluster tests of the binary: a namespace with jobify's ServiceAccount
//! bound to exactly the Role of `examples/deploy/rbac.yaml`, the Buildkite simulator, `jobify
//! run` processes, and the agents this test process plays for the simulated kubelet's pods.
//!
//! The simulated kubelet of `jobify-testcluster` runs no agent, so the tests play the agent of
//! each pod: once the pod runs they acquire the pod's Buildkite job from the Buildkite
//! simulator, and once the pod ends they finish the job with the agent container's exit code,
//! as `buildkite-agent start --acquire-job` does.
#![allow(
    dead_code,
    reason = "each real-cluster test binary uses a different part of the support"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use jobify_sim::AgentApi;
use jobify_sim::buildkite::{Budget, BuildkiteSim, BuildkiteSimConfig, JobSpec};
use jobify_sim::fault::FaultConfig;
use jobify_testcluster::TestCluster;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, DynamicObject, PostParams};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::json;
use uuid::Uuid;

use crate::process::{self, jobify};

pub(crate) const ORGANIZATION: &str = "acme";
pub(crate) const API_TOKEN: &str = "bk-api-token";
pub(crate) const AGENT_TOKEN: &str = "bk-agent-token";
pub(crate) const RBAC: &str = include_str!("../../../examples/deploy/rbac.yaml");

/// Patience for `n` jobs on two busy cores: the real control plane is slower than the
/// simulator (the tests poll; they never wait this long when things work).
pub(crate) fn patience(n: usize) -> Duration {
    Duration::from_secs(120) + Duration::from_millis(600) * u32::try_from(n).unwrap_or(u32::MAX)
}

/// A namespace holding the agent token Secret and jobify's ServiceAccount bound to the Role
/// of `examples/deploy/rbac.yaml`; the kubeconfig of that ServiceAccount.
pub(crate) async fn namespace_for_jobify(
    cluster: &TestCluster,
    hint: &str,
) -> (String, PathBuf, Client) {
    let admin = cluster.client().await.expect("admin client");
    let namespace = cluster.create_namespace(hint).await.expect("namespace");
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "buildkite-agent-token"},
        "stringData": {"token": AGENT_TOKEN},
    }))
    .expect("secret");
    Api::<Secret>::namespaced(admin.clone(), &namespace)
        .create(&PostParams::default(), &secret)
        .await
        .expect("agent token secret");
    let kubeconfig = cluster
        .service_account_kubeconfig(&namespace, "jobify")
        .await
        .expect("service account kubeconfig");
    for document in serde_yaml::Deserializer::from_str(RBAC) {
        let mut object: serde_json::Value =
            serde::Deserialize::deserialize(document).expect("rbac.yaml document");
        if !matches!(object["kind"].as_str(), Some("Role" | "RoleBinding")) {
            continue;
        }
        object["metadata"]["namespace"] = json!(namespace);
        for subject in object["subjects"].as_array_mut().into_iter().flatten() {
            subject["namespace"] = json!(namespace);
        }
        let object: DynamicObject = serde_json::from_value(object).expect("object");
        let kind = object
            .types
            .as_ref()
            .map(|t| t.kind.clone())
            .unwrap_or_default();
        let resource = kube::api::ApiResource {
            group: "rbac.authorization.k8s.io".to_owned(),
            version: "v1".to_owned(),
            api_version: "rbac.authorization.k8s.io/v1".to_owned(),
            plural: format!("{}s", kind.to_lowercase()),
            kind,
        };
        Api::<DynamicObject>::namespaced_with(admin.clone(), &namespace, &resource)
            .create(&PostParams::default(), &object)
            .await
            .expect("Role and RoleBinding of rbac.yaml");
    }
    // RBAC takes effect when the API server's authorizer cache has seen the binding.
    let jobify_client = jobify_testcluster::client_from(&kubeconfig)
        .await
        .expect("jobify's client");
    let jobs: Api<Job> = Api::namespaced(jobify_client.clone(), &namespace);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while jobs.list(&Default::default()).await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the Role of rbac.yaml never allowed listing Jobs"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    (namespace, kubeconfig, admin)
}

/// The Buildkite simulator, faults at `fault_rate`.
pub(crate) async fn buildkite(fault_rate: f64) -> BuildkiteSim {
    let faults = if fault_rate > 0.0 {
        FaultConfig {
            timeout_delay: Duration::from_millis(300),
            ..FaultConfig::chaos(7, fault_rate / 4.0)
        }
    } else {
        FaultConfig::none()
    };
    BuildkiteSim::start(BuildkiteSimConfig {
        faults,
        budget: Budget {
            points: 100_000_000,
            window: Duration::from_secs(300),
        },
        ..BuildkiteSimConfig::new(ORGANIZATION, API_TOKEN, AGENT_TOKEN)
    })
    .await
    .expect("buildkite simulator")
}

/// A loopback address nothing listens on now.
pub(crate) fn free_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr")
}

/// One `jobify run` process.
pub(crate) struct Replica {
    child: Child,
    pub(crate) listen: SocketAddr,
    pub(crate) name: String,
}

impl Replica {
    /// Starts `jobify run` with a config for `namespace` (`max_in_flight` workloads at once,
    /// `extra` appended), as the ServiceAccount whose kubeconfig is `kubeconfig`.
    pub(crate) fn start(
        dir: &Path,
        name: &str,
        buildkite: &BuildkiteSim,
        namespace: &str,
        kubeconfig: &Path,
        max_in_flight: u32,
        extra: &str,
    ) -> Replica {
        let listen = free_port();
        let api_token = dir.join("api-token");
        let agent_token = dir.join("agent-token");
        std::fs::write(&api_token, API_TOKEN).expect("token");
        std::fs::write(&agent_token, AGENT_TOKEN).expect("token");
        let config = format!(
            r#"
organization = "{ORGANIZATION}"
controller_id = "real"

[buildkite]
graphql_url = "{graphql}"
agent_url = "{agent}"
api_token = {{ file = "{api_token}" }}
agent_token = {{ file = "{agent_token}" }}
poll_interval = "1s"
request_timeout = "2s"
page_size = 500

[server]
listen = "{listen}"

[[queues]]
name = "kubernetes"

[limits]
max_in_flight = {max_in_flight}

[kubernetes]
namespace = "{namespace}"

[kubernetes.fail_fast]
check_interval = "500ms"
{extra}
"#,
            graphql = buildkite.graphql_url(),
            agent = buildkite.agent_url(),
            api_token = api_token.display(),
            agent_token = agent_token.display(),
        );
        let path = dir.join(format!("{name}.toml"));
        std::fs::write(&path, config).expect("config");
        let log = std::fs::File::create(dir.join(format!("{name}.log"))).expect("log file");
        let child = jobify()
            .args(["run", "-c"])
            .arg(&path)
            .env("KUBECONFIG", kubeconfig)
            .env("POD_NAME", name)
            .env(
                "RUST_LOG",
                std::env::var("JOBIFY_REAL_LOG").unwrap_or_else(|_| "info".to_owned()),
            )
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start jobify run");
        Replica {
            child,
            listen,
            name: name.to_owned(),
        }
    }

    /// The value of `metric` (summed over its series), if it is exported yet.
    pub(crate) async fn metric(&self, metric: &str) -> Option<f64> {
        let text = reqwest::get(format!("http://{}/metrics", self.listen))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        let values: Vec<f64> = text
            .lines()
            .filter(|l| {
                l.strip_prefix(metric)
                    .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
            .collect();
        (!values.is_empty()).then(|| values.iter().sum())
    }

    pub(crate) async fn leads(&self) -> bool {
        self.metric("jobify_scheduler_leader").await == Some(1.0)
    }

    /// Whether it has polled Buildkite at least once.
    pub(crate) async fn polled(&self) -> bool {
        self.metric("jobify_monitor_polls_total")
            .await
            .is_some_and(|n| n >= 1.0)
    }

    /// SIGKILL: no shutdown, no Lease release.
    pub(crate) fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        let _ = self.child.wait();
    }

    /// SIGTERM, and the exit code.
    pub(crate) fn stop(mut self) -> Option<i32> {
        process::terminate(&self.child);
        self.child.wait().expect("wait").code()
    }
}

/// What the test's agents and observers saw, per Buildkite job.
#[derive(Default)]
pub(crate) struct Seen {
    /// Kubernetes Job names created for each Buildkite job.
    pub(crate) jobs: BTreeMap<Uuid, BTreeSet<String>>,
    /// Pod names of each Buildkite job.
    pub(crate) pods: BTreeMap<Uuid, BTreeSet<String>>,
    /// Jobs this test's agents acquired, and finished.
    pub(crate) acquired: BTreeSet<Uuid>,
    pub(crate) finished: BTreeSet<Uuid>,
    /// When this process first saw each Buildkite job's Kubernetes Job, and its pod running.
    pub(crate) job_seen_at: BTreeMap<Uuid, std::time::Instant>,
    pub(crate) running_at: BTreeMap<Uuid, std::time::Instant>,
}

pub(crate) fn job_uuid(labels: &BTreeMap<String, String>) -> Option<Uuid> {
    labels.get(jobify_k8s::labels::JOB_UUID)?.parse().ok()
}

/// Plays the agent of every pod in `namespace` and records every Job and pod, until dropped.
pub(crate) fn agents(
    client: Client,
    namespace: &str,
    buildkite: Arc<dyn AgentApi>,
    seen: Arc<Mutex<Seen>>,
) -> Watching {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let jobs: Api<Job> = Api::namespaced(client, namespace);
    let seen_jobs = Arc::clone(&seen);
    // Two tasks, so that a flood of pod events never delays noticing a Job.
    let record_jobs = tokio::spawn(watcher(jobs, watcher::Config::default()).for_each(
        move |event| {
            if let Ok(watcher::Event::Apply(job) | watcher::Event::InitApply(job)) = event
                && let Some(uuid) = job_uuid(job.labels())
            {
                let now = std::time::Instant::now();
                let mut seen = seen_jobs.lock().expect("seen");
                seen.jobs.entry(uuid).or_default().insert(job.name_any());
                seen.job_seen_at.entry(uuid).or_insert(now);
            }
            async {}
        },
    ));
    let play = tokio::spawn(
        watcher(pods, watcher::Config::default()).for_each(move |event| {
            if let Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod)) = event {
                agent_sees(&pod, buildkite.as_ref(), &seen);
            }
            async {}
        }),
    );
    Watching(vec![record_jobs, play])
}

/// The tasks of [`agents`].
pub(crate) struct Watching(Vec<tokio::task::JoinHandle<()>>);

impl Watching {
    /// Stops them.
    pub(crate) fn abort(&self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// What the agent of `pod` does on seeing it: acquire its job once the pod runs, finish it
/// once the pod ended.
pub(crate) fn agent_sees(pod: &Pod, buildkite: &dyn AgentApi, seen: &Mutex<Seen>) {
    let Some(uuid) = job_uuid(pod.labels()) else {
        return;
    };
    let mut seen = seen.lock().expect("seen");
    seen.pods.entry(uuid).or_default().insert(pod.name_any());
    let status = pod.status.clone().unwrap_or_default();
    let agent = status
        .container_statuses
        .iter()
        .flatten()
        .find(|c| c.name == "agent")
        .and_then(|c| c.state.clone())
        .unwrap_or_default();
    let ran = agent.running.is_some()
        || agent
            .terminated
            .as_ref()
            .is_some_and(|t| t.started_at.is_some());
    if ran {
        seen.running_at
            .entry(uuid)
            .or_insert_with(std::time::Instant::now);
    }
    // A pod labelled `agent=absent` models an agent that exits before acquiring its job.
    let absent = pod.labels().get("agent").is_some_and(|v| v == "absent");
    if ran && !absent && !seen.acquired.contains(&uuid) {
        let tags: Vec<String> = pod
            .spec
            .iter()
            .flat_map(|s| s.containers.iter())
            .filter(|c| c.name == "agent")
            .flat_map(|c| c.env.iter().flatten())
            .filter(|e| e.name == "BUILDKITE_AGENT_TAGS")
            .flat_map(|e| e.value.iter().flat_map(|v| v.split(',')))
            .map(str::to_owned)
            .collect();
        // A second acquire of the same job is refused by Buildkite and counted in its
        // `acquired_count`, which the test checks.
        let _ = buildkite.acquire(uuid, &tags);
        seen.acquired.insert(uuid);
    }
    if let Some(ended) = agent.terminated
        && seen.acquired.contains(&uuid)
        && seen.finished.insert(uuid)
    {
        buildkite.finish(uuid, ended.exit_code);
    }
}

/// Polls `check` until it answers `Ok`, for at most `patience`.
pub(crate) async fn eventually<F, Fut>(what: &str, patience: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        let last = match check().await {
            Ok(()) => return,
            Err(e) => e,
        };
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {patience:?}: {last}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

pub(crate) fn step(label: &str) -> JobSpec {
    JobSpec::command(label)
        .on_queue("kubernetes")
        .on_pipeline("app")
}

pub(crate) fn log_tail(dir: &Path, name: &str) -> String {
    let text = std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}
