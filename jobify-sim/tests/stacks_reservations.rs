//! The Stacks API simulator's reservation semantics over real HTTP: reserved jobs vanish
//! from every stack's listing until their reservation expires, job acquisition tokens bind
//! an agent to one job, and each stack's requests are rate-limited per scope.
#![allow(clippy::unwrap_used, reason = "a failed unwrap fails the test")]

mod stacks_support;

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jobify_sim::AcquireError;
use jobify_sim::stacks::{Credential, JobSpec, OverMaximum, RateLimits};
use reqwest::Method;
use serde_json::{Value, json};
use stacks_support::{Api, QUEUE, STACK, TOKEN, config, registered, start};

const OTHER: &str = "jobify-b";

async fn two_stacks() -> (jobify_sim::stacks::StacksSim, Api) {
    let (sim, api) = registered().await;
    assert_eq!(api.register(OTHER, QUEUE).await.status, 201);
    (sim, api)
}

fn uuids(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_reserved_job_is_invisible_to_every_stack_until_it_expires() {
    let (sim, api) = two_stacks().await;
    let job = sim
        .add_job(JobSpec::command("make").on_queue(QUEUE))
        .to_string();
    let answer = api.reserve(STACK, json!({"job_uuids": [job]})).await;
    assert_eq!(answer.status, 200);
    assert_eq!(uuids(&answer.body["reserved"]), [job.as_str()]);
    assert_eq!(answer.body["not_reserved"], json!([]));
    let reservation = sim.job(job.parse().unwrap()).unwrap().reservation.unwrap();
    assert_eq!(reservation.stack, STACK);
    for stack in [STACK, OTHER] {
        let page = api.list(stack, "queue_key=kubernetes").await;
        assert!(page.job_ids().is_empty(), "{stack} sees {page:?}");
    }
    let theirs = api.reserve(OTHER, json!({"job_uuids": [job]})).await;
    assert_eq!(uuids(&theirs.body["not_reserved"]), [job.as_str()]);
    sim.advance(Duration::from_secs(899));
    assert!(
        api.list(OTHER, "queue_key=kubernetes")
            .await
            .job_ids()
            .is_empty()
    );
    sim.advance(Duration::from_secs(1));
    assert_eq!(
        api.list(OTHER, "queue_key=kubernetes").await.job_ids(),
        [job.as_str()],
        "the default expiry is 900 s"
    );
    assert_eq!(sim.job(job.parse().unwrap()).unwrap().state, "scheduled");
    let retaken = api.reserve(OTHER, json!({"job_uuids": [job]})).await;
    assert_eq!(uuids(&retaken.body["reserved"]), [job]);
}

#[tokio::test]
async fn reserving_again_extends_the_own_reservation() {
    let (sim, api) = registered().await;
    let job = sim.add_job(JobSpec::command("make").on_queue(QUEUE));
    let body = json!({"job_uuids": [job.to_string()], "reservation_expiry_seconds": 60});
    api.reserve(STACK, body.clone()).await;
    sim.advance(Duration::from_secs(50));
    let again = api.reserve(STACK, body).await;
    assert_eq!(uuids(&again.body["reserved"]), [job.to_string()]);
    sim.advance(Duration::from_secs(50));
    assert_eq!(
        sim.job(job).unwrap().state,
        "reserved",
        "100 s after the first reserve"
    );
    sim.advance(Duration::from_secs(10));
    assert_eq!(sim.job(job).unwrap().state, "scheduled");
}

#[tokio::test]
async fn only_scheduled_jobs_can_be_reserved() {
    let (sim, api) = registered().await;
    let canceled = sim.add_job(JobSpec::command("a").on_queue(QUEUE));
    sim.cancel_job(canceled);
    let running = sim.add_job(JobSpec::command("b").on_queue(QUEUE));
    sim.acquire(running, TOKEN).unwrap();
    let unknown = uuid::Uuid::new_v4();
    let ids = [
        canceled.to_string(),
        running.to_string(),
        unknown.to_string(),
        "not-a-uuid".to_owned(),
    ];
    let answer = api.reserve(STACK, json!({"job_uuids": ids})).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body["reserved"], json!([]));
    assert_eq!(uuids(&answer.body["not_reserved"]), ids);
}

#[tokio::test]
async fn reserve_refuses_malformed_requests() {
    let (sim, api) = registered().await;
    let job = sim
        .add_job(JobSpec::command("make").on_queue(QUEUE))
        .to_string();
    let too_many: Vec<String> = (0..1001).map(|_| job.clone()).collect();
    for body in [
        json!({}),
        json!({"job_uuids": job}),
        json!({"job_uuids": too_many}),
        json!({"job_uuids": [job], "reservation_expiry_seconds": -5}),
        json!({"job_uuids": [job], "reservation_expiry_seconds": "soon"}),
    ] {
        let answer = api.reserve(STACK, body.clone()).await;
        assert_eq!(answer.status, 400, "{body}: {answer:?}");
        assert!(!answer.message().is_empty());
    }
    assert_eq!(
        api.reserve("stranger", json!({"job_uuids": [job]}))
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn expiry_past_an_hour_is_clamped_or_refused_as_configured() {
    let (sim, api) = registered().await;
    let job = sim.add_job(JobSpec::command("make").on_queue(QUEUE));
    let body = json!({"job_uuids": [job.to_string()], "reservation_expiry_seconds": 7200});
    assert_eq!(api.reserve(STACK, body.clone()).await.status, 200);
    sim.advance(Duration::from_secs(3600));
    assert_eq!(
        sim.job(job).unwrap().state,
        "scheduled",
        "clamped to 3600 s"
    );
    let mut strict = config();
    strict.over_maximum = OverMaximum::Reject;
    let (sim, api) = start(strict).await;
    api.register(STACK, QUEUE).await;
    let job = sim.add_job(JobSpec::command("make").on_queue(QUEUE));
    let body = json!({"job_uuids": [job.to_string()], "reservation_expiry_seconds": 3601});
    assert_eq!(api.reserve(STACK, body).await.status, 400);
}

fn payload(token: &str) -> Value {
    let jwt = token.strip_prefix("bkjat_").expect("bkjat_ prefix");
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3, "a three-part JWT");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap()
}

#[tokio::test]
async fn tokens_are_issued_only_for_the_stacks_own_reservations() {
    let (sim, api) = two_stacks().await;
    let mine = sim
        .add_job(JobSpec::command("a").on_queue(QUEUE))
        .to_string();
    let theirs = sim
        .add_job(JobSpec::command("b").on_queue(QUEUE))
        .to_string();
    let unreserved = sim
        .add_job(JobSpec::command("c").on_queue(QUEUE))
        .to_string();
    let body = json!({"job_uuids": [mine], "reservation_expiry_seconds": 120});
    api.reserve(STACK, body).await;
    api.reserve(OTHER, json!({"job_uuids": [theirs]})).await;
    let answer = api
        .issue_tokens(STACK, json!({"job_uuids": [mine, theirs, unreserved]}))
        .await;
    assert_eq!(answer.status, 201, "{answer:?}");
    assert_eq!(uuids(&answer.body["not_issued"]), [theirs, unreserved]);
    let issued = &answer.body["job_acquisition_tokens"][0];
    assert_eq!(issued["job_uuid"], mine);
    let token = issued["job_acquisition_token"].as_str().unwrap();
    assert_eq!(payload(token)["sub"], mine);
    let expires: jiff::Timestamp = issued["expires_at"].as_str().unwrap().parse().unwrap();
    let reservation = sim.reservation(mine.parse().unwrap()).unwrap();
    assert_eq!(
        expires, reservation.expires_at,
        "no later than the reservation"
    );
    let too_many: Vec<String> = (0..1001).map(|_| mine.clone()).collect();
    assert_eq!(
        api.issue_tokens(STACK, json!({"job_uuids": too_many}))
            .await
            .status,
        400
    );
    assert_eq!(api.issue_tokens(STACK, json!({})).await.status, 400);
}

#[tokio::test]
async fn a_job_acquisition_token_acquires_only_its_own_job() {
    let (sim, api) = registered().await;
    let job = sim
        .add_job(JobSpec::command("a").on_queue(QUEUE))
        .to_string();
    let other = sim
        .add_job(JobSpec::command("b").on_queue(QUEUE))
        .to_string();
    api.reserve(STACK, json!({"job_uuids": [job, other]})).await;
    let answer = api
        .issue_tokens(
            STACK,
            json!({"job_uuids": [job], "token_lifetime_seconds": 60}),
        )
        .await;
    let token = answer.body["job_acquisition_tokens"][0]["job_acquisition_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let agent = api.with_token(&token);
    let refused = agent
        .send(Method::PUT, &format!("jobs/{other}/acquire"), None)
        .await;
    assert_eq!(refused.status, 422, "{refused:?}");
    assert_eq!(sim.job(other.parse().unwrap()).unwrap().state, "reserved");
    let stacks_call = agent.list(STACK, "queue_key=kubernetes").await;
    assert_eq!(stacks_call.status, 401, "a JAT is no Stacks API credential");
    let acquired = agent
        .send(Method::PUT, &format!("jobs/{job}/acquire"), None)
        .await;
    assert_eq!(acquired.status, 200, "{acquired:?}");
    let snapshot = sim.job(job.parse().unwrap()).unwrap();
    assert_eq!(snapshot.state, "running");
    assert_eq!(snapshot.reservation, None);
    assert_eq!(
        snapshot.acquired_with,
        Some(Credential::JobAcquisitionToken {
            stack: STACK.to_owned()
        })
    );
    let twice = agent
        .send(Method::PUT, &format!("jobs/{job}/acquire"), None)
        .await;
    assert_eq!(twice.status, 422, "acquire is exactly once");
    assert_eq!(sim.job(job.parse().unwrap()).unwrap().acquire_attempts, 2);
    let live = sim.reservations();
    assert_eq!(
        live.keys().map(ToString::to_string).collect::<Vec<_>>(),
        [other]
    );
}

#[tokio::test]
async fn tokens_expire_with_their_lifetime_or_the_reservation() {
    let (sim, api) = registered().await;
    let job = sim
        .add_job(JobSpec::command("a").on_queue(QUEUE))
        .to_string();
    api.reserve(
        STACK,
        json!({"job_uuids": [job], "reservation_expiry_seconds": 30}),
    )
    .await;
    let answer = api.issue_tokens(STACK, json!({"job_uuids": [job]})).await;
    let token = answer.body["job_acquisition_tokens"][0]["job_acquisition_token"]
        .as_str()
        .unwrap()
        .to_owned();
    sim.advance(Duration::from_secs(31));
    let refused = sim.acquire(job.parse().unwrap(), &token).unwrap_err();
    assert_eq!(refused.status, 401, "{refused}");
    assert!(sim.acquire(job.parse().unwrap(), "guess").is_err());
    sim.acquire(job.parse().unwrap(), TOKEN)
        .expect("the cluster token still acquires a rescheduled job");
}

#[tokio::test]
async fn the_agent_seam_acquires_by_tags_and_finishes() {
    let (sim, _api) = registered().await;
    let job = sim.add_job(
        JobSpec::command("make")
            .on_queue(QUEUE)
            .running(Duration::from_secs(3), 2),
    );
    let agent = sim.agent_api();
    let wrong = agent.acquire(job, &["queue=other".to_owned()]).unwrap_err();
    assert!(matches!(wrong, AcquireError::TagsMismatch(_)), "{wrong:?}");
    let script = agent
        .acquire(job, &["queue=kubernetes".to_owned()])
        .unwrap();
    assert_eq!(
        (script.run_for, script.exit_status),
        (Duration::from_secs(3), 2)
    );
    let again = agent
        .acquire(job, &["queue=kubernetes".to_owned()])
        .unwrap_err();
    assert!(matches!(again, AcquireError::NotScheduled { .. }));
    agent.finish(job, 2);
    let snapshot = sim.job(job).unwrap();
    assert_eq!(
        (snapshot.state.as_str(), snapshot.exit_status),
        ("finished", Some(2))
    );
    assert_eq!(snapshot.acquired_with, Some(Credential::ClusterToken));
}

#[tokio::test]
async fn every_limited_response_carries_its_rate_limit_headers() {
    let (sim, api) = registered().await;
    let job = sim.add_job(JobSpec::command("a").on_queue(QUEUE));
    let page = api.list(STACK, "queue_key=kubernetes").await;
    assert_eq!(page.header("RateLimit-Scope"), Some("list-scheduled-jobs"));
    assert_eq!(page.header("RateLimit-Limit"), Some("10"));
    assert_eq!(page.header("RateLimit-Remaining"), Some("9"));
    assert_eq!(page.header("RateLimit-Reset"), Some("1"));
    let show = api.get(&format!("stacks/{STACK}/jobs/{job}")).await;
    assert_eq!(show.header("RateLimit-Scope"), Some("show-job"));
    assert_eq!(show.header("RateLimit-Limit"), Some("1000"));
    let missing = api
        .get(&format!("stacks/{STACK}/jobs/{}", uuid::Uuid::new_v4()))
        .await;
    assert_eq!(
        missing.header("RateLimit-Remaining"),
        Some("998"),
        "refusals count too"
    );
    for (scope, limit, answer) in [
        (
            "batch-reserve",
            "10",
            api.reserve(STACK, json!({"job_uuids": []})).await,
        ),
        ("batch-load-job-states", "20", api.states(STACK, &[]).await),
        (
            "finish-job",
            "100",
            api.finish(STACK, &job.to_string(), json!({})).await,
        ),
        (
            "stack-notification",
            "200",
            api.notify(STACK, json!([])).await,
        ),
        (
            "default",
            "10",
            api.post(&format!("stacks/{STACK}/deregister"), json!({}))
                .await,
        ),
    ] {
        assert_eq!(answer.header("RateLimit-Scope"), Some(scope));
        assert_eq!(answer.header("RateLimit-Limit"), Some(limit));
    }
}

#[tokio::test]
async fn the_eleventh_poll_in_a_second_is_429_until_the_window_slides() {
    let (sim, api) = two_stacks().await;
    for _ in 0..10 {
        assert_eq!(api.list(STACK, "queue_key=kubernetes").await.status, 200);
    }
    let throttled = api.list(STACK, "queue_key=kubernetes").await;
    assert_eq!(throttled.status, 429);
    assert_eq!(throttled.body["scope"], "list-scheduled-jobs");
    assert_eq!(throttled.body["limit"], 10);
    assert_eq!(throttled.body["current"], 11);
    assert_eq!(throttled.body["reset"], 1);
    assert_eq!(
        throttled.message(),
        "You have exceeded your API rate limit. Please wait 1 seconds before making more requests."
    );
    assert_eq!(throttled.header("Retry-After"), Some("1"));
    assert_eq!(throttled.header("RateLimit-Remaining"), Some("0"));
    assert_eq!(
        api.list(OTHER, "queue_key=kubernetes").await.status,
        200,
        "per stack"
    );
    let reserve = api.reserve(STACK, json!({"job_uuids": []})).await;
    assert_eq!(reserve.status, 200, "per scope");
    sim.advance(Duration::from_secs(1));
    assert_eq!(api.list(STACK, "queue_key=kubernetes").await.status, 200);
    assert_eq!(sim.stats().rate_limited, 1);
    assert_eq!(sim.stats().requests["list-scheduled-jobs"], 13);
}

#[tokio::test]
async fn limits_are_configurable() {
    let mut cfg = config();
    cfg.rate_limits = RateLimits {
        show_job: Some(1),
        ..RateLimits::unlimited()
    };
    let (sim, api) = start(cfg).await;
    api.register(STACK, QUEUE).await;
    let job = sim.add_job(JobSpec::command("a").on_queue(QUEUE));
    let path = format!("stacks/{STACK}/jobs/{job}");
    assert_eq!(api.get(&path).await.status, 200);
    assert_eq!(api.get(&path).await.status, 429);
    for _ in 0..20 {
        let page = api.list(STACK, "queue_key=kubernetes").await;
        assert_eq!(page.status, 200);
        assert_eq!(
            page.header("RateLimit-Scope"),
            None,
            "unlimited scopes carry no headers"
        );
    }
}
