//! Which connected peers a behaviour serves: [`AdmittedPeers`] follows the
//! swarm's connections and the peers whose hello was accepted, and forgets
//! a peer when its last connection closes (it says hello again).
//! [`super::gossip_gate::GatedGossip`] and [`super::discovery::EnrolledKad`]
//! each keep one.

use std::collections::{HashMap, HashSet};

use libp2p::PeerId;
use libp2p::swarm::{ConnectionId, FromSwarm};

/// Open connections by peer, and the connected peers admitted.
#[derive(Debug, Default)]
pub struct AdmittedPeers {
    /// Open connections, by peer.
    connections: HashMap<PeerId, HashSet<ConnectionId>>,
    /// Connected peers whose hello was accepted.
    admitted: HashSet<PeerId>,
}

impl AdmittedPeers {
    /// Follows a swarm event: a connection opened or closed (a peer whose
    /// last connection closed is no longer admitted). Returns the new
    /// connection when it is an admitted peer's.
    pub fn on_swarm_event(&mut self, event: &FromSwarm) -> Option<(PeerId, ConnectionId)> {
        match event {
            FromSwarm::ConnectionEstablished(e) => {
                self.connections.entry(e.peer_id).or_default().insert(e.connection_id);
                if self.admitted.contains(&e.peer_id) {
                    return Some((e.peer_id, e.connection_id));
                }
            }
            FromSwarm::ConnectionClosed(e) => {
                if let Some(set) = self.connections.get_mut(&e.peer_id) {
                    set.remove(&e.connection_id);
                    if set.is_empty() {
                        self.connections.remove(&e.peer_id);
                        self.admitted.remove(&e.peer_id);
                    }
                }
            }
            _ => {}
        }
        None
    }

    /// `peer`'s hello was accepted: admitted until its last connection
    /// closes. Returns whether it was not admitted already.
    pub fn admit(&mut self, peer: PeerId) -> bool {
        self.admitted.insert(peer)
    }

    /// `peer` is no longer admitted (its connections stay open).
    pub fn expel(&mut self, peer: &PeerId) {
        self.admitted.remove(peer);
    }

    /// Whether `peer` is admitted.
    pub fn is_admitted(&self, peer: &PeerId) -> bool {
        self.admitted.contains(peer)
    }

    /// `peer`'s open connections.
    pub fn connections(&self, peer: &PeerId) -> impl Iterator<Item = ConnectionId> + '_ {
        self.connections.get(peer).into_iter().flatten().copied()
    }
}

#[cfg(test)]
mod tests {
    use libp2p::core::transport::PortUse;
    use libp2p::core::{ConnectedPoint, Endpoint};
    use libp2p::swarm::behaviour::{ConnectionClosed, ConnectionEstablished};

    use super::*;

    fn dialer() -> ConnectedPoint {
        ConnectedPoint::Dialer {
            address: "/ip4/127.0.0.1/tcp/1".parse().expect("address"),
            role_override: Endpoint::Dialer,
            port_use: PortUse::Reuse,
        }
    }

    fn open(peers: &mut AdmittedPeers, peer: PeerId, id: usize) -> Option<(PeerId, ConnectionId)> {
        let endpoint = dialer();
        peers.on_swarm_event(&FromSwarm::ConnectionEstablished(ConnectionEstablished {
            peer_id: peer,
            connection_id: ConnectionId::new_unchecked(id),
            endpoint: &endpoint,
            failed_addresses: &[],
            other_established: 0,
        }))
    }

    fn close(peers: &mut AdmittedPeers, peer: PeerId, id: usize) {
        let endpoint = dialer();
        peers.on_swarm_event(&FromSwarm::ConnectionClosed(ConnectionClosed {
            peer_id: peer,
            connection_id: ConnectionId::new_unchecked(id),
            endpoint: &endpoint,
            cause: None,
            remaining_established: 0,
        }));
    }

    #[test]
    fn a_peer_is_admitted_until_its_last_connection_closes() {
        let (mut peers, peer) = (AdmittedPeers::default(), PeerId::random());
        assert_eq!(open(&mut peers, peer, 1), None, "not admitted yet");
        assert!(peers.admit(peer));
        assert!(!peers.admit(peer), "admitted already");
        let second = open(&mut peers, peer, 2);
        assert_eq!(second, Some((peer, ConnectionId::new_unchecked(2))));
        let mut open_now: Vec<ConnectionId> = peers.connections(&peer).collect();
        open_now.sort_unstable();
        assert_eq!(open_now, [ConnectionId::new_unchecked(1), ConnectionId::new_unchecked(2)]);
        close(&mut peers, peer, 1);
        assert!(peers.is_admitted(&peer), "one connection is still open");
        close(&mut peers, peer, 2);
        assert!(!peers.is_admitted(&peer));
        assert_eq!(peers.connections(&peer).count(), 0);
    }

    #[test]
    fn an_expelled_peer_keeps_its_connections() {
        let (mut peers, peer) = (AdmittedPeers::default(), PeerId::random());
        open(&mut peers, peer, 1);
        peers.admit(peer);
        peers.expel(&peer);
        assert!(!peers.is_admitted(&peer));
        assert_eq!(peers.connections(&peer).count(), 1);
    }
}
