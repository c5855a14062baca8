//! Leader election with two electors against the simulator's Lease API.

mod support;

use std::time::Duration;

use jobify_k8s::LeaderElector;
use jobify_k8s::config::LeaderElectionConfig;
use jobify_k8s::leader::TOKEN_ANNOTATION;
use jobify_sim::kubernetes::{KubeSim, KubeSimConfig};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::api::PostParams;
use support::cluster::{NAMESPACE, PATIENCE, client, eventually, sim};
use support::proxy::Proxy;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

const LEASE: &str = "jobify-leader";

fn config() -> LeaderElectionConfig {
    LeaderElectionConfig {
        enabled: true,
        lease_name: LEASE.to_owned(),
        lease_duration: Duration::from_secs(1),
        renew_interval: Duration::from_millis(100),
        identity: None,
    }
}

struct Replica {
    leading: watch::Receiver<bool>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

fn replica(sim: &KubeSim, identity: &str) -> Replica {
    replica_with(client(sim), &config(), identity)
}

fn replica_with(client: kube::Client, config: &LeaderElectionConfig, identity: &str) -> Replica {
    let elector = LeaderElector::new(client, NAMESPACE, config, identity);
    let leading = elector.subscribe();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(elector.run(async move {
        let _ = stopped.await;
    }));
    Replica {
        leading,
        stop,
        task,
    }
}

async fn until_leading(replica: &mut Replica, leading: bool) {
    tokio::time::timeout(PATIENCE, replica.leading.wait_for(|l| *l == leading))
        .await
        .expect("leadership in time")
        .expect("elector alive");
}

fn holder(sim: &KubeSim) -> Option<String> {
    sim.lease(NAMESPACE, LEASE)?.spec?.holder_identity
}

fn token(sim: &KubeSim) -> Option<String> {
    sim.lease(NAMESPACE, LEASE)?
        .metadata
        .annotations?
        .remove(TOKEN_ANNOTATION)
}

fn resource_version(sim: &KubeSim) -> Option<String> {
    sim.lease(NAMESPACE, LEASE)?.metadata.resource_version
}

fn transitions(sim: &KubeSim) -> i32 {
    sim.lease(NAMESPACE, LEASE)
        .and_then(|l| l.spec)
        .and_then(|s| s.lease_transitions)
        .unwrap_or(-1)
}

#[tokio::test]
async fn one_replica_leads_and_hands_over_at_once_when_it_shuts_down() {
    let sim = sim(KubeSimConfig::default()).await;
    let mut a = replica(&sim, "a");
    until_leading(&mut a, true).await;
    assert_eq!(holder(&sim).as_deref(), Some("a"));
    assert_eq!(transitions(&sim), 0);

    let mut b = replica(&sim, "b");
    // b reads a live lease and stands by for several rounds.
    eventually("b has tried", || sim.stats().requests > 10).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!*b.leading.borrow());
    assert!(*a.leading.borrow(), "a keeps renewing");

    let _ = a.stop.send(());
    a.task.await.expect("a stops");
    assert!(!*a.leading.borrow(), "a stepped down");
    until_leading(&mut b, true).await;
    assert_eq!(holder(&sim).as_deref(), Some("b"));
    assert_eq!(transitions(&sim), 1);

    let _ = b.stop.send(());
    b.task.await.expect("b stops");
    assert_eq!(holder(&sim), None, "released on shutdown");
    sim.shutdown().await;
}

#[tokio::test]
async fn a_standby_takes_over_when_the_leader_dies_without_releasing() {
    let sim = sim(KubeSimConfig::default()).await;
    let mut a = replica(&sim, "a");
    until_leading(&mut a, true).await;
    let mut b = replica(&sim, "b");
    // The leader's process dies: no release, the lease just stops being renewed.
    a.task.abort();
    let _ = a.task.await;
    assert_eq!(holder(&sim).as_deref(), Some("a"));
    until_leading(&mut b, true).await;
    assert_eq!(holder(&sim).as_deref(), Some("b"));
    assert_eq!(transitions(&sim), 1);
    drop(a.stop);
    let _ = b.stop.send(());
    b.task.await.expect("b stops");
    sim.shutdown().await;
}

#[tokio::test]
async fn replicas_racing_for_a_new_lease_elect_exactly_one() {
    let sim = sim(KubeSimConfig::default()).await;
    let mut replicas: Vec<Replica> = ["a", "b", "c"].iter().map(|id| replica(&sim, id)).collect();
    eventually("a leader", || replicas.iter().any(|r| *r.leading.borrow())).await;
    // Several renewal rounds later, still exactly one, and it is the Lease's holder.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let leaders: Vec<usize> = (0..replicas.len())
        .filter(|&i| *replicas[i].leading.borrow())
        .collect();
    assert_eq!(leaders.len(), 1, "exactly one leader");
    let expected = ["a", "b", "c"][leaders[0]];
    assert_eq!(holder(&sim).as_deref(), Some(expected));
    for replica in replicas.drain(..) {
        let _ = replica.stop.send(());
        replica.task.await.expect("stops");
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn a_leader_whose_api_server_stops_answering_steps_down_before_a_standby_takes_over() {
    let sim = sim(KubeSimConfig::default()).await;
    let proxy = Proxy::start(&sim).await;
    // A wider margin than `config()`: the old leader stops one renew interval before a
    // standby may take over.
    let config = LeaderElectionConfig {
        lease_duration: Duration::from_secs(2),
        renew_interval: Duration::from_millis(400),
        ..config()
    };
    let mut a = replica_with(proxy.client(), &config, "a");
    until_leading(&mut a, true).await;
    let mut b = replica_with(client(&sim), &config, "b");
    // a's requests now hang (no error, no answer) until kube's read timeout of minutes.
    proxy.freeze();
    until_leading(&mut b, true).await;
    assert!(
        !*a.leading.borrow(),
        "two leaders: a still leads after b took over its expired lease"
    );
    a.task.abort();
    let _ = a.task.await;
    let _ = b.stop.send(());
    b.task.await.expect("b stops");
    sim.shutdown().await;
}

#[tokio::test]
async fn two_replicas_given_the_same_identity_never_lead_at_once() {
    let sim = sim(KubeSimConfig::default()).await;
    let mut first = replica(&sim, "shared");
    until_leading(&mut first, true).await;
    let first_token = token(&sim).expect("the leader writes its token");

    let mut second = replica(&sim, "shared");
    // Several renew intervals: the first renews (get and replace), the second reads a lease
    // under its own identity but with another process's token, and stands by.
    let requests = sim.stats().requests;
    eventually("several rounds of both", || {
        sim.stats().requests >= requests + 20
    })
    .await;
    // A watch channel marks every change: neither changed, so at no moment in between did the
    // second lead or the first step down.
    assert!(
        !second.leading.has_changed().expect("second alive"),
        "two leaders: the second replica took the first's lease for its own"
    );
    assert!(!*second.leading.borrow());
    assert!(
        !first.leading.has_changed().expect("first alive"),
        "the first replica lost the lease it holds"
    );
    assert!(*first.leading.borrow());
    assert_eq!(holder(&sim).as_deref(), Some("shared"));
    assert_eq!(token(&sim).as_ref(), Some(&first_token));

    // The first shuts down and releases: the second takes over at once, with its own token.
    let _ = first.stop.send(());
    first.task.await.expect("first stops");
    until_leading(&mut second, true).await;
    assert_eq!(holder(&sim).as_deref(), Some("shared"));
    let second_token = token(&sim).expect("the new leader writes its token");
    assert_ne!(second_token, first_token);
    assert_eq!(transitions(&sim), 1);

    let _ = second.stop.send(());
    second.task.await.expect("second stops");
    assert_eq!(holder(&sim), None, "released on shutdown");
    assert_eq!(token(&sim), None, "the token goes with the holder");
    sim.shutdown().await;
}

#[tokio::test]
async fn a_lease_under_this_identity_without_a_token_is_taken_over_only_once_it_expires() {
    let sim = sim(KubeSimConfig::default()).await;
    let config = LeaderElectionConfig {
        lease_duration: Duration::from_secs(3),
        ..config()
    };
    // An older jobify (or another process) holds the lease as "a" and writes no token.
    let leases: Api<Lease> = Api::namespaced(client(&sim), NAMESPACE);
    let old: Lease = serde_json::from_value(serde_json::json!({
        "metadata": {"name": LEASE},
        "spec": {"holderIdentity": "a", "leaseDurationSeconds": 3, "leaseTransitions": 4}
    }))
    .expect("lease");
    leases
        .create(&PostParams::default(), &old)
        .await
        .expect("old lease created");
    let written = resource_version(&sim);

    let mut a = replica_with(client(&sim), &config, "a");
    // Eight reads a renew interval apart take about 0.8 s of the lease's 3 s on a's clock.
    let requests = sim.stats().requests;
    eventually("a has read the lease repeatedly", || {
        sim.stats().requests >= requests + 8
    })
    .await;
    assert!(
        !a.leading.has_changed().expect("a alive"),
        "a took over a live lease it did not write"
    );
    assert_eq!(
        resource_version(&sim),
        written,
        "the live lease was not renewed"
    );

    until_leading(&mut a, true).await;
    assert_eq!(holder(&sim).as_deref(), Some("a"));
    assert!(token(&sim).is_some(), "a wrote its token");
    assert_eq!(
        transitions(&sim),
        5,
        "taking over an expired lease is a transition"
    );
    let _ = a.stop.send(());
    a.task.await.expect("a stops");
    sim.shutdown().await;
}
