//! Watch streams: newline-delimited JSON `{"type": ..., "object": ...}` events, replaying
//! retained changes after the requested resourceVersion, then live ones, with periodic
//! `BOOKMARK`s, ending at `timeoutSeconds`, on [`KubeSim::expire_watches`](super::KubeSim)
//! (with a `410 Expired` `ERROR` event) or at shutdown.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use futures::SinkExt;
use futures::channel::mpsc;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

use super::cluster::Cluster;
use super::list::{Params, selectors};
use super::resource::Resource;
use super::selector::{FieldSelector, LabelSelector};
use super::stats::bump;
use super::status::ApiError;
use super::store::{Change, ChangeType};

/// A watch request.
pub(crate) struct WatchRequest {
    pub(crate) resource: Resource,
    pub(crate) namespace: Option<String>,
    pub(crate) resource_version: Option<u64>,
    pub(crate) labels: LabelSelector,
    pub(crate) fields: FieldSelector,
    pub(crate) timeout: Duration,
    pub(crate) bookmarks: bool,
    /// `sendInitialEvents=true` (streaming lists): `ADDED` for every current object, then a
    /// `BOOKMARK` annotated `k8s.io/initial-events-end`.
    pub(crate) send_initial_events: bool,
}

impl WatchRequest {
    /// The watch `params` ask for (`resourceVersion`, `timeoutSeconds`,
    /// `allowWatchBookmarks`, `sendInitialEvents`, selectors).
    pub(crate) fn from_params(
        resource: Resource,
        namespace: Option<String>,
        params: &Params,
    ) -> Result<WatchRequest, ApiError> {
        let (labels, fields) = selectors(resource, params)?;
        let resource_version = match params.get("resourceVersion").map(String::as_str) {
            None | Some("") => None,
            Some(rv) => Some(
                rv.parse::<u64>()
                    .map_err(|_| ApiError::BadRequest(format!("invalid resource version: {rv}")))?,
            ),
        };
        let timeout = params
            .get("timeoutSeconds")
            .and_then(|t| t.parse::<u64>().ok())
            .map_or(Duration::from_secs(1800), Duration::from_secs);
        let bookmarks = params
            .get("allowWatchBookmarks")
            .is_some_and(|b| b == "true" || b == "1");
        let send_initial_events = params
            .get("sendInitialEvents")
            .is_some_and(|b| b == "true" || b == "1");
        Ok(WatchRequest {
            resource,
            namespace,
            resource_version,
            labels,
            fields,
            timeout,
            bookmarks,
            send_initial_events,
        })
    }

    fn selects(&self, object: &Value) -> bool {
        let ns_ok = self
            .namespace
            .as_deref()
            .is_none_or(|ns| super::meta::namespace(object) == ns);
        ns_ok && self.labels.matches(object) && self.fields.matches(object)
    }

    /// The event a change shows this watch, if any: a change that moves an object into or
    /// out of the selection shows as `ADDED` or `DELETED`, as a real server's filtered
    /// watch does.
    fn event(&self, change: &Change) -> Option<Value> {
        let now = self.selects(&change.object);
        let kind = match change.kind {
            ChangeType::Added => now.then_some("ADDED"),
            ChangeType::Deleted => now.then_some("DELETED"),
            ChangeType::Modified => {
                let before = change.previous.as_deref().is_some_and(|p| self.selects(p));
                match (before, now) {
                    (true, true) => Some("MODIFIED"),
                    (false, true) => Some("ADDED"),
                    (true, false) => Some("DELETED"),
                    (false, false) => None,
                }
            }
        }?;
        Some(json!({"type": kind, "object": *change.object}))
    }

    fn bookmark(&self, rv: u64) -> Value {
        json!({
            "type": "BOOKMARK",
            "object": {
                "kind": self.resource.kind(),
                "apiVersion": self.resource.api_version(),
                "metadata": {"resourceVersion": rv.to_string()},
            }
        })
    }

    fn initial_events_end(&self, rv: u64) -> Value {
        let mut b = self.bookmark(rv);
        b["object"]["metadata"]["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        b
    }
}

fn expired(message: String) -> Value {
    json!({"type": "ERROR", "object": ApiError::Expired(message).status()})
}

fn line(event: &Value) -> Result<Bytes, Infallible> {
    let mut bytes = serde_json::to_vec(event).unwrap_or_default();
    bytes.push(b'\n');
    Ok(Bytes::from(bytes))
}

/// What woke a watch stream up.
enum Step {
    /// Shutdown or `timeoutSeconds`: end quietly.
    Stop,
    /// `expire_watches`: end with `410 Expired`.
    Expire,
    /// Time for a `BOOKMARK`.
    Bookmark,
    /// A change (or the feed falling behind).
    Change(Result<Change, RecvError>),
}

type Sender = mpsc::Sender<Result<Bytes, Infallible>>;

/// Sends `events` in order; false if the client went away.
async fn send_all(tx: &mut Sender, events: &[Value]) -> bool {
    for event in events {
        if tx.send(line(event)).await.is_err() {
            return false;
        }
    }
    true
}

/// Starts streaming `request`.
pub(crate) fn serve(cluster: Arc<Cluster>, request: WatchRequest) -> Response {
    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(64);
    bump(&cluster.stats.watches_opened);
    cluster.spawn(stream(cluster.clone(), request, tx));
    Response::builder()
        .header("content-type", "application/json")
        .body(Body::from_stream(rx))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

async fn stream(cluster: Arc<Cluster>, request: WatchRequest, mut tx: Sender) {
    let from = if request.send_initial_events {
        None
    } else {
        request.resource_version
    };
    let start = match cluster.store.watch(request.resource, from) {
        Ok(start) => start,
        Err(ApiError::Expired(msg)) => {
            bump(&cluster.stats.relists_forced);
            // The client may be gone already; there is nothing else to tell it.
            send_all(&mut tx, &[expired(msg)]).await;
            return;
        }
        Err(_) => return,
    };
    let mut live = start.live;
    let mut first: Vec<Value> = start
        .replay
        .iter()
        .filter_map(|c| request.event(c))
        .collect();
    if request.send_initial_events {
        first.push(request.initial_events_end(start.rv));
    }
    if !send_all(&mut tx, &first).await {
        return;
    }
    let mut expiry = cluster.expiry.subscribe();
    expiry.mark_unchanged();
    let deadline = tokio::time::sleep(request.timeout);
    tokio::pin!(deadline);
    let mut bookmark = tokio::time::interval(cluster.config.timings.bookmark_interval);
    bookmark.reset();
    loop {
        let step = tokio::select! {
            () = cluster.shutdown.cancelled() => Step::Stop,
            () = &mut deadline => Step::Stop,
            changed = expiry.changed() => if changed.is_ok() { Step::Expire } else { Step::Stop },
            _ = bookmark.tick(), if request.bookmarks => Step::Bookmark,
            received = live.recv() => Step::Change(received),
        };
        let (events, end) = match step {
            Step::Stop => (Vec::new(), true),
            Step::Expire => {
                bump(&cluster.stats.relists_forced);
                let rv = cluster.store.resource_version();
                let asked = request.resource_version.unwrap_or_default();
                let msg = format!("too old resource version: {asked} ({rv})");
                (vec![expired(msg)], true)
            }
            Step::Bookmark => {
                // Everything up to `rv` is in the live feed already: drain it first so the
                // bookmark never runs ahead of an undelivered change.
                let rv = cluster.store.resource_version();
                let mut events = Vec::new();
                let mut behind = false;
                loop {
                    match live.try_recv() {
                        Ok(change) => events.extend(request.event(&change)),
                        Err(TryRecvError::Empty) => break,
                        Err(_) => {
                            behind = true;
                            break;
                        }
                    }
                }
                if behind {
                    bump(&cluster.stats.relists_forced);
                    events.push(expired("watch fell behind the event window".to_string()));
                } else {
                    events.push(request.bookmark(rv));
                }
                (events, behind)
            }
            Step::Change(Ok(change)) => (request.event(&change).into_iter().collect(), false),
            Step::Change(Err(RecvError::Lagged(_))) => {
                bump(&cluster.stats.relists_forced);
                let msg = "watch fell behind the event window".to_string();
                (vec![expired(msg)], true)
            }
            Step::Change(Err(RecvError::Closed)) => (Vec::new(), true),
        };
        if !send_all(&mut tx, &events).await || end {
            break;
        }
    }
}
