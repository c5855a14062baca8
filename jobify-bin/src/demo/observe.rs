//! What the simulators show about each demo job: the Buildkite job's state and annotations,
//! and the Kubernetes Job and pod jobify made for it. Nothing here asks jobify.

use std::collections::{HashMap, HashSet};

use jobify_buildkite::ANNOTATION_CONTEXT;
use jobify_k8s::labels::JOB_UUID;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use uuid::Uuid;

use crate::simenv::SimEnv;

/// One job as the simulators show it now (and, for the Job, ever showed it).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Observation {
    /// The Buildkite job's state (`SCHEDULED`, `RUNNING`, `FINISHED`, `CANCELED`, ...).
    pub(crate) state: String,
    /// Its exit status, once finished.
    pub(crate) exit_status: Option<i32>,
    /// The body of jobify's annotation on the job, if any.
    pub(crate) annotation: Option<String>,
    /// Cancelled through the API (jobify's feedback) rather than by a user.
    pub(crate) canceled_by_api: bool,
    /// How many times agents acquired it.
    pub(crate) acquired_count: u32,
    /// A Job for it has existed at some point of the demo.
    pub(crate) job_seen: bool,
    /// A Job for it exists now.
    pub(crate) job_present: bool,
    /// The phase of its pod now (`Pending`, `Running`, `Succeeded`, `Failed`).
    pub(crate) pod_phase: Option<String>,
    /// The images of its pod's containers, as last seen (agent first).
    pub(crate) images: Vec<String>,
    /// Its timeline's stack notifications (the Stacks source).
    pub(crate) notifications: Vec<String>,
}

impl Observation {
    /// The reason code in jobify's annotation (`guard_denied`, `image_pull_failed`, ...).
    pub(crate) fn reason_code(&self) -> Option<&str> {
        let body = self.annotation.as_deref()?;
        let start = body.find("reason code `")? + "reason code `".len();
        let end = body[start..].find('`')?;
        Some(&body[start..start + end])
    }

    /// The sentence jobify gave in its annotation, without the Markdown around it.
    pub(crate) fn reason_message(&self) -> Option<String> {
        let body = self.annotation.as_deref()?;
        // A GraphQL annotation is Markdown; a Stacks finish detail is one line.
        let text = body
            .strip_prefix("**jobify did not run this job.** ")
            .or_else(|| body.strip_prefix("jobify did not run this job: "))
            .unwrap_or(body);
        let text = text.split("\n\n<sub>").next().unwrap_or(text);
        let text = text.split(" (reason code `").next().unwrap_or(text);
        Some(text.trim().to_owned())
    }
}

/// Looks at the simulators, remembering which jobs ever had a Job (a deleted Job leaves no
/// trace in the cluster).
#[derive(Debug)]
pub(crate) struct Watcher {
    namespace: String,
    seen: HashSet<Uuid>,
    images: HashMap<Uuid, Vec<String>>,
}

impl Watcher {
    /// A watcher of the Jobs in `namespace`.
    pub(crate) fn new(namespace: &str) -> Self {
        Watcher {
            namespace: namespace.to_owned(),
            seen: HashSet::new(),
            images: HashMap::new(),
        }
    }

    /// The observation of each of `jobs`, in order.
    pub(crate) fn observe(&mut self, env: &SimEnv, jobs: &[Uuid]) -> Vec<Observation> {
        let kube = env.kubernetes();
        let present: HashSet<Uuid> = kube
            .jobs(&self.namespace)
            .iter()
            .filter(|job| job.metadata.deletion_timestamp.is_none())
            .filter_map(job_uuid)
            .collect();
        self.seen.extend(&present);
        let mut pods: HashMap<Uuid, Pod> = HashMap::new();
        for pod in kube.pods(&self.namespace) {
            if let Some(uuid) = pod_uuid(&pod) {
                pods.insert(uuid, pod);
            }
        }
        for (uuid, pod) in &pods {
            self.seen.insert(*uuid);
            self.images.insert(*uuid, images(pod));
        }
        jobs.iter()
            .map(|uuid| {
                let snapshot = env.buildkite().job(*uuid);
                let pod = pods.get(uuid);
                let mut observation = Observation {
                    job_seen: self.seen.contains(uuid),
                    job_present: present.contains(uuid),
                    pod_phase: pod
                        .and_then(|p| p.status.as_ref())
                        .and_then(|s| s.phase.clone()),
                    images: self.images.get(uuid).cloned().unwrap_or_default(),
                    ..Observation::default()
                };
                if env.stacks().is_some() {
                    // The Stacks source fails a job by finishing it as a stack error: the
                    // finish detail stands where a GraphQL annotation does.
                    if let Some(view) = env.job_view(*uuid) {
                        observation.state = view.state;
                        observation.exit_status =
                            view.exit_status.and_then(|s| i32::try_from(s).ok());
                        observation.canceled_by_api = !view.told.is_empty();
                        observation.acquired_count = view.acquired;
                        observation.annotation = view.told.last().cloned();
                        observation.notifications = view.notifications;
                    }
                } else if let Some(snapshot) = snapshot {
                    observation.state = snapshot.state;
                    observation.exit_status = snapshot.exit_status;
                    observation.canceled_by_api = snapshot.canceled_by_api;
                    observation.acquired_count = snapshot.acquired_count;
                    observation.annotation = snapshot
                        .annotation_details
                        .iter()
                        .rev()
                        .find(|a| a.context == ANNOTATION_CONTEXT)
                        .map(|a| a.body.clone());
                }
                observation
            })
            .collect()
    }
}

fn job_uuid(job: &Job) -> Option<Uuid> {
    let labels = job.metadata.labels.as_ref()?;
    Uuid::parse_str(labels.get(JOB_UUID)?).ok()
}

fn pod_uuid(pod: &Pod) -> Option<Uuid> {
    let labels = pod.metadata.labels.as_ref()?;
    Uuid::parse_str(labels.get(JOB_UUID)?).ok()
}

fn images(pod: &Pod) -> Vec<String> {
    pod.spec
        .iter()
        .flat_map(|spec| &spec.containers)
        .filter_map(|c| c.image.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_is_read_from_jobifys_annotation() {
        let observation = Observation {
            annotation: Some(
                "**jobify did not run this job.** container `c` is privileged\n\n<sub>reason code `guard_denied`</sub>"
                    .to_owned(),
            ),
            ..Observation::default()
        };
        assert_eq!(observation.reason_code(), Some("guard_denied"));
        assert_eq!(
            observation.reason_message().as_deref(),
            Some("container `c` is privileged")
        );
        assert_eq!(Observation::default().reason_code(), None);
    }
}
