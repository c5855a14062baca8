//! The GraphQL operations: generated request/response types (private to this module tree)
//! and the client methods that run them and map the results to domain types.
//!
//! Each operation is a document in `graphql/`, validated against `graphql/schema.graphql`
//! at compile time by `graphql_client` and against Buildkite's full schema by
//! `tests/conformance.rs`.

mod annotate;
mod cancel;
mod job_states;
mod partial;
mod pipeline_builds;
mod scheduled_jobs;

pub use annotate::{Annotation, AnnotationStyle};
pub use job_states::{JOB_STATES_BATCH, job_states_document};
pub use pipeline_builds::PipelineBuildsRequest;
pub use scheduled_jobs::{Priorities, ScheduledJobs, ScheduledJobsPage, ScheduledJobsRequest};

use jiff::Timestamp;

use crate::build::BuildState;
use crate::error::{Error, Result};
use crate::job::JobState;

// Cargo does not notice edits to files the derives read; these make it.
const _: &str = include_str!("../../graphql/schema.graphql");
const _: &str = include_str!("../../graphql/ScheduledJobs.graphql");
const _: &str = include_str!("../../graphql/Pipeline.graphql");
const _: &str = include_str!("../../graphql/PipelineBuilds.graphql");
const _: &str = include_str!("../../graphql/BuildJobs.graphql");
const _: &str = include_str!("../../graphql/JobState.graphql");
const _: &str = include_str!("../../graphql/CancelJob.graphql");
const _: &str = include_str!("../../graphql/AnnotateJob.graphql");
const _: &str = include_str!("../../graphql/AnnotateBuild.graphql");

/// Buildkite's `DateTime` scalar arrives as an ISO 8601 string; mapping parses it.
type DateTime = String;

/// Parses an optional `DateTime` field.
fn timestamp(
    operation: &'static str,
    field: &str,
    value: Option<DateTime>,
) -> Result<Option<Timestamp>> {
    value
        .map(|text| {
            text.parse::<Timestamp>().map_err(|e| Error::InvalidField {
                operation,
                field: field.to_owned(),
                value: text.clone(),
                reason: e.to_string(),
            })
        })
        .transpose()
}

/// The largest page Buildkite serves for a connection.
const MAX_PAGE_SIZE: u16 = 500;

fn page_size(requested: u16) -> i64 {
    i64::from(requested.clamp(1, MAX_PAGE_SIZE))
}

/// What a cursor-paginated call does after a page.
#[derive(Debug, PartialEq, Eq)]
enum NextPage {
    /// Buildkite has no more pages.
    Done,
    /// Fetch the page beyond this cursor (`after` it paging forwards, `before` it paging
    /// backwards).
    Fetch(String),
    /// More pages exist but the call stops: its page bound is reached, or Buildkite said
    /// there is more without giving a cursor. The result reports itself truncated.
    Truncated,
}

/// Decides the next step after `pages_fetched` pages of at most `max_pages` (0 means 1).
///
/// `has_more` and `cursor` are the page's `pageInfo` in the direction the call pages:
/// `hasNextPage` and `endCursor` forwards (`first`/`after`), `hasPreviousPage` and
/// `startCursor` backwards (`last`/`before`).
fn next_page(
    has_more: bool,
    cursor: Option<String>,
    pages_fetched: u16,
    max_pages: u16,
) -> NextPage {
    match (has_more, cursor) {
        (false, _) => NextPage::Done,
        (true, Some(cursor)) if pages_fetched < max_pages.max(1) => NextPage::Fetch(cursor),
        (true, _) => NextPage::Truncated,
    }
}

fn count(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// A generated `JobStates` value (known, or `Other(name)`) as the domain [`JobState`].
fn job_state(value: &impl serde::Serialize) -> JobState {
    JobState::from_graphql(&schema_name(value))
}

/// A generated `BuildStates` value (known, or `Other(name)`) as the domain [`BuildState`].
fn build_state(value: &impl serde::Serialize) -> BuildState {
    BuildState::from_graphql(&schema_name(value))
}

/// The schema spelling of a generated enum value (`"SCHEDULED"`): generated enums serialize
/// to exactly that string, `Other(name)` included. Anything else cannot happen for them; it would map to an empty
/// (and therefore unknown) value rather than panic.
fn schema_name(value: &impl serde::Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_page_follows_a_cursor_until_the_bound() {
        let cursor = || Some("c".to_owned());
        assert_eq!(next_page(false, cursor(), 1, 3), NextPage::Done);
        assert_eq!(
            next_page(true, cursor(), 1, 3),
            NextPage::Fetch("c".to_owned())
        );
        assert_eq!(next_page(true, cursor(), 3, 3), NextPage::Truncated);
        assert_eq!(next_page(true, cursor(), 1, 0), NextPage::Truncated);
    }

    #[test]
    fn next_page_without_a_cursor_is_truncated_not_done() {
        assert_eq!(next_page(true, None, 1, 3), NextPage::Truncated);
        assert_eq!(next_page(false, None, 1, 3), NextPage::Done);
    }
}
