//! Deciding and book-keeping cost: 10,000 jobs against 50 rules.
//!
//! `cargo bench -p jobify-core --bench policy -- --quick`; results in docs/performance.md.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use jobify_core::config::{GuardConfig, PolicyConfig, QueueConfig};
use jobify_core::{
    Book, BookEvent, Decider, Limits, Policy, ScheduledJob, WorkloadEvent, plan_round,
};
use serde_json::json;

const JOBS: usize = 10_000;
const RULES: usize = 50;

/// 49 rules that each look at a different pipeline (with globs, branches and env matchers, so
/// most jobs are tried against many rules), then a catch-all.
fn policy() -> PolicyConfig {
    let mut text = String::from("default = \"skip\"\n");
    for i in 0..RULES - 1 {
        text.push_str(&format!(
            "[[rules]]\nname = \"rule-{i}\"\npipeline = [\"team-{i}-*\", \"svc-{i}\"]\n\
             branch = [\"main\", \"release/*\"]\nagent = [\"os=linux\"]\n\
             env = {{ TIER = \"t{i}*\" }}\naction = \"default\"\ntemplate = \"t{i}\"\n"
        ));
    }
    text.push_str("[[rules]]\nname = \"rest\"\naction = \"podspec\"\n");
    toml::from_str(&text).expect("the bench policy is valid")
}

fn jobs() -> Vec<ScheduledJob> {
    (0..JOBS)
        .map(|i| {
            let team = i % 60; // some pipelines match no named rule and fall to the catch-all
            let fixture = ScheduledJob::fixture()
                .on_pipeline(&format!("team-{team}-app"))
                .branch(if i % 3 == 0 { "main" } else { "feature/x" })
                .rule("os=linux")
                .env("TIER", &format!("t{team}"))
                .priority((i % 3) as i32)
                .scheduled_at_second(i as i64);
            if i % 10 == 0 {
                fixture
                    .with_pod_spec(json!({"containers": [{"name": "build", "image": "rust:1.95"}]}))
                    .build()
            } else {
                fixture.build()
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let queues = [QueueConfig::named("kubernetes")];
    let decider = Decider::from_config(&policy(), &GuardConfig::default(), &queues);
    let jobs = jobs();
    c.bench_function("decide 10k jobs x 50 rules", |b| {
        b.iter(|| {
            for job in &jobs {
                let _ = black_box(decider.decide(black_box(job)));
            }
        })
    });
    let limits = Limits::global(1_000).with_per_pipeline(50);
    c.bench_function(
        "plan_round 10k jobs x 50 rules (decide, order, limits, book)",
        |b| {
            b.iter_batched(
                || {
                    let mut book = Book::new();
                    book.apply(BookEvent::Workload(WorkloadEvent::Restored(Vec::new())));
                    (book, jobs.clone())
                },
                |(mut book, jobs)| {
                    black_box(plan_round(&mut book, &decider, &limits, jobs, |_, _| {}))
                },
                BatchSize::LargeInput,
            )
        },
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
