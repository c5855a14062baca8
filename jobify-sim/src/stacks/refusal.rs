//! A refused request: the HTTP status and the `{"message": ...}` body Buildkite answers every
//! non-2xx Stacks API response with.

use axum::http::StatusCode;

/// A request the simulator refused, with the status and message it answered.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("HTTP {status}: {message}")]
pub struct Refusal {
    /// The HTTP status code (400, 401, 403, 404, 422, 429, ...).
    pub status: u16,
    /// The body's `message`.
    pub message: String,
}

impl Refusal {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Refusal {
            status: status.as_u16(),
            message: message.into(),
        }
    }

    /// 400: the parameters are malformed.
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Refusal::new(StatusCode::BAD_REQUEST, message)
    }

    /// 401: no valid credential for this endpoint.
    pub(crate) fn unauthorized(message: impl Into<String>) -> Self {
        Refusal::new(StatusCode::UNAUTHORIZED, message)
    }

    /// 403: the organization may not do this (its stack limit).
    pub(crate) fn forbidden(message: impl Into<String>) -> Self {
        Refusal::new(StatusCode::FORBIDDEN, message)
    }

    /// 404: no such stack, job or queue.
    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Refusal::new(StatusCode::NOT_FOUND, message)
    }

    /// 422: the request is well-formed but not valid for the resource's state.
    pub(crate) fn unprocessable(message: impl Into<String>) -> Self {
        Refusal::new(StatusCode::UNPROCESSABLE_ENTITY, message)
    }

    /// The status as an axum [`StatusCode`].
    pub(crate) fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}
