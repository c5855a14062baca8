//! The figures, as a table against the targets, and the one-line summary.

use std::fmt::Write as _;
use std::time::Duration;

use crate::ceiling::Ceiling;
use crate::dispatch::{Dispatch, Idle};
use crate::latency::Latency;
use crate::sources::SourceRun;

const MIB: f64 = 1024.0 * 1024.0;

/// Everything measured in one benchmark run.
#[derive(Debug)]
pub(crate) struct Figures {
    /// The poll interval jobify ran with.
    pub(crate) poll_interval: Duration,
    /// The create concurrency of jobify and of the raw loop.
    pub(crate) concurrency: usize,
    /// jobify idle (from the first dispatch session).
    pub(crate) idle: Idle,
    /// One entry per batch size, smallest first.
    pub(crate) runs: Vec<(Dispatch, Ceiling)>,
    /// The steady-arrival run.
    pub(crate) latency: Latency,
    /// The two job sources side by side, pods kept starting.
    pub(crate) sources: Vec<SourceRun>,
    /// The steady-arrival run through the Stacks source.
    pub(crate) stacks_latency: Latency,
    /// Whether figures are judged against the targets (not in `--smoke` mode, whose debug
    /// build and tiny batches say nothing about them).
    pub(crate) judge: bool,
}

/// Whether a figure meets its target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    /// No target: context for the others.
    Info,
    /// Meets it.
    Met,
    /// Misses it.
    Missed,
}

struct Row {
    metric: String,
    value: String,
    target: &'static str,
    verdict: Verdict,
}

fn judged(met: bool) -> Verdict {
    if met { Verdict::Met } else { Verdict::Missed }
}

impl Figures {
    fn rows(&self) -> Vec<Row> {
        let mut rows = Vec::new();
        let mut row = |metric: String, value: String, target: &'static str, verdict| {
            rows.push(Row {
                metric,
                value,
                target,
                verdict,
            });
        };
        for (dispatch, ceiling) in &self.runs {
            let n = dispatch.jobs;
            let ratio = dispatch.rate() / ceiling.rate();
            let ratio_from_poll = dispatch.rate_from_first_poll() / ceiling.rate();
            row(
                format!("dispatch {n}: jobs/s, all scheduled -> all Jobs created"),
                format!(
                    "{:.0} ({} ms)",
                    dispatch.rate(),
                    dispatch.end_to_end.as_millis()
                ),
                ">= 1000",
                judged(dispatch.rate() >= 1000.0),
            );
            row(
                format!("dispatch {n}: jobs/s, first poll after -> all Jobs created"),
                format!(
                    "{:.0} ({} ms)",
                    dispatch.rate_from_first_poll(),
                    dispatch.from_first_poll.as_millis()
                ),
                "",
                Verdict::Info,
            );
            row(
                format!("dispatch {n}: first poll after -> first Job created"),
                format!("{} ms", dispatch.poll_to_first_create.as_millis()),
                "",
                Verdict::Info,
            );
            row(
                format!(
                    "dispatch {n}: raw Api<Job>::create loop, jobs/s ({} at once)",
                    self.concurrency
                ),
                format!("{:.0} ({} ms)", ceiling.rate(), ceiling.elapsed.as_millis()),
                "",
                Verdict::Info,
            );
            row(
                format!("dispatch {n}: CPU s, jobify / simulators / raw loop + simulators"),
                format!(
                    "{:.2} / {:.2} / {:.2}",
                    dispatch.cpu.jobify.as_secs_f64(),
                    dispatch.cpu.simulators.as_secs_f64(),
                    ceiling.cpu.as_secs_f64()
                ),
                "",
                Verdict::Info,
            );
            row(
                format!("dispatch {n}: jobify CPU per job"),
                format!(
                    "{:.0} us",
                    dispatch.cpu.jobify.as_secs_f64() * 1e6 / n as f64
                ),
                "",
                Verdict::Info,
            );
            row(
                format!("dispatch {n}: jobify / raw loop, end to end"),
                format!("{:.0}%", ratio * 100.0),
                ">= 80%",
                judged(ratio >= 0.8),
            );
            row(
                format!("dispatch {n}: jobify / raw loop, from first poll"),
                format!("{:.0}%", ratio_from_poll * 100.0),
                "",
                Verdict::Info,
            );
            let (requests, requested, actual) = dispatch.cost.per(n as f64);
            row(
                format!("dispatch {n}: GraphQL requests / requested / actual per job"),
                format!("{requests:.3} / {requested:.2} / {actual:.2}"),
                "actual <= 2",
                judged(actual <= 2.0),
            );
            let (_, requested_per_request, _) = dispatch.cost.per(dispatch.cost.requests as f64);
            row(
                format!("dispatch {n}: requested complexity per request (one page)"),
                format!("{requested_per_request:.0}"),
                "< 500",
                judged(requested_per_request < 500.0),
            );
            row(
                format!("dispatch {n}: RSS peak / now while tracking {n} jobs"),
                format!(
                    "{:.1} / {:.1} MiB",
                    dispatch.memory.peak as f64 / MIB,
                    dispatch.memory.now as f64 / MIB
                ),
                "peak <= 64 MiB",
                judged(dispatch.memory.peak as f64 <= 64.0 * MIB),
            );
        }
        let idle = &self.idle;
        row(
            "idle: start -> first GraphQL request".to_owned(),
            format!("{} ms", idle.first_poll.as_millis()),
            "<= 100 ms",
            judged(idle.first_poll <= Duration::from_millis(100)),
        );
        let (requests, requested, actual) = idle.cost.per(f64::from(idle.polls));
        row(
            format!(
                "idle: GraphQL requests / requested / actual per poll ({} polls)",
                idle.polls
            ),
            format!("{requests:.2} / {requested:.1} / {actual:.1}"),
            "actual <= 5, requested < 500",
            judged(actual <= 5.0 && requested < 500.0),
        );
        row(
            "idle: RSS after settling".to_owned(),
            format!("{:.1} MiB", idle.memory.now as f64 / MIB),
            "<= 30 MiB",
            judged(idle.memory.now as f64 <= 30.0 * MIB),
        );
        let latency = &self.latency;
        let bound = self.poll_interval + Duration::from_millis(100);
        row(
            format!(
                "latency: scheduled -> Job created, p50 ({} jobs at {:.0}/s)",
                latency.jobs, latency.rate
            ),
            format!("{} ms", latency.p50.as_millis()),
            "",
            Verdict::Info,
        );
        row(
            "latency: scheduled -> Job created, p99".to_owned(),
            format!("{} ms", latency.p99.as_millis()),
            "<= poll interval + 100 ms",
            judged(latency.p99 <= bound),
        );
        row(
            "latency: scheduled -> Job created, max".to_owned(),
            format!("{} ms", latency.max.as_millis()),
            "",
            Verdict::Info,
        );
        for run in &self.sources {
            let name = format!(
                "{} (poll {})",
                run.source.as_str(),
                humantime::format_duration(run.poll_interval)
            );
            row(
                format!(
                    "{name}: {} jobs, jobs/s scheduled -> Jobs created",
                    run.jobs
                ),
                format!("{:.0} ({} ms)", run.rate(), run.dispatch.as_millis()),
                "",
                Verdict::Info,
            );
            row(
                format!("{name}: API requests per dispatched job"),
                format!("{:.3}", run.requests_per_job),
                "",
                Verdict::Info,
            );
            row(
                format!("{name}: API requests per idle poll"),
                format!("{:.2}", run.idle_requests_per_poll),
                "",
                Verdict::Info,
            );
            row(
                format!(
                    "{name}: API requests per poll, {} pods still starting",
                    run.jobs
                ),
                format!("{:.2}", run.starting_requests_per_poll),
                "",
                Verdict::Info,
            );
            if let Some(points) = run.starting_points_per_poll {
                row(
                    format!(
                        "{name}: points per poll re-reading the {} starting jobs",
                        run.jobs
                    ),
                    format!("{points:.0}"),
                    "",
                    Verdict::Info,
                );
            }
        }
        let stacks = &self.stacks_latency;
        row(
            format!(
                "stacks (poll 1s): latency scheduled -> Job created, p50 / p99 ({} jobs at {:.0}/s)",
                stacks.jobs, stacks.rate
            ),
            format!("{} / {} ms", stacks.p50.as_millis(), stacks.p99.as_millis()),
            "",
            Verdict::Info,
        );
        rows
    }

    /// The table, the Stacks API requests by endpoint, and the summary line.
    pub(crate) fn render(&self) -> String {
        let rows = self.rows();
        let endpoints: Vec<String> = self
            .sources
            .iter()
            .filter(|run| !run.by_endpoint.is_empty())
            .map(|run| {
                let parts: Vec<String> = run
                    .by_endpoint
                    .iter()
                    .map(|(endpoint, n)| format!("{endpoint} {n}"))
                    .collect();
                format!(
                    "{} requests by endpoint: {}",
                    run.source.as_str(),
                    parts.join(", ")
                )
            })
            .collect();
        let width = |f: fn(&Row) -> usize, title: &str| {
            rows.iter().map(f).max().unwrap_or(0).max(title.len())
        };
        let metric_w = width(|r| r.metric.len(), "metric");
        let value_w = width(|r| r.value.len(), "value");
        let target_w = width(|r| r.target.len(), "target");
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:metric_w$}  {:>value_w$}  {:target_w$}  verdict",
            "metric", "value", "target"
        );
        for r in &rows {
            let verdict = match r.verdict {
                Verdict::Info => "",
                _ if !self.judge => "(smoke: not judged)",
                Verdict::Met => "met",
                Verdict::Missed => "MISSED",
            };
            let _ = writeln!(
                out,
                "{:metric_w$}  {:>value_w$}  {:target_w$}  {verdict}",
                r.metric, r.value, r.target
            );
        }
        for line in &endpoints {
            let _ = writeln!(out, "{line}");
        }
        let judged: Vec<&Row> = rows.iter().filter(|r| r.verdict != Verdict::Info).collect();
        let met = judged.iter().filter(|r| r.verdict == Verdict::Met).count();
        if self.judge {
            let _ = write!(out, "summary: {met}/{} targets met", judged.len());
        } else {
            let _ = write!(out, "summary: smoke run completed");
        }
        if let Some((dispatch, ceiling)) = self.runs.last() {
            let _ = write!(
                out,
                "; {} jobs at {:.0} jobs/s ({:.0}% of the raw loop's {:.0}), {:.2} actual points/job, \
                 {:.1} MiB peak RSS",
                dispatch.jobs,
                dispatch.rate(),
                dispatch.rate() / ceiling.rate() * 100.0,
                ceiling.rate(),
                dispatch.cost.per(dispatch.jobs as f64).2,
                dispatch.memory.peak as f64 / MIB
            );
        }
        let _ = writeln!(
            out,
            "; p50/p99 {}/{} ms; first poll {} ms; idle {:.1} MiB; every job dispatched exactly once, \
             through both sources",
            self.latency.p50.as_millis(),
            self.latency.p99.as_millis(),
            self.idle.first_poll.as_millis(),
            self.idle.memory.now as f64 / MIB
        );
        out
    }
}
