//! Patch bodies: JSON merge patch (RFC 7386), JSON patch (RFC 6902), and server-side apply
//! and strategic merge patch approximated as merge patches.

use serde_json::Value;

use super::status::ApiError;

/// A patch as its content type names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PatchKind {
    /// `application/merge-patch+json`
    Merge,
    /// `application/json-patch+json`
    Json,
    /// `application/strategic-merge-patch+json` (applied as a merge patch: lists are
    /// replaced, not merged by key).
    Strategic,
    /// `application/apply-patch+yaml` (applied as a merge patch that may create the object;
    /// no field ownership is tracked).
    Apply,
}

impl PatchKind {
    /// The patch kind for a `Content-Type`.
    pub(crate) fn from_content_type(content_type: &str) -> Result<Self, ApiError> {
        let mime = content_type.split(';').next().unwrap_or_default().trim();
        match mime {
            "application/merge-patch+json" => Ok(PatchKind::Merge),
            "application/json-patch+json" => Ok(PatchKind::Json),
            "application/strategic-merge-patch+json" => Ok(PatchKind::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+json" => Ok(PatchKind::Apply),
            _ => Err(ApiError::UnsupportedMediaType),
        }
    }
}

/// Applies `patch` of `kind` to `target`.
pub(crate) fn apply(kind: PatchKind, target: &Value, patch: &Value) -> Result<Value, ApiError> {
    let mut out = target.clone();
    match kind {
        PatchKind::Merge | PatchKind::Strategic | PatchKind::Apply => merge(&mut out, patch),
        PatchKind::Json => json_patch(&mut out, patch)?,
    }
    Ok(out)
}

/// RFC 7386.
pub(crate) fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(serde_json::Map::new());
    }
    if let Value::Object(map) = target {
        for (k, v) in patch {
            if v.is_null() {
                map.remove(k);
            } else {
                merge(map.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::BadRequest(msg.into())
}

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

fn split_pointer(path: &str) -> Result<(String, String), ApiError> {
    if path.is_empty() {
        return Err(bad(
            "the server rejected our request due to an error in our request: empty JSON pointer",
        ));
    }
    let (parent, last) = path
        .rsplit_once('/')
        .ok_or_else(|| bad(format!("invalid JSON pointer {path:?}")))?;
    Ok((parent.to_string(), unescape(last)))
}

fn remove_at(doc: &mut Value, path: &str) -> Result<Value, ApiError> {
    let (parent, last) = split_pointer(path)?;
    let missing = || {
        bad(format!(
            "the server rejected our request due to an error in our request: path {path:?} not found"
        ))
    };
    match doc.pointer_mut(&parent).ok_or_else(missing)? {
        Value::Object(m) => m.remove(&last).ok_or_else(missing),
        Value::Array(a) => {
            let i: usize = last.parse().map_err(|_| missing())?;
            if i < a.len() {
                Ok(a.remove(i))
            } else {
                Err(missing())
            }
        }
        _ => Err(missing()),
    }
}

fn add_at(doc: &mut Value, path: &str, value: Value) -> Result<(), ApiError> {
    if path.is_empty() {
        *doc = value;
        return Ok(());
    }
    let (parent, last) = split_pointer(path)?;
    let missing = || {
        bad(format!(
            "the server rejected our request due to an error in our request: add operation does not apply: doc is missing path: {path:?}"
        ))
    };
    match doc.pointer_mut(&parent).ok_or_else(missing)? {
        Value::Object(m) => {
            m.insert(last, value);
            Ok(())
        }
        Value::Array(a) => {
            if last == "-" {
                a.push(value);
                return Ok(());
            }
            let i: usize = last.parse().map_err(|_| missing())?;
            if i <= a.len() {
                a.insert(i, value);
                Ok(())
            } else {
                Err(missing())
            }
        }
        _ => Err(missing()),
    }
}

/// RFC 6902.
fn json_patch(doc: &mut Value, patch: &Value) -> Result<(), ApiError> {
    let ops = patch
        .as_array()
        .ok_or_else(|| bad("json patch must be a JSON array of operations"))?;
    for op in ops {
        let path = op["path"].as_str().unwrap_or_default();
        match op["op"].as_str().unwrap_or_default() {
            "add" => add_at(doc, path, op["value"].clone())?,
            "remove" => {
                remove_at(doc, path)?;
            }
            "replace" => {
                remove_at(doc, path)?;
                add_at(doc, path, op["value"].clone())?;
            }
            "move" => {
                let from = op["from"].as_str().unwrap_or_default();
                let v = remove_at(doc, from)?;
                add_at(doc, path, v)?;
            }
            "copy" => {
                let from = op["from"].as_str().unwrap_or_default();
                let v = doc
                    .pointer(from)
                    .cloned()
                    .ok_or_else(|| bad(format!("copy from {from:?}: not found")))?;
                add_at(doc, path, v)?;
            }
            "test" => {
                if doc.pointer(path) != Some(&op["value"]) {
                    return Err(bad(format!(
                        "the server rejected our request due to an error in our request: testing value {path:?} failed"
                    )));
                }
            }
            other => return Err(bad(format!("Unexpected kind: {other}"))),
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn merge_patch_removes_nulls_and_replaces_lists() {
        let t = json!({"a": {"b": 1, "c": 2}, "l": [1, 2]});
        let p = json!({"a": {"b": null, "d": 3}, "l": [3]});
        assert_eq!(
            apply(PatchKind::Merge, &t, &p).unwrap(),
            json!({"a": {"c": 2, "d": 3}, "l": [3]})
        );
    }

    #[test]
    fn json_patch_adds_replaces_and_tests() {
        let t = json!({"metadata": {"labels": {"a": "1"}}, "l": [1]});
        let p = json!([
            {"op": "add", "path": "/metadata/labels/b~1c", "value": "2"},
            {"op": "replace", "path": "/metadata/labels/a", "value": "9"},
            {"op": "add", "path": "/l/-", "value": 2},
            {"op": "test", "path": "/l/1", "value": 2}
        ]);
        assert_eq!(
            apply(PatchKind::Json, &t, &p).unwrap(),
            json!({"metadata": {"labels": {"a": "9", "b/c": "2"}}, "l": [1, 2]})
        );
        let failing = json!([{"op": "test", "path": "/l/0", "value": 5}]);
        assert!(apply(PatchKind::Json, &t, &failing).is_err());
    }
}
