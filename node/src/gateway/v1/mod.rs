//! The native API under `/v1/` on the gateway's listener: decisions with
//! networks, IPv6, RFC 3339 times and their signing origin, filtered and
//! paged by cursor ([`decisions`]); ban, unban, allow and disallow
//! ([`writes`]); the explanation of one address, status and peers
//! ([`explain`]); live counts per jail and origin ([`counts`]). Every
//! error has one shape ([`error`]). Tokens are the compatibility API's; a
//! `read` token may call every `GET` here, writes need `write`. The
//! dashboard's session cookie stands for its token here too (writes with
//! it also need its CSRF token: [`super::ui`]).
//!
//! Tasks: none of its own; handlers run on the gateway server's tasks and
//! read through [`Queries`](crate::daemon::queries::Queries) and the store,
//! write through the node handle.

pub mod counts;
pub mod decisions;
pub mod error;
pub mod explain;
pub mod openapi;
pub mod writes;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use banmesh_crdt::Kind;
use bytes::Bytes;
use serde_json::Value;

use super::Shared;
use super::auth::Client;
use super::body::{accepts_gzip, json_response};
use super::listener::Peer;
use error::V1Error;

type S = State<Arc<Shared>>;
type P = ConnectInfo<Peer>;
type Q = Result<Query<Vec<(String, String)>>, QueryRejection>;
type K = Result<Path<String>, PathRejection>;

/// A JSON answer, gzip-compressed when the client accepts it.
fn answer(status: StatusCode, value: &Value, headers: &HeaderMap) -> Response {
    json_response(status, Bytes::from(value.to_string()), accepts_gzip(headers), false)
}

/// The bearer token's client or, without one, the dashboard session's.
fn client(shared: &Shared, headers: &HeaderMap, peer: &Peer) -> Result<Client, V1Error> {
    if !headers.contains_key(axum::http::header::AUTHORIZATION)
        && let Some(client) = super::ui::session_client(shared, headers, peer)
    {
        return Ok(client);
    }
    Ok(shared.authorize(headers, peer)?)
}

fn path_key(key: K) -> Result<String, V1Error> {
    key.map(|Path(k)| k).map_err(|e| V1Error::bad_request(format!("bad path: {e}")))
}

/// Bans and allows, filtered, a page at a time.
#[utoipa::path(get, path = "/v1/decisions", tag = "v1",
    params(
        ("jail" = Option<String>, Query, description = "only this jail (exact)"),
        ("origin" = Option<String>, Query, description = "only this origin: certificate name or public key (hex)"),
        ("since" = Option<String>, Query, description = "only decisions issued at or after this RFC 3339 time",
            format = DateTime),
        ("kind" = Option<String>, Query, description = "ban or allow", pattern = "^(ban|allow)$"),
        ("state" = Option<String>, Query, description = "live (default), ended (expired, lifted, invalid) or all",
            pattern = "^(live|ended|all)$"),
        ("order" = Option<String>, Query, description = "key (default: IPv4 before IPv6, then address) or newest (latest issued first)",
            pattern = "^(key|newest)$"),
        ("limit" = Option<u32>, Query, description = "decisions per page, 1 to 1000 (default 100)",
            minimum = 1, maximum = 1000),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page, with the same order (empty: the first page)",
            pattern = "^n?([0-9a-f]{2})*$"),
    ),
    responses(
        (status = 200, body = decisions::DecisionPage),
        (status = 400, body = openapi::ErrorBody), (status = 401, body = openapi::ErrorBody),
        (status = 503, body = openapi::ErrorBody),
    ),
    security(("bearer" = [])))]
async fn decisions(State(s): S, ConnectInfo(peer): P, headers: HeaderMap, q: Q) -> Response {
    let run = async {
        client(&s, &headers, &peer)?;
        let Query(params) = q.map_err(|e| V1Error::bad_request(format!("bad query: {e}")))?;
        let filter = decisions::Filter::parse(&params)?;
        let page = s.view.decisions(s.queries.trust(), filter).await.ok_or_else(stopping)?;
        Ok::<_, V1Error>(serde_json::to_value(page).unwrap_or(Value::Null))
    };
    respond(run.await, &headers)
}

/// Every record deciding one address, which decides and why, and what
/// this node's enforcement holds for it.
#[utoipa::path(get, path = "/v1/explain/{ip}", tag = "v1",
    params(("ip" = String, Path, description = "one IPv4 or IPv6 address (any IPv6 spelling; the pattern gives the two plain forms)",
        pattern = "^((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\\.){3}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])$|^[0-9a-fA-F]{1,4}(:[0-9a-fA-F]{1,4}){7}$")),
    responses(
        (status = 200, body = explain::Explanation),
        (status = 400, body = openapi::ErrorBody), (status = 401, body = openapi::ErrorBody),
    ),
    security(("bearer" = [])))]
async fn explain(State(s): S, ConnectInfo(peer): P, headers: HeaderMap, key: K) -> Response {
    let run = async {
        client(&s, &headers, &peer)?;
        explain::explain(&s.queries, &s.store, &path_key(key)?).await
    };
    respond(run.await, &headers)
}

/// The live bans and allows counted per jail and per origin, now (from the
/// records the gateway holds in memory).
#[utoipa::path(get, path = "/v1/counts", tag = "v1",
    responses(
        (status = 200, body = counts::Counts), (status = 401, body = openapi::ErrorBody),
        (status = 503, body = openapi::ErrorBody),
    ),
    security(("bearer" = [])))]
async fn counts(State(s): S, ConnectInfo(peer): P, headers: HeaderMap) -> Response {
    let run = async {
        client(&s, &headers, &peer)?;
        let counts = s.view.counts(s.queries.trust()).await.ok_or_else(stopping)?;
        Ok::<_, V1Error>(serde_json::to_value(counts).unwrap_or(Value::Null))
    };
    respond(run.await, &headers)
}

/// The view task has stopped: the gateway is shutting down.
fn stopping() -> V1Error {
    V1Error::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the gateway is stopping")
}

/// The node's status, as `banmesh status --json` shows it.
#[utoipa::path(get, path = "/v1/status", tag = "v1",
    responses((status = 200, body = Object), (status = 401, body = openapi::ErrorBody)),
    security(("bearer" = [])))]
async fn status(State(s): S, ConnectInfo(peer): P, headers: HeaderMap) -> Response {
    let run = async {
        client(&s, &headers, &peer)?;
        explain::status(&s.queries).await
    };
    respond(run.await, &headers)
}

/// Every peer the node knows: `{"peers": [...]}`.
#[utoipa::path(get, path = "/v1/peers", tag = "v1",
    responses((status = 200, body = Object), (status = 401, body = openapi::ErrorBody)),
    security(("bearer" = [])))]
async fn peers(State(s): S, ConnectInfo(peer): P, headers: HeaderMap) -> Response {
    let run = async {
        client(&s, &headers, &peer)?;
        Ok(explain::peers(&s.queries).await)
    };
    respond(run.await, &headers)
}

fn respond(result: Result<Value, V1Error>, headers: &HeaderMap) -> Response {
    match result {
        Ok(value) => answer(StatusCode::OK, &value, headers),
        Err(error) => error.into_response(),
    }
}

fn respond_write(result: Result<(StatusCode, Value), V1Error>, headers: &HeaderMap) -> Response {
    match result {
        Ok((status, value)) => answer(status, &value, headers),
        Err(error) => error.into_response(),
    }
}

async fn create(
    s: Arc<Shared>,
    kind: Kind,
    peer: Peer,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = match client(&s, &headers, &peer) {
        Ok(c) => writes::create(s.clone(), c, kind, headers.clone(), body).await,
        Err(e) => Err(e),
    };
    respond_write(result, &headers)
}

async fn lift(s: Arc<Shared>, kind: Kind, peer: Peer, headers: HeaderMap, key: K) -> Response {
    let run = async {
        let c = client(&s, &headers, &peer)?;
        let key = path_key(key)?;
        writes::lift(s.clone(), c, kind, &key).await
    };
    respond_write(run.await, &headers)
}

/// Bans a key.
#[utoipa::path(post, path = "/v1/bans", tag = "v1", request_body = openapi::WriteRequest,
    responses(
        (status = 201, body = openapi::Written),
        (status = 400, body = openapi::ErrorBody), (status = 401, body = openapi::ErrorBody),
        (status = 403, body = openapi::ErrorBody), (status = 409, body = openapi::ErrorBody),
        (status = 413, body = openapi::ErrorBody), (status = 415, body = openapi::ErrorBody),
        (status = 422, body = openapi::ErrorBody),
    ),
    security(("bearer" = [])))]
async fn post_ban(State(s): S, ConnectInfo(peer): P, headers: HeaderMap, body: Body) -> Response {
    create(s, Kind::Ban, peer, headers, body).await
}

/// Allows a key (allow wins over every ban covering it).
#[utoipa::path(post, path = "/v1/allows", tag = "v1", request_body = openapi::AllowRequest,
    responses(
        (status = 201, body = openapi::Written),
        (status = 400, body = openapi::ErrorBody), (status = 401, body = openapi::ErrorBody),
        (status = 403, body = openapi::ErrorBody), (status = 413, body = openapi::ErrorBody),
        (status = 415, body = openapi::ErrorBody), (status = 422, body = openapi::ErrorBody),
    ),
    security(("bearer" = [])))]
async fn post_allow(State(s): S, ConnectInfo(peer): P, headers: HeaderMap, body: Body) -> Response {
    create(s, Kind::Allow, peer, headers, body).await
}

/// Lifts the live bans on exactly this key (an unban).
#[utoipa::path(delete, path = "/v1/bans/{key}", tag = "v1",
    params(("key" = String, Path, description = "an address, or a network (`/` sent as is or as %2F; the pattern gives plain addresses only)",
        pattern = "^((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\\.){3}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])$|^[0-9a-fA-F]{1,4}(:[0-9a-fA-F]{1,4}){7}$")),
    responses(
        (status = 200, body = openapi::Lifted),
        (status = 400, body = openapi::ErrorBody), (status = 401, body = openapi::ErrorBody),
        (status = 403, body = openapi::ErrorBody), (status = 404, body = openapi::ErrorBody),
    ),
    security(("bearer" = [])))]
async fn delete_ban(State(s): S, ConnectInfo(peer): P, headers: HeaderMap, key: K) -> Response {
    lift(s, Kind::Ban, peer, headers, key).await
}

/// Lifts the live allows on exactly this key (a disallow).
#[utoipa::path(delete, path = "/v1/allows/{key}", tag = "v1",
    params(("key" = String, Path, description = "an address, or a network (`/` sent as is or as %2F; the pattern gives plain addresses only)",
        pattern = "^((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\\.){3}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])$|^[0-9a-fA-F]{1,4}(:[0-9a-fA-F]{1,4}){7}$")),
    responses(
        (status = 200, body = openapi::Lifted),
        (status = 400, body = openapi::ErrorBody), (status = 401, body = openapi::ErrorBody),
        (status = 403, body = openapi::ErrorBody), (status = 404, body = openapi::ErrorBody),
    ),
    security(("bearer" = [])))]
async fn delete_allow(State(s): S, ConnectInfo(peer): P, headers: HeaderMap, key: K) -> Response {
    lift(s, Kind::Allow, peer, headers, key).await
}

/// The `/v1` routes, to nest under `/v1`.
pub fn router() -> Router<Arc<Shared>> {
    use axum::routing::{delete, post};
    Router::new()
        .route("/decisions", get(decisions))
        .route("/bans", post(post_ban))
        .route("/bans/{*key}", delete(delete_ban))
        .route("/allows", post(post_allow))
        .route("/allows/{*key}", delete(delete_allow))
        .route("/explain/{*ip}", get(explain))
        .route("/counts", get(counts))
        .route("/status", get(status))
        .route("/peers", get(peers))
        .fallback(|uri: axum::http::Uri| async move {
            V1Error::not_found(format!("no such endpoint: {}", uri.path())).into_response()
        })
        .method_not_allowed_fallback(|| async {
            V1Error::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "method not allowed on this endpoint",
            )
            .into_response()
        })
}
