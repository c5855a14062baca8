//! The demo's jobs: a few pipelines, about fifty jobs, and for each what must happen to it.

use std::fmt;
use std::time::Duration;

use jobify_sim::buildkite::JobSpec;
use serde_json::{Value, json};

/// The queue jobify serves in the demo.
pub(crate) const QUEUE: &str = "kubernetes";
/// A queue jobify does not serve: its jobs are left for other agents.
pub(crate) const OTHER_QUEUE: &str = "macos";
/// The pipeline the demo's policy skips.
pub(crate) const SKIPPED_PIPELINE: &str = "legacy";
/// What marks an image the Kubernetes simulator cannot pull (the demo sets this marker).
pub(crate) const UNPULLABLE_MARKER: &str = "does-not-exist";
/// The image the Kubernetes simulator cannot pull.
pub(crate) const UNPULLABLE_IMAGE: &str = "ghcr.io/acme/does-not-exist:1";
/// What marks an image the Kubernetes simulator starts slowly (the demo sets this marker).
pub(crate) const SLOW_MARKER: &str = "slow-toolchain";
/// An image the Kubernetes simulator starts slowly, so its pod is still pending when the
/// demo cancels the job.
pub(crate) const SLOW_IMAGE: &str = "ghcr.io/acme/slow-toolchain:2";

/// What must happen to a job, as the simulators show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Expected {
    /// One Job; the agent acquires the job once; it finishes with exit status 0.
    Passes,
    /// One Job; the agent acquires the job once; it finishes with this non-zero exit status.
    Fails(i32),
    /// The policy skips it: no Job, no annotation, still scheduled (for other agents).
    Skipped,
    /// On a queue jobify does not serve: no Job, no annotation, still scheduled.
    NotServed,
    /// Refused before any Job exists: annotated with this reason code and cancelled.
    Rejected(&'static str),
    /// Its Job is created but its pod can never start: the Job is deleted, the job annotated
    /// with this reason code and cancelled, never acquired.
    CouldNotStart(&'static str),
    /// The demo cancels it in Buildkite while its pod is pending: jobify deletes its Job;
    /// the job is never acquired.
    CancelledWhilePending,
}

impl Expected {
    /// Whether jobify should create a Job for it.
    pub(crate) fn gets_a_job(&self) -> bool {
        matches!(
            self,
            Expected::Passes
                | Expected::Fails(_)
                | Expected::CouldNotStart(_)
                | Expected::CancelledWhilePending
        )
    }
}

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expected::Passes => f.write_str("runs once and passes"),
            Expected::Fails(status) => write!(f, "runs once and fails with exit {status}"),
            Expected::Skipped => f.write_str("skipped by the policy, left scheduled"),
            Expected::NotServed => f.write_str("not our queue, left scheduled"),
            Expected::Rejected(code) => write!(f, "rejected ({code}), no Job"),
            Expected::CouldNotStart(code) => write!(f, "failed to start ({code}), Job deleted"),
            Expected::CancelledWhilePending => f.write_str("cancelled while pending, Job deleted"),
        }
    }
}

/// One job of the scenario.
#[derive(Clone, Debug)]
pub(crate) struct DemoJob {
    /// What to schedule.
    pub(crate) spec: JobSpec,
    /// What must happen to it.
    pub(crate) expected: Expected,
    /// Why it is in the scenario, shown in the summary when the simulators cannot show the
    /// reason (a skipped job leaves no trace).
    pub(crate) intent: &'static str,
}

impl DemoJob {
    /// `pipeline/label`, the job's name in progress lines and the summary.
    pub(crate) fn name(&self) -> String {
        format!("{}/{}", self.spec.pipeline, self.spec.label)
    }
}

/// The demo's jobs, in the order they are scheduled.
pub(crate) fn jobs() -> Vec<DemoJob> {
    let mut jobs = Vec::new();
    let ordinary = |pipeline: &str, label: String, n: usize| DemoJob {
        spec: step(pipeline, &label, n),
        expected: Expected::Passes,
        intent: "default agent pod",
    };
    for n in 0..14 {
        jobs.push(ordinary("app", format!("test shard {n}"), n));
    }
    for n in 0..8 {
        jobs.push(DemoJob {
            spec: step("api", &format!("cargo test {n}"), n)
                .with_plugins(pod_spec("rust:1.95", "cargo test")),
            expected: Expected::Passes,
            intent: "its own pod spec",
        });
    }
    for n in 0..8 {
        jobs.push(DemoJob {
            spec: step("web", &format!("npm test {n}"), n)
                .with_plugins(pod_spec("node:22", "npm test")),
            expected: Expected::Passes,
            intent: "its own pod spec",
        });
    }
    for n in 0..10 {
        jobs.push(ordinary("infra", format!("terraform plan {n}"), n));
    }
    jobs.push(DemoJob {
        spec: step("infra", "lint", 3).running(Duration::from_millis(300), 2),
        expected: Expected::Fails(2),
        intent: "its command fails",
    });
    for n in 0..2 {
        jobs.push(DemoJob {
            spec: step(SKIPPED_PIPELINE, &format!("build {n}"), n),
            expected: Expected::Skipped,
            intent: "policy rule legacy-agents: skip",
        });
    }
    jobs.push(DemoJob {
        spec: step("app", "docker build", 0).with_plugins(json!([{
            "kubernetes": { "podSpec": { "containers": [{
                "image": "docker:27",
                "command": ["docker build ."],
                "securityContext": { "privileged": true },
            }]}}
        }])),
        expected: Expected::Rejected("guard_denied"),
        intent: "privileged container",
    });
    jobs.push(DemoJob {
        spec: step("web", "e2e tests", 0).with_plugins(pod_spec(UNPULLABLE_IMAGE, "make e2e")),
        expected: Expected::CouldNotStart("image_pull_failed"),
        intent: "image cannot be pulled",
    });
    jobs.push(DemoJob {
        spec: step("api", "slow integration", 0).with_plugins(pod_spec(SLOW_IMAGE, "make it")),
        expected: Expected::CancelledWhilePending,
        intent: "cancelled by a user while pending",
    });
    for n in 0..2 {
        jobs.push(DemoJob {
            spec: step("app", &format!("xcodebuild {n}"), n).on_queue(OTHER_QUEUE),
            expected: Expected::NotServed,
            intent: "queue macos is not served",
        });
    }
    jobs
}

/// A step on the served queue, running a few hundred milliseconds (varying with `n`).
fn step(pipeline: &str, label: &str, n: usize) -> JobSpec {
    let run_for = Duration::from_millis(200 + 100 * (n as u64 % 5));
    JobSpec {
        label: label.to_owned(),
        ..JobSpec::command(label)
    }
    .on_pipeline(pipeline)
    .on_queue(QUEUE)
    .running(run_for, 0)
}

/// A `kubernetes` plugin with a one-container pod spec.
fn pod_spec(image: &str, command: &str) -> Value {
    json!([{
        "github.com/buildkite-plugins/kubernetes-buildkite-plugin#v1.0.0": {
            "podSpec": { "containers": [{ "image": image, "command": [command] }] }
        }
    }])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_has_about_fifty_jobs_and_every_kind_of_outcome() {
        let jobs = jobs();
        assert!((45..=60).contains(&jobs.len()), "{}", jobs.len());
        let has = |pred: fn(&Expected) -> bool| jobs.iter().any(|j| pred(&j.expected));
        assert!(has(|e| *e == Expected::Passes));
        assert!(has(|e| matches!(e, Expected::Fails(_))));
        assert!(has(|e| *e == Expected::Skipped));
        assert!(has(|e| *e == Expected::NotServed));
        assert!(has(|e| matches!(e, Expected::Rejected(_))));
        assert!(has(|e| matches!(e, Expected::CouldNotStart(_))));
        assert!(has(|e| *e == Expected::CancelledWhilePending));
        let pod_specs = jobs.iter().filter(|j| j.spec.plugins.is_some()).count();
        assert!(pod_specs >= 10, "{pod_specs}");
    }

    #[test]
    fn marked_images_carry_their_markers() {
        assert!(UNPULLABLE_IMAGE.contains(UNPULLABLE_MARKER));
        assert!(SLOW_IMAGE.contains(SLOW_MARKER));
    }

    #[test]
    fn job_names_are_unique() {
        let jobs = jobs();
        let names: std::collections::BTreeSet<String> = jobs.iter().map(DemoJob::name).collect();
        assert_eq!(names.len(), jobs.len());
    }
}
