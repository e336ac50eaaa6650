//! The mesh: gossip of signed record batches over libp2p (gossipsub on one
//! topic, validated by the application), the `/banmesh/hello/1` exchange
//! that admits a peer, and the topology that keeps several direct peers.
//!
//! Tasks: the swarm task ([`swarm::Mesh::run`]) owns the swarm; the
//! verifier task ([`verifier::run`]) judges and stores received batches off
//! the swarm loop. Channels: [`MeshHandle`] → swarm (commands), swarm →
//! verifier (messages), verifier → swarm (verdicts), all bounded. Shutdown:
//! both tasks end when the node's token fires.

pub mod batch;
#[allow(missing_docs)] // the NetworkBehaviour derive writes an undocumented event enum
pub mod behaviour;
pub mod codec;
pub mod hello;
pub mod limit;
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
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use swarm::{MeshStats, PeerState};
pub use trust::Trust;

use crate::store::Store;

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
}

impl MeshHandle {
    /// Gossips records already committed to the store.
    pub async fn publish(&self, records: Vec<Record>) {
        if !records.is_empty() {
            let _ = self.command_tx.send(swarm::MeshCommand::Publish(records)).await;
        }
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
    /// this node's own listen addresses and its admitted peers' addresses
    /// (see [`never_ban_list`]).
    pub async fn never_ban(&self, configured: &[Key]) -> Vec<Key> {
        let listen = self.stats.lock().unwrap_or_else(PoisonError::into_inner).listen.clone();
        never_ban_list(configured, &listen, &self.peers().await)
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

/// The never-ban list from its parts: the configured networks, the
/// addresses in `listen` and the address every connected peer whose hello
/// was accepted, and which is not blocked, connects from. Only that observed
/// address counts, never the addresses a peer's hello claims: otherwise any
/// enrolled node, even one without the `allow` role, could shield an
/// attacker's address from every node's bans by claiming it. Unspecified
/// addresses (`0.0.0.0`) are left out; no entry appears twice.
pub fn never_ban_list(configured: &[Key], listen: &[Multiaddr], peers: &[PeerState]) -> Vec<Key> {
    let mut list: Vec<Key> = Vec::with_capacity(configured.len() + listen.len());
    let peer_addrs =
        peers.iter().filter(|p| p.ready && !p.blocked).filter_map(|p| p.remote.as_ref());
    let found = listen.iter().chain(peer_addrs).filter_map(ip_of).filter(|ip| !ip.is_unspecified());
    for key in configured.iter().copied().chain(found.map(Key::from_addr)) {
        if !list.contains(&key) {
            list.push(key);
        }
    }
    list
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
    tasks: &mut JoinSet<()>,
    shutdown: CancellationToken,
) -> Result<MeshHandle, MeshError> {
    // gossipsub's default mesh_n_low: keep at least this many direct peers.
    const TARGET_PEERS: usize = 4;
    let stats = Arc::new(Mutex::new(MeshStats::default()));
    let swarm = behaviour::build(secret, TARGET_PEERS, stats.clone())?;
    let peer_id = *swarm.local_peer_id();
    let (command_tx, command_rx) = mpsc::channel(256);
    let (inbound_tx, inbound_rx) = mpsc::channel(256);
    let (outcome_tx, outcome_rx) = mpsc::channel(256);
    let (sync_inbound_tx, sync_inbound_rx) = mpsc::channel(64);
    let (order_tx, order_rx) = mpsc::channel(64);
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
    );
    mesh.listen(&settings.listen).map_err(MeshError::Listen)?;
    tasks.spawn(mesh.run(command_rx, outcome_rx, shutdown.clone()));
    let checker = verifier::Checker {
        store,
        trust,
        params: settings.params,
        limits: Arc::new(limit::OriginLimits::new(settings.origin_rate, settings.origin_burst)),
        stats: stats.clone(),
    };
    let ctx = sync::SyncContext { checker: checker.clone(), swarm_tx: command_tx.clone() };
    tasks.spawn(sync::run(
        ctx,
        sync_inbound_rx,
        order_rx,
        settings.sync_interval,
        shutdown.clone(),
    ));
    tasks.spawn(verifier::run(inbound_rx, outcome_tx, checker, shutdown));
    Ok(MeshHandle { command_tx, order_tx, stats, peer_id })
}

#[cfg(test)]
mod tests;
