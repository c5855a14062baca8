//! Core `v1` Events as the kubelet, job controller and scheduler record them, aggregating
//! repeats.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;

use serde_json::{Value, json};

use super::admission;
use super::cluster::{Cluster, lock};
use super::meta;
use super::resource::Resource;

/// Events kept at most; the oldest go first (a real cluster expires them after an hour).
const MAX_EVENTS: usize = 10_000;

/// Where each aggregated event lives, and their order of creation.
#[derive(Debug, Default)]
pub(crate) struct EventIndex {
    by_key: HashMap<String, (String, String)>,
    order: VecDeque<String>,
}

impl Cluster {
    /// Records an event about `involved`, aggregating repeats into `count` like the
    /// kubelet's event recorder.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn record_event(
        &self,
        involved: &Value,
        event_type: &str,
        reason: &str,
        message: &str,
        component: &str,
        host: Option<&str>,
        field_path: Option<&str>,
    ) {
        let namespace = meta::namespace(involved).to_string();
        let key = format!(
            "{}\u{0}{reason}\u{0}{message}\u{0}{}",
            meta::uid(involved),
            field_path.unwrap_or_default()
        );
        let now = meta::now();
        // The scheduler records through events.k8s.io/v1: its events have an eventTime, an
        // action and a series instead of first/last timestamps and a count.
        let scheduler = component == "default-scheduler";
        let existing = lock(&self.events).by_key.get(&key).cloned();
        if let Some((ns, name)) = existing
            && self
                .write_status(Resource::Events, &ns, &name, |e| {
                    if scheduler {
                        let count = e["series"]["count"].as_i64().unwrap_or(1);
                        e["series"] =
                            json!({"count": count + 1, "lastObservedTime": meta::now_micro()});
                    } else {
                        let count = e["count"].as_i64().unwrap_or(1);
                        e["count"] = json!(count + 1);
                        e["lastTimestamp"] = json!(now);
                    }
                })
                .is_some()
        {
            return;
        }
        let serial = self.event_serial.fetch_add(1, Ordering::Relaxed);
        let nanos = jiff::Timestamp::now().as_nanosecond();
        let name = format!(
            "{}.{:x}",
            meta::name(involved),
            u64::try_from(nanos)
                .unwrap_or_default()
                .wrapping_add(serial)
        );
        let mut involved_ref = json!({
            "kind": involved["kind"],
            "namespace": namespace,
            "name": meta::name(involved),
            "uid": meta::uid(involved),
            "apiVersion": involved["apiVersion"],
            "resourceVersion": involved["metadata"]["resourceVersion"],
        });
        if let Some(fp) = field_path {
            involved_ref["fieldPath"] = json!(fp);
        }
        let mut source = json!({"component": component});
        if let Some(h) = host {
            source["host"] = json!(h);
        }
        let mut event = json!({
            "metadata": {"name": name},
            "involvedObject": involved_ref,
            "reason": reason,
            "message": message,
            "source": source,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "type": event_type,
            "eventTime": null,
            "reportingComponent": component,
            "reportingInstance": host.unwrap_or_default(),
        });
        if scheduler {
            event["source"] = json!({});
            event["firstTimestamp"] = Value::Null;
            event["lastTimestamp"] = Value::Null;
            event["eventTime"] = json!(meta::now_micro());
            event["action"] = json!(if reason == "Scheduled" {
                "Binding"
            } else {
                "Scheduling"
            });
            event["reportingInstance"] = json!("default-scheduler-sim-control-plane");
            if let Some(m) = event.as_object_mut() {
                m.remove("count");
            }
        }
        meta::stamp_create(&mut event, &namespace, false);
        admission::default_on_create(Resource::Events, &mut event);
        if self.store.create(Resource::Events, event).is_err() {
            return;
        }
        let evicted = {
            let mut index = lock(&self.events);
            index.by_key.insert(key.clone(), (namespace.clone(), name));
            index.order.push_back(key);
            let mut evicted = Vec::new();
            while index.order.len() > MAX_EVENTS {
                if let Some(old) = index.order.pop_front()
                    && let Some(at) = index.by_key.remove(&old)
                {
                    evicted.push(at);
                }
            }
            evicted
        };
        for (ns, name) in evicted {
            // NotFound: a client deleted it already.
            let _ = self.store.remove(Resource::Events, &ns, &name);
        }
    }
}
