//! `/metrics`, `/healthz` and `/readyz` over real HTTP: the page parses as OpenMetrics text and
//! carries every family once the metrics are updated; readiness follows the polls.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use jobify::health::{Leadership, Readiness};
use jobify::metrics::{Metrics, PollErrorKind};
use jobify::server::{AppState, OPENMETRICS, serve};
use jobify_buildkite::QueueFigures;
use jobify_core::{
    Decision, LaunchError, Launched, Reason, ReasonCode, SweepEnd, SweepSummary, Template,
};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// One sample line: `name{label="value",...} number`.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A strict reader of the OpenMetrics text format, enough to catch malformed output: every
/// sample belongs to a family announced by `# TYPE`, values are numbers, labels are quoted,
/// and the page ends with `# EOF`.
fn parse_openmetrics(text: &str) -> (BTreeMap<String, String>, Vec<Sample>) {
    let mut types = BTreeMap::new();
    let mut samples = Vec::new();
    let mut lines = text.lines().peekable();
    let mut saw_eof = false;
    while let Some(line) = lines.next() {
        if line == "# EOF" {
            assert!(lines.peek().is_none(), "content after # EOF");
            saw_eof = true;
            break;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE has a name and a type");
            assert!(
                ["counter", "gauge", "histogram", "info", "unknown"].contains(&kind),
                "unknown type in {line}"
            );
            types.insert(name.to_owned(), kind.to_owned());
            continue;
        }
        if line.starts_with("# HELP ") || line.starts_with("# UNIT ") {
            continue;
        }
        assert!(!line.starts_with('#'), "unexpected comment {line}");
        let (series, value) = line.rsplit_once(' ').expect("sample has a value");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line}"));
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').expect("labels close with }");
                let labels = body
                    .split(',')
                    .filter(|pair| !pair.is_empty())
                    .map(|pair| {
                        let (key, quoted) = pair.split_once('=').expect("label has =");
                        let value = quoted
                            .strip_prefix('"')
                            .and_then(|v| v.strip_suffix('"'))
                            .expect("label value is quoted");
                        (key.to_owned(), value.to_owned())
                    })
                    .collect();
                (name.to_owned(), labels)
            }
            None => (series.to_owned(), BTreeMap::new()),
        };
        let family = types
            .keys()
            .find(|family| {
                name == **family
                    || ["_total", "_bucket", "_sum", "_count", "_created"]
                        .iter()
                        .any(|suffix| name == format!("{family}{suffix}"))
            })
            .unwrap_or_else(|| panic!("sample {name} has no # TYPE"));
        assert!(!family.is_empty());
        samples.push(Sample {
            name,
            labels,
            value,
        });
    }
    assert!(saw_eof, "page does not end with # EOF");
    (types, samples)
}

fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .unwrap_or_else(|| panic!("no sample {name} {labels:?}"))
        .value
}

struct Running {
    base: String,
    stop: CancellationToken,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    client: reqwest::Client,
}

async fn start(registry: Registry, readiness: Arc<Readiness>) -> Running {
    jobify::tls::install_crypto_provider();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let stop = CancellationToken::new();
    let state = AppState {
        registry: Arc::new(registry),
        readiness,
    };
    let shutdown = stop.clone().cancelled_owned();
    let server = tokio::spawn(serve(listener, state, shutdown));
    let client = reqwest::Client::builder().build().expect("client");
    Running {
        base,
        stop,
        server,
        client,
    }
}

impl Running {
    async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("request")
    }

    async fn stop(self) {
        self.stop.cancel();
        self.server.await.expect("join").expect("serve");
    }
}

/// Gives every family at least one series (a family without one is not on the page).
fn update_every_family(metrics: &Metrics) {
    metrics.poll_succeeded();
    metrics.sweep_ended(&SweepSummary {
        end: SweepEnd::Completed,
        pages: 2,
        jobs: 12,
        duration: Duration::from_millis(40),
    });
    metrics.sweep_ended(&SweepSummary {
        end: SweepEnd::StoppedEarly,
        pages: 5,
        jobs: 500,
        duration: Duration::from_millis(300),
    });
    metrics.buildkite().set_rate_limit_remaining(19_500);
    metrics.poll_failed(PollErrorKind::RateLimited);
    metrics.decided(&Decision::Run {
        template: Template::Default { name: None },
        reason: Reason::new(ReasonCode("rule_matched"), "rule 1 matched"),
    });
    metrics.decided(&Decision::Skip {
        reason: Reason::new(ReasonCode("queue_not_served"), "not ours"),
    });
    metrics.launched(Launched::Created, Some(Duration::from_millis(1500)));
    metrics.launch_failed(&LaunchError::invalid("422"));
    metrics.declare_queues(["kubernetes", "gpu", "idle"]);
    metrics.job_seen("kubernetes");
    metrics.job_seen("kubernetes");
    metrics.job_seen("gpu");
    metrics.set_in_flight_by_queue(&[("gpu".to_owned(), 1), ("kubernetes".to_owned(), 3)]);
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

#[tokio::test]
async fn metrics_page_parses_and_has_every_family_after_updates() {
    let mut registry = Registry::default();
    let metrics = Metrics::register(&mut registry);
    update_every_family(&metrics);

    let running = start(registry, Arc::new(Readiness::new(Duration::from_secs(5)))).await;
    let response = running.get("/metrics").await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().expect("ascii"),
        OPENMETRICS
    );
    let text = response.text().await.expect("body");
    running.stop().await;

    let (types, samples) = parse_openmetrics(&text);
    let families: BTreeSet<_> = types.keys().map(String::as_str).collect();
    for family in [
        "jobify_monitor_polls",
        "jobify_monitor_poll_errors",
        "jobify_monitor_rate_limit_remaining",
        "jobify_monitor_scheduled_jobs",
        "jobify_scheduler_sweeps",
        "jobify_scheduler_sweep_duration_seconds",
        "jobify_scheduler_decisions",
        "jobify_scheduler_launches",
        "jobify_scheduler_launch_errors",
        "jobify_scheduler_in_flight",
        "jobify_scheduler_jobs_seen",
        "jobify_scheduler_feedback_retries",
        "jobify_scheduler_scheduled_to_created_seconds",
        "jobify_scheduler_leader",
        "jobify_workloads_failed_to_start",
        "jobify_workloads_cancellations",
        "jobify_buildkite_queue_jobs",
        "jobify_buildkite_queue_agents",
    ] {
        assert!(
            families.contains(family),
            "{family} missing from {families:?}"
        );
    }
    assert_eq!(
        value(&samples, "jobify_monitor_rate_limit_remaining", &[]),
        19_500.0
    );
    assert_eq!(
        value(&samples, "jobify_monitor_scheduled_jobs", &[]),
        12.0,
        "a sweep that stopped early does not say how many jobs are scheduled"
    );
    assert_eq!(
        value(
            &samples,
            "jobify_scheduler_sweeps_total",
            &[("end", "stopped_early")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &samples,
            "jobify_scheduler_decisions_total",
            &[("decision", "skip"), ("reason", "queue_not_served")]
        ),
        1.0
    );
    for (queue, in_flight) in [("kubernetes", 3.0), ("gpu", 1.0), ("idle", 0.0)] {
        assert_eq!(
            value(&samples, "jobify_scheduler_in_flight", &[("queue", queue)]),
            in_flight,
            "{queue}"
        );
    }
    assert_eq!(
        value(
            &samples,
            "jobify_scheduler_jobs_seen_total",
            &[("queue", "kubernetes")]
        ),
        2.0
    );
    assert_eq!(
        value(
            &samples,
            "jobify_scheduler_feedback_retries_total",
            &[("outcome", "scheduled")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &samples,
            "jobify_buildkite_queue_jobs",
            &[("queue", "kubernetes"), ("state", "scheduled")]
        ),
        7.0
    );
    assert_eq!(
        value(
            &samples,
            "jobify_scheduler_scheduled_to_created_seconds_count",
            &[]
        ),
        1.0
    );
    assert_eq!(
        value(
            &samples,
            "jobify_workloads_failed_to_start_total",
            &[("cause", "image_pull_failed")]
        ),
        1.0
    );
}

#[test]
fn a_queue_whose_workloads_all_end_keeps_its_in_flight_series_at_zero() {
    let mut registry = Registry::default();
    let metrics = Metrics::register(&mut registry);
    metrics.set_in_flight_by_queue(&[("gpu".to_owned(), 2), ("kubernetes".to_owned(), 1)]);
    metrics.set_in_flight_by_queue(&[("kubernetes".to_owned(), 4)]);
    let (_, samples) = parse_openmetrics(&jobify::metrics::encode(&registry));
    let series: BTreeMap<String, f64> = samples
        .iter()
        .filter(|s| s.name == "jobify_scheduler_in_flight")
        .map(|s| (s.labels["queue"].clone(), s.value))
        .collect();
    assert_eq!(
        series,
        BTreeMap::from([("gpu".to_owned(), 0.0), ("kubernetes".to_owned(), 4.0)])
    );
}

#[tokio::test(start_paused = true)]
async fn readyz_flips_when_polls_stop_succeeding() {
    let interval = Duration::from_secs(5);
    let readiness = Arc::new(Readiness::new(interval));
    let running = start(Registry::default(), readiness.clone()).await;

    assert_eq!(running.get("/healthz").await.status(), 200);
    let response = running.get("/readyz").await;
    assert_eq!(response.status(), 503);
    assert!(
        response
            .text()
            .await
            .expect("body")
            .contains("leadership not known"),
        "body names the cause"
    );

    readiness.set_leadership(Leadership::Leader);
    readiness.poll_succeeded(tokio::time::Instant::now());
    assert_eq!(running.get("/readyz").await.status(), 200);

    readiness.poll_failed("HTTP 502 from graphql.buildkite.com");
    tokio::time::advance(interval * 3 + Duration::from_secs(1)).await;
    let response = running.get("/readyz").await;
    assert_eq!(response.status(), 503);
    assert!(response.text().await.expect("body").contains("HTTP 502"));
    assert_eq!(running.get("/healthz").await.status(), 200);

    readiness.poll_succeeded(tokio::time::Instant::now());
    assert_eq!(running.get("/readyz").await.status(), 200);
    running.stop().await;
}

#[test]
fn the_metric_table_in_operations_md_lists_exactly_the_exported_families() {
    let mut registry = Registry::default();
    update_every_family(&Metrics::register(&mut registry));
    let (types, _) = parse_openmetrics(&jobify::metrics::encode(&registry));
    let exported: BTreeSet<String> = types
        .iter()
        .map(|(name, kind)| match kind.as_str() {
            "counter" => format!("{name}_total"),
            _ => name.clone(),
        })
        .collect();
    let docs = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/operations.md"),
    )
    .expect("read docs/operations.md");
    let documented: BTreeSet<String> = docs
        .lines()
        .filter_map(|line| line.strip_prefix("| `jobify_"))
        .filter_map(|rest| rest.split_once('`'))
        .map(|(name, _)| format!("jobify_{name}"))
        .collect();
    assert_eq!(documented, exported);
}
