//! The job operations against a wiremock Buildkite: `ScheduledJobs`, `JobStates`,
//! `CancelJob` and the annotations; what is sent, and how responses map to domain values.

mod support;

use std::time::Duration;

use buildkite_api::{
    Annotation, AnnotationStyle, JobLookup, JobState, ScheduledJobs, ScheduledJobsRequest,
};
use pretty_assertions::assert_eq;
use serde_json::{Value, json};
use support::{
    Fake, GRAPHQL_TOKEN, body, fake, jobs_page, operation, operation_named, scheduled_job,
};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, ResponseTemplate};

fn request(max_pages: u16) -> ScheduledJobsRequest {
    ScheduledJobsRequest {
        page_size: 2,
        max_pages,
        ..ScheduledJobsRequest::for_queue("acme", "kubernetes")
    }
}

/// A `ScheduledJobs` page as `(before, uuids, newer)`: the cursor it answers (`None` for the
/// first page, the oldest jobs), the uuids of its jobs newest first as Buildkite lists them,
/// and the `startCursor` of the page of newer jobs.
type Page<'a> = (Option<&'a str>, &'a [&'a str], Option<&'a str>);

/// Serves `pages` of a listing of `total` jobs; each page must be asked for exactly once.
async fn serve_pages(fake: &Fake, total: usize, pages: &[Page<'_>]) {
    for (before, uuids, newer) in pages {
        let jobs = uuids.iter().map(|uuid| scheduled_job(uuid)).collect();
        Mock::given(operation("ScheduledJobs", "before", json!(before)))
            .respond_with(ResponseTemplate::new(200).set_body_json(jobs_page(jobs, total, *newer)))
            .expect(1)
            .mount(&fake.server)
            .await;
    }
}

fn uuids(jobs: &ScheduledJobs) -> Vec<&str> {
    jobs.jobs.iter().map(|job| job.uuid.as_str()).collect()
}

#[tokio::test]
async fn scheduled_jobs_maps_every_field_of_a_command_job() {
    let fake = fake().await;
    Mock::given(method("POST"))
        .and(path("/v1"))
        .and(header(
            "authorization",
            format!("Bearer {GRAPHQL_TOKEN}").as_str(),
        ))
        .and(header("user-agent", "jobify/9.9.9"))
        .and(operation(
            "ScheduledJobs",
            "agentQueryRules",
            json!(["queue=kubernetes"]),
        ))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(jobs_page(
                    vec![scheduled_job("job-1").on_pipeline("web").with_priority(7)],
                    1,
                    None,
                ))
                .insert_header("RateLimit-Remaining", "19990")
                .insert_header("RateLimit-Limit", "20000")
                .insert_header("RateLimit-Reset", "240")
                .insert_header("RateLimit-Complexity-Requested", "8")
                .insert_header("RateLimit-Complexity-Actual", "6"),
        )
        .expect(1)
        .mount(&fake.server)
        .await;

    let fetched = fake
        .client
        .scheduled_jobs(&request(3))
        .await
        .expect("page decodes");

    let page = fetched.value;
    assert_eq!(page.total, 1);
    assert!(!page.truncated);
    assert!(page.skipped.is_empty());
    let job = &page.jobs[0];
    assert_eq!(job.id, "JobTypeCommand---job-1");
    assert_eq!(job.uuid, "job-1");
    assert_eq!(job.label.as_deref(), Some(":rust: test"));
    assert_eq!(job.state, JobState::Scheduled);
    assert_eq!(job.agent_query_rules, vec!["queue=kubernetes".to_owned()]);
    assert_eq!(job.command.as_deref(), Some("cargo test"));
    assert_eq!(job.priority, 7);
    assert_eq!(
        job.scheduled_at,
        Some("2026-11-27T10:00:00Z".parse().expect("timestamp"))
    );
    assert_eq!(
        job.runnable_at,
        Some("2026-11-27T09:59:58.123Z".parse().expect("timestamp"))
    );
    assert_eq!(job.url, "https://buildkite.com/acme/app/builds/42#job-1");
    assert_eq!(job.pipeline_slug(), Some("web"));
    assert_eq!(job.organization_slug(), Some("acme"));
    assert_eq!(job.build_number(), Some(42));
    assert_eq!(job.branch(), Some("main"));
    assert_eq!(job.commit(), Some("abc123"));
    assert_eq!(job.step_key(), Some("test"));
    assert_eq!(job.plugins_json(), Some("[]"));

    assert_eq!(fetched.requests, 1);
    assert_eq!(fetched.complexity_actual, 6);
    let limit = fetched.rate_limit.expect("rate limit headers were sent");
    assert_eq!(limit.remaining, Some(19_990));
    assert_eq!(limit.reset, Some(Duration::from_secs(240)));
    assert_eq!(limit.complexity_requested, Some(8));
    assert_eq!(fake.client.rate_limit(), Some(limit));
}

#[tokio::test]
async fn scheduled_jobs_sends_the_filters_and_page_size_as_variables() {
    let fake = fake().await;
    Mock::given(operation_named("ScheduledJobs"))
        .respond_with(ResponseTemplate::new(200).set_body_json(jobs_page(vec![], 0, None)))
        .mount(&fake.server)
        .await;
    let request = ScheduledJobsRequest {
        cluster: Some("Q2x1c3Rlci0tLTE=".to_owned()),
        page_size: 100,
        ..ScheduledJobsRequest::for_queue("acme", "kubernetes")
    };

    let fetched = fake
        .client
        .scheduled_jobs(&request)
        .await
        .expect("empty page decodes");

    assert!(fetched.value.jobs.is_empty());
    let sent = fake
        .server
        .received_requests()
        .await
        .expect("recording is on");
    let variables = &body(&sent[0])["variables"];
    assert_eq!(
        variables,
        &json!({
            "organization": "acme",
            "agentQueryRules": ["queue=kubernetes"],
            "cluster": "Q2x1c3Rlci0tLTE=",
            "last": 100,
            "before": null
        })
    );
}

#[tokio::test]
async fn scheduled_jobs_pages_backwards_from_the_oldest_and_returns_them_oldest_first() {
    let fake = fake().await;
    // Buildkite's list, newest first, is f e d c b a; `last: 2` is its end.
    serve_pages(
        &fake,
        6,
        &[
            (None, &["b", "a"], Some("c1")),
            (Some("c1"), &["d", "c"], Some("c2")),
            (Some("c2"), &["f", "e"], None),
        ],
    )
    .await;

    let fetched = fake
        .client
        .scheduled_jobs(&request(5))
        .await
        .expect("pages decode");

    assert_eq!(uuids(&fetched.value), ["a", "b", "c", "d", "e", "f"]);
    assert!(!fetched.value.truncated);
    assert_eq!(fetched.requests, 3);
}

#[tokio::test]
async fn scheduled_jobs_stops_at_max_pages_leaving_the_newest_and_reports_truncation() {
    let fake = fake().await;
    serve_pages(
        &fake,
        6,
        &[
            (None, &["b", "a"], Some("c1")),
            (Some("c1"), &["d", "c"], Some("c2")),
        ],
    )
    .await;

    let fetched = fake
        .client
        .scheduled_jobs(&request(2))
        .await
        .expect("pages decode");

    assert_eq!(uuids(&fetched.value), ["a", "b", "c", "d"]);
    assert!(fetched.value.truncated);
    assert_eq!(fetched.value.total, 6);
    assert_eq!(fetched.requests, 2);
}

#[tokio::test]
async fn scheduled_jobs_reports_truncation_when_a_newer_page_comes_without_a_cursor() {
    let fake = fake().await;
    let mut page = jobs_page(vec![scheduled_job("a")], 3, None);
    page["data"]["organization"]["jobs"]["pageInfo"]["hasPreviousPage"] = json!(true);
    Mock::given(operation_named("ScheduledJobs"))
        .respond_with(ResponseTemplate::new(200).set_body_json(page))
        .expect(1)
        .mount(&fake.server)
        .await;

    let fetched = fake
        .client
        .scheduled_jobs(&request(5))
        .await
        .expect("page decodes");

    assert_eq!(fetched.value.jobs.len(), 1);
    assert!(
        fetched.value.truncated,
        "Buildkite said more jobs exist; the result must not claim to be complete"
    );
    assert_eq!(fetched.requests, 1);
}

#[tokio::test]
async fn unknown_job_states_are_kept_and_unmappable_jobs_are_reported_not_dropped() {
    let fake = fake().await;
    let page = jobs_page(
        vec![
            scheduled_job("new-state").in_state("HOVERING"),
            scheduled_job("bad-time").set("scheduledAt", json!("yesterday-ish")),
            scheduled_job("fine"),
        ],
        3,
        None,
    );
    Mock::given(operation_named("ScheduledJobs"))
        .respond_with(ResponseTemplate::new(200).set_body_json(page))
        .mount(&fake.server)
        .await;

    let page = fake
        .client
        .scheduled_jobs(&request(1))
        .await
        .expect("page decodes")
        .value;

    let uuids: Vec<&str> = page.jobs.iter().map(|job| job.uuid.as_str()).collect();
    // Oldest first: the reverse of the page's newest-first order.
    assert_eq!(uuids, ["fine", "new-state"]);
    assert_eq!(page.jobs[1].state, JobState::Unknown("HOVERING".to_owned()));
    assert_eq!(page.skipped.len(), 1);
    assert_eq!(page.skipped[0].uuid.as_deref(), Some("bad-time"));
    assert!(
        page.skipped[0].reason.contains("scheduledAt"),
        "{}",
        page.skipped[0].reason
    );
}

#[tokio::test]
async fn missing_organization_is_not_found() {
    let fake = fake().await;
    Mock::given(operation_named("ScheduledJobs"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({ "data": { "organization": null } })),
        )
        .mount(&fake.server)
        .await;

    let error = fake
        .client
        .scheduled_jobs(&request(1))
        .await
        .expect_err("no organization");

    assert!(
        matches!(&error, buildkite_api::Error::NotFound { what } if what.contains("acme")),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "organization \"acme\" was not found, or the token cannot see it: check the slug, \
         and that the token's user belongs to the organization and the token was granted \
         access to it"
    );
}

#[tokio::test]
async fn job_states_batches_lookups_under_aliases_in_one_request() {
    let fake = fake().await;
    Mock::given(operation_named("JobStates"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "data": {
            "j0": { "__typename": "JobTypeCommand", "id": "J0", "uuid": "u0", "state": "CANCELED" },
            "j1": null,
            "j2": { "__typename": "JobTypeWait" },
            "j3": { "__typename": "JobTypeCommand", "id": "J3", "uuid": "u3", "state": "BRAND_NEW" }
        }})))
        .expect(1)
        .mount(&fake.server)
        .await;
    let uuids: Vec<String> = ["u0", "u1", "u2", "u3"].map(String::from).to_vec();

    let fetched = fake
        .client
        .job_states(&uuids)
        .await
        .expect("lookups decode");

    assert_eq!(
        fetched.value,
        vec![
            JobLookup::Command {
                id: "J0".into(),
                uuid: "u0".into(),
                state: JobState::Canceled
            },
            JobLookup::NotFound { uuid: "u1".into() },
            JobLookup::NotCommand {
                uuid: "u2".into(),
                typename: "JobTypeWait".into()
            },
            JobLookup::Command {
                id: "J3".into(),
                uuid: "u3".into(),
                state: JobState::Unknown("BRAND_NEW".into())
            },
        ]
    );
    let sent = fake
        .server
        .received_requests()
        .await
        .expect("recording is on");
    let request = body(&sent[0]);
    assert_eq!(
        request["variables"],
        json!({ "u0": "u0", "u1": "u1", "u2": "u2", "u3": "u3" })
    );
    assert_eq!(
        request["query"],
        json!(buildkite_api::job_states_document(4))
    );
}

/// Answers a `JobStates` batch the way Buildkite does: one `jN` alias per `$uN` variable,
/// each a command job in state `CANCELED` whose uuid is the variable's value.
fn answer_every_alias(request: &wiremock::Request) -> ResponseTemplate {
    let variables = body(request)["variables"].clone();
    let data: serde_json::Map<String, Value> = variables
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, uuid)| {
            let alias = name.replacen('u', "j", 1);
            let job = json!({ "__typename": "JobTypeCommand", "id": format!("J-{}", uuid.as_str().unwrap_or_default()), "uuid": uuid, "state": "CANCELED" });
            (alias, job)
        })
        .collect();
    ResponseTemplate::new(200).set_body_json(json!({ "data": data }))
}

#[tokio::test]
async fn job_states_splits_large_sets_into_batches_of_100() {
    let fake = fake().await;
    Mock::given(operation_named("JobStates"))
        .respond_with(answer_every_alias)
        .expect(2)
        .mount(&fake.server)
        .await;
    let uuids: Vec<String> = (0..150).map(|i| format!("u{i}")).collect();

    let fetched = fake
        .client
        .job_states(&uuids)
        .await
        .expect("lookups decode");

    assert_eq!(fetched.requests, 2);
    let sent = fake
        .server
        .received_requests()
        .await
        .expect("recording is on");
    let batch_sizes: Vec<usize> = sent
        .iter()
        .map(|request| {
            body(request)["variables"]
                .as_object()
                .map_or(0, |v| v.len())
        })
        .collect();
    assert_eq!(batch_sizes, [100, 50]);
    let looked_up: Vec<&str> = fetched
        .value
        .iter()
        .map(|lookup| match lookup {
            JobLookup::Command { uuid, state, .. } => {
                assert_eq!(*state, JobState::Canceled);
                uuid.as_str()
            }
            other => panic!("expected a command job, got {other:?}"),
        })
        .collect();
    let expected: Vec<&str> = uuids.iter().map(String::as_str).collect();
    assert_eq!(
        looked_up, expected,
        "one lookup per uuid, in the order given"
    );
}

#[tokio::test]
async fn job_states_response_missing_an_alias_is_an_error_not_a_missing_job() {
    let fake = fake().await;
    Mock::given(operation_named("JobStates"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "data": {
            "j0": { "__typename": "JobTypeCommand", "id": "J0", "uuid": "u0", "state": "RUNNING" }
        }})))
        .expect(1)
        .mount(&fake.server)
        .await;
    let uuids: Vec<String> = ["u0", "u1"].map(String::from).to_vec();

    let error = fake
        .client
        .job_states(&uuids)
        .await
        .expect_err("j1 is absent");

    assert!(
        matches!(&error, buildkite_api::Error::MissingField { operation: "JobStates", field } if field == "j1"),
        "{error:?}"
    );
    assert!(error.to_string().contains("`j1`"), "{error}");
}

#[tokio::test]
async fn cancel_job_returns_the_new_state() {
    let fake = fake().await;
    Mock::given(operation("CancelJob", "id", json!("JobTypeCommand---1")))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({ "data": { "jobTypeCommandCancel": {
                "jobTypeCommand": { "id": "JobTypeCommand---1", "uuid": "1", "state": "CANCELING" }
            }}}),
        ))
        .expect(1)
        .mount(&fake.server)
        .await;

    let state = fake
        .client
        .cancel_job("JobTypeCommand---1")
        .await
        .expect("cancelled")
        .value;

    assert_eq!(state, Some(JobState::Canceling));
}

#[tokio::test]
async fn annotations_send_body_style_context_and_append() {
    let fake = fake().await;
    for name in ["AnnotateJob", "AnnotateBuild"] {
        Mock::given(operation_named(name))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "data": {
                "jobAnnotate": { "annotation": { "uuid": "ann-1" } },
                "buildAnnotate": { "annotation": { "uuid": "ann-2" } }
            }})))
            .expect(1)
            .mount(&fake.server)
            .await;
    }
    let note = Annotation {
        append: true,
        ..Annotation::error(
            "jobify",
            "Rejected: the pod spec asks for a privileged container.",
        )
    };

    let job_annotation = fake
        .client
        .annotate_job("J1", &note)
        .await
        .expect("annotated")
        .value;
    let build_annotation = fake
        .client
        .annotate_build(
            "B1",
            &Annotation {
                style: AnnotationStyle::Warning,
                ..note.clone()
            },
        )
        .await
        .expect("annotated")
        .value;

    assert_eq!(job_annotation.as_deref(), Some("ann-1"));
    assert_eq!(build_annotation.as_deref(), Some("ann-2"));
    let sent = fake
        .server
        .received_requests()
        .await
        .expect("recording is on");
    assert_eq!(
        body(&sent[0])["variables"],
        json!({
            "job": "J1",
            "body": "Rejected: the pod spec asks for a privileged container.",
            "style": "ERROR",
            "context": "jobify",
            "append": true
        })
    );
    assert_eq!(body(&sent[1])["variables"]["build"], json!("B1"));
    assert_eq!(body(&sent[1])["variables"]["style"], json!("WARNING"));
}
