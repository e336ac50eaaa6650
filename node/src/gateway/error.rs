//! The gateway's one error type and how it becomes a response: a status
//! code and a JSON body `{"error": "..."}`, whatever went wrong.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No token, or one the gateway does not know.
    #[error(
        "missing or invalid token: send Authorization: Bearer TOKEN with a token from the gateway's configuration"
    )]
    Unauthorized,
    /// The request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// The address is not in the lists.
    #[error("{0}")]
    NotFound(String),
    /// No such endpoint.
    #[error("no such endpoint: {0}")]
    NoRoute(String),
    /// The endpoint exists with another method.
    #[error("method not allowed on this endpoint")]
    Method,
    /// The body, or the body after decompression, is over the limit.
    #[error("the request body is over the limit of {0} bytes (counted after decompression too)")]
    TooLarge(usize),
    /// The body did not arrive in time.
    #[error("the request body did not arrive within {} s: send it at once", .0.as_secs())]
    Timeout(std::time::Duration),
    /// A `Content-Encoding` other than gzip.
    #[error("unsupported Content-Encoding {0:?}: send the body plain or gzip-compressed")]
    Encoding(String),
    /// The node refuses the record itself (its certificate does not allow
    /// it): asking again will not help.
    #[error("{0}")]
    Refused(String),
    /// The node cannot issue records now (clock skew, shutting down).
    #[error("{0}")]
    Unavailable(String),
}

impl ApiError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) | ApiError::NoRoute(_) => StatusCode::NOT_FOUND,
            ApiError::Method => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::Encoding(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Refused(_) => StatusCode::FORBIDDEN,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.to_string() }).to_string();
        let mut response =
            super::body::json_response(self.status(), Bytes::from(body), false, false);
        if matches!(self, ApiError::Timeout(_)) {
            // The rest of the body may still come: the connection ends here.
            response.headers_mut().insert(
                axum::http::header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
        }
        if matches!(self, ApiError::Unauthorized) {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}
