//! Prometheus metrics: the counters and histograms the node's tasks update
//! as things happen ([`Metrics`], a cheap handle cloned to where counts
//! happen), libp2p's own swarm metrics in the same registry, and what
//! `banmesh status` already knows turned into series at scrape time
//! ([`scrape`]). [`server`] serves them on `[metrics] listen` (off by
//! default) as OpenMetrics text on `GET /metrics`.
//!
//! Tasks: `metrics-server` when `[metrics] listen` is set; it ends when the
//! node's token fires.

pub mod scrape;
pub mod server;

use std::fmt;
use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
pub use prometheus_client::registry::Registry;

/// One label and its value.
type Label = [(&'static str, &'static str); 1];
/// A gateway request's endpoint and status.
type Request = [(&'static str, String); 2];

/// The node's event-driven metrics. Cloning shares them; a handle made by
/// [`Metrics::default`] counts into metrics no registry serves (the node
/// with `[metrics]` off, and unit tests).
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

struct Inner {
    received: Family<Label, Counter>,
    propagation: Family<Label, Histogram, fn() -> Histogram>,
    gossip_bytes: Family<Label, Counter>,
    sync_bytes: Family<Label, Counter>,
    requests: Family<Request, Counter>,
    errors: Family<Label, Counter>,
    queues: Family<Label, Gauge>,
    libp2p: Option<libp2p::metrics::Metrics>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Metrics")
    }
}

/// Propagation delay buckets, seconds: 50 ms to about 14 min.
fn delay_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.05, 2.0, 15))
}

impl Inner {
    fn new(libp2p: Option<libp2p::metrics::Metrics>) -> Inner {
        Inner {
            received: Family::default(),
            propagation: Family::new_with_constructor(delay_histogram),
            gossip_bytes: Family::default(),
            sync_bytes: Family::default(),
            requests: Family::default(),
            errors: Family::default(),
            queues: Family::default(),
            libp2p,
        }
    }
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics(Arc::new(Inner::new(None)))
    }
}

/// Which way bytes went.
#[derive(Debug, Clone, Copy)]
pub enum Direction {
    /// Received.
    In,
    /// Sent.
    Out,
}

impl Direction {
    fn label(self) -> Label {
        [("direction", if matches!(self, Direction::In) { "in" } else { "out" })]
    }
}

impl Metrics {
    /// The metrics, registered in `registry` under `banmesh_` (and libp2p's
    /// swarm metrics under `libp2p_`).
    pub fn registered(registry: &mut Registry) -> Metrics {
        let inner = Inner::new(Some(libp2p::metrics::Metrics::new(registry)));
        let r = registry.sub_registry_with_prefix("banmesh");
        r.register(
            "records_received",
            "Records received from peers and stored as new, by path (gossip or sync)",
            inner.received.clone(),
        );
        r.register(
            "propagation_delay_seconds",
            "From a record's issue time to its local commit, for records received from peers",
            inner.propagation.clone(),
        );
        r.register("gossip_bytes", "Gossip payload bytes", inner.gossip_bytes.clone());
        r.register("sync_bytes", "Sync request and response bytes", inner.sync_bytes.clone());
        r.register(
            "gateway_requests",
            "Gateway requests answered, by endpoint and HTTP status",
            inner.requests.clone(),
        );
        r.register("errors", "Errors the node logged, by what failed", inner.errors.clone());
        r.register("queue_length", "Items waiting in the node's queues", inner.queues.clone());
        // Every series a dashboard rates exists from the start, at zero.
        for via in ["gossip", "sync"] {
            let _ = inner.received.get_or_create(&[("via", via)]);
            let _ = inner.propagation.get_or_create(&[("via", via)]);
        }
        for direction in [Direction::In, Direction::Out] {
            let _ = inner.gossip_bytes.get_or_create(&direction.label());
            let _ = inner.sync_bytes.get_or_create(&direction.label());
        }
        for what in ["store", "gossip", "status"] {
            let _ = inner.errors.get_or_create(&[("what", what)]);
        }
        Metrics(Arc::new(inner))
    }

    /// `n` new records stored from peers, `via` gossip or sync, and each
    /// one's delay from issue to now.
    pub fn received(&self, via: &'static str, delays_ms: impl Iterator<Item = u64>) {
        let mut n = 0;
        let histogram = self.0.propagation.get_or_create(&[("via", via)]);
        for delay in delays_ms {
            n += 1;
            #[allow(clippy::cast_precision_loss)] // ms within f64's 52 bits
            histogram.observe(delay as f64 / 1000.0);
        }
        self.0.received.get_or_create(&[("via", via)]).inc_by(n);
    }

    /// Gossip payload bytes.
    pub fn gossip_bytes(&self, direction: Direction, n: usize) {
        self.0.gossip_bytes.get_or_create(&direction.label()).inc_by(as_u64(n));
    }

    /// Sync request and response bytes.
    pub fn sync_bytes(&self, direction: Direction, n: usize) {
        self.0.sync_bytes.get_or_create(&direction.label()).inc_by(as_u64(n));
    }

    /// A gateway request answered.
    pub fn request(&self, endpoint: String, status: u16) {
        let labels = [("endpoint", endpoint), ("status", status.to_string())];
        self.0.requests.get_or_create(&labels).inc();
    }

    /// An error, by what failed (`store`, `gossip`, ...).
    pub fn error(&self, what: &'static str) {
        self.0.errors.get_or_create(&[("what", what)]).inc();
    }

    /// A queue's length now.
    pub fn queue(&self, queue: &'static str, len: usize) {
        self.0
            .queues
            .get_or_create(&[("queue", queue)])
            .set(i64::try_from(len).unwrap_or(i64::MAX));
    }

    /// Hands an event to libp2p's recorder (swarm events, gossipsub, ping).
    pub fn record<E>(&self, event: &E)
    where
        libp2p::metrics::Metrics: libp2p::metrics::Recorder<E>,
    {
        if let Some(recorder) = &self.0.libp2p {
            libp2p::metrics::Recorder::record(recorder, event);
        }
    }
}

fn as_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests;
