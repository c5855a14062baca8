//! Table tests of the declarative policy: every matcher, every action, the fallbacks.

use pretty_assertions::assert_eq;
use serde_json::json;

use super::*;
use crate::config::{GuardConfig, Patterns, PolicyConfig, QueueConfig, Validate};
use crate::decision::{ReasonCode, Template};
use crate::job::ScheduledJob;

fn rules(toml_text: &str) -> RulePolicy {
    let config: PolicyConfig = toml::from_str(toml_text).expect("valid policy");
    assert_eq!(config.validate(), vec![], "semantically valid");
    RulePolicy::new(&config)
}

/// A policy with one rule `matcher` that runs in template `hit`, defaulting to skip.
fn one_rule(matcher: &str) -> RulePolicy {
    rules(&format!(
        "default = \"skip\"\n[[rules]]\nname = \"r\"\n{matcher}\naction = \"default\"\ntemplate = \"hit\""
    ))
}

fn hit(decision: &Decision) -> bool {
    matches!(decision, Decision::Run { template: Template::Default { name: Some(n) }, .. } if n == "hit")
}

#[test]
fn each_matcher_matches_and_misses() {
    let f = ScheduledJob::fixture;
    let cases: Vec<(&str, ScheduledJob, bool)> = vec![
        ("queue = \"kubernetes\"", f().build(), true),
        ("queue = \"gpu-*\"", f().queue("gpu-large").build(), true),
        ("queue = \"gpu\"", f().build(), false),
        ("queue = \"default\"", f().without_queue().build(), true),
        ("queue = [\"a\", \"kube*\"]", f().build(), true),
        ("agent = [\"os=linux\"]", f().rule("os=linux").build(), true),
        (
            "agent = [\"arch=*64\"]",
            f().rule("arch=arm64").build(),
            true,
        ),
        (
            "agent = [\"os=linux\"]",
            f().rule("os=windows").build(),
            false,
        ),
        ("agent = [\"docker\"]", f().build(), false),
        (
            "agent = [\"docker\"]",
            f().rule("docker=true").build(),
            true,
        ),
        (
            "pipeline = \"web-*\"",
            f().on_pipeline("web-api").build(),
            true,
        ),
        (
            "pipeline = \"web-*\"",
            f().on_pipeline("app").build(),
            false,
        ),
        (
            "branch = \"release/*\"",
            f().branch("release/1.2").build(),
            true,
        ),
        ("branch = \"main\"", f().branch("feature").build(), false),
        (
            "step_key = \"deploy\"",
            f().step_key("deploy").build(),
            true,
        ),
        ("step_key = \"deploy\"", f().build(), false),
        (
            "label = \"*:rocket:*\"",
            f().label("ship it :rocket:").build(),
            true,
        ),
        ("label = \"*:rocket:*\"", f().build(), false),
        ("plugin = true", f().with_pod_spec(json!({})).build(), true),
        ("plugin = true", f().build(), false),
        ("plugin = false", f().build(), true),
        ("plugin = true", f().with_invalid_plugin().build(), true),
        (
            "env = { DEPLOY = \"yes\" }",
            f().env("DEPLOY", "yes").build(),
            true,
        ),
        (
            "env = { DEPLOY = \"yes\" }",
            f().env("DEPLOY", "no").build(),
            false,
        ),
        (
            "env = { DEPLOY = \"y*\" }",
            f().env("DEPLOY", "yep").build(),
            true,
        ),
        ("env = { DEPLOY = \"yes\" }", f().build(), false),
        ("env_present = [\"CI\"]", f().env("CI", "").build(), true),
        ("env_present = [\"CI\"]", f().build(), false),
        (
            "pipeline = \"app\"\nbranch = \"main\"",
            f().on_pipeline("app").branch("dev").build(),
            false,
        ),
    ];
    for (matcher, job, expected) in cases {
        let policy = one_rule(matcher);
        let explanation = policy.explain(&job);
        assert_eq!(
            explanation.rules[0].matched, expected,
            "{matcher}: {explanation}"
        );
        // An invalid plugin makes the matched rule's run a rejection; otherwise a match runs.
        let runs = hit(&policy.decide(&job));
        assert_eq!(
            runs,
            expected
                && job.plugin.present().is_some() == job.env.get("BUILDKITE_PLUGINS").is_some(),
            "{matcher}"
        );
    }
}

#[test]
fn first_matching_rule_wins() {
    let policy = rules(
        "[[rules]]\nname = \"web\"\npipeline = \"web\"\naction = \"skip\"\n\
         [[rules]]\nname = \"main\"\nbranch = \"main\"\naction = \"default\"\ntemplate = \"main\"\n\
         [[rules]]\nname = \"all\"\naction = \"reject\"",
    );
    let web_main = ScheduledJob::fixture().on_pipeline("web").build();
    assert_eq!(policy.decide(&web_main).kind(), "skip");
    let app_main = ScheduledJob::fixture().build();
    assert_eq!(
        policy.decide(&app_main),
        Decision::Run {
            template: Template::Default {
                name: Some("main".into())
            },
            reason: Reason::new(
                ReasonCode::RULE_MATCHED,
                "rule `main` matched: run in pod template `main`"
            ),
        }
    );
    let app_dev = ScheduledJob::fixture().branch("dev").build();
    assert_eq!(
        policy.decide(&app_dev).reason(),
        &Reason::new(
            ReasonCode::RULE_MATCHED,
            "jobify's policy refuses this job (rule `all`)"
        )
    );
}

#[test]
fn actions_and_fallbacks_give_their_decisions_and_reasons() {
    let plain = ScheduledJob::fixture().build();
    let with_spec = ScheduledJob::fixture()
        .with_pod_spec(json!({"containers": [{"name": "build", "image": "rust"}]}))
        .build();
    let patch_only = ScheduledJob::fixture()
        .with_plugin(json!({"podSpecPatch": {"serviceAccountName": "x"}}))
        .build();
    let cases: Vec<(&str, &ScheduledJob, &str, ReasonCode, &str)> = vec![
        (
            "action = \"default\"",
            &plain,
            "run",
            ReasonCode::DEFAULT_RULE,
            "no rule matched, the default applies: run in the default pod",
        ),
        (
            "action = \"podspec\"",
            &with_spec,
            "run",
            ReasonCode::DEFAULT_RULE,
            "no rule matched, the default applies: run in the job's own pod spec",
        ),
        (
            "action = \"podspec\"\ntemplate = \"small\"",
            &plain,
            "run",
            ReasonCode::NO_PLUGIN_CONFIG,
            "no rule matched, the default applies: run in pod template `small` (the job \
             carries no pod spec)",
        ),
        (
            "action = \"podspec\"",
            &patch_only,
            "run",
            ReasonCode::NO_PLUGIN_CONFIG,
            "no rule matched, the default applies: run in the default pod (the job carries \
             no pod spec)",
        ),
        (
            "action = \"podspec\"\nfallback = \"reject\"",
            &plain,
            "reject",
            ReasonCode::NO_PLUGIN_CONFIG,
            "this step must bring its own pod: add the kubernetes plugin with a `podSpec` to it \
             (jobify policy: default)",
        ),
        (
            "action = \"podspec\"\nfallback = \"reject\"\nmessage = \"use a pod spec\"",
            &plain,
            "reject",
            ReasonCode::NO_PLUGIN_CONFIG,
            "use a pod spec (jobify policy: default)",
        ),
        (
            "action = \"skip\"",
            &plain,
            "skip",
            ReasonCode::DEFAULT_RULE,
            "no rule matched, the default applies: left for other agents",
        ),
        (
            "action = \"reject\"\nmessage = \"not here\"",
            &plain,
            "reject",
            ReasonCode::DEFAULT_RULE,
            "not here (jobify policy: default)",
        ),
    ];
    for (default, job, kind, code, message) in cases {
        let policy = rules(&format!("[default]\n{default}"));
        let decision = policy.decide(job);
        assert_eq!(decision.kind(), kind, "{default}");
        assert_eq!(decision.reason(), &Reason::new(code, message), "{default}");
    }
    let podspec = rules("");
    assert!(matches!(
        podspec.decide(&with_spec),
        Decision::Run {
            template: Template::PodSpec,
            ..
        }
    ));
}

#[test]
fn invalid_plugin_is_rejected_when_the_job_would_run_but_may_be_skipped() {
    let job = ScheduledJob::fixture().with_invalid_plugin().build();
    for action in ["\"default\"", "\"podspec\""] {
        let decision = rules(&format!("default = {action}")).decide(&job);
        assert_eq!(decision.kind(), "reject");
        assert_eq!(decision.reason().code, ReasonCode::INVALID_PLUGIN_CONFIG);
        assert!(
            decision.reason().message.contains("line 1, column"),
            "{}",
            decision.reason()
        );
    }
    assert_eq!(rules("default = \"skip\"").decide(&job).kind(), "skip");
}

#[test]
fn unnamed_rules_are_numbered_from_one_in_reasons() {
    let policy =
        rules("[[rules]]\npipeline = \"x\"\naction = \"skip\"\n[[rules]]\naction = \"skip\"");
    let decision = policy.decide(&ScheduledJob::fixture().build());
    assert_eq!(
        decision.reason().message,
        "rule 2 matched: left for other agents"
    );
}

#[test]
fn explain_lists_each_rule_tried_and_why_it_missed() {
    let policy = rules(
        "[[rules]]\nname = \"gpu\"\nqueue = \"gpu\"\naction = \"default\"\ntemplate = \"gpu\"\n\
         [[rules]]\nname = \"release\"\nbranch = \"release/*\"\nenv = { DEPLOY = \"yes\" }\naction = \"skip\"\n\
         [[rules]]\nname = \"web\"\npipeline = \"web\"\naction = \"reject\"\n\
         [[rules]]\nname = \"never reached\"\naction = \"skip\"",
    );
    let job = ScheduledJob::fixture()
        .on_pipeline("web")
        .branch("release/2")
        .build();
    let explanation = policy.explain(&job);
    let misses: Vec<Option<&str>> = explanation
        .rules
        .iter()
        .map(|r| r.mismatch.as_deref())
        .collect();
    assert_eq!(
        misses,
        vec![
            Some("queue \"kubernetes\" does not match \"gpu\""),
            Some("env DEPLOY is none which does not match \"yes\""),
            None,
        ]
    );
    assert!(!explanation.default_applied);
    assert_eq!(explanation.decision, policy.decide(&job));
    let text = explanation.to_string();
    assert!(text.contains("rule 3 `web` (reject): matched"), "{text}");
    assert!(text.contains("decision: reject"), "{text}");
    let json = serde_json::to_value(&explanation).expect("serialises");
    assert_eq!(json["rules"][0]["name"], "gpu");
    assert_eq!(json["decision"]["decision"], "reject");
    assert_eq!(json["decision"]["reason"]["code"], "rule_matched");
}

#[test]
fn explain_says_when_the_default_applied() {
    let policy = rules("default = \"skip\"\n[[rules]]\nstep_key = \"x\"\naction = \"reject\"");
    let explanation = policy.explain(&ScheduledJob::fixture().build());
    assert!(explanation.default_applied);
    assert_eq!(
        explanation.rules[0].mismatch.as_deref(),
        Some("step key none does not match \"x\"")
    );
    assert!(explanation.to_string().contains("default: applied"));
}

#[test]
fn decider_skips_jobs_of_queues_it_does_not_serve() {
    let decider = Decider::from_config(
        &PolicyConfig::default(),
        &GuardConfig::default(),
        &[
            QueueConfig::named("kubernetes"),
            QueueConfig {
                rules: vec!["os=linux".into()],
                ..QueueConfig::named("linux")
            },
        ],
    );
    let served = ScheduledJob::fixture().build();
    assert_eq!(decider.decide(&served).kind(), "run");
    let linux = ScheduledJob::fixture()
        .queue("linux")
        .rule("os=linux")
        .build();
    assert_eq!(decider.decide(&linux).kind(), "run");
    let windows = ScheduledJob::fixture()
        .queue("linux")
        .rule("os=windows")
        .build();
    let decision = decider.decide(&windows);
    assert_eq!(
        decision.reason(),
        &Reason::new(
            ReasonCode::QUEUE_NOT_SERVED,
            "no configured queue serves agent query rules [queue=linux,os=windows]"
        )
    );
    let no_queue = ScheduledJob::fixture().without_queue().build();
    assert_eq!(
        decider.decide(&no_queue).reason().message,
        "no configured queue serves agent query rules [queue=default]"
    );
    let explanation = decider.explain(&windows);
    assert_eq!(
        explanation.queue,
        Some(QueueTrace {
            queue: "linux".into(),
            served_by: None
        })
    );
    assert!(
        explanation
            .to_string()
            .contains("not served by any [[queues]] entry")
    );
}

#[test]
fn decider_without_queues_serves_every_job() {
    let decider = Decider::from_config(&PolicyConfig::default(), &GuardConfig::default(), &[]);
    let job = ScheduledJob::fixture().queue("anything").build();
    assert_eq!(decider.decide(&job).kind(), "run");
    assert_eq!(decider.explain(&job).queue, None);
}

#[test]
fn decider_turns_a_guard_violation_into_a_rejection_and_explains_it() {
    let decider = Decider::from_config(&PolicyConfig::default(), &GuardConfig::default(), &[]);
    let job = ScheduledJob::fixture()
        .with_pod_spec(
            json!({"containers": [{"name": "build", "securityContext": {"privileged": true}}]}),
        )
        .build();
    let decision = decider.decide(&job);
    assert_eq!(decision.kind(), "reject");
    assert_eq!(decision.reason().code, ReasonCode::GUARD_DENIED);
    let explanation = decider.explain(&job);
    assert_eq!(explanation.policy.kind(), "run");
    assert_eq!(explanation.decision, decision);
    let text = explanation.to_string();
    assert!(
        text.contains("guard: denied: podSpec container `build` sets securityContext.privileged=true [privileged]"),
        "{text}"
    );
}

#[test]
fn rust_policies_are_policies_too() {
    let policy = from_fn(|job: &ScheduledJob| {
        if job.pipeline == "app" {
            Decision::Run {
                template: Template::PodSpec,
                reason: custom_reason("app runs its own pods"),
            }
        } else {
            Decision::Skip {
                reason: custom_reason("not app"),
            }
        }
    });
    let decider = Decider::new(policy, crate::guard::Guard::default(), &[]);
    let app = ScheduledJob::fixture().build();
    assert_eq!(
        decider.decide(&app).reason().code,
        ReasonCode::CUSTOM_POLICY
    );
    let explanation = decider.explain(&app);
    assert!(explanation.rules.is_empty());
    assert_eq!(explanation.decision.kind(), "run");
}

#[test]
fn a_queue_serves_every_resource_class_unless_it_lists_the_ones_it_serves() {
    let decider = Decider::from_config(
        &PolicyConfig::default(),
        &GuardConfig::default(),
        &[
            QueueConfig::named("kubernetes"),
            QueueConfig {
                resource_classes: Patterns::new(["gpu-*"]),
                ..QueueConfig::named("gpu")
            },
        ],
    );
    // As in agent-stack-k8s, the tag takes no part in matching a queue's tags.
    let large = ScheduledJob::fixture().rule("resource_class=large").build();
    assert_eq!(decider.decide(&large).kind(), "run");
    assert_eq!(
        decider.explain(&large).queue.and_then(|q| q.served_by),
        Some("kubernetes".to_owned())
    );
    // A queue listing classes serves those, and no job without a class.
    let gpu = ScheduledJob::fixture()
        .queue("gpu")
        .rule("resource_class=gpu-a100")
        .build();
    assert_eq!(decider.decide(&gpu).kind(), "run");
    let large_on_gpu = ScheduledJob::fixture()
        .queue("gpu")
        .rule("resource_class=large")
        .build();
    assert_eq!(
        decider.decide(&large_on_gpu).reason(),
        &Reason::new(
            ReasonCode::QUEUE_NOT_SERVED,
            "no configured queue serves agent query rules [queue=gpu,resource_class=large]"
        )
    );
    let classless_on_gpu = ScheduledJob::fixture().queue("gpu").build();
    assert_eq!(decider.decide(&classless_on_gpu).kind(), "skip");
    // The other tags still have to match.
    let windows = ScheduledJob::fixture()
        .rule("resource_class=large")
        .rule("os=windows")
        .build();
    assert_eq!(decider.decide(&windows).kind(), "skip");
}
