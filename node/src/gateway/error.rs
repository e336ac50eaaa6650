//! The gateway's one error type and how it becomes a response: a status
//! code and a JSON body `{"error": "..."}`, whatever went wrong.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use crate::api::NodeError;

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
    /// The token may only read.
    #[error("the token of {0} may only read: writes need a token with role \"write\" or \"admin\"")]
    ReadOnly(String),
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
            ApiError::Refused(_) | ApiError::ReadOnly(_) => StatusCode::FORBIDDEN,
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

impl From<NodeError> for ApiError {
    /// The status by the step that failed, never by the message: the
    /// request itself (a bad key, a cluster rule) is a 400, what this node's
    /// certificate does not allow (role, prefix) a 403, and what may pass
    /// (clock skew, the store, shutting down) a 503.
    fn from(error: NodeError) -> ApiError {
        let message = error.to_string();
        match error {
            NodeError::BadKey(_)
            | NodeError::BadAddress(_)
            | NodeError::UnknownKind(_)
            | NodeError::TooManyOrders { .. }
            | NodeError::Rule(_)
            | NodeError::NoExpiry(_)
            | NodeError::BadJail(_)
            | NodeError::BadBantime(_)
            | NodeError::BadRevocation(_)
            | NodeError::BadPeer(_) => ApiError::BadRequest(message),
            NodeError::NotAllowed(_) | NodeError::CertRefused(_) => ApiError::Refused(message),
            NodeError::ClockSkew { .. } | NodeError::ClockAhead { .. } => {
                ApiError::Unavailable(format!("the node refused: {message}"))
            }
            NodeError::SyncUnfinished | NodeError::Store(_) | NodeError::ShuttingDown => {
                ApiError::Unavailable(message)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use banmesh_crdt::{Hlc, Key, KeyAhead, RecordError};
    use banmesh_keys::{CertError, RecordCheckError};

    use super::*;

    #[test]
    fn node_errors_map_to_statuses_by_variant() {
        let key = Key::parse("192.0.2.7").expect("key").key;
        let ahead = KeyAhead { greatest: Hlc::from_millis(10_000), wall_ms: 0, skew_bound_ms: 1 };
        let revoked = RecordCheckError::Cert(CertError::Revoked {
            node: banmesh_keys::SecretKey::generate().expect("key").public(),
        });
        let cases = [
            (NodeError::BadKey(Key::parse("not-an-ip").expect_err("bad")), 400),
            (NodeError::Rule(RecordError::Strikes), 400),
            (NodeError::UnknownKind("ban!".into()), 400),
            (NodeError::NotAllowed(revoked), 403),
            (NodeError::ClockSkew { median_ms: -600_000 }, 503),
            (NodeError::ClockAhead { key, ahead }, 503),
            (NodeError::ShuttingDown, 503),
        ];
        for (error, status) in cases {
            let shown = error.to_string();
            let api = ApiError::from(error);
            assert_eq!(api.status().as_u16(), status, "{shown}");
        }
    }
}
