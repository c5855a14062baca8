//! [`KubeJobifier`]: the `Jobifier` port implemented with Kubernetes Jobs.

use std::future::Future;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::stream::{self, BoxStream, StreamExt};
use jobify_core::{
    CancelError, Cause, JobId, Jobifier, LaunchError, Launched, ScheduledJob, Template,
    WorkloadEvent,
};
use k8s_openapi::api::batch::v1::Job;
use kube::Client;
use secrecy::SecretString;
use tokio::sync::{mpsc, watch};

use crate::config::KubernetesConfig;
use crate::labels;
use crate::launch::Launcher;
use crate::leader::always_leading;
use crate::render::{
    RenderOptions, job_name, pod_template_name, render_job_with, render_token_secret,
};
use crate::watch::run::{WatchContext, run};

/// Workload events buffered between the watch loop and the scheduler.
const EVENT_BUFFER: usize = 4096;

/// Why [`KubeJobifier::run`] could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// `run` was already called on this jobifier (or a clone of it).
    #[error("the Kubernetes watchers are already running for this jobifier")]
    AlreadyRunning,
}

/// Runs decided jobs as Kubernetes Jobs and reports what happens to them.
///
/// Cheap to clone (clones share everything). The watchers run inside [`KubeJobifier::run`],
/// which the binary spawns with its shutdown signal; [`Jobifier::events`] hands out the single
/// stream of events they produce.
///
/// ```no_run
/// # async fn demo(client: kube::Client) -> Result<(), Box<dyn std::error::Error>> {
/// use jobify_core::Jobifier;
/// use jobify_k8s::config::KubernetesConfig;
/// use jobify_k8s::KubeJobifier;
///
/// let jobifier = KubeJobifier::new(client, KubernetesConfig::default(), "jobify");
/// let events = jobifier.events();
/// let runner = jobifier.clone();
/// let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
/// let task = tokio::spawn(async move { runner.run(async move { let _ = stopped.await; }).await });
/// // ... feed `events` to the scheduler, call `launch` / `cancel` ...
/// let _ = stop.send(());
/// task.await??;
/// # drop(events);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct KubeJobifier {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    config: KubernetesConfig,
    controller_id: String,
    launcher: Arc<Launcher>,
    leading: watch::Receiver<bool>,
    sender: Mutex<Option<mpsc::Sender<WorkloadEvent>>>,
    receiver: Mutex<Option<mpsc::Receiver<WorkloadEvent>>>,
}

impl KubeJobifier {
    /// A jobifier creating Jobs in `config.namespace`, labelled as `controller_id`'s. It
    /// leads always; see [`KubeJobifier::with_leadership`] for several replicas.
    pub fn new(client: Client, config: KubernetesConfig, controller_id: impl Into<String>) -> Self {
        Self::build(client, config, controller_id.into(), always_leading())
    }

    /// The same jobifier, launching and deleting only while `leading` says so (from
    /// [`crate::leader::LeaderElector::subscribe`]). Call before `run` and `events`.
    #[must_use]
    pub fn with_leadership(self, leading: watch::Receiver<bool>) -> Self {
        let inner = &self.inner;
        Self::build(
            inner.client.clone(),
            inner.config.clone(),
            inner.controller_id.clone(),
            leading,
        )
    }

    fn build(
        client: Client,
        config: KubernetesConfig,
        controller_id: String,
        leading: watch::Receiver<bool>,
    ) -> Self {
        let launcher = Launcher::new(
            client.clone(),
            config.namespace.clone(),
            config.client.clone(),
        );
        let (sender, receiver) = mpsc::channel(EVENT_BUFFER);
        KubeJobifier {
            inner: Arc::new(Inner {
                client,
                config,
                controller_id,
                launcher: Arc::new(launcher),
                leading,
                sender: Mutex::new(Some(sender)),
                receiver: Mutex::new(Some(receiver)),
            }),
        }
    }

    /// The configuration it renders with.
    pub fn config(&self) -> &KubernetesConfig {
        &self.inner.config
    }

    /// Whether this replica currently leads (launches and deletes).
    pub fn is_leading(&self) -> bool {
        *self.inner.leading.borrow()
    }

    /// Watches the controller's Jobs and pods until `shutdown` completes, feeding
    /// [`Jobifier::events`]; the event stream ends when this returns.
    ///
    /// # Errors
    /// [`RunError::AlreadyRunning`] when called twice.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) -> Result<(), RunError> {
        let sender = lock(&self.inner.sender)
            .take()
            .ok_or(RunError::AlreadyRunning)?;
        let inner = &self.inner;
        let context = WatchContext {
            client: inner.client.clone(),
            namespace: inner.config.namespace.clone(),
            selector: labels::controller_selector(&inner.controller_id),
            fail_fast: inner.config.fail_fast.clone(),
            launcher: Arc::clone(&inner.launcher),
            leading: inner.leading.clone(),
        };
        run(context, sender, shutdown).await;
        Ok(())
    }

    /// Renders `job`'s Job, first fetching the PodTemplate its `podTemplate` names from
    /// jobify's namespace. A missing PodTemplate or a job that cannot be rendered is
    /// [`LaunchError::Invalid`]; a PodTemplate that could not be fetched for now is transient.
    async fn render(
        &self,
        job: &ScheduledJob,
        template: &Template,
        own_token: bool,
    ) -> Result<Job, LaunchError> {
        let inner = &self.inner;
        let pod_template = match pod_template_name(job) {
            Some(name) => Some(inner.launcher.pod_template(job, name).await?),
            None => None,
        };
        let options = RenderOptions {
            own_token,
            pod_template: pod_template.as_ref(),
        };
        render_job_with(job, template, &inner.config, &inner.controller_id, options)
            .map_err(|err| LaunchError::invalid(err.to_string()).caused_by(Cause::new(err)))
    }
}

#[async_trait]
impl Jobifier for KubeJobifier {
    async fn launch(
        &self,
        job: &ScheduledJob,
        template: &Template,
    ) -> Result<Launched, LaunchError> {
        if !self.is_leading() {
            return Err(LaunchError::transient(
                "this replica is standing by; only the leader launches",
            ));
        }
        let manifest = self.render(job, template, false).await?;
        let launched = self.inner.launcher.create(&manifest).await;
        tracing::debug!(job = %job.id, ?launched, "launched");
        launched
    }

    /// Renders the Job with an agent token of its own, as
    /// [`render_job_with_own_token`](crate::render::render_job_with_own_token) does (after
    /// fetching the job's PodTemplate, if it names one), and the Secret holding
    /// `agent_token` with [`render_token_secret`], then creates the Secret, the Job, and makes
    /// the Job the Secret's owner, so the garbage collector deletes the Secret with the Job.
    /// Idempotent as `launch` is. The token is never logged, and no error carries it (it is
    /// only in the Secret's data).
    async fn launch_with_token(
        &self,
        job: &ScheduledJob,
        template: &Template,
        agent_token: &SecretString,
    ) -> Result<Launched, LaunchError> {
        if !self.is_leading() {
            return Err(LaunchError::transient(
                "this replica is standing by; only the leader launches",
            ));
        }
        let inner = &self.inner;
        let manifest = self.render(job, template, true).await?;
        let secret = render_token_secret(&manifest, agent_token);
        let launched = inner.launcher.create_with_token(&manifest, &secret).await;
        tracing::debug!(job = %job.id, ?launched, "launched with an agent token of its own");
        launched
    }

    async fn cancel(&self, job: JobId) -> Result<(), CancelError> {
        if !self.is_leading() {
            return Err(CancelError::new(
                job,
                "this replica is standing by; only the leader deletes Jobs",
            ));
        }
        let name = job_name(&self.inner.config, job);
        self.inner.launcher.delete(job, &name).await
    }

    /// The one stream of workload events; a second call gets a stream that ends at once.
    fn events(&self) -> BoxStream<'static, WorkloadEvent> {
        match lock(&self.inner.receiver).take() {
            Some(receiver) => stream::unfold(receiver, |mut receiver| async move {
                receiver.recv().await.map(|event| (event, receiver))
            })
            .boxed(),
            None => {
                tracing::warn!("KubeJobifier::events called twice; the second stream is empty");
                stream::empty().boxed()
            }
        }
    }
}

/// Locks a mutex whose holders never panic while holding it; a poisoned one is still usable.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
