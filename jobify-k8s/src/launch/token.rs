//! Launching a job that has an agent token of its own: its Secret, then its Job, then the
//! Job made the Secret's owner, so that Kubernetes' garbage collector deletes the Secret with
//! the Job.
//!
//! ```text
//!  create Secret ──▶ create Job ──▶ merge-patch the Secret's ownerReferences (the Job's uid)
//!   │ 409: plan()     │ 409: the Job uses the Secret? own it : delete the Secret
//!   │                 │ 400/403/422: delete the Secret
//!   │                 │ no answer: leave it (the Job may exist); a relaunch or the sweep
//!   ▼                 ▼            (crate::launch::orphans) settles it
//! ```
//!
//! The Secret comes first because a pod whose Secret is missing fails with
//! `CreateContainerConfigError`, which the fail-fast watch gives up on at once. It has no
//! owner until the Job exists: a crash between the two leaves an orphan, which the periodic
//! sweep adopts (when its Job exists) or deletes.
//!
//! Every step is idempotent, as a Job create is: the Secret has a fixed name
//! (`<job name>-token`), and one found under it is judged by [`plan`].

use std::collections::HashSet;
use std::sync::Mutex;

use jobify_core::{Cause, LaunchError, Launched};
use k8s_openapi::Resource as _;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions};

use crate::labels;
use crate::launch::{Attempt, Failure, Launcher, retry};
use crate::render::AGENT_TOKEN_SECRET_KEY;

/// How many times a launch goes round when the Secret it finds must be replaced or vanishes
/// under it.
const ROUNDS: usize = 3;

/// What is known of the Secret found under the name a launch wanted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FoundSecret {
    /// Its uid.
    pub(crate) uid: String,
    /// Whether it is labelled as this controller's Secret for this job.
    pub(crate) ours: bool,
    /// Whether it holds the token being launched with (a retry of this launch made it).
    pub(crate) same_token: bool,
    /// The uids of its owners.
    pub(crate) owners: Vec<String>,
}

/// What is known of the Job found under the launch's Job name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FoundJob {
    /// Its uid.
    pub(crate) uid: String,
    /// Whether it is this controller's and its annotation names the Secret: its agent reads
    /// its token from it.
    pub(crate) uses_secret: bool,
}

/// What to do about a Secret that already existed when the launch created it.
#[must_use]
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SecretPlan {
    /// It went between the create and the look: create it again.
    Vanished,
    /// Someone else's object of that name: the launch cannot go on.
    Foreign,
    /// The Job exists and uses it: nothing to create; make the Job its owner if it is not.
    Launched {
        /// The Job's uid.
        job: String,
        /// Whether the owner must be set.
        adopt: bool,
    },
    /// A Job exists that does not use it: nothing to create; delete the Secret unless a Job
    /// owns it (the garbage collector then does).
    Unused {
        /// The Secret's uid.
        uid: String,
        /// Whether it has an owner.
        owned: bool,
    },
    /// A retry of this launch made it: create the Job.
    Reuse {
        /// The Secret's uid.
        uid: String,
    },
    /// Left by an earlier launch, with another token or owned by a Job gone: delete it and
    /// create it again (a Secret holding a token is immutable).
    Replace {
        /// The Secret's uid.
        uid: String,
    },
}

/// Decides about a Secret found under the launch's name (`None`: it is gone again), given
/// the Job found under the launch's Job name.
pub(crate) fn plan(secret: Option<&FoundSecret>, job: Option<&FoundJob>) -> SecretPlan {
    let Some(secret) = secret else {
        return SecretPlan::Vanished;
    };
    if !secret.ours {
        return SecretPlan::Foreign;
    }
    match job {
        Some(job) if job.uses_secret => SecretPlan::Launched {
            job: job.uid.clone(),
            adopt: secret.owners != [job.uid.clone()],
        },
        Some(_) => SecretPlan::Unused {
            uid: secret.uid.clone(),
            owned: !secret.owners.is_empty(),
        },
        None if secret.same_token && secret.owners.is_empty() => SecretPlan::Reuse {
            uid: secret.uid.clone(),
        },
        None => SecretPlan::Replace {
            uid: secret.uid.clone(),
        },
    }
}

/// The names of the token Secrets whose launch is under way in this process: the sweep
/// leaves them alone however long the launch takes.
#[derive(Debug, Default)]
pub(crate) struct InFlight(Mutex<HashSet<String>>);

impl InFlight {
    fn hold(&self, name: &str) -> Held<'_> {
        lock(&self.0).insert(name.to_owned());
        Held {
            names: self,
            name: name.to_owned(),
        }
    }

    /// Whether the launch of the Secret `name` is under way.
    pub(crate) fn contains(&self, name: &str) -> bool {
        lock(&self.0).contains(name)
    }
}

/// A launch under way; it ends when this is dropped.
struct Held<'a> {
    names: &'a InFlight,
    name: String,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        lock(&self.names.0).remove(&self.name);
    }
}

/// Locks a mutex whose holders never panic while holding it; a poisoned one is still usable.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// How creating a Secret went.
enum Created {
    /// Made now, with this uid.
    New(String),
    /// One of that name exists.
    Exists,
}

impl Launcher {
    /// Creates `secret` (from [`render_token_secret`](crate::render::render_token_secret)),
    /// then `job`, then makes the Job the Secret's owner; see the module's documentation.
    pub(crate) async fn create_with_token(
        &self,
        job: &Job,
        secret: &Secret,
    ) -> Result<Launched, LaunchError> {
        // The semaphore is never closed, so acquiring only fails if that invariant breaks.
        let _permit = self
            .creates
            .acquire()
            .await
            .map_err(|_| LaunchError::transient("the launcher is shutting down"))?;
        let job_name = job.metadata.name.as_deref().unwrap_or_default();
        let secret_name = secret.metadata.name.as_deref().unwrap_or_default();
        let _held = self.in_flight.hold(secret_name);
        // Paced once for the pair, before the Secret: the Job follows it without a wait.
        self.pace().await;

        let mut secret_uid = None;
        for _ in 0..ROUNDS {
            let Created::New(uid) = self.create_secret(secret).await? else {
                let found = self.find_secret(secret_name).await?;
                let found = found.map(|s| judge_secret(&s, secret));
                let existing = self.find_job(job_name).await?;
                let existing = existing.map(|j| judge_job(&j, job, secret_name));
                match plan(found.as_ref(), existing.as_ref()) {
                    SecretPlan::Vanished => continue,
                    SecretPlan::Foreign => return Err(foreign(secret_name, &self.namespace)),
                    SecretPlan::Launched { job: uid, adopt } => {
                        if adopt {
                            self.own_secret(secret_name, job_name, &uid).await;
                        }
                        return Ok(Launched::AlreadyExists);
                    }
                    SecretPlan::Unused { uid, owned } => {
                        if !owned {
                            self.drop_secret(secret_name, &uid).await;
                        }
                        return Ok(Launched::AlreadyExists);
                    }
                    SecretPlan::Reuse { uid } => {
                        secret_uid = Some(uid);
                        break;
                    }
                    SecretPlan::Replace { uid } => {
                        tracing::info!(
                            secret = secret_name,
                            job_name,
                            "replacing the agent token Secret an earlier launch of this job left"
                        );
                        self.delete_secret(secret_name, &uid).await?;
                        continue;
                    }
                }
            };
            secret_uid = Some(uid);
            break;
        }
        let Some(secret_uid) = secret_uid else {
            return Err(LaunchError::transient(format!(
                "the Secret `{secret_name}` kept changing while jobify created it; will retry"
            )));
        };

        match self.create_job(job, false).await {
            Ok((Launched::Created, Some(uid))) => {
                self.own_secret(secret_name, job_name, &uid).await;
                Ok(Launched::Created)
            }
            Ok((launched, _)) => {
                // The Job was there already (or its uid went missing from the answer): it
                // keeps the Secret only if it reads its token from it.
                match self.find_job(job_name).await? {
                    Some(found) if judge_job(&found, job, secret_name).uses_secret => {
                        let uid = found.metadata.uid.unwrap_or_default();
                        self.own_secret(secret_name, job_name, &uid).await;
                    }
                    _ => self.drop_secret(secret_name, &secret_uid).await,
                }
                Ok(launched)
            }
            Err(err @ (LaunchError::Invalid { .. } | LaunchError::Forbidden { .. })) => {
                // No Job was made: the Secret is of no use.
                self.drop_secret(secret_name, &secret_uid).await;
                Err(err)
            }
            Err(err @ LaunchError::Transient { .. }) => Err(err),
        }
    }

    async fn create_secret(&self, secret: &Secret) -> Result<Created, LaunchError> {
        let name = secret.metadata.name.as_deref().unwrap_or_default();
        self.secret_call(
            "creating the agent token Secret",
            name,
            "create",
            || async {
                match self.secrets.create(&PostParams::default(), secret).await {
                    Ok(created) => Ok(Created::New(created.metadata.uid.unwrap_or_default())),
                    Err(kube::Error::Api(status)) if status.code == 409 => Ok(Created::Exists),
                    Err(err) => Err(err),
                }
            },
        )
        .await
    }

    /// The Secret `name`, if there is one (a list: jobify is granted `list` on Secrets, not
    /// `get`).
    async fn find_secret(&self, name: &str) -> Result<Option<Secret>, LaunchError> {
        let params = ListParams::default().fields(&format!("metadata.name={name}"));
        self.secret_call(
            "looking up the agent token Secret",
            name,
            "list",
            || async {
                let list = self.secrets.list(&params).await?;
                Ok(list
                    .items
                    .into_iter()
                    .find(|s| s.metadata.name.as_deref() == Some(name)))
            },
        )
        .await
    }

    /// The Job `name`, if there is one.
    pub(crate) async fn find_job(&self, name: &str) -> Result<Option<Job>, LaunchError> {
        let params = ListParams::default().fields(&format!("metadata.name={name}"));
        let jobs: &Api<Job> = &self.jobs;
        self.call(
            "looking up the Job",
            name,
            ("list", "jobs", "batch"),
            || async {
                let list = jobs.list(&params).await?;
                Ok(list
                    .items
                    .into_iter()
                    .find(|j| j.metadata.name.as_deref() == Some(name)))
            },
        )
        .await
    }

    /// Makes the Job `job_name` (uid `job_uid`) the only owner of the Secret `name`. A
    /// failure is logged, not returned: the Job runs either way, and the sweep adopts the
    /// Secret later.
    pub(crate) async fn own_secret(&self, name: &str, job_name: &str, job_uid: &str) {
        if let Err(err) = self.try_own_secret(name, job_name, job_uid).await {
            tracing::error!(secret = name, job_name, error = %err,
                "could not make the Job the owner of its agent token Secret, so the garbage \
                 collector would not delete it with the Job; the sweep of orphaned token \
                 Secrets tries again");
        }
    }

    pub(crate) async fn try_own_secret(
        &self,
        name: &str,
        job_name: &str,
        job_uid: &str,
    ) -> Result<(), LaunchError> {
        let patch = Patch::Merge(serde_json::json!({"metadata": {"ownerReferences": [{
            "apiVersion": Job::API_VERSION,
            "kind": Job::KIND,
            "name": job_name,
            "uid": job_uid,
            "controller": false,
            "blockOwnerDeletion": false,
        }]}}));
        let params = PatchParams::default();
        self.secret_call(
            "setting the owner of the agent token Secret",
            name,
            "patch",
            || async { self.secrets.patch(name, &params, &patch).await.map(drop) },
        )
        .await
    }

    /// Deletes the Secret `name` if it is still the one with `uid`; a failure is logged (the
    /// sweep deletes it later).
    async fn drop_secret(&self, name: &str, uid: &str) {
        if let Err(err) = self.delete_secret(name, uid).await {
            tracing::warn!(secret = name, error = %err,
                "could not delete an agent token Secret no Job uses; the sweep of orphaned \
                 token Secrets tries again");
        }
    }

    /// Deletes the Secret `name` if it is still the one with `uid` (and, given, at
    /// `resource_version`). One already gone, or changed meanwhile, is left as it is.
    pub(crate) async fn delete_secret_at(
        &self,
        name: &str,
        uid: &str,
        resource_version: Option<&str>,
    ) -> Result<(), LaunchError> {
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: Some(uid.to_owned()),
                resource_version: resource_version.map(str::to_owned),
            }),
            ..DeleteParams::default()
        };
        self.secret_call(
            "deleting the agent token Secret",
            name,
            "delete",
            || async {
                match self.secrets.delete(name, &params).await {
                    Ok(_) => Ok(()),
                    Err(kube::Error::Api(status)) if matches!(status.code, 404 | 409) => Ok(()),
                    Err(err) => Err(err),
                }
            },
        )
        .await
    }

    async fn delete_secret(&self, name: &str, uid: &str) -> Result<(), LaunchError> {
        self.delete_secret_at(name, uid, None).await
    }

    async fn secret_call<T, F, Fut>(
        &self,
        what: &str,
        name: &str,
        verb: &str,
        call: F,
    ) -> Result<T, LaunchError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, kube::Error>>,
    {
        self.call(what, name, (verb, "secrets", ""), call).await
    }

    /// Runs `call` with the request timeout, retrying passing failures; `permission` is the
    /// (verb, resource, API group) a 403 is about.
    pub(crate) async fn call<T, F, Fut>(
        &self,
        what: &str,
        name: &str,
        permission: (&str, &str, &str),
        mut call: F,
    ) -> Result<T, LaunchError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, kube::Error>>,
    {
        let timeout = self.client.request_timeout;
        let result = retry(&self.client, what, name, || {
            let answer = tokio::time::timeout(timeout, call());
            async move {
                match answer.await {
                    Ok(Ok(value)) => Attempt::Done(Ok(value)),
                    Ok(Err(err)) => classify(err, permission, &self.namespace),
                    Err(_) => Attempt::Retry(Failure::new(format!(
                        "no answer within {}",
                        humantime::format_duration(timeout)
                    ))),
                }
            }
        })
        .await;
        result.unwrap_or_else(|failure| {
            Err(LaunchError::transient(format!(
                "{what} `{name}` failed {} times, last: {}",
                self.client.create_attempts, failure.message
            ))
            .caused_by(failure.cause))
        })
    }
}

/// Sorts a failed call about `permission` (verb, resource, API group) by what to do.
pub(crate) fn classify<T>(
    err: kube::Error,
    (verb, resource, group): (&str, &str, &str),
    namespace: &str,
) -> Attempt<T, LaunchError> {
    let kube::Error::Api(status) = &err else {
        return Attempt::Retry(Failure::of(
            format!("could not reach the Kubernetes API: {err}"),
            err,
        ));
    };
    let (code, message) = (status.code, status.message.clone());
    let group = if group.is_empty() {
        "the core API group".to_owned()
    } else {
        format!("API group `{group}`")
    };
    let error = match code {
        403 => LaunchError::forbidden(format!(
            "jobify may not {verb} {resource} in namespace `{namespace}`: grant verb `{verb}` \
             on resource `{resource}` ({group}) to its service account (see the RBAC section \
             of docs/kubernetes.md); the API server said: {message}"
        )),
        401 => LaunchError::forbidden(format!(
            "the Kubernetes API rejected jobify's credentials: {message}"
        )),
        404 => LaunchError::transient(format!(
            "namespace `{namespace}` does not exist: create it or fix kubernetes.namespace \
             ({message})"
        )),
        409 | 429 | 500.. => {
            return Attempt::Retry(Failure::of(format!("HTTP {code}: {message}"), err));
        }
        code => LaunchError::invalid(format!("HTTP {code}: {message}")),
    };
    Attempt::Done(Err(error.caused_by(Cause::new(err))))
}

fn foreign(name: &str, namespace: &str) -> LaunchError {
    LaunchError::invalid(format!(
        "a Secret named `{name}` already exists in namespace `{namespace}` and is not the agent \
         token Secret jobify makes for this job (its labels differ): delete or rename it, or \
         change kubernetes.job_name_prefix"
    ))
}

/// What `found`, under the name of the Secret `wanted`, is to this launch.
fn judge_secret(found: &Secret, wanted: &Secret) -> FoundSecret {
    let label = |secret: &Secret, key: &str| {
        secret
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(key).cloned())
    };
    let ours = [labels::CONTROLLER, labels::JOB_UUID]
        .iter()
        .all(|key| label(found, key).is_some() && label(found, key) == label(wanted, key));
    let token = |secret: &Secret| {
        secret
            .data
            .as_ref()
            .and_then(|d| d.get(AGENT_TOKEN_SECRET_KEY).map(|b| b.0.clone()))
    };
    FoundSecret {
        uid: found.metadata.uid.clone().unwrap_or_default(),
        ours,
        same_token: token(found).is_some() && token(found) == token(wanted),
        owners: found
            .metadata
            .owner_references
            .iter()
            .flatten()
            .map(|o| o.uid.clone())
            .collect(),
    }
}

/// What `found`, under the name of the Job `wanted`, is to the Secret `secret`.
fn judge_job(found: &Job, wanted: &Job, secret: &str) -> FoundJob {
    FoundJob {
        uid: found.metadata.uid.clone().unwrap_or_default(),
        uses_secret: job_uses_secret(found, controller_of(&wanted.metadata), secret),
    }
}

/// The controller label of an object.
pub(crate) fn controller_of(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> Option<&str> {
    meta.labels
        .as_ref()
        .and_then(|l| l.get(labels::CONTROLLER))
        .map(String::as_str)
}

/// Whether `job` is `controller`'s and reads its agent token from the Secret `secret` (its
/// annotation names it).
pub(crate) fn job_uses_secret(job: &Job, controller: Option<&str>, secret: &str) -> bool {
    let names = job
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(labels::AGENT_TOKEN_SECRET))
        .is_some_and(|name| name == secret);
    names && controller.is_some() && controller_of(&job.metadata) == controller
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(ours: bool, same_token: bool, owners: &[&str]) -> FoundSecret {
        FoundSecret {
            uid: "s1".to_owned(),
            ours,
            same_token,
            owners: owners.iter().map(|o| (*o).to_owned()).collect(),
        }
    }

    fn job(uses_secret: bool) -> FoundJob {
        FoundJob {
            uid: "j1".to_owned(),
            uses_secret,
        }
    }

    #[test]
    fn a_secret_found_is_reused_only_when_a_retry_of_this_launch_made_it() {
        assert_eq!(
            plan(Some(&secret(true, true, &[])), None),
            SecretPlan::Reuse {
                uid: "s1".to_owned()
            }
        );
        // Another token (an earlier launch's), or owned by a Job that is gone.
        for found in [secret(true, false, &[]), secret(true, true, &["gone"])] {
            assert_eq!(
                plan(Some(&found), None),
                SecretPlan::Replace {
                    uid: "s1".to_owned()
                },
                "{found:?}"
            );
        }
    }

    #[test]
    fn a_secret_of_an_existing_job_is_kept_and_owned() {
        assert_eq!(
            plan(Some(&secret(true, false, &[])), Some(&job(true))),
            SecretPlan::Launched {
                job: "j1".to_owned(),
                adopt: true
            }
        );
        assert_eq!(
            plan(Some(&secret(true, true, &["j1"])), Some(&job(true))),
            SecretPlan::Launched {
                job: "j1".to_owned(),
                adopt: false
            }
        );
        assert_eq!(
            plan(Some(&secret(true, true, &[])), Some(&job(false))),
            SecretPlan::Unused {
                uid: "s1".to_owned(),
                owned: false
            }
        );
    }

    #[test]
    fn a_secret_not_labelled_as_ours_is_never_touched() {
        for existing in [None, Some(job(true)), Some(job(false))] {
            assert_eq!(
                plan(Some(&secret(false, true, &[])), existing.as_ref()),
                SecretPlan::Foreign
            );
        }
        assert_eq!(plan(None, None), SecretPlan::Vanished);
    }

    #[test]
    fn refusals_name_the_verb_and_the_resource() {
        let status = kube::core::Status {
            code: 403,
            message: "secrets is forbidden: User \"x\" cannot patch resource \"secrets\""
                .to_owned(),
            ..kube::core::Status::default()
        };
        let Attempt::Done(Err::<(), _>(LaunchError::Forbidden { message, .. })) = classify(
            kube::Error::Api(Box::new(status)),
            ("patch", "secrets", ""),
            "ci",
        ) else {
            panic!("403 is forbidden")
        };
        assert!(
            message.contains("grant verb `patch` on resource `secrets` (the core API group)"),
            "{message}"
        );
        assert!(
            message.contains("cannot patch resource \"secrets\""),
            "{message}"
        );
    }
}
