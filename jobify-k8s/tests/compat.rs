//! The agent-stack-k8s compatibility corpus: pipelines written for Buildkite's own controller,
//! one row per plugin example (agent-stack-k8s' `internal/integration/fixtures/*.yaml` and its
//! scheduler tests) or controller setting, with what the rendered pod must have there. A row
//! says a step's env (its `kubernetes` plugin, `image:`, agent query rules, command), the
//! configuration, and the properties of the pod: the script each command container runs
//! (`BUILDKITE_COMMAND`), images, native sidecars, volumes and mounts, labels and annotations.
//!
//! Every rendering is also written to `target/manifests/compat-<row>.yaml`, which
//! `.ci/validate-manifests` checks against the Kubernetes schema.
//!
//! docs/kubernetes.md ("agent-stack-k8s compatibility") lists every key with jobify's
//! behaviour; each row names the key it covers.

mod support;

use std::collections::BTreeMap;

use jobify_k8s::config::KubernetesConfig;
use jobify_k8s::render::{Interposer, render_job};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Container, PodSpec};
use serde_json::json;
use support::compat::{Want, Want::*, plugin, rows, step, template, with_classes};

fn pod(job: &Job) -> &PodSpec {
    job.spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .expect("a pod spec")
}

fn any_container<'a>(job: &'a Job, name: &str) -> Option<&'a Container> {
    let spec = pod(job);
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .find(|c| c.name == name)
}

fn env_value<'a>(container: &'a Container, name: &str) -> Option<&'a str> {
    container
        .env
        .iter()
        .flatten()
        .find(|e| e.name == name)
        .and_then(|e| e.value.as_deref())
}

/// What is wrong with `job` for `want`, if anything.
fn check(job: &Job, want: &Want) -> Option<String> {
    let container = |name: &str| any_container(job, name);
    let missing = |name: &str| Some(format!("no container `{name}`"));
    let spec = pod(job);
    let job_meta = &job.metadata;
    let pod_meta = job.spec.as_ref().and_then(|s| s.template.metadata.as_ref());
    let both = |pick: fn(
        &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    ) -> Option<&BTreeMap<String, String>>,
                key: &str| {
        let on_job = pick(job_meta).and_then(|m| m.get(key)).cloned();
        let on_pod = pod_meta.and_then(pick).and_then(|m| m.get(key)).cloned();
        (on_job, on_pod)
    };
    match want {
        Containers(names) => {
            let got: Vec<&str> = spec.containers.iter().map(|c| c.name.as_str()).collect();
            (got != *names).then(|| format!("containers are {got:?}"))
        }
        NativeSidecars(names) => {
            let got: Vec<&str> = spec
                .init_containers
                .iter()
                .flatten()
                .filter(|c| jobify_k8s::render::is_native_sidecar(c))
                .map(|c| c.name.as_str())
                .collect();
            (got != *names).then(|| format!("native sidecars are {got:?}"))
        }
        Script(name, script) => match container(name) {
            None => missing(name),
            Some(c) => {
                let got = env_value(c, "BUILDKITE_COMMAND");
                let bootstrap = ["/workspace/buildkite-agent", "kubernetes-bootstrap"];
                let bootstrap = match (c.command.as_deref(), c.args.as_deref()) {
                    (Some(cmd), None) => cmd == bootstrap,
                    (Some(cmd), Some(args)) => {
                        cmd == ["/workspace/tini-static"]
                            && args[..1] == ["--"]
                            && args[1..] == bootstrap
                    }
                    _ => false,
                };
                if got != Some(script) {
                    Some(format!("`{name}` runs {got:?}"))
                } else if !bootstrap {
                    Some(format!(
                        "`{name}` does not run the agent's bootstrap: {:?} {:?}",
                        c.command, c.args
                    ))
                } else {
                    None
                }
            }
        },
        Image(name, image) => match container(name) {
            None => missing(name),
            Some(c) => (c.image.as_deref() != Some(image))
                .then(|| format!("`{name}` has image {:?}", c.image)),
        },
        EnvFromSecret(name, secret) => match container(name) {
            None => missing(name),
            Some(c) => (!c
                .env_from
                .iter()
                .flatten()
                .any(|s| s.secret_ref.as_ref().is_some_and(|r| r.name == *secret)))
            .then(|| format!("`{name}` has envFrom {:?}", c.env_from)),
        },
        EnvFromConfigMap(name, map) => match container(name) {
            None => missing(name),
            Some(c) => (!c
                .env_from
                .iter()
                .flatten()
                .any(|s| s.config_map_ref.as_ref().is_some_and(|r| r.name == *map)))
            .then(|| format!("`{name}` has envFrom {:?}", c.env_from)),
        },
        NoEnvFrom(name) => match container(name) {
            None => missing(name),
            Some(c) => c
                .env_from
                .as_ref()
                .map(|sources| format!("`{name}` has envFrom {sources:?}")),
        },
        Mount(name, path) | NoMount(name, path) => match container(name) {
            None => missing(name),
            Some(c) => {
                let count = c
                    .volume_mounts
                    .iter()
                    .flatten()
                    .filter(|m| m.mount_path == *path)
                    .count();
                let wanted = usize::from(matches!(want, Mount(..)));
                (count != wanted).then(|| format!("`{name}` mounts {path} {count} times"))
            }
        },
        MountOf(name, path, volume) => match container(name) {
            None => missing(name),
            Some(c) => {
                let got: Vec<&str> = c
                    .volume_mounts
                    .iter()
                    .flatten()
                    .filter(|m| m.mount_path == *path)
                    .map(|m| m.name.as_str())
                    .collect();
                (got != [*volume]).then(|| format!("`{name}` mounts {got:?} at {path}"))
            }
        },
        Env(name, var, value) => match container(name) {
            None => missing(name),
            Some(c) => (env_value(c, var) != Some(value))
                .then(|| format!("`{name}` has {var}={:?}", env_value(c, var))),
        },
        NoEnv(name, var) => match container(name) {
            None => missing(name),
            Some(c) => c
                .env
                .iter()
                .flatten()
                .any(|e| e.name == *var)
                .then(|| format!("`{name}` has {var}")),
        },
        VolumeSource(name, source) => {
            let volume = spec.volumes.iter().flatten().find(|v| v.name == *name);
            let json = volume.map(|v| serde_json::to_value(v).expect("json"));
            match json {
                None => Some(format!("no volume `{name}`")),
                Some(v) => v
                    .get(source)
                    .is_none()
                    .then(|| format!("volume `{name}` is {v}")),
            }
        }
        SubPathExpr(name, path, expr) => match container(name) {
            None => missing(name),
            Some(c) => {
                let got: Vec<Option<&str>> = c
                    .volume_mounts
                    .iter()
                    .flatten()
                    .filter(|m| m.mount_path == *path)
                    .map(|m| m.sub_path_expr.as_deref())
                    .collect();
                (got != [Some(*expr)]).then(|| format!("`{name}` mounts {path} with {got:?}"))
            }
        },
        Volume(name) => (!spec.volumes.iter().flatten().any(|v| v.name == *name))
            .then(|| format!("no volume `{name}`")),
        NoVolume(name) => spec
            .volumes
            .iter()
            .flatten()
            .any(|v| v.name == *name)
            .then(|| format!("a volume `{name}`")),
        SecretVolume(name, secret) => {
            let volume = spec.volumes.iter().flatten().find(|v| v.name == *name);
            let got = volume
                .and_then(|v| v.secret.as_ref())
                .and_then(|s| s.secret_name.as_deref());
            (got != Some(secret)).then(|| format!("volume `{name}` is of Secret {got:?}"))
        }
        ShellLine(name, line) => match container(name) {
            None => missing(name),
            Some(c) => {
                let shell = c
                    .command
                    .as_deref()
                    .is_some_and(|cmd| cmd == ["/bin/sh", "-c"]);
                let script = c.args.as_deref().and_then(|args| args.first());
                (!shell || !script.is_some_and(|s| s.lines().any(|l| l == *line)))
                    .then(|| format!("`{name}` runs {:?} {:?}", c.command, c.args))
            }
        },
        Label(key, value) => {
            let (on_job, on_pod) = both(|m| m.labels.as_ref(), key);
            (on_job.as_deref() != Some(value) || on_pod.as_deref() != Some(value))
                .then(|| format!("label {key} is {on_job:?} on the Job, {on_pod:?} on the pod"))
        }
        Limit(name, resource, quantity) => match container(name) {
            None => missing(name),
            Some(c) => {
                let got = c
                    .resources
                    .as_ref()
                    .and_then(|r| r.limits.as_ref())
                    .and_then(|l| l.get(*resource))
                    .map(|q| q.0.as_str());
                (got != Some(quantity)).then(|| format!("`{name}` limits {resource} to {got:?}"))
            }
        },
        UnderTini(name, under) => match container(name) {
            None => missing(name),
            Some(c) => {
                let pid1 = c.command.as_ref().and_then(|cmd| cmd.first());
                (pid1.is_some_and(|p| p == "/workspace/tini-static") != *under)
                    .then(|| format!("`{name}` runs {:?} {:?}", c.command, c.args))
            }
        },
        RunsLine(name, line) => match container(name) {
            None => missing(name),
            Some(c) => {
                let args = c.args.iter().flatten();
                (!args.clone().any(|s| s.lines().any(|l| l.trim() == *line)))
                    .then(|| format!("`{name}` runs {:?} {:?}", c.command, c.args))
            }
        },
        NoLineWith(name, text) => match container(name) {
            None => missing(name),
            Some(c) => c
                .args
                .iter()
                .flatten()
                .any(|s| s.contains(*text))
                .then(|| format!("`{name}` runs {:?}", c.args)),
        },
        RunsAs(name, user) => match container(name) {
            None => missing(name),
            Some(c) => {
                let own = c.security_context.as_ref().and_then(|s| s.run_as_user);
                let pod_user = spec.security_context.as_ref().and_then(|s| s.run_as_user);
                (own.or(pod_user) != *user)
                    .then(|| format!("`{name}` runs as {own:?} (the pod as {pod_user:?})"))
            }
        },
        PodResource(kind, resource, quantity) => {
            let resources = spec.resources.as_ref();
            let list = match *kind {
                "requests" => resources.and_then(|r| r.requests.as_ref()),
                _ => resources.and_then(|r| r.limits.as_ref()),
            };
            let got = list.and_then(|l| l.get(*resource)).map(|q| q.0.as_str());
            (got != Some(quantity)).then(|| format!("the pod's {kind} of {resource} is {got:?}"))
        }
        ActiveDeadline(seconds) => {
            let got = job.spec.as_ref().and_then(|s| s.active_deadline_seconds);
            (got != Some(*seconds)).then(|| format!("activeDeadlineSeconds is {got:?}"))
        }
        NodeSelector(key, value) => {
            let got = spec.node_selector.as_ref().and_then(|s| s.get(*key));
            (got.map(String::as_str) != Some(value))
                .then(|| format!("nodeSelector {key} is {got:?}"))
        }
        Annotation(key, value) => {
            let (on_job, on_pod) = both(|m| m.annotations.as_ref(), key);
            (on_job.as_deref() != Some(value) || on_pod.as_deref() != Some(value)).then(|| {
                format!("annotation {key} is {on_job:?} on the Job, {on_pod:?} on the pod")
            })
        }
    }
}

/// Every shell script jobify gives a container (`/bin/sh -c` or `-ec`, its own or a nested
/// one it hands to `su`) parses: `sh -n` reads it without running it.
fn shell_syntax_problems(job: &Job, checked: &mut usize) -> Vec<String> {
    let spec = pod(job);
    let mut problems = Vec::new();
    for c in spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
    {
        let command: Vec<&str> = c.command.iter().flatten().map(String::as_str).collect();
        if !matches!(command.as_slice(), ["/bin/sh", "-c" | "-ec"]) {
            continue;
        }
        let args = c.args.as_deref().unwrap_or_default();
        // The script, and the one it runs as another user (`jobify-checkout` is its `$0`).
        let scripts = args.first().into_iter().chain(args.get(2));
        for script in scripts {
            *checked += 1;
            let out = std::process::Command::new("/bin/sh")
                .args(["-n", "-c", script])
                .output()
                .expect("run /bin/sh");
            if !out.status.success() {
                problems.push(format!(
                    "`{}` runs a script /bin/sh cannot read ({}): {script}",
                    c.name,
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
        }
    }
    problems
}

#[test]
fn pipelines_written_for_agent_stack_k8s_render_as_there() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/manifests");
    std::fs::create_dir_all(dir).expect("create corpus dir");
    let mut failures = Vec::new();
    let rows = rows();
    let mut names = std::collections::BTreeSet::new();
    let mut scripts = 0;
    for row in &rows {
        assert!(names.insert(row.name), "two rows named {}", row.name);
        let rendered = match support::compat::render(row, "compat") {
            Ok(job) => job,
            Err(err) => {
                failures.push(format!(
                    "{} ({}): not rendered: {err}",
                    row.name, row.source
                ));
                continue;
            }
        };
        for want in &row.wants {
            if let Some(problem) = check(&rendered, want) {
                failures.push(format!(
                    "{} ({}): {want:?}: {problem}",
                    row.name, row.source
                ));
            }
        }
        for problem in shell_syntax_problems(&rendered, &mut scripts) {
            failures.push(format!("{} ({}): {problem}", row.name, row.source));
        }
        let mut value = serde_json::to_value(&rendered).expect("json");
        if let Some(object) = value.as_object_mut() {
            object.remove("status");
        }
        let yaml = jobify_k8s::manifest::to_yaml(&value).expect("yaml");
        std::fs::write(format!("{dir}/compat-{}.yaml", row.name), yaml).expect("write manifest");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(scripts > rows.len(), "only {scripts} shell scripts checked");
}

/// Settings agent-stack-k8s refuses, and how jobify says so.
#[test]
fn what_agent_stack_k8s_refuses_is_refused_with_the_accepted_values() {
    for (config, message) in [
        (
            json!({"commandParams": {"interposer": "fancy"},
                   "podSpec": {"containers": [{"image": "alpine", "command": ["x"]}]}}),
            "commandParams.interposer is not valid: `fancy` is not an interposer; use one of \
             buildkite, vector, legacy",
        ),
        (
            json!({"checkout": {"gitMirrors": {"volume": {"name": "mirrors"}}}}),
            "checkout.gitMirrors.volume is not valid: needs exactly one volume source (found: \
             none)",
        ),
        (
            json!({"checkout": {"gitMirrors": {"path": "mirrors"}}}),
            "checkout.gitMirrors.path is not valid: `mirrors` is not an absolute path",
        ),
        (
            json!({"checkout": {"gitMirrors": {"lockTimeout": "soon"}}}),
            "checkout.gitMirrors.lockTimeout is not valid: expected a number of seconds, not \
             \"soon\"",
        ),
        (
            json!({"checkout": {"gitMirrors": {"lockTimeout": -1}}}),
            "checkout.gitMirrors.lockTimeout is not valid: -1 is not a number of seconds",
        ),
        (
            json!({"checkout": {"gitMirrors": {"volume": {"name": "workspace", "emptyDir": {}}}}}),
            "checkout.gitMirrors.volume.name is not valid: `workspace` names a volume the pod \
             already has",
        ),
        (
            json!({"checkout": {"gitMirrors": {"lock_timeout": 3}}}),
            "the kubernetes plugin key `checkout.gitMirrors.lock_timeout` is not supported by \
             jobify (gitMirrors takes path, volume, cloneFlags, lockTimeout and skipUpdate)",
        ),
        (
            json!({"checkout": {"gitMirrors": "/mirrors"}}),
            "checkout.gitMirrors is not valid: expected an object",
        ),
        (
            json!({"checkout": {"gitCredentialsSecret": {}}}),
            "checkout.gitCredentialsSecret.secretName is not valid: names no Secret",
        ),
        (
            json!({"checkout": {"gitCredentialsSecret": {"secretName": "creds", "key": "token"}}}),
            "checkout.gitCredentialsSecret.key is not a field Kubernetes knows",
        ),
        (
            json!({"checkout": {"gitCredentialsSecret": "creds"}}),
            "checkout.gitCredentialsSecret is not valid: expected an object such as \
             {secretName: git-credentials}",
        ),
        (
            json!({"checkout": {"gitCredentialsSecret": {"secretName": "creds"}},
                   "podSpec": {"containers": [{"image": "alpine"}],
                               "volumes": [{"name": "git-credentials", "emptyDir": {}}]}}),
            "checkout.gitCredentialsSecret is not valid: adds the volumes git-credentials-ro \
             and git-credentials, but the pod already has",
        ),
        (
            json!({"checkout": {"noSubmodules": "yes"}}),
            "checkout.noSubmodules is not valid: expected true or false, not \"yes\"",
        ),
        (
            json!({"commandParams": {"interposr": "vector"}}),
            "the kubernetes plugin key `commandParams.interposr` is not supported by jobify \
             (commandParams takes interposer, envFrom and extraVolumeMounts)",
        ),
    ] {
        let job = plugin(step("make"), config.clone());
        let err = render_job(
            &job,
            &template(&job),
            &KubernetesConfig::default(),
            "compat",
        )
        .expect_err("refused");
        assert!(
            err.to_string().starts_with(message),
            "{config}: {err}\nwanted: {message}"
        );
    }
}

/// A `resource_class` tag naming no class is refused naming the classes there are.
#[test]
fn an_unknown_resource_class_tag_names_the_classes_there_are() {
    let mut job = step("make");
    job.rules = jobify_core::AgentQueryRules::parse(["queue=kubernetes", "resource_class=huge"]);
    let err = render_job(&job, &template(&job), &with_classes(None), "compat")
        .expect_err("unknown class");
    assert_eq!(
        err.to_string(),
        "the step's agent tag resource_class=huge names no resource class of this cluster \
         (defined under [kubernetes.resource_classes]: small, test); use one of those"
    );
}

/// The controller's default interposer is read from `jobify.toml`, and a wrong one names the
/// accepted values.
#[test]
fn the_default_interposer_is_configured_by_name() {
    let config: KubernetesConfig =
        toml::from_str("[default_command_params]\ninterposer = \"legacy\"\n").expect("parses");
    assert_eq!(config.default_command_params.interposer, Interposer::Legacy);
    let err =
        toml::from_str::<KubernetesConfig>("[default_command_params]\ninterposer = \"shell\"\n")
            .expect_err("unknown interposer");
    assert!(
        err.to_string()
            .contains("unknown variant `shell`, expected one of `buildkite`, `vector`, `legacy`"),
        "{err}"
    );
}

/// `envFrom` and `extraVolumeMounts` of the controller's defaults are read from `jobify.toml`
/// in Kubernetes' own spelling, and a field Kubernetes does not know is refused, not dropped.
#[test]
fn the_default_params_are_kubernetes_objects_checked_field_by_field() {
    let config: KubernetesConfig = toml::from_str(
        "[default_command_params]\n\
         env_from = [{ configMapRef = { name = \"ci\" } }]\n\
         extra_volume_mounts = [{ name = \"cache\", mountPath = \"/cache\" }]\n\
         [default_sidecar_params]\n\
         env_from = [{ secretRef = { name = \"db\" }, prefix = \"DB_\" }]\n",
    )
    .expect("parses");
    let command = &config.default_command_params;
    assert_eq!(
        command.env_from[0]
            .config_map_ref
            .as_ref()
            .map(|r| r.name.as_str()),
        Some("ci")
    );
    assert_eq!(command.extra_volume_mounts[0].mount_path, "/cache");
    let sidecar = &config.default_sidecar_params;
    assert_eq!(sidecar.env_from[0].prefix.as_deref(), Some("DB_"));
    let err = toml::from_str::<KubernetesConfig>(
        "[default_sidecar_params]\nextra_volume_mounts = [{ name = \"c\", mountpath = \"/c\" }]\n",
    )
    .expect_err("a misspelt field");
    assert!(err.to_string().contains("mountpath"), "{err}");
}
