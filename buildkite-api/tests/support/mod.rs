//! Shared test fixtures: a wiremock server, a client pointed at it, and JSON builders that
//! read like the Buildkite objects they stand for.

#![allow(dead_code, unreachable_pub)] // each test binary uses a different part

use std::time::Duration;

use buildkite_api::Client;
use secrecy::SecretString;
use serde_json::{Value, json};
use wiremock::{MockServer, Request};

pub const GRAPHQL_TOKEN: &str = "bkua_graphql_secret_0123456789";
pub const AGENT_TOKEN: &str = "bkat_agent_secret_0123456789";

/// A running fake Buildkite and a client that talks to it.
pub struct Fake {
    pub server: MockServer,
    pub client: Client,
}

pub async fn fake() -> Fake {
    fake_with_timeout(Duration::from_secs(5)).await
}

pub async fn fake_with_timeout(timeout: Duration) -> Fake {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let server = MockServer::start().await;
    let base = server.uri();
    let client = Client::builder()
        .graphql_token(SecretString::from(GRAPHQL_TOKEN))
        .agent_token(SecretString::from(AGENT_TOKEN))
        .graphql_url(format!("{base}/v1").parse().expect("mock URL"))
        .agent_url(format!("{base}/v3").parse().expect("mock URL"))
        .timeout(timeout)
        .user_agent("jobify/9.9.9")
        .build()
        .expect("client builds");
    Fake { server, client }
}

/// The JSON body of a received request.
pub fn body(request: &Request) -> Value {
    serde_json::from_slice(&request.body).unwrap_or(Value::Null)
}

/// Matches a GraphQL request by operation name and the value of one variable.
pub fn operation(
    name: &'static str,
    variable: &'static str,
    value: Value,
) -> impl Fn(&Request) -> bool {
    move |request: &Request| {
        let body = body(request);
        body["operationName"] == name && body["variables"][variable] == value
    }
}

/// Matches a GraphQL request by operation name.
pub fn operation_named(name: &'static str) -> impl Fn(&Request) -> bool {
    move |request: &Request| body(request)["operationName"] == name
}

/// A command job node as `ScheduledJobs` returns it.
pub struct JobNode {
    value: Value,
}

/// A scheduled command job with uuid `uuid` on `queue=kubernetes`.
pub fn scheduled_job(uuid: &str) -> JobNode {
    JobNode {
        value: json!({
            "__typename": "JobTypeCommand",
            "id": format!("JobTypeCommand---{uuid}"),
            "uuid": uuid,
            "label": ":rust: test",
            "state": "SCHEDULED",
            "agentQueryRules": ["queue=kubernetes"],
            "command": "cargo test",
            "env": [
                "BUILDKITE_ORGANIZATION_SLUG=acme",
                "BUILDKITE_PIPELINE_SLUG=app",
                "BUILDKITE_BUILD_NUMBER=42",
                "BUILDKITE_BUILD_ID=0190b2c4-0000-4000-8000-000000000042",
                "BUILDKITE_BRANCH=main",
                "BUILDKITE_COMMIT=abc123",
                "BUILDKITE_STEP_KEY=test",
                "BUILDKITE_PLUGINS=[]"
            ],
            "priority": { "number": 0 },
            "scheduledAt": "2026-11-27T10:00:00Z",
            "runnableAt": "2026-11-27T09:59:58.123Z",
            "url": format!("https://buildkite.com/acme/app/builds/42#{uuid}")
        }),
    }
}

impl JobNode {
    pub fn on_pipeline(mut self, slug: &str) -> Self {
        let env = self.value["env"].as_array_mut().expect("env is a list");
        for entry in env.iter_mut() {
            if entry
                .as_str()
                .is_some_and(|e| e.starts_with("BUILDKITE_PIPELINE_SLUG="))
            {
                *entry = json!(format!("BUILDKITE_PIPELINE_SLUG={slug}"));
            }
        }
        self
    }

    pub fn in_state(mut self, state: &str) -> Self {
        self.value["state"] = json!(state);
        self
    }

    pub fn with_priority(mut self, priority: i64) -> Self {
        self.value["priority"]["number"] = json!(priority);
        self
    }

    pub fn set(mut self, field: &str, value: Value) -> Self {
        self.value[field] = value;
        self
    }

    pub fn json(self) -> Value {
        self.value
    }
}

impl From<Value> for JobNode {
    fn from(value: Value) -> Self {
        JobNode { value }
    }
}

/// A `ScheduledJobs` or `ScheduledDefaultPriorityJobs` response page: `jobs` in
/// Buildkite's order (newest first) and, when a page of newer jobs exists, the
/// `startCursor` to ask for it `before`. Edge `i` (newest first) has cursor `edge-{i}`. Every job has priority 0: both counting aliases
/// (`defaultPriority` of the first operation, `all` of the second) say `total`.
pub fn jobs_page(jobs: Vec<JobNode>, total: usize, newer_cursor: Option<&str>) -> Value {
    let edges: Vec<Value> = jobs
        .into_iter()
        .enumerate()
        .map(|(i, job)| json!({ "cursor": format!("edge-{i}"), "node": job.json() }))
        .collect();
    json!({
        "data": {
            "organization": {
                "jobs": {
                    "count": total,
                    "pageInfo": {
                        "hasPreviousPage": newer_cursor.is_some(),
                        "startCursor": newer_cursor
                    },
                    "edges": edges
                },
                "defaultPriority": { "count": total },
                "all": { "count": total }
            }
        }
    })
}

pub fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("fixture exists")
}
