//! `examples/deploy` against a real kube-apiserver: `kubectl kustomize` renders what the
//! README says, and `kubectl apply -k --dry-run=server` (strict field validation, the
//! namespace's Pod Security labels in force) is accepted without a warning.
//!
//! Needs `kubectl` on PATH; a missing one fails the test, saying so. Ignored by a plain
//! `cargo test`; run with `tools/k8s/test-real-cluster.sh`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use jobify_testcluster::TestCluster;
use serde::Deserialize;
use serde_json::Value;

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/deploy")
}

/// Runs kubectl with `args`; fails the test when kubectl is missing or exits non-zero.
fn kubectl(args: &[&str]) -> Output {
    let output = Command::new("kubectl")
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "kubectl could not be run ({e}): the real-cluster tier needs kubectl on PATH \
                 (any release from v1.30 on) for `kubectl kustomize` and server-side dry runs"
            )
        });
    assert!(
        output.status.success(),
        "`kubectl {}` failed ({}):\n{}\n{}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// The documents of a YAML stream.
fn documents(yaml: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(yaml)
        .map(|d| Value::deserialize(d).expect("a YAML document"))
        .filter(|v| !v.is_null())
        .collect()
}

fn find<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    let found: Vec<&Value> = objects.iter().filter(|o| o["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "one {kind} in the kustomization");
    found[0]
}

#[test]
#[ignore = "real-cluster tier: run tools/k8s/test-real-cluster.sh"]
fn kubectl_kustomize_renders_what_the_readme_describes() {
    let dir = deploy_dir();
    let rendered = kubectl(&["kustomize", &dir.display().to_string()]);
    let objects = documents(&String::from_utf8_lossy(&rendered.stdout));
    let kinds: BTreeSet<&str> = objects.iter().filter_map(|o| o["kind"].as_str()).collect();
    assert_eq!(
        kinds,
        BTreeSet::from([
            "ConfigMap",
            "Deployment",
            "Namespace",
            "PodDisruptionBudget",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount",
        ]),
    );
    assert_eq!(objects.len(), kinds.len(), "one object of each kind");
    for object in &objects {
        let name = format!("{}/{}", object["kind"], object["metadata"]["name"]);
        let labels = &object["metadata"]["labels"];
        assert_eq!(labels["app.kubernetes.io/part-of"], "jobify", "{name}");
        if object["kind"] != "Namespace" {
            assert_eq!(object["metadata"]["namespace"], "buildkite", "{name}");
        }
    }
    assert_eq!(find(&objects, "Namespace")["metadata"]["name"], "buildkite");

    // The ConfigMap is jobify.toml, under a content-hashed name the Deployment mounts.
    let config_map = find(&objects, "ConfigMap");
    let config_name = config_map["metadata"]["name"].as_str().expect("name");
    assert!(config_name.starts_with("jobify-config-"), "{config_name}");
    let toml_text = std::fs::read_to_string(dir.join("jobify.toml")).expect("jobify.toml");
    assert_eq!(config_map["data"]["jobify.toml"], toml_text.as_str());
    let deployment = find(&objects, "Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["volumes"][0]["configMap"]["name"], config_name);
    let container = &pod["containers"][0];
    assert_eq!(container["image"], "ghcr.io/jobify/jobify:0.1.0");
    assert_eq!(
        pod["serviceAccountName"],
        find(&objects, "ServiceAccount")["metadata"]["name"]
    );

    // The config agrees with the manifests: the namespace, the token Secrets.
    let config: toml::Value = toml::from_str(&toml_text).expect("jobify.toml parses");
    assert_eq!(
        config["kubernetes"]["namespace"].as_str(),
        Some("buildkite"),
        "kubernetes.namespace is the kustomization's namespace"
    );
    let secrets: BTreeSet<&str> = container["env"]
        .as_array()
        .expect("env")
        .iter()
        .filter_map(|e| e["valueFrom"]["secretKeyRef"]["name"].as_str())
        .collect();
    assert_eq!(
        secrets,
        BTreeSet::from(["buildkite-agent-token", "buildkite-api-token"]),
        "the Secrets README.md says to create"
    );
    assert_eq!(
        config["kubernetes"]["agent_token_secret"]["name"].as_str(),
        Some("buildkite-agent-token")
    );

    // The Role is rbac.yaml's, rules untouched.
    let file = documents(&std::fs::read_to_string(dir.join("rbac.yaml")).expect("rbac.yaml"));
    let role = file.iter().find(|d| d["kind"] == "Role").expect("Role");
    assert_eq!(find(&objects, "Role")["rules"], role["rules"]);
}

#[tokio::test]
#[ignore = "real-cluster tier: run tools/k8s/test-real-cluster.sh"]
async fn kubectl_apply_k_is_accepted_by_the_api_server_in_a_dry_run() {
    let cluster = TestCluster::shared();
    let kubeconfig = cluster.kubeconfig().display().to_string();
    let dir = deploy_dir();
    // The Namespace first, for real, as README.md's `kubectl create namespace` does: a dry
    // run creates nothing, so the namespaced objects need it to exist. Its Pod Security
    // labels then judge the Deployment's pods.
    kubectl(&[
        "--kubeconfig",
        &kubeconfig,
        "apply",
        "-f",
        &dir.join("namespace.yaml").display().to_string(),
    ]);
    let applied = kubectl(&[
        "--kubeconfig",
        &kubeconfig,
        "apply",
        "-k",
        &dir.display().to_string(),
        "--dry-run=server",
        "--validate=strict",
    ]);
    let stdout = String::from_utf8_lossy(&applied.stdout);
    let stderr = String::from_utf8_lossy(&applied.stderr);
    for object in [
        "namespace/buildkite",
        "serviceaccount/jobify",
        "role.rbac.authorization.k8s.io/jobify",
        "rolebinding.rbac.authorization.k8s.io/jobify",
        "configmap/jobify-config-",
        "service/jobify-metrics",
        "deployment.apps/jobify",
        "poddisruptionbudget.policy/jobify",
    ] {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(object) && l.ends_with("(server dry run)")),
            "{object} not applied in the dry run:\n{stdout}\n{stderr}"
        );
    }
    assert!(
        !stderr.to_ascii_lowercase().contains("warning"),
        "the API server warned:\n{stderr}"
    );

    // The check has teeth: a pod the namespace's `restricted` level refuses is warned about.
    let privileged = std::env::temp_dir().join(format!(
        "jobify-deploy-privileged-{}.yaml",
        std::process::id()
    ));
    std::fs::write(
        &privileged,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: privileged, namespace: buildkite}\n\
         spec:\n  containers:\n  - name: c\n    image: busybox:1.36\n    \
         securityContext: {privileged: true}\n",
    )
    .expect("writing a manifest");
    let warned = kubectl(&[
        "--kubeconfig",
        &kubeconfig,
        "apply",
        "-f",
        &privileged.display().to_string(),
        "--dry-run=server",
    ]);
    let _ = std::fs::remove_file(&privileged);
    let stderr = String::from_utf8_lossy(&warned.stderr);
    assert!(
        stderr.contains("Warning") && stderr.contains("restricted"),
        "the namespace's Pod Security warn label is in force: {stderr}"
    );
}
