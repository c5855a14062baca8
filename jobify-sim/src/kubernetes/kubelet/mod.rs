//! The simulated scheduler and kubelet: one loop per pod that schedules it (or reports it
//! unschedulable), pulls images, starts containers, runs the agent against the
//! [`AgentApi`](crate::AgentApi), and writes pod status and events the way a real kubelet
//! does, for the scenario the pod falls into (see [`Scenarios`](super::Scenarios)).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

mod failures;

use super::cluster::Cluster;
use super::config::Scenario;
use super::meta;
use super::pod_status::{Restarts, Stage, container_id, format_go_duration, pod_status};
use super::resource::Resource;
use super::scenario::{self, AgentContainer};
use super::stats::bump;

/// How a pod's run ended.
enum Ended {
    /// Its main container exited.
    Finished,
    /// It was deleted (or the simulator stopped); `acquired` is the Buildkite job its agent
    /// was running, if any.
    Stopped {
        acquired: Option<Uuid>,
        running: bool,
    },
}

struct Kubelet {
    cluster: Arc<Cluster>,
    restarts: std::sync::Mutex<Restarts>,
    namespace: String,
    name: String,
    uid: String,
    stop: CancellationToken,
    node: String,
    host_ip: String,
    pod_ip: String,
}

/// The loop of one pod, until it is deleted or the simulator stops.
pub(crate) async fn run(cluster: Arc<Cluster>, pod: Arc<Value>, stop: CancellationToken) {
    let uid = meta::uid(&pod).to_string();
    let node = cluster.next_node();
    let serial = rand::random::<u8>() % 250 + 2;
    let kubelet = Kubelet {
        restarts: std::sync::Mutex::default(),
        namespace: meta::namespace(&pod).to_string(),
        name: meta::name(&pod).to_string(),
        uid: uid.clone(),
        stop,
        pod_ip: format!("10.244.{}.{serial}", node.trim_start_matches("sim-node-")),
        host_ip: format!("172.18.0.{}", node.trim_start_matches("sim-node-")),
        node,
        cluster,
    };
    let ended = kubelet.lifecycle(&pod).await;
    if !kubelet.cluster.shutdown.is_cancelled() {
        kubelet.terminate(ended).await;
    }
    kubelet.cluster.forget(&uid);
}

impl Kubelet {
    fn timings(&self) -> &super::config::Timings {
        &self.cluster.config.timings
    }

    /// Sleeps `d`; false if the pod was deleted meanwhile (or the simulator stops).
    async fn sleep(&self, d: Duration) -> bool {
        Cluster::sleep(d, &self.stop).await && self.current().is_some()
    }

    fn current(&self) -> Option<Arc<Value>> {
        self.cluster
            .store
            .get(Resource::Pods, &self.namespace, &self.name)
            .filter(|p| meta::uid(p) == self.uid)
    }

    fn update(&self, change: impl FnOnce(&mut Value)) -> Option<Arc<Value>> {
        self.current()?;
        self.cluster
            .write_status(Resource::Pods, &self.namespace, &self.name, change)
    }

    fn event(&self, event_type: &str, reason: &str, message: &str, container: Option<&str>) {
        let Some(pod) = self.current() else {
            return;
        };
        let field_path = container.map(|c| format!("spec.containers{{{c}}}"));
        self.cluster.record_event(
            &pod,
            event_type,
            reason,
            message,
            "kubelet",
            Some(&self.node),
            field_path.as_deref(),
        );
    }

    fn set_stage(&self, stage: &Stage) {
        let ips = (self.host_ip.as_str(), self.pod_ip.as_str());
        let restarts = self
            .restarts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        self.update(|p| {
            let status = pod_status(p, stage, ips, &restarts);
            p["status"] = status;
        });
    }

    async fn lifecycle(&self, pod: &Value) -> Ended {
        let stopped = Ended::Stopped {
            acquired: None,
            running: false,
        };
        if !self.sleep(self.timings().schedule_delay).await {
            return stopped;
        }
        let scenario = scenario::classify(pod, &self.cluster.config.scenarios);
        if scenario == Scenario::Unschedulable {
            self.unschedulable().await;
            return stopped;
        }
        self.bind();
        let containers: Vec<(String, String)> = pod["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                let name = c["name"].as_str().unwrap_or_default().to_string();
                let image = c["image"].as_str().unwrap_or_default().to_string();
                (name, image)
            })
            .collect();
        self.set_stage(&Stage::Creating);
        match &scenario {
            Scenario::InvalidImageName => {
                self.invalid_image(&containers).await;
                return stopped;
            }
            Scenario::ImagePullFailure => {
                self.pull_failure(&containers).await;
                return stopped;
            }
            _ => {}
        }
        for (c, image) in &containers {
            self.event(
                "Normal",
                "Pulling",
                &format!("Pulling image \"{image}\""),
                Some(c),
            );
        }
        if !self.sleep(self.timings().pull_delay).await {
            return stopped;
        }
        let pulled_in = format_go_duration(self.timings().pull_delay);
        for (c, image) in &containers {
            let msg = format!(
                "Successfully pulled image \"{image}\" in {pulled_in} ({pulled_in} including waiting). Image size: 4194304 bytes."
            );
            self.event("Normal", "Pulled", &msg, Some(c));
        }
        if let Scenario::CreateContainerConfigError(message) = &scenario {
            self.config_error(pod, message).await;
            return stopped;
        }
        if let Some(init) = self.failing_init_container(pod) {
            return self.init_failed(&init).await;
        }
        let mut delay = self.timings().pod_start_delay;
        if scenario == Scenario::SlowStart {
            delay += self.timings().slow_start_delay;
        }
        if !self.sleep(delay).await {
            return stopped;
        }
        for (c, _) in &containers {
            self.event(
                "Normal",
                "Created",
                &format!("Created container: {c}"),
                Some(c),
            );
            self.event(
                "Normal",
                "Started",
                &format!("Started container {c}"),
                Some(c),
            );
        }
        let started_at = meta::now();
        self.set_stage(&Stage::Running {
            started_at: started_at.clone(),
        });
        self.run_main(pod, &containers, &scenario, started_at).await
    }

    async fn run_main(
        &self,
        pod: &Value,
        containers: &[(String, String)],
        scenario: &Scenario,
        started_at: String,
    ) -> Ended {
        let agent = scenario::agent_container(pod);
        let main = agent
            .as_ref()
            .map(|a| a.container.clone())
            .or_else(|| containers.first().map(|(c, _)| c.clone()))
            .unwrap_or_default();
        let policy = pod["spec"]["restartPolicy"]
            .as_str()
            .unwrap_or("Always")
            .to_string();
        let mut started_at = started_at;
        loop {
            let (run_for, exit_code, acquired) = self.acquire(agent.as_ref());
            let running = Ended::Stopped {
                acquired,
                running: true,
            };
            if !self.sleep(run_for).await {
                return running;
            }
            let (exit_code, reason) = if *scenario == Scenario::OomKilled {
                (137, "OOMKilled")
            } else if exit_code == 0 {
                (0, "Completed")
            } else {
                (exit_code, "Error")
            };
            if let (Some(agent_api), Some(job)) = (&self.cluster.config.agent, acquired) {
                agent_api.finish(job, exit_code);
            }
            let finished_at = meta::now();
            let restarts = match policy.as_str() {
                "Always" => true,
                "OnFailure" => exit_code != 0,
                _ => false,
            };
            if !restarts {
                let lingering = self.lingering_containers(pod, &main);
                if lingering.is_empty() {
                    self.set_stage(&Stage::Terminated {
                        started_at,
                        finished_at,
                        main,
                        exit_code,
                        reason: reason.to_string(),
                        killed: Vec::new(),
                    });
                    return Ended::Finished;
                }
                self.linger(started_at, finished_at, main, exit_code, reason, lingering)
                    .await;
                return Ended::Finished;
            }
            // Always / OnFailure: the kubelet restarts the container in place, with back-off.
            {
                let mut r = self.restarts.lock().unwrap_or_else(|e| e.into_inner());
                r.container.clone_from(&main);
                r.count += 1;
                r.last = json!({"terminated": {
                    "exitCode": exit_code,
                    "reason": reason,
                    "startedAt": started_at,
                    "finishedAt": finished_at,
                    "containerID": container_id(&self.uid, &main),
                }});
            }
            let backoff = format!(
                "back-off {} restarting failed container={main} pod={}_{}({})",
                format_go_duration(self.timings().job_backoff),
                self.name,
                self.namespace,
                self.uid
            );
            self.set_stage(&Stage::CrashLoopBackOff {
                main: main.clone(),
                message: backoff,
            });
            let msg = format!(
                "Back-off restarting failed container {main} in pod {}_{}({})",
                self.name, self.namespace, self.uid
            );
            self.event("Warning", "BackOff", &msg, Some(&main));
            if !self.sleep(self.timings().job_backoff).await {
                return Ended::Stopped {
                    acquired: None,
                    running: true,
                };
            }
            self.event(
                "Normal",
                "Created",
                &format!("Created container: {main}"),
                Some(&main),
            );
            self.event(
                "Normal",
                "Started",
                &format!("Started container {main}"),
                Some(&main),
            );
            started_at = meta::now();
            self.set_stage(&Stage::Running {
                started_at: started_at.clone(),
            });
        }
    }

    /// The first init container (not a native sidecar) whose image says it fails.
    fn failing_init_container(&self, pod: &Value) -> Option<String> {
        let marker = &self.cluster.config.scenarios.failing_init_image_marker;
        pod["spec"]["initContainers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| c["restartPolicy"] != "Always")
            .find(|c| {
                c["image"]
                    .as_str()
                    .is_some_and(|i| i.contains(marker.as_str()))
            })
            .and_then(|c| c["name"].as_str().map(str::to_owned))
    }

    /// The init container `container` exits 1: the pod fails before its containers are
    /// created (`restartPolicy: Never`), and stays until it is deleted.
    async fn init_failed(&self, container: &str) -> Ended {
        let message = format!("{container}: exit status 1\nerror: the init step failed");
        self.event(
            "Normal",
            "Started",
            &format!("Started container {container}"),
            None,
        );
        self.set_stage(&Stage::InitFailed {
            container: container.to_owned(),
            exit_code: 1,
            message,
        });
        Ended::Finished
    }

    /// The containers, besides `main`, whose image says they run until they are killed.
    fn lingering_containers(&self, pod: &Value, main: &str) -> Vec<String> {
        let marker = &self.cluster.config.scenarios.lingering_image_marker;
        pod["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| c["name"] != main)
            .filter(|c| {
                c["image"]
                    .as_str()
                    .is_some_and(|i| i.contains(marker.as_str()))
            })
            .filter_map(|c| c["name"].as_str().map(str::to_owned))
            .collect()
    }

    /// The main container exited, the `lingering` ones keep running: the pod stays
    /// `Running` until it is deleted, when they are killed (exit 143).
    async fn linger(
        &self,
        started_at: String,
        finished_at: String,
        main: String,
        exit_code: i32,
        reason: &str,
        lingering: Vec<String>,
    ) {
        self.set_stage(&Stage::MainExited {
            started_at: started_at.clone(),
            finished_at: finished_at.clone(),
            main: main.clone(),
            exit_code,
            reason: reason.to_owned(),
            lingering: lingering.clone(),
        });
        self.stop.cancelled().await;
        if self.cluster.shutdown.is_cancelled() {
            return;
        }
        for name in &lingering {
            self.event(
                "Normal",
                "Killing",
                &format!("Stopping container {name}"),
                Some(name),
            );
        }
        self.set_stage(&Stage::Terminated {
            started_at,
            finished_at,
            main,
            exit_code,
            reason: reason.to_owned(),
            killed: lingering,
        });
    }

    /// What the agent does: `(run_for, exit_code, acquired job)`.
    fn acquire(&self, agent: Option<&AgentContainer>) -> (Duration, i32, Option<Uuid>) {
        let default = (self.timings().default_run_for, 0, None);
        let (
            Some(api),
            Some(AgentContainer {
                job: Some(job),
                tags,
                ..
            }),
        ) = (&self.cluster.config.agent, agent)
        else {
            return default;
        };
        bump(&self.cluster.stats.agent_acquires);
        match api.acquire(*job, tags) {
            Ok(script) => (script.run_for, script.exit_status, Some(*job)),
            Err(e) => {
                tracing::debug!(pod = %self.name, job = %job, error = %e, "simulated agent could not acquire its job");
                (self.timings().agent_failure_delay, 1, None)
            }
        }
    }

    /// Deleted or stopped: terminate the containers and remove the pod, like a kubelet
    /// finishing a graceful deletion.
    async fn terminate(&self, ended: Ended) {
        if let Ended::Stopped { acquired, running } = ended {
            if let (Some(api), Some(job)) = (&self.cluster.config.agent, acquired) {
                // A stopped agent ends its job as lost (exit -1), as buildkite-agent does.
                api.finish(job, -1);
            }
            if running && let Some(pod) = self.current() {
                for c in pod["spec"]["containers"].as_array().into_iter().flatten() {
                    let name = c["name"].as_str().unwrap_or_default();
                    self.event(
                        "Normal",
                        "Killing",
                        &format!("Stopping container {name}"),
                        Some(name),
                    );
                }
                let started_at = pod["status"]["startTime"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let main = pod["spec"]["containers"][0]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                self.set_stage(&Stage::Terminated {
                    started_at,
                    finished_at: meta::now(),
                    main,
                    exit_code: 143,
                    reason: "Error".to_string(),
                    killed: Vec::new(),
                });
            }
        } else {
            // Finished: the pod stays until someone deletes it.
            self.stop.cancelled().await;
            if self.cluster.shutdown.is_cancelled() {
                return;
            }
        }
        if self.current().is_some_and(|p| meta::is_deleting(&p)) {
            tokio::time::sleep(self.timings().termination_delay).await;
            if self.current().is_some() {
                // NotFound: removed meanwhile.
                let _ = self
                    .cluster
                    .store
                    .remove(Resource::Pods, &self.namespace, &self.name);
            }
        }
    }

    fn bind(&self) {
        let node = self.node.clone();
        self.update(|p| {
            p["spec"]["nodeName"] = json!(node);
        });
        let msg = format!(
            "Successfully assigned {}/{} to {}",
            self.namespace, self.name, self.node
        );
        if let Some(pod) = self.current() {
            self.cluster.record_event(
                &pod,
                "Normal",
                "Scheduled",
                &msg,
                "default-scheduler",
                None,
                None,
            );
        }
    }
}
