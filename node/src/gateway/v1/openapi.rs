//! The gateway's OpenAPI 3.1 document, both APIs in one (one token scheme,
//! one file for clients and schemathesis; each operation names its own
//! error shape), generated from the handlers' `#[utoipa::path]` attributes
//! and the response types' `ToSchema` derives (the compatibility API's in
//! [`compat`](super::super::compat)), served at `GET /openapi.json` (no token: it describes, it
//! holds no data) and committed as `node/openapi.json` (a test fails when
//! the two differ). utoipa's own derive builds it; `utoipa-axum`'s router
//! is not used, since it takes the axum path from the documented one and
//! so cannot route `{*key}` (a network written with its `/` as is).

use std::sync::OnceLock;

use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use serde::Serialize;
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::{Modify, OpenApi, ToSchema};

use super::super::compat::CompatDoc;
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

/// The body of `POST /v1/bans` (other fields are refused with a 422).
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WriteRequest {
    /// An address or, with an `admin` token, a network (any IPv6 spelling;
    /// the pattern gives plain addresses only).
    #[schema(
        pattern = "^((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\\.){3}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])$|^[0-9a-fA-F]{1,4}(:[0-9a-fA-F]{1,4}){7}$"
    )]
    pub key: String,
    /// How long (`90s`, `1h`, `7d`, `1d12h`); the node's default when left
    /// out. At most the cluster's `max_ttl` (a 422 beyond it).
    #[schema(pattern = "^([0-9]{1,6}[smhdw]){1,4}$")]
    pub duration: Option<String>,
    /// Until lifted: the node renews it. Not `true` with `duration`.
    pub permanent: Option<bool>,
    /// The jail (at most 64 bytes, no control characters).
    #[schema(max_length = 64, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$")]
    pub jail: Option<String>,
    /// Why (at most 512 bytes, no control characters).
    #[schema(max_length = 512, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$")]
    pub reason: Option<String>,
}

/// The body of `POST /v1/allows` (an allow has no jail; other fields are
/// refused with a 422).
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AllowRequest {
    /// An address or, with an `admin` token, a network.
    #[schema(
        pattern = "^((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\\.){3}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])$|^[0-9a-fA-F]{1,4}(:[0-9a-fA-F]{1,4}){7}$"
    )]
    pub key: String,
    /// How long; the node's default when left out.
    #[schema(pattern = "^([0-9]{1,6}[smhdw]){1,4}$")]
    pub duration: Option<String>,
    /// Until lifted. Not `true` with `duration`.
    pub permanent: Option<bool>,
    /// Why (at most 512 bytes, no control characters).
    #[schema(max_length = 512, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$")]
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

/// Adds the bearer token scheme, and the dashboard's session cookie as a
/// second scheme every `/v1` operation accepts in its place (the
/// compatibility API never takes the cookie).
struct Schemes;

impl Modify for Schemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let scheme = HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build();
        components.add_security_scheme("bearer", SecurityScheme::Http(scheme));
        let cookie = ApiKeyValue::with_description(
            crate::gateway::ui::session::COOKIE,
            "the dashboard's session (POST /ui/login with a configured token); writes also need \
             the X-CSRF-Token header GET /ui/session gives",
        );
        components.add_security_scheme("session", SecurityScheme::ApiKey(ApiKey::Cookie(cookie)));
        for (path, item) in &mut openapi.paths.paths {
            if !path.starts_with("/v1/") {
                continue;
            }
            for op in [&mut item.get, &mut item.post, &mut item.delete].into_iter().flatten() {
                let none: [&str; 0] = [];
                let security = op.security.get_or_insert_with(Vec::new);
                security.push(SecurityRequirement::new("session", none));
            }
        }
    }
}

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(title = "banmesh gateway", description = "A banmesh node's gateway listener: the native API under /v1/ (errors {\"error\": {\"code\", \"message\"}}) and, at the root, the Fail2BanSync API its clients use (tag compat; errors {\"error\": \"message\"}). Tokens come from [gateway.tokens] and the seed file; read tokens may only GET, write tokens write single addresses, admin tokens networks too (/v1/ only). On /v1/ the dashboard's session cookie (banmesh_session, from POST /ui/login) is accepted in place of the token; a write with it also needs the X-CSRF-Token header GET /ui/session gives, and an Origin, when sent, of this listener."),
    paths(
        super::decisions, super::post_ban, super::delete_ban, super::post_allow,
        super::delete_allow, super::explain, super::counts, super::status, super::peers
    ),
    components(schemas(
        ErrorBody, ErrorDetail, WriteRequest, AllowRequest, Written, Lifted, Decision, OriginView,
        DecisionPage, Explanation, Explained, Enforcement, LeftOut, BackendHold, Counts, Tally,
        JailCount, OriginCount
    )),
    modifiers(&Schemes),
    tags((name = "v1", description = "the native API"))
)]
pub struct ApiDoc;

/// The document as JSON, made once.
pub fn document() -> Bytes {
    static JSON: OnceLock<Bytes> = OnceLock::new();
    JSON.get_or_init(|| {
        let mut doc = ApiDoc::openapi();
        doc.merge(CompatDoc::openapi());
        Bytes::from(doc.to_pretty_json().unwrap_or_default())
    })
    .clone()
}

/// `GET /openapi.json`.
pub async fn serve() -> Response {
    super::super::body::json_response(StatusCode::OK, document(), false, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_names_every_path() {
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
            "/get_ips",
            "/get_allowed_ips",
            "/get_known_ips",
            "/add_ips",
            "/allow_ip",
        ] {
            assert!(paths.contains_key(path), "{path} missing");
        }
        assert!(doc["components"]["schemas"]["Decision"].is_object());
        assert!(doc["components"]["schemas"]["CompatItem"].is_object());
        assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
        let session = &doc["components"]["securitySchemes"]["session"];
        assert_eq!((&session["type"], &session["in"]), (&"apiKey".into(), &"cookie".into()));
        assert_eq!(session["name"], crate::gateway::ui::session::COOKIE);
        let security =
            |path: &str, method: &str| doc["paths"][path][method]["security"].to_string();
        assert!(security("/v1/counts", "get").contains("session"));
        assert!(security("/v1/bans", "post").contains("session"));
        assert!(!security("/get_ips", "get").contains("session"));
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
