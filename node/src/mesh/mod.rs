//! The mesh: gossip of signed record batches over libp2p (gossipsub on one
//! topic, validated by the application), the `/banmesh/hello/1` exchange
//! that admits a peer, and the topology that keeps several direct peers.
//!
//! Tasks: the swarm task ([`swarm::Mesh::run`]) owns the swarm; the
//! verifier task ([`verifier::run`]) judges and stores received batches off
//! the swarm loop. Channels: [`MeshHandle`] → swarm (commands), swarm →
//! verifier (messages), verifier → swarm (verdicts), all bounded. Shutdown:
//! both tasks end when the node's token fires.

pub mod admitted;
pub mod batch;
#[allow(missing_docs)] // the NetworkBehaviour derive writes an undocumented event enum
pub mod behaviour;
pub mod codec;
pub mod discovery;
pub mod gossip_gate;
pub mod hello;
pub mod learnt;
pub mod limit;
pub mod never_ban;
pub mod swarm;
pub mod sync;
pub mod trust;
pub mod verifier;

use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use std::net::IpAddr;

use banmesh_crdt::{Key, Params, Record};
use banmesh_keys::{Revocation, SecretKey};
use libp2p::{Multiaddr, PeerId};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

pub use never_ban::never_ban_list;
pub use swarm::{MeshStats, PeerState, Unblock};
pub use trust::Trust;

use crate::clock::now_ms;
use crate::store::Store;
use crate::tasks::Tasks;

/// What the mesh needs from the node's configuration.
pub struct MeshSettings {
    /// Addresses to listen on.
    pub listen: Vec<Multiaddr>,
    /// Peers to dial at start (with or without `/p2p/`).
    pub peers: Vec<Multiaddr>,
    /// How long a new peer gets to complete its hello.
    pub hello_timeout: Duration,
    /// Cluster parameters for judging records.
    pub params: Params,
    /// How often to reconcile with the next peer.
    pub sync_interval: Duration,
    /// Records per second accepted from one origin.
    pub origin_rate: u64,
    /// Records one origin may send at once.
    pub origin_burst: u64,
    /// Connection caps.
    pub limits: crate::config::LimitsConfig,
    /// Kademlia and mDNS (`[mesh]`).
    pub discovery: discovery::Discovery,
    /// Where counts go.
    pub metrics: crate::metrics::Metrics,
}

/// Why the mesh could not start.
#[derive(Debug, thiserror::Error)]
pub enum MeshError {
    /// The libp2p stack could not be built.
    #[error(transparent)]
    Build(#[from] behaviour::BuildError),
    /// A listen address could not be used.
    #[error("{0}")]
    Listen(String),
}

/// A handle on the running mesh.
#[derive(Clone)]
pub struct MeshHandle {
    command_tx: mpsc::Sender<swarm::MeshCommand>,
    order_tx: mpsc::Sender<sync::SyncOrder>,
    /// Counters and listen addresses.
    pub stats: Arc<Mutex<MeshStats>>,
    /// This node's PeerId.
    pub peer_id: PeerId,
    store: Store,
    trust: Arc<RwLock<Trust>>,
    local: never_ban::LocalAddrs,
}

impl MeshHandle {
    /// A handle to no mesh (`fuzzing` feature only): reads see no peers,
    /// commands go nowhere.
    #[cfg(feature = "fuzzing")]
    pub fn detached(store: Store, trust: Arc<RwLock<Trust>>) -> MeshHandle {
        let (command_tx, _) = mpsc::channel(1);
        let (order_tx, _) = mpsc::channel(1);
        let stats = Arc::new(Mutex::new(MeshStats::default()));
        let local = never_ban::LocalAddrs::read_now();
        MeshHandle { command_tx, order_tx, stats, peer_id: PeerId::random(), store, trust, local }
    }

    /// Gossips records already committed to the store.
    pub async fn publish(&self, records: Vec<Record>) {
        if !records.is_empty() {
            let _ = self.command_tx.send(swarm::MeshCommand::Publish(records)).await;
        }
    }

    /// Presents `cert` (canonical bytes) in every later hello.
    pub async fn set_own_cert(&self, cert: Vec<u8>) {
        let _ = self.command_tx.send(swarm::MeshCommand::SetOwnCert(cert)).await;
    }

    /// Gossips a revocation already stored, and drops the revoked peer.
    pub async fn publish_revocation(&self, revocation: Revocation) {
        let _ = self.command_tx.send(swarm::MeshCommand::PublishRevocation(revocation)).await;
    }

    /// Reconciles now with `peer`, or with every ready peer; returns the
    /// peers a session finished with.
    pub async fn sync(&self, peer: Option<PeerId>) -> Vec<PeerId> {
        let peers = match peer {
            Some(peer) => vec![peer],
            None => self.peers().await.into_iter().filter(|p| p.ready).map(|p| p.peer).collect(),
        };
        let (reply, answer) = oneshot::channel();
        if self.order_tx.send(sync::SyncOrder::Now(peers, reply)).await.is_err() {
            return Vec::new();
        }
        answer.await.unwrap_or_default()
    }

    /// The never-ban list as enforcement applies it: `configured`, then
    /// loopback, this host's addresses, and the addresses admitted peers
    /// connect from, connected now or kept in the store (see
    /// [`never_ban_list`]).
    pub async fn never_ban(&self, configured: &[Key]) -> Vec<Key> {
        self.never_ban_with(configured, &self.peers().await).await
    }

    /// [`MeshHandle::never_ban`] with `peers` already asked for.
    pub async fn never_ban_with(&self, configured: &[Key], peers: &[PeerState]) -> Vec<Key> {
        let listen = self.stats.lock().unwrap_or_else(PoisonError::into_inner).listen.clone();
        let stored = self.store.peer_addrs(now_ms()).await.unwrap_or_else(|error| {
            tracing::warn!(%error, "cannot read peers' addresses for the never-ban list");
            Vec::new()
        });
        let stored: Vec<Key> = {
            let trust = self.trust.read().unwrap_or_else(PoisonError::into_inner);
            stored.iter().filter(|p| !trust.is_revoked(&p.node)).map(|p| p.addr).collect()
        };
        let local = self.local.get();
        let parts =
            never_ban::Parts { configured, local: &local, listen: &listen, peers, stored: &stored };
        never_ban_list(&parts)
    }

    /// Lifts the blocks `target` names now; returns the peers unblocked.
    pub async fn unblock(&self, target: Unblock) -> Vec<PeerId> {
        let (reply, answer) = oneshot::channel();
        if self.command_tx.send(swarm::MeshCommand::Unblock(target, reply)).await.is_err() {
            return Vec::new();
        }
        answer.await.unwrap_or_default()
    }

    /// Every connected peer.
    pub async fn peers(&self) -> Vec<PeerState> {
        let (reply, answer) = oneshot::channel();
        if self.command_tx.send(swarm::MeshCommand::Peers(reply)).await.is_err() {
            return Vec::new();
        }
        answer.await.unwrap_or_default()
    }
}

/// The IP address in a multiaddr, if it has one.
pub fn ip_of(addr: &Multiaddr) -> Option<IpAddr> {
    addr.iter().find_map(|p| match p {
        libp2p::multiaddr::Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
        libp2p::multiaddr::Protocol::Ip6(ip) => Some(IpAddr::V6(ip)),
        _ => None,
    })
}

/// Builds the swarm, starts listening, and spawns the swarm and verifier
/// tasks into `tasks`.
pub fn start(
    settings: MeshSettings,
    secret: &SecretKey,
    own_cert: Vec<u8>,
    trust: Arc<RwLock<Trust>>,
    store: Store,
    tasks: &mut Tasks,
    shutdown: CancellationToken,
) -> Result<MeshHandle, MeshError> {
    // gossipsub's default mesh_n_low: keep at least this many direct peers.
    const TARGET_PEERS: usize = 4;
    let stats = MeshStats { metrics: settings.metrics, ..MeshStats::default() };
    let stats = Arc::new(Mutex::new(stats));
    let swarm = behaviour::build_limited(
        secret,
        TARGET_PEERS,
        stats.clone(),
        settings.limits,
        settings.discovery,
    )?;
    let peer_id = *swarm.local_peer_id();
    let (command_tx, command_rx) = mpsc::channel(256);
    let (inbound_tx, inbound_rx) = mpsc::channel(256);
    let (outcome_tx, outcome_rx) = mpsc::channel(256);
    let (sync_inbound_tx, sync_inbound_rx) = mpsc::channel(64);
    let (order_tx, order_rx) = mpsc::channel(64);
    let (seen_tx, seen_rx) = mpsc::channel(64);
    let (learnt_tx, learnt_rx) = mpsc::channel(learnt::QUEUE);
    let mut mesh = swarm::Mesh::new(
        swarm,
        trust.clone(),
        stats.clone(),
        own_cert,
        settings.params.into(),
        settings.peers,
        settings.hello_timeout,
        TARGET_PEERS,
        inbound_tx,
        swarm::SyncChannels { sync_inbound_tx, sync_order_tx: order_tx.clone() },
        swarm::Keepers { seen_tx, learnt_tx },
    );
    mesh.listen(&settings.listen).map_err(MeshError::Listen)?;
    tasks.spawn("mesh-swarm", mesh.run(command_rx, outcome_rx, shutdown.clone()));
    let local = never_ban::LocalAddrs::read_now();
    tasks.spawn(
        "never-ban",
        never_ban::run(store.clone(), local.clone(), seen_rx, shutdown.clone()),
    );
    tasks.spawn("learnt", learnt::run(store.clone(), learnt_rx, shutdown.clone()));
    let checker = verifier::Checker {
        store: store.clone(),
        trust: trust.clone(),
        params: settings.params,
        limits: Arc::new(limit::OriginLimits::new(settings.origin_rate, settings.origin_burst)),
        stats: stats.clone(),
    };
    let ctx = sync::SyncContext {
        checker: checker.clone(),
        swarm_tx: command_tx.clone(),
        local: peer_id,
    };
    tasks.spawn(
        "sync",
        sync::run(ctx, sync_inbound_rx, order_rx, settings.sync_interval, shutdown.clone()),
    );
    tasks.spawn("verifier", verifier::run(inbound_rx, outcome_tx, checker, shutdown));
    Ok(MeshHandle { command_tx, order_tx, stats, peer_id, store, trust, local })
}

#[cfg(test)]
mod tests;
