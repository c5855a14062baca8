//! Leader election with two electors against the simulator's Lease API.

mod support;

use std::time::Duration;

use jobify_k8s::LeaderElector;
use jobify_k8s::config::LeaderElectionConfig;
use jobify_sim::kubernetes::{KubeSim, KubeSimConfig};
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
