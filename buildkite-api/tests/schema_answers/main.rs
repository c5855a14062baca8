//! Every answer Buildkite's schema allows, for every operation the client sends.
//!
//! From the full published schema (`../shared/buildkite/schema.graphql`) and each operation
//! document, [`shape`] reads the response's shape and [`answers`] makes a complete answer and
//! its variants: each nullable value null (one at a time, then all at once), each list empty,
//! each enum a value the schema does not list yet, each union position a member it does not
//! list yet, extra fields in every object, and `errors` beside partial data. A wiremock
//! server sends each one to the real client.
//!
//! For every answer the client must return a domain value or a typed error that names the
//! place, and never panic. Beyond that:
//! - extra fields change nothing (the outcome is the baseline's);
//! - an unknown enum value is kept, never an error;
//! - what each answer means to the client is written in `schema_answers.expected`, one line
//!   per answer, and the test fails when an outcome differs from it. docs/buildkite-api.md
//!   explains the decisions. After a deliberate change, regenerate the file with
//!   `JOBIFY_BLESS=1 cargo test -p buildkite-api --test schema_answers` and review its diff.

#[path = "../support/mod.rs"]
mod support;

mod answers;
mod shape;

use std::fmt::Write as _;
use std::fs;
use std::path::Path as FsPath;

use apollo_compiler::validation::Valid;
use apollo_compiler::{ExecutableDocument, Schema};
use buildkite_api::{
    Annotation, Client, Error, JobLookup, PipelineBuildsRequest, Priorities, ScheduledJobsPage,
    ScheduledJobsRequest, job_states_document,
};
use futures::future::BoxFuture;
use serde_json::{Value, json};
use wiremock::{Mock, ResponseTemplate};

use answers::{Answer, Change, UNKNOWN_ENUM};

const FULL_SCHEMA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/buildkite/schema.graphql"
);
const EXPECTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/schema_answers.expected");

/// What a call came back with, as one comparable line.
type Outcome = Result<String, Error>;

/// An operation: its document, and the client call that sends it.
struct Operation {
    name: &'static str,
    document: String,
    /// Baseline values for positions where any value of the type would not do.
    overrides: fn(&str, &str) -> Option<Value>,
    /// Answers other operations need before this one is sent (e.g. `PipelineBuilds` before
    /// `BuildJobs`).
    before: Option<(&'static str, Value)>,
    call: for<'c> fn(&'c Client) -> BoxFuture<'c, Outcome>,
}

fn document(name: &str) -> String {
    let path = FsPath::new(env!("CARGO_MANIFEST_DIR"))
        .join("graphql")
        .join(format!("{name}.graphql"));
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Values that make the baseline a complete, successful answer.
fn plausible(key: &str, type_name: &str) -> Option<Value> {
    match (key, type_name) {
        ("state", "JobStates") => Some(json!("SCHEDULED")),
        ("state", "BuildStates") => Some(json!("RUNNING")),
        ("agentQueryRules", _) => Some(json!("queue=kubernetes")),
        ("env", _) => Some(json!("BUILDKITE_PIPELINE_SLUG=app")),
        ("number", "Int") => Some(json!(0)),
        ("count", "Int") => Some(json!(2)),
        _ => None,
    }
}

/// As [`plausible`], with more pages to follow, so the next operation is sent.
fn with_next_pages(key: &str, type_name: &str) -> Option<Value> {
    match key {
        "hasNextPage" => Some(json!(true)),
        _ => plausible(key, type_name),
    }
}

fn operations(schema: &Valid<Schema>) -> Vec<Operation> {
    let scheduled = document("ScheduledJobs");
    let mut operations = vec![
        Operation {
            name: "ScheduledJobs",
            document: scheduled.clone(),
            overrides: plausible,
            before: None,
            call: |client| Box::pin(scheduled_page(client, Priorities::All)),
        },
        Operation {
            name: "ScheduledDefaultPriorityJobs",
            document: scheduled,
            overrides: plausible,
            before: None,
            call: |client| Box::pin(scheduled_page(client, Priorities::DefaultOnly)),
        },
        Operation {
            name: "JobStates",
            document: job_states_document(2),
            overrides: plausible,
            before: None,
            call: |client| Box::pin(job_states(client)),
        },
        Operation {
            name: "CancelJob",
            document: document("CancelJob"),
            overrides: plausible,
            before: None,
            call: |client| {
                Box::pin(async move {
                    let fetched = client.cancel_job("JobTypeCommand---1").await?;
                    Ok(format!(
                        "ok: state {:?}",
                        fetched.value.map(|s| s.to_string())
                    ))
                })
            },
        },
        Operation {
            name: "AnnotateJob",
            document: document("AnnotateJob"),
            overrides: plausible,
            before: None,
            call: |client| {
                Box::pin(async move {
                    let annotation = Annotation::error("jobify", "**refused**");
                    let fetched = client
                        .annotate_job("JobTypeCommand---1", &annotation)
                        .await?;
                    Ok(format!("ok: annotation {:?}", fetched.value))
                })
            },
        },
        Operation {
            name: "AnnotateBuild",
            document: document("AnnotateBuild"),
            overrides: plausible,
            before: None,
            call: |client| {
                Box::pin(async move {
                    let annotation = Annotation::error("jobify", "**refused**");
                    let fetched = client.annotate_build("Build---1", &annotation).await?;
                    Ok(format!("ok: annotation {:?}", fetched.value))
                })
            },
        },
        Operation {
            name: "Pipeline",
            document: document("Pipeline"),
            overrides: plausible,
            before: None,
            call: |client| {
                Box::pin(async move {
                    let pipeline = client.pipeline("acme", "app").await?.value;
                    Ok(format!("ok: pipeline {} {}", pipeline.slug, pipeline.uuid))
                })
            },
        },
        Operation {
            name: "PipelineBuilds",
            document: document("PipelineBuilds"),
            overrides: plausible,
            before: None,
            call: |client| Box::pin(pipeline_builds(client)),
        },
    ];
    // BuildJobs follows a PipelineBuilds page whose builds have more jobs.
    let first_page = first_answer(
        schema,
        "PipelineBuilds",
        &document("PipelineBuilds"),
        with_next_pages,
    );
    operations.push(Operation {
        name: "BuildJobs",
        document: document("BuildJobs"),
        overrides: plausible,
        before: Some(("PipelineBuilds", first_page)),
        call: |client| Box::pin(pipeline_builds(client)),
    });
    operations
}

async fn scheduled_page(client: &Client, priorities: Priorities) -> Outcome {
    let request = ScheduledJobsRequest {
        priorities,
        ..ScheduledJobsRequest::for_queue("acme", "kubernetes")
    };
    let page = client.scheduled_jobs_page(&request, None).await?.value;
    Ok(describe_page(&page))
}

fn describe_page(page: &ScheduledJobsPage) -> String {
    let jobs: Vec<&str> = page.jobs.iter().map(|job| job.uuid.as_str()).collect();
    let mut line = format!(
        "ok: jobs {jobs:?}, total {}, other priorities {}, newer {:?}, truncated {}",
        page.total, page.other_priorities, page.newer, page.truncated
    );
    for skipped in &page.skipped {
        let _ = write!(line, "; skipped {:?}: {}", skipped.uuid, skipped.reason);
    }
    line
}

async fn job_states(client: &Client) -> Outcome {
    let uuids = vec!["u0".to_owned(), "u1".to_owned()];
    let lookups = client.job_states(&uuids).await?.value;
    let described: Vec<String> = lookups
        .iter()
        .map(|lookup| match lookup {
            JobLookup::Command { uuid, state, .. } => format!("{uuid} {state}"),
            JobLookup::NotCommand { uuid, typename } => {
                format!("{uuid} not a command ({typename})")
            }
            JobLookup::NotFound { uuid } => format!("{uuid} not found"),
            JobLookup::Unreadable { uuid, reason } => format!("{uuid} unreadable: {reason}"),
        })
        .collect();
    Ok(format!("ok: {}", described.join("; ")))
}

async fn pipeline_builds(client: &Client) -> Outcome {
    let request = PipelineBuildsRequest {
        max_build_pages: 1,
        max_job_pages: 2,
        ..PipelineBuildsRequest::active("Pipeline---1")
    };
    let builds = client.pipeline_builds(&request).await?.value;
    let mut line = format!(
        "ok: {} builds of {}, truncated {}",
        builds.builds.len(),
        builds.total,
        builds.truncated
    );
    for build in &builds.builds {
        let _ = write!(
            line,
            "; build {} {} with {} jobs of {}{}, {} meta-data",
            build.uuid,
            build.state,
            build.jobs.len(),
            build.jobs_total,
            if build.jobs_truncated {
                " (truncated)"
            } else {
                ""
            },
            build.meta_data.len()
        );
    }
    for skipped in &builds.skipped {
        let _ = write!(line, "; skipped {:?}: {}", skipped.uuid, skipped.reason);
    }
    Ok(line)
}

fn parse(schema: &Valid<Schema>, name: &str, text: &str) -> Valid<ExecutableDocument> {
    ExecutableDocument::parse_and_validate(schema, text, format!("{name}.graphql")).unwrap_or_else(
        |errors| panic!("{name} does not validate against the full schema: {errors}"),
    )
}

fn first_answer(
    schema: &Valid<Schema>,
    name: &str,
    text: &str,
    overrides: fn(&str, &str) -> Option<Value>,
) -> Value {
    let document = parse(schema, name, text);
    let shape = shape::of_operation(schema, &document, name);
    answers::all(&shape, &overrides).remove(0).body
}

/// The typed errors an answer may produce: the ones about the response, not the transport.
fn is_about_the_answer(error: &Error) -> bool {
    matches!(
        error,
        Error::GraphQl { .. }
            | Error::MissingField { .. }
            | Error::Decode { .. }
            | Error::InvalidField { .. }
            | Error::NotFound { .. }
    )
}

/// Checks the rules every answer obeys, and returns its line for the expectations file.
fn check(operation: &str, answer: &Answer, outcome: &Outcome, baseline: &str) -> Vec<String> {
    let mut failures = Vec::new();
    let line = match outcome {
        Ok(line) => line.clone(),
        Err(error) => format!("error: {error}"),
    };
    let fail = |failures: &mut Vec<String>, why: &str| {
        failures.push(format!(
            "{operation} · {}: {why}\n  got: {line}",
            answer.change
        ));
    };
    if let Err(error) = outcome {
        if !is_about_the_answer(error) {
            fail(&mut failures, "the error is not one about the answer");
        }
        let named = match &answer.change {
            Change::Null(path) | Change::Empty(path) | Change::UnknownType(path) => {
                path.last_key().map(str::to_owned)
            }
            Change::ErrorAt(_) | Change::ErrorWithoutPath | Change::ErrorsOnly => {
                Some(answers::RESOLVER_ERROR.to_owned())
            }
            _ => None,
        };
        if let Some(named) = named
            && !line.contains(&named)
            && !line.contains("not found")
        {
            fail(
                &mut failures,
                &format!("the error does not name `{named}`, where the answer changed"),
            );
        }
    }
    match &answer.change {
        Change::ExtraFields if line != baseline => {
            fail(&mut failures, "extra fields changed the outcome");
        }
        Change::UnknownEnum(_) if outcome.is_err() => {
            fail(
                &mut failures,
                "an unknown enum value must be kept, not refused",
            );
        }
        Change::Baseline if outcome.is_err() => fail(&mut failures, "the complete answer failed"),
        _ => {}
    }
    failures
}

#[tokio::test]
async fn every_answer_the_schema_allows_is_a_domain_value_or_a_typed_error() {
    assert!(
        FsPath::new(FULL_SCHEMA).exists(),
        "{FULL_SCHEMA} is absent: check out the shared folder beside the repository"
    );
    let text = fs::read_to_string(FULL_SCHEMA).expect("schema is readable");
    let schema = Schema::parse_and_validate(text, FULL_SCHEMA).unwrap_or_else(|e| panic!("{e}"));

    let fake = support::fake().await;
    let mut report = String::new();
    let mut failures = Vec::new();
    let mut answered = 0;
    for operation in operations(&schema) {
        let document = parse(&schema, operation.name, &operation.document);
        let shape = shape::of_operation(&schema, &document, operation.name);
        let answers = answers::all(&shape, &operation.overrides);
        let mut baseline = String::new();
        for answer in &answers {
            fake.server.reset().await;
            if let Some((before, body)) = &operation.before {
                Mock::given(support::operation_named(before))
                    .respond_with(ResponseTemplate::new(200).set_body_json(body))
                    .mount(&fake.server)
                    .await;
            }
            Mock::given(support::operation_named(operation.name))
                .respond_with(ResponseTemplate::new(200).set_body_json(&answer.body))
                .mount(&fake.server)
                .await;
            // A panic inside the client fails the test with the answer that caused it.
            let client = fake.client.clone();
            let call = operation.call;
            let outcome = tokio::spawn(async move { call(&client).await })
                .await
                .unwrap_or_else(|panic| {
                    panic!(
                        "{} · {}: the client panicked: {panic}",
                        operation.name, answer.change
                    )
                });
            let line = match &outcome {
                Ok(line) => line.clone(),
                Err(error) => format!("error: {error}"),
            };
            if matches!(answer.change, Change::Baseline) {
                baseline = line.clone();
            }
            failures.extend(check(operation.name, answer, &outcome, &baseline));
            let _ = writeln!(report, "{} · {} → {line}", operation.name, answer.change);
            answered += 1;
        }
    }
    assert!(answered > 100, "only {answered} answers were generated");
    assert!(
        report.contains(UNKNOWN_ENUM) || report.contains("unknown enum value"),
        "no unknown enum value was tried"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    if std::env::var_os("JOBIFY_BLESS").is_some() {
        fs::write(EXPECTED, &report).expect("write the expectations");
        return;
    }
    let expected = fs::read_to_string(EXPECTED).unwrap_or_default();
    if expected != report {
        let mut diff = String::new();
        let expected_lines: Vec<&str> = expected.lines().collect();
        let got_lines: Vec<&str> = report.lines().collect();
        for line in &expected_lines {
            if !got_lines.contains(line) {
                let _ = writeln!(diff, "- {line}");
            }
        }
        for line in &got_lines {
            if !expected_lines.contains(line) {
                let _ = writeln!(diff, "+ {line}");
            }
        }
        panic!(
            "outcomes differ from tests/schema_answers.expected (- expected, + got):\n{diff}\n\
             if the change is deliberate, run `JOBIFY_BLESS=1 cargo test -p buildkite-api \
             --test schema_answers`, review the file's diff and update docs/buildkite-api.md"
        );
    }
}
