//! Register (`POST /v3/stacks/register`) and deregister (`POST /v3/stacks/:key/deregister`),
//! with the documented validation of key, type, queue and metadata.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use jiff::Timestamp;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::refusal::Refusal;
use super::state::{Stack, State};

const STACK_TYPES: [&str; 3] = ["kubernetes", "elastic", "custom"];

/// A register request that passed validation.
struct Registration {
    key: String,
    stack_type: String,
    queue_key: String,
    metadata: BTreeMap<String, String>,
}

/// Every validation failure, joined as Rails joins full messages.
fn validate(body: &Map<String, Value>) -> Result<Registration, Refusal> {
    let mut errors = Vec::new();
    let text = |field: &str| body.get(field).and_then(Value::as_str).unwrap_or_default();
    let key = text("key");
    if key.is_empty() {
        errors.push("Key can't be blank".to_owned());
    } else if !key
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        errors.push("Key may only contain letters, numbers, underscores and dashes".to_owned());
    } else if key.len() > 80 {
        errors.push("Key is too long (maximum is 80 characters)".to_owned());
    }
    let stack_type = text("type");
    if !STACK_TYPES.contains(&stack_type) {
        errors.push(format!("Type must be one of {}", STACK_TYPES.join(", ")));
    }
    let queue_key = text("queue_key");
    if queue_key.is_empty() {
        errors.push("Queue key can't be blank".to_owned());
    }
    let metadata = metadata(body.get("metadata"), &mut errors);
    if !errors.is_empty() {
        return Err(Refusal::unprocessable(errors.join(", ")));
    }
    Ok(Registration {
        key: key.to_owned(),
        stack_type: stack_type.to_owned(),
        queue_key: queue_key.to_owned(),
        metadata,
    })
}

fn metadata(value: Option<&Value>, errors: &mut Vec<String>) -> BTreeMap<String, String> {
    let Some(Value::Object(map)) = value else {
        errors.push("Metadata must be an object".to_owned());
        return BTreeMap::new();
    };
    if map.len() > 100 {
        errors.push("Metadata may have at most 100 keys".to_owned());
    }
    let mut out = BTreeMap::new();
    for (k, v) in map {
        let Some(v) = v.as_str() else {
            errors.push(format!("Metadata value of {k:?} must be a string"));
            continue;
        };
        if k.chars().count() > 64 {
            errors.push(format!(
                "Metadata key {k:?} is too long (maximum is 64 characters)"
            ));
        }
        if v.chars().count() > 256 {
            errors.push(format!(
                "Metadata value of {k:?} is too long (maximum is 256 characters)"
            ));
        }
        out.insert(k.clone(), v.to_owned());
    }
    out
}

impl State {
    /// Registers or updates a stack: 201 when new, 200 when it existed (its queue, type and
    /// metadata replaced).
    pub(crate) fn register(
        &mut self,
        body: &Map<String, Value>,
        now: Timestamp,
    ) -> Result<(StatusCode, Value), Refusal> {
        let r = validate(body)?;
        self.queue(&r.queue_key)?;
        let existing = self.stacks.get(&r.key).is_some_and(|s| s.registered);
        let registered = self.stacks.values().filter(|s| s.registered).count();
        if !existing && registered >= self.max_stacks {
            return Err(Refusal::forbidden(format!(
                "Your organization has reached its limit of {} stacks; deregister unused stacks first",
                self.max_stacks
            )));
        }
        let stack = self.stacks.entry(r.key.clone()).or_insert_with(|| Stack {
            id: Uuid::new_v4(),
            key: r.key.clone(),
            stack_type: String::new(),
            queue_key: String::new(),
            metadata: BTreeMap::new(),
            last_connected_on: None,
            registered: false,
        });
        stack.stack_type = r.stack_type;
        stack.queue_key = r.queue_key;
        stack.metadata = r.metadata;
        stack.registered = true;
        stack.last_connected_on = Some(now);
        let stack = stack.clone();
        let status = if existing {
            StatusCode::OK
        } else {
            StatusCode::CREATED
        };
        Ok((status, self.stack_json(&stack, now)))
    }

    /// Deregisters stack `key`: 204; later calls with its key answer 404 until it registers
    /// again. Its reservations run out on their own.
    pub(crate) fn deregister(&mut self, key: &str) -> Result<(StatusCode, Value), Refusal> {
        self.stack_mut(key)?.registered = false;
        Ok((StatusCode::NO_CONTENT, Value::Null))
    }

    /// `connected` while it polls, `lost` after `disconnected_after` of silence,
    /// `disconnected` once deregistered.
    pub(crate) fn stack_state(&self, stack: &Stack, now: Timestamp) -> &'static str {
        let silent = stack
            .last_connected_on
            .is_none_or(|t| now.duration_since(t) >= self.disconnected_after);
        match (stack.registered, silent) {
            (false, _) => "disconnected",
            (true, true) => "lost",
            (true, false) => "connected",
        }
    }

    fn stack_json(&self, stack: &Stack, now: Timestamp) -> Value {
        json!({
            "id": stack.id,
            "organization_uuid": self.organization_uuid,
            "key": stack.key,
            "type": stack.stack_type,
            "cluster_queue_key": stack.queue_key,
            "metadata": stack.metadata,
            "last_connected_on": stack.last_connected_on.map(|t| t.to_string()),
            "state": self.stack_state(stack, now),
        })
    }
}
