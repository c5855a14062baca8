//! `StacksFeedback` against the Stacks API simulator, written from Buildkite's documentation
//! (not from our client): a refused job is finished once as a stack error with the reason, a
//! retry after a lost answer is not an error, and a job an agent took is left alone.

use buildkite_api::stacks::{RegisterStack, StacksClient};
use jobify_buildkite::StacksFeedback;
use jobify_core::{Feedback, JobId, JobRef, Reason, ReasonCode};
use jobify_sim::stacks::{JobSpec, StacksSim, StacksSimConfig};
use secrecy::SecretString;

const TOKEN: &str = "bkct_cluster-token";
const QUEUE: &str = "kubernetes";
const STACK: &str = "jobify-feedback";

async fn registered() -> (StacksSim, StacksFeedback) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sim = StacksSim::start(StacksSimConfig::new(TOKEN).with_queue(QUEUE))
        .await
        .expect("simulator starts");
    let client = StacksClient::builder()
        .agent_token(SecretString::from(TOKEN))
        .agent_url(sim.base_url().parse().expect("sim URL"))
        .build()
        .expect("client builds");
    client
        .register(&RegisterStack::custom(STACK, QUEUE))
        .await
        .expect("stack registers");
    (sim, StacksFeedback::new(client, STACK))
}

fn job(uuid: uuid::Uuid) -> JobRef {
    JobRef {
        id: JobId::from(uuid),
        source_key: None,
    }
}

fn reason() -> Reason {
    Reason::new(
        ReasonCode::QUEUE_NOT_SERVED,
        "image `ruby:9` cannot be pulled: not found",
    )
}

#[tokio::test]
async fn a_refused_job_is_finished_once_as_a_stack_error_with_the_reason() {
    let (sim, feedback) = registered().await;
    let uuid = sim.add_job(JobSpec::command("make test").on_queue(QUEUE));

    feedback
        .fail_job(&job(uuid), &reason())
        .await
        .expect("told Buildkite");

    let finish = sim.finish_record(uuid).expect("the job was finished");
    assert_eq!(finish.stack, STACK);
    assert_eq!(finish.exit_status, -1);
    assert!(
        finish.detail.contains("cannot be pulled") && finish.detail.contains("`queue_not_served`"),
        "{}",
        finish.detail
    );
    assert_eq!(sim.job(uuid).expect("job").state, "finished");

    // A retry (the first answer lost on its way back) finds the job finished: told, once.
    feedback
        .fail_job(&job(uuid), &reason())
        .await
        .expect("a repeated report is not an error");
    assert_eq!(
        sim.finish_record(uuid).expect("finished").detail,
        finish.detail
    );
}

#[tokio::test]
async fn a_job_an_agent_acquired_is_left_to_the_agent() {
    let (sim, feedback) = registered().await;
    let uuid = sim.add_job(JobSpec::command("make test").on_queue(QUEUE));
    sim.acquire(uuid, TOKEN).expect("the agent acquires");

    feedback
        .fail_job(&job(uuid), &reason())
        .await
        .expect("nothing left to tell");
    assert!(sim.finish_record(uuid).is_none());
    assert_ne!(sim.job(uuid).expect("job").state, "finished");
}

#[tokio::test]
async fn a_job_buildkite_does_not_know_is_an_error_naming_the_job() {
    let (_sim, feedback) = registered().await;
    let unknown = uuid::Uuid::new_v4();
    let error = feedback
        .fail_job(&job(unknown), &reason())
        .await
        .expect_err("unknown job");
    assert!(error.to_string().contains(&unknown.to_string()), "{error}");
}
