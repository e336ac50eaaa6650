//! The swarm task: owns the libp2p swarm and the state of every peer
//! (pending until its hello is accepted, then ready), publishes local
//! records, hands received gossip to the verifier and reports its verdicts,
//! and keeps enough direct peers by dialling addresses learnt from hellos.
//!
//! Channels: [`MeshCommand`]s in (bounded), inbound messages out to the
//! verifier, verdicts back. Shutdown: the task ends when its token fires;
//! dropping the swarm closes every connection.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use libp2p::futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic};
use libp2p::request_response::OutboundRequestId;
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, Swarm};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::batch::{Batch, pack};
use super::behaviour::{Behaviour, BehaviourEvent, TOPIC};
use super::hello::{self, Constants, peer_id_of};
use super::learnt::Learnt;
use super::never_ban::Seen;
use super::sync::{SyncInbound, SyncOrder, SyncResponse};
use super::trust::Trust;
use super::verifier::{Inbound, Outcome};

mod admission;
mod api;
mod blocks;
mod discovery;
mod inbound;
mod listen;
mod liveness;
mod reach;
mod revoked;
mod topology;
mod unblock;

pub use api::{MeshCommand, MeshStats, PeerState};
pub use blocks::MAX_BLOCKED;
pub use liveness::Admitted;
pub use unblock::Unblock;

/// How long a refused peer stays blocked.
const BLOCK_FOR: Duration = Duration::from_secs(600);
/// How often configured peers are redialled while the node has none.
const BOOTSTRAP_EVERY: Duration = Duration::from_secs(3);
/// Rejected messages from one peer before it is blocked.
const REJECTS_BEFORE_BLOCK: u32 = 3;

/// An error and its sources in one line (libp2p's transport error shows
/// nothing itself: the reason, such as "Address already in use", is in its
/// source).
fn causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let said = cause.to_string();
        if !said.is_empty() && !text.contains(&said) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&said);
        }
        source = cause.source();
    }
    text
}

struct Peer {
    state: PeerState,
    deadline: Instant,
    /// When anything (a ping answer, gossip, a sync answer) last came back.
    last_alive: Instant,
}

/// The swarm task's ends of the channels to the sync task.
pub struct SyncChannels {
    /// Inbound sync requests out.
    pub sync_inbound_tx: mpsc::Sender<SyncInbound>,
    /// Ready peers out.
    pub sync_order_tx: mpsc::Sender<SyncOrder>,
}

/// The swarm task's state.
pub struct Mesh {
    swarm: Swarm<Behaviour>,
    topic: IdentTopic,
    trust: Arc<RwLock<Trust>>,
    stats: Arc<Mutex<MeshStats>>,
    peers: HashMap<PeerId, Peer>,
    /// Addresses learnt from configuration and hellos, by peer.
    known: HashMap<PeerId, Vec<Multiaddr>>,
    /// Configured peers without a `/p2p/` part: dialled by address.
    bootstrap: Vec<Multiaddr>,
    /// Our own certificate, canonical bytes (empty when not enrolled).
    own_cert: Vec<u8>,
    /// Our cluster constants, sent in the hello and compared with peers'.
    constants: Constants,
    /// Peers whose hello was refused, told why and blocked at the instant
    /// (counted under the reason already).
    refusing: HashMap<PeerId, (Instant, &'static str)>,
    hello_timeout: Duration,
    target_peers: usize,
    inbound_tx: mpsc::Sender<Inbound>,
    /// Blocked peers and when to let them back.
    unblocks: Vec<(Instant, PeerId)>,
    /// Where each blocked peer connected from, for `peers unblock ADDR`.
    blocked_from: HashMap<PeerId, Multiaddr>,
    /// When the configured peers were last dialled.
    last_bootstrap: Option<Instant>,
    /// Rejected messages per peer since it was last blocked.
    rejects: HashMap<PeerId, u32>,
    /// Sync requests in flight, by request id.
    pending_sync: HashMap<OutboundRequestId, oneshot::Sender<Result<SyncResponse, String>>>,
    /// Inbound sync requests go to the sync task.
    sync_inbound_tx: mpsc::Sender<SyncInbound>,
    /// New ready peers are announced to the sync task.
    sync_order_tx: mpsc::Sender<SyncOrder>,
    /// Peers whose hello was accepted this run, connected or not.
    admitted: HashMap<PeerId, Admitted>,
    /// When hellos were last asked of every peer again.
    last_refresh: Option<Instant>,
    /// Gossip waiting for room in the verifier's queue, and its size.
    backlog: VecDeque<Inbound>,
    backlog_bytes: usize,
    /// Where admitted peers connect from, out to the never-ban keeper.
    seen_tx: mpsc::Sender<Seen>,
    /// What hellos teach about trust, out to the task that stores it.
    learnt_tx: mpsc::Sender<Learnt>,
    metrics: crate::metrics::Metrics,
    /// Admitted peers' announced addresses being dialled, for never-ban.
    reach: reach::Reach,
    discovery: discovery::State,
}

/// The channels to the tasks that keep what hellos teach in the store.
pub struct Keepers {
    /// Where admitted peers connect from (the never-ban keeper).
    pub seen_tx: mpsc::Sender<Seen>,
    /// Certificates and revocations ([`crate::mesh::learnt`]).
    pub learnt_tx: mpsc::Sender<Learnt>,
}

impl Mesh {
    /// A mesh task over `swarm`; call [`Mesh::run`] to drive it.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        swarm: Swarm<Behaviour>,
        trust: Arc<RwLock<Trust>>,
        stats: Arc<Mutex<MeshStats>>,
        own_cert: Vec<u8>,
        constants: Constants,
        peers: Vec<Multiaddr>,
        hello_timeout: Duration,
        target_peers: usize,
        inbound_tx: mpsc::Sender<Inbound>,
        channels: SyncChannels,
        keepers: Keepers,
    ) -> Mesh {
        let mut known: HashMap<PeerId, Vec<Multiaddr>> = HashMap::new();
        let mut bootstrap = Vec::new();
        for addr in peers {
            match hello::peer_of_addr(&addr) {
                Some(peer) => known.entry(peer).or_default().push(addr),
                None => bootstrap.push(addr),
            }
        }
        let metrics = stats.lock().unwrap_or_else(PoisonError::into_inner).metrics.clone();
        Mesh {
            metrics,
            swarm,
            topic: IdentTopic::new(TOPIC),
            trust,
            stats,
            peers: HashMap::new(),
            known,
            bootstrap,
            own_cert,
            constants,
            refusing: HashMap::new(),
            hello_timeout,
            target_peers,
            inbound_tx,
            unblocks: Vec::new(),
            blocked_from: HashMap::new(),
            last_bootstrap: None,
            rejects: HashMap::new(),
            pending_sync: HashMap::new(),
            sync_inbound_tx: channels.sync_inbound_tx,
            sync_order_tx: channels.sync_order_tx,
            admitted: HashMap::new(),
            last_refresh: None,
            backlog: VecDeque::new(),
            backlog_bytes: 0,
            seen_tx: keepers.seen_tx,
            learnt_tx: keepers.learnt_tx,
            reach: reach::Reach::default(),
            discovery: discovery::State::default(),
        }
    }

    /// The task's loop.
    pub async fn run(
        mut self,
        mut command_rx: mpsc::Receiver<MeshCommand>,
        mut outcome_rx: mpsc::Receiver<Outcome>,
        shutdown: CancellationToken,
    ) {
        self.dial_more();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let verifier_tx = self.inbound_tx.clone();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                Some(command) = command_rx.recv() => self.handle_command(command),
                Some(outcome) = outcome_rx.recv() => self.handle_outcome(outcome),
                Ok(permit) = verifier_tx.reserve(), if !self.backlog.is_empty() => {
                    self.feed_verifier(permit);
                }
                _ = tick.tick() => self.handle_tick(),
                event = self.swarm.select_next_some() => self.handle_event(event),
            }
        }
        tracing::debug!("mesh stopped");
    }

    fn count(&self, reason: &str) {
        let mut stats = self.stats.lock().unwrap_or_else(PoisonError::into_inner);
        *stats.refused.entry(reason.to_owned()).or_default() += 1;
    }

    fn handle_command(&mut self, command: MeshCommand) {
        match command {
            MeshCommand::Publish(records) => {
                let trust = self.trust.read().unwrap_or_else(PoisonError::into_inner).clone();
                let messages = pack(records, |origin| trust.cert_of_origin(&origin).cloned());
                for message in messages {
                    self.publish(message);
                }
            }
            MeshCommand::PublishRevocation(revocation) => {
                let node = *revocation.node();
                let batch =
                    Batch { certs: Vec::new(), revocations: vec![revocation], records: Vec::new() };
                self.publish(batch.encode());
                self.drop_revoked(&node);
            }
            MeshCommand::Peers(reply) => {
                let _ = reply.send(self.peer_states());
            }
            MeshCommand::SyncRequest { peer, request, reply } => {
                if self.peers.get(&peer).is_some_and(|p| p.state.ready) {
                    let id = self.swarm.behaviour_mut().sync.send_request(&peer, request);
                    self.pending_sync.insert(id, reply);
                } else {
                    let _ = reply.send(Err(format!("{peer} is not a ready peer")));
                }
            }
            MeshCommand::SyncRespond(channel, response) => {
                let _ = self.swarm.behaviour_mut().sync.send_response(channel, response);
            }
            MeshCommand::Unblock(target, reply) => {
                let _ = reply.send(self.unblock(target));
            }
            MeshCommand::SetOwnCert(cert) => self.set_own_cert(cert),
            MeshCommand::Strike(peer, reason) => {
                self.count(reason);
                self.strike(peer);
            }
        }
    }

    fn publish(&mut self, message: Vec<u8>) {
        self.metrics.gossip_bytes(crate::metrics::Direction::Out, message.len());
        match self.swarm.behaviour_mut().gossipsub.publish(self.topic.clone(), message) {
            Ok(_) => {}
            Err(gossipsub::PublishError::NoPeersSubscribedToTopic) => {
                tracing::debug!("no peer to gossip to; sync will deliver");
            }
            Err(e) => {
                self.metrics.error("gossip");
                tracing::warn!(error = %e, "cannot gossip");
            }
        }
    }

    /// Disconnects and blocks a revoked node.
    fn drop_revoked(&mut self, node: &banmesh_keys::PublicKey) {
        if let Some(peer) = peer_id_of(node) {
            self.block(peer, "revoked");
        }
    }

    fn block(&mut self, peer: PeerId, reason: &str) {
        self.count(reason);
        self.shut_out(peer, reason);
    }

    /// Blocks `peer` without counting a refusal.
    fn shut_out(&mut self, peer: PeerId, reason: &str) {
        tracing::warn!(target: "banmesh::events::peer_blocked", %peer, reason, "blocking peer for 10 minutes");
        self.swarm.behaviour_mut().blocked.block_peer(peer);
        self.expel_route(&peer);
        let _ = self.swarm.disconnect_peer_id(peer);
        if let Some(remote) = self.peers.remove(&peer).and_then(|p| p.state.remote) {
            self.blocked_from.insert(peer, remote);
        }
        let unblock_at = Instant::now() + BLOCK_FOR;
        self.unblocks.retain(|(_, p)| *p != peer);
        self.unblocks.push((unblock_at, peer));
        self.cap_blocks();
    }

    /// A new or renewed certificate: later hellos carry it, and the peers
    /// that refused this node are unblocked and dialled again (each may
    /// still block this node for a while after refusing it).
    fn set_own_cert(&mut self, cert: Vec<u8>) {
        self.own_cert = cert;
        let refusers: Vec<PeerId> = {
            let mut stats = self.stats.lock().unwrap_or_else(PoisonError::into_inner);
            std::mem::take(&mut stats.refused_by).into_keys().collect()
        };
        for peer in refusers {
            self.swarm.behaviour_mut().blocked.unblock_peer(peer);
            self.unblocks.retain(|(_, p)| *p != peer);
        }
        self.last_bootstrap = None;
    }

    fn handle_tick(&mut self) {
        let now = Instant::now();
        let late: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(id, p)| {
                !p.state.ready && p.deadline <= now && !self.refusing.contains_key(id)
            })
            .map(|(id, _)| *id)
            .collect();
        for peer in late {
            self.block(peer, "hello timeout");
        }
        self.end_refusals(now);
        let expired: Vec<PeerId> =
            self.unblocks.iter().filter(|(at, _)| *at <= now).map(|(_, p)| *p).collect();
        self.unblocks.retain(|(at, _)| *at > now);
        for peer in expired {
            self.blocked_from.remove(&peer);
            self.swarm.behaviour_mut().blocked.unblock_peer(peer);
        }
        self.close_silent();
        self.metrics.queue("gossip_backlog", self.backlog.len());
        let verifier = self.inbound_tx.max_capacity() - self.inbound_tx.capacity();
        self.metrics.queue("verifier", verifier);
        self.refresh_addresses();
        self.dial_more();
        self.discover();
    }

    fn handle_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        self.metrics.record(&event);
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!(%address, "listening");
                self.stats.lock().unwrap_or_else(PoisonError::into_inner).listen.push(address);
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                num_established,
                endpoint,
                ..
            } => {
                let first = num_established.get() == 1;
                self.probe_reached(peer_id, connection_id, first);
                if first {
                    self.on_connected(peer_id, endpoint.is_dialer(), endpoint.get_remote_address());
                }
            }
            SwarmEvent::OutgoingConnectionError { connection_id, error, .. } => {
                self.probe_failed(connection_id, &error);
            }
            SwarmEvent::ConnectionClosed { peer_id, num_established: 0, cause, .. } => {
                self.on_disconnected(peer_id, cause.map(|c| c.to_string()));
            }
            SwarmEvent::Behaviour(BehaviourEvent::Ping(event)) => self.handle_ping(event),
            SwarmEvent::Behaviour(BehaviourEvent::Hello(event)) => self.handle_hello(event),
            SwarmEvent::Behaviour(BehaviourEvent::Sync(event)) => self.handle_sync(event),
            SwarmEvent::Behaviour(BehaviourEvent::Kad(event)) => self.handle_kad(event),
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(event)) => self.handle_mdns(event),
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            })) => self.handle_gossip(propagation_source, message_id, message.data),
            _ => {}
        }
    }
}
