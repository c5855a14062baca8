//! The mutations the simulator serves, the two jobify sends: `jobTypeCommandCancel` and
//! `jobAnnotate`. Refusals come back as field errors (in `errors`, with the payload null),
//! as Buildkite reports them.

use apollo_compiler::resolvers::{FieldError, ResolvedValue};
use apollo_compiler::response::JsonMap;
use uuid::Uuid;

use super::filter::str_arg;
use super::ids::{NodeKind, parse_node_id};
use super::job::Annotation;
use super::resolve::{Kind, Obj, not_served};

type Resolved<'a> = Result<ResolvedValue<'a>, FieldError>;

fn input(args: &JsonMap) -> Result<&JsonMap, FieldError> {
    args.get("input")
        .and_then(|v| v.as_object())
        .ok_or_else(|| FieldError {
            message: "Argument 'input' is required".to_owned(),
        })
}

fn node_of(input: &JsonMap, key: &str, kind: NodeKind, what: &str) -> Result<Uuid, FieldError> {
    let id = str_arg(input, key).unwrap_or_default();
    match parse_node_id(id) {
        Some((k, uuid)) if k == kind => Ok(uuid),
        _ => Err(FieldError {
            message: format!("No {what} found with ID {id:?}"),
        }),
    }
}

fn annotation(input: &JsonMap) -> Annotation {
    Annotation {
        uuid: Uuid::new_v4(),
        context: str_arg(input, "context").unwrap_or("default").to_owned(),
        style: str_arg(input, "style").unwrap_or("DEFAULT").to_owned(),
        body: str_arg(input, "body").unwrap_or_default().to_owned(),
    }
}

/// The stored annotation, or null when [`super::SchemaAnswers::null_annotations`] is on.
fn annotation_answer(state: &super::state::State, note: Annotation) -> Option<Kind> {
    (!state.answers.null_annotations).then_some(Kind::Annotation(note))
}

fn client_mutation_id(input: &JsonMap) -> Option<String> {
    str_arg(input, "clientMutationId").map(str::to_owned)
}

/// Resolves a `Mutation` field.
pub(crate) fn resolve<'a, 'c: 'a>(root: &Obj<'c>, field: &str, args: &JsonMap) -> Resolved<'a> {
    let input = input(args)?;
    let mut state = root.cx.state.borrow_mut();
    let payload = match field {
        "jobTypeCommandCancel" => {
            let job = node_of(input, "id", NodeKind::CommandJob, "job")?;
            state.cancel(job, true).map_err(|e| FieldError {
                message: e.to_string(),
            })?;
            if state.answers.null_cancel_payloads {
                return Ok(ResolvedValue::null());
            }
            Kind::Payload {
                type_name: "JobTypeCommandCancelPayload",
                client_mutation_id: client_mutation_id(input),
                fields: vec![("jobTypeCommand", Some(Kind::Job(job)))],
            }
        }
        "jobAnnotate" => {
            let job = node_of(input, "jobId", NodeKind::CommandJob, "job")?;
            let note = annotation(input);
            let append = input
                .get("append")
                .and_then(|v| v.as_bool())
                .unwrap_or(false);
            let note = state
                .annotate_job(job, note, append)
                .ok_or_else(|| FieldError {
                    message: format!("No job found with ID {job}"),
                })?;
            Kind::Payload {
                type_name: "JobAnnotatePayload",
                client_mutation_id: client_mutation_id(input),
                fields: vec![
                    ("annotation", annotation_answer(&state, note)),
                    ("job", Some(Kind::Job(job))),
                ],
            }
        }
        _ => return Err(not_served("Mutation", field)),
    };
    drop(state);
    Ok(root.obj(payload))
}
