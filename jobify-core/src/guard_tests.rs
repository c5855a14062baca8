//! Table tests of the admission guard.

use pretty_assertions::assert_eq;
use serde_json::{Value, json};

use super::*;
use crate::config::GuardException;

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
fn patch_and_sidecars_are_checked_even_in_the_default_pod() {
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
            "podSpecPatch container `agent` sets securityContext.privileged=true",
            "sidecar `dind` sets securityContext.privileged=true",
        ],
        "the podSpec itself is not used by the default pod"
    );
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
