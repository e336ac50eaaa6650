//! Gossipsub behind the hello: [`GatedGossip`] wraps libp2p's gossipsub so
//! that nothing of it runs on a connection until the peer's hello is
//! accepted ([`GatedGossip::admit`]).
//!
//! On a pending peer's connection the gossipsub handler is not polled, so
//! it opens no stream and sends nothing (not even this node's
//! subscription: the peer cannot know the node takes the topic, so it
//! publishes nothing to it), and the gossipsub streams the peer opens are
//! accepted but held unread (at most [`MAX_HELD`]; the peer's own flow
//! control stops it). gossipsub learns a peer's subscription only from what
//! it reads, so it never grafts, publishes to nor gossips with a pending
//! peer. Once the hello is accepted the handler runs and reads the held
//! streams; a peer refused or timed out is disconnected with them unread.
//! The peer's other connections, and its later ones while it stays
//! connected, run at once; a peer that disconnects says hello again.
//!
//! Both ends hold back until each has accepted the other's hello, so the
//! first subscription crosses about one round trip after the hello, and
//! the next heartbeat grafts.

use std::collections::VecDeque;
use std::ops::{Deref, DerefMut};
use std::task::{Context, Poll};

use libp2p::core::Endpoint;
use libp2p::core::transport::PortUse;
use libp2p::gossipsub;
use libp2p::swarm::handler::{ConnectionEvent, FullyNegotiatedInbound};
use libp2p::swarm::{
    ConnectionDenied, ConnectionHandler, ConnectionHandlerEvent, ConnectionId, FromSwarm,
    NetworkBehaviour, NotifyHandler, SubstreamProtocol, THandler, THandlerInEvent,
    THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId};

use super::admitted::AdmittedPeers;

/// Inbound gossipsub streams held on a pending connection (an honest peer
/// opens one); beyond it the oldest is dropped.
const MAX_HELD: usize = 2;

/// gossipsub's connection handler (its type is private to libp2p-gossipsub).
type Inner = THandler<gossipsub::Behaviour>;
type InnerIn = <Inner as ConnectionHandler>::FromBehaviour;
type Inbound = FullyNegotiatedInbound<
    <Inner as ConnectionHandler>::InboundProtocol,
    <Inner as ConnectionHandler>::InboundOpenInfo,
>;

/// gossipsub that runs on a connection only once its peer is admitted.
/// Derefs to the inner behaviour for publishing, validation results and
/// the mesh.
pub struct GatedGossip {
    inner: gossipsub::Behaviour,
    /// Connected peers, and those whose hello was accepted.
    peers: AdmittedPeers,
    /// Connections to open.
    opening: VecDeque<(PeerId, ConnectionId)>,
}

impl GatedGossip {
    /// Gates `inner`.
    pub fn new(inner: gossipsub::Behaviour) -> GatedGossip {
        GatedGossip { inner, peers: AdmittedPeers::default(), opening: VecDeque::new() }
    }

    /// `peer`'s hello was accepted: gossip runs on its connections (from
    /// now until it disconnects).
    pub fn admit(&mut self, peer: PeerId) {
        if !self.peers.admit(peer) {
            return;
        }
        for connection in self.peers.connections(&peer) {
            self.opening.push_back((peer, connection));
        }
    }

    /// Whether `peer` is admitted to gossip.
    pub fn is_admitted(&self, peer: &PeerId) -> bool {
        self.peers.is_admitted(peer)
    }

    fn handler(&self, peer: &PeerId, inner: Inner) -> Gate {
        Gate { inner, open: self.peers.is_admitted(peer), held: VecDeque::new() }
    }
}

impl Deref for GatedGossip {
    type Target = gossipsub::Behaviour;
    fn deref(&self) -> &gossipsub::Behaviour {
        &self.inner
    }
}

impl DerefMut for GatedGossip {
    fn deref_mut(&mut self) -> &mut gossipsub::Behaviour {
        &mut self.inner
    }
}

impl NetworkBehaviour for GatedGossip {
    type ConnectionHandler = Gate;
    type ToSwarm = gossipsub::Event;

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
    ) -> Result<Gate, ConnectionDenied> {
        let inner = self.inner.handle_established_inbound_connection(id, peer, local, remote)?;
        Ok(self.handler(&peer, inner))
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
    ) -> Result<Gate, ConnectionDenied> {
        let inner =
            self.inner.handle_established_outbound_connection(id, peer, addr, role, port_use)?;
        Ok(self.handler(&peer, inner))
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        // An admitted peer's new connection needs no opening: its handler
        // was made open.
        let _ = self.peers.on_swarm_event(&event);
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

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ToSwarm<gossipsub::Event, THandlerInEvent<Self>>> {
        if let Some((peer_id, connection)) = self.opening.pop_front() {
            return Poll::Ready(ToSwarm::NotifyHandler {
                peer_id,
                handler: NotifyHandler::One(connection),
                event: GateIn::Open,
            });
        }
        self.inner.poll(cx).map(|event| event.map_in(GateIn::Inner))
    }
}

/// What the behaviour tells a [`Gate`].
#[derive(Debug)]
pub enum GateIn {
    /// For gossipsub's handler.
    Inner(InnerIn),
    /// The peer is admitted: run gossipsub.
    Open,
}

/// gossipsub's handler for one connection, run only once open.
pub struct Gate {
    inner: Inner,
    open: bool,
    /// Inbound streams accepted while closed, handed over on opening.
    held: VecDeque<Inbound>,
}

impl ConnectionHandler for Gate {
    type FromBehaviour = GateIn;
    type ToBehaviour = <Inner as ConnectionHandler>::ToBehaviour;
    type InboundProtocol = <Inner as ConnectionHandler>::InboundProtocol;
    type OutboundProtocol = <Inner as ConnectionHandler>::OutboundProtocol;
    type InboundOpenInfo = <Inner as ConnectionHandler>::InboundOpenInfo;
    type OutboundOpenInfo = <Inner as ConnectionHandler>::OutboundOpenInfo;

    fn listen_protocol(&self) -> SubstreamProtocol<Self::InboundProtocol, Self::InboundOpenInfo> {
        self.inner.listen_protocol()
    }

    fn connection_keep_alive(&self) -> bool {
        self.inner.connection_keep_alive()
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<
        ConnectionHandlerEvent<Self::OutboundProtocol, Self::OutboundOpenInfo, Self::ToBehaviour>,
    > {
        if !self.open {
            // Woken again by the `Open` the behaviour sends.
            return Poll::Pending;
        }
        self.inner.poll(cx)
    }

    fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<Option<Self::ToBehaviour>> {
        self.inner.poll_close(cx)
    }

    fn on_behaviour_event(&mut self, event: GateIn) {
        match event {
            GateIn::Inner(event) => self.inner.on_behaviour_event(event),
            GateIn::Open if !self.open => {
                self.open = true;
                for stream in std::mem::take(&mut self.held) {
                    self.inner.on_connection_event(ConnectionEvent::FullyNegotiatedInbound(stream));
                }
            }
            GateIn::Open => {}
        }
    }

    fn on_connection_event(
        &mut self,
        event: ConnectionEvent<
            Self::InboundProtocol,
            Self::OutboundProtocol,
            Self::InboundOpenInfo,
            Self::OutboundOpenInfo,
        >,
    ) {
        match event {
            ConnectionEvent::FullyNegotiatedInbound(stream) if !self.open => {
                if self.held.len() >= MAX_HELD {
                    self.held.pop_front();
                }
                self.held.push_back(stream);
            }
            event => self.inner.on_connection_event(event),
        }
    }
}
