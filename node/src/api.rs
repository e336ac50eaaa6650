//! The node's typed API: [`NodeHandle`], through which the control socket,
//! the REST gateway and the Fail2Ban code ask the node task to issue
//! records (typed [`Order`]s, Fail2Ban's hand-over, revocations). Reads
//! (status, peers, records, trace) and `sync` do not go through it: the
//! control server runs them itself, concurrently, through [`Reads`]
//! (implemented by `daemon::queries::Queries`).
//!
//! Every request is answered on a typed `oneshot` with a [`NodeError`]
//! whose variant names the step that failed (a bad key, a cluster rule, the
//! node's certificate, the clock, the store, shutting down), so each caller
//! maps failures by variant: the control socket to its wire's error text,
//! the gateway to HTTP status codes. The wire formats stay in their
//! adapters (`control/`, `gateway/`); nothing here parses text keys.
//!
//! Tasks: none of its own. [`channel`] makes the handle and the receiver
//! the node task (`daemon::handler::Node::run`) drains; the node task is
//! the only one that issues (it owns the clock and the node key).

use std::future::Future;
use std::net::IpAddr;

use banmesh_crdt::duration::format_duration;
use banmesh_crdt::{Key, KeyAhead, KeyError, Kind, Metadata, RecordError};
use banmesh_keys::time::format_rfc3339;
use banmesh_keys::{RecordCheckError, Revocation};
use libp2p::PeerId;
use tokio::sync::{mpsc, oneshot};

use crate::control::views::{PeerView, RecordView, StatusView, TraceView};
use crate::store::StoreError;

/// How long an order lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifetime {
    /// The default: the configured bantime for a ban, `max_ttl` for an allow.
    Default,
    /// This many milliseconds.
    For(u64),
    /// Until lifted: the record lasts `max_ttl` and the node renews it.
    Permanent,
}

impl Lifetime {
    /// The lifetime a wire order asks for: `permanent` wins over a duration.
    pub fn of(duration_ms: Option<u64>, permanent: bool) -> Lifetime {
        match (permanent, duration_ms) {
            (true, _) => Lifetime::Permanent,
            (false, Some(ms)) => Lifetime::For(ms),
            (false, None) => Lifetime::Default,
        }
    }
}

/// One order from an operator, the gateway or Fail2Ban.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    /// What to say.
    pub kind: Kind,
    /// The address or network, normalised.
    pub key: Key,
    /// How long (Ban and Allow only).
    pub lifetime: Lifetime,
    /// Which repeat a ban is (1 for a first ban).
    pub strikes: u32,
    /// Context: jail, reason, source.
    pub meta: Metadata,
    /// For a ban in a batch: leave it out when this node's own live ban on
    /// the key already lasts at least as long. A node keeps one Ban per key,
    /// so a shorter one would replace the longer and shorten it everywhere.
    pub keep_longer: bool,
}

impl Order {
    /// A first `kind` on `key` for the default lifetime, without context.
    pub fn new(kind: Kind, key: Key) -> Order {
        Order {
            kind,
            key,
            lifetime: Lifetime::Default,
            strikes: 1,
            meta: Metadata::default(),
            keep_longer: false,
        }
    }
}

/// Fail2Ban banned an address (the action's `actionban`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handover {
    /// The address.
    pub key: Key,
    /// The jail (`<name>`), checked by the node.
    pub jail: String,
    /// The ban's length in seconds as Fail2Ban sized it; -1 for no end.
    pub bantime_s: i64,
    /// Failures that led to the ban.
    pub failures: u64,
    /// Which repeat this is.
    pub bancount: u32,
    /// Fail2Ban restored the ticket at start.
    pub restored: bool,
}

/// A record issued, committed and gossiped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// The record as stored.
    pub record: RecordView,
    /// Sentences for the operator (a covering ban remains, ...).
    pub notes: Vec<String>,
}

/// What became of a Fail2Ban hand-over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handed {
    /// The record was issued.
    Published(Box<Written>),
    /// Nothing to do, and why (a restored ticket, a natural expiry, ...).
    Skipped(String),
}

/// What became of one order of a batch that did not fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Issued: the record's id, hex.
    Issued(String),
    /// Left out on purpose (`keep_longer`), and why.
    Skipped(String),
}

/// A revocation stored and spread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revoked {
    /// The revoked node's public key.
    pub node: String,
    /// False when the node already held it.
    pub new: bool,
}

/// The certificate a running node reloaded and now presents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertReloaded {
    /// Its name.
    pub name: String,
    /// When it expires, Unix ms.
    pub not_after_ms: u64,
}

/// Which stored records `records` returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordFilter {
    /// Only records on this key and on networks covering it.
    pub key: Option<Key>,
    /// Only records issued by this origin: a certificate name or public key.
    pub origin: Option<String>,
    /// Only records of this kind.
    pub kind: Option<Kind>,
}

/// Why the node did not do what it was asked; the variant names the step.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The key is not an address or network.
    #[error(transparent)]
    BadKey(#[from] KeyError),
    /// Not one IP address where one is needed.
    #[error("invalid IP address {0:?}")]
    BadAddress(String),
    /// A record kind that does not exist.
    #[error("unknown kind {0:?}: write ban, unban, allow or disallow")]
    UnknownKind(String),
    /// A batch over the limit.
    #[error("{count} orders in one batch; send at most {max} at a time")]
    TooManyOrders {
        /// Orders sent.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// The record would break a cluster rule (expiry, `max_ttl`, ...).
    #[error(transparent)]
    Rule(#[from] RecordError),
    /// A duration for an order that does not expire.
    #[error("a {0} acts at once and does not expire: leave out --for")]
    NoExpiry(Kind),
    /// This node's certificate does not allow the record (role, prefix,
    /// validity, revocation).
    #[error("this node's certificate does not allow that record: {0}")]
    NotAllowed(#[source] RecordCheckError),
    /// This node's clock is off its peers' (median) by more than half the
    /// skew bound: it refuses to issue until the clock is fixed.
    #[error(
        "this node's clock is {} {} its peers' (median): fix the clock (NTP); it refuses to issue records until then",
        format_duration(std::time::Duration::from_millis(.median_ms.unsigned_abs())),
        if *.median_ms > 0 { "behind" } else { "ahead of" }
    )]
    ClockSkew {
        /// The peers' median offset from this node, ms (positive: peers ahead).
        median_ms: i64,
    },
    /// The key's greatest record is future-dated beyond the skew bound.
    #[error(
        "{key} holds a record issued {} ahead of the wall clock (this node's clock was ahead when \
         it issued it): a new record on {key} would come after it, future-dated, and every peer \
         would ignore it; refused until {}",
        format_duration(std::time::Duration::from_millis(.ahead.ahead_ms())),
        format_rfc3339(.ahead.until_ms())
    )]
    ClockAhead {
        /// The key.
        key: Key,
        /// How far ahead.
        ahead: KeyAhead,
    },
    /// A jail name Fail2Ban's `<name>` tag cannot give.
    #[error(
        "invalid jail name {0:?}: Fail2Ban's <name> tag gives letters, digits and -_.@: (at most 64 bytes); check the banmesh action line in action.d/banmesh.conf"
    )]
    BadJail(String),
    /// A bantime Fail2Ban cannot give.
    #[error("{0}")]
    BadBantime(String),
    /// A revocation that does not parse or is not the cluster's.
    #[error("{0}")]
    BadRevocation(String),
    /// A peer id that does not parse.
    #[error("invalid peer id {0:?}: copy it from `banmesh peers`")]
    BadPeer(String),
    /// The sync asked for did not finish.
    #[error("the sync did not finish: is the peer connected and ready? see `banmesh peers`")]
    SyncUnfinished,
    /// The certificate file does not belong to this node (the message names
    /// the file and the fix); the node keeps presenting the one it had.
    #[error("{0}")]
    CertRefused(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The node task is gone or going.
    #[error("the node is shutting down: try again once it is back")]
    ShuttingDown,
}

type Reply<T> = oneshot::Sender<Result<T, NodeError>>;

/// One request to the node task, with where its answer goes. The node task
/// answers every request; dropping `reply` answers [`NodeError::ShuttingDown`].
#[derive(Debug)]
pub enum Request {
    /// Issue one record; answered once committed.
    Write {
        /// The order.
        order: Order,
        /// Where the answer goes.
        reply: Reply<Written>,
    },
    /// Issue many: one transaction, one gossip round; each order alone.
    Issue {
        /// The orders, issued in this order.
        orders: Vec<Order>,
        /// One result per order, in order.
        reply: Reply<Vec<Result<Outcome, NodeError>>>,
    },
    /// Fail2Ban banned an address.
    Fail2BanBan {
        /// The hand-over.
        handover: Handover,
        /// Where the answer goes.
        reply: Reply<Handed>,
    },
    /// Fail2Ban lifted a ban.
    Fail2BanUnban {
        /// The address.
        key: Key,
        /// The jail.
        jail: String,
        /// Where the answer goes.
        reply: Reply<Handed>,
    },
    /// Store a revocation and spread it.
    Revoke {
        /// The revocation, not yet checked against the cluster key.
        revocation: Box<Revocation>,
        /// Where the answer goes.
        reply: Reply<Revoked>,
    },
    /// Read the certificate file again and present it from now on.
    ReloadCert {
        /// Where the answer goes.
        reply: Reply<CertReloaded>,
    },
    /// Answer at once: the watchdog's proof that the node task turns.
    Ping {
        /// Where the answer goes.
        reply: Reply<()>,
    },
}

/// The reads the control socket serves, each run on the caller's task
/// beside the node task, never queued behind a write.
pub trait Reads: Clone + Send + Sync + 'static {
    /// Where a page of records ended.
    type Cursor: Send;

    /// The node's status.
    fn status(&self) -> impl Future<Output = Result<StatusView, NodeError>> + Send;

    /// Every peer the node knows.
    fn peers(&self) -> impl Future<Output = Vec<PeerView>> + Send;

    /// One page of the stored records matching `filter`, after `after`
    /// (from the first when `None`); and where the next page starts, `None`
    /// after the last.
    fn records_page(
        &self,
        filter: &RecordFilter,
        after: Option<Self::Cursor>,
    ) -> impl Future<Output = Result<(Vec<RecordView>, Option<Self::Cursor>), NodeError>> + Send;

    /// Every record deciding `addr`, and the decision.
    fn trace(&self, addr: IpAddr) -> impl Future<Output = Result<TraceView, NodeError>> + Send;

    /// Reconciles now with `peer`, or every connected peer.
    fn sync(
        &self,
        peer: Option<PeerId>,
    ) -> impl Future<Output = Result<Vec<PeerId>, NodeError>> + Send;

    /// Lifts the blocks `target` names; returns the peers unblocked (none
    /// unless the reads reach a mesh).
    fn unblock(&self, target: crate::mesh::Unblock) -> impl Future<Output = Vec<PeerId>> + Send {
        let _ = target;
        async { Vec::new() }
    }
}

/// The handle through which every other task asks the node.
#[derive(Debug, Clone)]
pub struct NodeHandle {
    tx: mpsc::Sender<Request>,
}

/// A handle and the node task's receiving end, holding `capacity` requests.
pub fn channel(capacity: usize) -> (NodeHandle, mpsc::Receiver<Request>) {
    let (tx, rx) = mpsc::channel(capacity);
    (NodeHandle { tx }, rx)
}

impl NodeHandle {
    async fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> Request) -> Result<T, NodeError> {
        let (reply, answer) = oneshot::channel();
        self.tx.send(make(reply)).await.map_err(|_| NodeError::ShuttingDown)?;
        answer.await.map_err(|_| NodeError::ShuttingDown)?
    }

    /// Issues, commits and gossips the record for `order`.
    pub async fn write(&self, order: Order) -> Result<Written, NodeError> {
        self.ask(|reply| Request::Write { order, reply }).await
    }

    /// Issues a batch; the outer error fails the whole batch (clock skew,
    /// the store, too many orders), the inner ones a single order.
    pub async fn issue(
        &self,
        orders: Vec<Order>,
    ) -> Result<Vec<Result<Outcome, NodeError>>, NodeError> {
        self.ask(|reply| Request::Issue { orders, reply }).await
    }

    /// Fail2Ban's hand-over of a ban it made here.
    pub async fn fail2ban_ban(&self, handover: Handover) -> Result<Handed, NodeError> {
        self.ask(|reply| Request::Fail2BanBan { handover, reply }).await
    }

    /// Fail2Ban lifted a ban on `key` in `jail`.
    pub async fn fail2ban_unban(&self, key: Key, jail: String) -> Result<Handed, NodeError> {
        self.ask(|reply| Request::Fail2BanUnban { key, jail, reply }).await
    }

    /// Stores a revocation and spreads it to the mesh.
    pub async fn revoke(&self, revocation: Revocation) -> Result<Revoked, NodeError> {
        let revocation = Box::new(revocation);
        self.ask(|reply| Request::Revoke { revocation, reply }).await
    }

    /// Reads the certificate file again and presents it from now on.
    pub async fn reload_cert(&self) -> Result<CertReloaded, NodeError> {
        self.ask(|reply| Request::ReloadCert { reply }).await
    }

    /// A round trip through the node task, changing nothing.
    pub async fn ping(&self) -> Result<(), NodeError> {
        self.ask(|reply| Request::Ping { reply }).await
    }
}
