//! A `kube::Client` whose requests are recorded, and whose watches ask the API server to end
//! them after a few seconds (`timeoutSeconds`), as a server does to every watch sooner or
//! later. kube-runtime's watcher always asks for 290 s; this layer rewrites only that value.

use std::path::Path;
use std::sync::{Arc, Mutex};

use http::Request;
use kube::client::{Body, ClientBuilder};

/// One request the client sent: its method, path and query.
#[derive(Clone, Debug)]
pub struct Sent {
    pub method: String,
    pub path: String,
    pub query: String,
}

impl Sent {
    /// A watch (`?watch=true`) of the collection at a path ending in `/{resource}`.
    pub fn is_watch_of(&self, resource: &str) -> bool {
        self.path.ends_with(&format!("/{resource}"))
            && self
                .query
                .split('&')
                .any(|p| p == "watch=true" || p == "watch=1")
    }

    /// A list (a `GET` of the collection that is not a watch) of `resource`.
    pub fn is_list_of(&self, resource: &str) -> bool {
        self.method == "GET"
            && self.path.ends_with(&format!("/{resource}"))
            && !self.is_watch_of(resource)
    }
}

/// What a [`recording_client`] sent.
#[derive(Clone, Default)]
pub struct Requests(Arc<Mutex<Vec<Sent>>>);

impl Requests {
    fn push(&self, sent: Sent) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(sent);
    }

    /// Every request so far.
    pub fn all(&self) -> Vec<Sent> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// How many watches of `resource` were started.
    pub fn watches(&self, resource: &str) -> usize {
        self.all()
            .iter()
            .filter(|s| s.is_watch_of(resource))
            .count()
    }

    /// How many lists of `resource` were sent.
    pub fn lists(&self, resource: &str) -> usize {
        self.all().iter().filter(|s| s.is_list_of(resource)).count()
    }
}

/// A client from the kubeconfig at `path` that records its requests and asks for watches
/// of at most `watch_seconds`.
pub async fn recording_client(path: &Path, watch_seconds: u32) -> (kube::Client, Requests) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let kubeconfig = kube::config::Kubeconfig::read_from(path).expect("kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .expect("client configuration");
    let requests = Requests::default();
    let recorded = requests.clone();
    let layer = tower::util::MapRequestLayer::new(move |mut request: Request<Body>| {
        let uri = request.uri().clone();
        let query = uri.query().unwrap_or_default().to_owned();
        let sent = Sent {
            method: request.method().to_string(),
            path: uri.path().to_owned(),
            query: query.clone(),
        };
        if sent.query.split('&').any(|p| p == "watch=true") {
            let shortened: Vec<String> = query
                .split('&')
                .map(|p| {
                    if p.starts_with("timeoutSeconds=") {
                        format!("timeoutSeconds={watch_seconds}")
                    } else {
                        p.to_owned()
                    }
                })
                .collect();
            let mut parts = uri.into_parts();
            parts.path_and_query = Some(
                format!("{}?{}", sent.path, shortened.join("&"))
                    .parse()
                    .expect("the same path and query, shortened"),
            );
            *request.uri_mut() = http::Uri::from_parts(parts).expect("the same URI, shortened");
        }
        recorded.push(sent);
        request
    });
    let client = ClientBuilder::try_from(config)
        .expect("client builder")
        .with_layer(&layer)
        .build();
    (client, requests)
}
