//! The Stacks API simulator's feedback endpoints over real HTTP, written from Buildkite's
//! documentation: finishing (failing) a job no agent took, and notifications on its timeline.
#![allow(clippy::unwrap_used, reason = "a failed unwrap fails the test")]

mod stacks_support;

use std::time::Duration;

use jobify_sim::stacks::JobSpec;
use serde_json::json;
use stacks_support::{QUEUE, STACK, TOKEN, registered};

#[tokio::test]
async fn finish_fails_a_job_once_with_its_detail() {
    let (sim, api) = registered().await;
    let job = sim.add_job(JobSpec::command("make").on_queue(QUEUE));
    api.reserve(STACK, json!({"job_uuids": [job.to_string()]}))
        .await;
    let done = api
        .finish(
            STACK,
            &job.to_string(),
            json!({"detail": "pod never started"}),
        )
        .await;
    assert!((200..300).contains(&done.status), "{done:?}");
    let record = sim.finish_record(job).unwrap();
    assert_eq!(
        (record.exit_status, record.detail.as_str()),
        (-1, "pod never started")
    );
    assert_eq!(record.stack, STACK);
    let snapshot = sim.job(job).unwrap();
    assert_eq!(snapshot.state, "finished");
    assert_eq!(snapshot.reservation, None, "finishing ends the reservation");
    let again = api
        .finish(STACK, &job.to_string(), json!({"detail": "again"}))
        .await;
    assert_eq!(again.status, 422, "at most once");
    let passed = sim.add_job(JobSpec::command("true").on_queue(QUEUE));
    let zero = api
        .finish(
            STACK,
            &passed.to_string(),
            json!({"exit_status": 0, "detail": "done"}),
        )
        .await;
    assert_eq!(zero.status, 200);
    assert_eq!(sim.finish_record(passed).unwrap().exit_status, 0);
}

#[tokio::test]
async fn finish_refuses_what_a_stack_may_not_finish() {
    let (sim, api) = registered().await;
    api.register("jobify-b", QUEUE).await;
    let job = sim
        .add_job(JobSpec::command("make").on_queue(QUEUE))
        .to_string();
    for (body, status) in [
        (json!({}), 422),
        (json!({"detail": ""}), 422),
        (json!({"detail": "x".repeat(4097)}), 422),
        (json!({"detail": "x", "exit_status": "one"}), 400),
    ] {
        let answer = api.finish(STACK, &job, body.clone()).await;
        assert_eq!(answer.status, status, "{body}: {answer:?}");
    }
    api.reserve("jobify-b", json!({"job_uuids": [job]})).await;
    let others = api.finish(STACK, &job, json!({"detail": "mine?"})).await;
    assert_eq!(others.status, 422, "reserved by another stack");
    let running = sim.add_job(JobSpec::command("make").on_queue(QUEUE));
    sim.acquire(running, TOKEN).unwrap();
    let taken = api
        .finish(STACK, &running.to_string(), json!({"detail": "late"}))
        .await;
    assert_eq!(taken.status, 422, "an agent owns it");
    let unknown = api
        .finish(
            STACK,
            &uuid::Uuid::new_v4().to_string(),
            json!({"detail": "x"}),
        )
        .await;
    assert_eq!(unknown.status, 404);
    let limit = api
        .finish(STACK, &job, json!({"detail": "x".repeat(4096)}))
        .await;
    assert_eq!(limit.status, 422, "still reserved by jobify-b");
}

#[tokio::test]
async fn notifications_land_on_the_timeline_in_order_with_per_index_errors() {
    let (sim, api) = registered().await;
    let job = sim.add_job(JobSpec::command("make").on_queue(QUEUE));
    let id = job.to_string();
    let future = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_secs(3600))
        .unwrap()
        .to_string();
    let answer = api
        .notify(
            STACK,
            json!([
                {"job_uuid": id, "detail": "Job created"},
                {"job_uuid": id, "detail": ""},
                {"job_uuid": id, "detail": "x".repeat(257)},
                {"job_uuid": uuid::Uuid::new_v4(), "detail": "whose?"},
                {"job_uuid": id, "detail": "Pulling image"},
                {"job_uuid": id, "detail": "later", "timestamp": future},
                {"job_uuid": id},
            ]),
        )
        .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let errors = answer.body["errors"].as_array().unwrap();
    let indexes_of = |text: &str| {
        errors
            .iter()
            .find(|e| e["error"].as_str().unwrap().contains(text))
            .map(|e| e["indexes"].clone())
    };
    assert_eq!(indexes_of("detail is required"), Some(json!([1, 6])));
    assert_eq!(indexes_of("length limit of 256"), Some(json!([2])));
    assert_eq!(errors.len(), 4, "{errors:?}");
    let timeline: Vec<String> = sim
        .notifications(job)
        .into_iter()
        .map(|n| n.detail)
        .collect();
    assert_eq!(timeline, ["Job created", "Pulling image"]);
    let exactly = api
        .notify(STACK, json!([{"job_uuid": id, "detail": "é".repeat(256)}]))
        .await;
    assert_eq!(exactly.body["errors"], json!([]), "256 characters are fine");
}

#[tokio::test]
async fn a_job_takes_at_most_100_notifications_and_a_request_1000() {
    let (sim, api) = registered().await;
    let job = sim
        .add_job(JobSpec::command("make").on_queue(QUEUE))
        .to_string();
    let batch: Vec<_> = (0..101)
        .map(|i| json!({"job_uuid": job, "detail": format!("n{i}")}))
        .collect();
    let answer = api.notify(STACK, json!(batch)).await;
    assert_eq!(
        answer.body["errors"],
        json!([{"error": "job stack notification count exceeded", "indexes": [100]}])
    );
    let too_many: Vec<_> = (0..1001)
        .map(|_| json!({"job_uuid": job, "detail": "x"}))
        .collect();
    assert_eq!(api.notify(STACK, json!(too_many)).await.status, 400);
    let not_array = api
        .post(
            &format!("stacks/{STACK}/notifications"),
            json!({"notifications": {}}),
        )
        .await;
    assert_eq!(not_array.status, 400);
}

#[tokio::test]
async fn no_notifications_for_jobs_finished_long_ago() {
    let (sim, api) = registered().await;
    let job = sim
        .add_job(JobSpec::command("make").on_queue(QUEUE))
        .to_string();
    api.finish(STACK, &job, json!({"detail": "gave up"})).await;
    let soon = api
        .notify(STACK, json!([{"job_uuid": job, "detail": "after"}]))
        .await;
    assert_eq!(soon.body["errors"], json!([]));
    sim.advance(Duration::from_secs(301));
    let late = api
        .notify(STACK, json!([{"job_uuid": job, "detail": "too late"}]))
        .await;
    assert_eq!(late.body["errors"][0]["indexes"], json!([0]));
}
