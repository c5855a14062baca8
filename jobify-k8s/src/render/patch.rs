//! Strategic-merge patches over a pod spec, as `kubectl patch --type strategic` applies them,
//! for the lists that matter in a pod: containers, init containers, volumes, volume mounts,
//! env, ports and image pull secrets merge element by element on their key; every other list
//! is replaced. `null` removes a field, an element `{"name": "x", "$patch": "delete"}` removes
//! that element, and `"$patch": "replace"` in an object replaces it instead of merging.

use serde_json::{Map, Value};

const DIRECTIVE: &str = "$patch";

/// The merge key of a list field, when the list merges element by element.
fn merge_key(field: &str) -> Option<&'static str> {
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "env"
        | "imagePullSecrets"
        | "resourceClaims" => Some("name"),
        "volumeMounts" => Some("mountPath"),
        "volumeDevices" => Some("devicePath"),
        "ports" => Some("containerPort"),
        "hostAliases" => Some("ip"),
        _ => None,
    }
}

/// Applies `patch` to `target` in place.
pub(crate) fn strategic_merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(target), Value::Object(patch)) => merge_objects(target, patch),
        (target, patch) => *target = strip_directives(patch),
    }
}

fn merge_objects(target: &mut Map<String, Value>, patch: &Map<String, Value>) {
    if patch.get(DIRECTIVE).and_then(Value::as_str) == Some("replace") {
        let Value::Object(replaced) = strip_directives(&Value::Object(patch.clone())) else {
            return;
        };
        *target = replaced;
        return;
    }
    for (field, patch_value) in patch {
        if field == DIRECTIVE {
            continue;
        }
        if patch_value.is_null() {
            target.remove(field);
            continue;
        }
        match (target.get_mut(field), patch_value, merge_key(field)) {
            (Some(Value::Array(items)), Value::Array(patches), Some(key)) => {
                merge_list(items, patches, key);
            }
            (Some(existing), patch_value, _) => strategic_merge(existing, patch_value),
            (None, patch_value, _) => {
                let mut fresh = strip_directives(patch_value);
                if let (Value::Array(items), Some(_)) = (&mut fresh, merge_key(field)) {
                    items.retain(|item| !is_delete(item));
                }
                target.insert(field.clone(), fresh);
            }
        }
    }
}

fn merge_list(items: &mut Vec<Value>, patches: &[Value], key: &str) {
    for patch in patches {
        let Some(id) = patch.get(key) else {
            // An element without its merge key cannot be matched: strategic merge appends it.
            items.push(strip_directives(patch));
            continue;
        };
        let position = items.iter().position(|item| item.get(key) == Some(id));
        match (position, is_delete(patch)) {
            (Some(index), true) => {
                items.remove(index);
            }
            (None, true) => {}
            (Some(index), false) => strategic_merge(&mut items[index], patch),
            (None, false) => items.push(strip_directives(patch)),
        }
    }
}

fn is_delete(item: &Value) -> bool {
    item.get(DIRECTIVE).and_then(Value::as_str) == Some("delete")
}

fn strip_directives(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| k.as_str() != DIRECTIVE)
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(strip_directives).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use pretty_assertions::assert_eq;
    use serde_json::json;

    use super::*;

    fn merged(mut target: Value, patch: Value) -> Value {
        strategic_merge(&mut target, &patch);
        target
    }

    #[test]
    fn containers_merge_by_name_and_new_ones_are_appended() {
        let base = json!({"containers": [
            {"name": "agent", "image": "agent:3", "env": [{"name": "A", "value": "1"}]},
            {"name": "build", "image": "rust"}
        ]});
        let patch = json!({"containers": [
            {"name": "agent", "env": [{"name": "A", "value": "2"}, {"name": "B", "value": "3"}]},
            {"name": "extra", "image": "redis"}
        ]});
        assert_eq!(
            merged(base, patch),
            json!({"containers": [
                {"name": "agent", "image": "agent:3",
                 "env": [{"name": "A", "value": "2"}, {"name": "B", "value": "3"}]},
                {"name": "build", "image": "rust"},
                {"name": "extra", "image": "redis"}
            ]})
        );
    }

    #[test]
    fn lists_without_a_merge_key_are_replaced() {
        let base = json!({"containers": [{"name": "a", "command": ["x", "y"]}],
                          "tolerations": [{"key": "a"}]});
        let patch = json!({"containers": [{"name": "a", "command": ["z"]}],
                           "tolerations": [{"key": "b"}]});
        assert_eq!(
            merged(base, patch),
            json!({"containers": [{"name": "a", "command": ["z"]}], "tolerations": [{"key": "b"}]})
        );
    }

    #[test]
    fn null_removes_a_field_and_delete_directive_removes_an_element() {
        let base = json!({"nodeSelector": {"a": "b"}, "volumes": [{"name": "w"}, {"name": "v"}],
                          "containers": [{"name": "c", "volumeMounts": [
                              {"name": "w", "mountPath": "/w"}, {"name": "v", "mountPath": "/v"}]}]});
        let patch = json!({"nodeSelector": null,
                           "volumes": [{"name": "v", "$patch": "delete"}],
                           "containers": [{"name": "c", "volumeMounts": [
                               {"mountPath": "/v", "$patch": "delete"}]}]});
        assert_eq!(
            merged(base, patch),
            json!({"volumes": [{"name": "w"}],
                   "containers": [{"name": "c", "volumeMounts": [{"name": "w", "mountPath": "/w"}]}]})
        );
    }

    #[test]
    fn replace_directive_replaces_an_object() {
        let base = json!({"securityContext": {"runAsUser": 1, "runAsGroup": 2}});
        let patch = json!({"securityContext": {"$patch": "replace", "runAsUser": 3}});
        assert_eq!(
            merged(base, patch),
            json!({"securityContext": {"runAsUser": 3}})
        );
    }

    #[test]
    fn nested_objects_merge_field_by_field() {
        let base = json!({"containers": [{"name": "a",
            "resources": {"requests": {"cpu": "1"}, "limits": {"cpu": "2"}}}]});
        let patch =
            json!({"containers": [{"name": "a", "resources": {"requests": {"memory": "1Gi"}}}]});
        assert_eq!(
            merged(base, patch),
            json!({"containers": [{"name": "a",
                "resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "2"}}}]})
        );
    }
}
