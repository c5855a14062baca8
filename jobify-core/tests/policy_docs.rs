//! The TOML examples in docs/policy.md parse and validate, and its `explain` samples match what
//! the code prints, so the documentation cannot rot.

use jobify_core::config::{GuardConfig, LimitsConfig, PolicyConfig, QueueConfig, Validate};
use jobify_core::{Decider, Policy, ScheduledJob};
use serde::Deserialize;
use serde_json::json;

const POLICY_MD: &str = include_str!("../../docs/policy.md");

/// The part of `jobify.toml` that jobify-core owns.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Snippet {
    #[serde(default)]
    policy: PolicyConfig,
    #[serde(default)]
    guard: GuardConfig,
    #[serde(default)]
    limits: LimitsConfig,
    #[serde(default)]
    queues: Vec<QueueConfig>,
}

/// The fenced blocks of `lang` in `markdown`.
fn blocks<'a>(markdown: &'a str, lang: &str) -> Vec<&'a str> {
    let fence = format!("```{lang}\n");
    let mut found = Vec::new();
    let mut rest = markdown;
    while let Some(start) = rest.find(&fence) {
        let body = &rest[start + fence.len()..];
        let end = body.find("```").expect("every block is closed");
        found.push(&body[..end]);
        rest = &body[end + 3..];
    }
    found
}

fn parse(block: &str) -> Snippet {
    let snippet: Snippet = toml::from_str(block)
        .unwrap_or_else(|err| panic!("example does not parse: {err}\n{block}"));
    let mut errors = snippet.policy.validate();
    errors.extend(snippet.guard.validate());
    errors.extend(snippet.limits.validate());
    errors.extend(snippet.queues.validate());
    assert!(errors.is_empty(), "example is invalid: {errors:?}\n{block}");
    snippet
}

#[test]
fn every_toml_example_in_the_policy_docs_parses_and_validates() {
    let examples = blocks(POLICY_MD, "toml");
    assert!(
        examples.len() >= 7,
        "found only {} examples",
        examples.len()
    );
    for block in examples {
        parse(block);
    }
}

/// The explanation printed for `job`, without its first line (which names the job's uuid).
fn explained(decider: &Decider, job: &ScheduledJob) -> Vec<String> {
    decider
        .explain(job)
        .to_string()
        .lines()
        .skip(1)
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_explain_samples_in_the_policy_docs_are_what_jobify_prints() {
    let example = blocks(POLICY_MD, "toml")
        .into_iter()
        .find(|b| b.contains("name = \"own-pods\""))
        .expect("the explain example");
    let snippet = parse(example);
    let decider = Decider::from_config(&snippet.policy, &snippet.guard, &snippet.queues);
    let samples = blocks(POLICY_MD, "text");
    let sample = |pipeline: &str| -> Vec<&str> {
        samples
            .iter()
            .find(|s| s.starts_with("job ") && s.contains(&format!("(pipeline {pipeline})")))
            .expect("sample present")
            .lines()
            .skip(1)
            .collect()
    };

    let ml = ScheduledJob::fixture()
        .on_pipeline("ml-train")
        .branch("main")
        .with_pod_spec(json!({
            "containers": [{"name": "train", "image": "pytorch/pytorch",
                            "securityContext": {"privileged": true}}],
            "volumes": [{"name": "data", "hostPath": {"path": "/data"}}]
        }))
        .build();
    let printed = explained(&decider, &ml);
    let documented = sample("ml-train");
    assert_eq!(printed.len(), documented.len());
    for (printed, documented) in printed.iter().zip(&documented) {
        // The documented decision line is shortened with "...".
        let documented_prefix = documented.split("...").next().unwrap_or(documented);
        assert!(
            printed.starts_with(documented_prefix),
            "printed:    {printed}\ndocumented: {documented}"
        );
    }

    let web = ScheduledJob::fixture()
        .on_pipeline("web")
        .branch("feature/login")
        .build();
    assert_eq!(explained(&decider, &web), sample("web"));
}
