//! `Client::scheduled_jobs_page` and the two listing modes against a wiremock Buildkite:
//! which operation each [`Priorities`] sends, what a job costs in it, how the two counts
//! become `other_priorities`, and how a page reports the next (newer) one.

mod support;

use buildkite_api::{Priorities, ScheduledJobsPage, ScheduledJobsRequest};
use pretty_assertions::assert_eq;
use serde_json::{Value, json};
use support::{Fake, body, fake, jobs_page, operation, operation_named, scheduled_job};
use wiremock::{Mock, ResponseTemplate};

const DOCUMENT: &str = include_str!("../graphql/ScheduledJobs.graphql");

fn request(priorities: Priorities) -> ScheduledJobsRequest {
    ScheduledJobsRequest {
        page_size: 2,
        max_pages: 3,
        priorities,
        ..ScheduledJobsRequest::for_queue("acme", "kubernetes")
    }
}

/// Answers `name` with `page`, exactly once.
async fn answer(fake: &Fake, name: &'static str, page: Value) {
    Mock::given(operation_named(name))
        .respond_with(ResponseTemplate::new(200).set_body_json(page))
        .expect(1)
        .mount(&fake.server)
        .await;
}

/// A job node as `ScheduledDefaultPriorityJobs` returns it: without `priority`.
fn default_priority_job(uuid: &str) -> support::JobNode {
    let mut node = scheduled_job(uuid).json();
    node.as_object_mut()
        .expect("a job node is an object")
        .remove("priority");
    support::JobNode::from(node)
}

async fn sent_bodies(fake: &Fake) -> Vec<Value> {
    fake.server
        .received_requests()
        .await
        .expect("recording is on")
        .iter()
        .map(body)
        .collect()
}

fn uuids(page: &ScheduledJobsPage) -> Vec<&str> {
    page.jobs.iter().map(|job| job.uuid.as_str()).collect()
}

#[tokio::test]
async fn all_priorities_sends_scheduled_jobs_and_counts_other_priorities_from_default_priority() {
    let fake = fake().await;
    let mut page = jobs_page(
        vec![
            scheduled_job("urgent").with_priority(5),
            scheduled_job("plain"),
        ],
        7,
        None,
    );
    page["data"]["organization"]["defaultPriority"]["count"] = json!(4);
    answer(&fake, "ScheduledJobs", page).await;

    let fetched = fake
        .client
        .scheduled_jobs_page(&request(Priorities::All), None)
        .await
        .expect("page decodes");

    let page = fetched.value;
    assert_eq!(uuids(&page), ["plain", "urgent"]);
    assert_eq!(page.jobs[1].priority, 5);
    assert_eq!(page.jobs[0].priority, 0);
    assert_eq!(page.total, 7);
    assert_eq!(page.other_priorities, 3, "7 jobs, 4 of them priority 0");
    assert_eq!(fetched.requests, 1);
    let sent = sent_bodies(&fake).await;
    assert_eq!(sent[0]["operationName"], "ScheduledJobs");
    assert_eq!(sent[0]["query"], DOCUMENT);
    assert_eq!(
        sent[0]["variables"],
        json!({
            "organization": "acme",
            "agentQueryRules": ["queue=kubernetes"],
            "cluster": null,
            "last": 2,
            "before": null
        })
    );
}

#[tokio::test]
async fn default_only_sends_the_priority_filtered_operation_and_maps_its_jobs_at_priority_0() {
    let fake = fake().await;
    let mut page = jobs_page(
        vec![default_priority_job("b"), default_priority_job("a")],
        2,
        None,
    );
    page["data"]["organization"]["all"]["count"] = json!(9);
    answer(&fake, "ScheduledDefaultPriorityJobs", page).await;
    let request = ScheduledJobsRequest {
        cluster: Some("Q2x1c3Rlci0tLTE=".to_owned()),
        ..request(Priorities::DefaultOnly)
    };

    let page = fake
        .client
        .scheduled_jobs_page(&request, Some("older-cursor"))
        .await
        .expect("page decodes")
        .value;

    assert_eq!(uuids(&page), ["a", "b"]);
    assert!(page.jobs.iter().all(|job| job.priority == 0));
    assert_eq!(page.jobs[0].command.as_deref(), Some("cargo test"));
    assert_eq!(page.total, 2);
    assert_eq!(
        page.other_priorities, 7,
        "9 jobs in all, 2 of them priority 0"
    );
    assert!(page.skipped.is_empty(), "{:?}", page.skipped);
    let sent = sent_bodies(&fake).await;
    assert_eq!(sent[0]["operationName"], "ScheduledDefaultPriorityJobs");
    assert_eq!(sent[0]["query"], DOCUMENT);
    assert_eq!(
        sent[0]["variables"],
        json!({
            "organization": "acme",
            "agentQueryRules": ["queue=kubernetes"],
            "cluster": "Q2x1c3Rlci0tLTE=",
            "last": 2,
            "before": "older-cursor"
        })
    );
}

#[test]
fn the_document_filters_default_only_on_priority_0_and_never_selects_priority_there() {
    let default_only = DOCUMENT
        .split("query ScheduledDefaultPriorityJobs")
        .nth(1)
        .expect("the document has the operation");
    let listed = default_only
        .split("all: jobs(")
        .next()
        .expect("the listing comes before the count");
    assert!(listed.contains("priority: { number: [0] }"), "{listed}");
    assert!(!listed.contains("priority {"), "{listed}");
    let fragment = DOCUMENT
        .split("fragment ScheduledCommandJob")
        .nth(1)
        .and_then(|rest| rest.split('}').next())
        .expect("the document has the fragment");
    assert!(!fragment.contains("priority"), "{fragment}");
}

#[tokio::test]
async fn a_page_gives_the_cursor_of_the_newer_page() {
    let fake = fake().await;
    answer(
        &fake,
        "ScheduledDefaultPriorityJobs",
        jobs_page(vec![default_priority_job("a")], 3, Some("c1")),
    )
    .await;

    let page = fake
        .client
        .scheduled_jobs_page(&request(Priorities::DefaultOnly), None)
        .await
        .expect("page decodes")
        .value;

    assert_eq!(page.newer.as_deref(), Some("c1"));
    assert!(!page.truncated);
}

#[tokio::test]
async fn with_an_overlap_the_newer_page_starts_that_many_jobs_back() {
    for (overlap, newer) in [(0, "start"), (2, "edge-2"), (9, "edge-3")] {
        let fake = fake().await;
        let jobs = ["d", "c", "b", "a"]
            .into_iter()
            .map(scheduled_job)
            .collect();
        answer(&fake, "ScheduledJobs", jobs_page(jobs, 8, Some("start"))).await;

        let page = fake
            .client
            .scheduled_jobs_page(
                &ScheduledJobsRequest {
                    overlap,
                    ..request(Priorities::All)
                },
                None,
            )
            .await
            .expect("page decodes")
            .value;

        assert_eq!(
            page.newer.as_deref(),
            Some(newer),
            "overlap {overlap}: the cursor of edge {overlap} (newest first), at most the oldest"
        );
        assert_eq!(uuids(&page), ["a", "b", "c", "d"]);
    }
}

#[tokio::test]
async fn the_newest_page_has_no_newer_cursor() {
    let fake = fake().await;
    answer(
        &fake,
        "ScheduledJobs",
        jobs_page(vec![scheduled_job("a")], 1, None),
    )
    .await;

    let page = fake
        .client
        .scheduled_jobs_page(&request(Priorities::All), None)
        .await
        .expect("page decodes")
        .value;

    assert_eq!(page.newer, None);
    assert!(!page.truncated);
}

#[tokio::test]
async fn a_page_with_newer_jobs_but_no_cursor_is_truncated() {
    let fake = fake().await;
    let mut page = jobs_page(vec![default_priority_job("a")], 3, None);
    page["data"]["organization"]["jobs"]["pageInfo"]["hasPreviousPage"] = json!(true);
    answer(&fake, "ScheduledDefaultPriorityJobs", page).await;

    let page = fake
        .client
        .scheduled_jobs_page(&request(Priorities::DefaultOnly), None)
        .await
        .expect("page decodes")
        .value;

    assert_eq!(page.newer, None);
    assert!(page.truncated, "Buildkite said newer jobs exist");
}

#[tokio::test]
async fn default_only_pages_backwards_through_every_page_and_stops_at_max_pages() {
    let fake = fake().await;
    for (before, uuids, newer) in [
        (None, ["b", "a"], Some("c1")),
        (Some("c1"), ["d", "c"], Some("c2")),
        (Some("c2"), ["f", "e"], Some("c3")),
    ] {
        let jobs = uuids
            .iter()
            .map(|uuid| default_priority_job(uuid))
            .collect();
        let mut page = jobs_page(jobs, 8, newer);
        page["data"]["organization"]["all"]["count"] = json!(10);
        Mock::given(operation(
            "ScheduledDefaultPriorityJobs",
            "before",
            json!(before),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(page))
        .expect(1)
        .mount(&fake.server)
        .await;
    }

    let fetched = fake
        .client
        .scheduled_jobs(&request(Priorities::DefaultOnly))
        .await
        .expect("pages decode");

    let listed: Vec<&str> = fetched
        .value
        .jobs
        .iter()
        .map(|job| job.uuid.as_str())
        .collect();
    assert_eq!(listed, ["a", "b", "c", "d", "e", "f"]);
    assert!(
        fetched.value.truncated,
        "a fourth page exists beyond max_pages"
    );
    assert_eq!(fetched.value.total, 8);
    assert_eq!(fetched.value.other_priorities, 2);
    assert_eq!(fetched.requests, 3);
}

#[tokio::test]
async fn a_null_count_connection_reads_as_jobs_of_other_priorities_may_exist() {
    // Without the second count, whether jobs of other priorities exist is unknown: the page
    // says some may, so a caller lists priorities rather than missing such jobs.
    let fake = fake().await;
    let mut page = jobs_page(vec![default_priority_job("a")], 1, None);
    page["data"]["organization"]["all"] = Value::Null;
    answer(&fake, "ScheduledDefaultPriorityJobs", page).await;

    let page = fake
        .client
        .scheduled_jobs_page(&request(Priorities::DefaultOnly), None)
        .await
        .expect("the jobs are still listed")
        .value;

    assert_eq!(page.jobs.len(), 1);
    assert!(page.other_priorities > 0, "{page:?}");
}
