//! Runs the `list_scheduled_jobs` example against a fake Buildkite, so it cannot rot.

#[path = "../examples/list_scheduled_jobs.rs"]
mod list_scheduled_jobs;

use secrecy::SecretString;
use serde_json::json;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|arg| (*arg).to_owned()).collect()
}

fn token() -> SecretString {
    SecretString::from("bkua_example_token")
}

#[tokio::test]
async fn prints_the_queue_s_scheduled_jobs_as_a_table() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1"))
        .and(header("authorization", "Bearer bkua_example_token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "data": {
            "organization": { "jobs": {
                "count": 1,
                "pageInfo": { "hasPreviousPage": false, "startCursor": null },
                "edges": [{ "cursor": "edge-0", "node": {
                    "__typename": "JobTypeCommand",
                    "id": "JobTypeCommand---1",
                    "uuid": "0190b5d0-6b6e-4c8a-9c53-1a2b3c4d5e6f",
                    "label": ":rust: test",
                    "state": "SCHEDULED",
                    "agentQueryRules": ["queue=kubernetes"],
                    "command": "cargo test",
                    "env": ["BUILDKITE_PIPELINE_SLUG=app", "BUILDKITE_BUILD_NUMBER=42"],
                    "priority": { "number": 3 },
                    "scheduledAt": "2026-11-27T10:00:00Z",
                    "runnableAt": null,
                    "url": "https://buildkite.com/acme/app/builds/42#1"
                }}]
            },
            "defaultPriority": { "count": 0 } }
        }})))
        .expect(1)
        .mount(&server)
        .await;
    let endpoint = format!("{}/v1", server.uri());

    let out = list_scheduled_jobs::run(&args(&["acme", "kubernetes", &endpoint]), token())
        .await
        .expect("lists the jobs");

    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("UUID"), "{out}");
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(
        row,
        [
            "0190b5d0-6b6e-4c8a-9c53-1a2b3c4d5e6f",
            "app",
            "42",
            ":rust:",
            "test",
            "queue=kubernetes",
            "3",
            "2026-11-27T10:00:00Z"
        ],
        "{out}"
    );
    assert!(
        out.contains("1 shown of 1 scheduled; 1 request(s)"),
        "{out}"
    );
}

#[tokio::test]
async fn wrong_arguments_print_the_usage() {
    let error = list_scheduled_jobs::run(&args(&["acme"]), token())
        .await
        .expect_err("a queue is required");

    assert!(
        error
            .to_string()
            .starts_with("usage: list_scheduled_jobs ORGANIZATION QUEUE [GRAPHQL_URL]"),
        "{error}"
    );
}
