//! `JobStates`: the current state of many jobs in one request.
//!
//! Buildkite's schema has no plural lookup (`nodes`) and no uuid filter on job connections,
//! so the cheapest way is one `job(uuid:)` field per job under aliases `j0`, `j1`, ... in a
//! single query, built at run time from the selection of `graphql/JobState.graphql`. Each
//! alias costs 1 requested point (the `Job` union); scalars and enums are free.

use std::fmt::Write;

use graphql_client::GraphQLQuery;
use serde::Serialize;

use super::job_state;
use super::partial::{self, ItemErrors};
use crate::client::Client;
use crate::error::{Error, Result};
use crate::job::JobLookup;
use crate::transport::{Fetched, Tally, decode_value_at};

/// Types generated from the operation documents; private to this file.
mod gql {
    #![allow(unreachable_pub, clippy::all)]
    use super::*;

    #[derive(GraphQLQuery)]
    #[graphql(
        schema_path = "graphql/schema.graphql",
        query_path = "graphql/JobState.graphql",
        response_derives = "Debug"
    )]
    // Only the generated response types are used: the batch document is built at run time.
    #[allow(dead_code)]
    pub(super) struct JobState;
}

const OPERATION: &str = "JobStates";

/// The most jobs looked up per request (requested complexity 1 each).
pub const JOB_STATES_BATCH: usize = 100;

/// The selection on `Job`, exactly as in `graphql/JobState.graphql` (a unit test checks).
const JOB_SELECTION: &str = "{
    __typename
    ... on JobTypeCommand {
      id
      uuid
      state
    }
  }";

/// The batched query for `count` jobs: variables `$u0..`, aliases `j0..`.
///
/// Public so simulators and tests can validate and serve exactly what the client sends.
pub fn job_states_document(count: usize) -> String {
    let mut document = String::from("query JobStates(");
    for i in 0..count {
        let separator = if i == 0 { "" } else { ", " };
        // Writing to a String cannot fail.
        let _ = write!(document, "{separator}$u{i}: ID!");
    }
    document.push_str(") {\n");
    for i in 0..count {
        let _ = writeln!(document, "  j{i}: job(uuid: $u{i}) {JOB_SELECTION}");
    }
    document.push_str("}\n");
    document
}

#[derive(Serialize)]
struct Body {
    query: String,
    #[serde(rename = "operationName")]
    operation_name: &'static str,
    variables: serde_json::Map<String, serde_json::Value>,
}

impl Client {
    /// The current state of each job, by uuid, in `ceil(n / 100)` requests. The result has
    /// one entry per uuid, in the order given. A response that lacks one of the aliases is
    /// [`Error::MissingField`] naming it (`j3`), not a [`JobLookup::NotFound`]. A job
    /// Buildkite reported a GraphQL error for, or sent in a shape this client cannot decode,
    /// is [`JobLookup::Unreadable`]; the other jobs of the request are unaffected.
    pub async fn job_states(&self, uuids: &[String]) -> Result<Fetched<Vec<JobLookup>>> {
        let mut tally = Tally::default();
        let mut lookups = Vec::with_capacity(uuids.len());
        for chunk in uuids.chunks(JOB_STATES_BATCH) {
            let variables = chunk
                .iter()
                .enumerate()
                .map(|(i, uuid)| (format!("u{i}"), serde_json::Value::String(uuid.clone())))
                .collect();
            let body = Body {
                query: job_states_document(chunk.len()),
                operation_name: OPERATION,
                variables,
            };
            let (answer, exchange) = self.post_graphql_partial(OPERATION, &body).await?;
            tally.record(exchange);
            let mut errors =
                ItemErrors::split(OPERATION, answer.errors, &answer.data, &[], partial::alias)?;
            let mut data = answer.data;
            for (i, uuid) in chunk.iter().enumerate() {
                let alias = format!("j{i}");
                // `null` means Buildkite has no such job; an absent alias means the response
                // is not an answer to this query, and must not read as "job gone".
                let value = data
                    .get_mut(&alias)
                    .map(serde_json::Value::take)
                    .ok_or_else(|| Error::MissingField {
                        operation: OPERATION,
                        field: alias.clone(),
                    })?;
                // One job Buildkite failed to resolve, or sent in a shape this client does
                // not know, leaves the others' states readable.
                let unreadable = |reason: String| JobLookup::Unreadable {
                    uuid: uuid.clone(),
                    reason,
                };
                let found = match errors.take(&alias) {
                    Some(reason) => unreadable(reason),
                    None => match decode_value_at(OPERATION, &format!("data.{alias}"), value) {
                        Ok(job) => lookup(uuid, job),
                        Err(error) => unreadable(error.to_string()),
                    },
                };
                if let JobLookup::Unreadable { reason, .. } = &found {
                    tracing::warn!(job = %uuid, %reason, "cannot read a job's state");
                }
                lookups.push(found);
            }
        }
        Ok(tally.finish(lookups))
    }
}

fn lookup(uuid: &str, job: Option<gql::job_state::JobStateJob>) -> JobLookup {
    use gql::job_state::JobStateJob as Job;
    match job {
        None => JobLookup::NotFound {
            uuid: uuid.to_owned(),
        },
        Some(Job::JobTypeCommand(job)) => JobLookup::Command {
            id: job.id,
            uuid: job.uuid,
            state: job_state(&job.state),
        },
        Some(other) => JobLookup::NotCommand {
            uuid: uuid.to_owned(),
            typename: format!("{other:?}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batched_selection_is_the_one_in_the_operation_document() {
        let document = include_str!("../../graphql/JobState.graphql");
        assert!(
            document.contains(&format!("job(uuid: $uuid) {JOB_SELECTION}")),
            "JOB_SELECTION drifted from graphql/JobState.graphql"
        );
    }

    #[test]
    fn batched_document_declares_one_variable_and_alias_per_job() {
        let document = job_states_document(2);
        assert!(document.starts_with("query JobStates($u0: ID!, $u1: ID!) {"));
        assert!(document.contains("j0: job(uuid: $u0)"));
        assert!(document.contains("j1: job(uuid: $u1)"));
        assert!(!document.contains("j2:"));
    }
}
