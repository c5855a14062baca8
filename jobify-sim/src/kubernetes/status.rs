//! API errors, rendered as the `meta/v1` `Status` objects a real API server answers with.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::resource::Resource;

/// One field error of an `Invalid` answer, worded like apimachinery's `field.Error`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FieldError {
    /// `spec.template.spec.restartPolicy`
    pub(crate) field: String,
    /// `FieldValueNotSupported`, `FieldValueRequired`, ...
    pub(crate) reason: &'static str,
    /// `Unsupported value: "Always": supported values: "OnFailure", "Never"`
    pub(crate) body: String,
}

impl FieldError {
    /// `Invalid value: "v": detail`.
    pub(crate) fn invalid(field: impl Into<String>, value: &str, detail: &str) -> Self {
        FieldError {
            field: field.into(),
            reason: "FieldValueInvalid",
            body: format!("Invalid value: {}: {detail}", quote(value)),
        }
    }

    /// `Required value` (with an optional detail).
    pub(crate) fn required(field: impl Into<String>, detail: &str) -> Self {
        let body = if detail.is_empty() {
            "Required value".to_string()
        } else {
            format!("Required value: {detail}")
        };
        FieldError {
            field: field.into(),
            reason: "FieldValueRequired",
            body,
        }
    }

    /// `Unsupported value: "v": supported values: "a", "b"`.
    pub(crate) fn not_supported(field: impl Into<String>, value: &str, supported: &[&str]) -> Self {
        let list: Vec<String> = supported.iter().map(|s| quote(s)).collect();
        FieldError {
            field: field.into(),
            reason: "FieldValueNotSupported",
            body: format!(
                "Unsupported value: {}: supported values: {}",
                quote(value),
                list.join(", ")
            ),
        }
    }

    /// `Duplicate value: "v"`.
    pub(crate) fn duplicate(field: impl Into<String>, value: &str) -> Self {
        FieldError {
            field: field.into(),
            reason: "FieldValueDuplicate",
            body: format!("Duplicate value: {}", quote(value)),
        }
    }

    /// `Not found: "v"`.
    pub(crate) fn not_found(field: impl Into<String>, value: &str) -> Self {
        FieldError {
            field: field.into(),
            reason: "FieldValueNotFound",
            body: format!("Not found: {}", quote(value)),
        }
    }

    /// `Forbidden: detail`.
    pub(crate) fn forbidden(field: impl Into<String>, detail: &str) -> Self {
        FieldError {
            field: field.into(),
            reason: "FieldValueForbidden",
            body: format!("Forbidden: {detail}"),
        }
    }

    /// `Invalid value: "v": field is immutable`.
    pub(crate) fn immutable(field: impl Into<String>, value: &str) -> Self {
        FieldError::invalid(field, value, "field is immutable")
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.body)
    }
}

/// Go's `%q` for the strings the validators quote.
fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

/// An API error answer.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub(crate) enum ApiError {
    /// 404 `NotFound`: `jobs.batch "x" not found`.
    #[error("{resource} {name:?} not found")]
    NotFound {
        /// The resource.
        resource: Resource,
        /// The object name.
        name: String,
    },
    /// 409 `AlreadyExists`: `jobs.batch "x" already exists`.
    #[error("{resource} {name:?} already exists")]
    AlreadyExists {
        /// The resource.
        resource: Resource,
        /// The object name.
        name: String,
    },
    /// 409 `Conflict`: a stale `resourceVersion` or a failed precondition.
    #[error("Operation cannot be fulfilled on {resource} {name:?}: {detail}")]
    Conflict {
        /// The resource.
        resource: Resource,
        /// The object name.
        name: String,
        /// Why.
        detail: String,
    },
    /// 422 `Invalid`: `Job.batch "x" is invalid: ...`.
    #[error("{} {name:?} is invalid: {}", resource.qualified_kind(), render_causes(causes))]
    Invalid {
        /// The resource.
        resource: Resource,
        /// The object name.
        name: String,
        /// What is wrong, field by field.
        causes: Vec<FieldError>,
    },
    /// 400 `BadRequest`: an unparsable body, selector or parameter.
    #[error("{0}")]
    BadRequest(String),
    /// 410 `Expired`: a continue token or resourceVersion older than the retained window.
    #[error("{0}")]
    Expired(String),
    /// 504 `Timeout`: a `resourceVersion` newer than the store reached within the wait, as
    /// apiserver's `storage.NewTooLargeResourceVersionError` words it.
    #[error("Timeout: Too large resource version: {requested}, current: {current}")]
    TooLargeResourceVersion {
        /// The `resourceVersion` asked for.
        requested: u64,
        /// The store's `resourceVersion` when the wait ended.
        current: u64,
        /// The `retryAfterSeconds` hint: 1 from the watch cache, 0 (left out) from storage.
        retry_after_seconds: u32,
    },
    /// 415 `UnsupportedMediaType`: an unsupported patch content type.
    #[error(
        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json"
    )]
    UnsupportedMediaType,
    /// 405 `MethodNotAllowed`.
    #[error("the server does not allow this method on the requested resource")]
    MethodNotAllowed,
    /// 500 `InternalError` (injected faults).
    #[error("Internal error occurred: {0}")]
    Internal(String),
}

fn render_causes(causes: &[FieldError]) -> String {
    match causes {
        [one] => one.to_string(),
        many => {
            let all: Vec<String> = many.iter().map(ToString::to_string).collect();
            format!("[{}]", all.join(", "))
        }
    }
}

impl ApiError {
    /// The HTTP status code.
    pub(crate) fn code(&self) -> StatusCode {
        match self {
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::AlreadyExists { .. } | ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Expired(_) => StatusCode::GONE,
            ApiError::TooLargeResourceVersion { .. } => StatusCode::GATEWAY_TIMEOUT,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            ApiError::NotFound { .. } => "NotFound",
            ApiError::AlreadyExists { .. } => "AlreadyExists",
            ApiError::Conflict { .. } => "Conflict",
            ApiError::Invalid { .. } => "Invalid",
            ApiError::BadRequest(_) => "BadRequest",
            ApiError::Expired(_) => "Expired",
            ApiError::TooLargeResourceVersion { .. } => "Timeout",
            ApiError::UnsupportedMediaType => "UnsupportedMediaType",
            ApiError::MethodNotAllowed => "MethodNotAllowed",
            ApiError::Internal(_) => "InternalError",
        }
    }

    fn details(&self) -> Option<Value> {
        match self {
            ApiError::NotFound { resource, name }
            | ApiError::AlreadyExists { resource, name }
            | ApiError::Conflict { resource, name, .. } => {
                Some(details(*resource, name, resource.plural()))
            }
            ApiError::Invalid {
                resource,
                name,
                causes,
            } => {
                let mut d = details(*resource, name, resource.kind());
                d["causes"] = causes
                    .iter()
                    .map(|c| json!({"reason": c.reason, "message": c.body, "field": c.field}))
                    .collect();
                Some(d)
            }
            ApiError::Internal(msg) => Some(json!({"causes": [{"message": msg}]})),
            ApiError::TooLargeResourceVersion {
                retry_after_seconds,
                ..
            } => {
                let mut d = json!({"causes": [{
                    "reason": "ResourceVersionTooLarge",
                    "message": "Too large resource version",
                }]});
                if *retry_after_seconds > 0 {
                    d["retryAfterSeconds"] = json!(retry_after_seconds);
                }
                Some(d)
            }
            _ => None,
        }
    }

    /// The `Status` object.
    pub(crate) fn status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.to_string(),
            "reason": self.reason(),
            "code": self.code().as_u16(),
        });
        if let Some(d) = self.details() {
            s["details"] = d;
        }
        s
    }
}

fn details(resource: Resource, name: &str, kind: &str) -> Value {
    let mut d = json!({"name": name, "kind": kind});
    if !resource.group().is_empty() {
        d["group"] = json!(resource.group());
    }
    d
}

/// The `Success` status a delete answers with when the object went at once.
pub(crate) fn deleted(resource: Resource, name: &str, uid: &str) -> Value {
    let mut d = details(resource, name, resource.plural());
    d["uid"] = json!(uid);
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": d,
    })
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.code(), axum::Json(self.status())).into_response()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn invalid_message_lists_many_causes_in_brackets() {
        let e = ApiError::Invalid {
            resource: Resource::Jobs,
            name: "x".into(),
            causes: vec![
                FieldError::required("spec.template.spec.containers[0].image", ""),
                FieldError::not_supported(
                    "spec.template.spec.restartPolicy",
                    "Always",
                    &["OnFailure", "Never"],
                ),
            ],
        };
        assert_eq!(
            e.to_string(),
            "Job.batch \"x\" is invalid: [spec.template.spec.containers[0].image: Required value, \
             spec.template.spec.restartPolicy: Unsupported value: \"Always\": supported values: \"OnFailure\", \"Never\"]"
        );
        assert_eq!(e.status()["details"]["kind"], "Job");
    }

    #[test]
    fn too_large_resource_version_is_a_504_timeout_with_its_cause() {
        let e = ApiError::TooLargeResourceVersion {
            requested: 12,
            current: 7,
            retry_after_seconds: 1,
        };
        let status = e.status();
        assert_eq!(status["code"], 504);
        assert_eq!(status["reason"], "Timeout");
        assert_eq!(
            status["message"],
            "Timeout: Too large resource version: 12, current: 7"
        );
        assert_eq!(
            status["details"],
            json!({"causes": [{"reason": "ResourceVersionTooLarge",
                "message": "Too large resource version"}], "retryAfterSeconds": 1})
        );
        let from_storage = ApiError::TooLargeResourceVersion {
            requested: 12,
            current: 7,
            retry_after_seconds: 0,
        };
        assert!(
            from_storage.status()["details"]
                .get("retryAfterSeconds")
                .is_none()
        );
    }

    #[test]
    fn not_found_names_core_resources_without_group() {
        let e = ApiError::NotFound {
            resource: Resource::Pods,
            name: "p".into(),
        };
        assert_eq!(e.to_string(), "pods \"p\" not found");
        assert!(e.status()["details"].get("group").is_none());
        let e = ApiError::AlreadyExists {
            resource: Resource::Jobs,
            name: "j".into(),
        };
        assert_eq!(e.to_string(), "jobs.batch \"j\" already exists");
    }
}
