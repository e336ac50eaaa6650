//! What other tasks exchange with the swarm task: the commands it takes
//! ([`MeshCommand`]), what it shows of each peer ([`PeerState`]) and the
//! counters `banmesh status` shows ([`MeshStats`]).

use std::collections::{BTreeMap, HashMap};

use banmesh_crdt::Record;
use banmesh_keys::Revocation;
use libp2p::request_response::ResponseChannel;
use libp2p::{Multiaddr, PeerId};
use tokio::sync::oneshot;

use super::Unblock;
use crate::mesh::sync::{SyncRequest, SyncResponse};

/// A request to the swarm task.
pub enum MeshCommand {
    /// Gossip records already committed to the store.
    Publish(Vec<Record>),
    /// Gossip a revocation already stored.
    PublishRevocation(Revocation),
    /// Describe every connected peer.
    Peers(oneshot::Sender<Vec<PeerState>>),
    /// Send a sync request and hand back the answer.
    SyncRequest {
        /// To whom.
        peer: PeerId,
        /// What.
        request: SyncRequest,
        /// Where the answer goes.
        reply: oneshot::Sender<Result<SyncResponse, String>>,
    },
    /// Answer an inbound sync request.
    SyncRespond(ResponseChannel<SyncResponse>, SyncResponse),
    /// Lift blocks now; answers the peers unblocked.
    Unblock(Unblock, oneshot::Sender<Vec<PeerId>>),
    /// Present this certificate (canonical bytes) from now on.
    SetOwnCert(Vec<u8>),
    /// A peer sent a sync request no honest node sends (why): counted, and
    /// a strike like a rejected gossip message.
    Strike(PeerId, &'static str),
}

/// What the node knows of one connected peer.
#[derive(Debug, Clone)]
pub struct PeerState {
    /// The peer.
    pub peer: PeerId,
    /// Its certificate's name, once its hello is accepted.
    pub name: Option<String>,
    /// Whether its hello was accepted.
    pub ready: bool,
    /// Its clock minus ours, ms, from its hello.
    pub offset_ms: Option<i64>,
    /// Unix ms when it connected.
    pub connected_ms: u64,
    /// The addresses it listens on, as it told us.
    pub addrs: Vec<Multiaddr>,
    /// The address its connection comes from (or that we dialled): where
    /// its traffic is seen from, unlike `addrs`, which it only claims.
    pub remote: Option<Multiaddr>,
    /// Whether a connection is open.
    pub connected: bool,
    /// Whether it is blocked (refused hello, repeated rejects, revoked).
    pub blocked: bool,
    /// Connected, but nothing (not even a ping) came back lately: the sync
    /// timer skips it, and the connection is closed if a ping fails.
    pub in_doubt: bool,
    /// Unix ms when anything was last heard from it (this run).
    pub last_seen_ms: Option<u64>,
}

/// Counters shown by `banmesh status`.
#[derive(Debug, Default, Clone)]
pub struct MeshStats {
    /// Refusals by reason (`bad signature`, `hello timeout`, ...).
    pub refused: BTreeMap<String, u64>,
    /// Records left out of sound batches, by reason (`revoked origin`, ...).
    pub skipped: BTreeMap<String, u64>,
    /// Messages accepted.
    pub accepted: u64,
    /// Our listen addresses.
    pub listen: Vec<Multiaddr>,
    /// When the last reconciliation with each peer finished (either side
    /// opened it), Unix ms.
    pub last_sync: HashMap<PeerId, u64>,
    /// What each peer that refused this node's hello told, until it accepts one.
    pub refused_by: BTreeMap<PeerId, String>,
    /// Where the mesh's tasks count for `/metrics`.
    pub metrics: crate::metrics::Metrics,
    /// The gossip mesh and discovery, for `status`.
    pub discovery: crate::mesh::discovery::DiscoveryView,
    /// Sync sessions since start and running.
    pub sync: crate::mesh::sync::sessions::SyncStats,
}
