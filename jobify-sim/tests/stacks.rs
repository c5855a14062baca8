//! The Stacks API simulator over real HTTP, endpoint by endpoint, written from Buildkite's
//! documentation: each happy path and each documented refusal.
#![allow(clippy::unwrap_used, reason = "a failed unwrap fails the test")]

mod stacks_support;

use std::time::Duration;

use jobify_sim::FaultConfig;
use jobify_sim::stacks::{JobSpec, StacksSimConfig};
use serde_json::json;
use stacks_support::{Api, QUEUE, STACK, TOKEN, config, registered, start};

#[tokio::test]
async fn token_identity_names_the_cluster_and_refuses_strangers() {
    let mut cfg = config();
    cfg.unclustered_agent_tokens = vec!["unclustered".into()];
    let (sim, api) = start(cfg).await;
    let me = api.get("token").await;
    assert_eq!(me.status, 200);
    assert_eq!(me.body["cluster_uuid"], sim.cluster_uuid().to_string());
    assert_eq!(me.body["organization_slug"], "acme");
    let unclustered = api.with_token("unclustered").get("token").await;
    assert_eq!(unclustered.status, 200);
    assert_eq!(unclustered.body["cluster_uuid"], "");
    let stranger = api.with_token("nope").get("token").await;
    assert_eq!(stranger.status, 401);
    assert!(!stranger.message().is_empty());
}

#[tokio::test]
async fn stacks_endpoints_take_only_the_cluster_agent_token() {
    let mut cfg = config();
    cfg.unclustered_agent_tokens = vec!["unclustered".into()];
    let (sim, api) = start(cfg).await;
    let anonymous = Api::new(&sim, None);
    for refused in [
        anonymous.register(STACK, QUEUE).await,
        api.with_token("unclustered").register(STACK, QUEUE).await,
        api.with_token("bkjat_a.b.c").register(STACK, QUEUE).await,
        api.with_token("wrong")
            .list(STACK, "queue_key=kubernetes")
            .await,
    ] {
        assert_eq!(refused.status, 401, "{refused:?}");
        assert!(refused.message().contains("agent token"), "{refused:?}");
    }
    assert_eq!(sim.stats().unauthorized, 4);
    assert_eq!(api.register(STACK, QUEUE).await.status, 201);
}

#[tokio::test]
async fn register_creates_then_updates_the_stack() {
    let (sim, api) = start(config()).await;
    let body = json!({"key": STACK, "type": "custom", "queue_key": QUEUE, "metadata": {"v": "1"}});
    let created = api.post("stacks/register", body).await;
    assert_eq!(created.status, 201, "{created:?}");
    assert_eq!(created.body["key"], STACK);
    assert_eq!(created.body["type"], "custom");
    assert_eq!(created.body["cluster_queue_key"], QUEUE);
    assert_eq!(created.body["metadata"], json!({"v": "1"}));
    assert_eq!(created.body["state"], "connected");
    assert!(created.body["id"].is_string() && created.body["organization_uuid"].is_string());
    let updated = api.register(STACK, "_default").await;
    assert_eq!(updated.status, 200);
    assert_eq!(updated.body["id"], created.body["id"]);
    assert_eq!(sim.stack(STACK).unwrap().queue_key, "_default");
    assert_eq!(
        api.register("docs-sentinel", "__default__").await.status,
        201
    );
}

#[tokio::test]
async fn register_validates_key_type_queue_and_metadata() {
    let (_sim, api) = start(config()).await;
    let long_value = "v".repeat(257);
    let many: serde_json::Map<String, serde_json::Value> =
        (0..101).map(|i| (format!("k{i}"), json!("v"))).collect();
    for (body, says) in [
        (
            json!({"type": "custom", "queue_key": QUEUE, "metadata": {}}),
            "Key",
        ),
        (
            json!({"key": "a.b", "type": "custom", "queue_key": QUEUE, "metadata": {}}),
            "Key",
        ),
        (
            json!({"key": "k".repeat(81), "type": "custom", "queue_key": QUEUE, "metadata": {}}),
            "Key",
        ),
        (
            json!({"key": "k", "type": "lambda", "queue_key": QUEUE, "metadata": {}}),
            "Type",
        ),
        (
            json!({"key": "k", "type": "custom", "metadata": {}}),
            "Queue key",
        ),
        (
            json!({"key": "k", "type": "custom", "queue_key": QUEUE}),
            "Metadata",
        ),
        (
            json!({"key": "k", "type": "custom", "queue_key": QUEUE, "metadata": {"k".repeat(65): "v"}}),
            "Metadata key",
        ),
        (
            json!({"key": "k", "type": "custom", "queue_key": QUEUE, "metadata": {"k": long_value}}),
            "Metadata value",
        ),
        (
            json!({"key": "k", "type": "custom", "queue_key": QUEUE, "metadata": many}),
            "100 keys",
        ),
    ] {
        let refused = api.post("stacks/register", body.clone()).await;
        assert_eq!(refused.status, 422, "{body}: {refused:?}");
        assert!(refused.message().contains(says), "{body}: {refused:?}");
    }
    let unknown_queue = api.register("k", "nowhere").await;
    assert_eq!(unknown_queue.status, 404);
    let not_json = api
        .send(reqwest::Method::POST, "stacks/register", Some(json!([1])))
        .await;
    assert_eq!(not_json.status, 400);
}

#[tokio::test]
async fn the_organizations_stack_limit_is_403() {
    let mut cfg = config();
    cfg.max_stacks = 1;
    let (_sim, api) = start(cfg).await;
    assert_eq!(api.register("one", QUEUE).await.status, 201);
    assert_eq!(
        api.register("one", QUEUE).await.status,
        200,
        "updates do not count"
    );
    let refused = api.register("two", QUEUE).await;
    assert_eq!(refused.status, 403);
    assert_eq!(
        api.post("stacks/one/deregister", json!(null)).await.status,
        204
    );
    assert_eq!(api.register("two", QUEUE).await.status, 201);
}

#[tokio::test]
async fn deregister_answers_204_then_the_key_is_not_found() {
    let (sim, api) = registered().await;
    let gone = api
        .send(
            reqwest::Method::POST,
            &format!("stacks/{STACK}/deregister"),
            None,
        )
        .await;
    assert_eq!((gone.status, &gone.body), (204, &serde_json::Value::Null));
    assert_eq!(sim.stack(STACK).unwrap().state, "disconnected");
    let after = api.list(STACK, "queue_key=kubernetes").await;
    assert_eq!(after.status, 404);
    assert_eq!(after.message(), "Stack not found with the provided key");
    assert_eq!(
        api.post(&format!("stacks/{STACK}/deregister"), json!({}))
            .await
            .status,
        404
    );
    assert_eq!(
        api.register(STACK, QUEUE).await.status,
        201,
        "registering again revives it"
    );
}

#[tokio::test]
async fn scheduled_jobs_are_listed_oldest_first_with_their_metadata() {
    let (sim, api) = registered().await;
    let first = sim.add_job(
        JobSpec::command("make")
            .on_queue(QUEUE)
            .with_rule("arch=amd64")
            .with_priority(3)
            .on_pipeline("app")
            .with_step_key("test"),
    );
    sim.advance(Duration::from_millis(10));
    let second = sim.add_job(JobSpec::command("make").on_queue(QUEUE));
    sim.add_job(JobSpec::command("elsewhere"));
    let page = api.list(STACK, "queue_key=kubernetes").await;
    assert_eq!(page.status, 200, "{page:?}");
    assert_eq!(page.job_ids(), [first.to_string(), second.to_string()]);
    let job = &page.body["jobs"][0];
    assert_eq!(job["priority"], 3);
    assert_eq!(
        job["agent_query_rules"],
        json!(["queue=kubernetes", "arch=amd64"])
    );
    assert_eq!(job["pipeline"]["slug"], "app");
    assert_eq!(job["build"]["number"], 1);
    assert_eq!(job["build"]["branch"], "main");
    assert_eq!(job["step"]["key"], "test");
    assert!(job["scheduled_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(page.body["jobs"][1]["step"], json!({"key": null}));
    assert_eq!(page.body["page_info"]["has_next_page"], false);
    assert_eq!(page.body["cluster_queue"]["dispatch_paused"], false);
    assert_eq!(
        page.body["cluster_queue"]["id"],
        sim.queue(QUEUE).unwrap().id.to_string()
    );
    let default = api.list(STACK, "queue_key=_default").await;
    assert_eq!(
        default.job_ids().len(),
        1,
        "the default queue by its sentinel"
    );
}

#[tokio::test]
async fn pages_follow_an_opaque_cursor() {
    let (sim, api) = registered().await;
    let jobs: Vec<String> = (0..5)
        .map(|_| {
            sim.add_job(JobSpec::command("make").on_queue(QUEUE))
                .to_string()
        })
        .collect();
    let mut seen = Vec::new();
    let mut query = "queue_key=kubernetes&limit=2".to_owned();
    loop {
        let page = api.list(STACK, &query).await;
        assert_eq!(page.status, 200);
        seen.extend(page.job_ids());
        if page.body["page_info"]["has_next_page"] == false {
            break;
        }
        let cursor = page.body["page_info"]["end_cursor"]
            .as_str()
            .unwrap()
            .to_owned();
        query = format!(
            "queue_key=kubernetes&limit=2&after={}",
            cursor
                .replace('=', "%3D")
                .replace('+', "%2B")
                .replace('/', "%2F")
        );
    }
    assert_eq!(seen, jobs);
    let empty = api.list(STACK, "queue_key=_default").await;
    assert_eq!(
        empty.body["page_info"]["end_cursor"],
        serde_json::Value::Null
    );
}

#[tokio::test]
async fn listing_refuses_bad_parameters_and_unknown_names() {
    let (sim, api) = registered().await;
    sim.add_job(JobSpec::command("make").on_queue(QUEUE));
    for (query, status) in [
        ("queue_key=kubernetes&limit=0", 400),
        ("queue_key=kubernetes&limit=-1", 400),
        ("queue_key=kubernetes&limit=ten", 400),
        ("queue_key=kubernetes&after=%25%25", 400),
        ("limit=10", 400),
        ("queue_key=nowhere", 404),
    ] {
        let answer = api.list(STACK, query).await;
        assert_eq!(answer.status, status, "{query}: {answer:?}");
        assert!(!answer.message().is_empty());
    }
    let capped = api.list(STACK, "queue_key=kubernetes&limit=5000").await;
    assert_eq!(capped.status, 200, "limit is capped at 1000");
    assert_eq!(
        api.list("stranger", "queue_key=kubernetes").await.status,
        404
    );
}

#[tokio::test]
async fn a_paused_queue_says_so_in_the_listing() {
    let (sim, api) = registered().await;
    assert!(sim.pause_queue(QUEUE, true));
    let page = api.list(STACK, "queue_key=kubernetes").await;
    assert_eq!(page.body["cluster_queue"]["dispatch_paused"], true);
    assert!(sim.pause_queue(QUEUE, false));
    let page = api.list(STACK, "queue_key=kubernetes").await;
    assert_eq!(page.body["cluster_queue"]["dispatch_paused"], false);
    assert!(!sim.pause_queue("nowhere", true));
}

#[tokio::test]
async fn polling_is_the_stacks_heartbeat() {
    let (sim, api) = registered().await;
    assert!(!sim.queue(QUEUE).unwrap().connected, "nobody polled yet");
    api.list(STACK, "queue_key=kubernetes").await;
    assert!(sim.queue(QUEUE).unwrap().connected);
    sim.advance(Duration::from_secs(299));
    assert_eq!(sim.stack(STACK).unwrap().state, "connected");
    sim.advance(Duration::from_secs(2));
    assert_eq!(sim.stack(STACK).unwrap().state, "lost");
    assert!(!sim.queue(QUEUE).unwrap().connected);
    api.list(STACK, "queue_key=kubernetes").await;
    assert_eq!(sim.stack(STACK).unwrap().state, "connected");
}

#[tokio::test]
async fn get_job_answers_env_and_command() {
    let (sim, api) = registered().await;
    let plugins =
        json!([{"github.com/buildkite-plugins/kubernetes-buildkite-plugin": {"podSpec": {}}}]);
    let job = sim.add_job(
        JobSpec::command("make test")
            .on_queue(QUEUE)
            .with_env("FOO", "bar")
            .with_plugins(&plugins),
    );
    let answer = api.get(&format!("stacks/{STACK}/jobs/{job}")).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.body["id"], job.to_string());
    assert_eq!(answer.body["command"], "make test");
    assert_eq!(answer.body["env"]["FOO"], "bar");
    assert_eq!(answer.body["env"]["BUILDKITE_JOB_ID"], job.to_string());
    let parsed: serde_json::Value =
        serde_json::from_str(answer.body["env"]["BUILDKITE_PLUGINS"].as_str().unwrap()).unwrap();
    assert_eq!(parsed, plugins);
    let unknown = api
        .get(&format!("stacks/{STACK}/jobs/{}", uuid::Uuid::new_v4()))
        .await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.message(), "Job not found");
}

#[tokio::test]
async fn path_segments_are_percent_decoded() {
    let (sim, api) = registered().await;
    let job = sim.add_job(JobSpec::command("make").on_queue(QUEUE));
    let answer = api.get(&format!("stacks/jobify%2Da/jobs/{job}")).await;
    assert_eq!(answer.status, 200, "{answer:?}");
}

#[tokio::test]
async fn get_states_reports_every_known_job_and_cancellation() {
    let (sim, api) = registered().await;
    let scheduled = sim.add_job(JobSpec::command("a").on_queue(QUEUE));
    let reserved = sim.add_job(JobSpec::command("b").on_queue(QUEUE));
    let canceled = sim.add_job(JobSpec::command("c").on_queue(QUEUE));
    let running = sim.add_job(JobSpec::command("d").on_queue(QUEUE));
    api.reserve(STACK, json!({"job_uuids": [reserved.to_string()]}))
        .await;
    assert!(sim.cancel_job(canceled));
    sim.acquire(running, TOKEN).unwrap();
    let unknown = uuid::Uuid::new_v4().to_string();
    let ids: Vec<String> = [scheduled, reserved, canceled, running]
        .iter()
        .map(ToString::to_string)
        .chain([unknown.clone()])
        .collect();
    let answer = api.states(STACK, &ids).await;
    assert_eq!(answer.status, 200);
    let states = &answer.body["states"];
    assert_eq!(states[scheduled.to_string()], "scheduled");
    assert_eq!(states[reserved.to_string()], "reserved");
    assert_eq!(states[canceled.to_string()], "canceled");
    assert_eq!(states[running.to_string()], "running");
    assert!(states.get(&unknown).is_none(), "unknown uuids are left out");
    assert!(sim.cancel_job(running));
    let answer = api.states(STACK, &[running.to_string()]).await;
    assert_eq!(answer.body["states"][running.to_string()], "canceling");
    sim.agent_finished(running, -1);
    assert_eq!(sim.job(running).unwrap().state, "canceled");
    let too_many: Vec<String> = (0..1001).map(|_| unknown.clone()).collect();
    assert_eq!(api.states(STACK, &too_many).await.status, 400);
    let not_array = api
        .post(
            &format!("stacks/{STACK}/jobs/get-states"),
            json!({"job_uuids": "x"}),
        )
        .await;
    assert_eq!(not_array.status, 400);
}

#[tokio::test]
async fn injected_faults_answer_500_with_a_json_message() {
    let mut cfg = config();
    cfg.faults = FaultConfig {
        seed: 1,
        server_error: 1.0,
        ..FaultConfig::none()
    };
    let (sim, api) = start(cfg).await;
    let answer = api.register(STACK, QUEUE).await;
    assert_eq!(answer.status, 500);
    assert!(!answer.message().is_empty());
    assert_eq!(sim.stats().faults_injected, 1);
}

#[tokio::test]
async fn injected_timeouts_hold_the_request() {
    let mut cfg = StacksSimConfig::new(TOKEN);
    cfg.faults = FaultConfig {
        seed: 1,
        timeout: 1.0,
        timeout_delay: Duration::from_secs(30),
        ..FaultConfig::none()
    };
    let (sim, _api) = start(cfg).await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let result = client
        .post(format!("{}stacks/register", sim.base_url()))
        .header("Authorization", format!("Token {TOKEN}"))
        .body("{}")
        .send()
        .await;
    assert!(result.unwrap_err().is_timeout());
    sim.shutdown().await;
}

#[tokio::test]
async fn unknown_paths_answer_json_404() {
    let (_sim, api) = registered().await;
    let answer = api.get("stacks/jobify-a/nothing-here").await;
    assert_eq!(answer.status, 404);
    assert!(!answer.message().is_empty());
}
