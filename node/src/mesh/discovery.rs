//! Discovery beyond the configured peers and the hello's addresses:
//! Kademlia over enrolled peers only, and mDNS on a LAN (off by default).
//!
//! Kademlia runs on its own protocol name ([`KAD_PROTOCOL`]), so it never
//! mixes with another DHT. Its routing table takes peers only by hand
//! ([`kad::BucketInserts::Manual`]): the swarm task adds a peer when its
//! hello is accepted and removes it when it is blocked or revoked. The node
//! runs Kademlia as a client on every connection and answers queries
//! ([`kad::Mode::Server`]) only on the connections of peers whose hello it
//! accepted ([`EnrolledKad`]), so a stranger learns nothing from the table.
//! Peers found by a query or by mDNS are only addresses to dial: each still
//! has to pass the hello before anything it says is trusted.

use std::collections::VecDeque;
use std::num::NonZeroUsize;
use std::task::{Context, Poll};
use std::time::Duration;

use libp2p::core::Endpoint;
use libp2p::core::transport::PortUse;
use libp2p::kad::{self, store::MemoryStore};
use libp2p::swarm::{
    ConnectionDenied, ConnectionHandler, ConnectionId, FromSwarm, NetworkBehaviour, NotifyHandler,
    THandler, THandlerInEvent, THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId, StreamProtocol, mdns};
use serde::{Deserialize, Serialize};

use super::admitted::AdmittedPeers;

/// Kademlia's protocol name: banmesh's own, so unrelated DHTs never mix.
pub const KAD_PROTOCOL: &str = "/banmesh/kad/1";
/// Peers per k-bucket: the routing table holds at most 256 times this.
const BUCKET_SIZE: usize = 20;
/// Peers a random walk asks for.
const WALK_PEERS: usize = 4;
/// How often mDNS asks the LAN again.
const MDNS_QUERY_EVERY: Duration = Duration::from_secs(30);

/// Which discovery the node runs (`[mesh]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Discovery {
    /// Kademlia over enrolled peers.
    pub kademlia: bool,
    /// mDNS on the local network.
    pub mdns: bool,
}

impl Default for Discovery {
    fn default() -> Discovery {
        Discovery { kademlia: true, mdns: false }
    }
}

/// What `banmesh status` shows of the mesh's discovery and gossip mesh.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiscoveryView {
    /// Peers in this node's gossipsub mesh (the topic's direct links).
    pub mesh_peers: usize,
    /// gossipsub's low watermark: below it the node grafts and dials more.
    pub mesh_n_low: usize,
    /// Whether Kademlia runs.
    pub kademlia: bool,
    /// The peers in Kademlia's routing table (every one passed the hello).
    pub routing_table: Vec<String>,
    /// Requests of this node's random walks that peers answered: Kademlia
    /// is served between enrolled peers.
    pub walk_answers: u64,
    /// Whether mDNS runs.
    pub mdns: bool,
    /// Addresses of peers mDNS reported since start.
    pub mdns_found: u64,
}

/// The `gossip mesh` line of `banmesh status`.
pub fn summary(view: &DiscoveryView) -> String {
    let kademlia = match view.kademlia {
        true => format!("{} in Kademlia's routing table", view.routing_table.len()),
        false => "Kademlia off".to_owned(),
    };
    let mdns = match view.mdns {
        true => format!("mDNS found {}", view.mdns_found),
        false => "mDNS off".to_owned(),
    };
    format!("{} links (low watermark {}); {kademlia}; {mdns}", view.mesh_peers, view.mesh_n_low)
}

/// The handler's input type, named through the behaviour (libp2p-kad
/// keeps its handler module private).
type KadIn = <<kad::Behaviour<MemoryStore> as NetworkBehaviour>::ConnectionHandler as ConnectionHandler>::FromBehaviour;

/// Kademlia that serves only admitted peers: every connection starts in
/// client mode and is switched to server mode once its peer's hello is
/// accepted ([`EnrolledKad::admit`]).
pub struct EnrolledKad {
    inner: kad::Behaviour<MemoryStore>,
    /// Connected peers, and those whose hello was accepted: their new
    /// connections are served too.
    peers: AdmittedPeers,
    /// Mode changes to send to connection handlers.
    pending: VecDeque<(PeerId, ConnectionId)>,
}

impl EnrolledKad {
    /// Kademlia for `local` on [`KAD_PROTOCOL`]: manual inserts, bounded
    /// buckets, no records kept for others.
    pub fn new(local: PeerId) -> EnrolledKad {
        let mut config = kad::Config::new(StreamProtocol::new(KAD_PROTOCOL));
        config
            .set_kbucket_inserts(kad::BucketInserts::Manual)
            .set_record_filtering(kad::StoreInserts::FilterBoth)
            .set_replication_interval(None)
            .set_publication_interval(None)
            .set_provider_publication_interval(None)
            .set_periodic_bootstrap_interval(None)
            .set_query_timeout(Duration::from_secs(30));
        if let Some(size) = NonZeroUsize::new(BUCKET_SIZE) {
            config.set_kbucket_size(size);
        }
        // Walks are the swarm task's ([`EnrolledKad::walk`]): Kademlia's own
        // timer warns each time it finds the table empty.
        let mut inner = kad::Behaviour::with_config(local, MemoryStore::new(local), config);
        inner.set_mode(Some(kad::Mode::Client));
        EnrolledKad { inner, peers: AdmittedPeers::default(), pending: VecDeque::new() }
    }

    /// `peer` passed the hello: it enters the routing table at `addrs` (its
    /// own listen addresses) and its connections are served.
    pub fn admit(&mut self, peer: PeerId, addrs: &[Multiaddr]) {
        for addr in addrs {
            self.inner.add_address(&peer, addr.clone());
        }
        self.peers.admit(peer);
        for connection in self.peers.connections(&peer) {
            self.pending.push_back((peer, connection));
        }
    }

    /// `peer` was blocked or revoked: out of the routing table.
    pub fn expel(&mut self, peer: &PeerId) {
        self.peers.expel(peer);
        self.inner.remove_peer(peer);
    }

    /// Starts a random walk, unless the table is empty: a lookup of a
    /// random id that stops once the [`WALK_PEERS`] closest peers
    /// answered; its answer names peers with their addresses. Each peer
    /// it asks is connected to (a hello and a sync session each), so walks
    /// are few (Kademlia's bootstrap, a lookup per bucket, connected every
    /// node to every other in a 30-node mesh).
    pub fn walk(&mut self) {
        let empty = self.inner.kbuckets().all(|b| b.num_entries() == 0);
        if let (false, Some(n)) = (empty, NonZeroUsize::new(WALK_PEERS)) {
            self.inner.get_n_closest_peers(PeerId::random(), n);
        }
    }

    /// The peers in the routing table.
    pub fn table(&mut self) -> Vec<PeerId> {
        let mut peers = Vec::new();
        for bucket in self.inner.kbuckets() {
            peers.extend(bucket.iter().map(|e| *e.node.key.preimage()));
        }
        peers
    }
}

impl EnrolledKad {
    /// Ends the bootstraps libp2p-kad starts by itself each time a peer
    /// enters a table of fewer than 20 (it offers no switch outside its
    /// tests): a bootstrap is a lookup per bucket, and every peer a lookup
    /// asks is connected to (a hello and a sync session each), which
    /// connected every node to every other in a 30-node mesh. This node
    /// walks only by [`EnrolledKad::walk`].
    fn end_bootstraps(&mut self) {
        for mut query in self.inner.iter_queries_mut() {
            if matches!(query.info(), kad::QueryInfo::Bootstrap { .. }) {
                query.finish();
            }
        }
    }
}

impl NetworkBehaviour for EnrolledKad {
    type ConnectionHandler = THandler<kad::Behaviour<MemoryStore>>;
    type ToSwarm = kad::Event;

    fn handle_pending_inbound_connection(
        &mut self,
        id: ConnectionId,
        local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        self.inner.handle_pending_inbound_connection(id, local, remote)
    }

    fn handle_established_inbound_connection(
        &mut self,
        id: ConnectionId,
        peer: PeerId,
        local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.inner.handle_established_inbound_connection(id, peer, local, remote)
    }

    fn handle_pending_outbound_connection(
        &mut self,
        id: ConnectionId,
        peer: Option<PeerId>,
        addresses: &[Multiaddr],
        role: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        self.inner.handle_pending_outbound_connection(id, peer, addresses, role)
    }

    fn handle_established_outbound_connection(
        &mut self,
        id: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        role: Endpoint,
        port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.inner.handle_established_outbound_connection(id, peer, addr, role, port_use)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        if let Some(connection) = self.peers.on_swarm_event(&event) {
            self.pending.push_back(connection);
        }
        self.inner.on_swarm_event(event);
    }

    fn on_connection_handler_event(
        &mut self,
        peer: PeerId,
        id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        self.inner.on_connection_handler_event(peer, id, event);
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<ToSwarm<kad::Event, THandlerInEvent<Self>>> {
        if let Some((peer_id, connection)) = self.pending.pop_front() {
            return Poll::Ready(ToSwarm::NotifyHandler {
                peer_id,
                handler: NotifyHandler::One(connection),
                event: KadIn::ReconfigureMode { new_mode: kad::Mode::Server },
            });
        }
        self.end_bootstraps();
        let polled = self.inner.poll(cx);
        self.end_bootstraps();
        polled
    }
}

/// mDNS on every interface, asking again every [`MDNS_QUERY_EVERY`].
pub fn mdns(local: PeerId) -> std::io::Result<mdns::tokio::Behaviour> {
    let config = mdns::Config { query_interval: MDNS_QUERY_EVERY, ..mdns::Config::default() };
    mdns::tokio::Behaviour::new(config, local)
}
