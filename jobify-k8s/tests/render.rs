//! Rendering jobs as Kubernetes Jobs, case by case; writes the manifest corpus that CI
//! validates against the Kubernetes 1.33 schemas (`.ci/validate-manifests`).

mod support;

use jobify_core::config::Validate;
use jobify_core::{AgentQueryRules, ScheduledJob, Template};
use jobify_k8s::config::KubernetesConfig;
use jobify_k8s::render::{
    RenderError, RenderOptions, agent_tags, pod_template_name, render_job, render_job_with,
    render_job_with_own_token, render_token_secret,
};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplate};
use pretty_assertions::assert_eq;
use serde_json::json;
use support::corpus::{self, config_with_classes, default_template, everything_job, podspec_job};
use support::fixtures::{JobExt, scheduled};

const CONTROLLER: &str = "jobify-test";

fn render(job: &ScheduledJob) -> Result<Job, RenderError> {
    render_job(
        job,
        &default_template(),
        &KubernetesConfig::default(),
        CONTROLLER,
    )
}

fn pod(job: &Job) -> &PodSpec {
    job.spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .expect("pod spec")
}

fn container<'a>(job: &'a Job, name: &str) -> &'a Container {
    pod(job)
        .containers
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no container {name}"))
}

fn env<'a>(container: &'a Container, name: &str) -> Option<&'a str> {
    container
        .env
        .iter()
        .flatten()
        .find(|e| e.name == name)
        .and_then(|e| e.value.as_deref())
}

fn names(spec: &PodSpec) -> Vec<&str> {
    spec.containers.iter().map(|c| c.name.as_str()).collect()
}

fn init_names(spec: &PodSpec) -> Vec<&str> {
    spec.init_containers
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect()
}

fn init_container<'a>(job: &'a Job, name: &str) -> &'a Container {
    pod(job)
        .init_containers
        .iter()
        .flatten()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no init container {name}"))
}

#[test]
fn default_job_runs_the_agent_for_exactly_this_job() {
    let job = scheduled("queue=kubernetes");
    let rendered = render(&job).expect("renders");
    let meta = &rendered.metadata;
    assert_eq!(
        meta.name.as_deref(),
        Some(format!("jobify-{}", job.id).as_str())
    );
    assert_eq!(meta.namespace.as_deref(), Some("buildkite"));
    let labels = meta.labels.as_ref().expect("labels");
    assert_eq!(labels["jobify.dev/controller"], CONTROLLER);
    assert_eq!(labels["jobify.dev/job-uuid"], job.id.to_string());
    assert_eq!(labels["jobify.dev/pipeline"], "app");
    assert_eq!(labels["jobify.dev/queue"], "kubernetes");
    let annotations = meta.annotations.as_ref().expect("annotations");
    assert_eq!(
        annotations["jobify.dev/build-url"],
        "https://buildkite.com/acme/app/builds/42"
    );
    assert_eq!(annotations["jobify.dev/branch"], "main");
    assert_eq!(annotations["jobify.dev/priority"], "0");

    let spec = rendered.spec.as_ref().expect("spec");
    // Three pods at most, and only for pods that died before any container exited non-zero.
    assert_eq!(spec.backoff_limit, Some(2));
    assert_eq!(spec.pod_replacement_policy.as_deref(), Some("Failed"));
    let rules = &spec
        .pod_failure_policy
        .as_ref()
        .expect("a pod failure policy")
        .rules;
    assert_eq!(rules.len(), 2);
    assert_eq!(rules[0].action, "Count");
    let conditions = rules[0].on_pod_conditions.as_ref().expect("on conditions");
    assert_eq!(conditions[0].type_, "DisruptionTarget");
    assert_eq!(rules[1].action, "FailJob");
    let exit_codes = rules[1].on_exit_codes.as_ref().expect("on exit codes");
    assert_eq!(
        (exit_codes.operator.as_str(), exit_codes.values.as_slice()),
        ("NotIn", &[0][..])
    );
    assert_eq!(spec.ttl_seconds_after_finished, Some(600));
    assert_eq!(spec.active_deadline_seconds, Some(6 * 3600));
    let pod_meta = spec.template.metadata.as_ref().expect("pod metadata");
    assert_eq!(pod_meta.labels.as_ref(), Some(labels));

    let pod = pod(&rendered);
    assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
    assert_eq!(pod.termination_grace_period_seconds, Some(60));
    assert_eq!(names(pod), ["agent"]);
    let agent = container(&rendered, "agent");
    assert_eq!(
        agent.args.as_deref(),
        Some(
            &[
                "start".to_owned(),
                "--acquire-job".to_owned(),
                job.id.to_string()
            ][..]
        )
    );
    assert_eq!(env(agent, "BUILDKITE_AGENT_TAGS"), Some("queue=kubernetes"));
    assert_eq!(env(agent, "BUILDKITE_KUBERNETES_EXEC"), None);
}

#[test]
fn agent_token_comes_from_a_secret_and_never_as_a_literal() {
    let rendered = render(&scheduled("queue=kubernetes")).expect("renders");
    let agent = container(&rendered, "agent");
    let token = agent
        .env
        .iter()
        .flatten()
        .find(|e| e.name == "BUILDKITE_AGENT_TOKEN")
        .expect("token variable");
    assert_eq!(token.value, None);
    let secret = token
        .value_from
        .as_ref()
        .and_then(|v| v.secret_key_ref.as_ref())
        .expect("secretKeyRef");
    assert_eq!(
        (secret.name.as_str(), secret.key.as_str()),
        ("buildkite-agent-token", "token")
    );
}

#[test]
fn a_literal_agent_token_from_a_pipeline_is_refused_without_repeating_it() {
    let patched = scheduled("queue=kubernetes").with_plugin(json!({
        "podSpecPatch": {"containers": [{"name": "agent",
            "env": [{"name": "BUILDKITE_AGENT_TOKEN", "value": "s3cr3t-token"}]}]}
    }));
    let sidecar = scheduled("queue=kubernetes").with_plugin(json!({
        "sidecars": [{"name": "helper", "image": "alpine",
            "env": [{"name": "BUILDKITE_AGENT_TOKEN", "value": "s3cr3t-token"}]}]
    }));
    for (case, job, path) in [
        (
            "podSpecPatch",
            patched,
            "containers[0] (`agent`) after podSpecPatch.env[0]",
        ),
        ("sidecars", sidecar, "initContainers[0] (`helper`).env[0]"),
    ] {
        let err = render(&job).expect_err(case);
        let message = err.to_string();
        assert!(message.starts_with(path), "{case}: {message}");
        assert!(message.contains("agent_token_secret"), "{case}: {message}");
        assert!(
            !format!("{message} {err:?}").contains("s3cr3t"),
            "{case}: {message}"
        );
    }
}

#[test]
fn wildcard_rules_become_concrete_tags_that_still_match_the_job() {
    let job = scheduled("queue=kubernetes,arch=*,os=linux-*");
    let tags = agent_tags(&job, &["cluster=prod".to_owned(), "queue=other".to_owned()]);
    assert_eq!(
        tags,
        ["queue=kubernetes", "arch=true", "os=linux-", "cluster=prod"]
    );
    let pairs: Vec<(&str, &str)> = tags.iter().filter_map(|t| t.split_once('=')).collect();
    assert!(job.rules.matched_by(pairs.iter().copied()));
    assert!(!tags.iter().any(|t| t.contains('*')));
}

#[test]
fn a_job_without_rules_gets_no_tags_from_them() {
    let mut job = scheduled("");
    job.rules = AgentQueryRules::default();
    assert!(agent_tags(&job, &[]).is_empty());
}

#[test]
fn podspec_jobs_get_agent_stack_k8s_layout() {
    let job = podspec_job();
    let rendered = render_job(
        &job,
        &Template::PodSpec,
        &KubernetesConfig::default(),
        CONTROLLER,
    )
    .expect("renders");
    let pod = pod(&rendered);
    assert_eq!(names(pod), ["agent", "checkout", "container-0", "lint"]);
    let init: Vec<&str> = pod
        .init_containers
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(init, ["copy-agent"]);
    assert!(
        pod.volumes
            .iter()
            .flatten()
            .any(|v| v.name == "workspace" && v.empty_dir.is_some())
    );

    let agent = container(&rendered, "agent");
    assert_eq!(env(agent, "BUILDKITE_KUBERNETES_EXEC"), Some("true"));
    assert_eq!(env(agent, "BUILDKITE_CONTAINER_COUNT"), Some("3"));
    let checkout = container(&rendered, "checkout");
    assert_eq!(env(checkout, "BUILDKITE_CONTAINER_ID"), Some("0"));
    assert_eq!(
        env(checkout, "BUILDKITE_BOOTSTRAP_PHASES"),
        Some("plugin,checkout")
    );
    let first = container(&rendered, "container-0");
    assert_eq!(env(first, "BUILDKITE_CONTAINER_ID"), Some("1"));
    assert_eq!(
        env(first, "BUILDKITE_BOOTSTRAP_PHASES"),
        Some("plugin,command")
    );
    assert_eq!(env(first, "BUILDKITE_COMMAND"), Some("cargo test --all"));
    assert_eq!(
        first.command.as_deref(),
        Some(&["/workspace/tini-static".to_owned()][..]),
        "tini is PID 1"
    );
    assert_eq!(
        first.args.as_deref(),
        Some(
            &[
                "--".to_owned(),
                "/workspace/buildkite-agent".to_owned(),
                "kubernetes-bootstrap".to_owned()
            ][..]
        )
    );
    assert_eq!(first.image.as_deref(), Some("rust:1.95"));
    let lint = container(&rendered, "lint");
    assert_eq!(env(lint, "BUILDKITE_CONTAINER_ID"), Some("2"));
    for c in &pod.containers {
        assert!(
            c.volume_mounts
                .iter()
                .flatten()
                .any(|m| m.mount_path == "/workspace"),
            "{} lacks the workspace",
            c.name
        );
    }
}

#[test]
fn a_podspec_container_without_command_runs_the_steps_command() {
    let job = scheduled("queue=kubernetes")
        .with_plugin(json!({"podSpec": {"containers": [{"image": "alpine"}]}}));
    let rendered = render(&job).expect("renders");
    assert_eq!(
        env(container(&rendered, "container-0"), "BUILDKITE_COMMAND"),
        Some("make test")
    );
}

#[test]
fn a_podspec_container_without_image_is_named_in_the_error() {
    let job = scheduled("queue=kubernetes").with_plugin(json!({
        "podSpec": {"containers": [{"image": "alpine"}, {"name": "b", "command": ["x"]}]}
    }));
    let err = render(&job).expect_err("no image");
    assert_eq!(err.to_string(), "podSpec.containers[1] has no image");
}

#[test]
fn a_misspelt_podspec_field_is_refused_not_dropped() {
    let job = scheduled("queue=kubernetes").with_plugin(json!({
        "podSpec": {"containers": [{"image": "alpine", "comand": ["x"]}]}
    }));
    let err = render(&job).expect_err("typo");
    assert_eq!(
        err,
        RenderError::UnknownField {
            path: "podSpec.containers[0].comand".to_owned()
        }
    );
}

#[test]
fn unsupported_plugin_keys_are_refused_by_name() {
    for (config, key) in [
        (
            json!({"commandParams": {"prependScript": "set -x"}}),
            "commandParams.prependScript",
        ),
        (
            json!({"checkout": {"gitMirrors": {"mirrorPath": "/mirrors"}}}),
            "checkout.gitMirrors.mirrorPath",
        ),
        (json!({"podSpecPatchh": {}}), "podSpecPatchh"),
    ] {
        let job = scheduled("queue=kubernetes").with_plugin(config);
        let err = render(&job).expect_err(key);
        assert!(
            matches!(&err, RenderError::UnsupportedKey { key: k, .. } if k == key),
            "{key}: {err:?}"
        );
        assert!(err.to_string().contains(&format!("`{key}`")), "{err}");
    }
}

#[test]
fn pod_spec_patch_merges_containers_by_name_after_the_controllers_patch() {
    let config = KubernetesConfig {
        pod_spec_patch: Some(json!({
            "priorityClassName": "ci",
            "containers": [{"name": "agent", "env": [{"name": "LEVEL", "value": "controller"}]}]
        })),
        ..KubernetesConfig::default()
    };
    let job = scheduled("queue=kubernetes").with_plugin(json!({
        "podSpecPatch": {
            "containers": [{"name": "agent", "env": [{"name": "LEVEL", "value": "job"}],
                            "resources": {"requests": {"cpu": "2"}}}],
            "serviceAccountName": "builder"
        }
    }));
    let rendered = render_job(&job, &default_template(), &config, CONTROLLER).expect("renders");
    let pod = pod(&rendered);
    assert_eq!(pod.priority_class_name.as_deref(), Some("ci"));
    assert_eq!(pod.service_account_name.as_deref(), Some("builder"));
    let agent = container(&rendered, "agent");
    assert_eq!(env(agent, "LEVEL"), Some("job"));
    assert_eq!(env(agent, "BUILDKITE_AGENT_TAGS"), Some("queue=kubernetes"));
    let requests = agent
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .expect("requests");
    assert_eq!(requests["cpu"].0, "2");
}

#[test]
fn a_patch_that_mounts_an_undefined_volume_is_refused() {
    let job = scheduled("queue=kubernetes").with_plugin(json!({
        "podSpecPatch": {"containers": [{"name": "agent",
            "volumeMounts": [{"name": "cache", "mountPath": "/cache"}]}]}
    }));
    let err = render(&job).expect_err("missing volume");
    assert_eq!(
        err.to_string(),
        "containers[0] (`agent`) after podSpecPatch.volumeMounts[0] mounts volume `cache`, \
         which the pod does not define under volumes"
    );
}

#[test]
fn a_patch_cannot_make_the_pod_restart() {
    let job = scheduled("queue=kubernetes")
        .with_plugin(json!({"podSpecPatch": {"restartPolicy": "OnFailure"}}));
    let err = render(&job).expect_err("restart policy");
    assert!(
        err.to_string()
            .starts_with("restartPolicy after podSpecPatch"),
        "{err}"
    );
}

#[test]
fn a_podspec_asking_for_restarts_is_refused_not_overridden() {
    let job = scheduled("queue=kubernetes").with_plugin(json!({
        "podSpec": {"restartPolicy": "OnFailure", "containers": [{"image": "alpine"}]}
    }));
    let err = render(&job).expect_err("restart policy");
    assert!(
        err.to_string()
            .starts_with("podSpec.restartPolicy is not valid"),
        "{err}"
    );
}

#[test]
fn sidecars_extra_mounts_and_git_env_from_are_added() {
    let job = scheduled("queue=kubernetes").with_plugin(json!({
        "podSpec": {
            "containers": [{"image": "alpine", "command": ["make"]}],
            "volumes": [{"name": "cache", "emptyDir": {}}]
        },
        "sidecars": [{"name": "redis", "image": "redis:7"}],
        "extraVolumeMounts": [{"name": "cache", "mountPath": "/cache"}],
        "gitEnvFrom": [{"secretRef": {"name": "git-creds"}}]
    }));
    let rendered = render(&job).expect("renders");
    let pod = pod(&rendered);
    assert_eq!(names(pod), ["agent", "checkout", "container-0"]);
    assert_eq!(init_names(pod), ["copy-agent", "redis"]);
    let sidecars = pod
        .init_containers
        .iter()
        .flatten()
        .filter(|c| c.name == "redis");
    for c in pod.containers.iter().chain(sidecars) {
        assert!(
            c.volume_mounts
                .iter()
                .flatten()
                .any(|m| m.mount_path == "/cache"),
            "{}",
            c.name
        );
    }
    let checkout = container(&rendered, "checkout");
    let from = checkout.env_from.as_ref().expect("envFrom");
    assert_eq!(
        from[0].secret_ref.as_ref().map(|s| s.name.as_str()),
        Some("git-creds")
    );
    assert_eq!(
        env(container(&rendered, "agent"), "BUILDKITE_CONTAINER_COUNT"),
        Some("2")
    );
}

#[test]
fn sidecars_are_native_sidecars_after_the_other_init_containers() {
    let sidecars = json!([
        {"name": "dind", "image": "docker:dind"},
        {"name": "postgres", "image": "postgres:17"}
    ]);
    let cases = [
        (
            "default pod",
            json!({"sidecars": sidecars}),
            vec!["dind", "postgres"],
            vec!["agent"],
        ),
        (
            "podSpec without init containers",
            json!({"podSpec": {"containers": [{"image": "alpine"}]}, "sidecars": sidecars}),
            vec!["copy-agent", "dind", "postgres"],
            vec!["agent", "checkout", "container-0"],
        ),
        (
            "podSpec with its own init containers",
            json!({
                "podSpec": {
                    "initContainers": [{"name": "migrate", "image": "alpine"}],
                    "containers": [{"image": "alpine"}]
                },
                "sidecars": sidecars
            }),
            vec!["copy-agent", "migrate", "dind", "postgres"],
            vec!["agent", "checkout", "container-0"],
        ),
    ];
    for (case, plugin, init, regular) in cases {
        let rendered = render(&scheduled("queue=kubernetes").with_plugin(plugin)).expect(case);
        let pod = pod(&rendered);
        assert_eq!(init_names(pod), init, "{case}: init containers, in order");
        assert_eq!(
            names(pod),
            regular,
            "{case}: sidecars are not regular containers"
        );
        for c in pod.init_containers.iter().flatten() {
            let sidecar = ["dind", "postgres"].contains(&c.name.as_str());
            assert_eq!(
                c.restart_policy.as_deref(),
                sidecar.then_some("Always"),
                "{case}: {}",
                c.name
            );
            assert_eq!(jobify_k8s::render::is_native_sidecar(c), sidecar, "{case}");
        }
        assert_eq!(pod.restart_policy.as_deref(), Some("Never"), "{case}");
    }
}

#[test]
fn unnamed_sidecars_are_named_by_their_place_as_agent_stack_k8s_pipelines_expect() {
    let job = scheduled("queue=kubernetes").with_plugin(json!({"sidecars": [
        {"image": "nginx:latest"},
        {"name": "db", "image": "postgres:17"},
        {"image": "redis:7"}
    ]}));
    let rendered = render(&job).expect("renders");
    assert_eq!(init_names(pod(&rendered)), ["sidecar-0", "db", "sidecar-2"]);
}

#[test]
fn a_sidecar_without_image_is_named() {
    let job = scheduled("queue=kubernetes").with_plugin(json!({"sidecars": [{"name": "x"}]}));
    assert_eq!(
        render(&job).expect_err("no image").to_string(),
        "sidecars[0] has no image"
    );
}

#[test]
fn checkout_skip_drops_the_checkout_container() {
    let job = scheduled("queue=kubernetes").with_plugin(json!({
        "podSpec": {"containers": [{"image": "alpine"}]},
        "checkout": {"skip": true}
    }));
    let rendered = render(&job).expect("renders");
    assert_eq!(names(pod(&rendered)), ["agent", "container-0"]);
    assert_eq!(
        env(container(&rendered, "agent"), "BUILDKITE_CONTAINER_COUNT"),
        Some("1")
    );
    assert_eq!(
        env(
            container(&rendered, "container-0"),
            "BUILDKITE_CONTAINER_ID"
        ),
        Some("0")
    );
}

#[test]
fn podspec_patch_sidecars_and_a_resource_class_combine() {
    let (job, config) = everything_job();
    let rendered = render_job(&job, &Template::PodSpec, &config, CONTROLLER).expect("renders");
    let pod = pod(&rendered);
    assert_eq!(names(pod), ["agent", "checkout", "build"]);
    assert_eq!(init_names(pod), ["copy-agent", "redis"]);
    assert_eq!(pod.priority_class_name.as_deref(), Some("ci"));
    assert_eq!(
        pod.node_selector.as_ref().map(|s| s["pool"].as_str()),
        Some("large")
    );
    let build = container(&rendered, "build");
    assert_eq!(
        env(build, "LEVEL"),
        Some("job"),
        "the job's patch applies last"
    );
    assert_eq!(env(build, "BUILDKITE_COMMAND"), Some("make"));
    let resources = build.resources.as_ref().expect("resources");
    let requests = resources.requests.as_ref().expect("class requests");
    let limits = resources.limits.as_ref().expect("limits");
    assert_eq!(requests["cpu"].0, "4", "from the resource class");
    assert_eq!(limits["memory"].0, "8Gi", "from the resource class");
    assert_eq!(limits["cpu"].0, "8", "from the job's patch");
    let redis = init_container(&rendered, "redis");
    assert!(
        redis
            .volume_mounts
            .iter()
            .flatten()
            .any(|m| m.name == "workspace"),
        "sidecars share the workspace"
    );
}

#[test]
fn a_class_s_pod_level_resources_yield_to_the_pod_spec_s_own() {
    let mut config = config_with_classes();
    let large = config.resource_classes.get_mut("large").expect("large");
    large.pod_requests = [("cpu", "2"), ("memory", "1Gi")]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .into();
    large.pod_limits = [("memory".to_owned(), "2Gi".to_owned())].into();
    let job = scheduled("queue=kubernetes,resource_class=large").with_plugin(json!({"podSpec": {
        "resources": {"requests": {"cpu": "1"}},
        "containers": [{"image": "rust:1.95", "command": ["cargo test"]}]
    }}));
    let rendered = render_job(&job, &Template::PodSpec, &config, CONTROLLER).expect("renders");
    let resources = pod(&rendered).resources.as_ref().expect("pod resources");
    let requests = resources.requests.as_ref().expect("requests");
    assert_eq!(requests["cpu"].0, "1", "the pod spec's own");
    assert_eq!(requests["memory"].0, "1Gi", "the class's");
    assert_eq!(
        resources.limits.as_ref().expect("limits")["memory"].0,
        "2Gi"
    );

    let plain =
        render_job(&podspec_job(), &Template::PodSpec, &config, CONTROLLER).expect("renders");
    assert_eq!(
        pod(&plain).resources,
        None,
        "no class, no pod-level resources"
    );
}

#[test]
fn a_named_resource_class_sizes_the_agent_and_picks_nodes() {
    let template = Template::Default {
        name: Some("large".to_owned()),
    };
    let rendered = render_job(
        &scheduled("queue=kubernetes"),
        &template,
        &config_with_classes(),
        CONTROLLER,
    )
    .expect("renders");
    let resources = container(&rendered, "agent")
        .resources
        .as_ref()
        .expect("resources");
    assert_eq!(
        resources.requests.as_ref().expect("requests")["memory"].0,
        "8Gi"
    );
    let selector = pod(&rendered).node_selector.as_ref().expect("nodeSelector");
    assert_eq!(selector["pool"], "large");
    assert_eq!(selector["kubernetes.io/os"], "linux");
}

#[test]
fn an_unknown_resource_class_is_an_error() {
    let template = Template::Default {
        name: Some("huge".to_owned()),
    };
    let err = render_job(
        &scheduled("queue=k"),
        &template,
        &config_with_classes(),
        CONTROLLER,
    )
    .expect_err("unknown class");
    assert_eq!(
        err,
        RenderError::UnknownResourceClass {
            name: "huge".to_owned()
        }
    );
}

#[test]
fn label_unsafe_names_are_sanitised_and_kept_verbatim_in_annotations() {
    let job = scheduled("queue=GPU large/fast").on_pipeline(&format!("{}!", "p".repeat(80)));
    let rendered = render(&job).expect("renders");
    let labels = rendered.metadata.labels.as_ref().expect("labels");
    assert_eq!(labels["jobify.dev/pipeline"], "p".repeat(63));
    assert_eq!(labels["jobify.dev/queue"], "GPU_large_fast");
    let annotations = rendered.metadata.annotations.as_ref().expect("annotations");
    assert_eq!(annotations["jobify.dev/queue"], "GPU large/fast");
    assert_eq!(annotations["jobify.dev/pipeline"], job.pipeline);
}

#[test]
fn plugin_metadata_is_added_but_cannot_take_jobify_keys() {
    let job = scheduled("queue=k").with_plugin(json!({
        "metadata": {"labels": {"team": "ci"}, "annotations": {"owner": "ci@acme"}}
    }));
    let rendered = render(&job).expect("renders");
    assert_eq!(
        rendered.metadata.labels.as_ref().expect("labels")["team"],
        "ci"
    );
    let pod_meta = rendered
        .spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .expect("meta");
    assert_eq!(
        pod_meta.annotations.as_ref().expect("annotations")["owner"],
        "ci@acme"
    );

    let job = scheduled("queue=k")
        .with_plugin(json!({"metadata": {"labels": {"jobify.dev/controller": "other"}}}));
    assert!(matches!(
        render(&job),
        Err(RenderError::ReservedMetadata { kind: "labels", .. })
    ));
}

#[test]
fn job_active_deadline_seconds_overrides_the_configured_deadline() {
    let job = scheduled("queue=k").with_plugin(json!({"jobActiveDeadlineSeconds": 120}));
    let rendered = render(&job).expect("renders");
    assert_eq!(
        rendered
            .spec
            .as_ref()
            .and_then(|s| s.active_deadline_seconds),
        Some(120)
    );
    let job = scheduled("queue=k").with_plugin(json!({"jobActiveDeadlineSeconds": 0}));
    assert!(render(&job).is_err());
}

#[test]
fn job_names_fit_a_dns_label_with_the_longest_prefix() {
    let config = KubernetesConfig {
        job_name_prefix: "a".repeat(27),
        ..KubernetesConfig::default()
    };
    assert!(config.validate().is_empty());
    let rendered = render_job(
        &scheduled("queue=k"),
        &default_template(),
        &config,
        CONTROLLER,
    )
    .expect("renders");
    assert_eq!(rendered.metadata.name.as_deref().map(str::len), Some(63));
}

/// Writes every interesting rendering to `target/manifests/` for `kubernetes-validate`.
#[test]
fn writes_the_manifest_corpus() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/manifests");
    std::fs::create_dir_all(dir).expect("create corpus dir");
    for (name, job, template, config) in corpus::cases() {
        let rendered = render_job(&job, &template, &config, CONTROLLER)
            .unwrap_or_else(|err| panic!("{name}: {err}"));
        let mut value = serde_json::to_value(&rendered).expect("json");
        // k8s-openapi serialises apiVersion and kind; make sure of it for the validator.
        assert_eq!(value["apiVersion"], "batch/v1", "{name}");
        assert_eq!(value["kind"], "Job", "{name}");
        value.as_object_mut().expect("object").remove("status");
        let yaml = jobify_k8s::manifest::to_yaml(&value).expect("yaml");
        std::fs::write(format!("{dir}/{name}.yaml"), yaml).expect("write manifest");
    }
    // A job with its own agent token: its Job, and the Secret holding the token.
    for (name, job, template, config) in corpus::token_cases() {
        let rendered = render_job_with_own_token(&job, &template, &config, CONTROLLER)
            .unwrap_or_else(|err| panic!("{name}: {err}"));
        let secret = render_token_secret(&rendered, &corpus::corpus_token());
        for (file, value) in [
            (
                name.to_owned(),
                serde_json::to_value(&rendered).expect("json"),
            ),
            (
                format!("{name}-secret"),
                serde_json::to_value(&secret).expect("json"),
            ),
        ] {
            let mut value = value;
            value.as_object_mut().expect("object").remove("status");
            assert!(
                value["apiVersion"].is_string() && value["kind"].is_string(),
                "{file}"
            );
            let yaml = jobify_k8s::manifest::to_yaml(&value).expect("yaml");
            std::fs::write(format!("{dir}/{file}.yaml"), yaml).expect("write manifest");
        }
    }
}

fn own_token(job: &ScheduledJob, template: &Template) -> Result<Job, RenderError> {
    render_job_with_own_token(job, template, &KubernetesConfig::default(), CONTROLLER)
}

/// The Secret each container reads its `BUILDKITE_AGENT_TOKEN` from, and every Secret any
/// container reads, by container.
fn secret_refs(spec: &PodSpec) -> Vec<(String, Vec<String>)> {
    spec.init_containers
        .iter()
        .flatten()
        .chain(&spec.containers)
        .map(|c| {
            let env =
                c.env.iter().flatten().filter_map(|v| {
                    Some(v.value_from.as_ref()?.secret_key_ref.as_ref()?.name.clone())
                });
            let from = c
                .env_from
                .iter()
                .flatten()
                .filter_map(|f| Some(f.secret_ref.as_ref()?.name.clone()));
            (c.name.clone(), env.chain(from).collect())
        })
        .collect()
}

#[test]
fn a_job_with_its_own_token_reads_it_from_its_secret_in_the_agent_alone() {
    for template in [default_template(), Template::PodSpec] {
        let job = podspec_job().with_plugin(json!({
            "podSpec": {"containers": [{"image": "alpine", "command": ["make"]}]},
            "sidecars": [{"name": "redis", "image": "redis:7"}],
            "gitEnvFrom": [{"secretRef": {"name": "git-creds"}}]
        }));
        let rendered = own_token(&job, &template).expect("renders");
        let name = format!("jobify-{}", job.id);
        let own = format!("{name}-token");
        assert_eq!(
            rendered.metadata.annotations.as_ref().expect("annotations")["jobify.dev/agent-token-secret"],
            own
        );
        let agent = container(&rendered, "agent");
        let token = agent
            .env
            .iter()
            .flatten()
            .find(|v| v.name == "BUILDKITE_AGENT_TOKEN")
            .and_then(|v| v.value_from.as_ref()?.secret_key_ref.clone())
            .expect("the agent's token from a Secret");
        assert_eq!(token.name, own);
        assert_eq!(token.key, "BUILDKITE_AGENT_TOKEN");
        for (container, read) in secret_refs(pod(&rendered)) {
            let wanted: Vec<String> = match container.as_str() {
                "agent" => vec![own.clone()],
                "checkout" | "redis" | "container-0" => vec!["git-creds".to_owned()],
                _ => Vec::new(),
            };
            assert_eq!(read, wanted, "{container}");
        }
        let text = serde_json::to_string(&rendered).expect("json");
        assert!(!text.contains("buildkite-agent-token"), "{text}");
        // Everything else is the Job `render_job` makes.
        let mut shared = render(&job).expect("renders");
        if template == Template::PodSpec {
            shared = render_job(&job, &template, &KubernetesConfig::default(), CONTROLLER)
                .expect("renders");
        }
        assert_eq!(
            shared.spec.as_ref().map(|s| &s.template.metadata),
            rendered.spec.as_ref().map(|s| &s.template.metadata)
        );
    }
}

#[test]
fn the_token_secret_is_immutable_labelled_like_its_job_and_holds_only_the_token() {
    let job = scheduled("queue=kubernetes").with_plugin(json!({
        "metadata": {"labels": {"team": "ci"}}
    }));
    let rendered = own_token(&job, &default_template()).expect("renders");
    let token = corpus::corpus_token();
    let secret = render_token_secret(&rendered, &token);
    assert_eq!(
        secret.metadata.name.as_deref(),
        Some(format!("jobify-{}-token", job.id).as_str())
    );
    assert_eq!(secret.metadata.namespace, rendered.metadata.namespace);
    assert_eq!(secret.immutable, Some(true));
    assert_eq!(
        secret.metadata.owner_references, None,
        "owned once the Job exists"
    );
    let labels = secret.metadata.labels.clone().expect("labels");
    assert_eq!(labels["jobify.dev/controller"], CONTROLLER);
    assert_eq!(labels["jobify.dev/job-uuid"], job.id.to_string());
    assert!(
        !labels.contains_key("team"),
        "only jobify's labels: {labels:?}"
    );
    let data = secret.data.expect("data");
    assert_eq!(data.len(), 1);
    assert_eq!(
        data["BUILDKITE_AGENT_TOKEN"].0,
        secrecy::ExposeSecret::expose_secret(&token).as_bytes()
    );
}

#[test]
fn a_token_job_whose_pod_would_read_the_shared_token_or_share_its_own_is_refused() {
    let id = scheduled("queue=kubernetes").id;
    let own = format!("jobify-{id}-token");
    let refused = [
        (
            json!({"podSpecPatch": {"containers": [{"name": "agent", "env": [
                {"name": "BUILDKITE_AGENT_TOKEN", "valueFrom": {"secretKeyRef":
                    {"name": "buildkite-agent-token", "key": "token"}}}]}]}}),
            "containers[0] (`agent`) after podSpecPatch.env[0] (BUILDKITE_AGENT_TOKEN) is not \
             valid: refers to the Secret `buildkite-agent-token`, the cluster's shared agent token",
        ),
        (
            json!({"podSpecPatch": {"containers": [{"name": "agent", "env": [
                {"name": "BUILDKITE_AGENT_TOKEN", "valueFrom": {"secretKeyRef":
                    {"name": "elsewhere", "key": "token"}}}]}]}}),
            "changes where the agent reads its token",
        ),
        (
            json!({"sidecars": [{"name": "spy", "image": "alpine", "envFrom": [
                {"secretRef": {"name": "buildkite-agent-token"}}]}]}),
            "refers to the Secret `buildkite-agent-token`, the cluster's shared agent token",
        ),
        (
            json!({"podSpec": {"containers": [{"image": "alpine", "command": ["make"], "env": [
                {"name": "T", "valueFrom": {"secretKeyRef": {"name": own, "key": "BUILDKITE_AGENT_TOKEN"}}}]}]}}),
            "only the `agent` container may read it",
        ),
        (
            json!({"podSpec": {"containers": [{"image": "alpine", "command": ["make"],
                    "volumeMounts": [{"name": "t", "mountPath": "/t"}]}],
                   "volumes": [{"name": "t", "secret": {"secretName": "buildkite-agent-token"}}]}}),
            "volumes[0] (`t`).secret.secretName is not valid: refers to the Secret `buildkite-agent-token`",
        ),
    ];
    for (plugin, expected) in refused {
        let job = scheduled("queue=kubernetes")
            .with_id(id.0)
            .with_plugin(plugin.clone());
        let err = own_token(&job, &Template::PodSpec).expect_err(&plugin.to_string());
        assert!(err.to_string().contains(expected), "{plugin}: {err}");
        // Only a job with its own token is held to this.
        render_job(
            &job,
            &Template::PodSpec,
            &KubernetesConfig::default(),
            CONTROLLER,
        )
        .unwrap_or_else(|err| panic!("{plugin}: {err}"));
    }
}

#[test]
fn hostile_plugin_configurations_are_errors_never_panics() {
    let refused = [
        json!({"podSpec": {"containers": [{}]}}),
        json!({"podSpec": {"containers": [{"name": "agent", "image": "x"}]}}),
        json!({"podSpec": {"containers": [{"image": "x", "env": [{"name": "A", "valueFrom": 3}]}]}}),
        json!({"podSpec": {"containers": [{"image": "x"}], "restartPolicy": 7}}),
        json!({"podSpecPatch": {"$patch": "replace"}}),
        json!({"podSpecPatch": {"containers": null}}),
        json!({"podSpecPatch": {"containers": [{"name": "agent", "$patch": "delete"}]}}),
        json!({"podSpecPatch": {"containers": [{"name": "agent", "command": ["sleep"]}]}}),
        json!({"podSpecPatch": {"containers": [{"name": "agent", "args": ["start"]}]}}),
        json!({"podSpecPatch": {"containers": "agent"}}),
        json!({"podSpecPatch": {"volumes": [{"name": 1}]}}),
        json!({"podSpecPatch": {"containers": [{"name": "agent", "env": {"A": "b"}}]}}),
        json!({"sidecars": {"name": "x"}}),
        json!({"extraVolumeMounts": [{"name": "missing", "mountPath": "/m"}]}),
        json!({"metadata": {"labels": {"a": "not a label value!"}}}),
        json!({"metadata": {"annotations": {"jobify.dev/job-uuid": "x"}}}),
        json!({"checkout": {"skip": "yes"}}),
        json!({"jobActiveDeadlineSeconds": -1}),
        json!({"commandParams": {"interposer": "fancy"}}),
        json!({"commandParams": {"interposer": 3}}),
        json!({"commandParams": {"envFrom": {"secretRef": {"name": "x"}}}}),
        json!({"commandParams": "vector"}),
        json!("podSpec"),
    ];
    for plugin in refused {
        let job = scheduled("queue=kubernetes").with_plugin(plugin.clone());
        for template in [default_template(), Template::PodSpec] {
            let rendered = std::panic::catch_unwind(|| {
                render_job(&job, &template, &KubernetesConfig::default(), CONTROLLER)
            })
            .unwrap_or_else(|_| panic!("{plugin} panicked"));
            assert!(
                rendered.is_err(),
                "{plugin} with {template:?} rendered: {rendered:?}"
            );
        }
    }
}

#[test]
fn a_patch_that_removes_the_agent_or_changes_its_command_is_refused() {
    let removed = scheduled("queue=kubernetes").with_plugin(json!({
        "podSpecPatch": {"containers": [{"name": "agent", "$patch": "delete"}]}
    }));
    assert_eq!(
        render(&removed).expect_err("no agent").to_string(),
        "containers after podSpecPatch is not valid: has no `agent` container; it acquires and \
         runs the job, so patch its fields but do not remove it"
    );
    let command = scheduled("queue=kubernetes").with_plugin(json!({
        "podSpecPatch": {"containers": [{"name": "agent", "command": ["sleep", "infinity"]}]}
    }));
    let err = render(&command).expect_err("agent command changed");
    assert!(
        err.to_string().starts_with(
            "containers[0] (`agent`) after podSpecPatch is not valid: changes the command"
        ),
        "{err}"
    );
}

#[test]
fn a_pod_template_must_be_fetched_and_be_the_one_named() {
    let job = scheduled("queue=kubernetes").with_plugin(json!({"podTemplate": "builder"}));
    assert_eq!(pod_template_name(&job), Some("builder"));
    let not_given = RenderError::PodTemplateNotGiven {
        name: "builder".to_owned(),
    };
    assert_eq!(render(&job).expect_err("not fetched"), not_given);
    let other: PodTemplate =
        serde_json::from_value(json!({"metadata": {"name": "other"}})).expect("a PodTemplate");
    let options = RenderOptions {
        own_token: false,
        pod_template: Some(&other),
    };
    let config = KubernetesConfig::default();
    assert_eq!(
        render_job_with(&job, &default_template(), &config, "jobify", options)
            .expect_err("another PodTemplate"),
        not_given
    );

    let with_pod_spec =
        scheduled("queue=kubernetes").with_plugin(json!({"podTemplate": "builder", "podSpec": {}}));
    assert_eq!(pod_template_name(&with_pod_spec), None, "podSpec wins");
    assert!(render(&with_pod_spec).is_ok());
}

#[test]
fn a_pod_template_name_that_no_object_can_have_is_refused() {
    let job = scheduled("queue=kubernetes").with_plugin(json!({"podTemplate": "Big Pods"}));
    let err = render(&job).expect_err("not an object name");
    assert!(
        matches!(&err, RenderError::InvalidField { path, message }
            if path == "podTemplate" && message.contains("`Big Pods`")),
        "{err}"
    );
}
