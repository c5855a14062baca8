//! The per-pipeline watch against a wiremock Buildkite: `Pipeline`, `PipelineBuilds` and
//! `BuildJobs`, including the seed's recorded response.

mod support;

use buildkite_api::{BuildState, JobState, PipelineBuildsRequest};
use pretty_assertions::assert_eq;
use serde_json::{Value, json};
use support::{body, fake, fixture, operation};
use wiremock::{Mock, ResponseTemplate};

const SEED_PIPELINE: &str = "UGlwZWxpbmUtLS0wMTg0NjI3NC0wOWJjLTRjN2EtYmI5MC1jYjMxN2U1NjlmZTc=";

#[tokio::test]
async fn seed_recorded_response_decodes_into_builds_and_jobs() {
    let fake = fake().await;
    Mock::given(operation(
        "PipelineBuilds",
        "pipeline",
        json!(SEED_PIPELINE),
    ))
    .respond_with(ResponseTemplate::new(200).set_body_raw(
        fixture("graphql-get-builds-response.json"),
        "application/json",
    ))
    .expect(1)
    .mount(&fake.server)
    .await;

    let fetched = fake
        .client
        .pipeline_builds(&PipelineBuildsRequest::active(SEED_PIPELINE))
        .await
        .expect("the seed's response decodes");

    let result = fetched.value;
    assert_eq!(result.total, 1);
    assert!(!result.truncated);
    assert!(result.skipped.is_empty());
    assert_eq!(result.builds.len(), 1);
    let build = &result.builds[0];
    assert_eq!(build.uuid, "018476d3-6f90-441a-8b80-7c525e1c2eb8");
    assert_eq!(build.message.as_deref(), Some("Update README.md"));
    assert_eq!(build.state, BuildState::Running);
    assert_eq!(build.commit, "7b71ee28a15ef298fb511fb025bfbbdb5b671a27");
    assert!(build.meta_data.is_empty());
    assert!(!build.meta_data_truncated);
    assert_eq!(build.jobs_total, 5);
    // hasNextPage is true but the recorded query asked for no cursor: reported, not looped on.
    assert!(build.jobs_truncated);
    assert_eq!(build.jobs.len(), 1);
    let job = &build.jobs[0];
    assert_eq!(job.uuid, "018476d4-3ba2-4e47-adec-3cdf277190da");
    assert_eq!(job.label.as_deref(), Some(":golang:"));
    assert_eq!(job.state, JobState::Scheduled);
    assert_eq!(job.agent_query_rules, vec!["queue=3462986656".to_owned()]);
    assert_eq!(job.exit_status, None);
    assert_eq!(job.command, None);
    assert_eq!(job.env.len(), 40);
    assert_eq!(
        job.env_var("BUILDKITE_PIPELINE_SLUG"),
        Some("buildkite-gh-actions")
    );
    assert_eq!(job.env_var("BUILDKITE_BUILD_NUMBER"), Some("33"));
    assert_eq!(job.env_var("BUILDKITE_COMMAND"), Some("go test -v ."));
    assert_eq!(fetched.requests, 1);
}

fn build_node(uuid: &str, jobs: &[&str], jobs_next: Option<&str>) -> Value {
    json!({
        "uuid": uuid,
        "message": format!("build {uuid}"),
        "state": "RUNNING",
        "commit": "abc123",
        "metaData": {
            "count": 2,
            "edges": [{ "node": { "key": "release", "value": "yes" } }]
        },
        "jobs": jobs_connection(jobs, 9, jobs_next),
    })
}

fn jobs_connection(uuids: &[&str], total: usize, next: Option<&str>) -> Value {
    let edges: Vec<Value> = uuids
        .iter()
        .map(|uuid| {
            json!({ "node": {
                "__typename": "JobTypeCommand",
                "uuid": uuid,
                "label": null,
                "state": "SCHEDULED",
                "agentQueryRules": ["queue=kubernetes"],
                "command": "make",
                "env": null,
                "exitStatus": null,
                "scheduledAt": null,
                "runnableAt": null
            }})
        })
        .collect();
    json!({
        "count": total,
        "pageInfo": { "hasNextPage": next.is_some(), "endCursor": next },
        "edges": edges
    })
}

fn builds_page(builds: Vec<Value>, next: Option<&str>) -> Value {
    let edges: Vec<Value> = builds
        .into_iter()
        .map(|node| json!({ "node": node }))
        .collect();
    json!({ "data": { "node": {
        "__typename": "Pipeline",
        "builds": {
            "count": 3,
            "pageInfo": { "hasNextPage": next.is_some(), "endCursor": next },
            "edges": edges
        }
    }}})
}

async fn mount_three_by_three(fake: &support::Fake) {
    for (after, build, next) in [
        (
            Value::Null,
            build_node("b1", &["j1", "j2", "j3"], Some("j-c1")),
            Some("b-c1"),
        ),
        (json!("b-c1"), build_node("b2", &["k1"], None), Some("b-c2")),
        (json!("b-c2"), build_node("b3", &["l1"], None), None),
    ] {
        Mock::given(operation("PipelineBuilds", "buildsAfter", after))
            .respond_with(ResponseTemplate::new(200).set_body_json(builds_page(vec![build], next)))
            .mount(&fake.server)
            .await;
    }
    for (after, jobs, next) in [
        ("j-c1", ["j4", "j5", "j6"], Some("j-c2")),
        ("j-c2", ["j7", "j8", "j9"], None),
    ] {
        Mock::given(operation("BuildJobs", "after", json!(after)))
            .respond_with(ResponseTemplate::new(200).set_body_json(
                json!({ "data": { "build": { "jobs": jobs_connection(&jobs, 9, next) } } }),
            ))
            .mount(&fake.server)
            .await;
    }
}

fn watch(max_pages: u16) -> PipelineBuildsRequest {
    PipelineBuildsRequest {
        builds_page_size: 1,
        max_build_pages: max_pages,
        jobs_page_size: 3,
        max_job_pages: max_pages,
        ..PipelineBuildsRequest::active("pipeline-id")
    }
}

#[tokio::test]
async fn pipeline_builds_follows_cursors_at_both_levels() {
    let fake = fake().await;
    mount_three_by_three(&fake).await;

    let fetched = fake
        .client
        .pipeline_builds(&watch(3))
        .await
        .expect("all pages decode");

    let builds = &fetched.value.builds;
    let uuids: Vec<&str> = builds.iter().map(|b| b.uuid.as_str()).collect();
    assert_eq!(uuids, ["b1", "b2", "b3"]);
    let first_jobs: Vec<&str> = builds[0].jobs.iter().map(|j| j.uuid.as_str()).collect();
    assert_eq!(
        first_jobs,
        ["j1", "j2", "j3", "j4", "j5", "j6", "j7", "j8", "j9"]
    );
    assert!(!builds[0].jobs_truncated);
    assert_eq!(
        builds[0].meta_data,
        vec![("release".to_owned(), "yes".to_owned())]
    );
    assert!(
        builds[0].meta_data_truncated,
        "count says 2, one was fetched"
    );
    assert!(!fetched.value.truncated);
    assert_eq!(fetched.requests, 5);

    let sent = fake
        .server
        .received_requests()
        .await
        .expect("recording is on");
    let first = body(&sent[0]);
    assert_eq!(
        first["variables"]["states"],
        json!(["RUNNING", "FAILING", "SCHEDULED"])
    );
    assert_eq!(first["variables"]["jobsFirst"], json!(3));
    let build_jobs = sent
        .iter()
        .map(body)
        .find(|b| b["operationName"] == "BuildJobs")
        .expect("sent");
    assert_eq!(build_jobs["variables"]["build"], json!("b1"));
}

#[tokio::test]
async fn pipeline_builds_depth_limits_bound_one_poll() {
    let fake = fake().await;
    mount_three_by_three(&fake).await;

    let fetched = fake
        .client
        .pipeline_builds(&watch(2))
        .await
        .expect("pages decode");

    let builds = &fetched.value.builds;
    assert_eq!(builds.len(), 2);
    assert!(fetched.value.truncated);
    assert_eq!(builds[0].jobs.len(), 6);
    assert!(builds[0].jobs_truncated);
    // Two build pages plus one further job page of the first build.
    assert_eq!(fetched.requests, 3);
}

#[tokio::test]
async fn pipeline_lookup_uses_the_organization_slash_slug() {
    let fake = fake().await;
    Mock::given(operation("Pipeline", "slug", json!("acme/app")))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({ "data": { "pipeline": {
                "id": "UGlwZWxpbmUtLS0x", "uuid": "p-1", "slug": "app", "name": "App",
                "url": "https://buildkite.com/acme/app"
            }}})),
        )
        .mount(&fake.server)
        .await;

    let pipeline = fake
        .client
        .pipeline("acme", "app")
        .await
        .expect("found")
        .value;

    assert_eq!(pipeline.id, "UGlwZWxpbmUtLS0x");
    assert_eq!(pipeline.uuid, "p-1");
    assert_eq!(pipeline.name, "App");
}

#[tokio::test]
async fn a_build_without_jobs_or_gone_mid_poll_is_skipped_not_fatal_to_the_others() {
    let fake = fake().await;
    let mut no_jobs = build_node("b-null", &["x"], None);
    no_jobs["jobs"] = Value::Null;
    let vanishing = build_node("b-gone", &["g1"], Some("g-c1"));
    let fine = build_node("b-ok", &["o1"], None);
    Mock::given(operation("PipelineBuilds", "buildsAfter", Value::Null))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(builds_page(vec![no_jobs, vanishing, fine], None)),
        )
        .expect(1)
        .mount(&fake.server)
        .await;
    // The build was deleted between the two requests.
    Mock::given(operation("BuildJobs", "build", json!("b-gone")))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({ "data": { "build": null } })),
        )
        .expect(1)
        .mount(&fake.server)
        .await;

    let fetched = fake
        .client
        .pipeline_builds(&watch(3))
        .await
        .expect("one bad build does not fail the poll");

    let result = fetched.value;
    let uuids: Vec<&str> = result.builds.iter().map(|b| b.uuid.as_str()).collect();
    assert_eq!(uuids, ["b-gone", "b-ok"]);
    let gone = &result.builds[0];
    assert_eq!(gone.jobs.len(), 1, "the first page's jobs are kept");
    assert!(gone.jobs_truncated, "its further jobs could not be read");
    let skipped: Vec<(Option<&str>, &str)> = result
        .skipped
        .iter()
        .map(|s| (s.uuid.as_deref(), s.reason.as_str()))
        .collect();
    assert_eq!(skipped.len(), 2, "{skipped:?}");
    assert_eq!(skipped[0].0, Some("b-null"));
    assert!(skipped[0].1.contains("jobs"), "{skipped:?}");
    assert_eq!(skipped[1].0, Some("b-gone"));
    assert!(skipped[1].1.contains("not found"), "{skipped:?}");
}
