//! Metadata-only answers: what the API server sends a client whose `Accept` asks for
//! `as=PartialObjectMetadata` (a get, a watch's objects) or `as=PartialObjectMetadataList`
//! (a list), as kube's `Api::get_metadata`, `watch_metadata` and `list_metadata` do. Only
//! `apiVersion`, `kind` and `metadata` are sent: a Secret's `data` never leaves.

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// The media type of one object as metadata.
pub(crate) const OBJECT: &str = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1";

/// The media type of a list as metadata.
pub(crate) const LIST: &str = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1";

/// Whether `Accept` names `media_type` (its parameters in any order) among its types.
pub(crate) fn accepts(headers: &HeaderMap, media_type: &str) -> bool {
    let params = |t: &str| {
        let mut p: Vec<String> = t.split(';').map(|p| p.trim().to_string()).collect();
        p.sort();
        p
    };
    let wanted = params(media_type);
    headers
        .get_all("accept")
        .iter()
        .filter_map(|h| h.to_str().ok())
        .flat_map(|h| h.split(','))
        .any(|t| params(t) == wanted)
}

/// `object` as a `meta.k8s.io/v1` `PartialObjectMetadata`.
pub(crate) fn object(object: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": object["metadata"],
    })
}

/// A list as a `PartialObjectMetadataList`: the list's metadata, each item's metadata.
fn list(list: &Value) -> Value {
    let items: Vec<Value> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(object)
        .collect();
    json!({
        "kind": "PartialObjectMetadataList",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list["metadata"],
        "items": items,
    })
}

/// The `200` answer with `object` as metadata.
pub(crate) fn object_response(value: &Value) -> Response {
    respond(&object(value), OBJECT)
}

/// The `200` answer with the list `value` as metadata.
pub(crate) fn list_response(value: &Value) -> Response {
    respond(&list(value), LIST)
}

fn respond(value: &Value, media_type: &'static str) -> Response {
    (
        StatusCode::OK,
        [("content-type", media_type)],
        value.to_string(),
    )
        .into_response()
}
