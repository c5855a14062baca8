//! `CancelJob`: cancel a command job (`jobTypeCommandCancel`).

use graphql_client::GraphQLQuery;

use super::job_state;
use crate::client::Client;
use crate::error::Result;
use crate::job::JobState;
use crate::transport::{Fetched, Tally};

/// Types generated from the operation documents; private to this file.
mod gql {
    #![allow(unreachable_pub, clippy::all)]
    use super::*;

    #[derive(GraphQLQuery)]
    #[graphql(
        schema_path = "graphql/schema.graphql",
        query_path = "graphql/CancelJob.graphql",
        response_derives = "Debug"
    )]
    pub(super) struct CancelJob;
}

impl Client {
    /// Cancels a command job by its GraphQL id and returns the state Buildkite reports
    /// afterwards (usually `CANCELED` or `CANCELING`), or `None` when it answered without
    /// the job (the schema allows a null payload): without GraphQL errors the mutation
    /// succeeded.
    pub async fn cancel_job(&self, job_id: &str) -> Result<Fetched<Option<JobState>>> {
        const OPERATION: &str = "CancelJob";
        let variables = gql::cancel_job::Variables {
            id: job_id.to_owned(),
        };
        let (data, exchange) = self.run::<gql::CancelJob>(OPERATION, variables).await?;
        let state = data.job_type_command_cancel.map(|payload| {
            let state = job_state(&payload.job_type_command.state);
            tracing::info!(job = %payload.job_type_command.uuid, %state, "cancelled Buildkite job");
            state
        });
        Ok(Tally::single(exchange, state))
    }
}
