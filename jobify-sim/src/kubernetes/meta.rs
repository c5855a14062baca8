//! Reading and stamping `metadata` on JSON objects.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use rand::Rng;
use serde_json::{Value, json};

/// `metadata.name` (empty if unset).
pub(crate) fn name(object: &Value) -> &str {
    object["metadata"]["name"].as_str().unwrap_or_default()
}

/// `metadata.namespace` (empty if unset).
pub(crate) fn namespace(object: &Value) -> &str {
    object["metadata"]["namespace"].as_str().unwrap_or_default()
}

/// `metadata.uid` (empty if unset).
pub(crate) fn uid(object: &Value) -> &str {
    object["metadata"]["uid"].as_str().unwrap_or_default()
}

/// `metadata.resourceVersion` as a number (0 if unset or not a number).
pub(crate) fn resource_version(object: &Value) -> u64 {
    object["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_default()
}

/// `metadata.labels`.
pub(crate) fn labels(object: &Value) -> BTreeMap<String, String> {
    string_map(&object["metadata"]["labels"])
}

/// A JSON object of strings as a map (non-string values are skipped).
pub(crate) fn string_map(value: &Value) -> BTreeMap<String, String> {
    value
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether `metadata.deletionTimestamp` is set.
pub(crate) fn is_deleting(object: &Value) -> bool {
    !object["metadata"]["deletionTimestamp"].is_null()
}

/// The simulator's wall clock: real time plus however far a paused tokio clock was
/// advanced, so that timestamps (startTime, deadlines) agree with tokio timers in
/// paused-clock tests. Outside a paused runtime it is the real time.
pub(crate) fn sim_now() -> jiff::Timestamp {
    static BASE: OnceLock<(tokio::time::Instant, jiff::Timestamp)> = OnceLock::new();
    let (at, base) = *BASE.get_or_init(|| (tokio::time::Instant::now(), jiff::Timestamp::now()));
    let elapsed = tokio::time::Instant::now().saturating_duration_since(at);
    jiff::SignedDuration::try_from(elapsed)
        .ok()
        .and_then(|d| base.checked_add(d).ok())
        .unwrap_or(base)
}

/// Now, as the API's `Time` (RFC 3339, whole seconds, UTC).
pub(crate) fn now() -> String {
    format_time(sim_now())
}

/// Now, as the API's `MicroTime`.
pub(crate) fn now_micro() -> String {
    sim_now().strftime("%Y-%m-%dT%H:%M:%S.%6fZ").to_string()
}

/// A timestamp as the API's `Time`.
pub(crate) fn format_time(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The characters Kubernetes uses for generated name suffixes (no vowels, no look-alikes).
const SUFFIX_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// A random 5-character suffix, as `generateName` and the job controller use.
pub(crate) fn random_suffix() -> String {
    let mut rng = rand::rng();
    (0..5)
        .map(|_| char::from(SUFFIX_ALPHABET[rng.random_range(0..SUFFIX_ALPHABET.len())]))
        .collect()
}

/// Fills what the API server sets on create: `name` from `generateName`, `namespace`, `uid`,
/// `creationTimestamp`, and `generation` for resources that track it.
pub(crate) fn stamp_create(object: &mut Value, namespace: &str, with_generation: bool) {
    if !object["metadata"].is_object() {
        object["metadata"] = json!({});
    }
    let m = &mut object["metadata"];
    if m["name"].as_str().is_none_or(str::is_empty)
        && let Some(prefix) = m["generateName"].as_str().filter(|p| !p.is_empty())
    {
        m["name"] = json!(format!("{prefix}{}", random_suffix()));
    }
    m["namespace"] = json!(namespace);
    m["uid"] = json!(uuid::Uuid::new_v4().to_string());
    m["creationTimestamp"] = json!(now());
    if with_generation {
        m["generation"] = json!(1);
    }
    if let Some(map) = m.as_object_mut() {
        map.remove("resourceVersion");
        map.remove("deletionTimestamp");
        map.remove("deletionGracePeriodSeconds");
        map.remove("selfLink");
    }
}

/// `len` hex digits derived from `seed`, the same for the same seed (stable fake ids).
pub(crate) fn stable_hex(seed: &str, len: usize) -> String {
    use std::hash::{Hash, Hasher};
    let mut out = String::with_capacity(len + 16);
    let mut salt = 0u64;
    while out.len() < len {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (seed, salt).hash(&mut h);
        out.push_str(&format!("{:016x}", h.finish()));
        salt += 1;
    }
    out.truncate(len);
    out
}
