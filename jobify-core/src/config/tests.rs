use pretty_assertions::assert_eq;

use super::*;

fn policy(toml_text: &str) -> Result<PolicyConfig, String> {
    toml::from_str(toml_text).map_err(|e| e.to_string())
}

#[test]
fn empty_policy_runs_pod_specs_with_default_fallback() {
    let config = policy("").expect("empty is valid");
    assert_eq!(config, PolicyConfig::default());
    assert_eq!(config.default, ActionConfig::agent_stack_compatible());
}

#[test]
fn rules_parse_every_matcher_and_action() {
    let config = policy(
        r#"
        default = { action = "reject", message = "not for this cluster" }
        [[rules]]
        name = "all"
        queue = ["k8s", "gpu-*"]
        agent = ["os=linux", "docker"]
        pipeline = "app"
        branch = "main"
        step_key = "deploy"
        label = "*rocket*"
        plugin = true
        env = { DEPLOY = "yes" }
        env_present = ["CI"]
        action = "podspec"
        fallback = "reject"
        message = "bring a pod spec"
        [[rules]]
        action = "default"
        template = "small"
        "#,
    )
    .expect("valid");
    let rule = &config.rules[0];
    assert_eq!(rule.name.as_deref(), Some("all"));
    assert!(rule.matcher.queue.matches("gpu-large"));
    assert_eq!(rule.matcher.agent[1].to_string(), "docker=*");
    assert_eq!(rule.matcher.plugin, Some(true));
    assert_eq!(
        rule.action,
        ActionConfig::PodSpec {
            fallback: PodSpecFallback::Reject {
                message: Some("bring a pod spec".into())
            }
        }
    );
    assert_eq!(
        config.rules[1].action,
        ActionConfig::Default {
            template: Some("small".into())
        }
    );
    assert_eq!(
        config.default,
        ActionConfig::Reject {
            message: Some("not for this cluster".into())
        }
    );
    assert!(config.validate().is_empty());
}

#[test]
fn default_action_may_be_a_bare_name() {
    assert_eq!(
        policy(r#"default = "skip""#).expect("valid").default,
        ActionConfig::Skip
    );
}

#[test]
fn shape_errors_name_the_problem() {
    for (text, expected) in [
        (
            "[[rules]]\naction = \"skip\"\nqueu = \"x\"",
            "unknown field `queu`",
        ),
        ("[[rules]]\nqueue = \"x\"", "missing field `action`"),
        ("[[rules]]\naction = \"launch\"", "unknown variant `launch`"),
        (
            "[[rules]]\nname = \"r\"\naction = \"skip\"\ntemplate = \"x\"",
            "rule `r`: `template/fallback/message` does not apply to action `skip`",
        ),
        (
            "[[rules]]\naction = \"default\"\nmessage = \"x\"",
            "`message` does not apply to action `default`",
        ),
        (
            "[[rules]]\naction = \"podspec\"\nfallback = \"reject\"\ntemplate = \"x\"",
            "`template` does not apply to action `podspec`",
        ),
        (
            "[[rules]]\nagent = [\"=x\"]\naction = \"skip\"",
            "has no key",
        ),
        (
            "default = { action = \"skip\", extra = 1 }",
            "unknown field `extra`",
        ),
        ("bogus = 1", "unknown field `bogus`"),
    ] {
        let err = policy(text).expect_err(text);
        assert!(err.contains(expected), "{text}\n=> {err}");
    }
}

#[test]
fn catch_all_rule_before_others_is_reported() {
    let config = policy(
        "[[rules]]\naction = \"skip\"\n[[rules]]\nqueue = \"a\"\naction = \"skip\"\n\
         [[rules]]\naction = \"default\"",
    )
    .expect("shape valid");
    assert_eq!(
        config.validate(),
        vec![ConfigProblem::new(
            "policy.rules[0]",
            "has no matchers, so it matches every job and the 2 rule(s) after it can never \
             match; move it last or give it a matcher"
        )]
    );
}

#[test]
fn duplicate_and_empty_rule_names_are_reported() {
    let config = policy(
        "[[rules]]\nname = \"a\"\nqueue = \"x\"\naction = \"skip\"\n\
         [[rules]]\nname = \"a\"\nqueue = \"y\"\naction = \"skip\"\n\
         [[rules]]\nname = \" \"\nqueue = \"z\"\naction = \"skip\"",
    )
    .expect("shape valid");
    let errors = config.validate();
    assert_eq!(
        errors,
        vec![
            ConfigProblem::new(
                "policy.rules[1]",
                "reuses the rule name `a` (first used by `policy.rules[0]`); names must be unique"
            ),
            ConfigProblem::empty("policy.rules[2].name"),
        ]
    );
    assert!(errors[0].to_string().contains("reuses the rule name `a`"));
}

#[test]
fn template_references_list_every_named_template() {
    let config = policy(
        "default = { action = \"podspec\", template = \"base\" }\n\
         [[rules]]\nqueue = \"gpu\"\naction = \"default\"\ntemplate = \"gpu\"",
    )
    .expect("valid");
    assert_eq!(
        config.template_references(),
        vec![
            ("policy.default.template".to_owned(), "base"),
            ("policy.rules[0].template".to_owned(), "gpu"),
        ]
    );
}

#[test]
fn policy_round_trips_through_toml() {
    let config = policy(
        "[[rules]]\nname = \"x\"\npipeline = [\"a\", \"b*\"]\nenv = { K = \"v\" }\n\
         action = \"podspec\"\nfallback = \"reject\"",
    )
    .expect("valid");
    let text = toml::to_string(&config).expect("serialises");
    assert_eq!(policy(&text).expect("re-parses"), config);
}

#[test]
fn guard_defaults_and_exceptions() {
    let guard: GuardConfig = toml::from_str(
        "allowed_registries = [\"ghcr.io/acme\"]\n\
         [[exceptions]]\npipeline = \"infra-*\"\nallow = [\"host_path\", \"privileged\"]",
    )
    .expect("valid");
    assert!(guard.enabled);
    assert!(!guard.deny_run_as_root);
    assert_eq!(
        guard.exceptions[0].allow,
        vec![GuardRule::HostPath, GuardRule::Privileged]
    );
    assert!(guard.validate().is_empty());
    let err = toml::from_str::<GuardConfig>("allow = [\"root\"]").expect_err("bad rule");
    assert!(err.to_string().contains("unknown variant `root`"), "{err}");
}

#[test]
fn guard_validation_names_bad_registries_and_empty_exceptions() {
    let guard: GuardConfig = toml::from_str(
        "allowed_registries = [\"https://ghcr.io\", \"\"]\n\
         [[exceptions]]\npipeline = []\nallow = []",
    )
    .expect("shape valid");
    let errors = guard.validate();
    let paths: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(errors.len(), 4, "{paths:#?}");
    assert!(paths[0].contains("guard.allowed_registries[0]"));
    assert!(paths[3].contains("guard.exceptions[0].allow"));
}

#[test]
fn limits_default_and_reject_zero() {
    assert_eq!(LimitsConfig::default().max_in_flight, 25);
    let limits: LimitsConfig =
        toml::from_str("max_in_flight = 0\nper_pipeline = 0").expect("shape valid");
    assert_eq!(
        limits.validate(),
        vec![
            ConfigProblem::zero_limit("limits.max_in_flight"),
            ConfigProblem::zero_limit("limits.per_pipeline"),
        ]
    );
}

#[test]
fn queue_tags_default_to_the_queue_name() {
    #[derive(serde::Deserialize)]
    struct File {
        queues: Vec<QueueConfig>,
    }
    let file: File = toml::from_str(
        "[[queues]]\nname = \"kubernetes\"\nmax_in_flight = 50\n\
         [[queues]]\nname = \"arm\"\nrules = [\"arch=arm64\"]",
    )
    .expect("valid");
    assert_eq!(file.queues[0].tags().to_string(), "queue=kubernetes");
    assert_eq!(file.queues[1].tags().to_string(), "arch=arm64,queue=arm");
    assert!(file.queues.validate().is_empty());
}

#[test]
fn queue_validation_reports_duplicates_and_mismatched_queue_tags() {
    let queues = [
        QueueConfig::named("a"),
        QueueConfig {
            rules: vec!["queue=b".into(), "linux".into()],
            max_in_flight: Some(0),
            ..QueueConfig::named("a")
        },
    ];
    let errors = queues.validate();
    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(errors.len(), 4, "{text:#?}");
    assert!(text[0].contains("configures queue `a` a second time"));
    assert!(text[1].contains("queues[1].max_in_flight"));
    assert!(text[2].contains("`queue=` must repeat `name`"));
    assert!(text[3].contains("queues[1].rules[1]"));
}

#[test]
fn a_queue_lists_resource_classes_and_may_not_tag_one() {
    #[derive(serde::Deserialize)]
    struct File {
        queues: Vec<QueueConfig>,
    }
    let file: File = toml::from_str(
        "[[queues]]\nname = \"gpu\"\nresource_classes = [\"gpu-*\", \"\"]\n\
         rules = [\"resource_class=large\"]",
    )
    .expect("parses");
    assert_eq!(
        file.queues[0].resource_classes,
        Patterns::new(["gpu-*", ""])
    );
    let text: Vec<String> = file
        .queues
        .validate()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(text.len(), 2, "{text:#?}");
    assert!(
        text[0].starts_with("queues[0].resource_classes[1]"),
        "{text:#?}"
    );
    assert!(
        text[1].starts_with("queues[0].rules[0]") && text[1].contains("`resource_classes`"),
        "{text:#?}"
    );
}
