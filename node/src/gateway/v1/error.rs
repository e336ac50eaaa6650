//! The native API's one error shape, `{"error": {"code": "...", "message":
//! "..."}}`, and its statuses: 400 a request that cannot be read (bad JSON,
//! a bad query or path value), 401 no valid token, 403 a read-only token
//! writing or a record this node's certificate does not allow, 404 nothing
//! there, 409 a write that the state refuses (a ban an allow overrides),
//! 413 a body over the limit, 415 a body that is not `application/json`,
//! 422 JSON that reads but whose values are wrong (a key that is not an
//! address, a duration over `max_ttl`), 503 the node cannot issue now.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use super::super::error::ApiError;
use crate::api::NodeError;

/// Why a native request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V1Error {
    /// The HTTP status.
    pub status: StatusCode,
    /// A stable, machine-readable code (`read_only`, `not_found`, ...).
    pub code: &'static str,
    /// What went wrong, for people.
    pub message: String,
}

impl V1Error {
    /// An error from its parts.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> V1Error {
        V1Error { status, code, message: message.into() }
    }

    /// 400: the request cannot be read.
    pub fn bad_request(message: impl Into<String>) -> V1Error {
        V1Error::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 404: nothing there.
    pub fn not_found(message: impl Into<String>) -> V1Error {
        V1Error::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 409: the state refuses the write.
    pub fn conflict(message: impl Into<String>) -> V1Error {
        V1Error::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// 422: a value in the body is wrong.
    pub fn invalid(message: impl Into<String>) -> V1Error {
        V1Error::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message)
    }
}

impl From<ApiError> for V1Error {
    fn from(error: ApiError) -> V1Error {
        let status = error.status();
        let code = match &error {
            ApiError::Unauthorized => "unauthorized",
            ApiError::BadRequest(_) => "bad_request",
            ApiError::NotFound(_) => "not_found",
            ApiError::NoRoute(_) => "no_route",
            ApiError::Method => "method_not_allowed",
            ApiError::TooLarge(_) => "too_large",
            ApiError::Timeout(_) => "timeout",
            ApiError::Encoding(_) => "unsupported_encoding",
            ApiError::Refused(_) => "refused",
            ApiError::ReadOnly(_) => "read_only",
            ApiError::Unavailable(_) => "unavailable",
        };
        V1Error::new(status, code, error.to_string())
    }
}

impl From<NodeError> for V1Error {
    /// As the compatibility API maps them, except that what the request
    /// asked for (a bad key, a cluster rule) is a 422: the body read, its
    /// values are wrong.
    fn from(error: NodeError) -> V1Error {
        let api = ApiError::from(error);
        match api {
            ApiError::BadRequest(message) => V1Error::invalid(message),
            other => other.into(),
        }
    }
}

impl IntoResponse for V1Error {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": { "code": self.code, "message": self.message } });
        let mut response = super::super::body::json_response(
            self.status,
            Bytes::from(body.to_string()),
            false,
            false,
        );
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if self.status == StatusCode::REQUEST_TIMEOUT {
            response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_has_the_one_shape() {
        let read_only = V1Error::from(ApiError::ReadOnly("web1".into()));
        assert_eq!((read_only.status.as_u16(), read_only.code), (403, "read_only"));
        let bad = V1Error::from(NodeError::UnknownKind("x".into()));
        assert_eq!((bad.status.as_u16(), bad.code), (422, "invalid"));
        let response = V1Error::from(ApiError::Unauthorized).into_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer");
    }
}
