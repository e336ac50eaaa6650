//! The swarm task's topology: dialling known peers (every address at once)
//! until the node has enough direct peers, and asking ready peers for their
//! hellos again while it lacks peers, so it learns of peers that joined
//! after its first hello.

use std::time::{Duration, Instant};

use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{DialError, SwarmEvent};
use libp2p::{Multiaddr, PeerId};

use super::{BOOTSTRAP_EVERY, BehaviourEvent, Mesh};

/// How often hellos are exchanged again while the node lacks peers.
const REFRESH_EVERY: Duration = Duration::from_secs(10);

impl Mesh {
    /// Dials, and counts the attempt in libp2p's `dial_attempt`: the swarm
    /// reports `Dialing` only for dials its behaviours ask for, never for
    /// the node's own, so the recorder is told here.
    pub(super) fn dial(&mut self, opts: impl Into<DialOpts>) -> Result<(), DialError> {
        let opts = opts.into();
        let (peer_id, connection_id) = (opts.get_peer_id(), opts.connection_id());
        self.swarm.dial(opts)?;
        self.metrics.record(&SwarmEvent::<BehaviourEvent>::Dialing { peer_id, connection_id });
        Ok(())
    }

    /// While the node has fewer ready peers than it wants, asks each ready
    /// peer for its hello again every [`REFRESH_EVERY`]: a peer that
    /// joined after our first hello is learnt then (two nodes that each
    /// reached the mesh through the same peer, at nearly the same moment,
    /// would otherwise never hear of each other).
    pub(super) fn refresh_addresses(&mut self) {
        let ready: Vec<PeerId> =
            self.peers.iter().filter(|(_, p)| p.state.ready).map(|(id, _)| *id).collect();
        let due = self.last_refresh.is_none_or(|at| at.elapsed() >= REFRESH_EVERY);
        if ready.len() >= self.target_peers || !due {
            return;
        }
        self.last_refresh = Some(Instant::now());
        for peer in ready {
            let hello = self.own_hello(&peer);
            self.swarm.behaviour_mut().hello.send_request(&peer, hello);
        }
    }

    /// Dials known peers until enough are connected (or every known one is).
    /// Configured peers given without `/p2p/` are redialled every few
    /// seconds while the node has no peer at all.
    /// A node whose own key is revoked dials nobody (`revoked.rs`).
    pub(super) fn dial_more(&mut self) {
        let connected = self.peers.len();
        if connected >= self.target_peers || self.own_revoked() {
            return;
        }
        let due = self.last_bootstrap.is_none_or(|at| at.elapsed() >= BOOTSTRAP_EVERY);
        if connected == 0 && due {
            self.last_bootstrap = Some(Instant::now());
            for addr in self.bootstrap.clone() {
                if let Err(e) = self.dial(addr.clone()) {
                    tracing::warn!(%addr, error = %e, "cannot dial configured peer");
                }
            }
        }
        let own = *self.swarm.local_peer_id();
        let candidates: Vec<(PeerId, Vec<Multiaddr>)> = self
            .known
            .iter()
            .filter(|(id, _)| {
                **id != own && !self.peers.contains_key(id) && !self.swarm.is_connected(id)
            })
            .filter(|(_, addrs)| !addrs.is_empty())
            .map(|(id, addrs)| (*id, addrs.clone()))
            .take(self.target_peers - connected)
            .collect();
        self.dial_known(candidates);
    }

    /// Dials each known peer at every address it is known by, together
    /// (the first to answer wins): a host has several, and the one first in
    /// its list need not be the one this host can reach.
    pub(super) fn dial_known(&mut self, candidates: Vec<(PeerId, Vec<Multiaddr>)>) {
        if self.own_revoked() {
            return;
        }
        for (peer, addrs) in candidates {
            let opts = DialOpts::peer_id(peer)
                .addresses(addrs)
                .condition(PeerCondition::DisconnectedAndNotDialing)
                .build();
            if let Err(e) = self.dial(opts) {
                tracing::debug!(%peer, error = %e, "dial failed");
            }
        }
    }
}
