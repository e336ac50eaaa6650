//! The node's reads: status, peers, records and trace, and `sync`. The
//! control server runs them itself, each connection on its own task,
//! against the store (its pool of read connections), the index, the trust
//! and the mesh handle; none goes through the node task, so a slow read
//! (a million records, a sync) never delays a write.
//!
//! What status shows of the node task's own standing (its certificate, its
//! notices) is fixed at start and kept here as [`Standing`]; the rest is
//! read where it lives (clock warnings from the store, skew from the mesh).
//!
//! Tasks: none of its own. [`Queries`] is cloned into each control
//! connection; [`Queries::records_page`] reads and shows one page of
//! records on the store's blocking pool.

pub mod clock;
mod health;
mod lifted;
pub mod native;
mod standing;
mod status;

use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use banmesh_crdt::{Decision, Key, Kind, Origin, Params, Record};
use banmesh_keys::{Certificate, PublicKey};
use libp2p::PeerId;

use super::identity::Identity;
use crate::api::{NodeError, Reads, RecordFilter};
use crate::clock::now_ms;
use crate::config::Config;
use crate::control::views::{PeerState, PeerView, RecordView, StatusView, TraceEntry, TraceView};
use crate::fail2ban::ApplierStatus;
use crate::gateway::GatewayStatus;
use crate::mesh::{MeshHandle, Trust};
use crate::nftables::NftStatus;
use crate::store::Store;
use crate::store::query::{self, Arrival, PageEnd};

/// Records shown per page of `banmesh records`.
pub const PAGE: usize = 1_000;

/// This node's own standing, as status shows it: the public parts of its
/// identity, fixed at start.
#[derive(Debug, Clone)]
pub struct Standing {
    /// The node's public key.
    pub node_key: PublicKey,
    /// The cluster key.
    pub cluster: PublicKey,
    /// The node's certificate, when enrolled.
    pub cert: Option<Certificate>,
    /// What the operator should know (first run, not enrolled, ...).
    pub notices: Vec<String>,
}

impl Standing {
    /// The public parts of `identity`.
    pub fn of(identity: &Identity) -> Standing {
        Standing {
            node_key: identity.secret.public(),
            cluster: identity.cluster,
            cert: identity.cert.clone(),
            notices: identity.notices.clone(),
        }
    }
}

/// [`Standing`] shared with the node task, which updates it when the node
/// reloads its certificate.
pub type SharedStanding = Arc<RwLock<Standing>>;

/// The enforce backends' status, shared with their tasks.
#[derive(Clone, Default)]
pub struct BackendStatus {
    /// The Fail2Ban applier's.
    pub fail2ban: Arc<Mutex<ApplierStatus>>,
    /// The nftables backend's, when it runs.
    pub nftables: Option<Arc<Mutex<NftStatus>>>,
    /// What the backends are told to hold, when any runs.
    pub target: Option<tokio::sync::watch::Receiver<Arc<crate::enforce::Target>>>,
}

/// What the reads need, shared with the tasks that own each part.
#[derive(Clone)]
pub struct Queries {
    config: Arc<Config>,
    standing: SharedStanding,
    store: Store,
    mesh: MeshHandle,
    trust: Arc<RwLock<Trust>>,
    backends: BackendStatus,
    gateway: Option<Arc<Mutex<GatewayStatus>>>,
}

impl Queries {
    /// The reads over the node's parts.
    pub fn new(
        config: Config,
        standing: SharedStanding,
        store: Store,
        mesh: MeshHandle,
        trust: Arc<RwLock<Trust>>,
        backends: BackendStatus,
        gateway: Option<Arc<Mutex<GatewayStatus>>>,
    ) -> Queries {
        let config = Arc::new(config);
        Queries { config, standing, store, mesh, trust, backends, gateway }
    }

    /// This node's standing now.
    fn standing(&self) -> Standing {
        self.standing.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// A record as the control socket shows it (see [`record_view`]).
    fn view(&self, record: &Record, arrival: Option<&(u64, Option<String>)>) -> RecordView {
        let trust = self.trust.read().unwrap_or_else(PoisonError::into_inner);
        record_view(record, arrival, &trust, &self.config.cluster.params)
    }

    /// Every peer the node knows, as the control socket shows it.
    pub async fn peers(&self) -> Vec<PeerView> {
        self.peer_views(self.mesh.peers().await)
    }

    /// `peers` as the control socket shows them.
    fn peer_views(&self, peers: Vec<crate::mesh::PeerState>) -> Vec<PeerView> {
        let last_sync =
            self.mesh.stats.lock().unwrap_or_else(PoisonError::into_inner).last_sync.clone();
        peers
            .into_iter()
            .map(|p| PeerView {
                peer_id: p.peer.to_string(),
                name: p.name,
                state: match (p.blocked, p.connected, p.ready) {
                    (true, _, _) => PeerState::Blocked,
                    (false, false, _) => PeerState::Disconnected,
                    (false, true, true) => PeerState::Connected,
                    (false, true, false) => PeerState::Pending,
                },
                addrs: p.addrs.iter().map(ToString::to_string).collect(),
                last_sync_ms: last_sync.get(&p.peer).copied(),
                clock_offset_ms: p.offset_ms,
            })
            .collect()
    }

    /// Lifts the blocks `target` names (`banmesh peers unblock`).
    pub async fn unblock(&self, target: crate::mesh::Unblock) -> Vec<PeerId> {
        self.mesh.unblock(target).await
    }

    /// Reconciles now with `peer`, or every connected peer.
    pub async fn sync(&self, peer: Option<PeerId>) -> Result<Vec<PeerId>, NodeError> {
        let asked = peer.is_some();
        let done = self.mesh.sync(peer).await;
        if asked && done.is_empty() {
            return Err(NodeError::SyncUnfinished);
        }
        Ok(done)
    }

    /// One page of the stored records matching `filter`, after `after`
    /// (from the first when `None`), shown; and where the next page starts,
    /// `None` after the last. Records on a key (and the networks covering
    /// it) are few and come in one page. Read and shown off the async
    /// threads.
    pub async fn records_page(
        &self,
        filter: &RecordFilter,
        after: Option<PageEnd>,
    ) -> Result<(Vec<RecordView>, Option<PageEnd>), NodeError> {
        let (filter, trust) = (filter.clone(), self.trust.clone());
        let params = self.config.cluster.params;
        let page = self
            .store
            .read(move |c, p| {
                let (records, end): (Vec<_>, _) = match filter.key {
                    Some(key) => {
                        let keys = query::covering_keys(key);
                        let records = query::records_on_keys(c, p, &keys)?;
                        let arrivals = query::arrivals_on_keys(c, p, &keys)?;
                        let with = |r: Record| {
                            let arrival = arrivals.get(&r.id()).cloned();
                            (r, arrival)
                        };
                        (records.into_iter().map(with).collect(), None)
                    }
                    None => {
                        let (records, end) = query::records_page(c, p, after.as_ref(), PAGE)?;
                        (records.into_iter().map(|(r, a)| (r, Some(a))).collect(), end)
                    }
                };
                let trust = trust.read().unwrap_or_else(PoisonError::into_inner);
                Ok((shown(&records, &filter, &trust, &params), end))
            })
            .await?;
        Ok(page)
    }

    /// Every record deciding `addr`, and the decision.
    pub async fn trace(&self, addr: IpAddr) -> Result<TraceView, NodeError> {
        let key = Key::from_addr(addr);
        let now = now_ms();
        let (mut records, arrivals) = self
            .store
            .read(move |c, p| {
                let keys = query::covering_keys(key);
                Ok((query::records_on_keys(c, p, &keys)?, query::arrivals_on_keys(c, p, &keys)?))
            })
            .await?;
        records
            .sort_by(|a, b| b.key().prefix_len().cmp(&a.key().prefix_len()).then(a.order_cmp(b)));
        let decision = self.store.with_index(|i| i.decision(addr, now));
        let (text, until, by) = match decision {
            Decision::Allowed { key, until_ms } => (
                format!("allowed by an allow on {key}"),
                Some(until_ms),
                Some((key, Kind::Allow, until_ms)),
            ),
            Decision::Banned { key, until_ms, .. } => {
                let never = self.mesh.never_ban(&self.config.safety.never_ban).await;
                let local = if never.iter().any(|n| n.contains(addr)) {
                    ", but never banned on this node"
                } else {
                    ""
                };
                (
                    format!("banned by a ban on {key}{local}"),
                    Some(until_ms),
                    Some((key, Kind::Ban, until_ms)),
                )
            }
            Decision::Free => ("not banned".to_owned(), None, None),
        };
        let views: Vec<RecordView> =
            records.iter().map(|r| self.view(r, arrivals.get(&r.id()))).collect();
        let valid: Vec<bool> = views.iter().map(|v| v.valid).collect();
        let lifts = lifted::lifting(&records, &valid, now);
        let entries = records
            .iter()
            .zip(views)
            .zip(lifts)
            .map(|((r, record), lifts)| TraceEntry {
                decides: (lifts && by.is_none())
                    || by.is_some_and(|(k, kind, until)| {
                        r.key() == k && r.kind() == kind && r.statement().expires_at == Some(until)
                    }),
                record,
            })
            .collect();
        Ok(TraceView {
            address: key.to_string(),
            records: entries,
            decision: text,
            until_ms: until,
            enforced: self.enforced(addr).await,
        })
    }
}

impl Queries {
    /// What the backends hold for `addr` (`trace`).
    async fn enforced(&self, addr: IpAddr) -> Vec<String> {
        let mut out = {
            let applier = self.backends.fail2ban.lock().unwrap_or_else(PoisonError::into_inner);
            let on = self.config.enforce.has(crate::config::Backend::Fail2Ban);
            if on { applier.trace(addr, &self.config.fail2ban.jail) } else { Vec::new() }
        };
        if let Some(status) = &self.backends.nftables {
            let status = status.lock().unwrap_or_else(PoisonError::into_inner).clone();
            out.extend(crate::nftables::trace::lookup(&status, addr));
        }
        out
    }
}

impl Reads for Queries {
    type Cursor = PageEnd;

    fn status(&self) -> impl Future<Output = Result<StatusView, NodeError>> + Send {
        Queries::status(self)
    }

    fn peers(&self) -> impl Future<Output = Vec<PeerView>> + Send {
        Queries::peers(self)
    }

    fn records_page(
        &self,
        filter: &RecordFilter,
        after: Option<PageEnd>,
    ) -> impl Future<Output = Result<(Vec<RecordView>, Option<PageEnd>), NodeError>> + Send {
        Queries::records_page(self, filter, after)
    }

    fn trace(&self, addr: IpAddr) -> impl Future<Output = Result<TraceView, NodeError>> + Send {
        Queries::trace(self, addr)
    }

    fn sync(
        &self,
        peer: Option<PeerId>,
    ) -> impl Future<Output = Result<Vec<PeerId>, NodeError>> + Send {
        Queries::sync(self, peer)
    }

    fn unblock(&self, target: crate::mesh::Unblock) -> impl Future<Output = Vec<PeerId>> + Send {
        Queries::unblock(self, target)
    }
}

/// The records matching `filter`'s kind and origin, shown.
fn shown(
    records: &[(Record, Option<Arrival>)],
    filter: &RecordFilter,
    trust: &Trust,
    params: &Params,
) -> Vec<RecordView> {
    let RecordFilter { origin, kind, .. } = filter;
    let names = |origin: &Origin| trust.cert_of_origin(origin).map(|c| c.name().to_owned());
    records
        .iter()
        .filter(|(r, _)| kind.is_none_or(|k| r.kind() == k))
        .filter(|(r, _)| {
            origin.as_deref().is_none_or(|o| {
                r.origin().to_string() == o || names(&r.origin()).as_deref() == Some(o)
            })
        })
        .map(|(r, arrival)| record_view(r, arrival.as_ref(), trust, params))
        .collect()
}

/// A record as the control socket shows it, with when and from which peer
/// it arrived (`None` for the peer: issued here).
pub fn record_view(
    record: &Record,
    arrival: Option<&(u64, Option<String>)>,
    trust: &Trust,
    params: &Params,
) -> RecordView {
    let s = record.statement();
    let valid = trust.check_record(record, params).is_ok();
    RecordView {
        key: s.key.to_string(),
        kind: s.kind.to_string(),
        origin_name: trust.cert_of_origin(&s.origin).map(|c| c.name().to_owned()),
        origin_key: s.origin.to_string(),
        issued_at_ms: s.issued_at.millis(),
        issued_at: s.issued_at.to_string(),
        expires_at_ms: s.expires_at,
        strikes: s.strikes,
        jail: s.meta.jail.clone(),
        reason: s.meta.reason.clone(),
        source: s.meta.source.clone(),
        id: record.id().to_string(),
        valid,
        arrived_at_ms: arrival.map(|(at, _)| *at),
        arrived_from: arrival.and_then(|(_, from)| from.clone()),
    }
}
