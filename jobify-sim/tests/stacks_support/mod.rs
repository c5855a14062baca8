//! Shared fixtures of the Stacks API simulator tests (included with `mod` by each file): a
//! plain `reqwest` client speaking the documented protocol, nothing from our own client.
#![allow(dead_code, unreachable_pub)]

use jobify_sim::stacks::{StacksSim, StacksSimConfig};
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

pub const TOKEN: &str = "bkct_cluster-token";
pub const QUEUE: &str = "kubernetes";
pub const STACK: &str = "jobify-a";

/// One answer: status, headers, body (`Null` when empty).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn message(&self) -> &str {
        self.body["message"].as_str().unwrap_or_default()
    }

    /// The `id`s of a scheduled-jobs page.
    pub fn job_ids(&self) -> Vec<String> {
        self.body["jobs"]
            .as_array()
            .map(|jobs| {
                jobs.iter()
                    .map(|j| j["id"].as_str().unwrap_or_default().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// A client of the simulator with one token.
#[derive(Clone)]
pub struct Api {
    client: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Api {
    pub fn new(sim: &StacksSim, token: Option<&str>) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Api {
            client: reqwest::Client::new(),
            base: sim.base_url(),
            token: token.map(str::to_owned),
        }
    }

    pub fn with_token(&self, token: &str) -> Self {
        Api {
            token: Some(token.to_owned()),
            ..self.clone()
        }
    }

    pub async fn send(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        let url = format!("{}{}", self.base, path.trim_start_matches('/'));
        let mut request = self
            .client
            .request(method, url)
            .header("Accept", "application/json")
            .header("Content-Type", "application/json");
        if let Some(token) = &self.token {
            request = request.header("Authorization", format!("Token {token}"));
        }
        if let Some(body) = body {
            request = request.body(body.to_string());
        }
        let response = request.send().await.expect("the simulator answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("a body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Answer {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.send(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Answer {
        self.send(Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Answer {
        self.send(Method::PUT, path, Some(body)).await
    }

    pub async fn register(&self, key: &str, queue: &str) -> Answer {
        let body = json!({"key": key, "type": "custom", "queue_key": queue, "metadata": {}});
        self.post("stacks/register", body).await
    }

    pub async fn list(&self, stack: &str, query: &str) -> Answer {
        self.get(&format!("stacks/{stack}/scheduled-jobs?{query}"))
            .await
    }

    pub async fn reserve(&self, stack: &str, body: Value) -> Answer {
        self.put(
            &format!("stacks/{stack}/scheduled-jobs/batch-reserve"),
            body,
        )
        .await
    }

    pub async fn states(&self, stack: &str, jobs: &[String]) -> Answer {
        let body = json!({"job_uuids": jobs});
        self.post(&format!("stacks/{stack}/jobs/get-states"), body)
            .await
    }

    pub async fn finish(&self, stack: &str, job: &str, body: Value) -> Answer {
        self.post(&format!("stacks/{stack}/jobs/{job}/finish"), body)
            .await
    }

    pub async fn notify(&self, stack: &str, notifications: Value) -> Answer {
        let body = json!({"notifications": notifications});
        self.post(&format!("stacks/{stack}/notifications"), body)
            .await
    }

    pub async fn issue_tokens(&self, stack: &str, body: Value) -> Answer {
        self.post(&format!("stacks/{stack}/job-acquisition-tokens"), body)
            .await
    }
}

/// A simulator with queue `kubernetes` and a client holding the cluster token.
pub async fn start(config: StacksSimConfig) -> (StacksSim, Api) {
    let sim = StacksSim::start(config)
        .await
        .expect("the simulator starts");
    let api = Api::new(&sim, Some(TOKEN));
    (sim, api)
}

pub fn config() -> StacksSimConfig {
    StacksSimConfig::new(TOKEN).with_queue(QUEUE)
}

/// A simulator, a client, and stack `jobify-a` registered on `kubernetes`.
pub async fn registered() -> (StacksSim, Api) {
    let (sim, api) = start(config()).await;
    assert_eq!(api.register(STACK, QUEUE).await.status, 201);
    (sim, api)
}
