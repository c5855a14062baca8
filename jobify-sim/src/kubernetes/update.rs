//! The API server's rules for updates: immutable metadata, optimistic concurrency on
//! `resourceVersion`, status subresources, Job spec immutability, generation.

use serde_json::{Value, json};

use super::meta;
use super::resource::Resource;
use super::status::{ApiError, FieldError};
use super::validate;

pub(crate) fn check_body_type(resource: Resource, object: &Value) -> Result<(), ApiError> {
    if let Some(v) = object["apiVersion"].as_str()
        && v != resource.api_version()
    {
        return Err(ApiError::BadRequest(format!(
            "the API version in the data ({v}) does not match the expected API version ({})",
            resource.api_version()
        )));
    }
    if let Some(k) = object["kind"].as_str()
        && k != resource.kind()
    {
        return Err(ApiError::BadRequest(format!(
            "Object '{}' from '{}' is not '{}'",
            k,
            object["apiVersion"].as_str().unwrap_or_default(),
            resource.kind()
        )));
    }
    Ok(())
}

/// The API server's rules for an update of `old` to `new`.
pub(crate) fn prepare_update(
    resource: Resource,
    old: &Value,
    mut new: Value,
    status_only: bool,
) -> Result<Value, ApiError> {
    let name = meta::name(old).to_string();
    if !new.is_object() {
        return Err(ApiError::BadRequest(
            "the body of the request is not a JSON object".to_string(),
        ));
    }
    check_body_type(resource, &new)?;
    let new_name = meta::name(&new);
    if !new_name.is_empty() && new_name != name {
        return Err(ApiError::BadRequest(format!(
            "the name of the object ({new_name}) does not match the name on the URL ({name})"
        )));
    }
    let rv = new["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let current_rv = old["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or_default();
    if !rv.is_empty() && rv != current_rv {
        return Err(ApiError::Conflict {
            resource,
            name,
            detail: "the object has been modified; please apply your changes to the latest version and try again".to_string(),
        });
    }
    if status_only {
        let mut updated = old.clone();
        updated["status"] = new["status"].take();
        return Ok(updated);
    }
    if !new["metadata"].is_object() {
        new["metadata"] = json!({});
    }
    for key in [
        "name",
        "namespace",
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
    ] {
        if old["metadata"][key].is_null() {
            if let Some(m) = new["metadata"].as_object_mut() {
                m.remove(key);
            }
        } else {
            new["metadata"][key] = old["metadata"][key].clone();
        }
    }
    new["kind"] = json!(resource.kind());
    new["apiVersion"] = json!(resource.api_version());
    if resource.has_status() {
        new["status"] = old["status"].clone();
    }
    if resource == Resource::Jobs {
        if new["spec"] != old["spec"] {
            let generation = old["metadata"]["generation"].as_i64().unwrap_or(1);
            new["metadata"]["generation"] = json!(generation + 1);
        }
        let mut causes = Vec::new();
        for field in [
            "template",
            "selector",
            "completions",
            "completionMode",
            "podFailurePolicy",
        ] {
            if new["spec"][field] != old["spec"][field]
                && !(field == "completions" && new["spec"][field].is_null())
            {
                causes.push(FieldError::immutable(
                    format!("spec.{field}"),
                    &compact(&new["spec"][field]),
                ));
            }
        }
        if !causes.is_empty() {
            return Err(ApiError::Invalid {
                resource,
                name,
                causes,
            });
        }
    }
    if resource == Resource::Pods {
        // Almost all of a pod's spec is immutable; the sim allows metadata changes only.
        new["spec"] = old["spec"].clone();
    }
    let mut causes = Vec::new();
    if resource == Resource::Secrets {
        super::secret::decode(&mut new)?;
        causes = super::secret::validate_update(old, &new);
    }
    causes.extend(validate::validate(resource, &new));
    if !causes.is_empty() {
        return Err(ApiError::Invalid {
            resource,
            name,
            causes,
        });
    }
    Ok(new)
}

fn compact(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
