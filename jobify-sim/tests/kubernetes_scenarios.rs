//! Pod scenarios of the Kubernetes simulator (image pull failures, unschedulable pods, OOM,
//! agents acquiring jobs) and the job controller's limits, observed through a real
//! `kube::Client` and the simulator's snapshots.
#![allow(clippy::unwrap_used)]

mod kubernetes_support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use jobify_sim::kubernetes::{KubeSim, KubeSimConfig};
use jobify_sim::{AcquireError, AgentApi, JobScript};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ContainerStateWaiting, Pod};
use kube::Api;
use kube::api::{ListParams, PostParams};
use kubernetes_support::{NS, eventually, job, start};
use serde_json::json;
use uuid::Uuid;

fn waiting(pod: &Pod) -> Option<ContainerStateWaiting> {
    pod.status.as_ref()?.container_statuses.as_ref()?[0]
        .state
        .as_ref()?
        .waiting
        .clone()
}

fn job_condition(job: &Job, kind: &str) -> Option<String> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == kind && c.status == "True")
        .and_then(|c| c.reason.clone())
}

/// Waits for the first Job in [`NS`] whose condition `kind` is `True`.
async fn job_with_condition(sim: &KubeSim, kind: &str) -> Job {
    eventually(&format!("a Job with condition {kind}"), || {
        sim.jobs(NS)
            .into_iter()
            .find(|j| job_condition(j, kind).is_some())
    })
    .await
}

async fn event_messages(client: &kube::Client, pod: &str) -> Vec<(String, String)> {
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), NS);
    let lp = ListParams::default().fields(&format!(
        "involvedObject.name={pod},involvedObject.kind=Pod"
    ));
    events
        .list(&lp)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|e| (e.reason.unwrap_or_default(), e.message.unwrap_or_default()))
        .collect()
}

#[tokio::test]
async fn missing_image_goes_err_image_pull_then_back_off_with_events() {
    let (sim, client) = start(KubeSimConfig::default()).await;
    let jobs: Api<Job> = Api::namespaced(client.clone(), NS);
    jobs.create(&PostParams::default(), &job("pull", "org/does-not-exist:1"))
        .await
        .unwrap();
    let pod = eventually("ImagePullBackOff", || {
        sim.pods(NS)
            .into_iter()
            .find(|p| waiting(p).and_then(|w| w.reason).as_deref() == Some("ImagePullBackOff"))
    })
    .await;
    assert_eq!(
        pod.status.as_ref().unwrap().phase.as_deref(),
        Some("Pending")
    );
    let message = waiting(&pod).unwrap().message.unwrap();
    assert!(
        message.starts_with("Back-off pulling image \"org/does-not-exist:1\": ErrImagePull: rpc error: code = NotFound"),
        "{message}"
    );
    let name = pod.metadata.name.unwrap();
    let events = event_messages(&client, &name).await;
    assert!(events.contains(&(
        "Failed".to_string(),
        "Failed to pull image \"org/does-not-exist:1\": rpc error: code = NotFound desc = failed to pull and unpack image \"docker.io/org/does-not-exist:1\": failed to resolve reference \"docker.io/org/does-not-exist:1\": docker.io/org/does-not-exist:1: not found".to_string()
    )), "{events:?}");
    assert!(events.contains(&("Failed".to_string(), "Error: ErrImagePull".to_string())));
    assert!(events.contains(&(
        "BackOff".to_string(),
        "Back-off pulling image \"org/does-not-exist:1\"".to_string()
    )));
    // The Job keeps waiting, as a real one does: nothing fails it.
    assert!(job_condition(&sim.jobs(NS)[0], "Failed").is_none());
    sim.shutdown().await;
}

#[tokio::test]
async fn invalid_image_name_and_missing_secret_wait_with_their_reasons() {
    let (sim, client) = start(KubeSimConfig::default()).await;
    let jobs: Api<Job> = Api::namespaced(client.clone(), NS);
    jobs.create(&PostParams::default(), &job("upper", "Busybox"))
        .await
        .unwrap();
    let mut secret = job("secret", "busybox");
    secret
        .spec
        .as_mut()
        .unwrap()
        .template
        .spec
        .as_mut()
        .unwrap()
        .containers[0]
        .env = Some(vec![
        serde_json::from_value(json!({
            "name": "TOKEN",
            "valueFrom": {"secretKeyRef": {"name": "missing-secret", "key": "token"}}
        }))
        .unwrap(),
    ]);
    jobs.create(&PostParams::default(), &secret).await.unwrap();
    let reason_of = |job: &str| {
        sim.pods(NS)
            .into_iter()
            .find(|p| {
                p.metadata
                    .name
                    .as_deref()
                    .is_some_and(|n| n.starts_with(&format!("{job}-")))
            })
            .and_then(|p| waiting(&p))
    };
    let invalid = eventually("InvalidImageName", || {
        reason_of("upper").filter(|w| w.reason.as_deref() == Some("InvalidImageName"))
    })
    .await;
    assert_eq!(
        invalid.message.as_deref(),
        Some(
            "Failed to apply default image tag \"Busybox\": couldn't parse image name \"Busybox\": invalid reference format: repository name (library/Busybox) must be lowercase"
        )
    );
    let config = eventually("CreateContainerConfigError", || {
        reason_of("secret").filter(|w| w.reason.as_deref() == Some("CreateContainerConfigError"))
    })
    .await;
    assert_eq!(
        config.message.as_deref(),
        Some("secret \"missing-secret\" not found")
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn unsatisfiable_node_selector_is_unschedulable_with_failed_scheduling_event() {
    let (sim, client) = start(KubeSimConfig::default()).await;
    let jobs: Api<Job> = Api::namespaced(client.clone(), NS);
    let mut j = job("gpu", "busybox");
    j.spec
        .as_mut()
        .unwrap()
        .template
        .spec
        .as_mut()
        .unwrap()
        .node_selector = Some([("gpu".to_string(), "true".to_string())].into());
    jobs.create(&PostParams::default(), &j).await.unwrap();
    let pod = eventually("PodScheduled=False", || {
        sim.pods(NS).into_iter().find(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c.type_ == "PodScheduled" && c.status == "False")
                })
        })
    })
    .await;
    let status = pod.status.unwrap();
    let cond = &status.conditions.unwrap()[0];
    assert_eq!(cond.reason.as_deref(), Some("Unschedulable"));
    assert!(pod.spec.unwrap().node_name.is_none());
    let events = event_messages(&client, pod.metadata.name.as_deref().unwrap()).await;
    assert!(
        events.iter().any(|(r, m)| r == "FailedScheduling"
            && m.starts_with(
                "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector."
            )),
        "{events:?}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn oom_killed_pod_fails_the_job_with_backoff_limit_exceeded() {
    let (sim, client) = start(KubeSimConfig::default()).await;
    let jobs: Api<Job> = Api::namespaced(client, NS);
    jobs.create(&PostParams::default(), &job("oom", "app:oomkill"))
        .await
        .unwrap();
    let failed = job_with_condition(&sim, "Failed").await;
    assert_eq!(
        job_condition(&failed, "Failed").as_deref(),
        Some("BackoffLimitExceeded")
    );
    assert_eq!(failed.status.as_ref().unwrap().failed, Some(1));
    let pod = &sim.pods(NS)[0];
    let terminated = pod
        .status
        .as_ref()
        .unwrap()
        .container_statuses
        .as_ref()
        .unwrap()[0]
        .state
        .as_ref()
        .unwrap()
        .terminated
        .clone()
        .unwrap();
    assert_eq!(terminated.exit_code, 137);
    assert_eq!(terminated.reason.as_deref(), Some("OOMKilled"));
    sim.shutdown().await;
}

#[tokio::test]
async fn active_deadline_fails_the_job_and_ttl_deletes_finished_jobs() {
    let (sim, client) = start(KubeSimConfig::default()).await;
    let jobs: Api<Job> = Api::namespaced(client, NS);
    let mut slow = job("deadline", "busybox");
    let spec = slow.spec.as_mut().unwrap();
    spec.active_deadline_seconds = Some(1);
    spec.template.spec.as_mut().unwrap().node_selector =
        Some([("none".to_string(), "x".to_string())].into());
    jobs.create(&PostParams::default(), &slow).await.unwrap();
    let mut quick = job("ttl", "busybox");
    quick.spec.as_mut().unwrap().ttl_seconds_after_finished = Some(0);
    jobs.create(&PostParams::default(), &quick).await.unwrap();

    eventually("the ttl job to be deleted after completing", || {
        let events = sim.events(NS);
        let completed = events.iter().any(|e| {
            e.reason.as_deref() == Some("Completed")
                && e.involved_object.name.as_deref() == Some("ttl")
        });
        (completed
            && !sim
                .jobs(NS)
                .iter()
                .any(|j| j.metadata.name.as_deref() == Some("ttl")))
        .then_some(())
    })
    .await;
    let failed = job_with_condition(&sim, "Failed").await;
    assert_eq!(
        job_condition(&failed, "Failed").as_deref(),
        Some("DeadlineExceeded")
    );
    eventually("the deadline job's pod to be deleted", || {
        sim.pods(NS)
            .iter()
            .all(|p| {
                !p.metadata
                    .name
                    .as_deref()
                    .unwrap_or_default()
                    .starts_with("deadline-")
            })
            .then_some(())
    })
    .await;
    sim.shutdown().await;
}

#[derive(Default)]
struct FakeAgent {
    acquired: Mutex<Vec<(Uuid, Vec<String>)>>,
    finished: Mutex<Vec<(Uuid, i32)>>,
    refuse: bool,
    /// How long acquired jobs run (20ms if unset).
    run_for: Option<Duration>,
}

impl AgentApi for FakeAgent {
    fn acquire(&self, job: Uuid, tags: &[String]) -> Result<JobScript, AcquireError> {
        self.acquired.lock().unwrap().push((job, tags.to_vec()));
        if self.refuse {
            return Err(AcquireError::NotFound(job));
        }
        Ok(JobScript {
            run_for: self.run_for.unwrap_or(Duration::from_millis(20)),
            exit_status: 3,
        })
    }

    fn finish(&self, job: Uuid, exit_status: i32) {
        self.finished.lock().unwrap().push((job, exit_status));
    }
}

fn agent_job(name: &str, uuid: Uuid) -> Job {
    let mut j = job(name, "buildkite/agent:3");
    let c = &mut j
        .spec
        .as_mut()
        .unwrap()
        .template
        .spec
        .as_mut()
        .unwrap()
        .containers[0];
    c.args = Some(vec![
        "start".into(),
        "--acquire-job".into(),
        uuid.to_string(),
    ]);
    c.env = Some(vec![
        serde_json::from_value(
            json!({"name": "BUILDKITE_AGENT_TAGS", "value": "queue=k8s,os=linux"}),
        )
        .unwrap(),
    ]);
    j
}

fn exit_code(pod: &Pod) -> Option<i32> {
    pod.status.as_ref()?.container_statuses.as_ref()?[0]
        .state
        .as_ref()?
        .terminated
        .as_ref()
        .map(|t| t.exit_code)
}

#[tokio::test]
async fn agent_pod_acquires_its_job_and_exits_with_the_jobs_status() {
    let agent = Arc::new(FakeAgent::default());
    let config = KubeSimConfig {
        agent: Some(agent.clone()),
        ..KubeSimConfig::default()
    };
    let (sim, client) = start(config).await;
    let uuid = Uuid::new_v4();
    Api::<Job>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &agent_job("agent", uuid))
        .await
        .unwrap();
    let pod = eventually("the agent to exit", || {
        sim.pods(NS).into_iter().find(|p| exit_code(p).is_some())
    })
    .await;
    assert_eq!(exit_code(&pod), Some(3));
    assert_eq!(
        *agent.acquired.lock().unwrap(),
        vec![(uuid, vec!["queue=k8s".to_string(), "os=linux".to_string()])]
    );
    assert_eq!(*agent.finished.lock().unwrap(), vec![(uuid, 3)]);
    assert_eq!(sim.stats().agent_acquires, 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn agent_that_cannot_acquire_exits_1() {
    let agent = Arc::new(FakeAgent {
        refuse: true,
        ..FakeAgent::default()
    });
    let config = KubeSimConfig {
        agent: Some(agent.clone()),
        ..KubeSimConfig::default()
    };
    let (sim, client) = start(config).await;
    Api::<Job>::namespaced(client, NS)
        .create(
            &PostParams::default(),
            &agent_job("refused", Uuid::new_v4()),
        )
        .await
        .unwrap();
    let pod = eventually("the agent to exit", || {
        sim.pods(NS).into_iter().find(|p| exit_code(p).is_some())
    })
    .await;
    assert_eq!(exit_code(&pod), Some(1));
    assert!(agent.finished.lock().unwrap().is_empty());
    sim.shutdown().await;
}

#[tokio::test]
async fn on_failure_restarts_in_place_until_the_backoff_limit() {
    let agent = Arc::new(FakeAgent::default());
    let config = KubeSimConfig {
        agent: Some(agent.clone()),
        ..KubeSimConfig::default()
    };
    let (sim, client) = start(config).await;
    let mut j = agent_job("restarts", Uuid::new_v4());
    let spec = j.spec.as_mut().unwrap();
    spec.backoff_limit = Some(1);
    spec.template.spec.as_mut().unwrap().restart_policy = Some("OnFailure".into());
    Api::<Job>::namespaced(client, NS)
        .create(&PostParams::default(), &j)
        .await
        .unwrap();
    let failed = job_with_condition(&sim, "Failed").await;
    assert_eq!(
        job_condition(&failed, "Failed").as_deref(),
        Some("BackoffLimitExceeded")
    );
    let restarted = sim.events(NS).into_iter().any(|e| {
        e.reason.as_deref() == Some("BackOff")
            && e.message.as_deref().is_some_and(|m| {
                m.starts_with("Back-off restarting failed container agent in pod restarts-")
            })
    });
    assert!(restarted);
    // The container restarted in place: its agent ran (and exited 3) at least twice.
    assert!(agent.acquired.lock().unwrap().len() >= 2);
    sim.shutdown().await;
}

#[tokio::test]
async fn suspended_job_runs_no_pod_until_resumed() {
    let (sim, client) = start(KubeSimConfig::default()).await;
    let jobs: Api<Job> = Api::namespaced(client, NS);
    let mut j = job("later", "busybox");
    j.spec.as_mut().unwrap().suspend = Some(true);
    jobs.create(&PostParams::default(), &j).await.unwrap();
    job_with_condition(&sim, "Suspended").await;
    assert!(sim.pods(NS).is_empty());
    let resume = json!({"spec": {"suspend": false}});
    jobs.patch(
        "later",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&resume),
    )
    .await
    .unwrap();
    let done = job_with_condition(&sim, "Complete").await;
    let suspended = done
        .status
        .unwrap()
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Suspended")
        .unwrap();
    assert_eq!(suspended.status, "False");
    assert_eq!(suspended.reason.as_deref(), Some("JobResumed"));
    sim.shutdown().await;
}

#[tokio::test]
async fn parallelism_runs_that_many_pods_at_once() {
    let (sim, client) = start(KubeSimConfig::default()).await;
    let mut j = job("wide", "app:slow-start");
    let spec = j.spec.as_mut().unwrap();
    spec.parallelism = Some(3);
    spec.completions = Some(3);
    Api::<Job>::namespaced(client, NS)
        .create(&PostParams::default(), &j)
        .await
        .unwrap();
    let active = eventually("three active pods", || {
        sim.jobs(NS)
            .into_iter()
            .find_map(|j| j.status?.active.filter(|a| *a == 3))
    })
    .await;
    assert_eq!(active, 3);
    assert_eq!(sim.pods(NS).len(), 3);
    sim.shutdown().await;
}

#[tokio::test]
async fn deleting_a_running_agent_pod_terminates_it_and_fails_the_job() {
    let agent = Arc::new(FakeAgent {
        run_for: Some(Duration::from_secs(600)),
        ..FakeAgent::default()
    });
    let config = KubeSimConfig {
        agent: Some(agent.clone()),
        ..KubeSimConfig::default()
    };
    let (sim, client) = start(config).await;
    let uuid = Uuid::new_v4();
    Api::<Job>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &agent_job("cancelled", uuid))
        .await
        .unwrap();
    let running = eventually("the agent to run", || {
        sim.pods(NS)
            .into_iter()
            .find(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
    })
    .await;
    let name = running.metadata.name.unwrap();
    let pods: Api<Pod> = Api::namespaced(client, NS);
    let answer = pods
        .delete(&name, &kube::api::DeleteParams::default())
        .await
        .unwrap();
    let terminating = answer.left().expect("a pod delete answers with the pod");
    assert!(terminating.metadata.deletion_timestamp.is_some());
    assert_eq!(terminating.metadata.deletion_grace_period_seconds, Some(30));
    eventually("the pod to go", || {
        (!sim
            .pods(NS)
            .iter()
            .any(|p| p.metadata.name.as_deref() == Some(&name)))
        .then_some(())
    })
    .await;
    // A stopped agent loses its job (exit -1).
    assert_eq!(agent.finished.lock().unwrap().first(), Some(&(uuid, -1)));
    let failed = job_with_condition(&sim, "Failed").await;
    assert_eq!(
        job_condition(&failed, "Failed").as_deref(),
        Some("BackoffLimitExceeded")
    );
    // The terminating pod may already have a replacement (podReplacementPolicy
    // TerminatingOrFailed), which the failed Job then deletes and counts too.
    assert!(failed.status.unwrap().failed.unwrap() >= 1);
    sim.shutdown().await;
}

fn with_pod_spec(name: &str, spec: serde_json::Value) -> Job {
    let mut job = job(name, "busybox");
    let template = &mut job.spec.as_mut().unwrap().template;
    template.spec = Some(serde_json::from_value(spec).unwrap());
    job
}

fn state(
    statuses: &[k8s_openapi::api::core::v1::ContainerStatus],
    name: &str,
) -> serde_json::Value {
    let status = statuses.iter().find(|s| s.name == name).unwrap();
    serde_json::to_value(status.state.as_ref().unwrap()).unwrap()
}

#[tokio::test]
async fn native_sidecars_run_beside_the_containers_and_are_stopped_when_they_end() {
    let (sim, client) = start(KubeSimConfig::default()).await;
    let jobs: Api<Job> = Api::namespaced(client, NS);
    let spec = json!({"restartPolicy": "Never",
        "initContainers": [
            {"name": "setup", "image": "busybox"},
            {"name": "postgres", "image": "postgres:17", "restartPolicy": "Always"}],
        "containers": [{"name": "agent", "image": "busybox"}]});
    jobs.create(&PostParams::default(), &with_pod_spec("sidecar", spec))
        .await
        .unwrap();
    let running = eventually("a running pod", || {
        sim.pods(NS)
            .into_iter()
            .find(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
    })
    .await;
    let inits = running.status.unwrap().init_container_statuses.unwrap();
    assert!(state(&inits, "setup")["terminated"]["exitCode"] == 0);
    assert!(
        state(&inits, "postgres")["running"].is_object(),
        "{inits:?}"
    );
    let done = job_with_condition(&sim, "Complete").await;
    assert!(job_condition(&done, "Complete").is_some());
    let pod = &sim.pods(NS)[0];
    let status = pod.status.as_ref().unwrap();
    assert_eq!(status.phase.as_deref(), Some("Succeeded"));
    let inits = status.init_container_statuses.as_ref().unwrap();
    assert_eq!(state(inits, "postgres")["terminated"]["exitCode"], 143);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_failing_init_container_fails_the_pod_before_its_containers_start() {
    let (sim, client) = start(KubeSimConfig::default()).await;
    let jobs: Api<Job> = Api::namespaced(client, NS);
    let spec = json!({"restartPolicy": "Never",
        "initContainers": [{"name": "migrate", "image": "migrate:init-fails"}],
        "containers": [{"name": "agent", "image": "busybox"}]});
    jobs.create(&PostParams::default(), &with_pod_spec("init", spec))
        .await
        .unwrap();
    job_with_condition(&sim, "Failed").await;
    let pod = &sim.pods(NS)[0];
    let status = pod.status.as_ref().unwrap();
    assert_eq!(status.phase.as_deref(), Some("Failed"));
    let inits = status.init_container_statuses.as_ref().unwrap();
    assert_eq!(state(inits, "migrate")["terminated"]["exitCode"], 1);
    let containers = status.container_statuses.as_ref().unwrap();
    assert_eq!(
        state(containers, "agent")["waiting"]["reason"],
        "PodInitializing"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_container_that_runs_forever_keeps_the_pod_running_until_it_is_stopped() {
    let (sim, client) = start(KubeSimConfig::default()).await;
    let jobs: Api<Job> = Api::namespaced(client, NS);
    let spec = json!({"restartPolicy": "Never",
        "containers": [
            {"name": "agent", "image": "busybox"},
            {"name": "dind", "image": "docker:runs-forever"}]});
    jobs.create(&PostParams::default(), &with_pod_spec("linger", spec))
        .await
        .unwrap();
    let lingering = eventually("the agent exited, dind still running", || {
        sim.pods(NS).into_iter().find(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .is_some_and(|c| state(c, "agent")["terminated"].is_object())
        })
    })
    .await;
    let status = lingering.status.unwrap();
    assert_eq!(status.phase.as_deref(), Some("Running"));
    let containers = status.container_statuses.unwrap();
    assert!(state(&containers, "dind")["running"].is_object());
    assert!(
        sim.jobs(NS).iter().all(|j| j
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_none_or(|c| c.is_empty())),
        "the Job has not ended"
    );
    // What jobify's completion watch does: end the Job by its deadline.
    jobs.patch(
        "linger",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(json!({"spec": {"activeDeadlineSeconds": 1}})),
    )
    .await
    .unwrap();
    let failed = job_with_condition(&sim, "Failed").await;
    assert_eq!(
        job_condition(&failed, "Failed").as_deref(),
        Some("DeadlineExceeded")
    );
    eventually("the pod is gone", || sim.pods(NS).is_empty().then_some(())).await;
    sim.shutdown().await;
}
