//! `GET /metrics` on `[metrics] listen`: the registry (event counters and
//! libp2p's swarm metrics) and the scrape-time series from `status`, as
//! OpenMetrics text. Also the gateway's request counter, a middleware
//! layer around its routes.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::Metrics;
use crate::daemon::queries::Queries;

/// The OpenMetrics text format's content type.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Why the metrics listener could not start.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The address could not be bound.
    #[error(
        "cannot listen for metrics on {addr}: {error}; pick a free address in [metrics] listen, or remove it to turn metrics off"
    )]
    Bind {
        /// `[metrics] listen`.
        addr: SocketAddr,
        /// What the system said.
        error: std::io::Error,
    },
}

/// Binds `[metrics] listen`.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, MetricsError> {
    TcpListener::bind(addr).await.map_err(|error| MetricsError::Bind { addr, error })
}

/// Scrapes rendered at once; more wait (each reads the store's digest).
const RENDERS: usize = 2;

struct Scrape {
    renders: tokio::sync::Semaphore,
    registry: Registry,
    queries: Queries,
    metrics: Metrics,
}

/// Serves `GET /metrics` on `listener` until `shutdown` fires.
pub async fn serve(
    listener: TcpListener,
    registry: Registry,
    queries: Queries,
    metrics: Metrics,
    shutdown: CancellationToken,
) {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "metrics served on http://{addr}/metrics");
    }
    let renders = tokio::sync::Semaphore::new(RENDERS);
    let scrape = Arc::new(Scrape { renders, registry, queries, metrics });
    let router =
        axum::Router::new().route("/metrics", axum::routing::get(render)).with_state(scrape);
    let server = axum::serve(listener, router).with_graceful_shutdown(shutdown.cancelled_owned());
    if let Err(error) = server.await {
        tracing::error!(%error, "metrics server stopped");
    }
}

async fn render(State(scrape): State<Arc<Scrape>>) -> Response {
    let Ok(_permit) = scrape.renders.acquire().await else {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response();
    };
    let status = scrape.queries.status().await;
    let mut text = String::with_capacity(16 * 1024);
    let mut encoded = encode_registry(&mut text, &scrape.registry);
    match status {
        Ok(status) => {
            encoded = encoded
                .and_then(|()| encode_registry(&mut text, &super::scrape::snapshot(&status)));
        }
        Err(error) => {
            tracing::warn!(%error, "metrics: cannot read the node's status");
            scrape.metrics.error("status");
        }
    }
    if let Some(target) = scrape.queries.target() {
        encoded =
            encoded.and_then(|()| encode_registry(&mut text, &super::scrape::never_ban(&target)));
    }
    match encoded.and_then(|()| encode_eof(&mut text)) {
        Ok(()) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        Err(_) => {
            (StatusCode::INTERNAL_SERVER_ERROR, "cannot encode the metrics\n").into_response()
        }
    }
}

/// Gateway middleware: counts each answered request by its route (`other`
/// for a path no route matches) and status.
pub async fn count_requests(
    State(metrics): State<Metrics>,
    request: Request,
    next: Next,
) -> Response {
    let endpoint = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned());
    let response = next.run(request).await;
    metrics.request(endpoint.unwrap_or_else(|| "other".to_owned()), response.status().as_u16());
    response
}
