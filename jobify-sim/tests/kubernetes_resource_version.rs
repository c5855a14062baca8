//! Requests for a `resourceVersion` the simulator has not reached, over HTTP and on a paused
//! clock: like an API server's watch cache, it waits up to three seconds for the version,
//! then answers `504 Too large resource version` (a `Status` for lists, an `ERROR` event for
//! streaming lists); a plain watch from such a version waits quietly for it.
#![allow(clippy::unwrap_used)]

mod kubernetes_support;

use std::time::Duration;

use futures::StreamExt;
use jobify_sim::kubernetes::{KubeSim, KubeSimConfig};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::api::{ListParams, PostParams, VersionMatch, WatchEvent, WatchParams};
use kubernetes_support::{NS, start};
use serde_json::{Value, json};
use tokio::time::Instant;

/// How long the API server's watch cache waits for a version (its `blockTimeout`).
const WAIT: Duration = Duration::from_secs(3);

fn lease(name: &str) -> Lease {
    serde_json::from_value(json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name},
        "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15}
    }))
    .unwrap()
}

async fn create(leases: &Api<Lease>, name: &str) -> u64 {
    let created = leases
        .create(&PostParams::default(), &lease(name))
        .await
        .unwrap();
    created.metadata.resource_version.unwrap().parse().unwrap()
}

async fn current(leases: &Api<Lease>) -> u64 {
    let list = leases.list(&ListParams::default()).await.unwrap();
    list.metadata.resource_version.unwrap().parse().unwrap()
}

/// `GET` on the leases collection with `query`: the status code and the body.
async fn get(sim: &KubeSim, query: &str) -> (u16, String) {
    let url = format!(
        "{}/apis/coordination.k8s.io/v1/namespaces/{NS}/leases?{query}",
        sim.url()
    );
    let response = reqwest::get(url).await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// The `Status` apiserver's `storage.NewTooLargeResourceVersionError` renders.
fn assert_too_large(status: &Value, requested: u64, current: u64, retry_after: Option<u64>) {
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["status"], "Failure");
    assert_eq!(status["code"], 504);
    assert_eq!(status["reason"], "Timeout");
    assert_eq!(
        status["message"],
        format!("Timeout: Too large resource version: {requested}, current: {current}")
    );
    let cause = &status["details"]["causes"][0];
    assert_eq!(cause["reason"], "ResourceVersionTooLarge");
    assert_eq!(cause["message"], "Too large resource version");
    assert_eq!(status["details"]["retryAfterSeconds"].as_u64(), retry_after);
}

fn future_list(rv: u64) -> ListParams {
    ListParams {
        resource_version: Some(rv.to_string()),
        version_match: Some(VersionMatch::NotOlderThan),
        ..ListParams::default()
    }
}

#[tokio::test(start_paused = true)]
async fn list_newer_than_the_store_waits_then_answers_504_too_large() {
    let (sim, client) = start(KubeSimConfig::default()).await;
    let leases: Api<Lease> = Api::namespaced(client, NS);
    let now = current(&leases).await;

    let started = Instant::now();
    let err = leases.list(&future_list(now + 5)).await.unwrap_err();
    assert!(started.elapsed() >= WAIT, "answered before the wait ended");
    let kube::Error::Api(status) = err else {
        panic!("expected an API error, got {err:?}");
    };
    assert_eq!(status.code, 504);
    assert_eq!(status.reason, "Timeout");

    let query = format!(
        "resourceVersion={}&resourceVersionMatch=NotOlderThan",
        now + 5
    );
    let (code, body) = get(&sim, &query).await;
    assert_eq!(code, 504);
    assert_too_large(&serde_json::from_str(&body).unwrap(), now + 5, now, Some(1));
    sim.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn paged_list_newer_than_the_store_fails_at_once_like_storage() {
    let (sim, client) = start(KubeSimConfig::default()).await;
    let leases: Api<Lease> = Api::namespaced(client, NS);
    let now = current(&leases).await;

    let started = Instant::now();
    let (code, body) = get(&sim, &format!("limit=10&resourceVersion={}", now + 1)).await;
    assert!(
        started.elapsed() < WAIT,
        "a paged list waited for the version"
    );
    assert_eq!(code, 504);
    assert_too_large(&serde_json::from_str(&body).unwrap(), now + 1, now, None);
    sim.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn list_succeeds_once_the_store_reaches_the_version_within_the_wait() {
    let (sim, client) = start(KubeSimConfig::default()).await;
    let leases: Api<Lease> = Api::namespaced(client, NS);
    let now = current(&leases).await;
    let writer = tokio::spawn({
        let leases = leases.clone();
        async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            create(&leases, "a").await
        }
    });

    let list = leases.list(&future_list(now + 1)).await.unwrap();
    let written = writer.await.unwrap();
    assert_eq!(written, now + 1);
    let listed: u64 = list.metadata.resource_version.unwrap().parse().unwrap();
    assert!(listed >= written);
    assert_eq!(list.items.len(), 1);
    sim.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn streaming_list_newer_than_the_store_ends_with_a_504_error_event() {
    let (sim, client) = start(KubeSimConfig::default()).await;
    let leases: Api<Lease> = Api::namespaced(client, NS);
    let now = current(&leases).await;

    // Like the API server's cache: the watch itself is accepted (200), the failure is the
    // stream's one ERROR event.
    let query = format!(
        "watch=true&sendInitialEvents=true&allowWatchBookmarks=true\
         &resourceVersionMatch=NotOlderThan&resourceVersion={}",
        now + 3
    );
    let started = Instant::now();
    let (code, body) = get(&sim, &query).await;
    assert!(started.elapsed() >= WAIT, "answered before the wait ended");
    assert_eq!(code, 200);
    let events: Vec<Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 1, "{body}");
    assert_eq!(events[0]["type"], "ERROR");
    assert_too_large(&events[0]["object"], now + 3, now, Some(1));
    sim.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn streaming_list_starts_once_the_store_reaches_the_version_within_the_wait() {
    let (sim, client) = start(KubeSimConfig::default()).await;
    let leases: Api<Lease> = Api::namespaced(client.clone(), NS);
    let now = current(&leases).await;
    let writer = tokio::spawn({
        let leases = leases.clone();
        async move {
            tokio::time::sleep(Duration::from_secs(2)).await;
            create(&leases, "a").await
        }
    });

    let wp = WatchParams::default().initial_events();
    let mut stream = leases
        .watch(&wp, &(now + 1).to_string())
        .await
        .unwrap()
        .boxed();
    let WatchEvent::Added(added) = stream.next().await.unwrap().unwrap() else {
        panic!("expected the lease written meanwhile as an initial event");
    };
    assert_eq!(added.metadata.name.as_deref(), Some("a"));
    let WatchEvent::Bookmark(end) = stream.next().await.unwrap().unwrap() else {
        panic!("expected the initial-events-end bookmark");
    };
    let end_rv: u64 = end.metadata.resource_version.parse().unwrap();
    assert!(end_rv > now);
    assert_eq!(writer.await.unwrap(), now + 1);
    sim.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn plain_watch_from_a_future_version_sees_only_changes_after_it() {
    let (sim, client) = start(KubeSimConfig::default()).await;
    let leases: Api<Lease> = Api::namespaced(client, NS);
    let now = current(&leases).await;

    let mut stream = leases
        .watch(&WatchParams::default(), &(now + 2).to_string())
        .await
        .unwrap()
        .boxed();
    for name in ["at-1", "at-2", "after"] {
        create(&leases, name).await;
    }
    let WatchEvent::Added(first) = stream.next().await.unwrap().unwrap() else {
        panic!("expected ADDED");
    };
    assert_eq!(first.metadata.name.as_deref(), Some("after"));
    assert_eq!(first.metadata.resource_version, Some((now + 3).to_string()));
    sim.shutdown().await;
}
