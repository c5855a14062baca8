//! Leader election on a `coordination.k8s.io/v1` Lease, so that of several replicas exactly
//! one launches and deletes Jobs.
//!
//! The elector acquires the Lease when it is absent, released (no holder) or expired, renews
//! it every `renew_interval` with optimistic concurrency (a replace carrying the
//! `resourceVersion` it read: a 409 means another replica won), counts `leaseTransitions`, and
//! releases it on shutdown by clearing `holderIdentity`, so a standby takes over at once
//! instead of after `lease_duration`.
//!
//! Each elector process writes a random token of its own next to its identity (the
//! [`TOKEN_ANNOTATION`]) and counts the Lease as its own only when both match, so two
//! replicas mistakenly given the same identity still elect one leader; the other stands by
//! and logs an error naming the identity ([`observer`] has the rules).
//!
//! Expiry is judged as client-go judges it, on this replica's monotonic clock rather than on
//! the `renewTime` another machine wrote: a lease held by someone else is expired when its
//! record has not changed for `leaseDurationSeconds` since this replica first saw it. Clock
//! skew between machines then cannot make two leaders. A leader that cannot renew steps down
//! one renew interval before its lease expires ([`term_end`]), even while a request to the
//! API server hangs.
//!
//! ```no_run
//! # async fn demo(client: kube::Client) {
//! use jobify_k8s::config::LeaderElectionConfig;
//! use jobify_k8s::leader::LeaderElector;
//!
//! let elector = LeaderElector::new(client, "buildkite", &LeaderElectionConfig::default(), "pod-a");
//! let mut is_leader = elector.subscribe();
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let task = tokio::spawn(elector.run(async move { let _ = stopped.await; }));
//! is_leader.wait_for(|leading| *leading).await.ok();
//! // ... lead ...
//! let _ = stop.send(());
//! task.await.ok();
//! # }
//! ```

use std::future::Future;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::config::LeaderElectionConfig;

pub mod observer;

pub use observer::{Claimant, Observer, Step, TOKEN_ANNOTATION};

/// Elects one leader among the replicas sharing a Lease.
pub struct LeaderElector {
    leases: Api<Lease>,
    name: String,
    claimant: Claimant,
    lease_duration: Duration,
    renew_interval: Duration,
    leading: watch::Sender<bool>,
}

impl LeaderElector {
    /// An elector for the Lease `config.lease_name` in `namespace`, as `identity`, with a
    /// fresh token of its own (see [`Claimant`]).
    pub fn new(
        client: Client,
        namespace: &str,
        config: &LeaderElectionConfig,
        identity: &str,
    ) -> Self {
        let (leading, _) = watch::channel(false);
        LeaderElector {
            leases: Api::namespaced(client, namespace),
            name: config.lease_name.clone(),
            claimant: Claimant::new(identity),
            lease_duration: config.lease_duration,
            renew_interval: config.renew_interval,
            leading,
        }
    }

    /// Whether this replica leads, now and as it changes.
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.leading.subscribe()
    }

    /// Runs the election until `shutdown` completes, then steps down and releases the Lease.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut observer = Observer::new();
        let mut shared_identity = SharedIdentityLog::default();
        // When the lease this replica wrote last was written (measured before the write).
        let mut renewed_at: Option<Instant> = None;
        loop {
            let now = Instant::now();
            let term = renewed_at.map(|at| term_end(at, self.lease_duration, self.renew_interval));
            // A round may hang (an API server that accepts but never answers): leadership
            // ends at the end of the term whether or not the round has come back.
            let round = tokio::select! {
                round = self.round(&mut observer, &mut shared_identity, now) => Some(round),
                () = sleep_until(term) => None,
            };
            match round {
                Some(Ok(true)) => renewed_at = Some(now),
                Some(Ok(false)) => renewed_at = None,
                Some(Err(err)) => {
                    tracing::warn!(lease = %self.name, error = %err, "leader election round failed");
                }
                None => {
                    tracing::warn!(lease = %self.name, "the Kubernetes API did not answer before the leader term ended");
                }
            }
            if renewed_at.is_some_and(|at| {
                Instant::now() >= term_end(at, self.lease_duration, self.renew_interval)
            }) {
                renewed_at = None;
            }
            self.set_leading(renewed_at.is_some());
            let term = renewed_at.map(|at| term_end(at, self.lease_duration, self.renew_interval));
            tokio::select! {
                () = &mut shutdown => break,
                () = tokio::time::sleep(self.renew_interval) => {}
                () = sleep_until(term) => {}
            }
        }
        let was_leading = *self.leading.borrow();
        self.set_leading(false);
        if was_leading {
            // Past the lease duration a release no longer matters: the lease has expired.
            match tokio::time::timeout(self.lease_duration, self.release()).await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => {
                    tracing::warn!(lease = %self.name, error = %err, "could not release the leader lease");
                }
                Err(_) => {
                    tracing::warn!(lease = %self.name, "the Kubernetes API did not answer the lease release in time");
                }
            }
        }
    }

    /// One read-decide-write round; whether this replica holds the lease afterwards.
    async fn round(
        &self,
        observer: &mut Observer,
        shared_identity: &mut SharedIdentityLog,
        now: Instant,
    ) -> Result<bool, kube::Error> {
        let lease = self.leases.get_opt(&self.name).await?;
        let step = observer.decide(lease.as_ref(), &self.claimant, self.lease_duration, now);
        let written = match (step, lease) {
            (Step::Create, _) => {
                let lease = self.lease(None, 0, true);
                self.leases.create(&PostParams::default(), &lease).await
            }
            (Step::Acquire { transitions }, Some(current)) => {
                let lease = self.lease(Some(&current), transitions, true);
                self.leases
                    .replace(&self.name, &PostParams::default(), &lease)
                    .await
            }
            (Step::Renew, Some(current)) => {
                let transitions = current
                    .spec
                    .as_ref()
                    .and_then(|s| s.lease_transitions)
                    .unwrap_or(0);
                let lease = self.lease(Some(&current), transitions, false);
                self.leases
                    .replace(&self.name, &PostParams::default(), &lease)
                    .await
            }
            (Step::Standby { holder }, _) => {
                tracing::trace!(lease = %self.name, %holder, "standing by");
                return Ok(false);
            }
            (Step::SharedIdentity { renewed }, _) => {
                shared_identity.note(&self.name, self.claimant.identity(), renewed);
                return Ok(false);
            }
            // Acquire and Renew are only decided for an existing Lease.
            (Step::Acquire { .. } | Step::Renew, None) => return Ok(false),
        };
        match written {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if status.code == 409 => {
                tracing::debug!(lease = %self.name, "lost the race for the leader lease");
                Ok(false)
            }
            Err(err) => Err(err),
        }
    }

    /// The Lease held by this process, based on `current` (keeping its resourceVersion for
    /// optimistic concurrency) and carrying this process's token. `acquired` sets a new
    /// `acquireTime`.
    fn lease(&self, current: Option<&Lease>, transitions: i32, acquired: bool) -> Lease {
        let now = MicroTime(Timestamp::now());
        let previous = current.and_then(|l| l.spec.clone()).unwrap_or_default();
        let mut metadata = ObjectMeta {
            name: Some(self.name.clone()),
            resource_version: current.and_then(|l| l.metadata.resource_version.clone()),
            ..current.map(|l| l.metadata.clone()).unwrap_or_default()
        };
        metadata.annotations.get_or_insert_default().insert(
            TOKEN_ANNOTATION.to_owned(),
            self.claimant.token().to_owned(),
        );
        Lease {
            metadata,
            spec: Some(LeaseSpec {
                holder_identity: Some(self.claimant.identity().to_owned()),
                lease_duration_seconds: Some(
                    i32::try_from(self.lease_duration.as_secs()).unwrap_or(i32::MAX),
                ),
                acquire_time: if acquired {
                    Some(now.clone())
                } else {
                    previous.acquire_time
                },
                renew_time: Some(now),
                lease_transitions: Some(transitions),
                ..previous
            }),
        }
    }

    /// Clears the holder (and this process's token) so a standby can take over at once. A
    /// lease this process no longer holds, even one under its identity, is left alone.
    async fn release(&self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.leases.get_opt(&self.name).await? else {
            return Ok(());
        };
        if !self.claimant.holds(&lease) {
            return Ok(());
        }
        if let Some(annotations) = lease.metadata.annotations.as_mut() {
            annotations.remove(TOKEN_ANNOTATION);
        }
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        spec.holder_identity = None;
        spec.renew_time = None;
        spec.acquire_time = None;
        self.leases
            .replace(&self.name, &PostParams::default(), &lease)
            .await
            .map(drop)
    }

    fn set_leading(&self, leading: bool) {
        self.leading.send_if_modified(|current| {
            let changed = *current != leading;
            if changed {
                tracing::info!(identity = %self.claimant.identity(), leading, "leadership changed");
            }
            *current = leading;
            changed
        });
    }
}

/// What has been logged about another process holding the Lease under this replica's identity,
/// so that each message is logged once per process.
#[derive(Debug, Default)]
struct SharedIdentityLog {
    suspected: bool,
    confirmed: bool,
}

impl SharedIdentityLog {
    /// Logs that another process holds the Lease `lease` under `identity`; `renewed` when it
    /// was seen renewing it, which proves two live replicas share the identity.
    fn note(&mut self, lease: &str, identity: &str, renewed: bool) {
        if renewed && !self.confirmed {
            self.confirmed = true;
            self.suspected = true;
            tracing::error!(
                %lease,
                %identity,
                "two replicas share the leader-election identity {identity:?}: another process \
                 keeps renewing the Lease under it, so this replica stands by and cannot take \
                 over while that one runs; give each replica a unique \
                 `[leader_election] identity`, or leave it unset to use the pod name"
            );
        } else if !self.suspected {
            self.suspected = true;
            tracing::warn!(
                %lease,
                %identity,
                "the leader Lease is held under this replica's identity {identity:?} by \
                 another process (a previous run of this replica that did not release it, or \
                 another replica with the same identity); standing by until it expires"
            );
        }
    }
}

/// When the term of a lease written at `renewed_at` ends for its holder: one renew interval
/// before the lease expires. A standby judges expiry from when it first saw that write, which
/// is after `renewed_at`, so the old leader has stopped before a standby can take over, and
/// the renew interval is the margin for work the old leader started just before.
pub fn term_end(
    renewed_at: Instant,
    lease_duration: Duration,
    renew_interval: Duration,
) -> Instant {
    renewed_at + lease_duration.saturating_sub(renew_interval)
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// A leadership signal that is always on: for a single replica, with election disabled.
pub fn always_leading() -> watch::Receiver<bool> {
    let (sender, receiver) = watch::channel(true);
    // Dropping the sender keeps the last value readable forever.
    drop(sender);
    receiver
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const DURATION: Duration = Duration::from_secs(15);

    fn lease(holder: Option<&str>, version: &str, transitions: i32) -> Lease {
        serde_json::from_value(json!({
            "metadata": {"name": "jobify", "resourceVersion": version},
            "spec": {"holderIdentity": holder, "leaseDurationSeconds": 10,
                     "leaseTransitions": transitions}
        }))
        .expect("lease")
    }

    #[test]
    fn a_leader_term_ends_before_a_standby_may_take_over() {
        let written = Instant::now();
        // `lease()` writes leaseDurationSeconds = 10.
        let lease_duration = Duration::from_secs(10);
        let renew = Duration::from_secs(3);
        let end = term_end(written, lease_duration, renew);
        assert_eq!(end, written + Duration::from_secs(7));
        // A standby saw the write no earlier than it was made, and waits the full duration.
        let mut standby = Observer::new();
        let a = Claimant::new("a");
        let held = lease(Some("b"), "7", 0);
        let b = Step::Standby {
            holder: "b".to_owned(),
        };
        assert_eq!(standby.decide(Some(&held), &a, DURATION, written), b);
        assert_eq!(standby.decide(Some(&held), &a, DURATION, end), b);
        assert_eq!(
            standby.decide(Some(&held), &a, DURATION, written + lease_duration),
            Step::Acquire { transitions: 1 }
        );
    }

    #[test]
    fn always_leading_stays_on() {
        let receiver = always_leading();
        assert!(*receiver.borrow());
    }
}
