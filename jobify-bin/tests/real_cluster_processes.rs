//! The real binary against the real control plane: `jobify run` processes, Buildkite simulated
//! by `jobify-sim` over HTTP, Kubernetes a real kube-apiserver, etcd and
//! kube-controller-manager (`jobify-testcluster`) whose pods a simulated kubelet runs. jobify
//! runs as the ServiceAccount of `examples/deploy/rbac.yaml`, bound to exactly its Role.
//!
//! The simulated kubelet runs no agent, so this test plays the agent of each pod: once the
//! pod runs it acquires the pod's Buildkite job (`BUILDKITE_AGENT_ACQUIRE_JOB`) from the
//! Buildkite simulator, and once the pod ends it finishes the job with the agent container's
//! exit code, as `buildkite-agent start --acquire-job` does.
//!
//! Ignored by a plain `cargo test`; `tools/k8s/test-real-cluster.sh` runs it.

mod process;

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
use process::jobify;
use serde_json::json;
use uuid::Uuid;

const ORGANIZATION: &str = "acme";
const API_TOKEN: &str = "bk-api-token";
const AGENT_TOKEN: &str = "bk-agent-token";
const RBAC: &str = include_str!("../../examples/deploy/rbac.yaml");

/// How many jobs the exactly-once test runs: `JOBIFY_REAL_JOBS`, default 1,000.
fn job_count() -> usize {
    std::env::var("JOBIFY_REAL_JOBS")
        .ok()
        .and_then(|n| n.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(1000)
}

/// Patience for `n` jobs on two busy cores: the real control plane is slower than the
/// simulator (the tests poll; they never wait this long when things work).
fn patience(n: usize) -> Duration {
    Duration::from_secs(120) + Duration::from_millis(600) * u32::try_from(n).unwrap_or(u32::MAX)
}

/// A namespace holding the agent token Secret and jobify's ServiceAccount bound to the Role
/// of `examples/deploy/rbac.yaml`; the kubeconfig of that ServiceAccount.
async fn namespace_for_jobify(cluster: &TestCluster, hint: &str) -> (String, PathBuf, Client) {
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
async fn buildkite(fault_rate: f64) -> BuildkiteSim {
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
fn free_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr")
}

/// One `jobify run` process.
struct Replica {
    child: Child,
    listen: SocketAddr,
    name: String,
}

impl Replica {
    /// Starts `jobify run` with a config for `namespace`, as the ServiceAccount.
    fn start(
        dir: &Path,
        name: &str,
        buildkite: &BuildkiteSim,
        namespace: &str,
        kubeconfig: &Path,
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
max_in_flight = 200

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
            .env("RUST_LOG", "info")
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
    async fn metric(&self, metric: &str) -> Option<f64> {
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

    async fn leads(&self) -> bool {
        self.metric("jobify_scheduler_leader").await == Some(1.0)
    }

    /// SIGKILL: no shutdown, no Lease release.
    fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        let _ = self.child.wait();
    }

    /// SIGTERM, and the exit code.
    fn stop(mut self) -> Option<i32> {
        process::terminate(&self.child);
        self.child.wait().expect("wait").code()
    }
}

/// What the test's agents and observers saw, per Buildkite job.
#[derive(Default)]
struct Seen {
    /// Kubernetes Job names created for each Buildkite job.
    jobs: BTreeMap<Uuid, BTreeSet<String>>,
    /// Pod names of each Buildkite job.
    pods: BTreeMap<Uuid, BTreeSet<String>>,
    /// Jobs this test's agents acquired, and finished.
    acquired: BTreeSet<Uuid>,
    finished: BTreeSet<Uuid>,
}

fn job_uuid(labels: &BTreeMap<String, String>) -> Option<Uuid> {
    labels.get(jobify_k8s::labels::JOB_UUID)?.parse().ok()
}

/// Plays the agent of every pod in `namespace` and records every Job and pod, until dropped.
fn agents(
    client: Client,
    namespace: &str,
    buildkite: Arc<dyn AgentApi>,
    seen: Arc<Mutex<Seen>>,
) -> tokio::task::JoinHandle<()> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let jobs: Api<Job> = Api::namespaced(client, namespace);
    let seen_jobs = Arc::clone(&seen);
    tokio::spawn(async move {
        let record_jobs = watcher(jobs, watcher::Config::default()).for_each(|event| {
            if let Ok(watcher::Event::Apply(job) | watcher::Event::InitApply(job)) = event
                && let Some(uuid) = job_uuid(job.labels())
            {
                let mut seen = seen_jobs.lock().expect("seen");
                seen.jobs.entry(uuid).or_default().insert(job.name_any());
            }
            async {}
        });
        let play = watcher(pods, watcher::Config::default()).for_each(|event| {
            if let Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod)) = event {
                agent_sees(&pod, buildkite.as_ref(), &seen);
            }
            async {}
        });
        futures::join!(record_jobs, play);
    })
}

/// What the agent of `pod` does on seeing it: acquire its job once the pod runs, finish it
/// once the pod ended.
fn agent_sees(pod: &Pod, buildkite: &dyn AgentApi, seen: &Mutex<Seen>) {
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
    if ran && !seen.acquired.contains(&uuid) {
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
async fn eventually<F, Fut>(what: &str, patience: Duration, mut check: F)
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

fn step(label: &str) -> JobSpec {
    JobSpec::command(label)
        .on_queue("kubernetes")
        .on_pipeline("app")
}

const LEADER_ELECTION: &str = r#"
[leader_election]
enabled = true
lease_duration = "6s"
renew_interval = "2s"
"#;

fn log_tail(dir: &Path, name: &str) -> String {
    let text = std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real control plane: tools/k8s/test-real-cluster.sh"]
async fn every_job_runs_exactly_once_with_faults_a_killed_leader_and_a_restart() {
    let cluster = TestCluster::shared();
    let (namespace, kubeconfig, admin) = namespace_for_jobify(cluster, "once").await;
    let buildkite = buildkite(0.10).await;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let watching = agents(
        admin.clone(),
        &namespace,
        buildkite.agent_api(),
        Arc::clone(&seen),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let total = job_count();
    let jobs: Vec<Uuid> = (0..total)
        .map(|i| buildkite.schedule_job(step(&format!("job {i}"))).uuid)
        .collect();

    let first = Replica::start(
        dir.path(),
        "first",
        &buildkite,
        &namespace,
        &kubeconfig,
        LEADER_ELECTION,
    );
    let second = Replica::start(
        dir.path(),
        "second",
        &buildkite,
        &namespace,
        &kubeconfig,
        LEADER_ELECTION,
    );
    let finished = || {
        jobs.iter()
            .filter(|j| buildkite.job(**j).is_some_and(|s| s.state == "FINISHED"))
            .count()
    };

    // A third of the jobs done, the leader is killed mid-dispatch.
    eventually("a third of the jobs finish", patience(total), async || {
        let done = finished();
        if done * 3 >= total {
            Ok(())
        } else {
            Err(format!(
                "{done} of {total} finished; first: {}\nsecond: {}",
                log_tail(dir.path(), "first"),
                log_tail(dir.path(), "second")
            ))
        }
    })
    .await;
    let (leader, standby) = if first.leads().await {
        (first, second)
    } else {
        (second, first)
    };
    assert!(!standby.leads().await, "one leader at a time");
    let killed = leader.name.clone();
    leader.kill();
    eventually(
        "the standby takes over",
        Duration::from_secs(60),
        async || {
            if standby.leads().await {
                Ok(())
            } else {
                Err(log_tail(dir.path(), &standby.name))
            }
        },
    )
    .await;

    // Two thirds done, the killed replica comes back (a restart) and the other stops.
    eventually(
        "two thirds of the jobs finish",
        patience(total),
        async || {
            let done = finished();
            if done * 3 >= total * 2 {
                Ok(())
            } else {
                Err(format!("{done} of {total} finished"))
            }
        },
    )
    .await;
    let restarted = Replica::start(
        dir.path(),
        &format!("{killed}-again"),
        &buildkite,
        &namespace,
        &kubeconfig,
        LEADER_ELECTION,
    );
    assert_eq!(standby.stop(), Some(0), "SIGTERM stops jobify cleanly");

    eventually("every job finishes", patience(total), async || {
        let done = finished();
        if done == total {
            Ok(())
        } else {
            Err(format!(
                "{done} of {total} finished; {}",
                log_tail(dir.path(), &restarted.name)
            ))
        }
    })
    .await;
    {
        let seen = seen.lock().expect("seen");
        for job in &jobs {
            let state = buildkite.job(*job).expect("job");
            assert_eq!(state.acquired_count, 1, "{job} acquired once: {state:?}");
            assert!(
                state.annotations.is_empty() && !state.canceled_by_api,
                "{job}: {state:?}"
            );
            assert_eq!(
                seen.jobs.get(job).map(BTreeSet::len),
                Some(1),
                "{job}: exactly one Kubernetes Job"
            );
            assert_eq!(
                seen.pods.get(job).map(BTreeSet::len),
                Some(1),
                "{job}: exactly one pod"
            );
        }
        assert_eq!(seen.jobs.len(), total, "no Job for a job never scheduled");
    }
    assert!(
        buildkite.stats().graphql_requests > 0,
        "Buildkite was polled through the faults"
    );
    assert_eq!(restarted.stop(), Some(0));
    watching.abort();
    buildkite.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real control plane: tools/k8s/test-real-cluster.sh"]
async fn a_cancelled_job_loses_its_job_and_a_pod_that_dies_before_its_agent_is_failed_in_buildkite()
{
    let cluster = TestCluster::shared();
    let (namespace, kubeconfig, admin) = namespace_for_jobify(cluster, "cancel").await;
    let buildkite = buildkite(0.0).await;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let watching = agents(
        admin.clone(),
        &namespace,
        buildkite.agent_api(),
        Arc::clone(&seen),
    );
    let scenario = |name: &str| json!([{ "kubernetes": { "metadata": { "labels": { "sim.jobify.dev/scenario": name } } } }]);
    let pending =
        buildkite.schedule_job(step("stays pending").with_plugins(scenario("stays-pending")));
    // The first init container fails: in the podSpec layout, `copy-agent`.
    let init = buildkite.schedule_job(step("init fails").with_plugins(json!([{ "kubernetes": {
        "metadata": { "labels": { "sim.jobify.dev/scenario": "init-container-failure" } },
        "podSpec": { "containers": [{ "image": "alpine:3", "command": ["make test"] }] },
    } }])));
    let normal = buildkite.schedule_job(step("runs"));
    let dir = tempfile::tempdir().expect("tempdir");
    let replica = Replica::start(dir.path(), "only", &buildkite, &namespace, &kubeconfig, "");
    let kube_jobs: Api<Job> = Api::namespaced(admin.clone(), &namespace);
    let job_of = |uuid: Uuid| {
        let kube_jobs = kube_jobs.clone();
        async move {
            kube_jobs
                .list(&Default::default())
                .await
                .map(|l| {
                    l.items
                        .into_iter()
                        .any(|j| job_uuid(j.labels()) == Some(uuid))
                })
                .unwrap_or(false)
        }
    };

    eventually(
        "the pending job has its Kubernetes Job",
        Duration::from_secs(90),
        async || {
            if job_of(pending.uuid).await {
                Ok(())
            } else {
                Err(log_tail(dir.path(), "only"))
            }
        },
    )
    .await;
    assert!(buildkite.cancel_job(pending.uuid), "cancelled in Buildkite");
    eventually(
        "the cancelled job's Kubernetes Job is deleted",
        Duration::from_secs(90),
        async || {
            if job_of(pending.uuid).await {
                Err(log_tail(dir.path(), "only"))
            } else {
                Ok(())
            }
        },
    )
    .await;

    eventually(
        "the job whose init container failed is annotated and cancelled",
        Duration::from_secs(90),
        async || {
            let state = buildkite.job(init.uuid).ok_or("unknown")?;
            let annotated = state
                .annotations
                .iter()
                .any(|a| a.contains("init_container_failed") && a.contains("`copy-agent`"));
            if state.state == "CANCELED" && state.canceled_by_api && annotated {
                Ok(())
            } else {
                Err(format!("{state:?}"))
            }
        },
    )
    .await;
    eventually(
        "the normal job finishes",
        Duration::from_secs(90),
        async || match buildkite.job(normal.uuid) {
            Some(s) if s.state == "FINISHED" => Ok(()),
            other => Err(format!("{other:?}")),
        },
    )
    .await;
    {
        let seen = seen.lock().expect("seen");
        assert!(!seen.acquired.contains(&init.uuid), "no agent ran for it");
        assert!(
            !seen.acquired.contains(&pending.uuid),
            "no agent ran for it"
        );
        for uuid in [pending.uuid, init.uuid, normal.uuid] {
            assert_eq!(
                seen.jobs.get(&uuid).map(BTreeSet::len),
                Some(1),
                "{uuid}: one Kubernetes Job"
            );
        }
    }
    assert_eq!(
        replica.metric("jobify_workloads_cancellations_total").await,
        Some(1.0)
    );
    assert_eq!(
        replica
            .metric("jobify_workloads_failed_to_start_total")
            .await,
        Some(1.0)
    );
    assert_eq!(replica.stop(), Some(0));
    watching.abort();
    buildkite.shutdown().await;
}
