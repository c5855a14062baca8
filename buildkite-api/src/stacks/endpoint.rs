//! The Stacks API's endpoints and their rate-limit scopes.

/// One Stacks API endpoint. Buildkite meters each on its own (per organization, cluster and
/// stack key, in a one-second sliding window), so a 429 from one does not hold the others.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StacksEndpoint {
    /// `GET /token`.
    Token,
    /// `POST /stacks/register`.
    Register,
    /// `POST /stacks/:key/deregister`.
    Deregister,
    /// `GET /stacks/:key/scheduled-jobs`.
    ListScheduledJobs,
    /// `PUT /stacks/:key/scheduled-jobs/batch-reserve`.
    Reserve,
    /// `GET /stacks/:key/jobs/:id`.
    GetJob,
    /// `POST /stacks/:key/jobs/get-states`.
    GetStates,
    /// `POST /stacks/:key/jobs/:id/finish`.
    Finish,
    /// `POST /stacks/:key/notifications`.
    Notifications,
    /// `POST /stacks/:key/job-acquisition-tokens`.
    JobAcquisitionTokens,
}

impl StacksEndpoint {
    /// Every endpoint.
    pub const ALL: [StacksEndpoint; 10] = [
        StacksEndpoint::Token,
        StacksEndpoint::Register,
        StacksEndpoint::Deregister,
        StacksEndpoint::ListScheduledJobs,
        StacksEndpoint::Reserve,
        StacksEndpoint::GetJob,
        StacksEndpoint::GetStates,
        StacksEndpoint::Finish,
        StacksEndpoint::Notifications,
        StacksEndpoint::JobAcquisitionTokens,
    ];

    /// The `RateLimit-Scope` Buildkite names the endpoint's budget by. Buildkite documents no
    /// scope for the job acquisition token endpoint; this client holds it on its own.
    pub fn scope(self) -> &'static str {
        match self {
            StacksEndpoint::ListScheduledJobs => "list-scheduled-jobs",
            StacksEndpoint::Reserve => "batch-reserve",
            StacksEndpoint::GetJob => "show-job",
            StacksEndpoint::GetStates => "batch-load-job-states",
            StacksEndpoint::Finish => "finish-job",
            StacksEndpoint::Notifications => "stack-notification",
            StacksEndpoint::JobAcquisitionTokens => "job-acquisition-tokens",
            StacksEndpoint::Token | StacksEndpoint::Register | StacksEndpoint::Deregister => {
                "default"
            }
        }
    }

    /// Requests per second Buildkite documents as the endpoint's default limit, where it
    /// documents one (`None` for register, the token and job acquisition tokens).
    pub fn documented_limit(self) -> Option<u32> {
        match self {
            StacksEndpoint::ListScheduledJobs => Some(10),
            StacksEndpoint::Reserve => Some(10),
            StacksEndpoint::GetJob => Some(1000),
            StacksEndpoint::GetStates => Some(20),
            StacksEndpoint::Finish => Some(100),
            StacksEndpoint::Notifications => Some(200),
            StacksEndpoint::Deregister => Some(10),
            StacksEndpoint::Token
            | StacksEndpoint::Register
            | StacksEndpoint::JobAcquisitionTokens => None,
        }
    }

    /// A short name for errors and logs.
    pub fn name(self) -> &'static str {
        match self {
            StacksEndpoint::Token => "token",
            StacksEndpoint::Register => "register stack",
            StacksEndpoint::Deregister => "deregister stack",
            StacksEndpoint::ListScheduledJobs => "list scheduled jobs",
            StacksEndpoint::Reserve => "reserve jobs",
            StacksEndpoint::GetJob => "get job",
            StacksEndpoint::GetStates => "get job states",
            StacksEndpoint::Finish => "finish job",
            StacksEndpoint::Notifications => "stack notifications",
            StacksEndpoint::JobAcquisitionTokens => "job acquisition tokens",
        }
    }
}

/// A path segment escaped as the Stacks API needs: percent-encoded, and `.` written `%2E`
/// because Buildkite's router does not accept dots in some segments.
pub(crate) fn segment(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'~' => {
                escaped.push(char::from(byte));
            }
            other => escaped.push_str(&format!("%{other:02X}")),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_escape_dots_slashes_and_spaces() {
        assert_eq!(segment("jobify-prod_1"), "jobify-prod_1");
        assert_eq!(segment("a.b/c d"), "a%2Eb%2Fc%20d");
        assert_eq!(segment("é"), "%C3%A9");
    }

    #[test]
    fn every_metered_endpoint_has_a_scope_of_its_own() {
        let mut scopes: Vec<&str> = StacksEndpoint::ALL
            .iter()
            .filter(|endpoint| endpoint.scope() != "default")
            .map(|endpoint| endpoint.scope())
            .collect();
        let all = scopes.len();
        scopes.dedup();
        assert_eq!(scopes.len(), all);
    }
}
