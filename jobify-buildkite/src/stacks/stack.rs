//! Joining Buildkite as a stack: the agent token must belong to a cluster, and the stack is
//! registered (idempotently) before any other call.

use buildkite_api::stacks::{RegisterStack, StacksClient};

/// Why the stack could not join.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    /// The agent token is not a cluster agent token; the Stacks API takes no other.
    #[error(
        "the agent token belongs to no cluster; the Stacks API takes only a cluster agent \
         token (bkct_...): create one in the cluster's settings, or use `source = \"graphql\"`"
    )]
    Unclustered,
    /// Buildkite refused the token or the registration.
    #[error("{what}")]
    Api {
        /// What was being done.
        what: &'static str,
        /// The client's error.
        #[source]
        source: buildkite_api::Error,
    },
}

impl StackError {
    /// Whether trying again later may succeed: a timeout, a 5xx, a 429, or an answer that
    /// could not be read (a truncated or garbled body; the poll loop retries those too). A
    /// refused token, a refused registration or a token outside any cluster will not fix
    /// itself.
    pub fn is_transient(&self) -> bool {
        match self {
            StackError::Unclustered => false,
            StackError::Api { source, .. } => {
                source.is_transient()
                    || matches!(
                        source,
                        buildkite_api::Error::Decode { .. }
                            | buildkite_api::Error::MissingField { .. }
                    )
            }
        }
    }
}

/// Checks the token and registers `stack_key` as a custom stack serving `queue`. Returns the
/// cluster's name, for the log.
pub async fn register_stack(
    client: &StacksClient,
    stack_key: &str,
    queue: &str,
) -> Result<Option<String>, StackError> {
    let identity = client
        .token_identity()
        .await
        .map_err(|source| StackError::Api {
            what: "reading the agent token's identity (GET /v3/token) failed",
            source,
        })?;
    if !identity.is_clustered() {
        return Err(StackError::Unclustered);
    }
    client
        .register(&RegisterStack::custom(stack_key, queue))
        .await
        .map_err(|source| StackError::Api {
            what: "registering the stack (POST /v3/stacks/register) failed",
            source,
        })?;
    Ok(identity.cluster_name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(source: buildkite_api::Error) -> StackError {
        StackError::Api {
            what: "registering the stack failed",
            source,
        }
    }

    #[test]
    fn an_unreadable_answer_is_tried_again_a_refusal_is_not() {
        let garbled = serde_json::from_str::<serde_json::Value>("{").expect_err("not JSON");
        assert!(
            api(buildkite_api::Error::Decode {
                operation: "register stack",
                path: ".".to_owned(),
                source: garbled,
            })
            .is_transient()
        );
        assert!(
            api(buildkite_api::Error::MissingField {
                operation: "token identity",
                field: "cluster".to_owned(),
            })
            .is_transient()
        );
        assert!(
            api(buildkite_api::Error::Status {
                endpoint: "http://x/v3/stacks/register".to_owned(),
                status: 503,
                body: String::new(),
            })
            .is_transient()
        );
        assert!(
            !api(buildkite_api::Error::Status {
                endpoint: "http://x/v3/stacks/register".to_owned(),
                status: 422,
                body: String::new(),
            })
            .is_transient()
        );
        assert!(!StackError::Unclustered.is_transient());
    }
}
