//! The native API's OpenAPI 3.1 document, generated from the handlers'
//! `#[utoipa::path]` attributes and the response types' `ToSchema`
//! derives, served at `GET /openapi.json` (no token: it describes, it
//! holds no data) and committed as `node/openapi.json` (a test fails when
//! the two differ). utoipa's own derive builds it; `utoipa-axum`'s router
//! is not used, since it takes the axum path from the documented one and
//! so cannot route `{*key}` (a network written with its `/` as is).

use std::sync::OnceLock;

use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use super::counts::{Counts, JailCount, OriginCount, Tally};
use super::decisions::{Decision, DecisionPage, OriginView};
use super::explain::{Explained, Explanation};
use crate::daemon::queries::native::{BackendHold, Enforcement, LeftOut};

/// Every error: `{"error": {"code", "message"}}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// An error's code and message.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable code: `bad_request`, `unauthorized`, `read_only`,
    /// `network_needs_admin`, `refused`, `not_found`, `no_route`,
    /// `method_not_allowed`, `conflict`, `too_large`, `timeout`,
    /// `unsupported_media_type`, `unsupported_encoding`, `invalid`,
    /// `unavailable`, `csrf` (a dashboard write without its CSRF token or
    /// from another origin).
    pub code: String,
    /// What went wrong, for people.
    pub message: String,
}

/// The body of `POST /v1/bans` and `POST /v1/allows`.
#[derive(Debug, Serialize, ToSchema)]
pub struct WriteRequest {
    /// An address or, with an `admin` token, a network.
    pub key: String,
    /// How long (`90s`, `1h`, `7d`); the node's default when left out.
    pub duration: Option<String>,
    /// Until lifted: the node renews it. Not with `duration`.
    pub permanent: Option<bool>,
    /// The jail (bans only).
    pub jail: Option<String>,
    /// Why.
    pub reason: Option<String>,
}

/// A record written.
#[derive(Debug, Serialize, ToSchema)]
pub struct Written {
    /// The decision as stored.
    pub decision: Decision,
    /// Sentences for the operator (a covering ban remains, ...).
    pub notes: Vec<String>,
}

/// A ban or allow lifted.
#[derive(Debug, Serialize, ToSchema)]
pub struct Lifted {
    /// The key lifted.
    pub lifted: String,
    /// The unban or disallow issued.
    pub record: Decision,
    /// Sentences for the operator.
    pub notes: Vec<String>,
}

/// Adds the bearer token scheme.
struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let scheme = HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build();
        components.add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(title = "banmesh gateway: native API", description = "The /v1/ API on a banmesh node's gateway listener. Tokens come from [gateway.tokens]; read tokens may only GET, write tokens write single addresses, admin tokens networks too. The dashboard's session cookie (banmesh_session, from POST /ui/login) is accepted in place of the token; a write with it also needs the X-CSRF-Token header GET /ui/session gives, and an Origin, when sent, of this listener."),
    paths(
        super::decisions, super::post_ban, super::delete_ban, super::post_allow,
        super::delete_allow, super::explain, super::counts, super::status, super::peers
    ),
    components(schemas(
        ErrorBody, ErrorDetail, WriteRequest, Written, Lifted, Decision, OriginView,
        DecisionPage, Explanation, Explained, Enforcement, LeftOut, BackendHold, Counts, Tally,
        JailCount, OriginCount
    )),
    modifiers(&Bearer),
    tags((name = "v1", description = "the native API"))
)]
pub struct ApiDoc;

/// The document as JSON, made once.
pub fn document() -> Bytes {
    static JSON: OnceLock<Bytes> = OnceLock::new();
    JSON.get_or_init(|| Bytes::from(ApiDoc::openapi().to_pretty_json().unwrap_or_default())).clone()
}

/// `GET /openapi.json`.
pub async fn serve() -> Response {
    super::super::body::json_response(StatusCode::OK, document(), false, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_names_every_v1_path() {
        let doc: serde_json::Value = serde_json::from_slice(&document()).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "{doc}");
        let paths = doc["paths"].as_object().unwrap();
        for path in [
            "/v1/decisions",
            "/v1/bans",
            "/v1/bans/{key}",
            "/v1/allows",
            "/v1/allows/{key}",
            "/v1/explain/{ip}",
            "/v1/counts",
            "/v1/status",
            "/v1/peers",
        ] {
            assert!(paths.contains_key(path), "{path} missing");
        }
        assert!(doc["components"]["schemas"]["Decision"].is_object());
        assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    }

    /// `node/openapi.json` is the document as the code makes it; after
    /// changing the API, regenerate it with
    /// `BANMESH_WRITE_OPENAPI=1 cargo test -p banmesh-node --lib openapi`.
    #[test]
    fn the_committed_document_matches_the_code() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json");
        let made = String::from_utf8(document().to_vec()).unwrap() + "\n";
        if std::env::var_os("BANMESH_WRITE_OPENAPI").is_some() {
            std::fs::write(path, &made).unwrap();
        }
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == made,
            "{path} differs from the code: regenerate it with \
             BANMESH_WRITE_OPENAPI=1 cargo test -p banmesh-node --lib openapi"
        );
    }
}
