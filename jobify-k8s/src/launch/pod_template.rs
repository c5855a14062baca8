//! Fetching the PodTemplate a job's `podTemplate` names, from jobify's namespace, before the
//! job is rendered: a missing PodTemplate refuses the job, a passing API failure is retried
//! and then reported as transient, as for Job creates.

use jobify_core::{Cause, LaunchError, ScheduledJob};
use k8s_openapi::api::core::v1::PodTemplate;

use super::{Attempt, Failure, Launcher, retry};

/// How the step is named in messages: its key, else its label, else the job's uuid.
fn step(job: &ScheduledJob) -> String {
    match (&job.step_key, &job.label) {
        (Some(key), _) => format!("step `{key}`"),
        (None, Some(label)) => format!("step \"{label}\""),
        (None, None) => format!("job {}", job.id),
    }
}

/// Sorts the answer to a PodTemplate get.
pub(crate) fn classify_get(
    result: Result<PodTemplate, kube::Error>,
    name: &str,
    namespace: &str,
    job: &ScheduledJob,
) -> Attempt<PodTemplate, LaunchError> {
    let err = match result {
        Ok(template) => return Attempt::Done(Ok(template)),
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
        404 => LaunchError::invalid(format!(
            "the kubernetes plugin of {} in pipeline `{}` names podTemplate `{name}`, but there \
             is no PodTemplate `{name}` in namespace `{namespace}`: create it there (kubectl -n \
             {namespace} get podtemplates lists them) or fix the step's podTemplate",
            step(job),
            job.pipeline
        )),
        403 => LaunchError::forbidden(format!(
            "jobify may not read PodTemplates in namespace `{namespace}`: grant verb `get` on \
             resource `podtemplates` (core API group) to its service account (see the RBAC \
             section of docs/kubernetes.md); the API server said: {message}"
        )),
        401 => LaunchError::forbidden(format!(
            "the Kubernetes API rejected jobify's credentials: {message}"
        )),
        429 | 500.. => return Attempt::Retry(Failure::of(format!("HTTP {code}: {message}"), err)),
        code => LaunchError::invalid(format!(
            "fetching podTemplate `{name}` from namespace `{namespace}` failed: HTTP {code}: \
             {message}"
        )),
    };
    Attempt::Done(Err(error.caused_by(Cause::new(err))))
}

impl Launcher {
    /// The PodTemplate `name` in jobify's namespace, which `job`'s `podTemplate` names;
    /// passing failures are retried with backoff as creates are.
    pub(crate) async fn pod_template(
        &self,
        job: &ScheduledJob,
        name: &str,
    ) -> Result<PodTemplate, LaunchError> {
        let result = retry(&self.client, "fetching the PodTemplate", name, || async {
            let fetched =
                tokio::time::timeout(self.client.request_timeout, self.pod_templates.get(name))
                    .await;
            match fetched {
                Ok(result) => classify_get(result, name, &self.namespace, job),
                Err(_) => Attempt::Retry(Failure::new(format!(
                    "no answer within {}",
                    humantime::format_duration(self.client.request_timeout)
                ))),
            }
        })
        .await;
        result.unwrap_or_else(|failure| {
            Err(LaunchError::transient(format!(
                "fetching podTemplate `{name}` from namespace `{}` failed {} times, last: {}",
                self.namespace, self.client.create_attempts, failure.message
            ))
            .caused_by(failure.cause))
        })
    }
}
