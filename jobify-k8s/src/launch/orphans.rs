//! Sweeping up agent token Secrets that have no owner.
//!
//! A token launch creates the Secret before the Job and makes the Job its owner after (see
//! [`token`](crate::launch::token)); a crash or a lost answer in between leaves a Secret no
//! garbage collector will delete. While it leads, the watch loop sweeps the controller's
//! token Secrets when it starts and every [`SWEEP_INTERVAL`]: one without owners, older
//! than [`ORPHAN_AGE`] and whose launch is not under way in this process is adopted by its
//! Job when that Job exists and reads its token from it, and deleted otherwise. The sweep
//! lists the Secrets' metadata only, never their data.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::ListParams;

use crate::launch::Launcher;
use crate::launch::token::{controller_of, job_uses_secret};
use crate::render::TOKEN_SECRET_SUFFIX;

/// How often the controller's token Secrets are swept (the first sweep is at start).
pub(crate) const SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// How old a token Secret without owners must be before the sweep takes it for an orphan:
/// longer than a launch takes between creating it and owning it.
pub(crate) const ORPHAN_AGE: Duration = Duration::from_secs(60);

/// What one sweep did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Swept {
    /// Orphans whose Job was found and made their owner.
    pub(crate) adopted: usize,
    /// Orphans deleted: no Job reads its token from them.
    pub(crate) deleted: usize,
}

/// The Job name of a token Secret that may be an orphan at `now`: it has no owner, is not
/// being deleted, is older than [`ORPHAN_AGE`], and its launch is not `in_flight`.
pub(crate) fn orphan_of(meta: &ObjectMeta, now: jiff::Timestamp, in_flight: bool) -> Option<&str> {
    let name = meta.name.as_deref()?;
    let job = name.strip_suffix(TOKEN_SECRET_SUFFIX)?;
    let owned = meta
        .owner_references
        .as_ref()
        .is_some_and(|o| !o.is_empty());
    let created = meta.creation_timestamp.as_ref()?.0;
    let age = now.duration_since(created);
    let old =
        age >= jiff::SignedDuration::try_from(ORPHAN_AGE).unwrap_or(jiff::SignedDuration::MAX);
    (!owned && meta.deletion_timestamp.is_none() && old && !in_flight).then_some(job)
}

impl Launcher {
    /// One sweep of the token Secrets `selector` (the controller's label) selects.
    pub(crate) async fn sweep_token_secrets(&self, selector: &str) -> Swept {
        let params = ListParams::default().labels(selector);
        let listed = self
            .call(
                "listing the agent token Secrets",
                selector,
                ("list", "secrets", ""),
                || self.secrets.list_metadata(&params),
            )
            .await;
        let secrets = match listed {
            Ok(list) => list.items,
            Err(err) => {
                tracing::warn!(error = %err,
                    "could not list the agent token Secrets to sweep up orphans; trying again \
                     at the next sweep");
                return Swept::default();
            }
        };
        let now = jiff::Timestamp::now();
        let mut swept = Swept::default();
        for secret in secrets {
            let meta = &secret.metadata;
            let name = meta.name.as_deref().unwrap_or_default();
            let Some(job_name) = orphan_of(meta, now, self.in_flight.contains(name)) else {
                continue;
            };
            match self.settle_orphan(meta, name, job_name).await {
                Ok(true) => swept.adopted += 1,
                Ok(false) => swept.deleted += 1,
                Err(err) => tracing::warn!(secret = name, error = %err,
                    "could not sweep up an orphaned agent token Secret; trying again at the \
                     next sweep"),
            }
        }
        if swept != Swept::default() {
            tracing::info!(
                adopted = swept.adopted,
                deleted = swept.deleted,
                "swept up agent token Secrets without an owner"
            );
        }
        swept
    }

    /// Adopts (`true`) or deletes (`false`) the orphan `name`.
    async fn settle_orphan(
        &self,
        meta: &ObjectMeta,
        name: &str,
        job_name: &str,
    ) -> Result<bool, jobify_core::LaunchError> {
        let job = self.find_job(job_name).await?;
        match job {
            Some(job) if job_uses_secret(&job, controller_of(meta), name) => {
                let uid = job.metadata.uid.as_deref().unwrap_or_default();
                self.try_own_secret(name, job_name, uid).await?;
                tracing::info!(
                    secret = name,
                    job_name,
                    "made a Job the owner of its orphaned agent token Secret"
                );
                Ok(true)
            }
            _ => {
                let uid = meta.uid.as_deref().unwrap_or_default();
                // At the version listed: one adopted meanwhile is left alone.
                self.delete_secret_at(name, uid, meta.resource_version.as_deref())
                    .await?;
                tracing::info!(
                    secret = name,
                    job_name,
                    "deleted an orphaned agent token Secret no Job uses"
                );
                Ok(false)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};

    use super::*;

    fn meta(name: &str, age_secs: i64, owned: bool) -> (ObjectMeta, jiff::Timestamp) {
        let now = jiff::Timestamp::from_second(1_800_000_000).expect("a time");
        let created = now - jiff::SignedDuration::from_secs(age_secs);
        let owner = OwnerReference {
            api_version: "batch/v1".to_owned(),
            kind: "Job".to_owned(),
            name: "jobify-x".to_owned(),
            uid: "u".to_owned(),
            ..OwnerReference::default()
        };
        let meta = ObjectMeta {
            name: Some(name.to_owned()),
            creation_timestamp: Some(Time(created)),
            owner_references: owned.then(|| vec![owner]),
            ..ObjectMeta::default()
        };
        (meta, now)
    }

    #[test]
    fn only_old_unowned_token_secrets_not_being_launched_are_orphans() {
        let (old, now) = meta("jobify-x-token", 61, false);
        assert_eq!(orphan_of(&old, now, false), Some("jobify-x"));
        assert_eq!(orphan_of(&old, now, true), None, "its launch is under way");
        let (young, now) = meta("jobify-x-token", 59, false);
        assert_eq!(orphan_of(&young, now, false), None);
        let (owned, now) = meta("jobify-x-token", 600, true);
        assert_eq!(orphan_of(&owned, now, false), None);
        let (other, now) = meta("jobify-x-creds", 600, false);
        assert_eq!(
            orphan_of(&other, now, false),
            None,
            "not a token Secret's name"
        );
    }
}
