//! Deciding that a pod can never start: a pure state machine over what was observed of the
//! pod and the current time, so every rule is tested without a cluster.
//!
//! | observed                                             | gives up                    |
//! |------------------------------------------------------|-----------------------------|
//! | `InvalidImageName`, `ErrImageNeverPull`              | at once                     |
//! | `CreateContainerConfigError` (missing Secret, ...)   | at once                     |
//! | `ErrImagePull` / `ImagePullBackOff`                  | after `image_pull_grace`    |
//! | pod pending (unschedulable or not)                   | after `pending_timeout`     |
//! | Job without a pod                                    | after `no_pod_grace`        |
//! | an init container exited non-zero                    | at once                     |
//! | the Job failed while its pod had not started         | at once (its pods are spent) |
//!
//! A pod that dies before its agent runs (evicted, its node lost, deleted while pending) is
//! replaced by the Job controller up to `pod_attempts` times; only when the Job itself fails
//! is the job given up on, with what its last pod showed.
//!
//! Timers start when jobify first observes the condition, so after a restart they start
//! again: a restart delays giving up, never hastens it. A replacement pod starts its own.

use std::fmt;

use jobify_core::{Reason, ReasonCode};
use tokio::time::Instant;

use crate::config::FailFastConfig;

/// Why a pod will never start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cause {
    /// An image cannot be pulled, and has not been for the grace period.
    ImagePull(ContainerWaiting),
    /// An image name is invalid, or pulling is forbidden (`imagePullPolicy: Never`).
    InvalidImage(ContainerWaiting),
    /// A container cannot be configured (a missing Secret or ConfigMap, ...).
    ContainerConfig(ContainerWaiting),
    /// The scheduler cannot place the pod, and has not for the pending timeout.
    Unschedulable {
        /// The scheduler's message.
        message: String,
    },
    /// The pod stayed pending for the pending timeout without a clearer cause.
    PendingTooLong,
    /// The Job never got a pod (quota, admission webhook, ...).
    NoPod,
    /// An init container exited with a non-zero code: the agent never ran.
    InitContainerFailed(ContainerTerminated),
    /// The Job failed after its last pod failed before it started (evicted, its node lost,
    /// killed while initializing).
    PodFailed {
        /// The pod's reason and message, e.g. `Evicted: The node was low on resource: memory`.
        detail: String,
        /// How many pods the Job tried.
        pods: u32,
    },
    /// The Job failed while its pod had not started (deadline exceeded, its pod deleted, ...).
    JobFailedBeforeStart {
        /// How many pods the Job tried.
        pods: u32,
    },
}

impl Cause {
    /// The stable reason code of this cause.
    pub fn code(&self) -> ReasonCode {
        ReasonCode(match self {
            Cause::ImagePull(_) => "image_pull_failed",
            Cause::InvalidImage(_) => "invalid_image",
            Cause::ContainerConfig(_) => "container_config_error",
            Cause::Unschedulable { .. } => "unschedulable",
            Cause::PendingTooLong => "pending_timeout",
            Cause::NoPod => "no_pod",
            Cause::InitContainerFailed(_) => "init_container_failed",
            Cause::PodFailed { .. } => "pod_failed_before_start",
            Cause::JobFailedBeforeStart { .. } => "job_failed_before_start",
        })
    }

    /// Whether this cause was read from a Job that failed (rather than seen on its pod): the
    /// pod's last state may not have reached the watch yet, so it is checked again first.
    pub fn is_job_failure(&self) -> bool {
        matches!(
            self,
            Cause::PodFailed { .. } | Cause::JobFailedBeforeStart { .. }
        )
    }

    /// The reason to report, with `events` (the pod's Kubernetes events, already formatted)
    /// appended to the message.
    pub fn into_reason(self, config: &FailFastConfig, events: &[String]) -> Reason {
        let code = self.code();
        let mut message = self.describe(config);
        if !events.is_empty() {
            message.push_str("; Kubernetes events: ");
            message.push_str(&events.join("; "));
        }
        Reason::new(code, message)
    }

    fn describe(&self, config: &FailFastConfig) -> String {
        match self {
            Cause::ImagePull(w) => format!(
                "the image of container `{}` could not be pulled for {}: {w}",
                w.container,
                humantime::format_duration(config.image_pull_grace)
            ),
            Cause::InvalidImage(w) => {
                format!("container `{}` has an unusable image: {w}", w.container)
            }
            Cause::ContainerConfig(w) => format!(
                "container `{}` could not be created (check the Secrets and ConfigMaps it \
                 uses): {w}",
                w.container
            ),
            Cause::Unschedulable { message } => format!(
                "the pod could not be scheduled for {}: {message}",
                humantime::format_duration(config.pending_timeout)
            ),
            Cause::PendingTooLong => format!(
                "the pod stayed pending for {}",
                humantime::format_duration(config.pending_timeout)
            ),
            Cause::NoPod => format!(
                "Kubernetes created no pod for the Job within {} (check quotas and admission \
                 webhooks)",
                humantime::format_duration(config.no_pod_grace)
            ),
            Cause::InitContainerFailed(t) => {
                format!(
                    "init container `{}` failed before the agent started: {t}",
                    t.container
                )
            }
            Cause::PodFailed { detail, pods } => format!(
                "the pod failed before the agent started ({}): {detail}",
                tried(*pods)
            ),
            Cause::JobFailedBeforeStart { pods } => format!(
                "the Kubernetes Job failed before its pod started ({}; its deadline passed, or \
                 its pod was deleted)",
                tried(*pods)
            ),
        }
    }
}

/// A container waiting to start, as the kubelet reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerWaiting {
    /// Container name.
    pub container: String,
    /// Its image.
    pub image: String,
    /// The waiting reason, e.g. `ImagePullBackOff`.
    pub reason: String,
    /// The kubelet's message.
    pub message: String,
}

impl fmt::Display for ContainerWaiting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (image `{}`)", self.reason, self.image)?;
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        Ok(())
    }
}

/// How many pods were tried, in words.
fn tried(pods: u32) -> String {
    match pods {
        0 => "no pod ran".to_owned(),
        1 => "1 pod tried".to_owned(),
        n => format!("{n} pods tried"),
    }
}

/// A container that exited with a non-zero code, as the kubelet reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerTerminated {
    /// Container name.
    pub container: String,
    /// Its exit code.
    pub exit_code: i32,
    /// The kubelet's reason, e.g. `Error` or `OOMKilled`.
    pub reason: String,
    /// The end of its termination message (at most [`MESSAGE_TAIL`] bytes).
    pub message: String,
}

/// How much of a termination message a report keeps: its end, where the error usually is.
pub const MESSAGE_TAIL: usize = 512;

impl fmt::Display for ContainerTerminated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "exit code {}", self.exit_code)?;
        if !self.reason.is_empty() {
            write!(f, " ({})", self.reason)?;
        }
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        Ok(())
    }
}

/// What was observed of a job's pod: the few fields fail-fast needs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodObservation {
    /// The pod's name.
    pub name: String,
    /// Whether the pod left `Pending` (every container created): fail-fast no longer applies.
    pub started: bool,
    /// `PodScheduled=False` with reason `Unschedulable`: the scheduler's message.
    pub unschedulable: Option<String>,
    /// Containers (init containers included) waiting to start.
    pub waiting: Vec<ContainerWaiting>,
    /// Init containers that exited with a non-zero code.
    pub init_failures: Vec<ContainerTerminated>,
    /// The pod is `Failed` and none of its containers ever ran: its reason and message.
    pub failed_before_start: Option<String>,
    /// The pod has condition `DisruptionTarget` (evicted, preempted, its node lost): the Job
    /// controller would replace it. Its reason, e.g. `DisruptionTarget: TerminationByKubelet`.
    pub disrupted: Option<String>,
}

/// The start-up watch of one job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StartWatch {
    job_seen: Instant,
    pod_seen: Option<Instant>,
    pulling_since: Option<Instant>,
    started: bool,
    last: Option<PodObservation>,
}

const PULL_REASONS: &[&str] = &["ErrImagePull", "ImagePullBackOff"];
const INVALID_IMAGE_REASONS: &[&str] = &["InvalidImageName", "ErrImageNeverPull"];
const CONFIG_REASONS: &[&str] = &["CreateContainerConfigError"];

impl StartWatch {
    /// Starts watching a Job first observed at `now`.
    pub fn new(now: Instant) -> Self {
        StartWatch {
            job_seen: now,
            pod_seen: None,
            pulling_since: None,
            started: false,
            last: None,
        }
    }

    /// Records the pod as observed at `now`.
    pub fn observe(&mut self, pod: PodObservation, now: Instant) {
        // A replacement pod (the Job controller's next attempt) has timers of its own: the
        // back-off before it (10 s, doubling) is not time it spent pending.
        let replaced = self.last.as_ref().is_some_and(|last| last.name != pod.name);
        if replaced {
            self.pod_seen = Some(now);
            self.pulling_since = None;
        }
        self.pod_seen.get_or_insert(now);
        self.started |= pod.started;
        let pulling = pod
            .waiting
            .iter()
            .any(|w| PULL_REASONS.contains(&w.reason.as_str()));
        self.pulling_since = match (pulling, self.pulling_since) {
            (true, Some(since)) => Some(since),
            (true, None) => Some(now),
            (false, _) => None,
        };
        self.last = Some(pod);
    }

    /// The pod disappeared (deleted, evicted); a new one may come.
    pub fn pod_gone(&mut self) {
        self.pulling_since = None;
        self.last = None;
    }

    /// Whether the pod has started (then this watch is over).
    pub fn started(&self) -> bool {
        self.started
    }

    /// Why a Job that failed after trying `pods` pods, none of which started, failed: what
    /// its last pod showed, or, when it showed nothing clearer, that the Job failed first.
    pub fn cause_of_failure(&self, pods: u32) -> Cause {
        let pod = self.last.as_ref();
        if let Some(failed) = pod.and_then(|p| p.init_failures.first()) {
            return Cause::InitContainerFailed(failed.clone());
        }
        match pod.and_then(|p| p.failed_before_start.clone()) {
            Some(detail) => Cause::PodFailed { detail, pods },
            None => Cause::JobFailedBeforeStart { pods },
        }
    }

    /// The last observed pod's name.
    pub fn pod_name(&self) -> Option<&str> {
        self.last.as_ref().map(|p| p.name.as_str())
    }

    /// Whether, at `now`, the pod can be declared unable to start, and why.
    pub fn check(&self, config: &FailFastConfig, now: Instant) -> Option<Cause> {
        if !config.enabled || self.started {
            return None;
        }
        let Some(pod) = &self.last else {
            let since = self.pod_seen.unwrap_or(self.job_seen);
            return (self.pod_seen.is_none() && now.duration_since(since) >= config.no_pod_grace)
                .then_some(Cause::NoPod);
        };
        let with = |reasons: &[&str]| {
            pod.waiting
                .iter()
                .find(|w| reasons.contains(&w.reason.as_str()))
                .cloned()
        };
        if let Some(failed) = pod.init_failures.first() {
            return Some(Cause::InitContainerFailed(failed.clone()));
        }
        // A pod that failed before it started is the Job controller's to replace: the job
        // is given up on when the Job fails (`cause_of_failure`).
        if pod.failed_before_start.is_some() {
            return None;
        }
        if let Some(waiting) = with(INVALID_IMAGE_REASONS) {
            return Some(Cause::InvalidImage(waiting));
        }
        if let Some(waiting) = with(CONFIG_REASONS) {
            return Some(Cause::ContainerConfig(waiting));
        }
        if let Some(since) = self.pulling_since
            && now.duration_since(since) >= config.image_pull_grace
            && let Some(waiting) = with(PULL_REASONS)
        {
            return Some(Cause::ImagePull(waiting));
        }
        let pod_seen = self.pod_seen.unwrap_or(self.job_seen);
        if now.duration_since(pod_seen) >= config.pending_timeout {
            return Some(match &pod.unschedulable {
                Some(message) => Cause::Unschedulable {
                    message: message.clone(),
                },
                None => Cause::PendingTooLong,
            });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn config() -> FailFastConfig {
        FailFastConfig {
            enabled: true,
            image_pull_grace: Duration::from_secs(60),
            pending_timeout: Duration::from_secs(600),
            no_pod_grace: Duration::from_secs(120),
            check_interval: Duration::from_secs(5),
        }
    }

    fn waiting(reason: &str) -> PodObservation {
        PodObservation {
            name: "pod-1".to_owned(),
            started: false,
            unschedulable: None,
            init_failures: Vec::new(),
            failed_before_start: None,
            disrupted: None,
            waiting: vec![ContainerWaiting {
                container: "agent".to_owned(),
                image: "nope:latest".to_owned(),
                reason: reason.to_owned(),
                message: "failed to pull".to_owned(),
            }],
        }
    }

    fn pending() -> PodObservation {
        PodObservation {
            name: "pod-1".to_owned(),
            ..PodObservation::default()
        }
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn image_pull_errors_fail_only_after_the_grace_period() {
        let t0 = Instant::now();
        let mut watch = StartWatch::new(t0);
        watch.observe(waiting("ErrImagePull"), t0 + secs(1));
        watch.observe(waiting("ImagePullBackOff"), t0 + secs(30));
        assert_eq!(watch.check(&config(), t0 + secs(60)), None);
        let cause = watch.check(&config(), t0 + secs(61)).expect("gives up");
        assert_eq!(cause.code().as_str(), "image_pull_failed");
        assert!(matches!(cause, Cause::ImagePull(w) if w.reason == "ImagePullBackOff"));
    }

    #[test]
    fn a_pull_that_recovers_restarts_the_grace_period() {
        let t0 = Instant::now();
        let mut watch = StartWatch::new(t0);
        watch.observe(waiting("ErrImagePull"), t0);
        watch.observe(pending(), t0 + secs(50));
        watch.observe(waiting("ErrImagePull"), t0 + secs(55));
        assert_eq!(watch.check(&config(), t0 + secs(100)), None);
        assert!(watch.check(&config(), t0 + secs(115)).is_some());
    }

    #[test]
    fn invalid_image_and_config_errors_fail_at_once() {
        let t0 = Instant::now();
        for (reason, code) in [
            ("InvalidImageName", "invalid_image"),
            ("ErrImageNeverPull", "invalid_image"),
            ("CreateContainerConfigError", "container_config_error"),
        ] {
            let mut watch = StartWatch::new(t0);
            watch.observe(waiting(reason), t0);
            let cause = watch.check(&config(), t0).expect(reason);
            assert_eq!(cause.code().as_str(), code, "{reason}");
        }
    }

    #[test]
    fn unschedulable_pods_fail_after_the_pending_timeout_with_the_schedulers_message() {
        let t0 = Instant::now();
        let mut watch = StartWatch::new(t0);
        let unschedulable = PodObservation {
            unschedulable: Some("0/3 nodes are available: 3 Insufficient cpu.".to_owned()),
            ..pending()
        };
        watch.observe(unschedulable, t0 + secs(2));
        assert_eq!(watch.check(&config(), t0 + secs(601)), None);
        let cause = watch.check(&config(), t0 + secs(602)).expect("gives up");
        assert_eq!(
            cause,
            Cause::Unschedulable {
                message: "0/3 nodes are available: 3 Insufficient cpu.".to_owned()
            }
        );
    }

    #[test]
    fn a_replacement_pod_gets_a_pending_timeout_of_its_own() {
        let t0 = Instant::now();
        let mut watch = StartWatch::new(t0);
        watch.observe(
            PodObservation {
                failed_before_start: Some("Evicted".to_owned()),
                ..pending()
            },
            t0,
        );
        let replaced_at = t0 + secs(500);
        watch.observe(
            PodObservation {
                name: "pod-2".to_owned(),
                ..pending()
            },
            replaced_at,
        );
        assert_eq!(
            watch.check(&config(), t0 + secs(700)),
            None,
            "pending 200 s"
        );
        assert_eq!(
            watch.check(&config(), replaced_at + secs(600)),
            Some(Cause::PendingTooLong)
        );
        assert_eq!(watch.pod_name(), Some("pod-2"));
    }

    #[test]
    fn plainly_pending_pods_fail_after_the_pending_timeout() {
        let t0 = Instant::now();
        let mut watch = StartWatch::new(t0);
        watch.observe(pending(), t0);
        assert_eq!(
            watch.check(&config(), t0 + secs(600)),
            Some(Cause::PendingTooLong)
        );
    }

    #[test]
    fn a_job_without_a_pod_fails_after_the_no_pod_grace() {
        let t0 = Instant::now();
        let watch = StartWatch::new(t0);
        assert_eq!(watch.check(&config(), t0 + secs(119)), None);
        assert_eq!(watch.check(&config(), t0 + secs(120)), Some(Cause::NoPod));
    }

    #[test]
    fn a_started_pod_never_fails_fast() {
        let t0 = Instant::now();
        let mut watch = StartWatch::new(t0);
        watch.observe(waiting("ErrImagePull"), t0);
        watch.observe(
            PodObservation {
                started: true,
                ..pending()
            },
            t0 + secs(10),
        );
        assert!(watch.started());
        assert_eq!(watch.check(&config(), t0 + secs(10_000)), None);
    }

    #[test]
    fn nothing_fails_when_fail_fast_is_disabled() {
        let t0 = Instant::now();
        let mut watch = StartWatch::new(t0);
        watch.observe(waiting("InvalidImageName"), t0);
        let disabled = FailFastConfig {
            enabled: false,
            ..config()
        };
        assert_eq!(watch.check(&disabled, t0 + secs(10_000)), None);
    }

    #[test]
    fn an_init_container_that_exits_non_zero_fails_at_once_with_its_exit_code_and_message() {
        let t0 = Instant::now();
        let mut watch = StartWatch::new(t0);
        watch.observe(
            PodObservation {
                init_failures: vec![ContainerTerminated {
                    container: "checkout".to_owned(),
                    exit_code: 128,
                    reason: "Error".to_owned(),
                    message: "fatal: repository not found".to_owned(),
                }],
                ..pending()
            },
            t0,
        );
        let reason = watch
            .check(&config(), t0)
            .expect("gives up at once")
            .into_reason(&config(), &[]);
        assert_eq!(reason.code.as_str(), "init_container_failed");
        assert_eq!(
            reason.message,
            "init container `checkout` failed before the agent started: exit code 128 (Error): \
             fatal: repository not found"
        );
    }

    #[test]
    fn a_pod_that_failed_before_it_started_is_left_to_the_job_controller_to_replace() {
        let t0 = Instant::now();
        let mut watch = StartWatch::new(t0);
        watch.observe(
            PodObservation {
                failed_before_start: Some("Evicted: low on memory".to_owned()),
                ..pending()
            },
            t0,
        );
        assert_eq!(
            watch.check(&config(), t0 + secs(60)),
            None,
            "a new pod may come"
        );
        let reason = watch.cause_of_failure(3).into_reason(&config(), &[]);
        assert_eq!(reason.code.as_str(), "pod_failed_before_start");
        assert_eq!(
            reason.message,
            "the pod failed before the agent started (3 pods tried): Evicted: low on memory"
        );
    }

    #[test]
    fn the_reason_names_the_container_image_and_events() {
        let t0 = Instant::now();
        let mut watch = StartWatch::new(t0);
        watch.observe(waiting("InvalidImageName"), t0);
        let reason = watch
            .check(&config(), t0)
            .expect("gives up")
            .into_reason(&config(), &["Warning Failed: bad ref".to_owned()]);
        assert_eq!(
            reason.message,
            "container `agent` has an unusable image: InvalidImageName (image `nope:latest`): \
             failed to pull; Kubernetes events: Warning Failed: bad ref"
        );
    }
}
