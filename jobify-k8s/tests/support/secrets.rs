//! Secrets for the Kubernetes simulator, which serves none: an HTTP/1.1 front that answers
//! requests for the core group's `secrets` from a store of its own, as the API server does
//! (create with 409 AlreadyExists, list with label and `metadata.name` field selectors and as
//! metadata only, JSON merge patch with `immutable` kept, delete with preconditions), and
//! passes every other request to the simulator byte for byte, watches included.
//!
//! It runs no garbage collector: a Secret whose owner is deleted stays (the real-cluster
//! tests show the collector deleting it). Unmatched Secret requests (a watch, another patch
//! type) answer an error the test sees.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jobify_sim::kubernetes::KubeSim;
use k8s_openapi::api::core::v1::Secret;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

use super::cluster::client_to;

/// One request the front saw: method and path (Secrets and forwarded alike).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    pub method: String,
    pub path: String,
}

#[derive(Default)]
struct State {
    /// By (namespace, name).
    secrets: BTreeMap<(String, String), Value>,
    version: u64,
    seen: Vec<Seen>,
    /// Creates still to answer only after the delay (the Secret is stored at once).
    stalled_creates: usize,
    stall: Duration,
}

/// The front; dropping it closes every connection.
pub struct SecretsFront {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

impl SecretsFront {
    /// A front to `sim`.
    pub async fn start(sim: &KubeSim) -> Self {
        let upstream: SocketAddr = sim
            .url()
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .expect("the simulator listens on host:port");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let state = Arc::new(Mutex::new(State::default()));
        let task = tokio::spawn(accept(listener, upstream, Arc::clone(&state)));
        SecretsFront { addr, state, task }
    }

    /// A client to the simulator through this front.
    pub fn client(&self) -> kube::Client {
        client_to(&format!("http://{}", self.addr))
    }

    /// The Secrets of `namespace`, by name.
    pub fn secrets(&self, namespace: &str) -> Vec<Secret> {
        lock(&self.state)
            .secrets
            .iter()
            .filter(|((ns, _), _)| ns == namespace)
            .map(|(_, s)| serde_json::from_value(s.clone()).expect("a Secret"))
            .collect()
    }

    /// Stores `secret` (JSON) as if created long ago: its `metadata.creationTimestamp`, if
    /// given, is kept.
    pub fn insert(&self, namespace: &str, mut secret: Value) {
        let mut state = lock(&self.state);
        state.version += 1;
        let name = secret["metadata"]["name"]
            .as_str()
            .expect("named")
            .to_owned();
        let meta = &mut secret["metadata"];
        meta["namespace"] = json!(namespace);
        meta["uid"] = json!(uuid::Uuid::new_v4().to_string());
        meta["resourceVersion"] = json!(state.version.to_string());
        if meta["creationTimestamp"].is_null() {
            meta["creationTimestamp"] = json!(now());
        }
        secret["apiVersion"] = json!("v1");
        secret["kind"] = json!("Secret");
        state.secrets.insert((namespace.to_owned(), name), secret);
    }

    /// The next `creates` Secret creates are stored at once but answered only after `stall`:
    /// what a client sees of an API server that answers too late.
    pub fn stall_creates(&self, creates: usize, stall: Duration) {
        let mut state = lock(&self.state);
        state.stalled_creates = creates;
        state.stall = stall;
    }

    /// Changes the stored Secret `name` of `namespace` with `change`.
    pub fn update(&self, namespace: &str, name: &str, change: impl FnOnce(&mut Value)) {
        let mut state = lock(&self.state);
        let secret = state
            .secrets
            .get_mut(&(namespace.to_owned(), name.to_owned()))
            .expect("the Secret exists");
        change(secret);
    }

    /// Every request so far, in order.
    pub fn seen(&self) -> Vec<Seen> {
        lock(&self.state).seen.clone()
    }
}

impl Drop for SecretsFront {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

fn now() -> String {
    jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .expect("rounds")
        .to_string()
}

async fn accept(listener: TcpListener, upstream: SocketAddr, state: Arc<Mutex<State>>) {
    let mut connections = JoinSet::new();
    while let Ok((client, _)) = listener.accept().await {
        connections.spawn(serve(client, upstream, Arc::clone(&state)));
    }
}

/// One request as read off the wire.
struct Request {
    method: String,
    path: String,
    query: String,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
    /// The request's bytes as they came, to forward.
    raw: Vec<u8>,
}

/// Serves one client connection: each request in turn, either here or upstream (over one
/// upstream connection, whose answers are copied back as they come).
async fn serve(client: TcpStream, upstream: SocketAddr, state: Arc<Mutex<State>>) {
    let (read, write) = client.into_split();
    let write = Arc::new(tokio::sync::Mutex::new(write));
    let mut reader = BufReader::new(read);
    let mut forward: Option<(tokio::net::tcp::OwnedWriteHalf, JoinHandle<()>)> = None;
    while let Some(request) = read_request(&mut reader).await {
        lock(&state).seen.push(Seen {
            method: request.method.clone(),
            path: request.path.clone(),
        });
        if let Some(target) = secrets_target(&request.path) {
            let (code, body, stall) = answer(&state, &request, target);
            if let Some(stall) = stall {
                tokio::time::sleep(stall).await;
            }
            let body = body.to_string();
            let head = format!(
                "HTTP/1.1 {code} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                reason(code),
                body.len()
            );
            let mut out = write.lock().await;
            if out.write_all(head.as_bytes()).await.is_err()
                || out.write_all(body.as_bytes()).await.is_err()
            {
                return;
            }
            continue;
        }
        if forward.as_ref().is_none_or(|(_, pump)| pump.is_finished()) {
            let Ok(server) = TcpStream::connect(upstream).await else {
                return;
            };
            let (from_server, to_server) = server.into_split();
            let pump = tokio::spawn(copy_back(from_server, Arc::clone(&write)));
            forward = Some((to_server, pump));
        }
        let Some((to_server, _)) = forward.as_mut() else {
            return;
        };
        if to_server.write_all(&request.raw).await.is_err() {
            return;
        }
    }
    if let Some((_, pump)) = forward {
        pump.abort();
    }
}

/// Copies the simulator's answers to the client until the simulator closes, then closes
/// the client's side too.
async fn copy_back(
    mut from: tokio::net::tcp::OwnedReadHalf,
    to: Arc<tokio::sync::Mutex<OwnedWriteHalf>>,
) {
    let mut buf = vec![0; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if to.lock().await.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
    let _ = to.lock().await.shutdown().await;
}

async fn read_request(reader: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> Option<Request> {
    let mut raw = Vec::new();
    let mut line = String::new();
    if reader.read_line(&mut line).await.ok()? == 0 {
        return None;
    }
    raw.extend_from_slice(line.as_bytes());
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let target = parts.next()?.to_owned();
    let mut headers = BTreeMap::new();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).await.ok()? == 0 {
            return None;
        }
        raw.extend_from_slice(header.as_bytes());
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
        }
    }
    let mut body = Vec::new();
    if let Some(length) = headers.get("content-length") {
        let length: usize = length.parse().ok()?;
        body.resize(length, 0);
        reader.read_exact(&mut body).await.ok()?;
        raw.extend_from_slice(&body);
    } else if headers
        .get("transfer-encoding")
        .is_some_and(|t| t.contains("chunked"))
    {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).await.ok()?;
            raw.extend_from_slice(size.as_bytes());
            let size = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).await.ok()?;
            raw.extend_from_slice(&chunk);
            body.extend_from_slice(&chunk[..size]);
            if size == 0 {
                break;
            }
        }
    }
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path.to_owned(), query.to_owned()),
        None => (target, String::new()),
    };
    Some(Request {
        method,
        path,
        query,
        headers,
        body,
        raw,
    })
}

/// `(namespace, name)` of a request for the core group's Secrets.
fn secrets_target(path: &str) -> Option<(String, Option<String>)> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match parts.as_slice() {
        ["api", "v1", "namespaces", ns, "secrets"] => Some(((*ns).to_owned(), None)),
        ["api", "v1", "namespaces", ns, "secrets", name] => {
            Some(((*ns).to_owned(), Some((*name).to_owned())))
        }
        _ => None,
    }
}

fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        201 => "Created",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Entity",
        _ => "Status",
    }
}

fn status(code: u16, reason: &str, message: String) -> (u16, Value, Option<Duration>) {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code});
    (code, body, None)
}

fn query_param(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == key).then(|| decode(v))
    })
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                out.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether `secret` matches a `labelSelector` of `k=v`, `k==v`, `k!=v` and `k` terms.
fn labels_match(secret: &Value, selector: &str) -> bool {
    let labels = &secret["metadata"]["labels"];
    selector.split(',').filter(|t| !t.is_empty()).all(|term| {
        if let Some((k, v)) = term.split_once("!=") {
            labels[k].as_str() != Some(v)
        } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
            labels[k].as_str() == Some(v)
        } else {
            !labels[term].is_null()
        }
    })
}

fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    let Value::Object(fields) = target else {
        unreachable!("made an object above")
    };
    for (key, value) in patch {
        if value.is_null() {
            fields.remove(key);
        } else {
            merge(fields.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

fn answer(
    state: &Mutex<State>,
    request: &Request,
    (namespace, name): (String, Option<String>),
) -> (u16, Value, Option<Duration>) {
    let mut state = lock(state);
    let body: Value = if request.body.is_empty() {
        Value::Null
    } else {
        match serde_json::from_slice(&request.body) {
            Ok(body) => body,
            Err(err) => return status(400, "BadRequest", format!("not JSON: {err}")),
        }
    };
    let not_found = |name: &str| status(404, "NotFound", format!("secrets \"{name}\" not found"));
    match (request.method.as_str(), name) {
        ("POST", None) => {
            let Some(name) = body["metadata"]["name"].as_str().map(str::to_owned) else {
                return status(
                    422,
                    "Invalid",
                    "Secret is invalid: metadata.name: Required value".to_owned(),
                );
            };
            let key = (namespace.clone(), name.clone());
            if state.secrets.contains_key(&key) {
                return status(
                    409,
                    "AlreadyExists",
                    format!("secrets \"{name}\" already exists"),
                );
            }
            let mut secret = body;
            state.version += 1;
            let meta = &mut secret["metadata"];
            meta["namespace"] = json!(namespace);
            meta["uid"] = json!(uuid::Uuid::new_v4().to_string());
            meta["resourceVersion"] = json!(state.version.to_string());
            meta["creationTimestamp"] = json!(now());
            secret["apiVersion"] = json!("v1");
            secret["kind"] = json!("Secret");
            state.secrets.insert(key, secret.clone());
            let stall = (state.stalled_creates > 0).then(|| {
                state.stalled_creates -= 1;
                state.stall
            });
            (201, secret, stall)
        }
        ("GET", None) => {
            if query_param(&request.query, "watch").is_some_and(|w| w == "true" || w == "1") {
                return status(
                    405,
                    "MethodNotAllowed",
                    "the Secrets front serves no watches".to_owned(),
                );
            }
            let labels = query_param(&request.query, "labelSelector").unwrap_or_default();
            let fields = query_param(&request.query, "fieldSelector").unwrap_or_default();
            let wanted_name = match fields.as_str() {
                "" => None,
                f => match f.strip_prefix("metadata.name=") {
                    Some(name) => Some(name.to_owned()),
                    None => {
                        return status(
                            400,
                            "BadRequest",
                            format!("field label not supported: {f}"),
                        );
                    }
                },
            };
            let items: Vec<&Value> = state
                .secrets
                .iter()
                .filter(|((ns, n), s)| {
                    *ns == namespace
                        && wanted_name.as_ref().is_none_or(|w| w == n)
                        && labels_match(s, &labels)
                })
                .map(|(_, s)| s)
                .collect();
            let metadata_only = request
                .headers
                .get("accept")
                .is_some_and(|a| a.contains("as=PartialObjectMetadataList"));
            let version = state.version.to_string();
            if metadata_only {
                let items: Vec<Value> = items
                    .iter()
                    .map(|s| {
                        json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
                                    "metadata": s["metadata"]})
                    })
                    .collect();
                (
                    200,
                    json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadataList",
                             "metadata": {"resourceVersion": version}, "items": items}),
                    None,
                )
            } else {
                (
                    200,
                    json!({"apiVersion": "v1", "kind": "SecretList",
                             "metadata": {"resourceVersion": version}, "items": items}),
                    None,
                )
            }
        }
        ("GET", Some(name)) => match state.secrets.get(&(namespace, name.clone())) {
            Some(secret) => (200, secret.clone(), None),
            None => not_found(&name),
        },
        ("PATCH", Some(name)) => {
            let kind = request
                .headers
                .get("content-type")
                .cloned()
                .unwrap_or_default();
            if !kind.starts_with("application/merge-patch+json") {
                return status(
                    415,
                    "UnsupportedMediaType",
                    format!("the Secrets front takes merge patches only, not {kind}"),
                );
            }
            state.version += 1;
            let version = state.version.to_string();
            let Some(secret) = state.secrets.get_mut(&(namespace, name.clone())) else {
                return not_found(&name);
            };
            let mut patched = secret.clone();
            merge(&mut patched, &body);
            if secret["immutable"] == json!(true)
                && (patched["data"] != secret["data"]
                    || patched["stringData"] != secret["stringData"]
                    || patched["immutable"] != secret["immutable"])
            {
                return status(
                    422,
                    "Invalid",
                    format!(
                        "Secret \"{name}\" is invalid: data: Forbidden: field is immutable when `immutable` is set"
                    ),
                );
            }
            for kept in ["uid", "namespace", "name", "creationTimestamp"] {
                patched["metadata"][kept] = secret["metadata"][kept].clone();
            }
            patched["metadata"]["resourceVersion"] = json!(version);
            *secret = patched.clone();
            (200, patched, None)
        }
        ("DELETE", Some(name)) => {
            let key = (namespace, name.clone());
            let Some(secret) = state.secrets.get(&key) else {
                return not_found(&name);
            };
            let preconditions = &body["preconditions"];
            for (field, path) in [("uid", "uid"), ("resourceVersion", "resourceVersion")] {
                if let Some(wanted) = preconditions[field].as_str()
                    && secret["metadata"][path].as_str() != Some(wanted)
                {
                    return status(
                        409,
                        "Conflict",
                        format!(
                            "Precondition failed: {field} in precondition: {wanted}, {field} in object meta: {}",
                            secret["metadata"][path]
                        ),
                    );
                }
            }
            let removed = state.secrets.remove(&key).unwrap_or(Value::Null);
            (200, removed, None)
        }
        (method, _) => status(
            405,
            "MethodNotAllowed",
            format!("the Secrets front does not serve {method} {}", request.path),
        ),
    }
}
