//! The object store: every object as JSON, one global `resourceVersion` counter, and per
//! resource a bounded window of recent changes that watches replay from.
//!
//! A watch asking for a `resourceVersion` older than the window gets `410 Expired`, as a real
//! API server's watch cache answers after compaction; clients then relist.
//!
//! A watch's live feed is filled under the store lock, so [`Store::catch_up`] (which drains it
//! under the same lock) returns exactly the changes up to the `resourceVersion` it reports:
//! a `BOOKMARK` at that version neither runs ahead of an undelivered change nor behind a
//! delivered one. [`Store::reached`] waits (boundedly) for the store to reach a version, as
//! an API server's watch cache does before it answers `Too large resource version`.
//!
//! Per-object loops (the job controller's) do not scan: [`Store::owned_by`] reads an index of
//! objects by owner uid, and [`Store::interest`] hands out a wake-up that fires when the object
//! or anything it owns changes. Both keep the simulator linear in the number of Jobs, so a
//! benchmark with ten thousand Jobs measures its client, not the simulator.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{Notify, broadcast, watch};

use super::meta;
use super::resource::Resource;
use super::status::ApiError;

/// What happened to an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ChangeType {
    /// Created.
    Added,
    /// Updated.
    Modified,
    /// Removed.
    Deleted,
}

/// One change of one object, as a watch replays it.
#[derive(Clone, Debug)]
pub(crate) struct Change {
    /// The `resourceVersion` of the change.
    pub(crate) rv: u64,
    /// What happened.
    pub(crate) kind: ChangeType,
    /// The object after the change (for deletions: the last state, at the deletion's rv).
    pub(crate) object: Arc<Value>,
    /// The object before the change, if any (lets filtered watches turn a change that
    /// leaves the selection into `DELETED`).
    pub(crate) previous: Option<Arc<Value>>,
}

/// Where a watch starts: the changes to replay, then the live feed.
pub(crate) struct WatchStart {
    /// Retained changes after the requested version, oldest first.
    pub(crate) replay: Vec<Change>,
    /// Changes from now on.
    pub(crate) live: broadcast::Receiver<Change>,
    /// The store's resourceVersion when the watch started.
    pub(crate) rv: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    resource: Resource,
    namespace: String,
    name: String,
}

struct Log {
    changes: VecDeque<Change>,
    /// History is complete for every change with `rv > compacted`.
    compacted: u64,
    tx: broadcast::Sender<Change>,
}

struct Inner {
    rv: u64,
    objects: BTreeMap<Key, Arc<Value>>,
    logs: HashMap<Resource, Log>,
    window: usize,
    /// Keys of the objects that have an owner reference to each uid.
    owned: HashMap<String, BTreeSet<Key>>,
    /// Wake-ups of the loops interested in a uid (see [`Store::interest`]).
    interest: HashMap<String, Arc<Notify>>,
}

/// The shared object store.
pub(crate) struct Store {
    inner: Mutex<Inner>,
    /// The current `resourceVersion`, for [`Store::reached`] to wait on.
    version: watch::Sender<u64>,
}

/// What a watch's live feed held, drained at one instant (see [`Store::catch_up`]).
#[derive(Debug)]
pub(crate) struct CaughtUp {
    /// Every change sent to the feed and not yet received, oldest first.
    pub(crate) changes: Vec<Change>,
    /// The store's `resourceVersion` at that instant: `changes` hold every change of the
    /// resource up to it, and none after it.
    pub(crate) rv: u64,
}

/// The live feed lost changes: the watch fell more than the feed's capacity behind.
#[derive(Debug)]
pub(crate) struct FellBehind;

/// How long a request for a `resourceVersion` the store has not reached waits for it
/// before `504 Too large resource version`: the API server's watch cache `blockTimeout`.
pub(crate) const FRESHNESS_WAIT: Duration = Duration::from_secs(3);

/// Capacity of each live change feed. A watch that falls this far behind ends with
/// `410 Expired`, like a watcher the API server's cache drops.
const LIVE_CAPACITY: usize = 4096;

impl Store {
    /// An empty store keeping `window` recent changes per resource for watches.
    pub(crate) fn new(window: usize) -> Self {
        let logs = Resource::ALL
            .into_iter()
            .map(|r| {
                let (tx, _) = broadcast::channel(LIVE_CAPACITY);
                let log = Log {
                    changes: VecDeque::new(),
                    compacted: 0,
                    tx,
                };
                (r, log)
            })
            .collect();
        Store {
            version: watch::Sender::new(1),
            inner: Mutex::new(Inner {
                rv: 1,
                objects: BTreeMap::new(),
                logs,
                window: window.max(1),
                owned: HashMap::new(),
                interest: HashMap::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A poisoned lock means a handler panicked between two consistent states: every
        // mutation below finishes before it can panic, so the data is still consistent.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current global `resourceVersion`.
    pub(crate) fn resource_version(&self) -> u64 {
        self.lock().rv
    }

    /// Inserts a new object (metadata already filled in but `resourceVersion`).
    pub(crate) fn create(
        &self,
        resource: Resource,
        mut object: Value,
    ) -> Result<Arc<Value>, ApiError> {
        let mut inner = self.lock();
        let key = key_of(resource, &object);
        if inner.objects.contains_key(&key) {
            return Err(ApiError::AlreadyExists {
                resource,
                name: key.name,
            });
        }
        inner.rv += 1;
        let rv = inner.rv;
        object["metadata"]["resourceVersion"] = json!(rv.to_string());
        let object = Arc::new(object);
        inner.index(&key, None, Some(&object));
        inner.objects.insert(key, object.clone());
        inner.record(resource, rv, ChangeType::Added, object.clone(), None);
        self.version.send_replace(rv);
        Ok(object)
    }

    /// One object.
    pub(crate) fn get(
        &self,
        resource: Resource,
        namespace: &str,
        name: &str,
    ) -> Option<Arc<Value>> {
        let key = Key {
            resource,
            namespace: namespace.to_string(),
            name: name.to_string(),
        };
        self.lock().objects.get(&key).cloned()
    }

    /// Objects of `resource` (in `namespace`, or all), in key order, starting after `after`
    /// (`namespace`, `name`), with the store's current `resourceVersion`.
    pub(crate) fn list(
        &self,
        resource: Resource,
        namespace: Option<&str>,
        after: Option<(&str, &str)>,
    ) -> (Vec<Arc<Value>>, u64) {
        let inner = self.lock();
        let items = inner
            .objects
            .iter()
            .filter(|(k, _)| k.resource == resource)
            .filter(|(k, _)| namespace.is_none_or(|ns| k.namespace == ns))
            .filter(|(k, _)| {
                after.is_none_or(|(ns, name)| (k.namespace.as_str(), k.name.as_str()) > (ns, name))
            })
            .map(|(_, v)| v.clone())
            .collect();
        (items, inner.rv)
    }

    /// Rewrites one object with `update`, which sees the current object and returns the new
    /// one (or an error, which leaves the store unchanged). Returns `(old, new)`.
    pub(crate) fn update(
        &self,
        resource: Resource,
        namespace: &str,
        name: &str,
        update: impl FnOnce(&Value) -> Result<Value, ApiError>,
    ) -> Result<(Arc<Value>, Arc<Value>), ApiError> {
        let mut inner = self.lock();
        let key = Key {
            resource,
            namespace: namespace.to_string(),
            name: name.to_string(),
        };
        let Some(old) = inner.objects.get(&key).cloned() else {
            return Err(ApiError::NotFound {
                resource,
                name: name.to_string(),
            });
        };
        let mut new = update(&old)?;
        let mut unchanged = new.clone();
        unchanged["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"].clone();
        if unchanged == *old {
            // A no-op write keeps the resourceVersion and emits no event, like a real server.
            return Ok((old.clone(), old));
        }
        inner.rv += 1;
        let rv = inner.rv;
        new["metadata"]["resourceVersion"] = json!(rv.to_string());
        let new = Arc::new(new);
        inner.index(&key, Some(&old), Some(&new));
        inner.objects.insert(key, new.clone());
        inner.record(
            resource,
            rv,
            ChangeType::Modified,
            new.clone(),
            Some(old.clone()),
        );
        self.version.send_replace(rv);
        Ok((old, new))
    }

    /// Removes one object; returns its last state (at the deletion's `resourceVersion`).
    pub(crate) fn remove(
        &self,
        resource: Resource,
        namespace: &str,
        name: &str,
    ) -> Result<Arc<Value>, ApiError> {
        let mut inner = self.lock();
        let key = Key {
            resource,
            namespace: namespace.to_string(),
            name: name.to_string(),
        };
        let Some(old) = inner.objects.remove(&key) else {
            return Err(ApiError::NotFound {
                resource,
                name: name.to_string(),
            });
        };
        inner.index(&key, Some(&old), None);
        inner.rv += 1;
        let rv = inner.rv;
        let mut last = (*old).clone();
        last["metadata"]["resourceVersion"] = json!(rv.to_string());
        let last = Arc::new(last);
        inner.record(resource, rv, ChangeType::Deleted, last.clone(), Some(old));
        self.version.send_replace(rv);
        Ok(last)
    }

    /// Starts a watch of `resource` from `rv`: the retained changes after it, then the live
    /// feed. `None` (or `0`) starts from now with synthetic `ADDED` events for every current
    /// object, as a real server does for a watch without a resourceVersion.
    pub(crate) fn watch(
        &self,
        resource: Resource,
        rv: Option<u64>,
    ) -> Result<WatchStart, ApiError> {
        let inner = self.lock();
        let log = inner.log(resource);
        let live = log.tx.subscribe();
        let replay = match rv.filter(|rv| *rv > 0) {
            None => inner
                .objects
                .iter()
                .filter(|(k, _)| k.resource == resource)
                .map(|(_, v)| Change {
                    rv: meta::resource_version(v),
                    kind: ChangeType::Added,
                    object: v.clone(),
                    previous: None,
                })
                .collect(),
            Some(rv) if rv < log.compacted => {
                return Err(ApiError::Expired(format!(
                    "too old resource version: {rv} ({})",
                    log.compacted
                )));
            }
            Some(rv) => log.changes.iter().filter(|c| c.rv > rv).cloned().collect(),
        };
        Ok(WatchStart {
            replay,
            live,
            rv: inner.rv,
        })
    }

    /// Drains `live` (a feed from [`Store::watch`]) under the store lock. Every write records
    /// its change in the feed before it releases that lock, so the changes returned are
    /// exactly those up to the returned `resourceVersion`: a `BOOKMARK` at it is never
    /// older than a change already drained, and no change at or below it is still queued.
    pub(crate) fn catch_up(
        &self,
        live: &mut broadcast::Receiver<Change>,
    ) -> Result<CaughtUp, FellBehind> {
        let inner = self.lock();
        let mut changes = Vec::new();
        loop {
            match live.try_recv() {
                Ok(change) => changes.push(change),
                Err(broadcast::error::TryRecvError::Empty) => break,
                Err(_) => return Err(FellBehind),
            }
        }
        Ok(CaughtUp {
            changes,
            rv: inner.rv,
        })
    }

    /// Waits up to `wait` for the store's `resourceVersion` to reach `rv`. Returns the
    /// current `resourceVersion` if it did not (an API server's watch cache waits the same
    /// way, three seconds, before it answers `Too large resource version`).
    pub(crate) async fn reached(&self, rv: u64, wait: Duration) -> Result<(), u64> {
        let mut version = self.version.subscribe();
        let caught_up = tokio::time::timeout(wait, version.wait_for(|now| *now >= rv))
            .await
            .is_ok_and(|reached| reached.is_ok());
        // The sender lives as long as the store, so `wait_for` fails only by timing out.
        if caught_up {
            Ok(())
        } else {
            Err(*self.version.borrow())
        }
    }

    /// Objects of `resource` in `namespace` with an owner reference to `owner_uid`, in key
    /// order.
    pub(crate) fn owned_by(
        &self,
        resource: Resource,
        namespace: &str,
        owner_uid: &str,
    ) -> Vec<Arc<Value>> {
        let inner = self.lock();
        let Some(keys) = inner.owned.get(owner_uid) else {
            return Vec::new();
        };
        keys.iter()
            .filter(|k| k.resource == resource && k.namespace == namespace)
            .filter_map(|k| inner.objects.get(k).cloned())
            .collect()
    }

    /// Objects of any resource in `namespace` with an owner reference to `owner_uid`, in key
    /// order: what the garbage collector deletes or orphans with their owner.
    pub(crate) fn dependents(
        &self,
        namespace: &str,
        owner_uid: &str,
    ) -> Vec<(Resource, Arc<Value>)> {
        let inner = self.lock();
        let Some(keys) = inner.owned.get(owner_uid) else {
            return Vec::new();
        };
        keys.iter()
            .filter(|k| k.namespace == namespace)
            .filter_map(|k| Some((k.resource, inner.objects.get(k)?.clone())))
            .collect()
    }

    /// A wake-up for the object with `uid`: it is notified (one permit, so no change between
    /// two waits is lost) whenever that object, or an object it owns, is created, updated or
    /// removed. Call [`Store::forget_interest`] when done.
    pub(crate) fn interest(&self, uid: &str) -> Arc<Notify> {
        self.lock()
            .interest
            .entry(uid.to_string())
            .or_default()
            .clone()
    }

    /// Drops the wake-up of `uid`.
    pub(crate) fn forget_interest(&self, uid: &str) {
        self.lock().interest.remove(uid);
    }

    /// The oldest `resourceVersion` from which a watch of `resource` can still resume.
    pub(crate) fn compacted(&self, resource: Resource) -> u64 {
        self.lock().log(resource).compacted
    }
}

impl Inner {
    /// Moves `key` in the owner index from the owners of `old` to those of `new`.
    fn index(&mut self, key: &Key, old: Option<&Value>, new: Option<&Value>) {
        let before = old.map(owner_uids).unwrap_or_default();
        let after = new.map(owner_uids).unwrap_or_default();
        for uid in before.iter().filter(|uid| !after.contains(uid)) {
            if let Some(keys) = self.owned.get_mut(uid) {
                keys.remove(key);
                if keys.is_empty() {
                    self.owned.remove(uid);
                }
            }
        }
        for uid in after.iter().filter(|uid| !before.contains(uid)) {
            self.owned
                .entry(uid.clone())
                .or_default()
                .insert(key.clone());
        }
    }

    /// Wakes the loops interested in the changed object or in its owners (before and after).
    fn wake(&self, object: &Value, previous: Option<&Value>) {
        if self.interest.is_empty() {
            return;
        }
        let mut uids = owner_uids(object);
        uids.push(meta::uid(object).to_string());
        if let Some(previous) = previous {
            uids.extend(owner_uids(previous));
        }
        for uid in uids {
            if let Some(notify) = self.interest.get(&uid) {
                notify.notify_one();
            }
        }
    }

    fn log(&self, resource: Resource) -> &Log {
        // Every resource gets a log in `Store::new`.
        &self.logs[&resource]
    }

    fn record(
        &mut self,
        resource: Resource,
        rv: u64,
        kind: ChangeType,
        object: Arc<Value>,
        previous: Option<Arc<Value>>,
    ) {
        self.wake(&object, previous.as_deref());
        let window = self.window;
        let Some(log) = self.logs.get_mut(&resource) else {
            return;
        };
        let change = Change {
            rv,
            kind,
            object,
            previous,
        };
        log.changes.push_back(change.clone());
        while log.changes.len() > window {
            if let Some(dropped) = log.changes.pop_front() {
                log.compacted = dropped.rv;
            }
        }
        // No receiver is not an error: nobody watches this resource right now.
        let _ = log.tx.send(change);
    }
}

/// The uids `object`'s owner references name.
fn owner_uids(object: &Value) -> Vec<String> {
    object["metadata"]["ownerReferences"]
        .as_array()
        .map(|refs| {
            refs.iter()
                .filter_map(|r| r["uid"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn key_of(resource: Resource, object: &Value) -> Key {
    Key {
        resource,
        namespace: meta::namespace(object).to_string(),
        name: meta::name(object).to_string(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn lease(name: &str) -> Value {
        json!({"metadata": {"name": name, "namespace": "ns"}})
    }

    fn pod_of(name: &str, owner: &str) -> Value {
        json!({"metadata": {"name": name, "namespace": "ns",
            "ownerReferences": [{"uid": owner, "kind": "Job", "name": "j"}]}})
    }

    fn names(objects: &[Arc<Value>]) -> Vec<&str> {
        objects.iter().map(|o| meta::name(o)).collect()
    }

    #[test]
    fn owned_by_follows_owner_references_through_updates_and_removal() {
        let store = Store::new(10);
        store.create(Resource::Pods, pod_of("a", "u1")).unwrap();
        store.create(Resource::Pods, pod_of("b", "u1")).unwrap();
        store.create(Resource::Pods, pod_of("c", "u2")).unwrap();
        assert_eq!(
            names(&store.owned_by(Resource::Pods, "ns", "u1")),
            ["a", "b"]
        );
        assert!(store.owned_by(Resource::Jobs, "ns", "u1").is_empty());
        assert!(store.owned_by(Resource::Pods, "other", "u1").is_empty());

        store
            .update(Resource::Pods, "ns", "b", |_| Ok(pod_of("b", "u2")))
            .unwrap();
        store.remove(Resource::Pods, "ns", "a").unwrap();
        assert!(store.owned_by(Resource::Pods, "ns", "u1").is_empty());
        assert_eq!(
            names(&store.owned_by(Resource::Pods, "ns", "u2")),
            ["b", "c"]
        );
    }

    #[tokio::test]
    async fn interest_wakes_on_changes_to_the_object_or_what_it_owns_only() {
        let store = Store::new(10);
        let job = store
            .create(
                Resource::Jobs,
                json!({"metadata": {"name": "j", "namespace": "ns", "uid": "u1"}}),
            )
            .unwrap();
        let changed = store.interest(meta::uid(&job));
        store.create(Resource::Pods, pod_of("other", "u2")).unwrap();
        let woken = tokio::time::timeout(std::time::Duration::ZERO, changed.notified()).await;
        assert!(woken.is_err(), "another Job's pod woke this Job");

        // A change before the wait is kept as a permit, not lost.
        store.create(Resource::Pods, pod_of("mine", "u1")).unwrap();
        changed.notified().await;
        store.remove(Resource::Pods, "ns", "mine").unwrap();
        changed.notified().await;
        store
            .update(Resource::Jobs, "ns", "j", |o| {
                let mut o = o.clone();
                o["spec"] = json!({"suspend": true});
                Ok(o)
            })
            .unwrap();
        changed.notified().await;
        store.forget_interest("u1");
    }

    #[test]
    fn every_write_takes_the_next_global_resource_version() {
        let store = Store::new(10);
        let a = store.create(Resource::Leases, lease("a")).unwrap();
        let b = store.create(Resource::Jobs, lease("b")).unwrap();
        assert_eq!(meta::resource_version(&b), meta::resource_version(&a) + 1);
        let (_, a2) = store
            .update(Resource::Leases, "ns", "a", |o| {
                let mut o = o.clone();
                o["spec"] = json!({"holderIdentity": "me"});
                Ok(o)
            })
            .unwrap();
        assert_eq!(meta::resource_version(&a2), meta::resource_version(&b) + 1);
    }

    #[test]
    fn watch_older_than_the_window_is_expired() {
        let store = Store::new(2);
        let first = store.create(Resource::Leases, lease("a")).unwrap();
        let rv = meta::resource_version(&first);
        store.create(Resource::Leases, lease("b")).unwrap();
        let start = store.watch(Resource::Leases, Some(rv)).unwrap();
        assert_eq!(start.replay.len(), 1);
        store.create(Resource::Leases, lease("c")).unwrap();
        store.create(Resource::Leases, lease("d")).unwrap();
        assert!(matches!(
            store.watch(Resource::Leases, Some(rv)),
            Err(ApiError::Expired(_))
        ));
    }

    #[test]
    fn no_op_update_keeps_the_resource_version() {
        let store = Store::new(10);
        let a = store.create(Resource::Leases, lease("a")).unwrap();
        let (_, same) = store
            .update(Resource::Leases, "ns", "a", |o| Ok(o.clone()))
            .unwrap();
        assert_eq!(a, same);
    }
}
