//! The swarm task's discovery ([`crate::mesh::discovery`]): admitted peers
//! enter Kademlia's routing table and blocked ones leave it; random walks
//! run often while the node lacks gossip links and knows no peer left to
//! dial, and rarely otherwise; what a
//! walk or mDNS finds becomes an address to dial (then the hello judges the
//! peer); and the node dials a few more peers while its gossipsub mesh is
//! below the low watermark, even if it has enough connections.

use std::sync::PoisonError;
use std::time::{Duration, Instant};

use libp2p::kad::{self, GetClosestPeersOk, QueryResult};
use libp2p::{Multiaddr, PeerId, mdns};

use super::Mesh;
use crate::mesh::discovery::DiscoveryView;
use crate::mesh::{hello, ip_of};

/// How often a random walk runs while the gossip mesh is below its low
/// watermark and no known peer is left to dial.
const WALK_WHILE_LACKING: Duration = Duration::from_secs(10);
/// How often one runs otherwise.
const WALK_EVERY: Duration = Duration::from_secs(600);
/// How often known peers are dialled while the gossip mesh lacks links.
const DIAL_EVERY: Duration = Duration::from_secs(5);
/// Ready peers, in multiples of the low watermark, past which the node
/// stops dialling for gossip links.
const DIAL_UP_TO: usize = 2;
/// Peers learnt by discovery kept as addresses to dial, at most.
const MAX_KNOWN: usize = 4096;

/// The swarm task's discovery state.
#[derive(Debug, Default)]
pub struct State {
    /// When the last random walk started.
    last_walk: Option<Instant>,
    /// When known peers were last dialled for gossip links.
    last_dial: Option<Instant>,
    /// Addresses mDNS reported since start.
    mdns_found: u64,
    /// Walk requests answered since start.
    walk_answers: u64,
}

impl Mesh {
    /// A peer's hello was accepted: into the routing table at `addrs`, and
    /// its connections are served.
    pub(super) fn admit_route(&mut self, peer: PeerId, addrs: &[Multiaddr]) {
        if let Some(kad) = self.swarm.behaviour_mut().kad.as_mut() {
            kad.admit(peer, addrs);
        }
    }

    /// A peer was blocked: out of the routing table.
    pub(super) fn expel_route(&mut self, peer: &PeerId) {
        if let Some(kad) = self.swarm.behaviour_mut().kad.as_mut() {
            kad.expel(peer);
        }
    }

    /// Peers in this node's gossipsub mesh.
    fn gossip_links(&self) -> usize {
        self.swarm.behaviour().gossipsub.mesh_peers(&self.topic.hash()).count()
    }

    /// Once a second: walks when due, dials while the gossip mesh lacks
    /// links, and refreshes what `status` shows.
    pub(super) fn discover(&mut self) {
        let links = self.gossip_links();
        let lacking = links < self.target_peers;
        // Addresses already known come first; a walk only when they run out.
        let walk_after = match lacking {
            true if self.dial_for_links() => None,
            true => Some(WALK_WHILE_LACKING),
            false => Some(WALK_EVERY),
        };
        if let Some(every) = walk_after
            && self.discovery.last_walk.is_none_or(|at| at.elapsed() >= every)
            && let Some(kad) = self.swarm.behaviour_mut().kad.as_mut()
        {
            self.discovery.last_walk = Some(Instant::now());
            kad.walk();
        }
        let view = self.discovery_view(links);
        self.stats.lock().unwrap_or_else(PoisonError::into_inner).discovery = view;
    }

    fn discovery_view(&mut self, links: usize) -> DiscoveryView {
        let mdns = self.swarm.behaviour().mdns.is_enabled();
        let table = self.swarm.behaviour_mut().kad.as_mut().map(|k| k.table());
        DiscoveryView {
            mesh_peers: links,
            mesh_n_low: self.target_peers,
            kademlia: table.is_some(),
            routing_table: table.unwrap_or_default().iter().map(ToString::to_string).collect(),
            walk_answers: self.discovery.walk_answers,
            mdns,
            mdns_found: self.discovery.mdns_found,
        }
    }

    /// Dials known peers not connected yet, a few every [`DIAL_EVERY`],
    /// while the node has fewer than [`DIAL_UP_TO`] ready peers: more
    /// connections give gossipsub more peers to graft (a node pruned by its
    /// few peers would otherwise stay below the low watermark); beyond
    /// that, gossipsub has enough to graft from. Returns whether there was
    /// anyone left to dial.
    fn dial_for_links(&mut self) -> bool {
        let ready = self.peers.values().filter(|p| p.state.ready).count();
        let room = (DIAL_UP_TO * self.target_peers).saturating_sub(ready).min(self.target_peers);
        if room == 0 || self.discovery.last_dial.is_some_and(|at| at.elapsed() < DIAL_EVERY) {
            return true;
        }
        let own = *self.swarm.local_peer_id();
        let candidates: Vec<(PeerId, Vec<Multiaddr>)> = self
            .known
            .iter()
            .filter(|(id, addrs)| **id != own && !addrs.is_empty() && !self.swarm.is_connected(id))
            .filter(|(id, _)| !self.unblocks.iter().any(|(_, p)| p == *id))
            .map(|(id, addrs)| (*id, addrs.clone()))
            .take(room)
            .collect();
        if candidates.is_empty() {
            return false;
        }
        self.discovery.last_dial = Some(Instant::now());
        self.dial_known(candidates);
        true
    }

    /// Kademlia found peers: addresses to dial (each still says hello).
    pub(super) fn handle_kad(&mut self, event: kad::Event) {
        if let kad::Event::OutboundQueryProgressed {
            result: QueryResult::GetClosestPeers(result),
            stats,
            ..
        } = event
        {
            let (peers, failed) = match result {
                Ok(GetClosestPeersOk { peers, .. }) => (peers, false),
                Err(kad::GetClosestPeersError::Timeout { peers, .. }) => (peers, true),
            };
            tracing::debug!(
                found = peers.len(),
                asked = stats.num_requests(),
                answered = stats.num_successes(),
                timed_out = failed,
                "random walk done"
            );
            self.discovery.walk_answers += u64::from(stats.num_successes());
            for info in peers {
                self.learn_addrs(info.peer_id, info.addrs);
            }
        }
    }

    /// mDNS found peers on the LAN: addresses to dial.
    pub(super) fn handle_mdns(&mut self, event: mdns::Event) {
        if let mdns::Event::Discovered(found) = event {
            for (peer, addr) in found {
                // Its loopback address means this host: never the peer.
                if ip_of(&addr).is_some_and(|ip| ip.is_loopback() || ip.is_unspecified()) {
                    continue;
                }
                self.discovery.mdns_found += 1;
                tracing::debug!(%peer, %addr, "mDNS found a peer");
                self.learn_addrs(peer, vec![addr]);
            }
        }
    }

    fn learn_addrs(&mut self, peer: PeerId, addrs: Vec<Multiaddr>) {
        if peer == *self.swarm.local_peer_id()
            || (self.known.len() >= MAX_KNOWN && !self.known.contains_key(&peer))
        {
            return;
        }
        let known = self.known.entry(peer).or_default();
        for addr in addrs {
            if !known.contains(&addr) && known.len() < hello::MAX_ADDRS {
                known.push(addr);
            }
        }
    }
}
