//! `jobify run` as an operator runs it: the real binary, its Kubernetes credentials from
//! `KUBECONFIG` (pointing at the Kubernetes simulator) and its tokens from the environment,
//! against the Buildkite simulator. It runs a job end to end, serves metrics and readiness,
//! and on SIGTERM stops cleanly, releases its Lease and exits 0.

mod process;

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use jobify_sim::buildkite::{BuildkiteSim, BuildkiteSimConfig, JobSpec};
use jobify_sim::kubernetes::{KubeSim, KubeSimConfig};
use process::{jobify, terminate};

const API_TOKEN: &str = "bkua_run_test";
const AGENT_TOKEN: &str = "agent_run_test";
/// The longest any step may take before the test gives up (it polls, it does not sleep this).
const PATIENCE: Duration = Duration::from_secs(60);

struct Env {
    buildkite: BuildkiteSim,
    kube: KubeSim,
    dir: tempfile::TempDir,
    listen: String,
}

async fn env() -> Env {
    let buildkite = BuildkiteSim::start(BuildkiteSimConfig::new("acme", API_TOKEN, AGENT_TOKEN))
        .await
        .expect("buildkite simulator");
    let kube = KubeSim::start(KubeSimConfig {
        agent: Some(buildkite.agent_api()),
        ..KubeSimConfig::default()
    })
    .await
    .expect("kubernetes simulator");
    let dir = tempfile::tempdir().expect("tempdir");
    kube.write_kubeconfig(&dir.path().join("kubeconfig"))
        .expect("kubeconfig");
    let listen = {
        // A free port for the metrics listener; released for jobify to bind.
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("probe");
        probe.local_addr().expect("addr").to_string()
    };
    std::fs::write(
        dir.path().join("jobify.toml"),
        format!(
            r#"
organization = "acme"

[buildkite]
graphql_url = "{graphql}"
agent_url = "{agent}"
poll_interval = "1s"

[[queues]]
name = "kubernetes"

[kubernetes]
namespace = "ci"

[leader_election]
enabled = true
lease_name = "jobify-test"
lease_duration = "2s"
renew_interval = "200ms"
identity = "replica-a"

[server]
listen = "{listen}"
"#,
            graphql = buildkite.graphql_url(),
            agent = buildkite.agent_url(),
        ),
    )
    .expect("config");
    Env {
        buildkite,
        kube,
        dir,
        listen,
    }
}

fn start(env: &Env) -> Child {
    jobify()
        .args(["run", "--log-format", "json", "--config"])
        .arg(env.dir.path().join("jobify.toml"))
        .env("KUBECONFIG", env.dir.path().join("kubeconfig"))
        .env("BUILDKITE_API_TOKEN", API_TOKEN)
        .env("BUILDKITE_AGENT_TOKEN", AGENT_TOKEN)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start jobify run")
}

/// Polls `check` every 50 ms until it holds, or fails after [`PATIENCE`].
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn get(client: &reqwest::Client, url: &str) -> Option<(u16, String)> {
    let response = client.get(url).send().await.ok()?;
    let status = response.status().as_u16();
    Some((status, response.text().await.ok()?))
}

async fn wait_for_exit(mut child: Child) -> (Option<i32>, String) {
    let status = tokio::task::spawn_blocking(move || {
        let status = child.wait().expect("wait");
        let mut stderr = String::new();
        if let Some(mut pipe) = child.stderr.take() {
            use std::io::Read;
            let _ = pipe.read_to_string(&mut stderr);
        }
        (status.code(), stderr)
    });
    tokio::time::timeout(PATIENCE, status)
        .await
        .expect("jobify exits after SIGTERM")
        .expect("join")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_launches_a_job_then_exits_0_on_sigterm_and_releases_the_lease() {
    jobify::tls::install_crypto_provider();
    let env = env().await;
    let job = env.buildkite.schedule_job(
        JobSpec::command("make test")
            .on_queue("kubernetes")
            .running(Duration::from_millis(100), 0),
    );
    let child = start(&env);
    let http = reqwest::Client::new();
    let base = format!("http://{}", env.listen);

    eventually("the job finished in Buildkite", || async {
        env.buildkite
            .job(job.uuid)
            .is_some_and(|job| job.state == "FINISHED")
    })
    .await;
    assert_eq!(
        env.buildkite.job(job.uuid).expect("job").exit_status,
        Some(0)
    );
    let jobs = env.kube.jobs("ci");
    assert_eq!(
        jobs.len(),
        1,
        "one Kubernetes Job for the one Buildkite job"
    );
    assert_eq!(
        jobs[0].metadata.name.as_deref(),
        Some(format!("jobify-{}", job.uuid).as_str())
    );

    eventually("/readyz answers 200", || async {
        get(&http, &format!("{base}/readyz"))
            .await
            .is_some_and(|(status, _)| status == 200)
    })
    .await;
    let (status, metrics) = get(&http, &format!("{base}/metrics"))
        .await
        .expect("metrics");
    assert_eq!(status, 200);
    for line in [
        "jobify_scheduler_leader 1",
        "jobify_scheduler_launches_total{outcome=\"created\"} 1",
        "jobify_scheduler_decisions_total{decision=\"run\"",
    ] {
        assert!(metrics.contains(line), "{line} missing from\n{metrics}");
    }
    let holder = |kube: &KubeSim| {
        kube.lease("ci", "jobify-test")
            .and_then(|lease| lease.spec)
            .and_then(|spec| spec.holder_identity)
            .filter(|holder| !holder.is_empty())
    };
    assert_eq!(holder(&env.kube).as_deref(), Some("replica-a"));

    terminate(&child);
    let (code, stderr) = wait_for_exit(child).await;
    assert_eq!(code, Some(0), "stderr:\n{stderr}");
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    let messages: Vec<&str> = lines
        .iter()
        .filter_map(|line| line["message"].as_str())
        .collect();
    assert!(messages.contains(&"jobify stopped"), "stderr:\n{stderr}");
    let decided = lines
        .iter()
        .find(|line| line["message"] == "decided")
        .expect("a decision was logged");
    assert_eq!(decided["decision"], "run", "{decided}");
    assert_eq!(decided["span"]["job"], job.uuid.to_string(), "{decided}");
    assert_eq!(holder(&env.kube), None, "the Lease is released on shutdown");
    assert!(
        !stderr.contains(API_TOKEN) && !stderr.contains(AGENT_TOKEN),
        "a token was logged"
    );

    env.kube.shutdown().await;
    env.buildkite.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_with_an_invalid_config_exits_2_before_connecting_anywhere() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("jobify.toml");
    std::fs::write(
        &config,
        "organization = \"acme\"\n[server]\nlisten = \"nowhere\"\n",
    )
    .expect("config");
    let output = jobify()
        .args(["run", "--config"])
        .arg(Path::new(&config))
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(":3:10: server.listen"), "{stderr}");
}
