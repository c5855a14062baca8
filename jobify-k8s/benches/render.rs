//! Rendering one Job: the default agent pod, and the agent-stack-k8s layout of a job that
//! brings its own `podSpec` through the `kubernetes` plugin. Run with
//! `cargo bench -p jobify-k8s --bench render`; docs/performance.md has the figures.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use jobify_core::{RawJob, ScheduledJob, Template};
use jobify_k8s::config::KubernetesConfig;
use jobify_k8s::render::render_job;
use serde_json::json;

/// A job as the Buildkite API describes it, with `plugin` as its `kubernetes` plugin
/// configuration when given.
fn job(plugin: Option<serde_json::Value>) -> ScheduledJob {
    let mut env = vec![
        "BUILDKITE_ORGANIZATION_SLUG=acme".to_owned(),
        "BUILDKITE_PIPELINE_SLUG=app".to_owned(),
        "BUILDKITE_BUILD_NUMBER=42".to_owned(),
        "BUILDKITE_BRANCH=main".to_owned(),
        "BUILDKITE_COMMIT=0123456789abcdef0123456789abcdef01234567".to_owned(),
        "BUILDKITE_BUILD_URL=https://buildkite.com/acme/app/builds/42".to_owned(),
        "BUILDKITE_STEP_KEY=test".to_owned(),
        "RUST_BACKTRACE=1".to_owned(),
    ];
    if let Some(config) = plugin {
        let plugins =
            json!([{ "github.com/buildkite-plugins/kubernetes-buildkite-plugin#v1.0.0": config }]);
        env.push(format!("BUILDKITE_PLUGINS={plugins}"));
    }
    let raw = RawJob {
        uuid: "0190b5d0-6b6e-4c8a-9c53-1a2b3c4d5e6f".to_owned(),
        source_key: "Sm9iVHlwZUNvbW1hbmQtLS0wMTkwYjVkMA==".to_owned(),
        label: Some(":rust: test".to_owned()),
        command: Some("cargo test --workspace".to_owned()),
        agent_query_rules: vec!["queue=kubernetes".to_owned()],
        env,
        priority: 0,
        scheduled_at: None,
        url: None,
    };
    match ScheduledJob::from_raw(raw) {
        Ok(job) => job,
        Err(e) => panic!("the benchmark's job fixture is invalid: {e}"),
    }
}

/// Fails loudly when a fixture does not render, so the benchmark never times an error path.
fn check(job: &ScheduledJob, template: &Template, config: &KubernetesConfig) {
    if let Err(e) = render_job(job, template, config, "acme") {
        panic!("the benchmark's job does not render: {e}");
    }
}

fn render(c: &mut Criterion) {
    let config = KubernetesConfig::default();
    let agent_pod = job(None);
    let default_template = Template::Default { name: None };
    check(&agent_pod, &default_template, &config);
    c.bench_function("render_job/default agent pod", |b| {
        b.iter(|| render_job(black_box(&agent_pod), &default_template, &config, "acme"));
    });

    let podspec = job(Some(json!({
        "podSpec": {"containers": [
            {"image": "rust:1.95", "command": ["cargo"], "args": ["test", "--workspace"],
             "resources": {"requests": {"cpu": "2", "memory": "4Gi"}}},
            {"name": "lint", "image": "rust:1.95", "command": ["cargo clippy"]}
        ]},
        "podSpecPatch": {"containers": [{"name": "container-0", "env": [{"name": "CI", "value": "true"}]}]}
    })));
    check(&podspec, &Template::PodSpec, &config);
    c.bench_function("render_job/podSpec with patch", |b| {
        b.iter(|| render_job(black_box(&podspec), &Template::PodSpec, &config, "acme"));
    });
}

criterion_group!(benches, render);
criterion_main!(benches);
