//! A simulated cluster, a real `kube::Client` to it, and a running `KubeJobifier`.

use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use jobify_core::{Jobifier, WorkloadEvent};
use jobify_k8s::KubeJobifier;
use jobify_k8s::config::{FailFastConfig, KubernetesConfig};
use jobify_sim::kubernetes::{KubeSim, KubeSimConfig};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Namespace the tests use.
pub const NAMESPACE: &str = "ci";
/// Controller id the tests use.
pub const CONTROLLER: &str = "jobify-test";
/// How long a test waits for something that should happen in milliseconds.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// A client to the simulator.
pub fn client(sim: &KubeSim) -> kube::Client {
    client_to(&sim.url())
}

/// A client to the API server at `url` (`http://host:port`).
pub fn client_to(url: &str) -> kube::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let url = url.parse().expect("API server url");
    kube::Client::try_from(kube::Config::new(url)).expect("client")
}

/// A configuration with fail-fast timers short enough for tests.
pub fn fast_config() -> KubernetesConfig {
    KubernetesConfig {
        namespace: NAMESPACE.to_owned(),
        fail_fast: FailFastConfig {
            enabled: true,
            image_pull_grace: Duration::from_millis(300),
            pending_timeout: Duration::from_millis(500),
            no_pod_grace: Duration::from_millis(500),
            check_interval: Duration::from_millis(20),
        },
        ..KubernetesConfig::default()
    }
}

/// A jobifier running against a simulator, with its event stream.
pub struct Running {
    pub jobifier: KubeJobifier,
    pub events: BoxStream<'static, WorkloadEvent>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Running {
    /// Starts `jobifier`'s watchers.
    pub fn start(jobifier: KubeJobifier) -> Self {
        let events = jobifier.events();
        let runner = jobifier.clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            runner
                .run(async move {
                    let _ = stopped.await;
                })
                .await
                .expect("runs once");
        });
        Running {
            jobifier,
            events,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// The next event, the informational `Waiting` skipped (how many a pod gets depends on
    /// the kubelet's timing), failing the test if none comes in time.
    pub async fn next(&mut self) -> WorkloadEvent {
        loop {
            let event = tokio::time::timeout(PATIENCE, self.events.next())
                .await
                .expect("an event in time")
                .expect("the stream is open");
            if !matches!(event, WorkloadEvent::Waiting { .. }) {
                return event;
            }
        }
    }

    /// Skips events until one matches, failing the test if none comes in time.
    pub async fn until(
        &mut self,
        what: &str,
        wanted: impl Fn(&WorkloadEvent) -> bool,
    ) -> WorkloadEvent {
        let wait = async {
            loop {
                let event = self.events.next().await.expect("the stream is open");
                if wanted(&event) {
                    return event;
                }
            }
        };
        tokio::time::timeout(PATIENCE, wait)
            .await
            .unwrap_or_else(|_| panic!("no {what} in time"))
    }

    /// Stops the watchers and waits for them to end; the event stream then ends.
    pub async fn stop(mut self) -> BoxStream<'static, WorkloadEvent> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(PATIENCE, task)
                .await
                .expect("watchers stop on shutdown")
                .expect("watch task did not panic");
        }
        self.events
    }
}

/// Starts a simulator with this configuration.
pub async fn sim(config: KubeSimConfig) -> KubeSim {
    KubeSim::start(config).await.expect("simulator starts")
}

/// Polls `check` until it holds, failing the test if it does not in time.
pub async fn eventually(what: &str, check: impl Fn() -> bool) {
    let wait = async {
        while !check() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(PATIENCE, wait)
        .await
        .unwrap_or_else(|_| panic!("{what} did not happen in time"));
}
