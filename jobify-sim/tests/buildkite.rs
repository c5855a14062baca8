//! The Buildkite simulator over real HTTP, queried with the exact operation documents of the
//! `buildkite-api` crate.
#![allow(clippy::unwrap_used, reason = "a failed unwrap fails the test")]

use std::time::Duration;

use jobify_sim::buildkite::{BuildkiteSim, BuildkiteSimConfig, JobSpec};
use serde_json::{Value, json};

const SCHEDULED_JOBS: &str = include_str!("../../buildkite-api/graphql/ScheduledJobs.graphql");
const JOB_STATE: &str = include_str!("../../buildkite-api/graphql/JobState.graphql");
const CANCEL_JOB: &str = include_str!("../../buildkite-api/graphql/CancelJob.graphql");
const ANNOTATE_JOB: &str = include_str!("../../buildkite-api/graphql/AnnotateJob.graphql");

/// The smallest query: an organization's id by slug.
const ORGANIZATION: &str = "query Org($slug: ID!) { organization(slug: $slug) { id } }";

const TOKEN: &str = "api-token";

async fn sim() -> BuildkiteSim {
    BuildkiteSim::start(BuildkiteSimConfig::new("acme", TOKEN, "agent-token"))
        .await
        .unwrap()
}

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// POSTs a GraphQL request with `token`; returns the response.
async fn post_with(
    bk: &BuildkiteSim,
    token: &str,
    query: &str,
    variables: Value,
) -> reqwest::Response {
    post_body(bk, token, json!({"query": query, "variables": variables})).await
}

async fn post_body(bk: &BuildkiteSim, token: &str, body: Value) -> reqwest::Response {
    client()
        .post(bk.graphql_url())
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// POSTs a GraphQL request that must answer HTTP 200; returns the JSON body.
async fn gql(bk: &BuildkiteSim, query: &str, variables: Value) -> Value {
    let response = post_with(bk, TOKEN, query, variables).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// POSTs one operation of `ScheduledJobs.graphql` (`ScheduledJobs` or
/// `ScheduledDefaultPriorityJobs`), as `buildkite-api` does; returns the response.
async fn post_scheduled(bk: &BuildkiteSim, operation: &str, variables: Value) -> reqwest::Response {
    let body = json!({"query": SCHEDULED_JOBS, "operationName": operation, "variables": variables});
    let response = post_body(bk, TOKEN, body).await;
    assert_eq!(response.status(), 200);
    response
}

/// `post_scheduled`'s JSON body.
async fn scheduled(bk: &BuildkiteSim, operation: &str, variables: Value) -> Value {
    post_scheduled(bk, operation, variables)
        .await
        .json()
        .await
        .unwrap()
}

fn scheduled_vars(last: u32, before: Option<&str>) -> Value {
    json!({"organization": "acme", "agentQueryRules": ["queue=kubernetes"], "last": last, "before": before})
}

/// Schedules `n` jobs on `queue=kubernetes`, plus one elsewhere and one running (neither
/// listed); returns the scheduled ones' uuids in creation order.
fn schedule_kubernetes_jobs(bk: &BuildkiteSim, n: usize) -> Vec<String> {
    let uuids = (0..n)
        .map(|n| {
            bk.schedule_job(JobSpec::command(format!("echo {n}")).on_queue("kubernetes"))
                .uuid
                .to_string()
        })
        .collect();
    bk.schedule_job(JobSpec::command("elsewhere").on_queue("other"));
    let running = bk.schedule_job(JobSpec::command("running").on_queue("kubernetes"));
    bk.agent_api()
        .acquire(running.uuid, &["queue=kubernetes".to_owned()])
        .unwrap();
    uuids
}

#[tokio::test]
async fn organization_jobs_default_to_newest_first_like_buildkite() {
    let bk = sim().await;
    let uuids = schedule_kubernetes_jobs(&bk, 3);
    let query = "query { organization(slug: \"acme\") {
        jobs(first: 10, state: [SCHEDULED], agentQueryRules: [\"queue=kubernetes\"]) {
            edges { node { ... on JobTypeCommand { uuid } } }
        }
    } }";
    let body = gql(&bk, query, json!({})).await;
    let seen: Vec<&str> = body["data"]["organization"]["jobs"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|edge| edge["node"]["uuid"].as_str().unwrap())
        .collect();
    // RECENTLY_CREATED, Buildkite's default order.
    let newest_first: Vec<&str> = uuids.iter().rev().map(String::as_str).collect();
    assert_eq!(seen, newest_first, "{body}");
    bk.shutdown().await;
}

#[tokio::test]
async fn scheduled_jobs_page_backwards_from_the_oldest_with_start_cursors() {
    let bk = sim().await;
    let uuids = schedule_kubernetes_jobs(&bk, 5);

    let mut pages = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let body = scheduled(&bk, "ScheduledJobs", scheduled_vars(2, before.as_deref())).await;
        let jobs = &body["data"]["organization"]["jobs"];
        assert_eq!(jobs["count"], 5, "{body}");
        let mut page = Vec::new();
        for edge in jobs["edges"].as_array().unwrap() {
            assert_eq!(edge["node"]["__typename"], "JobTypeCommand");
            assert_eq!(edge["node"]["state"], "SCHEDULED");
            page.push(edge["node"]["uuid"].as_str().unwrap().to_owned());
        }
        let has_previous = jobs["pageInfo"]["hasPreviousPage"].as_bool().unwrap();
        pages.push((page, has_previous));
        if !has_previous {
            break;
        }
        before = Some(jobs["pageInfo"]["startCursor"].as_str().unwrap().to_owned());
    }
    // `last: 2` is the end of the newest-first list: the two oldest, newest first; each
    // `before: startCursor` the two above. hasPreviousPage is false only at the newest.
    let u = |n: usize| uuids[n].clone();
    assert_eq!(
        pages,
        [
            (vec![u(1), u(0)], true),
            (vec![u(3), u(2)], true),
            (vec![u(4)], false),
        ]
    );
    bk.shutdown().await;
}

#[tokio::test]
async fn scheduled_job_carries_buildkite_env_and_ids() {
    let bk = sim().await;
    let plugins =
        json!([{"github.com/buildkite-plugins/kubernetes-buildkite-plugin": {"podSpec": {}}}]);
    let spec = JobSpec {
        step_key: Some("test".to_owned()),
        priority: 7,
        ..JobSpec::command("make test")
            .on_queue("kubernetes")
            .on_pipeline("app")
            .with_plugins(plugins.clone())
    };
    let job = bk.schedule_job(spec);
    let body = scheduled(&bk, "ScheduledJobs", scheduled_vars(10, None)).await;
    let node = &body["data"]["organization"]["jobs"]["edges"][0]["node"];
    assert_eq!(node["id"], job.graphql_id);
    assert_eq!(node["uuid"], job.uuid.to_string());
    assert_eq!(node["label"], "make test");
    assert_eq!(node["command"], "make test");
    assert_eq!(node["agentQueryRules"], json!(["queue=kubernetes"]));
    assert_eq!(node["priority"], json!({"number": 7}));
    assert!(node["scheduledAt"].as_str().unwrap().ends_with('Z'));
    let url = format!(
        "https://buildkite.com/acme/app/builds/{}#{}",
        job.build_number, job.uuid
    );
    assert_eq!(node["url"], url);
    let env: Vec<&str> = node["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for expected in [
        "BUILDKITE_ORGANIZATION_SLUG=acme".to_owned(),
        "BUILDKITE_PIPELINE_SLUG=app".to_owned(),
        format!("BUILDKITE_BUILD_NUMBER={}", job.build_number),
        format!(
            "BUILDKITE_BUILD_URL=https://buildkite.com/acme/app/builds/{}",
            job.build_number
        ),
        "BUILDKITE_BRANCH=main".to_owned(),
        format!("BUILDKITE_JOB_ID={}", job.uuid),
        "BUILDKITE_LABEL=make test".to_owned(),
        "BUILDKITE_COMMAND=make test".to_owned(),
        "BUILDKITE_STEP_KEY=test".to_owned(),
        format!("BUILDKITE_PLUGINS={plugins}"),
    ] {
        assert!(
            env.contains(&expected.as_str()),
            "{expected} missing from {env:?}"
        );
    }
    bk.shutdown().await;
}

#[tokio::test]
async fn unknown_field_is_a_graphql_error_in_a_200() {
    let bk = sim().await;
    let query = "query Q($u: ID!) { job(uuid: $u) { ... on JobTypeCommand { uuid bogus } } }";
    let body = gql(&bk, query, json!({"u": "x"})).await;
    assert_eq!(
        body.get("data"),
        None,
        "no data for an invalid document: {body}"
    );
    let error = &body["errors"][0];
    assert_eq!(
        error["message"],
        "Field 'bogus' doesn't exist on type 'JobTypeCommand'"
    );
    assert_eq!(error["extensions"]["code"], "undefinedField");
    assert_eq!(
        error["path"],
        json!(["query Q", "job", "... on JobTypeCommand", "bogus"])
    );
    assert_eq!(error["locations"], json!([{"line": 1, "column": 65}]));
    assert_eq!(bk.stats().graphql_errors, 1);
    bk.shutdown().await;
}

#[tokio::test]
async fn wrong_or_missing_token_is_401() {
    let bk = sim().await;
    let response = post_with(&bk, "not-the-token", ORGANIZATION, json!({"slug": "acme"})).await;
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("API Access Token")
    );
    let response = client()
        .post(bk.graphql_url())
        .json(&json!({"query": ORGANIZATION}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(bk.stats().unauthorized, 2);
    bk.shutdown().await;
}

fn header(response: &reqwest::Response, name: &str) -> u64 {
    response.headers()[name].to_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn complexity_headers_follow_buildkites_rule() {
    let bk = sim().await;
    bk.schedule_job(JobSpec::command("one").on_queue("kubernetes"));
    let response = post_scheduled(&bk, "ScheduledJobs", scheduled_vars(2, None)).await;
    // Requested: organization 1 + jobs 1 + pageInfo 1 + edges 1 + defaultPriority 1
    // + node 2 + priority 2 = 9.
    assert_eq!(header(&response, "RateLimit-Complexity-Requested"), 9);
    // Actual, one job returned: organization 1 + jobs 1 + pageInfo 1 + edges 1
    // + defaultPriority 1 + node 1 + priority 1 = 7.
    assert_eq!(header(&response, "RateLimit-Complexity-Actual"), 7);
    assert_eq!(header(&response, "RateLimit-Limit"), 20_000);
    assert_eq!(header(&response, "RateLimit-Remaining"), 20_000 - 7);
    assert!((1..=300).contains(&header(&response, "RateLimit-Reset")));
    let stats = bk.stats();
    assert_eq!(
        (stats.requested_complexity, stats.actual_complexity),
        (9, 7)
    );
    bk.shutdown().await;
}

#[tokio::test]
async fn query_stats_appear_in_the_body_on_request() {
    let bk = sim().await;
    let response = client()
        .post(bk.graphql_url())
        .bearer_auth(TOKEN)
        .header("Buildkite-Include-Query-Stats", "true")
        .json(&json!({"query": ORGANIZATION, "variables": {"slug": "none"}}))
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["data"], json!({"organization": null}));
    // organization 1 requested; nothing returned.
    assert_eq!(body["stats"]["requestedComplexity"], 1);
    assert_eq!(body["stats"]["actualComplexity"], 0);
    bk.shutdown().await;
}

#[tokio::test]
async fn a_query_over_50000_requested_points_is_refused() {
    let bk = sim().await;
    // 5 + 2 × 30,000 = 60,005 requested.
    let body = scheduled(&bk, "ScheduledJobs", scheduled_vars(30_000, None)).await;
    assert_eq!(
        body["errors"][0]["message"],
        "Query has complexity of 60005, which exceeds max complexity of 50000"
    );
    assert_eq!(body.get("data"), None);
    bk.shutdown().await;
}

/// The uuids of a `ScheduledJobs*` answer's jobs, newest first.
fn listed(body: &Value) -> Vec<String> {
    body["data"]["organization"]["jobs"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|edge| edge["node"]["uuid"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn default_priority_jobs_cost_one_point_a_job_and_all_jobs_two() {
    let bk = sim().await;
    let mut default_priority = Vec::new();
    let mut urgent = Vec::new();
    for n in 0..5 {
        let priority = if n % 2 == 0 { 0 } else { 5 };
        let spec = JobSpec {
            priority,
            ..JobSpec::command(format!("echo {n}")).on_queue("kubernetes")
        };
        let uuid = bk.schedule_job(spec).uuid.to_string();
        if priority == 0 {
            &mut default_priority
        } else {
            &mut urgent
        }
        .push(uuid);
    }
    let newest_first = |uuids: &[String]| uuids.iter().rev().cloned().collect::<Vec<_>>();

    let response = post_scheduled(
        &bk,
        "ScheduledDefaultPriorityJobs",
        scheduled_vars(10, None),
    )
    .await;
    // Requested: 5 + 10; actual, 3 jobs listed: 5 + 3.
    assert_eq!(header(&response, "RateLimit-Complexity-Requested"), 15);
    assert_eq!(header(&response, "RateLimit-Complexity-Actual"), 5 + 3);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body.get("errors"), None, "{body}");
    assert_eq!(listed(&body), newest_first(&default_priority));
    let organization = &body["data"]["organization"];
    assert_eq!(organization["jobs"]["count"], 3);
    assert_eq!(organization["all"]["count"], 5);
    let node = &organization["jobs"]["edges"][0]["node"];
    assert_eq!(node.get("priority"), None, "not selected: {node}");

    let response = post_scheduled(&bk, "ScheduledJobs", scheduled_vars(10, None)).await;
    // Requested: 5 + 2 × 10; actual, 5 jobs listed: 5 + 2 × 5.
    assert_eq!(header(&response, "RateLimit-Complexity-Requested"), 25);
    assert_eq!(header(&response, "RateLimit-Complexity-Actual"), 5 + 2 * 5);
    let body: Value = response.json().await.unwrap();
    let all: Vec<String> = (0..5)
        .map(|n| {
            if n % 2 == 0 {
                &default_priority[n / 2]
            } else {
                &urgent[n / 2]
            }
            .clone()
        })
        .collect();
    assert_eq!(listed(&body), newest_first(&all));
    let organization = &body["data"]["organization"];
    assert_eq!(organization["jobs"]["count"], 5);
    assert_eq!(organization["defaultPriority"]["count"], 3);
    let stats = bk.stats();
    assert_eq!(stats.actual_complexity, 8 + 15);
    bk.shutdown().await;
}

#[tokio::test]
async fn a_connection_given_first_and_last_requests_the_larger() {
    let bk = sim().await;
    let query = |first: u32, last: u32| {
        format!(
            "query {{ organization(slug: \"acme\") {{
                jobs(first: {first}, last: {last}) {{ edges {{ node {{ __typename }} }} }}
            }} }}"
        )
    };
    for (first, last) in [(3, 40), (40, 3)] {
        let response = post_with(&bk, TOKEN, &query(first, last), json!({})).await;
        // organization + jobs + edges + 40 × node.
        assert_eq!(header(&response, "RateLimit-Complexity-Requested"), 43);
    }
    bk.shutdown().await;
}

async fn job_state(bk: &BuildkiteSim, uuid: &str) -> Value {
    gql(bk, JOB_STATE, json!({"uuid": uuid})).await["data"]["job"].clone()
}

#[tokio::test]
async fn acquire_and_finish_show_in_job_state() {
    let bk = sim().await;
    let job = bk.schedule_job(
        JobSpec::command("a")
            .on_queue("kubernetes")
            .running(Duration::from_secs(3), 2),
    );
    let uuid = job.uuid.to_string();
    assert_eq!(job_state(&bk, &uuid).await["state"], "SCHEDULED");
    let agent = bk.agent_api();
    let script = agent
        .acquire(
            job.uuid,
            &["queue=kubernetes".to_owned(), "os=linux".to_owned()],
        )
        .unwrap();
    assert_eq!(
        (script.run_for, script.exit_status),
        (Duration::from_secs(3), 2)
    );
    assert_eq!(job_state(&bk, &uuid).await["state"], "RUNNING");
    assert!(
        agent
            .acquire(job.uuid, &["queue=kubernetes".to_owned()])
            .is_err(),
        "acquired twice"
    );
    agent.finish(job.uuid, 2);
    let snapshot = bk.job(job.uuid).unwrap();
    assert_eq!(
        (
            snapshot.state.as_str(),
            snapshot.exit_status,
            snapshot.acquired_count
        ),
        ("FINISHED", Some(2), 2)
    );
    assert_eq!(
        job_state(&bk, &uuid).await,
        json!({"__typename": "JobTypeCommand", "id": job.graphql_id, "uuid": uuid, "state": "FINISHED"})
    );
    // An unknown uuid is null, not an error.
    assert_eq!(
        job_state(&bk, "00000000-0000-0000-0000-000000000000").await,
        Value::Null
    );
    bk.shutdown().await;
}

#[tokio::test]
async fn batched_job_states_answer_each_alias() {
    let bk = sim().await;
    let a = bk.schedule_job(JobSpec::command("a"));
    let b = bk.schedule_job(JobSpec::command("b"));
    bk.cancel_job(b.uuid);
    let query = "query JobStates($a: ID!, $b: ID!) { j0: job(uuid: $a) { ... on JobTypeCommand { state } } j1: job(uuid: $b) { ... on JobTypeCommand { state } } }";
    let body = gql(&bk, query, json!({"a": a.uuid, "b": b.uuid})).await;
    assert_eq!(
        body["data"],
        json!({"j0": {"state": "SCHEDULED"}, "j1": {"state": "CANCELED"}})
    );
    bk.shutdown().await;
}

#[tokio::test]
async fn cancel_mutation_cancels_and_refuses_finished_jobs() {
    let bk = sim().await;
    let scheduled = bk.schedule_job(JobSpec::command("a"));
    let body = gql(&bk, CANCEL_JOB, json!({"id": scheduled.graphql_id})).await;
    let job = &body["data"]["jobTypeCommandCancel"]["jobTypeCommand"];
    assert_eq!(job["state"], "CANCELED", "{body}");
    assert!(bk.job(scheduled.uuid).unwrap().canceled_by_api);

    let running = bk.schedule_job(JobSpec::command("b"));
    bk.agent_api()
        .acquire(running.uuid, &["queue=default".to_owned()])
        .unwrap();
    let body = gql(&bk, CANCEL_JOB, json!({"id": running.graphql_id})).await;
    assert_eq!(
        body["data"]["jobTypeCommandCancel"]["jobTypeCommand"]["state"],
        "CANCELING"
    );
    bk.agent_api().finish(running.uuid, -1);
    assert_eq!(bk.job(running.uuid).unwrap().state, "CANCELED");

    let body = gql(&bk, CANCEL_JOB, json!({"id": running.graphql_id})).await;
    assert_eq!(body["data"], json!({"jobTypeCommandCancel": null}));
    assert_eq!(body["errors"][0]["path"], json!(["jobTypeCommandCancel"]));
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("already CANCELED"),
        "{body}"
    );
    bk.shutdown().await;
}

#[tokio::test]
async fn annotations_land_on_jobs_one_per_context() {
    let bk = sim().await;
    let job = bk.schedule_job(JobSpec::command("a"));
    let vars = |append: bool, body: &str| json!({"job": job.graphql_id, "body": body, "style": "ERROR", "context": "jobify", "append": append});
    let first = gql(&bk, ANNOTATE_JOB, vars(false, "pod failed")).await;
    let uuid = first["data"]["jobAnnotate"]["annotation"]["uuid"].clone();
    assert!(uuid.is_string(), "{first}");
    let again = gql(&bk, ANNOTATE_JOB, vars(true, ": image missing")).await;
    assert_eq!(
        again["data"]["jobAnnotate"]["annotation"]["uuid"], uuid,
        "same context, same annotation"
    );
    assert_eq!(
        bk.job(job.uuid).unwrap().annotations,
        ["pod failed: image missing"]
    );

    bk.shutdown().await;
}
