//! Table tests of the admission guard.

use pretty_assertions::assert_eq;
use serde_json::{Value, json};

use super::*;
use crate::config::GuardException;
use crate::decision::Template;

fn run(template: Template) -> Decision {
    Decision::Run {
        template,
        reason: Reason::new(ReasonCode::RULE_MATCHED, "test"),
    }
}

fn pod_job(spec: Value) -> ScheduledJob {
    ScheduledJob::fixture()
        .on_pipeline("app")
        .with_pod_spec(spec)
        .build()
}

fn violations(guard: &Guard, job: &ScheduledJob) -> Vec<(GuardRule, String)> {
    guard
        .check(job, &run(Template::PodSpec))
        .map(|r| {
            r.violations
                .into_iter()
                .map(|v| (v.rule, v.message))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn each_dangerous_field_is_denied_by_default_and_named() {
    let cases: Vec<(Value, GuardRule, &str)> = vec![
        (
            json!({"containers": [{"name": "build", "securityContext": {"privileged": true}}]}),
            GuardRule::Privileged,
            "podSpec container `build` sets securityContext.privileged=true",
        ),
        (
            json!({"initContainers": [{"name": "init", "securityContext": {"privileged": true}}]}),
            GuardRule::Privileged,
            "podSpec init container `init` sets securityContext.privileged=true",
        ),
        (
            json!({"ephemeralContainers": [{"securityContext": {"allowPrivilegeEscalation": true}}]}),
            GuardRule::PrivilegeEscalation,
            "podSpec ephemeral container #0 sets securityContext.allowPrivilegeEscalation=true",
        ),
        (
            json!({"volumes": [{"name": "docker", "hostPath": {"path": "/var/run/docker.sock"}}]}),
            GuardRule::HostPath,
            "podSpec volume `docker` mounts hostPath /var/run/docker.sock",
        ),
        (
            json!({"hostNetwork": true}),
            GuardRule::HostNetwork,
            "podSpec sets hostNetwork=true",
        ),
        (
            json!({"hostPID": true}),
            GuardRule::HostPid,
            "podSpec sets hostPID=true",
        ),
        (
            json!({"hostIPC": true}),
            GuardRule::HostIpc,
            "podSpec sets hostIPC=true",
        ),
        (
            json!({"containers": [{"name": "c", "securityContext": {"capabilities": {"add": ["SYS_ADMIN", "NET_ADMIN"]}}}]}),
            GuardRule::AddedCapabilities,
            "podSpec container `c` adds capabilities SYS_ADMIN, NET_ADMIN",
        ),
    ];
    let guard = Guard::default();
    for (spec, rule, message) in cases {
        let job = pod_job(spec.clone());
        assert_eq!(
            violations(&guard, &job),
            vec![(rule, message.to_owned())],
            "{spec}"
        );
    }
}

#[test]
fn harmless_pod_specs_pass() {
    let job = pod_job(json!({
        "hostNetwork": false,
        "containers": [{"name": "build", "image": "rust:1.95",
            "securityContext": {"privileged": false, "capabilities": {"add": [], "drop": ["ALL"]},
                                "runAsUser": 0}}],
        "volumes": [{"name": "cache", "emptyDir": {}}]
    }));
    let report = Guard::default()
        .check(&job, &run(Template::PodSpec))
        .expect("applies");
    assert!(report.passed(), "{report}");
}

#[test]
fn run_as_root_is_denied_only_when_configured() {
    let job = pod_job(json!({"securityContext": {"runAsUser": 0},
        "containers": [{"name": "b", "securityContext": {"runAsUser": 0}}]}));
    assert_eq!(violations(&Guard::default(), &job), vec![]);
    let strict = Guard::new(GuardConfig {
        deny_run_as_root: true,
        ..GuardConfig::default()
    });
    assert_eq!(
        violations(&strict, &job),
        vec![
            (
                GuardRule::RunAsRoot,
                "podSpec sets securityContext.runAsUser=0".to_owned()
            ),
            (
                GuardRule::RunAsRoot,
                "podSpec container `b` sets securityContext.runAsUser=0".to_owned()
            ),
        ]
    );
}

#[test]
fn images_must_come_from_allowed_registries_when_configured() {
    let guard = Guard::new(GuardConfig {
        allowed_registries: vec!["ghcr.io/acme".into(), "docker.io/library".into()],
        ..GuardConfig::default()
    });
    for (image, allowed) in [
        ("rust:1.95", true),
        ("docker.io/library/rust", true),
        ("ghcr.io/acme/tool:1", true),
        ("ghcr.io/acme/tool@sha256:abc", true),
        ("ghcr.io/acmeevil/tool", false),
        ("ghcr.io/other/tool", false),
        ("evil/rust", false),
        ("localhost:5000/x", false),
    ] {
        let job = pod_job(json!({"containers": [{"name": "b", "image": image}]}));
        let found = violations(&guard, &job);
        assert_eq!(found.is_empty(), allowed, "{image}: {found:?}");
    }
    let job = pod_job(json!({"containers": [{"name": "b", "image": "evil/rust"}]}));
    assert_eq!(
        violations(&guard, &job)[0].1,
        "podSpec container `b` uses image evil/rust from outside the allowed registries \
         (ghcr.io/acme, docker.io/library)"
    );
    let job = pod_job(json!({"containers": [{"name": "b", "image": "anything/at:all"}]}));
    assert_eq!(violations(&Guard::default(), &job), vec![]);
}

#[test]
fn image_repositories_make_the_registry_explicit() {
    for (image, repository) in [
        ("rust", "docker.io/library/rust"),
        ("rust:1.95", "docker.io/library/rust"),
        ("acme/tool:v1", "docker.io/acme/tool"),
        ("ghcr.io/acme/tool:v1", "ghcr.io/acme/tool"),
        ("localhost:5000/tool", "localhost:5000/tool"),
        ("registry:5000/a/b@sha256:00", "registry:5000/a/b"),
    ] {
        assert_eq!(image_repository(image), repository, "{image}");
    }
}

#[test]
fn exceptions_allow_named_checks_for_matching_pipelines_only() {
    let guard = Guard::new(GuardConfig {
        exceptions: vec![GuardException {
            pipeline: crate::config::Patterns::new(["infra-*"]),
            allow: vec![GuardRule::HostPath],
        }],
        ..GuardConfig::default()
    });
    let spec =
        json!({"volumes": [{"name": "sock", "hostPath": {"path": "/run"}}], "hostNetwork": true});
    let infra = ScheduledJob::fixture()
        .on_pipeline("infra-dns")
        .with_pod_spec(spec.clone())
        .build();
    let report = guard
        .check(&infra, &run(Template::PodSpec))
        .expect("applies");
    assert_eq!(report.allowed, vec![GuardRule::HostPath]);
    assert_eq!(
        report.violations.iter().map(|v| v.rule).collect::<Vec<_>>(),
        vec![GuardRule::HostNetwork]
    );
    let app = pod_job(spec);
    assert_eq!(violations(&guard, &app).len(), 2);
}

#[test]
fn global_allow_switches_a_check_off() {
    let guard = Guard::new(GuardConfig {
        allow: vec![GuardRule::Privileged],
        ..GuardConfig::default()
    });
    let job = pod_job(json!({"containers": [{"securityContext": {"privileged": true}}]}));
    assert_eq!(violations(&guard, &job), vec![]);
}

#[test]
fn patch_sidecars_and_the_pod_spec_are_checked_whatever_the_template() {
    // The backend runs a job that brings a podSpec in it even when the policy named a
    // default template, so the guard checks the podSpec whatever the template.
    let job = ScheduledJob::fixture()
        .with_plugin(json!({
            "podSpec": {"hostNetwork": true},
            "podSpecPatch": {"containers": [{"name": "agent", "securityContext": {"privileged": true}}]},
            "sidecars": [{"name": "dind", "image": "docker:dind", "securityContext": {"privileged": true}}]
        }))
        .build();
    let report = Guard::default()
        .check(&job, &run(Template::Default { name: None }))
        .expect("applies");
    let messages: Vec<&str> = report
        .violations
        .iter()
        .map(|v| v.message.as_str())
        .collect();
    assert_eq!(
        messages,
        vec![
            "podSpec sets hostNetwork=true",
            "podSpecPatch container `agent` sets securityContext.privileged=true",
            "sidecar `dind` sets securityContext.privileged=true",
        ]
    );
}

fn guard_with(config: GuardConfig) -> Guard {
    Guard::new(config)
}

fn plugin_job(plugin: Value) -> ScheduledJob {
    ScheduledJob::fixture()
        .on_pipeline("app")
        .with_plugin(plugin)
        .build()
}

/// Every place a pipeline can name a Secret, with the path the rejection names.
#[test]
fn every_secret_a_pipeline_names_must_be_allowed() {
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"podSpec": {"volumes": [{"name": "creds", "secret": {"secretName": "prod-db"}}]}}),
            "podSpec.volumes[0].secret.secretName",
        ),
        (
            json!({"podSpec": {"volumes": [{"name": "p", "projected": {"sources": [
                {"configMap": {"name": "cm"}}, {"secret": {"name": "prod-db"}}]}}]}}),
            "podSpec.volumes[0].projected.sources[1].secret.name",
        ),
        (
            json!({"podSpec": {"containers": [{"name": "b", "env": [{"name": "A", "value": "x"},
                {"name": "P", "valueFrom": {"secretKeyRef": {"name": "prod-db", "key": "pw"}}}]}]}}),
            "podSpec.containers[0].env[1].valueFrom.secretKeyRef.name",
        ),
        (
            json!({"podSpec": {"initContainers": [{"name": "i", "envFrom": [
                {"secretRef": {"name": "prod-db"}}]}]}}),
            "podSpec.initContainers[0].envFrom[0].secretRef.name",
        ),
        (
            json!({"podSpec": {"imagePullSecrets": [{"name": "prod-db"}]}}),
            "podSpec.imagePullSecrets[0].name",
        ),
        (
            json!({"podSpecPatch": {"containers": [{"name": "agent", "envFrom": [
                {"secretRef": {"name": "prod-db"}}]}]}}),
            "podSpecPatch.containers[0].envFrom[0].secretRef.name",
        ),
        (
            json!({"sidecars": [{"name": "s", "image": "redis", "envFrom": [
                {"secretRef": {"name": "prod-db"}}]}]}),
            "sidecars[0].envFrom[0].secretRef.name",
        ),
        (
            json!({"gitEnvFrom": [{"configMapRef": {"name": "git"}}, {"secretRef": {"name": "prod-db"}}]}),
            "gitEnvFrom[1].secretRef.name",
        ),
        (
            json!({"commandParams": {"envFrom": [{"secretRef": {"name": "prod-db"}}]}}),
            "commandParams.envFrom[0].secretRef.name",
        ),
        (
            json!({"sidecarParams": {"envFrom": [{"secretRef": {"name": "prod-db"}}]}}),
            "sidecarParams.envFrom[0].secretRef.name",
        ),
        (
            json!({"checkout": {"envFrom": [{"secretRef": {"name": "prod-db"}}]}}),
            "checkout.envFrom[0].secretRef.name",
        ),
        (
            json!({"checkout": {"gitCredentialsSecret": {"secretName": "prod-db"}}}),
            "checkout.gitCredentialsSecret.secretName",
        ),
        (
            json!({"checkout": {"gitMirrors": {"volume": {"name": "mirrors",
                "secret": {"secretName": "prod-db"}}}}}),
            "checkout.gitMirrors.volume.secret.secretName",
        ),
    ];
    let strict = Guard::default();
    let allowing = guard_with(GuardConfig {
        allowed_secrets: crate::config::Patterns::new(["prod-*"]),
        ..GuardConfig::default()
    });
    for (plugin, path) in cases {
        let job = plugin_job(plugin.clone());
        assert_eq!(
            violations(&strict, &job),
            vec![(
                GuardRule::Secret,
                format!(
                    "{path} names Secret `prod-db`, which guard.allowed_secrets does not allow \
                     (it lists none)"
                )
            )],
            "{plugin}"
        );
        assert_eq!(violations(&allowing, &job), vec![], "{plugin}");
    }
}

#[test]
fn a_service_account_must_be_allowed_by_a_glob() {
    let job = plugin_job(json!({"podSpecPatch": {"serviceAccountName": "deployer"}}));
    assert_eq!(
        violations(&Guard::default(), &job),
        vec![(
            GuardRule::ServiceAccount,
            "podSpecPatch.serviceAccountName names ServiceAccount `deployer`, which \
             guard.allowed_service_accounts does not allow (it lists none)"
                .to_owned()
        )]
    );
    let old_field = plugin_job(json!({"podSpec": {"serviceAccount": "deployer"}}));
    assert_eq!(violations(&Guard::default(), &old_field).len(), 1);
    let allowing = guard_with(GuardConfig {
        allowed_service_accounts: crate::config::Patterns::new(["ci-*"]),
        ..GuardConfig::default()
    });
    let ci = plugin_job(json!({"podSpec": {"serviceAccountName": "ci-builder"}}));
    assert_eq!(violations(&allowing, &ci), vec![]);
    assert_eq!(
        violations(&allowing, &job)[0].1,
        "podSpecPatch.serviceAccountName names ServiceAccount `deployer`, which \
         guard.allowed_service_accounts does not allow (it lists ci-*)"
    );
}

#[test]
fn volumes_must_be_of_an_allowed_type() {
    let job = pod_job(json!({"volumes": [
        {"name": "cache", "emptyDir": {}},
        {"name": "cm", "configMap": {"name": "x"}},
        {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}},
        {"name": "data", "persistentVolumeClaim": {"claimName": "shared"}},
        {"name": "share", "nfs": {"server": "nas", "path": "/"}}
    ]}));
    let found = violations(&Guard::default(), &job);
    assert_eq!(
        found,
        vec![
            (
                GuardRule::VolumeType,
                "podSpec.volumes[3] (`data`) is a `persistentVolumeClaim` volume, a type \
                 guard.allowed_volume_types does not allow (it lists emptyDir, configMap, \
                 secret, projected, downwardAPI, ephemeral)"
                    .to_owned()
            ),
            (
                GuardRule::VolumeType,
                "podSpec.volumes[4] (`share`) is a `nfs` volume, a type \
                 guard.allowed_volume_types does not allow (it lists emptyDir, configMap, \
                 secret, projected, downwardAPI, ephemeral)"
                    .to_owned()
            ),
        ]
    );
    let mut types: Vec<String> = crate::config::DEFAULT_VOLUME_TYPES
        .iter()
        .map(|t| (*t).to_owned())
        .collect();
    types.extend(["persistentVolumeClaim".to_owned(), "nfs".to_owned()]);
    let allowing = guard_with(GuardConfig {
        allowed_volume_types: types,
        ..GuardConfig::default()
    });
    assert_eq!(violations(&allowing, &job), vec![]);
}

#[test]
fn the_git_mirrors_volume_must_be_of_an_allowed_type() {
    let job = plugin_job(json!({"checkout": {"gitMirrors": {"path": "/mirrors",
        "volume": {"name": "mirrors", "persistentVolumeClaim": {"claimName": "git-mirrors"}}}}}));
    assert_eq!(
        violations(&Guard::default(), &job),
        vec![(
            GuardRule::VolumeType,
            "checkout.gitMirrors.volume (`mirrors`) is a `persistentVolumeClaim` volume, a type \
             guard.allowed_volume_types does not allow (it lists emptyDir, configMap, secret, \
             projected, downwardAPI, ephemeral)"
                .to_owned()
        )]
    );
    let node = plugin_job(json!({"checkout": {"gitMirrors": {
        "volume": {"name": "mirrors", "hostPath": {"path": "/var/git"}}}}}));
    assert_eq!(
        violations(&Guard::default(), &node),
        vec![(
            GuardRule::HostPath,
            "checkout.gitMirrors volume `mirrors` mounts hostPath /var/git".to_owned()
        )]
    );
    let mut types: Vec<String> = crate::config::DEFAULT_VOLUME_TYPES
        .iter()
        .map(|t| (*t).to_owned())
        .collect();
    types.push("persistentVolumeClaim".to_owned());
    let allowing = guard_with(GuardConfig {
        allowed_volume_types: types,
        ..GuardConfig::default()
    });
    assert_eq!(violations(&allowing, &job), vec![]);
    let cache = plugin_job(json!({"checkout": {"gitMirrors": {
        "volume": {"name": "mirrors", "emptyDir": {}}, "skipUpdate": true}}}));
    assert_eq!(violations(&Guard::default(), &cache), vec![]);
}

#[test]
fn host_path_is_one_violation_and_allowed_by_either_key() {
    let job = pod_job(json!({"volumes": [{"name": "sock", "hostPath": {"path": "/run"}}]}));
    assert_eq!(
        violations(&Guard::default(), &job),
        vec![(
            GuardRule::HostPath,
            "podSpec volume `sock` mounts hostPath /run".to_owned()
        )]
    );
    let listed = guard_with(GuardConfig {
        allowed_volume_types: vec!["emptyDir".to_owned(), "hostPath".to_owned()],
        ..GuardConfig::default()
    });
    assert_eq!(violations(&listed, &job), vec![]);
    let allowed = guard_with(GuardConfig {
        allow: vec![GuardRule::HostPath],
        ..GuardConfig::default()
    });
    assert_eq!(violations(&allowed, &job), vec![]);
}

#[test]
fn the_step_image_must_come_from_an_allowed_registry() {
    let guard = guard_with(GuardConfig {
        allowed_registries: vec!["ghcr.io/acme".into()],
        ..GuardConfig::default()
    });
    let job = ScheduledJob::fixture()
        .env("BUILDKITE_IMAGE", "evil/miner:latest")
        .build();
    assert_eq!(
        violations(&guard, &job),
        vec![(
            GuardRule::Registry,
            "the step's image (BUILDKITE_IMAGE) uses image evil/miner:latest from outside the \
             allowed registries (ghcr.io/acme)"
                .to_owned()
        )]
    );
    let ours = ScheduledJob::fixture()
        .env("BUILDKITE_IMAGE", "ghcr.io/acme/rust:1")
        .build();
    assert_eq!(violations(&guard, &ours), vec![]);
}

#[test]
fn exceptions_allow_the_new_checks_per_pipeline() {
    let guard = guard_with(GuardConfig {
        exceptions: vec![GuardException {
            pipeline: crate::config::Patterns::new(["deploy-*"]),
            allow: vec![
                GuardRule::ServiceAccount,
                GuardRule::Secret,
                GuardRule::VolumeType,
            ],
        }],
        ..GuardConfig::default()
    });
    let spec = json!({"serviceAccountName": "deployer",
        "volumes": [{"name": "kube", "secret": {"secretName": "kubeconfig"}},
                    {"name": "state", "persistentVolumeClaim": {"claimName": "tf"}}]});
    let deploy = ScheduledJob::fixture()
        .on_pipeline("deploy-prod")
        .with_pod_spec(spec.clone())
        .build();
    assert_eq!(violations(&guard, &deploy), vec![]);
    let rules: Vec<GuardRule> = violations(&guard, &pod_job(spec))
        .into_iter()
        .map(|(rule, _)| rule)
        .collect();
    assert_eq!(
        rules,
        vec![
            GuardRule::ServiceAccount,
            GuardRule::Secret,
            GuardRule::VolumeType
        ]
    );
}

#[test]
fn new_rules_have_stable_names() {
    for (rule, name) in [
        (GuardRule::ServiceAccount, "service_account"),
        (GuardRule::Secret, "secret"),
        (GuardRule::VolumeType, "volume_type"),
        (GuardRule::PodTemplate, "pod_template"),
    ] {
        assert_eq!(rule.as_str(), name);
        assert_eq!(
            serde_json::to_value(rule).expect("serialises"),
            Value::String(name.to_owned())
        );
    }
    assert_eq!(GuardRule::ALL.len(), 13);
}

#[test]
fn guard_does_not_apply_to_skips_rejects_jobs_without_plugin_or_when_disabled() {
    let job = pod_job(json!({"hostNetwork": true}));
    let guard = Guard::default();
    let skip = Decision::Skip {
        reason: Reason::new(ReasonCode::RULE_MATCHED, "x"),
    };
    assert_eq!(guard.check(&job, &skip), None);
    let plain = ScheduledJob::fixture().build();
    assert_eq!(guard.check(&plain, &run(Template::PodSpec)), None);
    let disabled = Guard::new(GuardConfig {
        enabled: false,
        ..GuardConfig::default()
    });
    assert_eq!(disabled.check(&job, &run(Template::PodSpec)), None);
}

#[test]
fn rejection_names_every_violation_and_the_way_out() {
    let job = pod_job(json!({"hostPID": true,
        "containers": [{"name": "build", "securityContext": {"privileged": true}}]}));
    let (decision, report) = Guard::default().apply(&job, run(Template::PodSpec));
    assert_eq!(report.map(|r| r.violations.len()), Some(2));
    assert_eq!(
        decision,
        Decision::Reject {
            reason: Reason::new(
                ReasonCode::GUARD_DENIED,
                "this cluster does not allow what the step's kubernetes plugin asks for: \
                 podSpec sets hostPID=true; podSpec container `build` sets \
                 securityContext.privileged=true. Remove it from the step, or ask the \
                 cluster's operators for a [[guard.exceptions]] entry for pipeline `app`"
            )
        }
    );
}

#[test]
fn a_pod_template_must_be_allowed_by_a_glob() {
    let job = plugin_job(json!({"podTemplate": "ci-large"}));
    assert_eq!(
        violations(&Guard::default(), &job),
        vec![(
            GuardRule::PodTemplate,
            "podTemplate names PodTemplate `ci-large`, which guard.allowed_pod_templates does \
             not allow (it lists none); list it there to let pipelines use it"
                .to_owned()
        )]
    );
    let allowing = guard_with(GuardConfig {
        allowed_pod_templates: crate::config::Patterns::new(["ci-*"]),
        ..GuardConfig::default()
    });
    assert_eq!(violations(&allowing, &job), vec![]);
    let other = plugin_job(json!({"podTemplate": "prod-deployer"}));
    assert_eq!(violations(&allowing, &other).len(), 1);
    let excepted = guard_with(GuardConfig {
        allow: vec![GuardRule::PodTemplate],
        ..GuardConfig::default()
    });
    assert_eq!(violations(&excepted, &other), vec![]);
}
