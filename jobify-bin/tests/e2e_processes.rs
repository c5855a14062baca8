//! The real binary as a user runs it: `jobify demo` passes, and `jobify sim` in one process
//! with `jobify run` in another, started with exactly the command `sim` prints, runs the jobs
//! `sim --jobs` scheduled; both stop cleanly on SIGTERM.

mod process;

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use process::{jobify, terminate};

/// How long any step may take before the test gives up (it waits for lines, not for time).
const PATIENCE: Duration = Duration::from_secs(90);

/// The lines a child prints on stdout, as they come.
fn lines(child: &mut Child) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().expect("piped stdout");
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if send.send(line).is_err() {
                break;
            }
        }
    });
    receive
}

/// Waits for the first line `matches` accepts; panics with what was seen after [`PATIENCE`].
fn wait_for(lines: &mpsc::Receiver<String>, what: &str, matches: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + PATIENCE;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if matches(&line) => return line,
            Ok(line) => seen.push(line),
            Err(_) => panic!(
                "no line {what} within {PATIENCE:?}; seen:\n{}",
                seen.join("\n")
            ),
        }
    }
}

fn exit_code(child: &mut Child) -> Option<i32> {
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status.code();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn jobify_run_started_as_sim_prints_runs_the_scheduled_jobs_and_both_stop_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut sim = jobify()
        .args(["sim", "--jobs", "6", "--run-for", "200ms", "--dir"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start jobify sim");
    let sim_lines = lines(&mut sim);
    let command = wait_for(&sim_lines, "with the run command", |line| {
        line.trim_start().starts_with("KUBECONFIG=") && line.contains(" jobify run -c ")
    });

    // KUBECONFIG=<path> BUILDKITE_API_TOKEN=<token> jobify run -c <path>
    let words: Vec<&str> = command.split_whitespace().collect();
    let mut run = jobify();
    for word in &words {
        if let Some((name, value)) = word.split_once('=')
            && name.chars().all(|c| c.is_ascii_uppercase() || c == '_')
        {
            run.env(name, value);
        }
    }
    let program = words
        .iter()
        .position(|w| *w == "jobify")
        .expect("the command names jobify");
    assert_eq!(words[program + 1..program + 3], ["run", "-c"]);
    let config = words[program + 3];
    assert!(config.starts_with(&dir.path().display().to_string()));
    let check = jobify()
        .args(["check", "-c", config])
        .output()
        .expect("jobify check");
    assert!(check.status.success(), "{check:?}");

    let mut run = run
        .args(["run", "-c", config])
        .stdout(Stdio::null())
        .spawn()
        .expect("start jobify run");
    wait_for(&sim_lines, "saying all 6 jobs finished", |line| {
        line.contains("jobs: 6 finished") && line.contains("6 Job creates, 0 conflicts")
    });

    terminate(&run);
    assert_eq!(
        exit_code(&mut run),
        Some(0),
        "jobify run exits 0 on SIGTERM"
    );
    terminate(&sim);
    assert_eq!(
        exit_code(&mut sim),
        Some(0),
        "jobify sim exits 0 on SIGTERM"
    );
}

#[test]
fn demo_passes_and_ends_with_the_summary_table() {
    let output = jobify()
        .args(["demo", "--deadline", "60s"])
        .output()
        .expect("run jobify demo");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "demo failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("demo passed"), "{stdout}");
    let header = stdout
        .lines()
        .find(|line| line.starts_with("JOB "))
        .expect("summary header");
    for column in ["DECISION", "REASON", "OUTCOME", "CHECK"] {
        assert!(header.contains(column), "{header}");
    }
    for needle in [
        "guard_denied",
        "image_pull_failed",
        "cancelled by a user, Job deleted",
    ] {
        assert!(stdout.contains(needle), "no {needle} in\n{stdout}");
    }
}

#[test]
fn demo_with_the_stacks_source_passes_and_shows_the_timeline() {
    let output = jobify()
        .args(["demo", "--source", "stacks", "--deadline", "60s"])
        .output()
        .expect("run jobify demo --source stacks");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "demo failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("demo passed"), "{stdout}");
    assert!(stdout.contains("only an agent token"), "{stdout}");
    for needle in [
        "timeline: jobify created the Kubernetes Job",
        "timeline: jobify: the pod is waiting",
        "failed (exit -1)",
    ] {
        assert!(stdout.contains(needle), "no {needle} in\n{stdout}");
    }
}
