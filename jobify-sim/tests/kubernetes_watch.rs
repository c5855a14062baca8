//! Watches of the Kubernetes simulator through a real `kube::Client` and `kube_runtime`
//! watcher: event types, bookmarks, resumption, and relisting after `410 Expired`.
#![allow(clippy::unwrap_used)]

mod kubernetes_support;

use std::time::Duration;

use futures::StreamExt;
use jobify_sim::kubernetes::KubeSimConfig;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::api::{DeleteParams, ListParams, PostParams, PropagationPolicy, WatchEvent, WatchParams};
use kube::runtime::watcher;
use kubernetes_support::{NS, job, start};
use serde_json::json;

fn lease(name: &str) -> Lease {
    serde_json::from_value(json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name},
        "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15}
    }))
    .unwrap()
}

async fn next<T>(stream: &mut (impl futures::Stream<Item = T> + Unpin)) -> T {
    tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("an event within 10s")
        .expect("the stream goes on")
}

#[tokio::test]
async fn raw_watch_streams_added_modified_deleted_from_a_resource_version() {
    let (sim, client) = start(KubeSimConfig::default()).await;
    let leases: Api<Lease> = Api::namespaced(client, NS);
    let list = leases.list(&ListParams::default()).await.unwrap();
    let rv = list.metadata.resource_version.unwrap();
    let mut stream = leases
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();

    leases
        .create(&PostParams::default(), &lease("l1"))
        .await
        .unwrap();
    let WatchEvent::Added(added) = next(&mut stream).await.unwrap() else {
        panic!("expected ADDED");
    };
    assert_eq!(added.metadata.name.as_deref(), Some("l1"));
    let mut changed = added.clone();
    changed.spec.as_mut().unwrap().holder_identity = Some("b".into());
    leases
        .replace("l1", &PostParams::default(), &changed)
        .await
        .unwrap();
    let WatchEvent::Modified(modified) = next(&mut stream).await.unwrap() else {
        panic!("expected MODIFIED");
    };
    assert_eq!(modified.spec.unwrap().holder_identity.as_deref(), Some("b"));
    leases.delete("l1", &DeleteParams::default()).await.unwrap();
    let WatchEvent::Deleted(deleted) = next(&mut stream).await.unwrap() else {
        panic!("expected DELETED");
    };
    assert_eq!(deleted.metadata.name.as_deref(), Some("l1"));

    // Resuming from the first event's version replays what came after it.
    let from = added.metadata.resource_version.unwrap();
    let mut replay = leases
        .watch(&WatchParams::default(), &from)
        .await
        .unwrap()
        .boxed();
    assert!(matches!(
        next(&mut replay).await.unwrap(),
        WatchEvent::Modified(_)
    ));
    assert!(matches!(
        next(&mut replay).await.unwrap(),
        WatchEvent::Deleted(_)
    ));
    sim.shutdown().await;
}

#[tokio::test]
async fn watch_from_a_version_older_than_the_window_is_410_expired() {
    let config = KubeSimConfig {
        watch_window: 2,
        ..KubeSimConfig::default()
    };
    let (sim, client) = start(config).await;
    let leases: Api<Lease> = Api::namespaced(client, NS);
    let first = leases
        .create(&PostParams::default(), &lease("a"))
        .await
        .unwrap();
    for name in ["b", "c", "d"] {
        leases
            .create(&PostParams::default(), &lease(name))
            .await
            .unwrap();
    }
    let rv = first.metadata.resource_version.unwrap();
    let mut stream = leases
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    let WatchEvent::Error(status) = next(&mut stream).await.unwrap() else {
        panic!("expected an ERROR event");
    };
    assert_eq!(status.code, 410);
    assert_eq!(status.reason, "Expired");
    assert!(
        status.message.starts_with("too old resource version"),
        "{}",
        status.message
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn watch_with_bookmarks_sends_bookmark_events() {
    let mut config = KubeSimConfig::default();
    config.timings.bookmark_interval = Duration::from_millis(20);
    let (sim, client) = start(config).await;
    let leases: Api<Lease> = Api::namespaced(client, NS);
    let wp = WatchParams {
        bookmarks: true,
        ..WatchParams::default()
    };
    let mut stream = leases.watch(&wp, "0").await.unwrap().boxed();
    let WatchEvent::Bookmark(bookmark) = next(&mut stream).await.unwrap() else {
        panic!("expected a BOOKMARK");
    };
    assert!(!bookmark.metadata.resource_version.is_empty());
    sim.shutdown().await;
}

#[tokio::test]
async fn runtime_watcher_sees_jobs_and_relists_after_expired_watches() {
    let (sim, client) = start(KubeSimConfig::default()).await;
    let jobs: Api<Job> = Api::namespaced(client, NS);
    jobs.create(&PostParams::default(), &job("before", "busybox"))
        .await
        .unwrap();
    let mut events = watcher(jobs.clone(), watcher::Config::default()).boxed();

    let mut initial = Vec::new();
    loop {
        match next(&mut events).await.unwrap() {
            watcher::Event::InitApply(j) => initial.push(j.metadata.name.unwrap()),
            watcher::Event::InitDone => break,
            _ => {}
        }
    }
    assert_eq!(initial, vec!["before".to_string()]);

    jobs.create(&PostParams::default(), &job("during", "busybox"))
        .await
        .unwrap();
    loop {
        if let watcher::Event::Apply(j) = next(&mut events).await.unwrap()
            && j.metadata.name.as_deref() == Some("during")
        {
            break;
        }
    }

    sim.expire_watches();
    // The watcher reports the 410, lists again, and carries on.
    let mut relisted = false;
    loop {
        match next(&mut events).await {
            Err(watcher::Error::WatchError(status)) => assert_eq!(status.code, 410),
            Ok(watcher::Event::Init) => relisted = true,
            Ok(watcher::Event::InitDone) if relisted => break,
            _ => {}
        }
    }
    assert!(sim.stats().relists_forced >= 1);

    let dp = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..DeleteParams::default()
    };
    jobs.delete("during", &dp).await.unwrap();
    loop {
        if let watcher::Event::Delete(j) = next(&mut events).await.unwrap() {
            assert_eq!(j.metadata.name.as_deref(), Some("during"));
            break;
        }
    }
    assert!(sim.stats().watches_opened >= 2);
    sim.shutdown().await;
}

#[tokio::test]
async fn label_filtered_watch_sees_objects_leave_the_selection_as_deleted() {
    let (sim, client) = start(KubeSimConfig::default()).await;
    let leases: Api<Lease> = Api::namespaced(client, NS);
    let mut l = lease("sel");
    l.metadata.labels = Some([("team".to_string(), "a".to_string())].into());
    let created = leases.create(&PostParams::default(), &l).await.unwrap();
    let wp = WatchParams::default().labels("team=a");
    let mut stream = leases
        .watch(&wp, created.metadata.resource_version.as_deref().unwrap())
        .await
        .unwrap()
        .boxed();
    let patch = json!({"metadata": {"labels": {"team": "b"}}});
    leases
        .patch(
            "sel",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
        .unwrap();
    let WatchEvent::Deleted(gone) = next(&mut stream).await.unwrap() else {
        panic!("expected DELETED when the object leaves the selection");
    };
    assert_eq!(gone.metadata.labels.unwrap()["team"], "b");
    sim.shutdown().await;
}

#[tokio::test]
async fn streaming_list_watcher_gets_initial_events_then_changes() {
    let (sim, client) = start(KubeSimConfig::default()).await;
    let leases: Api<Lease> = Api::namespaced(client, NS);
    leases
        .create(&PostParams::default(), &lease("one"))
        .await
        .unwrap();
    let config = watcher::Config::default().streaming_lists();
    let mut events = watcher(leases.clone(), config).boxed();
    let mut initial = Vec::new();
    loop {
        match next(&mut events).await.unwrap() {
            watcher::Event::InitApply(l) => initial.push(l.metadata.name.unwrap()),
            watcher::Event::InitDone => break,
            _ => {}
        }
    }
    assert_eq!(initial, vec!["one".to_string()]);
    leases
        .create(&PostParams::default(), &lease("two"))
        .await
        .unwrap();
    loop {
        if let watcher::Event::Apply(l) = next(&mut events).await.unwrap() {
            assert_eq!(l.metadata.name.as_deref(), Some("two"));
            break;
        }
    }
    assert_eq!(sim.stats().lists, 0, "a streaming list never lists");
    sim.shutdown().await;
}

#[tokio::test]
async fn continue_token_older_than_the_window_is_410_expired() {
    let config = KubeSimConfig {
        watch_window: 2,
        ..KubeSimConfig::default()
    };
    let (sim, client) = start(config).await;
    let leases: Api<Lease> = Api::namespaced(client, NS);
    for name in ["a", "b"] {
        leases
            .create(&PostParams::default(), &lease(name))
            .await
            .unwrap();
    }
    let first = leases.list(&ListParams::default().limit(1)).await.unwrap();
    let token = first.metadata.continue_.unwrap();
    for name in ["c", "d", "e"] {
        leases
            .create(&PostParams::default(), &lease(name))
            .await
            .unwrap();
    }
    let err = leases
        .list(&ListParams::default().limit(1).continue_token(&token))
        .await
        .unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("expected an API error, got {err:?}");
    };
    assert_eq!(status.code, 410);
    assert_eq!(status.reason, "Expired");
    assert!(
        status
            .message
            .starts_with("The provided continue parameter is too old")
    );
    assert_eq!(sim.stats().relists_forced, 1);
    sim.shutdown().await;
}
