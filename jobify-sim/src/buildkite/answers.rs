//! Answers Buildkite's schema allows that the simulator does not send unless asked: a test
//! switches them on to show that jobify copes with every answer the schema permits, not
//! only the ones our own client expects.

use std::collections::BTreeSet;

use uuid::Uuid;

/// Which schema-permitted answers the simulator sends. All off by default.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SchemaAnswers {
    /// `jobAnnotate` and `buildAnnotate` succeed (the annotation is stored) but answer
    /// `annotation: null`, as `JobAnnotatePayload.annotation` is nullable.
    pub null_annotations: bool,
    /// `jobTypeCommandCancel` succeeds (the job is cancelled) but answers a null payload.
    pub null_cancel_payloads: bool,
    /// These jobs fail to resolve wherever they are read (a page's edges, `job(uuid:)`,
    /// `node(id:)`): the node is null and `errors` names its path, as a resolver error in
    /// graphql-ruby reports it. Mutations on them still work.
    pub failing_jobs: BTreeSet<Uuid>,
}

/// The message of a failing job's resolver error.
pub(crate) const FAILING_JOB: &str = "Internal server error while resolving this job";
