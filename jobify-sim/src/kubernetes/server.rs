//! The HTTP surface: routes requests the way the API server's paths do
//! (`/api/v1/namespaces/{ns}/pods/{name}`, `/apis/batch/v1/namespaces/{ns}/jobs`, ...),
//! injects faults, and turns [`ApiError`]s into `Status` answers.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::cluster::Cluster;
use super::config::EndpointGroup;
use super::deletion::{DeleteOptions, Deleted, JOB_ORPHAN_WARNING, Propagation};
use super::discovery;
use super::list::{self, Params};
use super::meta;
use super::partial;
use super::patch::{self, PatchKind};
use super::resource::Resource;
use super::stats::bump;
use super::status::{self, ApiError};
use super::watch::{self, WatchRequest};
use crate::fault::Fault;

/// The router serving `cluster`.
pub(crate) fn router(cluster: Arc<Cluster>) -> Router {
    Router::new().fallback(dispatch).with_state(cluster)
}

/// What a request path names.
#[derive(Debug, PartialEq, Eq)]
enum Target {
    Discovery(discovery::Doc),
    Namespace(String),
    Collection {
        resource: Resource,
        namespace: Option<String>,
    },
    Object {
        resource: Resource,
        namespace: String,
        name: String,
        status: bool,
    },
}

impl Target {
    fn group(&self) -> EndpointGroup {
        let resource = match self {
            Target::Discovery(_) | Target::Namespace(_) => return EndpointGroup::Discovery,
            Target::Collection { resource, .. } | Target::Object { resource, .. } => *resource,
        };
        match resource {
            Resource::Jobs => EndpointGroup::Jobs,
            Resource::Pods => EndpointGroup::Pods,
            Resource::Events => EndpointGroup::Events,
            Resource::Leases => EndpointGroup::Leases,
            Resource::Secrets => EndpointGroup::Secrets,
            Resource::PodTemplates => EndpointGroup::PodTemplates,
        }
    }
}

fn parse_path(path: &str) -> Option<Target> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, rest) = match parts.as_slice() {
        ["version"] => return Some(Target::Discovery(discovery::Doc::Version)),
        ["api"] => return Some(Target::Discovery(discovery::Doc::CoreVersions)),
        ["apis"] => return Some(Target::Discovery(discovery::Doc::Groups)),
        ["api", "v1"] => return Some(Target::Discovery(discovery::Doc::Resources(""))),
        ["apis", g, "v1"] => {
            let known = Resource::ALL.iter().find(|r| r.group() == *g)?;
            return Some(Target::Discovery(discovery::Doc::Resources(known.group())));
        }
        ["api", "v1", rest @ ..] => ("", rest),
        ["apis", g, "v1", rest @ ..] => (*g, rest),
        _ => return None,
    };
    match rest {
        ["namespaces", ns] if group.is_empty() => Some(Target::Namespace((*ns).to_string())),
        [plural] => Some(Target::Collection {
            resource: Resource::from_path(group, plural)?,
            namespace: None,
        }),
        ["namespaces", ns, plural] => Some(Target::Collection {
            resource: Resource::from_path(group, plural)?,
            namespace: Some((*ns).to_string()),
        }),
        ["namespaces", ns, plural, name] => Some(Target::Object {
            resource: Resource::from_path(group, plural)?,
            namespace: (*ns).to_string(),
            name: (*name).to_string(),
            status: false,
        }),
        ["namespaces", ns, plural, name, "status"] => {
            let resource = Resource::from_path(group, plural)?;
            resource.has_status().then(|| Target::Object {
                resource,
                namespace: (*ns).to_string(),
                name: (*name).to_string(),
                status: true,
            })
        }
        _ => None,
    }
}

async fn dispatch(
    State(cluster): State<Arc<Cluster>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    bump(&cluster.stats.requests);
    let Some(target) = parse_path(uri.path()) else {
        return (StatusCode::NOT_FOUND, "404 page not found\n").into_response();
    };
    let params: Params = Query::try_from_uri(&uri).map(|q| q.0).unwrap_or_default();
    if let Some(fault) = cluster.faults(target.group()).and_then(|f| f.next(false)) {
        bump(&cluster.stats.faults_injected);
        tracing::debug!(?fault, path = uri.path(), "injecting fault");
        match fault {
            Fault::ServerError | Fault::GraphqlError => {
                return ApiError::Internal("injected fault".to_string()).into_response();
            }
            Fault::Malformed => {
                return (
                    StatusCode::OK,
                    [("content-type", "application/json")],
                    "{\"kind\": \"Status\", \"apiVers",
                )
                    .into_response();
            }
            Fault::Timeout(d) => {
                tokio::select! {
                    () = tokio::time::sleep(d) => {}
                    () = cluster.shutdown.cancelled() => {
                        return ApiError::Internal("shutting down".to_string()).into_response();
                    }
                }
            }
        }
    }
    let lists = method == Method::GET && matches!(target, Target::Collection { .. });
    if lists && !is_watch(&params) {
        let fresh = tokio::select! {
            fresh = list::fresh_enough(&cluster, &params) => fresh,
            () = cluster.shutdown.cancelled() => Err(ApiError::Internal("shutting down".to_string())),
        };
        if let Err(e) = fresh {
            return e.into_response();
        }
    }
    let result = handle(&cluster, &method, target, &params, &headers, &body);
    match result {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

fn handle(
    cluster: &Arc<Cluster>,
    method: &Method,
    target: Target,
    params: &Params,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response, ApiError> {
    let dry_run = params.get("dryRun").is_some_and(|v| v == "All");
    match (target, method.clone()) {
        (Target::Discovery(doc), Method::GET) => {
            let host = headers
                .get("host")
                .and_then(|h| h.to_str().ok())
                .unwrap_or("127.0.0.1");
            Ok(ok(discovery::document(doc, host)))
        }
        (Target::Namespace(ns), Method::GET) => Ok(ok(discovery::namespace(&ns))),
        (
            Target::Collection {
                resource,
                namespace,
            },
            Method::GET,
        ) => {
            if is_watch(params) {
                let mut request = WatchRequest::from_params(resource, namespace, params)?;
                request.metadata_only = partial::accepts(headers, partial::OBJECT);
                Ok(watch::serve(cluster.clone(), request))
            } else {
                bump(&cluster.stats.lists);
                let list = list::list(cluster, resource, namespace.as_deref(), params)?;
                if partial::accepts(headers, partial::LIST) {
                    Ok(partial::list_response(&list))
                } else {
                    Ok(ok(list))
                }
            }
        }
        (
            Target::Collection {
                resource,
                namespace: Some(ns),
            },
            Method::POST,
        ) => {
            let object = parse_body(body)?;
            let created = cluster.create(resource, &ns, object, dry_run);
            if resource == Resource::Jobs {
                match &created {
                    Ok(job) if !dry_run => {
                        bump(&cluster.stats.job_creates);
                        let name = job["metadata"]["name"].as_str().unwrap_or_default();
                        cluster.stats.job_created(&ns, name);
                    }
                    Err(ApiError::AlreadyExists { .. }) => {
                        bump(&cluster.stats.job_create_conflicts);
                    }
                    _ => {}
                }
            }
            Ok((StatusCode::CREATED, axum::Json((*created?).clone())).into_response())
        }
        (
            Target::Object {
                resource,
                namespace,
                name,
                ..
            },
            Method::GET,
        ) => {
            let object = cluster
                .store
                .get(resource, &namespace, &name)
                .ok_or(ApiError::NotFound { resource, name })?;
            if partial::accepts(headers, partial::OBJECT) {
                Ok(partial::object_response(&object))
            } else {
                Ok(ok((*object).clone()))
            }
        }
        (
            Target::Object {
                resource,
                namespace,
                name,
                status,
            },
            Method::PUT,
        ) => {
            let object = parse_body(body)?;
            let updated = cluster.replace(resource, &namespace, &name, object, status, dry_run)?;
            Ok(ok((*updated).clone()))
        }
        (
            Target::Object {
                resource,
                namespace,
                name,
                status,
            },
            Method::PATCH,
        ) => {
            let content_type = headers
                .get("content-type")
                .and_then(|h| h.to_str().ok())
                .unwrap_or_default();
            let kind = PatchKind::from_content_type(content_type)?;
            let patch_body = parse_body(body)?;
            patch_object(
                cluster,
                resource,
                &namespace,
                &name,
                status,
                kind,
                &patch_body,
                dry_run,
            )
        }
        (
            Target::Object {
                resource,
                namespace,
                name,
                status: false,
            },
            Method::DELETE,
        ) => {
            let options = delete_options(params, body)?;
            let outcome = cluster.delete(resource, &namespace, &name, &options)?;
            if resource == Resource::Jobs && !dry_run {
                bump(&cluster.stats.job_deletes);
            }
            let mut response = match (resource, outcome) {
                (Resource::Pods, Deleted::Gone(o) | Deleted::Pending(o))
                | (_, Deleted::Pending(o)) => ok((*o).clone()),
                (_, Deleted::Gone(o)) => ok(status::deleted(resource, &name, meta::uid(&o))),
            };
            if resource == Resource::Jobs && options.propagation.is_none() {
                response.headers_mut().insert(
                    "warning",
                    http::HeaderValue::from_static(JOB_ORPHAN_WARNING),
                );
            }
            Ok(response)
        }
        (
            Target::Collection {
                resource,
                namespace: Some(ns),
            },
            Method::DELETE,
        ) => {
            let options = delete_options(params, body)?;
            let deleted = list::delete_collection(cluster, resource, &ns, params, &options)?;
            if resource == Resource::Jobs && !dry_run {
                for _ in 0..deleted["items"].as_array().map_or(0, Vec::len) {
                    bump(&cluster.stats.job_deletes);
                }
            }
            let mut response = ok(deleted);
            if resource == Resource::Jobs && options.propagation.is_none() {
                response.headers_mut().insert(
                    "warning",
                    http::HeaderValue::from_static(JOB_ORPHAN_WARNING),
                );
            }
            Ok(response)
        }
        _ => Err(ApiError::MethodNotAllowed),
    }
}

fn is_watch(params: &Params) -> bool {
    params.get("watch").is_some_and(|w| w == "true" || w == "1")
}

fn ok(value: Value) -> Response {
    (StatusCode::OK, axum::Json(value)).into_response()
}

fn parse_body(body: &Bytes) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::BadRequest(format!("couldn't get version/kind; json parse error: {e}"))
    })
}

#[allow(clippy::too_many_arguments)]
fn patch_object(
    cluster: &Arc<Cluster>,
    resource: Resource,
    namespace: &str,
    name: &str,
    status_only: bool,
    kind: PatchKind,
    patch_body: &Value,
    dry_run: bool,
) -> Result<Response, ApiError> {
    if kind == PatchKind::Apply && cluster.store.get(resource, namespace, name).is_none() {
        let mut object = patch_body.clone();
        object["metadata"]["name"] = json!(name);
        let created = cluster.create(resource, namespace, object, dry_run)?;
        return Ok((StatusCode::CREATED, axum::Json((*created).clone())).into_response());
    }
    let updated = cluster.update_with(resource, namespace, name, dry_run, |old| {
        let mut patched = patch::apply(kind, old, patch_body)?;
        if status_only {
            // Only the status of a status patch counts.
            let mut o = old.clone();
            o["status"] = patched["status"].take();
            patched = o;
        }
        // A patch that names a resourceVersion is a precondition; one that does not keeps
        // the current one and is unconditional.
        super::update::prepare_update(resource, old, patched, status_only)
    })?;
    Ok(ok((*updated).clone()))
}

fn delete_options(params: &Params, body: &Bytes) -> Result<DeleteOptions, ApiError> {
    let from_body: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        parse_body(body)?
    };
    let param = |name: &str| -> Option<String> {
        params
            .get(name)
            .cloned()
            .or_else(|| match &from_body[name] {
                Value::String(s) => Some(s.clone()),
                Value::Null => None,
                other => Some(other.to_string()),
            })
    };
    let propagation = match param("propagationPolicy").as_deref() {
        None => match param("orphanDependents").as_deref() {
            Some("false") => Some(Propagation::Background),
            Some("true") => Some(Propagation::Orphan),
            _ => None,
        },
        Some("Background") => Some(Propagation::Background),
        Some("Foreground") => Some(Propagation::Foreground),
        Some("Orphan") => Some(Propagation::Orphan),
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "propagationPolicy: Unsupported value: \"{other}\": supported values: \"Foreground\", \"Background\", \"Orphan\""
            )));
        }
    };
    let grace_period_seconds = param("gracePeriodSeconds").and_then(|g| g.parse().ok());
    let dry_run = params.get("dryRun").is_some_and(|d| d == "All")
        || from_body["dryRun"]
            .as_array()
            .is_some_and(|d| d.iter().any(|v| v == "All"));
    Ok(DeleteOptions {
        propagation,
        grace_period_seconds,
        precondition_uid: from_body["preconditions"]["uid"]
            .as_str()
            .map(str::to_string),
        precondition_rv: from_body["preconditions"]["resourceVersion"]
            .as_str()
            .map(str::to_string),
        dry_run,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn paths_route_like_the_api_server() {
        assert_eq!(
            parse_path("/apis/batch/v1/namespaces/ci/jobs/j1"),
            Some(Target::Object {
                resource: Resource::Jobs,
                namespace: "ci".into(),
                name: "j1".into(),
                status: false,
            })
        );
        assert_eq!(
            parse_path("/api/v1/namespaces/ci/pods"),
            Some(Target::Collection {
                resource: Resource::Pods,
                namespace: Some("ci".into()),
            })
        );
        assert_eq!(
            parse_path("/api/v1/pods"),
            Some(Target::Collection {
                resource: Resource::Pods,
                namespace: None,
            })
        );
        assert_eq!(parse_path("/apis/batch/v1/namespaces/ci/pods"), None);
        assert_eq!(parse_path("/apis/apps/v1/namespaces/ci/deployments"), None);
    }
}
