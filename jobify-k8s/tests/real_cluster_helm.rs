//! The Helm chart deploy/helm/jobify against a real kube-apiserver: `helm template` of the
//! default values and of each CI value file is accepted by `kubectl apply --dry-run=server
//! --validate=strict` in a namespace that enforces Pod Security `restricted`, without a
//! warning, and `helm install` for real creates the objects the kustomize base has, which
//! `helm uninstall` removes.
//!
//! The Prometheus Operator's kinds (PodMonitor, ServiceMonitor, PrometheusRule) are left out of
//! the server-side checks: their CRDs are not installed in the test cluster and cannot be
//! fetched here (.ci/deploy-checks checks them by hand).
//!
//! helm is `$JOBIFY_HELM`, else tools/helm/build-helm.sh's (built once, cached); kubectl is
//! the one on PATH (the server's release, as tools/k8s/test-real-cluster.sh sets it). Ignored
//! by a plain `cargo test`; run with `tools/k8s/test-real-cluster.sh`.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use jobify_testcluster::TestCluster;
use serde::Deserialize;
use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn chart() -> String {
    repo().join("deploy/helm/jobify").display().to_string()
}

fn helm_binary() -> PathBuf {
    if let Some(helm) = std::env::var_os("JOBIFY_HELM") {
        return PathBuf::from(helm);
    }
    let script = repo().join("tools/helm/build-helm.sh");
    let out = Command::new("bash")
        .arg(&script)
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "tools/helm/build-helm.sh failed: helm is built from the Go module proxy and needs Go"
    );
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    PathBuf::from(stdout.lines().last().expect("the helm path").trim())
}

/// Runs `program args`, with `stdin` when given; fails the test when it exits non-zero.
fn run(program: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{} could not be run ({e})", program.display()));
    let mut pipe = child.stdin.take().expect("stdin");
    if let Some(input) = stdin {
        pipe.write_all(input.as_bytes()).expect("writing stdin");
    }
    drop(pipe);
    let output = child.wait_with_output().expect("waiting");
    assert!(
        output.status.success(),
        "`{} {}` failed ({}):\n{}\n{}",
        program.display(),
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn kubectl(args: &[&str], stdin: Option<&str>) -> Output {
    run(Path::new("kubectl"), args, stdin)
}

fn documents(yaml: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(yaml)
        .map(|d| Value::deserialize(d).expect("a YAML document"))
        .filter(|v| !v.is_null())
        .collect()
}

/// A namespace that enforces Pod Security `restricted`, created for real.
fn restricted_namespace(kubeconfig: &str, name: &str) {
    kubectl(
        &["--kubeconfig", kubeconfig, "apply", "-f", "-"],
        Some(&format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n  labels:\n    \
             pod-security.kubernetes.io/enforce: restricted\n    \
             pod-security.kubernetes.io/warn: restricted\n"
        )),
    );
}

#[tokio::test]
#[ignore = "real-cluster tier: run tools/k8s/test-real-cluster.sh"]
async fn helm_template_of_each_value_file_is_accepted_by_the_api_server() {
    let cluster = TestCluster::shared();
    let kubeconfig = cluster.kubeconfig().display().to_string();
    let helm = helm_binary();
    let chart = chart();
    let ci = repo().join("deploy/helm/jobify/ci");
    let mut cases: Vec<(String, Option<PathBuf>)> = vec![("helm-default".into(), None)];
    for name in ["production-values.yaml", "created-secrets-values.yaml"] {
        let namespace = format!("helm-{}", name.trim_end_matches("-values.yaml"));
        cases.push((namespace, Some(ci.join(name))));
    }
    for (namespace, values) in cases {
        restricted_namespace(&kubeconfig, &namespace);
        let mut args = vec![
            "template",
            "jobify",
            chart.as_str(),
            "--namespace",
            &namespace,
        ];
        let values_arg = values.as_ref().map(|v| v.display().to_string());
        if let Some(v) = &values_arg {
            args.extend(["-f", v.as_str()]);
        }
        let rendered = run(&helm, &args, None);
        let objects = documents(&String::from_utf8_lossy(&rendered.stdout));
        let (operator, native): (Vec<Value>, Vec<Value>) = objects
            .into_iter()
            .partition(|o| o["apiVersion"] == "monitoring.coreos.com/v1");
        let stream: String = native
            .iter()
            .map(|o| format!("---\n{}", serde_yaml::to_string(o).expect("yaml")))
            .collect();
        let applied = kubectl(
            &[
                "--kubeconfig",
                &kubeconfig,
                "apply",
                "-f",
                "-",
                "--dry-run=server",
                "--validate=strict",
            ],
            Some(&stream),
        );
        let stdout = String::from_utf8_lossy(&applied.stdout);
        let stderr = String::from_utf8_lossy(&applied.stderr);
        assert_eq!(
            stdout
                .lines()
                .filter(|l| l.ends_with("(server dry run)"))
                .count(),
            native.len(),
            "{namespace}: every object applied in the dry run:\n{stdout}\n{stderr}"
        );
        assert!(
            !stderr.to_ascii_lowercase().contains("warning"),
            "{namespace}: the API server warned:\n{stderr}"
        );
        eprintln!(
            "{namespace}: {} objects accepted; not sent (no CRDs): {:?}",
            native.len(),
            operator.iter().map(|o| &o["kind"]).collect::<Vec<_>>()
        );
    }
}

#[tokio::test]
#[ignore = "real-cluster tier: run tools/k8s/test-real-cluster.sh"]
async fn helm_install_creates_the_kustomize_bases_objects_and_uninstall_removes_them() {
    let cluster = TestCluster::shared();
    let kubeconfig = cluster.kubeconfig().display().to_string();
    let helm = helm_binary();
    let chart = chart();
    let namespace = "helm-install";
    restricted_namespace(&kubeconfig, namespace);
    let base = [
        "--kubeconfig",
        kubeconfig.as_str(),
        "--namespace",
        namespace,
    ];
    let installed = run(
        &helm,
        &[&["install", "jobify", chart.as_str()][..], &base[..]].concat(),
        None,
    );
    let notes = String::from_utf8_lossy(&installed.stdout);
    assert!(notes.contains("STATUS: deployed"), "{notes}");
    assert!(
        notes.contains("create secret generic buildkite-api-token"),
        "NOTES say which Secrets to create:\n{notes}"
    );

    let kinds = "serviceaccount,role,rolebinding,configmap,service,deployment,poddisruptionbudget";
    let listed = kubectl(
        &[
            "--kubeconfig",
            &kubeconfig,
            "-n",
            namespace,
            "get",
            kinds,
            "-l",
            "app.kubernetes.io/instance=jobify",
            "-o",
            "json",
        ],
        None,
    );
    let list: Value = serde_json::from_slice(&listed.stdout).expect("a List");
    let got: BTreeSet<String> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|o| {
            format!(
                "{}/{}",
                o["kind"].as_str().expect("kind"),
                o["metadata"]["name"].as_str().expect("name")
            )
        })
        .collect();
    // The kustomize base's objects, but for the Namespace (Helm installs into one).
    let expected: BTreeSet<String> = [
        "ConfigMap/jobify-config",
        "Deployment/jobify",
        "PodDisruptionBudget/jobify",
        "Role/jobify",
        "RoleBinding/jobify",
        "Service/jobify-metrics",
        "ServiceAccount/jobify",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(got, expected);

    // The Deployment's pods pass `restricted`, enforced: the test cluster runs no ReplicaSet
    // controller, so a Pod of the installed pod template is created in a server dry run.
    let deployment: Value = serde_json::from_slice(
        &kubectl(
            &[
                "--kubeconfig",
                &kubeconfig,
                "-n",
                namespace,
                "get",
                "deployment",
                "jobify",
                "-o",
                "json",
            ],
            None,
        )
        .stdout,
    )
    .expect("json");
    assert_eq!(deployment["spec"]["replicas"], 2);
    let pod = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "jobify-pod-template", "namespace": namespace},
        "spec": deployment["spec"]["template"]["spec"],
    });
    let created = kubectl(
        &[
            "--kubeconfig",
            &kubeconfig,
            "create",
            "-f",
            "-",
            "--dry-run=server",
        ],
        Some(&pod.to_string()),
    );
    let stderr = String::from_utf8_lossy(&created.stderr);
    assert!(
        !stderr.to_ascii_lowercase().contains("warning"),
        "the pod template under `restricted`:\n{stderr}"
    );
    // The check has teeth: the same pod as root is refused.
    let mut root = pod.clone();
    root["spec"]["securityContext"]["runAsNonRoot"] = Value::Bool(false);
    root["spec"]["securityContext"]["runAsUser"] = Value::from(0);
    root["spec"]["containers"][0]["securityContext"]["runAsNonRoot"] = Value::Bool(false);
    let refused = Command::new("kubectl")
        .args([
            "--kubeconfig",
            &kubeconfig,
            "create",
            "-f",
            "-",
            "--dry-run=server",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(root.to_string().as_bytes())?;
            child.wait_with_output()
        })
        .expect("kubectl");
    assert!(
        !refused.status.success()
            && String::from_utf8_lossy(&refused.stderr).contains("restricted"),
        "a root pod is refused by the namespace's `restricted` enforcement: {}",
        String::from_utf8_lossy(&refused.stderr)
    );

    run(
        &helm,
        &[&["uninstall", "jobify", "--wait"][..], &base[..]].concat(),
        None,
    );
    let left = kubectl(
        &[
            "--kubeconfig",
            &kubeconfig,
            "-n",
            namespace,
            "get",
            kinds,
            "-l",
            "app.kubernetes.io/instance=jobify",
            "-o",
            "name",
        ],
        None,
    );
    assert_eq!(
        String::from_utf8_lossy(&left.stdout).trim(),
        "",
        "helm uninstall removed them"
    );
}
