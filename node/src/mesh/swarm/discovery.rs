//! The swarm task's discovery ([`crate::mesh::discovery`]): admitted peers
//! enter Kademlia's routing table and blocked ones leave it; random walks
//! run often while the node lacks gossip links and rarely otherwise; what a
//! walk or mDNS finds becomes an address to dial (then the hello judges the
//! peer); and the node dials more peers while its gossipsub mesh is below
//! the low watermark, even if it has enough connections.

use std::sync::PoisonError;
use std::time::{Duration, Instant};

use libp2p::kad::{self, GetClosestPeersOk, QueryResult};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::{Multiaddr, PeerId, mdns};

use super::Mesh;
use crate::mesh::discovery::DiscoveryView;
use crate::mesh::{hello, ip_of};

/// How often a random walk runs while the gossip mesh is below its low
/// watermark.
const WALK_WHILE_LACKING: Duration = Duration::from_secs(5);
/// How often one runs otherwise.
const WALK_EVERY: Duration = Duration::from_secs(120);
/// Peers learnt by discovery kept as addresses to dial, at most.
const MAX_KNOWN: usize = 4096;

/// The swarm task's discovery state.
#[derive(Debug, Default)]
pub struct State {
    /// When the last random walk started.
    last_walk: Option<Instant>,
    /// Addresses mDNS reported since start.
    mdns_found: u64,
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
        let every = if lacking { WALK_WHILE_LACKING } else { WALK_EVERY };
        if self.discovery.last_walk.is_none_or(|at| at.elapsed() >= every)
            && let Some(kad) = self.swarm.behaviour_mut().kad.as_mut()
        {
            self.discovery.last_walk = Some(Instant::now());
            kad.walk();
        }
        if lacking {
            self.dial_for_links(self.target_peers - links);
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
            mdns,
            mdns_found: self.discovery.mdns_found,
        }
    }

    /// Dials up to `wanted` known peers not connected yet: more connections
    /// give gossipsub more peers to graft (a node pruned by its few peers
    /// would otherwise stay below the low watermark).
    fn dial_for_links(&mut self, wanted: usize) {
        let own = *self.swarm.local_peer_id();
        let candidates: Vec<(PeerId, Vec<Multiaddr>)> = self
            .known
            .iter()
            .filter(|(id, addrs)| **id != own && !addrs.is_empty() && !self.swarm.is_connected(id))
            .filter(|(id, _)| !self.unblocks.iter().any(|(_, p)| p == *id))
            .map(|(id, addrs)| (*id, addrs.clone()))
            .take(wanted)
            .collect();
        for (peer, addrs) in candidates {
            let opts = DialOpts::peer_id(peer)
                .addresses(addrs)
                .condition(PeerCondition::DisconnectedAndNotDialing)
                .build();
            if let Err(e) = self.swarm.dial(opts) {
                tracing::debug!(%peer, error = %e, "dial failed");
            }
        }
    }

    /// Kademlia found peers: addresses to dial (each still says hello).
    pub(super) fn handle_kad(&mut self, event: kad::Event) {
        if let kad::Event::OutboundQueryProgressed {
            result: QueryResult::GetClosestPeers(Ok(GetClosestPeersOk { peers, .. })),
            ..
        } = event
        {
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
