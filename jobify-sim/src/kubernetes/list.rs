//! Collection requests: lists with selectors and `limit`/`continue` pagination
//! (apiserver-shaped continue tokens, `410 Expired` for tokens older than the retained
//! window), and delete-collection.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine;
use serde_json::{Value, json};

use super::cluster::Cluster;
use super::deletion::{DeleteOptions, Deleted};
use super::meta;
use super::resource::Resource;
use super::selector::{FieldSelector, LabelSelector};
use super::stats::bump;
use super::status::ApiError;
use super::store::FRESHNESS_WAIT;

/// Query parameters.
pub(crate) type Params = HashMap<String, String>;

pub(crate) fn selectors(
    resource: Resource,
    params: &Params,
) -> Result<(LabelSelector, FieldSelector), ApiError> {
    let labels = LabelSelector::parse(params.get("labelSelector").map_or("", String::as_str))?;
    let fields = FieldSelector::parse(
        resource,
        params.get("fieldSelector").map_or("", String::as_str),
    )?;
    Ok((labels, fields))
}

/// A continue token: the list's resourceVersion and the last key served, encoded like
/// apiserver's (base64 of `{"v":"meta.k8s.io/v1","rv":N,"start":"ns/name\u0000"}`).
fn encode_continue(rv: u64, namespace: &str, name: &str) -> String {
    let token =
        json!({"v": "meta.k8s.io/v1", "rv": rv, "start": format!("{namespace}/{name}\u{0}")});
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token.to_string())
}

fn decode_continue(token: &str) -> Result<(u64, String, String), ApiError> {
    let bad = || {
        ApiError::BadRequest("continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)".to_string())
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.trim_end_matches('='))
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    let rv = v["rv"].as_u64().ok_or_else(bad)?;
    let start = v["start"]
        .as_str()
        .ok_or_else(bad)?
        .trim_end_matches('\u{0}');
    let (ns, name) = start.split_once('/').ok_or_else(bad)?;
    Ok((rv, ns.to_string(), name.to_string()))
}

const CONTINUE_EXPIRED: &str = "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.";

/// A list with a `resourceVersion` (other than `0`) is served from a state at least that
/// new. Like the API server: without `limit` the watch cache serves it, waiting up to
/// [`FRESHNESS_WAIT`] for the version (then `504`, retry after 1 s); with `limit` storage
/// serves it and fails at once. `continue` lists go by their token and
/// `resourceVersionMatch=Exact` is not modelled: both pass.
pub(crate) async fn fresh_enough(cluster: &Cluster, params: &Params) -> Result<(), ApiError> {
    let asked = match params.get("resourceVersion").map(String::as_str) {
        None | Some("" | "0") => return Ok(()),
        Some(rv) => rv
            .parse::<u64>()
            .map_err(|_| ApiError::BadRequest(format!("invalid resource version: {rv}")))?,
    };
    let continued = params.get("continue").is_some_and(|c| !c.is_empty());
    let exact = params
        .get("resourceVersionMatch")
        .is_some_and(|m| m == "Exact");
    if continued || exact {
        return Ok(());
    }
    let paged = params
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .is_some_and(|l| l > 0);
    let (wait, retry_after_seconds) = if paged {
        (std::time::Duration::ZERO, 0)
    } else {
        (FRESHNESS_WAIT, 1)
    };
    cluster
        .store
        .reached(asked, wait)
        .await
        .map_err(|current| ApiError::TooLargeResourceVersion {
            requested: asked,
            current,
            retry_after_seconds,
        })
}

pub(crate) fn list(
    cluster: &Arc<Cluster>,
    resource: Resource,
    namespace: Option<&str>,
    params: &Params,
) -> Result<Value, ApiError> {
    let (labels, fields) = selectors(resource, params)?;
    let limit = params
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0);
    let continued = match params.get("continue").filter(|c| !c.is_empty()) {
        Some(token) => {
            let (rv, ns, name) = decode_continue(token)?;
            if rv < cluster.store.compacted(resource) {
                bump(&cluster.stats.relists_forced);
                return Err(ApiError::Expired(CONTINUE_EXPIRED.to_string()));
            }
            Some((rv, ns, name))
        }
        None => None,
    };
    let after = continued
        .as_ref()
        .map(|(_, ns, n)| (ns.as_str(), n.as_str()));
    let (all, current_rv) = cluster.store.list(resource, namespace, after);
    let list_rv = continued.as_ref().map_or(current_rv, |(rv, _, _)| *rv);
    let mut matching = all
        .iter()
        .filter(|o| labels.matches(o) && fields.matches(o));
    let mut items = Vec::new();
    let mut last = None;
    for o in matching.by_ref() {
        if limit.is_some_and(|l| items.len() >= l) {
            break;
        }
        let mut item = (**o).clone();
        if let Some(m) = item.as_object_mut() {
            m.remove("kind");
            m.remove("apiVersion");
        }
        last = Some((meta::namespace(o).to_string(), meta::name(o).to_string()));
        items.push(item);
    }
    let served = items.len();
    let remaining = all
        .iter()
        .filter(|o| labels.matches(o) && fields.matches(o))
        .count()
        - served;
    let mut metadata = json!({"resourceVersion": list_rv.to_string()});
    if remaining > 0
        && let Some((ns, name)) = last
    {
        metadata["continue"] = json!(encode_continue(list_rv, &ns, &name));
        if labels.is_empty() && fields.is_empty() {
            metadata["remainingItemCount"] = json!(remaining);
        }
    }
    Ok(json!({
        "kind": format!("{}List", resource.kind()),
        "apiVersion": resource.api_version(),
        "metadata": metadata,
        "items": items,
    }))
}

/// `DELETE` on a collection: deletes every object the selectors match, answering with the
/// list of what was deleted (each in its state after the delete), like the API server.
pub(crate) fn delete_collection(
    cluster: &Arc<Cluster>,
    resource: Resource,
    namespace: &str,
    params: &Params,
    options: &DeleteOptions,
) -> Result<Value, ApiError> {
    let (labels, fields) = selectors(resource, params)?;
    let (all, _) = cluster.store.list(resource, Some(namespace), None);
    let mut items = Vec::new();
    for object in all
        .iter()
        .filter(|o| labels.matches(o) && fields.matches(o))
    {
        let outcome = cluster.delete(resource, namespace, meta::name(object), options);
        let mut item = match outcome {
            Ok(Deleted::Gone(o) | Deleted::Pending(o)) => (*o).clone(),
            // Deleted meanwhile by someone else: nothing to report.
            Err(ApiError::NotFound { .. }) => continue,
            Err(e) => return Err(e),
        };
        if let Some(m) = item.as_object_mut() {
            m.remove("kind");
            m.remove("apiVersion");
        }
        items.push(item);
    }
    Ok(json!({
        "kind": format!("{}List", resource.kind()),
        "apiVersion": resource.api_version(),
        "metadata": {"resourceVersion": cluster.store.resource_version().to_string()},
        "items": items,
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip() {
        let t = encode_continue(42, "ns", "job-1");
        assert_eq!(
            decode_continue(&t).unwrap(),
            (42, "ns".into(), "job-1".into())
        );
        assert!(decode_continue("garbage!").is_err());
    }
}
