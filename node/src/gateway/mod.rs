//! The gateway: the old Fail2BanSync server's REST API (SEED-API.md) served
//! by any node, so existing clients keep working. Reads answer from an
//! in-memory, time-aware view of the records; writes become records signed
//! by this node, issued through the node task like any control command.
//!
//! Tasks (in the daemon's `JoinSet`): the HTTP server (axum, one task per
//! connection inside it, connections limited and timed out by
//! [`listener`]), the view task ([`view`]) and the reload task,
//! which re-reads the configuration and the seed file on SIGHUP and swaps
//! the tokens (a broken file keeps the old ones and is shown in status).
//! Channels: handlers ask the node task through its
//! [`NodeHandle`](crate::api::NodeHandle), and send [`view::ViewMsg`]s to the
//! view task. Shutdown: the token
//! fires; the server stops accepting, lets requests in flight finish for up
//! to [`SHUTDOWN_GRACE`], then every task ends.

pub mod auth;
pub mod body;
pub mod compat;
pub mod door;
pub mod error;
#[cfg(feature = "fuzzing")]
pub mod fuzz;
pub mod handlers;
pub mod lifecycle;
pub mod listener;
pub mod snapshot;
pub mod tls;
pub mod ui;
pub mod v1;
pub mod view;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::get;
use banmesh_crdt::{BanPolicy, Params};
use tokio_util::sync::CancellationToken;

use crate::api::NodeHandle;
use crate::config::{ConfigSource, GatewayConfig};
use crate::store::{Store, StoreError};
use crate::tasks::Tasks;
use auth::Auth;
use lifecycle::Windows;
use listener::{GatewayListener, Peer};
use view::ViewHandle;

/// How long requests in flight may run on after shutdown.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The listen address is taken or not ours.
    #[error(
        "the gateway cannot listen on {addr}: {error}; choose another address with --gateway or gateway.listen"
    )]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What the system said.
        error: std::io::Error,
    },
    /// The view could not be loaded.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// rustls refused its configuration.
    #[error("the gateway cannot set up tls: {0}")]
    Tls(#[from] tokio_rustls::rustls::Error),
}

/// What `banmesh status` shows about the gateway.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GatewayStatus {
    /// The address it listens on.
    pub listen: String,
    /// Tokens in force.
    pub tokens: usize,
    /// Why the last reload failed, until one succeeds.
    pub last_reload_error: Option<String>,
}

/// What every request handler shares.
pub struct Shared {
    auth: Auth,
    view: ViewHandle,
    node: NodeHandle,
    policy: BanPolicy,
    body_limit: usize,
    store: Store,
    /// The node's reads (status, peers, trace, records by key), for `/v1`.
    queries: crate::daemon::queries::Queries,
    /// Permits for searches (see [`handlers::HEAVY_RENDERS`]).
    heavy: Arc<tokio::sync::Semaphore>,
    /// The dashboard's sessions.
    sessions: ui::session::Sessions,
}

impl Shared {
    /// The client whose token the request carries; its connection is
    /// trusted from then on (never closed to make room).
    fn authorize(&self, headers: &HeaderMap, peer: &Peer) -> Result<auth::Client, error::ApiError> {
        let client = self.auth.check(headers, peer.addr)?;
        peer.slot.trust();
        Ok(client)
    }
}

/// Everything the gateway needs from the daemon.
pub struct GatewayDeps {
    /// The node's store.
    pub store: Store,
    /// The node task's handle.
    pub node: NodeHandle,
    /// The cluster parameters (the GC rule the view prunes by).
    pub params: Params,
    /// Where the configuration came from, to read it again on SIGHUP.
    pub source: ConfigSource,
    /// Shared with the node task for `banmesh status`.
    pub status: Arc<Mutex<GatewayStatus>>,
    /// Counts requests by endpoint and status.
    pub metrics: crate::metrics::Metrics,
    /// The node's reads, for the native API.
    pub queries: crate::daemon::queries::Queries,
}

/// Binds the listener, loads the view and spawns the gateway's tasks into
/// `tasks`. Returns the address it listens on.
pub async fn start(
    config: &GatewayConfig,
    listen: SocketAddr,
    deps: GatewayDeps,
    tasks: &mut Tasks,
    shutdown: CancellationToken,
) -> Result<SocketAddr, GatewayError> {
    let tls = config.tls.as_ref().map(tls::Tls::new).transpose()?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|error| GatewayError::Bind { addr: listen, error })?;
    let local =
        listener.local_addr().map_err(|error| GatewayError::Bind { addr: listen, error })?;
    let windows = Windows::new(config.policy.allowed_duration, config.policy.known_duration);
    let (view, view_task) =
        view::start(deps.store.clone(), windows, deps.params, shutdown.child_token()).await?;
    tasks.spawn("gateway-view", view_task);
    let door = door::Door::new(config.max_connections_per_source, config.trusted_proxies.clone());
    let shared = Arc::new(Shared {
        auth: Auth::new(config.tokens.clone(), config.trusted_proxies.clone()),
        view,
        node: deps.node,
        policy: config.policy,
        body_limit: config.body_limit,
        store: deps.store,
        queries: deps.queries,
        heavy: Arc::new(tokio::sync::Semaphore::new(handlers::HEAVY_RENDERS)),
        // Over HTTPS the session cookie carries `Secure`.
        sessions: ui::session::Sessions::new(tls.is_some()),
    });
    *deps.status.lock().unwrap_or_else(PoisonError::into_inner) = GatewayStatus {
        listen: local.to_string(),
        tokens: shared.auth.token_count(),
        last_reload_error: None,
    };
    if config.tokens.is_empty() {
        tracing::warn!(
            "the gateway has no tokens: every request gets 401; add [gateway.tokens] or --seed-config"
        );
    }
    tasks.spawn(
        "gateway-reload",
        reload_on_hangup(
            Reload { shared: shared.clone(), tls: tls.clone(), source: deps.source },
            deps.status,
            shutdown.child_token(),
        ),
    );
    tasks.spawn(
        "gateway-server",
        serve(
            GatewayListener::new(listener, door).with_tls(tls),
            router(shared).layer(axum::middleware::from_fn_with_state(
                deps.metrics,
                crate::metrics::server::count_requests,
            )),
            shutdown.child_token(),
        ),
    );
    tracing::info!(listen = %local, https = config.tls.is_some(), "gateway started");
    Ok(local)
}

/// The routes.
fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .merge(compat::router())
        .nest(
            "/v1",
            v1::router()
                .layer(axum::middleware::from_fn_with_state(shared.clone(), ui::csrf_guard)),
        )
        .merge(ui::router())
        .route("/openapi.json", get(v1::openapi::serve))
        .fallback(handlers::no_route)
        .method_not_allowed_fallback(handlers::wrong_method)
        .with_state(shared)
}

/// The HTTP server task.
async fn serve(listener: GatewayListener, router: Router, shutdown: CancellationToken) {
    let service = router.into_make_service_with_connect_info::<Peer>();
    let stop = shutdown.clone();
    let server = axum::serve(listener, service).with_graceful_shutdown(stop.cancelled_owned());
    let grace = async {
        shutdown.cancelled().await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::select! {
        result = server => {
            if let Err(error) = result {
                tracing::error!(%error, "gateway server stopped");
            }
        }
        _ = grace => tracing::warn!("gateway requests still running after the grace period were dropped"),
    }
    tracing::debug!("gateway stopped");
}

/// What a SIGHUP reloads into: the tokens, the certificate in force (when
/// serving HTTPS), and where the configuration comes from.
struct Reload {
    shared: Arc<Shared>,
    tls: Option<tls::Tls>,
    source: ConfigSource,
}

/// Swaps in the certificate of a configuration reloaded (already checked:
/// a broken pair fails the whole reload, keeping the old one). Turning
/// TLS on or off needs a restart: the listener is bound as it is.
fn reload_tls(tls: Option<&tls::Tls>, pair: Option<&tls::TlsPair>) {
    match (tls, pair) {
        (Some(tls), Some(pair)) => {
            tls.replace(pair);
            tracing::info!(cert = %pair.cert.display(), "gateway tls certificate reloaded");
        }
        (None, None) => {}
        (Some(_), None) | (None, Some(_)) => tracing::warn!(
            "gateway.tls_cert was added or removed: restart the node to switch the gateway between http and https"
        ),
    }
}

/// Re-reads the configuration and the seed file on every SIGHUP and swaps
/// the tokens and the TLS certificate; a file that no longer loads (or a
/// certificate that does not) keeps the old ones.
async fn reload_on_hangup(
    Reload { shared, tls, source }: Reload,
    status: Arc<Mutex<GatewayStatus>>,
    shutdown: CancellationToken,
) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hangup) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot watch SIGHUP: gateway tokens will not reload");
        // Ending early would read as a failure to the supervisor.
        shutdown.cancelled().await;
        return;
    };
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            signal = hangup.recv() => if signal.is_none() { return },
        }
        let source = source.clone();
        let loaded = tokio::task::spawn_blocking(move || source.load()).await;
        let mut status = status.lock().unwrap_or_else(PoisonError::into_inner);
        match loaded {
            Ok(Ok(config)) => {
                reload_tls(tls.as_ref(), config.gateway.tls.as_ref());
                shared.auth.replace(config.gateway.tokens);
                status.tokens = shared.auth.token_count();
                status.last_reload_error = None;
                tracing::info!(tokens = status.tokens, "gateway tokens reloaded");
            }
            Ok(Err(error)) => {
                tracing::error!(%error, "gateway tokens not reloaded; the previous tokens stay in force");
                status.last_reload_error = Some(error.to_string());
            }
            Err(_) => status.last_reload_error = Some("the reload task failed".into()),
        }
    }
}
