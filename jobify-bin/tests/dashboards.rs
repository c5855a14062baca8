//! The Grafana dashboard (deploy/grafana/jobify.json) and the alerts
//! (deploy/helm/jobify/files/prometheus-rules.yaml, the chart's PrometheusRule) name only
//! metrics that jobify really exports: every `jobify_*` name in their queries must be a series
//! of a family in the live registry (`Metrics::register`, encoded as `/metrics` serves it), the
//! dashboard shows every family, and docs/operations.md documents exactly the registry's
//! families. Nothing here is a hand-kept list of names.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use jobify::metrics::{Metrics, PollErrorKind};
use jobify_buildkite::QueueFigures;
use jobify_core::{
    Decision, LaunchError, Launched, Reason, ReasonCode, SweepEnd, SweepSummary, Template,
};
use prometheus_client::registry::Registry;
use serde_json::Value as Json;
use serde_yaml::Value as Yaml;

fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo_file(path)).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

/// Gives every family a series: a labelled family without one is not on the page. The same
/// updates as tests/metrics.rs, whose `metrics_page_parses_and_has_every_family_after_updates`
/// fails when a family is added without one.
fn update_every_family(metrics: &Metrics) {
    metrics.poll_succeeded();
    metrics.poll_failed(PollErrorKind::RateLimited);
    metrics.sweep_ended(&SweepSummary {
        end: SweepEnd::Completed,
        pages: 2,
        jobs: 12,
        duration: Duration::from_millis(40),
    });
    metrics.buildkite().set_rate_limit_remaining(19_500);
    metrics.decided(&Decision::Run {
        template: Template::Default { name: None },
        reason: Reason::new(ReasonCode("rule_matched"), "rule 1 matched"),
    });
    metrics.launched(Launched::Created, Some(Duration::from_millis(1500)));
    metrics.launch_failed(&LaunchError::invalid("422"));
    metrics.declare_queues(["kubernetes"]);
    metrics.job_seen("kubernetes");
    metrics.set_in_flight_by_queue(&[("kubernetes".to_owned(), 3)]);
    metrics.feedback_retry("failed_to_start", "scheduled");
    metrics.set_leader(true);
    metrics.failed_to_start(&Reason::new(
        ReasonCode("image_pull_failed"),
        "no such image",
    ));
    metrics.agent_lost(&Reason::new(ReasonCode("pod_disrupted"), "evicted"));
    metrics.stopped(&Reason::new(
        ReasonCode("containers_outlived_agent"),
        "`dind` kept running",
    ));
    metrics.cancelled();
    metrics.buildkite().set_queue_figures(&BTreeMap::from([(
        "kubernetes".to_owned(),
        QueueFigures {
            scheduled_jobs: 7,
            running_jobs: 2,
            waiting_jobs: 1,
            idle_agents: 0,
            busy_agents: 2,
        },
    )]));
}

/// The registry's families (name without suffix -> OpenMetrics type), from the `# TYPE` lines
/// of the page `/metrics` serves (`jobify::metrics::encode`), once every family has a series.
fn registry_families() -> BTreeMap<String, String> {
    let mut registry = Registry::default();
    let metrics = Metrics::register(&mut registry);
    update_every_family(&metrics);
    let text = jobify::metrics::encode(&registry);
    let families: BTreeMap<String, String> = text
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .map(|rest| {
            let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
            (name.to_owned(), kind.to_owned())
        })
        .collect();
    assert!(
        families.len() >= 10,
        "the registry has too few families to be the real one:\n{text}"
    );
    families
}

/// Every name a query may use for a family: the series names of its type.
fn series_names(families: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut names = BTreeMap::new();
    for (family, kind) in families {
        let suffixes: &[&str] = match kind.as_str() {
            "counter" => &["_total", "_created"],
            "histogram" => &["_bucket", "_sum", "_count", "_created"],
            "info" => &["_info"],
            _ => &[""],
        };
        for suffix in suffixes {
            names.insert(format!("{family}{suffix}"), family.clone());
        }
    }
    names
}

/// The `jobify_*` metric names in a PromQL expression.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let is_name_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut names = BTreeSet::new();
    let mut rest = expr;
    let mut previous: Option<char> = None;
    while let Some(at) = rest.find("jobify_") {
        let before = rest[..at].chars().next_back().or(previous);
        let tail = &rest[at..];
        let end = tail.find(|c: char| !is_name_char(c)).unwrap_or(tail.len());
        // Not the end of a longer identifier, nor a label value or a string.
        if !before.is_some_and(|c| is_name_char(c) || c == '"') {
            names.insert(tail[..end].to_owned());
        }
        previous = tail[..end].chars().next_back();
        rest = &tail[end..];
    }
    names
}

fn dashboard_exprs() -> Vec<(String, String)> {
    let dashboard: Json =
        serde_json::from_str(&read("deploy/grafana/jobify.json")).expect("the dashboard is JSON");
    let mut exprs = Vec::new();
    fn walk(value: &Json, title: &str, out: &mut Vec<(String, String)>) {
        match value {
            Json::Object(map) => {
                let title = map.get("title").and_then(Json::as_str).unwrap_or(title);
                for key in ["expr", "definition"] {
                    if let Some(expr) = map.get(key).and_then(Json::as_str) {
                        out.push((title.to_owned(), expr.to_owned()));
                    }
                }
                if let Some(Json::Object(query)) = map.get("query")
                    && let Some(expr) = query.get("query").and_then(Json::as_str)
                {
                    out.push((title.to_owned(), expr.to_owned()));
                }
                for child in map.values() {
                    walk(child, title, out);
                }
            }
            Json::Array(items) => items.iter().for_each(|v| walk(v, title, out)),
            _ => {}
        }
    }
    walk(&dashboard, "dashboard", &mut exprs);
    exprs
}

fn alert_exprs() -> Vec<(String, String)> {
    let rules: Yaml = serde_yaml::from_str(&read("deploy/helm/jobify/files/prometheus-rules.yaml"))
        .expect("the rules are YAML");
    let mut exprs = Vec::new();
    for group in rules["groups"].as_sequence().expect("groups") {
        for rule in group["rules"].as_sequence().expect("rules") {
            let name = rule["alert"]
                .as_str()
                .or(rule["record"].as_str())
                .expect("a rule is an alert or a recording rule");
            let expr = rule["expr"].as_str().expect("a rule has an expr");
            exprs.push((name.to_owned(), expr.to_owned()));
        }
    }
    exprs
}

/// Every `jobify_*` name in `exprs` is a series of the registry; returns the families used.
fn check_exprs(what: &str, exprs: &[(String, String)]) -> BTreeSet<String> {
    let series = series_names(&registry_families());
    let mut used = BTreeSet::new();
    let mut unknown = Vec::new();
    for (title, expr) in exprs {
        let names = metric_names(expr);
        for name in names {
            match series.get(&name) {
                Some(family) => {
                    used.insert(family.clone());
                }
                None => unknown.push(format!("{title}: {name} (in `{expr}`)")),
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "{what} names metrics jobify does not export:\n{}\nthe registry's series: {:?}",
        unknown.join("\n"),
        series.keys().collect::<Vec<_>>()
    );
    used
}

#[test]
fn the_dashboard_names_only_metrics_of_the_registry_and_shows_every_family() {
    let exprs = dashboard_exprs();
    assert!(
        exprs.len() >= 20,
        "the dashboard has its queries: {exprs:?}"
    );
    let used = check_exprs("deploy/grafana/jobify.json", &exprs);
    let families: BTreeSet<String> = registry_families().into_keys().collect();
    let missing: Vec<&String> = families.difference(&used).collect();
    assert!(
        missing.is_empty(),
        "the dashboard shows no panel for {missing:?}"
    );
}

#[test]
fn the_alerts_name_only_metrics_of_the_registry() {
    let exprs = alert_exprs();
    assert!(
        exprs.len() >= 9,
        "the alerts of docs/operations.md: {exprs:?}"
    );
    let used = check_exprs("deploy/helm/jobify/files/prometheus-rules.yaml", &exprs);
    assert!(used.len() >= 9, "the alerts use {used:?}");
}

#[test]
fn operations_md_documents_exactly_the_registry_families() {
    let docs = read("docs/operations.md");
    let documented: BTreeSet<String> = docs
        .lines()
        .filter_map(|line| line.strip_prefix("| `jobify_"))
        .map(|rest| format!("jobify_{}", &rest[..rest.find('`').expect("closing `")]))
        .map(|name| {
            // The table names counters as exposed (`_total`); the registry without it.
            name.strip_suffix("_total")
                .map_or(name.clone(), str::to_owned)
        })
        .collect();
    let families: BTreeSet<String> = registry_families().into_keys().collect();
    assert_eq!(
        documented, families,
        "docs/operations.md (\"Metrics\") and the registry disagree"
    );
}

#[test]
fn metric_names_are_found_in_promql() {
    assert_eq!(
        metric_names(
            r#"sum by (le) (rate(jobify_a_bucket{x="jobify_not_me"}[5m])) / on() xjobify_no + jobify_b"#
        ),
        BTreeSet::from(["jobify_a_bucket".to_owned(), "jobify_b".to_owned()])
    );
}
