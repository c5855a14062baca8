//! Replays the seed's recorded GetBuilds query (with its default `$id` variable) against a
//! simulated organization set up like the recording, and compares the answer with the real
//! response in `shared/buildkite/examples/`.

#![allow(clippy::unwrap_used, reason = "a failed unwrap fails the test")]

use jobify_sim::buildkite::{BuildkiteSim, BuildkiteSimConfig, JobSpec};
use serde_json::{Value, json};
use uuid::Uuid;

const QUERY: &str =
    include_str!("../../../shared/buildkite/examples/graphql-get-builds-query.graphql");
const RESPONSE: &str =
    include_str!("../../../shared/buildkite/examples/graphql-get-builds-response.json");

/// The shape of a JSON value: object keys (recursively), the first item of arrays, and the
/// JSON type of scalars.
fn shape(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), shape(v))).collect())
        }
        Value::Array(items) => json!([items.first().map(shape)]),
        Value::String(_) => json!("string"),
        Value::Number(_) => json!("number"),
        Value::Bool(_) => json!("bool"),
        Value::Null => json!("null"),
    }
}

fn env_names(env: &Value) -> Vec<String> {
    env.as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap().split_once('=').unwrap().0.to_owned())
        .collect()
}

#[tokio::test]
async fn the_seeds_get_builds_query_answers_like_the_recording() {
    let bk = BuildkiteSim::start(BuildkiteSimConfig::new("superorbital", "api", "agent"))
        .await
        .unwrap();
    let pipeline = Uuid::parse_str("01846274-09bc-4c7a-bb90-cb317e569fe7").unwrap();
    bk.create_pipeline("buildkite-gh-actions", Some(pipeline));
    let step = |command: &str| JobSpec {
        message: "Update README.md".to_owned(),
        commit: "7b71ee28a15ef298fb511fb025bfbbdb5b671a27".to_owned(),
        label: ":golang:".to_owned(),
        ..JobSpec::command(command)
            .on_pipeline("buildkite-gh-actions")
            .on_queue("3462986656")
    };
    let first = bk.schedule_job(step("go test -v ."));
    for command in ["go vet", "go build", "golangci-lint run", "go test -race"] {
        let spec = JobSpec {
            build: Some(first.build_number),
            ..step(command)
        };
        let job = bk.schedule_job(spec);
        if command == "go build" {
            // One job running makes the build RUNNING, as in the recording.
            bk.agent_api()
                .acquire(job.uuid, &["queue=3462986656".to_owned()])
                .unwrap();
        }
    }

    // The subset schema jobify uses has no `JobTypeCommand.agent`; everything else of the
    // recorded query is asked as recorded, with no variables (the default `$id` applies).
    let query = QUERY.replace(" agent { name }", "");
    let _ = rustls::crypto::ring::default_provider().install_default();
    let response = reqwest::Client::new()
        .post(bk.graphql_url())
        .bearer_auth("api")
        .json(&json!({ "query": query }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();

    let mut recorded: Value = serde_json::from_str(RESPONSE).unwrap();
    let build = &mut recorded["data"]["node"]["builds"]["edges"][0]["node"];
    // `triggeredFrom` is in the recording but not in the recorded query.
    build.as_object_mut().unwrap().remove("triggeredFrom");
    let job = &mut build["jobs"]["edges"][0]["node"];
    job.as_object_mut().unwrap().remove("agent");
    let recorded_env = env_names(&job["env"]);
    assert_eq!(shape(&body), shape(&recorded), "{body:#}");

    let ours = &body["data"]["node"]["builds"];
    assert_eq!(ours["count"], 1);
    let build = &ours["edges"][0]["node"];
    assert_eq!(build["state"], "RUNNING");
    assert_eq!(build["message"], "Update README.md");
    assert_eq!(build["metaData"], json!({"count": 0, "edges": []}));
    assert_eq!(build["jobs"]["count"], 5);
    assert_eq!(build["jobs"]["pageInfo"]["hasNextPage"], true);
    let job = &build["jobs"]["edges"][0]["node"];
    assert_eq!(job["uuid"], first.uuid.to_string());
    assert_eq!(job["label"], ":golang:");
    assert_eq!(job["state"], "SCHEDULED");
    assert_eq!(job["agentQueryRules"], json!(["queue=3462986656"]));
    assert_eq!(job["exitStatus"], Value::Null);
    // The same variables, in the same order, as Buildkite gave the recorded job.
    assert_eq!(env_names(&job["env"]), recorded_env);
    bk.shutdown().await;
}
