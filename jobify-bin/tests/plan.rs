//! `jobify plan` as a user runs it: the real binary against the Buildkite simulator, no
//! cluster. The manifests it prints are written to `target/manifests/plan-*.yaml`, which CI
//! validates with `kubernetes-validate`.

mod process;

use std::path::{Path, PathBuf};
use std::process::Output;

use jobify_sim::buildkite::{BuildkiteSim, BuildkiteSimConfig, JobHandle, JobSpec};
use process::jobify;
use serde_json::json;

const TOKEN: &str = "bkua_plan_test";

struct Scenario {
    sim: BuildkiteSim,
    _dir: tempfile::TempDir,
    config: PathBuf,
    default_pod: JobHandle,
    pod_spec: JobHandle,
    gpu: JobHandle,
    privileged: JobHandle,
    other_queue: JobHandle,
}

async fn scenario() -> Scenario {
    let sim = BuildkiteSim::start(BuildkiteSimConfig::new("acme", TOKEN, "agent-token"))
        .await
        .expect("simulator");
    let plugin = |pod_spec: serde_json::Value| json!([{ "github.com/buildkite-plugins/kubernetes-buildkite-plugin#v1.0.0": { "podSpec": pod_spec } }]);
    let default_pod = sim.schedule_job(
        JobSpec::command("make test")
            .on_queue("kubernetes")
            .on_pipeline("app"),
    );
    let pod_spec = sim.schedule_job(
        JobSpec::command("cargo test")
            .on_queue("kubernetes")
            .on_pipeline("app")
            .with_plugins(plugin(json!({
                "containers": [{ "image": "rust:1.95", "command": ["cargo test"] }]
            }))),
    );
    let gpu = sim.schedule_job(
        JobSpec::command("nvidia-smi")
            .on_queue("gpu")
            .on_pipeline("ml"),
    );
    let privileged = sim.schedule_job(
        JobSpec::command("docker build .")
            .on_queue("kubernetes")
            .on_pipeline("app")
            .with_plugins(plugin(json!({
                "containers": [{ "image": "docker:27", "securityContext": { "privileged": true } }]
            }))),
    );
    let other_queue = sim.schedule_job(
        JobSpec::command("xcodebuild")
            .on_queue("macos")
            .on_pipeline("app"),
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("jobify.toml");
    std::fs::write(
        &config,
        format!(
            r#"
organization = "acme"

[buildkite]
graphql_url = "{graphql}"
agent_url = "{agent}"

[[queues]]
name = "kubernetes"

[[queues]]
name = "gpu"

[[queues]]
name = "macos"

[[policy.rules]]
name = "mac-elsewhere"
queue = "macos"
action = "skip"

[[policy.rules]]
name = "gpu"
queue = "gpu"
action = "default"
template = "gpu"

[kubernetes]
namespace = "ci"

[kubernetes.resource_classes.gpu]
requests = {{ cpu = "4", "nvidia.com/gpu" = "1" }}
limits = {{ "nvidia.com/gpu" = "1" }}
"#,
            graphql = sim.graphql_url(),
            agent = sim.agent_url(),
        ),
    )
    .expect("write config");
    Scenario {
        sim,
        _dir: dir,
        config,
        default_pod,
        pod_spec,
        gpu,
        privileged,
        other_queue,
    }
}

/// Runs the real binary on a blocking thread, so the simulator keeps serving meanwhile.
async fn plan(config: &Path, args: &[&str]) -> Output {
    let config = config.to_owned();
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        jobify()
            .arg("plan")
            .arg("--config")
            .arg(&config)
            .args(&args)
            .env("BUILDKITE_API_TOKEN", TOKEN)
            .output()
            .expect("run jobify plan")
    })
    .await
    .expect("join")
}

fn row<'a>(table: &'a str, job: &JobHandle) -> &'a str {
    let uuid = job.uuid.to_string();
    table
        .lines()
        .find(|line| line.starts_with(&uuid))
        .unwrap_or_else(|| panic!("no row for {uuid} in\n{table}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_table_shows_each_jobs_decision_and_reason() {
    let s = scenario().await;
    let output = plan(&s.config, &[]).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(stdout.starts_with("JOB"), "{stdout}");
    assert!(row(&stdout, &s.default_pod).contains(" run "), "{stdout}");
    assert!(
        row(&stdout, &s.pod_spec).contains("run (podspec)"),
        "{stdout}"
    );
    assert!(row(&stdout, &s.gpu).contains("run (gpu)"), "{stdout}");
    let privileged = row(&stdout, &s.privileged);
    assert!(privileged.contains("reject"), "{stdout}");
    assert!(privileged.contains("privileged"), "{stdout}");
    let skipped = row(&stdout, &s.other_queue);
    assert!(skipped.contains("skip"), "{stdout}");
    assert!(skipped.contains("mac-elsewhere"), "{stdout}");

    // Nothing was done to the jobs.
    for job in [&s.default_pod, &s.privileged] {
        let snapshot = s.sim.job(job.uuid).expect("job");
        assert_eq!(snapshot.state, "SCHEDULED");
        assert!(snapshot.annotations.is_empty());
    }
    s.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_yaml_prints_the_manifests_of_jobs_that_would_run() {
    let s = scenario().await;
    let output = plan(&s.config, &["-o", "yaml"]).await;
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();

    let documents: Vec<serde_json::Value> = stdout
        .split("\n---\n")
        .map(|doc| serde_yaml::from_str(doc).expect("YAML document"))
        .collect();
    let mut names: Vec<&str> = documents
        .iter()
        .map(|doc| {
            assert_eq!(doc["apiVersion"], "batch/v1");
            assert_eq!(doc["kind"], "Job");
            assert_eq!(doc["metadata"]["namespace"], "ci");
            doc["metadata"]["name"].as_str().expect("name")
        })
        .collect();
    names.sort_unstable();
    let mut expected: Vec<String> = [&s.default_pod, &s.pod_spec, &s.gpu]
        .iter()
        .map(|job| format!("jobify-{}", job.uuid))
        .collect();
    expected.sort_unstable();
    assert_eq!(names, expected);
    assert!(
        !stdout.contains(TOKEN),
        "the API token must not reach a manifest"
    );

    let corpus = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .join("manifests");
    std::fs::create_dir_all(&corpus).expect("corpus dir");
    std::fs::write(corpus.join("plan-jobs.yaml"), &stdout).expect("write corpus");

    let output = plan(&s.config, &["-o", "json"]).await;
    assert!(output.status.success(), "{output:?}");
    let list: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(list["kind"], "List");
    assert_eq!(list["items"].as_array().map(Vec::len), Some(3));
    s.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_without_a_token_says_which_variable_to_set() {
    let s = scenario().await;
    let config = s.config.clone();
    let output = tokio::task::spawn_blocking(move || {
        jobify()
            .args(["plan", "--config"])
            .arg(&config)
            .output()
            .expect("run")
    })
    .await
    .expect("join");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("BUILDKITE_API_TOKEN"), "{stderr}");
    s.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_written_to_a_pipe_carry_no_terminal_colour_codes() {
    let s = scenario().await;
    let config = s.config.clone();
    let output = tokio::task::spawn_blocking(move || {
        jobify()
            .args(["plan", "--config"])
            .arg(&config)
            .env("BUILDKITE_API_TOKEN", TOKEN)
            .env("RUST_LOG", "debug")
            .output()
            .expect("run")
    })
    .await
    .expect("join");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("DEBUG"), "debug lines expected: {stderr}");
    assert!(
        !stderr.contains('\u{1b}'),
        "colour codes in piped logs: {stderr}"
    );
    s.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_reads_the_stacks_api_with_only_an_agent_token_and_reserves_nothing() {
    use jobify_sim::stacks::{JobSpec as StacksJob, StacksSim, StacksSimConfig};

    const CLUSTER_TOKEN: &str = "bkct_plan_test";
    let sim = StacksSim::start(StacksSimConfig::new(CLUSTER_TOKEN).with_queue("kubernetes"))
        .await
        .expect("simulator");
    let ours = sim.add_job(
        StacksJob::command("make test")
            .on_queue("kubernetes")
            .on_pipeline("app"),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("jobify.toml");
    std::fs::write(
        &config,
        format!(
            r#"
organization = "acme"

[buildkite]
source = "stacks"
agent_url = "{agent}"
agent_token = {{ env = "PLAN_AGENT_TOKEN" }}
api_token = {{ env = "NO_SUCH_VARIABLE_IS_READ" }}

[[queues]]
name = "kubernetes"

[kubernetes]
namespace = "ci"
"#,
            agent = sim.base_url(),
        ),
    )
    .expect("write config");
    let output = tokio::task::spawn_blocking(move || {
        jobify()
            .arg("plan")
            .arg("--config")
            .arg(&config)
            .env("PLAN_AGENT_TOKEN", CLUSTER_TOKEN)
            .env_remove("BUILDKITE_API_TOKEN")
            .output()
            .expect("run jobify plan")
    })
    .await
    .expect("join");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let line = stdout
        .lines()
        .find(|line| line.contains(&ours.to_string()))
        .unwrap_or_else(|| panic!("no row for the job in\n{stdout}"));
    assert!(line.contains("run"), "{line}");
    assert!(sim.reservation(ours).is_none(), "plan reserves nothing");
    assert_eq!(sim.job(ours).expect("job").state, "scheduled");
    sim.shutdown().await;
}
