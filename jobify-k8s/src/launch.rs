//! Creating, stopping and deleting Jobs: the API errors sorted by what the scheduler should do, bounded
//! retries with backoff for passing failures, and the pace of creates.
//!
//! Creates pass a semaphore (at most `max_concurrent_creates` in flight) and, when
//! `creates_per_second` is set, a token bucket. Deletes pass neither: cancelling a job never
//! waits behind a burst of launches.
//!
//! A job with an agent token of its own is launched by [`token`]: its Secret, its Job, and
//! the Job made the Secret's owner; [`orphans`] sweeps up token Secrets a crash left without
//! an owner.

pub(crate) mod orphans;
pub(crate) mod pod_template;
pub(crate) mod token;

use std::time::Duration;

use jobify_core::{CancelError, Cause, JobId, LaunchError, Launched};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{PodTemplate, Secret};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use tokio::sync::{Mutex, Semaphore};
use tokio::time::Instant;

use crate::config::ClientConfig;

/// How one API call ended, sorted by what to do next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Attempt<T, E> {
    /// Done: this is the answer.
    Done(Result<T, E>),
    /// A passing failure: try again after a pause.
    Retry(Failure),
}

/// A passing failure: what to say about it, and the API client's error when there was one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Failure {
    /// What happened.
    pub(crate) message: String,
    /// The client's error.
    pub(crate) cause: Option<Cause>,
}

impl Failure {
    /// A failure with no client error (a timeout of our own, a closed semaphore).
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            cause: None,
        }
    }

    /// A failure the client reported as `error`.
    pub(crate) fn of(message: impl Into<String>, error: kube::Error) -> Self {
        Failure {
            message: message.into(),
            cause: Some(Cause::new(error)),
        }
    }
}

/// Sorts the answer to a Job create.
pub(crate) fn classify_create(
    result: Result<(), kube::Error>,
    namespace: &str,
) -> Attempt<Launched, LaunchError> {
    let err = match result {
        Ok(()) => return Attempt::Done(Ok(Launched::Created)),
        Err(err) => err,
    };
    let kube::Error::Api(status) = &err else {
        return Attempt::Retry(Failure::of(
            format!("could not reach the Kubernetes API: {err}"),
            err,
        ));
    };
    let (code, message) = (status.code, status.message.clone());
    let error = match code {
        409 => return Attempt::Done(Ok(Launched::AlreadyExists)),
        422 | 400 => LaunchError::invalid(message),
        403 => LaunchError::forbidden(format!(
            "jobify may not create Jobs in namespace `{namespace}`: grant verb `create` on \
             resource `jobs` (API group `batch`) to its service account (see the RBAC section \
             of docs/kubernetes.md); the API server said: {message}"
        )),
        401 => LaunchError::forbidden(format!(
            "the Kubernetes API rejected jobify's credentials: {message}"
        )),
        404 => LaunchError::transient(format!(
            "namespace `{namespace}` does not exist: create it or fix kubernetes.namespace \
             ({message})"
        )),
        429 | 500.. => return Attempt::Retry(Failure::of(format!("HTTP {code}: {message}"), err)),
        code => LaunchError::invalid(format!("HTTP {code}: {message}")),
    };
    Attempt::Done(Err(error.caused_by(Cause::new(err))))
}

/// Sorts the answer to a Job delete. Deleting a Job that does not exist succeeds.
pub(crate) fn classify_delete(
    result: Result<(), kube::Error>,
    job: JobId,
    namespace: &str,
) -> Attempt<(), CancelError> {
    let err = match result {
        Ok(()) => return Attempt::Done(Ok(())),
        Err(err) => err,
    };
    let kube::Error::Api(status) = &err else {
        return Attempt::Retry(Failure::of(
            format!("could not reach the Kubernetes API: {err}"),
            err,
        ));
    };
    let (code, said) = (status.code, status.message.clone());
    let message = match code {
        404 => return Attempt::Done(Ok(())),
        429 | 500.. => return Attempt::Retry(Failure::of(format!("HTTP {code}: {said}"), err)),
        403 => format!(
            "jobify may not delete Jobs in namespace `{namespace}`: grant verb `delete` on \
             resource `jobs` (API group `batch`); the API server said: {said}"
        ),
        code => format!("HTTP {code}: {said}"),
    };
    Attempt::Done(Err(
        CancelError::new(job, message).caused_by(Cause::new(err))
    ))
}

/// Sorts the answer to stopping a Job (a patch). Stopping a Job that does not exist succeeds.
pub(crate) fn classify_stop(
    result: Result<(), kube::Error>,
    job: JobId,
    namespace: &str,
) -> Attempt<(), CancelError> {
    let err = match result {
        Ok(()) => return Attempt::Done(Ok(())),
        Err(err) => err,
    };
    let kube::Error::Api(status) = &err else {
        return Attempt::Retry(Failure::of(
            format!("could not reach the Kubernetes API: {err}"),
            err,
        ));
    };
    let (code, said) = (status.code, status.message.clone());
    let message = match code {
        404 => return Attempt::Done(Ok(())),
        409 | 429 | 500.. => {
            return Attempt::Retry(Failure::of(format!("HTTP {code}: {said}"), err));
        }
        403 => format!(
            "jobify may not patch Jobs in namespace `{namespace}`: grant verb `patch` on \
             resource `jobs` (API group `batch`); the API server said: {said}"
        ),
        code => format!("HTTP {code}: {said}"),
    };
    Attempt::Done(Err(
        CancelError::new(job, message).caused_by(Cause::new(err))
    ))
}

/// A token bucket: `rate` tokens a second, at most `burst` saved up. Callers reserve a token
/// and wait the time it says, so concurrent callers queue in order.
#[derive(Clone, Debug)]
pub(crate) struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub(crate) fn new(rate: u32, burst: u32, now: Instant) -> Self {
        TokenBucket {
            rate: f64::from(rate.max(1)),
            burst: f64::from(burst.max(1)),
            tokens: f64::from(burst.max(1)),
            last: now,
        }
    }

    /// Takes a token; how long to wait before using it.
    pub(crate) fn reserve(&mut self, now: Instant) -> Duration {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst) - 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }
}

/// Creates and deletes Jobs (and the agent token Secrets of jobs with a token of their own)
/// in one namespace.
pub(crate) struct Launcher {
    jobs: Api<Job>,
    secrets: Api<Secret>,
    pod_templates: Api<PodTemplate>,
    namespace: String,
    client: ClientConfig,
    creates: Semaphore,
    bucket: Option<Mutex<TokenBucket>>,
    in_flight: token::InFlight,
}

impl Launcher {
    pub(crate) fn new(api: Client, namespace: String, client: ClientConfig) -> Self {
        let bucket = (client.creates_per_second > 0).then(|| {
            Mutex::new(TokenBucket::new(
                client.creates_per_second,
                client.burst,
                Instant::now(),
            ))
        });
        Launcher {
            jobs: Api::namespaced(api.clone(), &namespace),
            secrets: Api::namespaced(api.clone(), &namespace),
            pod_templates: Api::namespaced(api, &namespace),
            namespace,
            in_flight: token::InFlight::default(),
            creates: Semaphore::new(client.max_concurrent_creates.max(1)),
            bucket,
            client,
        }
    }

    /// Creates `job`, retrying passing failures with backoff.
    pub(crate) async fn create(&self, job: &Job) -> Result<Launched, LaunchError> {
        // The semaphore is never closed, so acquiring only fails if that invariant breaks.
        let _permit = self
            .creates
            .acquire()
            .await
            .map_err(|_| LaunchError::transient("the launcher is shutting down"))?;
        self.create_job(job, true)
            .await
            .map(|(launched, _)| launched)
    }

    /// Creates `job` (each attempt paced when `pace`), retrying passing failures with
    /// backoff; how it went, with the new Job's uid when it was created.
    async fn create_job(
        &self,
        job: &Job,
        pace: bool,
    ) -> Result<(Launched, Option<String>), LaunchError> {
        let name = job.metadata.name.as_deref().unwrap_or_default();
        let result = retry(&self.client, "creating the Job", name, || async {
            if pace {
                self.pace().await;
            }
            let created = tokio::time::timeout(
                self.client.request_timeout,
                self.jobs.create(&PostParams::default(), job),
            )
            .await;
            match created {
                Ok(Ok(created)) => Attempt::Done(Ok((Launched::Created, created.metadata.uid))),
                Ok(Err(err)) => match classify_create(Err(err), &self.namespace) {
                    Attempt::Done(result) => Attempt::Done(result.map(|launched| (launched, None))),
                    Attempt::Retry(failure) => Attempt::Retry(failure),
                },
                Err(_) => Attempt::Retry(Failure::new(format!(
                    "no answer within {}",
                    humantime::format_duration(self.client.request_timeout)
                ))),
            }
        })
        .await;
        result.unwrap_or_else(|failure| {
            Err(LaunchError::transient(format!(
                "creating the Job failed {} times, last: {}",
                self.client.create_attempts, failure.message
            ))
            .caused_by(failure.cause))
        })
    }

    /// Deletes the Job `name` (pods go with it, in the background).
    pub(crate) async fn delete(&self, job: JobId, name: &str) -> Result<(), CancelError> {
        let result = retry(&self.client, "deleting the Job", name, || async {
            let deleted = tokio::time::timeout(
                self.client.request_timeout,
                self.jobs.delete(name, &DeleteParams::background()),
            )
            .await;
            match deleted {
                Ok(result) => classify_delete(result.map(drop), job, &self.namespace),
                Err(_) => Attempt::Retry(Failure::new("no answer in time")),
            }
        })
        .await;
        result.unwrap_or_else(|failure| {
            Err(CancelError::new(job, failure.message).caused_by(failure.cause))
        })
    }

    /// Stops the Job `name` without deleting it: its active deadline becomes one second, so
    /// the Job controller terminates its pods and marks it failed (`DeadlineExceeded`), and
    /// the annotation [`STOPPED_ANNOTATION`](crate::labels::STOPPED_ANNOTATION) says why.
    /// A Job already gone is stopped.
    pub(crate) async fn stop(&self, job: JobId, name: &str, why: &str) -> Result<(), CancelError> {
        let patch = Patch::Merge(serde_json::json!({
            "metadata": {"annotations": {crate::labels::STOPPED_ANNOTATION: why}},
            "spec": {"activeDeadlineSeconds": 1},
        }));
        let result = retry(&self.client, "stopping the Job", name, || async {
            let patched = tokio::time::timeout(
                self.client.request_timeout,
                self.jobs.patch(name, &PatchParams::default(), &patch),
            )
            .await;
            match patched {
                Ok(result) => classify_stop(result.map(drop), job, &self.namespace),
                Err(_) => Attempt::Retry(Failure::new("no answer in time")),
            }
        })
        .await;
        result.unwrap_or_else(|failure| {
            Err(CancelError::new(job, failure.message).caused_by(failure.cause))
        })
    }

    async fn pace(&self) {
        if let Some(bucket) = &self.bucket {
            let wait = bucket.lock().await.reserve(Instant::now());
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// Runs `call` until it is done or `create_attempts` are used up; the last failure when
/// they are. Each retried failure is one WARN line naming the operation (`what`, e.g.
/// "creating the Job"), the object and the attempt: a passing failure is not an operator's
/// error, and one that outlasts the attempts reaches the caller as an error of its own.
async fn retry<T, E, F, Fut>(
    client: &ClientConfig,
    what: &str,
    job: &str,
    mut call: F,
) -> Result<Result<T, E>, Failure>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Attempt<T, E>>,
{
    let mut backoff = client.retry_backoff;
    let mut attempt = 1;
    loop {
        match call().await {
            Attempt::Done(result) => return Ok(result),
            Attempt::Retry(failure) if attempt >= client.create_attempts => return Err(failure),
            Attempt::Retry(failure) => {
                tracing::warn!(
                    attempt,
                    attempts = client.create_attempts,
                    job,
                    error = %failure.message,
                    "{what} failed; retrying in {}",
                    humantime::format_duration(backoff)
                );
                tokio::time::sleep(backoff).await;
                backoff = backoff.saturating_mul(2);
                attempt += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use kube::core::Status;

    use super::*;

    fn api_error(code: u16, reason: &str) -> kube::Error {
        kube::Error::Api(Box::new(Status {
            code,
            reason: reason.to_owned(),
            message: format!("said {code}"),
            ..Status::default()
        }))
    }

    #[test]
    fn stop_answers_are_sorted_by_what_to_do() {
        let job = JobId(uuid::Uuid::nil());
        let stop = |code| classify_stop(Err(api_error(code, "x")), job, "ci");
        assert_eq!(classify_stop(Ok(()), job, "ci"), Attempt::Done(Ok(())));
        assert_eq!(stop(404), Attempt::Done(Ok(())));
        assert!(matches!(stop(409), Attempt::Retry(_)));
        assert!(matches!(stop(503), Attempt::Retry(_)));
        let Attempt::Done(Err(forbidden)) = stop(403) else {
            panic!("a 403 is final")
        };
        assert!(
            forbidden
                .message
                .contains("grant verb `patch` on resource `jobs`"),
            "{}",
            forbidden.message
        );
        assert!(matches!(stop(422), Attempt::Done(Err(_))));
    }

    #[test]
    fn create_answers_are_sorted_by_what_to_do() {
        let ns = "ci";
        assert_eq!(
            classify_create(Ok(()), ns),
            Attempt::Done(Ok(Launched::Created))
        );
        assert_eq!(
            classify_create(Err(api_error(409, "AlreadyExists")), ns),
            Attempt::Done(Ok(Launched::AlreadyExists))
        );
        let Attempt::Done(Err(invalid @ LaunchError::Invalid { .. })) =
            classify_create(Err(api_error(422, "Invalid")), ns)
        else {
            panic!("422 is invalid")
        };
        assert_eq!(invalid.message(), "said 422");
        let cause = std::error::Error::source(&invalid).expect("the API error is the source");
        assert_eq!(cause.to_string(), api_error(422, "Invalid").to_string());
        assert!(matches!(
            invalid.cause().and_then(Cause::downcast_ref::<kube::Error>),
            Some(kube::Error::Api(status)) if status.code == 422
        ));
        let Attempt::Done(Err(LaunchError::Forbidden { message, .. })) =
            classify_create(Err(api_error(403, "Forbidden")), ns)
        else {
            panic!("403 is forbidden")
        };
        assert!(
            message.contains("verb `create` on resource `jobs`"),
            "{message}"
        );
        assert!(message.contains("said 403"), "{message}");
        for code in [429, 500, 503] {
            assert!(matches!(
                classify_create(Err(api_error(code, "")), ns),
                Attempt::Retry(_)
            ));
        }
    }

    #[test]
    fn deleting_a_missing_job_succeeds() {
        let job = JobId(uuid::Uuid::nil());
        assert_eq!(
            classify_delete(Err(api_error(404, "NotFound")), job, "ci"),
            Attempt::Done(Ok(()))
        );
        assert!(matches!(
            classify_delete(Err(api_error(403, "Forbidden")), job, "ci"),
            Attempt::Done(Err(CancelError { message, .. })) if message.contains("`delete`")
        ));
    }

    #[test]
    fn the_bucket_allows_a_burst_then_paces() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(10, 3, t0);
        for _ in 0..3 {
            assert_eq!(bucket.reserve(t0), Duration::ZERO);
        }
        assert_eq!(bucket.reserve(t0), Duration::from_millis(100));
        assert_eq!(bucket.reserve(t0), Duration::from_millis(200));
        // A second later the debt is paid and 8 tokens have accrued (burst caps at 3).
        assert_eq!(bucket.reserve(t0 + Duration::from_secs(1)), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn retries_are_bounded_and_back_off() {
        let client = ClientConfig {
            create_attempts: 3,
            retry_backoff: Duration::from_millis(100),
            ..ClientConfig::default()
        };
        let start = Instant::now();
        let mut calls = 0;
        let result: Result<Result<(), ()>, Failure> =
            retry(&client, "creating the Job", "test-job", || {
                calls += 1;
                let n = calls;
                async move { Attempt::Retry(Failure::new(format!("try {n}"))) }
            })
            .await;
        assert_eq!(result, Err(Failure::new("try 3")));
        assert_eq!(calls, 3);
        assert_eq!(start.elapsed(), Duration::from_millis(300));
    }

    /// A `MakeWriter` that keeps what the subscriber writes.
    #[derive(Clone, Default)]
    struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .expect("not poisoned")
                .extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn each_retried_failure_is_one_warn_line_naming_the_job_and_the_attempt() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let client = ClientConfig {
            create_attempts: 3,
            retry_backoff: Duration::from_millis(100),
            ..ClientConfig::default()
        };
        let mut calls = 0;
        let result: Result<Result<(), ()>, Failure> =
            retry(&client, "creating the Job", "jobify-0190", || {
                calls += 1;
                let done = calls == 3;
                async move {
                    if done {
                        Attempt::Done(Ok(()))
                    } else {
                        Attempt::Retry(Failure::new("HTTP 500: etcdserver: leader changed"))
                    }
                }
            })
            .await;
        assert_eq!(result, Ok(Ok(())));
        let text =
            String::from_utf8(captured.0.lock().expect("not poisoned").clone()).expect("utf-8 log");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        for (line, attempt) in lines.iter().zip(1..) {
            assert!(line.contains(" WARN "), "{line}");
            assert!(
                line.contains("creating the Job failed; retrying in"),
                "{line}"
            );
            assert!(
                line.contains(&format!("attempt={attempt} attempts=3")),
                "{line}"
            );
            assert!(line.contains("job=\"jobify-0190\""), "{line}");
            assert!(line.contains("leader changed"), "{line}");
        }
    }
}
