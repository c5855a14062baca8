//! The table the demo ends with: one row per job with what jobify decided (as the simulators
//! show it), why, what became of the job, and whether that is what the scenario expects.

use std::io::Write;

use super::observe::Observation;
use super::outcome::Verdict;
use super::scenario::DemoJob;

/// Longest reason shown in a cell; longer ones are cut with `…`.
const REASON_WIDTH: usize = 70;

/// One row's cells.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Row {
    /// `pipeline/label`.
    pub(crate) job: String,
    /// `run`, `reject` or `none`.
    pub(crate) decision: String,
    /// Why: jobify's reason code and message, the pod it ran in, or the scenario's intent.
    pub(crate) reason: String,
    /// The Buildkite job's fate, and its Job's.
    pub(crate) outcome: String,
    /// `ok`, or what is wrong or missing.
    pub(crate) check: String,
}

/// The row of `job`, observed as `observed` and judged `verdict`.
pub(crate) fn row(
    job: &DemoJob,
    observed: &Observation,
    verdict: &Verdict,
    agent_image: &str,
) -> Row {
    let decision = if observed.job_seen {
        "run"
    } else if observed.annotation.is_some() {
        "reject"
    } else {
        "none"
    };
    let reason = match (observed.reason_code(), observed.reason_message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        _ if observed.job_seen => {
            let own: Vec<&str> = observed
                .images
                .iter()
                .map(String::as_str)
                .filter(|image| *image != agent_image)
                .collect();
            if own.is_empty() {
                "default agent pod".to_owned()
            } else {
                format!("own pod spec ({})", own.join(", "))
            }
        }
        _ => job.intent.to_owned(),
    };
    let check = match verdict {
        Verdict::Met => "ok".to_owned(),
        Verdict::Waiting(missing) => format!("MISSING: {missing}"),
        Verdict::Wrong(what) => format!("WRONG: {what}"),
    };
    Row {
        job: job.name(),
        decision: decision.to_owned(),
        reason: cut(&reason, REASON_WIDTH),
        outcome: outcome(observed),
        check,
    }
}

/// What became of the job, e.g. `passed`, `failed (exit 2)`, `cancelled, Job deleted`.
fn outcome(o: &Observation) -> String {
    let job = match (o.job_seen, o.job_present) {
        (true, false) => ", Job deleted",
        _ => "",
    };
    match o.state.as_str() {
        "FINISHED" if o.exit_status == Some(0) => "passed".to_owned(),
        "FINISHED" => format!(
            "failed (exit {})",
            o.exit_status
                .map_or_else(|| "?".to_owned(), |s| s.to_string())
        ),
        "CANCELED" if o.canceled_by_api => format!("failed by jobify{job}"),
        "CANCELED" => format!("cancelled by a user{job}"),
        "" => "unknown to Buildkite".to_owned(),
        state => format!("{}{job}", state.to_lowercase()),
    }
}

/// `text` on one line, cut to `width` characters with `…`.
pub(crate) fn cut(text: &str, width: usize) -> String {
    let one_line = text.replace('\n', " ");
    if one_line.chars().count() <= width {
        return one_line;
    }
    let kept: String = one_line.chars().take(width - 1).collect();
    format!("{kept}…")
}

/// Writes `rows` as an aligned table with a header.
pub(crate) fn write_table(out: &mut impl Write, rows: &[Row]) -> std::io::Result<()> {
    let header = ["JOB", "DECISION", "REASON", "OUTCOME", "CHECK"].map(str::to_owned);
    let cells: Vec<[String; 5]> = rows
        .iter()
        .map(|r| {
            [
                r.job.clone(),
                r.decision.clone(),
                r.reason.clone(),
                r.outcome.clone(),
                r.check.clone(),
            ]
        })
        .collect();
    let mut widths = header.clone().map(|h| h.chars().count());
    for row in &cells {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(&cells) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let pad = widths[i] - cell.chars().count();
                line.push_str(cell);
                line.push_str(&" ".repeat(pad + 2));
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::scenario::jobs;

    #[test]
    fn table_aligns_columns_and_names_the_reason() {
        let job = &jobs()[0];
        let observed = Observation {
            state: "FINISHED".into(),
            exit_status: Some(0),
            acquired_count: 1,
            job_seen: true,
            images: vec!["agent:3".into(), "rust:1.95".into()],
            ..Observation::default()
        };
        let rejected = Observation {
            state: "CANCELED".into(),
            canceled_by_api: true,
            annotation: Some(
                "**jobify did not run this job.** privileged\n\n<sub>reason code `guard_denied`</sub>"
                    .into(),
            ),
            ..Observation::default()
        };
        let rows = [
            row(job, &observed, &Verdict::Met, "agent:3"),
            row(job, &rejected, &Verdict::Wrong("x".into()), "agent:3"),
        ];
        assert_eq!(rows[0].reason, "own pod spec (rust:1.95)");
        assert_eq!(rows[0].outcome, "passed");
        assert_eq!(rows[1].decision, "reject");
        assert_eq!(rows[1].reason, "guard_denied: privileged");
        assert_eq!(rows[1].outcome, "failed by jobify");
        let mut out = Vec::new();
        write_table(&mut out, &rows).expect("write");
        let text = String::from_utf8(out).expect("utf8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        let column = |line: &str| line.find("run").or_else(|| line.find("reject"));
        assert_eq!(lines[0].find("DECISION"), column(lines[1]));
        assert_eq!(lines[0].find("DECISION"), column(lines[2]));
        assert!(lines[2].ends_with("WRONG: x"), "{}", lines[2]);
    }

    #[test]
    fn long_reasons_are_cut_to_one_line() {
        let text = "a\n".repeat(100);
        let cut = cut(&text, 10);
        assert_eq!(cut.chars().count(), 10);
        assert!(!cut.contains('\n'));
    }
}
