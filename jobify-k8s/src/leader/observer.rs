//! The pure heart of the elector: from the Lease as read, what this process should do.
//!
//! A Lease belongs to this process only when it carries both this replica's identity and this
//! process's [`Claimant::token`]. The identity alone is not enough: an operator may give two
//! replicas the same `[leader_election] identity`, and each would then take the other's
//! lease for its own. A live lease under this identity with another token, or with none (an
//! older jobify wrote it; this process always writes its token), is another process's: this
//! one waits for it to expire as for any other holder ([`Step::SharedIdentity`]).

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use tokio::time::Instant;

/// Annotation on the Lease: the token of the process that wrote it (see [`Claimant`]).
pub const TOKEN_ANNOTATION: &str = "jobify.dev/leader-token";

/// This process as a contender for the Lease: the configured identity, shared by every run of
/// the replica, and a random token of this process alone.
///
/// The token is a nonce, not a credential: anyone who can read the Lease sees it, and knowing
/// it only lets a writer do what its RBAC already allows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claimant {
    identity: String,
    token: String,
}

impl Claimant {
    /// A claimant for `identity` with a fresh random token.
    pub fn new(identity: &str) -> Self {
        Claimant::with_token(identity, &uuid::Uuid::new_v4().to_string())
    }

    /// A claimant for `identity` with a given `token` (for tests).
    pub fn with_token(identity: &str, token: &str) -> Self {
        Claimant {
            identity: identity.to_owned(),
            token: token.to_owned(),
        }
    }

    /// The identity written as `holderIdentity`.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// This process's token, written in the [`TOKEN_ANNOTATION`].
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Whether this process wrote `lease` and still holds it: its holder is this identity and
    /// its token annotation is this process's token.
    pub fn holds(&self, lease: &Lease) -> bool {
        let holder = lease
            .spec
            .as_ref()
            .and_then(|s| s.holder_identity.as_deref());
        holder == Some(self.identity.as_str()) && lease_token(lease) == Some(self.token.as_str())
    }
}

/// The token annotation of `lease`, if it has one.
pub fn lease_token(lease: &Lease) -> Option<&str> {
    lease
        .metadata
        .annotations
        .as_ref()?
        .get(TOKEN_ANNOTATION)
        .map(String::as_str)
}

/// What the elector should do after reading the Lease.
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub enum Step {
    /// No Lease exists: create it, holding it.
    Create,
    /// The Lease is free or expired: take it over (one more transition).
    Acquire {
        /// `leaseTransitions` to write.
        transitions: i32,
    },
    /// This process holds it (identity and token): renew.
    Renew,
    /// Someone else holds a live lease: stand by.
    Standby {
        /// The holder.
        holder: String,
    },
    /// Another process holds a live lease under this replica's own identity (another token,
    /// or none): stand by as for any other holder, never renew it.
    SharedIdentity {
        /// Whether the lease changed since the last read while held that way: the other
        /// process is alive and renewing, so two replicas share the identity (rather than a
        /// previous run of this replica that died holding the lease).
        renewed: bool,
    },
}

/// The part of a Lease that identifies one write of it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Record {
    holder: Option<String>,
    token: Option<String>,
    resource_version: Option<String>,
    renew_time: Option<Timestamp>,
}

impl Record {
    /// Whether another process holds this record under `claimant`'s identity.
    fn shares_identity_with(&self, claimant: &Claimant) -> bool {
        self.holder.as_deref() == Some(claimant.identity())
            && self.token.as_deref() != Some(claimant.token())
    }
}

/// Watches the Lease's record change over time.
#[derive(Clone, Debug, Default)]
pub struct Observer {
    seen: Option<(Record, Instant)>,
}

impl Observer {
    /// A fresh observer (has seen nothing yet).
    pub fn new() -> Self {
        Observer::default()
    }

    /// Decides, from the Lease as read at `now`, what `claimant` should do.
    /// `default_duration` applies when the Lease does not say its duration.
    pub fn decide(
        &mut self,
        lease: Option<&Lease>,
        claimant: &Claimant,
        default_duration: Duration,
        now: Instant,
    ) -> Step {
        let Some(lease) = lease else {
            self.seen = None;
            return Step::Create;
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let record = Record {
            holder: spec.holder_identity.clone().filter(|h| !h.is_empty()),
            token: lease_token(lease).map(str::to_owned),
            resource_version: lease.metadata.resource_version.clone(),
            renew_time: spec.renew_time.as_ref().map(|t| t.0),
        };
        let (first_seen, renewed) = match &self.seen {
            Some((seen, at)) if *seen == record => (*at, false),
            previous => {
                let renewed = previous
                    .as_ref()
                    .is_some_and(|(seen, _)| seen.shares_identity_with(claimant));
                self.seen = Some((record.clone(), now));
                (now, renewed)
            }
        };
        let transitions = spec.lease_transitions.unwrap_or(0);
        let shared = record.shares_identity_with(claimant);
        let Some(holder) = record.holder else {
            return Step::Acquire {
                transitions: transitions.saturating_add(1),
            };
        };
        if holder == claimant.identity() && !shared {
            return Step::Renew;
        }
        let duration = spec
            .lease_duration_seconds
            .and_then(|s| u64::try_from(s).ok())
            .map_or(default_duration, Duration::from_secs);
        if now.duration_since(first_seen) >= duration {
            Step::Acquire {
                transitions: transitions.saturating_add(1),
            }
        } else if shared {
            Step::SharedIdentity { renewed }
        } else {
            Step::Standby { holder }
        }
    }
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

    fn with_token(mut lease: Lease, token: &str) -> Lease {
        lease
            .metadata
            .annotations
            .get_or_insert_default()
            .insert(TOKEN_ANNOTATION.to_owned(), token.to_owned());
        lease
    }

    fn a() -> Claimant {
        Claimant::with_token("a", "token-a")
    }

    #[test]
    fn a_claimant_holds_only_a_lease_with_its_identity_and_its_token() {
        let claimant = a();
        assert!(claimant.holds(&with_token(lease(Some("a"), "1", 0), "token-a")));
        assert!(!claimant.holds(&with_token(lease(Some("a"), "1", 0), "token-x")));
        assert!(!claimant.holds(&lease(Some("a"), "1", 0)));
        assert!(!claimant.holds(&with_token(lease(Some("b"), "1", 0), "token-a")));
    }

    #[test]
    fn every_claimant_gets_its_own_token() {
        assert_ne!(Claimant::new("a").token(), Claimant::new("a").token());
    }

    #[test]
    fn an_absent_lease_is_created() {
        let mut observer = Observer::new();
        assert_eq!(
            observer.decide(None, &a(), DURATION, Instant::now()),
            Step::Create
        );
    }

    #[test]
    fn a_released_lease_is_acquired_at_once_with_one_more_transition() {
        let mut observer = Observer::new();
        let step = observer.decide(Some(&lease(None, "5", 2)), &a(), DURATION, Instant::now());
        assert_eq!(step, Step::Acquire { transitions: 3 });
    }

    #[test]
    fn its_own_lease_is_renewed() {
        let mut observer = Observer::new();
        let own = with_token(lease(Some("a"), "5", 0), "token-a");
        let step = observer.decide(Some(&own), &a(), DURATION, Instant::now());
        assert_eq!(step, Step::Renew);
    }

    #[test]
    fn a_live_lease_of_another_is_respected_until_it_stops_changing_for_its_duration() {
        let t0 = Instant::now();
        let mut observer = Observer::new();
        let held = lease(Some("b"), "5", 1);
        let standby = Step::Standby {
            holder: "b".to_owned(),
        };
        assert_eq!(observer.decide(Some(&held), &a(), DURATION, t0), standby);
        // Renewed by b (new resourceVersion): the clock restarts.
        let renewed = lease(Some("b"), "6", 1);
        let t1 = t0 + Duration::from_secs(8);
        assert_eq!(observer.decide(Some(&renewed), &a(), DURATION, t1), standby);
        assert_eq!(
            observer.decide(Some(&renewed), &a(), DURATION, t1 + Duration::from_secs(9)),
            standby
        );
        // Unchanged for the lease's own 10 s: expired.
        assert_eq!(
            observer.decide(Some(&renewed), &a(), DURATION, t1 + Duration::from_secs(10)),
            Step::Acquire { transitions: 2 }
        );
    }

    #[test]
    fn a_live_lease_of_another_process_with_the_same_identity_is_never_renewed() {
        let t0 = Instant::now();
        let mut observer = Observer::new();
        let held = with_token(lease(Some("a"), "5", 1), "token-x");
        assert_eq!(
            observer.decide(Some(&held), &a(), DURATION, t0),
            Step::SharedIdentity { renewed: false }
        );
        // The other process renews it: it is alive, two replicas share the identity.
        let renewed = with_token(lease(Some("a"), "6", 1), "token-x");
        let t1 = t0 + Duration::from_secs(5);
        assert_eq!(
            observer.decide(Some(&renewed), &a(), DURATION, t1),
            Step::SharedIdentity { renewed: true }
        );
        assert_eq!(
            observer.decide(Some(&renewed), &a(), DURATION, t1 + Duration::from_secs(9)),
            Step::SharedIdentity { renewed: false }
        );
        // Once it stops renewing for the lease's 10 s, it is taken over as usual.
        assert_eq!(
            observer.decide(Some(&renewed), &a(), DURATION, t1 + Duration::from_secs(10)),
            Step::Acquire { transitions: 2 }
        );
    }

    #[test]
    fn a_live_lease_with_this_identity_and_no_token_is_another_process_until_it_expires() {
        // An older jobify wrote no token; this process always writes its own.
        let t0 = Instant::now();
        let mut observer = Observer::new();
        let old = lease(Some("a"), "5", 0);
        assert_eq!(
            observer.decide(Some(&old), &a(), DURATION, t0),
            Step::SharedIdentity { renewed: false }
        );
        assert_eq!(
            observer.decide(Some(&old), &a(), DURATION, t0 + Duration::from_secs(9)),
            Step::SharedIdentity { renewed: false }
        );
        assert_eq!(
            observer.decide(Some(&old), &a(), DURATION, t0 + Duration::from_secs(10)),
            Step::Acquire { transitions: 1 }
        );
    }

    #[test]
    fn a_change_to_another_holder_is_not_a_renewal_under_this_identity() {
        let t0 = Instant::now();
        let mut observer = Observer::new();
        let shared = with_token(lease(Some("a"), "5", 0), "token-x");
        let _ = observer.decide(Some(&shared), &a(), DURATION, t0);
        // Released, then taken by this process: nothing shares the identity any more.
        let released = lease(None, "6", 0);
        assert_eq!(
            observer.decide(Some(&released), &a(), DURATION, t0),
            Step::Acquire { transitions: 1 }
        );
        let own = with_token(lease(Some("a"), "7", 1), "token-a");
        assert_eq!(observer.decide(Some(&own), &a(), DURATION, t0), Step::Renew);
    }
}
