//! `AnnotateJob` / `AnnotateBuild`: messages for a pipeline's authors.

use graphql_client::GraphQLQuery;

use crate::client::Client;
use crate::error::Result;
use crate::transport::{Fetched, Tally};

/// Types generated from the operation documents; private to this file.
mod gql {
    #![allow(unreachable_pub, clippy::all)]
    use super::*;

    #[derive(GraphQLQuery)]
    #[graphql(
        schema_path = "graphql/schema.graphql",
        query_path = "graphql/AnnotateJob.graphql",
        response_derives = "Debug"
    )]
    pub(super) struct AnnotateJob;

    #[derive(GraphQLQuery)]
    #[graphql(
        schema_path = "graphql/schema.graphql",
        query_path = "graphql/AnnotateBuild.graphql",
        response_derives = "Debug"
    )]
    pub(super) struct AnnotateBuild;
}

/// How Buildkite renders an annotation (`AnnotationStyle`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum AnnotationStyle {
    /// Plain.
    #[default]
    Default,
    /// Informational (blue).
    Info,
    /// Success (green).
    Success,
    /// Warning (orange).
    Warning,
    /// Error (red).
    Error,
}

impl AnnotationStyle {
    /// The value as spelled in the schema.
    pub fn as_str(self) -> &'static str {
        match self {
            AnnotationStyle::Default => "DEFAULT",
            AnnotationStyle::Info => "INFO",
            AnnotationStyle::Success => "SUCCESS",
            AnnotationStyle::Warning => "WARNING",
            AnnotationStyle::Error => "ERROR",
        }
    }
}

/// A message to attach to a job or build.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Annotation {
    /// The message, in Markdown (Buildkite renders a safe subset of HTML too).
    pub body: String,
    /// How it is rendered.
    pub style: AnnotationStyle,
    /// Annotations with the same context replace (or, with `append`, extend) each other.
    pub context: String,
    /// Append to an existing annotation of the same context instead of replacing it.
    pub append: bool,
}

impl Annotation {
    /// An error-styled annotation with the given context.
    pub fn error(context: &str, body: &str) -> Self {
        Annotation {
            body: body.to_owned(),
            style: AnnotationStyle::Error,
            context: context.to_owned(),
            append: false,
        }
    }
}

impl Client {
    /// Attaches an annotation to a job (by GraphQL id). Returns the annotation's uuid, or
    /// `None` when Buildkite answered without one (the schema allows `annotation: null`):
    /// an answer without GraphQL errors is a success either way.
    pub async fn annotate_job(
        &self,
        job_id: &str,
        annotation: &Annotation,
    ) -> Result<Fetched<Option<String>>> {
        const OPERATION: &str = "AnnotateJob";
        use gql::annotate_job as generated;
        let variables = generated::Variables {
            job: job_id.to_owned(),
            body: annotation.body.clone(),
            style: generated::AnnotationStyle::Other(annotation.style.as_str().to_owned()),
            context: annotation.context.clone(),
            append: annotation.append,
        };
        let (data, exchange) = self.run::<gql::AnnotateJob>(OPERATION, variables).await?;
        // The schema lets the payload and its annotation be null; without errors the
        // mutation succeeded all the same, and only the uuid is unknown.
        let uuid = data
            .job_annotate
            .and_then(|payload| payload.annotation)
            .map(|annotation| annotation.uuid);
        Ok(Tally::single(exchange, uuid))
    }

    /// Attaches an annotation to a build (by GraphQL id). Returns the annotation's uuid, or
    /// `None` when Buildkite answered without one, as [`Client::annotate_job`] does.
    pub async fn annotate_build(
        &self,
        build_id: &str,
        annotation: &Annotation,
    ) -> Result<Fetched<Option<String>>> {
        const OPERATION: &str = "AnnotateBuild";
        use gql::annotate_build as generated;
        let variables = generated::Variables {
            build: build_id.to_owned(),
            body: annotation.body.clone(),
            style: generated::AnnotationStyle::Other(annotation.style.as_str().to_owned()),
            context: annotation.context.clone(),
            append: annotation.append,
        };
        let (data, exchange) = self.run::<gql::AnnotateBuild>(OPERATION, variables).await?;
        // The schema lets the payload and its annotation be null; without errors the
        // mutation succeeded all the same, and only the uuid is unknown.
        let uuid = data
            .build_annotate
            .and_then(|payload| payload.annotation)
            .map(|annotation| annotation.uuid);
        Ok(Tally::single(exchange, uuid))
    }
}
