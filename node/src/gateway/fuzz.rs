//! The gateway's router for the fuzz targets (`fuzzing` feature only): real
//! handlers, auth, view and store, with a node task that answers nothing
//! (writes end in 503 once their body, query and headers are parsed).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::Request;
use banmesh_crdt::{BanPolicy, Params};
use tokio_util::sync::CancellationToken;

use super::lifecycle::Windows;
use super::listener::Peer;
use super::{Shared, auth::Auth, door::Door, handlers, router, view};
use crate::config::{Config, Role, Token};
use crate::daemon::queries::{BackendStatus, Queries, Standing};
use crate::mesh::{MeshHandle, Trust};
use crate::store::{Store, StoreError};

/// The token the router accepts (`Authorization: Bearer fuzz-token`).
pub const TOKEN: &str = "fuzz-token";

/// A router over a store in `data_dir`, its tasks spawned on the current
/// runtime until `shutdown` fires. Requests need [`with_peer`].
pub async fn router_for(
    data_dir: &Path,
    now_ms: u64,
    shutdown: CancellationToken,
) -> Result<Router, StoreError> {
    let params = Params::default();
    let (store, _writer) = Store::open(data_dir, params, now_ms).await?;
    let policy = BanPolicy::default();
    let windows = Windows::new(policy.allowed_duration, policy.known_duration);
    let (view, view_task) = view::start(store.clone(), windows, params, shutdown).await?;
    tokio::spawn(view_task);
    let (node, requests) = crate::api::channel(16);
    drop(requests);
    let token = Token {
        name: "fuzz".into(),
        digest: Token::digest_of(TOKEN),
        role: Role::Admin,
        from_seed: false,
    };
    let queries = queries_over(&store);
    let shared = Arc::new(Shared {
        auth: Auth::new(vec![token], vec!["10.0.0.0/8".parse().expect("a network")]),
        view,
        node,
        policy,
        body_limit: 64 * 1024,
        store,
        queries,
        heavy: Arc::new(tokio::sync::Semaphore::new(handlers::HEAVY_RENDERS)),
        sessions: super::ui::session::Sessions::new(false),
    });
    Ok(router(shared))
}

/// Reads over `store` for `/v1`, with no mesh, no backends and a fresh
/// node key and cluster key.
fn queries_over(store: &Store) -> Queries {
    let key = |seed: u8| banmesh_keys::SecretKey::from_bytes(&[seed; 32]).public();
    let cluster = key(1);
    let standing = Standing { node_key: key(2), cluster, cert: None, notices: Vec::new() };
    let trust = Arc::new(std::sync::RwLock::new(Trust::new(cluster)));
    let mesh = MeshHandle::detached(store.clone(), trust.clone());
    let standing = Arc::new(std::sync::RwLock::new(standing));
    let backends = BackendStatus::default();
    let config = Config::from_toml("", "fuzz", &crate::config::Overrides::default())
        .expect("the built-in defaults are a valid config");
    Queries::new(config, standing, store.clone(), mesh, trust, backends, None)
}

/// `request` as if it came from `addr` (what the listener adds).
pub fn with_peer<B>(mut request: Request<B>, addr: SocketAddr) -> Request<B> {
    let door = Door::new(usize::MAX, Vec::new());
    if let Some(ticket) = door.admit(addr.ip()) {
        let peer = Peer { addr, slot: ticket.slot().clone() };
        request.extensions_mut().insert(ConnectInfo(peer));
    }
    request
}
