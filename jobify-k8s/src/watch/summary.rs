//! The few fields of a Job or pod that jobify keeps. Watched objects are reduced to these at
//! once, so memory stays small with tens of thousands of Jobs.

use jobify_core::{JobId, Workload};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};

use crate::labels;
use crate::watch::fail_fast::{
    ContainerTerminated, ContainerWaiting, MESSAGE_TAIL, PodObservation,
};

/// How a Job ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Condition `Complete`.
    Succeeded,
    /// Condition `Failed` (including deadline exceeded).
    Failed,
}

/// What jobify keeps of a Job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobSummary {
    /// The Buildkite job it runs.
    pub job: JobId,
    /// Its Kubernetes name.
    pub name: String,
    /// Queue (verbatim, from the annotation).
    pub queue: Option<String>,
    /// Pipeline (verbatim, from the annotation).
    pub pipeline: Option<String>,
    /// How it ended, if it has.
    pub outcome: Option<Outcome>,
    /// Its pods that failed (`status.failed`): the pods it tried, when it failed.
    pub failed_pods: u32,
    /// It is being deleted (jobify, a person or the TTL controller removes it).
    pub deleting: bool,
    /// jobify stopped it (annotation [`labels::STOPPED_ANNOTATION`]): its agent had ended
    /// while other containers kept its pod running.
    pub stopped: bool,
}

impl JobSummary {
    /// Reduces a Job; `None` for a Job without a valid job uuid label (not jobify's).
    pub fn from_job(job: &Job) -> Option<Self> {
        let meta = &job.metadata;
        let id = meta.labels.as_ref()?.get(labels::JOB_UUID)?.parse().ok()?;
        let annotation = |key: &str| meta.annotations.as_ref().and_then(|a| a.get(key)).cloned();
        Some(JobSummary {
            job: id,
            name: meta.name.clone().unwrap_or_default(),
            queue: annotation(labels::QUEUE_ANNOTATION),
            pipeline: annotation(labels::PIPELINE_ANNOTATION),
            outcome: outcome(job),
            failed_pods: job
                .status
                .as_ref()
                .and_then(|s| s.failed)
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(0),
            deleting: meta.deletion_timestamp.is_some(),
            stopped: annotation(labels::STOPPED_ANNOTATION).is_some(),
        })
    }

    /// The workload the core sees.
    pub fn workload(&self) -> Workload {
        Workload {
            job: self.job,
            queue: self.queue.clone(),
            pipeline: self.pipeline.clone(),
            finished: self.outcome.is_some(),
        }
    }
}

fn outcome(job: &Job) -> Option<Outcome> {
    let status = job.status.as_ref()?;
    for condition in status.conditions.iter().flatten() {
        if condition.status != "True" {
            continue;
        }
        match condition.type_.as_str() {
            "Complete" => return Some(Outcome::Succeeded),
            "Failed" => return Some(Outcome::Failed),
            _ => {}
        }
    }
    None
}

/// What jobify keeps of a pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodSummary {
    /// The Buildkite job it runs.
    pub job: JobId,
    /// What fail-fast needs.
    pub observation: PodObservation,
    /// The regular containers still running although the agent container has terminated
    /// (a service declared as a container rather than a sidecar, a process that ignores the
    /// end of the job), sorted; empty while the agent runs or once they all ended.
    pub lingering: Vec<String>,
}

impl PodSummary {
    /// Reduces a pod; `None` for a pod without a valid job uuid label.
    pub fn from_pod(pod: &Pod) -> Option<Self> {
        let meta = &pod.metadata;
        let job = meta.labels.as_ref()?.get(labels::JOB_UUID)?.parse().ok()?;
        let status = pod.status.as_ref();
        let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("Pending");
        let statuses = || {
            status.into_iter().flat_map(|s| {
                s.init_container_statuses
                    .iter()
                    .flatten()
                    .chain(s.container_statuses.iter().flatten())
            })
        };
        let unschedulable = status
            .into_iter()
            .flat_map(|s| s.conditions.iter().flatten())
            .find(|c| {
                c.type_ == "PodScheduled"
                    && c.status == "False"
                    && c.reason.as_deref() == Some("Unschedulable")
            })
            .map(|c| {
                c.message
                    .clone()
                    .unwrap_or_else(|| "Unschedulable".to_owned())
            });
        let waiting = statuses().filter_map(waiting).collect();
        // A native sidecar that exits is restarted by the kubelet, and is stopped (often
        // with a non-zero code) once the regular containers end: neither is a job failure.
        let sidecars = native_sidecars(pod);
        let init_failures = status
            .into_iter()
            .flat_map(|s| s.init_container_statuses.iter().flatten())
            .filter(|c| !sidecars.contains(&c.name.as_str()))
            .filter_map(failed)
            .collect();
        // A container ran if it runs, or ended after it started.
        let any_ran = status
            .into_iter()
            .flat_map(|s| s.container_statuses.iter().flatten())
            .any(|c| {
                c.state.as_ref().is_some_and(|s| {
                    s.running.is_some()
                        || s.terminated
                            .as_ref()
                            .is_some_and(|t| t.started_at.is_some())
                }) || c
                    .last_state
                    .as_ref()
                    .is_some_and(|s| s.terminated.is_some())
            });
        let failed_before_start = (phase == "Failed" && !any_ran).then(|| {
            let reason = status
                .and_then(|s| s.reason.clone())
                .unwrap_or_else(|| "Failed".to_owned());
            match status.and_then(|s| s.message.clone()) {
                Some(message) if !message.is_empty() => format!("{reason}: {message}"),
                _ => reason,
            }
        });
        let disrupted = status
            .into_iter()
            .flat_map(|s| s.conditions.iter().flatten())
            .find(|c| c.type_ == "DisruptionTarget" && c.status == "True")
            .map(|c| match &c.reason {
                Some(reason) => format!("DisruptionTarget: {reason}"),
                None => "DisruptionTarget".to_owned(),
            });
        let lingering = status.map(outlived_agent).unwrap_or_default();
        Some(PodSummary {
            job,
            lingering,
            observation: PodObservation {
                name: meta.name.clone().unwrap_or_default(),
                // Kubernetes keeps a pod Pending until every container has been created: the
                // agent may already run while a command container's image cannot be pulled,
                // and that pod still can never run the job. A pod that failed before any of
                // its containers ran never started either.
                started: match phase {
                    "Pending" => false,
                    "Failed" => any_ran,
                    _ => true,
                },
                unschedulable,
                waiting,
                init_failures,
                failed_before_start,
                disrupted,
            },
        })
    }
}

/// The regular containers running after the agent container terminated, sorted.
fn outlived_agent(status: &k8s_openapi::api::core::v1::PodStatus) -> Vec<String> {
    let containers = status.container_statuses.iter().flatten();
    let agent_ended = containers.clone().any(|c| {
        c.name == crate::render::AGENT_CONTAINER
            && c.state.as_ref().is_some_and(|s| s.terminated.is_some())
    });
    if !agent_ended {
        return Vec::new();
    }
    let mut running: Vec<String> = containers
        .filter(|c| c.name != crate::render::AGENT_CONTAINER)
        .filter(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()))
        .map(|c| c.name.clone())
        .collect();
    running.sort();
    running
}

/// The names of the pod's native sidecars: init containers with `restartPolicy: Always`.
pub(crate) fn native_sidecars(pod: &Pod) -> Vec<&str> {
    pod.spec
        .iter()
        .flat_map(|s| s.init_containers.iter().flatten())
        .filter(|c| crate::render::is_native_sidecar(c))
        .map(|c| c.name.as_str())
        .collect()
}

/// An init container that exited non-zero, now or on its last run (`restartPolicy:
/// OnFailure` restarts it).
fn failed(status: &ContainerStatus) -> Option<ContainerTerminated> {
    let terminated = [status.state.as_ref(), status.last_state.as_ref()]
        .into_iter()
        .flatten()
        .find_map(|s| s.terminated.as_ref().filter(|t| t.exit_code != 0))?;
    let message = terminated.message.clone().unwrap_or_default();
    Some(ContainerTerminated {
        container: status.name.clone(),
        exit_code: terminated.exit_code,
        reason: terminated.reason.clone().unwrap_or_default(),
        message: tail(&message, MESSAGE_TAIL).to_owned(),
    })
}

/// The last `max` bytes of `text`, cut at a character boundary.
fn tail(text: &str, max: usize) -> &str {
    let mut start = text.len().saturating_sub(max);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

fn waiting(status: &ContainerStatus) -> Option<ContainerWaiting> {
    let waiting = status.state.as_ref()?.waiting.as_ref()?;
    Some(ContainerWaiting {
        container: status.name.clone(),
        image: status.image.clone(),
        reason: waiting.reason.clone().unwrap_or_default(),
        message: waiting.message.clone().unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const UUID: &str = "01900000-0000-7000-8000-000000000001";

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "labels": {"jobify.dev/job-uuid": UUID}},
            "status": status
        }))
        .expect("pod")
    }

    #[test]
    fn a_pending_pod_with_a_pull_error_is_waiting() {
        let summary = PodSummary::from_pod(&pod(json!({
            "phase": "Pending",
            "initContainerStatuses": [{"name": "copy-agent", "image": "agent:3", "imageID": "",
                "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": 0}}}],
            "containerStatuses": [{"name": "agent", "image": "nope", "imageID": "", "ready": false,
                "restartCount": 0,
                "state": {"waiting": {"reason": "ErrImagePull", "message": "not found"}}}]
        })))
        .expect("summary");
        assert_eq!(summary.job.to_string(), UUID);
        assert!(!summary.observation.started);
        assert_eq!(summary.observation.waiting.len(), 1);
        assert_eq!(summary.observation.waiting[0].reason, "ErrImagePull");
    }

    #[test]
    fn a_pending_pod_whose_agent_runs_but_whose_command_image_cannot_be_pulled_has_not_started() {
        let summary = PodSummary::from_pod(&pod(json!({
            "phase": "Pending",
            "containerStatuses": [
                {"name": "agent", "image": "agent:3", "imageID": "", "ready": true,
                 "restartCount": 0, "state": {"running": {}}},
                {"name": "checkout", "image": "agent:3", "imageID": "", "ready": true,
                 "restartCount": 0, "state": {"running": {}}},
                {"name": "build", "image": "rust:typo", "imageID": "", "ready": false,
                 "restartCount": 0,
                 "state": {"waiting": {"reason": "ImagePullBackOff", "message": "not found"}}}]
        })))
        .expect("summary");
        assert!(!summary.observation.started);
        assert_eq!(summary.observation.waiting.len(), 1);
        assert_eq!(summary.observation.waiting[0].container, "build");
    }

    #[test]
    fn an_unschedulable_pod_keeps_the_schedulers_message() {
        let summary = PodSummary::from_pod(&pod(json!({
            "phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                            "message": "0/1 nodes are available"}]
        })))
        .expect("summary");
        assert_eq!(
            summary.observation.unschedulable.as_deref(),
            Some("0/1 nodes are available")
        );
    }

    #[test]
    fn a_failed_init_container_is_kept_with_its_exit_code_and_the_tail_of_its_message() {
        let long = format!("{}fatal: repository not found", "x".repeat(2_000));
        let summary = PodSummary::from_pod(&pod(json!({
            "phase": "Failed",
            "initContainerStatuses": [{"name": "checkout", "image": "agent:3", "imageID": "",
                "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": 128, "reason": "Error", "message": long}}}],
            "containerStatuses": [{"name": "agent", "image": "agent:3", "imageID": "",
                "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": "PodInitializing"}}}]
        })))
        .expect("summary");
        let observation = &summary.observation;
        assert!(!observation.started, "no container ran");
        let failed = &observation.init_failures[0];
        assert_eq!(
            (failed.container.as_str(), failed.exit_code),
            ("checkout", 128)
        );
        assert!(failed.message.ends_with("fatal: repository not found"));
        assert_eq!(failed.message.len(), MESSAGE_TAIL);
        assert_eq!(observation.failed_before_start.as_deref(), Some("Failed"));
    }

    #[test]
    fn a_native_sidecar_that_exited_non_zero_is_no_init_failure() {
        let mut pod = pod(json!({
            "phase": "Running",
            "initContainerStatuses": [
                {"name": "copy-agent", "image": "agent:3", "imageID": "", "ready": false,
                 "restartCount": 0, "state": {"terminated": {"exitCode": 0}}},
                {"name": "postgres", "image": "postgres:17", "imageID": "", "ready": true,
                 "restartCount": 1, "started": true, "state": {"running": {}},
                 "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}}}],
            "containerStatuses": [{"name": "agent", "image": "agent:3", "imageID": "",
                "ready": true, "restartCount": 0, "state": {"running": {}}}]
        }));
        pod.spec = Some(
            serde_json::from_value(json!({
                "initContainers": [
                    {"name": "copy-agent", "image": "agent:3"},
                    {"name": "postgres", "image": "postgres:17", "restartPolicy": "Always"}],
                "containers": [{"name": "agent", "image": "agent:3"}]
            }))
            .expect("spec"),
        );
        let summary = PodSummary::from_pod(&pod).expect("summary");
        assert!(summary.observation.started);
        assert!(summary.observation.init_failures.is_empty());
    }

    #[test]
    fn an_evicted_pod_whose_containers_never_ran_failed_before_start_but_one_that_ran_did_not() {
        let evicted = PodSummary::from_pod(&pod(json!({
            "phase": "Failed", "reason": "Evicted", "message": "The node was low on resource: memory."
        })))
        .expect("summary");
        assert!(!evicted.observation.started);
        assert_eq!(
            evicted.observation.failed_before_start.as_deref(),
            Some("Evicted: The node was low on resource: memory.")
        );
        let ran = PodSummary::from_pod(&pod(json!({
            "phase": "Failed", "reason": "Evicted",
            "containerStatuses": [{"name": "agent", "image": "agent:3", "imageID": "",
                "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": 137, "startedAt": "2026-12-03T10:00:00Z"}}}]
        })))
        .expect("summary");
        assert!(
            ran.observation.started,
            "the agent ran: Buildkite knows the job"
        );
        assert_eq!(ran.observation.failed_before_start, None);
    }

    #[test]
    fn a_running_pod_has_started() {
        let summary = PodSummary::from_pod(&pod(json!({"phase": "Running"}))).expect("summary");
        assert!(summary.observation.started);
    }

    #[test]
    fn jobs_without_the_uuid_label_are_not_ours() {
        let job: Job = serde_json::from_value(json!({"metadata": {"name": "x"}})).expect("job");
        assert_eq!(JobSummary::from_job(&job), None);
    }

    #[test]
    fn job_conditions_give_the_outcome() {
        let job: Job = serde_json::from_value(json!({
            "metadata": {"name": "x", "labels": {"jobify.dev/job-uuid": UUID},
                         "annotations": {"jobify.dev/queue": "k8s", "jobify.dev/pipeline": "app"}},
            "status": {"conditions": [
                {"type": "FailureTarget", "status": "True"},
                {"type": "Failed", "status": "True"}]}
        }))
        .expect("job");
        let summary = JobSummary::from_job(&job).expect("ours");
        assert_eq!(summary.outcome, Some(Outcome::Failed));
        let workload = summary.workload();
        assert_eq!(workload.queue.as_deref(), Some("k8s"));
        assert!(workload.finished);
    }

    fn container(name: &str, state: serde_json::Value) -> serde_json::Value {
        json!({"name": name, "image": "x", "imageID": "", "ready": false, "restartCount": 0,
            "state": state})
    }

    #[test]
    fn containers_running_after_the_agent_ended_are_lingering() {
        let running = json!({"running": {"startedAt": "2026-01-01T00:00:00Z"}});
        let ended = json!({"terminated": {"exitCode": 0, "startedAt": "2026-01-01T00:00:00Z"}});
        let summary = |agent: &serde_json::Value| {
            PodSummary::from_pod(&pod(json!({
                "phase": "Running",
                // A native sidecar still running is the kubelet's to stop, not jobify's.
                "initContainerStatuses": [container("postgres", running.clone())],
                "containerStatuses": [
                    container("agent", agent.clone()),
                    container("container-0", ended.clone()),
                    container("logger", running.clone()),
                    container("dind", running.clone()),
                ]
            })))
            .expect("summary")
        };
        assert_eq!(summary(&ended).lingering, ["dind", "logger"]);
        assert!(
            summary(&running).lingering.is_empty(),
            "the agent still runs"
        );
        let all_ended = PodSummary::from_pod(&pod(json!({
            "phase": "Succeeded",
            "containerStatuses": [container("agent", ended.clone()), container("x", ended)]
        })))
        .expect("summary");
        assert!(all_ended.lingering.is_empty());
    }

    #[test]
    fn a_job_jobify_stopped_says_so() {
        let job: Job = serde_json::from_value(json!({
            "metadata": {"name": "x", "labels": {"jobify.dev/job-uuid": UUID},
                         "annotations": {"jobify.dev/stopped": "the agent ended"}}
        }))
        .expect("job");
        assert!(JobSummary::from_job(&job).expect("ours").stopped);
    }
}
