//! The native API under `/v1/` on the gateway's listener: decisions with
//! networks, IPv6, RFC 3339 times and their signing origin, filtered and
//! paged by cursor ([`decisions`]); ban, unban, allow and disallow
//! ([`writes`]); the explanation of one address, status and peers
//! ([`explain`]). Every error has one shape ([`error`]). Tokens are the
//! compatibility API's; a `read` token may call every `GET` here, writes
//! need `write`.
//!
//! Tasks: none of its own; handlers run on the gateway server's tasks and
//! read through [`Queries`](crate::daemon::queries::Queries) and the store,
//! write through the node handle.

pub mod decisions;
pub mod error;
pub mod explain;
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
use crate::clock::now_ms;
use error::V1Error;

type S = State<Arc<Shared>>;
type P = ConnectInfo<Peer>;
type Q = Result<Query<Vec<(String, String)>>, QueryRejection>;
type K = Result<Path<String>, PathRejection>;

/// A JSON answer, gzip-compressed when the client accepts it.
fn answer(status: StatusCode, value: &Value, headers: &HeaderMap) -> Response {
    json_response(status, Bytes::from(value.to_string()), accepts_gzip(headers), false)
}

fn client(shared: &Shared, headers: &HeaderMap, peer: &Peer) -> Result<Client, V1Error> {
    Ok(shared.authorize(headers, peer)?)
}

fn path_key(key: K) -> Result<String, V1Error> {
    key.map(|Path(k)| k).map_err(|e| V1Error::bad_request(format!("bad path: {e}")))
}

async fn decisions(State(s): S, ConnectInfo(peer): P, headers: HeaderMap, q: Q) -> Response {
    let run = async {
        client(&s, &headers, &peer)?;
        let Query(params) = q.map_err(|e| V1Error::bad_request(format!("bad query: {e}")))?;
        let filter = decisions::Filter::parse(&params)?;
        let page = decisions::page(&s.queries, &filter, now_ms()).await?;
        Ok::<_, V1Error>(serde_json::to_value(page).unwrap_or(Value::Null))
    };
    respond(run.await, &headers)
}

async fn explain(State(s): S, ConnectInfo(peer): P, headers: HeaderMap, key: K) -> Response {
    let run = async {
        client(&s, &headers, &peer)?;
        explain::explain(&s.queries, &s.store, &path_key(key)?).await
    };
    respond(run.await, &headers)
}

async fn status(State(s): S, ConnectInfo(peer): P, headers: HeaderMap) -> Response {
    let run = async {
        client(&s, &headers, &peer)?;
        explain::status(&s.queries).await
    };
    respond(run.await, &headers)
}

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
        Ok(c) => writes::create(s, c, kind, headers.clone(), body).await,
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

/// The `/v1` routes, to nest under `/v1`.
pub fn router() -> Router<Arc<Shared>> {
    use axum::routing::{delete, post};
    let create_route = |kind: Kind| {
        post(move |State(s): S, ConnectInfo(peer): P, headers: HeaderMap, body: Body| {
            create(s, kind, peer, headers, body)
        })
    };
    let lift_route = |kind: Kind| {
        delete(move |State(s): S, ConnectInfo(peer): P, headers: HeaderMap, key: K| {
            lift(s, kind, peer, headers, key)
        })
    };
    Router::new()
        .route("/decisions", get(decisions))
        .route("/bans", create_route(Kind::Ban))
        .route("/bans/{*key}", lift_route(Kind::Ban))
        .route("/allows", create_route(Kind::Allow))
        .route("/allows/{*key}", lift_route(Kind::Allow))
        .route("/explain/{*ip}", get(explain))
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
