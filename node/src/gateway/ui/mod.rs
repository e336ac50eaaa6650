//! The dashboard at `/ui`: one static page, its script and its stylesheet,
//! embedded in the binary at build time ([`assets`]), which call the `/v1`
//! API with a session cookie. `POST /ui/login` takes a configured gateway
//! token from a form and makes a session ([`session`]); `GET /ui/session`
//! tells the page who it is and its CSRF token; `POST /ui/logout` ends it.
//! Writes through `/v1` with the cookie pass [`csrf_guard`]: the session's
//! CSRF token in `X-CSRF-Token`, and an `Origin`, when sent, naming this
//! listener.
//!
//! Tasks: none; handlers run on the gateway server's tasks.

pub mod session;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use super::Shared;
use super::auth::Client;
use super::listener::Peer;
use super::v1::error::V1Error;
use crate::config::{Role, Token};
use session::{COOKIE, Session};

/// The header a cookie write carries the CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Most bytes of a login form.
const LOGIN_BODY_LIMIT: usize = 4_096;

/// The files, read at build time.
mod assets {
    pub const INDEX: &str = include_str!("assets/index.html");
    pub const SCRIPT: &str = include_str!("assets/app.js");
    pub const STYLE: &str = include_str!("assets/style.css");
}

/// Where the login page shows an error.
const ERROR_SLOT: &str = "<p id=\"login-error\" class=\"error\" role=\"alert\"></p>";

type S = State<Arc<Shared>>;
type P = ConnectInfo<Peer>;

/// The `/ui` routes.
pub fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/ui", get(|| async { page(StatusCode::OK, None) }))
        .route("/ui/", get(|| async { page(StatusCode::OK, None) }))
        .route("/ui/app.js", get(|| async { asset(assets::SCRIPT, "text/javascript") }))
        .route("/ui/style.css", get(|| async { asset(assets::STYLE, "text/css") }))
        .route("/ui/login", post(login))
        .route("/ui/logout", post(logout))
        .route("/ui/session", get(whoami))
}

/// Headers every dashboard answer carries: no framing, no sniffing, no
/// scripts or styles but ours, nothing cached. The referrer policy is
/// `same-origin`, not `no-referrer`, under which browsers send the login
/// form with `Origin: null`.
fn harden(mut response: Response, content_type: &'static str) -> Response {
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
             img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn asset(text: &'static str, content_type: &'static str) -> Response {
    harden(text.into_response(), content_type)
}

/// The page, with `error` (one of ours, never the request's) above the
/// login form.
fn page(status: StatusCode, error: Option<&'static str>) -> Response {
    let body = match error {
        Some(error) => assets::INDEX.replace(
            ERROR_SLOT,
            &format!("<p id=\"login-error\" class=\"error\" role=\"alert\">{error}</p>"),
        ),
        None => assets::INDEX.to_owned(),
    };
    harden((status, body).into_response(), "text/html; charset=utf-8")
}

/// The session cookie's value.
fn session_id(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(COOKIE)?.strip_prefix('='))
        .filter(|id| !id.is_empty())
}

fn session(shared: &Shared, headers: &HeaderMap) -> Option<(String, Session)> {
    let id = session_id(headers)?;
    let found = shared.sessions.get(id, Instant::now())?;
    Some((id.to_owned(), found))
}

/// The client the session cookie stands for, while its token is in force.
pub fn session_client(shared: &Shared, headers: &HeaderMap, peer: &Peer) -> Option<Client> {
    let (_, found) = session(shared, headers)?;
    let (name, role) = shared.auth.lookup(&found.digest)?;
    peer.slot.trust();
    Some(Client { name, addr: shared.auth.client_addr(headers, peer.addr.ip()), role })
}

/// Whether the request's `Origin`, when it has one, is this listener (the
/// `Host` it was sent to).
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else { return true };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin = origin
        .to_str()
        .ok()
        .and_then(|o| o.strip_prefix("http://").or_else(|| o.strip_prefix("https://")));
    matches!((origin, host), (Some(o), Some(h)) if o.eq_ignore_ascii_case(h))
}

fn csrf_refused(message: &'static str) -> Response {
    V1Error::new(StatusCode::FORBIDDEN, "csrf", message).into_response()
}

/// Middleware on `/v1`: a write authenticated by the session cookie (no
/// bearer token) needs the session's CSRF token and our origin. Anything
/// else passes to the handler, which answers 401 to a cookie it does not
/// know.
pub async fn csrf_guard(State(s): S, request: Request, next: Next) -> Response {
    let headers = request.headers();
    let safe = matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if safe || headers.contains_key(header::AUTHORIZATION) {
        return next.run(request).await;
    }
    let Some((_, found)) = session(&s, headers) else { return next.run(request).await };
    if !same_origin(headers) {
        return csrf_refused("the request comes from another origin than the dashboard");
    }
    let presented = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !session::csrf_matches(&found, presented) {
        return csrf_refused(
            "a write with the dashboard's session needs its CSRF token in X-CSRF-Token \
             (from GET /ui/session)",
        );
    }
    next.run(request).await
}

/// `POST /ui/login` with `token=...`: a session and back to `/ui`, or the
/// page again with why not.
async fn login(State(s): S, ConnectInfo(peer): P, headers: HeaderMap, body: Body) -> Response {
    let addr = s.auth.client_addr(&headers, peer.addr.ip());
    let now = Instant::now();
    if !same_origin(&headers) {
        return page(
            StatusCode::FORBIDDEN,
            Some("Login refused: the form came from another site."),
        );
    }
    if !s.sessions.login_allowed(addr, now) {
        return page(
            StatusCode::TOO_MANY_REQUESTS,
            Some("Too many failed logins from your address: wait a minute and try again."),
        );
    }
    let Ok(bytes) = axum::body::to_bytes(body, LOGIN_BODY_LIMIT).await else {
        return page(StatusCode::PAYLOAD_TOO_LARGE, Some("Login refused: the form is too large."));
    };
    let token = form_value(&bytes, "token").unwrap_or_default();
    let digest = Token::digest_of(token.trim());
    if token.trim().is_empty() || s.auth.lookup(&digest).is_none() {
        s.sessions.login_failed(addr, now);
        tracing::info!(client = %addr, "dashboard login refused: wrong token");
        return page(
            StatusCode::UNAUTHORIZED,
            Some("Wrong token: give one of the gateway's tokens ([gateway.tokens])."),
        );
    }
    match s.sessions.create(digest, now) {
        Ok((id, _)) => {
            peer.slot.trust();
            let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, "/ui")]).into_response();
            if let Ok(cookie) = HeaderValue::from_str(&s.sessions.cookie(&id)) {
                response.headers_mut().insert(header::SET_COOKIE, cookie);
            }
            response
        }
        Err(error) => {
            tracing::error!(%error, "dashboard login failed");
            page(StatusCode::SERVICE_UNAVAILABLE, Some("Login failed on the node: try again."))
        }
    }
}

/// `POST /ui/logout` (with the CSRF token): ends the session.
async fn logout(State(s): S, headers: HeaderMap) -> Response {
    if let Some((id, found)) = session(&s, &headers) {
        let presented = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
        if !same_origin(&headers) || !session::csrf_matches(&found, presented) {
            return csrf_refused("logging out needs the session's CSRF token in X-CSRF-Token");
        }
        s.sessions.remove(&id);
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    if let Ok(cookie) = HeaderValue::from_str(&s.sessions.clear_cookie()) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

/// `GET /ui/session`: the token's name and role, whether it may write,
/// and the CSRF token; 401 without a session.
async fn whoami(State(s): S, ConnectInfo(peer): P, headers: HeaderMap) -> Response {
    let Some((_, found)) = session(&s, &headers) else {
        return V1Error::from(super::error::ApiError::Unauthorized).into_response();
    };
    let Some(client) = session_client(&s, &headers, &peer) else {
        return V1Error::from(super::error::ApiError::Unauthorized).into_response();
    };
    let role = match client.role {
        Role::Read => "read",
        Role::Write => "write",
        Role::Admin => "admin",
    };
    let body = json!({
        "name": client.name,
        "role": role,
        "may_write": client.may_write().is_ok(),
        "csrf": found.csrf,
    });
    harden(axum::Json(body).into_response(), "application/json")
}

/// The value of `name` in an `application/x-www-form-urlencoded` body.
fn form_value(body: &[u8], name: &str) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    text.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == name).then(|| percent_decode(v)).flatten()
    })
}

fn percent_decode(text: &str) -> Option<String> {
    let mut out = Vec::with_capacity(text.len());
    let mut bytes = text.bytes();
    while let Some(b) = bytes.next() {
        out.push(match b {
            b'+' => b' ',
            b'%' => {
                let hex = [bytes.next()?, bytes.next()?];
                u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?
            }
            b => b,
        });
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_and_cookies_read() {
        assert_eq!(form_value(b"a=1&token=t%2Bo+k", "token").as_deref(), Some("t+o k"));
        assert_eq!(form_value(b"token=%zz", "token"), None);
        assert_eq!(form_value(b"other=1", "token"), None);
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("x=1; banmesh_session=abc; y=2"));
        assert_eq!(session_id(&h), Some("abc"));
        h.insert(header::COOKIE, HeaderValue::from_static("banmesh_sessionx=abc"));
        assert_eq!(session_id(&h), None);
    }

    #[test]
    fn origins_must_be_the_listener() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        assert!(same_origin(&h), "no Origin: a same-origin GET or a non-browser client");
        h.insert(header::ORIGIN, HeaderValue::from_static("http://127.0.0.1:8080"));
        assert!(same_origin(&h));
        h.insert(header::ORIGIN, HeaderValue::from_static("http://evil.example"));
        assert!(!same_origin(&h));
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(!same_origin(&h));
    }

    #[test]
    fn the_page_has_the_error_slot() {
        assert!(assets::INDEX.contains(ERROR_SLOT));
    }
}
